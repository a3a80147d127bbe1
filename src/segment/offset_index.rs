//! The sparse offset index (`.index`) and the segment summary stored in its header.
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLIX` | [u8; 4] |
//! | 4 | version (1) | u16 |
//! | 6 | reserved | u16 |
//! | 8 | base offset | u64 |
//! | 16 | bytes of `.log` described | u64 |
//! | 24 | next offset (last offset + 1) | u64 |
//! | 32 | record count | u64 |
//! | 40 | first timestamp (`i64::MIN`: none) | i64 |
//! | 48 | max timestamp (`i64::MIN`: none) | i64 |
//! | 56 | offset of max timestamp | u64 |
//! | 64 | entry count | u32 |
//! | 68 | CRC-32 of the entries | u32 |
//! | 72 | reserved | u32 |
//! | 76 | CRC-32 of bytes 0..76 | u32 |
//! | 80 | entries: relative offset u32, position u32 | 8 bytes each |
//!
//! Written once, when a segment is sealed or the log is closed cleanly; the active segment's
//! index lives in memory and is rebuilt from the `.log` after a crash. An index whose checksums,
//! base offset or log size disagree with the segment is rebuilt, never trusted.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::SegMeta;

pub(crate) const MAGIC: &[u8; 4] = b"PLIX";
pub(crate) const VERSION: u16 = 1;
pub(crate) const HEADER_LEN: usize = 80;
pub(crate) const ENTRY_LEN: usize = 8;
const OFF_HEADER_CRC: usize = 76;
const _: () = assert!(OFF_HEADER_CRC + 4 == HEADER_LEN);

/// One offset-index entry: the batch starting at byte `position` of the `.log` has
/// base offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Absolute offset.
    pub offset: u64,
    /// Byte position in the segment's `.log`.
    pub position: u64,
}

/// A segment's sparse offset index: one entry per `index.interval.bytes` of log.
#[derive(Debug, Clone, Default)]
pub struct OffsetIndex {
    base: u64,
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn new(base: u64) -> Self {
        OffsetIndex { base, entries: Vec::new() }
    }

    /// The segment's base offset.
    pub fn base_offset(&self) -> u64 {
        self.base
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the index has no entries (lookups then start at the segment's first byte).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry with the largest offset ≤ `offset`, or `(base offset, 0)` when there is none:
    /// scanning the log from that position reaches the batch holding `offset`.
    pub fn lookup(&self, offset: u64) -> IndexEntry {
        let rel = offset.saturating_sub(self.base).min(u64::from(u32::MAX)) as u32;
        let i = self.upper_bound(rel);
        match i.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(&(o, p)) => IndexEntry { offset: self.base + u64::from(o), position: u64::from(p) },
            None => IndexEntry { offset: self.base, position: 0 },
        }
    }

    /// Like [`lookup`](Self::lookup), with the entry's position in the index (`None` for the
    /// implicit entry at the segment start) and the file position of the next entry, if any:
    /// the bytes between the two are whole batches.
    pub(crate) fn lookup_slot(&self, offset: u64) -> (IndexEntry, Option<usize>, Option<(u64, u64)>) {
        let rel = offset.saturating_sub(self.base).min(u64::from(u32::MAX)) as u32;
        let i = self.upper_bound(rel);
        let next = self.entries.get(i).map(|&(o, p)| (self.base + u64::from(o), u64::from(p)));
        match i.checked_sub(1).and_then(|j| self.entries.get(j).map(|e| (j, e))) {
            Some((j, &(o, p))) => {
                (IndexEntry { offset: self.base + u64::from(o), position: u64::from(p) }, Some(j), next)
            }
            None => (IndexEntry { offset: self.base, position: 0 }, None, next),
        }
    }

    /// How many entries have a relative offset ≤ `rel` (the first entry above it). Entries
    /// grow by about the same step in a log written in similar batches, so the search starts
    /// where `rel` would lie if they were evenly spread and gallops out from there: one or two
    /// cache lines in such an index, instead of a binary search's dozen or more in a large
    /// one; never more than twice a binary search's probes, whatever the spread.
    fn upper_bound(&self, rel: u32) -> usize {
        let e = &self.entries;
        let n = e.len();
        let (Some(&(first, _)), Some(&(last, _))) = (e.first(), e.last()) else { return 0 };
        if n < 16 || rel < first || rel >= last {
            return if rel < first {
                0
            } else if rel >= last {
                n
            } else {
                e.partition_point(|&(o, _)| o <= rel)
            };
        }
        // first ≤ rel < last, so 0 ≤ guess < n - 1.
        let guess = (u64::from(rel - first) * (n as u64 - 1) / u64::from(last - first)) as usize;
        // Gallop to a range [lo, hi) with e[lo] ≤ rel < e[hi], then search inside it.
        let (lo, hi) = if e[guess].0 <= rel {
            let mut step = 1;
            let mut lo = guess;
            while lo + step < n && e[lo + step].0 <= rel {
                lo += step;
                step *= 2;
            }
            (lo, (lo + step).min(n))
        } else {
            let mut step = 1;
            let mut hi = guess;
            while hi >= step && e[hi - step].0 > rel {
                hi -= step;
                step *= 2;
            }
            (hi.saturating_sub(step), hi)
        };
        lo + e[lo..hi].partition_point(|&(o, _)| o <= rel)
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = IndexEntry> + '_ {
        self.entries.iter().map(|&(o, p)| IndexEntry { offset: self.base + u64::from(o), position: u64::from(p) })
    }

    pub(crate) fn push(&mut self, offset: u64, position: u64) {
        let (Ok(rel), Ok(pos)) = (u32::try_from(offset - self.base), u32::try_from(position)) else { return };
        if self.entries.last().is_none_or(|&(o, p)| rel > o && pos > p) {
            self.entries.push((rel, pos));
        }
    }

    pub(crate) fn encode(&self, meta: &SegMeta) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + self.entries.len() * ENTRY_LEN];
        let (h, body) = out.split_at_mut(HEADER_LEN);
        for (chunk, &(o, p)) in body.chunks_exact_mut(ENTRY_LEN).zip(&self.entries) {
            LE::write_u32(&mut chunk[0..4], o);
            LE::write_u32(&mut chunk[4..8], p);
        }
        h[0..4].copy_from_slice(MAGIC);
        LE::write_u16(&mut h[4..6], VERSION);
        LE::write_u64(&mut h[8..16], meta.base);
        LE::write_u64(&mut h[16..24], meta.size);
        LE::write_u64(&mut h[24..32], meta.next_offset);
        LE::write_u64(&mut h[32..40], meta.records);
        LE::write_i64(&mut h[40..48], meta.first_ts);
        LE::write_i64(&mut h[48..56], meta.max_ts);
        LE::write_u64(&mut h[56..64], meta.max_ts_offset);
        LE::write_u32(&mut h[64..68], self.entries.len() as u32);
        LE::write_u32(&mut h[68..72], crc32fast::hash(body));
        let crc = crc32fast::hash(&h[..OFF_HEADER_CRC]);
        LE::write_u32(&mut h[OFF_HEADER_CRC..], crc);
        out
    }

    /// Reads only the summary from the first [`HEADER_LEN`] bytes of an index file.
    pub(crate) fn decode_meta(h: &[u8]) -> Option<(SegMeta, u32)> {
        let h = h.get(..HEADER_LEN)?;
        if &h[0..4] != MAGIC || LE::read_u16(&h[4..6]) != VERSION {
            return None;
        }
        if crc32fast::hash(&h[..OFF_HEADER_CRC]) != LE::read_u32(&h[OFF_HEADER_CRC..]) {
            return None;
        }
        let meta = SegMeta {
            base: LE::read_u64(&h[8..16]),
            size: LE::read_u64(&h[16..24]),
            next_offset: LE::read_u64(&h[24..32]),
            records: LE::read_u64(&h[32..40]),
            first_ts: LE::read_i64(&h[40..48]),
            max_ts: LE::read_i64(&h[48..56]),
            max_ts_offset: LE::read_u64(&h[56..64]),
        };
        Some((meta, LE::read_u32(&h[64..68])))
    }

    /// Decodes a whole index file; `None` when anything fails a check.
    pub(crate) fn decode(buf: &[u8]) -> Option<(SegMeta, OffsetIndex)> {
        let (meta, count) = Self::decode_meta(buf)?;
        let body = buf.get(HEADER_LEN..)?;
        if body.len() != (count as usize).checked_mul(ENTRY_LEN)? {
            return None;
        }
        if crc32fast::hash(body) != LE::read_u32(buf.get(68..72)?) {
            return None;
        }
        let mut idx = OffsetIndex::new(meta.base);
        let mut last: Option<(u32, u32)> = None;
        for chunk in body.chunks_exact(ENTRY_LEN) {
            let e = (LE::read_u32(&chunk[0..4]), LE::read_u32(&chunk[4..8]));
            if last.is_some_and(|(o, p)| e.0 <= o || e.1 <= p) || u64::from(e.1) >= meta.size {
                return None;
            }
            last = Some(e);
            idx.entries.push(e);
        }
        Some((meta, idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_galloping_search_agrees_with_a_binary_search_on_any_spread() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m.max(1)
        };
        for case in 0..300u64 {
            let n = [0, 1, 2, 15, 16, 17, 100, 1000, 5000][(case % 9) as usize];
            let mut index = OffsetIndex::new(1_000);
            let mut o = rnd(50) as u32;
            for i in 0..n {
                index.entries.push((o, i as u32 * 100));
                // Even steps, random steps, and a few huge jumps (a skewed spread).
                o += match case % 3 {
                    0 => 37,
                    1 => 1 + rnd(100) as u32,
                    _ => {
                        if rnd(50) == 0 {
                            1 + rnd(1 << 20) as u32
                        } else {
                            1 + rnd(5) as u32
                        }
                    }
                };
            }
            let top = o + 10;
            for _ in 0..200 {
                let rel = rnd(u64::from(top)) as u32;
                let want = index.entries.partition_point(|&(e, _)| e <= rel);
                assert_eq!(index.upper_bound(rel), want, "case {case}, n {n}, rel {rel}");
            }
            for &(e, _) in index.entries.iter().step_by(7) {
                for rel in [e.saturating_sub(1), e, e + 1] {
                    assert_eq!(index.upper_bound(rel), index.entries.partition_point(|&(x, _)| x <= rel));
                }
            }
            assert_eq!(index.upper_bound(u32::MAX), n);
        }
    }
}
