//! SQLite (rusqlite, bundled): one table keyed by `INTEGER PRIMARY KEY` offset (the rowid, so
//! the table's b-tree is the log), WAL mode. `synchronous=NORMAL` where the others leave
//! write-back to the OS (a commit survives a crash of the process; SQLite still fsyncs at WAL
//! checkpoints), `synchronous=FULL` where every append must be fsynced (the WAL is fsynced at
//! every commit). Batches are one transaction each; single appends are one statement each
//! (autocommit). Reads are `WHERE offset >= ? ORDER BY offset LIMIT n` on a prepared statement.
//! Everything else (page size, cache size, no mmap) is SQLite's default.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Statement, params};

use super::{Reads, Sys, tail_loop, timed_threads};
use crate::cli::{OrDie, die};
use crate::fixture::{BATCH, POOL, READ_ROWS, Seen, Values};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS log (\"offset\" INTEGER PRIMARY KEY, value BLOB NOT NULL)";
const INSERT: &str = "INSERT INTO log (\"offset\", value) VALUES (?1, ?2)";
const SELECT: &str = "SELECT \"offset\", value FROM log WHERE \"offset\" >= ?1 ORDER BY \"offset\" LIMIT ?2";

/// Opens (creating) the database in WAL mode with `synchronous` = `NORMAL` or `FULL`.
fn open(path: &Path, synchronous: &str) -> Connection {
    let c = Connection::open(path).or_die("sqlite open");
    let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).or_die("sqlite journal_mode");
    if !mode.eq_ignore_ascii_case("wal") {
        die(format!("sqlite: journal_mode is {mode}, not wal"));
    }
    c.pragma_update(None, "synchronous", synchronous).or_die("sqlite synchronous");
    c.execute_batch(CREATE).or_die("sqlite create table");
    c
}

/// Appends records `from..to` as one transaction.
fn insert_batch(
    begin: &mut Statement<'_>,
    ins: &mut Statement<'_>,
    commit: &mut Statement<'_>,
    v: &Values,
    from: usize,
    to: usize,
) {
    begin.execute([]).or_die("sqlite begin");
    for j in from..to {
        ins.execute(params![j as i64, &v[j % POOL][..]]).or_die("sqlite insert");
    }
    commit.execute([]).or_die("sqlite commit");
}

/// Reads up to `rows` rows from `from`, adding them to `seen`; returns the last offset read.
fn select(sel: &mut Statement<'_>, from: u64, rows: usize, seen: &mut Seen) -> Option<u64> {
    let mut rs = sel.query(params![from as i64, rows as i64]).or_die("sqlite select");
    let mut last = None;
    while let Some(row) = rs.next().or_die("sqlite step") {
        let off: i64 = row.get(0).or_die("sqlite offset");
        let value = row.get_ref(1).or_die("sqlite value").as_blob().or_die("sqlite blob");
        seen.add(value);
        last = Some(off as u64);
    }
    last
}

fn batched_into(c: &Connection, v: &Values, n: usize) -> Duration {
    let mut begin = c.prepare("BEGIN").or_die("sqlite prepare");
    let mut commit = c.prepare("COMMIT").or_die("sqlite prepare");
    let mut ins = c.prepare(INSERT).or_die("sqlite prepare");
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        insert_batch(&mut begin, &mut ins, &mut commit, v, i, i + k);
        i += k;
    }
    t.elapsed()
}

pub fn batched(path: &Path, v: &Values, n: usize) -> Duration {
    let c = open(path, "NORMAL");
    let d = batched_into(&c, v, n);
    c.close().map_err(|(_, e)| e).or_die("sqlite close");
    d
}

pub fn single(path: &Path, v: &Values, n: usize) -> Duration {
    let c = open(path, "NORMAL");
    let d = {
        let mut ins = c.prepare(INSERT).or_die("sqlite prepare");
        let t = Instant::now();
        for i in 0..n {
            ins.execute(params![i as i64, &v[i % POOL][..]]).or_die("sqlite insert");
        }
        t.elapsed()
    };
    c.close().map_err(|(_, e)| e).or_die("sqlite close");
    d
}

pub fn read_all(path: &Path, probe: &mut dyn FnMut()) -> (Duration, Seen) {
    let mut seen = Seen::default();
    let c = open(path, "NORMAL");
    let d = {
        let mut sel = c.prepare(SELECT).or_die("sqlite prepare");
        probe();
        let t = Instant::now();
        let mut next = 0u64;
        while let Some(last) = select(&mut sel, next, READ_ROWS, &mut seen) {
            next = last + 1;
            probe();
        }
        t.elapsed()
    };
    drop(c);
    (d, seen)
}

pub fn random_reads(path: &Path, r: &Reads<'_>, probe: &mut dyn FnMut()) -> super::Lat {
    let c = open(path, "NORMAL");
    let mut sel = c.prepare(SELECT).or_die("sqlite prepare");
    probe();
    r.run(probe, |o| {
        let mut rs = sel.query(params![o as i64, 1i64]).or_die("sqlite select");
        let row = rs.next().or_die("sqlite step").unwrap_or_else(|| die("sqlite: empty read"));
        let off: i64 = row.get(0).or_die("sqlite offset");
        if off as u64 != o {
            die(format!("sqlite: asked {o}, got {off}"));
        }
        row.get_ref(1).or_die("sqlite value").as_blob().or_die("sqlite blob")[0]
    })
}

pub fn tail(path: &Path, v: &Values, n: usize) -> Duration {
    let c = open(path, "NORMAL");
    let d = {
        let mut begin = c.prepare("BEGIN").or_die("sqlite prepare");
        let mut commit = c.prepare("COMMIT").or_die("sqlite prepare");
        let mut ins = c.prepare(INSERT).or_die("sqlite prepare");
        let mut sel = c.prepare(SELECT).or_die("sqlite prepare");
        tail_loop(Sys::Sqlite, v, n, |i, k| {
            insert_batch(&mut begin, &mut ins, &mut commit, v, i, i + k);
            let mut seen = Seen::default();
            select(&mut sel, i as u64, READ_ROWS, &mut seen);
            seen
        })
    };
    c.close().map_err(|(_, e)| e).or_die("sqlite close");
    d
}

pub fn fsync(path: &Path, threads: usize, dur: Duration, v: &Values) -> (usize, Duration) {
    // One connection behind a mutex (SQLite has one writer at a time anyway); the next offset
    // is kept under the same lock. Each insert is its own transaction, and under
    // synchronous=FULL its commit fsyncs the WAL.
    let c = open(path, "FULL");
    let state = Mutex::new((c, 0i64));
    let r = timed_threads(threads, dur, &|i| {
        let mut g = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let off = g.1;
        g.0.prepare_cached(INSERT)
            .or_die("sqlite prepare")
            .execute(params![off, &v[i % POOL][..]])
            .or_die("sqlite insert");
        g.1 += 1;
    });
    let (c, _) = state.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    c.close().map_err(|(_, e)| e).or_die("sqlite close");
    r
}

/// Time to open the database and learn its end offset (`max(offset) + 1`; the first statement
/// reads the schema and, after a crash, recovers the WAL).
pub fn open_end(path: &Path) -> (Duration, u64) {
    let t = Instant::now();
    let c = Connection::open(path).or_die("sqlite open");
    let max: Option<i64> = c.query_row("SELECT max(\"offset\") FROM log", [], |r| r.get(0)).or_die("sqlite select max");
    let d = t.elapsed();
    drop(c);
    (d, max.map_or(0, |m| m as u64 + 1))
}

pub fn crash_write(path: &Path, v: &Values, n: usize) -> ! {
    let c = open(path, "NORMAL");
    batched_into(&c, v, n);
    // Exit with the connection open: the WAL is neither checkpointed nor deleted.
    std::process::exit(0)
}
