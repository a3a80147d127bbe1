//! Tests written for mutants that cargo-mutants found alive in the durable code: each one
//! names the mutant it kills, and fails on it (checked by applying the mutant by hand).
//!
//! Files are crafted with the independent encoder in `tests/spec`, never with the code under
//! test, so a crafted file is what the format says, not what the code happens to write.
//! Randomized sweeps print their seed and replay from `PARTLOG_SEED`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{
    CorruptKind, Durability, Error, ManualClock, Partition, Record, RecoveryMode, StoredRecord, TopicConfig,
};

mod common;
mod spec;
use common::counting_fs::{CountingFs, EIO};
use common::{Rng, seed};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const T0: i64 = 1_700_000_000_000;

fn value_of(o: u64) -> Vec<u8> {
    format!("value-{o}-{}", "v".repeat((o % 11) as usize)).into_bytes()
}

fn read_all(p: &Partition) -> Result<Vec<StoredRecord>, Error> {
    p.iter(p.log_start_offset()).collect()
}

/// Asserts the log holds exactly the offsets in `offsets`, each with `value_of(offset)`.
fn assert_values(p: &Partition, offsets: impl IntoIterator<Item = u64>) -> TestResult {
    let got: Vec<(u64, Option<Vec<u8>>)> = read_all(p)?.into_iter().map(|r| (r.offset, r.value)).collect();
    let want: Vec<(u64, Option<Vec<u8>>)> = offsets.into_iter().map(|o| (o, Some(value_of(o)))).collect();
    assert_eq!(got, want);
    Ok(())
}

fn write_segment(dir: &Path, base: u64, bytes: &[u8]) -> TestResult {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(spec::seg_name(base, "log")), bytes)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `has_zero_page` (segment/log_file.rs): forced false, forced true, inverted.

/// Six one-record batches split after the fourth, which is damaged: the bytes up to and
/// including it, and the two valid batches after it.
fn damaged_head_and_valid_rest() -> (Vec<u8>, Vec<u8>) {
    let log = spec::single_batches(0, 6, value_of);
    let bs = spec::batches(&log);
    let end = bs[3].0 + bs[3].1.len();
    let mut head = log[..end].to_vec();
    head[end - 1] ^= 0x40; // batch 3's last payload byte: its CRC no longer matches
    (head, log[end..].to_vec())
}

/// [`damaged_head_and_valid_rest`] with `filler` between the two parts, in the only (active)
/// segment, without a checkpoint.
fn damaged_then_filler_then_valid(dir: &Path, filler: &[u8]) -> TestResult {
    let (head, rest) = damaged_head_and_valid_rest();
    write_segment(dir, 0, &[head, filler.to_vec(), rest].concat())
}

/// A whole page of zeros between the damage and the valid batches after it is what a power
/// loss leaves in the active segment: a torn tail, cut. Kills `has_zero_page -> false`.
#[test]
fn zero_page_between_damage_and_valid_data_is_a_torn_tail() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    damaged_then_filler_then_valid(&dir, &[0u8; 8192])?;
    let p = Partition::open(&dir)?;
    let cut = p.recovery_report().tail_cut.ok_or("no tail cut reported")?;
    assert!(!cut.valid_data_after, "{cut:?}");
    assert_eq!(cut.reason, CorruptKind::BatchChecksum);
    assert_eq!(p.log_end_offset(), 3);
    assert_values(&p, 0..3)?;
    Ok(())
}

/// A hole (never-written blocks, what delayed allocation leaves after a power loss) between
/// the damage and valid batches after it in the active segment is a torn tail too: the search
/// for valid data skips the hole without reading it, and the zero pages it reads as make the
/// verdict. Kills the guard of the zero-page check forced false.
#[test]
fn hole_between_damage_and_valid_data_is_a_torn_tail() -> TestResult {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let (head, rest) = damaged_head_and_valid_rest();
    write_segment(&dir, 0, &head)?;
    let f = std::fs::OpenOptions::new().write(true).open(dir.join(spec::seg_name(0, "log")))?;
    let after = (head.len() as u64).div_ceil(4096) * 4096 + 3 * 4096;
    f.write_all_at(&rest, after)?;
    drop(f);
    let p = Partition::open(&dir)?;
    let cut = p.recovery_report().tail_cut.ok_or("no tail cut reported")?;
    assert_eq!(cut.reason, CorruptKind::BatchChecksum);
    assert_eq!(p.log_end_offset(), 3);
    assert_values(&p, 0..3)?;
    Ok(())
}

/// Non-zero bytes (no whole zero page) between the damage and valid data: damage in the
/// middle of the log, refused. Kills `has_zero_page -> true` and an inverted page test.
#[test]
fn junk_without_a_zero_page_before_valid_data_is_damage() -> TestResult {
    for filler in [vec![0xAAu8; 8192], {
        // Mostly zeros, but no aligned 4 KiB page entirely zero.
        let mut f = vec![0u8; 8192];
        for i in (0..f.len()).step_by(1000) {
            f[i] = 1;
        }
        f
    }] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("p");
        damaged_then_filler_then_valid(&dir, &filler)?;
        match Partition::open(&dir) {
            Err(Error::Corrupt { kind, .. }) => assert_eq!(kind, CorruptKind::BatchChecksum),
            Ok(p) => panic!("opened, log end {}, report {:?}", p.log_end_offset(), p.recovery_report()),
            Err(e) => return Err(e.into()),
        }
        // Nothing was changed: the file is as it was.
        let log = std::fs::read(dir.join(spec::seg_name(0, "log")))?;
        assert_eq!(log.len(), spec::single_batches(0, 6, value_of).len() + filler.len());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The listing at open (partition/recovery.rs): leftovers removed and counted.

/// Every kind of leftover an interrupted change can leave is removed at open, counted once
/// each in the report, and the log is as it was. Kills the `+= 1` -> `*= 1` / `-= 1` mutants
/// of `leftovers_removed` in `list` and `open`.
#[test]
fn every_leftover_is_removed_and_counted_once() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    write_segment(&dir, 0, &spec::single_batches(0, 5, value_of))?;
    let leftovers = [
        format!("{}.tmp", spec::seg_name(0, "index")),
        format!("{}.deleted", spec::seg_name(0, "log")),
        format!("{}.deleted", spec::seg_name(0, "timeindex")),
        format!("{}.cleaned", spec::seg_name(0, "log")),
        format!("{}.cleaned", spec::seg_name(0, "index")),
        // Index files without their log: one orphaned segment.
        spec::seg_name(99, "index"),
        spec::seg_name(99, "timeindex"),
    ];
    for name in &leftovers {
        std::fs::write(dir.join(name), b"left over")?;
    }
    let p = Partition::open(&dir)?;
    assert_eq!(p.recovery_report().leftovers_removed, 6, "{:?}", p.recovery_report());
    for name in &leftovers {
        assert!(!dir.join(name).exists(), "{name} was left");
    }
    assert_values(&p, 0..5)?;
    Ok(())
}

/// A log that used up the offset space (its end at `i64::MAX`) and then rolled has an empty
/// segment named with that base: it opens, and refuses appends with a typed error. Kills
/// `> MAX_OFFSET` -> `>= MAX_OFFSET`.
#[test]
fn a_log_at_the_end_of_the_offset_space_rolls_and_reopens() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let end = i64::MAX as u64;
    let log: Vec<u8> = (end - 5..end)
        .flat_map(|o| spec::batch(o, &[spec::Rec::new(o, T0, Some(b"k"), Some(&value_of(o)))], None))
        .collect();
    write_segment(&dir, end - 5, &log)?;
    let p = Partition::open(&dir)?;
    assert_eq!(p.log_end_offset(), end);
    assert!(p.roll()?);
    p.close()?;
    drop(p);
    let p = Partition::open(&dir)?;
    assert_eq!(p.segments().iter().map(|s| s.base_offset).collect::<Vec<_>>(), vec![end - 5, end]);
    assert_values(&p, end - 5..end)?;
    match p.append(Record::new().key("k").value("v")) {
        Err(Error::OffsetSpaceExhausted { log_end_offset, .. }) => assert_eq!(log_end_offset, end),
        other => panic!("append past the offset space: {other:?}"),
    }
    Ok(())
}

/// A segment file named with a base offset past the offset space (above `i64::MAX`) is
/// refused at open as damaged metadata, whether or not the name is the largest 20-digit one.
/// Kills `> MAX_OFFSET` -> `== MAX_OFFSET`.
#[test]
fn a_segment_base_past_the_offset_space_is_refused() -> TestResult {
    for bad in [u64::MAX, i64::MAX as u64 + 1] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("p");
        write_segment(&dir, 0, &spec::single_batches(0, 5, value_of))?;
        std::fs::write(dir.join(spec::seg_name(bad, "log")), b"")?;
        match Partition::open(&dir) {
            Err(Error::Corrupt { path, kind, .. }) => {
                assert_eq!((path, kind), (dir.join(spec::seg_name(bad, "log")), CorruptKind::Metadata));
            }
            other => panic!("base {bad}: {other:?}"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cutting damage at open (partition/recovery.rs): what the cut removes stays removed.

/// With `RecoveryMode::TruncateCorrupt`, damage in a sealed segment is cut there and every
/// later segment removed; the report says how many bytes went, and the removals are durable
/// once the open returns: after a power loss right after it, the cut records do not come back.
/// Kills `-` -> `+` in `bytes_cut`.
#[test]
fn a_chosen_cut_of_damage_stays_cut_after_a_power_loss() -> TestResult {
    let clock = ManualClock::new(T0);
    let cfg = TopicConfig::default().segment_bytes(400);
    let fs = SimFs::new();
    let p = sim_open(&fs, &clock, &cfg)?;
    for o in 0..24 {
        append_one(&p, o)?;
    }
    let segs = p.segments();
    assert!(segs.len() >= 3, "{segs:?}");
    p.close()?;
    drop(p);
    // Damage the last byte of the first segment's second batch.
    let first = Path::new("/p").join(spec::seg_name(0, "log"));
    let mut bytes = fs.read_file(&first)?;
    let (second, second_len) = {
        let bs = spec::batches(&bytes);
        (bs[1].0, bs[1].1.len())
    };
    bytes[second + second_len - 1] ^= 0x40;
    fs.write_file(&first, &bytes)?;
    // As after a crash: the checkpoint vouches for nothing, so every segment is re-read.
    let cp_path = Path::new("/p/partition.checkpoint");
    let mut cp = spec::Checkpoint::decode(&fs.read_file(cp_path)?);
    (cp.clean, cp.recovery_point) = (false, 0);
    fs.write_file(cp_path, &cp.encode())?;
    let open = || {
        Partition::options()
            .fs(fs.clone())
            .clock(clock.clone())
            .config(cfg.clone())
            .recovery(RecoveryMode::TruncateCorrupt)
            .open("/p")
    };
    let p = open()?;
    let cut = p.recovery_report().tail_cut.ok_or("no cut reported")?;
    assert_eq!((cut.segment, cut.at_byte), (0, second as u64), "{cut:?}");
    assert_eq!(cut.bytes_cut, (bytes.len() - second) as u64, "{cut:?}");
    assert!(cut.valid_data_after, "{cut:?}");
    assert_eq!(p.log_end_offset(), 1);
    drop(p);
    fs.crash(CrashMode::LoseUnsynced);
    let p = open()?;
    assert_eq!(p.segments().iter().map(|s| s.base_offset).collect::<Vec<_>>(), vec![0]);
    assert_eq!(p.log_end_offset(), 1);
    assert_values(&p, 0..1)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `scan` (segment/log_file.rs): `||` -> `&&` in the offset-order check.

/// A checksum-valid batch whose offsets go backwards, or whose last offset does not fit the
/// segment's u32 relative range, ends the valid log. Kills `||` -> `&&` (and each operand
/// forced false).
#[test]
fn crc_valid_batch_with_bad_offsets_ends_the_log() -> TestResult {
    let a = spec::batch(0, &[0, 1, 2].map(|o| spec::Rec::new(o, 1_000, Some(b"k"), Some(&value_of(o)))), None);
    let backwards = spec::batch(1, &[1, 2].map(|o| spec::Rec::new(o, 1_000, Some(b"k"), Some(b"dup"))), None);
    let far = 3 + (1u64 << 32);
    let beyond = spec::batch(far, &[spec::Rec::new(far, 1_000, Some(b"k"), Some(b"far"))], None);
    for (name, bad) in [("backwards", backwards), ("beyond u32", beyond)] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("p");
        write_segment(&dir, 0, &[a.clone(), bad].concat())?;
        let p = Partition::open(&dir)?;
        let cut = p.recovery_report().tail_cut.ok_or(format!("{name}: no tail cut"))?;
        assert_eq!((cut.reason, cut.at_byte), (CorruptKind::OffsetOrder, a.len() as u64), "{name}");
        assert_eq!(p.log_end_offset(), 3, "{name}");
        assert_values(&p, 0..3)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `plausible` (partition/recovery.rs): -> true, and each clause.

/// A closed log of three sealed segments and an active one; returns its directory's records
/// count.
fn closed_log(dir: &Path) -> TestResult<u64> {
    let p = Partition::open_with(dir, TopicConfig::default().segment_bytes(400).index_interval_bytes(64))?;
    for o in 0..24u64 {
        p.append(Record::new().key("k").value(value_of(o)).timestamp(1_000 + o as i64))?;
    }
    assert!(p.segments().len() >= 3, "{} segments", p.segments().len());
    p.close()?;
    Ok(24)
}

/// A clean, checksum-valid checkpoint whose summary of a sealed segment cannot be true is not
/// trusted: the segment is re-read and every record comes back, and neither the report nor the
/// checkpoint claims a clean open. Kills `plausible -> true`, mutants of its clauses, and those
/// of the `revalidated` condition in `open`.
#[test]
fn implausible_summary_in_a_valid_clean_checkpoint_is_not_trusted() -> TestResult {
    type Lie = fn(&mut spec::Summary, u64);
    let lies: [(&str, Lie); 8] = [
        ("next offset below base", |s, _| s.next_offset = s.base - 1),
        ("next offset past the offset space", |s, _| s.next_offset = i64::MAX as u64 + 1),
        ("more than u32 offsets", |s, _| s.next_offset = s.base + (1u64 << 32) + 1),
        ("size beyond u32", |s, _| s.size = u64::from(u32::MAX) + 1),
        ("empty by size, not by offsets", |s, _| s.size = 0),
        ("empty by offsets, not by size", |s, _| s.next_offset = s.base),
        ("no records but bytes", |s, _| s.records = 0),
        ("next offset past the next segment", |s, next_base| s.next_offset = next_base + 1),
    ];
    for (name, lie) in lies {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("p");
        let n = closed_log(&dir)?;
        let cp_path = dir.join("partition.checkpoint");
        let mut cp = spec::Checkpoint::decode(&std::fs::read(&cp_path)?);
        assert!(cp.clean && cp.segments.len() >= 3, "{cp:?}");
        let next_base = cp.segments[2].base;
        let s = &mut cp.segments[1];
        let before = *s;
        lie(s, next_base);
        assert_ne!(*s, before, "{name}: the lie changed nothing");
        std::fs::write(&cp_path, cp.encode())?;
        let p = Partition::open(&dir)?;
        assert!(p.recovery_report().segments_revalidated >= 1, "{name}: {:?}", p.recovery_report());
        // Neither the report nor the checkpoint left on disk claims a clean open any more.
        assert!(!p.recovery_report().clean, "{name}: {:?}", p.recovery_report());
        assert!(!spec::Checkpoint::decode(&std::fs::read(&cp_path)?).clean, "{name}");
        assert_eq!(p.log_end_offset(), n, "{name}");
        assert_values(&p, 0..n)?;
        // The segment holds what it held: a read of its first offset finds it.
        let got = p.read(before.base, 1 << 16)?;
        assert_eq!(got.iter().next().map(|r| r.offset()), Some(before.base), "{name}");
    }
    Ok(())
}

/// A clean, checksum-valid checkpoint with its log start or its log end past the offset space
/// is not trusted at all: every segment is re-read (all its bytes, as the report counts) and
/// every record comes back (a trusted log start past the end would have deleted the whole
/// log). Kills `&&` -> `||` in the filter and `+=` -> `*=` in the report's byte count.
#[test]
fn a_checkpoint_with_offsets_past_the_offset_space_is_not_trusted() -> TestResult {
    for lie in ["log start", "log end"] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("p");
        let n = closed_log(&dir)?;
        let cp_path = dir.join("partition.checkpoint");
        let mut cp = spec::Checkpoint::decode(&std::fs::read(&cp_path)?);
        let segments = cp.segments.len() as u32;
        let bytes: u64 = cp.segments.iter().map(|s| s.size).sum();
        if lie == "log start" {
            cp.log_start = i64::MAX as u64 + 1;
        } else {
            cp.log_end = i64::MAX as u64 + 1;
        }
        std::fs::write(&cp_path, cp.encode())?;
        let p = Partition::open(&dir)?;
        let report = p.recovery_report();
        assert_eq!((report.segments_revalidated, report.bytes_revalidated), (segments, bytes), "{lie}: {report:?}");
        assert_eq!((p.log_start_offset(), p.log_end_offset()), (0, n), "{lie}");
        assert_values(&p, 0..n)?;
    }
    Ok(())
}

/// Segments wholly below the checkpoint's log start are what an interrupted deletion leaves:
/// removed at open and reported, the rest kept. Kills `bases.len() > 1` -> `== 1` / `< 1`.
#[test]
fn segments_below_the_log_start_are_removed_at_open() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let n = closed_log(&dir)?;
    let cp_path = dir.join("partition.checkpoint");
    let mut cp = spec::Checkpoint::decode(&std::fs::read(&cp_path)?);
    let (first, second) = (cp.segments[0].base, cp.segments[1].base);
    cp.log_start = second + 1;
    std::fs::write(&cp_path, cp.encode())?;
    let p = Partition::open(&dir)?;
    assert_eq!(p.recovery_report().segments_deleted, vec![first], "{:?}", p.recovery_report());
    assert!(!dir.join(spec::seg_name(first, "log")).exists());
    assert_eq!(p.segments().first().map(|s| s.base_offset), Some(second));
    assert_eq!(p.log_start_offset(), second + 1);
    let got: Vec<u64> = read_all(&p)?.into_iter().map(|r| r.offset).collect();
    assert_eq!(got, (second + 1..n).collect::<Vec<_>>());
    Ok(())
}

/// After a crash (a checkpoint that vouches for nothing), a sealed segment whose index files
/// are gone gets them back at open, and only that one is rewritten: the others already
/// describe their segments. Kills `!=` -> `==` in the index check of the sealed path.
#[test]
fn only_missing_indexes_of_sealed_segments_are_rebuilt_at_open() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let n = closed_log(&dir)?;
    let cp_path = dir.join("partition.checkpoint");
    let mut cp = spec::Checkpoint::decode(&std::fs::read(&cp_path)?);
    (cp.clean, cp.recovery_point) = (false, 0);
    let gone = cp.segments[1].base;
    std::fs::write(&cp_path, cp.encode())?;
    for ext in ["index", "timeindex"] {
        std::fs::remove_file(dir.join(spec::seg_name(gone, ext)))?;
    }
    let p = Partition::open(&dir)?;
    assert_eq!(p.recovery_report().indexes_rebuilt, 1, "{:?}", p.recovery_report());
    for ext in ["index", "timeindex"] {
        assert!(dir.join(spec::seg_name(gone, ext)).exists(), "{ext} not rebuilt");
    }
    assert_values(&p, 0..n)?;
    Ok(())
}

/// A log whose start was moved to its end (every record below it, still in the active
/// segment) reopens after a clean close as it was: clean, nothing deleted or re-read, the
/// segment kept. Kills `end < log_start` -> `<=` (which starts such a log afresh).
#[test]
fn a_log_started_at_its_end_reopens_clean_and_untouched() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open(&dir)?;
    for o in 0..10 {
        p.append(Record::new().key("k").value(value_of(o)))?;
    }
    p.advance_log_start(10)?;
    let before = p.segments();
    p.close()?;
    drop(p);
    let p = Partition::open(&dir)?;
    let r = p.recovery_report();
    assert!(r.clean && r.segments_deleted.is_empty() && r.segments_revalidated == 0, "{r:?}");
    assert_eq!(p.segments(), before);
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (10, 10));
    Ok(())
}

/// Only a lock held by another owner is `Error::Locked`; any other failure to take the lock
/// is reported as the I/O error it is. Kills the `WouldBlock` guard in `take_lock` forced true.
#[test]
fn a_lock_that_cannot_be_taken_for_another_reason_is_an_io_error() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    Partition::open(&dir)?.close()?;
    let lock = dir.join(".lock");
    let _ = std::fs::remove_file(&lock);
    std::fs::create_dir(&lock)?;
    match Partition::open(&dir) {
        Err(Error::Io { path, .. }) => assert_eq!(path, lock),
        other => panic!("lock path is a directory: {other:?}"),
    }
    Ok(())
}

/// A clean close right after a roll leaves an empty active segment: the next open trusts it
/// like any other, re-reading nothing. Kills `from == 0` -> `!=` in `tail_matches`.
#[test]
fn a_clean_close_with_an_empty_active_segment_reopens_clean() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open(&dir)?;
    for o in 0..10 {
        p.append(Record::new().key("k").value(value_of(o)))?;
    }
    assert!(p.roll()?);
    p.close()?;
    drop(p);
    let p = Partition::open(&dir)?;
    let r = p.recovery_report();
    assert!(r.clean && r.segments_revalidated == 0, "{r:?}");
    assert_eq!(p.segments().iter().map(|s| (s.base_offset, s.size)).collect::<Vec<_>>()[1], (10, 0));
    assert_values(&p, 0..10)?;
    Ok(())
}

/// A checkpoint file larger than any checkpoint (here a sparse 2 GiB) is ignored unread: the
/// open re-validates the log instead of reading it into memory. Kills `len > 1 << 30` ->
/// `len == 1 << 30` in `read_checkpoint`.
#[test]
fn an_oversized_checkpoint_is_ignored_unread() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let n = closed_log(&dir)?;
    std::fs::OpenOptions::new().write(true).open(dir.join("partition.checkpoint"))?.set_len(2 << 30)?;
    let fs = Arc::new(CountingFs::default());
    let read = Arc::clone(&fs.read);
    let p = Partition::options().fs(fs).mmap_reads(false).open(&dir)?;
    let got = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(got < 16 << 20, "open read {got} bytes");
    assert!(p.recovery_report().segments_revalidated >= 1, "{:?}", p.recovery_report());
    assert_values(&p, 0..n)?;
    Ok(())
}

/// A sealed segment far into the offset space whose offsets span the whole u32 range (records
/// at its base and at base + u32::MAX, the gap compaction can leave) is described plausibly
/// by its summary: after a clean close nothing is re-read. Kills `-` -> `+` and `+ 1` -> `- 1`
/// / `* 1` in the span clause of `plausible`.
#[test]
fn a_full_span_segment_far_into_the_offset_space_is_trusted_after_a_clean_close() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let base = 1u64 << 33;
    let last = base + u64::from(u32::MAX);
    let next = last + 1;
    let rec = |o: u64| spec::batch(o, &[spec::Rec::new(o, T0, Some(b"k"), Some(&value_of(o)))], None);
    write_segment(&dir, base, &[rec(base), rec(last)].concat())?;
    write_segment(&dir, next, &rec(next))?;
    let want = [base, last, next];
    let check = |p: &Partition| -> TestResult {
        let got: Vec<u64> = read_all(p)?.into_iter().map(|r| r.offset).collect();
        assert_eq!(got, want);
        Ok(())
    };
    let p = Partition::open(&dir)?;
    check(&p)?;
    p.close()?;
    drop(p);
    let p = Partition::open(&dir)?;
    let r = p.recovery_report();
    assert!(r.clean && r.segments_revalidated == 0, "{r:?}");
    check(&p)?;
    Ok(())
}

/// A torn tail in a segment followed only by empty segment files (created, never written) is
/// still a torn tail: cut, the empty files removed, the log opened. Kills `segment_has_data`
/// forced true (which made it damage and refused the log).
#[test]
fn a_torn_tail_before_only_empty_segments_is_cut() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let log = spec::single_batches(0, 6, value_of);
    let torn = spec::batches(&log)[5].0 + 10;
    write_segment(&dir, 0, &log[..torn])?;
    write_segment(&dir, 6, b"")?;
    let p = Partition::open(&dir)?;
    let r = p.recovery_report();
    assert!(r.tail_cut.is_some_and(|c| c.segment == 0 && !c.valid_data_after), "{r:?}");
    assert_eq!(r.segments_deleted, vec![6], "{r:?}");
    assert!(!dir.join(spec::seg_name(6, "log")).exists());
    assert_eq!(p.log_end_offset(), 5);
    assert_values(&p, 0..5)?;
    Ok(())
}

/// A later segment holding only an empty batch (no records, but it carries the log end past a
/// gap, as compaction and truncation leave) holds data: a damaged tail in the segment before
/// it is damage in the middle of the log, refused, and nothing is cut. Kills `||` -> `&&` in
/// `segment_has_data`.
#[test]
fn a_segment_holding_only_an_empty_batch_counts_as_data() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let log = spec::single_batches(0, 6, value_of);
    let torn = spec::batches(&log)[5].0 + 10;
    write_segment(&dir, 0, &log[..torn])?;
    let empty = spec::batch(6, &[], Some(3));
    write_segment(&dir, 6, &empty)?;
    match Partition::open(&dir) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, dir.join(spec::seg_name(0, "log"))),
        Ok(p) => panic!("opened: log end {}, {:?}", p.log_end_offset(), p.recovery_report()),
        Err(e) => return Err(e.into()),
    }
    assert_eq!(std::fs::read(dir.join(spec::seg_name(6, "log")))?, empty);
    assert_eq!(std::fs::metadata(dir.join(spec::seg_name(0, "log")))?.len(), torn as u64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `tail_matches` (partition/recovery.rs): `&&` -> `||`, `==` -> `!=`.

/// After a clean close, damage inside the active segment's last batch (length unchanged)
/// must be found at open although the clean checkpoint vouches for the segment: with no index
/// entry, the whole segment is confirmed. Kills `m.size == 0 && from == 0` -> `||`.
#[test]
fn clean_checkpoint_does_not_hide_damage_in_an_unindexed_active_segment() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open_with(&dir, TopicConfig::default().index_interval_bytes(1 << 20))?;
    for o in 0..5u64 {
        p.append(Record::new().key("k").value(value_of(o)).timestamp(1_000))?;
    }
    p.close()?;
    drop(p);
    let log_path = dir.join(spec::seg_name(0, "log"));
    let mut log = std::fs::read(&log_path)?;
    let last = spec::batches(&log).last().map(|(pos, _)| *pos).ok_or("no batch")?;
    let n = log.len();
    log[n - 1] ^= 0x10;
    std::fs::write(&log_path, &log)?;
    let p = Partition::open(&dir)?;
    let cut = p.recovery_report().tail_cut.ok_or("damage not found")?;
    assert_eq!(cut.at_byte, last as u64);
    assert_eq!(p.log_end_offset(), 4);
    assert_values(&p, 0..4)?;
    Ok(())
}

/// An intact clean close is trusted without re-reading anything. Kills `next == m.next_offset`
/// -> `!=` (which would re-validate every clean open).
#[test]
fn intact_clean_close_is_trusted() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let n = closed_log(&dir)?;
    let p = Partition::open(&dir)?;
    let r = p.recovery_report();
    assert!(r.clean && r.segments_revalidated == 0 && r.bytes_revalidated == 0, "{r:?}");
    assert_values(&p, 0..n)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The append path's flush checks (partition/writer.rs).

fn sim_open(fs: &Arc<SimFs>, clock: &Arc<ManualClock>, cfg: &TopicConfig) -> Result<Partition, Error> {
    Partition::options().fs(fs.clone()).clock(clock.clone()).config(cfg.clone()).open("/p")
}

fn append_one(p: &Partition, o: u64) -> TestResult {
    let info = p.append(Record::new().key("k").value(value_of(o)).timestamp(T0))?;
    assert_eq!(info.offset, o);
    Ok(())
}

/// How many records survive a power loss right after appending `n` records at the times
/// `times` (ms after T0) with `cfg`.
fn survivors(cfg: &TopicConfig, times: &[i64]) -> TestResult<u64> {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let p = sim_open(&fs, &clock, cfg)?;
    for (o, t) in times.iter().enumerate() {
        clock.set(T0 + t);
        append_one(&p, o as u64)?;
    }
    fs.crash(CrashMode::LoseUnsynced);
    drop(p);
    let p = sim_open(&fs, &clock, cfg)?;
    let n = p.log_end_offset();
    assert_values(&p, 0..n)?;
    Ok(n)
}

/// `flush.ms` on the append path: an append that finds `flush.ms` passed since the last fsync
/// fsyncs before it returns, one that does not leaves the data to the OS. Kills the check
/// never (or always) firing and `>=` -> `>` (Kafka flushes once `flush.ms` has elapsed).
#[test]
fn flush_ms_fires_on_the_append_path_once_the_interval_passed() -> TestResult {
    let cfg = TopicConfig::default()
        .durability(Durability::Periodic { messages: None, interval: Some(std::time::Duration::from_millis(100)) });
    // The first append finds no fsync ever: it syncs (at T0). The next two are within 100 ms.
    assert_eq!(survivors(&cfg, &[0, 0, 99])?, 1);
    // 100 ms after that fsync: this append syncs itself and everything before it.
    assert_eq!(survivors(&cfg, &[0, 0, 99, 100])?, 4);
    assert_eq!(survivors(&cfg, &[0, 0, 99, 100, 150])?, 4);
    assert_eq!(survivors(&cfg, &[0, 0, 99, 100, 150, 250])?, 6);
    Ok(())
}

/// `flush.messages=3`: every third record's append fsyncs. Kills `>=` -> `>` and the count
/// check never or always firing.
#[test]
fn flush_messages_fires_on_the_nth_record() -> TestResult {
    let cfg = TopicConfig::default().durability(Durability::Periodic { messages: Some(3), interval: None });
    assert_eq!(survivors(&cfg, &[0; 2])?, 0);
    assert_eq!(survivors(&cfg, &[0; 3])?, 3);
    assert_eq!(survivors(&cfg, &[0; 5])?, 3);
    assert_eq!(survivors(&cfg, &[0; 6])?, 6);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `roll` (partition/writer.rs): a stale file where the next segment goes.

/// An empty file left where the next segment goes (an interrupted roll) is reused; one with
/// data is not partlog's to overwrite: the roll fails and the file is left as it was. Kills
/// `len != 0` -> `== 0` (reuse vs overwrite).
#[test]
fn roll_reuses_an_empty_stale_segment_file_and_refuses_a_full_one() -> TestResult {
    for stale in [&b""[..], b"not ours"] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("p");
        let p = Partition::open(&dir)?;
        for o in 0..10 {
            p.append(Record::new().key("k").value(value_of(o)))?;
        }
        let next = dir.join(spec::seg_name(10, "log"));
        std::fs::write(&next, stale)?;
        if stale.is_empty() {
            assert!(p.roll()?);
            p.append(Record::new().key("k").value(value_of(10)))?;
            p.close()?;
            drop(p);
            let p = Partition::open(&dir)?;
            assert_eq!(p.segments().iter().map(|s| s.base_offset).collect::<Vec<_>>(), vec![0, 10]);
            assert_values(&p, 0..11)?;
        } else {
            match p.roll() {
                Err(Error::Corrupt { path, .. }) => assert_eq!(path, next),
                other => panic!("roll over a file with data: {other:?}"),
            }
            let _ = p.append(Record::new().key("k").value(value_of(10)));
            drop(p);
            assert_eq!(std::fs::read(&next)?, stale, "the stale file was overwritten");
        }
    }
    Ok(())
}

/// A roll that fails part-way (a full disk) reports `Error::StorageFull`, whichever of its
/// operations fails; creating the next segment included. Kills the `AlreadyExists` guard of
/// the roll's `CreateNew` forced true: the failure would come back as the follow-up open's
/// `NotFound`. The log stays whole: the next append finishes the roll (reusing the empty file
/// a failure after the creation leaves), or a truncation removes that file, and every later
/// open accepts the log. Before, an append after such a failure went to the old segment and
/// the next open refused the log, whose empty successor file began below its end.
#[test]
fn a_roll_that_fails_part_way_reports_a_full_disk_and_the_log_reopens() -> TestResult {
    let clock = ManualClock::new(T0);
    let cfg = TopicConfig::default();
    let next = Path::new("/p").join(spec::seg_name(10, "log"));
    let (mut hit_create, mut left_file) = (false, false);
    for truncate in [false, true] {
        for n in 0..16 {
            let fs = SimFs::new();
            let p = sim_open(&fs, &clock, &cfg)?;
            for o in 0..10 {
                append_one(&p, o)?;
            }
            fs.fail_nth(n, std::io::ErrorKind::StorageFull);
            match p.roll() {
                Ok(_) => {}
                Err(Error::StorageFull { path }) => {
                    hit_create |= path == next && !fs.exists(&next);
                    left_file |= fs.exists(&next);
                }
                Err(e) => panic!("fault at roll operation {n}: {e:?}"),
            }
            let kept = if truncate {
                p.truncate_to(5)?;
                5
            } else {
                10
            };
            for o in kept..kept + 10 {
                append_one(&p, o)?;
            }
            p.close()?;
            drop(p);
            let p = sim_open(&fs, &clock, &cfg)
                .map_err(|e| format!("reopen after a fault at roll operation {n} (truncate {truncate}): {e:?}"))?;
            assert_values(&p, 0..kept + 10)?;
        }
    }
    assert!(hit_create, "no fault landed on the creation of the next segment");
    assert!(left_file, "no fault landed after the creation of the next segment");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Intent redo (partition/intent.rs): `<` -> `<=` when the cut sits at a segment's end.

/// A durable cut intent whose cut lies exactly at the end of the segment it keeps (the log has
/// an offset gap after that segment's last batch, as compaction leaves) is carried out at open:
/// the later segments go. Kills `len < cut` -> `len <= cut` in `redo_on_open`.
#[test]
fn intent_cut_at_a_segment_end_is_carried_out() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let first = spec::single_batches(0, 10, value_of);
    write_segment(&dir, 0, &first)?;
    write_segment(&dir, 20, &spec::single_batches(20, 10, value_of))?;
    std::fs::write(dir.join("segments.intent"), spec::cut_intent(15, 0, first.len() as u64, &[]))?;
    let p = Partition::open(&dir)?;
    assert_eq!(p.recovery_report().finished_intent, Some("truncate"));
    assert!(!dir.join(spec::seg_name(20, "log")).exists(), "the segment above the cut is still there");
    assert!(!dir.join("segments.intent").exists());
    assert!(p.log_end_offset() <= 15, "log end {}", p.log_end_offset());
    assert_values(&p, 0..10)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Intent load and redo (partition/intent.rs): the copy of the kept prefix in 1 MiB chunks, a
// missing or unreadable segment, an oversized intent file.

/// A cut intent that keeps more than one copy chunk (1 MiB) of a segment, ending inside the
/// second chunk, is carried out at open to exactly the kept bytes: the log ends at the target
/// and the segment holds the kept prefix, nothing after it. Kills `cut - pos` -> `cut + pos`
/// in `apply_files` (the second chunk copied whole, past the cut), and `len < cut` -> `len > cut`
/// in `redo_on_open` (a segment longer than the cut taken for one that never held it).
#[test]
fn intent_cut_keeping_more_than_one_copy_chunk_keeps_exactly_the_prefix() -> TestResult {
    let big = |o: u64| format!("{o:08}").repeat(128).into_bytes(); // 1 KiB a record
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let log = spec::single_batches(0, 3000, big);
    assert!(log.len() > 2 << 20, "{} bytes", log.len());
    write_segment(&dir, 0, &log)?;
    // The first batch that starts past 1.5 MiB: the cut keeps everything before it.
    let (target, (cut, _)) =
        spec::batches(&log).into_iter().enumerate().find(|(_, (pos, _))| *pos > 3 << 19).ok_or("no batch")?;
    let (target, cut) = (target as u64, cut as u64);
    std::fs::write(dir.join("segments.intent"), spec::cut_intent(target, 0, cut, &[]))?;
    let p = Partition::open(&dir)?;
    assert_eq!(p.recovery_report().finished_intent, Some("truncate"));
    assert_eq!(p.recovery_report().tail_cut, None);
    assert_eq!(p.log_end_offset(), target);
    let got: Vec<(u64, Option<Vec<u8>>)> = read_all(&p)?.into_iter().map(|r| (r.offset, r.value)).collect();
    let want: Vec<(u64, Option<Vec<u8>>)> = (0..target).map(|o| (o, Some(big(o)))).collect();
    assert!(got == want, "{} records read, {target} kept", got.len());
    drop(p);
    assert_eq!(std::fs::read(dir.join(spec::seg_name(0, "log")))?, log[..cut as usize]);
    Ok(())
}

/// A cut intent in a segment that is not there (the plan never became durable, and the log
/// already ends below its target) is dropped at open: the log is opened as found. Kills the
/// `NotFound` guard in `redo_on_open` forced false or inverted (the open failing instead).
#[test]
fn intent_cut_in_a_missing_segment_is_dropped() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    write_segment(&dir, 0, &spec::single_batches(0, 10, value_of))?;
    std::fs::write(dir.join("segments.intent"), spec::cut_intent(15, 10, 100, &[]))?;
    let p = Partition::open(&dir)?;
    assert!(!dir.join("segments.intent").exists(), "the intent was kept");
    assert_eq!(p.log_end_offset(), 10);
    assert_values(&p, 0..10)?;
    Ok(())
}

/// A cut intent whose segment is there but cannot be opened (an I/O error) fails the open and
/// is kept for the next one: only a segment that is missing lets the plan go. Kills the
/// `NotFound` guard in `redo_on_open` forced true (any error taken for a missing segment).
#[test]
fn intent_cut_in_a_segment_that_cannot_be_opened_is_kept() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let log = spec::single_batches(0, 10, value_of);
    write_segment(&dir, 0, &log)?;
    write_segment(&dir, 10, &spec::single_batches(10, 10, value_of))?;
    let intent = spec::cut_intent(5, 0, spec::batches(&log)[5].0 as u64, &[]);
    std::fs::write(dir.join("segments.intent"), &intent)?;
    let seg0 = dir.join(spec::seg_name(0, "log"));
    let fs = Arc::new(CountingFs { fail_open: Some(seg0.clone()), ..CountingFs::default() });
    match Partition::options().fs(fs).open(&dir) {
        Err(Error::Io { path, source }) => assert_eq!((path, source.raw_os_error()), (seg0, Some(EIO))),
        Ok(p) => panic!("opened, log end {}", p.log_end_offset()),
        Err(e) => return Err(e.into()),
    }
    assert_eq!(std::fs::read(dir.join("segments.intent"))?, intent, "the intent was dropped");
    // Once the segment can be read, the next open carries the plan out.
    let p = Partition::open(&dir)?;
    assert_eq!(p.recovery_report().finished_intent, Some("truncate"));
    assert_eq!(p.log_end_offset(), 5);
    assert_values(&p, 0..5)?;
    Ok(())
}

/// An intent file larger than any intent partlog writes (the largest, a cut rewriting a batch
/// of the 2 GiB limit, is 2 GiB + 43 bytes) is removed unread: open neither allocates nor
/// reads what its size says. Here 3 GiB, sparse. Kills the size guard in `load` forced true
/// and the bound `(1 << 31) + 64` loosened to `(1 << 31) * 64`.
#[test]
fn an_intent_file_larger_than_any_intent_is_removed_unread() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    write_segment(&dir, 0, &spec::single_batches(0, 10, value_of))?;
    let f = std::fs::File::create(dir.join("segments.intent"))?;
    f.set_len(3 << 30)?;
    drop(f);
    let fs = Arc::new(CountingFs::default());
    let read = Arc::clone(&fs.read);
    let p = Partition::options().fs(fs).open(&dir)?;
    assert!(!dir.join("segments.intent").exists(), "the oversized intent was kept");
    assert_eq!(p.recovery_report().finished_intent, None);
    let n = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n < 1 << 20, "{n} bytes read at open");
    assert_eq!(p.log_end_offset(), 10);
    assert_values(&p, 0..10)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Truncation crash sweeps under `Os` and `flush.messages=3` (partition/truncate.rs: the fsync
// of the kept bytes before the intent).

const SWEEP_DIR: &str = "/t-0";

fn sweep_cfg(d: Durability) -> TopicConfig {
    TopicConfig::default().segment_bytes(600).index_interval_bytes(64).durability(d)
}

/// The workload: 24 appends (batches of 1–4), an explicit sync after the 6th, a truncation to
/// `target` (inside the last batch, above the last fsync), three more appends.
struct Workload {
    ops: Vec<Vec<u64>>,
    target: u64,
}

fn workload(rng: &mut Rng) -> Workload {
    let mut ops = Vec::new();
    let mut o = 0u64;
    for i in 0..24 {
        let n = if i == 23 { 4 } else { rng.range(1, 4) };
        ops.push((o..o + n).collect());
        o += n;
    }
    // Inside the last (4-record) batch, so the batch is rewritten with the records below it.
    let target = o - 2;
    Workload { ops, target }
}

fn sweep_value(o: u64, generation: u64) -> Vec<u8> {
    format!("g{generation}-o{o}-{}", "x".repeat((o % 7) as usize * 5)).into_bytes()
}

#[derive(Debug, Default)]
struct Done {
    /// Offsets below this were made durable (an acknowledged fsync or truncation).
    durable: u64,
    truncated: bool,
    /// Acknowledged appends after the truncation.
    after: u64,
}

fn run_sweep_workload(fs: &Arc<SimFs>, cfg: &TopicConfig, w: &Workload) -> Done {
    let mut done = Done::default();
    let clock = ManualClock::new(T0);
    let Ok(p) = Partition::options().fs(fs.clone()).clock(clock).config(cfg.clone()).open(SWEEP_DIR) else {
        return done;
    };
    let flush_every = cfg.durability_mode();
    let mut unflushed = 0u64;
    for (i, op) in w.ops.iter().enumerate() {
        let vals: Vec<Vec<u8>> = op.iter().map(|&o| sweep_value(o, 0)).collect();
        let recs: Vec<Record<'_>> = vals.iter().map(|v| Record::new().key("k").value(v.as_slice())).collect();
        if p.append_batch(&recs).is_err() {
            return done;
        }
        unflushed += op.len() as u64;
        if let Durability::Periodic { messages: Some(n), .. } = flush_every
            && unflushed >= n
        {
            done.durable = op[op.len() - 1] + 1;
            unflushed = 0;
        }
        if i == 5 {
            if p.sync().is_err() {
                return done;
            }
            done.durable = op[op.len() - 1] + 1;
            // An fsync restarts the flush.messages count.
            unflushed = 0;
        }
    }
    // Once the truncation's intent is durable, records at and above the target may go.
    done.durable = done.durable.min(w.target);
    if p.truncate_to(w.target).is_err() {
        return done;
    }
    done.truncated = true;
    done.durable = w.target;
    for k in 0..3 {
        let o = w.target + k;
        if p.append(Record::new().key("k").value(sweep_value(o, 1))).is_err() {
            return done;
        }
        done.after += 1;
    }
    done
}

/// After a crash at any point: the log opens, holds every durable record, and is a prefix of
/// what was appended before the truncation (or, once the truncation was durable, of the
/// truncated log followed by the later appends).
fn check_sweep(p: &Partition, w: &Workload, done: &Done, ctx: &str) -> Result<(), String> {
    let recs = read_all(p).map_err(|e| format!("{ctx}: read: {e}"))?;
    let end = p.log_end_offset();
    if end < done.durable || (recs.len() as u64) < done.durable {
        return Err(format!("{ctx}: log end {end}, {} records, but {} were durable", recs.len(), done.durable));
    }
    let appended = w.ops.last().map_or(0, |op| op[op.len() - 1] + 1);
    let mut generation_seen_1 = false;
    for (i, r) in recs.iter().enumerate() {
        let o = i as u64;
        if r.offset != o {
            return Err(format!("{ctx}: record {i} has offset {}", r.offset));
        }
        let v = r.value.clone().unwrap_or_default();
        let is0 = o < appended && v == sweep_value(o, 0);
        let is1 = o >= w.target && v == sweep_value(o, 1);
        if is1 {
            generation_seen_1 = true;
        } else if !is0 || generation_seen_1 || (done.truncated && o >= w.target) {
            return Err(format!("{ctx}: offset {o} holds {:?}", String::from_utf8_lossy(&v)));
        }
    }
    Ok(())
}

fn truncate_sweep(durability: Durability, seed: u64) -> TestResult {
    let mut rng = Rng(seed);
    let w = workload(&mut rng);
    let cfg = sweep_cfg(durability);
    let total = {
        let fs = SimFs::new();
        let d = run_sweep_workload(&fs, &cfg, &w);
        assert!(d.truncated && d.after == 3, "clean run failed: {d:?}");
        fs.mutating_ops()
    };
    let mut failures = Vec::new();
    for k in 0..total {
        for (m, mode) in [
            CrashMode::LoseUnsynced,
            CrashMode::TornPrefix { seed: seed ^ k },
            CrashMode::Garbage { seed: seed.rotate_left(7) ^ k },
        ]
        .into_iter()
        .enumerate()
        {
            let fs = SimFs::new();
            fs.crash_after(k);
            let done = run_sweep_workload(&fs, &cfg, &w);
            fs.crash(mode);
            let ctx = format!("{durability:?} k={k} mode={m}");
            match Partition::options().fs(fs.clone()).config(cfg.clone()).open(SWEEP_DIR) {
                Ok(p) => {
                    if let Err(e) = check_sweep(&p, &w, &done, &ctx) {
                        failures.push(e);
                    }
                }
                Err(e) => failures.push(format!("{ctx}: reopen failed: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} failures (PARTLOG_SEED={seed}):\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

/// Fixed seeds (each of which catches a skipped fsync of the kept bytes, so the sweep is a
/// deterministic mutation check) and then the printed, random one.
const SWEEP_SEEDS: [u64; 2] = [1, 5];

#[test]
fn crash_sweep_truncate_under_os_durability() -> TestResult {
    let s = seed("crash_sweep_truncate_under_os_durability");
    for s in SWEEP_SEEDS.into_iter().chain([s]) {
        truncate_sweep(Durability::Os, s)?;
    }
    Ok(())
}

#[test]
fn crash_sweep_truncate_under_flush_messages() -> TestResult {
    let s = seed("crash_sweep_truncate_under_flush_messages");
    for s in SWEEP_SEEDS.into_iter().chain([s]) {
        truncate_sweep(Durability::Periodic { messages: Some(3), interval: None }, s)?;
    }
    Ok(())
}

/// Kills `delete field next_offset from struct Records expression in read` (read.rs) and both
/// `delete field cleaned_up_to from struct CompactionReport expression in run` (clean.rs).
#[test]
fn a_read_in_a_gap_running_to_the_log_end_moves_the_fetch_offset_to_the_end() -> TestResult {
    // Records without a key, written before the log became compacted, are removed by the first
    // pass (as Kafka does): the sealed segments then hold no record at all, and a read anywhere
    // below the end returns nothing but moves the next fetch offset to the end (so a consumer
    // does not read the same gap forever).
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    {
        let p = Partition::open(&dir)?;
        for _ in 0..6 {
            p.append(Record::with_value(&b"keyless"[..]))?;
        }
        assert!(p.roll()?);
        p.close()?;
    }
    let p = Partition::open_with(&dir, compacted())?;
    let end = p.log_end_offset();
    assert_eq!(end, 6);
    let report = p.compact()?;
    assert!(report.cleaned, "{report:?}");
    assert_eq!(report.cleaned_up_to, end, "cleaned up to the active segment: {report:?}");
    assert_eq!(report.keyless_records_removed, 6, "{report:?}");
    assert_eq!(p.iter(0).count(), 0, "nothing left");
    // A second pass finds nothing dirty: it cleans nothing and says the log is clean up to
    // where the first one stopped (not from 0).
    let again = p.compact()?;
    assert!(!again.cleaned, "{again:?}");
    assert_eq!((again.first_dirty_offset, again.cleaned_up_to), (end, end), "{again:?}");
    for at in [0, 3, 5] {
        let r = p.read(at, 1 << 20)?;
        assert!(r.is_empty());
        assert_eq!(r.next_fetch_offset(), end, "a read at {at}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The segment scanner (segment/log_file.rs).

/// A batch header that parses (magic 2, `length`, base offset `base`, no delete horizon) over
/// bytes that are no batch: its CRC is 0.
fn claimed_header(length: u32, base: u64) -> Vec<u8> {
    let mut h = vec![0u8; spec::HEADER_LEN];
    h[0..4].copy_from_slice(&length.to_le_bytes());
    h[8] = spec::MAGIC;
    h[16..24].copy_from_slice(&base.to_le_bytes());
    h[40..48].copy_from_slice(&i64::MIN.to_le_bytes());
    h
}

/// `p` was opened over [`damaged_head_and_valid_rest`]'s head and something after it, and cut
/// the damaged batch 3 and all after it as a torn tail (no valid data after), keeping 0..3.
fn assert_batch_3_cut_as_a_torn_tail(p: &Partition) -> TestResult {
    let cut = p.recovery_report().tail_cut.ok_or("no tail cut reported")?;
    assert!(!cut.valid_data_after && cut.reason == CorruptKind::BatchChecksum, "{cut:?}");
    assert_eq!(p.log_end_offset(), 3);
    assert_values(p, 0..3)
}

/// `b` (one encoded batch) with base and max timestamp `ts`, its CRC recomputed.
fn with_timestamp(mut b: Vec<u8>, ts: i64) -> Vec<u8> {
    b[24..32].copy_from_slice(&ts.to_le_bytes());
    b[32..40].copy_from_slice(&ts.to_le_bytes());
    let crc = crc32fast::hash(&b[8..]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// A segment that begins with an empty batch (what a truncation into a gap left by compaction
/// writes) has that batch's timestamp as its first timestamp: the append path keeps it when
/// records follow, and a re-validating open must find the same, or a crash would change the
/// segment's age (and when it rolls by `segment.ms`). Kills `&&` -> `||` in `scan`'s
/// first-timestamp rule.
#[test]
fn a_leading_empty_batch_keeps_its_timestamp_through_a_rescan() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let early = T0 - 5_000;
    write_segment(&dir, 0, &with_timestamp(spec::batch(0, &[], Some(4)), early))?;
    let first = |p: &Partition| p.segments()[0].first_timestamp;
    let p = Partition::open(&dir)?;
    for o in 5..8 {
        p.append(Record::new().key("k").value(value_of(o)).timestamp(T0))?;
    }
    assert_eq!(first(&p), Some(early));
    p.close()?;
    drop(p);
    std::fs::remove_file(dir.join("partition.checkpoint"))?;
    let p = Partition::open(&dir)?;
    assert_eq!(p.recovery_report().segments_revalidated, 1, "{:?}", p.recovery_report());
    assert_eq!(first(&p), Some(early));
    assert_values(&p, 5..8)?;
    Ok(())
}

/// After a clean close the active segment's last batches are confirmed, not re-read: batches
/// with offset gaps between them (what compaction leaves) and an empty batch at the very end
/// (what a truncation into a gap writes, exactly one header long) are intact. Kills `<` ->
/// `<=` and `<` -> `==` in `next_offset_of_range`'s short-tail check, and `base_offset < n`
/// -> `>` in its order check (each would re-validate the segment).
#[test]
fn gaps_and_a_trailing_empty_batch_are_trusted_after_a_clean_close() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let rec = |o: u64| spec::batch(o, &[spec::Rec::new(o, T0, Some(b"k"), Some(&value_of(o)))], None);
    let empty = spec::batch(4, &[], Some(2));
    assert_eq!(empty.len(), spec::HEADER_LEN);
    write_segment(&dir, 0, &[rec(0), rec(3), empty].concat())?;
    let p = Partition::open(&dir)?;
    assert_eq!(p.log_end_offset(), 7);
    p.close()?;
    drop(p);
    let p = Partition::open(&dir)?;
    let r = p.recovery_report();
    assert!(r.clean && r.segments_revalidated == 0 && r.bytes_revalidated == 0, "{r:?}");
    assert_eq!(p.log_end_offset(), 7);
    assert_values(&p, [0, 3])?;
    Ok(())
}

/// Re-validating a segment reads each byte about once, however many batches it holds: the
/// scan's buffer is reused until the batch at hand runs past it. Kills `pos - buf_pos` ->
/// `pos + buf_pos` in `in_buf` (which refilled a whole read buffer for every batch after the
/// first refill: gigabytes for a few megabytes of log).
#[test]
fn a_rescan_reads_each_byte_about_once() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open(&dir)?;
    let value = vec![7u8; 1000];
    for _ in 0..3000 {
        p.append(Record::new().key("k").value(value.clone()))?;
    }
    p.close()?;
    drop(p);
    let size = std::fs::metadata(dir.join(spec::seg_name(0, "log")))?.len();
    std::fs::remove_file(dir.join("partition.checkpoint"))?;
    let fs = Arc::new(CountingFs::default());
    let read = Arc::clone(&fs.read);
    let p = Partition::options().fs(fs).mmap_reads(false).open(&dir)?;
    assert_eq!(p.recovery_report().bytes_revalidated, size);
    let got = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(got < 2 * size, "open read {got} bytes of a {size}-byte segment");
    assert_eq!(p.log_end_offset(), 3000);
    Ok(())
}

/// The search for valid data after damage jumps over holes without reading them, and never
/// reads from data into the hole after it: a 1 MiB hole between damage and the valid batches
/// after it, in a sealed segment, costs open no more than the scan's own read. Kills the
/// `d > start` guard inverted in `valid_batch_after` (which crawled through the hole a byte at
/// a time, reading a header's worth at each) and `start + HEADER_LEN` -> `start * HEADER_LEN` in
/// its read limit (which read on into the hole).
#[test]
fn the_search_after_damage_jumps_over_holes_unread() -> TestResult {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let mut head = spec::single_batches(0, 300, value_of);
    let n = head.len();
    head[n - 1] ^= 0x40; // the last batch's last byte: its CRC fails
    write_segment(&dir, 0, &head)?;
    let f = std::fs::OpenOptions::new().write(true).open(dir.join(spec::seg_name(0, "log")))?;
    f.write_all_at(&spec::single_batches(300, 5, value_of), (n as u64).div_ceil(4096) * 4096 + (1 << 20))?;
    drop(f);
    write_segment(&dir, 305, &spec::single_batches(305, 3, value_of))?;
    let fs = Arc::new(CountingFs::default());
    let read = Arc::clone(&fs.read);
    match Partition::options().fs(fs).mmap_reads(false).open(&dir) {
        Err(Error::Corrupt { path, kind, .. }) => {
            assert_eq!((path, kind), (dir.join(spec::seg_name(0, "log")), CorruptKind::BatchChecksum));
        }
        Ok(p) => panic!("opened: log end {}, {:?}", p.log_end_offset(), p.recovery_report()),
        Err(e) => return Err(e.into()),
    }
    let got = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(got < (3 << 20) / 2, "open read {got} bytes");
    Ok(())
}

/// A header after the damage that would continue the log but claims more bytes than the file
/// has left is no candidate: the search passes it by, the damage is a torn tail and is cut.
/// Kills `end - pos` -> `end + pos` in `valid_batch_after`'s length limit (which took it as a
/// candidate and failed the open with an I/O error, reading past the end of the file).
#[test]
fn a_header_claiming_past_the_end_of_the_file_is_no_candidate() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let (head, _) = damaged_head_and_valid_rest();
    // 300 bytes: more than the 100 left, less than a limit counted from the file's start.
    let h = claimed_header(300, 3);
    write_segment(&dir, 0, &[head, h, vec![0xAA; 32]].concat())?;
    let p = Partition::open(&dir)?;
    assert_batch_3_cut_as_a_torn_tail(&p)
}

/// Junk (no batch) after three valid batches, then one valid batch continuing exactly at the
/// next offset: valid data follows the damage, so the open refuses to cut it. Kills
/// `base_offset < next_offset` -> `<=` in `valid_batch_after` (which passed the continuing
/// batch by, called the junk a torn tail and cut the acknowledged batch after it).
#[test]
fn a_batch_continuing_at_the_next_offset_after_junk_is_data() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let log = [spec::single_batches(0, 3, value_of), vec![0xAA; 200], spec::single_batches(3, 1, value_of)].concat();
    write_segment(&dir, 0, &log)?;
    match Partition::open(&dir) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, dir.join(spec::seg_name(0, "log"))),
        Ok(p) => panic!("opened: log end {}, {:?}", p.log_end_offset(), p.recovery_report()),
        Err(e) => return Err(e.into()),
    }
    assert_eq!(std::fs::metadata(dir.join(spec::seg_name(0, "log")))?.len(), log.len() as u64);
    Ok(())
}

/// The search for valid data after damage looks for batches continuing the log within a
/// segment's offset span: one whose base lies `u32::MAX` past the next offset counts (the
/// damage is refused), one a further offset on does not (the damage is a torn tail, cut).
/// Kills `>` -> `==` and `>=`, and `-` -> `+`, in the span check of `valid_batch_after`.
#[test]
fn the_search_after_damage_looks_one_segment_span_ahead() -> TestResult {
    for (ahead, refused) in [(u64::from(u32::MAX), true), (u64::from(u32::MAX) + 1, false)] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("p");
        let (head, _) = damaged_head_and_valid_rest();
        let o = 3 + ahead;
        let later = spec::batch(o, &[spec::Rec::new(o, T0, Some(b"k"), Some(&value_of(o)))], None);
        write_segment(&dir, 0, &[head, later].concat())?;
        match Partition::open(&dir) {
            Err(Error::Corrupt { kind, .. }) if refused => assert_eq!(kind, CorruptKind::BatchChecksum),
            Ok(p) if !refused => {
                let cut = p.recovery_report().tail_cut.ok_or("no tail cut reported")?;
                assert!(!cut.valid_data_after, "{cut:?}");
                assert_eq!(p.log_end_offset(), 3);
                assert_values(&p, 0..3)?;
            }
            Ok(p) => panic!("{ahead} ahead: opened, log end {}, {:?}", p.log_end_offset(), p.recovery_report()),
            Err(e) => panic!("{ahead} ahead: {e}"),
        }
    }
    Ok(())
}

/// A claimed batch of exactly the search's budget (256 MiB, here over a sparse tail: hashed
/// without reading) is still checked: it fails its checksum, nothing valid follows, and the
/// damage is a torn tail, cut. Kills `spent > RESYNC_BUDGET` -> `>=` (which gave up at once
/// and refused the log as if valid data might follow).
#[test]
fn a_candidate_of_exactly_the_search_budget_is_still_checked() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let (head, _) = damaged_head_and_valid_rest();
    let budget: u64 = 256 << 20;
    let h = claimed_header(budget as u32, 4);
    let at = head.len() as u64;
    write_segment(&dir, 0, &[head, h].concat())?;
    std::fs::OpenOptions::new().write(true).open(dir.join(spec::seg_name(0, "log")))?.set_len(at + budget)?;
    let p = Partition::open(&dir)?;
    assert_batch_3_cut_as_a_torn_tail(&p)
}

/// In the last segment the search for valid data after damage ends at the first aligned page
/// of zeros, whatever follows it (a torn tail either way): here a page of junk, the zero page,
/// then 16 MiB of junk, which open must not read. Kills `page - start` -> `page + start` and
/// `page - start` -> `page / start` in `first_zero_page` (which looked at the wrong bytes) and
/// `page += PAGE` -> `page *= PAGE` (which skipped pages).
#[test]
fn the_search_after_damage_stops_at_the_first_zero_page() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let (mut log, _) = damaged_head_and_valid_rest();
    log.resize(8192, 0xAA);
    log.resize(3 * 4096, 0);
    log.resize(3 * 4096 + (16 << 20), 0xAA);
    write_segment(&dir, 0, &log)?;
    let fs = Arc::new(CountingFs::default());
    let read = Arc::clone(&fs.read);
    let p = Partition::options().fs(fs).mmap_reads(false).open(&dir)?;
    let got = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(got < 4 << 20, "open read {got} bytes");
    assert_batch_3_cut_as_a_torn_tail(&p)
}

/// Of the zeros between damage and the valid batches after it, only whole aligned pages count
/// as a power loss's mark: one page-sized hole between junk on both sides (a skipped block
/// that never reached the disk) makes the damage a torn tail, cut. Kills `from.div_ceil(PAGE)
/// * PAGE` -> `+ PAGE` (pages checked off the page grid) and `page += PAGE` -> `*=` (pages
/// skipped) in `has_zero_page`, either of which refused the log.
#[test]
fn a_single_page_hole_between_junk_after_damage_is_a_torn_tail() -> TestResult {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let (mut head, rest) = damaged_head_and_valid_rest();
    head.resize(8192, 0xAA);
    write_segment(&dir, 0, &head)?;
    let f = std::fs::OpenOptions::new().write(true).open(dir.join(spec::seg_name(0, "log")))?;
    f.write_all_at(&[vec![0xAA; 4096], rest].concat(), 3 * 4096)?;
    drop(f);
    let p = Partition::open(&dir)?;
    assert_batch_3_cut_as_a_torn_tail(&p)
}

/// Zeros inside the valid batches before the damage (a record of zeros) are data, not a power
/// loss's mark: with valid batches after the damage and no zero page between, the damage is
/// in the middle of the log and refused. Kills `from.div_ceil(PAGE) * PAGE` -> `/ PAGE` in
/// `has_zero_page` (which looked from the file's start, found the record's zeros and cut the
/// valid batches after the damage).
#[test]
fn zeros_in_a_record_before_the_damage_do_not_make_a_torn_tail() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let zeros = spec::batch(0, &[spec::Rec::new(0, T0, Some(b"k"), Some(&[0u8; 12288]))], None);
    // Batches 1..=4 after it, the last damaged, then two valid ones.
    let mut mid = spec::single_batches(1, 4, value_of);
    let n = mid.len();
    mid[n - 1] ^= 0x40;
    let rest = spec::single_batches(5, 2, value_of);
    let log = [zeros, mid, rest].concat();
    write_segment(&dir, 0, &log)?;
    match Partition::open(&dir) {
        Err(Error::Corrupt { kind, .. }) => assert_eq!(kind, CorruptKind::BatchChecksum),
        Ok(p) => panic!("opened: log end {}, {:?}", p.log_end_offset(), p.recovery_report()),
        Err(e) => return Err(e.into()),
    }
    assert_eq!(std::fs::metadata(dir.join(spec::seg_name(0, "log")))?.len(), log.len() as u64);
    Ok(())
}

/// A batch larger than the scan's buffer is checked in 1 MiB reads, after the part the scan
/// already holds: a rescan of a 3 MiB batch takes a handful of reads, not one per few bytes.
/// Kills `hole - at` -> `hole / at` in the streaming check's read size (reads of a few bytes
/// each: a million calls for the same bytes).
#[test]
fn a_large_batch_is_checked_in_large_reads() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let cfg = TopicConfig::default().max_message_bytes(8 << 20);
    let p = Partition::open_with(&dir, cfg.clone())?;
    p.append(Record::new().key("k").value(vec![0x5Au8; 3 << 20]))?;
    p.append(Record::new().key("k").value(value_of(1)))?;
    p.close()?;
    drop(p);
    std::fs::remove_file(dir.join("partition.checkpoint"))?;
    let fs = Arc::new(CountingFs::default());
    let reads = Arc::clone(&fs.reads);
    let p = Partition::options().fs(fs).config(cfg).mmap_reads(false).open(&dir)?;
    assert_eq!(p.recovery_report().segments_revalidated, 1);
    let got = reads.load(std::sync::atomic::Ordering::Relaxed);
    assert!(got < 64, "open made {got} read calls");
    assert_eq!(p.log_end_offset(), 2);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `reserve` (partition/writer.rs): the active segment's allocation steps.

/// Without `preallocate`, the active segment's file grows in steps that double from 64 KiB (up
/// to 16 MiB a step): its length stays within about twice the data written, not the segment's
/// 64 MiB limit. Kills `allocated + step` -> `allocated * step` (the third step already took
/// the whole segment).
#[test]
fn the_active_segments_allocation_grows_with_its_data() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open_with(&dir, TopicConfig::default().segment_bytes(64 << 20))?;
    let value = vec![0x33u8; 60 << 10];
    let mut written = 0u64;
    for _ in 0..120 {
        p.append(Record::new().key("k").value(value.as_slice()))?;
        written = p.segments()[0].size;
        let len = std::fs::metadata(dir.join(spec::seg_name(0, "log")))?.len();
        assert!(len >= written, "file {len} shorter than its data {written}");
        assert!(len <= 2 * written + (64 << 10), "{len} bytes allocated for {written} of data");
    }
    assert!(written > 7 << 20);
    Ok(())
}

/// An allocation that fails with an I/O error other than a full disk fails the append, with
/// nothing written: only a full disk falls back to allocating exactly what the append needs
/// (a failing device is not papered over by a smaller request that happens to pass). Kills the
/// fallback's guard forced true and `&&` -> `||`.
#[test]
fn an_allocation_error_other_than_a_full_disk_fails_the_append() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    // The first step reserves 64 KiB: that fails; the 40 bytes the record needs would not.
    let fs = Arc::new(CountingFs { fail_allocate_from: Some(1 << 10), ..CountingFs::default() });
    let p = Partition::options().fs(fs).open(&dir)?;
    match p.append(Record::new().key("k").value(value_of(0))) {
        Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(EIO)),
        other => panic!("append over a failing allocation: {other:?}"),
    }
    assert_eq!(p.log_end_offset(), 0);
    drop(p);
    let p = Partition::open(&dir)?;
    assert_eq!(p.log_end_offset(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `flush_if_due` and `flush_due_in` (partition/writer.rs): `flush.ms` kept by the maintenance
// driver, to the millisecond.

/// The driver fsyncs a partition once `flush.ms` has passed since its last fsync and something
/// is unsynced, never before and never with nothing to sync, and asks to run again exactly when
/// the next such fsync is due. Kills each comparison of both functions, their results replaced
/// by constants, and the "nothing unsynced" check inverted.
#[test]
fn the_maintenance_driver_fsyncs_when_flush_ms_is_due_and_says_when() -> TestResult {
    use partlog::LogDir;
    use std::time::Duration;
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let dir = LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/d")?;
    let cfg = TopicConfig::default()
        .durability(Durability::Periodic { messages: None, interval: Some(Duration::from_millis(100)) });
    let t = dir.create_topic("t", cfg)?;
    let mut m = dir.maintenance();
    let flushed = |r: &partlog::MaintenanceReport| -> Vec<(String, u32)> {
        r.flushed.iter().map(|p| (p.topic.clone(), p.partition)).collect()
    };
    let r = m.run_once();
    assert!(flushed(&r).is_empty(), "{r:?}");
    let idle = r.next_run_in;
    assert!(idle > Duration::from_secs(1), "nothing to fsync, yet due in {idle:?}");
    // The first append finds no fsync yet and syncs itself; the next, 30 ms later, does not.
    t.append(Record::with_value("a"))?;
    clock.advance(30);
    t.append(Record::with_value("b"))?;
    let r = m.run_once();
    assert!(flushed(&r).is_empty(), "fsynced 30 ms after the last fsync: {r:?}");
    assert_eq!(r.next_run_in, Duration::from_millis(70));
    clock.advance(69);
    let r = m.run_once();
    assert!(flushed(&r).is_empty(), "fsynced 99 ms after the last fsync: {r:?}");
    assert_eq!(r.next_run_in, Duration::from_millis(1));
    clock.advance(1);
    let r = m.run_once();
    assert_eq!(flushed(&r), [("t".to_owned(), 0)], "{r:?}");
    assert_eq!(r.next_run_in, idle, "{r:?}");
    // Long past flush.ms with nothing unsynced: nothing to do.
    clock.advance(1_000);
    let r = m.run_once();
    assert!(flushed(&r).is_empty(), "fsynced with nothing unsynced: {r:?}");
    assert_eq!(r.next_run_in, idle, "{r:?}");
    fs.crash(CrashMode::LoseUnsynced);
    drop((t, m, dir));
    let dir = LogDir::options().fs(fs.clone()).clock(clock).open("/d")?;
    assert_eq!(dir.topic("t")?.partition(0)?.log_end_offset(), 2, "the driver's fsync did not happen");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `append_locked` (partition/writer.rs): the batch's attributes, the last offset, and the
// sealed segment below the log start.

/// A batch written under `message.timestamp.type=LogAppendTime` carries attribute bit 3 (its
/// timestamps are the append time), one written under `CreateTime` does not, as Kafka's
/// readers expect. Kills `== LogAppendTime` -> `!=` where the attributes are chosen.
#[test]
fn the_batch_attributes_say_which_timestamp_type_the_log_uses() -> TestResult {
    let tmp = tempfile::tempdir()?;
    for (name, ty, bit) in
        [("create", partlog::TimestampType::CreateTime, 0u16), ("append", partlog::TimestampType::LogAppendTime, 8)]
    {
        let dir = tmp.path().join(name);
        let p = Partition::open_with(&dir, TopicConfig::default().timestamp_type(ty))?;
        p.append(Record::new().key("k").value(value_of(0)).timestamp(T0))?;
        p.close()?;
        let log = std::fs::read(dir.join(spec::seg_name(0, "log")))?;
        let bs = spec::batches(&log);
        assert_eq!(bs.len(), 1);
        assert_eq!(spec::header(bs[0].1).attributes, bit, "{name}");
    }
    Ok(())
}

/// The offset space ends at `i64::MAX`: a batch whose last offset is `i64::MAX - 1` is
/// appended whole, the next append is refused. Kills `count - 1` -> `count + 1` and
/// `count / 1` in the batch's last offset (either refuses the batch that fits).
#[test]
fn a_batch_ending_just_below_the_end_of_the_offset_space_is_appended() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let end = i64::MAX as u64;
    let first = end - 3;
    write_segment(
        &dir,
        first,
        &spec::batch(first, &[spec::Rec::new(first, T0, Some(b"k"), Some(&value_of(0)))], None),
    )?;
    let p = Partition::open(&dir)?;
    assert_eq!(p.log_end_offset(), end - 2);
    let batch = [Record::new().key("k").value("a"), Record::new().key("k").value("b")];
    let info = p.append_batch(&batch)?;
    assert_eq!((info.base_offset, info.last_offset), (end - 2, end - 1));
    match p.append(Record::new().key("k").value("c")) {
        Err(Error::OffsetSpaceExhausted { log_end_offset, records }) => assert_eq!((log_end_offset, records), (end, 1)),
        other => panic!("append past the offset space: {other:?}"),
    }
    assert_eq!(p.log_end_offset(), end);
    Ok(())
}

/// A segment sealed by an append's roll that lies wholly below the log start (the log start
/// was moved to the log end) is deleted by that append, not left for the next retention pass.
/// Kills `log_start >= base` -> `<` after the roll.
#[test]
fn a_rolled_segment_below_the_log_start_is_deleted_at_once() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open_with(&dir, TopicConfig::default().segment_bytes(1024))?;
    for o in 0..5 {
        p.append(Record::new().key("k").value(value_of(o)))?;
    }
    p.advance_log_start(5)?;
    assert_eq!(p.segments().iter().map(|s| s.base_offset).collect::<Vec<_>>(), [0]);
    // Too large for what is left of the segment: this append rolls first.
    p.append(Record::new().key("k").value(vec![b'x'; 900]))?;
    assert_eq!(p.segments().iter().map(|s| s.base_offset).collect::<Vec<_>>(), [5]);
    assert!(!dir.join(spec::seg_name(0, "log")).exists(), "the sealed segment below the log start is still there");
    assert_eq!(p.log_start_offset(), 5);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `sync_to` (partition/writer.rs): the `flush.messages` count after an fsync.

/// `flush.messages=3`: a record appended while an fsync is in flight is not covered by it, and
/// still counts toward the next fsync. Here: record 0, then an explicit `sync()` held inside
/// its fsync while record 1 is appended, then record 2, whose append must fsync (three records
/// were appended since the last fsync known to cover everything). Kills `&&` -> `||` in the
/// count's reset after an fsync (the reset then also forgets record 1).
#[test]
fn a_record_appended_during_an_fsync_still_counts_toward_flush_messages() -> TestResult {
    use common::gated_fs::GatedFs;
    let sim = SimFs::new();
    let fs = Arc::new(GatedFs::new(sim.clone()));
    let gate = Arc::clone(&fs.gate);
    let cfg = TopicConfig::default().durability(Durability::Periodic { messages: Some(3), interval: None });
    let clock = ManualClock::new(T0);
    let p = Partition::options().fs(fs).config(cfg.clone()).clock(clock.clone()).open("/p")?;
    p.append(Record::new().key("k").value(value_of(0)))?;
    gate.arm();
    let syncer = {
        let p = p.clone();
        std::thread::spawn(move || p.sync())
    };
    gate.wait_held();
    p.append(Record::new().key("k").value(value_of(1)))?;
    gate.open();
    syncer.join().map_err(|_| "sync thread panicked")??;
    p.append(Record::new().key("k").value(value_of(2)))?;
    sim.crash(CrashMode::LoseUnsynced);
    drop(p);
    let p = sim_open(&sim, &clock, &cfg)?;
    assert_eq!(p.log_end_offset(), 3, "the third record since the last complete fsync was not synced");
    assert_values(&p, 0..3)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `Partition` (partition/mod.rs): identity, doorbells, `wait_for`.

/// A partition opened with a partition id reports it, in `id()` and in every append's
/// metadata. Kills `id` -> 0 and -> 1.
#[test]
fn a_partition_reports_its_id() -> TestResult {
    let tmp = tempfile::tempdir()?;
    for id in [0u32, 1, 7] {
        let p = Partition::options().partition_id(id).open(tmp.path().join(format!("t-{id}")))?;
        assert_eq!(p.id(), id);
        assert_eq!(p.append(Record::with_value("v"))?.partition, id);
    }
    Ok(())
}

/// A doorbell unregistered from a partition is not rung by its appends any more, armed or
/// not. Kills `unregister_doorbell` -> ().
#[test]
fn an_unregistered_doorbell_is_not_rung() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    let bell = partlog::Doorbell::new();
    p.register_doorbell(&bell);
    bell.arm();
    p.append(Record::with_value("a"))?;
    assert!(bell.wait(std::time::Duration::ZERO), "a registered, armed bell rings");
    p.unregister_doorbell(&bell);
    bell.arm();
    p.append(Record::with_value("b"))?;
    assert!(!bell.wait(std::time::Duration::from_millis(20)), "an unregistered bell rang");
    Ok(())
}

/// `wait_for` on a partition nobody appends to returns false once its timeout passes, for the
/// log end and any offset past it, and true at once for an offset below the log end. Kills
/// `wait_for` -> true / false and each form of either comparison with the log end (the one
/// before the wait and the one in it).
#[test]
fn wait_for_on_a_quiet_partition_times_out() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    p.append(Record::with_value("a"))?;
    p.append(Record::with_value("b"))?;
    assert!(p.wait_for(0, std::time::Duration::ZERO));
    assert!(p.wait_for(1, std::time::Duration::ZERO));
    for past in [2, 3, 100] {
        assert!(!p.wait_for(past, std::time::Duration::from_millis(20)), "offset {past}");
    }
    Ok(())
}

/// `wait_for` is woken by an append from another thread, and by the partition closing (then
/// it returns false). Its timeout is an hour: returning at all shows it was woken. Kills the
/// deadline computed as `now - timeout` (no wait at all) and the closed check dropped.
#[test]
fn wait_for_is_woken_by_an_append_and_by_close() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    let hour = std::time::Duration::from_secs(3600);
    let later = |f: Box<dyn FnOnce() -> Result<(), Error> + Send>| {
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            f()
        })
    };
    let writer = p.clone();
    let t = later(Box::new(move || writer.append(Record::with_value("a")).map(|_| ())));
    assert!(p.wait_for(0, hour));
    t.join().map_err(|_| "appender panicked")??;
    let closer = p.clone();
    let t = later(Box::new(move || closer.close()));
    assert!(!p.wait_for(1, hour));
    t.join().map_err(|_| "closer panicked")??;
    Ok(())
}

/// The deprecated `next_offset` still answers the log end offset. Kills it -> 0 and -> 1.
#[test]
#[allow(deprecated)]
fn the_deprecated_next_offset_is_the_log_end_offset() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    for o in 0..3 {
        assert_eq!(p.next_offset(), o);
        p.append(Record::with_value("v"))?;
    }
    assert_eq!((p.next_offset(), p.log_end_offset()), (3, 3));
    Ok(())
}

/// A handle on the active segment taken while appends go on has a summary whose fields agree
/// (taken under the writer lock): with records of one size, its size is its record count
/// times one batch's length, and its end offset is its record count. A race: it can only
/// catch the summary read without the lock when an append lands between two of its fields,
/// which many rounds make likely, not certain. Aimed at `i + 1 == n` -> `!=` and `+` -> `*`
/// in `Partition::segment` (the active segment's summary read without the lock).
#[test]
fn the_active_segments_handle_has_a_consistent_summary_under_appends() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    let rec = || Record::new().key("k").value("v").timestamp(T0);
    p.append(rec())?;
    let batch = p.segments()[0].size;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (p, stop) = (p.clone(), Arc::clone(&stop));
        std::thread::spawn(move || -> Result<(), Error> {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && p.log_end_offset() < 2_000_000 {
                p.append(rec())?;
            }
            Ok(())
        })
    };
    let mut torn = None;
    for _ in 0..20_000 {
        let s = p.segment(0)?;
        if s.size() != s.record_count() * batch || s.end_offset() != s.record_count() {
            torn = Some((s.size(), s.record_count(), s.end_offset()));
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().map_err(|_| "appender panicked")??;
    assert_eq!(torn, None, "size, records, end offset of one summary disagree (one batch: {batch} bytes)");
    Ok(())
}

/// The last handle dropped without `close` closes the partition: the next open is clean (no
/// re-validation). Kills `Drop for Inner` -> () and its `closed` / `poisoned` checks inverted.
#[test]
fn dropping_the_last_handle_closes_cleanly() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open(&dir)?;
    for o in 0..3 {
        p.append(Record::new().key("k").value(value_of(o)))?;
    }
    drop(p);
    let p = Partition::open(&dir)?;
    assert!(p.recovery_report().clean, "{:?}", p.recovery_report());
    assert_values(&p, 0..3)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `Inner::view_after` (partition/mod.rs): a reader meeting a segment retired by a swap in
// progress.

/// A truncation retires the segment it cuts before it puts the kept prefix in place and
/// publishes the new segment list. A read of a kept record that meets the retired segment in
/// that window waits for the new list and returns the record, rather than failing with "the
/// segment list kept changing". Here the swap is held at the rename of the kept prefix onto
/// the segment's `.log` while a reader of a cold (never opened) segment starts.
/// Kills `!=` -> `==` in `view_after` (the reader then gives up at once, 64 times over).
#[test]
fn a_read_that_meets_a_segment_retired_by_a_truncation_waits_for_the_new_list() -> TestResult {
    use common::gated_fs::GatedFs;
    let sim = SimFs::new();
    let clock = ManualClock::new(T0);
    let cfg = TopicConfig::default().segment_bytes(400);
    {
        let p = sim_open(&sim, &clock, &cfg)?;
        for o in 0..24 {
            append_one(&p, o)?;
        }
        p.close()?;
    }
    let fs = Arc::new(GatedFs::new(sim.clone()));
    let gate = Arc::clone(&fs.rename_gate);
    let p = Partition::options().fs(fs).config(cfg.clone()).clock(clock.clone()).open("/p")?;
    let segs = p.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    // Cut one record into the second segment: that segment is rewritten, the ones above go.
    let (kept, cut) = (segs[1].base_offset, segs[1].base_offset + 1);
    gate.arm();
    let truncator = {
        let p = p.clone();
        std::thread::spawn(move || p.truncate_to(cut))
    };
    gate.wait_held();
    let (started, ready) = std::sync::mpsc::channel();
    let reader = {
        let p = p.clone();
        std::thread::spawn(move || {
            let _ = started.send(());
            p.read(kept, 1 << 20).map(|r| r.into_iter().map(|r| r.offset).collect::<Vec<_>>())
        })
    };
    ready.recv()?;
    std::thread::sleep(std::time::Duration::from_millis(100));
    gate.open();
    truncator.join().map_err(|_| "truncate thread panicked")??;
    let got = reader.join().map_err(|_| "reader thread panicked")??;
    assert_eq!(got, vec![kept], "the read of the kept record after the swap");
    assert_eq!(p.log_end_offset(), cut);
    assert_values(&p, 0..cut)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One compaction pass (cleaner/clean.rs): keyless records, the key map's size, partial passes.

fn compacted() -> TopicConfig {
    TopicConfig::default().cleanup_policy(partlog::CleanupPolicy::COMPACT).min_cleanable_dirty_ratio(0.0)
}

type KeyValue = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

fn keys_and_values(p: &Partition) -> Result<Vec<KeyValue>, Error> {
    Ok(read_all(p)?.into_iter().map(|r| (r.offset, r.key, r.value)).collect())
}

/// The empty key is a key: a record with it is its key's latest even when a keyless record
/// follows it, and compaction keeps it while it removes the keyless one. Kills `<<` -> `>>` in
/// the phase-1 marker of keyless records (the marker becomes 0, and a keyless record is then
/// mapped as the empty key's latest record, which removes the real one).
#[test]
fn a_record_with_the_empty_key_is_not_taken_for_a_keyless_one() -> TestResult {
    let clock = ManualClock::new(T0);
    let fs = SimFs::new();
    // Records without a key are refused by a compacted log: they were written before.
    let p = sim_open(&fs, &clock, &TopicConfig::default())?;
    p.append(Record::new().key(&b""[..]).value("empty key"))?;
    p.append(Record::new().key("a").value("a"))?;
    p.append(Record::with_value("no key"))?;
    assert!(p.roll()?);
    p.close()?;
    drop(p);
    let p = sim_open(&fs, &clock, &compacted())?;
    let report = p.compact()?;
    assert!(report.cleaned, "{report:?}");
    assert_eq!(report.keyless_records_removed, 1, "{report:?}");
    assert_eq!(
        keys_and_values(&p)?,
        [(0, Some(Vec::new()), Some(b"empty key".to_vec())), (1, Some(b"a".to_vec()), Some(b"a".to_vec()))]
    );
    Ok(())
}

/// The key map is as large as the pass's records could need and no larger: 1,000 records
/// with distinct keys at the default load factor of 0.9 need 1,000 / 0.9 = 1,112 slots, and a
/// table is a power of two long, so 2,048 slots of 24 bytes (1,024 would hold only 921 keys).
/// Kills `+` -> `*` in the slot count wanted for the dirty records (4,096 slots).
#[test]
fn a_pass_takes_the_smallest_key_map_its_records_fit_in() -> TestResult {
    let p = sealed_distinct_keys(1_000)?;
    let report = p.compact()?;
    assert!(report.cleaned && !report.partial, "{report:?}");
    assert_eq!(report.keys_mapped, 1_000, "{report:?}");
    assert_eq!(report.map_bytes, 2_048 * 24, "{report:?}");
    Ok(())
}

/// `dedupe_buffer_bytes` bounds the key map: 100,000 bytes hold 4,166 slots of 24 bytes, and
/// the largest power of two below that is 4,096 (98,304 bytes), filled to 0.9 of it (3,686
/// keys). With 5,000 distinct keys the pass stops there (partial) and the next pass goes on
/// from where it stopped. Kills `/` -> `*` in rounding the limit to a power of two (the map
/// then grows to 8,192 slots, 196,608 bytes).
#[test]
fn the_key_map_stays_within_the_dedupe_buffer() -> TestResult {
    let p = sealed_distinct_keys(5_000)?;
    let opts = partlog::CleanerOptions::default().dedupe_buffer_bytes(100_000);
    let report = p.compact_with(&opts)?;
    assert!(report.cleaned && report.partial, "{report:?}");
    assert!(report.map_bytes <= 100_000, "{report:?}");
    assert_eq!(report.map_bytes, 4_096 * 24, "{report:?}");
    assert_eq!(report.keys_mapped, 3_686, "{report:?}");
    assert_eq!(report.cleaned_up_to, 3_686, "{report:?}");
    let next = p.compact_with(&opts)?;
    assert!(next.cleaned && !next.partial, "{next:?}");
    assert_eq!((next.first_dirty_offset, next.cleaned_up_to, next.keys_mapped), (3_686, 5_000, 1_314), "{next:?}");
    Ok(())
}

/// A compacted partition on a simulated disk whose one sealed segment holds `n` records with
/// distinct keys, in one batch.
fn sealed_distinct_keys(n: u32) -> Result<Partition, Error> {
    let p = sim_open(&SimFs::new(), &ManualClock::new(T0), &compacted())?;
    let batch: Vec<Record<'_>> = (0..n).map(|i| Record::new().key(i.to_be_bytes().to_vec()).value("v")).collect();
    p.append_batch(&batch)?;
    assert!(p.roll()?);
    Ok(p)
}

/// A partial pass (the map filled up) is clean only up to the last record it mapped, also
/// when the mapped range held a keyless record: the next pass starts there. Here a map of 4
/// slots holds 3 keys: record 0 has no key, records 1-3 fill the map, records 4 and 5 (keys
/// `d` and `a`) are left for the next pass, which removes the older `a`. Kills deleting `!` in
/// the range a keyless record covers (it then covers every offset, and the first pass claims
/// the whole log).
#[test]
fn a_partial_pass_with_a_keyless_record_is_clean_only_up_to_what_it_mapped() -> TestResult {
    let clock = ManualClock::new(T0);
    let fs = SimFs::new();
    // Records without a key are refused by a compacted log: this one was written before.
    let p = sim_open(&fs, &clock, &TopicConfig::default())?;
    p.append(Record::with_value("no key"))?;
    for k in ["a", "b", "c", "d", "a"] {
        p.append(Record::new().key(k).value(k))?;
    }
    assert!(p.roll()?);
    p.close()?;
    drop(p);
    let p = sim_open(&fs, &clock, &compacted())?;
    let opts = partlog::CleanerOptions::default().dedupe_buffer_bytes(4 * 24);
    let first = p.compact_with(&opts)?;
    assert!(first.cleaned && first.partial, "{first:?}");
    assert_eq!((first.keys_mapped, first.cleaned_up_to), (3, 4), "{first:?}");
    let second = p.compact_with(&opts)?;
    assert!(second.cleaned, "{second:?}");
    assert_eq!((second.first_dirty_offset, second.cleaned_up_to), (4, 6), "{second:?}");
    let kept: Vec<u64> = read_all(&p)?.iter().map(|r| r.offset).collect();
    assert_eq!(kept, [2, 3, 4, 5]);
    Ok(())
}

/// A partial pass whose map ends exactly where a segment begins rewrites only the segments
/// below that point: the next segment is left as it is (not merged into the cleaned group),
/// for the next pass to clean. Here segments [0, 3) and [3, 6) hold keys `a`-`c` and `d`-`f`,
/// and a map of 3 keys fills up on `d`. Kills `<` -> `<=` in choosing the segments to rewrite.
#[test]
fn a_partial_pass_rewrites_no_segment_past_what_it_mapped() -> TestResult {
    let clock = ManualClock::new(T0);
    let fs = SimFs::new();
    let p = sim_open(&fs, &clock, &compacted())?;
    for k in ["a", "b", "c", "d", "e", "f"] {
        p.append(Record::new().key(k).value(k))?;
        if k == "c" || k == "f" {
            assert!(p.roll()?);
        }
    }
    let opts = partlog::CleanerOptions::default().dedupe_buffer_bytes(4 * 24);
    let report = p.compact_with(&opts)?;
    assert!(report.cleaned && report.partial, "{report:?}");
    assert_eq!(report.cleaned_up_to, 3, "{report:?}");
    assert_eq!((report.segments_before, report.segments_after), (1, 1), "{report:?}");
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset).collect();
    assert_eq!(bases, [0, 3, 6]);
    assert_values_kv(&p, &["a", "b", "c", "d", "e", "f"])?;
    Ok(())
}

fn assert_values_kv(p: &Partition, keys: &[&str]) -> TestResult {
    let want: Vec<KeyValue> = keys
        .iter()
        .enumerate()
        .map(|(o, k)| (o as u64, Some(k.as_bytes().to_vec()), Some(k.as_bytes().to_vec())))
        .collect();
    assert_eq!(keys_and_values(p)?, want);
    Ok(())
}

/// An `.index` file is derived data, checked by its checksums and its summary; one that
/// passes both but whose entry points at a batch other than the one it names (written by a
/// bug or by hand) must not make compaction skip records. A pass that starts inside a
/// segment looks up its first dirty offset in the index and reads from there only when the
/// batch there starts at the entry's offset, else from the segment's start. Here a partial
/// pass leaves the cleaner at offset 3, and the segment's index is then rewritten (with valid
/// checksums) so that the entry for offset 3 points at the batch of offset 5. The next pass
/// must still keep keys `k3` and `k4`, which are their keys' latest records. Kills `&&` -> `||`
/// and `==` -> `!=` in `start_position` (the pass then maps nothing below 5, and its survivor
/// bitmap drops records 3 and 4).
#[test]
fn a_checksummed_but_wrong_index_entry_does_not_make_compaction_skip_records() -> TestResult {
    let clock = ManualClock::new(T0);
    let fs = SimFs::new();
    let cfg = compacted().index_interval_bytes(1);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    {
        let p = sim_open(&fs, &clock, &cfg)?;
        for k in &keys {
            p.append(Record::new().key(k.as_str()).value(k.as_str()))?;
        }
        assert!(p.roll()?);
        let opts = partlog::CleanerOptions::default().dedupe_buffer_bytes(4 * 24);
        let first = p.compact_with(&opts)?;
        assert!(first.partial, "{first:?}");
        assert_eq!(first.cleaned_up_to, 3, "{first:?}");
        p.close()?;
    }
    // The index: an 80-byte header (entry count at 64, the entries' CRC-32 at 68, the
    // header's CRC-32 of its first 76 bytes at 76), then (relative offset, position) pairs of
    // little-endian u32.
    let path = Path::new("/p").join(spec::seg_name(0, "index"));
    let bytes = fs.read_file(&path)?;
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let entries: Vec<(u32, u32)> = bytes[80..].chunks_exact(8).map(|e| (le(&e[..4]), le(&e[4..]))).collect();
    let pos_of =
        |o: u32| entries.iter().find(|e| e.0 == o).map(|e| e.1).ok_or(format!("no entry for {o}: {entries:?}"));
    let (at5, next) = (pos_of(5)?, pos_of(6)?);
    let mut forged: Vec<(u32, u32)> = entries.iter().copied().filter(|e| e.0 < 3).collect();
    forged.push((3, at5));
    forged.extend(entries.iter().copied().filter(|e| e.0 >= 6));
    assert!(forged.iter().any(|e| e.1 == next));
    let mut out = bytes[..80].to_vec();
    for (o, p) in &forged {
        out.extend_from_slice(&o.to_le_bytes());
        out.extend_from_slice(&p.to_le_bytes());
    }
    out[64..68].copy_from_slice(&(forged.len() as u32).to_le_bytes());
    let body_crc = crc32fast::hash(&out[80..]);
    out[68..72].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&out[..76]);
    out[76..80].copy_from_slice(&header_crc.to_le_bytes());
    fs.write_file(&path, &out)?;

    let p = sim_open(&fs, &clock, &cfg)?;
    let (index, _) = p.segment_indexes(0)?;
    assert_eq!(index.lookup(3).position, u64::from(at5), "the forged index is the one in use");
    let second = p.compact()?;
    assert!(second.cleaned, "{second:?}");
    assert_eq!(second.first_dirty_offset, 3, "{second:?}");
    let got: Vec<Vec<u8>> = read_all(&p)?.into_iter().filter_map(|r| r.key).collect();
    let want: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    assert_eq!(got, want, "every key's only record is kept");
    Ok(())
}

/// A cleaned segment's first timestamp is that of its first kept batch (as a rebuild from
/// the log would find): here `a` at T0 is removed by `a` at T0 + 20, so the segment now starts
/// with `b` at T0 + 10. `max.compaction.lag.ms` measures a dirty segment's age from it. Kills
/// both `==` -> `!=` in `Output::push`'s first-timestamp rule (T0 + 20, or none at all).
#[test]
fn a_cleaned_segment_starts_at_its_first_kept_records_timestamp() -> TestResult {
    let clock = ManualClock::new(T0);
    let fs = SimFs::new();
    let p = sim_open(&fs, &clock, &compacted())?;
    for (k, ts) in [("a", T0), ("b", T0 + 10), ("a", T0 + 20)] {
        p.append(Record::new().key(k).value(k).timestamp(ts))?;
    }
    assert!(p.roll()?);
    assert_eq!(p.segments()[0].first_timestamp, Some(T0));
    let report = p.compact()?;
    assert_eq!(report.records_removed, 1, "{report:?}");
    let seg = &p.segments()[0];
    assert_eq!((seg.first_timestamp, seg.max_timestamp), (Some(T0 + 10), Some(T0 + 20)), "{seg:?}");
    Ok(())
}

/// A cleaned segment larger than the cleaner's 1 MiB write buffer is written in several
/// writes, each after the one before: 3,000 records of 1 KiB (about 3.2 MiB) come back intact
/// after a pass that removes every other one, and again after a reopen. Kills `+=` -> `*=` in
/// the output's write position (every write then lands at position 0).
#[test]
fn a_cleaned_segment_larger_than_the_write_buffer_is_written_whole() -> TestResult {
    let clock = ManualClock::new(T0);
    let fs = SimFs::new();
    let cfg = compacted();
    let value = |i: u32| {
        let mut v = vec![(i % 251) as u8; 1024];
        v[..4].copy_from_slice(&i.to_be_bytes());
        v
    };
    {
        let p = sim_open(&fs, &clock, &cfg)?;
        for chunk in (0..3_000u32).collect::<Vec<_>>().chunks(100) {
            let batch: Vec<Record<'_>> =
                chunk.iter().map(|&i| Record::new().key(format!("k{}", i / 2).into_bytes()).value(value(i))).collect();
            p.append_batch(&batch)?;
        }
        assert!(p.roll()?);
        let report = p.compact()?;
        assert_eq!(report.records_removed, 1_500, "{report:?}");
        assert!(report.bytes_after > 1 << 20, "{report:?}");
        p.close()?;
    }
    let p = sim_open(&fs, &clock, &cfg)?;
    let got: Vec<(u64, Vec<u8>)> = read_all(&p)?.into_iter().map(|r| (r.offset, r.value.unwrap_or_default())).collect();
    let want: Vec<(u64, Vec<u8>)> = (0..3_000u32).filter(|i| i % 2 == 1).map(|i| (u64::from(i), value(i))).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the cleaned segment's records differ");
    Ok(())
}

/// A batch that compaction rewrites (some of its records removed) keeps its attributes: under
/// `message.timestamp.type=LogAppendTime` the cleaned batch still carries bit 3, so its
/// timestamps still read as append times. Kills deleting `!` in the attributes the rewritten
/// batch is given (it would keep only the delete-horizon bit).
#[test]
fn a_rewritten_batch_keeps_its_attributes() -> TestResult {
    let clock = ManualClock::new(T0);
    let fs = SimFs::new();
    let cfg = compacted().timestamp_type(partlog::TimestampType::LogAppendTime);
    let p = sim_open(&fs, &clock, &cfg)?;
    p.append_batch(&[
        Record::new().key("a").value("1"),
        Record::new().key("b").value("2"),
        Record::new().key("a").value("3"),
    ])?;
    assert!(p.roll()?);
    let report = p.compact()?;
    assert_eq!(report.records_removed, 1, "{report:?}");
    p.close()?;
    let log = fs.read_file(&Path::new("/p").join(spec::seg_name(0, "log")))?;
    let bs = spec::batches(&log);
    assert_eq!(bs.len(), 1);
    let h = spec::header(bs[0].1);
    assert_eq!((h.base_offset, h.count, h.last_delta), (0, 2, 2), "{h:?}");
    assert_eq!(h.attributes, 8, "{h:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Batch attributes (batch.rs).

/// A sealed segment that holds a transactional batch and a control batch (valid checksums,
/// placed there after a clean close, so the open does not scan it) is refused batch by batch
/// by a segment handle, as `UnsupportedFeature`, never listed as plain data: partlog does not
/// implement transactions. (So the `transactional` and `control` flags of a listed batch are
/// always false, and the `<<` -> `>>` mutants of those two bits are equivalent.)
#[test]
fn a_segment_handle_refuses_transactional_and_control_batches() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    {
        let p = Partition::open(&dir)?;
        p.append(Record::new().key("k").value("a"))?;
        p.append(Record::new().key("k").value("b"))?;
        assert!(p.roll()?);
        p.append(Record::new().key("k").value("c"))?;
        p.close()?;
    }
    let path = dir.join(spec::seg_name(0, "log"));
    let mut log = std::fs::read(&path)?;
    let spans: Vec<(usize, usize)> = spec::batches(&log).iter().map(|(pos, b)| (*pos, b.len())).collect();
    assert_eq!(spans.len(), 2);
    // Attributes at byte 10 (bit 4 transactional, bit 5 control); the CRC-32 at byte 4 covers
    // bytes 8 to the end.
    for (&(pos, len), bit) in spans.iter().zip([1u16 << 4, 1 << 5]) {
        let b = &mut log[pos..pos + len];
        let attributes = u16::from_le_bytes([b[10], b[11]]) | bit;
        b[10..12].copy_from_slice(&attributes.to_le_bytes());
        let crc = crc32fast::hash(&b[8..]);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(&path, &log)?;
    let p = Partition::open(&dir)?;
    let seg = p.segment(0)?;
    let first = seg.batches().next().ok_or("a batch")?;
    assert!(matches!(first, Err(Error::Corrupt { offset: 0, kind: CorruptKind::UnsupportedFeature, .. })), "{first:?}");
    let v = seg.verify()?;
    let problems: Vec<(u64, CorruptKind)> = v.problems.iter().map(|p| (p.position, p.kind)).collect();
    assert_eq!(problems.first(), Some(&(0, CorruptKind::UnsupportedFeature)), "{problems:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `Records::limit` (partition/read.rs): counting kept records from batch headers.

/// The offsets `records` yields.
fn offsets_of(records: &partlog::Records) -> Vec<u64> {
    records.iter().map(|r| r.offset()).collect()
}

/// `limit` counts a batch from its header only when every record of it is returned: not the
/// first batch of a read that starts inside it, not a batch that reaches past an earlier
/// limit's cut. Kills `&&` -> `||` and `>=` -> `<` in that test (both counted the skipped
/// records of the first batch), and `<` -> `==`, `<=` and `>` (which counted a batch that
/// ends at or past the cut whole).
#[test]
fn limit_counts_only_the_records_it_returns() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    let batch = |from: u64, n: u64| -> Vec<Vec<u8>> { (from..from + n).map(value_of).collect() };
    for (from, n) in [(0, 10), (10, 5)] {
        let values = batch(from, n);
        let records: Vec<Record<'_>> = values.iter().map(|v| Record::new().key("k").value(v.as_slice())).collect();
        assert_eq!(p.append_batch(&records)?.base_offset, from);
    }
    // A read from inside the first batch: 5..=14 are returned, 0..=4 are not.
    let mut r = p.read(5, 1 << 20)?;
    assert_eq!(r.limit(100), 10);
    assert_eq!(offsets_of(&r), (5..15).collect::<Vec<_>>());
    assert_eq!(r.next_fetch_offset(), 15);
    // The former name answers the same (kills its body replaced by 0 or 1).
    #[allow(deprecated)]
    let former = r.next_offset();
    assert_eq!(former, 15);
    assert_eq!(r.limit(3), 3);
    assert_eq!(offsets_of(&r), vec![5, 6, 7]);
    assert_eq!(r.next_fetch_offset(), 8);
    // A cut inside the second batch and one at its last record; a wider limit after either
    // keeps the cut.
    for cut in [12, 14] {
        let mut r = p.read(0, 1 << 20)?;
        assert_eq!(r.limit(cut), cut);
        assert_eq!(r.next_fetch_offset(), cut as u64);
        assert_eq!(r.limit(100), cut, "after a cut at {cut}");
        assert_eq!(offsets_of(&r), (0..cut as u64).collect::<Vec<_>>());
        assert_eq!(r.next_fetch_offset(), cut as u64);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `read_segment` (partition/read.rs): which reads are served from a map.

/// Read calls made by one `read(offset, max_bytes)` through `fs`, and the first and last
/// offsets it returned.
fn read_calls(p: &Partition, fs: &CountingFs, offset: u64, max_bytes: usize) -> TestResult<(u64, u64, u64)> {
    fs.reads.store(0, std::sync::atomic::Ordering::SeqCst);
    let r = p.read(offset, max_bytes)?;
    let calls = fs.reads.load(std::sync::atomic::Ordering::SeqCst);
    let offsets = offsets_of(&r);
    Ok((calls, *offsets.first().ok_or("a record")?, *offsets.last().ok_or("a record")?))
}

/// With `mmap_reads` off every read is a copy by system call, of the active segment too,
/// although its file is mapped for writes; with it on, a large read is served from the map, of
/// a sealed segment's part not read before too. Kills `&&` -> `||` in the test of whether to
/// read through the map (the active segment read through its write map with `mmap_reads` off),
/// and `!` deleted and `||` -> `&&` in the test of a small read (a large read of a cold part
/// of a sealed segment copied), and `<` -> `==`, `>` and `<=` in `max_bytes < PREFAULT_MIN`
/// (reads of 100 bytes and of exactly 64 KiB taken for the other kind).
#[test]
#[cfg(target_os = "linux")] // maps are Linux-only
fn mmap_reads_decides_which_reads_use_the_map() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    {
        let p = Partition::open(&dir)?;
        for b in 0..30u64 {
            let values: Vec<Vec<u8>> = (b * 10..b * 10 + 10).map(|o| vec![b'a' + (o % 26) as u8; 1000]).collect();
            let records: Vec<Record<'_>> = values.iter().map(|v| Record::new().key("k").value(v.as_slice())).collect();
            p.append_batch(&records)?;
            if b == 19 {
                assert!(p.roll()?);
            }
        }
        p.close()?;
    }
    for on in [true, false] {
        let fs = Arc::new(CountingFs { keep_maps: true, ..CountingFs::default() });
        let p = Partition::options().fs(fs.clone()).mmap_reads(on).open(&dir)?;
        // Opens the sealed segment (its indexes are read) through a small read at its start.
        let (_, first, _) = read_calls(&p, &fs, 0, 100)?;
        assert_eq!(first, 0);
        // A small read of a part of the sealed segment not read before copies, whatever
        // `mmap_reads` says.
        let (calls, first, _) = read_calls(&p, &fs, 50, 100)?;
        assert_eq!(first, 50);
        assert!(calls > 0, "small read, mmap_reads {on}");
        // A large read of the sealed segment from about 100 KB in, a part not read before.
        let (calls, first, last) = read_calls(&p, &fs, 100, 1 << 20)?;
        assert_eq!((first, last), (100, 199));
        assert_eq!(calls == 0, on, "sealed segment, mmap_reads {on}: {calls} read calls");
        // A read of exactly `PREFAULT_MIN` (64 KiB) bytes is large.
        let (calls, first, _) = read_calls(&p, &fs, 160, 64 << 10)?;
        assert_eq!(first, 160);
        assert_eq!(calls == 0, on, "64 KiB read, mmap_reads {on}: {calls} read calls");
        // A large read of the active segment.
        let (calls, first, last) = read_calls(&p, &fs, 200, 1 << 20)?;
        assert_eq!((first, last), (200, 299));
        assert_eq!(calls == 0, on, "active segment, mmap_reads {on}: {calls} read calls");
    }
    Ok(())
}

/// A log of one sealed segment written by `Partition::open` at `dir`: `n` records in batches
/// of `per_batch`, each value `size` bytes, record `o` with timestamp `T0 + o`; closed cleanly.
fn sealed_log(dir: &Path, n: u64, per_batch: u64, size: usize) -> TestResult {
    let p = Partition::open(dir)?;
    for b in 0..n / per_batch {
        let offsets = b * per_batch..(b + 1) * per_batch;
        let values: Vec<(u64, Vec<u8>)> = offsets.map(|o| (o, vec![b'a' + (o % 26) as u8; size])).collect();
        let records: Vec<Record<'_>> =
            values.iter().map(|(o, v)| Record::new().key("k").value(v.as_slice()).timestamp(T0 + *o as i64)).collect();
        p.append_batch(&records)?;
    }
    assert!(p.roll()?);
    p.close()?;
    Ok(())
}

/// `sealed_log(dir, 300, 10, 1000)` in a new directory, its `.log` then changed by `edit`
/// (after the clean close, so the next open does not scan it). Returns the directory (with
/// the guard that removes it) and what `edit` returned.
fn edited_sealed_log<R>(
    edit: impl FnOnce(&mut Vec<u8>) -> TestResult<R>,
) -> TestResult<(tempfile::TempDir, PathBuf, R)> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    sealed_log(&dir, 300, 10, 1000)?;
    let path = dir.join(spec::seg_name(0, "log"));
    let mut log = std::fs::read(&path)?;
    let r = edit(&mut log)?;
    std::fs::write(&path, &log)?;
    Ok((tmp, dir, r))
}

/// The position and length of the batch with base offset `base` in a `.log` image.
fn batch_span(log: &[u8], base: u64) -> TestResult<(usize, usize)> {
    let found = spec::batches(log).into_iter().find(|(_, b)| spec::header(b).base_offset == base);
    found.map(|(pos, b)| (pos, b.len())).ok_or_else(|| format!("no batch at {base}").into())
}

/// Writes `log` as segment 0 in `dir`, and seals it with a clean close (so that a later open
/// does not scan it).
fn sealed_segment(dir: &Path, log: &[u8]) -> TestResult {
    write_segment(dir, 0, log)?;
    let p = Partition::open(dir)?;
    assert!(p.roll()?);
    p.close()?;
    Ok(())
}

/// Asserts that `read` failed with `Error::Corrupt` of `kind` at byte `at` of the file.
fn assert_corrupt(read: Result<partlog::Records, Error>, kind: CorruptKind, at: u64, ctx: &str) -> TestResult {
    let err = read.err().ok_or_else(|| format!("{ctx}: the damage is not reported"))?;
    assert!(matches!(err, Error::Corrupt { kind: k, offset, .. } if k == kind && offset == at), "{ctx}: {err:?}");
    Ok(())
}

/// Without maps, a read takes one `pread` from its index entry: for a small read, of the
/// batches up to the next entry (here the one batch holding the record, as many bytes as it
/// returns); for a large one, of its budget plus the scan from the entry
/// (`index.interval.bytes`) and 1 KiB, so that a scan starting before the target still needs
/// no second call. Kills the mutants of that first read's size: the next entry not found (`>`
/// -> `==`, `<`), a small read taken for a large one, the region to the next entry grown
/// (`-` -> `+`), the 1 GiB cap becoming 0, a large read sized like a small one, and `+` ->
/// `*` in the large read's size (which reads the rest of the segment), `LOOKAHEAD` becoming 0
/// (`<<` -> `>>`), and `&&` -> `||` in the
/// check of the entry's batch (a read from the entry at position 0 read again), and `<=` ->
/// `>` in `Source::ensure` (the buffer grown when it held enough, not when it did not).
#[test]
fn an_unmapped_read_takes_one_read_call_of_what_it_needs() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let counted = |dir: &Path| -> TestResult<(Arc<CountingFs>, Partition)> {
        let fs = Arc::new(CountingFs::default());
        let p = Partition::options().fs(fs.clone()).mmap_reads(false).open(dir)?;
        // Opens the segment (its indexes are read) before anything is counted.
        p.read(0, 100)?;
        Ok((fs, p))
    };
    let bytes_and_calls = |fs: &CountingFs| {
        (fs.read.swap(0, std::sync::atomic::Ordering::SeqCst), fs.reads.swap(0, std::sync::atomic::Ordering::SeqCst))
    };
    // Batches of 10 records of 1,000 bytes: an index entry at every batch.
    let dir = tmp.path().join("big-batches");
    sealed_log(&dir, 300, 10, 1000)?;
    let (fs, p) = counted(&dir)?;
    for offset in [5, 55, 120, 250] {
        bytes_and_calls(&fs);
        let r = p.read(offset, 100)?;
        let (bytes, calls) = bytes_and_calls(&fs);
        assert_eq!(offsets_of(&r).first(), Some(&offset));
        assert_eq!((bytes, calls), (r.size_bytes() as u64, 1), "small read at {offset}");
    }
    // Batches of one record of 1,000 bytes: an index entry every four or five batches, so a
    // read may start its scan a few KB before its target.
    let dir = tmp.path().join("small-batches");
    sealed_log(&dir, 300, 1, 1000)?;
    let (fs, p) = counted(&dir)?;
    let budget = 64usize << 10;
    for offset in 100..105 {
        bytes_and_calls(&fs);
        let r = p.read(offset, budget)?;
        let (bytes, calls) = bytes_and_calls(&fs);
        assert_eq!(offsets_of(&r).first(), Some(&offset));
        assert!(r.size_bytes() <= budget && r.size_bytes() > budget - 2000, "{}", r.size_bytes());
        assert_eq!(calls, 1, "large read at {offset}");
        assert_eq!(bytes, (budget + 4096 + 1024) as u64, "large read at {offset}");
    }
    Ok(())
}

/// An offset-index entry (valid checksums, entries still increasing) that points inside a
/// batch instead of at one: reads through it scan from the segment start instead, mapped or
/// not, and so do lookups by timestamp. Kills `!=` -> `==` in the unmapped check of the
/// entry's batch and `&&` -> `||` in `start_position` (the scan started inside the batch and
/// reported damage), and `*` -> `+` and `/` in the growth of the scan's buffer (grown batch by
/// batch instead of doubling).
#[test]
fn a_read_through_an_index_entry_pointing_inside_a_batch_scans_from_the_start() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    sealed_log(&dir, 300, 10, 1000)?;
    let path = dir.join(spec::seg_name(0, "index"));
    let mut index = std::fs::read(&path)?;
    // The entry of relative offset 120: its position moved 100 bytes into its batch.
    let at = (80..index.len())
        .step_by(8)
        .find(|&at| index[at..at + 4] == 120u32.to_le_bytes())
        .ok_or("an index entry for offset 120")?;
    let pos = u32::from_le_bytes(index[at + 4..at + 8].try_into()?) + 100;
    index[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
    let body = crc32fast::hash(&index[80..]);
    index[68..72].copy_from_slice(&body.to_le_bytes());
    let head = crc32fast::hash(&index[..76]);
    index[76..80].copy_from_slice(&head.to_le_bytes());
    std::fs::write(&path, &index)?;
    for on in [true, false] {
        let fs = Arc::new(CountingFs { keep_maps: true, ..CountingFs::default() });
        let p = Partition::options().fs(fs.clone()).mmap_reads(on).open(&dir)?;
        p.read(0, 100)?;
        for (offset, max_bytes) in [(125, 100), (120, 1 << 20), (129, 64 << 10)] {
            fs.reads.store(0, std::sync::atomic::Ordering::SeqCst);
            let r = p.read(offset, max_bytes)?;
            let calls = fs.reads.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(offsets_of(&r).first(), Some(&offset), "mmap_reads {on}, read({offset}, {max_bytes})");
            // Without maps the scan from the start (about 130 KB to the target) doubles its
            // buffer as it goes: the entry's read, the scan's first read and five more.
            assert!(on || calls <= 7, "read({offset}, {max_bytes}): {calls} read calls");
        }
        for o in 115..145 {
            let hit = p.offset_for_timestamp(T0 + o)?.ok_or("a record")?;
            assert_eq!((hit.offset, hit.timestamp), (o as u64, T0 + o), "mmap_reads {on}");
        }
        let got: Vec<u64> = p.iter(0).map(|r| r.map(|r| r.offset)).collect::<Result<_, _>>()?;
        assert_eq!(got, (0..300).collect::<Vec<_>>());
    }
    Ok(())
}

/// Without maps, a lookup by timestamp reads from the index entry at or below the time index's
/// answer, not from the segment start. Kills `start_position` replaced by 0 and its
/// `entry.position == 0` test inverted (both scanned the whole segment before the target).
#[test]
fn an_unmapped_lookup_by_timestamp_reads_from_its_index_entry() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    sealed_log(&dir, 300, 10, 1000)?;
    let fs = Arc::new(CountingFs::default());
    let p = Partition::options().fs(fs.clone()).mmap_reads(false).open(&dir)?;
    p.read(0, 100)?;
    let segment = std::fs::metadata(dir.join(spec::seg_name(0, "log")))?.len();
    fs.read.store(0, std::sync::atomic::Ordering::SeqCst);
    let hit = p.offset_for_timestamp(T0 + 255)?.ok_or("a record")?;
    assert_eq!((hit.offset, hit.timestamp), (255, T0 + 255));
    let bytes = fs.read.load(std::sync::atomic::Ordering::SeqCst);
    // The batch holding 255 and at most a few around it, of the segment's 30.
    assert!(bytes < segment / 5, "{bytes} of {segment} bytes read");
    Ok(())
}

/// A sealed segment's batch at an index entry is CRC-checked once per open handle and
/// remembered; every other batch a read returns is checked each time. Here the batch after
/// next is damaged (a value byte flipped): however often the entry's batch and the one after
/// it were read before, a read from the entry stops before the damage, and a read of the
/// damaged batch reports it. Kills `==` -> `!=` in `Checked::verify` (the entry's remembered
/// check taken for the batches after it, which returned the damaged batch unchecked), and `>`
/// -> `>=` in the budget test (two batches of exactly the budget cut to one).
#[test]
fn a_remembered_check_covers_only_the_batch_at_its_index_entry() -> TestResult {
    let (_tmp, dir, pos) = edited_sealed_log(|log| {
        let (pos, len) = batch_span(log, 140)?;
        log[pos + len - 10] ^= 0x55;
        Ok(pos)
    })?;
    for on in [true, false] {
        let p = Partition::options().mmap_reads(on).open(&dir)?;
        let len = p.read(120, 100)?.size_bytes();
        for _ in 0..3 {
            let two = p.read(120, 2 * len)?;
            assert_eq!(offsets_of(&two), (120..140).collect::<Vec<_>>(), "mmap_reads {on}");
        }
        let r = p.read(120, 1 << 20)?;
        assert_eq!(offsets_of(&r), (120..140).collect::<Vec<_>>(), "mmap_reads {on}: stops before the damage");
        assert_eq!(r.next_fetch_offset(), 140);
        assert_corrupt(p.read(140, 1 << 20), CorruptKind::BatchChecksum, pos as u64, &format!("mmap_reads {on}"))?;
    }
    Ok(())
}

/// Damage in a batch header after good batches ends a read there, with the good batches
/// returned; the next read, from the damaged batch, reports it. Two kinds: a magic byte that
/// does not parse, and a base offset changed from 140 to 7 (its checksum now wrong), which
/// makes the batch look like one that ends before the read's offset. Kills the match guard
/// `first.is_some()` on a header that does not parse replaced by `false` (the whole read
/// failed). The second kind found a bug: a read passed over the batch unchecked, as it passes
/// over the batches before its target, and returned the batches after it, so that records 140
/// to 149 went missing with nothing reported.
#[test]
fn a_damaged_header_after_good_batches_ends_the_read() -> TestResult {
    // (byte of the header, its new value, what the read of the batch reports)
    for (at, value, kind) in [(8, 7, CorruptKind::BatchMagic), (16, 7, CorruptKind::BatchChecksum)] {
        let (_tmp, dir, pos) = edited_sealed_log(|log| {
            let (pos, _) = batch_span(log, 140)?;
            log[pos + at] = value;
            Ok(pos)
        })?;
        for on in [true, false] {
            let p = Partition::options().mmap_reads(on).open(&dir)?;
            for max_bytes in [100, 64 << 10, 1 << 20] {
                let r = p.read(125, max_bytes)?;
                let got = offsets_of(&r);
                assert_eq!(got.first(), Some(&125), "byte {at}, mmap_reads {on}, {max_bytes} bytes");
                assert!(got.last().is_some_and(|&l| l < 140), "byte {at}, mmap_reads {on}, {max_bytes} bytes: {got:?}");
                assert!(r.next_fetch_offset() <= 140, "byte {at}, mmap_reads {on}, {max_bytes} bytes");
            }
            assert_corrupt(p.read(140, 100), kind, pos as u64, &format!("byte {at}, mmap_reads {on}"))?;
        }
    }
    Ok(())
}

/// A read of an offset in a gap between batches (as compaction leaves them), reached after
/// passing over batches from its index entry: the batch passed over just before the gap is
/// checked (a damaged header there could have hidden the target), and the read returns the
/// next record that exists. With that batch damaged after a clean close (so the open does not
/// scan it), the read reports it. Kills `+` -> `*` in the slice of that check (which failed
/// every such read).
#[test]
fn a_read_in_a_gap_after_passed_over_batches_checks_the_last_one() -> TestResult {
    for damaged in [false, true] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("p");
        // Offsets 0..=99, then 105..=119: one record a batch, so an index entry covers several.
        let mut log = spec::single_batches(0, 100, value_of);
        let gap_at = log.len();
        log.extend(spec::single_batches(105, 15, value_of));
        sealed_segment(&dir, &log)?;
        let (pos, len) = batch_span(&log, 99)?;
        assert_eq!(pos + len, gap_at);
        if damaged {
            // A value byte of batch 99, the last one before the gap.
            log[gap_at - 2] ^= 0x55;
            std::fs::write(dir.join(spec::seg_name(0, "log")), &log)?;
        }
        for on in [true, false] {
            let p = Partition::options().mmap_reads(on).open(&dir)?;
            for offset in [100, 102, 104] {
                let r = p.read(offset, 100);
                if damaged {
                    assert_corrupt(
                        r,
                        CorruptKind::BatchChecksum,
                        pos as u64,
                        &format!("mmap_reads {on}, read({offset})"),
                    )?;
                } else {
                    assert_eq!(offsets_of(&r?).first(), Some(&105), "mmap_reads {on}, read({offset})");
                }
            }
        }
    }
    Ok(())
}

/// The last batch of a sealed segment damaged so that its offsets seem to end before the read's
/// offset (its base offset changed, its checksum now wrong): the walk finds nothing although
/// the segment claims the offset, so the batch it passed over last is checked and the read
/// reports it, at its position. Kills `+` -> `-` and `*` in that check's range and position.
#[test]
fn a_read_that_finds_nothing_in_a_segment_claiming_the_offset_checks_the_last_batch() -> TestResult {
    let (_tmp, dir, pos) = edited_sealed_log(|log| {
        let (pos, len) = batch_span(log, 290)?;
        assert_eq!(pos + len, log.len(), "the last batch");
        // The low byte of the base offset (byte 16): 290 becomes 263, ending at 272.
        log[pos + 16] = 7;
        Ok(pos)
    })?;
    for on in [true, false] {
        let p = Partition::options().mmap_reads(on).open(&dir)?;
        for (offset, max_bytes) in [(295, 100), (290, 1 << 20), (299, 64 << 10)] {
            let ctx = format!("mmap_reads {on}, read({offset}, {max_bytes})");
            assert_corrupt(p.read(offset, max_bytes), CorruptKind::BatchChecksum, pos as u64, &ctx)?;
        }
    }
    Ok(())
}

/// As above, after a 200 KB batch: without maps the scan's buffer then ends just past the last
/// batch's header, so the check of that batch reads the rest of it first, and reports its
/// checksum, not a short batch. Kills `+` -> `-` in the range that check makes sure is read.
#[test]
fn the_last_batch_check_after_a_large_batch_reads_the_whole_batch() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let big = vec![b'b'; 200 << 10];
    let mut log = spec::batch(0, &[spec::Rec::new(0, T0, Some(b"k"), Some(&big))], None);
    let pos = log.len();
    log.extend(spec::batch(1, &[spec::Rec::new(1, T0, Some(b"k"), Some(&[b'v'; 1000]))], None));
    sealed_segment(&dir, &log)?;
    // Batch 1's base offset becomes 0: it seems to end before offset 1.
    log[pos + 16] = 0;
    std::fs::write(dir.join(spec::seg_name(0, "log")), &log)?;
    for on in [true, false] {
        let p = Partition::options().mmap_reads(on).open(&dir)?;
        assert_corrupt(p.read(1, 100), CorruptKind::BatchChecksum, pos as u64, &format!("mmap_reads {on}"))?;
    }
    Ok(())
}

/// A batch missing only its last offset (compacted away; its offset span kept) holds no record
/// at that offset: a small read there returns the next batch's first record, not that batch.
/// Kills `+` -> `*` in the test of a dense batch (record count = last offset delta + 1), which
/// took this batch for a dense one.
#[test]
fn a_read_of_a_batchs_missing_last_offset_returns_the_next_record() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let recs: Vec<spec::Rec> = (0..9).map(|o| spec::Rec::new(o, T0, Some(b"k"), Some(b"v"))).collect();
    let mut log = spec::batch(0, &recs, Some(9));
    let recs: Vec<spec::Rec> = (10..15).map(|o| spec::Rec::new(o, T0, Some(b"k"), Some(b"v"))).collect();
    log.extend(spec::batch(10, &recs, None));
    write_segment(&dir, 0, &log)?;
    for on in [true, false] {
        let p = Partition::options().mmap_reads(on).open(&dir)?;
        for max_bytes in [1, 100, 1 << 20] {
            let r = p.read(9, max_bytes)?;
            assert_eq!(offsets_of(&r).first(), Some(&10), "mmap_reads {on}, {max_bytes} bytes");
        }
    }
    Ok(())
}
