//! The file-level work of a read-only partition: listing the directory, opening a segment
//! read-only, validating it as far as its valid batches go, and reading batches out of its
//! valid prefix. Nothing here writes; every batch is checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::batch::{self, BatchHeader, HEADER_LEN, RecordIter};
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::fs::{EntryKind, FileHandle, FileId, FileSystem, OpenMode};
use crate::partition::Records;
use crate::partition::checkpoint::{self, Checkpoint};
use crate::segment::files::{self, Ext, Parsed};
use crate::segment::{IndexTracker, NO_TS, OffsetIndex, Opened, SegMeta, SegmentInfo, TimeIndex};

/// Bytes read per I/O while scanning a segment.
const CHUNK: usize = 1 << 20;
/// The first read after a probe found a header.
const PROBE_STEP: usize = 4 << 10;
/// Bytes read past the budget on a read's first I/O (as the writer's read path does).
const LOOKAHEAD: usize = 1 << 10;
/// Largest index file read.
const MAX_INDEX_FILE: u64 = 256 << 20;

/// What one listing of the directory found.
#[derive(Debug, Clone, Default)]
pub(super) struct Listing {
    /// Base offsets of the segments, ascending; the last one is the tail (the active
    /// segment, as far as this listing knows).
    pub(super) bases: Vec<u64>,
    /// The log start offset: the checkpoint's, or the first segment's base if higher.
    pub(super) log_start: u64,
}

/// An open segment file and what has been validated of it.
#[derive(Debug)]
pub(super) struct Seg {
    pub(super) base: u64,
    pub(super) path: PathBuf,
    pub(super) id: Option<FileId>,
    pub(super) opened: Arc<Opened>,
    pub(super) scan: Mutex<Scan>,
}

#[derive(Debug)]
pub(super) struct Scan {
    /// Summary of the prefix `[0, meta.size)` known to hold valid batches.
    pub(super) meta: SegMeta,
    pub(super) tracker: IndexTracker,
}

pub(super) fn info(m: &SegMeta, active: bool) -> SegmentInfo {
    SegmentInfo {
        base_offset: m.base,
        end_offset: m.next_offset,
        size: m.size,
        record_count: m.records,
        first_timestamp: (m.first_ts != NO_TS).then_some(m.first_ts),
        max_timestamp: (m.max_ts != NO_TS).then_some(m.max_ts),
        active,
    }
}

/// Lists the partition directory: the segments' base offsets (without those wholly below the
/// log start, which the writer is deleting or will delete at its next open) and the log start.
pub(super) fn list(fs: &dyn FileSystem, dir: &Path) -> Result<Listing> {
    let mut bases = Vec::new();
    for e in fs.read_dir(dir).at(dir)? {
        let Some(name) = e.name.to_str() else { continue };
        // Indexes, files in transit (`.cleaned`, `.deleted`), temporary and foreign files are
        // not segments.
        if let Some(Parsed::SegmentState(base, Ext::Log)) = files::parse(name) {
            if e.kind != EntryKind::File || base > batch::MAX_OFFSET {
                // Never followed, as the writer refuses it too.
                return Err(Error::corrupt(&dir.join(name), 0, CorruptKind::Metadata));
            }
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let cp_start = read_checkpoint(fs, dir)?.map(|c| c.log_start);
    let mut log_start = cp_start.unwrap_or(0);
    if let Some(&first) = bases.first() {
        log_start = log_start.max(first);
    }
    while bases.len() > 1 && bases.get(1).is_some_and(|&b| b <= log_start) {
        bases.remove(0);
    }
    Ok(Listing { bases, log_start })
}

fn read_checkpoint(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Checkpoint>> {
    let p = dir.join(checkpoint::FILE_NAME);
    let Some(buf) = read_small(fs, &p, 1 << 30)? else { return Ok(None) };
    match Checkpoint::decode(&buf) {
        Ok(c) => Ok(Some(c)),
        Err(checkpoint::Bad::Version(v)) => {
            Err(Error::UnsupportedVersion { path: p, found: u32::from(v), supported: u32::from(checkpoint::VERSION) })
        }
        Err(checkpoint::Bad::Damaged) => Ok(None),
    }
}

/// A whole small file; `None` when it does not exist or is larger than `max`.
fn read_small(fs: &dyn FileSystem, p: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let f = match fs.open(p, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(p, e)),
    };
    let len = f.len().at(p)?;
    if len > max {
        return Ok(None);
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let n = read_upto(&*f, &mut buf, 0).at(p)?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// Reads into `buf` at `pos` until it is full or the file ends; returns the bytes read.
fn read_upto(f: &dyn FileHandle, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], pos + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Opens segment `base` read-only; `None` when its file is gone (renamed or deleted since the
/// listing). A sealed segment whose index files are intact and describe exactly its file is
/// taken at their word (its batches are still checked as they are read); any other starts
/// unvalidated.
pub(super) fn open_seg(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<Option<Seg>> {
    let path = files::path(dir, base, Ext::Log);
    let file = match fs.open(&path, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let id = file.file_id().at(&path)?;
    let len = file.len().at(&path)?;
    let (meta, index, time) = match load_indexes(fs, dir, base) {
        Some((m, i, t)) if m.size == len && m.size <= u64::from(u32::MAX) && m.next_offset >= m.base => (m, i, t),
        _ => (SegMeta::empty(base), OffsetIndex::new(base), TimeIndex::new(base)),
    };
    let tracker = IndexTracker::new(&meta, &index);
    let opened = Opened::new(file, index, time);
    Ok(Some(Seg { base, path, id, opened, scan: Mutex::new(Scan { meta, tracker }) }))
}

/// Both index files of segment `base`, if intact and describing the same segment.
fn load_indexes(fs: &dyn FileSystem, dir: &Path, base: u64) -> Option<(SegMeta, OffsetIndex, TimeIndex)> {
    let ibuf = read_small(fs, &files::path(dir, base, Ext::Index), MAX_INDEX_FILE).ok()??;
    let (meta, index) = OffsetIndex::decode(&ibuf)?;
    if meta.base != base {
        return None;
    }
    let tbuf = read_small(fs, &files::path(dir, base, Ext::TimeIndex), MAX_INDEX_FILE).ok()??;
    let time = TimeIndex::decode(&tbuf, base, meta.next_offset)?;
    Some((meta, index, time))
}

/// Validates `seg` from the end of its known-valid prefix as far as valid batches go,
/// extending its summary and in-memory indexes. Returns the file's length: bytes between the
/// valid end and it are a batch being written, preallocated zeros or (in a sealed segment)
/// damage.
pub(super) fn extend(seg: &Seg, interval: u32) -> Result<u64> {
    let mut sc = seg.scan.lock();
    let file = &*seg.opened.file;
    let len = file.len().at(&seg.path)?;
    let mut pos = sc.meta.size;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_pos = pos;
    // The first read only probes for a header (past the end of an active segment lie
    // preallocated zeros, which a follower would otherwise copy at every poll); later reads
    // grow while they keep finding batches.
    let mut step = HEADER_LEN;
    while len.saturating_sub(pos) >= HEADER_LEN as u64 {
        let left = len - pos;
        let have = |buf: &Vec<u8>, buf_pos: u64, n: u64| pos >= buf_pos && pos + n <= buf_pos + buf.len() as u64;
        if !have(&buf, buf_pos, HEADER_LEN as u64) {
            buf.resize(usize::try_from(left.min(step as u64)).unwrap_or(step), 0);
            let n = read_upto(file, &mut buf, pos).at(&seg.path)?;
            buf.truncate(n);
            buf_pos = pos;
            step = (step.max(PROBE_STEP) * 2).min(CHUNK);
            if n < HEADER_LEN {
                break;
            }
        }
        let off = usize::try_from(pos - buf_pos).unwrap_or(usize::MAX);
        let Ok(h) = BatchHeader::parse(buf.get(off..).unwrap_or(&[]), usize::try_from(left).unwrap_or(usize::MAX))
        else {
            break;
        };
        let blen = u64::from(h.length);
        if !have(&buf, buf_pos, blen) {
            let want = left.min(blen.max(step as u64));
            buf.resize(usize::try_from(want).unwrap_or(CHUNK), 0);
            let n = read_upto(file, &mut buf, pos).at(&seg.path)?;
            buf.truncate(n);
            buf_pos = pos;
            step = (step.max(PROBE_STEP) * 2).min(CHUNK);
            if (n as u64) < blen {
                break;
            }
        }
        let off = usize::try_from(pos - buf_pos).unwrap_or(usize::MAX);
        let Some(bytes) = buf.get(off..off + h.length as usize) else { break };
        if batch::verify(bytes).is_err()
            || h.base_offset < sc.meta.next_offset
            || h.last_offset() - seg.base > u64::from(u32::MAX)
        {
            break;
        }
        let Scan { meta, tracker } = &mut *sc;
        {
            let mut index = seg.opened.index.write();
            let mut time = seg.opened.time.write();
            tracker.on_batch(pos, &h, interval, &mut index, &mut time);
        }
        if meta.records == 0 && meta.first_ts == NO_TS {
            meta.first_ts = h.base_timestamp;
        }
        meta.records += u64::from(h.record_count);
        meta.next_offset = h.next_offset();
        meta.max_ts = tracker.max_ts;
        meta.max_ts_offset = tracker.max_ts_offset;
        pos += blen;
        meta.size = pos;
    }
    Ok(len)
}

/// What is wrong at `pos` of a segment (for the error of a damaged sealed segment).
pub(super) fn stop_kind(seg: &Seg, pos: u64, len: u64) -> Result<CorruptKind> {
    let left = len - pos;
    if left < HEADER_LEN as u64 {
        return Ok(CorruptKind::BatchLength);
    }
    let mut hdr = [0u8; HEADER_LEN];
    seg.opened.file.read_exact_at(&mut hdr, pos).at(&seg.path)?;
    let h = match BatchHeader::parse(&hdr, usize::try_from(left).unwrap_or(usize::MAX)) {
        Ok(h) => h,
        Err(k) => return Ok(k),
    };
    let mut bytes = vec![0u8; h.length as usize];
    seg.opened.file.read_exact_at(&mut bytes, pos).at(&seg.path)?;
    Ok(batch::verify(&bytes).err().unwrap_or(CorruptKind::OffsetOrder))
}

/// Where to start scanning for `entry`'s target: the entry's position when the batch there
/// really has the entry's base offset, otherwise the segment's start.
pub(super) fn start_position(file: &dyn FileHandle, entry: crate::segment::IndexEntry, valid: u64) -> u64 {
    if entry.position == 0 {
        return 0;
    }
    let mut hdr = [0u8; HEADER_LEN];
    let ok = entry.position + HEADER_LEN as u64 <= valid
        && file.read_exact_at(&mut hdr, entry.position).is_ok()
        && BatchHeader::parse(&hdr, usize::MAX).is_ok_and(|h| h.base_offset == entry.offset);
    if ok { entry.position } else { 0 }
}

/// Reads batches of `seg` from the one holding `offset`, within its valid prefix `meta.size`,
/// checking each batch read (the ones passed over too). `None` when nothing at or after
/// `offset` is in this segment.
pub(super) fn read_in(
    seg: &Seg,
    meta: SegMeta,
    offset: u64,
    max_bytes: usize,
    interval: u32,
) -> Result<Option<Records>> {
    let file = &*seg.opened.file;
    let valid = meta.size;
    let entry = seg.opened.index.read().lookup(offset);
    let from = start_position(file, entry, valid);
    if from >= valid {
        return Ok(None);
    }
    let avail = valid - from;
    let first_read = (max_bytes.min(1 << 30) + interval as usize + LOOKAHEAD) as u64;
    let mut buf = vec![0u8; usize::try_from(avail.min(first_read)).unwrap_or(CHUNK)];
    file.read_exact_at(&mut buf, from).at(&seg.path)?;
    let corrupt = |at: usize, k| Error::corrupt(&seg.path, from + at as u64, k);
    let mut cur = 0usize;
    let mut first: Option<usize> = None;
    let mut next_offset = offset;
    let mut min_base = if from == 0 { seg.base } else { entry.offset };
    while (from + cur as u64) < valid {
        let left = usize::try_from(valid - from - cur as u64).unwrap_or(usize::MAX);
        grow(file, &mut buf, from, cur + HEADER_LEN, valid).at(&seg.path)?;
        let h = match BatchHeader::parse(buf.get(cur..).unwrap_or(&[]), left) {
            Ok(h) => h,
            Err(_) if first.is_some() => break,
            Err(k) => return Err(corrupt(cur, k)),
        };
        let len = h.length as usize;
        if first.is_some_and(|f| cur + len - f > max_bytes) {
            break;
        }
        grow(file, &mut buf, from, cur + len, valid).at(&seg.path)?;
        let bytes = buf.get(cur..cur + len).unwrap_or(&[]);
        let checked = batch::verify(bytes)
            .and_then(|h| if h.base_offset < min_base { Err(CorruptKind::OffsetOrder) } else { Ok(h) });
        match checked {
            Ok(_) => {}
            Err(_) if first.is_some() => break,
            Err(k) => return Err(corrupt(cur, k)),
        }
        min_base = h.next_offset();
        if h.last_offset() < offset || (first.is_none() && !has_record_at_or_after(bytes, h, offset)) {
            cur += len;
            continue;
        }
        first.get_or_insert(cur);
        next_offset = h.next_offset();
        cur += len;
        if first.is_some_and(|f| cur - f >= max_bytes) {
            break;
        }
    }
    let Some(start) = first else { return Ok(None) };
    buf.truncate(cur);
    buf.drain(..start);
    Ok(Some(Records::from_owned(buf, offset, next_offset)))
}

/// Whether the (verified) batch holds a record with an offset ≥ `offset`.
fn has_record_at_or_after(bytes: &[u8], h: BatchHeader, offset: u64) -> bool {
    if h.record_count == 0 {
        return false;
    }
    if h.base_offset >= offset {
        return true;
    }
    let mut it = RecordIter::new(bytes, h);
    it.skip_before(offset).is_ok() && it.next().is_some()
}

/// Extends `buf` (the file from `from`) to `want` bytes, never past `valid`.
fn grow(file: &dyn FileHandle, buf: &mut Vec<u8>, from: u64, want: usize, valid: u64) -> std::io::Result<()> {
    let max = usize::try_from(valid - from).unwrap_or(usize::MAX);
    let want = want.min(max);
    let have = buf.len();
    if want <= have {
        return Ok(());
    }
    let want = want.max(have.saturating_mul(2)).min(max);
    buf.resize(want, 0);
    file.read_exact_at(&mut buf[have..], from + have as u64)
}
