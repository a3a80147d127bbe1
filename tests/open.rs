//! What opening a partition touches and reports: a clean open of a clean directory changes
//! nothing a backup tool would notice; an open without a checkpoint does work in proportion to
//! what it must check, not one fsync per segment; a clean checkpoint that did not hold up is
//! replaced at once; the recovery report says what happened.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use partlog::fs::FileSystem;
use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{CorruptKind, LogDir, Partition, Record, RecoveryMode, TopicConfig};

type R = Result<(), Box<dyn std::error::Error>>;

const CHECKPOINT: &str = "partition.checkpoint";

fn small() -> TopicConfig {
    TopicConfig::default().segment_bytes(1024).index_interval_bytes(128)
}

fn fill(p: &Partition, n: u64) -> partlog::Result<()> {
    for i in 0..n {
        p.append(Record::new().key("k").value(format!("value-{i}")).timestamp(1_000 + i as i64))?;
    }
    Ok(())
}

/// A file's size, modification time and contents.
type FileState = (u64, std::time::SystemTime, Vec<u8>);

/// Every file below `dir`.
fn snapshot(dir: &Path) -> std::io::Result<BTreeMap<String, FileState>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                let name = e.path().strip_prefix(dir).map(|p| p.display().to_string()).unwrap_or_default();
                out.insert(name, (m.len(), m.modified()?, std::fs::read(e.path())?));
            }
        }
    }
    Ok(out)
}

#[test]
fn a_clean_open_and_close_changes_no_file() -> R {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("data");
    let dir = LogDir::open(&path)?;
    let t = dir.create_topic("t", small().partitions(2))?;
    for p in t.partitions() {
        fill(&p, 40)?;
    }
    dir.close()?;
    drop((t, dir));
    let before = snapshot(&path)?;
    // Time must pass for a changed mtime to be visible.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let dir = LogDir::open(&path)?;
    let t = dir.topic("t")?;
    for p in t.partitions() {
        assert!(p.recovery_report().clean, "{:?}", p.recovery_report());
        assert_eq!(p.iter(0).count(), 40);
    }
    dir.close()?;
    drop((t, dir));
    let after = snapshot(&path)?;
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (name, b) in &before {
        let a = &after[name];
        assert!(a == b, "{name} changed: size {} -> {}, mtime {:?} -> {:?}", b.0, a.0, b.1, a.1);
    }
    Ok(())
}

/// Counts the mutating file-system operations of an open.
fn ops_of_open(fs: &Arc<SimFs>) -> partlog::Result<(u64, Partition)> {
    let before = fs.mutating_ops();
    let p = Partition::options().fs(fs.clone()).config(small()).open("/p")?;
    Ok((fs.mutating_ops() - before, p))
}

#[test]
fn reopening_without_a_checkpoint_does_not_sync_or_rewrite_every_segment() -> R {
    let fs = SimFs::new();
    let p = Partition::options().fs(fs.clone()).config(small()).open("/p")?;
    fill(&p, 3_000)?;
    let segments = p.segments().len();
    assert!(segments > 100, "{segments} segments");
    p.close()?;
    drop(p);
    fs.remove_file(Path::new("/p").join(CHECKPOINT).as_path())?;
    let (ops, p) = ops_of_open(&fs)?;
    let r = p.recovery_report().clone();
    // Every segment was re-validated (there was nothing to trust) ...
    assert_eq!(r.segments_revalidated as usize, segments, "{r:?}");
    assert!(!r.clean);
    // ... but its indexes were intact and its data durable: a handful of operations (the
    // lock, the new checkpoint), not a write or an fsync per segment.
    assert_eq!(r.indexes_rebuilt, 0, "{r:?}");
    assert!(ops < 20, "open of {segments} segments did {ops} mutating operations");
    assert_eq!(p.iter(0).count(), 3_000);
    drop(p);
    // Missing indexes are rebuilt, and counted.
    for base in [0u64, 100] {
        let _ = fs.remove_file(Path::new(&format!("/p/{base:020}.index")));
    }
    fs.remove_file(Path::new("/p").join(CHECKPOINT).as_path())?;
    let (_, p) = ops_of_open(&fs)?;
    assert!(p.recovery_report().indexes_rebuilt >= 1, "{:?}", p.recovery_report());
    assert_eq!(p.iter(0).count(), 3_000);
    Ok(())
}

#[test]
fn a_clean_checkpoint_that_did_not_hold_up_is_replaced_at_once() -> R {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open_with(&dir, small())?;
    fill(&p, 5)?;
    p.close()?;
    drop(p);
    // Damage the active segment's last batch in place (same length): the clean checkpoint's
    // summary no longer matches the log, so the segment is re-validated and its tail cut.
    let log = dir.join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&log)?;
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    std::fs::write(&log, &bytes)?;
    let cp_before = std::fs::read(dir.join(CHECKPOINT))?;
    let p = Partition::open_with(&dir, small())?;
    let r = p.recovery_report().clone();
    assert!(!r.clean && r.segments_revalidated == 1, "{r:?}");
    let cut = r.tail_cut.ok_or("no tail cut reported")?;
    assert_eq!((cut.segment, cut.reason, cut.valid_data_after), (0, CorruptKind::BatchChecksum, false));
    assert!(cut.bytes_cut > 0 && cut.at_byte + cut.bytes_cut == n as u64, "{cut:?}");
    assert_eq!(p.log_end_offset(), 4);
    // The checkpoint on disk stopped claiming a clean shutdown before any append.
    let cp_now = std::fs::read(dir.join(CHECKPOINT))?;
    assert_ne!(cp_now, cp_before, "the clean checkpoint was left in place");
    assert_eq!(cp_now[6] & 1, 0, "the checkpoint on disk still says clean");
    Ok(())
}

#[test]
fn the_report_tells_what_recovery_did() -> R {
    let fs = SimFs::new();
    let cfg = small();
    let open = |mode| Partition::options().fs(fs.clone()).config(cfg.clone()).recovery(mode).open("/p");
    // A fresh partition.
    let p = open(RecoveryMode::Strict)?;
    assert_eq!(p.recovery_report().segments_revalidated, 0);
    fill(&p, 200)?;
    p.sync()?;
    fill(&p, 5)?;
    // A crash: the unsynced tail of the active segment is lost or torn.
    fs.crash(CrashMode::TornPrefix { seed: 7 });
    drop(p);
    let p = open(RecoveryMode::Strict)?;
    let r = p.recovery_report().clone();
    assert!(!r.clean && r.segments_revalidated >= 1 && r.bytes_revalidated > 0, "{r:?}");
    assert!(p.log_end_offset() >= 200 && p.log_end_offset() <= 205);
    if p.log_end_offset() < 205 {
        assert!(r.tail_cut.is_some() || r.segments_revalidated > 0, "{r:?}");
    }
    p.close()?;
    drop(p);
    // A clean reopen re-validates nothing.
    let p = open(RecoveryMode::Strict)?;
    let r = p.recovery_report().clone();
    assert!(r.clean && r.segments_revalidated == 0 && r.tail_cut.is_none(), "{r:?}");
    Ok(())
}
