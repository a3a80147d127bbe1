//! The partition checkpoint (`partition.checkpoint`), replaced atomically.
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLCP` | [u8; 4] |
//! | 4 | version (2) | u16 |
//! | 6 | flags: bit 0 = clean shutdown | u16 |
//! | 8 | log start offset | u64 |
//! | 16 | recovery point: base offset of the first segment to re-validate after a crash | u64 |
//! | 24 | log end offset when written | u64 |
//! | 32 | segment count N | u32 |
//! | 36 | reserved | u32 |
//! | 40 | cleaner offset: compaction has cleaned everything below it (Kafka's first dirty offset) | u64 |
//! | 48 | N segment summaries, 56 bytes each: base, size, next offset, records, first timestamp, max timestamp, offset of max timestamp | |
//! | 48 + 56N | CRC-32 of all preceding bytes | u32 |
//!
//! Every segment below the recovery point was fsynced before the checkpoint naming it was
//! written, so reopening after a crash re-validates only the segments from the recovery point
//! on: recovery time follows the unflushed tail, not the size of the log.

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::segment::SegMeta;

pub(crate) const FILE_NAME: &str = "partition.checkpoint";
const MAGIC: &[u8; 4] = b"PLCP";
pub(crate) const VERSION: u16 = 2;
const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 56;
const FLAG_CLEAN: u16 = 1;
/// Refuse to allocate for more segments than this from a file's count field.
const MAX_SEGMENTS: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub clean: bool,
    pub log_start: u64,
    pub recovery_point: u64,
    pub next_offset: u64,
    pub cleaner_offset: u64,
    pub segments: Vec<SegMeta>,
}

/// Why a checkpoint could not be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    Damaged,
    Version(u16),
}

impl Checkpoint {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + self.segments.len() * ENTRY_LEN + 4];
        out[0..4].copy_from_slice(MAGIC);
        LE::write_u16(&mut out[4..6], VERSION);
        LE::write_u16(&mut out[6..8], if self.clean { FLAG_CLEAN } else { 0 });
        LE::write_u64(&mut out[8..16], self.log_start);
        LE::write_u64(&mut out[16..24], self.recovery_point);
        LE::write_u64(&mut out[24..32], self.next_offset);
        LE::write_u32(&mut out[32..36], self.segments.len() as u32);
        LE::write_u64(&mut out[40..48], self.cleaner_offset);
        for (i, m) in self.segments.iter().enumerate() {
            let e = &mut out[HEADER_LEN + i * ENTRY_LEN..HEADER_LEN + (i + 1) * ENTRY_LEN];
            LE::write_u64(&mut e[0..8], m.base);
            LE::write_u64(&mut e[8..16], m.size);
            LE::write_u64(&mut e[16..24], m.next_offset);
            LE::write_u64(&mut e[24..32], m.records);
            LE::write_i64(&mut e[32..40], m.first_ts);
            LE::write_i64(&mut e[40..48], m.max_ts);
            LE::write_u64(&mut e[48..56], m.max_ts_offset);
        }
        let n = out.len() - 4;
        let crc = crc32fast::hash(&out[..n]);
        LE::write_u32(&mut out[n..], crc);
        out
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Checkpoint, Bad> {
        let h = buf.get(..HEADER_LEN).ok_or(Bad::Damaged)?;
        if &h[0..4] != MAGIC {
            return Err(Bad::Damaged);
        }
        let version = LE::read_u16(&h[4..6]);
        if version != VERSION {
            return Err(Bad::Version(version));
        }
        let count = LE::read_u32(&h[32..36]) as usize;
        if count > MAX_SEGMENTS {
            return Err(Bad::Damaged);
        }
        let want = HEADER_LEN + count * ENTRY_LEN + 4;
        if buf.len() != want {
            return Err(Bad::Damaged);
        }
        let n = want - 4;
        if crc32fast::hash(&buf[..n]) != LE::read_u32(&buf[n..]) {
            return Err(Bad::Damaged);
        }
        let mut segments = Vec::with_capacity(count);
        for e in buf[HEADER_LEN..n].chunks_exact(ENTRY_LEN) {
            segments.push(SegMeta {
                base: LE::read_u64(&e[0..8]),
                size: LE::read_u64(&e[8..16]),
                next_offset: LE::read_u64(&e[16..24]),
                records: LE::read_u64(&e[24..32]),
                first_ts: LE::read_i64(&e[32..40]),
                max_ts: LE::read_i64(&e[40..48]),
                max_ts_offset: LE::read_u64(&e[48..56]),
            });
        }
        Ok(Checkpoint {
            clean: LE::read_u16(&h[6..8]) & FLAG_CLEAN != 0,
            log_start: LE::read_u64(&h[8..16]),
            recovery_point: LE::read_u64(&h[16..24]),
            next_offset: LE::read_u64(&h[24..32]),
            cleaner_offset: LE::read_u64(&h[40..48]),
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_detection() {
        let cp = Checkpoint {
            clean: true,
            log_start: 5,
            recovery_point: 100,
            next_offset: 250,
            cleaner_offset: 77,
            segments: vec![SegMeta {
                base: 0,
                size: 10,
                next_offset: 100,
                records: 95,
                first_ts: 1,
                max_ts: 9,
                max_ts_offset: 50,
            }],
        };
        let buf = cp.encode();
        assert_eq!(Checkpoint::decode(&buf), Ok(cp));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(Checkpoint::decode(&bad).is_err(), "flip at {i}");
        }
        assert!(Checkpoint::decode(&buf[..buf.len() - 1]).is_err());
    }
}
