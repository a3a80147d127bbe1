//! Crash-point sweeps on the simulated file system.
//!
//! A workload is first run cleanly to count its mutating file-system operations `N`; then, for
//! every `k` in `0..N` (or a dense sample), a fresh [`SimFs`] is told to stop the world after
//! `k` operations, the workload runs until its first error, the machine "loses power" in one
//! of the [`CrashMode`]s, and the partition is reopened and checked against an independent
//! model of what was appended (offsets are computed from the workload, never read back from
//! the code under test).
//!
//! Every randomized test prints `PARTLOG_SEED=<n>`; set that env var to replay it. The long
//! variants are `#[ignore]`d: `cargo test --release --test crash_sim -- --ignored`.

use std::path::Path;
use std::sync::Arc;

use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{Durability, Error, ManualClock, Partition, Record, StoredRecord, TopicConfig};

mod common;
use common::{Rng, seed};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The partition directory: a child of the (always durable) root.
const DIR: &str = "/topic-0";
/// The manual clock's time; record timestamps are near it.
const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Seeds and randomness.

fn mix(seed: u64, a: u64) -> u64 {
    Rng(seed ^ a.wrapping_mul(0xA24B_AED4_963E_E407)).next_u64()
}

// ---------------------------------------------------------------------------------------------
// The model.

/// A record as the test appended it; what must come back at its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: i64,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Rec {
    fn to_record(&self) -> Record<'_> {
        let mut r = Record::new().timestamp(self.ts);
        if let Some(k) = &self.key {
            r = r.key(k);
        }
        if let Some(v) = &self.value {
            r = r.value(v);
        }
        for (k, v) in &self.headers {
            r = match v {
                Some(v) => r.header(k.as_str(), v),
                None => r.null_header(k.as_str()),
            };
        }
        r
    }

    fn matches(&self, s: &StoredRecord) -> bool {
        s.key == self.key && s.value == self.value && s.timestamp == self.ts && s.headers == self.headers
    }
}

/// One append call: a single record (`len() == 1`, via `append`) or a batch (`append_batch`).
type Op = Vec<Rec>;

/// `ops` appends whose contents are tagged with `gen` so records of different phases never
/// look alike.
fn gen_ops(rng: &mut Rng, generation: u32, count: usize) -> Vec<Op> {
    let mut ops = Vec::with_capacity(count);
    for i in 0..count {
        // At most 5 records of at most ~80 bytes: a batch always fits a 512-byte segment.
        let n = if rng.below(3) == 0 { rng.range(2, 5) } else { 1 };
        let op = (0..n)
            .map(|j| {
                let vlen = rng.range(8, 48) as usize;
                let fill = b'a' + (rng.below(26) as u8);
                let mut value = format!("g{generation}-op{i}-r{j}-").into_bytes();
                value.resize(vlen.max(value.len()), fill);
                let tombstone = rng.below(17) == 0;
                let key = (rng.below(4) != 0).then(|| format!("key-{}", rng.below(10)).into_bytes());
                let headers = if rng.below(5) == 0 {
                    vec![
                        ("h".to_owned(), Some(format!("{generation}/{i}/{j}").into_bytes())),
                        ("null".to_owned(), None),
                    ]
                } else {
                    Vec::new()
                };
                Rec { key, value: (!tombstone).then_some(value), ts: T0 - 10_000 + (i as i64) * 10 + j as i64, headers }
            })
            .collect();
        ops.push(op);
    }
    ops
}

fn config(durability: Durability) -> TopicConfig {
    TopicConfig::default().segment_bytes(512).index_interval_bytes(64).durability(durability)
}

fn open(fs: &Arc<SimFs>, cfg: &TopicConfig) -> Result<Partition, Error> {
    Partition::options().fs(fs.clone()).clock(ManualClock::new(T0)).config(cfg.clone()).open(DIR)
}

fn append(p: &Partition, op: &Op) -> Result<partlog::AppendInfo, Error> {
    if let [one] = op.as_slice() {
        p.append(one.to_record()).map(Into::into)
    } else {
        let recs: Vec<Record<'_>> = op.iter().map(Rec::to_record).collect();
        p.append_batch(&recs)
    }
}

/// Everything readable, from the log start to the end.
fn read_all(p: &Partition) -> Result<Vec<StoredRecord>, Error> {
    p.iter(p.log_start_offset()).collect()
}

/// What a crashed workload got done before its first error.
#[derive(Debug, Default, Clone)]
struct Progress {
    /// Appends that returned `Ok`, a prefix of the attempted ones.
    acked_ops: usize,
    /// Records appended with `Ok` before the last successful `sync()` (or by `EveryAppend`).
    durable_records: u64,
    /// Whether the workload ran to the end (close included) without an error.
    finished: bool,
}

/// Cumulative record counts: `bounds[i]` is the first offset of op `i`; `bounds[ops.len()]` the
/// end. A recovered log may only end at one of these (batches are all-or-nothing).
fn bounds(ops: &[Op]) -> Vec<u64> {
    let mut b = vec![0u64];
    for op in ops {
        b.push(b.last().copied().unwrap_or(0) + op.len() as u64);
    }
    b
}

/// Runs `ops` on a fresh partition: open, append each (checking the returned offset against
/// the model), with `Durability::Os` a `sync()` every `sync_every` appends, then close. Stops
/// at the first error (the simulated power cut). `Err` only for a wrong acknowledged offset.
fn run_appends(fs: &Arc<SimFs>, cfg: &TopicConfig, ops: &[Op], sync_every: usize) -> Result<Progress, String> {
    let mut pr = Progress::default();
    let every_append = cfg.durability_mode() == Durability::EveryAppend;
    let b = bounds(ops);
    let Ok(p) = open(fs, cfg) else { return Ok(pr) };
    for (i, op) in ops.iter().enumerate() {
        match append(&p, op) {
            Ok(info) => {
                if info.base_offset != b[i] || info.last_offset + 1 != b[i + 1] {
                    return Err(format!(
                        "append #{i} acknowledged at {info:?}, expected offsets {}..{}",
                        b[i],
                        b[i + 1]
                    ));
                }
                pr.acked_ops = i + 1;
                if every_append {
                    pr.durable_records = b[i + 1];
                }
            }
            Err(_) => return Ok(pr),
        }
        if sync_every > 0 && (i + 1) % sync_every == 0 {
            if p.sync().is_err() {
                return Ok(pr);
            }
            pr.durable_records = b[i + 1];
        }
    }
    if p.close().is_ok() {
        pr.durable_records = b[ops.len()];
        pr.finished = true;
    }
    Ok(pr)
}

/// Checks a reopened partition against the model: the log is `ops[..m]` for some `m` with
/// `acked_ops <= m <= acked_ops + 1` (the failed append may or may not have landed), holding
/// at least `durable_records`; every record has the right offset and contents. Returns the
/// record count.
fn check_prefix(p: &Partition, ops: &[Op], pr: &Progress, ctx: &str) -> Result<u64, String> {
    let b = bounds(ops);
    let flat: Vec<&Rec> = ops.iter().flatten().collect();
    if p.log_start_offset() != 0 {
        return Err(format!("{ctx}: log start {} after a crash, nothing advanced it", p.log_start_offset()));
    }
    let got = read_all(p).map_err(|e| format!("{ctx}: reading the recovered log: {e}"))?;
    let n = got.len() as u64;
    for (i, r) in got.iter().enumerate() {
        if r.offset != i as u64 {
            return Err(format!("{ctx}: record #{i} has offset {} (offsets must be dense from 0)", r.offset));
        }
        match flat.get(i) {
            Some(want) if want.matches(r) => {}
            Some(want) => return Err(format!("{ctx}: offset {i} holds {r:?}, appended {want:?}")),
            None => return Err(format!("{ctx}: offset {i} holds {r:?}, which was never appended")),
        }
    }
    if p.log_end_offset() != n {
        return Err(format!("{ctx}: next_offset {} but {n} records readable", p.log_end_offset()));
    }
    let Some(m) = b.iter().position(|&x| x == n) else {
        return Err(format!("{ctx}: the log ends at {n}, inside a batch (bounds {b:?}): a batch was split"));
    };
    if n < pr.durable_records {
        return Err(format!(
            "{ctx}: lost durable records: {n} in the log, {} acknowledged durably",
            pr.durable_records
        ));
    }
    let attempted = (pr.acked_ops + 1).min(ops.len());
    if m > attempted {
        return Err(format!("{ctx}: {m} appends in the log but only {attempted} were attempted"));
    }
    Ok(n)
}

/// Appends one record after recovery; it must get offset `n` and read back.
fn check_append_after(p: &Partition, n: u64, ctx: &str) -> Result<(), String> {
    let rec = Rec { key: Some(b"after".to_vec()), value: Some(b"recovery".to_vec()), ts: T0, headers: vec![] };
    let info = append(p, &vec![rec.clone()]).map_err(|e| format!("{ctx}: append after recovery: {e}"))?;
    if info.base_offset != n {
        return Err(format!("{ctx}: append after recovery got offset {}, expected {n}", info.base_offset));
    }
    let back = p.iter(n).next().ok_or(format!("{ctx}: appended record missing"))?;
    let back = back.map_err(|e| format!("{ctx}: reading appended record: {e}"))?;
    if !rec.matches(&back) || back.offset != n {
        return Err(format!("{ctx}: appended record reads back as {back:?}"));
    }
    Ok(())
}

fn modes(seed: u64, k: u64) -> [CrashMode; 3] {
    [
        CrashMode::LoseUnsynced,
        CrashMode::TornPrefix { seed: mix(seed, 2 * k) },
        CrashMode::Garbage { seed: mix(seed, 2 * k + 1) },
    ]
}

/// The `k`s to crash at: all of `0..n` when `n <= max`, else a seeded sample of about `max`
/// that always includes the first and last few.
fn crash_points(n: u64, max: u64, seed: u64) -> Vec<u64> {
    if n <= max {
        return (0..n).collect();
    }
    let mut rng = Rng(seed ^ 0xC0FF_EE00);
    let mut ks: Vec<u64> = (0..n).filter(|_| rng.below(n) < max).collect();
    ks.extend((0..4).chain(n.saturating_sub(4)..n));
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// Mutating operations of a clean run of `f` on a fresh file system.
fn count_ops(f: impl FnOnce(&Arc<SimFs>) -> Result<Progress, String>) -> Result<u64, String> {
    let fs = SimFs::new();
    let pr = f(&fs)?;
    if !pr.finished {
        return Err("the clean run of the workload failed".into());
    }
    Ok(fs.mutating_ops())
}

/// Checks that the crash workload goes through several segments (otherwise the sweep would not
/// exercise rolls), by reopening a clean run.
fn assert_rolls(cfg: &TopicConfig, ops: &[Op], min_segments: usize) -> TestResult {
    let fs = SimFs::new();
    let pr = run_appends(&fs, cfg, ops, 0)?;
    assert!(pr.finished);
    let p = open(&fs, cfg)?;
    let segs = p.segments().len();
    assert!(segs >= min_segments, "workload made only {segs} segments; it must force several rolls");
    let n = check_prefix(&p, ops, &pr, "clean run")?;
    assert_eq!(n, bounds(ops)[ops.len()]);
    Ok(())
}

/// The append sweep: for each crash point and mode, crash, reopen, check. Returns the number of
/// scenarios run.
fn append_sweep(seed: u64, durability: Durability, n_ops: usize, max_points: u64, sync_every: usize) -> TestResult {
    let cfg = config(durability);
    let ops = gen_ops(&mut Rng(seed), 1, n_ops);
    assert_rolls(&cfg, &ops, 4)?;
    let total = count_ops(|fs| run_appends(fs, &cfg, &ops, sync_every))?;
    let ks = crash_points(total, max_points, seed);
    println!("{total} mutating ops in a clean run; crashing at {} points x 3 modes", ks.len());
    let mut failures = Vec::new();
    // Scenarios where acknowledged records were lost (allowed only without fsync), and where the
    // append interrupted by the crash made it into the log anyway.
    let (mut lost_acked, mut kept_unacked) = (0u64, 0u64);
    let b = bounds(&ops);
    for &k in &ks {
        for mode in modes(seed, k) {
            let ctx = format!("seed {seed}, crash after {k} of {total} ops, {mode:?}");
            let one = || -> Result<(u64, u64), String> {
                let fs = SimFs::new();
                fs.crash_after(k);
                let pr = run_appends(&fs, &cfg, &ops, sync_every).map_err(|e| format!("{ctx}: {e}"))?;
                if pr.finished {
                    return Err(format!("{ctx}: the workload finished although the world stopped"));
                }
                fs.crash(mode);
                let p = open(&fs, &cfg).map_err(|e| format!("{ctx}: reopen failed: {e}"))?;
                let n = check_prefix(&p, &ops, &pr, &ctx)?;
                check_append_after(&p, n, &ctx)?;
                p.close().map_err(|e| format!("{ctx}: close: {e}"))?;
                // And once more, from the clean shutdown.
                let p = open(&fs, &cfg).map_err(|e| format!("{ctx}: second reopen failed: {e}"))?;
                if p.log_end_offset() != n + 1 {
                    return Err(format!("{ctx}: after a clean close next_offset {} != {}", p.log_end_offset(), n + 1));
                }
                Ok((n, b[pr.acked_ops]))
            };
            match one() {
                Ok((n, acked)) => {
                    lost_acked += u64::from(n < acked);
                    kept_unacked += u64::from(n > acked);
                }
                Err(e) => failures.push(e),
            }
        }
    }
    println!("{lost_acked} scenarios lost acknowledged records, {kept_unacked} kept an unacknowledged append");
    if durability == Durability::Os && failures.is_empty() {
        // Power loss without fsync must be able to lose acknowledged appends; if it never does,
        // the crash simulation (and so this sweep) is not doing its job.
        assert!(lost_acked > 0, "no crash lost an unsynced acknowledged append: the sweep exercises nothing");
    }
    report(failures)
}

/// Fails with the first failure after printing a few (a sweep runs to the end, so one run
/// shows how widespread a problem is).
fn report(failures: Vec<String>) -> TestResult {
    for f in failures.iter().take(6) {
        println!("FAILURE: {f}");
    }
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(format!("{} crash scenarios failed; the first: {first}", failures.len()).into()),
    }
}

/// `EveryAppend`: every acknowledged append survives every crash point in every mode; the log
/// is a prefix of what was attempted, with batches all-or-nothing; appends continue densely.
#[test]
fn crash_sweep_every_append() -> TestResult {
    let seed = seed("crash_sweep_every_append");
    append_sweep(seed, Durability::EveryAppend, 36, 600, 0)
}

/// `Os`: acknowledged but unsynced appends may be lost, but the log is still a prefix of what
/// was attempted (no garbage, no holes, no split batches), and whatever was acknowledged before
/// a successful `sync()` survives.
#[test]
fn crash_sweep_os_durability() -> TestResult {
    let seed = seed("crash_sweep_os_durability");
    append_sweep(seed, Durability::Os, 36, 600, 5)
}

/// Longer sweeps: every crash point, several seeds, more appends.
/// Run with `cargo test --release --test crash_sim -- --ignored`.
#[test]
#[ignore = "long: cargo test --release --test crash_sim -- --ignored"]
fn crash_sweep_long() -> TestResult {
    let base = seed("crash_sweep_long");
    for i in 0..8 {
        let s = mix(base, i);
        println!("sub-seed {s}");
        append_sweep(s, Durability::EveryAppend, 80, u64::MAX, 0)?;
        append_sweep(s, Durability::Os, 80, u64::MAX, 7)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Recovery is idempotent: a crash during recovery changes nothing.

/// The observable state of a reopened partition.
#[derive(Debug, PartialEq)]
struct Observed {
    log_start: u64,
    next_offset: u64,
    records: Vec<StoredRecord>,
}

fn observe(p: &Partition) -> Result<Observed, Error> {
    Ok(Observed { log_start: p.log_start_offset(), next_offset: p.log_end_offset(), records: read_all(p)? })
}

fn recovery_idempotence(seed: u64, n_ops: usize, max_points: u64) -> TestResult {
    let cfg = config(Durability::EveryAppend);
    let ops = gen_ops(&mut Rng(seed), 1, n_ops);
    let total = count_ops(|fs| run_appends(fs, &cfg, &ops, 0))?;
    let ks = crash_points(total, max_points, seed ^ 1);
    let mut recoveries_crashed = 0u64;
    for &k in &ks {
        for mode in modes(seed, k) {
            let crashed = || -> Result<(Arc<SimFs>, Progress), String> {
                let fs = SimFs::new();
                fs.crash_after(k);
                let pr = run_appends(&fs, &cfg, &ops, 0)?;
                fs.crash(mode);
                Ok((fs, pr))
            };
            // The direct reopen, and how many mutating operations its recovery makes.
            let (fs, pr) = crashed()?;
            let before = fs.mutating_ops();
            let p = open(&fs, &cfg).map_err(|e| format!("k={k} {mode:?}: reopen: {e}"))?;
            let recovery_ops = fs.mutating_ops() - before;
            let direct = observe(&p)?;
            check_prefix(&p, &ops, &pr, &format!("seed {seed}, k={k}, {mode:?}, direct reopen"))?;
            drop(p);
            for j in 0..recovery_ops {
                let second = match j % 3 {
                    0 => CrashMode::LoseUnsynced,
                    1 => CrashMode::TornPrefix { seed: mix(seed, j) },
                    _ => CrashMode::Garbage { seed: mix(seed, j) },
                };
                let ctx =
                    format!("seed {seed}, crash after {k} ops, {mode:?}, recovery crashed after {j} ops, {second:?}");
                let (fs, _) = crashed()?;
                fs.crash_after(j);
                match open(&fs, &cfg) {
                    Ok(p) => {
                        // Recovery made fewer than `j` ops this time: it must agree anyway.
                        drop(p);
                    }
                    Err(_) => recoveries_crashed += 1,
                }
                fs.crash(second);
                let p = open(&fs, &cfg).map_err(|e| format!("{ctx}: reopen after the second crash: {e}"))?;
                let again = observe(&p)?;
                if again != direct {
                    return Err(
                        format!("{ctx}: recovery is not idempotent:\n direct {direct:?}\n after {again:?}").into()
                    );
                }
                check_append_after(&p, direct.next_offset, &ctx)?;
            }
        }
    }
    println!("{} crash points, {recoveries_crashed} recoveries interrupted", ks.len());
    assert!(recoveries_crashed > 0, "no recovery was ever interrupted: the test exercises nothing");
    Ok(())
}

/// A crash during recovery (recovery cuts tails, rebuilds indexes, rewrites the checkpoint)
/// followed by a clean reopen gives the same log as a direct reopen.
#[test]
fn crash_during_recovery_is_idempotent() -> TestResult {
    let seed = seed("crash_during_recovery_is_idempotent");
    recovery_idempotence(seed, 24, 40)
}

/// Run with `cargo test --release --test crash_sim -- --ignored`.
#[test]
#[ignore = "long: cargo test --release --test crash_sim -- --ignored"]
fn crash_during_recovery_long() -> TestResult {
    let base = seed("crash_during_recovery_long");
    for i in 0..4 {
        recovery_idempotence(mix(base, i), 40, u64::MAX)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Crashes during truncate_to and advance_log_start.

/// The truncate/advance workload, and where in it things stand.
struct Plan {
    /// Phase A: appended before anything is cut.
    a: Vec<Op>,
    /// The truncation point: inside a multi-record batch of phase A, several segments back.
    t: u64,
    /// Phase C: appended after the truncation, at offsets from `t`.
    c: Vec<Op>,
    /// The new log start: below `t`, in a later segment than the first.
    s: u64,
    /// Phase E: appended after the log start moved.
    e: Vec<Op>,
}

#[derive(Debug, Default, Clone)]
struct CutProgress {
    a_acked: usize,
    truncate_ok: bool,
    truncate_synced: bool,
    c_acked: usize,
    advance_ok: bool,
    advance_synced: bool,
    e_acked: usize,
    finished: bool,
}

/// The plan for `seed`; with `mid_batch` the cut lands inside a 4-record batch (which must then
/// be rewritten), else on that batch's first offset.
fn plan(seed: u64, mid_batch: bool) -> Plan {
    let mut rng = Rng(seed);
    let mut a = gen_ops(&mut rng, 1, 30);
    // A 4-record batch about halfway, so the cut lands at or inside it and later segments go.
    let at = 14;
    a[at] = (0..4)
        .map(|j| Rec {
            key: Some(format!("cut-{j}").into_bytes()),
            value: Some(vec![b'0' + j as u8; 40]),
            ts: T0 - 5_000 + j,
            headers: vec![],
        })
        .collect();
    let b = bounds(&a);
    let t = if mid_batch { b[at] + 2 } else { b[at] };
    let s = b[at - 3] + 1;
    let c = gen_ops(&mut rng, 2, 6);
    let e = gen_ops(&mut rng, 3, 4);
    Plan { a, t, c, s, e }
}

/// Runs the whole truncate/advance workload with `EveryAppend`, recording progress; stops at
/// the first error. `Err` only for a wrong acknowledged offset.
fn run_cut(fs: &Arc<SimFs>, cfg: &TopicConfig, pl: &Plan) -> Result<CutProgress, String> {
    let mut pr = CutProgress::default();
    let Ok(p) = open(fs, cfg) else { return Ok(pr) };
    let mut expect = 0u64;
    let phase = |ops: &[Op], acked: &mut usize, expect: &mut u64| -> Result<bool, String> {
        for op in ops {
            match append(&p, op) {
                Ok(info) if info.base_offset == *expect => {
                    *expect += op.len() as u64;
                    *acked += 1;
                }
                Ok(info) => return Err(format!("append acknowledged at {}, expected {expect}", info.base_offset)),
                Err(_) => return Ok(false),
            }
        }
        Ok(true)
    };
    if !phase(&pl.a, &mut pr.a_acked, &mut expect)? {
        return Ok(pr);
    }
    if p.truncate_to(pl.t).is_err() {
        return Ok(pr);
    }
    pr.truncate_ok = true;
    if p.sync().is_err() {
        return Ok(pr);
    }
    pr.truncate_synced = true;
    expect = pl.t;
    if !phase(&pl.c, &mut pr.c_acked, &mut expect)? {
        return Ok(pr);
    }
    if p.advance_log_start(pl.s).is_err() {
        return Ok(pr);
    }
    pr.advance_ok = true;
    if p.sync().is_err() {
        return Ok(pr);
    }
    pr.advance_synced = true;
    if !phase(&pl.e, &mut pr.e_acked, &mut expect)? {
        return Ok(pr);
    }
    pr.finished = p.close().is_ok();
    Ok(pr)
}

/// What the log may hold after a crash, given the progress. `strict_atomic` additionally
/// requires an interrupted truncation to leave exactly the old or exactly the new log (not a
/// longer prefix of the old one).
fn check_cut(p: &Partition, pl: &Plan, pr: &CutProgress, strict_atomic: bool, ctx: &str) -> Result<u64, String> {
    let a: Vec<&Rec> = pl.a.iter().flatten().collect();
    let after: Vec<&Rec> =
        a[..pl.t as usize].iter().copied().chain(pl.c.iter().flatten()).chain(pl.e.iter().flatten()).collect();
    let b_old = bounds(&pl.a);
    let a_end = a.len() as u64;
    let start = p.log_start_offset();
    // The log start: 0 until advance_log_start returned Ok, then `s` for good.
    if pr.advance_ok && start != pl.s {
        return Err(format!("{ctx}: log start {start} after advance_log_start({}) returned Ok", pl.s));
    }
    if start != 0 && start != pl.s {
        return Err(format!("{ctx}: log start {start}, neither 0 nor {}", pl.s));
    }
    if start > 0 {
        match p.read(0, 1 << 20) {
            Err(Error::OffsetOutOfRange { .. }) => {}
            other => return Err(format!("{ctx}: read below the log start {start} gave {other:?}")),
        }
    }
    let got = read_all(p).map_err(|e| format!("{ctx}: reading: {e}"))?;
    let end = start + got.len() as u64;
    if p.log_end_offset() != end {
        return Err(format!("{ctx}: next_offset {} but records {start}..{end}", p.log_end_offset()));
    }
    for (i, r) in got.iter().enumerate() {
        let off = start + i as u64;
        if r.offset != off {
            return Err(format!("{ctx}: record #{i} from the log start has offset {} (expected {off})", r.offset));
        }
    }
    let at = |off: u64| &got[(off - start) as usize];
    let on = |hist: &[&Rec], off: u64| hist.get(off as usize).is_some_and(|w| w.matches(at(off)));
    for off in start..end.min(pl.t) {
        if !on(&a, off) {
            return Err(format!(
                "{ctx}: offset {off} (below the cut) holds {:?}, appended {:?}",
                at(off),
                a[off as usize]
            ));
        }
    }
    if pr.a_acked < pl.a.len() {
        // Crashed while appending phase A: as in the append sweep.
        let (lo, hi) = (b_old[pr.a_acked], b_old[pr.a_acked + 1]);
        if !(lo..=hi).contains(&end) || !b_old.contains(&end) || !(start..end).all(|o| on(&a, o)) {
            return Err(format!("{ctx}: log {start}..{end} is not a whole-batch prefix of the appends, {lo}..={hi}"));
        }
        return Ok(end);
    }
    if end < pl.t {
        return Err(format!("{ctx}: the log ends at {end}: records below the truncation point {} were lost", pl.t));
    }
    if !pr.truncate_synced {
        // truncate_to did not return Ok (followed by a sync): the old log or the new one.
        if let Some(off) = (pl.t..end).find(|&o| !on(&a, o)) {
            return Err(format!("{ctx}: interrupted truncation: offset {off} holds {:?}, not the old record", at(off)));
        }
        let exact = end == pl.t || end == a_end;
        if strict_atomic && !exact {
            return Err(format!(
                "{ctx}: interrupted truncation left {start}..{end}: neither the old log (..{a_end}) nor the new one (..{})",
                pl.t
            ));
        }
        if !exact && !b_old.contains(&end) {
            return Err(format!("{ctx}: interrupted truncation left the log ending at {end}, inside a batch"));
        }
        return Ok(end);
    }
    // The truncation returned Ok and was synced: records from `t` on are the new ones; no cut
    // record comes back.
    for off in pl.t..end {
        if !on(&after, off) {
            let was_cut = on(&a, off);
            return Err(format!(
                "{ctx}: offset {off} holds {:?}{} after truncate_to({}) returned Ok",
                at(off),
                if was_cut { ", a record that was cut" } else { ", never appended there" },
                pl.t
            ));
        }
    }
    let mut new_bounds = vec![pl.t];
    for op in pl.c.iter().chain(&pl.e) {
        new_bounds.push(new_bounds.last().copied().unwrap_or(0) + op.len() as u64);
    }
    if !new_bounds.contains(&end) {
        return Err(format!("{ctx}: the log ends at {end}, inside a batch (bounds {new_bounds:?})"));
    }
    let acked = new_bounds[pr.c_acked + pr.e_acked];
    if end < acked {
        return Err(format!("{ctx}: acknowledged records lost: log ends at {end}, acknowledged up to {acked}"));
    }
    let attempted = new_bounds[(pr.c_acked + pr.e_acked + 1).min(new_bounds.len() - 1)];
    if end > attempted {
        return Err(format!("{ctx}: the log ends at {end}, past the last attempted append ({attempted})"));
    }
    Ok(end)
}

fn cut_sweep(seed: u64, mid_batch: bool, strict_atomic: bool, max_points: u64) -> TestResult {
    let cfg = config(Durability::EveryAppend);
    let pl = plan(seed, mid_batch);
    // Sanity of the workload itself: the cut deletes whole segments and rewrites a batch, and
    // the log start move deletes segments.
    {
        let fs = SimFs::new();
        let p = open(&fs, &cfg)?;
        for op in &pl.a {
            append(&p, op)?;
        }
        let before = p.segments().len();
        p.truncate_to(pl.t)?;
        let after_cut = p.segments().len();
        assert!(after_cut < before, "truncate_to({}) must delete segments ({before} -> {after_cut})", pl.t);
        p.advance_log_start(pl.s)?;
        assert!(p.segments()[0].base_offset > 0, "advance_log_start({}) must delete a segment", pl.s);
    }
    let total = count_ops(|fs| {
        let pr = run_cut(fs, &cfg, &pl)?;
        Ok(Progress { finished: pr.finished, ..Progress::default() })
    })?;
    // The ops of phase A are covered by the append sweeps; crash densely after them.
    let phase_a = {
        let fs = SimFs::new();
        let p = open(&fs, &cfg)?;
        for op in &pl.a {
            append(&p, op)?;
        }
        fs.mutating_ops()
    };
    let ks: Vec<u64> = crash_points(total - phase_a, max_points, seed).into_iter().map(|k| k + phase_a).collect();
    println!(
        "truncate_to({}) / advance_log_start({}): {} ops after phase A, {} crash points",
        pl.t,
        pl.s,
        total - phase_a,
        ks.len()
    );
    let mut failures = Vec::new();
    for &k in &ks {
        for mode in modes(seed, k) {
            let one = || -> Result<(), String> {
                let ctx = format!("seed {seed}, crash after {k} of {total} ops, {mode:?}");
                let fs = SimFs::new();
                fs.crash_after(k);
                let pr = run_cut(&fs, &cfg, &pl).map_err(|e| format!("{ctx}: {e}"))?;
                let ctx = format!("{ctx}, {pr:?}");
                fs.crash(mode);
                let p = open(&fs, &cfg).map_err(|e| format!("{ctx}: reopen failed: {e}"))?;
                let end = check_cut(&p, &pl, &pr, strict_atomic, &ctx)?;
                check_append_after(&p, end, &ctx)
            };
            if let Err(e) = one() {
                failures.push(e);
            }
        }
    }
    report(failures)
}

/// Crashes during and after `truncate_to` (at a batch boundary) and `advance_log_start`:
/// records below the cut are never lost, cut records never come back once `truncate_to`
/// returned Ok, the log start never moves back once `advance_log_start` returned Ok,
/// acknowledged appends survive, the log stays a whole-batch prefix.
#[test]
fn crash_sweep_truncate_and_advance() -> TestResult {
    let seed = seed("crash_sweep_truncate_and_advance");
    cut_sweep(seed, false, false, 400)
}

/// As above, with the cut inside a batch (the batch is rewritten with the records below the
/// cut): those records were acknowledged durably and must survive a crash during the cut.
#[test]
fn crash_sweep_truncate_inside_batch() -> TestResult {
    let seed = seed("crash_sweep_truncate_inside_batch");
    cut_sweep(seed, true, false, 400)
}

/// Stricter: a truncation interrupted by a crash leaves exactly the old log or exactly the
/// new one, never a prefix in between.
#[test]
fn crash_sweep_truncate_is_atomic() -> TestResult {
    let seed = seed("crash_sweep_truncate_is_atomic");
    cut_sweep(seed, false, true, 400)
}

/// Run with `cargo test --release --test crash_sim -- --ignored`.
#[test]
#[ignore = "long: cargo test --release --test crash_sim -- --ignored"]
fn crash_sweep_truncate_long() -> TestResult {
    let base = seed("crash_sweep_truncate_long");
    for i in 0..8 {
        cut_sweep(mix(base, i), false, false, u64::MAX)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Targeted cases.

/// Opening a partition whose parent directories do not exist creates them; an acknowledged
/// `EveryAppend` record must survive a crash, so every new directory entry must be durable.
#[test]
fn new_nested_directory_is_durable() -> TestResult {
    let fs = SimFs::new();
    let cfg = config(Durability::EveryAppend);
    let dir = Path::new("/a/b/topic-0");
    let p = Partition::options().fs(fs.clone()).clock(ManualClock::new(T0)).config(cfg.clone()).open(dir)?;
    let info = p.append(Record::new().value("durable").timestamp(T0))?;
    assert_eq!(info.offset, 0);
    // Power loss while the partition is open (dropping it first would close it cleanly).
    fs.crash(CrashMode::LoseUnsynced);
    drop(p);
    let p = Partition::options().fs(fs.clone()).clock(ManualClock::new(T0)).config(cfg).open(dir)?;
    let got = read_all(&p)?;
    assert_eq!(got.len(), 1, "the acknowledged record was lost with its directory");
    assert_eq!(got[0].value.as_deref(), Some(&b"durable"[..]));
    Ok(())
}
