//! commitlog 0.2: one `CommitLog` with default `LogOptions` unless a workload says otherwise.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};

use super::{Reads, Sys, tail_loop, timed_threads};
use crate::cli::{OrDie, die};
use crate::fixture::{BATCH, POOL, READ_BYTES, Seen, VALUE, Values};

/// commitlog's per-message header (offset u64, size u32, crc u32, reserved u16, meta size u16).
pub const HEADER: usize = 20;

pub fn opts(dir: &Path) -> LogOptions {
    LogOptions::new(dir)
}

fn fill(buf: &mut MessageBuf, v: &Values, from: usize, to: usize) {
    buf.clear();
    for j in from..to {
        buf.push(&v[j % POOL][..]).or_die("commitlog push");
    }
}

pub fn batched(opts: LogOptions, v: &Values, n: usize) -> Duration {
    let mut log = CommitLog::new(opts).or_die("commitlog open");
    let mut buf = MessageBuf::default();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        fill(&mut buf, v, i, i + k);
        log.append(&mut buf).or_die("commitlog append");
        i += k;
    }
    let d = t.elapsed();
    drop(log);
    d
}

pub fn single(path: &Path, v: &Values, n: usize) -> Duration {
    // append_msg writes straight to the segment's std::fs::File (one write(2)) and stores the
    // index entry into a shared mmap: nothing stays in a user-space buffer, so no flush() is
    // needed for the bytes to survive a process crash.
    let mut log = CommitLog::new(opts(path)).or_die("commitlog open");
    let t = Instant::now();
    for i in 0..n {
        log.append_msg(&v[i % POOL][..]).or_die("commitlog append_msg");
    }
    t.elapsed()
}

pub fn read_all(path: &Path, probe: &mut dyn FnMut()) -> (Duration, Seen) {
    let mut seen = Seen::default();
    let log = CommitLog::new(opts(path)).or_die("commitlog open");
    probe();
    let t = Instant::now();
    let mut next = 0u64;
    loop {
        let buf = log.read(next, ReadLimit::max_bytes(READ_BYTES)).or_die("commitlog read");
        if buf.is_empty() {
            break;
        }
        for m in buf.iter() {
            seen.add(m.payload());
            next = m.offset() + 1;
        }
        probe();
    }
    (t.elapsed(), seen)
}

/// Bytes asked for in a one-message read: one message is `HEADER + VALUE` bytes; a little
/// slack keeps the last message of a segment readable.
pub const ONE_MESSAGE: usize = HEADER + VALUE + 8;

pub fn random_reads(path: &Path, r: &Reads<'_>, probe: &mut dyn FnMut()) -> super::Lat {
    let log = CommitLog::new(opts(path)).or_die("commitlog open");
    probe();
    r.run(probe, |o| {
        let buf = log.read(o, ReadLimit::max_bytes(ONE_MESSAGE)).or_die("commitlog read");
        let m = buf.iter().next().unwrap_or_else(|| die("commitlog: empty read"));
        if m.offset() != o {
            die(format!("commitlog: asked {o}, got {}", m.offset()));
        }
        m.payload()[0]
    })
}

pub fn tail(path: &Path, v: &Values, n: usize) -> Duration {
    let mut log = CommitLog::new(opts(path)).or_die("commitlog open");
    let mut buf = MessageBuf::default();
    tail_loop(Sys::Commitlog, v, n, |i, k| {
        fill(&mut buf, v, i, i + k);
        let at = log.append(&mut buf).or_die("commitlog append");
        let got = log.read(at.first(), ReadLimit::max_bytes(READ_BYTES)).or_die("commitlog read");
        let mut seen = Seen::default();
        for m in got.iter() {
            seen.add(m.payload());
        }
        seen
    })
}

pub fn fsync(path: &Path, threads: usize, dur: Duration, v: &Values) -> (usize, Duration) {
    // commitlog's flush() does not fsync the segment: Segment::flush_sync calls
    // std::fs::File::flush, a no-op; only the index mmap is msync'ed. So after flush() we
    // fdatasync the active segment file ourselves (all appends here stay in segment 0), under
    // the same lock, which is what a flush that fsyncs would do.
    let log = CommitLog::new(opts(path)).or_die("commitlog open");
    let seg = File::open(path.join(format!("{:020}.log", 0))).or_die("open commitlog segment");
    let log = Mutex::new(log);
    timed_threads(threads, dur, &|i| {
        let mut g = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.append_msg(&v[i % POOL][..]).or_die("commitlog append_msg");
        g.flush().or_die("commitlog flush");
        seg.sync_data().or_die("commitlog segment fdatasync");
    })
}

/// Time to open the log and learn its end offset.
pub fn open_end(opts: LogOptions) -> (Duration, u64) {
    let t = Instant::now();
    let log = CommitLog::new(opts).or_die("commitlog open");
    let end = log.next_offset();
    let d = t.elapsed();
    drop(log);
    (d, end)
}

pub fn crash_write(path: &Path, v: &Values, n: usize) -> ! {
    let mut log = CommitLog::new(LogOptions::new(path)).or_die("commitlog open");
    let mut buf = MessageBuf::default();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        fill(&mut buf, v, i, i + k);
        log.append(&mut buf).or_die("commitlog append");
        i += k;
    }
    std::process::exit(0)
}
