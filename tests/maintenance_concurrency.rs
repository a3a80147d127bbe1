//! Maintenance under load: an appender and readers (`read`, `iter`, `offset_for_timestamp`,
//! `segment_indexes`) run on threads while retention and compaction run over and over, on the
//! real file system, with memory-mapped reads and with `pread`.
//!
//! The record at offset `o` is a function of `o` (one appender, so offsets are known): every
//! tenth has a key of its own, which compaction never removes; the others cycle through `KEYS`
//! keys, so compaction may only remove one once the next record of its key exists. Readers check
//! that they never get an error (no spurious `OffsetOutOfRange` or `Corrupt` from a segment
//! being replaced or deleted — falling behind the log start is the one legitimate
//! `OffsetOutOfRange`), never see a record twice or out of order, see each record as appended,
//! and that every offset they skip is one retention or compaction may have removed. The
//! `MaintenanceWorker` is started, woken, stopped, and driven by a closing log directory.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use partlog::{CleanupPolicy, Durability, Error, LogDir, ManualClock, Partition, Record, StoredRecord, TopicConfig};

mod common;
use common::{Rng, seed};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const T0: i64 = 1_700_000_000_000;
/// Keys cycle with this period.
const KEYS: u64 = 37;

/// Every tenth record has a key of its own: compaction never removes it.
fn key_of(o: u64) -> Vec<u8> {
    if o.is_multiple_of(10) {
        format!("unique-{o:08}").into_bytes()
    } else {
        format!("key-{:03}", o % KEYS).into_bytes()
    }
}

/// The next offset with the same key as `o` (`None` for a unique key).
fn next_same_key(o: u64) -> Option<u64> {
    if o.is_multiple_of(10) {
        return None;
    }
    (1..).map(|j| o + KEYS * j).find(|x| x % 10 != 0)
}

fn value_of(o: u64) -> Vec<u8> {
    let mut v = format!("value-{o:08}-").into_bytes();
    v.resize(48, b'a' + (o % 26) as u8);
    v
}

fn ts_of(o: u64) -> i64 {
    T0 + o as i64
}

/// Whether retention or compaction may have removed offset `o`, judged after the read: below
/// the log start, or a later record of its key exists.
fn may_be_gone(o: u64, start: u64, end: u64) -> bool {
    o < start || next_same_key(o).is_some_and(|x| x < end)
}

/// Checks records read from `from` on: increasing, as appended, gaps legal.
fn check_run<'a>(
    p: &Partition,
    from: u64,
    offsets_and_records: impl Iterator<Item = (u64, Option<&'a [u8]>, Option<&'a [u8]>, i64)>,
    what: &str,
) -> Result<u64, String> {
    let mut expect = from;
    let mut n = 0;
    let mut gaps = Vec::new();
    for (o, k, v, ts) in offsets_and_records {
        if o < expect {
            return Err(format!("{what}: offset {o} after {} (twice or out of order)", expect - 1));
        }
        if o > expect {
            gaps.push((expect, o));
        }
        if k != Some(&key_of(o)[..]) || v != Some(&value_of(o)[..]) || ts != ts_of(o) {
            return Err(format!("{what}: offset {o} holds key {k:?} value {v:?} ts {ts}"));
        }
        expect = o + 1;
        n += 1;
    }
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    for (a, b) in gaps {
        if let Some(x) = (a..b).find(|&x| !may_be_gone(x, start, end)) {
            return Err(format!("{what}: skipped offsets {a}..{b}, but {x} cannot be gone (log {start}..{end})"));
        }
    }
    Ok(n)
}

/// `OffsetOutOfRange` is legitimate only below the log start (the reader fell behind).
fn legit_out_of_range(p: &Partition, e: &Error) -> bool {
    matches!(e, Error::OffsetOutOfRange { requested, start, .. } if requested < start && *start <= p.log_start_offset())
}

#[derive(Debug, Default)]
struct Stats {
    reads: u64,
    records: u64,
    fell_behind: u64,
}

fn reader_read(p: &Partition, done: &AtomicBool, seed: u64) -> Result<Stats, String> {
    let mut rng = Rng::new(seed);
    let mut st = Stats::default();
    while !done.load(Ordering::Acquire) || st.reads < 50 {
        let (lo, hi) = (p.log_start_offset(), p.log_end_offset());
        let at = rng.range(lo, hi);
        let max = [1usize, 100, 4 << 10, 1 << 20][rng.below(4) as usize];
        match p.read(at, max) {
            Ok(recs) => {
                let it = recs.iter().map(|r| (r.offset(), r.key(), r.value(), r.timestamp()));
                st.records += check_run(p, at, it, &format!("read({at}, {max})"))?;
                if recs.is_empty() && recs.next_fetch_offset() < at {
                    return Err(format!("read({at}): next fetch offset {} moves back", recs.next_fetch_offset()));
                }
            }
            Err(e) if legit_out_of_range(p, &e) => st.fell_behind += 1,
            Err(e) => return Err(format!("read({at}, {max}) in log {lo}..{hi}: {e}")),
        }
        st.reads += 1;
    }
    Ok(st)
}

fn reader_iter(p: &Partition, done: &AtomicBool) -> Result<Stats, String> {
    let mut st = Stats::default();
    while !done.load(Ordering::Acquire) || st.reads < 5 {
        let from = p.log_start_offset();
        let mut got: Vec<StoredRecord> = Vec::new();
        let mut err = None;
        for r in p.iter(from) {
            match r {
                Ok(r) => got.push(r),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let it = got.iter().map(|r| (r.offset, r.key.as_deref(), r.value.as_deref(), r.timestamp));
        st.records += check_run(p, from, it, &format!("iter({from})"))?;
        match err {
            None => {}
            Some(e) if legit_out_of_range(p, &e) => st.fell_behind += 1,
            Some(e) => return Err(format!("iter({from}) after {} records: {e}", got.len())),
        }
        st.reads += 1;
    }
    Ok(st)
}

fn reader_lookups(p: &Partition, done: &AtomicBool, seed: u64) -> Result<Stats, String> {
    let mut rng = Rng::new(seed);
    let mut st = Stats::default();
    while !done.load(Ordering::Acquire) || st.reads < 50 {
        let (s, e) = (p.log_start_offset(), p.log_end_offset());
        if e > s {
            let want = rng.range(s, e - 1);
            match p.offset_for_timestamp(ts_of(want)) {
                Ok(Some(hit)) => {
                    if hit.timestamp != ts_of(hit.offset) || hit.offset < want {
                        return Err(format!("offset_for_timestamp({}) gave {hit:?}", ts_of(want)));
                    }
                    let (s2, e2) = (p.log_start_offset(), p.log_end_offset());
                    if let Some(x) = (want..hit.offset).find(|&x| !may_be_gone(x, s2, e2)) {
                        return Err(format!("offset_for_timestamp({}) gave {hit:?}, skipping {x}", ts_of(want)));
                    }
                }
                Ok(None) => return Err(format!("offset_for_timestamp({}) found nothing in {s}..{e}", ts_of(want))),
                Err(err) => return Err(format!("offset_for_timestamp({}): {err}", ts_of(want))),
            }
        }
        for seg in p.segments() {
            match p.segment_indexes(seg.base_offset) {
                Ok((index, _)) => {
                    if index.base_offset() != seg.base_offset {
                        return Err(format!(
                            "segment_indexes({}) gave the index of {}",
                            seg.base_offset,
                            index.base_offset()
                        ));
                    }
                }
                Err(Error::OffsetOutOfRange { .. })
                    if !p.segments().iter().any(|x| x.base_offset == seg.base_offset) => {}
                Err(err) => return Err(format!("segment_indexes({}): {err}", seg.base_offset)),
            }
        }
        st.reads += 1;
    }
    Ok(st)
}

/// The workload: appends until enough maintenance passes ran, with the given maintenance step.
fn under_load(
    p: &Partition,
    seed: u64,
    min_passes: u64,
    maintain: impl Fn(&Partition) -> Result<(), String> + Send + Sync,
) -> Result<u64, String> {
    let done = AtomicBool::new(false);
    let passes = AtomicU64::new(0);
    let appended = AtomicU64::new(0);
    let start = Barrier::new(5);
    std::thread::scope(|s| {
        let appender = s.spawn(|| -> Result<(), String> {
            start.wait();
            let mut o = 0u64;
            let mut rng = Rng::new(seed ^ 1);
            let result = (|| {
                while o < 200_000 && (o < 5_000 || passes.load(Ordering::Acquire) < min_passes) {
                    let n = if rng.below(5) == 0 { rng.range(2, 6) } else { 1 };
                    let (ks, vs): (Vec<_>, Vec<_>) = (o..o + n).map(|x| (key_of(x), value_of(x))).unzip();
                    let recs: Vec<Record<'_>> = (0..n as usize)
                        .map(|i| Record::new().key(&ks[i]).value(&vs[i]).timestamp(ts_of(o + i as u64)))
                        .collect();
                    let at = p.append_batch(&recs).map_err(|e| format!("append at {o}: {e}"))?;
                    if at.base_offset != o {
                        return Err(format!("append got {}, expected {o}", at.base_offset));
                    }
                    o += n;
                    appended.store(o, Ordering::Release);
                    if o % 64 < n {
                        std::thread::yield_now();
                    }
                }
                Ok(())
            })();
            done.store(true, Ordering::Release);
            result
        });
        let maint = s.spawn(|| -> Result<(), String> {
            start.wait();
            while !done.load(Ordering::Acquire) {
                maintain(p)?;
                passes.fetch_add(1, Ordering::AcqRel);
            }
            Ok(())
        });
        let r1 = s.spawn(|| {
            start.wait();
            reader_read(p, &done, seed ^ 2)
        });
        let r2 = s.spawn(|| {
            start.wait();
            reader_iter(p, &done)
        });
        let r3 = s.spawn(|| {
            start.wait();
            reader_lookups(p, &done, seed ^ 3)
        });
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<(), String>>, what: &str| {
            h.join().map_err(|_| format!("{what} panicked"))?
        };
        let join_r = |h: std::thread::ScopedJoinHandle<'_, Result<Stats, String>>, what: &str| {
            let st = h.join().map_err(|_| format!("{what} panicked"))??;
            println!("{what}: {st:?}");
            Ok::<Stats, String>(st)
        };
        // Join every thread before reporting, so one failure does not leave the others running.
        let results = (join(appender, "appender"), join(maint, "maintenance"));
        let readers = (join_r(r1, "read"), join_r(r2, "iter"), join_r(r3, "lookups"));
        results.0?;
        results.1?;
        let (a, b, c) = (readers.0?, readers.1?, readers.2?);
        if a.records == 0 || b.records == 0 || c.reads == 0 {
            return Err("a reader read nothing".to_owned());
        }
        Ok(())
    })?;
    println!(
        "{} records appended, {} maintenance passes",
        appended.load(Ordering::Acquire),
        passes.load(Ordering::Acquire)
    );
    Ok(appended.load(Ordering::Acquire))
}

fn config() -> TopicConfig {
    TopicConfig::default()
        .cleanup_policy(CleanupPolicy::COMPACT_DELETE)
        .segment_bytes(4 << 10)
        .index_interval_bytes(256)
        .retention_bytes(Some(48 << 10))
        .retention_ms(None)
        .durability(Durability::Os)
}

/// After the load: the log is a compacted, retained version of what was appended.
fn check_final(p: &Partition, n: u64) -> TestResult {
    assert_eq!(p.log_end_offset(), n);
    p.roll()?;
    p.compact()?;
    let recs: Vec<StoredRecord> = p.iter(p.log_start_offset()).collect::<Result<_, _>>()?;
    let it = recs.iter().map(|r| (r.offset, r.key.as_deref(), r.value.as_deref(), r.timestamp));
    check_run(p, p.log_start_offset(), it, "final")?;
    // Compacted: exactly every key's latest record from the log start on.
    let start = p.log_start_offset();
    let got: Vec<u64> = recs.iter().map(|r| r.offset).collect();
    let want: Vec<u64> = (start..n).filter(|&o| next_same_key(o).is_none_or(|x| x >= n)).collect();
    assert_eq!(got, want);
    Ok(())
}

/// Retention and compaction in a tight loop beside an appender and three readers, with
/// memory-mapped reads and with `pread`.
#[test]
fn readers_and_appends_during_retention_and_compaction() -> TestResult {
    let seed = seed("readers_and_appends_during_retention_and_compaction");
    for mmap in [true, false] {
        let tmp = tempfile::tempdir()?;
        let p = Partition::options().config(config()).mmap_reads(mmap).open(tmp.path().join("p"))?;
        let n = under_load(&p, seed, 60, |p| {
            p.run_retention().map_err(|e| format!("retention: {e}"))?;
            p.compact().map_err(|e| format!("compaction: {e}"))?;
            Ok(())
        })?;
        println!("mmap={mmap}: log {}..{}", p.log_start_offset(), p.log_end_offset());
        assert!(p.log_start_offset() > 0, "retention never ran under load");
        check_final(&p, n)?;
        p.close()?;
        drop(p);
        let p = Partition::options().config(config()).mmap_reads(mmap).open(tmp.path().join("p"))?;
        check_final(&p, n)?;
    }
    Ok(())
}

/// The same load with the background `MaintenanceWorker` of a log directory doing the work
/// (always due: a dirty ratio of 0.01), woken after every step of the maintenance thread.
#[test]
fn readers_and_appends_under_the_maintenance_worker() -> TestResult {
    let seed = seed("readers_and_appends_under_the_maintenance_worker");
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let t = dir.create_topic("t", config().min_cleanable_dirty_ratio(0.01).partitions(1))?;
    let p = t.partition(0)?;
    let worker = dir.start_maintenance()?;
    let n = under_load(&p, seed, 30, |p| {
        // The worker does the maintenance; this thread counts its passes.
        let before = p.cleaner_status().passes;
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while p.cleaner_status().passes == before {
            if std::time::Instant::now() > until {
                return Err("the worker ran no pass in a minute".into());
            }
            // A wake while it runs is lost: wake it until it has run.
            worker.wake();
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(e) = p.cleaner_status().last_error {
            return Err(format!("the worker's pass failed: {e}"));
        }
        Ok(())
    })?;
    let last = worker.take_last_report();
    worker.stop();
    let last = last.ok_or("the worker left no report")?;
    assert!(last.errors.is_empty(), "{:?}", last.errors);
    assert!(p.log_start_offset() > 0, "retention never ran under load");
    check_final(&p, n)?;
    dir.close()?;
    Ok(())
}

/// `MaintenanceWorker` start, wake, report, stop: it runs retention when time makes a segment
/// due, and a stopped worker does nothing more. A worker whose log directory is closed ends
/// too.
#[test]
fn maintenance_worker_start_and_stop() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let clock = ManualClock::new(T0);
    let dir = LogDir::options().clock(clock.clone()).open(tmp.path().join("data"))?;
    let t = dir.create_topic("t", TopicConfig::default().retention_ms(Some(60_000)).partitions(1))?;
    let p = t.partition(0)?;
    for o in 0..10 {
        p.append(Record::new().key(key_of(o)).value(value_of(o)).timestamp(T0))?;
    }
    let worker = dir.start_maintenance()?;
    let wait_for = |what: &str, f: &dyn Fn() -> bool| -> Result<(), String> {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while !f() {
            if std::time::Instant::now() > until {
                return Err(format!("{what} did not happen within a minute"));
            }
            worker.wake();
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    };
    wait_for("a first run", &|| worker.take_last_report().is_some())?;
    assert_eq!(p.log_start_offset(), 0, "nothing is due yet");
    clock.advance(60_001);
    wait_for("retention of the expired segment", &|| p.log_start_offset() == 10)?;
    worker.stop();
    // Stopped: time passing changes nothing any more.
    for o in 10..20 {
        p.append(Record::new().key(key_of(o)).value(value_of(o)).timestamp(T0 + 60_001))?;
    }
    clock.advance(120_000);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(p.log_start_offset(), 10, "a stopped worker ran retention");
    // A worker ends when its directory is closed.
    let worker = dir.start_maintenance()?;
    dir.close()?;
    worker.stop();
    Ok(())
}
