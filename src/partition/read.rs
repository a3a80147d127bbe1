//! The read path: by offset, by timestamp, and sequential iteration.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Inner, Partition};
use crate::batch::{self, BatchHeader, HEADER_LEN, RecordIter};
use crate::error::{Error, IoContext, Result};
use crate::record::{RecordRef, StoredRecord};
use crate::segment::{NO_TS, Segment};

/// Bytes read past the index interval and the requested budget on the first I/O, so that the
/// scan from the sparse index entry through the wanted batch usually needs a single read.
const LOOKAHEAD: usize = 1 << 10;

/// Whole record batches returned by [`Partition::read`], with records before the requested
/// offset skipped.
#[derive(Debug, Clone, Default)]
pub struct Records {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    min_offset: u64,
    next_offset: u64,
}

impl Records {
    fn empty(at: u64) -> Records {
        Records { buf: Vec::new(), start: 0, end: 0, min_offset: at, next_offset: at }
    }

    /// Iterates the records, borrowing from this buffer.
    pub fn iter(&self) -> RecordsIter<'_> {
        RecordsIter { rest: self.buf.get(self.start..self.end).unwrap_or(&[]), cur: None, min_offset: self.min_offset }
    }

    /// True when no batch was returned (the read was at the log end).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes of the returned batches.
    pub fn size_bytes(&self) -> usize {
        self.end - self.start
    }

    /// The offset to read next: one past the last offset these batches cover.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The raw batches, back to back, in the on-disk format (see [`crate::format`]).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }
}

/// Iterator over [`Records`].
#[derive(Debug, Clone)]
pub struct RecordsIter<'a> {
    rest: &'a [u8],
    cur: Option<RecordIter<'a>>,
    min_offset: u64,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        loop {
            if let Some(it) = &mut self.cur {
                for r in it.by_ref() {
                    if r.offset() >= self.min_offset {
                        return Some(r);
                    }
                }
                self.cur = None;
            }
            // Every batch here was validated when it was read.
            let h = BatchHeader::parse(self.rest, self.rest.len()).ok()?;
            let (b, rest) = self.rest.split_at(h.length as usize);
            self.rest = rest;
            self.cur = Some(RecordIter::new(b, h));
        }
    }
}

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

/// A record found by [`Partition::offset_for_timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The record's offset.
    pub offset: u64,
    /// Its timestamp.
    pub timestamp: i64,
}

fn out_of_range(inner: &Inner, requested: u64) -> Error {
    Error::OffsetOutOfRange {
        requested,
        start: inner.log_start.load(Ordering::Acquire),
        end: inner.next_offset.load(Ordering::Acquire),
    }
}

pub(crate) fn read(inner: &Inner, offset: u64, max_bytes: usize) -> Result<Records> {
    inner.check_usable_for_read()?;
    let view = inner.view();
    let start = inner.log_start.load(Ordering::Acquire);
    let end = inner.next_offset.load(Ordering::Acquire);
    if offset < start || offset > end {
        return Err(Error::OffsetOutOfRange { requested: offset, start, end });
    }
    if offset == end {
        return Ok(Records::empty(offset));
    }
    let interval = inner.config.read().index_interval_bytes;
    let mut i = view.floor(offset);
    while let Some(seg) = view.segments.get(i) {
        i += 1;
        if seg.next_offset.load(Ordering::Acquire) <= offset {
            continue;
        }
        match read_segment(inner, seg, offset, max_bytes, interval) {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            // The segment was deleted under us (retention or log-start move).
            Err(Error::OffsetOutOfRange { .. }) => return Err(out_of_range(inner, offset)),
            Err(e) => return Err(e),
        }
    }
    Ok(Records::empty(offset))
}

/// Reads from one segment; `None` when it holds nothing at or after `offset`.
///
/// Batches returned are CRC-checked. Batches passed over on the way (between the sparse index
/// entry and the target) are not, with one exception that keeps damage from going unnoticed:
/// when the first batch returned starts after `offset` (the target seems to fall in a gap),
/// the batch passed over just before it is checked too, since a damaged header there could
/// have hidden the target.
fn read_segment(inner: &Inner, seg: &Segment, offset: u64, max_bytes: usize, interval: u32) -> Result<Option<Records>> {
    let opened = seg.open(&*inner.fs, &inner.cache, interval)?;
    let seg_len = seg.len.load(Ordering::Acquire);
    let from = opened.index.read().lookup(offset).position;
    if from >= seg_len {
        return Ok(None);
    }
    let corrupt = |pos: u64, k| Error::corrupt(&seg.log_path(), pos, k);
    let io = |e| Error::io(&seg.log_path(), e);
    let avail = seg_len - from;
    let first_read = (max_bytes.min(1 << 30) + interval as usize + LOOKAHEAD) as u64;
    let mut buf = vec![0u8; usize::try_from(first_read.min(avail)).unwrap_or(usize::MAX)];
    opened.file.read_exact_at(&mut buf, from).map_err(io)?;

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
        if cur + HEADER_LEN > buf.len() {
            let want = (cur + HEADER_LEN).max(buf.len() * 2);
            grow(&*opened.file, &mut buf, from, want, seg_len).map_err(io)?;
        }
        let h = match BatchHeader::parse(&buf[cur..], left) {
            Ok(h) => h,
            // Damage after good batches ends this read; the next read reports it.
            Err(_) if first.is_some() => break,
            Err(k) => return Err(corrupt(pos, k)),
        };
        let len = h.length as usize;
        if h.last_offset() < offset {
            skipped = Some((cur, len));
            cur += len;
            continue;
        }
        if first.is_some_and(|f| cur + len - f > max_bytes) {
            break;
        }
        if cur + len > buf.len() {
            let want = (cur + len).max(buf.len() * 2);
            grow(&*opened.file, &mut buf, from, want, seg_len).map_err(io)?;
        }
        if first.is_none()
            && h.base_offset > offset
            && let Some((s, l)) = skipped
        {
            batch::verify(&buf[s..s + l]).map_err(|k| corrupt(from + s as u64, k))?;
        }
        match batch::verify(&buf[cur..cur + len]) {
            Ok(_) => {}
            Err(_) if first.is_some() => break,
            Err(k) => return Err(corrupt(pos, k)),
        }
        first.get_or_insert(cur);
        next_offset = h.next_offset();
        cur += len;
        if first.is_some_and(|f| cur - f >= max_bytes) {
            break;
        }
    }
    let Some(start) = first else { return Ok(None) };
    Ok(Some(Records { buf, start, end: cur, min_offset: offset, next_offset }))
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

pub(crate) fn offset_for_timestamp(inner: &Inner, ts: i64) -> Result<Option<super::TimestampOffset>> {
    inner.check_usable_for_read()?;
    let view = inner.view();
    let log_start = inner.log_start.load(Ordering::Acquire);
    let interval = inner.config.read().index_interval_bytes;
    for seg in &view.segments {
        let max = seg.max_ts();
        if max == NO_TS || max < ts || seg.next_offset.load(Ordering::Acquire) <= log_start {
            continue;
        }
        let opened = seg.open(&*inner.fs, &inner.cache, interval)?;
        let seg_len = seg.len.load(Ordering::Acquire);
        let start_offset = opened.time.read().lookup(ts).map_or(seg.base, |e| e.offset).max(log_start);
        let from = opened.index.read().lookup(start_offset).position;
        let path = seg.log_path();
        let mut pos = from;
        let mut hdr = [0u8; HEADER_LEN];
        let mut whole = Vec::new();
        while pos + HEADER_LEN as u64 <= seg_len {
            opened.file.read_exact_at(&mut hdr, pos).at(&path)?;
            let left = usize::try_from(seg_len - pos).unwrap_or(usize::MAX);
            let h = BatchHeader::parse(&hdr, left).map_err(|k| Error::corrupt(&path, pos, k))?;
            // Validate every batch passed over, so damage is reported rather than skipped.
            whole.clear();
            whole.resize(h.length as usize, 0);
            opened.file.read_exact_at(&mut whole, pos).at(&path)?;
            batch::verify(&whole).map_err(|k| Error::corrupt(&path, pos, k))?;
            if h.max_timestamp >= ts && h.last_offset() >= start_offset {
                let hit = RecordIter::new(&whole, h).find(|r| r.offset() >= start_offset && r.timestamp() >= ts);
                if let Some(r) = hit {
                    return Ok(Some(super::TimestampOffset { offset: r.offset(), timestamp: r.timestamp() }));
                }
            }
            pos += u64::from(h.length);
        }
    }
    Ok(None)
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
        self.next = r.next_offset();
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
