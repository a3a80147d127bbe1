//! Retention (`cleanup.policy=delete`, and the log-start rule under every policy), ported from
//! Kafka's `UnifiedLogTest` scenarios and named after them, plus the operational loop of a
//! full disk: it fills, the application lowers `retention.bytes` or lets time pass, runs
//! retention, and appends go on.
//!
//! Expected outcomes come from Kafka's rules applied to what the test appended (sizes are
//! measured once from a single batch; which segments go is computed here), never from the
//! engine's own plan. Every scenario reopens the partition to check the outcome is durable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use partlog::fs::FileSystem;
use partlog::fs::sim::SimFs;
use partlog::{CleanupPolicy, Durability, Error, LogDir, ManualClock, Partition, Record, StoredRecord, TopicConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DIR: &str = "/events-0";
const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The value of the `i`-th record: fixed length, so every single-record batch has one size.
fn value_of(i: u64) -> Vec<u8> {
    format!("value-{i:06}").into_bytes()
}

fn key_of(i: u64) -> Vec<u8> {
    format!("key-{:03}", i % 1000).into_bytes()
}

fn append_nth(p: &Partition, i: u64, ts: i64) -> Result<u64, Error> {
    let (k, v) = (key_of(i), value_of(i));
    Ok(p.append(Record::new().key(&k).value(&v).timestamp(ts))?.offset)
}

fn open(fs: &Arc<SimFs>, clock: &Arc<ManualClock>, cfg: &TopicConfig) -> Result<Partition, Error> {
    Partition::options().fs(fs.clone()).clock(clock.clone()).config(cfg.clone()).open(DIR)
}

fn read_all(p: &Partition) -> Result<Vec<StoredRecord>, Error> {
    p.iter(p.log_start_offset()).collect()
}

/// Bytes of one single-record batch as [`append_nth`] writes it, measured on a scratch log.
fn batch_size() -> Result<u64, Error> {
    let fs = SimFs::new();
    let p = open(&fs, &ManualClock::new(T0), &TopicConfig::default())?;
    append_nth(&p, 0, T0)?;
    Ok(p.segments()[0].size)
}

/// Kafka's `createLogConfig(segmentBytes = batch * 5)` with no time or size limit.
fn five_per_segment(batch: u64) -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(u32::try_from(5 * batch).unwrap_or(u32::MAX))
        .retention_ms(None)
        .retention_bytes(None)
        .durability(Durability::EveryAppend)
}

/// Checks the log holds exactly records `from..to` as [`append_nth`] wrote them.
fn assert_holds(p: &Partition, from: u64, to: u64, ctx: &str) -> TestResult {
    assert_eq!(p.log_start_offset(), from, "{ctx}: log start");
    assert_eq!(p.log_end_offset(), to, "{ctx}: log end");
    let got = read_all(p)?;
    let offsets: Vec<u64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (from..to).collect::<Vec<_>>(), "{ctx}: offsets");
    for r in &got {
        assert_eq!(r.value.as_deref(), Some(&value_of(r.offset)[..]), "{ctx}: value at {}", r.offset);
        assert_eq!(r.key.as_deref(), Some(&key_of(r.offset)[..]), "{ctx}: key at {}", r.offset);
    }
    Ok(())
}

fn bases(p: &Partition) -> Vec<u64> {
    p.segments().iter().map(|s| s.base_offset).collect()
}

/// Names of the files in a partition directory of the simulated file system.
fn sim_files(fs: &SimFs, dir: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut names: Vec<String> =
        fs.read_dir(Path::new(dir))?.into_iter().filter_map(|e| e.name.into_string().ok()).collect();
    names.sort();
    Ok(names)
}

/// Files in transit that must not outlive a retention pass (or an open).
fn leftovers(names: &[String]) -> Vec<&String> {
    names.iter().filter(|n| n.ends_with(".deleted") || n.ends_with(".cleaned") || *n == "segments.intent").collect()
}

// ---------------------------------------------------------------------------------------------
// Size.

/// Kafka's `shouldDeleteSizeBasedSegments`: 15 single-record batches, 5 per segment. A limit
/// of 10 batches deletes the oldest segment (2 remain); 15 deletes none (3 remain); one byte
/// over 10 batches deletes none either (deleting would go below the limit).
#[test]
fn should_delete_size_based_segments() -> TestResult {
    let batch = batch_size()?;
    for (limit, remaining) in [(10 * batch, 2usize), (15 * batch, 3), (10 * batch + 1, 3), (5 * batch, 1)] {
        let ctx = format!("retention.bytes={limit} ({} batches)", limit as f64 / batch as f64);
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        let cfg = five_per_segment(batch).retention_bytes(Some(limit));
        let p = open(&fs, &clock, &cfg)?;
        for i in 0..15 {
            assert_eq!(append_nth(&p, i, T0)?, i);
        }
        assert_eq!(bases(&p), vec![0, 5, 10], "{ctx}: 15 batches of 5 per segment");
        let r = p.run_retention()?;
        let gone = 3 - remaining;
        assert_eq!(r.segments_deleted as usize, gone, "{ctx}: {r:?}");
        assert_eq!(r.by_size as usize, gone, "{ctx}: {r:?}");
        assert_eq!((r.by_time, r.by_log_start, r.rolled), (0, 0, false), "{ctx}: {r:?}");
        assert_eq!(r.bytes_reclaimed, gone as u64 * 5 * batch, "{ctx}: {r:?}");
        assert_eq!(r.records_removed, gone as u64 * 5, "{ctx}: {r:?}");
        let start = gone as u64 * 5;
        assert_eq!(r.log_start_offset, start, "{ctx}: {r:?}");
        assert_eq!(p.segments().len(), remaining, "{ctx}");
        assert!(p.segments().iter().map(|s| s.size).sum::<u64>() >= limit.min(15 * batch), "{ctx}: below the limit");
        assert_holds(&p, start, 15, &ctx)?;
        // A second pass finds nothing more.
        assert_eq!(p.run_retention()?.segments_deleted, 0, "{ctx}: second pass");
        assert!(leftovers(&sim_files(&fs, DIR)?).is_empty(), "{ctx}: {:?}", sim_files(&fs, DIR)?);
        p.close()?;
        drop(p);
        let p = open(&fs, &clock, &cfg)?;
        assert_eq!(p.segments().len(), remaining, "{ctx}: after reopen");
        assert_holds(&p, start, 15, &format!("{ctx}, reopened"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Time.

/// `retention.ms`: a segment goes when `now − its largest timestamp > retention.ms`, strictly,
/// and the largest timestamp is the newest record's, wherever it sits in the segment (Kafka's
/// `testTimeBasedLogRetention`-style rule, docs "Deletes").
#[test]
fn time_based_retention_is_strict_and_uses_the_largest_timestamp() -> TestResult {
    let batch = batch_size()?;
    let retention = 10_000i64;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = five_per_segment(batch).retention_ms(Some(retention as u64));
    let p = open(&fs, &clock, &cfg)?;
    // Segment 0: timestamps 0, 1, 2_000 (the largest, in the middle), 3, 4 (ms after T0).
    // Segment 1: 1_000..1_004, so its first record is older than segment 0's largest.
    // Segment 2 (active): 50_000.
    let ts = |i: u64| -> i64 {
        match i {
            2 => T0 + 2_000,
            0..5 => T0 + i as i64,
            5..10 => T0 + 1_000 + (i - 5) as i64,
            _ => T0 + 50_000,
        }
    };
    for i in 0..11 {
        append_nth(&p, i, ts(i))?;
    }
    assert_eq!(bases(&p), vec![0, 5, 10]);
    // Segment 0 is exactly retention.ms old by its largest timestamp: not expired.
    clock.set(T0 + 2_000 + retention);
    let r = p.run_retention()?;
    assert_eq!(r.segments_deleted, 0, "exactly retention.ms old is not expired: {r:?}");
    // Segment 1's newest record (T0 + 1_004) is older, but only a prefix goes, and segment 0
    // still holds back: nothing either.
    assert_eq!(bases(&p), vec![0, 5, 10]);
    clock.advance(1);
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.by_time), (2, 2), "both expired one ms later: {r:?}");
    assert_eq!(r.records_removed, 10, "{r:?}");
    assert_eq!(r.bytes_reclaimed, 10 * batch, "{r:?}");
    assert_eq!(bases(&p), vec![10]);
    assert_holds(&p, 10, 11, "after time retention")?;
    // The active segment is young (50 s after T0): it stays until it is old too.
    clock.set(T0 + 50_000 + retention);
    assert_eq!(p.run_retention()?.segments_deleted, 0);
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    assert_holds(&p, 10, 11, "reopened")?;
    Ok(())
}

/// A segment is judged by its largest timestamp: an old first record does not make it expire
/// while a newer record is in it.
#[test]
fn time_retention_waits_for_the_newest_record_of_a_segment() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = five_per_segment(batch).retention_ms(Some(1_000));
    let p = open(&fs, &clock, &cfg)?;
    // Segment 0: 0, 0, 0, 0, 5_000 (its newest record last); segment 1 active.
    for i in 0..6 {
        append_nth(&p, i, if i == 4 { T0 + 5_000 } else { T0 })?;
    }
    clock.set(T0 + 5_000);
    assert_eq!(p.run_retention()?.segments_deleted, 0, "the newest record is 0 ms old");
    clock.set(T0 + 6_000);
    assert_eq!(p.run_retention()?.segments_deleted, 0, "exactly 1000 ms old");
    clock.set(T0 + 6_001);
    let r = p.run_retention()?;
    // Segment 1 (the active one, timestamp T0) is as old: everything goes, the active segment
    // rolled first.
    assert_eq!((r.segments_deleted, r.by_time, r.rolled), (2, 2, true), "{r:?}");
    assert_holds(&p, 6, 6, "all expired")?;
    Ok(())
}

/// A quiet partition: its only (active) segment expires. It is rolled first, then deleted;
/// an empty active segment remains at the log end.
#[test]
fn quiet_partition_active_segment_expires() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = TopicConfig::default().retention_ms(Some(60_000)).durability(Durability::EveryAppend);
    let p = open(&fs, &clock, &cfg)?;
    for i in 0..7 {
        append_nth(&p, i, T0 + i as i64)?;
    }
    assert_eq!(p.segments().len(), 1);
    clock.set(T0 + 6 + 60_000);
    let r = p.run_retention()?;
    assert_eq!(r.segments_deleted, 0, "not yet: {r:?}");
    assert!(!r.rolled, "nothing to delete, so nothing to roll: {r:?}");
    assert_eq!(p.segments().len(), 1);
    clock.advance(1);
    let r = p.run_retention()?;
    assert!(r.rolled, "{r:?}");
    assert_eq!((r.segments_deleted, r.by_time, r.records_removed), (1, 1, 7), "{r:?}");
    let segs = p.segments();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert!(segs[0].active && segs[0].size == 0 && segs[0].base_offset == 7, "{segs:?}");
    assert_holds(&p, 7, 7, "expired")?;
    // Nothing more to do: the empty active segment never goes.
    clock.advance(10 * 60_000);
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.rolled), (0, false), "{r:?}");
    assert_eq!(append_nth(&p, 7, clock_now(&clock))?, 7);
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    assert_holds(&p, 7, 8, "reopened")?;
    Ok(())
}

fn clock_now(c: &ManualClock) -> i64 {
    partlog::Clock::now_ms(c)
}

/// Kafka's `testThatGarbageCollectingSegmentsDoesntChangeOffset`: when every segment expires,
/// one empty segment remains, the log end offset does not move, the next append gets it, and
/// reading below the new log start is `OffsetOutOfRange`.
#[test]
fn garbage_collecting_segments_doesnt_change_offset() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = five_per_segment(batch).retention_ms(Some(1_000));
    let p = open(&fs, &clock, &cfg)?;
    for i in 0..13 {
        append_nth(&p, i, T0)?;
    }
    assert_eq!(bases(&p), vec![0, 5, 10]);
    clock.advance(1_001);
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.by_time, r.rolled, r.records_removed), (3, 3, true, 13), "{r:?}");
    assert_eq!(r.bytes_reclaimed, 13 * batch, "{r:?}");
    let check = |p: &Partition, ctx: &str| -> TestResult {
        assert_eq!(bases(p), vec![13], "{ctx}: one segment at the old end");
        assert_eq!(p.segments()[0].size, 0, "{ctx}");
        assert_holds(p, 13, 13, ctx)?;
        for below in [0, 5, 12] {
            let e = p.read(below, 1 << 20);
            assert!(
                matches!(e, Err(Error::OffsetOutOfRange { requested, start: 13, end: 13 }) if requested == below),
                "{ctx}: read({below}) gave {e:?}"
            );
        }
        let at_end = p.read(13, 1 << 20)?;
        assert!(at_end.is_empty() && at_end.next_fetch_offset() == 13, "{ctx}: read at the end: {at_end:?}");
        Ok(())
    };
    check(&p, "after retention")?;
    assert!(leftovers(&sim_files(&fs, DIR)?).is_empty(), "{:?}", sim_files(&fs, DIR)?);
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    check(&p, "reopened")?;
    assert_eq!(append_nth(&p, 13, clock_now(&clock))?, 13, "the next append gets the old log end");
    assert_holds(&p, 13, 14, "appended")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The log start (DeleteRecords).

/// Kafka's `testLogDeletionAfterDeleteRecords`: 15 batches, 5 per segment; log start 1 keeps
/// 3 segments, 6 keeps 2, 15 keeps 1 (the active segment, rolled and deleted, leaves an empty
/// one at 15). partlog's `advance_log_start` deletes the sealed segments wholly below the new
/// start itself; retention deletes the rest (the active segment).
#[test]
fn log_deletion_after_delete_records() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = five_per_segment(batch);
    let p = open(&fs, &clock, &cfg)?;
    for i in 0..15 {
        append_nth(&p, i, T0)?;
    }
    assert_eq!(bases(&p), vec![0, 5, 10]);
    let mut p = p;
    for (start, segments) in [(1u64, 3usize), (6, 2), (15, 1)] {
        p.advance_log_start(start)?;
        assert_eq!(p.log_start_offset(), start);
        p.run_retention()?;
        assert_eq!(p.segments().len(), segments, "log start {start}: {:?}", p.segments());
        assert_holds(&p, start, 15, &format!("log start {start}"))?;
        let e = p.read(start - 1, 1 << 20);
        assert!(matches!(e, Err(Error::OffsetOutOfRange { .. })), "read below the start {start}: {e:?}");
        // Durable: after a crash (no clean close) the start holds.
        fs.crash(partlog::fs::sim::CrashMode::LoseUnsynced);
        drop(p);
        p = open(&fs, &clock, &cfg)?;
        assert_eq!(p.segments().len(), segments, "log start {start}, reopened after a crash");
        assert_holds(&p, start, 15, &format!("log start {start}, reopened after a crash"))?;
    }
    assert_eq!(bases(&p), vec![15]);
    // Past the log end is refused (Kafka's testCannotIncrementLogStartOffsetPastHighWatermark).
    let e = p.advance_log_start(16);
    assert!(matches!(e, Err(Error::OffsetOutOfRange { requested: 16, .. })), "{e:?}");
    assert_eq!(p.log_start_offset(), 15);
    assert_eq!(append_nth(&p, 15, T0)?, 15);
    Ok(())
}

/// Retention's log-start rule on its own: with the log start at the end of a non-empty active
/// segment, retention rolls it and deletes it for being below the log start.
#[test]
fn retention_deletes_the_active_segment_below_the_log_start() -> TestResult {
    let batch = batch_size()?;
    for policy in [CleanupPolicy::DELETE, CleanupPolicy::COMPACT, CleanupPolicy::COMPACT_DELETE] {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        let cfg = five_per_segment(batch).cleanup_policy(policy);
        let p = open(&fs, &clock, &cfg)?;
        for i in 0..8 {
            append_nth(&p, i, T0)?;
        }
        p.advance_log_start(8)?;
        assert_eq!(bases(&p), vec![5], "{policy:?}: the sealed segment went with advance_log_start");
        let r = p.run_retention()?;
        assert_eq!((r.segments_deleted, r.by_log_start, r.rolled, r.records_removed), (1, 1, true, 3), "{r:?}");
        assert_eq!(r.bytes_reclaimed, 3 * batch, "{r:?}");
        assert_eq!(bases(&p), vec![8], "{policy:?}");
        assert_holds(&p, 8, 8, &format!("{policy:?}"))?;
    }
    Ok(())
}

/// Kafka's `testRetentionIdempotency`: segments with timestamps +100, +0 and +100 (ms), time
/// retention 900 ms, 901 ms later. Time retention alone is blocked by the first segment; a log
/// start of 1 unblocks it, and the middle segment goes by time. A second pass deletes nothing.
/// (Kafka counts both deletions in one `deleteOldSegments`; partlog's `advance_log_start`
/// deletes the first segment itself.)
#[test]
fn retention_idempotency() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = TopicConfig::default().retention_ms(Some(900)).durability(Durability::EveryAppend);
    let p = open(&fs, &clock, &cfg)?;
    append_nth(&p, 0, T0 + 100)?;
    p.roll()?;
    append_nth(&p, 1, T0)?;
    p.roll()?;
    append_nth(&p, 2, T0 + 100)?;
    assert_eq!(bases(&p), vec![0, 1, 2]);
    clock.advance(901);
    assert_eq!(p.run_retention()?.segments_deleted, 0, "the first segment (801 ms old) blocks the second");
    p.advance_log_start(1)?;
    assert_eq!(bases(&p), vec![1, 2], "advance_log_start deleted the segment below it");
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.by_time, r.records_removed), (1, 1, 1), "{r:?}");
    assert_eq!(bases(&p), vec![2]);
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.rolled), (0, false), "the second pass: {r:?}");
    assert_holds(&p, 2, 3, "idempotent")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Policies.

/// Kafka's `shouldNotDeleteSegmentsWhenPolicyDoesNotIncludeDelete` and
/// `shouldDeleteStartOffsetBreachedSegmentsWhenPolicyDoesNotIncludeDelete`: a compact-only
/// topic ignores `retention.bytes` and `retention.ms`, but not the log start.
#[test]
fn compact_policy_ignores_size_and_time_but_obeys_the_log_start() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg =
        five_per_segment(batch).cleanup_policy(CleanupPolicy::COMPACT).retention_bytes(Some(1)).retention_ms(Some(1));
    let p = open(&fs, &clock, &cfg)?;
    for i in 0..15 {
        append_nth(&p, i, T0)?;
    }
    clock.advance(1_000_000);
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.rolled), (0, false), "compact-only: {r:?}");
    assert_holds(&p, 0, 15, "compact-only, old and large")?;
    p.advance_log_start(6)?;
    p.run_retention()?;
    assert_eq!(bases(&p), vec![5, 10]);
    assert_holds(&p, 6, 15, "compact-only, log start 6")?;
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    assert_eq!(p.run_retention()?.segments_deleted, 0);
    assert_holds(&p, 6, 15, "reopened")?;
    Ok(())
}

/// Kafka's `shouldDeleteSegmentsReadyToBeDeletedWhenCleanupPolicyIsCompactAndDelete`:
/// `compact,delete` applies size and time retention as `delete` does.
#[test]
fn compact_delete_policy_applies_size_and_time() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = five_per_segment(batch).cleanup_policy(CleanupPolicy::COMPACT_DELETE).retention_bytes(Some(10 * batch));
    let p = open(&fs, &clock, &cfg)?;
    for i in 0..15 {
        append_nth(&p, i, T0 + i as i64)?;
    }
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.by_size), (1, 1), "{r:?}");
    assert_holds(&p, 5, 15, "size")?;
    p.set_config(cfg.clone().retention_bytes(None).retention_ms(Some(100)))?;
    clock.set(T0 + 9 + 101);
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.by_time), (1, 1), "{r:?}");
    assert_holds(&p, 10, 15, "time")?;
    Ok(())
}

/// Size and time in one pass, oldest first, with the report's counts from the segments the
/// test wrote: size takes what it may, then time goes on from there.
#[test]
fn one_pass_applies_size_then_time_and_reports_each() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    // 5 segments of 5 records (the fifth active), timestamps T0 + 1000·segment.
    let cfg = five_per_segment(batch).retention_bytes(Some(17 * batch)).retention_ms(Some(10_000));
    let p = open(&fs, &clock, &cfg)?;
    for i in 0..25 {
        append_nth(&p, i, T0 + 1_000 * (i / 5) as i64)?;
    }
    assert_eq!(bases(&p), vec![0, 5, 10, 15, 20]);
    // Size: 25 batches, limit 17 → 8 over: one segment of 5 (3 over left; a second would go
    // below). Time at T0 + 12_500: segments with newest T0 + 0, 1000, 2000 are > 10 000 old.
    clock.set(T0 + 12_500);
    let before = p.segments();
    let r = p.run_retention()?;
    assert_eq!((r.by_size, r.by_time, r.by_log_start), (1, 2, 0), "{r:?}");
    assert_eq!(r.segments_deleted, 3, "{r:?}");
    assert_eq!(r.records_removed, 15, "{r:?}");
    assert_eq!(r.bytes_reclaimed, before[..3].iter().map(|s| s.size).sum::<u64>(), "{r:?}");
    assert_eq!(r.bytes_reclaimed, 15 * batch, "{r:?}");
    assert_eq!((r.log_start_offset, r.rolled), (15, false), "{r:?}");
    assert_holds(&p, 15, 25, "size then time")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Configuration changes through the log directory.

/// `alter_topic_config` of `retention.ms`, `retention.bytes` and `cleanup.policy` applies to the
/// next retention pass without reopening; the changes and their effect survive a reopen.
#[test]
fn config_changes_apply_to_the_next_pass() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let opts = || LogDir::options().fs(fs.clone()).clock(clock.clone());
    let dir = opts().open("/data")?;
    let t = dir.create_topic("events", five_per_segment(batch).partitions(1))?;
    let p = t.partition(0)?;
    for i in 0..30 {
        append_nth(&p, i, T0 + 1_000 * (i / 5) as i64)?;
    }
    assert_eq!(bases(&p), vec![0, 5, 10, 15, 20, 25]);
    clock.set(T0 + 100_000);
    assert_eq!(p.run_retention()?.segments_deleted, 0, "no limits yet");

    // retention.bytes: 20 batches of 30 → two segments go.
    dir.alter_topic_config("events", &[("retention.bytes", &(20 * batch).to_string())])?;
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.by_size), (2, 2), "{r:?}");
    assert_holds(&p, 10, 30, "retention.bytes")?;

    // cleanup.policy=compact: an expiry that would delete segments does nothing...
    dir.alter_topic_config("events", &[("cleanup.policy", "compact"), ("retention.ms", "1000")])?;
    let r = p.run_retention()?;
    assert_eq!(r.segments_deleted, 0, "compact-only ignores retention.ms: {r:?}");
    // ...and back to delete, it applies: the segments with newest record T0 + 2000..4000 are
    // older than 1000 ms at T0 + 4_500; the one at T0 + 4000 is not.
    clock.set(T0 + 4_500);
    dir.alter_topic_config("events", &[("cleanup.policy", "delete"), ("retention.bytes", "-1")])?;
    let r = p.run_retention()?;
    assert_eq!((r.segments_deleted, r.by_time), (2, 2), "{r:?}");
    assert_holds(&p, 20, 30, "retention.ms")?;

    // LogDir::run_retention reports the partition.
    clock.set(T0 + 10_000);
    let all = dir.run_retention()?;
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].0.topic.as_str(), all[0].0.partition), ("events", 0));
    assert_eq!((all[0].1.segments_deleted, all[0].1.rolled), (2, true), "{:?}", all[0].1);
    dir.close()?;
    drop((t, p, dir));

    let dir = opts().open("/data")?;
    let t = dir.topic("events")?;
    let c = t.config();
    assert_eq!((c.get_retention_ms(), c.get_retention_bytes()), (Some(1_000), None));
    assert_eq!(c.get_cleanup_policy(), CleanupPolicy::DELETE);
    let p = t.partition(0)?;
    assert_holds(&p, 30, 30, "reopened")?;
    Ok(())
}

/// The maintenance driver runs retention on the partitions that are due, and only those.
#[test]
fn maintenance_driver_runs_due_retention() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/data")?;
    let a = dir.create_topic("a", five_per_segment(batch).retention_ms(Some(1_000)).partitions(1))?;
    let b = dir.create_topic("b", five_per_segment(batch).retention_ms(Some(5_000)).partitions(1))?;
    for i in 0..12 {
        append_nth(&a.partition(0)?, i, T0)?;
        append_nth(&b.partition(0)?, i, T0)?;
    }
    let mut m = dir.maintenance();
    let r = m.run_once();
    assert!(r.errors.is_empty() && r.retention.is_empty(), "nothing due: {r:?}");
    clock.set(T0 + 2_000);
    let r = m.run_once();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.retention.len(), 1, "{r:?}");
    assert_eq!(r.retention[0].0.topic, "a");
    assert_eq!((r.retention[0].1.segments_deleted, r.retention[0].1.rolled), (3, true));
    // It asks to come back when topic b's segments expire (within 5 s of T0).
    assert!(r.next_run_in <= std::time::Duration::from_millis(3_001), "{:?}", r.next_run_in);
    assert_eq!(b.partition(0)?.log_start_offset(), 0);
    assert_eq!(a.partition(0)?.log_start_offset(), 12);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deleted files and readers.

/// A reader holding `Records` read from a segment that retention deletes still reads its
/// bytes; no file of the deleted segment is left behind once it lets go. Both read paths.
#[test]
fn reader_holding_records_of_a_deleted_segment_still_reads_them() -> TestResult {
    let batch = batch_size()?;
    for mmap in [true, false] {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("events-0");
        let clock = ManualClock::new(T0);
        let cfg = five_per_segment(batch).retention_bytes(Some(10 * batch));
        let p = Partition::options().clock(clock.clone()).config(cfg).mmap_reads(mmap).open(&path)?;
        for i in 0..15 {
            append_nth(&p, i, T0)?;
        }
        let held = p.read(1, 1 << 20)?;
        let held_offsets: Vec<u64> = held.iter().map(|r| r.offset()).collect();
        assert_eq!(held_offsets, vec![1, 2, 3, 4], "mmap={mmap}: the read stops at the segment end");
        let r = p.run_retention()?;
        assert_eq!(r.segments_deleted, 1, "{r:?}");
        // The segment's files are out of the log...
        let names = dir_names(&path)?;
        assert!(!names.iter().any(|n| n.starts_with("00000000000000000000.")), "mmap={mmap}: {names:?}");
        // ...but the reader still has its bytes.
        for (rec, want) in held.iter().zip(1u64..) {
            assert_eq!(rec.offset(), want);
            assert_eq!(rec.value(), Some(&value_of(want)[..]), "mmap={mmap}: value at {want} after deletion");
        }
        let again: Vec<StoredRecord> = held.clone().into_iter().collect();
        assert_eq!(again.len(), 4);
        drop(held);
        // A later pass (and close) leave nothing in transit behind.
        p.run_retention()?;
        let names = dir_names(&path)?;
        assert!(leftovers(&names).is_empty(), "mmap={mmap}: {names:?}");
        p.close()?;
        let names = dir_names(&path)?;
        assert!(leftovers(&names).is_empty(), "mmap={mmap}: after close {names:?}");
    }
    Ok(())
}

fn dir_names(path: &Path) -> Result<Vec<String>, std::io::Error> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(path)? {
        v.push(e?.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// A full disk.

/// Simulated full disk: appends fill it to `StorageFull`; the application lowers
/// `retention.bytes` and runs retention; the space comes back and appends go on. Then the same
/// by letting time pass with `retention.ms`.
#[test]
fn storage_full_then_retention_frees_space_simulated() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    // Segments of 40 batches; the disk holds about 200 (with the indexes and checkpoint).
    let cfg = TopicConfig::default()
        .segment_bytes(u32::try_from(40 * batch)?)
        .retention_ms(None)
        .durability(Durability::EveryAppend);
    let p = open(&fs, &clock, &cfg)?;
    fs.set_capacity(Some(200 * batch));
    let mut n = 0u64;
    let err = loop {
        match append_nth(&p, n, T0 + n as i64) {
            Ok(o) => {
                assert_eq!(o, n);
                n += 1;
            }
            Err(e) => break e,
        }
        assert!(n < 10_000, "the simulated disk never filled");
    };
    assert!(matches!(err, Error::StorageFull { .. }), "append #{n} on a full disk gave {err:?}");
    assert!(n > 100, "only {n} appends fit");
    let used_full = fs.used_bytes();
    p.set_config(cfg.clone().retention_bytes(Some(50 * batch)))?;
    let r = p.run_retention()?;
    assert!(r.segments_deleted >= 2, "{r:?}");
    let used_after = fs.used_bytes();
    assert!(
        used_after + r.bytes_reclaimed <= used_full + 4096,
        "retention reclaimed {} bytes of log but the disk went from {used_full} to {used_after}",
        r.bytes_reclaimed
    );
    let start = p.log_start_offset();
    assert_eq!(start % 40, 0, "the log starts at a segment boundary");
    assert!(n - start >= 50, "at least retention.bytes stays: {start}..{n}");
    for _ in 0..60 {
        assert_eq!(append_nth(&p, n, T0 + n as i64)?, n, "append after freeing space");
        n += 1;
    }
    // Full again, then time: everything older than 1 s goes.
    let err = loop {
        match append_nth(&p, n, T0 + n as i64) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 20_000, "the simulated disk never filled again");
    };
    assert!(matches!(err, Error::StorageFull { .. }), "{err:?}");
    p.set_config(cfg.clone().retention_ms(Some(1_000)))?;
    clock.set(T0 + n as i64 + 1_001);
    let r = p.run_retention()?;
    assert!(r.rolled && r.by_time >= 1, "{r:?}");
    assert_eq!(p.log_start_offset(), n, "{r:?}");
    for _ in 0..60 {
        assert_eq!(append_nth(&p, n, clock_now(&clock))?, n);
        n += 1;
    }
    p.close()?;
    drop(p);
    let p = open(&fs, &clock, &cfg)?;
    assert_holds(&p, n - 60, n, "reopened")?;
    Ok(())
}

/// A roll that retention needs (every segment expired, the active one too) and that fails on a
/// full disk before the new active segment exists: the pass reports `StorageFull`, deletes
/// nothing and claims no roll; once space is back, the same pass rolls and deletes everything.
#[test]
fn retention_whose_roll_fails_on_a_full_disk_reports_it() -> TestResult {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = TopicConfig::default().segment_bytes(4096).retention_ms(Some(1_000));
    let p = open(&fs, &clock, &cfg)?;
    for i in 0..100 {
        append_nth(&p, i, T0 + i as i64)?;
    }
    let segments = p.segments().len();
    assert!(segments > 2, "{segments} segments");
    clock.set(T0 + 10_000);
    // The roll's first change of the disk fails as a full disk does.
    fs.fail_nth(0, std::io::ErrorKind::StorageFull);
    let r = p.run_retention();
    assert!(matches!(r, Err(Error::StorageFull { .. })), "{r:?}");
    assert_eq!(p.log_start_offset(), 0);
    assert_eq!(p.segments().len(), segments);
    assert_eq!(p.read(0, 1)?.iter().next().map(|r| r.offset()), Some(0));
    let r = p.run_retention()?;
    assert!(r.rolled, "{r:?}");
    assert_eq!(p.log_start_offset(), 100, "{r:?}");
    assert_eq!(append_nth(&p, 100, T0 + 10_001)?, 100);
    Ok(())
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.0).status() {
            Ok(s) if s.success() => {}
            other => eprintln!("umount {} failed: {other:?}", self.0.display()),
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and an owned, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Mounts an `mb` MiB tmpfs under `tmp`, or says why not (the caller prints SKIP).
fn mount_tmpfs(tmp: &Path, mb: u32) -> Result<Mount, String> {
    if !is_root() {
        return Err("needs root to mount a tmpfs".into());
    }
    let mnt = tmp.join("mnt");
    std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
    let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"]).arg(&mnt).status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        return Err(format!("mount -t tmpfs failed: {status:?}"));
    }
    Ok(Mount(mnt))
}

/// The operational loop on a real 8 MiB tmpfs: the disk fills (`StorageFull`), the application
/// lowers the retention (bytes with 1 MiB segments; time with the default 1 GiB segments, where
/// the whole log is the active segment), runs retention, the space comes back (statvfs), and
/// appends resume. A reader holding records of a deleted segment keeps them until it lets go,
/// and then the space is free. Needs root; prints SKIP otherwise.
#[test]
fn storage_full_then_retention_frees_space_on_real_tmpfs() -> TestResult {
    for (cfg, by_time) in [
        (TopicConfig::default().retention_ms(None), true),
        (TopicConfig::default().segment_bytes(1 << 20).retention_ms(None), false),
    ] {
        let tmp = tempfile::tempdir()?;
        let mount = match mount_tmpfs(tmp.path(), 8) {
            Ok(m) => m,
            Err(why) => {
                println!("SKIP: storage_full_then_retention_frees_space_on_real_tmpfs: {why}");
                return Ok(());
            }
        };
        tmpfs_loop(&mount.0, cfg, by_time)?;
    }
    Ok(())
}

fn tmpfs_loop(mnt: &Path, cfg: TopicConfig, by_time: bool) -> TestResult {
    let dir = mnt.join("events-0");
    let clock = ManualClock::new(T0);
    let big = |i: u64| {
        let mut v = value_of(i);
        v.resize(2000, b'a' + (i % 26) as u8);
        v
    };
    let append = |p: &Partition, i: u64, ts: i64| -> Result<u64, Error> {
        Ok(p.append(Record::new().key(key_of(i)).value(big(i)).timestamp(ts))?.offset)
    };
    let p = Partition::options().clock(clock.clone()).config(cfg.clone()).open(&dir)?;
    let mut n = 0u64;
    let err = loop {
        match append(&p, n, T0 + n as i64) {
            Ok(o) => {
                assert_eq!(o, n);
                n += 1;
            }
            Err(e) => break e,
        }
        assert!(n < 10_000, "an 8 MiB tmpfs never filled");
    };
    assert!(matches!(err, Error::StorageFull { .. }), "append #{n} on a full disk gave {err:?}");
    let free_full = free_bytes(mnt);
    assert!(free_full < 64 << 10, "StorageFull with {free_full} bytes free");
    // A reader holds the first records.
    let held = p.read(0, 64 << 10)?;
    assert!(!held.is_empty());
    let held_n = held.iter().count() as u64;
    let r = if by_time {
        p.set_config(cfg.clone().retention_ms(Some(60_000)))?;
        clock.set(T0 + n as i64 + 60_001);
        p.run_retention()?
    } else {
        p.set_config(cfg.clone().retention_bytes(Some(2 << 20)))?;
        p.run_retention()?
    };
    assert!(r.segments_deleted >= 1, "{r:?}");
    if by_time {
        assert!(r.rolled, "{r:?}");
        assert_eq!(p.log_start_offset(), n);
    }
    // The reader still reads what it holds.
    for (rec, want) in held.iter().zip(0u64..) {
        assert_eq!(rec.offset(), want);
        assert_eq!(rec.value(), Some(&big(want)[..]), "held record {want} after its segment was deleted");
    }
    assert_eq!(held.iter().count() as u64, held_n);
    drop(held);
    p.run_retention()?;
    let free = free_bytes(mnt);
    assert!(
        free >= free_full + r.bytes_reclaimed / 2,
        "retention reclaimed {} bytes but only {} came back",
        r.bytes_reclaimed,
        free.saturating_sub(free_full)
    );
    let names = dir_names(&dir)?;
    assert!(leftovers(&names).is_empty(), "{names:?}");
    let start = p.log_start_offset();
    for _ in 0..200 {
        assert_eq!(append(&p, n, clock_now(&clock))?, n, "append after freeing space");
        n += 1;
    }
    p.close()?;
    drop(p);
    let p = Partition::options().clock(clock.clone()).config(cfg).open(&dir)?;
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (start, n));
    let got = read_all(&p)?;
    assert_eq!(got.len() as u64, n - start);
    for (r, want) in got.iter().zip(start..) {
        assert_eq!(r.offset, want);
        assert_eq!(r.value.as_deref(), Some(&big(want)[..]));
    }
    p.close()?;
    Ok(())
}

/// After the disk filled, the process restarts: the partition must open (recovery on a full
/// disk) so that retention can free the space, and a close on the full disk must not make that
/// impossible.
#[test]
fn reopen_on_a_full_disk_then_retention_frees_space() -> TestResult {
    let batch = batch_size()?;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = TopicConfig::default()
        .segment_bytes(u32::try_from(40 * batch)?)
        .retention_ms(None)
        .durability(Durability::EveryAppend);
    let p = open(&fs, &clock, &cfg)?;
    fs.set_capacity(Some(200 * batch));
    let mut n = 0u64;
    while append_nth(&p, n, T0).is_ok() {
        n += 1;
        assert!(n < 10_000, "the simulated disk never filled");
    }
    let closed = p.close();
    drop(p);
    let p = open(&fs, &clock, &cfg.clone().retention_bytes(Some(50 * batch)));
    assert!(p.is_ok(), "reopen on a full disk (close gave {closed:?}): {:?}", p.err());
    let p = p?;
    let r = p.run_retention()?;
    assert!(r.segments_deleted >= 2, "{r:?}");
    assert_eq!(append_nth(&p, n, T0)?, n);
    Ok(())
}

/// A partition opened cleanly on a disk that is already full (another writer filled it):
/// retention cannot even mark the checkpoint dirty first, yet it deletes what is due, the
/// space comes back, and the outcome survives a power loss and a clean close alike.
#[test]
fn retention_on_a_full_disk_after_a_clean_open() -> TestResult {
    let batch = batch_size()?;
    for crash in [false, true] {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        let cfg = five_per_segment(batch);
        let p = open(&fs, &clock, &cfg)?;
        for i in 0..23 {
            append_nth(&p, i, T0)?;
        }
        p.close()?;
        drop(p);
        let cfg = cfg.retention_bytes(Some(8 * batch));
        let p = open(&fs, &clock, &cfg)?;
        assert!(p.recovery_report().clean, "{:?}", p.recovery_report());
        let used = fs.used_bytes();
        fs.set_capacity(Some(used));
        let r = p.run_retention()?;
        // 23 batches, limit 8: 15 over, three segments of 5.
        assert_eq!((r.segments_deleted, r.by_size, r.log_start_offset), (3, 3, 15), "{r:?}");
        assert!(fs.used_bytes() + r.bytes_reclaimed <= used, "{} used of {used}", fs.used_bytes());
        assert_holds(&p, 15, 23, "after retention")?;
        if crash {
            fs.crash(partlog::fs::sim::CrashMode::LoseUnsynced);
        } else {
            p.close()?;
        }
        drop(p);
        fs.set_capacity(None);
        let p = open(&fs, &clock, &cfg)?;
        assert_holds(&p, 15, 23, &format!("reopened (crash: {crash})"))?;
        assert!(leftovers(&sim_files(&fs, DIR)?).is_empty(), "{:?}", sim_files(&fs, DIR)?);
        assert_eq!(append_nth(&p, 23, T0)?, 23);
    }
    Ok(())
}
