//! Consumers: polling across partitions, waiting for appends, positions and seeks,
//! `auto.offset.reset`, commits, and the async stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use partlog::fs::sim::SimFs;
use partlog::{
    ConsumerConfig, Error, LogDir, ManualClock, OffsetAndMetadata, OffsetReset, Record, TopicConfig, TopicPartition,
};

type R = Result<(), Box<dyn std::error::Error>>;

const LONG: Duration = Duration::from_secs(60);

fn sim_dir(fs: &Arc<SimFs>) -> partlog::Result<LogDir> {
    LogDir::options().fs(fs.clone()).open("/d")
}

fn earliest() -> ConsumerConfig {
    ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest)
}

/// Appends `n` records to each partition of `t`, values `p:i`.
fn fill(t: &partlog::Topic, n: u64) -> partlog::Result<()> {
    for p in 0..t.partition_count() {
        for i in 0..n {
            t.append_to(p, Record::new().key(format!("k{i}")).value(format!("{p}:{i}")).timestamp(1_000 + i as i64))?;
        }
    }
    Ok(())
}

/// A record as a test sees it: topic, partition, offset, value.
type Got = (String, u32, u64, Vec<u8>);

/// Polls until `want` records came (or a poll returns nothing within `LONG`).
fn drain(c: &mut partlog::Consumer, want: usize) -> partlog::Result<Vec<Got>> {
    let mut out = Vec::new();
    while out.len() < want {
        let recs = c.poll(LONG)?;
        if recs.is_empty() && recs.events().is_empty() {
            break;
        }
        for r in recs.iter() {
            out.push((r.topic().to_owned(), r.partition(), r.offset(), r.value().unwrap_or_default().to_vec()));
        }
    }
    Ok(out)
}

#[test]
fn poll_returns_every_record_once_in_order_per_partition() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(3))?;
    fill(&t, 200)?;
    let mut c = dir.consumer(earliest().max_poll_records(37))?;
    c.assign(&(0..3).map(|p| TopicPartition::new("t", p)).collect::<Vec<_>>())?;
    let got = drain(&mut c, 600)?;
    assert_eq!(got.len(), 600);
    let mut per: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (topic, p, o, v) in &got {
        assert_eq!(topic, "t");
        assert_eq!(v, format!("{p}:{o}").as_bytes());
        per.entry(*p).or_default().push(*o);
    }
    for offsets in per.values() {
        assert_eq!(*offsets, (0..200).collect::<Vec<u64>>());
    }
    Ok(())
}

#[test]
fn max_poll_records_bounds_every_poll_and_partitions_take_turns() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(4))?;
    // Batches of 50 records: the limit falls inside batches.
    for p in 0..4 {
        let recs: Vec<Record<'_>> = (0..50).map(|i| Record::with_value(format!("{p}:{i}"))).collect();
        for _ in 0..10 {
            t.append_batch_to(p, &recs)?;
        }
    }
    let mut c = dir.consumer(earliest().max_poll_records(30))?;
    c.assign(&(0..4).map(|p| TopicPartition::new("t", p)).collect::<Vec<_>>())?;
    let mut firsts = Vec::new();
    let mut total = 0;
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    for _ in 0..8 {
        let recs = c.poll(LONG)?;
        assert!(recs.count() <= 30 && recs.count() == recs.iter().count(), "{}", recs.count());
        assert_eq!(recs.count(), 30);
        firsts.push(recs.iter().next().map(|r| r.partition()));
        for r in recs.iter() {
            let e = next.entry(r.partition()).or_insert(0);
            assert_eq!(r.offset(), *e, "partition {} skipped or repeated", r.partition());
            *e += 1;
        }
        total += recs.count();
    }
    assert_eq!(total, 240);
    // Every partition led a poll: none starves the others.
    for p in 0..4u32 {
        assert!(firsts.contains(&Some(p)), "partition {p} never came first: {firsts:?}");
    }
    Ok(())
}

#[test]
fn a_caught_up_consumer_is_woken_by_the_append() -> R {
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("d"))?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(2))?;
    let mut c = dir.consumer(earliest())?;
    c.assign(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)])?;
    assert!(c.poll(Duration::from_millis(1))?.is_empty());
    let writer = t.clone();
    let h = std::thread::spawn(move || -> partlog::Result<()> {
        for i in 0..20u32 {
            std::thread::sleep(Duration::from_millis(2));
            writer.append_to(i % 2, Record::with_value(format!("{i}")))?;
        }
        Ok(())
    });
    let got = drain(&mut c, 20)?;
    h.join().map_err(|_| "writer panicked")??;
    assert_eq!(got.len(), 20);
    Ok(())
}

#[test]
fn positions_seeks_and_lag() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("t", TopicConfig::default())?;
    fill(&t, 100)?;
    let tp = TopicPartition::new("t", 0);
    let mut c = dir.consumer(earliest())?;
    c.assign(std::slice::from_ref(&tp))?;
    assert_eq!((c.position(&tp)?, c.lag(&tp)?), (0, 100));
    c.seek(&tp, 40)?;
    let recs = c.poll(LONG)?;
    assert_eq!(recs.iter().next().map(|r| r.offset()), Some(40));
    assert_eq!(c.position(&tp)?, 100);
    assert_eq!(c.lag(&tp)?, 0);
    c.seek_to_beginning(&[])?;
    assert_eq!(c.position(&tp)?, 0);
    c.seek_to_end(std::slice::from_ref(&tp))?;
    assert_eq!(c.position(&tp)?, 100);
    // Timestamps are 1000 + offset.
    c.seek_to_timestamp(&[], 1_057)?;
    assert_eq!(c.position(&tp)?, 57);
    c.seek_to_timestamp(&[], 10_000)?;
    assert_eq!(c.position(&tp)?, 100, "no record that late: the log end");
    let other = TopicPartition::new("t", 9);
    assert!(matches!(c.seek(&other, 0), Err(Error::NotAssigned { .. })));
    Ok(())
}

#[test]
fn auto_offset_reset_decides_the_start_and_out_of_range_positions() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000_000);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/d")?;
    let t = dir.create_topic("t", TopicConfig::default().segment_bytes(1024).retention_ms(Some(60_000)))?;
    for i in 0..50 {
        t.append(Record::with_value(format!("{i}")).timestamp(1_000_000 + i))?;
    }
    let tp = TopicPartition::new("t", 0);
    let start = |reset| -> partlog::Result<u64> {
        let mut c = dir.consumer(ConsumerConfig::new().group_id("g").auto_offset_reset(reset))?;
        c.assign(std::slice::from_ref(&tp))?;
        c.position(&tp)
    };
    assert_eq!(start(OffsetReset::Earliest)?, 0);
    assert_eq!(start(OffsetReset::Latest)?, 50);
    assert!(matches!(start(OffsetReset::None), Err(Error::NoOffsetForPartition { partition: 0, .. })));
    // Retention moves the log start past a consumer's position.
    let mut c = dir.consumer(earliest().enable_auto_commit(false))?;
    c.assign(std::slice::from_ref(&tp))?;
    c.seek(&tp, 3)?;
    t.partition(0)?.roll()?;
    t.append(Record::with_value("new").timestamp(1_200_000))?;
    clock.advance(120_000);
    t.partition(0)?.run_retention()?;
    assert_eq!(t.partition(0)?.log_start_offset(), 50);
    let recs = c.poll(LONG)?;
    assert_eq!(recs.iter().next().map(|r| r.offset()), Some(50), "earliest: from the new log start");
    let mut strict = dir.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::None))?;
    strict.assign(std::slice::from_ref(&tp))?;
    strict.seek(&tp, 3)?;
    assert!(matches!(strict.poll(LONG), Err(Error::OffsetOutOfRange { requested: 3, start: 50, .. })));
    Ok(())
}

#[test]
fn commits_survive_a_reopen_and_resume_the_next_consumer() -> R {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("d");
    {
        let dir = LogDir::open(&path)?;
        let t = dir.create_topic("t", TopicConfig::default().partitions(2))?;
        fill(&t, 30)?;
        let mut c = dir.consumer(earliest().group_id("g").enable_auto_commit(false))?;
        c.subscribe(&["t"])?;
        let got = drain(&mut c, 60)?;
        assert_eq!(got.len(), 60);
        c.commit_offsets(&[
            (
                TopicPartition::new("t", 0),
                OffsetAndMetadata { offset: 10, metadata: "ten".into(), commit_timestamp: 0 },
            ),
            (TopicPartition::new("t", 1), OffsetAndMetadata::new(25)),
        ])?;
        c.close()?;
        dir.close()?;
    }
    let dir = LogDir::open(&path)?;
    // The internal topic is there, hidden from the application's list.
    assert_eq!(dir.topics()?, vec!["t".to_owned()]);
    assert!(dir.list_topics(true)?.contains(&partlog::OFFSETS_TOPIC.to_owned()));
    let mut c = dir.consumer(earliest().group_id("g"))?;
    c.subscribe(&["t"])?;
    let committed = c.committed(&TopicPartition::new("t", 0))?.ok_or("no commit")?;
    assert_eq!((committed.offset, committed.metadata.as_str()), (10, "ten"));
    assert!(committed.commit_timestamp > 0);
    let got = drain(&mut c, 25)?;
    let mut per: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (_, p, o, _) in got {
        per.entry(p).or_default().push(o);
    }
    assert_eq!(per[&0], (10..30).collect::<Vec<_>>());
    assert_eq!(per[&1], (25..30).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn auto_commit_commits_what_was_returned() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("t", TopicConfig::default())?;
    fill(&t, 10)?;
    let tp = TopicPartition::new("t", 0);
    {
        let mut c = dir.consumer(earliest().group_id("g").set("auto.commit.interval.ms", "1")?)?;
        c.subscribe(&["t"])?;
        let got = drain(&mut c, 10)?;
        assert_eq!(got.len(), 10);
        // Close commits what poll returned.
        c.close()?;
    }
    let c = dir.consumer(ConsumerConfig::new().group_id("g"))?;
    assert_eq!(c.committed(&tp)?.map(|o| o.offset), Some(10));
    Ok(())
}

#[test]
fn bad_consumer_input_gets_typed_errors() -> R {
    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    dir.create_topic("t", TopicConfig::default())?;
    let mut c = dir.consumer(ConsumerConfig::new())?;
    assert!(matches!(c.subscribe(&["t"]), Err(Error::InvalidConfig { .. })), "subscribe needs a group.id");
    assert!(matches!(c.commit(), Err(Error::InvalidConfig { .. })));
    let mut g = dir.consumer(ConsumerConfig::new().group_id("g"))?;
    assert!(matches!(g.subscribe(&["nope"]), Err(Error::TopicNotFound { .. })));
    assert!(matches!(g.assign(&[TopicPartition::new("t", 5)]), Err(Error::PartitionNotFound { .. })));
    assert!(matches!(dir.create_topic("__mine", TopicConfig::default()), Err(Error::InvalidTopicName { .. })));
    assert!(matches!(ConsumerConfig::new().set("auto.offset.reset", "soon"), Err(Error::InvalidConfig { .. })));
    assert!(matches!(ConsumerConfig::new().set("max.poll.records", "0"), Err(Error::InvalidConfig { .. })));
    assert!(matches!(ConsumerConfig::new().set("no.such.key", "1"), Err(Error::InvalidConfig { .. })));
    let long = OffsetAndMetadata { offset: 0, metadata: "m".repeat(5000), commit_timestamp: 0 };
    g.assign(&[TopicPartition::new("t", 0)])?;
    assert!(matches!(g.commit_offsets(&[(TopicPartition::new("t", 0), long)]), Err(Error::InvalidConfig { .. })));
    Ok(())
}

#[test]
fn the_stream_yields_records_on_a_plain_executor_and_on_tokio() -> R {
    use futures::StreamExt;
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("d"))?;
    let t = dir.create_topic("t", TopicConfig::default())?;
    let tp = TopicPartition::new("t", 0);

    // A plain executor: the task parks until the appends wake it.
    let mut c = dir.consumer(earliest())?;
    c.assign(std::slice::from_ref(&tp))?;
    let writer = t.clone();
    let h = std::thread::spawn(move || -> partlog::Result<()> {
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(2));
            writer.append(Record::with_value(format!("{i}")))?;
        }
        Ok(())
    });
    let got: Vec<_> = futures::executor::block_on(c.stream().take(10).collect::<Vec<_>>());
    h.join().map_err(|_| "writer panicked")??;
    let offsets: Vec<u64> = got.into_iter().map(|r| r.map(|r| r.record.offset)).collect::<Result<_, _>>()?;
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());

    // tokio, with the appends on a blocking task.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut c = dir.consumer(earliest())?;
    c.assign(std::slice::from_ref(&tp))?;
    c.seek(&tp, 10)?;
    let writer = t.clone();
    let offsets = rt.block_on(async move {
        let w = tokio::task::spawn_blocking(move || {
            for i in 10..20 {
                std::thread::sleep(Duration::from_millis(2));
                writer.append(Record::with_value(format!("{i}")))?;
            }
            Ok::<(), Error>(())
        });
        let got: Vec<_> = c.stream().take(10).collect().await;
        w.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        got.into_iter().map(|r| r.map(|r| r.record.offset).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()
    })?;
    assert_eq!(offsets, (10..20).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn a_caught_up_stream_yields_for_a_moment_then_parks_until_an_append_wakes_it() -> R {
    use futures::Stream;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let wakes = Arc::new(Count(AtomicUsize::new(0)));
    let woken = || wakes.0.load(Ordering::SeqCst);
    let waker = Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);

    let fs = SimFs::new();
    let dir = sim_dir(&fs)?;
    let t = dir.create_topic("t", TopicConfig::default())?;
    let mut c = dir.consumer(earliest())?;
    c.assign(&[TopicPartition::new("t", 0)])?;
    let mut s = c.stream();
    let mut next = |cx: &mut Context<'_>| Pin::new(&mut s).poll_next(cx).map(|o| o.map(|r| r.map(|r| r.record.offset)));

    // Caught up: pending, with the task woken at once so the executor polls again soon.
    assert!(next(&mut cx).is_pending());
    assert_eq!(woken(), 1, "a stream that just caught up yields instead of parking");
    // A record appended while it keeps looking is there on the next turn.
    t.append(Record::with_value("a"))?;
    assert!(matches!(next(&mut cx), Poll::Ready(Some(Ok(0)))));

    // Caught up again, and the moment passes: the task parks, with no wake-up of its own.
    assert!(next(&mut cx).is_pending());
    std::thread::sleep(Duration::from_millis(5));
    let parked = woken();
    assert!(next(&mut cx).is_pending());
    assert!(next(&mut cx).is_pending());
    assert_eq!(woken(), parked, "a parked stream does not wake itself");
    // The append wakes it, and the next turn has the record.
    t.append(Record::with_value("b"))?;
    assert_eq!(woken(), parked + 1, "the append woke the parked task");
    assert!(matches!(next(&mut cx), Poll::Ready(Some(Ok(1)))));
    Ok(())
}
