//! The memory-mapped read path under changes of the segment set: views handed out by earlier
//! reads stay valid (and keep their bytes) through truncation, retention and compaction, on
//! the real file system and on the simulated one in mapped mode (which panics on a write or a
//! truncation into bytes a live view holds).

use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{Partition, Record, TopicConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fill(p: &Partition, n: u64) -> TestResult {
    for i in 0..n {
        p.append(Record::new().key("k").value(format!("value-{i}")))?;
    }
    Ok(())
}

fn values(r: &partlog::Records) -> Vec<String> {
    r.iter().map(|r| String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned()).collect()
}

/// Found by the simulated file system's map check: `truncate_to` the log start set the
/// segment file's length to 0 in place, and a reader still holding a mapped view of it died
/// with SIGBUS (on the real file system this test then kills the test process).
#[test]
fn truncate_to_the_log_start_keeps_earlier_reads_readable() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    fill(&p, 10)?;
    let before = p.read(0, 1 << 20)?;
    p.truncate_to(0)?;
    assert_eq!(values(&before).len(), 10);
    assert_eq!(p.log_end_offset(), 0);
    fill(&p, 3)?;
    assert_eq!(values(&p.read(0, 1 << 20)?), ["value-0", "value-1", "value-2"]);
    Ok(())
}

/// The same on the simulated file system, with sealed segments too, and a crash after.
#[test]
fn sim_maps_survive_truncation_retention_and_compaction() -> TestResult {
    let fs = SimFs::new();
    let cfg = TopicConfig::default().segment_bytes(300).index_interval_bytes(64);
    let p = Partition::options().fs(fs.clone()).config(cfg.clone()).open("/p")?;
    fill(&p, 40)?;
    assert!(p.segments().len() > 3);
    let reads: Vec<partlog::Records> = (0..40).step_by(7).map(|o| p.read(o, 1 << 20)).collect::<Result<_, _>>()?;
    let seen: Vec<Vec<String>> = reads.iter().map(values).collect();
    p.truncate_to(30)?;
    p.advance_log_start(12)?;
    p.run_retention()?;
    p.truncate_to(12)?;
    fill(&p, 5)?;
    // Every earlier view still holds what it held.
    assert_eq!(reads.iter().map(values).collect::<Vec<_>>(), seen);
    p.sync()?;
    fs.crash(CrashMode::LoseUnsynced);
    drop(p);
    let p = Partition::options().fs(fs.clone()).config(cfg).open("/p")?;
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (12, 17));
    Ok(())
}
