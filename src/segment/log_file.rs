//! Scanning a `.log` file: validating batches, rebuilding indexes, and telling a torn tail from
//! damage in the middle of the log.

use std::path::Path;

use super::{IndexTracker, NO_TS, OffsetIndex, SegMeta, TimeIndex};
use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::fs::FileHandle;

/// Bytes read per I/O while scanning.
const CHUNK: usize = 1 << 20;

/// Where and why a scan stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop {
    pub pos: u64,
    pub kind: CorruptKind,
}

/// The result of scanning a segment.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Summary of the valid prefix (`size` = its length).
    pub meta: SegMeta,
    pub index: OffsetIndex,
    pub time: TimeIndex,
    pub tracker: IndexTracker,
    /// Set when bytes after `meta.size` (and before the scanned end) are not a valid batch.
    pub stop: Option<Stop>,
}

/// Validates every batch of `[0, end)` and rebuilds the indexes. Stops at the first invalid
/// batch (reported in [`Scan::stop`]).
pub(crate) fn scan(file: &dyn FileHandle, path: &Path, base: u64, end: u64, interval: u32) -> Result<Scan> {
    let mut meta = SegMeta::empty(base);
    let mut index = OffsetIndex::new(base);
    let mut time = TimeIndex::new(base);
    let mut tracker = IndexTracker { bytes_since_entry: 0, max_ts: NO_TS, max_ts_offset: base };
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_pos = 0u64; // file position of buf[0]
    let mut pos = 0u64;
    let mut stop = None;
    while pos < end {
        let left = end - pos;
        // Make sure the header is in the buffer.
        if !in_buf(&buf, buf_pos, pos, HEADER_LEN.min(left as usize)) {
            fill(file, path, &mut buf, &mut buf_pos, pos, CHUNK.min(left as usize))?;
        }
        if left < HEADER_LEN as u64 {
            stop = Some(Stop { pos, kind: CorruptKind::BatchLength });
            break;
        }
        let off = (pos - buf_pos) as usize;
        let header = match BatchHeader::parse(&buf[off..], usize::try_from(left).unwrap_or(usize::MAX)) {
            Ok(h) => h,
            Err(kind) => {
                stop = Some(Stop { pos, kind });
                break;
            }
        };
        let len = header.length as usize;
        let checked = if len > CHUNK {
            // A large (or hostile) length: check it piece by piece, never buffering it whole.
            verify_streaming(file, path, pos, &header, &buf[off..])?
        } else {
            if !in_buf(&buf, buf_pos, pos, len) {
                fill(file, path, &mut buf, &mut buf_pos, pos, CHUNK.min(left as usize))?;
            }
            let off = (pos - buf_pos) as usize;
            batch::verify(&buf[off..off + len]).map(|_| ())
        };
        if let Err(kind) = checked {
            stop = Some(Stop { pos, kind });
            break;
        }
        if header.base_offset < meta.next_offset || header.last_offset() - base > u64::from(u32::MAX) {
            stop = Some(Stop { pos, kind: CorruptKind::OffsetOrder });
            break;
        }
        tracker.on_batch(pos, &header, interval, &mut index, &mut time);
        if meta.records == 0 && meta.first_ts == NO_TS {
            meta.first_ts = header.base_timestamp;
        }
        meta.records += u64::from(header.record_count);
        meta.next_offset = header.next_offset();
        pos += len as u64;
        meta.size = pos;
    }
    meta.max_ts = tracker.max_ts;
    meta.max_ts_offset = tracker.max_ts_offset;
    Ok(Scan { meta, index, time, tracker, stop })
}

/// Like [`scan`], for a sealed segment whose whole length must be valid.
pub(crate) fn rebuild(file: &dyn FileHandle, path: &Path, base: u64, end: u64, interval: u32) -> Result<Scan> {
    let mut s = scan(file, path, base, end, interval)?;
    if let Some(stop) = s.stop {
        return Err(Error::corrupt(path, stop.pos, stop.kind));
    }
    s.tracker.finish(&mut s.time);
    Ok(s)
}

/// Walks the batches in `[from, end)` (CRC-checked, offsets increasing) and returns the next
/// offset after the last one; `None` if the range is empty or anything in it is invalid.
pub(crate) fn next_offset_of_range(file: &dyn FileHandle, path: &Path, from: u64, end: u64) -> Result<Option<u64>> {
    let mut pos = from;
    let mut next: Option<u64> = None;
    let mut hdr = [0u8; HEADER_LEN];
    while pos < end {
        if end - pos < HEADER_LEN as u64 {
            return Ok(None);
        }
        file.read_exact_at(&mut hdr, pos).at(path)?;
        let Ok(h) = BatchHeader::parse(&hdr, usize::try_from(end - pos).unwrap_or(usize::MAX)) else { return Ok(None) };
        if next.is_some_and(|n| h.base_offset < n) || verify_streaming(file, path, pos, &h, &hdr)?.is_err() {
            return Ok(None);
        }
        next = Some(h.next_offset());
        pos += u64::from(h.length);
    }
    Ok(next)
}

/// Checks the CRC of the batch at `pos` by reading it in [`CHUNK`]-sized pieces. `known` holds
/// the batch's first bytes where the caller has them already: they are hashed, not re-read.
///
/// Ranges the file system reports as holes are hashed as the zeros they read as, without
/// reading them: a claimed batch over a sparse tail costs a few `lseek`s, not its length, and a
/// valid batch whose zero blocks the file system stores as holes (ZFS with compression does)
/// checks exactly as when they are read. The holes are mapped before anything is read, so pages
/// that readahead brings into the page cache meanwhile cannot turn a hole into data to read.
fn verify_streaming(
    file: &dyn FileHandle,
    path: &Path,
    pos: u64,
    header: &BatchHeader,
    known: &[u8],
) -> Result<std::result::Result<(), CorruptKind>> {
    let len = u64::from(header.length);
    let end = pos + len;
    let mut hasher = crc32fast::Hasher::new();
    let known = &known[..known.len().min(usize::try_from(len).unwrap_or(usize::MAX))];
    if let Some(rest) = known.get(batch::OFF_MAGIC..) {
        hasher.update(rest);
    }
    let mut at = pos + known.len().max(batch::OFF_MAGIC) as u64;
    // A small batch is read whole: cheaper than asking where its holes are.
    let holes = if len > CHUNK as u64 { holes_in(file, path, at, end)? } else { Vec::new() };
    let mut buf = Vec::new();
    for &(hole, data) in holes.iter().chain(std::iter::once(&(end, end))) {
        while at < hole {
            let n = usize::try_from((hole - at).min(CHUNK as u64)).unwrap_or(CHUNK);
            buf.resize(n, 0);
            file.read_exact_at(&mut buf, at).at(path)?;
            hasher.update(&buf);
            at += n as u64;
        }
        update_zeros(&mut hasher, data - hole);
        at = data;
    }
    Ok(if hasher.finalize() == header.crc { batch::check_features(header) } else { Err(CorruptKind::BatchChecksum) })
}

/// The holes of `[from, to)`, as `(start, end)` ranges in file order, clipped to the range.
fn holes_in(file: &dyn FileHandle, path: &Path, from: u64, to: u64) -> Result<Vec<(u64, u64)>> {
    let mut holes = Vec::new();
    let mut at = from;
    while at < to {
        let hole = file.hole_at_or_after(at).at(path)?.max(at);
        if hole >= to {
            break;
        }
        // No data after the hole: it runs to the end of the file, and a range past the end
        // is read (and fails), never taken for zeros.
        let data = match file.data_at_or_after(hole).at(path)? {
            Some(d) => d,
            None => file.len().at(path)?,
        };
        let data = data.clamp(hole, to);
        if data == hole {
            // No hole information after all (a file system that reports data where it said
            // a hole starts): read the rest.
            break;
        }
        holes.push((hole, data));
        at = data;
    }
    Ok(holes)
}

/// Feeds `n` zero bytes to `hasher` without hashing them one by one: CRC combination of runs
/// of 1, 2, 4, … zeros, O(log n) steps.
fn update_zeros(hasher: &mut crc32fast::Hasher, mut n: u64) {
    let mut run = crc32fast::Hasher::new();
    run.update(&[0]);
    while n > 0 {
        if n & 1 == 1 {
            hasher.combine(&run);
        }
        n >>= 1;
        if n > 0 {
            let same = run.clone();
            run.combine(&same);
        }
    }
}

fn in_buf(buf: &[u8], buf_pos: u64, pos: u64, n: usize) -> bool {
    pos >= buf_pos && pos - buf_pos + n as u64 <= buf.len() as u64
}

fn fill(file: &dyn FileHandle, path: &Path, buf: &mut Vec<u8>, buf_pos: &mut u64, pos: u64, n: usize) -> Result<()> {
    buf.clear();
    buf.resize(n, 0);
    file.read_exact_at(buf, pos).at(path)?;
    *buf_pos = pos;
    Ok(())
}

/// Bytes of claimed batches [`valid_batch_after`] checksums before it gives up and assumes
/// valid data may follow (the conservative answer).
const RESYNC_BUDGET: u64 = 256 << 20;

/// Whether any valid batch continuing the log (base offset ≥ `next_offset`) starts anywhere in
/// `(from, end)`: the difference between a torn tail (nothing valid follows; safe to cut) and
/// damage in the middle of the log (valid data follows; cutting would lose it). When the tail
/// is too hostile to search within a fixed budget, the answer is `Some(from)`: treat as damage.
///
/// With `stop_at_zero_page` (the last segment, where a whole zero page between the damage and
/// valid data makes it a torn tail anyway, see `recovery::tail_verdict`) the search ends at
/// the first whole 4 KiB page of zeros: what lies beyond cannot change the verdict. Holes are
/// skipped without reading, but a zero range that reads as data — written zeros, or a
/// preallocated range whose pages readahead brought into the page cache, which ext4 then
/// reports to `SEEK_DATA` as data — would otherwise be read to its end (4.5 GiB took 23 s).
pub(crate) fn valid_batch_after(
    file: &dyn FileHandle,
    path: &Path,
    from: u64,
    end: u64,
    next_offset: u64,
    stop_at_zero_page: bool,
) -> Result<Option<u64>> {
    let mut start = from + 1;
    let mut buf = vec![0u8; CHUNK + HEADER_LEN];
    let mut spent = 0u64;
    while start + HEADER_LEN as u64 <= end {
        // Holes hold no batch: jump over them without reading.
        match file.data_at_or_after(start).at(path)? {
            Some(d) if d > start => {
                start = d;
                continue;
            }
            Some(_) => {}
            None => break,
        }
        // ... and never read into one (a header needs its bytes, so keep a header's worth).
        let data_end = file.hole_at_or_after(start).at(path)?.max(start + HEADER_LEN as u64);
        let n = usize::try_from((end.min(data_end) - start).min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = &mut buf[..n];
        file.read_exact_at(chunk, start).at(path)?;
        let zero_page = if stop_at_zero_page { first_zero_page(chunk, start, from) } else { None };
        let last = zero_page.unwrap_or(n.saturating_sub(HEADER_LEN)).min(n.saturating_sub(HEADER_LEN));
        for i in 0..=last {
            // Cheap filters first: magic byte, then a plausible header.
            if chunk[i + batch::OFF_MAGIC] != batch::MAGIC {
                continue;
            }
            let pos = start + i as u64;
            let left = usize::try_from(end - pos).unwrap_or(usize::MAX);
            let Ok(h) = BatchHeader::parse(&chunk[i..], left) else { continue };
            if h.base_offset < next_offset || h.base_offset - next_offset > u64::from(u32::MAX) {
                continue;
            }
            spent += u64::from(h.length);
            if spent > RESYNC_BUDGET {
                return Ok(Some(from));
            }
            if verify_streaming(file, path, pos, &h, &chunk[i..])?.is_ok() {
                return Ok(Some(pos));
            }
        }
        if zero_page.is_some() {
            return Ok(None);
        }
        start += (last + 1) as u64;
    }
    Ok(None)
}

/// The index in `chunk` (which starts at file position `start`) of the first whole 4 KiB page
/// of zeros that is aligned in the file and lies at or after `from`.
fn first_zero_page(chunk: &[u8], start: u64, from: u64) -> Option<usize> {
    const PAGE: u64 = 4096;
    let mut page = start.max(from).div_ceil(PAGE) * PAGE;
    while page + PAGE <= start + chunk.len() as u64 {
        let i = usize::try_from(page - start).ok()?;
        if chunk.get(i..i + PAGE as usize)?.iter().all(|&b| b == 0) {
            return Some(i);
        }
        page += PAGE;
    }
    None
}

/// Whether `[from, to)` contains a whole 4 KiB page (aligned in the file) of zeros: the mark
/// of writes that never reached the disk before a power loss, as opposed to bit rot.
pub(crate) fn has_zero_page(file: &dyn FileHandle, path: &Path, from: u64, to: u64) -> Result<bool> {
    const PAGE: u64 = 4096;
    let mut page = from.div_ceil(PAGE) * PAGE;
    let mut buf = vec![0u8; PAGE as usize];
    while page + PAGE <= to {
        file.read_exact_at(&mut buf, page).at(path)?;
        if buf.iter().all(|&b| b == 0) {
            return Ok(true);
        }
        page += PAGE;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::update_zeros;

    /// Zeros fed by combination hash exactly as zeros fed byte by byte, after any prefix.
    #[test]
    fn zero_runs_hash_like_written_zeros() {
        for n in [0usize, 1, 2, 3, 7, 8, 4095, 4096, 65_537, (1 << 20) + 3] {
            for prefix in [&b""[..], b"x", b"partlog batch"] {
                let mut want = crc32fast::Hasher::new();
                want.update(prefix);
                want.update(&vec![0u8; n]);
                let mut got = crc32fast::Hasher::new();
                got.update(prefix);
                update_zeros(&mut got, n as u64);
                got.update(b"tail");
                want.update(b"tail");
                assert_eq!(got.finalize(), want.finalize(), "{n} zeros after {prefix:?}");
            }
        }
    }
}
