//! Reopen after a clean close of a log of ~1,000 segments (every system, the same records), and
//! partlog's open files and memory across those segments (with commitlog's for comparison).

use std::time::Instant;

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use partlog::{Partition, Record, TopicConfig};

use super::run_rounds;
use crate::cli::{Cfg, OrDie, die};
use crate::fixture::{BATCH, POOL, VALUE, Values, tempdir};
use crate::procfs::{Mem, mem, mib, open_fds};
use crate::report::{Better, Report, fmt_ms, progress};
use crate::systems::{self, SYSTEMS, Sys, commitlog::HEADER, fjall};

/// Opens timed per system.
const OPENS: usize = 5;

pub fn run(rep: &mut Report, cfg: &Cfg, v: &Values, fds_at_start: usize, mem_at_start: Mem) {
    let per_seg = cfg.segment_records;
    let batch = BATCH.min(per_seg);
    let batches_per_seg = per_seg.div_ceil(batch);
    let total = cfg.segments * per_seg;
    let seg_bytes = systems::partlog::batch_bytes(cfg, v, batch) * batches_per_seg as u64;
    let config = TopicConfig::default().segment_bytes(u32::try_from(seg_bytes).unwrap_or(u32::MAX));
    let fixture = tempdir(cfg, "segments");
    let root = fixture.path();
    let ppath = Sys::Partlog.path(root);
    let cpath = Sys::Commitlog.path(root);

    progress(format!("reopen: writing {total} records into ~{} partlog segments", cfg.segments));
    let mut build = [0.0f64; 5];
    {
        let t = Instant::now();
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
        build[0] = t.elapsed().as_secs_f64();
    }
    progress("reopen: writing the other fixtures");
    let mut copts = LogOptions::new(&cpath);
    copts.segment_max_bytes(2 + per_seg * (HEADER + VALUE)).index_max_items(per_seg);
    {
        let t = Instant::now();
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
        build[1] = t.elapsed().as_secs_f64();
    }
    for sys in [Sys::Sqlite, Sys::Fjall, Sys::Raw] {
        let t = Instant::now();
        systems::write_batched(sys, root, v, total);
        build[sys.index()] = t.elapsed().as_secs_f64();
    }
    fjall::take_drains();
    let c_segments = std::fs::read_dir(&cpath)
        .map(|rd| rd.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "log")).count())
        .unwrap_or(0);
    let mut p_segments = 0;
    let mut c_fds_open = 0;

    if cfg.wants("reopen") {
        rep.line(format!("\n### Reopen after a clean close ({total} records; time to open and learn the log end)\n"));
        let r = run_rounds(
            rep,
            "reopen",
            OPENS,
            Better::Lower,
            |sys, _| {
                let (d, end) = match sys {
                    Sys::Partlog => {
                        let t = Instant::now();
                        let p = Partition::open_with(&ppath, config.clone()).or_die("partlog reopen");
                        let end = p.log_end_offset();
                        let d = t.elapsed();
                        p_segments = p.segments().len();
                        p.close().or_die("partlog close");
                        (d, end)
                    }
                    Sys::Commitlog => {
                        let t = Instant::now();
                        let log = CommitLog::new(copts.clone()).or_die("commitlog reopen");
                        let end = log.next_offset();
                        let d = t.elapsed();
                        c_fds_open = open_fds();
                        (d, end)
                    }
                    Sys::Sqlite => systems::sqlite::open_end(&sys.path(root)),
                    Sys::Fjall => systems::fjall::open_end(&sys.path(root)),
                    Sys::Raw => systems::raw::open_end(&sys.path(root)),
                };
                if end != total as u64 {
                    die(format!("{}: log end {end} after reopen, {total} written", sys.name()));
                }
                d.as_secs_f64() * 1e3
            },
            fmt_ms,
        );
        r.summary(rep, "Reopen after a clean close", "time to open and read the log end", fmt_ms);
        let builds: Vec<String> = SYSTEMS.iter().map(|s| format!("{} {:.2} s", s.label(), build[s.index()])).collect();
        rep.line(format!(
            "\npartlog: {p_segments} segments (`segment_bytes` = {seg_bytes}, {batches_per_seg} batch(es) of {batch} \
             records each); commitlog: {c_segments} segments (`segment_max_bytes` = {}, `index_max_items` = \
             {per_seg}); SQLite, fjall and raw: one database / file set with default settings. Timed: open, then \
             read the log end (partlog `log_end_offset`, commitlog `next_offset`, SQLite `SELECT max(offset)`, the \
             first statement, which reads the schema; fjall `last_key_value` after an open that replays its \
             journal into the memtable; raw the file length). commitlog opens every segment and index file (and \
             maps every index) at open; partlog trusts its clean-shutdown checkpoint and opens sealed segments \
             lazily. Fixture builds: {}.",
            2 + per_seg * (HEADER + VALUE),
            builds.join(", ")
        ));
        let p_med = r.median_value(Sys::Partlog);
        rep.goal(
            &format!("clean reopen of {p_segments} segments ≤ 50 ms"),
            format!("{p_med:.1} ms"),
            Some(p_med <= 50.0),
        );
    }

    if cfg.wants("resources") {
        resources(rep, cfg, v, total, (&ppath, &config), &copts, (fds_at_start, mem_at_start), c_fds_open);
    }
}

#[allow(clippy::too_many_arguments)]
fn resources(
    rep: &mut Report,
    cfg: &Cfg,
    v: &Values,
    total: usize,
    (ppath, config): (&std::path::Path, &TopicConfig),
    copts: &LogOptions,
    (fds_at_start, mem_at_start): (usize, Mem),
    c_fds_open: usize,
) {
    progress("resources: reading across all segments");
    let before_open = (open_fds(), mem());
    let p = Partition::open_with(ppath, config.clone()).or_die("partlog open");
    let p_segments = p.segments().len();
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
    let mut rng = crate::fixture::Rng(0xDEAD_BEEF_CAFE_F00D);
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
         {cap} sealed segments (one fd each; index files are read and closed). VmHWM at the end: {}. This table \
         is process-wide and in run order (earlier workloads' heap may be reused); the per-system footprint \
         tables of the read workloads measure each system in a fresh process.",
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
