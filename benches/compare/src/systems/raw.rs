//! The raw baseline: one `std::fs::File` of fixed-size 100-byte records, no framing, no index,
//! no checksum. A floor, not a competitor.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Reads, Sys, tail_loop, timed_threads};
use crate::cli::OrDie;
use crate::fixture::{BATCH, POOL, READ_BYTES, Seen, VALUE, Values};

fn fill(buf: &mut Vec<u8>, v: &Values, from: usize, to: usize) {
    buf.clear();
    for j in from..to {
        buf.extend_from_slice(&v[j % POOL]);
    }
}

pub fn batched(path: &Path, v: &Values, n: usize) -> Duration {
    let mut f = File::create(path).or_die("raw create");
    let mut buf = Vec::with_capacity(BATCH * VALUE);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        fill(&mut buf, v, i, i + k);
        f.write_all(&buf).or_die("raw write");
        i += k;
    }
    t.elapsed()
}

pub fn single(path: &Path, v: &Values, n: usize) -> Duration {
    let mut f = File::create(path).or_die("raw create");
    let t = Instant::now();
    for i in 0..n {
        f.write_all(&v[i % POOL]).or_die("raw write");
    }
    t.elapsed()
}

pub fn read_all(path: &Path, probe: &mut dyn FnMut()) -> (Duration, Seen) {
    let mut seen = Seen::default();
    let mut f = File::open(path).or_die("raw open");
    probe();
    let t = Instant::now();
    let mut buf = vec![0u8; READ_BYTES];
    let mut have = 0;
    loop {
        let got = f.read(&mut buf[have..]).or_die("raw read");
        if got == 0 {
            break;
        }
        let total = have + got;
        let whole = total / VALUE * VALUE;
        for rec in buf[..whole].chunks_exact(VALUE) {
            seen.add(rec);
        }
        buf.copy_within(whole..total, 0);
        have = total - whole;
        probe();
    }
    (t.elapsed(), seen)
}

pub fn random_reads(path: &Path, r: &Reads<'_>, probe: &mut dyn FnMut()) -> super::Lat {
    let f = File::open(path).or_die("raw open");
    probe();
    let mut buf = [0u8; VALUE];
    r.run(probe, |o| {
        f.read_exact_at(&mut buf, o * VALUE as u64).or_die("raw pread");
        buf[0]
    })
}

pub fn tail(path: &Path, v: &Values, n: usize) -> Duration {
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).or_die("raw create");
    let mut buf = Vec::with_capacity(BATCH * VALUE);
    let mut back = vec![0u8; BATCH * VALUE];
    tail_loop(Sys::Raw, v, n, |i, k| {
        fill(&mut buf, v, i, i + k);
        f.write_all(&buf).or_die("raw write");
        let got = &mut back[..k * VALUE];
        f.read_exact_at(got, (i * VALUE) as u64).or_die("raw pread");
        let mut seen = Seen::default();
        for rec in got.chunks_exact(VALUE) {
            seen.add(rec);
        }
        seen
    })
}

pub fn fsync(path: &Path, threads: usize, dur: Duration, v: &Values) -> (usize, Duration) {
    let f = Mutex::new(File::create(path).or_die("raw create"));
    timed_threads(threads, dur, &|i| {
        let mut g = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.write_all(&v[i % POOL]).or_die("raw write");
        g.sync_data().or_die("raw fdatasync");
    })
}

/// Time to open the file and learn its end offset (its length over 100).
pub fn open_end(path: &Path) -> (Duration, u64) {
    let t = Instant::now();
    let f = File::open(path).or_die("raw open");
    let end = f.metadata().or_die("raw metadata").len() / VALUE as u64;
    (t.elapsed(), end)
}

pub fn crash_write(path: &Path, v: &Values, n: usize) -> ! {
    let mut f = File::create(path).or_die("raw create");
    let mut buf = Vec::with_capacity(BATCH * VALUE);
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        fill(&mut buf, v, i, i + k);
        f.write_all(&buf).or_die("raw write");
        i += k;
    }
    std::process::exit(0)
}
