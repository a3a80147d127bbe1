//! The log directory and topics: creation, routing, configuration, deletion, bad input, and
//! crash safety of the metadata operations.

use std::collections::BTreeMap;
use std::sync::Arc;

use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{Error, LogDir, Record, TopicConfig, partition_for_key};

type R = Result<(), Box<dyn std::error::Error>>;

fn sim_dir(fs: &Arc<SimFs>) -> partlog::Result<LogDir> {
    LogDir::options().fs(fs.clone()).open("/data")
}

#[test]
fn create_append_read_reopen() -> R {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("data");
    let dir = LogDir::open(&path)?;
    let orders = dir.create_topic("orders", TopicConfig::default().partitions(3))?;
    let mut expected: BTreeMap<(u32, u64), String> = BTreeMap::new();
    for i in 0..300 {
        let key = format!("customer-{}", i % 17);
        let value = format!("order-{i}");
        let at = orders.append(Record::new().key(key.as_str()).value(value.as_str()))?;
        assert_eq!(at.partition, partition_for_key(key.as_bytes(), 3), "key {key}");
        expected.insert((at.partition, at.offset), value);
    }
    assert_eq!(dir.topics()?, vec!["orders".to_owned()]);
    dir.close()?;
    drop((orders, dir));

    let dir = LogDir::open(&path)?;
    let orders = dir.topic("orders")?;
    assert_eq!(orders.partition_count(), 3);
    let mut got = BTreeMap::new();
    for p in 0..3 {
        for r in orders.partition(p)?.iter(0) {
            let r = r?;
            got.insert((p, r.offset), String::from_utf8(r.value.unwrap_or_default())?);
        }
    }
    assert_eq!(got, expected);
    Ok(())
}

#[test]
fn keys_stay_in_their_partition_and_unkeyed_records_spread() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(4))?;
    for i in 0..200 {
        let at = t.append(Record::new().key("same").value(format!("{i}")))?;
        assert_eq!(at.partition, partition_for_key(b"same", 4));
    }
    let mut seen = [0u32; 4];
    for _ in 0..2000 {
        let at = t.append(Record::new().value(vec![0u8; 100]))?;
        seen[at.partition as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 0), "unkeyed records did not reach every partition: {seen:?}");
    // Explicit partition.
    assert_eq!(t.append_to(2, Record::with_value("x"))?.partition, 2);
    assert!(matches!(
        t.append_to(4, Record::with_value("x")),
        Err(Error::PartitionNotFound { partition: 4, count: 4, .. })
    ));
    Ok(())
}

#[test]
fn batch_append_groups_per_partition() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(3))?;
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let records: Vec<Record<'_>> = keys.iter().map(|k| Record::new().key(k.as_str()).value(k.as_str())).collect();
    let placed = t.append_batch(&records)?;
    assert_eq!(placed.len(), 30);
    for (k, at) in keys.iter().zip(&placed) {
        assert_eq!(at.partition, partition_for_key(k.as_bytes(), 3));
        let recs = t.partition(at.partition)?.read(at.offset, 1)?;
        let first = recs.iter().find(|r| r.offset() == at.offset).ok_or("record missing")?;
        assert_eq!(first.value(), Some(k.as_bytes()));
    }
    // One batch per partition: each partition holds one segment batch starting at offset 0.
    for p in 0..3 {
        let part = t.partition(p)?;
        let n = placed.iter().filter(|a| a.partition == p).count() as u64;
        assert_eq!(part.log_end_offset(), n);
    }
    Ok(())
}

#[test]
fn config_is_persisted_altered_and_validated() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let cfg = TopicConfig::default().partitions(2).set("retention.ms", "1000")?.set("segment.bytes", "4096")?;
    dir.create_topic("cfg", cfg)?;
    let altered = dir.alter_topic_config("cfg", &[("retention.ms", "5000"), ("max.message.bytes", "200")])?;
    assert_eq!(altered.get_retention_ms(), Some(5000));
    let t = dir.topic("cfg")?;
    // Takes effect without reopening: a 300-byte record is now too large.
    let err = t.append(Record::with_value(vec![1u8; 300])).err().ok_or("expected an error")?;
    assert!(matches!(err, Error::RecordTooLarge { max: 200, .. }), "{err:?}");
    let bad = dir.alter_topic_config("cfg", &[("segment.bytes", "-3")]).err().ok_or("expected an error")?;
    assert!(matches!(&bad, Error::InvalidConfig { key, .. } if key == "segment.bytes"), "{bad:?}");
    let unknown = dir.alter_topic_config("cfg", &[("retention.hours", "1")]).err().ok_or("expected an error")?;
    assert!(matches!(&unknown, Error::InvalidConfig { key, .. } if key == "retention.hours"), "{unknown:?}");
    dir.close()?;
    drop((t, dir));
    let dir = sim_dir(&fs)?;
    let c = dir.topic("cfg")?.config();
    assert_eq!(
        (c.get_retention_ms(), c.get_max_message_bytes(), c.get_segment_bytes(), c.get_partitions()),
        (Some(5000), 200, 4096, 2)
    );
    Ok(())
}

#[test]
fn add_partitions_and_describe() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("grow", TopicConfig::default().partitions(2))?;
    for i in 0..10 {
        t.append(Record::new().key(format!("k{i}")).value("v"))?;
    }
    let t = dir.add_partitions("grow", 5)?;
    assert_eq!(t.partition_count(), 5);
    assert!(matches!(dir.add_partitions("grow", 3), Err(Error::InvalidConfig { .. })));
    let d = dir.describe_topic("grow")?;
    assert_eq!(d.partitions.len(), 5);
    assert_eq!(d.partitions.iter().map(|p| p.log_end_offset).sum::<u64>(), 10);
    assert_eq!(d.config.get_partitions(), 5);
    // Keys now map over five partitions.
    let at = t.append(Record::new().key("k1").value("v"))?;
    assert_eq!(at.partition, partition_for_key(b"k1", 5));
    dir.close()?;
    drop((t, dir));
    let dir = sim_dir(&fs)?;
    assert_eq!(dir.topic("grow")?.partition_count(), 5);
    Ok(())
}

#[test]
fn delete_topic_removes_files_and_handles() -> R {
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path())?;
    let t = dir.create_topic("doomed", TopicConfig::default().partitions(2))?;
    t.append(Record::with_value("x"))?;
    dir.delete_topic("doomed")?;
    assert!(matches!(t.append(Record::with_value("y")), Err(Error::TopicNotFound { .. })));
    assert!(matches!(dir.topic("doomed"), Err(Error::TopicNotFound { .. })));
    assert!(!tmp.path().join("topics").join("doomed").exists());
    assert_eq!(std::fs::read_dir(tmp.path().join("trash"))?.count(), 0);
    // The name can be reused.
    let again = dir.create_topic("doomed", TopicConfig::default())?;
    assert_eq!(again.partition(0)?.log_end_offset(), 0);
    Ok(())
}

#[test]
fn bad_input_gets_typed_errors() -> R {
    let tmp = tempfile::tempdir()?;
    // Not ours.
    std::fs::write(tmp.path().join("precious.txt"), "keep me")?;
    let err = LogDir::open(tmp.path()).err().ok_or("expected an error")?;
    assert!(matches!(err, Error::NotALogDir { .. }), "{err:?}");
    assert!(tmp.path().join("precious.txt").exists());

    let path = tmp.path().join("data");
    let dir = LogDir::open(&path)?;
    assert!(matches!(LogDir::open(&path), Err(Error::Locked { .. })));
    for name in ["", ".", "..", "../x", "a/b", "bad name", &"x".repeat(250)] {
        let err = dir.create_topic(name, TopicConfig::default()).err().ok_or("expected an error")?;
        assert!(matches!(err, Error::InvalidTopicName { .. }), "{name:?}: {err:?}");
    }
    assert!(matches!(dir.topic("missing"), Err(Error::TopicNotFound { .. })));
    dir.create_topic("t", TopicConfig::default().partitions(2))?;
    assert!(matches!(dir.create_topic("t", TopicConfig::default()), Err(Error::TopicExists { .. })));
    let t = dir.topic("t")?;
    assert!(matches!(t.partition(2), Err(Error::PartitionNotFound { partition: 2, count: 2, .. })));
    let big = vec![0u8; 2 << 20];
    assert!(matches!(t.append(Record::with_value(big.as_slice())), Err(Error::RecordTooLarge { .. })));
    assert!(matches!(dir.create_topic("z", TopicConfig::default().partitions(0)), Err(Error::InvalidConfig { .. })));
    // Compacted topics need keys.
    let c = dir.create_topic("compacted", TopicConfig::default().set("cleanup.policy", "compact")?)?;
    assert!(matches!(c.append(Record::with_value("no key")), Err(Error::KeyRequired { index: 0 })));
    // Every error has a sentence to show.
    assert!(!Error::TopicNotFound { name: "x".into() }.to_string().is_empty());
    Ok(())
}

#[test]
fn handles_are_send_sync_and_shared_across_threads() -> R {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<LogDir>();
    assert_send_sync::<partlog::Topic>();
    assert_send_sync::<partlog::Partition>();
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("mt", TopicConfig::default().partitions(3))?;
    let handles: Vec<_> = (0..4)
        .map(|th| {
            let t = t.clone();
            std::thread::spawn(move || -> partlog::Result<()> {
                for i in 0..250 {
                    t.append(Record::new().key(format!("t{th}-{}", i % 7)).value(format!("{th}:{i}")))?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "thread panicked")??;
    }
    let total: u64 = t.partitions().iter().map(|p| p.log_end_offset()).sum();
    assert_eq!(total, 1000);
    for p in t.partitions() {
        let offsets: Vec<u64> = p.iter(0).map(|r| r.map(|r| r.offset)).collect::<Result<_, _>>()?;
        assert_eq!(offsets, (0..p.log_end_offset()).collect::<Vec<_>>());
    }
    Ok(())
}

/// Runs `op` with a crash after every possible number of file-system operations and checks
/// that, after recovery, the topic is either entirely in its old state or entirely in the new
/// one.
fn sweep(
    setup: impl Fn(&LogDir) -> partlog::Result<()>,
    op: impl Fn(&LogDir) -> partlog::Result<()>,
    check: impl Fn(&LogDir, bool) -> Result<(), String>,
) -> R {
    // Count the operations of a clean run.
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    setup(&dir)?;
    let before = fs.mutating_ops();
    op(&dir)?;
    let total = fs.mutating_ops() - before;
    drop(dir);
    for k in 0..=total {
        for mode in [CrashMode::LoseUnsynced, CrashMode::TornPrefix { seed: k }, CrashMode::Garbage { seed: k }] {
            let fs = SimFs::new();
            let dir = sim_dir(&fs)?;
            setup(&dir)?;
            fs.crash_after(k);
            let done = op(&dir).is_ok();
            fs.crash(mode);
            drop(dir);
            let dir = sim_dir(&fs).map_err(|e| format!("reopen after crash at op {k} ({mode:?}): {e}"))?;
            check(&dir, done).map_err(|e| format!("crash at op {k} of {total} ({mode:?}): {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn topic_creation_is_atomic_under_crashes() -> R {
    sweep(
        |_| Ok(()),
        |d| d.create_topic("new", TopicConfig::default().partitions(3)).map(|_| ()),
        |d, done| {
            let names = d.topics().map_err(|e| e.to_string())?;
            if names.is_empty() {
                return if done { Err("acknowledged creation was lost".into()) } else { Ok(()) };
            }
            if names != ["new"] {
                return Err(format!("unexpected topics {names:?}"));
            }
            let t = d.topic("new").map_err(|e| e.to_string())?;
            if t.partition_count() != 3 {
                return Err(format!("{} partitions", t.partition_count()));
            }
            t.append(Record::with_value("ok")).map_err(|e| e.to_string())?;
            Ok(())
        },
    )
}

#[test]
fn topic_deletion_is_atomic_under_crashes() -> R {
    sweep(
        |d| {
            let t = d.create_topic(
                "old",
                TopicConfig::default().partitions(2).durability(partlog::Durability::EveryAppend),
            )?;
            for i in 0..5 {
                t.append(Record::new().key(format!("k{i}")).value("v"))?;
            }
            Ok(())
        },
        |d| d.delete_topic("old"),
        |d, done| {
            let names = d.topics().map_err(|e| e.to_string())?;
            match (names.as_slice(), done) {
                ([], _) => Ok(()),
                ([n], false) if n == "old" => {
                    let t = d.topic("old").map_err(|e| e.to_string())?;
                    let total: u64 = t.partitions().iter().map(|p| p.log_end_offset()).sum();
                    if total == 5 { Ok(()) } else { Err(format!("half-deleted topic with {total} records")) }
                }
                (other, _) => Err(format!("unexpected topics {other:?} (deletion acknowledged: {done})")),
            }
        },
    )
}

#[test]
fn config_change_is_atomic_under_crashes() -> R {
    sweep(
        |d| d.create_topic("c", TopicConfig::default()).map(|_| ()),
        |d| d.alter_topic_config("c", &[("retention.ms", "1234")]).map(|_| ()),
        |d, done| {
            let c = d.topic("c").map_err(|e| e.to_string())?.config();
            match c.get_retention_ms() {
                Some(1234) => Ok(()),
                Some(v) if v == partlog::DEFAULT_RETENTION_MS && !done => Ok(()),
                other => Err(format!("retention.ms = {other:?} (change acknowledged: {done})")),
            }
        },
    )
}

#[test]
fn reads_without_memory_maps_return_the_same_records() -> R {
    let tmp = tempfile::tempdir()?;
    let small = TopicConfig::default().segment_bytes(4096);
    let mut expected = Vec::new();
    {
        let dir = LogDir::open(tmp.path())?;
        let t = dir.create_topic("t", small)?;
        for i in 0..500 {
            let v = format!("value-{i}");
            t.append_to(0, Record::new().key("k").value(v.as_str()))?;
            expected.push(v.into_bytes());
        }
        dir.close()?;
    }
    for mmap in [false, true] {
        let dir = LogDir::options().mmap_reads(mmap).open(tmp.path())?;
        let p = dir.topic("t")?.partition(0)?;
        assert!(p.segments().len() > 5);
        let got: Vec<Vec<u8>> = p.iter(0).map(|r| r.map(|r| r.value.unwrap_or_default())).collect::<Result<_, _>>()?;
        assert_eq!(got, expected, "mmap_reads({mmap})");
        for o in [0u64, 137, 499] {
            let r = p.read(o, 1)?;
            assert_eq!(
                r.iter().next().map(|r| r.value().map(<[u8]>::to_vec)),
                Some(Some(expected[o as usize].clone()))
            );
        }
        dir.close()?;
    }
    Ok(())
}

#[test]
fn the_longest_valid_topic_name_can_be_created_and_deleted() -> R {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("data");
    let dir = LogDir::open(&path)?;
    let name = "t".repeat(partlog::MAX_TOPIC_NAME_LEN);
    let t = dir.create_topic(&name, TopicConfig::default().partitions(2))?;
    t.append(Record::new().key("k").value("v"))?;
    assert_eq!(dir.topics()?, vec![name.clone()]);
    dir.delete_topic(&name)?;
    assert!(dir.topics()?.is_empty());
    // Names of every length near the limit, with characters a suffix could collide with.
    for len in [230, 240, 248] {
        let name = format!("{}.x-{}", "a".repeat(len - 4), "b");
        assert_eq!(name.len(), len);
        dir.create_topic(&name, TopicConfig::default())?;
        dir.delete_topic(&name)?;
    }
    dir.close()?;
    Ok(())
}

#[test]
fn a_foreign_directory_is_refused_and_left_untouched() -> R {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("mine");
    std::fs::create_dir(&path)?;
    std::fs::write(path.join("notes.txt"), b"not a log")?;
    let before: Vec<_> = std::fs::read_dir(&path)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    let err = LogDir::open(&path).err().ok_or("a foreign directory was opened")?;
    assert!(matches!(err, Error::NotALogDir { .. }), "{err:?}");
    let after: Vec<_> = std::fs::read_dir(&path)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    assert_eq!(before, after, "opening a foreign directory wrote into it");
    // A file that is not a directory is refused as well, and not replaced.
    let file = tmp.path().join("plain");
    std::fs::write(&file, b"x")?;
    assert!(matches!(LogDir::open(&file), Err(Error::NotALogDir { .. })));
    assert_eq!(std::fs::read(&file)?, b"x");
    Ok(())
}
