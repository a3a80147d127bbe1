//! The record batch: the unit that is written, checksummed and recovered.
//!
//! | byte | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `length` | u32 | bytes in the whole batch, this header included (≥ 68) |
//! | 4 | `crc` | u32 | CRC-32 (IEEE, `crc32fast`) of bytes `[8, length)` |
//! | 8 | `magic` | u8 | batch format version, 2 |
//! | 9 | reserved | u8 | 0 |
//! | 10 | `attributes` | u16 | bits 0–2 compression codec (0 none), bit 3 LogAppendTime, bit 4 transactional, bit 5 control batch, bit 6 delete horizon set; others 0 |
//! | 12 | `last_offset_delta` | u32 | last offset − base offset |
//! | 16 | `base_offset` | u64 | offset of the first record |
//! | 24 | `base_timestamp` | i64 | timestamp of the first record |
//! | 32 | `max_timestamp` | i64 | largest record timestamp |
//! | 40 | `delete_horizon` | i64 | with bit 6: when compaction may drop this batch's tombstones; `i64::MIN` otherwise |
//! | 48 | `producer_id` | i64 | −1: none |
//! | 56 | `producer_epoch` | i16 | −1: none |
//! | 58 | reserved | u16 | 0 |
//! | 60 | `base_sequence` | i32 | −1: none |
//! | 64 | `record_count` | u32 | records in the batch |
//! | 68 | records | | `record_count` records, back to back |
//!
//! All integers little-endian. Each record:
//!
//! | field | encoding |
//! |---|---|
//! | length | varint: bytes after this field |
//! | attributes | u8, 0 |
//! | timestamp delta | zig-zag varint, `timestamp − base_timestamp` |
//! | offset delta | varint, `offset − base_offset` |
//! | key | zig-zag varint length (−1 = none), bytes |
//! | value | zig-zag varint length (−1 = tombstone), bytes |
//! | header count | varint |
//! | headers | per header: zig-zag varint key length, UTF-8 key, zig-zag varint value length (−1 = null), bytes |
//!
//! Varints are unsigned LEB128; zig-zag maps signed to unsigned as in protobuf. The CRC covers
//! every byte after itself, so a torn write, a zero-filled tail or appended garbage cannot pass
//! as a batch, and a zero length (the start of a preallocated, never-written region) is never a
//! valid batch.

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::error::CorruptKind;
use crate::record::{Record, RecordRef};

/// Bytes in a batch header.
pub const HEADER_LEN: usize = 68;
/// Current batch format version.
pub const MAGIC: u8 = 2;

pub(crate) const OFF_LENGTH: usize = 0;
pub(crate) const OFF_CRC: usize = OFF_LENGTH + 4;
pub(crate) const OFF_MAGIC: usize = OFF_CRC + 4;
pub(crate) const OFF_RESERVED1: usize = OFF_MAGIC + 1;
pub(crate) const OFF_ATTRIBUTES: usize = OFF_RESERVED1 + 1;
pub(crate) const OFF_LAST_DELTA: usize = OFF_ATTRIBUTES + 2;
pub(crate) const OFF_BASE_OFFSET: usize = OFF_LAST_DELTA + 4;
pub(crate) const OFF_BASE_TS: usize = OFF_BASE_OFFSET + 8;
pub(crate) const OFF_MAX_TS: usize = OFF_BASE_TS + 8;
pub(crate) const OFF_DELETE_HORIZON: usize = OFF_MAX_TS + 8;
pub(crate) const OFF_PRODUCER_ID: usize = OFF_DELETE_HORIZON + 8;
pub(crate) const OFF_PRODUCER_EPOCH: usize = OFF_PRODUCER_ID + 8;
pub(crate) const OFF_RESERVED2: usize = OFF_PRODUCER_EPOCH + 2;
pub(crate) const OFF_BASE_SEQUENCE: usize = OFF_RESERVED2 + 2;
pub(crate) const OFF_COUNT: usize = OFF_BASE_SEQUENCE + 4;
const _: () = assert!(OFF_COUNT + 4 == HEADER_LEN);

/// Attribute bits 0–2: the compression codec of the records area (0: none). Reserved: this
/// version writes uncompressed batches and refuses others.
#[allow(dead_code)]
pub(crate) const ATTR_CODEC_MASK: u16 = 0b111;
/// Attribute bit: timestamps are log-append times.
pub(crate) const ATTR_LOG_APPEND_TIME: u16 = 1 << 3;
/// Attribute bit: the batch belongs to a transaction (reserved: not written by this version).
#[allow(dead_code)]
pub(crate) const ATTR_TRANSACTIONAL: u16 = 1 << 4;
/// Attribute bit: a control batch (transaction markers; reserved: not written by this version).
#[allow(dead_code)]
pub(crate) const ATTR_CONTROL: u16 = 1 << 5;
/// Attribute bit: `delete_horizon` holds the time compaction may drop the batch's tombstones.
pub(crate) const ATTR_DELETE_HORIZON: u16 = 1 << 6;
/// Bits this version reads. Any other bit, a codec, the transactional or the control bit
/// makes a checksum-valid batch [`CorruptKind::UnsupportedFeature`]: refused, never misread.
const ATTR_KNOWN: u16 = ATTR_LOG_APPEND_TIME | ATTR_DELETE_HORIZON;

/// `delete_horizon` when none is set.
pub(crate) const NO_HORIZON: i64 = i64::MIN;

/// Offsets stay below this (Kafka's offsets are signed 64-bit; the last one is kept free).
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// Hard upper bound on a batch length read from disk, whatever the configuration says. Lengths
/// above it are corrupt by definition, so no allocation is ever driven past it.
pub const MAX_BATCH_LEN: usize = i32::MAX as usize;

/// Byte offsets of the header fields, for tests that damage them one by one.
#[doc(hidden)]
#[allow(dead_code)]
pub const FIELD_OFFSETS: &[(&str, usize)] = &[
    ("length", OFF_LENGTH),
    ("crc", OFF_CRC),
    ("magic", OFF_MAGIC),
    ("reserved1", OFF_RESERVED1),
    ("attributes", OFF_ATTRIBUTES),
    ("last_offset_delta", OFF_LAST_DELTA),
    ("base_offset", OFF_BASE_OFFSET),
    ("base_timestamp", OFF_BASE_TS),
    ("max_timestamp", OFF_MAX_TS),
    ("delete_horizon", OFF_DELETE_HORIZON),
    ("producer_id", OFF_PRODUCER_ID),
    ("producer_epoch", OFF_PRODUCER_EPOCH),
    ("reserved2", OFF_RESERVED2),
    ("base_sequence", OFF_BASE_SEQUENCE),
    ("record_count", OFF_COUNT),
];

/// A parsed batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Total bytes of the batch.
    pub length: u32,
    /// Stored checksum.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: u16,
    /// Offset of the first record.
    pub base_offset: u64,
    /// `last_offset − base_offset`.
    pub last_offset_delta: u32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// When compaction may drop this batch's tombstones (`i64::MIN`: not yet set).
    pub delete_horizon: i64,
    /// Producer id (−1: none).
    pub producer_id: i64,
    /// Producer epoch (−1: none).
    pub producer_epoch: i16,
    /// Sequence number of the first record (−1: none).
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: u32,
}

impl BatchHeader {
    /// Offset of the last record (or last offset the batch covers).
    pub fn last_offset(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.last_offset_delta))
    }

    /// One past [`last_offset`](Self::last_offset).
    pub fn next_offset(&self) -> u64 {
        self.last_offset().saturating_add(1)
    }

    /// The delete horizon compaction set on the batch, if any.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.delete_horizon)
    }

    /// Parses and sanity-checks a header (not the CRC). `max_len` bounds the length field (the
    /// bytes left in the file, say); a length outside `[HEADER_LEN, max_len]` is
    /// [`CorruptKind::BatchLength`].
    pub fn parse(buf: &[u8], max_len: usize) -> Result<BatchHeader, CorruptKind> {
        let Some(h) = buf.get(..HEADER_LEN) else { return Err(CorruptKind::BatchLength) };
        let length = LE::read_u32(&h[OFF_LENGTH..]);
        let len = length as usize;
        if len < HEADER_LEN || len > max_len.min(MAX_BATCH_LEN) {
            return Err(CorruptKind::BatchLength);
        }
        if h[OFF_MAGIC] != MAGIC {
            return Err(CorruptKind::BatchMagic);
        }
        let header = BatchHeader {
            length,
            crc: LE::read_u32(&h[OFF_CRC..]),
            attributes: LE::read_u16(&h[OFF_ATTRIBUTES..]),
            last_offset_delta: LE::read_u32(&h[OFF_LAST_DELTA..]),
            base_offset: LE::read_u64(&h[OFF_BASE_OFFSET..]),
            base_timestamp: LE::read_i64(&h[OFF_BASE_TS..]),
            max_timestamp: LE::read_i64(&h[OFF_MAX_TS..]),
            delete_horizon: LE::read_i64(&h[OFF_DELETE_HORIZON..]),
            producer_id: LE::read_i64(&h[OFF_PRODUCER_ID..]),
            producer_epoch: LE::read_i16(&h[OFF_PRODUCER_EPOCH..]),
            base_sequence: LE::read_i32(&h[OFF_BASE_SEQUENCE..]),
            record_count: LE::read_u32(&h[OFF_COUNT..]),
        };
        if h[OFF_RESERVED1] != 0
            || LE::read_u16(&h[OFF_RESERVED2..]) != 0
            || u64::from(header.record_count) > u64::from(header.last_offset_delta) + 1
            || header.base_offset.checked_add(u64::from(header.last_offset_delta)).is_none_or(|l| l >= MAX_OFFSET)
            || (header.attributes & ATTR_DELETE_HORIZON == 0) != (header.delete_horizon == NO_HORIZON)
        {
            return Err(CorruptKind::BatchInvalid);
        }
        Ok(header)
    }
}

/// Checks a whole batch (`buf` is exactly `length` bytes): header, CRC and record framing.
/// Returns the header. Never allocates.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, CorruptKind> {
    let header = BatchHeader::parse(buf, buf.len())?;
    if header.length as usize != buf.len() {
        return Err(CorruptKind::BatchLength);
    }
    if crc32fast::hash(&buf[OFF_MAGIC..]) != header.crc {
        return Err(CorruptKind::BatchChecksum);
    }
    check_features(&header)?;
    // Walk the records: framing must fill the batch exactly, offsets strictly increase.
    let mut it = RecordIter::new(buf, header);
    let mut n = 0u32;
    while let Some(r) = it.next_checked()? {
        let _ = r;
        n += 1;
    }
    if n != header.record_count || !it.rest_is_empty() {
        return Err(CorruptKind::BatchInvalid);
    }
    Ok(header)
}

/// Checks a batch's header, length and CRC, not its record framing: what readers and recovery
/// need, since a matching CRC means the bytes are exactly those the writer produced. Record
/// iteration checks framing as it goes and stops at anything malformed.
pub fn verify(buf: &[u8]) -> Result<BatchHeader, CorruptKind> {
    let header = BatchHeader::parse(buf, buf.len())?;
    if header.length as usize != buf.len() {
        return Err(CorruptKind::BatchLength);
    }
    if crc32fast::hash(&buf[OFF_MAGIC..]) != header.crc {
        return Err(CorruptKind::BatchChecksum);
    }
    check_features(&header)?;
    Ok(header)
}

/// Refuses a (checksum-valid) batch that uses a feature this version does not read.
pub(crate) fn check_features(header: &BatchHeader) -> Result<(), CorruptKind> {
    if header.attributes & !ATTR_KNOWN != 0 {
        return Err(CorruptKind::UnsupportedFeature);
    }
    Ok(())
}

/// Records between two entries of a [`record_directory`].
pub(crate) const DIR_STRIDE: u32 = 8;

/// For a checked batch whose offsets have no gap (as the writer makes them: record `i` at
/// `base_offset + i`) and that holds at least `4 × DIR_STRIDE` records: the byte position,
/// from the batch start, of records `0, DIR_STRIDE, 2 × DIR_STRIDE, …`, found by a full
/// decoding walk. `None` for other batches, or when a record is malformed.
pub(crate) fn record_directory(buf: &[u8], header: BatchHeader) -> Option<Box<[u32]>> {
    let dense = u64::from(header.record_count) == u64::from(header.last_offset_delta) + 1;
    if !dense || header.record_count < 4 * DIR_STRIDE || u32::try_from(buf.len()).is_err() {
        return None;
    }
    let mut it = RecordIter::new(buf, header);
    let mut dir = Vec::with_capacity(header.record_count.div_ceil(DIR_STRIDE) as usize);
    for i in 0..header.record_count {
        if i % DIR_STRIDE == 0 {
            dir.push((buf.len() - it.rest.len()) as u32);
        }
        it.next_checked().ok()??;
    }
    it.rest_is_empty().then(|| dir.into_boxed_slice())
}

/// Iterates the records of a batch already checked with [`validate`] or [`verify`].
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    header: BatchHeader,
    rest: &'a [u8],
    remaining: u32,
    last_delta: Option<u64>,
}

impl<'a> RecordIter<'a> {
    /// Iterates the batch in `buf` (header included).
    pub fn new(buf: &'a [u8], header: BatchHeader) -> Self {
        RecordIter {
            header,
            rest: buf.get(HEADER_LEN..).unwrap_or(&[]),
            remaining: header.record_count,
            last_delta: None,
        }
    }

    /// Iterates the dense batch in `buf` (header included) from the record that
    /// [`record_directory`] entry `dir` lists at or below `offset`: the records before it are
    /// passed over without being read. `dir` must be that function's result for these bytes.
    pub(crate) fn from_directory(buf: &'a [u8], header: BatchHeader, dir: &[u32], offset: u64) -> Self {
        let want = offset.saturating_sub(header.base_offset) / u64::from(DIR_STRIDE);
        let j = usize::try_from(want).unwrap_or(usize::MAX).min(dir.len().saturating_sub(1));
        let Some(&pos) = dir.get(j) else { return RecordIter::new(buf, header) };
        let skipped = j as u32 * DIR_STRIDE;
        RecordIter {
            header,
            rest: buf.get(pos as usize..).unwrap_or(&[]),
            remaining: header.record_count.saturating_sub(skipped),
            // Dense: record i has offset delta i.
            last_delta: skipped.checked_sub(1).map(u64::from),
        }
    }

    fn rest_is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Passes over the records with offsets below `offset`, decoding only their length and
    /// offset delta.
    pub fn skip_before(&mut self, offset: u64) -> Result<(), CorruptKind> {
        let bad = CorruptKind::BatchInvalid;
        while self.remaining > 0 {
            let mut outer = Reader::new(self.rest);
            let len = usize::try_from(outer.uvarint().ok_or(bad)?).map_err(|_| bad)?;
            let body = outer.take(len).ok_or(bad)?;
            let mut r = Reader::new(body);
            r.take(1).ok_or(bad)?;
            r.varint().ok_or(bad)?;
            let off_delta = r.uvarint().ok_or(bad)?;
            if off_delta > u64::from(self.header.last_offset_delta) || self.last_delta.is_some_and(|d| off_delta <= d) {
                return Err(bad);
            }
            if self.header.base_offset + off_delta >= offset {
                return Ok(());
            }
            self.last_delta = Some(off_delta);
            self.rest = outer.rest();
            self.remaining -= 1;
        }
        Ok(())
    }

    /// The next record with its encoded bytes (length prefix included), which stay valid in
    /// any batch with the same base offset and base timestamp.
    #[inline]
    pub fn next_with_bytes(&mut self) -> Result<Option<(RecordRef<'a>, &'a [u8])>, CorruptKind> {
        let before = self.rest;
        match self.next_checked()? {
            Some(r) => {
                let used = before.len() - self.rest.len();
                Ok(Some((r, before.get(..used).unwrap_or(&[]))))
            }
            None => Ok(None),
        }
    }

    /// The next record, or the reason the bytes are malformed.
    #[inline]
    pub fn next_checked(&mut self) -> Result<Option<RecordRef<'a>>, CorruptKind> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let bad = CorruptKind::BatchInvalid;
        let mut outer = Reader::new(self.rest);
        let len = outer.uvarint().ok_or(bad)?;
        let len = usize::try_from(len).map_err(|_| bad)?;
        let body = outer.take(len).ok_or(bad)?;
        self.rest = outer.rest();

        let mut r = Reader::new(body);
        if r.take(1).ok_or(bad)? != [0] {
            return Err(bad);
        }
        let ts_delta = r.varint().ok_or(bad)?;
        let off_delta = r.uvarint().ok_or(bad)?;
        if off_delta > u64::from(self.header.last_offset_delta) || self.last_delta.is_some_and(|d| off_delta <= d) {
            return Err(bad);
        }
        self.last_delta = Some(off_delta);
        let key = r.bytes().ok_or(bad)?.map_err(|_| bad)?;
        let value = r.bytes().ok_or(bad)?.map_err(|_| bad)?;
        let headers_count = r.uvarint().ok_or(bad)?;
        let headers_count = u32::try_from(headers_count).map_err(|_| bad)?;
        let headers = r.rest();
        if headers_count > 0 {
            // Check the header framing now so HeaderIter never meets bad bytes.
            let mut h = Reader::new(headers);
            for _ in 0..headers_count {
                let k = h.bytes().ok_or(bad)?.map_err(|_| bad)?.ok_or(bad)?;
                std::str::from_utf8(k).map_err(|_| bad)?;
                h.bytes().ok_or(bad)?.map_err(|_| bad)?;
            }
            if !h.rest().is_empty() {
                return Err(bad);
            }
        } else if !headers.is_empty() {
            return Err(bad);
        }
        Ok(Some(RecordRef {
            offset: self.header.base_offset + off_delta,
            timestamp: self.header.base_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers_count,
            headers,
        }))
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordRef<'a>;
    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        self.next_checked().ok().flatten()
    }
}

/// A bounds-checked cursor over bytes with varint helpers.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }

    #[inline]
    pub(crate) fn uvarint(&mut self) -> Option<u64> {
        // One- and two-byte varints are by far the most common (lengths and deltas).
        match *self.buf {
            [b, ref rest @ ..] if b < 0x80 => {
                self.buf = rest;
                Some(u64::from(b))
            }
            [b0, b1, ref rest @ ..] if b1 < 0x80 => {
                self.buf = rest;
                Some(u64::from(b0 & 0x7f) | (u64::from(b1) << 7))
            }
            _ => self.uvarint_slow(),
        }
    }

    #[cold]
    fn uvarint_slow(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A zig-zag length-prefixed byte string: `Some(Ok(None))` for length −1,
    /// `Some(Err(()))` for any other negative length, `None` when bytes run out.
    #[allow(clippy::type_complexity)]
    #[inline]
    pub(crate) fn bytes(&mut self) -> Option<Result<Option<&'a [u8]>, ()>> {
        let len = self.varint()?;
        if len == -1 {
            return Some(Ok(None));
        }
        let Ok(len) = usize::try_from(len) else { return Some(Err(())) };
        Some(Ok(Some(self.take(len)?)))
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn varint_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => varint_len(b.len() as i64) + b.len(),
    }
}

fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Encodes records into a batch, reusing one buffer.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    base_offset: u64,
    base_ts: i64,
    max_ts: i64,
    count: u32,
    last_delta: u64,
    delete_horizon: Option<i64>,
    /// The base timestamp was given (`begin_like`), not taken from the first record.
    fixed_base_ts: bool,
}

impl BatchBuilder {
    /// A builder with an empty buffer.
    pub fn new() -> Self {
        BatchBuilder::default()
    }

    /// Starts a batch whose first record gets `base_offset`.
    pub fn begin(&mut self, base_offset: u64) {
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        self.base_offset = base_offset;
        self.count = 0;
        self.last_delta = 0;
        self.base_ts = 0;
        self.max_ts = i64::MIN;
        self.delete_horizon = None;
        self.fixed_base_ts = false;
    }

    /// Starts a batch with a given base offset *and* base timestamp, to take records copied
    /// verbatim from a batch with the same two ([`push_encoded`](Self::push_encoded)).
    pub fn begin_like(&mut self, base_offset: u64, base_timestamp: i64) {
        self.begin(base_offset);
        self.base_ts = base_timestamp;
        self.fixed_base_ts = true;
    }

    /// Appends a record's encoded bytes (as [`RecordIter::next_with_bytes`] returns them) from a
    /// batch with this batch's base offset and base timestamp; `offset` and `ts` are the
    /// record's. Nothing is re-encoded.
    pub fn push_encoded(&mut self, encoded: &[u8], offset: u64, ts: i64) {
        self.max_ts = self.max_ts.max(ts);
        self.last_delta = offset - self.base_offset;
        self.count += 1;
        self.buf.extend_from_slice(encoded);
    }

    /// Stamps the batch with a delete horizon (compaction's tombstone deadline).
    pub fn set_delete_horizon(&mut self, horizon: Option<i64>) {
        self.delete_horizon = horizon;
    }

    /// Adds `record` at `base_offset + offset_delta` with timestamp `ts`.
    pub fn push(&mut self, record: &Record<'_>, offset_delta: u64, ts: i64) {
        if self.count == 0 && !self.fixed_base_ts {
            self.base_ts = ts;
        }
        self.max_ts = self.max_ts.max(ts);
        self.last_delta = offset_delta;
        self.count += 1;
        // Size the body first, then encode straight into the batch: one copy of the bytes.
        let ts_delta = ts.wrapping_sub(self.base_ts);
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        let mut body = 1 + varint_len(ts_delta) + uvarint_len(offset_delta) + bytes_len(key) + bytes_len(value);
        body += uvarint_len(record.headers.len() as u64);
        for h in &record.headers {
            body += bytes_len(Some(h.key.as_bytes())) + bytes_len(h.value.as_deref());
        }
        let out = &mut self.buf;
        out.reserve(body + 10);
        put_uvarint(out, body as u64);
        out.push(0);
        put_varint(out, ts_delta);
        put_uvarint(out, offset_delta);
        put_bytes(out, key);
        put_bytes(out, value);
        put_uvarint(out, record.headers.len() as u64);
        for h in &record.headers {
            put_bytes(out, Some(h.key.as_bytes()));
            put_bytes(out, h.value.as_deref());
        }
    }

    /// Pushes a record already read from the log, keeping its offset and timestamp.
    pub fn push_ref(&mut self, r: &RecordRef<'_>) {
        let record = Record {
            key: r.key().map(std::borrow::Cow::Borrowed),
            value: r.value().map(std::borrow::Cow::Borrowed),
            headers: r
                .headers()
                .map(|(k, v)| crate::record::Header {
                    key: std::borrow::Cow::Borrowed(k),
                    value: v.map(std::borrow::Cow::Borrowed),
                })
                .collect(),
            timestamp: Some(r.timestamp()),
        };
        self.push(&record, r.offset() - self.base_offset, r.timestamp());
    }

    /// Bytes the batch has so far (header included).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Largest timestamp pushed so far.
    pub fn max_timestamp(&self) -> i64 {
        self.max_ts
    }

    /// Fills in the header and checksum and returns the finished batch. `last_offset_delta`
    /// may exceed the last record's delta (a batch that covers compacted-away offsets).
    pub fn finish(&mut self, attributes: u16, last_offset_delta: Option<u64>) -> (&[u8], BatchHeader) {
        let last_delta = last_offset_delta.unwrap_or(self.last_delta).max(self.last_delta);
        let attributes = match self.delete_horizon {
            Some(_) => attributes | ATTR_DELETE_HORIZON,
            None => attributes & !ATTR_DELETE_HORIZON,
        };
        let header = BatchHeader {
            length: u32::try_from(self.buf.len()).unwrap_or(u32::MAX),
            crc: 0,
            attributes,
            base_offset: self.base_offset,
            last_offset_delta: u32::try_from(last_delta).unwrap_or(u32::MAX),
            base_timestamp: self.base_ts,
            max_timestamp: if self.count == 0 { self.base_ts } else { self.max_ts },
            delete_horizon: self.delete_horizon.unwrap_or(NO_HORIZON),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: self.count,
        };
        let h = &mut self.buf[..HEADER_LEN];
        LE::write_u32(&mut h[OFF_LENGTH..], header.length);
        h[OFF_MAGIC] = MAGIC;
        h[OFF_RESERVED1] = 0;
        LE::write_u16(&mut h[OFF_ATTRIBUTES..], attributes);
        LE::write_u32(&mut h[OFF_LAST_DELTA..], header.last_offset_delta);
        LE::write_u64(&mut h[OFF_BASE_OFFSET..], header.base_offset);
        LE::write_i64(&mut h[OFF_BASE_TS..], header.base_timestamp);
        LE::write_i64(&mut h[OFF_MAX_TS..], header.max_timestamp);
        LE::write_i64(&mut h[OFF_DELETE_HORIZON..], header.delete_horizon);
        LE::write_i64(&mut h[OFF_PRODUCER_ID..], header.producer_id);
        LE::write_i16(&mut h[OFF_PRODUCER_EPOCH..], header.producer_epoch);
        LE::write_u16(&mut h[OFF_RESERVED2..], 0);
        LE::write_i32(&mut h[OFF_BASE_SEQUENCE..], header.base_sequence);
        LE::write_u32(&mut h[OFF_COUNT..], header.record_count);
        let crc = crc32fast::hash(&self.buf[OFF_MAGIC..]);
        LE::write_u32(&mut self.buf[OFF_CRC..], crc);
        (&self.buf, BatchHeader { crc, ..header })
    }
}

#[cfg(test)]
mod tests;
