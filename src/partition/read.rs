//! The read path: by offset, by timestamp, and sequential iteration.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Inner, Partition};
use crate::batch::{self, BatchHeader, HEADER_LEN, RecordIter};
use crate::error::{Error, Result};
use crate::record::{RecordRef, StoredRecord};
use crate::segment::{NO_TS, Opened, SegmentState};

/// Bytes read past the index interval and the requested budget on the first I/O, so that the
/// scan from the sparse index entry through the wanted batch usually needs a single read.
const LOOKAHEAD: usize = 1 << 10;

/// Reads of at least this many bytes prefault their pages of a memory-mapped segment.
const PREFAULT_MIN: usize = 64 << 10;

/// Whole record batches returned by [`Partition::read`], with records before the requested
/// offset skipped.
///
/// The bytes are either a private copy or, when the segment is memory-mapped, a view of the
/// mapping that keeps the segment open until this value is dropped.
#[derive(Debug, Clone, Default)]
pub struct Records {
    data: Data,
    start: usize,
    end: usize,
    min_offset: u64,
    /// Records at or above this are not returned (set by [`Records::limit`]).
    max_offset: u64,
    next_offset: u64,
    /// Mapped only: the offset-index entry of the first batch, when its handle holds a record
    /// directory for it (iteration then starts near `min_offset` instead of walking to it).
    dir_slot: Option<usize>,
}

#[derive(Debug, Clone, Default)]
enum Data {
    #[default]
    Empty,
    Owned(Vec<u8>),
    /// `start`/`end` are positions in the segment file.
    Mapped(Arc<Opened>),
}

impl Records {
    fn empty(at: u64) -> Records {
        Records {
            data: Data::Empty,
            start: 0,
            end: 0,
            min_offset: at,
            max_offset: u64::MAX,
            next_offset: at,
            dir_slot: None,
        }
    }

    /// Whole, verified batches read into `buf` (records below `min_offset` are skipped);
    /// `next_offset` is where the next read starts. For readers outside this module (the
    /// read-only reader).
    pub(crate) fn from_owned(buf: Vec<u8>, min_offset: u64, next_offset: u64) -> Records {
        let end = buf.len();
        Records { data: Data::Owned(buf), start: 0, end, min_offset, max_offset: u64::MAX, next_offset, dir_slot: None }
    }

    /// Iterates the records, borrowing from this buffer.
    pub fn iter(&self) -> RecordsIter<'_> {
        let dir = match (&self.data, self.dir_slot) {
            (Data::Mapped(o), Some(slot)) => o.existing_record_dir(slot),
            _ => None,
        };
        RecordsIter { rest: self.as_bytes(), cur: None, min_offset: self.min_offset, max_offset: self.max_offset, dir }
    }

    /// Keeps at most the first `n` records: iteration stops after them and
    /// [`next_fetch_offset`](Self::next_fetch_offset) becomes the offset after the last one
    /// kept. Counts from batch headers where it can, decoding only the batches it must.
    /// Returns how many records are kept.
    pub fn limit(&mut self, n: usize) -> usize {
        let mut left = n;
        let mut rest = self.as_bytes();
        let mut kept = 0usize;
        let mut cut: Option<u64> = None;
        while !rest.is_empty() {
            let Ok(h) = BatchHeader::parse(rest, rest.len()) else { break };
            let (b, tail) = rest.split_at(h.length as usize);
            rest = tail;
            let whole = h.base_offset >= self.min_offset && h.last_offset() < self.max_offset;
            if whole && (h.record_count as usize) <= left {
                left -= h.record_count as usize;
                kept += h.record_count as usize;
                continue;
            }
            let mut it = RecordIter::new(b, h);
            if it.skip_before(self.min_offset).is_err() {
                break;
            }
            for r in it.by_ref() {
                if r.offset() >= self.max_offset {
                    break;
                }
                if left == 0 {
                    cut = Some(r.offset());
                    break;
                }
                left -= 1;
                kept += 1;
            }
            if cut.is_some() {
                break;
            }
        }
        if let Some(c) = cut {
            self.max_offset = c;
            self.next_offset = c;
        }
        kept
    }

    /// True when no record was returned: the read was at the log end, or only offsets without
    /// records (compacted or truncated away) lie between it and the end; then
    /// [`next_fetch_offset`](Self::next_fetch_offset) is the log end.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes of the returned batches.
    pub fn size_bytes(&self) -> usize {
        self.end - self.start
    }

    /// The offset to read next: one past the last offset these batches cover.
    pub fn next_fetch_offset(&self) -> u64 {
        self.next_offset
    }

    /// The offset to read next.
    #[deprecated(note = "renamed to `next_fetch_offset`")]
    pub fn next_offset(&self) -> u64 {
        self.next_fetch_offset()
    }

    /// The raw batches, back to back, in the on-disk format (see [`crate::format`]).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.data {
            Data::Empty => &[],
            Data::Owned(v) => v.get(self.start..self.end).unwrap_or(&[]),
            Data::Mapped(o) => o.file.mapped_slice(self.start as u64, self.end - self.start).unwrap_or(&[]),
        }
    }
}

/// Iterator over [`Records`].
#[derive(Debug, Clone)]
pub struct RecordsIter<'a> {
    rest: &'a [u8],
    cur: Option<RecordIter<'a>>,
    min_offset: u64,
    max_offset: u64,
    /// The first batch's record directory, if it has one.
    dir: Option<&'a [u32]>,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = RecordRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        loop {
            if let Some(it) = &mut self.cur {
                // Records before `min_offset` were skipped when the batch was entered, and
                // offsets only grow within a batch.
                if let Some(r) = it.next() {
                    if r.offset() >= self.max_offset {
                        self.rest = &[];
                        self.cur = None;
                        return None;
                    }
                    return Some(r);
                }
                self.cur = None;
            }
            if self.rest.is_empty() {
                return None;
            }
            // Every batch here was validated when it was read.
            let h = BatchHeader::parse(self.rest, self.rest.len()).ok()?;
            let (b, rest) = self.rest.split_at(h.length as usize);
            self.rest = rest;
            prefetch_whole_batch(b, h, self.min_offset);
            let mut it = start_batch(b, h, self.dir.take(), self.min_offset);
            if h.base_offset < self.min_offset && it.skip_before(self.min_offset).is_err() {
                continue;
            }
            self.cur = Some(it);
        }
    }
}

/// A batch whose records are all returned (none below `min_offset`) is decoded record after
/// record, each record's address known only once the previous one is read: ask for all its
/// lines at once. (A sequential read of a 1 GB log: 42 → 48 M records/s.)
#[inline]
fn prefetch_whole_batch(b: &[u8], h: BatchHeader, min_offset: u64) {
    if h.base_offset >= min_offset {
        prefetch_lines(b);
    }
}

/// The records of batch `b` from where the walk to `min_offset` starts: its record directory's
/// entry at or before `min_offset` when `dir` is given and `min_offset` lies inside the batch,
/// its first record otherwise.
#[inline]
fn start_batch<'a>(b: &'a [u8], h: BatchHeader, dir: Option<&[u32]>, min_offset: u64) -> RecordIter<'a> {
    match dir {
        Some(d) if h.base_offset < min_offset => RecordIter::from_directory(b, h, d, min_offset),
        _ => RecordIter::new(b, h),
    }
}

/// The former name of [`OffsetAndTimestamp`].
#[deprecated(note = "renamed to `OffsetAndTimestamp`, Kafka's name")]
pub type TimestampOffset = OffsetAndTimestamp;

impl<'a> IntoIterator for &'a Records {
    type Item = RecordRef<'a>;
    type IntoIter = RecordsIter<'a>;
    fn into_iter(self) -> RecordsIter<'a> {
        self.iter()
    }
}

impl IntoIterator for Records {
    type Item = StoredRecord;
    type IntoIter = std::vec::IntoIter<StoredRecord>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter().map(|r| r.to_owned()).collect::<Vec<_>>().into_iter()
    }
}

/// A record found by [`Partition::offset_for_timestamp`] (Kafka's `OffsetAndTimestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The record's offset.
    pub offset: u64,
    /// Its timestamp.
    pub timestamp: i64,
}

/// What looking in one segment found.
enum Step<T> {
    Found(T),
    /// Nothing at or after the offset in this segment.
    Nothing,
    /// The segment was retired under the reader: retry on the current list.
    Retired,
}

pub(crate) fn read(inner: &Inner, offset: u64, max_bytes: usize) -> Result<Records> {
    inner.check_usable_for_read()?;
    let interval = inner.config.read().index_interval_bytes;
    let mut view = inner.view();
    'retry: for _ in 0..super::RETIRED_RETRIES {
        // The list first, then the bounds: a list without a deleted segment comes with the log
        // start that excludes it.
        let start = inner.log_start.load(Ordering::Acquire);
        let end = inner.next_offset.load(Ordering::Acquire);
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange { requested: offset, start, end });
        }
        if offset == end {
            return Ok(Records::empty(offset));
        }
        let mut i = view.floor(offset);
        while let Some(seg) = view.segments.get(i) {
            i += 1;
            if seg.next_offset.load(Ordering::Acquire) <= offset {
                continue;
            }
            match read_segment(inner, seg, offset, max_bytes, interval)? {
                Step::Found(r) => return Ok(r),
                Step::Nothing => {}
                Step::Retired => {
                    view = inner.view_after(&view);
                    continue 'retry;
                }
            }
        }
        // Nothing at or after `offset` up to the end: the next read starts at the end.
        return Ok(Records { next_offset: end, ..Records::empty(offset) });
    }
    Err(inner.unsettled())
}

/// Reads from one segment.
fn read_segment(
    inner: &Inner,
    seg: &SegmentState,
    offset: u64,
    max_bytes: usize,
    interval: u32,
) -> Result<Step<Records>> {
    let Some(opened) = inner.open_segment(seg, interval)? else { return Ok(Step::Retired) };
    let seg_len = seg.len.load(Ordering::Acquire);
    let (entry, slot, next) = opened.index.read().lookup_slot(offset);
    let next_entry = next.map(|(_, p)| p);
    if entry.position >= seg_len {
        return Ok(Step::Nothing);
    }
    let small = max_bytes < PREFAULT_MIN;
    // Mapped: scan the mapping in place and hand out a view of it, no copy. A small read in a
    // part of a sealed segment's map not used yet copies instead (see `Opened::map_warm`).
    let mapped = opened
        .file
        .mapped_slice(0, 0)
        .filter(|_| inner.map_reads && (!small || opened.map_warm(entry.position)))
        .is_some();
    if mapped {
        if small {
            let r = prefetch_range(&opened, entry, slot, next, offset, interval);
            prefetch_small_read(&opened, entry.position, r, seg_len);
        }
        let from = start_position(&*opened.file, entry, seg_len);
        let avail = usize::try_from(seg_len - from).unwrap_or(usize::MAX);
        let Some(view) = opened.file.mapped_slice(from, avail) else { return Ok(Step::Nothing) };
        if small {
            prefetch_for_record_dir(&opened, slot, view, from, next_entry);
        }
        // A large (sequential) read maps in the pages it will touch with one call instead of a
        // fault per page; for small random reads the call costs more than it saves.
        if !small {
            opened.file.prefault(from, avail.min(max_bytes.min(1 << 30) + interval as usize + LOOKAHEAD));
        }
        let mut src = Source::Mapped(view);
        let checked = Checked { opened: &opened, slot: slot.filter(|_| from == entry.position) };
        let Some(found) = scan_for_read(&mut src, seg, from, seg_len, offset, max_bytes, checked)? else {
            return Ok(Step::Nothing);
        };
        let start = from as usize + found.start;
        let end = from as usize + found.end;
        // A small read of a batch read before through this handle: give it a record directory
        // (built now, the second time), so that iteration need not walk to the record.
        // `checked.slot`: the scan started at the entry's batch (the index matches the log).
        let dir_slot = checked.slot.filter(|_| small && found.start == 0).filter(|&s| {
            opened
                .record_dir(s, || {
                    let h = BatchHeader::parse(view, view.len()).ok()?;
                    crate::batch::record_directory(view.get(..h.length as usize)?, h)
                })
                .is_some()
        });
        return Ok(Step::Found(Records {
            data: Data::Mapped(Arc::clone(&opened)),
            start,
            end,
            min_offset: offset,
            max_offset: u64::MAX,
            next_offset: found.next_offset,
            dir_slot,
        }));
    }
    // One read from the index entry: up to the next entry (whole batches) for a small read,
    // the budget plus the scan from the entry otherwise; more is read only if the batches
    // found need it.
    let budget = max_bytes.min(1 << 30);
    let region = next_entry.filter(|&n| n > entry.position).map(|n| (n - entry.position) as usize);
    let want = match region {
        Some(r) if small => r.max(budget),
        _ => budget + interval as usize + LOOKAHEAD,
    };
    let mut from = entry.position;
    let mut buf = read_from(&*opened.file, seg, from, want.max(HEADER_LEN), seg_len)?;
    if from != 0 && !header_has_offset(&buf, entry.offset) {
        // The index does not match its log here: scan from the segment start instead.
        from = 0;
        buf = read_from(&*opened.file, seg, 0, budget + interval as usize + LOOKAHEAD, seg_len)?;
    }
    let mut src = Source::Owned { buf, file: &*opened.file };
    let checked = Checked { opened: &opened, slot: slot.filter(|_| from == entry.position) };
    let Some(found) = scan_for_read(&mut src, seg, from, seg_len, offset, max_bytes, checked)? else {
        return Ok(Step::Nothing);
    };
    let Source::Owned { buf, .. } = src else { return Ok(Step::Nothing) };
    Ok(Step::Found(Records {
        data: Data::Owned(buf),
        start: found.start,
        end: found.end,
        min_offset: offset,
        max_offset: u64::MAX,
        next_offset: found.next_offset,
        dir_slot: None,
    }))
}

/// The most bytes of a mapped segment a small read prefetches ahead of its walk.
const PREFETCH_MAX: usize = 65_536;

/// Bytes past the estimated position of the wanted record that a small read prefetches.
const PREFETCH_SLACK: usize = 1_024;

/// The walk to a small read's record reads its batch's record headers one after another, each
/// address known only after the last: ask for the lines `r` (from [`prefetch_range`], relative
/// to the index entry's position `at`) at once instead, before even the batch header is read.
fn prefetch_small_read(opened: &Opened, at: u64, r: std::ops::Range<usize>, seg_len: u64) {
    let left = usize::try_from(seg_len - at).unwrap_or(usize::MAX);
    let (from, to) = (r.start.min(left), r.end.min(left));
    if let Some(bytes) = opened.file.mapped_slice(at, to) {
        // The batch header, then the records.
        prefetch_lines(bytes.get(..64.min(to)).unwrap_or(&[]));
        prefetch_lines(bytes.get(from..).unwrap_or(&[]));
    }
}

/// A small read that is about to build its batch's record directory walks all of the batch.
/// Reading the header may just have mapped its pages in (a prefetch of a page not mapped yet
/// is dropped): ask for the batch's lines again.
fn prefetch_for_record_dir(opened: &Opened, slot: Option<usize>, view: &[u8], from: u64, next_entry: Option<u64>) {
    if slot.is_some_and(|s| opened.is_verified(s) && opened.existing_record_dir(s).is_none()) {
        let region = next_entry.map_or(0, |n| usize::try_from(n.saturating_sub(from)).unwrap_or(0));
        prefetch_lines(view.get(..region.min(view.len()).min(PREFETCH_MAX)).unwrap_or(&[]));
    }
}

/// Which bytes after index entry `entry` a small read of `offset` prefetches, as a range from
/// the entry: up to the next entry (the batches it may scan) when the batch there is not yet
/// verified (its CRC pass reads all of it) or has no record directory yet (this read may build
/// it, walking all of it); for a batch with one, the records from the directory's entry at or
/// below `offset` to the next one; for one that cannot have one, everything up to where
/// `offset` lies if the records between the two entries are about the same size, plus
/// [`PREFETCH_SLACK`]. (On a 1 GB log read at random a third time: 3.5 µs a
/// read without prefetching, 2.1 µs prefetching the whole region after the batch header,
/// 1.4 µs prefetching the estimate before it.)
fn prefetch_range(
    opened: &Opened,
    entry: crate::segment::IndexEntry,
    slot: Option<usize>,
    next: Option<(u64, u64)>,
    offset: u64,
    interval: u32,
) -> std::ops::Range<usize> {
    let Some((next_offset, next_pos)) = next.filter(|&(o, p)| o > entry.offset && p > entry.position) else {
        return 0..interval as usize + LOOKAHEAD;
    };
    let region = usize::try_from(next_pos - entry.position).unwrap_or(PREFETCH_MAX).min(PREFETCH_MAX);
    let Some(slot) = slot.filter(|&s| opened.is_verified(s)) else { return 0..region };
    match opened.existing_record_dir(slot) {
        // Not built yet: this read may build it, walking the whole batch.
        None => return 0..region,
        Some(d) => {
            let j = usize::try_from(offset.saturating_sub(entry.offset) / u64::from(crate::batch::DIR_STRIDE))
                .unwrap_or(usize::MAX);
            if let Some(&at) = d.get(j).or(d.last()) {
                let at = at as usize;
                let to = d.get(j + 1).map_or(at + PREFETCH_SLACK, |&n| n as usize);
                return at.min(region)..to.min(region);
            }
        }
    }
    // The batch cannot have a directory (not dense, or small).
    let frac = offset.saturating_sub(entry.offset) as f64 / (next_offset - entry.offset) as f64;
    0..((region as f64 * frac) as usize + PREFETCH_SLACK).min(region)
}

/// Hints every cache line of `bytes` into the cache (mapped pages not resident are skipped:
/// a prefetch never faults).
#[inline]
fn prefetch_lines(bytes: &[u8]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    for i in (0..bytes.len()).step_by(64) {
        // SAFETY: a prefetch only hints the cache; it never faults and changes no memory. The
        // address is inside `bytes`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(bytes.as_ptr().add(i).cast());
        }
    }
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    let _ = bytes;
}

/// Reads up to `want` bytes of the segment from `from` (fewer at its end), bypassing any map.
fn read_from(
    file: &dyn crate::fs::FileHandle,
    seg: &SegmentState,
    from: u64,
    want: usize,
    seg_len: u64,
) -> Result<Vec<u8>> {
    let n = want.min(usize::try_from(seg_len - from).unwrap_or(usize::MAX));
    let mut buf = vec![0u8; n];
    file.read_exact_unmapped(&mut buf, from).map_err(|e| Error::io(&seg.log_path(), e))?;
    Ok(buf)
}

/// Whether `bytes` start with a batch header whose base offset is `offset`.
fn header_has_offset(bytes: &[u8], offset: u64) -> bool {
    BatchHeader::parse(bytes, usize::MAX).is_ok_and(|h| h.base_offset == offset)
}

/// Where to start scanning for `entry`'s target: the entry's position when the batch there
/// really has the entry's base offset, otherwise (an index that does not match its log) the
/// start of the segment.
fn start_position(file: &dyn crate::fs::FileHandle, entry: crate::segment::IndexEntry, seg_len: u64) -> u64 {
    if entry.position == 0 {
        return 0;
    }
    if entry.position + HEADER_LEN as u64 > seg_len {
        return 0;
    }
    if let Some(hdr) = file.mapped_slice(entry.position, HEADER_LEN) {
        return if header_has_offset(hdr, entry.offset) { entry.position } else { 0 };
    }
    let mut hdr = [0u8; HEADER_LEN];
    let ok = file.read_exact_at(&mut hdr, entry.position).is_ok() && header_has_offset(&hdr, entry.offset);
    if ok { entry.position } else { 0 }
}

/// Which batch of a scan may skip its CRC check: the one at `from` when `slot` (its
/// offset-index entry) is marked verified in `opened`.
#[derive(Clone, Copy)]
struct Checked<'a> {
    opened: &'a Opened,
    slot: Option<usize>,
}

impl Checked<'_> {
    /// Checks the batch `bytes` found at `cur` bytes into the scan, unless it is the one the
    /// handle remembers as checked; remembers a pass.
    fn verify(self, cur: usize, bytes: &[u8]) -> std::result::Result<(), crate::error::CorruptKind> {
        match self.slot.filter(|_| cur == 0) {
            Some(s) if self.opened.is_verified(s) => Ok(()),
            Some(s) => {
                batch::verify(bytes)?;
                self.opened.mark_verified(s);
                Ok(())
            }
            None => batch::verify(bytes).map(|_| ()),
        }
    }
}

/// Where [`scan_for_read`] gets bytes from: a mapping holding everything, or a buffer that
/// grows by reading the file.
enum Source<'a> {
    Mapped(&'a [u8]),
    Owned { buf: Vec<u8>, file: &'a dyn crate::fs::FileHandle },
}

impl Source<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped(b) => b,
            Source::Owned { buf, .. } => buf,
        }
    }

    /// Makes sure the first `want` bytes (capped at the segment end) are present.
    fn ensure(&mut self, from: u64, want: usize, seg_len: u64) -> std::io::Result<()> {
        match self {
            Source::Mapped(_) => Ok(()),
            Source::Owned { buf, file } => {
                if want <= buf.len() {
                    return Ok(());
                }
                let want = want.max(buf.len() * 2);
                grow(*file, buf, from, want, seg_len)
            }
        }
    }
}

struct Found {
    start: usize,
    end: usize,
    next_offset: u64,
}

/// Finds the batches to return, relative to `from`.
///
/// Batches returned are CRC-checked, except that the batch at `from` of a sealed segment is
/// checked once per open handle (`checked`): its bytes cannot change while the handle lives.
/// Batches passed over on the way (between the sparse index
/// entry and the target) are not, with one exception that keeps damage from going unnoticed:
/// when the first batch returned starts after `offset` (the target seems to fall in a gap),
/// the batch passed over just before it is checked too, since a damaged header there could
/// have hidden the target. And a batch after the first one returned that seems to end before
/// `offset` (its offsets went back: damage) is not passed over but ends the read, so that the
/// next read, from it, reports it.
fn scan_for_read(
    src: &mut Source<'_>,
    seg: &SegmentState,
    from: u64,
    seg_len: u64,
    offset: u64,
    max_bytes: usize,
    checked: Checked<'_>,
) -> Result<Option<Found>> {
    let corrupt = |pos: u64, k| Error::corrupt(&seg.log_path(), pos, k);
    let io = |e| Error::io(&seg.log_path(), e);
    let mut cur = 0usize;
    let mut first: Option<usize> = None;
    let mut skipped: Option<(usize, usize)> = None;
    let mut next_offset = offset;
    loop {
        let pos = from + cur as u64;
        if pos >= seg_len {
            break;
        }
        let left = usize::try_from(seg_len - pos).unwrap_or(usize::MAX);
        src.ensure(from, cur + HEADER_LEN, seg_len).map_err(io)?;
        let h = match BatchHeader::parse(src.bytes().get(cur..).unwrap_or(&[]), left) {
            Ok(h) => h,
            // Damage after good batches ends this read; the next read reports it.
            Err(_) if first.is_some() => break,
            Err(k) => return Err(corrupt(pos, k)),
        };
        let len = h.length as usize;
        if h.last_offset() < offset {
            // A batch after a returned one that ends before `offset`: its offsets went back,
            // which only damage does, and a batch passed over is not checked. End the read
            // before it; the next read, from there, reports it.
            if first.is_some() {
                break;
            }
            skipped = Some((cur, len));
            cur += len;
            continue;
        }
        if first.is_some_and(|f| cur + len - f > max_bytes) {
            break;
        }
        src.ensure(from, cur + len, seg_len).map_err(io)?;
        let bytes = src.bytes();
        if first.is_none()
            && h.base_offset > offset
            && let Some((s, l)) = skipped
        {
            batch::verify(bytes.get(s..s + l).unwrap_or(&[])).map_err(|k| corrupt(from + s as u64, k))?;
        }
        let this = bytes.get(cur..cur + len).unwrap_or(&[]);
        match checked.verify(cur, this) {
            Ok(_) => {}
            Err(_) if first.is_some() => break,
            Err(k) => return Err(corrupt(pos, k)),
        }
        if first.is_none() && !has_record_at_or_after(this, h, offset) {
            // Covers the offset but holds no record there (compacted away): not a result.
            skipped = None;
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
    if first.is_none()
        && seg.next_offset.load(Ordering::Acquire) > offset
        && let Some((s, l)) = skipped
    {
        // The segment claims to hold `offset` yet the walk found nothing: make sure that is
        // not a damaged header steering it past the end.
        src.ensure(from, s + l, seg_len).map_err(io)?;
        batch::verify(src.bytes().get(s..s + l).unwrap_or(&[])).map_err(|k| corrupt(from + s as u64, k))?;
    }
    Ok(first.map(|start| Found { start, end: cur, next_offset }))
}

/// Whether the (verified) batch holds a record with an offset ≥ `offset`.
fn has_record_at_or_after(bytes: &[u8], h: BatchHeader, offset: u64) -> bool {
    if h.record_count == 0 {
        return false;
    }
    if h.base_offset >= offset {
        return true;
    }
    // No offset missing (never compacted): every offset up to the last has its record.
    if u64::from(h.record_count) == u64::from(h.last_offset_delta) + 1 && h.last_offset() >= offset {
        return true;
    }
    let mut it = RecordIter::new(bytes, h);
    it.skip_before(offset).is_ok() && it.next().is_some()
}

/// Extends `buf` (which holds the file from `from`) to `want` bytes, never past `seg_len`.
fn grow(
    file: &dyn crate::fs::FileHandle,
    buf: &mut Vec<u8>,
    from: u64,
    want: usize,
    seg_len: u64,
) -> std::io::Result<()> {
    let max = usize::try_from(seg_len - from).unwrap_or(usize::MAX);
    let want = want.min(max);
    let have = buf.len();
    if want <= have {
        return Ok(());
    }
    buf.resize(want, 0);
    file.read_exact_at(&mut buf[have..], from + have as u64)
}

pub(crate) fn offset_for_timestamp(inner: &Inner, ts: i64) -> Result<Option<super::OffsetAndTimestamp>> {
    inner.check_usable_for_read()?;
    let interval = inner.config.read().index_interval_bytes;
    let mut view = inner.view();
    'retry: for _ in 0..super::RETIRED_RETRIES {
        let log_start = inner.log_start.load(Ordering::Acquire);
        for seg in &view.segments {
            let max = seg.max_ts();
            if max == NO_TS || max < ts || seg.next_offset.load(Ordering::Acquire) <= log_start {
                continue;
            }
            match find_in_segment(inner, seg, ts, log_start, interval)? {
                Step::Found(hit) => return Ok(Some(hit)),
                Step::Nothing => {}
                Step::Retired => {
                    view = inner.view_after(&view);
                    continue 'retry;
                }
            }
        }
        return Ok(None);
    }
    Err(inner.unsettled())
}

/// The first record of `seg` at or after `log_start` with a timestamp ≥ `ts`.
fn find_in_segment(
    inner: &Inner,
    seg: &SegmentState,
    ts: i64,
    log_start: u64,
    interval: u32,
) -> Result<Step<super::OffsetAndTimestamp>> {
    let Some(opened) = inner.open_segment(seg, interval)? else { return Ok(Step::Retired) };
    let seg_len = seg.len.load(Ordering::Acquire);
    let start_offset = opened.time.read().lookup(ts).map_or(seg.base, |e| e.offset).max(log_start);
    let entry = opened.index.read().lookup(start_offset);
    let from = start_position(&*opened.file, entry, seg_len);
    let path = seg.log_path();
    let mut cursor = crate::segment::cursor::BatchCursor::new(&*opened.file, &path, from, seg_len, 0);
    // Every batch passed over is validated, so damage is reported rather than skipped.
    while let Some(b) = cursor.next_batch()? {
        let h = b.header;
        if h.max_timestamp >= ts && h.last_offset() >= start_offset {
            let hit = RecordIter::new(b.bytes, h).find(|r| r.offset() >= start_offset && r.timestamp() >= ts);
            if let Some(r) = hit {
                return Ok(Step::Found(super::OffsetAndTimestamp { offset: r.offset(), timestamp: r.timestamp() }));
            }
        }
    }
    Ok(Step::Nothing)
}

/// Reads a partition sequentially, a chunk of batches at a time.
#[derive(Debug)]
pub struct Reader {
    partition: Partition,
    next: u64,
    chunk: usize,
}

impl Reader {
    pub(crate) fn new(partition: Partition, from: u64) -> Reader {
        Reader { partition, next: from, chunk: 1 << 20 }
    }

    /// Sets how many bytes each [`next_records`](Self::next_records) call reads (default 1 MiB).
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk = bytes.max(1);
        self
    }

    /// The offset the next call starts from.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next chunk of records, or `None` at the current end of the log.
    ///
    /// # Errors
    /// As [`Partition::read`].
    pub fn next_records(&mut self) -> Result<Option<Records>> {
        let r = self.partition.read(self.next, self.chunk)?;
        if r.is_empty() {
            return Ok(None);
        }
        self.next = r.next_fetch_offset();
        Ok(Some(r))
    }
}

/// Iterator of owned records from an offset to the end of the log (as of each refill).
#[derive(Debug)]
pub struct LogIter {
    reader: Reader,
    buf: std::vec::IntoIter<StoredRecord>,
    done: bool,
}

impl LogIter {
    pub(crate) fn new(partition: Partition, from: u64) -> LogIter {
        LogIter { reader: Reader::new(partition, from), buf: Vec::new().into_iter(), done: false }
    }
}

impl Iterator for LogIter {
    type Item = Result<StoredRecord>;

    fn next(&mut self) -> Option<Result<StoredRecord>> {
        loop {
            if let Some(r) = self.buf.next() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            match self.reader.next_records() {
                Ok(Some(recs)) => self.buf = recs.into_iter(),
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Inner {
    pub(crate) fn check_usable_for_read(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Partition>();
    is::<Records>();
    let _ = Arc::new(0);
}
