//! fjall 3 (an LSM-tree key-value store): one database with one keyspace `log`, offsets as
//! big-endian u64 keys (so key order is offset order), values as they are. Default options
//! (LZ4 block compression, 32 MiB block cache, background flush and compaction threads).
//! Page-cache durability is fjall's default (`PersistMode::Buffer`: each write or batch is
//! flushed to the OS); fsync per append is a one-record batch with
//! `durability(Some(PersistMode::SyncData))`.
//!
//! fjall flushes memtables and compacts tables on its own threads. After every timed append
//! run the harness waits (untimed) until that work is done before it closes the database, so it
//! does not overlap the next system's run; [`DRAINS`] keeps how long each wait took, for the
//! report.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Reads, Sys, tail_loop, timed_threads};
use crate::cli::{OrDie, die};
use crate::fixture::{BATCH, POOL, READ_ROWS, Seen, Values};

/// How long fjall's background work took to settle after each timed append run, in ms.
pub static DRAINS: Mutex<Vec<f64>> = Mutex::new(Vec::new());

/// Takes the drain times recorded since the last call.
pub fn take_drains() -> Vec<f64> {
    std::mem::take(&mut *DRAINS.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

fn open(path: &Path) -> (Database, Keyspace) {
    let db = Database::builder(path).open().or_die("fjall open");
    let ks = db.keyspace("log", KeyspaceCreateOptions::default).or_die("fjall keyspace");
    (db, ks)
}

fn key(o: u64) -> [u8; 8] {
    o.to_be_bytes()
}

fn offset_of(k: &[u8]) -> u64 {
    u64::from_be_bytes(k.try_into().unwrap_or_else(|_| die("fjall: a key is not 8 bytes")))
}

/// Waits until no flush or compaction is queued or running (seen twice in a row), records the
/// wait in [`DRAINS`], then closes the database.
fn settle_and_close(db: Database, ks: Keyspace) {
    let t = Instant::now();
    let mut quiet = 0;
    while quiet < 2 && t.elapsed() < Duration::from_secs(300) {
        if db.outstanding_flushes() == 0 && db.active_compactions() == 0 {
            quiet += 1;
        } else {
            quiet = 0;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    DRAINS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(t.elapsed().as_secs_f64() * 1e3);
    drop(ks);
    drop(db);
}

fn insert_batch(db: &Database, ks: &Keyspace, v: &Values, from: usize, to: usize) {
    let mut b = db.batch();
    for j in from..to {
        b.insert(ks, key(j as u64), &v[j % POOL][..]);
    }
    b.commit().or_die("fjall batch commit");
}

/// Reads up to `rows` entries from `from`, adding them to `seen`; returns the last offset read.
fn scan(ks: &Keyspace, from: u64, rows: usize, seen: &mut Seen) -> Option<u64> {
    let mut last = None;
    for kv in ks.range(key(from)..).take(rows) {
        let (k, value) = kv.into_inner().or_die("fjall read");
        seen.add(&value);
        last = Some(offset_of(&k));
    }
    last
}

/// Appends `n` records in batches. With `flush`, also flushes the memtable into a table before
/// closing (read fixtures: the reads then go to fjall's files, not to a memtable rebuilt from
/// the journal at open).
pub fn batched(path: &Path, v: &Values, n: usize, flush: bool) -> Duration {
    let (db, ks) = open(path);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        insert_batch(&db, &ks, v, i, i + k);
        i += k;
    }
    let d = t.elapsed();
    if flush {
        ks.rotate_memtable_and_wait().or_die("fjall flush");
    }
    settle_and_close(db, ks);
    d
}

pub fn single(path: &Path, v: &Values, n: usize) -> Duration {
    let (db, ks) = open(path);
    let t = Instant::now();
    for i in 0..n {
        ks.insert(key(i as u64), &v[i % POOL][..]).or_die("fjall insert");
    }
    let d = t.elapsed();
    settle_and_close(db, ks);
    d
}

pub fn read_all(path: &Path, probe: &mut dyn FnMut()) -> (Duration, Seen) {
    let mut seen = Seen::default();
    let (db, ks) = open(path);
    probe();
    let t = Instant::now();
    let mut next = 0u64;
    while let Some(last) = scan(&ks, next, READ_ROWS, &mut seen) {
        next = last + 1;
        probe();
    }
    let d = t.elapsed();
    drop(ks);
    drop(db);
    (d, seen)
}

pub fn random_reads(path: &Path, r: &Reads<'_>, probe: &mut dyn FnMut()) -> super::Lat {
    let (db, ks) = open(path);
    probe();
    let lat = r.run(probe, |o| {
        let value = ks.get(key(o)).or_die("fjall get").unwrap_or_else(|| die(format!("fjall: no key {o}")));
        value[0]
    });
    drop(ks);
    drop(db);
    lat
}

pub fn tail(path: &Path, v: &Values, n: usize) -> Duration {
    let (db, ks) = open(path);
    let d = tail_loop(Sys::Fjall, v, n, |i, k| {
        insert_batch(&db, &ks, v, i, i + k);
        let mut seen = Seen::default();
        scan(&ks, i as u64, READ_ROWS, &mut seen);
        seen
    });
    settle_and_close(db, ks);
    d
}

pub fn fsync(path: &Path, threads: usize, dur: Duration, v: &Values) -> (usize, Duration) {
    // Offsets come from an atomic counter without a lock: fjall's best case (a lock around
    // "take an offset, write, fsync" would serialize the fsyncs; without it a reader could see
    // offset n + 1 before n).
    let (db, ks) = open(path);
    let next = AtomicU64::new(0);
    let r = timed_threads(threads, dur, &|i| {
        let o = next.fetch_add(1, Ordering::Relaxed);
        let mut b = db.batch().durability(Some(PersistMode::SyncData));
        b.insert(&ks, key(o), &v[i % POOL][..]);
        b.commit().or_die("fjall batch commit");
    });
    settle_and_close(db, ks);
    r
}

/// Time to open the database and learn its end offset (last key + 1). Opening replays the
/// journal into the memtable.
pub fn open_end(path: &Path) -> (Duration, u64) {
    let t = Instant::now();
    let (db, ks) = open(path);
    let end = ks.last_key_value().map_or(0, |g| offset_of(&g.key().or_die("fjall key")) + 1);
    let d = t.elapsed();
    drop(ks);
    drop(db);
    (d, end)
}

pub fn crash_write(path: &Path, v: &Values, n: usize) -> ! {
    let (db, ks) = open(path);
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        insert_batch(&db, &ks, v, i, i + k);
        i += k;
    }
    std::process::exit(0)
}
