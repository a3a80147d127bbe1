//! An application's life with partlog's default build: a directory of topics, appends,
//! reads by offset and time, configuration with inherited defaults, retention, compaction,
//! the maintenance driver, reopening, and typed errors.

use std::time::Duration;

use partlog::{
    CleanupPolicy, ConfigSource, Durability, Error, LogDir, ManualClock, Record, TopicConfig, partition_for_key,
};

type R = Result<(), Box<dyn std::error::Error>>;

#[test]
fn an_application_lifecycle() -> R {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("data");
    let clock = ManualClock::new(1_700_000_000_000);
    let defaults = TopicConfig::default().retention_ms(Some(3_600_000));
    let dir = LogDir::options().defaults(defaults.clone()).clock(clock.clone()).open(&path)?;

    let orders = dir.create_topic("orders", TopicConfig::default().partitions(3))?;
    let at = orders.append(Record::new().key("customer-42").value("{\"total\":99}"))?;
    assert_eq!(at.partition, partition_for_key(b"customer-42", 3));
    let recs = orders.partition(at.partition)?.read(at.offset, 1 << 20)?;
    let first = recs.iter().next().ok_or("no record")?;
    assert_eq!(first.value(), Some(&b"{\"total\":99}"[..]));
    assert_eq!(recs.next_fetch_offset(), at.offset + 1);

    // The topic inherited the directory's retention, and says so.
    let d = orders.describe();
    let retention = d.config_entries.iter().find(|e| e.key == "retention.ms").ok_or("no retention.ms")?;
    assert_eq!((retention.value.as_str(), retention.source), ("3600000", ConfigSource::Directory));

    // Time lookups.
    let p = orders.partition(at.partition)?;
    let ts = p.offset_for_timestamp(at.timestamp)?.ok_or("no offset for the timestamp")?;
    assert_eq!(ts.offset, at.offset);

    // Retention: an hour later the record has expired.
    clock.advance(3_600_001);
    let report = p.run_retention()?;
    assert_eq!(report.segments_deleted, 1);
    assert_eq!(p.log_start_offset(), at.offset + 1);
    assert!(matches!(p.read(at.offset, 100), Err(Error::OffsetOutOfRange { .. })));

    // Compaction keeps the latest value per key.
    let users = dir.create_topic(
        "users",
        TopicConfig::default().cleanup_policy(CleanupPolicy::COMPACT).durability(Durability::EveryAppend),
    )?;
    for i in 0..50 {
        users.append_to(0, Record::new().key(format!("user-{}", i % 5)).value(format!("v{i}")))?;
    }
    let u = users.partition(0)?;
    u.roll()?;
    let c = u.compact()?;
    assert!(c.cleaned && c.records_removed == 45, "{c:?}");
    let latest: Vec<_> = u.iter(0).map(|r| r.map(|r| r.value)).collect::<Result<_, _>>()?;
    assert_eq!(latest.len(), 5);

    // The maintenance driver runs everything due, from the application's thread.
    let mut m = dir.maintenance();
    let report = m.run_once();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.next_run_in <= Duration::from_secs(300));

    // Typed errors.
    assert!(matches!(dir.create_topic("orders", TopicConfig::default()), Err(Error::TopicExists { .. })));
    assert!(matches!(dir.create_topic("../x", TopicConfig::default()), Err(Error::InvalidTopicName { .. })));
    assert!(matches!(users.append(Record::with_value("no key")), Err(Error::KeyRequired { .. })));
    assert!(matches!(
        TopicConfig::default().set("retention.ms", "soon"),
        Err(Error::InvalidConfig { .. })
    ));

    dir.close()?;
    drop((orders, users, p, u, dir));
    let dir = LogDir::options().defaults(defaults).clock(clock).open(&path)?;
    let u = dir.topic("users")?.partition(0)?;
    assert!(u.recovery_report().clean, "{:?}", u.recovery_report());
    assert_eq!(u.iter(0).count(), 5);
    dir.close()?;
    Ok(())
}
