//! Truncating the tail of the log, made atomic with a segment-set intent ([`super::intent`]).
//!
//! Cutting a log can touch several files: later segments are deleted, the segment holding the
//! new end is cut, and a batch straddling the cut is rewritten with only its records below it.
//! The complete plan is written durably first; an open that finds it carries it out again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::intent::{self, Intent};
use super::writer::Writer;
use super::{Inner, View};
use crate::batch::{BatchBuilder, BatchHeader, HEADER_LEN, RecordIter};
use crate::config::TopicConfig;
use crate::error::{Error, IoContext, Result};
use crate::fs::OpenMode;
use crate::segment::{IndexTracker, NO_TS, OffsetIndex, Opened, SegMeta, SegmentState, TimeIndex, log_file};

pub(crate) fn truncate_to(inner: &Inner, offset: u64) -> Result<()> {
    let config = inner.config.read().clone();
    let _m = inner.maint.lock();
    let mut w = inner.writer.lock();
    inner.check_usable()?;
    let end = inner.next_offset.load(Ordering::Acquire);
    if offset >= end {
        return Ok(());
    }
    inner.mark_dirty()?;
    let log_start = inner.log_start.load(Ordering::Acquire);
    let view = inner.view();
    let plan = if offset <= log_start {
        Intent::Reset { target: offset }
    } else {
        plan_within(inner, &view, offset, &config)?
    };
    // The bytes the plan keeps must be durable before the plan is, or a crash could leave an
    // intent that refers to data that is gone.
    if let Intent::Cut { seg_base, .. } = &plan
        && view.active().is_some_and(|s| s.base == *seg_base)
    {
        let path = w.active.log_path();
        w.opened.file.sync_data().map_err(|e| inner.poison(Error::io(&path, e)))?;
    }
    // Nothing has changed until the intent is durable; a failure here leaves the log as it was.
    plan.persist(&*inner.fs, &inner.dir)?;
    let result = execute(inner, &mut w, &view, &plan, &config);
    result.map_err(|e| inner.poison(e))
}

/// Finds where to cut so that `offset` becomes the log end.
fn plan_within(inner: &Inner, view: &View, offset: u64, config: &TopicConfig) -> Result<Intent> {
    let idx = view.floor(offset);
    let Some(target) = view.segments.get(idx) else {
        return Err(Error::OffsetOutOfRange { requested: offset, start: 0, end: 0 });
    };
    // Holding every lock that changes the list, nothing can retire the segment under us.
    let Some(opened) = inner.open_segment(target, config.index_interval_bytes)? else {
        return Err(inner.unsettled());
    };
    let path = target.log_path();
    let size = target.len.load(Ordering::Acquire);
    // The scan starts at the index entry before the one for `offset`, so that it also passes
    // the batch just before: where the kept bytes end, in offsets, is the end of the last
    // batch kept, which after compaction can be below `offset` (its last records removed).
    let entry = {
        let index = opened.index.read();
        let e = index.lookup(offset);
        if e.position == 0 { e } else { index.lookup(e.offset.saturating_sub(1)) }
    };
    let mut pos = entry.position;
    let mut buf = [0u8; HEADER_LEN];
    let mut rewrite = Vec::new();
    let mut kept_end = if pos == 0 { target.base } else { entry.offset };
    let mut kept_ts = None;
    while pos < size {
        opened.file.read_exact_at(&mut buf, pos).at(&path)?;
        let left = usize::try_from(size - pos).unwrap_or(usize::MAX);
        let h = BatchHeader::parse(&buf, left).map_err(|k| Error::corrupt(&path, pos, k))?;
        if h.last_offset() >= offset {
            if h.base_offset < offset {
                let mut whole = vec![0u8; h.length as usize];
                opened.file.read_exact_at(&mut whole, pos).at(&path)?;
                crate::batch::validate(&whole).map_err(|k| Error::corrupt(&path, pos, k))?;
                let mut b = BatchBuilder::new();
                b.begin(h.base_offset);
                for r in RecordIter::new(&whole, h).filter(|r| r.offset() < offset) {
                    b.push_ref(&r);
                }
                if !b.is_empty() {
                    let last_delta = offset - 1 - h.base_offset;
                    b.set_delete_horizon(h.delete_horizon());
                    rewrite = b.finish(h.attributes, Some(last_delta)).0.to_vec();
                    kept_end = offset;
                } else {
                    kept_end = h.base_offset;
                    kept_ts = Some(h.base_timestamp);
                }
            }
            break;
        }
        kept_end = h.next_offset();
        kept_ts = Some(h.max_timestamp);
        pos += u64::from(h.length);
    }
    if kept_end < offset {
        // The kept batches end in a gap below `offset` (compaction removed the records in
        // between): an empty batch covering the rest of the gap carries the log end, so that
        // the segment and every later open agree that the next offset is `offset`.
        let mut b = BatchBuilder::new();
        b.begin_like(kept_end, kept_ts.unwrap_or_else(|| inner.clock.now_ms()));
        rewrite = b.finish(0, Some(offset - 1 - kept_end)).0.to_vec();
    }
    Ok(Intent::Cut { target: offset, seg_base: target.base, cut: pos.min(size), rewrite })
}

/// Carries out a durable intent on the files and in memory, then records it and drops the
/// intent.
fn execute(inner: &Inner, w: &mut Writer, view: &View, plan: &Intent, config: &TopicConfig) -> Result<()> {
    let mut bases: Vec<u64> = view.segments.iter().map(|s| s.base).collect();
    // The empty next segment an unfinished roll may have left lies above every kept one: it
    // goes with the cut segments.
    bases.extend(w.unfinished_roll);
    let (target, kept_base) = match plan {
        Intent::Reset { target } => (*target, None),
        Intent::Cut { target, seg_base, .. } => (*target, Some(*seg_base)),
        Intent::Replace { .. } => return Err(Error::corrupt(&inner.dir, 0, crate::error::CorruptKind::Metadata)),
    };
    // Every segment whose files change is retired first: readers holding it keep their open
    // handle on the old bytes; the others retry on the new list.
    for s in view.segments.iter().filter(|s| kept_base.is_none_or(|b| s.base >= b)) {
        s.retire(&inner.cache);
    }
    intent::apply_files(&*inner.fs, &inner.dir, plan, &bases)?;
    w.unfinished_roll = None;
    let (seg, opened, tracker, pos) = match kept_base {
        None => {
            let seg = SegmentState::new(Arc::clone(&inner.dir), SegMeta::empty(target));
            let p = seg.log_path();
            let file = inner.fs.open(&p, OpenMode::Write).at(&p)?;
            let opened = Opened::new(file, OffsetIndex::new(target), TimeIndex::new(target));
            (seg, opened, IndexTracker { bytes_since_entry: 0, max_ts: NO_TS, max_ts_offset: target }, 0)
        }
        Some(base) => {
            let p = crate::segment::files::path(&inner.dir, base, crate::segment::files::Ext::Log);
            let file = inner.fs.open(&p, OpenMode::Write).at(&p)?;
            let end = file.len().at(&p)?;
            let scan = log_file::scan(&*file, &p, base, end, config.index_interval_bytes)?;
            if let Some(stop) = scan.stop {
                return Err(Error::corrupt(&p, stop.pos, stop.kind));
            }
            let seg = SegmentState::new(Arc::clone(&inner.dir), scan.meta);
            let opened = Opened::new(file, scan.index, scan.time);
            (seg, opened, scan.tracker, end)
        }
    };
    seg.pin(Arc::clone(&opened));
    if kept_base.is_none() {
        inner.log_start.store(target, Ordering::Release);
    }
    let mut segments: Vec<Arc<SegmentState>> = match kept_base {
        None => Vec::new(),
        Some(b) => view.segments.iter().filter(|s| s.base < b).cloned().collect(),
    };
    segments.push(Arc::clone(&seg));
    inner.segments.replace_all(segments);
    inner.next_offset.store(target, Ordering::Release);
    w.active = seg;
    w.opened = opened;
    w.tracker = tracker;
    w.pos = pos;
    // A fresh handle: its map and preallocation are set up by the next append.
    w.allocated = 0;
    w.segment_limit = u64::from(config.segment_bytes).max(w.pos);
    {
        let mut st = inner.sync_state.lock();
        st.synced = st.synced.min(target);
    }
    let mut ck = inner.ckpt.lock();
    ck.recovery_point = ck.recovery_point.min(w.active.base);
    ck.cleaner_offset = ck.cleaner_offset.min(target);
    inner.write_checkpoint(&mut ck, false, true)?;
    drop(ck);
    intent::finish(&*inner.fs, &inner.dir)
}
