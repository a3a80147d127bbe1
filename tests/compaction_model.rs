//! Model-based test of compaction and retention: random sequences of keyed appends (with
//! repeated keys and tombstones), rolls, compaction passes (with maps small enough for partial
//! passes), retention, log-start moves, time passing, reopens and power losses (at an operation
//! boundary, and in the middle of a pass) on the simulated file system with `EveryAppend`
//! durability. After every step the log is checked against what was appended:
//!
//! - every record read is the one appended at its offset (survivors keep their offsets and
//!   contents), in order, at or above the log start; the log end is the number of appends;
//! - the log start never moves back, and under `compact` only `advance_log_start` moves it;
//! - every key's latest record at or above the log start is readable — a tombstone too, until a
//!   pass at least `delete.retention.ms` after one that could have stamped its horizon — and
//!   once a key's latest tombstone is gone, no earlier record of that key is readable;
//! - after a pass, the keys below its `cleaned_up_to` are unique, and a pass that is neither
//!   partial nor held back by `min.compaction.lag.ms` cleans up to the active segment.
//!
//! 256 cases by default (`PROPTEST_CASES` for more); the run's seed is printed
//! (`PARTLOG_SEED` replays it) and failures are saved to
//! `tests/compaction_model.proptest-regressions`, replayed first on every run: commit that file.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{CleanerOptions, CleanupPolicy, Durability, ManualClock, Partition, Record, TopicConfig};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

mod common;

const DIR: &str = "/model-0";
const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
struct Setup {
    compact_delete: bool,
    segment_bytes: u32,
    delete_retention_ms: u64,
    retention_bytes: Option<u64>,
    retention_ms: Option<u64>,
    min_lag_ms: u64,
    /// `None`: the default map (every key fits).
    dedupe_bytes: Option<u64>,
    keys: u8,
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        key: u8,
        tombstone: bool,
        len: u8,
    },
    Batch(Vec<(u8, bool, u8)>),
    Roll,
    Compact,
    Retention,
    /// Moves the log start a fraction (`/ 256`) of the way to the end.
    Advance(u8),
    Tick(u16),
    Reopen,
    Crash,
    /// Power loss after `after` mutating operations of a pass.
    CrashDuring {
        compact: bool,
        after: u8,
    },
}

/// A record as appended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    ts: i64,
}

struct Model {
    setup: Setup,
    /// Everything appended, by offset (there is no truncation here).
    appended: Vec<Rec>,
    /// The log start `advance_log_start` asked for (a lower bound; exact under `compact`).
    asked_start: u64,
    /// The log start seen last (it never moves back).
    seen_start: u64,
    /// Passes run or interrupted: (clock, log end at the time).
    passes: Vec<(i64, u64)>,
}

impl Model {
    fn config(&self) -> TopicConfig {
        let s = &self.setup;
        let policy = if s.compact_delete { CleanupPolicy::COMPACT_DELETE } else { CleanupPolicy::COMPACT };
        TopicConfig::default()
            .cleanup_policy(policy)
            .segment_bytes(s.segment_bytes)
            .index_interval_bytes(128)
            .delete_retention_ms(s.delete_retention_ms)
            .retention_bytes(s.retention_bytes)
            .retention_ms(s.retention_ms)
            .min_compaction_lag_ms(s.min_lag_ms)
            .durability(Durability::EveryAppend)
    }

    fn cleaner(&self) -> CleanerOptions {
        match self.setup.dedupe_bytes {
            Some(b) => CleanerOptions::default().dedupe_buffer_bytes(b),
            None => CleanerOptions::default(),
        }
    }

    /// Whether a pass at least `delete.retention.ms` after one that saw the tombstone at
    /// `offset` has run (only then may the tombstone be gone).
    fn tombstone_may_be_gone(&self, offset: u64) -> bool {
        let dr = i64::try_from(self.setup.delete_retention_ms).unwrap_or(i64::MAX);
        self.passes.iter().enumerate().any(|(i, &(t1, end))| {
            end > offset && self.passes[i + 1..].iter().any(|&(t2, _)| t2 >= t1.saturating_add(dr))
        })
    }
}

fn record(m: &Model, key: u8, tombstone: bool, len: u8, offset: u64, now: i64) -> Rec {
    let k = format!("key{}", key % m.setup.keys.max(1)).into_bytes();
    let value = (!tombstone).then(|| {
        let mut v = format!("v{offset}-").into_bytes();
        v.resize(v.len() + usize::from(len % 40), b'a' + (offset % 26) as u8);
        v
    });
    Rec { key: k, value, ts: now }
}

fn open(fs: &Arc<SimFs>, clock: &Arc<ManualClock>, m: &Model) -> Result<Partition, String> {
    Partition::options()
        .fs(fs.clone())
        .clock(clock.clone())
        .config(m.config())
        .open(DIR)
        .map_err(|e| format!("open: {e}"))
}

fn to_record(r: &Rec) -> Record<'_> {
    let mut out = Record::new().key(&r.key).timestamp(r.ts);
    if let Some(v) = &r.value {
        out = out.value(v);
    }
    out
}

/// Checks the partition against the model; returns the records read (offset, record).
fn check(p: &Partition, m: &mut Model, ctx: &str) -> Result<Vec<(u64, Rec)>, String> {
    let start = p.log_start_offset();
    let end = p.log_end_offset();
    let n = m.appended.len() as u64;
    if end != n {
        return Err(format!("{ctx}: log end {end}, {n} records appended (all durable)"));
    }
    if start < m.seen_start || start < m.asked_start || start > end {
        return Err(format!("{ctx}: log start {start} (seen {}, asked {}, end {end})", m.seen_start, m.asked_start));
    }
    if !m.setup.compact_delete && start != m.asked_start {
        return Err(format!(
            "{ctx}: log start {start} under `compact`, only advance_log_start({}) moves it",
            m.asked_start
        ));
    }
    m.seen_start = start;
    let mut got = Vec::new();
    let mut last: Option<u64> = None;
    for r in p.iter(start) {
        let r = r.map_err(|e| format!("{ctx}: reading: {e}"))?;
        if last.is_some_and(|l| r.offset <= l) || r.offset < start || r.offset >= end {
            return Err(format!("{ctx}: offset {} after {last:?} (log {start}..{end})", r.offset));
        }
        last = Some(r.offset);
        let want = &m.appended[r.offset as usize];
        let have = Rec { key: r.key.clone().unwrap_or_default(), value: r.value.clone(), ts: r.timestamp };
        if &have != want {
            return Err(format!("{ctx}: offset {} holds {have:?}, appended {want:?}", r.offset));
        }
        got.push((r.offset, have));
    }
    // Every key's latest record.
    let present: BTreeSet<u64> = got.iter().map(|(o, _)| *o).collect();
    let mut latest: BTreeMap<&[u8], u64> = BTreeMap::new();
    for (o, r) in m.appended.iter().enumerate() {
        latest.insert(&r.key, o as u64);
    }
    for (key, &o) in &latest {
        if o < start || present.contains(&o) {
            continue;
        }
        let rec = &m.appended[o as usize];
        if rec.value.is_some() {
            return Err(format!("{ctx}: the latest value of {:?} (offset {o}) is gone", String::from_utf8_lossy(key)));
        }
        if !m.tombstone_may_be_gone(o) {
            return Err(format!(
                "{ctx}: the tombstone of {:?} at {o} is gone before its horizon could pass (passes {:?})",
                String::from_utf8_lossy(key),
                m.passes
            ));
        }
        if let Some((old, _)) = got.iter().find(|(_, r)| r.key == **key) {
            return Err(format!(
                "{ctx}: {:?}'s tombstone at {o} is gone but its older record at {old} came back",
                String::from_utf8_lossy(key)
            ));
        }
    }
    Ok(got)
}

fn run(setup: &Setup, ops: &[Op]) -> Result<(), String> {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let mut m = Model { setup: setup.clone(), appended: Vec::new(), asked_start: 0, seen_start: 0, passes: Vec::new() };
    let mut p = open(&fs, &clock, &m)?;
    for (i, op) in ops.iter().enumerate() {
        let ctx = format!("op #{i} {op:?}");
        let now = partlog::Clock::now_ms(&*clock);
        match op {
            Op::Append { key, tombstone, len } => {
                let r = record(&m, *key, *tombstone, *len, m.appended.len() as u64, now);
                let at = p.append(to_record(&r)).map_err(|e| format!("{ctx}: {e}"))?;
                if at.offset != m.appended.len() as u64 {
                    return Err(format!("{ctx}: appended at {}, expected {}", at.offset, m.appended.len()));
                }
                m.appended.push(r);
            }
            Op::Batch(items) => {
                if items.is_empty() {
                    continue;
                }
                let base = m.appended.len() as u64;
                let recs: Vec<Rec> =
                    items.iter().enumerate().map(|(j, &(k, t, l))| record(&m, k, t, l, base + j as u64, now)).collect();
                let batch: Vec<Record<'_>> = recs.iter().map(to_record).collect();
                let at = p.append_batch(&batch).map_err(|e| format!("{ctx}: {e}"))?;
                if at.base_offset != base {
                    return Err(format!("{ctx}: batch at {}, expected {base}", at.base_offset));
                }
                m.appended.extend(recs);
            }
            Op::Roll => {
                p.roll().map_err(|e| format!("{ctx}: {e}"))?;
            }
            Op::Compact => {
                let active = p.segments().last().map_or(0, |s| s.base_offset);
                m.passes.push((now, m.appended.len() as u64));
                let r = p.compact_with(&m.cleaner()).map_err(|e| format!("{ctx}: {e}"))?;
                let got = check(&p, &mut m, &ctx)?;
                let start = p.log_start_offset();
                let mut keys = BTreeSet::new();
                for (o, rec) in got.iter().filter(|(o, _)| *o >= start && *o < r.cleaned_up_to) {
                    if !keys.insert(rec.key.clone()) {
                        return Err(format!(
                            "{ctx}: key {:?} twice below cleaned_up_to {} (again at {o}): {r:?}",
                            String::from_utf8_lossy(&rec.key),
                            r.cleaned_up_to
                        ));
                    }
                }
                if r.cleaned && !r.partial && m.setup.min_lag_ms == 0 && r.cleaned_up_to != active {
                    return Err(format!(
                        "{ctx}: a whole pass stopped at {} before the active segment {active}",
                        r.cleaned_up_to
                    ));
                }
            }
            Op::Retention => {
                p.run_retention().map_err(|e| format!("{ctx}: {e}"))?;
            }
            Op::Advance(f) => {
                let (s, e) = (p.log_start_offset(), p.log_end_offset());
                let to = s + (e - s) * u64::from(*f) / 255;
                p.advance_log_start(to).map_err(|e| format!("{ctx}: {e}"))?;
                m.asked_start = m.asked_start.max(to);
            }
            Op::Tick(ms) => clock.advance(i64::from(*ms) * 10),
            Op::Reopen => {
                p.close().map_err(|e| format!("{ctx}: close: {e}"))?;
                drop(p);
                p = open(&fs, &clock, &m)?;
            }
            Op::Crash => {
                fs.crash(CrashMode::LoseUnsynced);
                drop(p);
                p = open(&fs, &clock, &m).map_err(|e| format!("{ctx}: {e}"))?;
            }
            Op::CrashDuring { compact, after } => {
                fs.crash_after(u64::from(*after));
                if *compact {
                    m.passes.push((now, m.appended.len() as u64));
                    let _ = p.compact_with(&m.cleaner());
                } else {
                    let _ = p.run_retention();
                }
                fs.crash(CrashMode::LoseUnsynced);
                drop(p);
                p = open(&fs, &clock, &m).map_err(|e| format!("{ctx}: {e}"))?;
            }
        }
        check(&p, &mut m, &ctx)?;
    }
    // Finally, a full pass over everything sealed leaves each key once.
    p.roll().map_err(|e| format!("final roll: {e}"))?;
    let now = partlog::Clock::now_ms(&*clock);
    m.passes.push((now, m.appended.len() as u64));
    let r = p.compact().map_err(|e| format!("final compact: {e}"))?;
    let got = check(&p, &mut m, "final pass")?;
    let keys: BTreeSet<&Vec<u8>> = got.iter().map(|(_, r)| &r.key).collect();
    if keys.len() != got.len() && m.setup.min_lag_ms == 0 {
        return Err(format!("final pass left duplicate keys: {r:?}"));
    }
    Ok(())
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        500u32..1_500,
        prop_oneof![Just(0u64), 1u64..3_000, Just(86_400_000)],
        prop::option::weighted(0.5, 600u64..4_000),
        prop::option::weighted(0.3, 2_000u64..20_000),
        prop_oneof![4 => Just(0u64), 1 => 100u64..3_000],
        prop::option::weighted(0.5, 48u64..400),
        1u8..12,
    )
        .prop_map(
            |(
                compact_delete,
                segment_bytes,
                delete_retention_ms,
                retention_bytes,
                retention_ms,
                min_lag_ms,
                dedupe_bytes,
                keys,
            )| Setup {
                compact_delete,
                segment_bytes,
                delete_retention_ms,
                retention_bytes,
                retention_ms,
                min_lag_ms,
                dedupe_bytes,
                keys,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let item = (any::<u8>(), prop::bool::weighted(0.15), any::<u8>());
    prop_oneof![
        30 => item.prop_map(|(key, tombstone, len)| Op::Append { key, tombstone, len }),
        8 => vec(item, 0..6).prop_map(Op::Batch),
        6 => Just(Op::Roll),
        8 => Just(Op::Compact),
        4 => Just(Op::Retention),
        2 => any::<u8>().prop_map(Op::Advance),
        6 => any::<u16>().prop_map(|t| Op::Tick(t % 400)),
        2 => Just(Op::Reopen),
        2 => Just(Op::Crash),
        2 => (any::<bool>(), 0u8..60).prop_map(|(compact, after)| Op::CrashDuring { compact, after }),
    ]
}

proptest! {
    #![proptest_config(Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(common::seed("compaction_matches_model")),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    })]

    #[test]
    fn compaction_matches_model(setup in setup(), ops in vec(op(), 1..80)) {
        run(&setup, &ops).map_err(TestCaseError::fail)?;
    }
}

/// A fixed scenario through every operation, so the harness is known to check something.
#[test]
fn fixed_scenario_every_op() -> Result<(), String> {
    let setup = Setup {
        compact_delete: true,
        segment_bytes: 300,
        delete_retention_ms: 500,
        retention_bytes: Some(3_000),
        retention_ms: None,
        min_lag_ms: 0,
        dedupe_bytes: Some(72),
        keys: 4,
    };
    let mut ops = Vec::new();
    for i in 0..40u8 {
        ops.push(Op::Append { key: i % 5, tombstone: i % 7 == 3, len: i });
        if i % 6 == 5 {
            ops.push(Op::Compact);
            ops.push(Op::Tick(30));
        }
    }
    ops.extend([
        Op::Roll,
        Op::Compact,
        Op::Tick(100),
        Op::Compact,
        Op::CrashDuring { compact: true, after: 5 },
        Op::Reopen,
        Op::Batch(vec![(1, false, 3), (2, true, 0), (3, false, 9)]),
        Op::Crash,
        Op::Retention,
        Op::Advance(128),
        Op::CrashDuring { compact: false, after: 2 },
        Op::Roll,
        Op::Compact,
    ]);
    run(&setup, &ops)
}
