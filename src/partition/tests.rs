use super::*;
use crate::TopicConfig;
use crate::fs::sim::{CrashMode, SimFs};

fn sim_open(fs: &Arc<SimFs>, config: TopicConfig) -> Result<Partition> {
    Partition::options().fs(fs.clone()).config(config).open("/p")
}

fn small() -> TopicConfig {
    TopicConfig::default().segment_bytes(1024).index_interval_bytes(64)
}

fn values(p: &Partition) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    for r in p.iter(p.log_start_offset()) {
        let r = r?;
        out.push((r.offset, r.value.unwrap_or_default()));
    }
    Ok(out)
}

#[test]
fn append_read_roll_reopen() -> Result<()> {
    let fs = SimFs::new();
    let p = sim_open(&fs, small())?;
    for i in 0..200u64 {
        let v = format!("value-{i}");
        let at = p.append(Record::new().key("k").value(v.as_str()).timestamp(i as i64 * 10))?;
        assert_eq!(at.offset, i);
    }
    assert!(p.segments().len() > 5, "expected rolls, got {:?}", p.segments());
    let got = values(&p)?;
    assert_eq!(got.len(), 200);
    for (i, (o, v)) in got.iter().enumerate() {
        assert_eq!(*o, i as u64);
        assert_eq!(v, format!("value-{i}").as_bytes());
    }
    for probe in [0u64, 1, 57, 199] {
        let r = p.read(probe, 1)?;
        assert_eq!(r.iter().next().map(|r| r.offset()), Some(probe));
    }
    assert_eq!(p.offset_for_timestamp(555)?.map(|t| t.offset), Some(56));
    assert_eq!(p.offset_for_timestamp(100_000)?, None);
    p.close()?;
    drop(p);
    let p = sim_open(&fs, small())?;
    assert_eq!(p.log_end_offset(), 200);
    assert_eq!(values(&p)?, got);
    Ok(())
}

#[test]
fn out_of_range_reads() -> Result<()> {
    let fs = SimFs::new();
    let p = sim_open(&fs, small())?;
    p.append(Record::with_value("a"))?;
    assert!(p.read(1, 100)?.is_empty());
    match p.read(2, 100) {
        Err(Error::OffsetOutOfRange { requested: 2, start: 0, end: 1 }) => {}
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn synced_appends_survive_power_loss() -> Result<()> {
    let fs = SimFs::new();
    let cfg = small().durability(crate::Durability::EveryAppend);
    let p = sim_open(&fs, cfg.clone())?;
    for i in 0..50u32 {
        p.append(Record::with_value(i.to_le_bytes().to_vec()))?;
    }
    fs.crash(CrashMode::LoseUnsynced);
    drop(p);
    let p = sim_open(&fs, cfg)?;
    assert_eq!(p.log_end_offset(), 50);
    assert_eq!(values(&p)?.len(), 50);
    Ok(())
}

#[test]
fn second_open_is_locked() -> Result<()> {
    let fs = SimFs::new();
    let _p = sim_open(&fs, small())?;
    assert!(matches!(sim_open(&fs, small()), Err(Error::Locked { .. })));
    Ok(())
}

#[test]
fn truncate_and_advance() -> Result<()> {
    let fs = SimFs::new();
    let p = sim_open(&fs, small())?;
    let batch: Vec<Record<'_>> = (0..5).map(|i| Record::with_value(vec![i as u8; 10])).collect();
    for _ in 0..40 {
        p.append_batch(&batch)?;
    }
    assert_eq!(p.log_end_offset(), 200);
    p.truncate_to(123)?;
    assert_eq!(p.log_end_offset(), 123);
    let v = values(&p)?;
    assert_eq!(v.len(), 123);
    assert_eq!(v.last().map(|x| x.0), Some(122));
    assert_eq!(p.append(Record::with_value("x"))?.offset, 123);
    p.advance_log_start(61)?;
    assert_eq!(p.log_start_offset(), 61);
    assert!(matches!(p.read(60, 10), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(values(&p)?.first().map(|x| x.0), Some(61));
    p.close()?;
    drop(p);
    let p = sim_open(&fs, small())?;
    assert_eq!(p.log_start_offset(), 61);
    assert_eq!(p.log_end_offset(), 124);
    Ok(())
}

/// The deletion primitive declines a list that is not the current sealed prefix (the
/// maintenance lock keeps callers from racing it; this is its own check) and changes nothing.
#[test]
fn delete_prefix_declines_what_is_not_the_current_sealed_prefix() -> Result<()> {
    let fs = SimFs::new();
    let p = sim_open(&fs, small())?;
    for i in 0..3u8 {
        for _ in 0..5 {
            p.append(crate::Record::with_value(vec![i; 50]))?;
        }
        assert!(p.roll()?);
    }
    p.append(crate::Record::with_value(vec![9; 50]))?;
    let segs = p.inner.view().segments.clone();
    assert_eq!(segs.len(), 4);
    let before = values(&p)?;
    let end = p.log_end_offset();
    // Not a prefix: the second segment alone.
    let r = maintenance::delete_prefix(&p.inner, &segs[1..2], segs[2].base)?;
    assert!(r.is_err(), "deleted a segment from the middle of the log");
    // The whole list, the active segment included.
    let r = maintenance::delete_prefix(&p.inner, &segs, end)?;
    assert!(r.is_err(), "deleted the active segment");
    assert_eq!(p.inner.view().segments.len(), 4);
    assert_eq!(p.log_start_offset(), 0);
    assert_eq!(values(&p)?, before);
    // The real prefix goes.
    let r = maintenance::delete_prefix(&p.inner, &segs[..1], segs[1].base)?;
    assert!(r.is_ok_and(|bytes| bytes > 0));
    assert_eq!(p.log_start_offset(), segs[1].base);
    Ok(())
}
