//! A first look at partlog: append, read by offset and by timestamp, reopen.
//!
//! `cargo run --release --example quickstart [DIR]` (default: a fresh directory under the
//! system temp dir).

use std::time::Instant;

use partlog::{Durability, Partition, Record, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args_os().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("partlog-quickstart-{}", std::process::id())),
    };
    println!("log directory: {}", dir.display());
    let path = dir.join("orders-0");
    let config = TopicConfig::default().segment_bytes(1 << 20).durability(Durability::Os);

    let log = Partition::open_with(&path, config.clone())?;
    let start = log.next_offset();
    let t0 = Instant::now();
    let base_ts = 1_700_000_000_000i64;
    for i in 0..10_000i64 {
        let key = format!("customer-{}", i % 100);
        let value = format!("{{\"order\":{i},\"total\":{}}}", i * 3 % 1000);
        log.append(Record::new().key(key.as_str()).value(value.as_str()).timestamp(base_ts + i))?;
    }
    println!("appended 10000 records in {:?} (offsets {start}..{})", t0.elapsed(), log.next_offset());
    println!("segments: {}", log.segments().len());

    let recs = log.read(start + 42, 256)?;
    for r in recs.iter().take(3) {
        println!(
            "offset {} key {} value {}",
            r.offset(),
            String::from_utf8_lossy(r.key().unwrap_or_default()),
            String::from_utf8_lossy(r.value().unwrap_or_default())
        );
    }
    let hit = log.offset_for_timestamp(base_ts + 5_000)?.ok_or("no record at that time")?;
    println!("first record at or after t+5000ms: offset {} (timestamp {})", hit.offset, hit.timestamp);
    assert_eq!(hit.offset, start + 5_000);

    log.sync()?;
    log.close()?;
    drop(log);

    let reopened = Partition::open_with(&path, config)?;
    let count = reopened.iter(start).count();
    println!("reopened: log end offset {}, {} records readable from {start}", reopened.next_offset(), count);
    assert_eq!(count, 10_000);
    reopened.close()?;
    Ok(())
}
