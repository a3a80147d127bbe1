//! Segment rolls by time and by a full index, log-append timestamps, and the periodic fsync
//! policies (`flush.messages`, `flush.ms`).

use std::sync::Arc;
use std::time::Duration;

use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{Durability, LogDir, ManualClock, Partition, Record, TimestampType, TopicConfig};

type R = Result<(), Box<dyn std::error::Error>>;

fn open(fs: &Arc<SimFs>, config: TopicConfig, clock: Arc<ManualClock>) -> partlog::Result<Partition> {
    Partition::options().fs(fs.clone()).config(config).clock(clock).open("/p")
}

#[test]
fn segment_ms_rolls_by_record_time() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(10_000);
    let p = open(&fs, TopicConfig::default().segment_ms(1_000), clock)?;
    for ts in [0i64, 500, 1_000] {
        p.append(Record::with_value("x").timestamp(ts))?;
    }
    assert_eq!(p.segments().len(), 1, "1000 ms after the first record is not more than segment.ms");
    p.append(Record::with_value("x").timestamp(1_001))?;
    let segs = p.segments();
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_eq!(segs[1].base_offset, 3);
    assert_eq!((segs[0].first_timestamp, segs[0].max_timestamp), (Some(0), Some(1_000)));
    // An out-of-order (older) record does not roll.
    p.append(Record::with_value("x").timestamp(5))?;
    assert_eq!(p.segments().len(), 2);
    Ok(())
}

#[test]
fn a_full_offset_index_rolls_the_segment() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(0);
    // Two index entries per segment; an entry after every batch but the first.
    let config = TopicConfig::default().segment_index_bytes(16).index_interval_bytes(0);
    let p = open(&fs, config, clock)?;
    for i in 0..9 {
        p.append(Record::with_value(format!("v{i}")).timestamp(i))?;
    }
    let segs = p.segments();
    assert_eq!(segs.iter().map(|s| s.base_offset).collect::<Vec<_>>(), vec![0, 3, 6], "{segs:?}");
    for s in &segs[..2] {
        let (index, _) = p.segment_indexes(s.base_offset)?;
        assert_eq!(index.len(), 2);
    }
    assert_eq!(p.iter(0).count(), 9);
    Ok(())
}

#[test]
fn log_append_time_overwrites_timestamps() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(42_000);
    let p = open(&fs, TopicConfig::default().timestamp_type(TimestampType::LogAppendTime), clock.clone())?;
    p.append(Record::with_value("a").timestamp(1))?;
    clock.advance(5);
    let at = p.append_batch(&[Record::with_value("b").timestamp(2), Record::with_value("c")])?;
    assert_eq!(at.max_timestamp, 42_005);
    let ts: Vec<i64> = p.iter(0).map(|r| r.map(|r| r.timestamp)).collect::<Result<_, _>>()?;
    assert_eq!(ts, vec![42_000, 42_005, 42_005]);
    assert_eq!(p.offset_for_timestamp(42_001)?.map(|t| t.offset), Some(1));
    Ok(())
}

#[test]
fn create_time_defaults_to_now() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(7_000);
    let p = open(&fs, TopicConfig::default(), clock)?;
    p.append(Record::with_value("no timestamp"))?;
    let r = p.iter(0).next().ok_or("missing")??;
    assert_eq!(r.timestamp, 7_000);
    Ok(())
}

#[test]
fn flush_messages_syncs_every_n_records() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(0);
    let config = TopicConfig::default().durability(Durability::Periodic { messages: Some(3), interval: None });
    let p = open(&fs, config.clone(), clock.clone())?;
    for i in 0..5 {
        p.append(Record::with_value(format!("{i}")))?;
    }
    fs.crash(CrashMode::LoseUnsynced);
    drop(p);
    let p = open(&fs, config, clock)?;
    // Records 0..3 were covered by the fsync after the third; 3 and 4 were not yet.
    assert_eq!(p.log_end_offset(), 3);
    Ok(())
}

#[test]
fn flush_ms_is_kept_by_the_maintenance_driver() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(0);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/d")?;
    let config = TopicConfig::default()
        .durability(Durability::Periodic { messages: None, interval: Some(Duration::from_millis(20)) });
    let t = dir.create_topic("t", config)?;
    clock.advance(1);
    t.append(Record::with_value("late"))?;
    let mut m = dir.maintenance();
    let first = m.run_once();
    assert!(first.flushed.is_empty(), "flushed before flush.ms passed: {first:?}");
    assert!(first.next_run_in <= Duration::from_millis(20), "{first:?}");
    clock.advance(1_000);
    let report = m.run_once();
    assert_eq!(report.flushed.len(), 1, "{report:?}");
    // A flush.ms set later, on a live topic, is kept too.
    let u = dir.create_topic("u", TopicConfig::default())?;
    u.append(Record::with_value("later"))?;
    dir.alter_topic_config("u", &[("flush.ms", "50")])?;
    clock.advance(100);
    let report = m.run_once();
    assert_eq!(report.flushed.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>(), ["u"], "{report:?}");
    fs.crash(CrashMode::LoseUnsynced);
    drop((t, u, m, dir));
    let dir = LogDir::options().fs(fs.clone()).clock(clock).open("/d")?;
    assert_eq!(dir.topic("t")?.partition(0)?.log_end_offset(), 1, "the flush.ms fsync did not happen");
    assert_eq!(dir.topic("u")?.partition(0)?.log_end_offset(), 1, "the altered flush.ms was not kept");
    Ok(())
}

#[test]
fn directory_defaults_apply_to_new_topics() -> R {
    let fs = SimFs::new();
    let defaults = TopicConfig::default().set("retention.ms", "60000")?.set("segment.bytes", "65536")?;
    let dir = LogDir::options().fs(fs.clone()).defaults(defaults).open("/d")?;
    assert_eq!(dir.default_topic_config().get_retention_ms(), Some(60_000));
    // A plain default config inherits every directory default it does not override.
    let t = dir.create_topic("t", TopicConfig::default().partitions(2).segment_ms(5_000))?;
    assert_eq!(t.config().get_segment_bytes(), 65_536);
    assert_eq!(t.partition(1)?.config().get_retention_ms(), Some(60_000));
    assert_eq!(t.config().get_segment_ms(), 5_000);
    let u = dir.create_topic("u", TopicConfig::default())?;
    assert_eq!((u.config().get_segment_bytes(), u.partition_count()), (65_536, 1));
    // describe tells overrides from inherited values.
    let source = |key: &str| t.describe().config_entries.iter().find(|e| e.key == key).map(|e| e.source);
    assert_eq!(source("segment.ms"), Some(partlog::ConfigSource::Topic));
    assert_eq!(source("segment.bytes"), Some(partlog::ConfigSource::Directory));
    assert_eq!(source("flush.ms"), Some(partlog::ConfigSource::Default));
    // Only overrides are stored: reopened with other defaults, the topic follows them.
    dir.close()?;
    let other = TopicConfig::default().segment_bytes(1 << 20);
    let dir = LogDir::options().fs(fs.clone()).defaults(other).open("/d")?;
    let t = dir.topic("t")?;
    assert_eq!((t.config().get_segment_bytes(), t.config().get_segment_ms()), (1 << 20, 5_000));
    assert_eq!(t.config().get_retention_ms(), Some(partlog::DEFAULT_RETENTION_MS));
    // Deleting an override brings the inherited value back.
    let c = dir.delete_topic_config("t", &["segment.ms"])?;
    assert_eq!(c.get_segment_ms(), partlog::DEFAULT_SEGMENT_MS);
    assert!(!c.is_set("segment.ms"));
    dir.close()?;
    // Bad defaults are refused when the directory is opened.
    let bad = LogDir::options().fs(fs.clone()).defaults(TopicConfig::default().segment_bytes(3)).open("/e");
    assert!(matches!(bad, Err(partlog::Error::InvalidConfig { .. })));
    Ok(())
}

#[test]
fn a_segment_sealed_below_the_log_start_is_deleted_at_roll() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(0);
    // Two of these batches fit in a segment, a third rolls it.
    let p = open(&fs, TopicConfig::default().segment_bytes(300), clock)?;
    p.append(Record::with_value(vec![1u8; 60]))?;
    p.append(Record::with_value(vec![2u8; 60]))?;
    assert_eq!(p.segments().len(), 1);
    // Everything is below the new start, but the active segment stays until it is sealed.
    p.advance_log_start(2)?;
    assert_eq!(p.segments().len(), 1);
    p.append(Record::with_value(vec![3u8; 60]))?;
    let segs = p.segments();
    assert_eq!(segs.iter().map(|s| s.base_offset).collect::<Vec<_>>(), vec![2], "{segs:?}");
    assert!(!fs.exists(std::path::Path::new("/p/00000000000000000000.log")), "segment 0 lingers");
    assert_eq!(p.iter(2).count(), 1);
    Ok(())
}
