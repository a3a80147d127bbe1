//! Opening a partition, in phases: list the directory and clear leftovers; finish an
//! interrupted change (intent); decide what the checkpoint vouches for; re-validate the rest,
//! cutting torn tails and refusing (or, if asked, cutting) damage with valid data after it;
//! build the writer's state. What was done is kept in a [`RecoveryReport`].
//!
//! What is trusted without reading a byte of log: after a clean shutdown, every segment the
//! checkpoint lists (the active one's summary is confirmed against its last batches); after a
//! crash, every segment below the checkpoint's recovery point, whose summary comes from the
//! checkpoint or its index header. Segments an intent changed are never trusted. Everything
//! else is re-validated batch by batch. Re-validating a sealed segment writes nothing unless
//! its index files are missing or stale, and never fsyncs it: a segment has a successor only
//! once it was fsynced (the writer syncs a segment before it creates the next), so sealed
//! segments are already durable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::{Condvar, Mutex, RwLock};

use super::checkpoint::{self, Checkpoint};
use super::intent::{self, Intent};
use super::segments::SegmentSet;
use super::writer::Writer;
use super::{CkptState, Inner, PartitionOptions, RecoveryMode, SyncState};
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::fs::{EntryKind, FileSystem, OpenMode};
use crate::segment::files::{self, Ext, Parsed, Transit};
use crate::segment::{
    DEFAULT_OPEN_SEGMENTS, Graveyard, HandleCache, IndexTracker, OffsetIndex, Opened, SegMeta, SegmentState, TimeIndex,
    log_file, read_index_meta,
};

pub(crate) const LOCK_FILE: &str = ".lock";

/// A tail cut at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailCut {
    /// Base offset of the segment that was cut.
    pub segment: u64,
    /// Byte position of the cut (the end of the last valid batch).
    pub at_byte: u64,
    /// Bytes removed from that segment.
    pub bytes_cut: u64,
    /// What was found at the cut.
    pub reason: CorruptKind,
    /// Whether valid data followed the damage: only cut because the partition was opened with
    /// [`RecoveryMode::TruncateCorrupt`]. Otherwise the tail was torn (a crash mid-write).
    pub valid_data_after: bool,
}

/// What the open of a partition did, for operators ([`Partition::recovery_report`](crate::Partition::recovery_report)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The checkpoint vouched for a clean shutdown and nothing had to be re-validated.
    pub clean: bool,
    /// Segments whose batches were read and checked.
    pub segments_revalidated: u32,
    /// Bytes of log read and checked.
    pub bytes_revalidated: u64,
    /// A tail that was cut, with why.
    pub tail_cut: Option<TailCut>,
    /// Base offsets of segments deleted: after a cut tail, or left below the log start by an
    /// interrupted deletion.
    pub segments_deleted: Vec<u64>,
    /// Segments whose index files were (re)written.
    pub indexes_rebuilt: u32,
    /// An interrupted change that was finished: `"truncate"`, `"reset"` or `"replace"`.
    pub finished_intent: Option<&'static str>,
    /// Leftover files removed: temporary files, segments an interrupted deletion had renamed,
    /// output of an interrupted compaction.
    pub leftovers_removed: u32,
}

/// Files of one segment found in the directory.
#[derive(Debug, Default)]
struct Found {
    log: bool,
}

/// What the directory listing found.
#[derive(Debug, Default)]
struct Listing {
    segments: BTreeMap<u64, Found>,
    checkpoint: bool,
    cleaned: Vec<u64>,
}

fn list(fs: &dyn FileSystem, path: &Path, report: &mut RecoveryReport) -> Result<Listing> {
    let mut out = Listing::default();
    for entry in fs.read_dir(path).at(path)? {
        let Some(name) = entry.name.to_str() else { continue };
        if name == checkpoint::FILE_NAME {
            out.checkpoint = entry.kind == EntryKind::File;
            continue;
        }
        if name.ends_with(".tmp") && entry.kind == EntryKind::File {
            // Leftover of an interrupted atomic replace: the real file is intact.
            let p = path.join(name);
            fs.remove_file(&p).at(&p)?;
            report.leftovers_removed += 1;
            continue;
        }
        match files::parse(name) {
            None => {}
            Some(_) if entry.kind != EntryKind::File => {
                // A symlink or directory posing as a segment file is never followed.
                return Err(Error::corrupt(&path.join(name), 0, CorruptKind::Metadata));
            }
            Some(Parsed::InTransit(_, _, Transit::Deleted)) => {
                let p = path.join(name);
                fs.remove_file(&p).at(&p)?;
                report.leftovers_removed += 1;
            }
            Some(Parsed::InTransit(base, Ext::Log, Transit::Cleaned)) => out.cleaned.push(base),
            Some(Parsed::InTransit(..)) => {
                let p = path.join(name);
                fs.remove_file(&p).at(&p)?;
                report.leftovers_removed += 1;
            }
            Some(Parsed::SegmentState(base, ext)) => {
                let f = out.segments.entry(base).or_default();
                if ext == Ext::Log {
                    f.log = true;
                }
            }
        }
    }
    Ok(out)
}

/// Whether damage found while re-validating a segment is a torn tail (safe to cut: nothing
/// valid was ever durable after it) or damage to data that was durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    TornTail,
    Damage,
}

/// What [`tail_verdict`] decides from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TailFacts {
    /// Where a valid batch continuing the log starts after the damage in this segment.
    pub valid_after_here: Option<u64>,
    /// Where the damage starts.
    pub stop: u64,
    /// Whether any later segment holds data.
    pub later_segments_with_data: bool,
    /// Whether a whole zero page lies between the damage and the valid batch after it.
    pub zero_page_between: bool,
}

/// The torn-tail verdict. In the last segment, valid data after a whole page of zeros is what
/// a power loss leaves when the kernel wrote later pages back before earlier ones: those
/// writes were never synced (a sync covers everything before it), so it is a torn tail.
/// Anywhere else, or without such a hole, valid data after damage means damage.
pub(crate) fn tail_verdict(f: &TailFacts) -> Verdict {
    if f.later_segments_with_data {
        return Verdict::Damage;
    }
    match f.valid_after_here {
        None => Verdict::TornTail,
        Some(at) if at > f.stop && f.zero_page_between => Verdict::TornTail,
        Some(_) => Verdict::Damage,
    }
}

pub(crate) fn open(path: &Path, opts: PartitionOptions) -> Result<Inner> {
    let fs = Arc::clone(&opts.fs);
    let created = crate::fs::create_dir_durable(&*fs, path).at(path)?;
    if !created && fs.entry_kind(path).at(path)? != Some(EntryKind::Dir) {
        return Err(Error::NotALogDir { path: path.to_path_buf(), reason: "not a directory".into() });
    }
    let lock = if opts.lock { Some(take_lock(&*fs, path)?) } else { None };
    let mut report = RecoveryReport::default();
    let dir: Arc<Path> = Arc::from(path);

    // Phase 1: list; finish an interrupted change; clear what it left.
    let mut listing = list(&*fs, path, &mut report)?;
    let listed: Vec<u64> = listing.segments.iter().filter(|(_, f)| f.log).map(|(b, _)| *b).collect();
    let redone = intent::redo_on_open(&*fs, path, &listed)?;
    if let Some((i, _)) = &redone {
        report.finished_intent = Some(match i {
            Intent::Cut { .. } => "truncate",
            Intent::Reset { .. } => "reset",
            Intent::Replace { .. } => "replace",
        });
        listing = list(&*fs, path, &mut report)?;
    }
    for base in std::mem::take(&mut listing.cleaned) {
        // Output of a compaction pass that never committed.
        files::remove_if_present(&*fs, &files::transit_path(path, base, Ext::Log, Transit::Cleaned))?;
        report.leftovers_removed += 1;
    }
    // Index files without a log are orphans from an interrupted delete.
    let orphans: Vec<u64> = listing.segments.iter().filter(|(_, f)| !f.log).map(|(b, _)| *b).collect();
    for base in orphans {
        files::remove_indexes(&*fs, path, base)?;
        listing.segments.remove(&base);
        report.leftovers_removed += 1;
    }
    if let Some((&base, _)) = listing.segments.iter().find(|(b, _)| **b > crate::batch::MAX_OFFSET) {
        return Err(Error::corrupt(&files::path(path, base, Ext::Log), 0, CorruptKind::Metadata));
    }
    let mut bases: Vec<u64> = listing.segments.keys().copied().collect();
    let changed: BTreeSet<u64> = redone.as_ref().map(|(_, r)| r.changed.clone()).unwrap_or_default();

    // Phase 2: what the checkpoint vouches for.
    let cp = if listing.checkpoint { read_checkpoint(&*fs, path)? } else { None };
    // A checkpoint whose offsets lie outside the offset space is as good as damaged.
    let cp = cp.filter(|c| c.log_start <= crate::batch::MAX_OFFSET && c.next_offset <= crate::batch::MAX_OFFSET);
    let mut log_start = cp.as_ref().map_or(0, |c| c.log_start);
    if let Some(&first) = bases.first() {
        if cp.is_none() {
            log_start = first;
        }
        log_start = log_start.max(first);
    }
    if let Some(ls) = redone.as_ref().and_then(|(_, r)| r.log_start) {
        log_start = ls;
    }
    // Segments wholly below the log start are left over from an interrupted deletion.
    let mut deleted_any = false;
    while bases.len() > 1 && bases.get(1).is_some_and(|&b| b <= log_start) {
        let b = bases.remove(0);
        files::remove_segment(&*fs, path, b)?;
        report.segments_deleted.push(b);
        deleted_any = true;
    }
    let clean = redone.is_none()
        && !deleted_any
        && cp.as_ref().is_some_and(|c| {
            c.clean
                && c.segments.len() == bases.len()
                && c.segments.iter().zip(&bases).all(|(m, b)| m.base == *b)
                // The active segment was trimmed at close: any other length means it changed
                // since, so it is re-validated rather than trusted.
                && c.segments.last().is_some_and(|m| file_len(&*fs, path, m.base) == Some(m.size))
        });
    // Read only when the checkpoint is not clean (a clean one vouches for every segment).
    let recovery_point = cp.as_ref().map_or(0, |c| c.recovery_point);
    let interval = opts.config.index_interval_bytes;

    // Phase 3: trust or re-validate each segment.
    let mut metas: Vec<SegMeta> = Vec::with_capacity(bases.len());
    let mut active_scan: Option<log_file::Scan> = None;
    let mut active_loaded: Option<(OffsetIndex, TimeIndex)> = None;
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let is_last = i + 1 == bases.len();
        let next_base = bases.get(i + 1).copied();
        let from_cp = cp.as_ref().and_then(|c| c.segments.iter().find(|m| m.base == base).copied());
        let trusted = if changed.contains(&base) {
            None
        } else if clean {
            from_cp
        } else if next_base.is_some_and(|nb| nb <= recovery_point) {
            // Sealed and fsynced before the checkpoint was written.
            from_cp.or_else(|| read_index_meta(&*fs, path, base))
        } else {
            None
        };
        // Even a checksummed summary must describe this segment plausibly to be trusted.
        let mut trusted = trusted.filter(|m| plausible(m, base, next_base));
        if is_last && let Some(m) = trusted {
            // The active segment's summary is cheap to confirm against the log itself: its
            // last batches (from the last index entry on) must end exactly where it says.
            let seg = SegmentState::new(Arc::clone(&dir), m);
            match seg.load_indexes(&*fs, &m) {
                Some((index, time)) if tail_matches(&*fs, &seg, &m, &index) => active_loaded = Some((index, time)),
                _ => trusted = None,
            }
        }
        if let Some(m) = trusted {
            metas.push(m);
            i += 1;
            continue;
        }
        // Re-validate this segment from its first byte.
        let log_path = files::path(path, base, Ext::Log);
        let file = fs.open(&log_path, OpenMode::Write).at(&log_path)?;
        let file_len = file.len().at(&log_path)?;
        let mut scan = log_file::scan(&*file, &log_path, base, file_len, interval)?;
        report.segments_revalidated += 1;
        report.bytes_revalidated += scan.meta.size;
        if scan.meta.size < file_len {
            let stop = scan.stop.unwrap_or(log_file::Stop { pos: scan.meta.size, kind: CorruptKind::BatchLength });
            let later_segments = bases[i + 1..].iter().any(|&b| segment_has_data(&*fs, path, b));
            let later_here = log_file::valid_batch_after(
                &*file,
                &log_path,
                stop.pos,
                file_len,
                scan.meta.next_offset,
                !later_segments,
            )?;
            let zero_page_between = match later_here {
                Some(at) if !later_segments && at > stop.pos => {
                    log_file::has_zero_page(&*file, &log_path, stop.pos, at)?
                }
                _ => false,
            };
            let facts = TailFacts {
                valid_after_here: later_here,
                stop: stop.pos,
                later_segments_with_data: later_segments,
                zero_page_between,
            };
            let verdict = tail_verdict(&facts);
            if verdict == Verdict::Damage && opts.recovery == RecoveryMode::Strict {
                let kind = if stop.kind == CorruptKind::BatchLength { CorruptKind::MidLog } else { stop.kind };
                return Err(Error::corrupt(&log_path, stop.pos, kind));
            }
            // A torn tail (or damage the caller chose to cut): drop it and every later segment.
            file.set_len(scan.meta.size).at(&log_path)?;
            file.sync_data().at(&log_path)?;
            report.tail_cut = Some(TailCut {
                segment: base,
                at_byte: scan.meta.size,
                bytes_cut: file_len - scan.meta.size,
                reason: stop.kind,
                valid_data_after: verdict == Verdict::Damage,
            });
            for &b in &bases[i + 1..] {
                files::remove_segment(&*fs, path, b)?;
                report.segments_deleted.push(b);
            }
            if bases.len() > i + 1 {
                fs.sync_dir(path).at(path)?;
            }
            bases.truncate(i + 1);
        }
        if bases.len() != i + 1 {
            // A sealed segment above the recovery point, already durable (see the module
            // docs): index it only if its index files do not already describe it.
            scan.tracker.finish(&mut scan.time);
            if read_index_meta(&*fs, path, base) != Some(scan.meta) {
                let seg = SegmentState::new(Arc::clone(&dir), scan.meta);
                // Derived data: on a full disk it is rebuilt when the segment is next read.
                match crate::segment::write_indexes(&*fs, &seg, &scan.meta, &scan.index, &scan.time) {
                    Ok(()) => report.indexes_rebuilt += 1,
                    Err(Error::StorageFull { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            metas.push(scan.meta);
            i += 1;
            continue;
        }
        metas.push(scan.meta);
        active_scan = Some(scan);
        i += 1;
    }

    // Offsets must increase from segment to segment.
    for w in metas.windows(2) {
        if let [a, b] = w
            && a.next_offset > b.base
        {
            return Err(Error::corrupt(&files::path(path, b.base, Ext::Log), 0, CorruptKind::OffsetOrder));
        }
    }

    let config = Arc::new(opts.config.clone());
    let cache = opts.cache.clone().unwrap_or_else(|| HandleCache::new(DEFAULT_OPEN_SEGMENTS));

    // The end of the log may lie below the log start (everything was deleted): start afresh.
    let end = metas.last().map_or(log_start, |m| m.next_offset);
    let mut fresh = false;
    if metas.is_empty() || end < log_start {
        for m in &metas {
            files::remove_segment(&*fs, path, m.base)?;
            report.segments_deleted.push(m.base);
        }
        metas.clear();
        active_scan = None;
        fresh = true;
        let p = files::path(path, log_start, Ext::Log);
        fs.open(&p, OpenMode::Create).at(&p)?;
        fs.sync_dir(path).at(path)?;
        metas.push(SegMeta::empty(log_start));
    }

    // Phase 4: the segment list and the active segment's writer state.
    let mut segments: Vec<Arc<SegmentState>> = metas.iter().map(|m| SegmentState::new(Arc::clone(&dir), *m)).collect();
    let Some(active) = segments.last().cloned() else {
        return Err(Error::corrupt(path, 0, CorruptKind::Metadata));
    };
    let active_meta = active.meta();
    let log_path = active.log_path();
    let file = fs.open(&log_path, OpenMode::Write).at(&log_path)?;
    let (index, time, tracker) = match active_scan {
        Some(s) => (s.index, s.time, s.tracker),
        None => {
            // Clean shutdown or trusted: use the index files written at close, or rebuild.
            let loaded = active_loaded.take().or_else(|| active.load_indexes(&*fs, &active_meta));
            match loaded {
                Some((i, t)) => {
                    let tr = IndexTracker::new(&active_meta, &i);
                    (i, t, tr)
                }
                None => {
                    let s = log_file::rebuild(&*file, &log_path, active.base, active_meta.size, interval)?;
                    (s.index, s.time, s.tracker)
                }
            }
        }
    };
    // Cut anything past the valid end (preallocated zeros, appended garbage).
    if file.len().at(&log_path)? != active_meta.size {
        file.set_len(active_meta.size).at(&log_path)?;
        file.sync_data().at(&log_path)?;
    }
    // Map the active segment now, so reads of it are served from memory before any append.
    // Its bytes are already on disk: allocating them changes nothing (not even the mtime).
    file.enable_mapped_writes(u64::from(opts.config.segment_bytes).max(active_meta.size)).at(&log_path)?;
    if active_meta.size > 0 {
        file.allocate(active_meta.size).at(&log_path)?;
    }
    let opened = Opened::new(file, index, time);
    active.pin(Arc::clone(&opened));
    segments.shrink_to_fit();

    let revalidated = report.segments_revalidated > 0 || fresh || redone.is_some() || deleted_any;
    report.clean = clean && !revalidated;
    let next_offset = active_meta.next_offset;
    let writer = Writer::new(Arc::clone(&active), opened, tracker, &config, &dir);
    let cleaner_offset = cp.as_ref().map_or(log_start, |c| c.cleaner_offset);
    let inner = Inner {
        dir,
        fs,
        clock: opts.clock,
        cache,
        config: RwLock::new(config),
        writer: Mutex::new(writer),
        segments: SegmentSet::new(segments),
        maint: Mutex::new(()),
        ckpt: Mutex::new(CkptState { clean_on_disk: clean, recovery_point: active.base, cleaner_offset }),
        clean_on_disk: AtomicBool::new(clean),
        graveyard: Graveyard::new(),
        report,
        cleaner: Mutex::new(crate::cleaner::CleanerState::default()),
        listeners: super::notify::Listeners::default(),
        log_start: AtomicU64::new(log_start),
        next_offset: AtomicU64::new(next_offset),
        sync_state: Mutex::new(SyncState { synced: if clean { next_offset } else { 0 }, ..SyncState::default() }),
        sync_cv: Condvar::new(),
        appending: std::sync::atomic::AtomicUsize::new(0),
        last_group: std::sync::atomic::AtomicUsize::new(1),
        sync_epoch: AtomicU64::new(0),
        poisoned: AtomicBool::new(false),
        poison_cause: Mutex::new(None),
        closed: AtomicBool::new(false),
        map_reads: opts.map_reads,
        id: opts.id,
        lock: Mutex::new(lock),
    };
    if !clean || revalidated {
        // Everything before the active segment is now validated and durable. A clean
        // checkpoint that did not hold up (something was re-validated) stops claiming so now,
        // not only at the next change.
        let mut ck = inner.ckpt.lock();
        inner.write_or_drop_checkpoint(&mut ck, false)?;
    }
    if redone.is_some() {
        intent::finish(&*inner.fs, path)?;
    }
    Ok(inner)
}

pub(crate) fn take_lock(fs: &dyn FileSystem, dir: &Path) -> Result<Box<dyn crate::fs::DirLock>> {
    let p = dir.join(LOCK_FILE);
    match fs.lock(&p) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Error::Locked { path: dir.to_path_buf() }),
        Err(e) => Err(Error::io(&p, e)),
    }
}

fn read_checkpoint(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Checkpoint>> {
    let p = dir.join(checkpoint::FILE_NAME);
    let f = fs.open(&p, OpenMode::Read).at(&p)?;
    let len = f.len().at(&p)?;
    if len > 1 << 30 {
        return Ok(None);
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    f.read_exact_at(&mut buf, 0).at(&p)?;
    match Checkpoint::decode(&buf) {
        Ok(c) => Ok(Some(c)),
        Err(checkpoint::Bad::Version(v)) => {
            Err(Error::UnsupportedVersion { path: p, found: u32::from(v), supported: u32::from(checkpoint::VERSION) })
        }
        // A damaged checkpoint only costs a full re-validation.
        Err(checkpoint::Bad::Damaged) => Ok(None),
    }
}

/// Whether the batches from the last index entry of `seg` to its recorded size are intact and
/// end at its recorded next offset.
fn tail_matches(fs: &dyn FileSystem, seg: &SegmentState, m: &SegMeta, index: &OffsetIndex) -> bool {
    let p = seg.log_path();
    let Ok(f) = fs.open(&p, OpenMode::Read) else { return false };
    let from = index.entries().last().map_or(0, |e| e.position);
    match log_file::next_offset_of_range(&*f, &p, from, m.size) {
        Ok(Some(next)) => next == m.next_offset,
        Ok(None) => m.size == 0 && from == 0,
        Err(_) => false,
    }
}

/// Whether a stored summary can describe the segment with base `base` (followed by
/// `next_base`): offsets in order, within the offset space and a segment's u32 range.
fn plausible(m: &SegMeta, base: u64, next_base: Option<u64>) -> bool {
    m.base == base
        && m.next_offset >= m.base
        && m.next_offset <= crate::batch::MAX_OFFSET
        && m.next_offset - m.base <= u64::from(u32::MAX) + 1
        && m.size <= u64::from(u32::MAX)
        && (m.size == 0) == (m.next_offset == m.base)
        && (m.size == 0) == (m.records == 0)
        && next_base.is_none_or(|nb| m.next_offset <= nb)
}

fn file_len(fs: &dyn FileSystem, dir: &Path, base: u64) -> Option<u64> {
    let p = files::path(dir, base, Ext::Log);
    fs.open(&p, OpenMode::Read).ok()?.len().ok()
}

fn segment_has_data(fs: &dyn FileSystem, dir: &Path, base: u64) -> bool {
    let p = files::path(dir, base, Ext::Log);
    let Ok(f) = fs.open(&p, OpenMode::Read) else { return false };
    let Ok(len) = f.len() else { return false };
    log_file::scan(&*f, &p, base, len, u32::MAX).is_ok_and(|s| s.meta.records > 0 || s.meta.size > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_verdict_table() {
        let f = |valid_after_here, later_segments_with_data, zero_page_between| TailFacts {
            valid_after_here,
            stop: 100,
            later_segments_with_data,
            zero_page_between,
        };
        assert_eq!(tail_verdict(&f(None, false, false)), Verdict::TornTail);
        assert_eq!(tail_verdict(&f(None, true, false)), Verdict::Damage);
        assert_eq!(tail_verdict(&f(Some(5000), false, false)), Verdict::Damage);
        assert_eq!(tail_verdict(&f(Some(5000), false, true)), Verdict::TornTail);
        assert_eq!(tail_verdict(&f(Some(5000), true, true)), Verdict::Damage);
        // Valid data at the damage itself is never a hole.
        assert_eq!(tail_verdict(&f(Some(100), false, true)), Verdict::Damage);
    }
}
