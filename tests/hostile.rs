//! Hostile input: absurd length fields, stray and disguised files in the partition directory,
//! damaged or forged checkpoints, random bytes as segment and index files, and bad API input.
//! Nothing here may panic, allocate what a length field says, follow a symlink, or delete a
//! file that is not the partition's; errors must be typed and name what is wrong.
//!
//! Randomized tests print their seed; replay with `PARTLOG_SEED=<seed>`.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Duration;

use partlog::fs::sim::SimFs;
use partlog::{
    CorruptKind, Error, ManualClock, Partition, Record, RecoveryMode, StoredRecord, TimestampType, TopicConfig,
};

mod common;
use common::counting_fs::CountingFs;
use common::{Rng, seed};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const CHECKPOINT: &str = "partition.checkpoint";
const HEADER_LEN: usize = 68;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn value_of(offset: u64) -> Vec<u8> {
    format!("value-{offset}-{}", "x".repeat((offset % 13) as usize)).into_bytes()
}

fn ts_of(offset: u64) -> i64 {
    10_000 + offset as i64 * 10
}

fn small() -> TopicConfig {
    TopicConfig::default().segment_bytes(1024).index_interval_bytes(128)
}

/// Appends `n` records whose contents are derived from their offsets (a few batched).
fn fill(p: &Partition, n: u64) -> TestResult {
    let mut o = p.log_end_offset();
    let end = o + n;
    while o < end {
        let k = ((o % 4) + 1).min(end - o);
        let vals: Vec<Vec<u8>> = (o..o + k).map(value_of).collect();
        let recs: Vec<Record<'_>> = vals
            .iter()
            .zip(o..)
            .map(|(v, off)| Record::new().key("k").value(v.as_slice()).timestamp(ts_of(off)))
            .collect();
        let info = p.append_batch(&recs)?;
        assert_eq!(info.base_offset, o);
        o += k;
    }
    Ok(())
}

fn check_all(p: &Partition, start: u64, end: u64) -> TestResult {
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (start, end));
    let got: Vec<StoredRecord> = p.iter(start).collect::<Result<_, _>>()?;
    assert_eq!(got.len() as u64, end - start);
    for (g, o) in got.iter().zip(start..) {
        assert_eq!(g.offset, o);
        assert_eq!(g.value.as_deref(), Some(value_of(o).as_slice()));
        assert_eq!(g.timestamp, ts_of(o));
    }
    Ok(())
}

fn seg_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn segment_logs(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(d) = name.strip_suffix(".log")
            && d.len() == 20
            && e.file_type()?.is_file()
            && let Ok(b) = d.parse::<u64>()
        {
            out.push((b, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Batch start positions of a `.log` image, by the documented length field.
fn batch_starts(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER_LEN <= bytes.len() {
        let len = le_u32(bytes, pos) as usize;
        if len < HEADER_LEN || pos + len > bytes.len() {
            break;
        }
        out.push(pos);
        pos += len;
    }
    out
}

fn patch_checkpoint(dir: &Path, f: impl FnOnce(&mut Vec<u8>)) -> std::io::Result<()> {
    let p = dir.join(CHECKPOINT);
    let mut b = std::fs::read(&p)?;
    f(&mut b);
    reseal(&mut b);
    std::fs::write(&p, b)
}

/// Recomputes the trailing CRC of a checkpoint image.
fn reseal(b: &mut [u8]) {
    let n = b.len() - 4;
    let crc = crc32fast::hash(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
}

fn closed_log(dir: &Path, n: u64) -> TestResult {
    let p = Partition::open_with(dir, small())?;
    fill(&p, n)?;
    p.close()?;
    Ok(())
}

/// Runs `f` on another thread and gives up after `limit` (the thread is left behind, so a hang
/// fails the test instead of the whole run). A guard against hangs only: limits are minutes,
/// never a measure of speed.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> TestResult<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).map_err(|_| format!("did not finish within {limit:?}").into())
}

/// Peak resident set size of this process in KiB, after resetting it (Linux).
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    peak_rss()
}

fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Absurd length fields
// ---------------------------------------------------------------------------------------------

/// Length values a u32 field can hold that are far beyond any batch: 2 GiB, i32::MAX (the
/// largest the format allows), u32::MAX (4 GiB − 1, the largest "4 GiB" there is), and values
/// just past the file.
const HUGE_LENGTHS: [u32; 5] = [0x8000_0000, 0x7FFF_FFFF, u32::MAX, 0x4000_0000, 0x0100_0000];

fn set_length(path: &Path, pos: usize, len: u32) -> std::io::Result<()> {
    let mut b = std::fs::read(path)?;
    b[pos..pos + 4].copy_from_slice(&len.to_le_bytes());
    std::fs::write(path, b)
}

#[test]
fn huge_length_fields_in_the_active_segment() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open_with(&dir, TopicConfig::default())?;
    fill(&p, 40)?;
    p.close()?;
    drop(p);
    let log = seg_path(&dir, 0, "log");
    let pristine = std::fs::read(&log)?;
    let cp = std::fs::read(dir.join(CHECKPOINT))?;
    let starts = batch_starts(&pristine);
    let last = *starts.last().ok_or("no batch")?;
    let base_at = |pos: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&pristine[pos + 16..pos + 24]);
        u64::from_le_bytes(a)
    };
    let last_base = base_at(last);
    let mid = starts[starts.len() / 2];
    let mid_base = base_at(mid);
    let rss_before = reset_peak_rss();
    for len in HUGE_LENGTHS {
        for (place, pos) in [("last batch", last), ("middle batch", mid), ("after the end", pristine.len())] {
            std::fs::write(&log, &pristine)?;
            std::fs::write(dir.join(CHECKPOINT), &cp)?;
            if pos == pristine.len() {
                // A header-sized fake batch start after the real end.
                let mut fake = vec![0u8; HEADER_LEN];
                fake[8] = 2;
                fake[40..48].copy_from_slice(&i64::MIN.to_le_bytes());
                let mut b = pristine.clone();
                b.extend_from_slice(&fake);
                std::fs::write(&log, b)?;
            }
            set_length(&log, pos, len)?;
            std::fs::remove_file(dir.join(CHECKPOINT))?;
            let ctx = format!("length {len:#x} in the {place}");
            let d = dir.clone();
            let r = within(Duration::from_secs(120), move || Partition::open(&d))?;
            let r = match (place, r) {
                ("middle batch", Err(Error::Corrupt { path, offset, kind })) => {
                    assert_eq!((path, offset, kind), (log.clone(), pos as u64, CorruptKind::MidLog), "{ctx}");
                    let p = Partition::options().recovery(RecoveryMode::TruncateCorrupt).open(&dir)?;
                    check_all(&p, 0, mid_base).map_err(|e| format!("{ctx}, TruncateCorrupt: {e}"))?;
                    continue;
                }
                (_, r) => r.map_err(|e| format!("{ctx}: {e}"))?,
            };
            let end = if place == "last batch" { last_base } else { 40 };
            check_all(&r, 0, end).map_err(|e| format!("{ctx}: {e}"))?;
        }
    }
    if let (Some(a), Some(b)) = (rss_before, peak_rss()) {
        assert!(b.saturating_sub(a) < 256 << 10, "peak RSS grew by {} MiB", (b - a) >> 10);
    }
    Ok(())
}

/// The same in a sealed segment after a clean close (no recovery): reads report `Corrupt`,
/// quickly and without allocating what the field says.
#[test]
fn huge_length_fields_in_a_sealed_segment_fail_reads() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    closed_log(&dir, 60)?;
    let logs = segment_logs(&dir)?;
    assert!(logs.len() >= 3);
    let (base, sealed) = logs[1].clone();
    let next_base = logs[2].0;
    let pristine = std::fs::read(&sealed)?;
    let pristine_index = std::fs::read(seg_path(&dir, base, "index"))?;
    let starts = batch_starts(&pristine);
    for len in HUGE_LENGTHS {
        for (pos, drop_index) in [(starts[0], false), (starts[starts.len() - 1], false), (starts[1], true)] {
            std::fs::write(&sealed, &pristine)?;
            std::fs::write(seg_path(&dir, base, "index"), &pristine_index)?;
            if drop_index {
                // The index is rebuilt from the log on first use, which finds the damage.
                std::fs::remove_file(seg_path(&dir, base, "index"))?;
            }
            set_length(&sealed, pos, len)?;
            let p = Partition::open_with(&dir, small())?;
            for o in base..next_base {
                match p.read(o, 1 << 20) {
                    Err(Error::Corrupt { path, .. }) => assert_eq!(path, sealed),
                    Err(e) => return Err(e.into()),
                    Ok(r) => {
                        let first = r.iter().next().map(|r| r.offset());
                        assert_eq!(first, Some(o), "length {len:#x} at {pos}: read({o}) returned other records");
                    }
                }
            }
            let _ = p.offset_for_timestamp(ts_of(base));
            let _: Vec<_> = p.iter(0).collect();
            drop(p);
        }
    }
    Ok(())
}

/// A damaged length field in a large active segment (a preallocated or sparse file, as a crash
/// of a big segment leaves) must not make open allocate and checksum what the field says.
#[test]
fn huge_length_field_in_a_large_sparse_active_segment() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open(&dir)?;
    fill(&p, 10)?;
    p.close()?;
    drop(p);
    let log = seg_path(&dir, 0, "log");
    let len = std::fs::metadata(&log)?.len();
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&0x1F00_0000u32.to_le_bytes()); // 496 MiB
    h[8] = 2;
    h[16..24].copy_from_slice(&10u64.to_le_bytes());
    h[40..48].copy_from_slice(&i64::MIN.to_le_bytes());
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&log)?;
        f.write_all_at(&h, len)?;
        f.set_len(len + (512 << 20))?; // sparse: no disk used
    }
    std::fs::remove_file(dir.join(CHECKPOINT))?;
    let before = reset_peak_rss();
    let fs = std::sync::Arc::new(CountingFs::default());
    let read = std::sync::Arc::clone(&fs.read);
    let p = Partition::options().fs(fs).mmap_reads(false).open(&dir)?;
    let opened_with = read.load(std::sync::atomic::Ordering::Relaxed);
    check_all(&p, 0, 10)?;
    if let (Some(a), Some(b)) = (before, peak_rss()) {
        assert!(b.saturating_sub(a) < 128 << 10, "open raised the peak RSS by {} MiB", (b - a) >> 10);
    }
    // What the length field claims (496 MiB) and the sparse tail (512 MiB) are never read:
    // open reads one scan buffer (1 MiB) and the few pages that hold data.
    assert!(opened_with < 2 << 20, "open read {opened_with} bytes of a log holding 10 records");
    Ok(())
}

/// Fake batch headers everywhere in a damaged tail, each claiming the rest of the file: telling
/// a torn tail from mid-log damage must not checksum the rest of the file once per header.
#[test]
fn plausible_fake_headers_in_a_damaged_tail_do_not_make_open_quadratic() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open(&dir)?;
    fill(&p, 10)?;
    p.close()?;
    drop(p);
    let log = seg_path(&dir, 0, "log");
    let mut bytes = std::fs::read(&log)?;
    let n = bytes.len();
    bytes[n - 1] ^= 1; // the last batch is torn
    bytes.resize(n + (1 << 20), 0);
    let mut pos = n;
    while pos + HEADER_LEN <= bytes.len() {
        let left = (bytes.len() - pos) as u32;
        bytes[pos..pos + 4].copy_from_slice(&left.to_le_bytes());
        bytes[pos + 8] = 2;
        bytes[pos + 16..pos + 24].copy_from_slice(&100u64.to_le_bytes());
        bytes[pos + 40..pos + 48].copy_from_slice(&i64::MIN.to_le_bytes());
        pos += HEADER_LEN;
    }
    std::fs::write(&log, &bytes)?;
    std::fs::remove_file(dir.join(CHECKPOINT))?;
    let fs = std::sync::Arc::new(CountingFs::default());
    let read = std::sync::Arc::clone(&fs.read);
    // Either the tail is recognised as torn and cut, or (when it cannot be searched within a
    // fixed budget of 256 MiB of claimed batches) it is reported as damage.
    match Partition::options().fs(fs).mmap_reads(false).open(&dir) {
        Ok(p) => assert!(p.log_end_offset() <= 10),
        Err(Error::Corrupt { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Checksumming what each of the ~15,000 headers claims would read about 8 GB.
    let n = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n < 300 << 20, "open read {n} bytes of a 1 MiB file");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stray and disguised files
// ---------------------------------------------------------------------------------------------

/// Files partlog did not write, with names that are not segment names, are ignored and left
/// alone (never deleted).
#[test]
fn stray_files_are_ignored_and_left_alone() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    closed_log(&dir, 30)?;
    let strays = [
        "README",
        "foo.log",
        "123.log",
        "00000000000000000042.bak",
        "00000000000000000000.log.bak",
        "00000000000000000000.logx",
        "99999999999999999999.log", // does not fit in u64
        "0000000000000000000a.log",
        "+0000000000000000001.log",
        "000000000000000000000.log", // 21 digits
        ".hidden",
        "00000000000000000000.deleted",
        "00000000000000000000.swap",
    ];
    for (i, name) in strays.iter().enumerate() {
        std::fs::write(dir.join(name), format!("stray {i}"))?;
    }
    std::fs::create_dir(dir.join("subdir"))?;
    std::fs::write(dir.join("subdir").join("00000000000000000000.log"), b"not ours")?;
    for (round, clean) in [true, false].into_iter().enumerate() {
        if !clean {
            patch_checkpoint(&dir, |b| b[6] &= !1)?;
        }
        let p = Partition::open_with(&dir, small())?;
        check_all(&p, 0, 30 + round as u64)?;
        fill(&p, 1)?;
        p.close()?;
        drop(p);
        for (i, name) in strays.iter().enumerate() {
            assert_eq!(std::fs::read(dir.join(name))?, format!("stray {i}").into_bytes(), "{name} changed");
        }
        assert_eq!(std::fs::read(dir.join("subdir").join("00000000000000000000.log"))?, b"not ours");
    }
    Ok(())
}

/// A directory or a symlink posing as a segment file is refused with a clear error (`Corrupt`,
/// kind `Metadata`, naming it) and left in place; nothing is followed or deleted.
#[test]
fn disguised_segment_files_are_refused_not_followed() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside)?;
    let decoy = outside.join("decoy");
    std::fs::write(&decoy, b"precious")?;
    closed_log(&dir, 20)?;
    let passwd = std::fs::read("/etc/passwd").ok();

    enum Disguise {
        Dir,
        Link(PathBuf),
    }
    let cases = [
        ("00000000000000000099.log", Disguise::Dir),
        ("00000000000000000000.index", Disguise::Dir),
        ("00000000000000000500.log", Disguise::Link(decoy.clone())),
        ("00000000000000000500.log", Disguise::Link(PathBuf::from("/etc/passwd"))),
        ("00000000000000000000.timeindex", Disguise::Link(decoy.clone())),
        ("00000000000000000700.index", Disguise::Link(outside.join("missing"))),
    ];
    for (name, disguise) in cases {
        let path = dir.join(name);
        let real = if path.exists() { Some(std::fs::read(&path)?) } else { None };
        if real.is_some() {
            std::fs::remove_file(&path)?;
        }
        match &disguise {
            Disguise::Dir => std::fs::create_dir(&path)?,
            Disguise::Link(target) => std::os::unix::fs::symlink(target, &path)?,
        }
        match Partition::open_with(&dir, small()) {
            Err(Error::Corrupt { path: p, kind: CorruptKind::Metadata, .. }) => assert_eq!(p, path, "{name}"),
            other => return Err(format!("{name}: expected Corrupt(Metadata), got {other:?}").into()),
        }
        // Still there, untouched.
        let meta = std::fs::symlink_metadata(&path)?;
        match &disguise {
            Disguise::Dir => {
                assert!(meta.is_dir());
                std::fs::remove_dir(&path)?;
            }
            Disguise::Link(_) => {
                assert!(meta.file_type().is_symlink());
                std::fs::remove_file(&path)?;
            }
        }
        if let Some(real) = real {
            std::fs::write(&path, real)?;
        }
        assert_eq!(std::fs::read(&decoy)?, b"precious");
        assert!(!outside.join("missing").exists(), "a dangling link's target was created");
        assert_eq!(std::fs::read("/etc/passwd").ok(), passwd);
    }
    let p = Partition::open_with(&dir, small())?;
    check_all(&p, 0, 20)?;
    Ok(())
}

/// A symlink in place of the checkpoint is not read through and not written through: it is
/// treated as missing (full re-validation) and replaced by a regular file.
#[test]
fn symlinked_checkpoint_is_neither_read_nor_written_through() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let decoy = tmp.path().join("decoy");
    closed_log(&dir, 20)?;
    // The decoy holds a valid checkpoint claiming a different log start.
    let mut cp = std::fs::read(dir.join(CHECKPOINT))?;
    cp[8..16].copy_from_slice(&7u64.to_le_bytes());
    reseal(&mut cp);
    std::fs::write(&decoy, &cp)?;
    std::fs::remove_file(dir.join(CHECKPOINT))?;
    std::os::unix::fs::symlink(&decoy, dir.join(CHECKPOINT))?;
    let p = Partition::open_with(&dir, small())?;
    assert_eq!(p.log_start_offset(), 0, "the checkpoint was read through the symlink");
    check_all(&p, 0, 20)?;
    fill(&p, 1)?;
    p.close()?;
    assert_eq!(std::fs::read(&decoy)?, cp, "the checkpoint was written through the symlink");
    assert!(std::fs::symlink_metadata(dir.join(CHECKPOINT))?.is_file());
    Ok(())
}

/// The lock file too: a symlink named `.lock` must not make open create or lock a file
/// elsewhere.
#[test]
fn symlinked_lock_file_is_not_followed() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    closed_log(&dir, 5)?;
    let target = tmp.path().join("created-outside");
    std::fs::remove_file(dir.join(".lock"))?;
    std::os::unix::fs::symlink(&target, dir.join(".lock"))?;
    let r = Partition::open_with(&dir, small());
    assert!(!target.exists(), "open created {} through the .lock symlink", target.display());
    if let Ok(p) = r {
        check_all(&p, 0, 5)?;
    }
    Ok(())
}

#[test]
fn the_partition_path_must_be_a_real_directory() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let real = tmp.path().join("real");
    closed_log(&real, 3)?;
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link)?;
    assert!(matches!(Partition::open(&link), Err(Error::NotALogDir { path, .. }) if path == link));
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x")?;
    assert!(matches!(Partition::open(&file), Err(Error::NotALogDir { path, .. }) if path == file));
    assert_eq!(std::fs::read(&file)?, b"x");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Checkpoint
// ---------------------------------------------------------------------------------------------

/// Damaged checkpoints only cost a full re-validation; a newer format version is refused with
/// `UnsupportedVersion` (guessing would risk misreading it).
#[test]
fn damaged_and_foreign_checkpoints() -> TestResult {
    let mut rng = Rng::new(seed("damaged_and_foreign_checkpoints"));
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open_with(&dir, small())?;
    fill(&p, 100)?;
    p.advance_log_start(3)?; // in the first segment: the start is only in the checkpoint
    p.close()?;
    drop(p);
    let good = std::fs::read(dir.join(CHECKPOINT))?;
    let nsegs = le_u32(&good, 32);
    assert!(nsegs >= 3);

    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("one byte".into(), vec![b'P']),
        ("header only".into(), good[..48].to_vec()),
        ("truncated".into(), good[..good.len() - 1].to_vec()),
        ("extended".into(), [good.as_slice(), &[0u8; 56]].concat()),
        ("zeros".into(), vec![0u8; good.len()]),
        ("ones".into(), vec![0xFF; good.len()]),
    ];
    for count in [u32::MAX, 0x0100_0001, 0x00FF_FFFF, nsegs + 1, nsegs - 1, 0] {
        let mut b = good.clone();
        b[32..36].copy_from_slice(&count.to_le_bytes());
        reseal(&mut b);
        cases.push((format!("segment count {count:#x}"), b));
    }
    for i in 0..20 {
        let n = rng.below(2 * good.len() as u64) as usize;
        cases.push((format!("random {i}"), rng.bytes(n)));
    }
    for (name, bytes) in cases {
        std::fs::write(dir.join(CHECKPOINT), &bytes)?;
        let d = dir.clone();
        let p = within(Duration::from_secs(120), move || Partition::open_with(&d, small()))?
            .map_err(|e| format!("{name}: {e}"))?;
        // Without a usable checkpoint the log start falls back to the oldest segment.
        check_all(&p, 0, 100).map_err(|e| format!("{name}: {e}"))?;
        p.close()?;
        drop(p);
        std::fs::write(dir.join(CHECKPOINT), &good)?;
    }

    for version in [0u16, 1, 3, 7, u16::MAX] {
        let mut b = good.clone();
        b[4..6].copy_from_slice(&version.to_le_bytes());
        reseal(&mut b);
        std::fs::write(dir.join(CHECKPOINT), &b)?;
        match Partition::open_with(&dir, small()) {
            Err(Error::UnsupportedVersion { path, found, supported }) => {
                assert_eq!((path, found, supported), (dir.join(CHECKPOINT), u32::from(version), 2));
            }
            other => return Err(format!("version {version}: expected UnsupportedVersion, got {other:?}").into()),
        }
        assert_eq!(std::fs::read(dir.join(CHECKPOINT))?, b, "a refused checkpoint is left as it was");
    }
    std::fs::write(dir.join(CHECKPOINT), &good)?;
    let p = Partition::open_with(&dir, small())?;
    check_all(&p, 3, 100)?;
    Ok(())
}

/// A checkpoint with a valid CRC but absurd contents (a forged or buggy one): open and later
/// appends and reads may fail, with a typed error, but never panic. Here: sizes, record counts,
/// bases and the recovery point.
#[test]
fn forged_checkpoint_sizes_and_counts_never_panic() -> TestResult {
    forged_checkpoints(&["recovery point", "base", "size", "records", "max ts off"])
}

/// The same for the log start and next offsets, which appends compute new offsets from.
#[test]
fn forged_checkpoint_offsets_never_panic() -> TestResult {
    forged_checkpoints(&["log start", "next offset", "next"])
}

fn forged_checkpoints(fields: &[&str]) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    closed_log(&dir, 30)?;
    let good = std::fs::read(dir.join(CHECKPOINT))?;
    let nsegs = le_u32(&good, 32) as usize;
    let mut pristine: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for e in std::fs::read_dir(&dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            pristine.push((e.path(), std::fs::read(e.path())?));
        }
    }
    assert!(nsegs >= 2, "want a sealed and an active segment");
    // (field offset, value)
    let mut forgeries: Vec<(String, usize, u64)> = Vec::new();
    for (name, at) in [("log start", 8), ("recovery point", 16), ("next offset", 24)] {
        if !fields.contains(&name) {
            continue;
        }
        for v in [u64::MAX, u64::MAX - 1, 1 << 40, 0] {
            forgeries.push((format!("{name} = {v:#x}"), at, v));
        }
    }
    for i in 0..nsegs {
        let e = 48 + 56 * i;
        for (name, at) in [("base", 0), ("size", 8), ("next", 16), ("records", 24), ("max ts off", 48)] {
            if !fields.contains(&name) {
                continue;
            }
            for v in [u64::MAX, u64::MAX - 1, 1 << 33, 0] {
                forgeries.push((format!("segment {i} {name} = {v:#x}"), e + at, v));
            }
        }
    }
    let mut panics = Vec::new();
    for (name, at, v) in forgeries {
        for (p, b) in &pristine {
            std::fs::write(p, b)?;
        }
        let mut b = good.clone();
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        reseal(&mut b);
        std::fs::write(dir.join(CHECKPOINT), &b)?;
        let d = dir.clone();
        let outcome = within(Duration::from_secs(120), move || {
            std::panic::catch_unwind(AssertUnwindSafe(|| exercise(&d, 2))).map_err(panic_text)
        })?;
        match outcome {
            Ok(Ok(())) | Ok(Err(_)) => {}
            Err(msg) => panics.push(format!("{name}: panicked: {msg}")),
        }
        // Remove what a forged size may have grown.
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_type()?.is_file() && !pristine.iter().any(|(p, _)| *p == e.path()) && e.file_name() != ".lock" {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    assert!(panics.is_empty(), "{} forged checkpoints made partlog panic:\n{}", panics.len(), panics.join("\n"));
    Ok(())
}

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Opens `dir` and uses the log every way there is; returns the first error (panics propagate).
fn exercise(dir: &Path, appends: u64) -> Result<(), Error> {
    exercise_with(Partition::options().config(small()), dir, appends)
}

fn exercise_with(opts: partlog::PartitionOptions, dir: &Path, appends: u64) -> Result<(), Error> {
    let p = opts.open(dir)?;
    read_everything(&p);
    for i in 0..appends {
        if i % 2 == 0 {
            p.append(Record::with_value("after").timestamp(1))?;
        } else {
            p.append_batch(&[Record::with_value("a"), Record::with_value("b")])?;
        }
    }
    read_everything(&p);
    p.close()
}

/// Every read API over the whole log; errors are fine, panics are not.
fn read_everything(p: &Partition) {
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    let _: Vec<_> = p.iter(start).take(10_000).collect();
    let mut o = start;
    for _ in 0..200 {
        if o >= end {
            break;
        }
        match p.read(o, 300) {
            Ok(r) => {
                for rec in r.iter() {
                    let _ = (rec.key(), rec.value(), rec.headers().count(), rec.timestamp());
                }
                o = r.next_fetch_offset().max(o + 1);
            }
            Err(_) => o += 1,
        }
    }
    for probe in [start, end, end.saturating_add(1), start.saturating_sub(1), u64::MAX] {
        let _ = p.read(probe, 100);
    }
    for ts in [i64::MIN + 1, -1, 0, 10_000, 10_500, i64::MAX] {
        let _ = p.offset_for_timestamp(ts);
    }
    for s in p.segments() {
        if let Ok((i, t)) = p.segment_indexes(s.base_offset) {
            let _ = (i.lookup(s.base_offset), i.lookup(u64::MAX), t.lookup(0), t.lookup(i64::MAX));
        }
    }
}

/// An `.index` whose checksums are right but whose entries do not match the log (forged, or
/// written by a buggy build): an entry pointing inside a batch, or at a later batch than its
/// offset says. Reads must stay right (the index is derived data, never trusted blindly).
#[test]
fn forged_index_entries_do_not_change_what_reads_return() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let cfg = TopicConfig::default().segment_bytes(4096).index_interval_bytes(300);
    let p = Partition::open_with(&dir, cfg.clone())?;
    fill(&p, 120)?;
    p.close()?;
    drop(p);
    let logs = segment_logs(&dir)?;
    let (base, log) = logs[0].clone();
    let next_base = logs[1].0;
    let starts = batch_starts(&std::fs::read(&log)?);
    let index_path = seg_path(&dir, base, "index");
    let pristine = std::fs::read(&index_path)?;
    let count = le_u32(&pristine, 64) as usize;
    assert!(count >= 3, "want index entries, got {count}");
    for (what, entry) in [("at a later batch", 1usize), ("inside a batch", 1), ("inside a batch", count - 1)] {
        let mut b = pristine.clone();
        let at = 80 + 8 * entry + 4;
        let pos = le_u32(&b, at) as usize;
        let new_pos = if what == "inside a batch" {
            pos + 1
        } else {
            // The start of the batch after the one the entry names.
            let i = starts.iter().position(|&s| s == pos).ok_or("entry is not at a batch start")?;
            starts[i + 1]
        };
        let next_entry_pos = if entry + 1 < count { le_u32(&b, at + 8) as usize } else { usize::MAX };
        assert!(new_pos < next_entry_pos, "keep the entries increasing");
        b[at..at + 4].copy_from_slice(&(new_pos as u32).to_le_bytes());
        reseal_index("x.index", &mut b);
        std::fs::write(&index_path, &b)?;
        let p = Partition::open_with(&dir, cfg.clone())?;
        for o in base..next_base {
            let r = p.read(o, 1).map_err(|e| format!("entry {entry} {what}: read({o}): {e}"))?;
            let first = r.iter().next().map(|r| r.to_owned()).ok_or("empty read")?;
            assert_eq!(first.offset, o, "entry {entry} {what}: read({o}) returned another record");
            assert_eq!(first.value, Some(value_of(o)));
        }
        check_all(&p, 0, 120)?;
        drop(p);
        std::fs::write(&index_path, &pristine)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fuzz-like: random and mutated bytes as segment, index and checkpoint files
// ---------------------------------------------------------------------------------------------

/// A valid set of files to mutate, taken from a real log on the simulated file system.
fn template() -> TestResult<Vec<(String, Vec<u8>)>> {
    let fs = SimFs::new();
    let p = Partition::options().fs(fs.clone()).config(small()).open("/t")?;
    fill(&p, 40)?;
    p.append(Record::new().key("k").header("h", "v").null_header("n").timestamp(5))?; // a tombstone
    p.close()?;
    drop(p);
    let mut out = Vec::new();
    use partlog::fs::FileSystem;
    for e in fs.read_dir(Path::new("/t"))? {
        let name = e.name.to_string_lossy().into_owned();
        if name != ".lock" {
            let bytes = fs.read_file(&Path::new("/t").join(&name))?;
            out.push((name, bytes));
        }
    }
    out.sort();
    Ok(out)
}

fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    match rng.below(9) {
        0 => {
            let n = rng.range(1, 8);
            for _ in 0..n {
                if !b.is_empty() {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => {
            let cut = rng.below(b.len() as u64 + 1) as usize;
            b.truncate(cut);
        }
        2 => {
            let n = rng.range(1, 300) as usize;
            b.extend(rng.bytes(n));
        }
        // Duplicate a slice somewhere else (replayed or misplaced sectors).
        3 if b.len() > 2 => {
            let from = rng.below(b.len() as u64) as usize;
            let len = rng.range(1, (b.len() - from) as u64) as usize;
            let chunk = b[from..from + len].to_vec();
            let to = rng.below(b.len() as u64) as usize;
            b.splice(to..to, chunk);
        }
        // Zero a range (lost sectors).
        4 if !b.is_empty() => {
            let from = rng.below(b.len() as u64) as usize;
            let len = rng.range(1, 512).min((b.len() - from) as u64) as usize;
            b[from..from + len].fill(0);
        }
        // Overwrite a little-endian field somewhere with an extreme value.
        5 if b.len() >= 8 => {
            let at = rng.below(b.len() as u64 - 7) as usize;
            let v = [0u64, 1, u32::MAX as u64, u64::MAX, 0x8000_0000, 47, 48][rng.below(7) as usize];
            let w = if rng.below(2) == 0 { 4 } else { 8 };
            b[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
        6 => {
            let n = rng.below(4096) as usize;
            *b = rng.bytes(n);
        }
        7 => b.clear(),
        _ => {}
    }
}

/// Recomputes the checksums of an `.index` or `.timeindex` image (formats in `src/segment`).
fn reseal_index(name: &str, b: &mut [u8]) {
    let (header_len, body_crc_at, header_crc_at) = if name.ends_with(".timeindex") {
        (32, 20, 28)
    } else if name.ends_with(".index") {
        (80, 68, 76)
    } else {
        return;
    };
    if b.len() < header_len {
        return;
    }
    let body = crc32fast::hash(&b[header_len..]);
    b[body_crc_at..body_crc_at + 4].copy_from_slice(&body.to_le_bytes());
    let head = crc32fast::hash(&b[..header_crc_at]);
    b[header_crc_at..header_crc_at + 4].copy_from_slice(&head.to_le_bytes());
}

/// Bounded, seeded fuzzing of the on-disk formats through the public API: every open returns
/// `Ok` or a typed error, and whatever opens can be read, appended to and closed without a
/// panic.
#[test]
fn fuzz_files_never_panic() -> TestResult {
    let s = seed("fuzz_files_never_panic");
    let template = template()?;
    let rounds: u64 = std::env::var("PARTLOG_FUZZ_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut opened = 0;
    for round in 0..rounds {
        let mut rng = Rng::new(s.wrapping_add(round));
        let fs = SimFs::new();
        let dir = PathBuf::from("/p");
        use partlog::fs::FileSystem;
        fs.create_dir_all(&dir)?;
        let mut files = template.clone();
        // Sometimes a pure-garbage segment, sometimes an extra one.
        if rng.below(4) == 0 {
            let n = rng.below(3000) as usize;
            files.push((format!("{:020}.log", rng.below(100)), rng.bytes(n)));
        }
        if rng.below(4) == 0 {
            let n = rng.below(200) as usize;
            files.push((format!("{:020}.index", rng.below(100)), rng.bytes(n)));
        }
        let victims = rng.range(1, 3);
        for _ in 0..victims {
            let i = rng.below(files.len() as u64) as usize;
            mutate(&mut rng, &mut files[i].1);
            // Half the time make a mutated index pass its checksums: indexes are derived data
            // and must never be trusted to point at the right bytes.
            if rng.below(2) == 0 {
                let (name, bytes) = &mut files[i];
                reseal_index(name, bytes);
            }
        }
        if rng.below(3) == 0 {
            files.retain(|(n, _)| n != CHECKPOINT);
        }
        for (name, bytes) in &files {
            fs.write_file(&dir.join(name), bytes)?;
        }
        let mode = if rng.below(2) == 0 { RecoveryMode::Strict } else { RecoveryMode::TruncateCorrupt };
        let opts = Partition::options().fs(fs.clone()).config(small()).recovery(mode);
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| exercise_with(opts, &dir, 3)));
        match r {
            Err(e) => {
                return Err(format!("round {round} (PARTLOG_SEED={s}): panicked: {}", panic_text(e)).into());
            }
            Ok(Ok(())) => opened += 1,
            Ok(Err(e)) => {
                // Typed errors only; Display must work.
                let _ = e.to_string();
                assert!(
                    matches!(
                        e,
                        Error::Corrupt { .. }
                            | Error::UnsupportedVersion { .. }
                            | Error::Io { .. }
                            | Error::OffsetOutOfRange { .. }
                    ),
                    "round {round}: unexpected error kind {e:?}"
                );
            }
        }
    }
    println!("{opened} of {rounds} mutated logs opened");
    assert!(opened > rounds / 4, "most mutated logs should still open ({opened} of {rounds})");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bad API input
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_batch_is_invalid_and_changes_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    assert!(matches!(p.append_batch(&[]), Err(Error::EmptyBatch)));
    assert_eq!(p.log_end_offset(), 0);
    fill(&p, 3)?;
    assert!(matches!(p.append_batch(&[]), Err(Error::EmptyBatch)));
    let r = p.append(Record::with_value("x").timestamp(i64::MIN));
    assert!(matches!(r, Err(Error::ReservedTimestamp { timestamp: i64::MIN })), "{r:?}");
    assert_eq!(p.log_end_offset(), 3);
    check_all(&p, 0, 3)
}

// Independent encoder of the documented batch format, to know sizes without asking partlog.
fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn bytes_len(b: Option<usize>) -> usize {
    match b {
        None => uvarint_len(zigzag(-1)),
        Some(n) => uvarint_len(zigzag(n as i64)) + n,
    }
}

/// Encoded size of a batch of records given as (key len, value len, ts − base ts), no headers.
fn batch_len(records: &[(Option<usize>, Option<usize>, i64)]) -> usize {
    let mut total = HEADER_LEN;
    for (delta, &(k, v, dts)) in records.iter().enumerate() {
        let body = 1 + uvarint_len(zigzag(dts)) + uvarint_len(delta as u64) + bytes_len(k) + bytes_len(v) + 1;
        total += uvarint_len(body as u64) + body;
    }
    total
}

#[test]
fn records_over_the_size_limit_are_refused_with_size_and_limit() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cfg = TopicConfig::default().max_message_bytes(1000);
    let p = Partition::open_with(tmp.path().join("p"), cfg)?;
    // The largest single record that fits, exactly.
    let mut fit = 0;
    for n in 0..1000 {
        if batch_len(&[(Some(1), Some(n), 0)]) <= 1000 {
            fit = n;
        }
    }
    assert_eq!(batch_len(&[(Some(1), Some(fit), 0)]), 1000, "pick a size that fills the limit exactly");
    let v = vec![7u8; fit];
    p.append(Record::new().key("k").value(v.as_slice()).timestamp(1))?;
    assert_eq!(p.segments()[0].size, 1000, "the size formula matches the stored batch");
    let v = vec![7u8; fit + 1];
    match p.append(Record::new().key("k").value(v.as_slice()).timestamp(1)) {
        Err(Error::RecordTooLarge { size, max }) => assert_eq!((size, max), (1001, 1000)),
        other => return Err(format!("expected RecordTooLarge, got {other:?}").into()),
    }
    // A batch of small records over the limit as a whole.
    let small_v = vec![1u8; 100];
    let recs: Vec<Record<'_>> = (0..12).map(|_| Record::with_value(small_v.as_slice()).timestamp(1)).collect();
    let want = batch_len(&vec![(None, Some(100), 0); 12]) as u64;
    match p.append_batch(&recs) {
        Err(Error::RecordTooLarge { size, max }) => assert_eq!((size, max), (want, 1000)),
        other => return Err(format!("expected RecordTooLarge, got {other:?}").into()),
    }
    assert_eq!(p.log_end_offset(), 1, "nothing of a refused append is written");
    assert_eq!(p.append(Record::with_value("ok").timestamp(1))?.offset, 1);

    // segment.bytes caps the batch size too.
    let p2 = Partition::open_with(tmp.path().join("q"), TopicConfig::default().segment_bytes(512))?;
    let v = vec![0u8; 600];
    match p2.append(Record::with_value(v.as_slice()).timestamp(1)) {
        Err(Error::RecordTooLarge { size, max }) => {
            assert_eq!((size, max), (batch_len(&[(None, Some(600), 0)]) as u64, 512))
        }
        other => return Err(format!("expected RecordTooLarge, got {other:?}").into()),
    }
    assert_eq!(p2.log_end_offset(), 0);
    Ok(())
}

#[test]
fn timestamps_outside_the_window_are_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let now = 1_700_000_000_000i64;
    let clock = ManualClock::new(now);
    let cfg = TopicConfig::default().timestamp_window(Some(1_000), Some(500));
    let p = Partition::options().config(cfg.clone()).clock(clock.clone()).open(tmp.path().join("p"))?;
    p.append(Record::with_value("edge-before").timestamp(now - 1_000))?;
    p.append(Record::with_value("edge-after").timestamp(now + 500))?;
    match p.append(Record::with_value("old").timestamp(now - 1_001)) {
        Err(Error::InvalidTimestamp { timestamp, now: n, bound, max_ms }) => {
            assert_eq!((timestamp, n, bound, max_ms), (now - 1_001, now, partlog::TimestampBound::Before, 1_000))
        }
        other => return Err(format!("expected InvalidTimestamp, got {other:?}").into()),
    }
    // One bad record fails the whole batch.
    let batch = [Record::with_value("fine").timestamp(now), Record::with_value("future").timestamp(now + 501)];
    match p.append_batch(&batch) {
        Err(Error::InvalidTimestamp { timestamp, now: n, bound, max_ms }) => {
            assert_eq!((timestamp, n, bound, max_ms), (now + 501, now, partlog::TimestampBound::After, 500))
        }
        other => return Err(format!("expected InvalidTimestamp, got {other:?}").into()),
    }
    assert_eq!(p.log_end_offset(), 2);
    // The window moves with the clock.
    clock.advance(10_000);
    assert!(matches!(p.append(Record::with_value("x").timestamp(now)), Err(Error::InvalidTimestamp { .. })));
    // No timestamp means "now"; LogAppendTime ignores the producer's.
    let at = p.append(Record::with_value("now"))?;
    assert_eq!(at.timestamp, now + 10_000);
    drop(p);
    let p = Partition::options()
        .config(cfg.timestamp_type(TimestampType::LogAppendTime))
        .clock(clock.clone())
        .open(tmp.path().join("q"))?;
    let at = p.append(Record::with_value("ancient").timestamp(0))?;
    assert_eq!(at.timestamp, now + 10_000);
    Ok(())
}

#[test]
fn reads_out_of_range_name_the_range() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open_with(tmp.path().join("p"), small())?;
    fill(&p, 50)?;
    p.advance_log_start(20)?;
    for bad in [0u64, 19, 51, 1_000, u64::MAX] {
        match p.read(bad, 100) {
            Err(Error::OffsetOutOfRange { requested, start, end }) => {
                assert_eq!((requested, start, end), (bad, 20, 50))
            }
            other => return Err(format!("read({bad}): expected OffsetOutOfRange, got {other:?}").into()),
        }
    }
    assert!(p.read(50, 100)?.is_empty(), "reading at the end is empty, not an error");
    assert_eq!(p.read(20, 1)?.iter().next().map(|r| r.offset()), Some(20));
    assert!(matches!(p.advance_log_start(51), Err(Error::OffsetOutOfRange { requested: 51, start: 20, end: 50 })));
    assert!(matches!(p.segment_indexes(12_345), Err(Error::OffsetOutOfRange { requested: 12_345, .. })));
    // The iterator starting below the start reports the error.
    let first = p.iter(5).next();
    assert!(matches!(first, Some(Err(Error::OffsetOutOfRange { requested: 5, start: 20, end: 50 }))), "{first:?}");
    Ok(())
}

#[test]
fn invalid_configs_name_the_key() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cases: Vec<(&str, TopicConfig)> = vec![
        ("segment.bytes", TopicConfig::default().segment_bytes(10)),
        ("segment.bytes", TopicConfig::default().segment_bytes(u32::MAX)),
        ("segment.ms", TopicConfig::default().segment_ms(0)),
        ("max.message.bytes", TopicConfig::default().max_message_bytes(u32::MAX)),
        ("index.interval.bytes", TopicConfig::default().index_interval_bytes(u32::MAX)),
        ("segment.index.bytes", TopicConfig::default().segment_index_bytes(3)),
        ("segment.ms", TopicConfig::default().segment_ms(1 << 63)),
        ("num.partitions", TopicConfig::default().partitions(0)),
        ("max.compaction.lag.ms", TopicConfig::default().min_compaction_lag_ms(10).max_compaction_lag_ms(Some(5))),
        ("min.cleanable.dirty.ratio", TopicConfig::default().min_cleanable_dirty_ratio(1.5)),
        ("retention.ms", TopicConfig::default().retention_ms(Some(1 << 63))),
    ];
    for (i, (key, cfg)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("p{i}"));
        match Partition::open_with(&dir, cfg.clone()) {
            Err(Error::InvalidConfig { key: k, .. }) => assert_eq!(k, key),
            other => return Err(format!("{key}: expected InvalidConfig, got {other:?}").into()),
        }
        // set_config on an open log refuses it too and keeps the old configuration.
        let p = Partition::open_with(&dir, small())?;
        match p.set_config(cfg) {
            Err(Error::InvalidConfig { key: k, .. }) => assert_eq!(k, key),
            other => return Err(format!("{key}: set_config: expected InvalidConfig, got {other:?}").into()),
        }
        assert_eq!(p.config(), small());
    }
    for (key, value) in
        [("segment.bytes", "-1"), ("retention.ms", "soon"), ("no.such.key", "1"), ("flush.messages", "0")]
    {
        match TopicConfig::default().set(key, value) {
            Err(Error::InvalidConfig { key: k, value: v, .. }) => assert_eq!((k.as_str(), v.as_str()), (key, value)),
            other => return Err(format!("{key}={value}: expected InvalidConfig, got {other:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn a_closed_or_locked_log_refuses_work() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open(&dir)?;
    fill(&p, 3)?;
    assert!(matches!(Partition::open(&dir), Err(Error::Locked { path }) if path == dir));
    let clone = p.clone();
    p.close()?;
    assert!(matches!(clone.append(Record::with_value("x")), Err(Error::Closed)));
    assert!(matches!(clone.read(0, 10), Err(Error::Closed)));
    assert!(matches!(clone.truncate_to(0), Err(Error::Closed)));
    drop((p, clone));
    let p = Partition::open(&dir)?;
    check_all(&p, 0, 3)?;
    Ok(())
}
