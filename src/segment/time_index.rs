//! The time index (`.timeindex`).
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLTX` | [u8; 4] |
//! | 4 | version (1) | u16 |
//! | 6 | reserved | u16 |
//! | 8 | base offset | u64 |
//! | 16 | entry count | u32 |
//! | 20 | CRC-32 of the entries | u32 |
//! | 24 | reserved | u32 |
//! | 28 | CRC-32 of bytes 0..28 | u32 |
//! | 32 | entries: timestamp i64, relative offset u32 | 12 bytes each |
//!
//! An entry `(T, O)` means, as in Kafka: T is the largest timestamp of any record before the
//! batch whose base offset is O, and that batch is where T was first reached; every record with
//! a timestamp greater than T comes at or after O. Entries are added at the offset index's
//! interval, only when the maximum grows, so timestamps and offsets both strictly increase —
//! producers' timestamps need not.

use byteorder::{ByteOrder, LittleEndian as LE};

pub(crate) const MAGIC: &[u8; 4] = b"PLTX";
pub(crate) const VERSION: u16 = 1;
pub(crate) const HEADER_LEN: usize = 32;
pub(crate) const ENTRY_LEN: usize = 12;

/// One time-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    /// Largest timestamp seen up to `offset`.
    pub timestamp: i64,
    /// Base offset of the batch where that timestamp was first reached.
    pub offset: u64,
}

/// A segment's time index.
#[derive(Debug, Clone, Default)]
pub struct TimeIndex {
    base: u64,
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub(crate) fn new(base: u64) -> Self {
        TimeIndex { base, entries: Vec::new() }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry with the largest timestamp ≤ `timestamp`, or `None` (start at the segment's
    /// base offset). Scanning from that entry's offset finds the first record whose timestamp
    /// is ≥ `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> Option<TimeIndexEntry> {
        let i = self.entries.partition_point(|&(t, _)| t <= timestamp);
        let &(t, o) = self.entries.get(i.checked_sub(1)?)?;
        Some(TimeIndexEntry { timestamp: t, offset: self.base + u64::from(o) })
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = TimeIndexEntry> + '_ {
        self.entries.iter().map(|&(t, o)| TimeIndexEntry { timestamp: t, offset: self.base + u64::from(o) })
    }

    /// Appends when `timestamp` grows past the last entry (`maybeAppend`).
    pub(crate) fn maybe_push(&mut self, timestamp: i64, offset: u64) {
        let Ok(rel) = u32::try_from(offset.saturating_sub(self.base)) else { return };
        if self.entries.last().is_none_or(|&(t, o)| timestamp > t && rel >= o) {
            self.entries.push((timestamp, rel));
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + self.entries.len() * ENTRY_LEN];
        let (h, body) = out.split_at_mut(HEADER_LEN);
        for (chunk, &(t, o)) in body.chunks_exact_mut(ENTRY_LEN).zip(&self.entries) {
            LE::write_i64(&mut chunk[0..8], t);
            LE::write_u32(&mut chunk[8..12], o);
        }
        h[0..4].copy_from_slice(MAGIC);
        LE::write_u16(&mut h[4..6], VERSION);
        LE::write_u64(&mut h[8..16], self.base);
        LE::write_u32(&mut h[16..20], self.entries.len() as u32);
        LE::write_u32(&mut h[20..24], crc32fast::hash(body));
        let crc = crc32fast::hash(&h[..28]);
        LE::write_u32(&mut h[28..32], crc);
        out
    }

    /// Decodes a whole file; `None` when any check fails.
    pub(crate) fn decode(buf: &[u8], base: u64, next_offset: u64) -> Option<TimeIndex> {
        let h = buf.get(..HEADER_LEN)?;
        if &h[0..4] != MAGIC || LE::read_u16(&h[4..6]) != VERSION || LE::read_u64(&h[8..16]) != base {
            return None;
        }
        if crc32fast::hash(&h[..28]) != LE::read_u32(&h[28..32]) {
            return None;
        }
        let count = LE::read_u32(&h[16..20]) as usize;
        let body = buf.get(HEADER_LEN..)?;
        if body.len() != count.checked_mul(ENTRY_LEN)? || crc32fast::hash(body) != LE::read_u32(&h[20..24]) {
            return None;
        }
        let mut idx = TimeIndex::new(base);
        let mut last: Option<(i64, u32)> = None;
        for chunk in body.chunks_exact(ENTRY_LEN) {
            let e = (LE::read_i64(&chunk[0..8]), LE::read_u32(&chunk[8..12]));
            if last.is_some_and(|(t, o)| e.0 <= t || e.1 < o) || base + u64::from(e.1) >= next_offset {
                return None;
            }
            last = Some(e);
            idx.entries.push(e);
        }
        Some(idx)
    }
}
