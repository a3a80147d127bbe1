//! partlog: one `Partition`, `Durability::Os` unless a workload says otherwise.

use std::path::Path;
use std::time::{Duration, Instant};

use partlog::{Durability, Partition, Record, TopicConfig};

use super::{Reads, Sys, tail_loop, timed_threads};
use crate::cli::{Cfg, OrDie, die};
use crate::fixture::{BATCH, POOL, READ_BYTES, Seen, Values, tempdir};

pub fn batched(path: &Path, v: &Values, n: usize, config: TopicConfig) -> Duration {
    let p = Partition::open_with(path, config).or_die("partlog open");
    let mut recs: Vec<Record<'_>> = Vec::with_capacity(BATCH);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        recs.clear();
        recs.extend((i..i + k).map(|j| Record::with_value(&v[j % POOL][..])));
        p.append_batch(&recs).or_die("partlog append_batch");
        i += k;
    }
    let d = t.elapsed();
    p.close().or_die("partlog close");
    d
}

pub fn single(path: &Path, v: &Values, n: usize) -> Duration {
    let p = Partition::open_with(path, TopicConfig::default()).or_die("partlog open");
    let t = Instant::now();
    for i in 0..n {
        p.append(Record::with_value(&v[i % POOL][..])).or_die("partlog append");
    }
    let d = t.elapsed();
    p.close().or_die("partlog close");
    d
}

pub fn read_all(path: &Path, probe: &mut dyn FnMut()) -> (Duration, Seen) {
    let mut seen = Seen::default();
    let p = Partition::open(path).or_die("partlog open");
    probe();
    let t = Instant::now();
    {
        // Scoped: a live `Reader` holds a clone of the partition (and so its files).
        let mut reader = p.reader(0).chunk_bytes(READ_BYTES);
        while let Some(chunk) = reader.next_records().or_die("partlog read") {
            for r in chunk.iter() {
                seen.add(r.value().unwrap_or_default());
            }
            probe();
        }
    }
    let d = t.elapsed();
    p.close().or_die("partlog close");
    (d, seen)
}

pub fn random_reads(path: &Path, r: &Reads<'_>, probe: &mut dyn FnMut()) -> super::Lat {
    let p = Partition::open(path).or_die("partlog open");
    probe();
    let lat = r.run(probe, |o| {
        let recs = p.read(o, 1).or_die("partlog read");
        let rec = recs.iter().next().unwrap_or_else(|| die("partlog: empty read"));
        if rec.offset() != o {
            die(format!("partlog: asked {o}, got {}", rec.offset()));
        }
        rec.value().map_or(0, |b| b[0])
    });
    p.close().or_die("partlog close");
    lat
}

pub fn tail(path: &Path, v: &Values, n: usize) -> Duration {
    let p = Partition::open_with(path, TopicConfig::default()).or_die("partlog open");
    let mut recs: Vec<Record<'_>> = Vec::with_capacity(BATCH);
    let d = tail_loop(Sys::Partlog, v, n, |i, k| {
        recs.clear();
        recs.extend((i..i + k).map(|j| Record::with_value(&v[j % POOL][..])));
        let at = p.append_batch(&recs).or_die("partlog append_batch");
        let got = p.read(at.base_offset, READ_BYTES).or_die("partlog read");
        let mut seen = Seen::default();
        for r in got.iter() {
            seen.add(r.value().unwrap_or_default());
        }
        seen
    });
    p.close().or_die("partlog close");
    d
}

pub fn fsync(path: &Path, threads: usize, dur: Duration, v: &Values) -> (usize, Duration) {
    let config = TopicConfig::default().durability(Durability::EveryAppend);
    let p = Partition::open_with(path, config).or_die("partlog open");
    let r = timed_threads(threads, dur, &|i| {
        p.append(Record::with_value(&v[i % POOL][..])).or_die("partlog append");
    });
    p.close().or_die("partlog close");
    r
}

/// Time to open the log and learn its end offset.
pub fn open_end(path: &Path, config: TopicConfig) -> (Duration, u64) {
    let t = Instant::now();
    let p = Partition::open_with(path, config).or_die("partlog open");
    let end = p.log_end_offset();
    let d = t.elapsed();
    p.close().or_die("partlog close");
    (d, end)
}

pub fn crash_write(path: &Path, v: &Values, n: usize) -> ! {
    let p = Partition::open(path).or_die("partlog open");
    let mut recs: Vec<Record<'_>> = Vec::with_capacity(BATCH);
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        recs.clear();
        recs.extend((i..i + k).map(|j| Record::with_value(&v[j % POOL][..])));
        p.append_batch(&recs).or_die("partlog append_batch");
        i += k;
    }
    // Exit while `p` is alive: no close, no destructor, like a crash after the last
    // acknowledged append.
    std::process::exit(0)
}

/// Size in bytes of one partlog batch of `records` values (measured, not computed).
pub fn batch_bytes(cfg: &Cfg, v: &Values, records: usize) -> u64 {
    let probe = tempdir(cfg, "probe");
    let p = Partition::open(probe.path().join("p")).or_die("partlog open");
    let recs: Vec<Record<'_>> = (0..records).map(|j| Record::with_value(&v[j % POOL][..])).collect();
    p.append_batch(&recs).or_die("partlog append");
    let size = p.segments().first().map_or(0, |s| s.size);
    p.close().or_die("partlog close");
    size
}
