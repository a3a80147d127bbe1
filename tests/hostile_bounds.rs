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
