//! An independent reading of the on-disk formats, written from the format tables in the
//! documentation of `src/batch.rs`, `src/partition/checkpoint.rs` and `src/segment/*.rs`.
//! It cross-checks partlog's batch decoder, and repairs the checksums of fuzzed files so that
//! the fuzzer gets past them.

use partlog::StoredRecord;

/// Bytes of a batch header.
pub const HEADER_LEN: usize = 68;
/// Offsets are signed 64-bit, as in Kafka; the next offset after a batch is at most this, so
/// a batch's last offset is below it.
pub const MAX_OFFSET: u64 = i64::MAX as u64;
/// "No timestamp" in segment summaries.
pub const NO_TS: i64 = i64::MIN;

/// CRC-32 (IEEE, reflected, as zlib), bit by bit.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Little-endian field readers and writers (callers check bounds).
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
/// Reads a little-endian u64.
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
/// Writes a little-endian u32.
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
/// Writes a little-endian u64.
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A decoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Length field (= bytes of the batch).
    pub length: u32,
    /// Stored CRC.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: u16,
    /// Last offset − base offset.
    pub last_offset_delta: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Timestamp the record deltas are relative to.
    pub base_timestamp: i64,
    /// Header's largest timestamp.
    pub max_timestamp: i64,
    /// Delete horizon (`i64::MIN` unless attribute bit 6 is set).
    pub delete_horizon: i64,
    /// Header's record count.
    pub record_count: u32,
    /// The records.
    pub records: Vec<StoredRecord>,
}

impl Batch {
    /// Last offset the batch covers.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }
    /// One past it.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }
}

struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    /// Unsigned LEB128, at most 64 bits.
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = *self.take(1)?.first()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 || shift > 63 {
                return None;
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
            shift += 7;
        }
    }

    fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    /// Zig-zag length, −1 for none, then the bytes. `Err` for a malformed field.
    fn nullable(&mut self) -> Result<Option<&'a [u8]>, &'static str> {
        match self.varint().ok_or("truncated length")? {
            -1 => Ok(None),
            n if n < -1 => Err("negative length"),
            n => Ok(Some(self.take(usize::try_from(n).map_err(|_| "huge length")?).ok_or("truncated bytes")?)),
        }
    }
}

/// Decodes and checks a whole batch (`buf` holds exactly the batch).
pub fn decode(buf: &[u8]) -> Result<Batch, &'static str> {
    if buf.len() < HEADER_LEN {
        return Err("shorter than a header");
    }
    let length = get_u32(buf, 0);
    if length as usize != buf.len() || length > i32::MAX as u32 {
        return Err("length field does not match");
    }
    let crc = get_u32(buf, 4);
    if crc32(&buf[8..]) != crc {
        return Err("checksum");
    }
    if buf[8] != 2 {
        return Err("magic");
    }
    let attributes = u16::from_le_bytes([buf[10], buf[11]]);
    // Known bits: 3 (LogAppendTime) and 6 (delete horizon); byte 9 and bytes 58..60 reserved.
    if attributes & !((1 << 3) | (1 << 6)) != 0 || buf[9] != 0 || buf[58] != 0 || buf[59] != 0 {
        return Err("reserved or unsupported bits set");
    }
    let last_offset_delta = get_u32(buf, 12);
    let base_offset = get_u64(buf, 16);
    let base_timestamp = get_u64(buf, 24) as i64;
    let max_timestamp = get_u64(buf, 32) as i64;
    let delete_horizon = get_u64(buf, 40) as i64;
    if (attributes & (1 << 6) != 0) != (delete_horizon != i64::MIN) {
        return Err("delete horizon without its flag, or the flag without a horizon");
    }
    let record_count = get_u32(buf, 64);
    if u64::from(record_count) > u64::from(last_offset_delta) + 1 {
        return Err("more records than offsets");
    }
    match base_offset.checked_add(u64::from(last_offset_delta)) {
        Some(last) if last < MAX_OFFSET => {}
        _ => return Err("last offset past the offset space"),
    }
    let mut cur = Cur(&buf[HEADER_LEN..]);
    let mut records = Vec::new();
    let mut prev_delta: Option<u64> = None;
    for _ in 0..record_count {
        let len = cur.uvarint().ok_or("record length")?;
        let mut body = Cur(cur.take(usize::try_from(len).map_err(|_| "record length")?).ok_or("record overruns")?);
        if body.take(1).ok_or("record attributes")? != [0] {
            return Err("record attributes must be 0");
        }
        let ts_delta = body.varint().ok_or("timestamp delta")?;
        let off_delta = body.uvarint().ok_or("offset delta")?;
        if off_delta > u64::from(last_offset_delta) || prev_delta.is_some_and(|p| off_delta <= p) {
            return Err("offset delta out of order");
        }
        prev_delta = Some(off_delta);
        let key = body.nullable()?.map(<[u8]>::to_vec);
        let value = body.nullable()?.map(<[u8]>::to_vec);
        let count = body.uvarint().ok_or("header count")?;
        if count > u64::from(u32::MAX) {
            return Err("header count");
        }
        let mut headers = Vec::new();
        for _ in 0..count {
            let k = body.nullable()?.ok_or("null header key")?;
            let k = std::str::from_utf8(k).map_err(|_| "header key not UTF-8")?;
            let v = body.nullable()?.map(<[u8]>::to_vec);
            headers.push((k.to_owned(), v));
        }
        if !body.0.is_empty() {
            return Err("bytes after the headers");
        }
        records.push(StoredRecord {
            offset: base_offset + off_delta,
            timestamp: base_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers,
        });
    }
    if !cur.0.is_empty() {
        return Err("bytes after the last record");
    }
    Ok(Batch {
        delete_horizon,
        length,
        crc,
        attributes,
        last_offset_delta,
        base_offset,
        base_timestamp,
        max_timestamp,
        record_count,
        records,
    })
}

/// A segment summary (as in index headers and the checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Base offset (file name).
    pub base: u64,
    /// Bytes of valid batches.
    pub size: u64,
    /// One past the last offset.
    pub next_offset: u64,
    /// Records.
    pub records: u64,
    /// First batch's base timestamp.
    pub first_ts: i64,
    /// Largest batch max timestamp.
    pub max_ts: i64,
    /// Base offset of the batch that first reached it.
    pub max_ts_offset: u64,
}

/// Summarizes the valid prefix of a segment's log, as recovery would.
pub fn scan(log: &[u8], base: u64) -> (Meta, Vec<Batch>) {
    let mut m =
        Meta { base, size: 0, next_offset: base, records: 0, first_ts: NO_TS, max_ts: NO_TS, max_ts_offset: base };
    let mut batches = Vec::new();
    let mut pos = 0usize;
    while log.len() - pos >= HEADER_LEN {
        let len = get_u32(log, pos) as usize;
        if len < HEADER_LEN || len > log.len() - pos {
            break;
        }
        let Ok(b) = decode(&log[pos..pos + len]) else { break };
        if b.base_offset < m.next_offset || b.last_offset() - base > u64::from(u32::MAX) {
            break;
        }
        if m.records == 0 && m.first_ts == NO_TS {
            m.first_ts = b.base_timestamp;
        }
        if b.max_timestamp > m.max_ts || m.max_ts == NO_TS {
            m.max_ts = b.max_timestamp;
            m.max_ts_offset = b.base_offset;
        }
        m.records += u64::from(b.record_count);
        m.next_offset = b.next_offset();
        pos += len;
        m.size = pos as u64;
        batches.push(b);
    }
    (m, batches)
}

/// Repairs a fuzzed log: walks the batches by their length fields and, with `offsets`,
/// renumbers each to follow the previous one, then recomputes every checksum.
pub fn fix_log(log: &mut [u8], base: u64, offsets: bool) {
    let mut pos = 0usize;
    let mut next = base;
    while log.len() - pos >= HEADER_LEN {
        let len = get_u32(log, pos) as usize;
        if len < HEADER_LEN || len > log.len() - pos {
            break;
        }
        let b = &mut log[pos..pos + len];
        if offsets {
            put_u64(b, 16, next);
        }
        let crc = crc32(&b[8..]);
        put_u32(b, 4, crc);
        next = get_u64(b, 16).saturating_add(u64::from(get_u32(b, 12))).saturating_add(1);
        pos += len;
    }
}

fn put_meta(e: &mut [u8], m: &Meta) {
    put_u64(e, 0, m.base);
    put_u64(e, 8, m.size);
    put_u64(e, 16, m.next_offset);
    put_u64(e, 24, m.records);
    put_u64(e, 32, m.first_ts as u64);
    put_u64(e, 40, m.max_ts as u64);
    put_u64(e, 48, m.max_ts_offset);
}

/// `partition.checkpoint` contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Clean shutdown flag.
    pub clean: bool,
    /// Log start offset.
    pub log_start: u64,
    /// Base of the first segment to re-validate.
    pub recovery_point: u64,
    /// Log end offset.
    pub next_offset: u64,
    /// Compaction has cleaned everything below this.
    pub cleaner_offset: u64,
    /// Segment summaries.
    pub segments: Vec<Meta>,
}

const CP_HEADER: usize = 48;
const CP_VERSION: u16 = 2;
const CP_ENTRY: usize = 56;

impl Checkpoint {
    /// Encodes with a correct checksum.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; CP_HEADER + CP_ENTRY * self.segments.len() + 4];
        out[..4].copy_from_slice(b"PLCP");
        out[4..6].copy_from_slice(&CP_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&u16::from(self.clean).to_le_bytes());
        put_u64(&mut out, 8, self.log_start);
        put_u64(&mut out, 16, self.recovery_point);
        put_u64(&mut out, 24, self.next_offset);
        put_u32(&mut out, 32, self.segments.len() as u32);
        put_u64(&mut out, 40, self.cleaner_offset);
        for (i, m) in self.segments.iter().enumerate() {
            put_meta(&mut out[CP_HEADER + i * CP_ENTRY..], m);
        }
        fix_checkpoint(&mut out);
        out
    }
}

/// Repairs a fuzzed checkpoint: magic, version, segment count from the length, checksum.
pub fn fix_checkpoint(buf: &mut Vec<u8>) {
    if buf.len() < CP_HEADER + 4 {
        buf.resize(CP_HEADER + 4, 0);
    }
    let n = (buf.len() - CP_HEADER - 4) / CP_ENTRY;
    buf.truncate(CP_HEADER + n * CP_ENTRY + 4);
    buf[..4].copy_from_slice(b"PLCP");
    buf[4..6].copy_from_slice(&CP_VERSION.to_le_bytes());
    put_u32(buf, 32, n as u32);
    let end = buf.len() - 4;
    let crc = crc32(&buf[..end]);
    put_u32(buf, end, crc);
}

/// Repairs a fuzzed `.index`: magic, version, base, entry count, both checksums; with `meta`,
/// the summary too.
pub fn fix_index(buf: &mut Vec<u8>, base: u64, meta: Option<&Meta>) {
    const H: usize = 80;
    if buf.len() < H {
        buf.resize(H, 0);
    }
    let n = (buf.len() - H) / 8;
    buf.truncate(H + n * 8);
    buf[..4].copy_from_slice(b"PLIX");
    buf[4..6].copy_from_slice(&1u16.to_le_bytes());
    if let Some(m) = meta {
        put_meta(&mut buf[8..], m);
    }
    put_u64(buf, 8, base);
    put_u32(buf, 64, n as u32);
    let body_crc = crc32(&buf[H..]);
    put_u32(buf, 68, body_crc);
    let crc = crc32(&buf[..76]);
    put_u32(buf, 76, crc);
}

/// Repairs a fuzzed `.timeindex`: magic, version, base, entry count, both checksums.
pub fn fix_time_index(buf: &mut Vec<u8>, base: u64) {
    const H: usize = 32;
    if buf.len() < H {
        buf.resize(H, 0);
    }
    let n = (buf.len() - H) / 12;
    buf.truncate(H + n * 12);
    buf[..4].copy_from_slice(b"PLTX");
    buf[4..6].copy_from_slice(&1u16.to_le_bytes());
    put_u64(buf, 8, base);
    put_u32(buf, 16, n as u32);
    let body_crc = crc32(&buf[H..]);
    put_u32(buf, 20, body_crc);
    let crc = crc32(&buf[..28]);
    put_u32(buf, 28, crc);
}

fn get_meta(e: &[u8]) -> Meta {
    Meta {
        base: get_u64(e, 0),
        size: get_u64(e, 8),
        next_offset: get_u64(e, 16),
        records: get_u64(e, 24),
        first_ts: get_u64(e, 32) as i64,
        max_ts: get_u64(e, 40) as i64,
        max_ts_offset: get_u64(e, 48),
    }
}

impl Checkpoint {
    /// Decodes a checkpoint; `None` when any check fails.
    pub fn decode(buf: &[u8]) -> Option<Checkpoint> {
        if buf.len() < CP_HEADER + 4 || &buf[..4] != b"PLCP" || buf[4..6] != CP_VERSION.to_le_bytes() {
            return None;
        }
        let n = get_u32(buf, 32) as usize;
        if (buf.len() - CP_HEADER - 4) / CP_ENTRY != n || !(buf.len() - CP_HEADER - 4).is_multiple_of(CP_ENTRY) {
            return None;
        }
        let end = buf.len() - 4;
        if crc32(&buf[..end]) != get_u32(buf, end) {
            return None;
        }
        Some(Checkpoint {
            clean: buf[6] & 1 != 0,
            log_start: get_u64(buf, 8),
            recovery_point: get_u64(buf, 16),
            next_offset: get_u64(buf, 24),
            cleaner_offset: get_u64(buf, 40),
            segments: buf[CP_HEADER..end].chunks_exact(CP_ENTRY).map(get_meta).collect(),
        })
    }
}

/// Name of the segment-set intent file.
pub const INTENT_FILE: &str = "segments.intent";

/// Repairs a fuzzed `segments.intent`: magic, version, kind (mod 3), payload length from the
/// size, checksum.
pub fn fix_intent(buf: &mut Vec<u8>) {
    const H: usize = 12;
    if buf.len() < H + 4 {
        buf.resize(H + 4, 0);
    }
    buf[..4].copy_from_slice(b"PLIN");
    buf[4..6].copy_from_slice(&1u16.to_le_bytes());
    let kind = u16::from_le_bytes([buf[6], buf[7]]) % 3;
    buf[6..8].copy_from_slice(&kind.to_le_bytes());
    let n = (buf.len() - H - 4) as u32;
    put_u32(buf, 8, n);
    let end = buf.len() - 4;
    let crc = crc32(&buf[..end]);
    put_u32(buf, end, crc);
}
