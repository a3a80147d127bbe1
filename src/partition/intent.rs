//! The segment-set intent (`segments.intent`): how a change that touches several files is
//! made all-or-nothing.
//!
//! A change of the segment set that a crash could leave half done — cutting the tail of the
//! log, or swapping compacted segments in for the ones they replace — first writes its
//! complete plan here, durably (temp, fsync, rename, fsync directory). Then it is carried out;
//! then the intent is removed. Every step of carrying it out is idempotent, so an open that
//! finds a valid intent simply carries it out again before recovering: after a crash the log
//! is either as before (the intent never became durable, and is ignored) or as after.
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLIN` | [u8; 4] |
//! | 4 | version (1) | u16 |
//! | 6 | kind: 0 cut within a segment, 1 reset (delete everything, restart at the target), 2 replace sealed segments | u16 |
//! | 8 | payload length N | u32 |
//! | 12 | payload | N bytes |
//! | 12 + N | CRC-32 of all preceding bytes | u32 |
//!
//! Payloads (little-endian):
//! - **cut**: target offset u64, segment base u64, cut position u64, rewrite length u32, the
//!   rewritten batch (the records of a batch straddling the cut that lie below the target).
//! - **reset**: target offset u64.
//! - **replace**: count of old segments u32, count of new segments u32, old base offsets
//!   (u64 each, ascending), new base offsets (u64 each, ascending). Every new segment was
//!   written as `<base>.log.cleaned` and fsynced before the intent was.

use std::collections::BTreeSet;
use std::path::Path;

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::error::{Error, IoContext, Result};
use crate::fs::{FileSystem, OpenMode, durable_replace};
use crate::segment::files::{self, Ext, Transit};

pub(crate) const FILE_NAME: &str = "segments.intent";
const MAGIC: &[u8; 4] = b"PLIN";
const VERSION: u16 = 1;
const HEADER: usize = 12;
/// A replace names at most this many segments on either side.
const MAX_REPLACED: usize = 1 << 20;

/// A planned change of the segment set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Cut the log so that `target` becomes its end: delete every segment above `seg_base`,
    /// keep `cut` bytes of that one and append `rewrite`.
    Cut { target: u64, seg_base: u64, cut: u64, rewrite: Vec<u8> },
    /// Delete every segment and restart the log, empty, at `target`.
    Reset { target: u64 },
    /// Swap the segments `new` (written as `.cleaned` files) in for `old`.
    Replace { old: Vec<u64>, new: Vec<u64> },
}

impl Intent {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        let kind: u16 = match self {
            Intent::Cut { target, seg_base, cut, rewrite } => {
                payload.extend_from_slice(&target.to_le_bytes());
                payload.extend_from_slice(&seg_base.to_le_bytes());
                payload.extend_from_slice(&cut.to_le_bytes());
                payload.extend_from_slice(&(rewrite.len() as u32).to_le_bytes());
                payload.extend_from_slice(rewrite);
                0
            }
            Intent::Reset { target } => {
                payload.extend_from_slice(&target.to_le_bytes());
                1
            }
            Intent::Replace { old, new } => {
                payload.extend_from_slice(&(old.len() as u32).to_le_bytes());
                payload.extend_from_slice(&(new.len() as u32).to_le_bytes());
                for b in old.iter().chain(new) {
                    payload.extend_from_slice(&b.to_le_bytes());
                }
                2
            }
        };
        let mut out = Vec::with_capacity(HEADER + payload.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes an intent; `None` for anything partlog could not have written durably.
    pub(crate) fn decode(buf: &[u8]) -> Option<Intent> {
        let h = buf.get(..HEADER)?;
        if &h[0..4] != MAGIC || LE::read_u16(&h[4..6]) != VERSION {
            return None;
        }
        let kind = LE::read_u16(&h[6..8]);
        let len = LE::read_u32(&h[8..12]) as usize;
        if buf.len() != HEADER.checked_add(len)?.checked_add(4)? {
            return None;
        }
        let n = buf.len() - 4;
        if crc32fast::hash(&buf[..n]) != LE::read_u32(&buf[n..]) {
            return None;
        }
        let p = &buf[HEADER..n];
        let max = crate::batch::MAX_OFFSET;
        match kind {
            0 => {
                let fixed = p.get(..28)?;
                let target = LE::read_u64(&fixed[0..8]);
                let seg_base = LE::read_u64(&fixed[8..16]);
                let cut = LE::read_u64(&fixed[16..24]);
                let rlen = LE::read_u32(&fixed[24..28]) as usize;
                let rewrite = p.get(28..)?.to_vec();
                if rewrite.len() != rlen || target > max || seg_base > target {
                    return None;
                }
                if !rewrite.is_empty() && crate::batch::validate(&rewrite).is_err() {
                    return None;
                }
                Some(Intent::Cut { target, seg_base, cut, rewrite })
            }
            1 => {
                let target = LE::read_u64(p.get(..8)?);
                (p.len() == 8 && target <= max).then_some(Intent::Reset { target })
            }
            2 => {
                let no = LE::read_u32(p.get(0..4)?) as usize;
                let nn = LE::read_u32(p.get(4..8)?) as usize;
                if no == 0 || nn == 0 || no > MAX_REPLACED || nn > MAX_REPLACED || p.len() != 8 + 8 * (no + nn) {
                    return None;
                }
                let bases: Vec<u64> = p[8..].chunks_exact(8).map(LE::read_u64).collect();
                let (old, new) = bases.split_at(no);
                let ascending = |v: &[u64]| v.windows(2).all(|w| w[0] < w[1]);
                // A replacement starts where the run it replaces starts, and stays inside it.
                let inside = new.first() == old.first() && new.iter().all(|b| *b <= max);
                (ascending(old) && ascending(new) && inside)
                    .then(|| Intent::Replace { old: old.to_vec(), new: new.to_vec() })
            }
            _ => None,
        }
    }

    /// Makes this intent durable; nothing has changed until this returns.
    pub(crate) fn persist(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let p = dir.join(FILE_NAME);
        durable_replace(fs, &p, &self.encode()).at(&p)
    }
}

/// Removes the intent once its effect is recorded in the checkpoint.
pub(crate) fn finish(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    files::remove_if_present(fs, &dir.join(FILE_NAME))?;
    fs.sync_dir(dir).at(dir)
}

/// Reads the intent in `dir`, if there is one. An intent that is not valid was never made
/// durable, so it was never acted upon: it is removed and `None` returned.
pub(crate) fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Intent>> {
    let p = dir.join(FILE_NAME);
    if fs.entry_kind(&p).at(&p)?.is_none() {
        return Ok(None);
    }
    let f = fs.open(&p, OpenMode::Read).at(&p)?;
    let len = f.len().at(&p)?;
    let intent = match usize::try_from(len) {
        Ok(n) if n <= (1 << 31) + 64 => {
            let mut buf = vec![0u8; n];
            f.read_exact_at(&mut buf, 0).at(&p)?;
            Intent::decode(&buf)
        }
        _ => None,
    };
    if intent.is_none() {
        fs.remove_file(&p).at(&p)?;
        fs.sync_dir(dir).at(dir)?;
    }
    Ok(intent)
}

/// What carrying out an intent at open did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Redone {
    /// The segments present afterwards, oldest first.
    pub bases: Vec<u64>,
    /// Segments whose files the intent changed: their summaries cannot be trusted.
    pub changed: BTreeSet<u64>,
    /// The log restarts here (a reset).
    pub log_start: Option<u64>,
}

/// Carries out `intent` on the files of `dir`, whose segments are `bases` (oldest first).
/// Idempotent: a crash in the middle and another call finish the same change.
pub(crate) fn apply_files(fs: &dyn FileSystem, dir: &Path, intent: &Intent, bases: &[u64]) -> Result<Redone> {
    let mut out = Redone::default();
    match intent {
        Intent::Reset { target } => {
            for &b in bases.iter().rev().filter(|&&b| b != *target) {
                files::remove_segment(fs, dir, b)?;
            }
            // An empty file replaces the segment at the target: a file that readers may have
            // memory-mapped is never shrunk in place (their reads would raise SIGBUS).
            let p = files::path(dir, *target, Ext::Log);
            let tmp = dir.join(format!("{}.tmp", files::name(*target, Ext::Log)));
            {
                let f = fs.open(&tmp, OpenMode::Create).at(&tmp)?;
                f.set_len(0).at(&tmp)?;
                f.sync_data().at(&tmp)?;
            }
            fs.rename(&tmp, &p).at(&p)?;
            files::remove_indexes(fs, dir, *target)?;
            fs.sync_dir(dir).at(dir)?;
            out.bases = vec![*target];
            out.changed.insert(*target);
            out.log_start = Some(*target);
        }
        Intent::Cut { seg_base, cut, rewrite, .. } => {
            for &b in bases.iter().rev().filter(|&&b| b > *seg_base) {
                files::remove_segment(fs, dir, b)?;
            }
            // The kept prefix goes into a new file that replaces the segment: a file that
            // readers may have memory-mapped is never shrunk in place (that would turn their
            // reads into SIGBUS).
            let p = files::path(dir, *seg_base, Ext::Log);
            let tmp = dir.join(format!("{}.tmp", files::name(*seg_base, Ext::Log)));
            {
                let src = fs.open(&p, OpenMode::Read).at(&p)?;
                let dst = fs.open(&tmp, OpenMode::Create).at(&tmp)?;
                dst.set_len(0).at(&tmp)?;
                let mut buf = vec![0u8; 1 << 20];
                let mut pos = 0u64;
                while pos < *cut {
                    let n = usize::try_from((*cut - pos).min(buf.len() as u64)).unwrap_or(buf.len());
                    src.read_exact_at(&mut buf[..n], pos).at(&p)?;
                    dst.write_at(&buf[..n], pos).at(&tmp)?;
                    pos += n as u64;
                }
                if !rewrite.is_empty() {
                    dst.write_at(rewrite, *cut).at(&tmp)?;
                }
                dst.sync_data().at(&tmp)?;
            }
            fs.rename(&tmp, &p).at(&p)?;
            files::remove_indexes(fs, dir, *seg_base)?;
            fs.sync_dir(dir).at(dir)?;
            out.bases = bases.iter().copied().filter(|&b| b <= *seg_base).collect();
            out.changed.insert(*seg_base);
        }
        Intent::Replace { old, new } => {
            // New segments first (each rename replaces an old segment of the same base at
            // once), then the old segments that have no successor of their base.
            for &b in new {
                let cleaned = files::transit_path(dir, b, Ext::Log, Transit::Cleaned);
                if fs.entry_kind(&cleaned).at(&cleaned)?.is_some() {
                    files::remove_indexes(fs, dir, b)?;
                    fs.rename(&cleaned, &files::path(dir, b, Ext::Log)).at(&cleaned)?;
                }
                out.changed.insert(b);
            }
            for &b in old.iter().filter(|b| !new.contains(b)) {
                files::remove_segment(fs, dir, b)?;
            }
            fs.sync_dir(dir).at(dir)?;
            let gone: BTreeSet<u64> = old.iter().copied().filter(|b| !new.contains(b)).collect();
            let mut all: BTreeSet<u64> = bases.iter().copied().filter(|b| !gone.contains(b)).collect();
            for &b in new {
                if fs.entry_kind(&files::path(dir, b, Ext::Log)).at(dir)?.is_some() {
                    all.insert(b);
                }
            }
            out.bases = all.into_iter().collect();
        }
    }
    Ok(out)
}

/// At open: carries out an interrupted change, if a durable intent says there is one. The
/// intent file stays until [`finish`] (after the checkpoint records the result).
pub(crate) fn redo_on_open(fs: &dyn FileSystem, dir: &Path, bases: &[u64]) -> Result<Option<(Intent, Redone)>> {
    let Some(intent) = load(fs, dir)? else { return Ok(None) };
    if let Intent::Cut { seg_base, cut, .. } = &intent {
        let lp = files::path(dir, *seg_base, Ext::Log);
        let seg_len = match fs.open(&lp, OpenMode::Read) {
            Ok(f) => Some(f.len().at(&lp)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&lp, e)),
        };
        if seg_len.is_none_or(|len| len < *cut) {
            // The segment no longer holds what the plan keeps (it never became durable): the
            // log already ends before the target, so there is nothing left to cut.
            finish(fs, dir)?;
            return Ok(None);
        }
    }
    let redone = apply_files(fs, dir, &intent, bases)?;
    Ok(Some((intent, redone)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        for i in [
            Intent::Cut { target: 10, seg_base: 5, cut: 100, rewrite: Vec::new() },
            Intent::Reset { target: 77 },
            Intent::Replace { old: vec![0, 10, 20], new: vec![0, 15] },
        ] {
            let buf = i.encode();
            assert_eq!(Intent::decode(&buf), Some(i.clone()));
            for at in 0..buf.len() {
                let mut bad = buf.clone();
                bad[at] ^= 0x04;
                assert_eq!(Intent::decode(&bad), None, "flip at {at} of {i:?}");
            }
            assert_eq!(Intent::decode(&buf[..buf.len() - 1]), None);
        }
    }

    #[test]
    fn implausible_plans_are_refused() {
        for i in [
            Intent::Replace { old: vec![0, 10], new: vec![5] },
            Intent::Replace { old: vec![10, 0], new: vec![10] },
            Intent::Replace { old: vec![], new: vec![] },
            Intent::Cut { target: 1, seg_base: 5, cut: 0, rewrite: Vec::new() },
            Intent::Reset { target: u64::MAX },
        ] {
            assert_eq!(Intent::decode(&i.encode()), None, "{i:?}");
        }
    }

    /// The bytes of an intent of `kind` with `payload` and a valid CRC, laid out by hand as the
    /// module docs say, so that payloads `encode` never writes can be tried.
    fn crafted(kind: u16, payload: &[u8]) -> Vec<u8> {
        crafted_as(b"PLIN", 1, kind, payload)
    }

    fn crafted_as(magic: &[u8; 4], version: u16, kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = magic.to_vec();
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(payload);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    fn cut_payload(target: u64, seg_base: u64, cut: u64, rlen: u32, rewrite: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        for v in [target, seg_base, cut] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p.extend_from_slice(&rlen.to_le_bytes());
        p.extend_from_slice(rewrite);
        p
    }

    fn u64s(v: &[u64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// A file with another magic or another version is not an intent of this format, even
    /// with a matching CRC. Kills `||` -> `&&` in the header check.
    #[test]
    fn another_magic_or_version_is_no_intent() {
        let reset = 7u64.to_le_bytes();
        assert_eq!(Intent::decode(&crafted(1, &reset)), Some(Intent::Reset { target: 7 }));
        assert_eq!(Intent::decode(&crafted_as(b"PLIX", 1, 1, &reset)), None, "magic");
        assert_eq!(Intent::decode(&crafted_as(b"PLIN", 2, 1, &reset)), None, "version 2");
        assert_eq!(Intent::decode(&crafted_as(b"PLIN", 0, 1, &reset)), None, "version 0");
    }

    /// Kills `>` -> `>=` and `>` -> `==` on the target bound, `>` -> `>=` on the segment base,
    /// and `||` -> `&&` between the length check and the target bound.
    #[test]
    fn a_cut_is_taken_up_to_its_bounds_and_refused_past_them() {
        let max = crate::batch::MAX_OFFSET;
        // The largest offset a log can end at, and a cut at a segment's own base (truncating to
        // exactly where a segment starts keeps none of its bytes): both are plans partlog makes.
        for (target, seg_base) in [(max, 0), (max, max), (20, 20)] {
            assert_eq!(
                Intent::decode(&crafted(0, &cut_payload(target, seg_base, 0, 0, &[]))),
                Some(Intent::Cut { target, seg_base, cut: 0, rewrite: Vec::new() }),
                "target {target}, segment {seg_base}"
            );
        }
        // Each implausible field alone refuses the plan.
        for (what, payload) in [
            ("target past the largest offset", cut_payload(max + 1, 0, 0, 0, &[])),
            ("segment above the target", cut_payload(20, 21, 0, 0, &[])),
            ("rewrite shorter than its length", cut_payload(10, 0, 100, 5, &[])),
            ("rewrite longer than its length", cut_payload(10, 0, 100, 0, &[0; 3])),
        ] {
            assert_eq!(Intent::decode(&crafted(0, &payload)), None, "{what}");
        }
    }

    /// The reset rule as the format gives it: one target, up to the largest offset.
    #[test]
    fn a_reset_is_exactly_one_target_up_to_the_largest_offset() {
        let max = crate::batch::MAX_OFFSET;
        assert_eq!(Intent::decode(&crafted(1, &max.to_le_bytes())), Some(Intent::Reset { target: max }));
        assert_eq!(Intent::decode(&crafted(1, &(max + 1).to_le_bytes())), None);
        // Bytes after the target: not a reset partlog wrote.
        assert_eq!(Intent::decode(&crafted(1, &u64s(&[7, 0]))), None);
        assert_eq!(Intent::decode(&crafted(1, &[7, 0, 0, 0, 0, 0, 0, 0, 0])), None);
    }

    /// Kills `<` -> `<=` in the ascending check.
    #[test]
    fn a_replace_names_distinct_ascending_segments() {
        // A base named twice on either side is no run of segments.
        for (old, new) in [(vec![0, 10, 10], vec![0]), (vec![0, 10], vec![0, 5, 5]), (vec![0, 0], vec![0, 0])] {
            let mut p = Vec::new();
            p.extend_from_slice(&(old.len() as u32).to_le_bytes());
            p.extend_from_slice(&(new.len() as u32).to_le_bytes());
            p.extend_from_slice(&u64s(&old));
            p.extend_from_slice(&u64s(&new));
            assert_eq!(Intent::decode(&crafted(2, &p)), None, "old {old:?}, new {new:?}");
        }
    }

    /// The counts say how many bases follow: a payload with more (or fewer) bytes than they
    /// name is not a replace partlog wrote, even if its bases would make a plausible plan.
    /// Kills `||` -> `&&` before the length check.
    #[test]
    fn a_replace_payload_holds_exactly_the_bases_its_counts_name() {
        let replace = |no: u32, nn: u32, bases: &[u64], extra: &[u8]| {
            let mut p = Vec::new();
            p.extend_from_slice(&no.to_le_bytes());
            p.extend_from_slice(&nn.to_le_bytes());
            p.extend_from_slice(&u64s(bases));
            p.extend_from_slice(extra);
            Intent::decode(&crafted(2, &p))
        };
        assert_eq!(replace(1, 1, &[0, 0], &[]), Some(Intent::Replace { old: vec![0], new: vec![0] }));
        assert_eq!(replace(1, 1, &[0, 0, 10], &[]), None, "one base too many");
        assert_eq!(replace(1, 2, &[0, 0], &[]), None, "one base too few");
        assert_eq!(replace(1, 1, &[0, 0], &[0; 4]), None, "trailing bytes");
    }

    /// Exactly `MAX_REPLACED` on either side is taken, one more is not. Kills `>` -> `>=` and
    /// `>` -> `==` on both counts and `||` -> `&&` before each count's bound.
    #[test]
    fn a_replace_names_at_most_its_limit_of_segments_on_either_side() {
        let many = |n: usize| (0..n as u64).map(|i| i * 10).collect::<Vec<u64>>();
        for (old, new) in [(many(MAX_REPLACED), vec![0]), (vec![0], many(MAX_REPLACED))] {
            let (no, nn) = (old.len(), new.len());
            let i = Intent::Replace { old, new };
            assert!(Intent::decode(&i.encode()) == Some(i), "{no} old, {nn} new: refused at the limit");
        }
        for (old, new) in [(many(MAX_REPLACED + 1), vec![0]), (vec![0], many(MAX_REPLACED + 1))] {
            let (no, nn) = (old.len(), new.len());
            assert!(Intent::decode(&Intent::Replace { old, new }.encode()).is_none(), "{no} old, {nn} new: taken");
        }
    }
}
