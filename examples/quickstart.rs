//! A first look at partlog: a log directory, a topic with three partitions, keyed appends,
//! reads by offset and by timestamp, a consumer group splitting the partitions and committing,
//! a consumer following the topic, a compacted topic, retention by the maintenance driver, and
//! a reopen that proves the data and the committed offsets are still there.
//!
//! `cargo run --release --example quickstart [DIR]` (default: a fresh directory under the
//! system temp dir, removed at the end).

use std::collections::BTreeMap;
use std::time::Instant;

use std::time::Duration;

use partlog::{CleanupPolicy, ConsumerConfig, LogDir, OffsetReset, Record, TopicConfig, TopicPartition};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (path, temporary) = match std::env::args_os().nth(1) {
        Some(d) => (std::path::PathBuf::from(d), false),
        None => (std::env::temp_dir().join(format!("partlog-quickstart-{}", std::process::id())), true),
    };
    println!("1. open the log directory {}", path.display());
    let dir = LogDir::open(&path)?;

    let topic = "orders";
    let orders = match dir.topic(topic) {
        Ok(t) => t,
        Err(partlog::Error::TopicNotFound { .. }) => {
            println!("2. create topic `{topic}` with 3 partitions (Kafka defaults otherwise)");
            dir.create_topic(topic, TopicConfig::default().partitions(3))?
        }
        Err(e) => return Err(e.into()),
    };

    let customers = 12;
    let per_customer = 5_000;
    // Record times an hour ago (retention.ms, 7 days by default, counts from them).
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let base_ts = now_ms - 3_600_000;
    println!("3. append {} keyed records: {customers} customers x {per_customer} orders", customers * per_customer);
    let t0 = Instant::now();
    let mut home: BTreeMap<String, u32> = BTreeMap::new();
    let mut first_of: BTreeMap<u32, u64> = BTreeMap::new();
    for i in 0..customers * per_customer {
        let customer = format!("customer-{}", i % customers);
        let value = format!("{{\"order\":{i},\"total\":{}}}", (i * 37) % 1000);
        let at =
            orders.append(Record::new().key(customer.as_str()).value(value.as_str()).timestamp(base_ts + i as i64))?;
        // A key always lands in the same partition: Kafka's murmur2 partitioner.
        let p = *home.entry(customer.clone()).or_insert(at.partition);
        assert_eq!(p, at.partition, "{customer} moved partitions");
        first_of.entry(at.partition).or_insert(at.offset);
    }
    let elapsed = t0.elapsed();
    println!(
        "   done in {elapsed:?} ({:.0} records/s); every customer stayed in its partition:",
        (customers * per_customer) as f64 / elapsed.as_secs_f64()
    );
    for p in 0..orders.partition_count() {
        let keys: Vec<&str> = home.iter().filter(|(_, v)| **v == p).map(|(k, _)| k.as_str()).collect();
        println!("   partition {p}: {} records, keys {}", orders.partition(p)?.log_end_offset(), keys.join(", "));
    }

    let (p, start) = first_of.iter().next().map(|(p, o)| (*p, *o)).ok_or("no partition was written")?;
    println!("4. read partition {p} from offset {} (1 KiB budget)", start + 10);
    for r in orders.partition(p)?.read(start + 10, 1024)?.iter().take(3) {
        println!(
            "   offset {:>5}  ts {}  key {}  value {}",
            r.offset(),
            r.timestamp(),
            String::from_utf8_lossy(r.key().unwrap_or_default()),
            String::from_utf8_lossy(r.value().unwrap_or_default())
        );
    }

    let target = base_ts + (customers * per_customer / 2) as i64;
    println!("5. find the first record at or after timestamp {target} in each partition");
    for p in 0..orders.partition_count() {
        match orders.partition(p)?.offset_for_timestamp(target)? {
            Some(hit) => println!("   partition {p}: offset {} (timestamp {})", hit.offset, hit.timestamp),
            None => println!("   partition {p}: none"),
        }
    }

    println!("6. a consumer group of two members splits the partitions, consumes everything, commits");
    let group =
        ConsumerConfig::new().group_id("billing").auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false);
    let mut a = dir.consumer(group.clone().client_id("a"))?;
    let mut b = dir.consumer(group.client_id("b"))?;
    a.subscribe(&[topic])?;
    b.subscribe(&[topic])?;
    let total: u64 = orders.partitions().iter().map(|p| p.log_end_offset() - p.log_start_offset()).sum();
    let mut seen = [0u64; 2];
    let mut idle = 0;
    while seen.iter().sum::<u64>() < total && idle < 50 {
        idle += 1;
        for (i, c) in [&mut a, &mut b].into_iter().enumerate() {
            let recs = c.poll(Duration::from_millis(10))?;
            if !recs.is_empty() {
                idle = 0;
            }
            seen[i] += recs.count() as u64;
            c.commit()?; // after processing: at least once
        }
    }
    println!(
        "   member a owns {:?}, read {}; member b owns {:?}, read {} (of {total})",
        a.assignment().iter().map(|tp| tp.partition).collect::<Vec<_>>(),
        seen[0],
        b.assignment().iter().map(|tp| tp.partition).collect::<Vec<_>>(),
        seen[1]
    );
    a.close()?;
    b.close()?;

    println!("7. a consumer follows partition 0: woken by an append from another thread");
    let mut follower = dir.consumer(ConsumerConfig::new())?;
    let tp = TopicPartition::new(topic, 0);
    follower.assign(std::slice::from_ref(&tp))?;
    follower.seek_to_end(&[])?;
    let writer = orders.clone();
    let t0 = Instant::now();
    let appender = std::thread::spawn(move || writer.append_to(0, Record::new().key("late").value("order")));
    let got = loop {
        let recs = follower.poll(Duration::from_secs(10))?;
        if let Some(r) = recs.iter().next() {
            break r.offset();
        }
    };
    appender.join().map_err(|_| "appender panicked")??;
    println!("   got offset {got} {:?} after the append started", t0.elapsed());
    follower.close()?;

    println!("8. a compacted topic keeps the latest value per key");
    let profiles = match dir.topic("profiles") {
        Ok(t) => t,
        Err(partlog::Error::TopicNotFound { .. }) => {
            dir.create_topic("profiles", TopicConfig::default().cleanup_policy(CleanupPolicy::COMPACT))?
        }
        Err(e) => return Err(e.into()),
    };
    for i in 0..1_000 {
        profiles.append_to(0, Record::new().key(format!("user-{}", i % 10)).value(format!("version {i}")))?;
    }
    let p = profiles.partition(0)?;
    p.roll()?; // only sealed segments are compacted
    let r = p.compact()?;
    println!(
        "   compacted {} -> {} bytes, removed {} records; {} records left",
        r.bytes_before,
        r.bytes_after,
        r.records_removed,
        p.iter(0).count()
    );

    println!("9. retention: the maintenance driver deletes what is past retention.bytes");
    let events = match dir.topic("events") {
        Ok(t) => t,
        Err(partlog::Error::TopicNotFound { .. }) => {
            dir.create_topic("events", TopicConfig::default().segment_bytes(64 << 10).retention_bytes(Some(256 << 10)))?
        }
        Err(e) => return Err(e.into()),
    };
    let payload = vec![b'x'; 1000];
    for _ in 0..1_000 {
        events.append(Record::with_value(payload.as_slice()))?;
    }
    let report = dir.maintenance().run_once();
    let deleted: u32 = report.retention.iter().map(|(_, r)| r.segments_deleted).sum();
    let ev = events.partition(0)?;
    println!(
        "   deleted {deleted} segments; the log now holds offsets {}..{}; next run in {:?}",
        ev.log_start_offset(),
        ev.log_end_offset(),
        report.next_run_in
    );

    let ends: Vec<u64> = orders.partitions().iter().map(|p| p.log_end_offset()).collect();
    println!("10. close, reopen, and check every record and committed offset is still there");
    dir.close()?;
    drop((orders, profiles, p, events, ev, dir));
    let dir = LogDir::open(&path)?;
    let orders = dir.topic(topic)?;
    for (p, end) in ends.iter().enumerate() {
        let part = orders.partition(p as u32)?;
        let mut n = 0u64;
        for r in part.iter(part.log_start_offset()) {
            let r = r?;
            let key = String::from_utf8(r.key.clone().unwrap_or_default())?;
            if key != "late" {
                assert_eq!(home.get(&key), Some(&(p as u32)));
            }
            n += 1;
        }
        assert_eq!(part.log_end_offset(), *end);
        let committed = dir
            .consumer(ConsumerConfig::new().group_id("billing"))?
            .committed(&TopicPartition::new(topic, p as u32))?;
        println!(
            "   partition {p}: {n} records readable, log end offset {end}, billing committed {:?}",
            committed.map(|c| c.offset)
        );
    }
    dir.close()?;
    drop((orders, dir));
    if temporary {
        std::fs::remove_dir_all(&path)?;
    }
    println!("done");
    Ok(())
}
