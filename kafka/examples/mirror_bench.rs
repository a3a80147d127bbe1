//! Mirror throughput against the same Kafka client producing the same records from memory,
//! in one run with the two alternating, and the latency from a partlog append to the record
//! being readable from Kafka while the mirror follows.
//!
//! ```sh
//! KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --release -p partlog-kafka --example mirror_bench
//! KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --release -p partlog-kafka --example mirror_bench -- 500000 5
//! ```
//! Arguments: records per round (default 200000), rounds (default 3).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use partlog::{LogDir, Record, TopicConfig};
use partlog_kafka::{Connect, Mirror, MirrorOptions, PARTLOG_OFFSET_HEADER, encode_offset};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

const PARTITIONS: u32 = 3;
const VALUE_BYTES: usize = 100;

fn main() -> R {
    let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") else {
        eprintln!("mirror_bench: set KAFKA_BOOTSTRAP_SERVERS to a broker's address (.ci/kafka shows how to start one)");
        std::process::exit(2);
    };
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200_000);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let run = std::process::id();

    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let topic = dir.create_topic("bench", TopicConfig::default().partitions(PARTITIONS))?;
    let value = [b'v'; VALUE_BYTES];
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push(
            Record::new().key(format!("key-{}", i % 10_000)).value(&value[..]).timestamp(1_700_000_000_000 + i as i64),
        );
        if batch.len() == 1000 {
            topic.append_batch(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        topic.append_batch(&batch)?;
    }
    // The same records in memory, as the baseline produces them.
    let mut memory = Vec::with_capacity(n as usize);
    for p in topic.partitions() {
        for r in p.iter(0) {
            let r = r?;
            memory.push((p.id(), r));
        }
    }
    println!("{n} records of {VALUE_BYTES} bytes over {PARTITIONS} partitions, {rounds} rounds, alternating");

    let mut base_rates = Vec::new();
    let mut mirror_rates = Vec::new();
    for round in 0..rounds {
        // Baseline: the mirror's producer settings, records from memory.
        let kt = format!("bench-base-{run}-{round}");
        let connect = Connect::new(&bootstrap);
        // Create the topic outside the timing (the mirror creates its own outside it too).
        let _ = Mirror::from_dir(&dir, "bench", options(&bootstrap, &kt))?;
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", connect.bootstrap())
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("enable.gapless.guarantee", "true")
            .set("max.in.flight.requests.per.connection", "5")
            .set("compression.type", "none")
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .create()?;
        let t = Instant::now();
        for (p, r) in &memory {
            let off = encode_offset(r.offset);
            let mut headers = OwnedHeaders::new_with_capacity(1);
            headers = headers.insert(Header { key: PARTLOG_OFFSET_HEADER, value: Some(&off[..]) });
            let mut rec = BaseRecord::<[u8], [u8]>::to(&kt)
                .partition(*p as i32)
                .timestamp(r.timestamp)
                .headers(headers)
                .key(r.key.as_deref().unwrap_or_default())
                .payload(r.value.as_deref().unwrap_or_default());
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        rec = back;
                        producer.poll(Duration::from_millis(5));
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(120))?;
        let base = n as f64 / t.elapsed().as_secs_f64();

        // The mirror: from the partlog directory to an empty topic.
        let kt = format!("bench-mirror-{run}-{round}");
        let mut m = Mirror::from_dir(&dir, "bench", options(&bootstrap, &kt))?;
        let t = Instant::now();
        let copied = m.catch_up()?;
        let mirror = copied as f64 / t.elapsed().as_secs_f64();
        m.close()?;
        assert_eq!(copied, n);
        println!(
            "round {round}: producer from memory {:.0} rec/s, mirror {:.0} rec/s ({:.2}×)",
            base,
            mirror,
            mirror / base
        );
        base_rates.push(base);
        mirror_rates.push(mirror);
    }
    let ratios: Vec<f64> = mirror_rates.iter().zip(&base_rates).map(|(m, b)| m / b).collect();
    println!(
        "throughput: producer from memory {:.0} rec/s, mirror {:.0} rec/s (medians); mirror / producer {:.2}× (median of per-round ratios)",
        median(&base_rates),
        median(&mirror_rates),
        median(&ratios)
    );

    latency(&bootstrap, &dir, run)?;
    dir.close()?;
    Ok(())
}

fn options(bootstrap: &str, kafka_topic: &str) -> MirrorOptions {
    MirrorOptions::new(Connect::new(bootstrap)).kafka_topic(kafka_topic).resume_wait(Duration::from_millis(100))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Appends one record every 2 ms while the mirror follows; a plain consumer reads them from
/// Kafka, and each record's value says when it was appended.
fn latency(bootstrap: &str, dir: &LogDir, run: u32) -> R {
    const COUNT: usize = 2_000;
    let topic = dir.create_topic("latency", TopicConfig::default().partitions(PARTITIONS))?;
    let kt = format!("bench-latency-{run}");
    let mut m = Mirror::from_dir(dir, "latency", options(bootstrap, &kt))?;
    let origin = Instant::now();

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-latency-{run}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("log_level", "0")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        tpl.add_partition_offset(&kt, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let warm = Arc::new(AtomicBool::new(false));
    let reader = {
        let warm = Arc::clone(&warm);
        std::thread::spawn(move || -> Vec<u64> {
            let mut lat = Vec::with_capacity(COUNT);
            let deadline = Instant::now() + Duration::from_secs(120);
            while lat.len() < COUNT && Instant::now() < deadline {
                if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(100)) {
                    let now = origin.elapsed().as_micros() as u64;
                    match msg.payload().and_then(|p| p.try_into().ok()).map(u64::from_be_bytes) {
                        Some(u64::MAX) => warm.store(true, Ordering::Release),
                        Some(sent) => lat.push(now.saturating_sub(sent)),
                        None => {}
                    }
                }
            }
            lat
        })
    };
    // Warm up: the timed records start once a first record went all the way through, so
    // connecting the clients is not counted.
    for p in 0..PARTITIONS {
        topic.append_to(p, Record::new().key("warm-up").value(u64::MAX.to_be_bytes().to_vec()))?;
    }
    let end = Instant::now() + Duration::from_secs(30);
    while !warm.load(Ordering::Acquire) && Instant::now() < end {
        m.poll(Duration::from_millis(10))?;
    }
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || -> Result<(), partlog::Error> {
            for i in 0..COUNT {
                let sent = origin.elapsed().as_micros() as u64;
                topic.append(Record::new().key(format!("k{i}")).value(sent.to_be_bytes().to_vec()))?;
                std::thread::sleep(Duration::from_millis(2));
            }
            done.store(true, Ordering::Release);
            Ok(())
        })
    };
    let end = Instant::now() + Duration::from_secs(60);
    while !done.load(Ordering::Acquire) && Instant::now() < end {
        m.poll(Duration::from_millis(10))?;
    }
    m.catch_up()?;
    writer.join().map_err(|_| "writer panicked")??;
    let mut lat = reader.join().map_err(|_| "reader panicked")?;
    if lat.len() < COUNT {
        return Err(format!("only {} of {COUNT} records were read back", lat.len()).into());
    }
    m.close()?;
    lat.sort_unstable();
    let pick = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "latency append -> readable from Kafka while following ({} records, one every 2 ms, linger.ms=5): median {:.2} ms, p99 {:.2} ms",
        lat.len(),
        pick(0.5),
        pick(0.99)
    );
    Ok(())
}
