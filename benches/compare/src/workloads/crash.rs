//! Reopen after a crash: a child process appends with page-cache durability and exits without
//! closing anything; the parent times the reopen and checks every acknowledged record is there.

use std::path::Path;
use std::process::Command;

use partlog::TopicConfig;

use super::run_rounds;
use crate::cli::{Cfg, OrDie, die};
use crate::fixture::{dir_bytes, tempdir};
use crate::report::{Better, Report, fmt_ms, median, progress};
use crate::systems::{self, SYSTEMS, Sys};

/// Crashes per system.
const CRASHES: usize = 3;

pub fn run(rep: &mut Report, cfg: &Cfg) {
    let n = cfg.crash_records;
    rep.line(format!(
        "\n### Reopen after a crash ({n} records appended in batches of 100 with page-cache durability by a child \
         process that exits without closing; {CRASHES} crashes each; time to open and learn the log end)\n"
    ));
    let mut tails: [Vec<f64>; 5] = Default::default();
    let r = run_rounds(
        rep,
        "crash",
        CRASHES,
        Better::Lower,
        |sys, _| {
            let d = tempdir(cfg, "crash");
            let path = sys.path(d.path());
            spawn_crash_writer(sys, &path, n);
            tails[sys.index()].push(dir_bytes(&path) as f64 / 1e6);
            let (t, found) = match sys {
                Sys::Partlog => systems::partlog::open_end(&path, TopicConfig::default()),
                Sys::Commitlog => systems::commitlog::open_end(commitlog::LogOptions::new(&path)),
                Sys::Sqlite => systems::sqlite::open_end(&path),
                Sys::Fjall => systems::fjall::open_end(&path),
                Sys::Raw => systems::raw::open_end(&path),
            };
            if found != n as u64 {
                die(format!("{}: {found} records after the crash, {n} were acknowledged", sys.name()));
            }
            t.as_secs_f64() * 1e3
        },
        fmt_ms,
    );
    r.summary(rep, "Reopen after a crash", "time to open and read the log end", fmt_ms);
    let sizes: Vec<String> =
        SYSTEMS.iter().map(|s| format!("{} {:.0} MB", s.label(), median(&tails[s.index()]))).collect();
    rep.line(format!(
        "\nOn disk after the crash: {}. partlog re-validates the unflushed tail (CRC of every batch, record \
         framing), rebuilds the active segment's indexes, trims the preallocated tail and fsyncs it (its size \
         includes up to 16 MiB of preallocation); commitlog 0.2 checks nothing on open (it trusts its index and \
         file lengths); SQLite (WAL, `synchronous=NORMAL`) rebuilds the WAL index from the WAL left behind at \
         its first statement; fjall replays its journal into the memtable; raw only reads the file length.",
        sizes.join(", ")
    ));
    let p = r.median_value(Sys::Partlog);
    rep.goal("crash reopen (informational)", format!("{p:.0} ms for {n} records"), None);
}

fn spawn_crash_writer(sys: Sys, dir: &Path, n: usize) {
    progress(format!("crash: {} writer", sys.name()));
    let exe = std::env::current_exe().or_die("current_exe");
    let status = Command::new(exe)
        .arg("--crash-writer")
        .arg(sys.name())
        .arg(dir)
        .arg(n.to_string())
        .status()
        .or_die("spawn crash writer");
    if !status.success() {
        die(format!("crash writer for {} failed: {status}", sys.name()));
    }
}
