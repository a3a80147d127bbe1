//! The mirror against a real Kafka-protocol broker (`KAFKA_BOOTSTRAP_SERVERS`; each test
//! skips with a printed line without one): a round trip read back by a plain consumer, the
//! refusals, a record too large, an unreachable broker, and a mirror process killed with
//! SIGKILL over and over while a writer appends.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{KafkaRecord, Rng, TestResult, bootstrap, kafka_partition, partlog_offset, read_all, unique};
use partlog::{LogDir, Record, StoredRecord, TopicConfig};
use partlog_kafka::{Connect, Error, Mirror, MirrorOptions, mirror_group};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn options(bootstrap: &str, kafka_topic: &str) -> MirrorOptions {
    MirrorOptions::new(Connect::new(bootstrap)).kafka_topic(kafka_topic).resume_wait(Duration::from_millis(100))
}

/// Every record of every partition of a partlog topic.
fn partlog_records(dir: &LogDir, topic: &str) -> Result<Vec<Vec<StoredRecord>>, Box<dyn std::error::Error>> {
    let t = dir.topic(topic)?;
    let mut out = Vec::new();
    for p in t.partitions() {
        out.push(p.iter(p.log_start_offset()).collect::<Result<Vec<_>, _>>()?);
    }
    Ok(out)
}

/// Kafka holds exactly the partlog records, in order, each once, with the same bytes.
fn assert_mirrored(source: &[Vec<StoredRecord>], kafka: &[Vec<KafkaRecord>]) {
    assert_eq!(source.len(), kafka.len(), "partition counts");
    for (p, (src, dst)) in source.iter().zip(kafka).enumerate() {
        let offsets: Vec<Option<u64>> = dst.iter().map(partlog_offset).collect();
        let want: Vec<Option<u64>> = src.iter().map(|r| Some(r.offset)).collect();
        assert_eq!(offsets.len(), want.len(), "partition {p}: record count in Kafka");
        assert_eq!(offsets, want, "partition {p}: partlog offsets in Kafka order");
        for (s, d) in src.iter().zip(dst) {
            assert_eq!(d.key, s.key, "partition {p} offset {}: key", s.offset);
            assert_eq!(d.value, s.value, "partition {p} offset {}: value", s.offset);
            assert_eq!(d.timestamp, Some(s.timestamp), "partition {p} offset {}: timestamp", s.offset);
            let (last, rest) = d.headers.split_last().expect("the position header");
            assert_eq!(last.0, "partlog.offset");
            assert_eq!(rest, &s.headers[..], "partition {p} offset {}: headers", s.offset);
        }
    }
}

#[test]
fn round_trip_of_10000_records_read_back_by_a_plain_consumer() -> TestResult {
    let Some(bootstrap) = bootstrap("round_trip") else { return Ok(()) };
    let mut rng = Rng::from_env("round_trip");
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let topic = dir.create_topic("orders", TopicConfig::default().partitions(3))?;
    let kafka_topic = unique("mirror-round-trip");
    for i in 0..10_000u32 {
        let key = format!("customer-{}", rng.range(0, 2_000));
        let mut r = Record::new().key(key.clone()).timestamp(1_700_000_000_000 + i64::from(i));
        if i % 97 != 0 {
            let len = rng.range(0, 300) as usize;
            r = r.value(rng.bytes(len));
        }
        for h in 0..rng.range(0, 3) {
            r = r.header(format!("h{h}"), rng.bytes(h as usize * 3));
        }
        if i % 101 == 0 {
            r = r.null_header("nothing");
        }
        let at = topic.append(r)?;
        // partlog places keys as Kafka's partitioner does.
        assert_eq!(at.partition, kafka_partition(key.as_bytes(), 3), "key {key}");
    }

    let mut mirror = Mirror::from_dir(&dir, "orders", options(&bootstrap, &kafka_topic))?;
    assert_eq!(mirror.resumed_at(), &[0, 0, 0]);
    assert_eq!(mirror.catch_up()?, 10_000);
    assert_eq!(mirror.lag()?, 0);
    mirror.close()?;

    let source = partlog_records(&dir, "orders")?;
    assert!(source.iter().all(|p| !p.is_empty()), "every partition got records");
    let kafka = read_all(&bootstrap, &kafka_topic, 3)?;
    assert_mirrored(&source, &kafka);
    // Kafka's partitioner would have put each key where it is.
    for (p, recs) in kafka.iter().enumerate() {
        for r in recs {
            assert_eq!(kafka_partition(r.key.as_deref().unwrap_or_default(), 3), p as u32);
        }
    }

    // The position is recorded in partlog's committed offsets, with no lag.
    let group = dir.describe_group(&mirror_group(&kafka_topic))?;
    assert_eq!(group.partitions.len(), 3, "{group:?}");
    assert!(group.partitions.iter().all(|p| p.lag == 0), "{group:?}");

    // A restart after a clean stop waits nothing, copies nothing again, then copies new records.
    topic.append(Record::new().key("late").value("one more"))?;
    let mut again =
        Mirror::from_dir(&dir, "orders", options(&bootstrap, &kafka_topic).resume_wait(Duration::from_secs(600)))?;
    assert_eq!(again.waited(), Duration::ZERO);
    assert_eq!(again.catch_up()?, 1);
    again.close()?;
    assert_mirrored(&partlog_records(&dir, "orders")?, &read_all(&bootstrap, &kafka_topic, 3)?);
    dir.close()?;
    Ok(())
}

#[test]
fn murmur2_matches_kafkas_vectors() {
    // Kafka's UtilsTest.testMurmur2, checked against both implementations.
    let cases: &[(&[u8], i32)] = &[
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ];
    for &(key, want) in cases {
        assert_eq!(common::kafka_murmur2(key), want);
        assert_eq!(partlog::murmur2(key), want);
    }
    let mut rng = Rng::from_env("murmur2");
    for _ in 0..10_000 {
        let len = rng.range(0, 40) as usize;
        let key = rng.bytes(len);
        let n = rng.range(1, 64) as u32;
        assert_eq!(partlog::partition_for_key(&key, n), kafka_partition(&key, n), "{key:?} over {n}");
    }
}

#[test]
fn a_kafka_topic_with_another_partition_count_is_refused() -> TestResult {
    let Some(bootstrap) = bootstrap("partition_count") else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    dir.create_topic("events", TopicConfig::default().partitions(3))?.append(Record::with_value("x"))?;
    let kafka_topic = unique("mirror-count");
    common::create_kafka_topic(&bootstrap, &kafka_topic, 2, &[])?;
    let err = Mirror::from_dir(&dir, "events", options(&bootstrap, &kafka_topic)).expect_err("a mismatch");
    assert!(
        matches!(&err, Error::PartitionCountMismatch { kafka_partitions: 2, partlog_partitions: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("must match"), "{err}");
    // Nothing was written to it.
    assert!(read_all(&bootstrap, &kafka_topic, 2)?.iter().all(Vec::is_empty));
    Ok(())
}

#[test]
fn a_foreign_record_at_the_tail_stops_the_resume() -> TestResult {
    let Some(bootstrap) = bootstrap("foreign_writer") else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let t = dir.create_topic("events", TopicConfig::default().partitions(2))?;
    for i in 0..10 {
        t.append_to(i % 2, Record::new().key(format!("k{i}")).value("v"))?;
    }
    let kafka_topic = unique("mirror-foreign");
    let mut m = Mirror::from_dir(&dir, "events", options(&bootstrap, &kafka_topic))?;
    m.catch_up()?;
    drop(m);

    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;
    producer
        .send(BaseRecord::<str, str>::to(&kafka_topic).partition(1).key("intruder").payload("hello"))
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(10))?;
    let err = Mirror::from_dir(&dir, "events", options(&bootstrap, &kafka_topic)).expect_err("a foreign writer");
    assert!(matches!(&err, Error::ForeignWriter { partition: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("no position header"), "{err}");
    Ok(())
}

#[test]
fn a_record_larger_than_the_limit_stops_the_mirror_at_its_offset() -> TestResult {
    let Some(bootstrap) = bootstrap("too_large") else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let t = dir.create_topic("big", TopicConfig::default().partitions(1))?;
    for i in 0..5 {
        t.append(Record::new().key(format!("k{i}")).value(vec![b'a'; 100]))?;
    }
    t.append(Record::new().key("huge").value(vec![b'b'; 50_000]))?; // offset 5
    for i in 6..9 {
        t.append(Record::new().key(format!("k{i}")).value(vec![b'a'; 100]))?;
    }
    let kafka_topic = unique("mirror-too-large");
    let limit = 10_000;
    common::create_kafka_topic(&bootstrap, &kafka_topic, 1, &[("max.message.bytes", "10000")])?;
    for round in 0..2 {
        // Round 0 takes the limit from the topic's configuration, round 1 is told it.
        let opts = options(&bootstrap, &kafka_topic);
        let mut m = Mirror::from_dir(&dir, "big", if round == 0 { opts } else { opts.max_message_bytes(limit) })?;
        assert_eq!(m.max_message_bytes(), limit, "round {round}");
        let err = m.catch_up().expect_err("too large");
        assert!(
            matches!(&err, Error::RecordTooLarge { partition: 0, offset: 5, max: 10_000, size, .. } if *size > 50_000),
            "round {round}: {err:?}"
        );
        assert!(err.to_string().contains("offset 5"), "{err}");
        // It stays stopped: nothing after the record goes out through this run.
        let again = m.poll(Duration::from_millis(10)).expect_err("stopped");
        assert!(matches!(&again, Error::Stopped { reason } if reason.contains("offset 5")), "{again:?}");
        drop(m);
        // It stopped at the record: everything before it is in Kafka, nothing after it.
        let kafka = read_all(&bootstrap, &kafka_topic, 1)?;
        let offsets: Vec<Option<u64>> = kafka[0].iter().map(partlog_offset).collect();
        assert_eq!(offsets, (0..5).map(Some).collect::<Vec<_>>(), "round {round}");
    }
    Ok(())
}

#[test]
fn an_unreachable_broker_is_named_and_nothing_is_lost() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let t = dir.create_topic("events", TopicConfig::default().partitions(2))?;
    for i in 0..100 {
        t.append(Record::new().key(format!("k{i}")).value("v"))?;
    }
    let address = format!("127.0.0.1:{}", common::dead_port());
    let connect =
        Connect::new(&address).attempts(3).backoff(Duration::from_millis(20)).timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = Mirror::from_dir(&dir, "events", MirrorOptions::new(connect)).expect_err("no broker");
    assert!(matches!(&err, Error::Unreachable { attempts: 3, .. }), "{err:?}");
    assert!(err.to_string().contains(&address), "{err}");
    println!("gave up after {:?}", started.elapsed());

    // Once a broker is there, every record gets across.
    let Some(bootstrap) = bootstrap("unreachable (second half)") else { return Ok(()) };
    let kafka_topic = unique("mirror-unreachable");
    let mut m = Mirror::from_dir(&dir, "events", options(&bootstrap, &kafka_topic))?;
    assert_eq!(m.catch_up()?, 100);
    m.close()?;
    assert_mirrored(&partlog_records(&dir, "events")?, &read_all(&bootstrap, &kafka_topic, 2)?);
    Ok(())
}

const CHILD_DIR: &str = "PARTLOG_KAFKA_CHILD_DIR";
const CHILD_TOPIC: &str = "PARTLOG_KAFKA_CHILD_TOPIC";

/// Run by `killed_mirror_resumes_exactly_once` in a child process: a read-only mirror that
/// follows until it is killed.
#[test]
#[ignore = "a helper the kill test runs in a child process"]
fn child_mirror() -> TestResult {
    let (Ok(dir), Ok(kafka_topic), Ok(bootstrap)) =
        (std::env::var(CHILD_DIR), std::env::var(CHILD_TOPIC), std::env::var("KAFKA_BOOTSTRAP_SERVERS"))
    else {
        return Err("run by killed_mirror_resumes_exactly_once".into());
    };
    let source = LogDir::open_read_only(&dir)?.topic("events")?;
    let mut m = Mirror::from_read_only(source, options(&bootstrap, &kafka_topic))?;
    loop {
        m.poll(Duration::from_millis(100))?;
    }
}

#[test]
fn killed_mirror_resumes_exactly_once() -> TestResult {
    let Some(bootstrap) = bootstrap("kill_loop") else { return Ok(()) };
    let mut rng = Rng::from_env("kill_loop");
    let cycles: u32 = std::env::var("PARTLOG_KAFKA_KILL_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("data");
    let dir = LogDir::open(&path)?;
    let topic = dir.create_topic("events", TopicConfig::default().partitions(3).segment_bytes(64 << 10))?;
    let kafka_topic = unique("mirror-kill");

    // A writer appending all along, in small batches.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (topic, stop) = (topic.clone(), Arc::clone(&stop));
        let mut rng = rng.fork();
        std::thread::spawn(move || -> Result<u64, partlog::Error> {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Record<'_>> = (0..rng.range(1, 20))
                    .map(|_| {
                        n += 1;
                        Record::new()
                            .key(format!("k{}", n % 500))
                            .value(format!("value {n}"))
                            .header("n", n.to_be_bytes().to_vec())
                    })
                    .collect();
                topic.append_batch(&batch)?;
                std::thread::sleep(Duration::from_millis(rng.range(1, 5)));
            }
            Ok(n)
        })
    };

    let mut killed_while_copying = 0;
    for cycle in 0..cycles {
        let before: u64 = read_ends(&bootstrap, &kafka_topic);
        let path_str = path.to_string_lossy();
        let env = [
            (CHILD_DIR, &*path_str),
            (CHILD_TOPIC, kafka_topic.as_str()),
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
        ];
        let run = Duration::from_millis(rng.range(300, 2000));
        common::run_then_kill("child_mirror", &env, run, "mirror").map_err(|e| format!("cycle {cycle}: {e}"))?;
        if read_ends(&bootstrap, &kafka_topic) > before {
            killed_while_copying += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().map_err(|_| "writer panicked")??;

    // A last run copies the rest.
    let mut m = Mirror::from_dir(&dir, "events", options(&bootstrap, &kafka_topic))?;
    m.catch_up()?;
    m.close()?;
    let source = partlog_records(&dir, "events")?;
    assert_eq!(source.iter().map(Vec::len).sum::<usize>() as u64, written);
    assert_mirrored(&source, &read_all(&bootstrap, &kafka_topic, 3)?);
    println!("kill_loop: {cycles} cycles, {killed_while_copying} made progress before the kill, {written} records");
    assert!(
        killed_while_copying >= cycles / 4,
        "a good part of the cycles copied something: {killed_while_copying} of {cycles}"
    );
    dir.close()?;
    Ok(())
}

/// The sum of the high watermarks of the topic (0 when it does not exist yet).
fn read_ends(bootstrap: &str, topic: &str) -> u64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let Ok(c) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ends")
        .set("log_level", "0")
        .create::<BaseConsumer>()
    else {
        return 0;
    };
    (0..3).filter_map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)).ok()).map(|(_, h)| h.max(0) as u64).sum()
}

#[test]
fn records_deleted_before_they_were_mirrored_stop_the_resume() -> TestResult {
    let Some(bootstrap) = bootstrap("source_gap") else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let t = dir.create_topic("events", TopicConfig::default().partitions(1))?;
    for i in 0..10 {
        t.append(Record::new().key(format!("k{i}")).value("v"))?;
    }
    let kafka_topic = unique("mirror-gap");
    let mut m = Mirror::from_dir(&dir, "events", options(&bootstrap, &kafka_topic))?;
    assert_eq!(m.catch_up()?, 10);
    m.close()?;
    for i in 10..20 {
        t.append(Record::new().key(format!("k{i}")).value("v"))?;
    }
    // DeleteRecords below 15: offsets 10..15 were never mirrored.
    t.partition(0)?.advance_log_start(15)?;
    let err = Mirror::from_dir(&dir, "events", options(&bootstrap, &kafka_topic)).expect_err("a gap");
    assert!(matches!(&err, Error::SourceGap { partition: 0, from: 10, to: 15, .. }), "{err:?}");
    assert_eq!(read_all(&bootstrap, &kafka_topic, 1)?[0].len(), 10, "nothing more was produced");
    Ok(())
}

#[test]
fn a_broker_lost_mid_run_stops_the_mirror_naming_it_and_nothing_is_lost() -> TestResult {
    // Runs where the Kafka tests run (it needs the `tansu` binary for a broker of its own).
    if bootstrap("broker_lost").is_none() {
        return Ok(());
    }
    let Some(mut broker) = common::Broker::start(0)? else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "broker_lost: skipped: no `tansu` binary on the PATH");
        return Ok(());
    };
    let address = broker.address();
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let t = dir.create_topic("events", TopicConfig::default().partitions(2))?;
    for i in 0..100 {
        t.append(Record::new().key(format!("k{i}")).value("v"))?;
    }
    let kafka_topic = unique("mirror-lost");
    let short = |o: MirrorOptions| o.delivery_timeout(Duration::from_secs(3));
    let mut m = Mirror::from_dir(&dir, "events", short(options(&address, &kafka_topic)))?;
    assert_eq!(m.catch_up()?, 100);

    broker.stop()?;
    for i in 100..150 {
        t.append(Record::new().key(format!("k{i}")).value("v"))?;
    }
    let err = m.catch_up().expect_err("the broker is gone");
    assert!(matches!(&err, Error::Delivery { .. }), "{err:?}");
    assert!(err.to_string().contains(&address), "{err}");
    drop(m);

    // A broker again at the same address (its in-memory storage starts empty): the next run
    // takes its position from what Kafka holds, so every record gets there, each once.
    let _broker = common::Broker::start(broker.port)?.ok_or("tansu went away")?;
    let connect = Connect::new(&address).attempts(10);
    let mut m = Mirror::from_dir(
        &dir,
        "events",
        short(MirrorOptions::new(connect).kafka_topic(&kafka_topic).resume_wait(Duration::from_millis(100))),
    )?;
    m.catch_up()?;
    m.close()?;
    assert_mirrored(&partlog_records(&dir, "events")?, &read_all(&address, &kafka_topic, 2)?);
    Ok(())
}
