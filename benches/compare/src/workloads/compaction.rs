//! Compaction of a keyed partition (10% live keys, each written ~10 times) against the closest
//! fair baseline: a plain copy of the same segment bytes into a new file, fsynced at the end,
//! as the cleaner reads its input and writes (and fsyncs) its output.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use partlog::{CleanupPolicy, Partition, Record, TopicConfig};

use crate::cli::{Cfg, OrDie, die};
use crate::fixture::{BATCH, POOL, Rng, Values, tempdir};
use crate::procfs::{Mem, PeakSampler, mem};
use crate::report::{Better, Cell, Report, fmt_ratio, median, oriented, progress};

/// Each key is written this many times on average; the live fraction is its inverse.
const WRITES_PER_KEY: usize = 10;
/// Segments the partition is written in (before compaction).
const SEGMENTS: usize = 16;
/// Bytes per read and write of the copy.
const COPY_BUF: usize = 1 << 20;
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// One timed run, measured in a child process: seconds, input and output bytes, peak VmRSS and
/// RssAnon deltas in KiB, and (compaction only) the pass's own figures.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    secs: f64,
    bytes_in: u64,
    bytes_out: u64,
    rss_kb: f64,
    anon_kb: f64,
    cleaned_all: bool,
    records_removed: u64,
    keys_mapped: u64,
    map_bytes: u64,
    segments_before: u64,
    segments_after: u64,
}

impl Run {
    fn mb_per_sec(&self) -> f64 {
        self.bytes_in as f64 / 1e6 / self.secs
    }

    fn to_line(self) -> String {
        format!(
            "COMPACT {} {} {} {} {} {} {} {} {} {} {}",
            self.secs,
            self.bytes_in,
            self.bytes_out,
            self.rss_kb,
            self.anon_kb,
            u8::from(self.cleaned_all),
            self.records_removed,
            self.keys_mapped,
            self.map_bytes,
            self.segments_before,
            self.segments_after
        )
    }

    fn from_line(text: &str) -> Option<Run> {
        let f: Vec<&str> = text.lines().find_map(|l| l.strip_prefix("COMPACT "))?.split_whitespace().collect();
        let u = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
        let x = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
        Some(Run {
            secs: x(0)?,
            bytes_in: u(1)?,
            bytes_out: u(2)?,
            rss_kb: x(3)?,
            anon_kb: x(4)?,
            cleaned_all: u(5)? == 1,
            records_removed: u(6)?,
            keys_mapped: u(7)?,
            map_bytes: u(8)?,
            segments_before: u(9)?,
            segments_after: u(10)?,
        })
    }
}

fn peak_delta(before: Mem, peak: Mem) -> (f64, f64) {
    (peak.rss_kb as f64 - before.rss_kb as f64, peak.anon_kb as f64 - before.anon_kb as f64)
}

/// Bytes one keyed record takes in a partlog batch of 100 (measured).
fn record_bytes(cfg: &Cfg, v: &Values) -> u64 {
    let d = tempdir(cfg, "probe");
    let p = Partition::open(d.path().join("p")).or_die("partlog open");
    let keys: Vec<[u8; 8]> = (0..BATCH as u64).map(u64::to_be_bytes).collect();
    let recs: Vec<Record<'_>> =
        keys.iter().enumerate().map(|(j, k)| Record::new().key(&k[..]).value(&v[j % POOL][..])).collect();
    p.append_batch(&recs).or_die("partlog append");
    let size = p.segments().first().map_or(0, |s| s.size);
    p.close().or_die("partlog close");
    (size / BATCH as u64).max(1)
}

/// Writes `n` keyed records with keys drawn from `keys` (the same sequence every round), rolls
/// and closes. Returns, per key, the offset of its last write (`u64::MAX`: never written).
fn build(path: &Path, v: &Values, n: usize, keys: usize, config: TopicConfig) -> Vec<u64> {
    let p = Partition::open_with(path, config).or_die("partlog open");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut last = vec![u64::MAX; keys];
    let mut kb: Vec<[u8; 8]> = Vec::with_capacity(BATCH);
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        kb.clear();
        for j in i..i + k {
            let key = rng.below(keys as u64);
            last[key as usize] = j as u64;
            kb.push(key.to_be_bytes());
        }
        let recs: Vec<Record<'_>> =
            kb.iter().zip(i..).map(|(key, j)| Record::new().key(&key[..]).value(&v[j % POOL][..])).collect();
        p.append_batch(&recs).or_die("partlog append");
        i += k;
    }
    p.roll().or_die("partlog roll");
    p.close().or_die("partlog close");
    last
}

/// The sealed segments' `.log` files and their sizes.
fn sealed_logs(path: &Path) -> Vec<(PathBuf, u64)> {
    let p = Partition::open(path).or_die("partlog open");
    let files = p
        .segments()
        .into_iter()
        .filter(|s| !s.active)
        .map(|s| (path.join(format!("{:020}.log", s.base_offset)), s.size))
        .collect();
    p.close().or_die("partlog close");
    files
}

/// The baseline: read every sealed segment's bytes and write them into one new file, fsync it
/// and its directory.
fn copy(files: &[(PathBuf, u64)], out: &Path) -> Run {
    let mut buf = vec![0u8; COPY_BUF];
    let before = mem();
    let sampler = PeakSampler::start(SAMPLE_EVERY);
    let t = Instant::now();
    let mut w = File::create(out).or_die("copy create");
    let mut bytes = 0u64;
    for (path, size) in files {
        let mut r = File::open(path).or_die("copy open").take(*size);
        loop {
            let got = r.read(&mut buf).or_die("copy read");
            if got == 0 {
                break;
            }
            w.write_all(&buf[..got]).or_die("copy write");
            bytes += got as u64;
        }
    }
    w.sync_all().or_die("copy fsync");
    if let Some(dir) = out.parent() {
        File::open(dir).and_then(|d| d.sync_all()).or_die("copy fsync dir");
    }
    let secs = t.elapsed().as_secs_f64();
    let (peak, _) = sampler.stop();
    let (rss_kb, anon_kb) = peak_delta(before, peak);
    Run { secs, bytes_in: bytes, bytes_out: bytes, rss_kb, anon_kb, cleaned_all: true, ..Run::default() }
}

fn compact(path: &Path, seg_bytes: u32) -> Run {
    let p = Partition::open_with(path, config(seg_bytes)).or_die("partlog open");
    let before = mem();
    let sampler = PeakSampler::start(SAMPLE_EVERY);
    let t = Instant::now();
    let r = p.compact().or_die("partlog compact");
    let secs = t.elapsed().as_secs_f64();
    let (peak, _) = sampler.stop();
    p.close().or_die("partlog close");
    let (rss_kb, anon_kb) = peak_delta(before, peak);
    Run {
        secs,
        bytes_in: r.bytes_before,
        bytes_out: r.bytes_after,
        rss_kb,
        anon_kb,
        cleaned_all: r.cleaned && !r.partial,
        records_removed: r.records_removed,
        keys_mapped: r.keys_mapped,
        map_bytes: r.map_bytes,
        segments_before: u64::from(r.segments_before),
        segments_after: u64::from(r.segments_after),
    }
}

fn config(seg_bytes: u32) -> TopicConfig {
    TopicConfig::default().cleanup_policy(CleanupPolicy::COMPACT).segment_bytes(seg_bytes)
}

/// `--compact-child compact PATH SEG_BYTES` or `--compact-child copy PATH OUT`: one timed run in
/// a fresh process (so its peak memory is not hidden by heap an earlier workload freed), printed
/// as one `COMPACT` line.
pub fn child(args: &[String]) -> ! {
    let run = match (args.first().map(String::as_str), args.get(1), args.get(2)) {
        (Some("compact"), Some(path), Some(seg)) => {
            compact(Path::new(path), seg.parse().unwrap_or_else(|_| die("bad segment size")))
        }
        (Some("copy"), Some(path), Some(out)) => copy(&sealed_logs(Path::new(path)), Path::new(out)),
        _ => die("usage: --compact-child compact PATH SEG_BYTES | copy PATH OUT"),
    };
    println!("{}", run.to_line());
    std::process::exit(0)
}

fn spawn(args: &[&std::ffi::OsStr]) -> Run {
    let exe = std::env::current_exe().or_die("current_exe");
    let out = Command::new(exe).arg("--compact-child").args(args).output().or_die("spawn compaction child");
    if !out.status.success() {
        die(format!("compaction child failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Run::from_line(&String::from_utf8_lossy(&out.stdout)).unwrap_or_else(|| die("compaction child printed no result"))
}

/// Checks the compacted log holds exactly the last write of every key, at its offset.
fn verify(path: &Path, v: &Values, last: &[u64]) {
    let p = Partition::open(path).or_die("partlog open");
    let mut seen = 0usize;
    {
        let mut reader = p.reader(0);
        while let Some(chunk) = reader.next_records().or_die("partlog read") {
            for r in chunk.iter() {
                let key = r.key().and_then(|k| <[u8; 8]>::try_from(k).ok()).map(u64::from_be_bytes);
                let Some(key) = key.filter(|k| (*k as usize) < last.len()) else {
                    die(format!("compaction: record at {} has a bad key", r.offset()))
                };
                if last[key as usize] != r.offset() {
                    die(format!(
                        "compaction: key {key} kept offset {}, its last write is {}",
                        r.offset(),
                        last[key as usize]
                    ));
                }
                if r.value().map(|b| b[0]) != Some(v[r.offset() as usize % POOL][0]) {
                    die(format!("compaction: wrong value at {}", r.offset()));
                }
                seen += 1;
            }
        }
    }
    let live = last.iter().filter(|o| **o != u64::MAX).count();
    if seen != live {
        die(format!("compaction: {seen} records left, {live} keys are live"));
    }
    p.close().or_die("partlog close");
}

pub fn run(rep: &mut Report, cfg: &Cfg, v: &Values) {
    let target = (cfg.compact_mb as u64) << 20;
    let per_record = record_bytes(cfg, v);
    let n = usize::try_from(target / per_record).unwrap_or(usize::MAX).max(BATCH);
    let keys = (n / WRITES_PER_KEY).max(1);
    let seg_bytes = u32::try_from(target / SEGMENTS as u64).unwrap_or(u32::MAX).max(1 << 20);
    let rounds = cfg.maintenance_rounds();
    rep.line(format!(
        "\n### Compaction of a {} MiB keyed partition, 10% live keys ({n} records of 8-byte keys and 100-byte \
         values over {keys} keys; {rounds} rounds, each on a freshly written partition)\n",
        cfg.compact_mb
    ));
    rep.line(
        "| round (order) | partlog compact | plain copy | partlog vs copy | compact time | copy time | compact peak \
         ΔVmRSS / ΔRssAnon | copy peak ΔVmRSS / ΔRssAnon | bytes in → out | records removed |",
    );
    rep.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    let (mut cmb, mut pmb, mut crss, mut prss, mut canon, mut panon) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last_pass = Run::default();
    for r in 0..rounds {
        let d = tempdir(cfg, "compact");
        let path = d.path().join("p");
        let out = d.path().join("copy");
        progress(format!("compaction: round {} writing {n} keyed records", r + 1));
        let last = build(&path, v, n, keys, config(seg_bytes));
        let copy_first = r % 2 == 0;
        let mut c = Run::default();
        let mut p = Run::default();
        for step in 0..2 {
            if (step == 0) == copy_first {
                progress(format!("compaction: round {} plain copy", r + 1));
                c = spawn(&["copy".as_ref(), path.as_os_str(), out.as_os_str()]);
                std::fs::remove_file(&out).or_die("remove copy");
            } else {
                progress(format!("compaction: round {} partlog compact", r + 1));
                p = spawn(&["compact".as_ref(), path.as_os_str(), seg_bytes.to_string().as_ref()]);
            }
        }
        if !p.cleaned_all {
            die(format!("compaction: the pass did not clean everything: {p:?}"));
        }
        verify(&path, v, &last);
        let ratio = oriented(Better::Higher, p.mb_per_sec(), c.mb_per_sec());
        ratios.push(ratio);
        cmb.push(c.mb_per_sec());
        pmb.push(p.mb_per_sec());
        crss.push(c.rss_kb / 1024.0);
        prss.push(p.rss_kb / 1024.0);
        canon.push(c.anon_kb / 1024.0);
        panon.push(p.anon_kb / 1024.0);
        rep.line(format!(
            "| {} ({}) | {:.0} MB/s | {:.0} MB/s | {} | {:.2} s | {:.2} s | {:+.1} / {:+.1} MiB | {:+.1} / {:+.1} MiB | \
             {:.0} → {:.0} MB | {} |",
            r + 1,
            if copy_first { "copy, compact" } else { "compact, copy" },
            p.mb_per_sec(),
            c.mb_per_sec(),
            fmt_ratio(ratio),
            p.secs,
            c.secs,
            p.rss_kb / 1024.0,
            p.anon_kb / 1024.0,
            c.rss_kb / 1024.0,
            c.anon_kb / 1024.0,
            p.bytes_in as f64 / 1e6,
            p.bytes_out as f64 / 1e6,
            p.records_removed,
        ));
        last_pass = p;
    }
    rep.line(format!(
        "| **median** | **{:.0} MB/s** | {:.0} MB/s | **{}** | | | {:+.1} / {:+.1} MiB | {:+.1} / {:+.1} MiB | | |",
        median(&pmb),
        median(&cmb),
        fmt_ratio(median(&ratios)),
        median(&prss),
        median(&panon),
        median(&crss),
        median(&canon),
    ));
    rep.line(format!(
        "\nMB/s = input bytes (the sealed segments' `.log` bytes) per second, 10⁶ B/s. Each timed run is a fresh \
         child process (so earlier workloads' freed heap cannot hide its memory); peak memory is sampled every 2 \
         ms by a second thread, as the delta from right before the timed call. partlog: `Partition::compact()` \
         with the default `CleanerOptions` (dedupe map up to 128 MiB, no I/O throttle) on a partition with \
         `cleanup.policy=compact` and {seg_bytes}-byte segments, opened first (not timed); the last pass mapped \
         {} keys into a {:.1} MiB map and went from {} to {} segments (cleaned segments are grouped by their \
         sizes before cleaning, as Kafka's `groupSegmentsBySize` does, so a first pass keeps the count). Every \
         round checks that exactly the last write of every key is left, at its offset. Plain copy: each sealed \
         `.log` file read with `read(2)` into a 1 MiB buffer and written to one new file, then `fsync` of the \
         file and its directory. Both read from the page cache (the partition was just written and closed) and \
         alternate which runs first.",
        last_pass.keys_mapped,
        last_pass.map_bytes as f64 / (1 << 20) as f64,
        last_pass.segments_before,
        last_pass.segments_after,
    ));
    let na_c = Cell::NotApplicable("none in commitlog 0.2");
    let na_s = Cell::NotApplicable("no log compaction");
    let na_f = Cell::NotApplicable("no log compaction");
    let (pm, cm) = (median(&pmb), median(&cmb));
    rep.summary_row(
        &format!("Compaction, {} MiB, 10% live", cfg.compact_mb),
        "MB/s of input (raw: plain copy)",
        [Cell::Value(format!("{pm:.0}")), na_c.clone(), na_s.clone(), na_f.clone(), Cell::Value(format!("{cm:.0}"))],
        [None, None, None, Some(median(&ratios))],
    );
    rep.line(
        "\ncommitlog 0.2 has no compaction. SQLite and fjall have no log compaction (keep the latest record of \
         each key in an offset-ordered log): an offset-keyed table keeps every row, and fjall's own LSM \
         compaction merges tables of a key-value store, a different operation; neither is measured here.",
    );
    let (pr, cr) = (median(&prss), median(&crss));
    rep.summary_row(
        &format!("Compaction, {} MiB, 10% live", cfg.compact_mb),
        "peak ΔVmRSS (raw: plain copy)",
        [Cell::Value(format!("{pr:+.1} MiB")), na_c, na_s, na_f, Cell::Value(format!("{cr:+.1} MiB"))],
        [None, None, None, Some(oriented(Better::Lower, pr, cr))],
    );
}
