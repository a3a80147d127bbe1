//! Crash-point sweeps over maintenance on the simulated file system: a retention pass (one
//! that deletes sealed segments, and one that rolls the active segment and deletes all), a
//! compaction swap of one group and of several, and `advance_log_start`.
//!
//! Each workload (build a log with `EveryAppend`, run the operation, append a little more,
//! close) first runs cleanly to count its file-system operations; then, for every operation
//! after the log was built, a fresh [`SimFs`] stops the world there, loses power in each
//! [`CrashMode`], and the partition is reopened and checked against a model of what was
//! appended: the log is either as before the operation or as after it (for compaction, group
//! by group, in order), no retained record is lost or changed, offsets are intact, nothing in
//! transit (`*.deleted`, `*.cleaned`, `segments.intent`, `*.tmp`) is left, and appends go on.
//! A crash during that recovery, followed by another open, must give the same log.
//!
//! Every sweep prints its seed (`PARTLOG_SEED` replays it); the long variants are ignored:
//! `cargo test --release --test crash_maintenance -- --ignored`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use partlog::fs::FileSystem;
use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{CleanupPolicy, Durability, Error, ManualClock, Partition, Record, TopicConfig};

mod common;
use common::{Rng, seed};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DIR: &str = "/maint-0";
const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

fn read_all(p: &Partition) -> Result<Vec<Rec>, Error> {
    p.iter(p.log_start_offset())
        .map(|r| r.map(|s| Rec { offset: s.offset, key: s.key.unwrap_or_default(), value: s.value }))
        .collect()
}

/// Keyed records below `upto` stay iff they are the latest of their key below `upto`.
fn full_pass(log: &[Rec], upto: u64) -> Vec<Rec> {
    let mut last: BTreeMap<&[u8], u64> = BTreeMap::new();
    for r in log.iter().filter(|r| r.offset < upto) {
        last.insert(&r.key, r.offset);
    }
    log.iter().filter(|r| r.offset >= upto || last.get(r.key.as_slice()) == Some(&r.offset)).cloned().collect()
}

/// What a workload appends and does.
#[derive(Clone)]
struct Workload {
    cfg: TopicConfig,
    /// The records of the log built first, oldest first (offsets from 0).
    initial: Vec<Rec>,
    /// Where to roll while building (after the record at each of these offsets).
    rolls: Vec<u64>,
    /// Configuration in force for the operation (set without I/O before it runs).
    op_cfg: TopicConfig,
    op: Op,
    /// Appended after the operation.
    after: Vec<Rec>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Retention,
    Compact,
    AdvanceLogStart(u64),
}

/// How far a run got before the world stopped.
#[derive(Debug, Default, Clone)]
struct Progress {
    built: bool,
    op_ok: bool,
    after_acked: usize,
    closed: bool,
}

fn open(fs: &Arc<SimFs>, cfg: &TopicConfig) -> Result<Partition, Error> {
    Partition::options().fs(fs.clone()).clock(ManualClock::new(T0 + 1_000_000)).config(cfg.clone()).open(DIR)
}

fn put(p: &Partition, r: &Rec) -> Result<(), String> {
    let mut rec = Record::new().key(&r.key).timestamp(T0 + r.offset as i64);
    if let Some(v) = &r.value {
        rec = rec.value(v);
    }
    match p.append(rec) {
        Ok(at) if at.offset == r.offset => Ok(()),
        Ok(at) => Err(format!("append acknowledged at {}, expected {}", at.offset, r.offset)),
        Err(e) => Err(format!("append: {e}")),
    }
}

/// Runs the workload, stopping at the first error. `Err` only for a wrong acknowledged offset.
fn run(fs: &Arc<SimFs>, w: &Workload) -> Result<Progress, String> {
    let mut pr = Progress::default();
    let Ok(p) = open(fs, &w.cfg) else { return Ok(pr) };
    for r in &w.initial {
        if let Err(e) = put(&p, r) {
            return if e.starts_with("append:") { Ok(pr) } else { Err(e) };
        }
        if w.rolls.contains(&r.offset) && p.roll().is_err() {
            return Ok(pr);
        }
    }
    pr.built = true;
    if p.set_config(w.op_cfg.clone()).is_err() {
        return Ok(pr);
    }
    let ok = match w.op {
        Op::Retention => p.run_retention().is_ok(),
        Op::Compact => p.compact().is_ok(),
        Op::AdvanceLogStart(o) => p.advance_log_start(o).is_ok(),
    };
    if !ok {
        return Ok(pr);
    }
    pr.op_ok = true;
    for r in &w.after {
        if let Err(e) = put(&p, r) {
            return if e.starts_with("append:") { Ok(pr) } else { Err(e) };
        }
        pr.after_acked += 1;
    }
    pr.closed = p.close().is_ok();
    Ok(pr)
}

/// The log as the operation leaves it, from a clean run: (log start, records).
fn after_op(w: &Workload) -> Result<(u64, Vec<Rec>), String> {
    let fs = SimFs::new();
    let w2 = Workload { after: Vec::new(), ..w.clone() };
    let pr = run(&fs, &w2)?;
    if !pr.closed {
        return Err("the clean run failed".into());
    }
    let p = open(&fs, &w.cfg).map_err(|e| e.to_string())?;
    let recs = read_all(&p).map_err(|e| e.to_string())?;
    Ok((p.log_start_offset(), recs))
}

fn transit(fs: &SimFs) -> Result<Vec<String>, String> {
    let names = fs.read_dir(Path::new(DIR)).map_err(|e| e.to_string())?;
    Ok(names
        .into_iter()
        .filter_map(|e| e.name.into_string().ok())
        .filter(|n| n.ends_with(".deleted") || n.ends_with(".cleaned") || n.ends_with(".tmp") || n == "segments.intent")
        .collect())
}

/// What the model allows after a crash: the expected log start(s) and how the records below
/// the end of the built log may look.
#[derive(Clone)]
struct Expect {
    /// The log start before and after the operation.
    start_before: u64,
    start_after: u64,
    /// The surviving records of the built log before and after the operation.
    before: Vec<Rec>,
    after: Vec<Rec>,
    /// For compaction: the base offsets of the segments of the built log; each range between
    /// two of them must be all "before" or all "after", the "after" ones a prefix.
    ranges: Option<Vec<u64>>,
}

fn check(p: &Partition, fs: &SimFs, w: &Workload, ex: &Expect, pr: &Progress, ctx: &str) -> Result<u64, String> {
    let left = transit(fs)?;
    if !left.is_empty() {
        return Err(format!("{ctx}: left in transit after open: {left:?}"));
    }
    let start = p.log_start_offset();
    if start != ex.start_before && start != ex.start_after {
        return Err(format!("{ctx}: log start {start}, neither {} nor {}", ex.start_before, ex.start_after));
    }
    if pr.op_ok && start != ex.start_after {
        return Err(format!("{ctx}: log start {start} after the operation returned Ok ({})", ex.start_after));
    }
    if start > 0 {
        match p.read(start - 1, 1 << 10) {
            Err(Error::OffsetOutOfRange { .. }) => {}
            other => return Err(format!("{ctx}: read below the log start {start} gave {other:?}")),
        }
    }
    let got = read_all(p).map_err(|e| format!("{ctx}: reading the recovered log: {e}"))?;
    let built_end = w.initial.len() as u64;
    let (old, new): (Vec<Rec>, Vec<Rec>) = (
        got.iter().filter(|r| r.offset < built_end).cloned().collect(),
        got.iter().filter(|r| r.offset >= built_end).cloned().collect(),
    );
    let visible = |v: &[Rec]| -> Vec<Rec> { v.iter().filter(|r| r.offset >= start).cloned().collect() };
    let (before, after) = (visible(&ex.before), visible(&ex.after));
    match &ex.ranges {
        None => {
            if old != before && old != after {
                return Err(format!(
                    "{ctx}: the built log reads as offsets {:?}: neither before ({:?}) nor after ({:?})",
                    offs(&old),
                    offs(&before),
                    offs(&after)
                ));
            }
            if pr.op_ok && old != after {
                return Err(format!("{ctx}: the operation returned Ok, yet the log reads {:?}", offs(&old)));
            }
        }
        Some(bases) => {
            let mut seen_before = false;
            for (i, &b) in bases.iter().enumerate() {
                let e = bases.get(i + 1).copied().unwrap_or(built_end);
                let cut =
                    |v: &[Rec]| -> Vec<Rec> { v.iter().filter(|r| r.offset >= b && r.offset < e).cloned().collect() };
                let (g, bf, af) = (cut(&old), cut(&before), cut(&after));
                let is_after = g == af;
                if g != bf && !is_after {
                    return Err(format!(
                        "{ctx}: offsets {b}..{e} read as {:?}: neither before ({:?}) nor after ({:?})",
                        offs(&g),
                        offs(&bf),
                        offs(&af)
                    ));
                }
                if is_after && bf != af && seen_before {
                    return Err(format!("{ctx}: offsets {b}..{e} were compacted after an earlier range was not"));
                }
                seen_before |= !is_after;
                if pr.op_ok && !is_after {
                    return Err(format!("{ctx}: compaction returned Ok, yet offsets {b}..{e} are not compacted"));
                }
            }
        }
    }
    // Appends after the operation: a dense prefix of them, at least the acknowledged ones.
    let want: Vec<Rec> = w.after.iter().take(new.len()).cloned().collect();
    if new != want {
        return Err(format!("{ctx}: records after the operation read as {:?}, appended {:?}", new, w.after));
    }
    if new.len() < pr.after_acked || new.len() > pr.after_acked + 1 {
        return Err(format!(
            "{ctx}: {} appends after the operation in the log, {} acknowledged",
            new.len(),
            pr.after_acked
        ));
    }
    let end = built_end + new.len() as u64;
    if p.log_end_offset() != end {
        return Err(format!("{ctx}: log end {} but the records end at {end}", p.log_end_offset()));
    }
    Ok(end)
}

fn offs(v: &[Rec]) -> Vec<u64> {
    v.iter().map(|r| r.offset).collect()
}

fn modes(seed: u64, k: u64) -> [CrashMode; 3] {
    let mix = |a: u64| Rng(seed ^ a.wrapping_mul(0xA24B_AED4_963E_E407)).next_u64();
    [CrashMode::LoseUnsynced, CrashMode::TornPrefix { seed: mix(2 * k) }, CrashMode::Garbage { seed: mix(2 * k + 1) }]
}

/// A seeded sample of about `max` of `lo..hi` (all when there are fewer), always with the ends.
fn points(lo: u64, hi: u64, max: u64, seed: u64) -> Vec<u64> {
    let n = hi - lo;
    if n <= max {
        return (lo..hi).collect();
    }
    let mut rng = Rng(seed ^ 0x5EED);
    let mut ks: Vec<u64> = (lo..hi).filter(|_| rng.below(n) < max).collect();
    ks.extend((lo..lo + 3).chain(hi - 3..hi));
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// The observable state of a reopened partition.
fn observe(p: &Partition) -> Result<(u64, u64, Vec<Rec>), Error> {
    Ok((p.log_start_offset(), p.log_end_offset(), read_all(p)?))
}

/// The sweep: for each crash point after the log is built and each mode, crash, reopen,
/// check; append after recovery; with `recovery_crashes`, crash the recovery too at each of
/// its operations and check that the next open agrees with the direct one.
fn sweep(name: &str, seed: u64, w: &Workload, ex: &Expect, max_points: u64, recovery_crashes: bool) -> TestResult {
    // The ops up to the end of the build.
    let built_ops = {
        let fs = SimFs::new();
        let p = open(&fs, &w.cfg)?;
        for r in &w.initial {
            put(&p, r)?;
            if w.rolls.contains(&r.offset) {
                p.roll()?;
            }
        }
        fs.mutating_ops()
    };
    let total = {
        let fs = SimFs::new();
        let pr = run(&fs, w)?;
        assert!(pr.closed && pr.op_ok, "{name}: the clean run failed: {pr:?}");
        fs.mutating_ops()
    };
    let ks = points(built_ops, total, max_points, seed);
    println!(
        "{name}: {} ops to build, {} more; crashing at {} points x 3 modes",
        built_ops,
        total - built_ops,
        ks.len()
    );
    let mut failures = Vec::new();
    let mut recoveries_crashed = 0u64;
    let mut states = std::collections::BTreeSet::new();
    for &k in &ks {
        for mode in modes(seed, k) {
            let ctx = format!("{name}, seed {seed}, crash after {k} of {total} ops, {mode:?}");
            let crashed = || -> Result<(Arc<SimFs>, Progress), String> {
                let fs = SimFs::new();
                fs.crash_after(k);
                let pr = run(&fs, w)?;
                fs.crash(mode);
                Ok((fs, pr))
            };
            let mut one = || -> Result<u64, String> {
                let (fs, pr) = crashed()?;
                if !pr.built {
                    return Err(format!("{ctx}: the crash hit the build"));
                }
                let ctx = format!("{ctx}, {pr:?}");
                let before = fs.mutating_ops();
                let p = open(&fs, &w.cfg).map_err(|e| format!("{ctx}: reopen failed: {e}"))?;
                let recovery_ops = fs.mutating_ops() - before;
                let end = check(&p, &fs, w, ex, &pr, &ctx)?;
                let direct = observe(&p).map_err(|e| format!("{ctx}: {e}"))?;
                states.insert((direct.0, offs(&direct.2)));
                // Appends go on at the end.
                let extra = Rec { offset: end, key: b"after-recovery".to_vec(), value: Some(b"v".to_vec()) };
                put(&p, &extra).map_err(|e| format!("{ctx}: after recovery: {e}"))?;
                p.close().map_err(|e| format!("{ctx}: close: {e}"))?;
                drop(p);
                let p = open(&fs, &w.cfg).map_err(|e| format!("{ctx}: second reopen: {e}"))?;
                let again = observe(&p).map_err(|e| format!("{ctx}: {e}"))?;
                let mut want = direct.2.clone();
                want.push(extra);
                if again.2 != want || again.0 != direct.0 {
                    return Err(format!("{ctx}: after a clean close the log changed"));
                }
                drop(p);
                if recovery_crashes {
                    for j in 0..recovery_ops {
                        let (fs, _) = crashed()?;
                        fs.crash_after(j);
                        if open(&fs, &w.cfg).is_err() {
                            recoveries_crashed += 1;
                        }
                        fs.crash(modes(seed, j)[(j % 3) as usize]);
                        let p = open(&fs, &w.cfg)
                            .map_err(|e| format!("{ctx}: reopen after a crash during recovery at {j}: {e}"))?;
                        let got = observe(&p).map_err(|e| format!("{ctx}: {e}"))?;
                        if got != direct {
                            return Err(format!(
                                "{ctx}: recovery crashed after {j} ops gives another log: start {} offsets {:?}, direct start {} offsets {:?}",
                                got.0,
                                offs(&got.2),
                                direct.0,
                                offs(&direct.2)
                            ));
                        }
                        let left = transit(&fs)?;
                        if !left.is_empty() {
                            return Err(format!("{ctx}, recovery crashed at {j}: left in transit: {left:?}"));
                        }
                    }
                }
                Ok(end)
            };
            if let Err(e) = one() {
                failures.push(e);
            }
        }
    }
    println!("{name}: {} distinct recovered states, {recoveries_crashed} recoveries interrupted", states.len());
    for f in failures.iter().take(6) {
        println!("FAILURE: {f}");
    }
    if let Some(first) = failures.first() {
        return Err(format!("{} crash scenarios failed; the first: {first}", failures.len()).into());
    }
    assert!(states.len() >= 2, "{name}: every crash left the same log: the sweep exercises nothing");
    if recovery_crashes {
        assert!(recoveries_crashed > 0, "{name}: no recovery was interrupted");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Workloads.

fn rec(offset: u64, key: &str, value: &str) -> Rec {
    Rec { offset, key: key.as_bytes().to_vec(), value: Some(value.as_bytes().to_vec()) }
}

/// Bytes of one single-record batch of [`rec`] with a 4-byte key and a 12-byte value.
fn batch_size() -> Result<u64, Error> {
    let fs = SimFs::new();
    let p = open(&fs, &TopicConfig::default())?;
    put(&p, &rec(0, "k000", "value-000000"))
        .map_err(|e| Error::Io { path: DIR.into(), source: std::io::Error::other(e) })?;
    Ok(p.segments()[0].size)
}

fn base_cfg(batch: u64, per_segment: u64) -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(u32::try_from(per_segment * batch).unwrap_or(u32::MAX))
        .retention_ms(None)
        .durability(Durability::EveryAppend)
}

fn distinct(n: u64) -> Vec<Rec> {
    (0..n).map(|i| rec(i, &format!("k{i:03}"), &format!("value-{i:06}"))).collect()
}

fn after_records(from: u64, n: u64) -> Vec<Rec> {
    (from..from + n).map(|i| rec(i, &format!("a{i:03}"), &format!("after-{i:06}"))).collect()
}

/// Retention by size: 30 batches in segments of 5, a limit of 12 batches: three segments go.
fn retention_workload() -> Result<(Workload, Expect), Box<dyn std::error::Error>> {
    let batch = batch_size()?;
    let cfg = base_cfg(batch, 5);
    let initial = distinct(30);
    let w = Workload {
        op_cfg: cfg.clone().retention_bytes(Some(12 * batch)),
        cfg,
        after: after_records(30, 3),
        initial: initial.clone(),
        rolls: vec![],
        op: Op::Retention,
    };
    let (start, recs) = after_op(&w)?;
    assert_eq!(start, 15, "three segments of five go");
    assert_eq!(offs(&recs), (15..30).collect::<Vec<_>>());
    Ok((w, Expect { start_before: 0, start_after: 15, before: initial.clone(), after: recs, ranges: None }))
}

/// Retention by time of everything, the active segment too (rolled first).
fn expire_all_workload() -> Result<(Workload, Expect), Box<dyn std::error::Error>> {
    let batch = batch_size()?;
    let cfg = base_cfg(batch, 5);
    let initial = distinct(13);
    let w = Workload {
        op_cfg: cfg.clone().retention_ms(Some(1_000)),
        cfg,
        after: after_records(13, 2),
        initial: initial.clone(),
        rolls: vec![],
        op: Op::Retention,
    };
    let (start, recs) = after_op(&w)?;
    assert_eq!((start, recs.len()), (13, 0));
    Ok((w, Expect { start_before: 0, start_after: 13, before: initial, after: recs, ranges: None }))
}

/// `advance_log_start` into the middle of a segment: the segments wholly below it go.
fn advance_workload() -> Result<(Workload, Expect), Box<dyn std::error::Error>> {
    let batch = batch_size()?;
    let cfg = base_cfg(batch, 5);
    let initial = distinct(30);
    let w = Workload {
        op_cfg: cfg.clone(),
        cfg,
        after: after_records(30, 2),
        initial: initial.clone(),
        rolls: vec![],
        op: Op::AdvanceLogStart(17),
    };
    let (start, recs) = after_op(&w)?;
    assert_eq!(start, 17);
    Ok((w, Expect { start_before: 0, start_after: 17, before: initial, after: recs, ranges: None }))
}

/// Keys that repeat, with some tombstones, from `rng`.
fn repeated(rng: &mut Rng, n: u64, keys: u64) -> Vec<Rec> {
    (0..n)
        .map(|i| {
            let k = format!("k{:03}", rng.below(keys));
            let v = (rng.below(8) != 0).then(|| format!("value-{i:06}").into_bytes());
            Rec { offset: i, key: k.into_bytes(), value: v }
        })
        .collect()
}

/// Compaction of small segments (rolled by hand) that merge into one group: one swap replacing
/// several segments by one.
fn compact_one_group_workload(seed: u64) -> Result<(Workload, Expect), Box<dyn std::error::Error>> {
    let batch = batch_size()?;
    let cfg = base_cfg(batch, 40).cleanup_policy(CleanupPolicy::COMPACT);
    let initial = repeated(&mut Rng(seed), 24, 6);
    let rolls = vec![3, 7, 11, 15, 19, 23];
    let w = Workload {
        op_cfg: cfg.clone(),
        cfg,
        after: after_records(24, 2),
        initial: initial.clone(),
        rolls: rolls.clone(),
        op: Op::Compact,
    };
    let (_, recs) = after_op(&w)?;
    let want = full_pass(&initial, 24);
    assert_eq!(recs, want, "seed {seed}: the clean run compacts as the model says");
    assert!(want.len() < initial.len(), "seed {seed}: something to remove");
    // One group: treat the whole built log as one range.
    Ok((w, Expect { start_before: 0, start_after: 0, before: initial, after: want, ranges: Some(vec![0]) }))
}

/// Compaction of full segments: each its own group, swapped one after the other.
fn compact_groups_workload(seed: u64) -> Result<(Workload, Expect), Box<dyn std::error::Error>> {
    let batch = batch_size()?;
    let cfg = base_cfg(batch, 5).cleanup_policy(CleanupPolicy::COMPACT);
    let initial = repeated(&mut Rng(seed), 30, 7);
    let w = Workload {
        op_cfg: cfg.clone(),
        cfg,
        after: after_records(30, 2),
        initial: initial.clone(),
        rolls: vec![29],
        op: Op::Compact,
    };
    let (_, recs) = after_op(&w)?;
    let want = full_pass(&initial, 30);
    assert_eq!(recs, want, "seed {seed}: the clean run compacts as the model says");
    // The segments of the built log (each its own group: two never fit in one).
    let ranges: Vec<u64> = {
        let fs = SimFs::new();
        let p = open(&fs, &w.cfg)?;
        for r in &w.initial {
            put(&p, r)?;
        }
        p.roll()?;
        p.segments().iter().filter(|s| !s.active).map(|s| s.base_offset).collect()
    };
    assert!(ranges.len() >= 5, "seed {seed}: {ranges:?}");
    // Several groups really change.
    let changed = ranges
        .iter()
        .filter(|&&b| {
            let e = ranges.iter().find(|&&x| x > b).copied().unwrap_or(30);
            let cut = |v: &[Rec]| v.iter().filter(|r| r.offset >= b && r.offset < e).count();
            cut(&initial) != cut(&want)
        })
        .count();
    assert!(changed >= 3, "seed {seed}: only {changed} groups change");
    Ok((w, Expect { start_before: 0, start_after: 0, before: initial, after: want, ranges: Some(ranges) }))
}

// ---------------------------------------------------------------------------------------------
// The sweeps.

#[test]
fn crash_sweep_retention() -> TestResult {
    let seed = seed("crash_sweep_retention");
    let (w, ex) = retention_workload()?;
    sweep("retention", seed, &w, &ex, u64::MAX, true)
}

#[test]
fn crash_sweep_retention_of_everything() -> TestResult {
    let seed = seed("crash_sweep_retention_of_everything");
    let (w, ex) = expire_all_workload()?;
    sweep("retention of everything", seed, &w, &ex, u64::MAX, true)
}

#[test]
fn crash_sweep_advance_log_start() -> TestResult {
    let seed = seed("crash_sweep_advance_log_start");
    let (w, ex) = advance_workload()?;
    sweep("advance_log_start", seed, &w, &ex, u64::MAX, true)
}

#[test]
fn crash_sweep_compaction_one_group() -> TestResult {
    let seed = seed("crash_sweep_compaction_one_group");
    let (w, ex) = compact_one_group_workload(seed)?;
    sweep("compaction, one group", seed, &w, &ex, u64::MAX, true)
}

#[test]
fn crash_sweep_compaction_several_groups() -> TestResult {
    let seed = seed("crash_sweep_compaction_several_groups");
    let (w, ex) = compact_groups_workload(seed)?;
    sweep("compaction, several groups", seed, &w, &ex, 120, true)
}

/// After any crash during compaction and a reopen, the next pass finishes the job: the log is
/// exactly the model's, and clean.
#[test]
fn compaction_converges_after_a_crash() -> TestResult {
    let seed = seed("compaction_converges_after_a_crash");
    let (w, _) = compact_groups_workload(seed)?;
    let total = {
        let fs = SimFs::new();
        run(&fs, &w)?;
        fs.mutating_ops()
    };
    for k in points(0, total, 150, seed) {
        let fs = SimFs::new();
        fs.crash_after(k);
        let pr = run(&fs, &w)?;
        fs.crash(CrashMode::LoseUnsynced);
        let p = open(&fs, &w.cfg)?;
        if !pr.built {
            continue;
        }
        let have = read_all(&p)?;
        let upto = p.segments().last().map_or(0, |s| s.base_offset);
        let r = p.compact()?;
        let mut all = w.initial.clone();
        all.extend(have.iter().filter(|r| r.offset >= 30).cloned());
        assert_eq!(read_all(&p)?, full_pass(&all, upto), "seed {seed}, crash after {k}: {r:?}");
        assert!(!p.compact()?.cleaned, "seed {seed}, crash after {k}: still dirty");
    }
    Ok(())
}

/// Run with `cargo test --release --test crash_maintenance -- --ignored`.
#[test]
#[ignore = "long: cargo test --release --test crash_maintenance -- --ignored"]
fn crash_sweep_compaction_long() -> TestResult {
    let base = seed("crash_sweep_compaction_long");
    for i in 0..6 {
        let s = Rng(base ^ i).next_u64();
        let (w, ex) = compact_groups_workload(s)?;
        sweep("compaction, several groups", s, &w, &ex, u64::MAX, true)?;
        let (w, ex) = compact_one_group_workload(s)?;
        sweep("compaction, one group", s, &w, &ex, u64::MAX, true)?;
    }
    Ok(())
}
