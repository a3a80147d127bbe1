//! Runs the seed corpus (and anything else in `corpus/`) through each target without
//! libFuzzer, and keeps the seed generators honest.
//!
//! Regenerate the seeds after a format change:
//! `cargo test --manifest-path fuzz/Cargo.toml --test corpus -- --ignored write_seeds`

use std::fs;
use std::path::{Path, PathBuf};

use partlog_fuzz::{decode_batch, open_dir, ops};

type Target = (&'static str, fn(&[u8]), fn() -> Vec<(&'static str, Vec<u8>)>);

const TARGETS: &[Target] = &[
    ("decode_batch", decode_batch::run, decode_batch::seeds),
    ("open_dir", open_dir::run, open_dir::seeds),
    ("ops", ops::run, ops::seeds),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

#[test]
fn corpus_replays_cleanly() {
    for (name, run, _) in TARGETS {
        let dir = corpus_dir(name);
        let mut n = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            let data = fs::read(&path).expect("read corpus file");
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{name}: {} fails", path.display());
            }
            n += 1;
        }
        assert!(n > 0, "{name}: empty corpus");
    }
}

#[test]
fn seeds_run_cleanly() {
    for (name, run, seeds) in TARGETS {
        for (seed, data) in seeds() {
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{name}: seed {seed} fails");
            }
        }
    }
}

#[test]
fn encoders_invert_decoders() {
    for (name, data) in ops::seeds() {
        let (setup, list) = ops::decode(&data);
        assert_eq!(ops::encode(&setup, &list), data, "ops seed {name}");
    }
    for (name, data) in open_dir::seeds().into_iter().filter(|(n, _)| *n != "garbage") {
        assert_eq!(open_dir::Layout::decode(&data).encode(), data, "open_dir seed {name}");
    }
}

#[test]
#[ignore = "writes the seed corpus; run by hand after changing a seed or the formats"]
fn write_seeds() {
    for (name, _, seeds) in TARGETS {
        let dir = corpus_dir(name);
        fs::create_dir_all(&dir).expect("mkdir");
        for (seed, data) in seeds() {
            fs::write(dir.join(format!("seed-{seed}")), data).expect("write seed");
        }
    }
}
