//! Bounded work on hostile input: a damaged length field in front of a tail of 4.5 GiB —
//! sparse (a hole), fallocated (allocated, never written) or written zeros — must not make
//! open read what the tail claims. Bytes read through the I/O seam are counted (a bound on
//! work that does not depend on the machine, unlike a time limit).

#![cfg(target_os = "linux")]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use partlog::{Partition, Record};

mod common;
mod spec;
use common::counting_fs::CountingFs;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TAIL: u64 = (9 << 30) / 2; // 4.5 GiB: beyond any u32 position

#[derive(Clone, Copy, Debug)]
enum Tail {
    Sparse,
    Fallocated,
    /// Written zeros of this many bytes (real data, so reading it is fair, once).
    Written(u64),
}

/// Ten records, closed, then a hostile header claiming 496 MiB and the tail; no checkpoint.
/// Returns the bytes open read, or `None` when the file system cannot make the tail.
fn bytes_read_at_open(tail: Tail) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let p = Partition::open(&dir)?;
    for i in 0..10 {
        p.append(Record::new().key("k").value(format!("value-{i}")))?;
    }
    p.close()?;
    drop(p);
    let log = dir.join(spec::seg_name(0, "log"));
    let len = std::fs::metadata(&log)?.len();
    let mut h = [0u8; spec::HEADER_LEN];
    h[0..4].copy_from_slice(&0x1F00_0000u32.to_le_bytes());
    h[8] = spec::MAGIC;
    h[16..24].copy_from_slice(&10u64.to_le_bytes());
    h[40..48].copy_from_slice(&i64::MIN.to_le_bytes());
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&log)?;
        f.write_all_at(&h, len)?;
        let at = len + h.len() as u64;
        match tail {
            Tail::Sparse => f.set_len(at + TAIL)?,
            Tail::Fallocated => {
                // SAFETY: plain syscall on an owned descriptor.
                let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, at as libc::off_t, TAIL as libc::off_t) };
                if rc != 0 {
                    println!("SKIP: fallocate of 4.5 GiB: {}", std::io::Error::last_os_error());
                    return Ok(None);
                }
            }
            Tail::Written(n) => {
                let zeros = vec![0u8; 1 << 20];
                let mut pos = at;
                while pos < at + n {
                    f.write_all_at(&zeros, pos)?;
                    pos += zeros.len() as u64;
                }
            }
        }
    }
    std::fs::remove_file(dir.join("partition.checkpoint"))?;
    let fs = Arc::new(CountingFs::default());
    let read = Arc::clone(&fs.read);
    let p = Partition::options().fs(fs).mmap_reads(false).open(&dir)?;
    let n = read.load(Ordering::Relaxed);
    // The hostile header and its tail are a torn tail: cut, the ten records intact.
    assert_eq!(p.log_end_offset(), 10, "{tail:?}");
    let vals: Vec<_> = p.iter(0).map(|r| r.map(|r| r.value)).collect::<Result<_, _>>()?;
    assert_eq!(vals.len(), 10);
    assert_eq!(std::fs::metadata(&log)?.len(), len, "{tail:?}: the tail was not cut");
    Ok(Some(n))
}

/// Holes are skipped (SEEK_DATA / SEEK_HOLE): open reads a scan buffer and the pages with
/// data, not 4.5 GiB.
#[test]
fn sparse_tail_of_4_5_gib_is_not_read() -> TestResult {
    let n = bytes_read_at_open(Tail::Sparse)?.ok_or("no sparse file")?;
    assert!(n < 4 << 20, "open read {n} bytes");
    Ok(())
}

/// A fallocated tail (blocks reserved, never written: what the preallocation of the active
/// segment leaves). `SEEK_DATA` reports it as a hole only until readahead brings its pages
/// into the page cache, which the first scan does: before the fix open read all 4.5 GiB.
#[test]
fn fallocated_tail_of_4_5_gib_is_not_read() -> TestResult {
    if let Some(n) = bytes_read_at_open(Tail::Fallocated)? {
        assert!(n < 4 << 20, "open read {n} bytes");
    }
    Ok(())
}

/// Written zeros are data, but a whole zero page after the damage in the last segment makes
/// it a torn tail whatever follows: the search stops there.
#[test]
fn written_zero_tail_is_not_read_to_its_end() -> TestResult {
    let tail = 48 << 20;
    let n = bytes_read_at_open(Tail::Written(tail))?.ok_or("no file")?;
    assert!(n < 4 << 20, "open read {n} bytes of a {tail}-byte tail");
    Ok(())
}

/// Punches a hole over the whole 64 KiB-aligned blocks of `[from, to)` of `file`. `false` when
/// the file system cannot punch holes or does not report them to `SEEK_HOLE`.
fn punch_hole(file: &std::path::Path, from: u64, to: u64) -> Result<bool, Box<dyn std::error::Error>> {
    use std::os::fd::AsRawFd;
    const BLOCK: u64 = 64 << 10;
    let start = from.div_ceil(BLOCK) * BLOCK;
    let end = to / BLOCK * BLOCK;
    assert!(end > start + BLOCK, "range too small to punch");
    let f = std::fs::OpenOptions::new().write(true).open(file)?;
    let fd = f.as_raw_fd();
    // SAFETY: plain syscalls on an owned descriptor.
    let rc = unsafe {
        libc::fallocate(
            fd,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            start as libc::off_t,
            (end - start) as libc::off_t,
        )
    };
    if rc != 0 {
        println!("SKIP: punching a hole: {}", std::io::Error::last_os_error());
        return Ok(false);
    }
    f.sync_all()?;
    // SAFETY: as above.
    let hole = unsafe { libc::lseek(fd, start as libc::off_t, libc::SEEK_HOLE) };
    if hole < 0 || hole as u64 != start {
        println!("SKIP: the file system does not report the punched hole (SEEK_HOLE at {start} gave {hole})");
        return Ok(false);
    }
    Ok(true)
}

/// A reopened partition, the big value and its batch's position, and the directory.
struct Punched {
    p: Partition,
    big_value: Vec<u8>,
    at: u64,
    _tmp: tempfile::TempDir,
}

/// Four records, the second a 3 MiB value of `fill` bytes in its own batch, closed; then a
/// hole punched inside that batch and the checkpoint removed, so that open re-validates every
/// batch. `None` when the file system cannot punch and report holes.
fn punched_big_batch(fill: u8) -> Result<Option<Punched>, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let cfg = partlog::TopicConfig::default().max_message_bytes(8 << 20);
    let big_value = vec![fill; 3 << 20];
    let p = Partition::open_with(&dir, cfg.clone())?;
    p.append(Record::new().key("a").value("before"))?;
    let big = p.append(Record::new().key("b").value(big_value.clone()))?.offset;
    for key in ["c", "d"] {
        p.append(Record::new().key(key).value("after"))?;
    }
    let seg = p.segment(0)?;
    let big_batch =
        seg.batches().map(|b| b.map(|b| *b.info())).find(|b| b.as_ref().is_ok_and(|b| b.base_offset == big));
    let big_batch = big_batch.ok_or("no such batch")??;
    drop(seg);
    p.close()?;
    drop(p);
    let log = dir.join(spec::seg_name(0, "log"));
    let (from, to) = (big_batch.position, big_batch.position + u64::from(big_batch.size));
    if !punch_hole(&log, from + (256 << 10), to - (256 << 10))? {
        return Ok(None);
    }
    std::fs::remove_file(dir.join("partition.checkpoint"))?;
    let p = Partition::options().config(cfg).open(&dir)?;
    Ok(Some(Punched { p, big_value, at: big_batch.position, _tmp: tmp }))
}

/// A valid batch larger than the scan's read size whose zero blocks the file system keeps as
/// holes (ZFS with compression stores every block of zeros so; here a punched hole stands in)
/// is valid: the holes are hashed as the zeros they read as. Before, any hole inside a large
/// claimed batch made it a checksum failure without reading it, and the zero pages the hole
/// reads as made it look like a torn tail: open cut that acknowledged batch and the two after it.
#[test]
fn a_large_valid_batch_whose_zero_blocks_are_holes_is_valid() -> TestResult {
    let Some(Punched { p, big_value: zeros, .. }) = punched_big_batch(0)? else { return Ok(()) };
    let r = p.recovery_report();
    assert!(r.tail_cut.is_none() && r.segments_revalidated == 1, "{r:?}");
    assert_eq!(p.log_end_offset(), 4);
    let vals: Vec<Option<Vec<u8>>> = p.iter(0).map(|r| r.map(|r| r.value)).collect::<Result<_, _>>()?;
    assert_eq!(vals[1].as_deref(), Some(&zeros[..]));
    assert_eq!(vals[3].as_deref(), Some(&b"after"[..]));
    let v = p.segment(0)?.verify()?;
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    Ok(())
}

/// The same hole in a batch whose bytes were not zeros (blocks lost, as a power loss leaves
/// unwritten ranges) is still damage: the zeros it reads as fail the checksum.
#[test]
fn a_hole_in_a_large_batch_of_other_bytes_is_still_damage() -> TestResult {
    let Some(Punched { p, at, .. }) = punched_big_batch(0xAB)? else { return Ok(()) };
    let r = p.recovery_report();
    let cut = r.tail_cut.ok_or_else(|| format!("damage not found: {r:?}"))?;
    assert_eq!((cut.at_byte, cut.reason), (at, partlog::CorruptKind::BatchChecksum), "{r:?}");
    assert_eq!(p.log_end_offset(), 1);
    Ok(())
}
