//! Criterion benchmarks of one [`Partition`] on the real file system.
//!
//! Run with `cargo bench --bench partition` (add `-- --quick` for a short run, or a filter such
//! as `-- read/` for one group). Every log lives in a fresh temporary directory under the
//! system temp dir (`/tmp`), deleted afterwards. Measurement times are kept short (10 samples,
//! a few seconds each) so the whole suite fits on a small shared machine.
//!
//! | bench | what one element is |
//! |---|---|
//! | `append/batch_100x100B` | one record, appended in `append_batch` calls of 100 × 100-byte values |
//! | `append/single_100B` | one `append` call of one 100-byte value |
//! | `append/fsync_every_append_1_thread` | one `append` under `Durability::EveryAppend` (an fdatasync each) |
//! | `read/sequential` | one record of a ~1M-record log, scanned with `reader(0).next_records()` |
//! | `read/random_offset` | one `read(offset, 1)` at a random offset of the same log |
//! | `reopen/clean_1000_segments` | one `Partition::open_with` of a cleanly closed log with ~1,000 segments |
//!
//! The fixture sizes can be changed with `PARTLOG_BENCH_RECORDS` (records in the read fixture,
//! default 1,000,000) and `PARTLOG_BENCH_SEGMENTS` (segments in the reopen fixture, default
//! 1,000).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use partlog::{Durability, Partition, Record, TopicConfig};
use tempfile::TempDir;

/// Bytes in each record value.
const VALUE_BYTES: usize = 100;
/// Records per `append_batch` call.
const BATCH: usize = 100;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn tempdir() -> TempDir {
    tempfile::Builder::new().prefix("partlog-bench-").tempdir().expect("create a temporary directory")
}

/// 256 distinct 100-byte values; record `i` gets `values[i % 256]`.
fn values() -> Vec<Vec<u8>> {
    (0..256u32).map(|i| (0..VALUE_BYTES as u32).map(|j| (i * 31 + j) as u8).collect()).collect()
}

fn batch<'a>(values: &'a [Vec<u8>], start: usize) -> Vec<Record<'a>> {
    (0..BATCH).map(|j| Record::with_value(&values[(start + j) % values.len()])).collect()
}

/// Appends `records` records in batches of [`BATCH`] and closes the log.
fn fill(dir: &Path, config: TopicConfig, records: usize) {
    let values = values();
    let p = Partition::open_with(dir, config).expect("open");
    let mut i = 0;
    while i < records {
        let n = BATCH.min(records - i);
        let recs = batch(&values, i);
        p.append_batch(&recs[..n]).expect("append");
        i += n;
    }
    p.close().expect("close");
}

/// A small xorshift generator: reproducible offsets without another dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn append(c: &mut Criterion) {
    let values = values();
    let mut g = c.benchmark_group("append");

    // Each sample appends to a fresh log; only the appends are timed.
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("batch_100x100B", |b| {
        let recs = batch(&values, 0);
        b.iter_custom(|iters| {
            let dir = tempdir();
            let p = Partition::open_with(dir.path().join("p"), TopicConfig::default()).expect("open");
            let start = Instant::now();
            for _ in 0..iters {
                black_box(p.append_batch(&recs).expect("append"));
            }
            let elapsed = start.elapsed();
            drop(p);
            elapsed
        });
    });

    g.throughput(Throughput::Elements(1));
    g.bench_function("single_100B", |b| {
        b.iter_custom(|iters| {
            let dir = tempdir();
            let p = Partition::open_with(dir.path().join("p"), TopicConfig::default()).expect("open");
            let start = Instant::now();
            for i in 0..iters as usize {
                black_box(p.append(Record::with_value(&values[i % values.len()])).expect("append"));
            }
            let elapsed = start.elapsed();
            drop(p);
            elapsed
        });
    });

    g.bench_function("fsync_every_append_1_thread", |b| {
        b.iter_custom(|iters| {
            let dir = tempdir();
            let config = TopicConfig::default().durability(Durability::EveryAppend);
            let p = Partition::open_with(dir.path().join("p"), config).expect("open");
            let start = Instant::now();
            for i in 0..iters as usize {
                black_box(p.append(Record::with_value(&values[i % values.len()])).expect("append"));
            }
            let elapsed = start.elapsed();
            drop(p);
            elapsed
        });
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    let records = env_usize("PARTLOG_BENCH_RECORDS", 1_000_000).max(1);
    let dir = tempdir();
    let path = dir.path().join("p");
    fill(&path, TopicConfig::default(), records);
    let p = Partition::open(&path).expect("reopen");
    assert_eq!(p.log_end_offset(), records as u64);

    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(records as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("sequential", |b| {
        b.iter(|| {
            let mut reader = p.reader(0);
            let (mut n, mut bytes) = (0u64, 0usize);
            while let Some(chunk) = reader.next_records().expect("read") {
                for r in chunk.iter() {
                    n += 1;
                    bytes += r.value().map_or(0, <[u8]>::len);
                }
            }
            assert_eq!(n, records as u64);
            black_box(bytes)
        });
    });

    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("random_offset", |b| {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        b.iter(|| {
            let o = rng.below(records as u64);
            let recs = p.read(o, 1).expect("read");
            let first = recs.iter().next().expect("a record");
            assert_eq!(first.offset(), o);
            black_box(first.value().map_or(0, <[u8]>::len))
        });
    });
    g.finish();
    p.close().expect("close");
}

fn reopen(c: &mut Criterion) {
    let segments = env_usize("PARTLOG_BENCH_SEGMENTS", 1_000).max(1);
    let values = values();
    // Size segments to hold exactly one batch of 100 records, so the log has `segments` of them.
    let probe = tempdir();
    let batch_bytes = {
        let p = Partition::open(probe.path().join("p")).expect("open");
        p.append_batch(&batch(&values, 0)).expect("append");
        let size = p.segments()[0].size;
        p.close().expect("close");
        u32::try_from(size).expect("small batch")
    };
    let dir = tempdir();
    let path = dir.path().join("p");
    let config = TopicConfig::default().segment_bytes(batch_bytes);
    fill(&path, config.clone(), segments * BATCH);
    let count = {
        let p = Partition::open_with(&path, config.clone()).expect("reopen");
        let count = p.segments().len();
        p.close().expect("close");
        count
    };
    assert!(count + 1 >= segments, "expected about {segments} segments, got {count}");

    let mut g = c.benchmark_group("reopen");
    g.bench_function(format!("clean_{segments}_segments"), |b| {
        // Only the open is timed; each partition is closed before the next open.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let p = Partition::open_with(&path, config.clone()).expect("open");
                total += start.elapsed();
                p.close().expect("close");
            }
            total
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = append, read, reopen
}
criterion_main!(benches);
