//! What the engines (retention, the cleaner) may do to a partition: read sealed segments
//! through checked handles, roll the active segment, delete a prefix of sealed segments and
//! replace a run of sealed segments by new ones. Policy lives outside (`crate::retention`,
//! `crate::cleaner`); the mechanism and its crash safety live here.
//!
//! Every function here expects the caller to hold `inner.maint` (one engine at a time per
//! partition), and never holds the writer lock across an fsync or an unlink: appends go on
//! while retention deletes and the cleaner swaps.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use super::intent::{self, Intent};
use super::segments::Conflict;
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::segment::files::{self, Ext};
use crate::segment::{OffsetIndex, Opened, SegMeta, SegmentState, TimeIndex};

/// A segment written by an engine, ready to be swapped in: its `.log.cleaned` file is
/// complete and fsynced.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub meta: SegMeta,
    pub cleaned: PathBuf,
    pub index: OffsetIndex,
    pub time: TimeIndex,
}

/// Opens a sealed segment for an engine to read; `None` when it was retired meanwhile.
pub(crate) fn open_sealed(inner: &Inner, seg: &SegmentState) -> Result<Option<Arc<Opened>>> {
    let interval = inner.config.read().index_interval_bytes;
    inner.open_segment(seg, interval)
}

/// Takes the sealed prefix `doomed` out of the log: the log start moves to at least
/// `new_start` (durably, before any file goes), the segments are retired, and their files are
/// renamed out of the log and unlinked once no reader holds them. Returns the bytes the
/// segments held; [`Conflict`] when `doomed` is no longer the current sealed prefix.
///
/// On a full disk the checkpoint cannot be written first, and retention is what frees the
/// space: the segments then go one at a time, oldest first, each rename made durable before
/// the next, so that what a crash leaves is always a suffix of the log (whose first segment
/// the next open takes for the log start) — never a hole.
pub(crate) fn delete_prefix(
    inner: &Inner,
    doomed: &[Arc<SegmentState>],
    new_start: u64,
) -> Result<std::result::Result<u64, Conflict>> {
    if doomed.is_empty() {
        return Ok(Ok(0));
    }
    inner.check_usable()?;
    let mut ordered = match inner.mark_dirty() {
        Ok(()) => false,
        Err(Error::StorageFull { .. }) => true,
        Err(e) => return Err(e),
    };
    {
        let mut ck = inner.ckpt.lock();
        let published = inner.segments.update(|v| {
            let is_prefix =
                v.segments.len() > doomed.len() && v.segments.iter().zip(doomed).all(|(a, b)| Arc::ptr_eq(a, b));
            if !is_prefix {
                return None;
            }
            // The log start moves before the list is published: a reader that sees the new
            // list also sees the new start.
            if new_start > inner.log_start.load(Ordering::Acquire) {
                inner.log_start.store(new_start, Ordering::Release);
            }
            Some((v.segments[doomed.len()..].to_vec(), ()))
        });
        if published.is_none() {
            return Ok(Err(Conflict));
        }
        // Durable before anything is deleted: a crash from here on leaves segments below the
        // log start, which the next open removes — never a hole in the middle of the log.
        // From here on the list in memory has changed: a failure other than a full disk
        // poisons the partition.
        if !ordered {
            match inner.write_checkpoint(&mut ck, false, true) {
                Ok(()) => {}
                Err(Error::StorageFull { .. }) => ordered = true,
                Err(e) => return Err(inner.poison(e)),
            }
        }
    }
    let mut bytes = 0;
    let result = (|| -> Result<()> {
        for s in doomed {
            bytes += s.len.load(Ordering::Acquire);
            s.retire(&inner.cache);
            let out = files::retire_files(&*inner.fs, &inner.dir, s.base)?;
            s.bury_when_dropped(&inner.graveyard, out);
            if ordered {
                inner.fs.sync_dir(&inner.dir).at(&inner.dir)?;
            }
        }
        if !ordered {
            inner.fs.sync_dir(&inner.dir).at(&inner.dir)?;
        }
        Ok(())
    })();
    result.map_err(|e| inner.poison(e))?;
    Ok(Ok(bytes))
}

/// Deletes the sealed segments wholly below the log start (after `advance_log_start`, or a
/// roll past it). Returns how many went.
pub(crate) fn delete_below_log_start(inner: &Inner) -> Result<usize> {
    let view = inner.view();
    let start = inner.log_start.load(Ordering::Acquire);
    let n = view.segments.len();
    let k = (0..n.saturating_sub(1)).take_while(|&i| view.segments.get(i + 1).is_some_and(|s| s.base <= start)).count();
    let doomed: Vec<Arc<SegmentState>> = view.segments[..k].to_vec();
    drop(view);
    match delete_prefix(inner, &doomed, start)? {
        Ok(_) => {
            drop(doomed);
            inner.graveyard.reap(&*inner.fs);
            Ok(k)
        }
        Err(Conflict) => Ok(0),
    }
}

/// Kafka's DeleteRecords: makes `offset` the log start, durably, then deletes the segments
/// wholly below it.
pub(crate) fn advance_log_start(inner: &Inner, offset: u64) -> Result<()> {
    let _m = inner.maint.lock();
    inner.check_usable()?;
    let end = inner.next_offset.load(Ordering::Acquire);
    let start = inner.log_start.load(Ordering::Acquire);
    if offset > end {
        return Err(Error::OffsetOutOfRange { requested: offset, start, end });
    }
    if offset <= start {
        return Ok(());
    }
    inner.mark_dirty()?;
    {
        let mut ck = inner.ckpt.lock();
        inner.log_start.store(offset, Ordering::Release);
        ck.cleaner_offset = ck.cleaner_offset.max(offset);
        inner.write_checkpoint(&mut ck, false, true)?;
    }
    delete_below_log_start(inner)?;
    Ok(())
}

/// Swaps `new` in for the sealed run `old` (contiguous, oldest first; `new` starts at the
/// run's base offset and covers no offset outside it), crash-safely through a replace intent:
///
/// 1. the new segments' `.log.cleaned` files are complete and fsynced (the caller's part);
/// 2. the intent naming both sides is made durable — before this, a crash leaves the old
///    segments and stray `.cleaned` files, which the next open removes;
/// 3. the old segments are retired (readers holding them keep their open handles);
/// 4. each `.cleaned` file is renamed to its final name (replacing an old segment of the same
///    base at once), the other old segments are renamed to `.deleted`;
/// 5. the new list is published, the directory synced, the checkpoint written with
///    `cleaner_offset`, and the intent removed. A crash anywhere after step 2 is finished by
///    the next open, which carries the intent out again.
///
/// [`Conflict`] (nothing changed, `.cleaned` files removed) when `old` is no longer a current
/// run of sealed segments.
pub(crate) fn replace_sealed(
    inner: &Inner,
    old: &[Arc<SegmentState>],
    new: Vec<Prepared>,
    cleaner_offset: Option<u64>,
) -> Result<std::result::Result<(), Conflict>> {
    let discard = |new: &[Prepared]| {
        for n in new {
            let _ = files::remove_if_present(&*inner.fs, &n.cleaned);
        }
    };
    inner.check_usable()?;
    let (Some(first_old), Some(first_new)) = (old.first(), new.first()) else {
        discard(&new);
        return Ok(Err(Conflict));
    };
    let current = {
        let v = inner.view();
        let at = v.segments.iter().position(|s| Arc::ptr_eq(s, first_old));
        at.is_some_and(|at| {
            at + old.len() < v.segments.len()
                && v.segments[at..at + old.len()].iter().zip(old).all(|(a, b)| Arc::ptr_eq(a, b))
        })
    };
    if !current || first_new.meta.base != first_old.base {
        discard(&new);
        return Ok(Err(Conflict));
    }
    inner.mark_dirty()?;
    let plan =
        Intent::Replace { old: old.iter().map(|s| s.base).collect(), new: new.iter().map(|n| n.meta.base).collect() };
    if let Err(e) = plan.persist(&*inner.fs, &inner.dir) {
        discard(&new);
        return Err(e);
    }
    // From here on the change is committed: a failure poisons the partition and the next
    // open finishes the swap.
    let result = (|| -> Result<()> {
        for s in old {
            s.retire(&inner.cache);
        }
        let new_bases: Vec<u64> = new.iter().map(|n| n.meta.base).collect();
        let mut segs = Vec::with_capacity(new.len());
        for n in new {
            let base = n.meta.base;
            files::remove_indexes(&*inner.fs, &inner.dir, base)?;
            let dst = files::path(&inner.dir, base, Ext::Log);
            inner.fs.rename(&n.cleaned, &dst).at(&dst)?;
            let seg = SegmentState::new(Arc::clone(&inner.dir), n.meta);
            let _ = crate::segment::write_indexes(&*inner.fs, &seg, &n.meta, &n.index, &n.time);
            segs.push(seg);
        }
        for s in old.iter().filter(|s| !new_bases.contains(&s.base)) {
            let out = files::retire_files(&*inner.fs, &inner.dir, s.base)?;
            s.bury_when_dropped(&inner.graveyard, out);
        }
        inner.segments.replace_run(old, segs).map_err(|_| Error::corrupt(&inner.dir, 0, CorruptKind::Metadata))?;
        inner.fs.sync_dir(&inner.dir).at(&inner.dir)?;
        let mut ck = inner.ckpt.lock();
        if let Some(c) = cleaner_offset {
            ck.cleaner_offset = c;
        }
        inner.write_checkpoint(&mut ck, false, true)?;
        drop(ck);
        intent::finish(&*inner.fs, &inner.dir)
    })();
    result.map(Ok).map_err(|e| inner.poison(e))
}

/// Records how far compaction has cleaned, durably.
pub(crate) fn set_cleaner_offset(inner: &Inner, offset: u64) -> Result<()> {
    inner.mark_dirty()?;
    let mut ck = inner.ckpt.lock();
    if ck.cleaner_offset != offset {
        ck.cleaner_offset = offset;
        inner.write_checkpoint(&mut ck, false, true)?;
    }
    Ok(())
}

/// The cleaner offset (Kafka's first dirty offset) as last recorded.
pub(crate) fn cleaner_offset(inner: &Inner) -> u64 {
    inner.ckpt.lock().cleaner_offset
}
