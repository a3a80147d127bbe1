//! The systems under test. Each module does every workload its own idiomatic way, with the same
//! bytes and the same guarantee; this module dispatches by [`Sys`] and holds what they share.
//!
//! Every function times only the append / read calls: opening, closing and (for fjall) waiting
//! for background work happen outside the timed part.

pub mod commitlog;
pub mod fjall;
pub mod partlog;
pub mod raw;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::die;
use crate::fixture::{POOL, Seen, Values};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sys {
    Partlog,
    Commitlog,
    Sqlite,
    Fjall,
    Raw,
}

/// Every system, in table order.
pub const SYSTEMS: [Sys; 5] = [Sys::Partlog, Sys::Commitlog, Sys::Sqlite, Sys::Fjall, Sys::Raw];
/// The systems partlog is compared with, in table order.
pub const PEERS: [Sys; 4] = [Sys::Commitlog, Sys::Sqlite, Sys::Fjall, Sys::Raw];

impl Sys {
    /// The name used on the command line and in progress messages.
    pub fn name(self) -> &'static str {
        match self {
            Sys::Partlog => "partlog",
            Sys::Commitlog => "commitlog",
            Sys::Sqlite => "sqlite",
            Sys::Fjall => "fjall",
            Sys::Raw => "raw",
        }
    }

    /// The name in table headers.
    pub fn label(self) -> &'static str {
        match self {
            Sys::Sqlite => "SQLite",
            other => other.name(),
        }
    }

    pub fn parse(s: &str) -> Option<Sys> {
        SYSTEMS.into_iter().find(|x| x.name() == s)
    }

    pub fn index(self) -> usize {
        SYSTEMS.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// Where this system keeps its log under a fixture root.
    pub fn path(self, root: &Path) -> PathBuf {
        root.join(match self {
            Sys::Partlog => "p",
            Sys::Commitlog => "c",
            Sys::Sqlite => "sqlite.db",
            Sys::Fjall => "fjall",
            Sys::Raw => "raw",
        })
    }
}

/// The order of round `r`: a rotation, so no system always runs first or right after another's
/// page-cache churn.
pub fn order(r: usize) -> [Sys; 5] {
    let mut o = SYSTEMS;
    o.rotate_left(r % SYSTEMS.len());
    o
}

pub fn order_label(o: &[Sys]) -> String {
    o.iter().map(|s| &s.name()[..1]).collect::<Vec<_>>().join("")
}

/// Appends `n` records in batches of 100 with page-cache durability.
pub fn write_batched(sys: Sys, root: &Path, v: &Values, n: usize) -> Duration {
    let path = sys.path(root);
    match sys {
        Sys::Partlog => partlog::batched(&path, v, n, ::partlog::TopicConfig::default()),
        Sys::Commitlog => commitlog::batched(commitlog::opts(&path), v, n),
        Sys::Sqlite => sqlite::batched(&path, v, n),
        Sys::Fjall => fjall::batched(&path, v, n, false),
        Sys::Raw => raw::batched(&path, v, n),
    }
}

/// Writes the fixture of a read workload: as [`write_batched`], and fjall also flushes its
/// memtable into a table so the reads go to its files, not to a memtable rebuilt at open.
pub fn write_read_fixture(sys: Sys, root: &Path, v: &Values, n: usize) -> Duration {
    match sys {
        Sys::Fjall => fjall::batched(&sys.path(root), v, n, true),
        other => write_batched(other, root, v, n),
    }
}

/// Appends `n` records, one per call, with page-cache durability.
pub fn write_single(sys: Sys, root: &Path, v: &Values, n: usize) -> Duration {
    let path = sys.path(root);
    match sys {
        Sys::Partlog => partlog::single(&path, v, n),
        Sys::Commitlog => commitlog::single(&path, v, n),
        Sys::Sqlite => sqlite::single(&path, v, n),
        Sys::Fjall => fjall::single(&path, v, n),
        Sys::Raw => raw::single(&path, v, n),
    }
}

/// Reads the whole log from offset 0 in ~1 MiB chunks. `probe` runs once after open and after
/// every chunk (the footprint children sample memory there; the timed runs pass a no-op).
pub fn read_all(sys: Sys, root: &Path, probe: &mut dyn FnMut()) -> (Duration, Seen) {
    let path = sys.path(root);
    match sys {
        Sys::Partlog => partlog::read_all(&path, probe),
        Sys::Commitlog => commitlog::read_all(&path, probe),
        Sys::Sqlite => sqlite::read_all(&path, probe),
        Sys::Fjall => fjall::read_all(&path, probe),
        Sys::Raw => raw::read_all(&path, probe),
    }
}

/// Per-read latencies in ns, sorted, of one-record reads at `offsets` (after `warmup`).
pub fn random_reads(
    sys: Sys,
    root: &Path,
    warmup: &[u64],
    offsets: &[u64],
    v: &Values,
    probe: &mut dyn FnMut(),
) -> Lat {
    let path = sys.path(root);
    let r = Reads { sys, warmup, offsets, v };
    match sys {
        Sys::Partlog => partlog::random_reads(&path, &r, probe),
        Sys::Commitlog => commitlog::random_reads(&path, &r, probe),
        Sys::Sqlite => sqlite::random_reads(&path, &r, probe),
        Sys::Fjall => fjall::random_reads(&path, &r, probe),
        Sys::Raw => raw::random_reads(&path, &r, probe),
    }
}

/// Appends a batch of 100 and reads it back at once, `n` records in all.
pub fn tail(sys: Sys, root: &Path, v: &Values, n: usize) -> Duration {
    let path = sys.path(root);
    match sys {
        Sys::Partlog => partlog::tail(&path, v, n),
        Sys::Commitlog => commitlog::tail(&path, v, n),
        Sys::Sqlite => sqlite::tail(&path, v, n),
        Sys::Fjall => fjall::tail(&path, v, n),
        Sys::Raw => raw::tail(&path, v, n),
    }
}

/// Appends with an fsync before each append returns, from `threads` threads, for `secs`.
/// Returns the records appended and the time taken.
pub fn fsync_run(sys: Sys, root: &Path, threads: usize, secs: f64, v: &Values) -> (usize, Duration) {
    let path = sys.path(root);
    let dur = Duration::from_secs_f64(secs);
    match sys {
        Sys::Partlog => partlog::fsync(&path, threads, dur, v),
        Sys::Commitlog => commitlog::fsync(&path, threads, dur, v),
        Sys::Sqlite => sqlite::fsync(&path, threads, dur, v),
        Sys::Fjall => fjall::fsync(&path, threads, dur, v),
        Sys::Raw => raw::fsync(&path, threads, dur, v),
    }
}

/// `--crash-writer SYS DIR N` in a child: append N records in batches with page-cache
/// durability, then exit without closing anything (no destructors run), as a crashed process
/// would.
pub fn crash_writer(args: &[String]) -> ! {
    let (Some(sys), Some(dir), Some(n)) =
        (args.first().and_then(|s| Sys::parse(s)), args.get(1), args.get(2).and_then(|n| n.parse().ok()))
    else {
        die("usage: --crash-writer partlog|commitlog|sqlite|fjall|raw DIR N")
    };
    let v = crate::fixture::values();
    let path = Path::new(dir);
    match sys {
        Sys::Partlog => partlog::crash_write(path, &v, n),
        Sys::Commitlog => commitlog::crash_write(path, &v, n),
        Sys::Sqlite => sqlite::crash_write(path, &v, n),
        Sys::Fjall => fjall::crash_write(path, &v, n),
        Sys::Raw => raw::crash_write(path, &v, n),
    }
}

/// The offsets of a random-read run, and the values to check against.
pub struct Reads<'a> {
    pub sys: Sys,
    pub warmup: &'a [u64],
    pub offsets: &'a [u64],
    pub v: &'a Values,
}

impl Reads<'_> {
    /// Runs `one` (read offset `o`, return its value's first byte) over the warm-up offsets,
    /// then times it over the measured ones (cold: mostly places not read before), reads them
    /// once more untimed, and times a third pass (warm: the steady state, every place read
    /// twice before); checks every value. `probe` runs after the warm-up and after every 100
    /// timed reads, outside the timed calls.
    pub fn run(&self, probe: &mut dyn FnMut(), mut one: impl FnMut(u64) -> u8) -> Lat {
        let check = |o: u64, first: u8| {
            if first != self.v[o as usize % POOL][0] {
                die(format!("{}: wrong value at offset {o}", self.sys.name()));
            }
        };
        for &o in self.warmup {
            check(o, one(o));
        }
        probe();
        let mut pass = |probe: &mut dyn FnMut()| {
            let mut lat = Vec::with_capacity(self.offsets.len());
            for (i, &o) in self.offsets.iter().enumerate() {
                let t = Instant::now();
                let b = one(o);
                lat.push(t.elapsed().as_nanos() as f64);
                check(o, b);
                if i % 100 == 99 {
                    probe();
                }
            }
            lat.sort_by(f64::total_cmp);
            lat
        };
        let cold = pass(probe);
        pass(probe);
        let warm = pass(probe);
        Lat { cold, warm }
    }
}

/// Sorted latencies (ns) of a random-read run: the first pass over the offsets and the third.
pub struct Lat {
    pub cold: Vec<f64>,
    pub warm: Vec<f64>,
}

/// The tail-read loop: `step(i, k)` appends records `i..i + k` as one batch and reads them back
/// at once, returning what it read. Checks every batch, times the whole loop.
pub fn tail_loop(sys: Sys, v: &Values, n: usize, mut step: impl FnMut(usize, usize) -> Seen) -> Duration {
    let batch = crate::fixture::BATCH;
    let mut total = Seen::default();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = batch.min(n - i);
        let seen = step(i, k);
        if seen.records != k as u64 {
            die(format!("{}: tail read saw {} of {k} records at {i}", sys.name(), seen.records));
        }
        total.records += seen.records;
        total.sum += seen.sum;
        i += k;
    }
    let d = t.elapsed();
    let expect = Seen::expected(v, 0, n);
    if total != expect {
        die(format!("{}: tail reads saw {total:?}, expected {expect:?}", sys.name()));
    }
    d
}

/// Runs `append(i)` in a loop on `threads` threads until `dur` has passed; returns the calls
/// made and the time taken.
pub fn timed_threads(threads: usize, dur: Duration, append: &(dyn Fn(usize) + Sync)) -> (usize, Duration) {
    let start = Instant::now();
    let deadline = start + dur;
    let total: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut n = 0usize;
                    while Instant::now() < deadline {
                        append(t * 1_000_003 + n);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    (total, start.elapsed())
}
