//! Compaction (`cleanup.policy=compact`), ported from Kafka's `LogCleanerTest`,
//! `LogCleanerManagerTest` and `LogCleanerParameterizedIntegrationTest` scenarios and named
//! after them where there is one.
//!
//! Expected logs come from models written here from Kafka's rules (`Cleaner.doClean`,
//! `shouldRetainRecord`, `groupSegmentsBySize`, `cleanableOffsets`), applied to what the test
//! appended — never from the engine's own plan or report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use partlog::fs::FileSystem;
use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{CleanerOptions, CleanupPolicy, Durability, Error, LogDir, ManualClock, Partition, Record, TopicConfig};

mod common;
use common::{Rng, seed};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DIR: &str = "/compacted-0";
const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// The model.

/// A record as appended, with the offset the append returned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: i64,
}

fn append(p: &Partition, key: Option<&[u8]>, value: Option<&[u8]>, ts: i64) -> Result<Rec, Error> {
    let mut r = Record::new().timestamp(ts);
    if let Some(k) = key {
        r = r.key(k);
    }
    if let Some(v) = value {
        r = r.value(v);
    }
    let at = p.append(r)?;
    Ok(Rec { offset: at.offset, key: key.map(<[u8]>::to_vec), value: value.map(<[u8]>::to_vec), ts })
}

fn read_all(p: &Partition) -> Result<Vec<Rec>, Error> {
    p.iter(p.log_start_offset())
        .map(|r| r.map(|s| Rec { offset: s.offset, key: s.key, value: s.value, ts: s.timestamp }))
        .collect()
}

/// One full pass (a map large enough for every key) over everything below `upto` (the
/// active segment's base): a keyed record stays iff it is its key's latest below `upto`;
/// keyless records go; everything at or above `upto` stays. Tombstones that are the latest stay
/// (their delete horizon is set, not passed).
fn full_pass(log: &[Rec], upto: u64) -> Vec<Rec> {
    let mut last: BTreeMap<&[u8], u64> = BTreeMap::new();
    for r in log.iter().filter(|r| r.offset < upto) {
        if let Some(k) = &r.key {
            last.insert(k, r.offset);
        }
    }
    log.iter()
        .filter(|r| r.offset >= upto || r.key.as_deref().is_some_and(|k| last.get(k) == Some(&r.offset)))
        .cloned()
        .collect()
}

/// What one pass with a map of `capacity` keys does (Kafka's `buildOffsetMap` + `cleanInto`):
/// map keys from `first_dirty` in offset order until a new key would not fit or the dirty
/// range (below `uncleanable`) ends; records at or below the last mapped offset stay iff their
/// key is unmapped or they are at/after the mapped offset. Returns the log and the new cleaner
/// offset (one past the last mapped offset; `uncleanable` when the whole range was mapped).
fn bounded_pass(log: &[Rec], first_dirty: u64, uncleanable: u64, capacity: usize) -> (Vec<Rec>, u64) {
    let mut map: BTreeMap<&[u8], u64> = BTreeMap::new();
    let mut end = uncleanable;
    for r in log.iter().filter(|r| r.offset >= first_dirty && r.offset < uncleanable) {
        let Some(k) = &r.key else { continue };
        if !map.contains_key(k.as_slice()) && map.len() == capacity {
            end = r.offset;
            break;
        }
        map.insert(k, r.offset);
    }
    let kept = log
        .iter()
        .filter(|r| {
            r.offset >= end
                || match &r.key {
                    None => false,
                    Some(k) => map.get(k.as_slice()).is_none_or(|&o| r.offset >= o),
                }
        })
        .cloned()
        .collect();
    (kept, end)
}

fn offsets(log: &[Rec]) -> Vec<u64> {
    log.iter().map(|r| r.offset).collect()
}

fn keys(log: &[Rec]) -> Vec<String> {
    log.iter().map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or(b"-")).into_owned()).collect()
}

fn active_base(p: &Partition) -> u64 {
    p.segments().last().map_or(0, |s| s.base_offset)
}

fn compact_cfg() -> TopicConfig {
    TopicConfig::default()
        .cleanup_policy(CleanupPolicy::COMPACT)
        .segment_bytes(1024)
        .durability(Durability::EveryAppend)
}

fn open(fs: &Arc<SimFs>, clock: &Arc<ManualClock>, cfg: &TopicConfig) -> Result<Partition, Error> {
    Partition::options().fs(fs.clone()).clock(clock.clone()).config(cfg.clone()).open(DIR)
}

fn value(rng: &mut Rng, tag: u64) -> Vec<u8> {
    let mut v = format!("v{tag}-").into_bytes();
    let n = rng.range(4, 40) as usize;
    v.extend(std::iter::repeat_n(b'a' + (tag % 26) as u8, n));
    v
}

/// For every offset in `[start, end)`: reading it returns the first survivor at or after it.
fn assert_reads_skip_to_survivors(p: &Partition, survivors: &[Rec], ctx: &str) -> TestResult {
    for o in p.log_start_offset()..p.log_end_offset() {
        let want = survivors.iter().find(|r| r.offset >= o);
        let got = p.read(o, 1)?;
        let first = got.iter().next().map(|r| r.offset());
        assert_eq!(first, want.map(|r| r.offset), "{ctx}: read({o})");
        let via_iter = p.iter(o).next().transpose()?.map(|r| r.offset);
        assert_eq!(via_iter, want.map(|r| r.offset), "{ctx}: iter({o})");
    }
    Ok(())
}

/// Sizes and counts of the segments wholly below `end`, from [`Partition::segments`].
fn below(p: &Partition, end: u64) -> (u32, u64) {
    let s: Vec<_> = p.segments().into_iter().filter(|s| !s.active && s.base_offset < end).collect();
    (s.len() as u32, s.iter().map(|s| s.size).sum())
}

// ---------------------------------------------------------------------------------------------
// What a pass keeps.

/// Kafka's `cleanerTest`: after compaction the log holds exactly the latest record of every
/// key below the active segment, at its original offset, in order, and everything in the
/// active segment; reading a removed offset returns the next survivor; the report's counts
/// match what changed. Again after more appends, and after a reopen.
#[test]
fn latest_value_per_key_is_kept_with_its_offset() -> TestResult {
    let seed = seed("latest_value_per_key_is_kept_with_its_offset");
    let mut rng = Rng::new(seed);
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = compact_cfg();
    let p = open(&fs, &clock, &cfg)?;
    let mut history = Vec::new();
    for round in 0..2u64 {
        for i in 0..250u64 {
            let key = format!("key-{}", rng.below(30)).into_bytes();
            let tombstone = rng.below(15) == 0;
            let v = value(&mut rng, round * 1000 + i);
            history.push(append(&p, Some(&key), (!tombstone).then_some(v.as_slice()), T0 + i as i64)?);
        }
        let upto = active_base(&p);
        assert!(p.segments().len() >= 5, "round {round}: the workload must span segments");
        let before = read_all(&p)?;
        let (segs_before, bytes_before) = below(&p, upto);
        let r = p.compact()?;
        let want = full_pass(&history, upto);
        let got = read_all(&p)?;
        assert_eq!(offsets(&got), offsets(&want), "seed {seed}, round {round}: surviving offsets");
        assert_eq!(got, want, "seed {seed}, round {round}: surviving records");
        assert!(r.cleaned && !r.partial, "{r:?}");
        assert_eq!(r.cleaned_up_to, upto, "{r:?}");
        assert_eq!(r.records_removed, (before.len() - got.len()) as u64, "{r:?}");
        assert_eq!((r.segments_before, r.bytes_before), (segs_before, bytes_before), "{r:?}");
        let (segs_after, bytes_after) = below(&p, upto);
        assert_eq!((r.segments_after, r.bytes_after), (segs_after, bytes_after), "{r:?}");
        assert!(r.bytes_after < r.bytes_before, "{r:?}");
        let distinct_dirty: BTreeSet<&[u8]> = history
            .iter()
            .filter(|x| x.offset >= r.first_dirty_offset && x.offset < upto)
            .filter_map(|x| x.key.as_deref())
            .collect();
        assert_eq!(r.keys_mapped, distinct_dirty.len() as u64, "{r:?}");
        assert!(r.map_bytes >= 24 * r.keys_mapped && r.map_bytes % 24 == 0, "{r:?}");
        assert_eq!((r.tombstones_removed, r.keyless_records_removed), (0, 0), "{r:?}");
        assert_reads_skip_to_survivors(&p, &want, &format!("seed {seed}, round {round}"))?;
        // Nothing is dirty any more.
        let again = p.compact()?;
        assert!(!again.cleaned && again.records_removed == 0, "{again:?}");
        assert_eq!(read_all(&p)?, want);
        history = want;
    }
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    assert_eq!(read_all(&p)?, history, "seed {seed}: after reopen");
    Ok(())
}

/// Kafka's `testCleanableOffsetsActiveSegment`: the active segment is never cleaned, however
/// dirty.
#[test]
fn active_segment_is_never_cleaned() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let p = open(&fs, &clock, &compact_cfg().segment_bytes(1 << 20))?;
    let mut history = Vec::new();
    for i in 0..50u64 {
        history.push(append(&p, Some(b"same"), Some(format!("{i}").as_bytes()), T0)?);
    }
    assert_eq!(p.segments().len(), 1);
    let r = p.compact()?;
    assert!(!r.cleaned && r.records_removed == 0 && r.segments_before == 0, "{r:?}");
    assert_eq!(read_all(&p)?, history);
    let st = p.cleaner_status();
    assert_eq!((st.passes, st.consecutive_failures), (1, 0), "{st:?}");
    assert!(st.last_report.is_some_and(|r| !r.cleaned) && st.last_error.is_none());
    // Once rolled, it is cleanable.
    assert!(p.roll()?);
    let r = p.compact()?;
    assert_eq!(r.records_removed, 49, "{r:?}");
    assert_eq!(read_all(&p)?, vec![history[49].clone()]);
    Ok(())
}

/// Kafka's `testCleanableOffsetsForTime`: with `min.compaction.lag.ms`, cleaning stops at the
/// first dirty segment whose newest record is younger than the lag; once time passes, it goes
/// on.
#[test]
fn min_compaction_lag_keeps_young_segments_dirty() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = compact_cfg().min_compaction_lag_ms(15_000);
    let p = open(&fs, &clock, &cfg)?;
    let mut history = Vec::new();
    // Four segments of the same ten keys, at T0, +10 s, +20 s, +30 s; the last one active.
    for seg in 0..4i64 {
        for k in 0..10 {
            let key = format!("k{k}");
            history.push(append(&p, Some(key.as_bytes()), Some(format!("{seg}").as_bytes()), T0 + seg * 10_000 + k)?);
        }
        if seg < 3 {
            p.roll()?;
        }
    }
    let b = p.segments().iter().map(|s| s.base_offset).collect::<Vec<_>>();
    assert_eq!(b, vec![0, 10, 20, 30]);
    // At +30 s the lag reaches back to +15 s: segment 20 (newest +20 009) is too young.
    clock.set(T0 + 30_000);
    let r = p.compact()?;
    assert_eq!(r.cleaned_up_to, 20, "{r:?}");
    assert_eq!(read_all(&p)?, full_pass(&history, 20));
    // At +35 010 segment 20 is 15 001 ms old: cleanable; the active one never is.
    clock.set(T0 + 35_010);
    let r = p.compact()?;
    assert_eq!(r.cleaned_up_to, 30, "{r:?}");
    assert_eq!(read_all(&p)?, full_pass(&history, 30));
    // Exactly the lag is not younger than it (Kafka: largestTimestamp > now − lag is young).
    p.roll()?;
    clock.set(T0 + 30_009 + 15_000);
    let r = p.compact()?;
    assert_eq!(r.cleaned_up_to, 40, "segment 30's newest record is exactly the lag old: {r:?}");
    assert_eq!(read_all(&p)?, full_pass(&history, 40));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// When a partition is due.

fn dirty_ratio(p: &Partition, first_dirty: u64) -> f64 {
    let sealed: Vec<_> = p.segments().into_iter().filter(|s| !s.active).collect();
    let clean: u64 = sealed.iter().filter(|s| s.end_offset <= first_dirty).map(|s| s.size).sum();
    let dirty: u64 = sealed.iter().filter(|s| s.end_offset > first_dirty).map(|s| s.size).sum();
    dirty as f64 / (clean + dirty) as f64
}

/// Appends `n` records with distinct keys (nothing for compaction to remove) and rolls.
fn append_distinct(p: &Partition, from: u64, n: u64, ts: i64) -> Result<Vec<Rec>, Error> {
    let mut v = Vec::new();
    for i in from..from + n {
        let k = format!("distinct-{i:05}");
        v.push(append(p, Some(k.as_bytes()), Some(b"0123456789abcdef"), ts)?);
    }
    p.roll()?;
    Ok(v)
}

/// `min.cleanable.dirty.ratio`: a partition whose dirty share is not above the ratio is not due
/// for the maintenance driver (strictly above is), but `Partition::compact()` cleans it anyway.
#[test]
fn dirty_ratio_decides_the_driver_and_compact_forces() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/data")?;
    let t = dir.create_topic("c", compact_cfg().partitions(1))?;
    let p = t.partition(0)?;
    let mut m = dir.maintenance();
    append_distinct(&p, 0, 60, T0)?;
    let r = m.run_once();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let (_, first) = r.compaction.ok_or("a partition with only dirty data is due")?;
    assert!(first.cleaned, "{first:?}");
    let clean_to = first.cleaned_up_to;
    // A little dirty data: below the default ratio of one half.
    append_distinct(&p, 60, 12, T0)?;
    let ratio = dirty_ratio(&p, clean_to);
    assert!(ratio > 0.0 && ratio < 0.5, "{ratio}");
    let r = m.run_once();
    assert!(r.compaction.is_none() && r.errors.is_empty(), "ratio {ratio} is not due: {r:?}");
    // Exactly the ratio is not above it; just below it is.
    dir.alter_topic_config("c", &[("min.cleanable.dirty.ratio", &format!("{ratio}"))])?;
    assert!(m.run_once().compaction.is_none(), "a ratio equal to min.cleanable.dirty.ratio is not due");
    dir.alter_topic_config("c", &[("min.cleanable.dirty.ratio", &format!("{}", ratio * 0.999))])?;
    let r = m.run_once();
    let (at, c) = r.compaction.ok_or("a ratio above min.cleanable.dirty.ratio is due")?;
    assert_eq!((at.topic.as_str(), at.partition, c.first_dirty_offset), ("c", 0, clean_to), "{c:?}");
    // And a forced pass ignores the ratio.
    dir.alter_topic_config("c", &[("min.cleanable.dirty.ratio", "0.9")])?;
    append_distinct(&p, 72, 5, T0)?;
    assert!(m.run_once().compaction.is_none());
    let forced = p.compact()?;
    assert!(forced.cleaned && forced.cleaned_up_to == active_base(&p), "{forced:?}");
    Ok(())
}

/// `max.compaction.lag.ms` makes a partition due whatever its dirty ratio, once its oldest
/// dirty record is older than the lag (strictly), and a log that is all clean is never due.
#[test]
fn max_compaction_lag_makes_a_partition_due() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/data")?;
    let cfg = compact_cfg().min_cleanable_dirty_ratio(0.99).max_compaction_lag_ms(Some(60_000));
    let t = dir.create_topic("c", cfg.partitions(1))?;
    let p = t.partition(0)?;
    append_distinct(&p, 0, 60, T0)?;
    p.compact()?;
    append_distinct(&p, 60, 12, T0 + 1_000)?;
    let mut m = dir.maintenance();
    clock.set(T0 + 1_000 + 60_000);
    assert!(m.run_once().compaction.is_none(), "exactly the lag old is not late");
    clock.advance(1);
    let r = m.run_once();
    let (_, c) = r.compaction.ok_or("one ms past the lag the partition is due")?;
    assert!(c.cleaned && c.cleaned_up_to == active_base(&p), "{c:?}");
    clock.advance(10_000_000);
    assert!(m.run_once().compaction.is_none(), "nothing dirty is never due");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tombstones.

/// Kafka's `testCleanTombstone`, with a manual clock: a tombstone removes the earlier values of
/// its key in the first pass that cleans it, and stays until `delete.retention.ms` after that
/// pass — a horizon stored in its batch, so a reopen does not restart the wait — then a later
/// pass removes it. A tombstone followed by a new value goes at once, as any older record.
#[test]
fn tombstones_stay_until_their_delete_horizon() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = compact_cfg().delete_retention_ms(10_000);
    let p = open(&fs, &clock, &cfg)?;
    let writes: [(&[u8], Option<&[u8]>); 7] = [
        (b"a", Some(b"a1")),
        (b"b", Some(b"b1")),
        (b"a", Some(b"a2")),
        (b"c", None),        // a tombstone for a key never written
        (b"a", None),        // a's tombstone
        (b"b", None),        // b's tombstone...
        (b"b", Some(b"b2")), // ...superseded
    ];
    let h = writes.iter().map(|(k, v)| append(&p, Some(k), *v, T0)).collect::<Result<Vec<_>, _>>()?;
    p.roll()?;
    let t1 = T0 + 5_000;
    clock.set(t1);
    let r = p.compact()?;
    let want: Vec<Rec> = [3usize, 4, 6].iter().map(|&i| h[i].clone()).collect();
    assert_eq!(read_all(&p)?, want, "first pass: earlier values go, latest tombstones stay");
    assert_eq!((r.records_removed, r.tombstones_removed), (4, 0), "{r:?}");
    assert_eq!(r.delete_horizons_set, 2, "two batches with a tombstone got a horizon: {r:?}");
    p.close()?;
    drop(p);

    // Reopened, the horizon is still t1 + 10 000.
    let p = open(&fs, &clock, &cfg)?;
    let mut tail = Vec::new();
    tail.push(append(&p, Some(b"d"), Some(b"d1"), t1)?);
    p.roll()?;
    clock.set(t1 + 9_999);
    let r = p.compact()?;
    assert_eq!(r.tombstones_removed, 0, "one ms before the horizon: {r:?}");
    assert_eq!(r.delete_horizons_set, 0, "horizons are set once: {r:?}");
    let mut want2 = want.clone();
    want2.extend(tail.iter().cloned());
    assert_eq!(read_all(&p)?, want2);
    p.close()?;
    drop(p);

    let p = open(&fs, &clock, &cfg)?;
    tail.push(append(&p, Some(b"e"), Some(b"e1"), t1)?);
    p.roll()?;
    clock.set(t1 + 10_000);
    let r = p.compact()?;
    assert_eq!((r.tombstones_removed, r.records_removed), (2, 2), "at the horizon both tombstones go: {r:?}");
    let got = read_all(&p)?;
    let want3: Vec<Rec> = std::iter::once(h[6].clone()).chain(tail.iter().cloned()).collect();
    assert_eq!(got, want3, "no earlier value of a deleted key comes back");
    assert!(!got.iter().any(|r| r.key.as_deref() == Some(b"a")), "{got:?}");
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    assert_eq!(read_all(&p)?, want3);
    Ok(())
}

/// A tombstone whose horizon has passed stays while nothing is dirty: a pass only runs over a
/// dirty range (Kafka's cleaner does not pick such a log either).
#[test]
fn an_expired_tombstone_waits_for_the_next_dirty_pass() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let p = open(&fs, &clock, &compact_cfg().delete_retention_ms(1_000))?;
    append(&p, Some(b"a"), Some(b"1"), T0)?;
    let tomb = append(&p, Some(b"a"), None, T0)?;
    p.roll()?;
    p.compact()?;
    clock.advance(1_000_000);
    let r = p.compact()?;
    assert!(!r.cleaned, "{r:?}");
    assert_eq!(read_all(&p)?, vec![tomb]);
    let x = append(&p, Some(b"x"), Some(b"1"), T0)?;
    p.roll()?;
    let r = p.compact()?;
    assert_eq!(r.tombstones_removed, 1, "{r:?}");
    assert_eq!(read_all(&p)?, vec![x]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Passes that do not fit in the map.

/// Kafka's `testPartialSegmentClean`: a map holding one key (`dedupe_buffer_bytes` 48: two
/// slots of 24 bytes at load factor 0.9), keys [0,1,0,1,0] at offsets 0..4. Each pass maps one
/// key and makes progress (`cleaned_up_to` grows) until the log is clean; Kafka's three states
/// ([1,0,1,0]/[1,2,3,4], [0,1,0]/[2,3,4], [1,0]/[3,4]) appear in order.
#[test]
fn partial_segment_clean() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let p = open(&fs, &clock, &compact_cfg())?;
    let mut log = Vec::new();
    for k in [0, 1, 0, 1, 0] {
        log.push(append(&p, Some(format!("{k}").as_bytes()), Some(b"v"), T0)?);
    }
    p.roll()?;
    let opts = CleanerOptions::default().dedupe_buffer_bytes(48);
    let mut states = Vec::new();
    let mut first_dirty = 0;
    let mut passes = 0;
    loop {
        let r = p.compact_with(&opts)?;
        if !r.cleaned {
            break;
        }
        passes += 1;
        assert!(passes <= 10, "no end in sight: {r:?}");
        assert_eq!(r.first_dirty_offset, first_dirty, "{r:?}");
        let (want, end) = bounded_pass(&log, first_dirty, 5, 1);
        assert!(end > first_dirty, "pass {passes} made no progress");
        assert_eq!(r.cleaned_up_to, end, "pass {passes}: {r:?}");
        assert_eq!(r.partial, end < 5, "pass {passes}: {r:?}");
        assert_eq!(r.keys_mapped, 1, "{r:?}");
        log = read_all(&p)?;
        assert_eq!(log, want, "pass {passes}");
        states.push((keys(&log).join(","), offsets(&log)));
        first_dirty = end;
    }
    assert_eq!(first_dirty, 5, "the last pass reached the active segment");
    let kafka = [("1,0,1,0", vec![1, 2, 3, 4]), ("0,1,0", vec![2, 3, 4]), ("1,0", vec![3, 4])];
    let mut at = 0;
    for (k, o) in &kafka {
        let found = states[at..].iter().position(|(sk, so)| sk == k && so == o);
        let Some(i) = found else { return Err(format!("Kafka's state {k}/{o:?} missing from {states:?}").into()) };
        at += i + 1;
    }
    assert_eq!(log, full_pass(&log, 5), "the log ends fully compacted");
    Ok(())
}

/// Random keys and a map of three keys: every pass is the bounded pass of Kafka's rule, makes
/// progress, continues where the last stopped (also across a reopen: the cleaner offset is
/// durable), and the log ends as one full pass would leave it.
#[test]
fn partial_passes_make_progress_until_done() -> TestResult {
    let seed = seed("partial_passes_make_progress_until_done");
    let mut rng = Rng::new(seed);
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = compact_cfg();
    let mut p = open(&fs, &clock, &cfg)?;
    let mut log = Vec::new();
    for i in 0..80u64 {
        let k = format!("k{}", rng.below(9));
        log.push(append(&p, Some(k.as_bytes()), Some(&value(&mut rng, i)), T0)?);
    }
    p.roll()?;
    let upto = active_base(&p);
    let all = log.clone();
    // 4 slots of 24 bytes at load factor 0.9: three keys.
    let opts = CleanerOptions::default().dedupe_buffer_bytes(96);
    let mut first_dirty = 0;
    for pass in 1.. {
        assert!(pass < 80, "seed {seed}: no end in sight");
        let r = p.compact_with(&opts)?;
        if !r.cleaned {
            assert_eq!(first_dirty, upto, "seed {seed}: stopped early: {r:?}");
            break;
        }
        assert_eq!(r.first_dirty_offset, first_dirty, "seed {seed}, pass {pass}: {r:?}");
        let (want, end) = bounded_pass(&log, first_dirty, upto, 3);
        assert_eq!(r.cleaned_up_to, end, "seed {seed}, pass {pass}: {r:?}");
        assert!(end > first_dirty, "seed {seed}, pass {pass}: no progress");
        log = read_all(&p)?;
        assert_eq!(log, want, "seed {seed}, pass {pass}");
        first_dirty = end;
        if pass % 3 == 0 {
            p.close()?;
            drop(p);
            p = open(&fs, &clock, &cfg)?;
        }
    }
    assert_eq!(log, full_pass(&all, upto), "seed {seed}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Offset gaps, grouping, the cleaner offset.

/// Kafka's `testCleaningBeyondMissingOffsets`: a pass whose dirty range ends in an offset gap
/// maps past it, up to the active segment, and records that as its cleaner offset. Such a
/// range comes from a pass that swapped every group and crashed before recording its cleaner
/// offset: the last sealed segment lost its last record (a keyless one, written before the
/// topic became compacted), and the pass after the crash starts again from 0. The test sweeps
/// the crash over every operation of the first pass.
#[test]
fn cleaning_beyond_missing_offsets() -> TestResult {
    let cfg = TopicConfig::default().segment_bytes(400).durability(Durability::EveryAppend);
    let compacted = cfg.clone().cleanup_policy(CleanupPolicy::COMPACT);
    let setup = |fs: &Arc<SimFs>| -> Result<(Partition, Vec<Rec>), Error> {
        let p = open(fs, &ManualClock::new(T0), &cfg)?;
        let mut log = Vec::new();
        for i in 0..40u64 {
            let k = format!("key{}", i % 7);
            log.push(append(&p, Some(k.as_bytes()), Some(format!("value-{i:03}").as_bytes()), T0)?);
        }
        Ok((p, log))
    };
    let (p, _) = setup(&SimFs::new())?;
    let upto = active_base(&p);
    assert!(p.segments().len() >= 4, "several groups: {:?}", p.segments());
    drop(p);
    // The same log, with the last record of the last sealed segment keyless.
    let setup = |fs: &Arc<SimFs>| -> Result<(Partition, Vec<Rec>), Error> {
        let p = open(fs, &ManualClock::new(T0), &cfg)?;
        let mut log = Vec::new();
        for i in 0..40u64 {
            let k = format!("key{}", i % 7);
            let key = (i + 1 != upto).then_some(k.as_bytes());
            log.push(append(&p, key, Some(format!("value-{i:03}").as_bytes()), T0)?);
        }
        assert_eq!(active_base(&p), upto);
        p.set_config(compacted.clone())?;
        Ok((p, log))
    };
    let (p, log) = setup(&SimFs::new())?;
    let want = full_pass(&log, upto);
    assert!(want.iter().all(|r| r.offset != upto - 1));
    let fs = SimFs::new();
    let (p2, _) = setup(&fs)?;
    drop(p);
    let before = fs.mutating_ops();
    p2.compact()?;
    let pass_ops = fs.mutating_ops() - before;
    drop(p2);
    let mut beyond_gap = 0;
    for k in 0..pass_ops {
        let fs = SimFs::new();
        let (p, _) = setup(&fs)?;
        fs.crash_after(k);
        let _ = p.compact();
        fs.crash(CrashMode::LoseUnsynced);
        drop(p);
        let p = open(&fs, &ManualClock::new(T0), &compacted)?;
        let compacted_already = read_all(&p)? == want;
        let r = p.compact()?;
        if compacted_already && r.first_dirty_offset == 0 {
            beyond_gap += 1;
            assert_eq!(r.cleaned_up_to, upto, "crash after {k}: the pass stopped at the gap: {r:?}");
        }
        assert_eq!(read_all(&p)?, want, "crash after {k}");
        let again = p.compact()?;
        assert!(!again.cleaned, "crash after {k}: still dirty after a full pass: {again:?}");
        assert_eq!(again.first_dirty_offset, upto, "crash after {k}: {again:?}");
    }
    assert!(beyond_gap > 0, "no crash point left a dirty range ending in a gap: the test exercises nothing");
    Ok(())
}

/// Kafka's `testSegmentGrouping`, end to end: small sealed segments are merged into groups of
/// consecutive segments whose total size fits `segment.bytes`; each group becomes one segment
/// at its first base offset.
#[test]
fn small_segments_are_merged() -> TestResult {
    let seed = seed("small_segments_are_merged");
    let mut rng = Rng::new(seed);
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = compact_cfg().segment_bytes(2_000);
    let p = open(&fs, &clock, &cfg)?;
    let mut log = Vec::new();
    for s in 0..14u64 {
        for j in 0..rng.range(1, 6) {
            let k = format!("s{s}-{j}");
            let v = vec![b'x'; rng.range(10, 200) as usize];
            log.push(append(&p, Some(k.as_bytes()), Some(&v), T0)?);
        }
        p.roll()?;
    }
    let sealed: Vec<_> = p.segments().into_iter().filter(|s| !s.active).collect();
    assert_eq!(sealed.len(), 14);
    // Greedy grouping of consecutive segments by total size.
    let mut groups: Vec<Vec<u64>> = Vec::new();
    let mut size = 0;
    for s in &sealed {
        match groups.last_mut() {
            Some(g) if size + s.size <= 2_000 => {
                g.push(s.base_offset);
                size += s.size;
            }
            _ => {
                groups.push(vec![s.base_offset]);
                size = s.size;
            }
        }
    }
    assert!(groups.len() < 14 && groups.len() > 1, "seed {seed}: a workload with several merges: {groups:?}");
    let r = p.compact()?;
    assert_eq!((r.segments_before, r.segments_after), (14, groups.len() as u32), "seed {seed}: {r:?}");
    let after: Vec<u64> = p.segments().iter().filter(|s| !s.active).map(|s| s.base_offset).collect();
    let want_bases: Vec<u64> = groups.iter().map(|g| g[0]).collect();
    assert_eq!(after, want_bases, "seed {seed}");
    assert!(p.segments().iter().all(|s| s.size <= 2_000));
    assert_eq!(read_all(&p)?, log, "seed {seed}: distinct keys, nothing removed");
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    assert_eq!(read_all(&p)?, log, "seed {seed}: reopened");
    Ok(())
}

/// The cleaner offset follows the log: after `truncate_to` below it, cleaning restarts at the
/// truncation point; after `advance_log_start` past it, at the log start (Kafka's
/// `testDirtyOffsetResetIfLargerThanEndOffset` / `...SmallerThanStartOffset`).
#[test]
fn cleaner_offset_follows_truncation_and_log_start() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = compact_cfg().segment_bytes(400);
    let p = open(&fs, &clock, &cfg)?;
    let mut log = Vec::new();
    for i in 0..40u64 {
        log.push(append(&p, Some(format!("k{}", i % 5).as_bytes()), Some(format!("{i:04}").as_bytes()), T0)?);
    }
    p.roll()?;
    let r = p.compact()?;
    assert_eq!(r.cleaned_up_to, 40, "{r:?}");
    log = full_pass(&log, 40);
    // Truncate to 37 (inside the compacted part): the cleaner offset comes down to 37.
    p.truncate_to(37)?;
    log.retain(|r| r.offset < 37);
    assert_eq!(read_all(&p)?, log);
    for i in 37..60u64 {
        log.push(append(&p, Some(format!("k{}", i % 5).as_bytes()), Some(format!("{i:04}").as_bytes()), T0)?);
    }
    p.roll()?;
    let r = p.compact()?;
    assert_eq!((r.first_dirty_offset, r.cleaned_up_to), (37, 60), "{r:?}");
    log = full_pass(&log, 60);
    assert_eq!(read_all(&p)?, log);
    // advance_log_start past the cleaner offset: cleaning starts at the log start.
    for i in 60..80u64 {
        log.push(append(&p, Some(format!("j{i}").as_bytes()), Some(b"v"), T0)?);
    }
    p.roll()?;
    p.advance_log_start(70)?;
    log.retain(|r| r.offset >= 70);
    let r = p.compact()?;
    assert_eq!((r.first_dirty_offset, r.cleaned_up_to), (70, 80), "{r:?}");
    assert_eq!(read_all(&p)?, log);
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    assert_eq!(read_all(&p)?, log);
    assert!(!p.compact()?.cleaned, "clean after the reopen");
    Ok(())
}

/// Records without a key, written before the topic became compacted, are removed by the first
/// pass and counted (Kafka counts them as invalid); a compacted topic refuses new ones.
#[test]
fn keyless_records_from_before_compaction_are_removed() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/data")?;
    let t = dir.create_topic("t", TopicConfig::default().segment_bytes(600).partitions(1))?;
    let p = t.partition(0)?;
    let mut log = Vec::new();
    let mut keyless = 0;
    for i in 0..40u64 {
        let key = (i % 3 != 0).then(|| format!("k{}", i % 4).into_bytes());
        keyless += u64::from(key.is_none());
        log.push(append(&p, key.as_deref(), Some(format!("{i}").as_bytes()), T0)?);
    }
    dir.alter_topic_config("t", &[("cleanup.policy", "compact")])?;
    let e = p.append(Record::with_value("no key"));
    assert!(matches!(e, Err(Error::KeyRequired { index: 0 })), "{e:?}");
    p.roll()?;
    let r = p.compact()?;
    assert_eq!(r.keyless_records_removed, keyless, "{r:?}");
    let want = full_pass(&log, 40);
    assert_eq!(r.records_removed, 40 - want.len() as u64, "{r:?}");
    assert_eq!(read_all(&p)?, want);
    assert!(want.iter().all(|r| r.key.is_some()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Damage and errors.

/// Every file of a simulated directory with its contents.
fn snapshot(fs: &SimFs, dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn std::error::Error>> {
    let mut out = BTreeMap::new();
    for e in fs.read_dir(dir)? {
        let name = e.name.to_string_lossy().into_owned();
        if name == ".lock" {
            continue;
        }
        out.insert(name.clone(), fs.read_file(&dir.join(&name))?);
    }
    Ok(out)
}

fn seg_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// A damaged sealed segment in the dirty range fails the pass with `Corrupt` and changes no
/// file; the failure shows in `cleaner_status()` (and the driver's report), every pass retries
/// it, and once the damage is repaired the next pass succeeds and clears the status.
#[test]
fn corrupt_dirty_segment_fails_the_pass_and_changes_nothing() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/data")?;
    let t = dir.create_topic("c", compact_cfg().segment_bytes(500).partitions(1))?;
    let p = t.partition(0)?;
    let mut log = Vec::new();
    for i in 0..30u64 {
        log.push(append(&p, Some(format!("k{}", i % 4).as_bytes()), Some(format!("value-{i:03}").as_bytes()), T0)?);
    }
    p.roll()?;
    let pdir = p.path();
    let victim = p.segments()[1].base_offset;
    let path = seg_path(&pdir, victim);
    let good = fs.read_file(&path)?;
    let mut bad = good.clone();
    bad[partlog::testing::HEADER_LEN + 3] ^= 0x40;
    fs.write_file(&path, &bad)?;
    let before = snapshot(&fs, &pdir)?;
    let e = p.compact();
    assert!(matches!(e, Err(Error::Corrupt { .. })), "{e:?}");
    assert!(before == snapshot(&fs, &pdir)?, "a failed pass changed files");
    let st = p.cleaner_status();
    assert_eq!((st.passes, st.consecutive_failures), (1, 1), "{st:?}");
    assert!(st.last_error.as_deref().is_some_and(|e| matches!(e, Error::Corrupt { .. })), "{st:?}");
    // The driver retries it and reports it.
    let mut m = dir.maintenance();
    let r = m.run_once();
    assert!(r.compaction.is_none(), "{r:?}");
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert!(matches!(r.errors[0].1, Error::Corrupt { .. }) && r.errors[0].0.topic == "c", "{r:?}");
    assert_eq!(p.cleaner_status().consecutive_failures, 2);
    assert!(before == snapshot(&fs, &pdir)?, "a failed pass changed files");
    // Repaired: the next pass works and clears the failure.
    fs.write_file(&path, &good)?;
    let r = m.run_once();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.compaction.is_some_and(|(_, c)| c.cleaned), "repaired: compacted");
    let st = p.cleaner_status();
    assert_eq!((st.consecutive_failures, st.passes), (0, 3), "{st:?}");
    assert!(st.last_error.is_none() && st.last_report.is_some(), "{st:?}");
    assert_eq!(read_all(&p)?, full_pass(&log, 30));
    Ok(())
}

/// Damage in the already-clean part (read only when the pass rewrites it) also fails the pass
/// with `Corrupt`, loses no record, and changes no file: a pass swaps all its groups in at
/// once, after every group was written.
#[test]
fn corrupt_clean_segment_fails_the_pass_and_loses_nothing() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let p = open(&fs, &clock, &compact_cfg().segment_bytes(300))?;
    let mut log = Vec::new();
    for i in 0..40u64 {
        log.push(append(&p, Some(format!("k{i}").as_bytes()), Some(format!("value-{i:03}").as_bytes()), T0)?);
    }
    p.roll()?;
    p.compact()?;
    let sealed: Vec<_> = p.segments().into_iter().filter(|s| !s.active).collect();
    assert!(sealed.len() >= 3, "{sealed:?}");
    let victim = sealed[sealed.len() - 1].base_offset;
    let path = seg_path(Path::new(DIR), victim);
    let good = fs.read_file(&path)?;
    let mut bad = good.clone();
    bad[partlog::testing::HEADER_LEN + 3] ^= 0x40;
    fs.write_file(&path, &bad)?;
    // New values for the keys of the first segment: a pass would rewrite it.
    for i in 0..5u64 {
        log.push(append(&p, Some(format!("k{i}").as_bytes()), Some(b"new"), T0)?);
    }
    p.roll()?;
    let before = snapshot(&fs, Path::new(DIR))?;
    let e = p.compact();
    assert!(matches!(e, Err(Error::Corrupt { .. })), "{e:?}");
    assert_eq!(fs.read_file(&path)?, bad, "the damaged segment is left as it was");
    fs.write_file(&path, &good)?;
    // No record is lost: what is there is the log as appended, at least as one full pass
    // would leave it.
    let got = read_all(&p)?;
    let want = full_pass(&log, 45);
    assert!(want.iter().all(|w| got.contains(w)), "records lost: {:?}", offsets(&got));
    assert!(got.iter().all(|g| log.contains(g)), "records changed: {:?}", offsets(&got));
    fs.write_file(&path, &bad)?;
    // Unlike Kafka, which swaps groups in one by one, nothing of the failed pass is left.
    let after = snapshot(&fs, Path::new(DIR))?;
    let changed: Vec<&String> = after.keys().chain(before.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(changed.is_empty(), "a failed pass changed {changed:?}");
    let st = p.cleaner_status();
    assert_eq!(st.consecutive_failures, 1, "{st:?}");
    // Repaired, the next pass finishes the job.
    fs.write_file(&path, &good)?;
    p.compact()?;
    assert_eq!(read_all(&p)?, full_pass(&log, 45));
    Ok(())
}

/// Compaction of a topic whose policy has no `compact` is `InvalidConfig` naming the key, and
/// is not counted as a cleaner failure.
#[test]
fn compaction_of_a_delete_topic_is_invalid_config() -> TestResult {
    let fs = SimFs::new();
    let p = open(&fs, &ManualClock::new(T0), &TopicConfig::default())?;
    append(&p, None, Some(b"x"), T0)?;
    p.roll()?;
    let e = p.compact();
    assert!(matches!(&e, Err(Error::InvalidConfig { key, .. }) if key == "cleanup.policy"), "{e:?}");
    let st = p.cleaner_status();
    assert_eq!((st.passes, st.consecutive_failures), (0, 0), "{st:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The log directory and the driver.

/// `LogDir::compact()` compacts every partition of every compacted topic (and skips the
/// others); the driver compacts the dirtiest due partition first, then the next.
#[test]
fn log_dir_compacts_all_and_the_driver_the_dirtiest_first() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/data")?;
    let a = dir.create_topic("a", compact_cfg().partitions(1))?;
    let b = dir.create_topic("b", compact_cfg().partitions(1))?;
    let d = dir.create_topic("d", TopicConfig::default().partitions(1))?;
    let (pa, pb) = (a.partition(0)?, b.partition(0)?);
    append(&d.partition(0)?, None, Some(b"x"), T0)?;
    append_distinct(&pa, 0, 50, T0)?;
    append_distinct(&pb, 0, 50, T0)?;
    let done = dir.compact()?;
    let names: Vec<&str> = done.iter().map(|(at, _)| at.topic.as_str()).collect();
    assert_eq!(names, vec!["a", "b"], "{done:?}");
    assert!(done.iter().all(|(_, r)| r.cleaned));
    // Now a is a little dirty, b more: both above a ratio of 0.1.
    dir.alter_topic_config("a", &[("min.cleanable.dirty.ratio", "0.1")])?;
    dir.alter_topic_config("b", &[("min.cleanable.dirty.ratio", "0.1")])?;
    append_distinct(&pa, 50, 10, T0)?;
    append_distinct(&pb, 50, 30, T0)?;
    let ra = dirty_ratio(&pa, 50);
    let rb = dirty_ratio(&pb, 50);
    assert!(ra > 0.1 && rb > ra, "{ra} {rb}");
    let mut m = dir.maintenance();
    let r = m.run_once();
    let (first, _) = r.compaction.ok_or("both due")?;
    assert_eq!(first.topic, "b", "the dirtiest first");
    assert_eq!(r.next_run_in, std::time::Duration::ZERO, "another is due: come back at once");
    let r = m.run_once();
    let (second, _) = r.compaction.ok_or("a is still due")?;
    assert_eq!(second.topic, "a");
    let r = m.run_once();
    assert!(r.compaction.is_none(), "{r:?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    Ok(())
}

/// A throttled pass (`io_max_bytes_per_second`) compacts exactly as an unthrottled one. (No
/// timing is asserted: shared machines make wall-clock bounds flaky.)
#[test]
fn throttled_pass_compacts_the_same() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let p = open(&fs, &clock, &compact_cfg())?;
    let mut log = Vec::new();
    for i in 0..200u64 {
        log.push(append(&p, Some(format!("k{}", i % 13).as_bytes()), Some(format!("{i:05}").as_bytes()), T0)?);
    }
    p.roll()?;
    let opts = CleanerOptions::default().io_max_bytes_per_second(Some(100 << 20));
    assert_eq!(opts.get_io_max_bytes_per_second(), Some(100 << 20));
    let r = p.compact_with(&opts)?;
    assert!(r.cleaned, "{r:?}");
    assert_eq!(read_all(&p)?, full_pass(&log, 200));
    Ok(())
}
