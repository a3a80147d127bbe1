//! The write path: appends, rolls, fsync with group commit, truncation, log-start moves, close.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::checkpoint::{self, Checkpoint};
use super::recovery::delete_segment_files;
use super::{AppendInfo, Inner, View};
use crate::batch::{ATTR_LOG_APPEND_TIME, BatchBuilder, BatchHeader};
use crate::config::{TimestampType, TopicConfig, ms_i64};
use crate::error::TimestampBound;
use crate::error::{Error, IoContext, Result};
use crate::fs::{OpenMode, durable_replace};
use crate::record::Record;
use crate::segment::{IndexTracker, NO_TS, OffsetIndex, Opened, SegMeta, Segment, TimeIndex};

/// The active segment's first allocation; each later one doubles, up to [`PREALLOCATE_MAX_STEP`].
const PREALLOCATE_MIN: u64 = 64 << 10;
/// How long the thread about to fsync waits for appends already in progress to join it.
const GROUP_COMMIT_WAIT: Duration = Duration::from_micros(150);

/// Largest single allocation step for the active segment.
const PREALLOCATE_MAX_STEP: u64 = 16 << 20;

#[derive(Debug)]
pub(crate) struct Writer {
    pub(super) active: Arc<Segment>,
    pub(super) opened: Arc<Opened>,
    pub(super) tracker: IndexTracker,
    /// Bytes written to the active segment.
    pub(super) pos: u64,
    /// Bytes allocated for the active segment.
    pub(super) allocated: u64,
    /// Largest size the active segment may reach (its `segment.bytes` at creation).
    pub(super) segment_limit: u64,
    builder: BatchBuilder,
    /// Records appended since the last fsync.
    unflushed: u64,
    /// Whether the on-disk checkpoint still claims a clean shutdown (cleared before the first
    /// change).
    clean_on_disk: bool,
    /// Base offset of the first segment that is not known to be fsynced.
    pub(super) recovery_point: u64,
}

impl Writer {
    pub(crate) fn new(
        active: Arc<Segment>,
        opened: Arc<Opened>,
        tracker: IndexTracker,
        config: &TopicConfig,
        clean_on_disk: bool,
    ) -> Writer {
        let pos = active.len.load(Ordering::Acquire);
        let recovery_point = active.base;
        Writer {
            active,
            opened,
            tracker,
            pos,
            // The handle was mapped and its data allocated at open.
            allocated: pos,
            segment_limit: u64::from(config.segment_bytes),
            builder: BatchBuilder::new(),
            unflushed: 0,
            clean_on_disk,
            recovery_point,
        }
    }

    /// Writes the checkpoint atomically and durably.
    pub(crate) fn write_checkpoint(&mut self, inner: &Inner, clean: bool) -> Result<()> {
        self.put_checkpoint(inner, clean, true)
    }

    /// Writes the checkpoint; `dir_sync` false leaves the rename itself not yet durable, for
    /// updates whose older version stays correct (only the recovery point moves).
    fn put_checkpoint(&mut self, inner: &Inner, clean: bool, dir_sync: bool) -> Result<()> {
        let view = inner.view();
        let cp = Checkpoint {
            clean,
            log_start: inner.log_start.load(Ordering::Acquire),
            recovery_point: self.recovery_point,
            next_offset: inner.next_offset.load(Ordering::Acquire),
            segments: view.segments.iter().map(|s| s.meta()).collect(),
        };
        let p = inner.dir.join(checkpoint::FILE_NAME);
        if dir_sync {
            durable_replace(&*inner.fs, &p, &cp.encode()).at(&p)?;
        } else {
            crate::fs::replace_without_dir_sync(&*inner.fs, &p, &cp.encode()).at(&p)?;
        }
        self.clean_on_disk = clean;
        Ok(())
    }

    /// Before the first change after a clean open: the checkpoint must stop vouching for the
    /// files, or a crash now would be taken for a clean shutdown.
    pub(super) fn mark_dirty(&mut self, inner: &Inner) -> Result<()> {
        if self.clean_on_disk {
            self.write_checkpoint(inner, false)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `new_base`.
    fn roll(&mut self, inner: &Inner, new_base: u64, config: &TopicConfig) -> Result<()> {
        let old = Arc::clone(&self.active);
        let log_path = old.log_path();
        // Seal: final time-index entry, trim the preallocation, make it durable, write indexes.
        self.tracker.finish(&mut self.opened.time.write());
        self.opened.file.set_len(self.pos).at(&log_path)?;
        // The preallocation is gone: a failed roll that is retried must allocate again.
        self.allocated = self.pos;
        self.opened.file.sync_data().at(&log_path)?;
        let meta = old.meta();
        {
            // Derived data: if it cannot be written (a full disk, say) the segment's indexes
            // are rebuilt from the log when it is next opened.
            let index = self.opened.index.read();
            let time = self.opened.time.read();
            let _ = write_index_files(inner, &old, &meta, &index, &time);
        }
        // Create the next segment; its directory entry is durable before anything in it is
        // acknowledged.
        let seg = Segment::new(Arc::clone(&inner.dir), SegMeta::empty(new_base));
        let new_path = seg.log_path();
        let file = match inner.fs.open(&new_path, OpenMode::CreateNew) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A stale empty file from an interrupted roll may be reused; anything else is not ours
                // to overwrite.
                let f = inner.fs.open(&new_path, OpenMode::Write).at(&new_path)?;
                if f.len().at(&new_path)? != 0 {
                    return Err(Error::corrupt(&new_path, 0, crate::error::CorruptKind::OffsetOrder));
                }
                f
            }
            Err(e) => return Err(Error::io(&new_path, e)),
        };
        inner.fs.sync_dir(&inner.dir).at(&inner.dir)?;
        let opened = Opened::new(file, OffsetIndex::new(new_base), TimeIndex::new(new_base));
        seg.pin(Arc::clone(&opened));
        {
            let mut view = inner.view.write();
            let mut segments = view.segments.clone();
            segments.push(Arc::clone(&seg));
            *view = Arc::new(View { segments });
        }
        old.seal();
        self.active = seg;
        self.opened = opened;
        self.tracker = IndexTracker { bytes_since_entry: 0, max_ts: NO_TS, max_ts_offset: new_base };
        self.pos = 0;
        self.allocated = 0;
        self.segment_limit = u64::from(config.segment_bytes);
        self.recovery_point = new_base;
        {
            let mut st = inner.sync_state.lock();
            st.synced = st.synced.max(new_base);
        }
        // The roll is done in memory. A checkpoint that cannot be written now only means the
        // next open re-validates more; it is written again at the next roll or close.
        // Its older version stays correct (the recovery point is only behind), so the rename
        // need not be durable yet.
        self.put_checkpoint(inner, false, false)?;
        // A log start at or past the new base leaves the sealed segment wholly below it.
        if inner.log_start.load(Ordering::Acquire) >= new_base {
            drop_segments_below(inner, self, new_base)?;
        }
        Ok(())
    }

    /// Makes room for `len` more bytes in the active segment. Fails cleanly (nothing written,
    /// nothing poisoned) when the disk is full.
    fn reserve(&mut self, inner: &Inner, len: u64) -> Result<()> {
        let need = self.pos + len;
        if need <= self.allocated {
            return Ok(());
        }
        let path = self.active.log_path();
        if self.allocated == 0 {
            self.opened.file.enable_mapped_writes(self.segment_limit).at(&path)?;
        }
        let step = self.allocated.clamp(PREALLOCATE_MIN, PREALLOCATE_MAX_STEP);
        let target = (self.allocated + step).max(need).min(self.segment_limit).max(need);
        self.opened.file.allocate(target).map_err(|e| Error::io(&path, e))?;
        let _ = inner;
        self.allocated = target;
        Ok(())
    }
}

/// Index files are derived data: written atomically, without fsync (a lost or torn index is
/// detected by its checksums and rebuilt from the log).
fn write_index_files(
    inner: &Inner,
    seg: &Segment,
    meta: &SegMeta,
    index: &OffsetIndex,
    time: &TimeIndex,
) -> Result<()> {
    crate::segment::write_indexes(&*inner.fs, seg, meta, index, time)
}

fn resolve_timestamp(record: &Record<'_>, config: &TopicConfig, now: i64) -> Result<i64> {
    if config.timestamp_type == TimestampType::LogAppendTime {
        return Ok(now);
    }
    let Some(ts) = record.timestamp else { return Ok(now) };
    if ts == i64::MIN {
        return Err(Error::ReservedTimestamp { timestamp: ts });
    }
    if let Some(max_ms) = config.timestamp_before_max_ms
        && now.saturating_sub(ts) > ms_i64(max_ms)
    {
        return Err(Error::InvalidTimestamp { timestamp: ts, now, bound: TimestampBound::Before, max_ms });
    }
    if let Some(max_ms) = config.timestamp_after_max_ms
        && ts.saturating_sub(now) > ms_i64(max_ms)
    {
        return Err(Error::InvalidTimestamp { timestamp: ts, now, bound: TimestampBound::After, max_ms });
    }
    Ok(ts)
}

pub(crate) fn append(inner: &Inner, records: &[Record<'_>]) -> Result<AppendInfo> {
    if records.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let config = inner.config.read().clone();
    if config.cleanup_policy.compact
        && let Some(index) = records.iter().position(|r| r.key.is_none())
    {
        return Err(Error::KeyRequired { index });
    }
    let now = inner.clock.now_ms();
    let info;
    let sync_needed;
    let group = config.flush_messages == Some(1);
    if group {
        inner.appending.fetch_add(1, Ordering::AcqRel);
    }
    let result = append_locked(inner, records, &config, now);
    if group {
        inner.appending.fetch_sub(1, Ordering::AcqRel);
    }
    (info, sync_needed) = result?;
    if sync_needed {
        sync_to(inner, info.last_offset + 1)?;
    }
    Ok(info)
}

fn append_locked(inner: &Inner, records: &[Record<'_>], config: &TopicConfig, now: i64) -> Result<(AppendInfo, bool)> {
    let info;
    let sync_needed;
    {
        let mut w = inner.writer.lock();
        inner.check_usable()?;
        let base = inner.next_offset.load(Ordering::Relaxed);
        let attrs = if config.timestamp_type == TimestampType::LogAppendTime { ATTR_LOG_APPEND_TIME } else { 0 };
        w.builder.begin(base);
        for (i, r) in records.iter().enumerate() {
            let ts = resolve_timestamp(r, config, now)?;
            w.builder.push(r, i as u64, ts);
        }
        let max = config.max_batch_bytes();
        if w.builder.len() as u64 > max {
            return Err(Error::RecordTooLarge { size: w.builder.len() as u64, max });
        }
        let len = w.builder.len() as u64;
        let count = records.len() as u64;
        let last_offset = match base.checked_add(count - 1) {
            Some(l) if l < crate::batch::MAX_OFFSET => l,
            _ => {
                return Err(Error::OffsetSpaceExhausted { log_end_offset: base, records: count });
            }
        };

        // Roll first if this batch does not belong in the active segment (Kafka's rules).
        let first_ts = w.active.meta().first_ts;
        let too_big = w.pos + len > u64::from(config.segment_bytes);
        let index_full = w.opened.index.read().len() >= config.max_index_entries();
        let overflow =
            last_offset.saturating_sub(w.active.base) > u64::from(u32::MAX) || w.pos + len > u64::from(u32::MAX);
        let too_old = first_ts != NO_TS && w.builder.max_timestamp().saturating_sub(first_ts) > config.segment_ms_i64();
        if w.pos > 0 && (too_big || index_full || overflow || too_old) {
            w.mark_dirty(inner)?;
            match w.roll(inner, base, config) {
                Ok(()) => {}
                // A full disk fails the append cleanly: either the roll can be retried, or it
                // completed in memory and only the checkpoint is behind.
                Err(e @ Error::StorageFull { .. }) => return Err(e),
                Err(e) => return Err(inner.poison(e)),
            }
        }
        w.mark_dirty(inner)?;
        w.reserve(inner, len)?;
        let pos = w.pos;
        let header: BatchHeader = {
            let w = &mut *w;
            let (bytes, header) = w.builder.finish(attrs, None);
            if let Err(e) = w.opened.file.write_at(bytes, pos) {
                return Err(inner.poison(Error::io(&w.active.log_path(), e)));
            }
            header
        };
        {
            let w = &mut *w;
            let mut index = w.opened.index.write();
            let mut time = w.opened.time.write();
            w.tracker.on_batch(pos, &header, config.index_interval_bytes, &mut index, &mut time);
        }
        w.pos = pos + len;
        w.active.publish(w.pos, &header);
        inner.next_offset.store(header.next_offset(), Ordering::Release);
        w.unflushed += count;
        info = AppendInfo {
            partition: inner.id,
            base_offset: base,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
            record_count: header.record_count,
        };
        sync_needed = match (config.flush_messages, config.flush_ms) {
            (Some(n), _) if w.unflushed >= n => true,
            (_, Some(ms)) => {
                let last = inner.sync_state.lock().last_sync_ms;
                now.saturating_sub(last) >= ms_i64(ms)
            }
            _ => false,
        };
    }
    Ok((info, sync_needed))
}

/// Waits until every offset below `target` is durable, running the fsync itself unless
/// another thread's fsync already covers it (group commit).
pub(crate) fn sync_to(inner: &Inner, target: u64) -> Result<()> {
    inner.check_usable()?;
    let mut st = inner.sync_state.lock();
    loop {
        if inner.poisoned.load(Ordering::Acquire) {
            drop(st);
            return inner.check_usable();
        }
        if st.synced >= target {
            return Ok(());
        }
        if !st.in_progress {
            st.in_progress = true;
            break;
        }
        inner.sync_cv.wait(&mut st);
    }
    let synced_before = st.synced;
    drop(st);
    // Group commit: give appends already under way, and as many records as the previous fsync
    // covered (their writers are likely back with the next ones), a moment to join this fsync.
    let want = inner.last_group.load(Ordering::Acquire) as u64;
    let pending = || inner.next_offset.load(Ordering::Acquire).saturating_sub(synced_before);
    let spin_until = std::time::Instant::now() + GROUP_COMMIT_WAIT;
    while (inner.appending.load(Ordering::Acquire) > 0 || pending() < want) && std::time::Instant::now() < spin_until {
        std::thread::yield_now();
    }
    // Everything below `end` is in `file` or in sealed segments, fsynced when they were sealed.
    let (file_holder, end, path) = {
        let w = inner.writer.lock();
        (Arc::clone(&w.opened), inner.next_offset.load(Ordering::Acquire), w.active.log_path())
    };
    let result = file_holder.file.sync_data();
    let mut st = inner.sync_state.lock();
    st.in_progress = false;
    let out = match result {
        Ok(()) => {
            st.synced = st.synced.max(end);
            st.last_sync_ms = inner.clock.now_ms();
            let covered = end.saturating_sub(synced_before);
            inner.last_group.store(usize::try_from(covered).unwrap_or(usize::MAX), Ordering::Release);
            Ok(())
        }
        Err(e) => Err(inner.poison(Error::io(&path, e))),
    };
    inner.sync_cv.notify_all();
    drop(st);
    if out.is_ok() {
        let mut w = inner.writer.lock();
        if w.unflushed > 0 && inner.next_offset.load(Ordering::Acquire) == end {
            w.unflushed = 0;
        }
    }
    out
}

pub(crate) fn close(inner: &Inner) -> Result<()> {
    let mut w = inner.writer.lock();
    if inner.closed.load(Ordering::Acquire) {
        return Ok(());
    }
    if let Err(e) = inner.check_usable() {
        // Poisoned: nothing more may be written, but the lock is released so the log can be
        // reopened (and recovered) right away.
        inner.closed.store(true, Ordering::Release);
        inner.lock.lock().take();
        return Err(e);
    }
    let path = w.active.log_path();
    let result = (|| {
        w.tracker.finish(&mut w.opened.time.write());
        w.opened.file.set_len(w.pos).at(&path)?;
        w.opened.file.sync_data().at(&path)?;
        let meta = w.active.meta();
        {
            let index = w.opened.index.read();
            let time = w.opened.time.read();
            write_index_files(inner, &w.active, &meta, &index, &time)?;
        }
        w.recovery_point = w.active.base;
        w.write_checkpoint(inner, true)
    })();
    inner.closed.store(true, Ordering::Release);
    inner.sync_cv.notify_all();
    for s in &inner.view().segments {
        s.close(&inner.cache);
    }
    inner.lock.lock().take();
    result.map_err(|e| inner.poison(e))
}

pub(crate) fn advance_log_start(inner: &Inner, offset: u64) -> Result<()> {
    let mut w = inner.writer.lock();
    inner.check_usable()?;
    let end = inner.next_offset.load(Ordering::Acquire);
    let start = inner.log_start.load(Ordering::Acquire);
    if offset > end {
        return Err(Error::OffsetOutOfRange { requested: offset, start, end });
    }
    if offset <= start {
        return Ok(());
    }
    w.mark_dirty(inner)?;
    inner.log_start.store(offset, Ordering::Release);
    let result = match drop_segments_below(inner, &mut w, offset) {
        // Nothing to delete: the new start must still be made durable.
        Ok(false) => w.write_checkpoint(inner, false),
        Ok(true) => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| inner.poison(e))
}

/// Deletes the segments wholly below `offset` (the log start), never the active one. The
/// checkpoint with the current log start is made durable before any file goes, so a crash
/// cannot resurrect records. Returns whether anything was deleted (and the checkpoint written).
fn drop_segments_below(inner: &Inner, w: &mut Writer, offset: u64) -> Result<bool> {
    let view = inner.view();
    let n = view.segments.len();
    let doomed: Vec<Arc<Segment>> = view
        .segments
        .iter()
        .enumerate()
        .take_while(|(i, _)| i + 1 < n && view.segments.get(i + 1).is_some_and(|next| next.base <= offset))
        .map(|(_, s)| Arc::clone(s))
        .collect();
    if doomed.is_empty() {
        return Ok(false);
    }
    let kept: Vec<Arc<Segment>> = view.segments[doomed.len()..].to_vec();
    *inner.view.write() = Arc::new(View { segments: kept });
    w.write_checkpoint(inner, false)?;
    for s in &doomed {
        s.deleted.store(true, Ordering::Release);
        s.close(&inner.cache);
        delete_segment_files(&*inner.fs, &inner.dir, s.base)?;
    }
    Ok(true)
}

/// Starts a thread that fsyncs on `flush.ms` when the partition has such a setting. It holds
/// only a weak reference and ends when the partition is closed or dropped.
pub(crate) fn maybe_start_flusher(inner: &Arc<Inner>) {
    let Some(flush_ms) = inner.config.read().flush_ms.filter(|&ms| ms > 0) else { return };
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let tick = Duration::from_millis((flush_ms / 2).clamp(1, 1000));
    let _ = std::thread::Builder::new().name("partlog-flush".into()).spawn(move || {
        loop {
            std::thread::sleep(tick);
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.load(Ordering::Acquire) || inner.poisoned.load(Ordering::Acquire) {
                return;
            }
            let Some(ms) = inner.config.read().flush_ms else { continue };
            let (synced, last) = {
                let st = inner.sync_state.lock();
                (st.synced, st.last_sync_ms)
            };
            let end = inner.next_offset.load(Ordering::Acquire);
            let due = inner.clock.now_ms().saturating_sub(last) >= ms_i64(ms);
            if end > synced && due {
                let _ = sync_to(&inner, end);
            }
        }
    });
}
