//! An encoder and decoder of partlog's on-disk format written from the byte tables in
//! `src/format.rs`, independently of the code under test: tests build hostile or crafted files
//! with it, and the golden fixtures are checked against it, so a change to the code that
//! silently changes the format fails here.
#![allow(dead_code)]

/// Bytes of a batch header.
pub const HEADER_LEN: usize = 68;
/// The batch format version (`magic`).
pub const MAGIC: u8 = 2;
/// `i64::MIN`: no delete horizon / no timestamp.
pub const NONE_TS: i64 = i64::MIN;

/// One record to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub offset: u64,
    pub ts: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Rec {
    pub fn new(offset: u64, ts: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Rec {
        Rec { offset, ts, key: key.map(<[u8]>::to_vec), value: value.map(<[u8]>::to_vec) }
    }
}

fn uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => zigzag(out, -1),
        Some(b) => {
            zigzag(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// A batch of `recs` (non-empty, offsets increasing) with base offset `base`, covering offsets
/// up to `base + last_delta` (default: the last record's).
pub fn batch(base: u64, recs: &[Rec], last_delta: Option<u32>) -> Vec<u8> {
    let base_ts = recs.first().map_or(0, |r| r.ts);
    let max_ts = recs.iter().map(|r| r.ts).max().unwrap_or(base_ts);
    let delta = last_delta.unwrap_or_else(|| recs.last().map_or(0, |r| (r.offset - base) as u32));
    let mut body = Vec::new();
    for r in recs {
        let mut rec = vec![0u8]; // attributes
        zigzag(&mut rec, r.ts - base_ts);
        uvarint(&mut rec, r.offset - base);
        bytes(&mut rec, r.key.as_deref());
        bytes(&mut rec, r.value.as_deref());
        uvarint(&mut rec, 0); // no headers
        uvarint(&mut body, rec.len() as u64);
        body.extend_from_slice(&rec);
    }
    let mut b = vec![0u8; HEADER_LEN];
    let len = (HEADER_LEN + body.len()) as u32;
    b[0..4].copy_from_slice(&len.to_le_bytes());
    b[8] = MAGIC;
    b[9] = 0;
    b[10..12].copy_from_slice(&0u16.to_le_bytes());
    b[12..16].copy_from_slice(&delta.to_le_bytes());
    b[16..24].copy_from_slice(&base.to_le_bytes());
    b[24..32].copy_from_slice(&base_ts.to_le_bytes());
    b[32..40].copy_from_slice(&max_ts.to_le_bytes());
    b[40..48].copy_from_slice(&NONE_TS.to_le_bytes());
    b[48..56].copy_from_slice(&(-1i64).to_le_bytes());
    b[56..58].copy_from_slice(&(-1i16).to_le_bytes());
    b[58..60].copy_from_slice(&0u16.to_le_bytes());
    b[60..64].copy_from_slice(&(-1i32).to_le_bytes());
    b[64..68].copy_from_slice(&(recs.len() as u32).to_le_bytes());
    b.extend_from_slice(&body);
    let crc = crc32fast::hash(&b[8..]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Records `first..first + n`, one per batch, each with a value derived from its offset.
pub fn single_batches(first: u64, n: u64, value: impl Fn(u64) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for o in first..first + n {
        let v = value(o);
        out.extend(batch(o, &[Rec::new(o, 1_000 + o as i64, Some(b"k"), Some(&v))], None));
    }
    out
}

/// A batch header as the byte table describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub crc: u32,
    pub magic: u8,
    pub attributes: u16,
    pub last_delta: u32,
    pub base_offset: u64,
    pub base_ts: i64,
    pub max_ts: i64,
    pub delete_horizon: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub count: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    u64_at(b, at) as i64
}

pub fn header(b: &[u8]) -> Header {
    Header {
        length: u32_at(b, 0),
        crc: u32_at(b, 4),
        magic: b[8],
        attributes: u16_at(b, 10),
        last_delta: u32_at(b, 12),
        base_offset: u64_at(b, 16),
        base_ts: i64_at(b, 24),
        max_ts: i64_at(b, 32),
        delete_horizon: i64_at(b, 40),
        producer_id: i64_at(b, 48),
        producer_epoch: u16_at(b, 56) as i16,
        base_sequence: u32_at(b, 60) as i32,
        count: u32_at(b, 64),
    }
}

/// Splits a `.log` file into its batches (`(position, bytes)`), checking every header field
/// and the CRC against the byte table; panics with the position on anything else.
pub fn batches(log: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < log.len() {
        assert!(log.len() - pos >= HEADER_LEN, "short header at {pos}");
        let h = header(&log[pos..]);
        let len = h.length as usize;
        assert!(len >= HEADER_LEN && pos + len <= log.len(), "bad length {len} at {pos}");
        let b = &log[pos..pos + len];
        assert_eq!(h.crc, crc32fast::hash(&b[8..]), "CRC at {pos}");
        assert_eq!(h.magic, MAGIC, "magic at {pos}");
        assert_eq!(b[9], 0, "reserved byte 9 at {pos}");
        assert_eq!(u16_at(b, 58), 0, "reserved bytes 58..60 at {pos}");
        assert!(h.count as u64 <= u64::from(h.last_delta) + 1, "record count at {pos}");
        out.push((pos, b));
        pos += len;
    }
    out
}

/// The records of one batch, decoded by the record table.
pub fn records(b: &[u8]) -> Vec<Rec> {
    let h = header(b);
    let mut cur = &b[HEADER_LEN..];
    let mut out = Vec::new();
    fn uv(cur: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = cur[0];
            *cur = &cur[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    fn zz(cur: &mut &[u8]) -> i64 {
        let u = uv(cur);
        ((u >> 1) as i64) ^ -((u & 1) as i64)
    }
    fn bs(cur: &mut &[u8]) -> Option<Vec<u8>> {
        let n = zz(cur);
        if n < 0 {
            return None;
        }
        let (a, rest) = cur.split_at(n as usize);
        *cur = rest;
        Some(a.to_vec())
    }
    for _ in 0..h.count {
        let len = uv(&mut cur) as usize;
        let (mut rec, rest) = cur.split_at(len);
        cur = rest;
        assert_eq!(rec[0], 0, "record attributes");
        rec = &rec[1..];
        let ts = h.base_ts + zz(&mut rec);
        let offset = h.base_offset + uv(&mut rec);
        let key = bs(&mut rec);
        let value = bs(&mut rec);
        let headers = uv(&mut rec);
        for _ in 0..headers {
            let _ = bs(&mut rec);
            let _ = bs(&mut rec);
        }
        assert!(rec.is_empty(), "record has trailing bytes");
        out.push(Rec { offset, ts, key, value });
    }
    assert!(cur.is_empty(), "batch has trailing bytes");
    out
}

/// One segment summary of the checkpoint (56 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub base: u64,
    pub size: u64,
    pub next_offset: u64,
    pub records: u64,
    pub first_ts: i64,
    pub max_ts: i64,
    pub max_ts_offset: u64,
}

/// `partition.checkpoint`, version 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub clean: bool,
    pub log_start: u64,
    pub recovery_point: u64,
    pub log_end: u64,
    pub cleaner_offset: u64,
    pub segments: Vec<Summary>,
}

impl Checkpoint {
    pub fn decode(b: &[u8]) -> Checkpoint {
        assert_eq!(&b[0..4], b"PLCP", "checkpoint magic");
        assert_eq!(u16_at(b, 4), 2, "checkpoint version");
        let n = u32_at(b, 32) as usize;
        assert_eq!(b.len(), 48 + 56 * n + 4, "checkpoint length");
        assert_eq!(u32_at(b, 48 + 56 * n), crc32fast::hash(&b[..48 + 56 * n]), "checkpoint CRC");
        let segments = (0..n)
            .map(|i| {
                let e = &b[48 + 56 * i..];
                Summary {
                    base: u64_at(e, 0),
                    size: u64_at(e, 8),
                    next_offset: u64_at(e, 16),
                    records: u64_at(e, 24),
                    first_ts: i64_at(e, 32),
                    max_ts: i64_at(e, 40),
                    max_ts_offset: u64_at(e, 48),
                }
            })
            .collect();
        Checkpoint {
            clean: u16_at(b, 6) & 1 == 1,
            log_start: u64_at(b, 8),
            recovery_point: u64_at(b, 16),
            log_end: u64_at(b, 24),
            cleaner_offset: u64_at(b, 40),
            segments,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"PLCP");
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&u16::from(self.clean).to_le_bytes());
        b.extend_from_slice(&self.log_start.to_le_bytes());
        b.extend_from_slice(&self.recovery_point.to_le_bytes());
        b.extend_from_slice(&self.log_end.to_le_bytes());
        b.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.cleaner_offset.to_le_bytes());
        for s in &self.segments {
            for v in [s.base, s.size, s.next_offset, s.records, s.first_ts as u64, s.max_ts as u64, s.max_ts_offset] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }
}

/// `segments.intent`, kind 0 (cut within a segment).
pub fn cut_intent(target: u64, seg_base: u64, cut: u64, rewrite: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&target.to_le_bytes());
    payload.extend_from_slice(&seg_base.to_le_bytes());
    payload.extend_from_slice(&cut.to_le_bytes());
    payload.extend_from_slice(&(rewrite.len() as u32).to_le_bytes());
    payload.extend_from_slice(rewrite);
    intent(0, &payload)
}

/// `segments.intent` of `kind` with `payload`.
pub fn intent(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"PLIN");
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(payload);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A segment file name: the base offset in 20 digits.
pub fn seg_name(base: u64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}
