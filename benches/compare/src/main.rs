//! partlog-compare: runs partlog, commitlog 0.2 and a raw `std::fs::File` baseline on the same
//! workloads in one process and prints Markdown tables (see README.md).
//!
//! Usage: `cargo run --release -- [--quick] [--only append,single,read,random,fsync,reopen,crash,resources]
//! [--rounds N] [--records N] [--single-records N] [--random-log N] [--random-reads N]
//! [--fsync-secs S] [--segments N] [--segment-records N] [--crash-records N] [--dir PATH]`.
//! Every count can also come from an environment variable `PLC_<NAME>` (`PLC_RECORDS`, ...);
//! arguments win.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use partlog::{Durability, Partition, Record, TopicConfig};
use tempfile::TempDir;

/// Bytes in each record value (the payload all three systems store).
const VALUE: usize = 100;
/// Records per batch in the batched workloads.
const BATCH: usize = 100;
/// commitlog's per-message header (offset u64, size u32, crc u32, reserved u16, meta size u16).
const CL_HEADER: usize = 20;
/// Distinct values; record `i` carries `values[i % POOL]`.
const POOL: usize = 256;
/// Reads done before timing random reads (opens handles, warms caches).
const WARMUP_READS: usize = 1_000;
/// Slices each fsync run is cut into, alternating 1 and 8 threads.
const FSYNC_SLICES: usize = 4;

// ---------------------------------------------------------------------------------------------
// Configuration

#[derive(Debug, Clone)]
struct Cfg {
    quick: bool,
    only: Option<BTreeSet<String>>,
    rounds: usize,
    records: usize,
    single_records: usize,
    random_log: usize,
    random_reads: usize,
    fsync_secs: f64,
    segments: usize,
    segment_records: usize,
    crash_records: usize,
    dir: PathBuf,
}

const WORKLOADS: &[&str] = &["append", "single", "read", "random", "fsync", "reopen", "crash", "resources"];

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(format!("PLC_{name}")).ok().and_then(|v| v.replace('_', "").parse().ok())
}

impl Cfg {
    fn parse(args: &[String]) -> Cfg {
        let quick = args.iter().any(|a| a == "--quick");
        let pick = |name: &str, flag: &str, full: usize, quick_v: usize| -> usize {
            arg_value(args, flag)
                .and_then(|v| v.replace('_', "").parse().ok())
                .or_else(|| env_num(name))
                .unwrap_or(if quick { quick_v } else { full })
        };
        let fsync_secs = arg_value(args, "--fsync-secs")
            .and_then(|v| v.parse().ok())
            .or_else(|| env_num("FSYNC_SECS"))
            .unwrap_or(if quick { 0.5 } else { 2.0 });
        let only = arg_value(args, "--only").or_else(|| std::env::var("PLC_ONLY").ok()).map(|v| {
            let set: BTreeSet<String> = v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            for w in &set {
                if !WORKLOADS.contains(&w.as_str()) {
                    die(format!("unknown workload `{w}`; known: {}", WORKLOADS.join(",")));
                }
            }
            set
        });
        let dir = arg_value(args, "--dir")
            .or_else(|| std::env::var("PLC_DIR").ok())
            .map_or_else(std::env::temp_dir, PathBuf::from);
        for a in args.iter().skip(1) {
            if a.starts_with("--") && !KNOWN_FLAGS.contains(&a.as_str()) {
                die(format!("unknown flag `{a}`"));
            }
        }
        Cfg {
            quick,
            only,
            rounds: pick("ROUNDS", "--rounds", 5, 3).max(1),
            records: pick("RECORDS", "--records", 1_000_000, 200_000).max(BATCH),
            single_records: pick("SINGLE_RECORDS", "--single-records", 1_000_000, 100_000).max(1),
            random_log: pick("RANDOM_LOG", "--random-log", 10_000_000, 1_000_000).max(BATCH),
            random_reads: pick("RANDOM_READS", "--random-reads", 10_000, 10_000).max(1),
            fsync_secs,
            segments: pick("SEGMENTS", "--segments", 1_000, 1_000).max(2),
            segment_records: pick("SEGMENT_RECORDS", "--segment-records", 200, 100).max(1),
            crash_records: pick("CRASH_RECORDS", "--crash-records", 2_000_000, 300_000).max(BATCH),
            dir,
        }
    }

    fn wants(&self, w: &str) -> bool {
        self.only.as_ref().is_none_or(|s| s.contains(w))
    }
}

const KNOWN_FLAGS: &[&str] = &[
    "--quick",
    "--only",
    "--rounds",
    "--records",
    "--single-records",
    "--random-log",
    "--random-reads",
    "--fsync-secs",
    "--segments",
    "--segment-records",
    "--crash-records",
    "--dir",
];

fn arg_value(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned()
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("partlog-compare: {msg}");
    std::process::exit(2)
}

/// `expect` for any `Debug` error (commitlog's errors, io errors, partlog's errors).
trait OrDie<T> {
    fn or_die(self, what: &str) -> T;
}

impl<T, E: Debug> OrDie<T> for Result<T, E> {
    fn or_die(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => die(format!("{what}: {e:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sys {
    Partlog,
    Commitlog,
    Raw,
}

impl Sys {
    fn name(self) -> &'static str {
        match self {
            Sys::Partlog => "partlog",
            Sys::Commitlog => "commitlog",
            Sys::Raw => "raw",
        }
    }
}

const SYSTEMS: [Sys; 3] = [Sys::Partlog, Sys::Commitlog, Sys::Raw];

/// The order of round `r`: a rotation, so no system always runs first or right after another's
/// page-cache churn.
fn order(r: usize) -> [Sys; 3] {
    let mut o = SYSTEMS;
    o.rotate_left(r % 3);
    o
}

fn order_label(o: &[Sys]) -> String {
    o.iter().map(|s| &s.name()[..1]).collect::<Vec<_>>().join("")
}

type Values = Vec<[u8; VALUE]>;

fn values() -> Values {
    (0..POOL)
        .map(|i| {
            let mut v = [0u8; VALUE];
            for (j, b) in v.iter_mut().enumerate() {
                *b = (i * 31 + j * 7) as u8;
            }
            v
        })
        .collect()
}

fn tempdir(cfg: &Cfg, what: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("plcmp-{what}-")).tempdir_in(&cfg.dir).or_die("create a temp dir")
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn fmt_mb(records_per_sec: f64) -> String {
    format!("{:.0}", records_per_sec * VALUE as f64 / 1e6)
}

fn fmt_ratio(x: f64) -> String {
    format!("{x:.2}×")
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn progress(msg: impl std::fmt::Display) {
    eprintln!("[compare] {msg}");
}

/// A small xorshift generator: the same offsets for every system and run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn open_fds() -> usize {
    // Includes the descriptor read_dir itself holds while listing.
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss_kb: u64,
    anon_kb: u64,
    file_kb: u64,
    hwm_kb: u64,
}

fn mem() -> Mem {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem { rss_kb: field("VmRSS:"), anon_kb: field("RssAnon:"), file_kb: field("RssFile:"), hwm_kb: field("VmHWM:") }
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    if dir.is_file() {
        return std::fs::metadata(dir).map_or(0, |m| m.len());
    }
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
        }
    }
    total
}

// ---------------------------------------------------------------------------------------------
// The three writers

fn partlog_batched(dir: &Path, v: &Values, n: usize, config: TopicConfig) -> Duration {
    let p = Partition::open_with(dir, config).or_die("partlog open");
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

fn commitlog_opts(dir: &Path) -> LogOptions {
    LogOptions::new(dir)
}

fn commitlog_batched(opts: LogOptions, v: &Values, n: usize) -> Duration {
    let mut log = CommitLog::new(opts).or_die("commitlog open");
    let mut buf = MessageBuf::default();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        buf.clear();
        for j in i..i + k {
            buf.push(&v[j % POOL][..]).or_die("commitlog push");
        }
        log.append(&mut buf).or_die("commitlog append");
        i += k;
    }
    let d = t.elapsed();
    drop(log);
    d
}

fn raw_batched(path: &Path, v: &Values, n: usize) -> Duration {
    let mut f = File::create(path).or_die("raw create");
    let mut buf = Vec::with_capacity(BATCH * VALUE);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        buf.clear();
        for j in i..i + k {
            buf.extend_from_slice(&v[j % POOL]);
        }
        f.write_all(&buf).or_die("raw write");
        i += k;
    }
    t.elapsed()
}

/// Writes `n` records in batches with `sys` into `dir`; returns the timed part.
fn write_batched(sys: Sys, dir: &Path, v: &Values, n: usize) -> Duration {
    match sys {
        Sys::Partlog => partlog_batched(&dir.join("p"), v, n, TopicConfig::default()),
        Sys::Commitlog => commitlog_batched(commitlog_opts(&dir.join("c")), v, n),
        Sys::Raw => raw_batched(&dir.join("raw"), v, n),
    }
}

fn write_single(sys: Sys, dir: &Path, v: &Values, n: usize) -> Duration {
    match sys {
        Sys::Partlog => {
            let p = Partition::open_with(dir.join("p"), TopicConfig::default()).or_die("partlog open");
            let t = Instant::now();
            for i in 0..n {
                p.append(Record::with_value(&v[i % POOL][..])).or_die("partlog append");
            }
            let d = t.elapsed();
            p.close().or_die("partlog close");
            d
        }
        Sys::Commitlog => {
            // append_msg writes straight to the segment's std::fs::File (one write(2)) and
            // stores the index entry into a shared mmap: nothing stays in a user-space buffer,
            // so no flush() is needed for the bytes to survive a process crash.
            let mut log = CommitLog::new(commitlog_opts(&dir.join("c"))).or_die("commitlog open");
            let t = Instant::now();
            for i in 0..n {
                log.append_msg(&v[i % POOL][..]).or_die("commitlog append_msg");
            }
            t.elapsed()
        }
        Sys::Raw => {
            let mut f = File::create(dir.join("raw")).or_die("raw create");
            let t = Instant::now();
            for i in 0..n {
                f.write_all(&v[i % POOL]).or_die("raw write");
            }
            t.elapsed()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Readers

/// What a full scan saw: record count and a checksum of the first byte of every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    records: u64,
    sum: u64,
}

fn read_all(sys: Sys, dir: &Path) -> (Duration, Seen) {
    let mut seen = Seen { records: 0, sum: 0 };
    match sys {
        Sys::Partlog => {
            let p = Partition::open(dir.join("p")).or_die("partlog open");
            let t = Instant::now();
            let mut reader = p.reader(0);
            while let Some(chunk) = reader.next_records().or_die("partlog read") {
                for r in chunk.iter() {
                    seen.records += 1;
                    seen.sum += u64::from(r.value().map_or(0, |v| v[0]));
                }
            }
            let d = t.elapsed();
            p.close().or_die("partlog close");
            (d, seen)
        }
        Sys::Commitlog => {
            let log = CommitLog::new(commitlog_opts(&dir.join("c"))).or_die("commitlog open");
            let t = Instant::now();
            let mut next = 0u64;
            loop {
                let buf = log.read(next, ReadLimit::max_bytes(1 << 20)).or_die("commitlog read");
                if buf.is_empty() {
                    break;
                }
                for m in buf.iter() {
                    seen.records += 1;
                    seen.sum += u64::from(m.payload()[0]);
                    next = m.offset() + 1;
                }
            }
            (t.elapsed(), seen)
        }
        Sys::Raw => {
            let mut f = File::open(dir.join("raw")).or_die("raw open");
            let t = Instant::now();
            let mut buf = vec![0u8; 1 << 20];
            let mut have = 0;
            loop {
                let got = f.read(&mut buf[have..]).or_die("raw read");
                if got == 0 {
                    break;
                }
                let total = have + got;
                let whole = total / VALUE * VALUE;
                for rec in buf[..whole].chunks_exact(VALUE) {
                    seen.records += 1;
                    seen.sum += u64::from(rec[0]);
                }
                buf.copy_within(whole..total, 0);
                have = total - whole;
            }
            (t.elapsed(), seen)
        }
    }
}

/// Per-read latencies in ns, sorted, for reads at `offsets` (after `warmup`).
fn random_reads(sys: Sys, dir: &Path, warmup: &[u64], offsets: &[u64], v: &Values) -> Vec<f64> {
    let mut lat = Vec::with_capacity(offsets.len());
    let check = |o: u64, first: u8| {
        if first != v[o as usize % POOL][0] {
            die(format!("{}: wrong value at offset {o}", sys.name()));
        }
    };
    match sys {
        Sys::Partlog => {
            let p = Partition::open(dir.join("p")).or_die("partlog open");
            let one = |o: u64| {
                let recs = p.read(o, 1).or_die("partlog read");
                let r = recs.iter().next().unwrap_or_else(|| die("partlog: empty read"));
                if r.offset() != o {
                    die(format!("partlog: asked {o}, got {}", r.offset()));
                }
                r.value().map_or(0, |b| b[0])
            };
            for &o in warmup {
                check(o, one(o));
            }
            for &o in offsets {
                let t = Instant::now();
                let b = one(o);
                lat.push(t.elapsed().as_nanos() as f64);
                check(o, b);
            }
            p.close().or_die("partlog close");
        }
        Sys::Commitlog => {
            let log = CommitLog::new(commitlog_opts(&dir.join("c"))).or_die("commitlog open");
            let one = |o: u64| {
                // One message is CL_HEADER + VALUE bytes; a little slack keeps the last message
                // of a segment readable.
                let buf = log.read(o, ReadLimit::max_bytes(CL_HEADER + VALUE + 8)).or_die("commitlog read");
                let m = buf.iter().next().unwrap_or_else(|| die("commitlog: empty read"));
                if m.offset() != o {
                    die(format!("commitlog: asked {o}, got {}", m.offset()));
                }
                m.payload()[0]
            };
            for &o in warmup {
                check(o, one(o));
            }
            for &o in offsets {
                let t = Instant::now();
                let b = one(o);
                lat.push(t.elapsed().as_nanos() as f64);
                check(o, b);
            }
        }
        Sys::Raw => {
            let f = File::open(dir.join("raw")).or_die("raw open");
            let mut buf = [0u8; VALUE];
            let mut one = |o: u64| {
                f.read_exact_at(&mut buf, o * VALUE as u64).or_die("raw pread");
                buf[0]
            };
            for &o in warmup {
                let b = one(o);
                check(o, b);
            }
            for &o in offsets {
                let t = Instant::now();
                let b = one(o);
                lat.push(t.elapsed().as_nanos() as f64);
                check(o, b);
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    lat
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------------
// fsync per append

/// Appends with an fsync before each append returns, from `threads` threads, for `secs`.
/// Returns the records appended and the time taken.
fn fsync_run(sys: Sys, dir: &Path, threads: usize, secs: f64, v: &Values) -> (usize, Duration) {
    let dur = Duration::from_secs_f64(secs);
    let worker = |append: &(dyn Fn(usize) + Sync)| -> (usize, Duration) {
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
    };
    let (n, d) = match sys {
        Sys::Partlog => {
            let config = TopicConfig::default().durability(Durability::EveryAppend);
            let p = Partition::open_with(dir.join("p"), config).or_die("partlog open");
            let r = worker(&|i| {
                p.append(Record::with_value(&v[i % POOL][..])).or_die("partlog append");
            });
            p.close().or_die("partlog close");
            r
        }
        Sys::Commitlog => {
            // commitlog's flush() does not fsync the segment: Segment::flush_sync calls
            // std::fs::File::flush, a no-op; only the index mmap is msync'ed. So after flush()
            // we fdatasync the active segment file ourselves (all appends here stay in
            // segment 0), under the same lock, which is what a flush that fsyncs would do.
            let cdir = dir.join("c");
            let log = CommitLog::new(commitlog_opts(&cdir)).or_die("commitlog open");
            let seg = File::open(cdir.join(format!("{:020}.log", 0))).or_die("open commitlog segment");
            let log = Mutex::new(log);
            worker(&|i| {
                let mut g = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                g.append_msg(&v[i % POOL][..]).or_die("commitlog append_msg");
                g.flush().or_die("commitlog flush");
                seg.sync_data().or_die("commitlog segment fdatasync");
            })
        }
        Sys::Raw => {
            let f = Mutex::new(File::create(dir.join("raw")).or_die("raw create"));
            worker(&|i| {
                let mut g = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                g.write_all(&v[i % POOL]).or_die("raw write");
                g.sync_data().or_die("raw fdatasync");
            })
        }
    };
    (n, d)
}

// ---------------------------------------------------------------------------------------------
// Crash child

/// `--crash-writer partlog|commitlog DIR N`: append N records in batches, then exit without
/// closing anything (no destructors run), as a crashed process would.
fn crash_writer(args: &[String]) -> ! {
    let (Some(sys), Some(dir), Some(n)) = (args.first(), args.get(1), args.get(2).and_then(|n| n.parse().ok())) else {
        die("usage: --crash-writer partlog|commitlog DIR N")
    };
    let v = values();
    let n: usize = n;
    match sys.as_str() {
        "partlog" => {
            let p = Partition::open(dir).or_die("partlog open");
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
        "commitlog" => {
            let mut log = CommitLog::new(LogOptions::new(dir)).or_die("commitlog open");
            let mut buf = MessageBuf::default();
            let mut i = 0;
            while i < n {
                let k = BATCH.min(n - i);
                buf.clear();
                for j in i..i + k {
                    buf.push(&v[j % POOL][..]).or_die("commitlog push");
                }
                log.append(&mut buf).or_die("commitlog append");
                i += k;
            }
            std::process::exit(0)
        }
        other => die(format!("unknown system {other}")),
    }
}

fn spawn_crash_writer(sys: &str, dir: &Path, n: usize) {
    let exe = std::env::current_exe().or_die("current_exe");
    let status = Command::new(exe)
        .arg("--crash-writer")
        .arg(sys)
        .arg(dir)
        .arg(n.to_string())
        .status()
        .or_die("spawn crash writer");
    if !status.success() {
        die(format!("crash writer for {sys} failed: {status}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Default)]
struct Report {
    out: String,
    goals: Vec<(String, String, Option<bool>)>,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }
    fn goal(&mut self, goal: &str, measured: String, met: Option<bool>) {
        self.goals.push((goal.to_owned(), measured, met));
    }
}

/// Runs a throughput workload in rounds and reports per-round rates and ratios.
/// `run` returns records/s for one system in one round.
fn throughput_rounds(
    rep: &mut Report,
    cfg: &Cfg,
    title: &str,
    records: usize,
    mut run: impl FnMut(Sys, usize) -> f64,
) -> (f64, f64) {
    rep.line(format!("\n### {title} ({records} records of {VALUE} B)\n"));
    rep.line(
        "| round (order) | partlog rec/s | commitlog rec/s | raw rec/s | partlog MB/s | commitlog MB/s | raw MB/s | \
         partlog/commitlog | partlog/raw |",
    );
    rep.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    // One untimed warm-up run of each system first: the first runs after start-up (cold
    // allocator, page cache and CPU frequency) are consistently slower and would bias round 1.
    for sys in SYSTEMS {
        progress(format!("{title}: warm-up {}", sys.name()));
        run(sys, usize::MAX);
    }
    let mut rates: [Vec<f64>; 3] = Default::default();
    let (mut vs_c, mut vs_r) = (Vec::new(), Vec::new());
    for r in 0..cfg.rounds {
        let o = order(r);
        let mut this = [0.0f64; 3];
        for sys in o {
            let idx = SYSTEMS.iter().position(|s| *s == sys).unwrap_or(0);
            progress(format!("{title}: round {} {}", r + 1, sys.name()));
            this[idx] = run(sys, r);
            rates[idx].push(this[idx]);
        }
        let (c, rr) = (this[0] / this[1], this[0] / this[2]);
        vs_c.push(c);
        vs_r.push(rr);
        rep.line(format!(
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} |",
            r + 1,
            order_label(&o),
            fmt_rate(this[0]),
            fmt_rate(this[1]),
            fmt_rate(this[2]),
            fmt_mb(this[0]),
            fmt_mb(this[1]),
            fmt_mb(this[2]),
            fmt_ratio(c),
            fmt_ratio(rr)
        ));
    }
    let m = [median(&rates[0]), median(&rates[1]), median(&rates[2])];
    let (mc, mr) = (median(&vs_c), median(&vs_r));
    rep.line(format!(
        "| **median** | {} | {} | {} | {} | {} | {} | **{}** | **{}** |",
        fmt_rate(m[0]),
        fmt_rate(m[1]),
        fmt_rate(m[2]),
        fmt_mb(m[0]),
        fmt_mb(m[1]),
        fmt_mb(m[2]),
        fmt_ratio(mc),
        fmt_ratio(mr)
    ));
    (mc, mr)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--crash-writer") {
        crash_writer(&args[2..]);
    }
    let cfg = Cfg::parse(&args);
    let v = values();
    let mut rep = Report::default();
    let started = Instant::now();
    let fds_at_start = open_fds();
    let mem_at_start = mem();

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    rep.line(format!(
        "## partlog vs commitlog 0.2 vs raw `std::fs::File` ({} mode)\n",
        if cfg.quick { "quick" } else { "full" }
    ));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--", "src"]).lines().count();
    rep.line(format!(
        "partlog at `{head}`{}.\n",
        if dirty > 0 { format!(" plus {dirty} uncommitted change(s) under src/") } else { String::new() }
    ));
    rep.line(format!(
        "Machine: {} × {cpu}, Linux {}; data dir {} ({}). Values are {VALUE} B; MB/s counts value bytes (10⁶ B/s). \
         Each throughput workload runs in {} rounds; every round runs all three systems in a rotated order \
         (p = partlog, c = commitlog, r = raw) and its ratios compare runs of the same round. Only the \
         append/read calls are timed (not open, close or cleanup).",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel.trim(),
        cfg.dir.display(),
        fs_type(&cfg.dir),
        cfg.rounds
    ));

    if cfg.wants("append") {
        let (c, r) =
            throughput_rounds(&mut rep, &cfg, "Batched append, 100 records per call", cfg.records, |sys, _| {
                let d = tempdir(&cfg, "append");
                per_sec(cfg.records, write_batched(sys, d.path(), &v, cfg.records))
            });
        rep.goal("batched append ≥ 2× commitlog", fmt_ratio(c), Some(c >= 2.0));
        rep.goal("batched append ≥ 70% of raw write", format!("{:.0}%", r * 100.0), Some(r >= 0.7));
        rep.line(
            "\npartlog: `append_batch` of 100 `Record`s; commitlog: `append` of a `MessageBuf` with 100 messages; \
             raw: the 100 values copied into one buffer and written with one `write(2)`.",
        );
    }

    if cfg.wants("single") {
        let (c, _) = throughput_rounds(&mut rep, &cfg, "One record per call", cfg.single_records, |sys, _| {
            let d = tempdir(&cfg, "single");
            per_sec(cfg.single_records, write_single(sys, d.path(), &v, cfg.single_records))
        });
        rep.goal("one-record appends ≥ 2× commitlog", fmt_ratio(c), Some(c >= 2.0));
        rep.line(
            "\nSame guarantee for all three: once the call returns the record survives a crash of the process \
             (it is in the kernel's page cache). partlog: `append` (the active segment is written through a \
             shared mapping); commitlog: `append_msg`, which does one `write(2)` on an unbuffered `std::fs::File` \
             and stores its index entry into a shared mmap, so it keeps no user-space buffer and needs no \
             `flush()` per call (its `flush()` would only msync the index); raw: one `write(2)` per record.",
        );
    }

    if cfg.wants("read") {
        progress("sequential read: writing fixtures");
        let fixture = tempdir(&cfg, "read");
        for sys in SYSTEMS {
            write_batched(sys, fixture.path(), &v, cfg.records);
        }
        let mut expect: Option<Seen> = None;
        let (c, _) = throughput_rounds(&mut rep, &cfg, "Sequential read of the whole log", cfg.records, |sys, _| {
            let (d, seen) = read_all(sys, fixture.path());
            match expect {
                None => expect = Some(seen),
                Some(e) if e != seen => die(format!("{}: read {seen:?}, expected {e:?}", sys.name())),
                Some(_) => {}
            }
            if seen.records != cfg.records as u64 {
                die(format!("{}: read {} records, wrote {}", sys.name(), seen.records, cfg.records));
            }
            per_sec(cfg.records, d)
        });
        rep.goal("sequential read ≥ 2× commitlog", fmt_ratio(c), Some(c >= 2.0));
        rep.line(
            "\nThe log is reopened before each read (not timed) and read from the page cache. partlog: \
             `reader(0).next_records()` (1 MiB chunks, every batch CRC-checked) iterating every record; \
             commitlog: `read(offset, ReadLimit::max_bytes(1 MiB))` (every message CRC-32C-checked) iterating \
             every message; raw: `read(2)` into a 1 MiB buffer, split into 100-byte records. All three touch \
             each value's first byte; the record counts and checksums are checked to agree.",
        );
    }

    if cfg.wants("random") {
        random_workload(&mut rep, &cfg, &v);
    }

    if cfg.wants("fsync") {
        fsync_workload(&mut rep, &cfg, &v);
    }

    if cfg.wants("reopen") || cfg.wants("resources") {
        reopen_and_resources(&mut rep, &cfg, &v, fds_at_start, mem_at_start);
    }

    if cfg.wants("crash") {
        crash_workload(&mut rep, &cfg);
    }

    rep.line("\n### Goals\n");
    rep.line("| goal | measured | met |");
    rep.line("|---|---:|:---:|");
    for (g, m, met) in &rep.goals.clone() {
        let mark = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        rep.line(format!("| {g} | {m} | {mark} |"));
    }
    rep.line(format!("\nTotal run time: {:.1} s.", started.elapsed().as_secs_f64()));
    print!("{}", rep.out);
}

fn fs_type(dir: &Path) -> String {
    // The longest mount point that is a prefix of the (canonical) directory.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (_dev, mp, ty) = (it.next()?, it.next()?, it.next()?);
            dir.starts_with(mp).then(|| (mp.len(), ty.to_owned()))
        })
        .max_by_key(|(n, _)| *n)
        .map_or_else(|| "unknown fs".to_owned(), |(_, t)| t)
}

fn random_workload(rep: &mut Report, cfg: &Cfg, v: &Values) {
    let n = cfg.random_log;
    progress(format!("random reads: writing {n}-record fixtures"));
    let fixture = tempdir(cfg, "random");
    let mut build = String::new();
    for sys in SYSTEMS {
        let d = write_batched(sys, fixture.path(), v, n);
        build.push_str(&format!("{} {} rec/s, ", sys.name(), fmt_rate(per_sec(n, d))));
    }
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let warmup: Vec<u64> = (0..WARMUP_READS).map(|_| rng.below(n as u64)).collect();
    let offsets: Vec<u64> = (0..cfg.random_reads).map(|_| rng.below(n as u64)).collect();

    rep.line(format!(
        "\n### Random reads by offset ({} reads in a {n}-record log, after {WARMUP_READS} warm-up reads)\n",
        cfg.random_reads
    ));
    rep.line(
        "| round (order) | partlog median | partlog p99 | commitlog median | commitlog p99 | raw median | raw p99 |",
    );
    rep.line("|---|---:|---:|---:|---:|---:|---:|");
    let mut med: [Vec<f64>; 3] = Default::default();
    let mut p99: [Vec<f64>; 3] = Default::default();
    for r in 0..cfg.rounds {
        let o = order(r);
        let mut row = [(0.0, 0.0); 3];
        for sys in o {
            progress(format!("random reads: round {} {}", r + 1, sys.name()));
            let idx = SYSTEMS.iter().position(|s| *s == sys).unwrap_or(0);
            let lat = random_reads(sys, fixture.path(), &warmup, &offsets, v);
            row[idx] = (pct(&lat, 0.5), pct(&lat, 0.99));
            med[idx].push(row[idx].0);
            p99[idx].push(row[idx].1);
        }
        rep.line(format!(
            "| {} ({}) | {} | {} | {} | {} | {} | {} |",
            r + 1,
            order_label(&o),
            fmt_ns(row[0].0),
            fmt_ns(row[0].1),
            fmt_ns(row[1].0),
            fmt_ns(row[1].1),
            fmt_ns(row[2].0),
            fmt_ns(row[2].1)
        ));
    }
    let m: Vec<(f64, f64)> = (0..3).map(|i| (median(&med[i]), median(&p99[i]))).collect();
    rep.line(format!(
        "| **median** | **{}** | {} | {} | {} | {} | {} |",
        fmt_ns(m[0].0),
        fmt_ns(m[0].1),
        fmt_ns(m[1].0),
        fmt_ns(m[1].1),
        fmt_ns(m[2].0),
        fmt_ns(m[2].1)
    ));
    rep.line(format!(
        "\npartlog: `read(o, 1)` and the first record; commitlog: `read(o, ReadLimit::max_bytes({}))` (one \
         message) and its first message; raw: `pread` of 100 bytes at `o × 100` (fixed-size records, no index: \
         a floor). Each latency includes one `Instant::now()` pair. Fixture build (batched, not part of the \
         goals): {}on-disk sizes: partlog {:.0} MB, commitlog {:.0} MB, raw {:.0} MB.",
        CL_HEADER + VALUE + 8,
        build,
        dir_bytes(&fixture.path().join("p")) as f64 / 1e6,
        dir_bytes(&fixture.path().join("c")) as f64 / 1e6,
        dir_bytes(&fixture.path().join("raw")) as f64 / 1e6,
    ));
    rep.goal("random read median ≤ 2 µs", fmt_ns(m[0].0), Some(m[0].0 <= 2_000.0));
}

fn fsync_workload(rep: &mut Report, cfg: &Cfg, v: &Values) {
    rep.line(format!(
        "\n### fsync before every append returns, 1 and 8 threads ({:.1} s per system and thread count per round, \
         in {FSYNC_SLICES} alternating slices; records/s)\n",
        cfg.fsync_secs
    ));
    rep.line(
        "| round (order) | partlog 1T | partlog 8T | partlog 8T/1T | commitlog 1T | commitlog 8T | commitlog 8T/1T | \
         raw 1T | raw 8T | raw 8T/1T | partlog/commitlog 8T |",
    );
    rep.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut one: [Vec<f64>; 3] = Default::default();
    let mut eight: [Vec<f64>; 3] = Default::default();
    let mut scale: [Vec<f64>; 3] = Default::default();
    let mut vs_c = Vec::new();
    for r in 0..cfg.rounds {
        let o = order(r);
        let mut row = [(0.0, 0.0); 3];
        for sys in o {
            let idx = SYSTEMS.iter().position(|s| *s == sys).unwrap_or(0);
            // fsync latency on a shared VM drifts within seconds, so 1 and 8 threads alternate in
            // short slices (1, 8, 8, 1, ...) and each rate sums its slices.
            progress(format!("fsync: round {} {}", r + 1, sys.name()));
            let mut acc = [(0usize, Duration::ZERO); 2];
            for slice in 0..FSYNC_SLICES {
                let pair = if slice % 2 == 0 { [1, 8] } else { [8, 1] };
                for threads in pair {
                    let d = tempdir(cfg, "fsync");
                    let (n, t) = fsync_run(sys, d.path(), threads, cfg.fsync_secs / FSYNC_SLICES as f64, v);
                    let a = &mut acc[usize::from(threads != 1)];
                    a.0 += n;
                    a.1 += t;
                }
            }
            row[idx] = (per_sec(acc[0].0, acc[0].1), per_sec(acc[1].0, acc[1].1));
            one[idx].push(row[idx].0);
            eight[idx].push(row[idx].1);
            scale[idx].push(row[idx].1 / row[idx].0);
        }
        vs_c.push(row[0].1 / row[1].1);
        rep.line(format!(
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r + 1,
            order_label(&o),
            fmt_rate(row[0].0),
            fmt_rate(row[0].1),
            fmt_ratio(row[0].1 / row[0].0),
            fmt_rate(row[1].0),
            fmt_rate(row[1].1),
            fmt_ratio(row[1].1 / row[1].0),
            fmt_rate(row[2].0),
            fmt_rate(row[2].1),
            fmt_ratio(row[2].1 / row[2].0),
            fmt_ratio(row[0].1 / row[1].1)
        ));
    }
    let s: Vec<f64> = (0..3).map(|i| median(&scale[i])).collect();
    rep.line(format!(
        "| **median** | {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {} |",
        fmt_rate(median(&one[0])),
        fmt_rate(median(&eight[0])),
        fmt_ratio(s[0]),
        fmt_rate(median(&one[1])),
        fmt_rate(median(&eight[1])),
        fmt_ratio(s[1]),
        fmt_rate(median(&one[2])),
        fmt_rate(median(&eight[2])),
        fmt_ratio(s[2]),
        fmt_ratio(median(&vs_c))
    ));
    rep.line(
        "\npartlog: `Durability::EveryAppend`, one shared `Partition`, `append` per record (concurrent appends \
         share fsyncs: group commit). commitlog: `Mutex<CommitLog>`, `append_msg` + `flush()` per record; \
         **commitlog 0.2's `flush()` does not fsync the log** (`Segment::flush_sync` is `File::flush`, a no-op \
         for `std::fs::File`; only the index mmap is msync'ed), so the harness also calls `sync_data()` on the \
         active segment file under the same lock. raw: `Mutex<File>`, `write` + `sync_data` per record under \
         the lock.",
    );
    rep.goal("8-thread fsync appends ≥ 5× 1 thread", fmt_ratio(s[0]), Some(s[0] >= 5.0));
}

/// Size in bytes of one partlog batch of `records` values (measured, not computed).
fn partlog_batch_bytes(cfg: &Cfg, v: &Values, records: usize) -> u64 {
    let probe = tempdir(cfg, "probe");
    let p = Partition::open(probe.path().join("p")).or_die("partlog open");
    let recs: Vec<Record<'_>> = (0..records).map(|j| Record::with_value(&v[j % POOL][..])).collect();
    p.append_batch(&recs).or_die("partlog append");
    let size = p.segments().first().map_or(0, |s| s.size);
    p.close().or_die("partlog close");
    size
}

fn reopen_and_resources(rep: &mut Report, cfg: &Cfg, v: &Values, fds_at_start: usize, mem_at_start: Mem) {
    let per_seg = cfg.segment_records;
    let batch = BATCH.min(per_seg);
    let batches_per_seg = per_seg.div_ceil(batch);
    let total = cfg.segments * per_seg;
    let seg_bytes = partlog_batch_bytes(cfg, v, batch) * batches_per_seg as u64;
    let config = TopicConfig::default().segment_bytes(u32::try_from(seg_bytes).unwrap_or(u32::MAX));
    let fixture = tempdir(cfg, "segments");
    let ppath = fixture.path().join("p");
    let cpath = fixture.path().join("c");

    progress(format!("reopen: writing {total} records into ~{} partlog segments", cfg.segments));
    let t = Instant::now();
    {
        let p = Partition::open_with(&ppath, config.clone()).or_die("partlog open");
        let mut recs: Vec<Record<'_>> = Vec::with_capacity(batch);
        let mut i = 0;
        while i < total {
            let k = batch.min(total - i);
            recs.clear();
            recs.extend((i..i + k).map(|j| Record::with_value(&v[j % POOL][..])));
            p.append_batch(&recs).or_die("partlog append");
            i += k;
        }
        p.close().or_die("partlog close");
    }
    let p_build = t.elapsed();
    progress("reopen: writing the commitlog fixture");
    let mut copts = LogOptions::new(&cpath);
    copts.segment_max_bytes(2 + per_seg * (CL_HEADER + VALUE)).index_max_items(per_seg);
    let t = Instant::now();
    {
        let mut log = CommitLog::new(copts.clone()).or_die("commitlog open");
        let mut buf = MessageBuf::default();
        let mut i = 0;
        while i < total {
            let k = batch.min(total - i);
            buf.clear();
            for j in i..i + k {
                buf.push(&v[j % POOL][..]).or_die("commitlog push");
            }
            log.append(&mut buf).or_die("commitlog append");
            i += k;
        }
    }
    let c_build = t.elapsed();

    // Reopen times.
    let reps = 5;
    let mut p_times = Vec::new();
    let mut p_segments = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let p = Partition::open_with(&ppath, config.clone()).or_die("partlog reopen");
        p_times.push(t.elapsed().as_secs_f64() * 1e3);
        p_segments = p.segments().len();
        p.close().or_die("partlog close");
    }
    let mut c_times = Vec::new();
    let mut c_fds_open = 0;
    let c_segments = std::fs::read_dir(&cpath)
        .map(|rd| rd.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "log")).count())
        .unwrap_or(0);
    for _ in 0..reps {
        let t = Instant::now();
        let log = CommitLog::new(copts.clone()).or_die("commitlog reopen");
        c_times.push(t.elapsed().as_secs_f64() * 1e3);
        c_fds_open = open_fds();
        drop(log);
    }
    let p_med = median(&p_times);
    if cfg.wants("reopen") {
        rep.line(format!("\n### Reopen after a clean close ({total} records, {reps} opens each)\n"));
        rep.line("| system | segments | open median | open min | open max | fixture build |");
        rep.line("|---|---:|---:|---:|---:|---:|");
        let mm = |v: &[f64]| {
            (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        };
        let (pmin, pmax) = mm(&p_times);
        let (cmin, cmax) = mm(&c_times);
        rep.line(format!(
            "| partlog | {p_segments} | **{p_med:.1} ms** | {pmin:.1} ms | {pmax:.1} ms | {:.2} s |",
            p_build.as_secs_f64()
        ));
        rep.line(format!(
            "| commitlog | {c_segments} | {:.1} ms | {cmin:.1} ms | {cmax:.1} ms | {:.2} s |",
            median(&c_times),
            c_build.as_secs_f64()
        ));
        rep.line(format!(
            "\npartlog `segment_bytes` = {seg_bytes} ({batches_per_seg} batch(es) of {batch} records per segment); \
             commitlog `segment_max_bytes` = {}, `index_max_items` = {per_seg}. commitlog opens every segment and \
             index file (and maps every index) at open; partlog trusts its clean-shutdown checkpoint and opens \
             sealed segments lazily.",
            2 + per_seg * (CL_HEADER + VALUE)
        ));
        rep.goal(
            &format!("clean reopen of {p_segments} segments ≤ 50 ms"),
            format!("{p_med:.1} ms"),
            Some(p_med <= 50.0),
        );
    }

    if cfg.wants("resources") {
        progress("resources: reading across all segments");
        let before_open = (open_fds(), mem());
        let p = Partition::open_with(&ppath, config.clone()).or_die("partlog open");
        let after_open = (open_fds(), mem());
        let mut scanned = 0u64;
        {
            // Scoped: a live `Reader` holds a clone of the partition (and so its files).
            let mut reader = p.reader(0);
            while let Some(chunk) = reader.next_records().or_die("partlog read") {
                scanned += chunk.iter().count() as u64;
            }
        }
        if scanned != total as u64 {
            die(format!("partlog: scanned {scanned} records of {total}"));
        }
        let after_scan = (open_fds(), mem(), p.handle_cache().open_count());
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        for _ in 0..cfg.random_reads {
            let o = rng.below(total as u64);
            let recs = p.read(o, 1).or_die("partlog read");
            if recs.iter().next().map(|r| r.offset()) != Some(o) {
                die(format!("partlog: random read at {o} failed"));
            }
        }
        let after_random = (open_fds(), mem(), p.handle_cache().open_count());
        let cap = p.handle_cache().capacity();
        p.close().or_die("partlog close");
        drop(p);
        let after_close = (open_fds(), mem());

        // commitlog for comparison: open + full scan.
        let c_before = open_fds();
        let c_after_scan = {
            let log = CommitLog::new(copts.clone()).or_die("commitlog open");
            let mut next = 0u64;
            loop {
                let buf = log.read(next, ReadLimit::max_bytes(1 << 20)).or_die("commitlog read");
                if buf.is_empty() {
                    break;
                }
                if let Some(m) = buf.iter().last() {
                    next = m.offset() + 1;
                }
            }
            (open_fds(), mem())
        };

        rep.line(format!(
            "\n### Open files and memory across {p_segments} segments (process-wide; the process started with {} \
             fds and VmRSS {})\n",
            fds_at_start,
            mib(mem_at_start.rss_kb)
        ));
        rep.line("| point | open fds | partlog cached segments | VmRSS | RssAnon | RssFile |");
        rep.line("|---|---:|---:|---:|---:|---:|");
        let row = |rep: &mut Report, what: &str, fds: usize, cached: String, m: Mem| {
            rep.line(format!(
                "| {what} | {fds} | {cached} | {} | {} | {} |",
                mib(m.rss_kb),
                mib(m.anon_kb),
                mib(m.file_kb)
            ));
        };
        row(rep, "partlog: before open", before_open.0, "-".into(), before_open.1);
        row(rep, "partlog: after open", after_open.0, "0".into(), after_open.1);
        row(rep, "partlog: after a full scan", after_scan.0, after_scan.2.to_string(), after_scan.1);
        row(
            rep,
            &format!("partlog: after {} random reads", cfg.random_reads),
            after_random.0,
            after_random.2.to_string(),
            after_random.1,
        );
        row(rep, "partlog: after close", after_close.0, "-".into(), after_close.1);
        row(rep, "commitlog: before open", c_before, "-".into(), after_close.1);
        row(rep, "commitlog: open, after a full scan", c_after_scan.0, "-".into(), c_after_scan.1);
        // Segments written by this process: the active segment is written through a shared
        // mapping, and a sealed segment keeps that mapping while its handle stays cached.
        progress("resources: writing through the mapped write path");
        let wdir = tempdir(cfg, "mapped");
        let before_write = mem();
        let p = Partition::open_with(wdir.path().join("p"), TopicConfig::default().segment_bytes(8 << 20))
            .or_die("partlog open");
        let mut recs: Vec<Record<'_>> = Vec::with_capacity(BATCH);
        let mut i = 0;
        while i < cfg.records {
            let k = BATCH.min(cfg.records - i);
            recs.clear();
            recs.extend((i..i + k).map(|j| Record::with_value(&v[j % POOL][..])));
            p.append_batch(&recs).or_die("partlog append");
            i += k;
        }
        let written_segments = p.segments().len();
        let after_write = (open_fds(), mem(), p.handle_cache().open_count());
        p.close().or_die("partlog close");
        drop(p);
        let after_write_close = (open_fds(), mem());
        row(rep, "partlog: before writing (new log, 8 MiB segments)", after_write_close.0, "-".into(), before_write);
        row(
            rep,
            &format!("partlog: after appending {} records ({written_segments} segments), still open", cfg.records),
            after_write.0,
            after_write.2.to_string(),
            after_write.1,
        );
        row(rep, "partlog: after close", after_write_close.0, "-".into(), after_write_close.1);
        rep.line(format!(
            "\ncommitlog, right after open (reopen test): {c_fds_open} fds. partlog's handle cache holds at most \
             {cap} sealed segments (one fd each; index files are read and closed). VmHWM at the end: {}.",
            mib(mem().hwm_kb)
        ));
        let fd_growth = after_scan.0.max(after_random.0).saturating_sub(before_open.0);
        let anon_growth = after_scan.1.anon_kb.max(after_random.1.anon_kb).saturating_sub(before_open.1.anon_kb);
        let bounded = fd_growth <= cap + 4 && anon_growth <= 64 * 1024;
        rep.goal(
            "handles/memory bounded while reading 1,000 segments",
            format!("+{fd_growth} fds (cap {cap}), +{} RssAnon", mib(anon_growth)),
            Some(bounded),
        );
    }
}

fn crash_workload(rep: &mut Report, cfg: &Cfg) {
    let n = cfg.crash_records;
    let reps = 3;
    rep.line(format!(
        "\n### Reopen after a crash ({n} records appended with `Durability::Os` by a child process that exits \
         without closing; {reps} crashes each)\n"
    ));
    rep.line("| system | unflushed tail | reopen median | min | max | records after reopen |");
    rep.line("|---|---:|---:|---:|---:|---:|");
    let mut p_med = 0.0;
    for sys in ["partlog", "commitlog"] {
        let mut times = Vec::new();
        let mut tail = 0u64;
        let mut found = 0u64;
        for k in 0..reps {
            progress(format!("crash: {sys} {}", k + 1));
            let d = tempdir(cfg, "crash");
            let path = d.path().join("log");
            spawn_crash_writer(sys, &path, n);
            tail = dir_bytes(&path);
            let t = Instant::now();
            if sys == "partlog" {
                let p = Partition::open(&path).or_die("partlog reopen after crash");
                times.push(t.elapsed().as_secs_f64() * 1e3);
                found = p.log_end_offset();
                p.close().or_die("partlog close");
            } else {
                let log = CommitLog::new(LogOptions::new(&path)).or_die("commitlog reopen after crash");
                times.push(t.elapsed().as_secs_f64() * 1e3);
                found = log.next_offset();
            }
            if found != n as u64 {
                die(format!("{sys}: {found} records after the crash, {n} were acknowledged"));
            }
        }
        let m = median(&times);
        if sys == "partlog" {
            p_med = m;
        }
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        rep.line(format!(
            "| {sys} | {:.0} MB on disk | {m:.1} ms | {min:.1} ms | {max:.1} ms | {found} |",
            tail as f64 / 1e6
        ));
    }
    rep.line(
        "\npartlog re-validates the unflushed tail (CRC of every batch, record framing), rebuilds the active \
         segment's indexes, trims the preallocated tail and fsyncs it; commitlog 0.2 checks nothing on open \
         (it trusts its index and file lengths). \"Unflushed tail\" is the directory size after the crash \
         (partlog's includes up to 16 MiB of preallocation).",
    );
    rep.goal("crash reopen (informational)", format!("{p_med:.0} ms for {n} records"), None);
}
