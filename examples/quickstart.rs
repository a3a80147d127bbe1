//! A first look at partlog: a log directory, a topic with three partitions, keyed appends,
//! reads by offset and by timestamp, and a reopen that proves the data is still there.
//!
//! `cargo run --release --example quickstart [DIR]` (default: a fresh directory under the
//! system temp dir, removed at the end).

use std::collections::BTreeMap;
use std::time::Instant;

use partlog::{LogDir, Record, TopicConfig};

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
    let base_ts = 1_700_000_000_000i64;
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

    let ends: Vec<u64> = orders.partitions().iter().map(|p| p.log_end_offset()).collect();
    println!("6. close, reopen, and check every record is still there");
    dir.close()?;
    drop((orders, dir));
    let dir = LogDir::open(&path)?;
    let orders = dir.topic(topic)?;
    for (p, end) in ends.iter().enumerate() {
        let part = orders.partition(p as u32)?;
        let mut n = 0u64;
        for r in part.iter(part.log_start_offset()) {
            let r = r?;
            let key = String::from_utf8(r.key.clone().unwrap_or_default())?;
            assert_eq!(home.get(&key), Some(&(p as u32)));
            n += 1;
        }
        assert_eq!(part.log_end_offset(), *end);
        println!("   partition {p}: {n} records readable, log end offset {end}");
    }
    dir.close()?;
    drop((orders, dir));
    if temporary {
        std::fs::remove_dir_all(&path)?;
    }
    println!("done");
    Ok(())
}
