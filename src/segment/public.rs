//! [`Segment`]: the public, read-only handle on one segment's files — what `partlog dump`
//! reads through.
//!
//! A handle is a snapshot: it covers the segment's bytes as far as they were valid when it
//! was made (for the active segment, the end published then), with a copy of its offset and
//! time index. Every batch it hands out is checked (header, length, CRC, offsets), and damage
//! is an [`Error::Corrupt`] naming the file and byte, never a silent end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files::{self, Ext};
use super::{NO_TS, OffsetIndex, Opened, SegMeta, SegmentInfo, TimeIndex};
use crate::batch::{self, ATTR_CODEC_MASK, ATTR_CONTROL, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, RecordIter};
use crate::config::TimestampType;
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::record::{RecordRef, StoredRecord};

/// A read-only handle on one segment: its `.log`, offset index and time index.
///
/// Get one from [`Partition::segment`](crate::Partition::segment) or
/// [`ReadOnlyPartition::segment`](crate::ReadOnlyPartition::segment).
///
/// ```
/// use partlog::{Partition, Record};
/// # let dir = tempfile::tempdir()?;
/// let p = Partition::open(dir.path().join("p"))?;
/// p.append_batch(&[Record::with_value("a"), Record::with_value("b")])?;
/// let seg = p.segment(0)?;
/// assert_eq!((seg.base_offset(), seg.end_offset(), seg.record_count()), (0, 2, 2));
/// for batch in seg.batches() {
///     let batch = batch?;
///     assert_eq!((batch.info().base_offset, batch.info().last_offset), (0, 1));
///     let values: Vec<_> = batch.records().map(|r| r.map(|r| r.value().map(<[u8]>::to_vec))).collect::<Result<_, _>>()?;
///     assert_eq!(values, [Some(b"a".to_vec()), Some(b"b".to_vec())]);
/// }
/// assert!(seg.verify()?.is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Segment {
    dir: PathBuf,
    opened: Arc<Opened>,
    meta: SegMeta,
    active: bool,
    index: OffsetIndex,
    time: TimeIndex,
}

impl Segment {
    /// A handle on `opened`, covering the `meta.size` bytes `meta` describes. Index entries
    /// past that end (an append racing the snapshot) are left out.
    pub(crate) fn new(dir: &Path, opened: Arc<Opened>, meta: SegMeta, active: bool) -> Segment {
        let mut index = OffsetIndex::new(meta.base);
        for e in opened.index.read().entries().filter(|e| e.position < meta.size && e.offset < meta.next_offset) {
            index.push(e.offset, e.position);
        }
        let mut time = TimeIndex::new(meta.base);
        for e in opened.time.read().entries().filter(|e| e.offset < meta.next_offset) {
            time.maybe_push(e.timestamp, e.offset);
        }
        Segment { dir: dir.to_path_buf(), opened, meta, active, index, time }
    }

    /// The first offset the segment may hold (its file name).
    pub fn base_offset(&self) -> u64 {
        self.meta.base
    }

    /// One past the last offset it covers.
    pub fn end_offset(&self) -> u64 {
        self.meta.next_offset
    }

    /// Bytes of record batches this handle covers.
    pub fn size(&self) -> u64 {
        self.meta.size
    }

    /// Records it holds.
    pub fn record_count(&self) -> u64 {
        self.meta.records
    }

    /// Base timestamp of its first batch: its first record's, or, where the segment begins
    /// with an empty batch (a truncation into a gap that compaction left writes one), that
    /// batch's. `None` for an empty segment.
    pub fn first_timestamp(&self) -> Option<i64> {
        (self.meta.first_ts != NO_TS).then_some(self.meta.first_ts)
    }

    /// Its largest record timestamp.
    pub fn max_timestamp(&self) -> Option<i64> {
        (self.meta.max_ts != NO_TS).then_some(self.meta.max_ts)
    }

    /// Whether it was the active (writable) segment when the handle was made.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The summary [`Partition::segments`](crate::Partition::segments) lists.
    pub fn info(&self) -> SegmentInfo {
        SegmentInfo {
            base_offset: self.meta.base,
            end_offset: self.meta.next_offset,
            size: self.meta.size,
            record_count: self.meta.records,
            first_timestamp: self.first_timestamp(),
            max_timestamp: self.max_timestamp(),
            active: self.active,
        }
    }

    /// The `.log` file.
    pub fn log_path(&self) -> PathBuf {
        files::path(&self.dir, self.meta.base, Ext::Log)
    }

    /// The `.index` file (absent for the active segment until it is sealed or closed).
    pub fn index_path(&self) -> PathBuf {
        files::path(&self.dir, self.meta.base, Ext::Index)
    }

    /// The `.timeindex` file.
    pub fn time_index_path(&self) -> PathBuf {
        files::path(&self.dir, self.meta.base, Ext::TimeIndex)
    }

    /// Its sparse offset index, as the handle was made.
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.index
    }

    /// Its time index, as the handle was made.
    pub fn time_index(&self) -> &TimeIndex {
        &self.time
    }

    /// The batches in file order, each checked (header, length, CRC, offsets ascending). The
    /// first damaged batch is an `Err(`[`Error::Corrupt`]`)` with its byte position; the
    /// iterator ends after it (see [`verify`](Self::verify) for everything that is wrong).
    pub fn batches(&self) -> Batches<'_> {
        Batches { seg: self, pos: 0, next_offset: self.meta.base, done: false }
    }

    /// The records in offset order, owned; malformed framing is an `Err`.
    pub fn records(&self) -> SegmentRecords<'_> {
        SegmentRecords { batches: self.batches(), buf: Vec::new().into_iter(), done: false }
    }

    /// Reads the batch at byte `pos`, checking it; `next_offset` is the lowest base offset it
    /// may have.
    fn read_batch(&self, pos: u64, next_offset: u64) -> std::result::Result<Batch, (u64, Error)> {
        let path = self.log_path();
        let corrupt = |k| (pos, Error::corrupt(&path, pos, k));
        let left = self.meta.size - pos;
        if left < batch::HEADER_LEN as u64 {
            return Err(corrupt(CorruptKind::BatchLength));
        }
        let mut hdr = [0u8; batch::HEADER_LEN];
        self.opened.file.read_exact_at(&mut hdr, pos).at(&path).map_err(|e| (pos, e))?;
        let h = batch::BatchHeader::parse(&hdr, usize::try_from(left).unwrap_or(usize::MAX)).map_err(corrupt)?;
        let mut bytes = vec![0u8; h.length as usize];
        self.opened.file.read_exact_at(&mut bytes, pos).at(&path).map_err(|e| (pos, e))?;
        let h = batch::verify(&bytes).map_err(corrupt)?;
        if h.base_offset < next_offset || h.last_offset() - self.meta.base > u64::from(u32::MAX) {
            return Err(corrupt(CorruptKind::OffsetOrder));
        }
        Ok(Batch { info: BatchInfo::from_header(pos, &h), header: h, bytes, path })
    }

    /// Checks the whole segment and reports everything wrong, with where: every batch
    /// (length, CRC, magic, record framing, offsets in order and inside the segment), bytes
    /// after the last batch of a sealed segment, and each offset- and time-index entry against
    /// the batches it points at. After damage the walk resumes at the next valid batch, if
    /// there is one.
    ///
    /// # Errors
    /// Only I/O errors: damage is reported in the [`Verification`], not as an error.
    pub fn verify(&self) -> Result<Verification> {
        let path = self.log_path();
        let mut v = Verification::default();
        let mut pos = 0u64;
        let mut next_offset = self.meta.base;
        // (position, base offset, max timestamp) of every good batch.
        let mut good: Vec<(u64, u64, i64)> = Vec::new();
        while pos < self.meta.size {
            match self.read_batch(pos, next_offset) {
                Ok(b) => {
                    let mut it = RecordIter::new(&b.bytes, b.header);
                    let mut n = 0u64;
                    let mut framing = None;
                    loop {
                        match it.next_checked() {
                            Ok(Some(_)) => n += 1,
                            Ok(None) => break,
                            Err(k) => {
                                framing = Some(k);
                                break;
                            }
                        }
                    }
                    if framing.is_none() && n != u64::from(b.info.record_count) {
                        framing = Some(CorruptKind::BatchInvalid);
                    }
                    if let Some(kind) = framing {
                        v.problems.push(Problem::new(
                            &path,
                            pos,
                            kind,
                            "the records do not fill the batch as its header says",
                        ));
                    }
                    v.batches += 1;
                    v.records += n;
                    good.push((pos, b.info.base_offset, b.info.max_timestamp));
                    next_offset = b.info.last_offset + 1;
                    pos += u64::from(b.info.size);
                }
                Err((at, Error::Corrupt { kind, .. })) => {
                    let resume = super::log_file::valid_batch_after(
                        &*self.opened.file,
                        &path,
                        at,
                        self.meta.size,
                        next_offset,
                        false,
                    )?;
                    let what = match resume {
                        Some(r) => format!("at byte {at}: {kind}; valid batches resume at byte {r}"),
                        None => format!("at byte {at}: {kind}; no valid batch follows in this segment"),
                    };
                    v.problems.push(Problem::new(&path, at, kind, &what));
                    match resume {
                        Some(r) => pos = r,
                        None => break,
                    }
                }
                Err((_, e)) => return Err(e),
            }
        }
        v.bytes = self.meta.size;
        if !self.active {
            let file_len = self.opened.file.len().at(&path)?;
            if file_len > self.meta.size {
                v.problems.push(Problem::new(
                    &path,
                    self.meta.size,
                    CorruptKind::BatchLength,
                    &format!(
                        "at byte {}: {} bytes after the last batch of a sealed segment",
                        self.meta.size,
                        file_len - self.meta.size
                    ),
                ));
            }
            if v.problems.is_empty() && v.records != self.meta.records {
                v.problems.push(Problem::new(
                    &self.index_path(),
                    0,
                    CorruptKind::Metadata,
                    &format!("the summary says {} records, the log holds {}", self.meta.records, v.records),
                ));
            }
        }
        if !v.problems.is_empty() {
            // Index entries about damaged batches would only repeat the damage.
            return Ok(v);
        }
        let ipath = self.index_path();
        for e in self.index.entries() {
            if !good.iter().any(|&(p, o, _)| p == e.position && o == e.offset) {
                v.problems.push(Problem::new(
                    &ipath,
                    e.position,
                    CorruptKind::Metadata,
                    &format!(
                        "offset-index entry (offset {}, byte {}) does not point at a batch with that base offset",
                        e.offset, e.position
                    ),
                ));
            }
        }
        let tpath = self.time_index_path();
        for e in self.time.entries() {
            let at = good.iter().position(|&(_, o, _)| o == e.offset);
            let ok = at.is_some_and(|i| {
                let before = good[..i].iter().map(|g| g.2).max().unwrap_or(i64::MIN);
                good[i].2 == e.timestamp && before < e.timestamp
            });
            if !ok {
                v.problems.push(Problem::new(
                    &tpath,
                    e.offset,
                    CorruptKind::Metadata,
                    &format!(
                        "time-index entry (timestamp {}, offset {}) is not where that timestamp is first reached",
                        e.timestamp, e.offset
                    ),
                ));
            }
        }
        Ok(v)
    }
}

/// A batch's header as stored (the fields of Kafka's v2 batch), with where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchInfo {
    /// Byte position in the `.log` file.
    pub position: u64,
    /// Bytes of the whole batch, header included.
    pub size: u32,
    /// The stored CRC-32 (it matched: only checked batches are handed out).
    pub crc: u32,
    /// The attribute bits as stored.
    pub attributes: u16,
    /// Offset of the first record.
    pub base_offset: u64,
    /// The last offset the batch covers (compaction may have removed records below it).
    pub last_offset: u64,
    /// Records in the batch.
    pub record_count: u32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Whether the timestamps are create times or log-append times.
    pub timestamp_type: TimestampType,
    /// The compression codec (attribute bits 0–2; 0: none, the only one this version writes).
    pub codec: u8,
    /// The transactional flag (reserved: never set by this version).
    pub transactional: bool,
    /// The control-batch flag (reserved: never set by this version).
    pub control: bool,
    /// The time from which compaction may drop this batch's tombstones, once set.
    pub delete_horizon: Option<i64>,
    /// Producer id (−1: none).
    pub producer_id: i64,
    /// Producer epoch (−1: none).
    pub producer_epoch: i16,
    /// Sequence number of the first record (−1: none).
    pub base_sequence: i32,
}

impl BatchInfo {
    fn from_header(position: u64, h: &batch::BatchHeader) -> BatchInfo {
        BatchInfo {
            position,
            size: h.length,
            crc: h.crc,
            attributes: h.attributes,
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            record_count: h.record_count,
            base_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            timestamp_type: if h.attributes & ATTR_LOG_APPEND_TIME != 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            codec: (h.attributes & ATTR_CODEC_MASK) as u8,
            transactional: h.attributes & ATTR_TRANSACTIONAL != 0,
            control: h.attributes & ATTR_CONTROL != 0,
            delete_horizon: h.delete_horizon(),
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
        }
    }

    /// The codec's name: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn codec_name(&self) -> &'static str {
        match self.codec {
            0 => "none",
            1 => "gzip",
            2 => "snappy",
            3 => "lz4",
            4 => "zstd",
            _ => "unknown",
        }
    }
}

/// One checked batch: its header and its bytes.
#[derive(Debug, Clone)]
pub struct Batch {
    info: BatchInfo,
    header: batch::BatchHeader,
    bytes: Vec<u8>,
    path: PathBuf,
}

impl Batch {
    /// The header.
    pub fn info(&self) -> &BatchInfo {
        &self.info
    }

    /// The batch's bytes in the on-disk format (see [`crate::format`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its records; malformed framing is an `Err(`[`Error::Corrupt`]`)` (then the iterator
    /// ends).
    pub fn records(&self) -> BatchRecords<'_> {
        BatchRecords { it: RecordIter::new(&self.bytes, self.header), batch: self, done: false }
    }
}

/// The records of a [`Batch`].
#[derive(Debug)]
pub struct BatchRecords<'a> {
    it: RecordIter<'a>,
    batch: &'a Batch,
    done: bool,
}

impl<'a> Iterator for BatchRecords<'a> {
    type Item = Result<RecordRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.it.next_checked() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(k) => {
                self.done = true;
                Some(Err(Error::corrupt(&self.batch.path, self.batch.info.position, k)))
            }
        }
    }
}

/// The checked batches of a [`Segment`].
#[derive(Debug)]
pub struct Batches<'a> {
    seg: &'a Segment,
    pos: u64,
    next_offset: u64,
    done: bool,
}

impl Iterator for Batches<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.done || self.pos >= self.seg.meta.size {
            return None;
        }
        match self.seg.read_batch(self.pos, self.next_offset) {
            Ok(b) => {
                self.pos += u64::from(b.info.size);
                self.next_offset = b.info.last_offset + 1;
                Some(Ok(b))
            }
            Err((_, e)) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The records of a [`Segment`], owned.
#[derive(Debug)]
pub struct SegmentRecords<'a> {
    batches: Batches<'a>,
    buf: std::vec::IntoIter<StoredRecord>,
    done: bool,
}

impl Iterator for SegmentRecords<'_> {
    type Item = Result<StoredRecord>;

    fn next(&mut self) -> Option<Result<StoredRecord>> {
        loop {
            if let Some(r) = self.buf.next() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            let b = match self.batches.next()? {
                Ok(b) => b,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            match b.records().map(|r| r.map(|r| r.to_owned())).collect::<Result<Vec<_>>>() {
                Ok(v) => self.buf = v.into_iter(),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// What [`Segment::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verification {
    /// Good batches.
    pub batches: u64,
    /// Records in them.
    pub records: u64,
    /// Bytes of log checked.
    pub bytes: u64,
    /// Everything wrong, in file order (index problems last).
    pub problems: Vec<Problem>,
}

impl Verification {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One thing [`Segment::verify`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file (the `.log`, `.index` or `.timeindex`).
    pub file: PathBuf,
    /// Byte position in the `.log` the problem is at (for a time-index entry: the offset
    /// it names).
    pub position: u64,
    /// What kind of damage.
    pub kind: CorruptKind,
    /// A sentence saying what is wrong.
    pub message: String,
}

impl Problem {
    fn new(file: &Path, position: u64, kind: CorruptKind, message: &str) -> Problem {
        Problem { file: file.to_path_buf(), position, kind, message: message.to_owned() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}
