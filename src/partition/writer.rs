//! The write path: appends, rolls, fsync with group commit, log-start moves, close.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::checkpoint::{self, Checkpoint};
use super::{AppendInfo, CkptState, Inner};
use crate::batch::{ATTR_LOG_APPEND_TIME, BatchBuilder, BatchHeader};
use crate::config::{TimestampType, TopicConfig, ms_i64};
use crate::error::{Error, IoContext, Result, TimestampBound};
use crate::fs::{OpenMode, durable_replace};
use crate::record::Record;
use crate::segment::{IndexTracker, NO_TS, OffsetIndex, Opened, SegMeta, SegmentState, TimeIndex};

/// The active segment's first allocation; each later one doubles, up to [`PREALLOCATE_MAX_STEP`].
const PREALLOCATE_MIN: u64 = 64 << 10;
/// How long the thread about to fsync waits for appends already in progress to join it.
const GROUP_COMMIT_WAIT: Duration = Duration::from_micros(150);

/// How long a thread waiting for another's fsync stays awake (yielding) before it sleeps.
const SYNC_WAIT_SPIN: Duration = Duration::from_micros(250);

/// Largest single allocation step for the active segment.
const PREALLOCATE_MAX_STEP: u64 = 16 << 20;

#[derive(Debug)]
pub(crate) struct Writer {
    pub(super) active: Arc<SegmentState>,
    pub(super) opened: Arc<Opened>,
    pub(super) tracker: IndexTracker,
    /// Bytes written to the active segment.
    pub(super) pos: u64,
    /// Bytes allocated for the active segment.
    pub(super) allocated: u64,
    /// Largest size the active segment may reach (its `segment.bytes` at creation).
    pub(super) segment_limit: u64,
    /// This segment's share of `segment.jitter.ms`, fixed when it was created.
    pub(super) roll_jitter_ms: u64,
    builder: BatchBuilder,
    /// Records appended since the last fsync.
    unflushed: u64,
    /// The base of the next segment while a roll is unfinished: a roll that failed (a full
    /// disk) may have left that segment's empty file. Recovery takes a segment with a successor
    /// file as sealed, so no batch goes to the active segment until a roll completes (the next
    /// append retries it, reusing the empty file), and a truncation removes the file.
    pub(super) unfinished_roll: Option<u64>,
}

/// Why the active segment rolls before an append (Kafka's `LogSegment.shouldRoll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RollReason {
    /// The batch would take the segment past `segment.bytes`.
    Size,
    /// The segment's first record is older than `segment.ms` (less jitter), in record time.
    Time,
    /// The offset index is full (`segment.index.bytes`).
    IndexFull,
    /// Relative offsets or positions would overflow u32.
    Overflow,
}

/// What the roll decision looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RollParams {
    /// Bytes in the active segment.
    pub size: u64,
    /// Bytes of the incoming batch.
    pub incoming: u64,
    pub segment_bytes: u64,
    /// Timestamp of the segment's first batch (`NO_TS` when empty).
    pub first_ts: i64,
    /// Largest timestamp of the incoming batch.
    pub incoming_max_ts: i64,
    pub segment_ms: i64,
    pub jitter_ms: i64,
    pub index_entries: usize,
    pub max_index_entries: usize,
    pub base: u64,
    pub incoming_last_offset: u64,
}

/// The roll decision: `None` to append to the active segment. An empty segment never rolls.
pub(crate) fn should_roll(p: &RollParams) -> Option<RollReason> {
    if p.size == 0 {
        return None;
    }
    if p.size + p.incoming > p.segment_bytes {
        return Some(RollReason::Size);
    }
    if p.index_entries >= p.max_index_entries {
        return Some(RollReason::IndexFull);
    }
    if p.incoming_last_offset.saturating_sub(p.base) > u64::from(u32::MAX) || p.size + p.incoming > u64::from(u32::MAX)
    {
        return Some(RollReason::Overflow);
    }
    let waited = p.incoming_max_ts.saturating_sub(p.first_ts);
    if p.first_ts != NO_TS && waited > p.segment_ms.saturating_sub(p.jitter_ms) {
        return Some(RollReason::Time);
    }
    None
}

/// A segment's share of `segment.jitter.ms`: uniform in `[0, min(jitter, segment.ms))`, from
/// the segment's base offset and the partition's directory, so partitions rolling at the same
/// record time spread out.
fn roll_jitter(config: &TopicConfig, dir: &std::path::Path, base: u64) -> u64 {
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound == 0 {
        return 0;
    }
    let mut h = base ^ 0x9E37_79B9_7F4A_7C15;
    for b in dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3);
    }
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (h ^ (h >> 29)) % bound
}

impl Writer {
    pub(crate) fn new(
        active: Arc<SegmentState>,
        opened: Arc<Opened>,
        tracker: IndexTracker,
        config: &TopicConfig,
        dir: &std::path::Path,
    ) -> Writer {
        let pos = active.len.load(Ordering::Acquire);
        let roll_jitter_ms = roll_jitter(config, dir, active.base);
        Writer {
            active,
            opened,
            tracker,
            pos,
            // The handle was mapped and its data allocated at open.
            allocated: pos,
            segment_limit: u64::from(config.segment_bytes),
            roll_jitter_ms,
            builder: BatchBuilder::new(),
            unflushed: 0,
            unfinished_roll: None,
        }
    }

    /// Seals the active segment and starts a new one at `new_base`.
    pub(super) fn roll(&mut self, inner: &Inner, new_base: u64, config: &TopicConfig) -> Result<()> {
        let old = Arc::clone(&self.active);
        let log_path = old.log_path();
        self.unfinished_roll = Some(new_base);
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
            let _ = crate::segment::write_indexes(&*inner.fs, &old, &meta, &index, &time);
        }
        // Create the next segment; its directory entry is durable before anything in it is
        // acknowledged. Every segment that has a successor was fsynced before the successor
        // was created: recovery relies on it.
        let seg = SegmentState::new(Arc::clone(&inner.dir), SegMeta::empty(new_base));
        let new_path = seg.log_path();
        let file = match inner.fs.open(&new_path, OpenMode::CreateNew) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A stale empty file from an interrupted roll may be reused; anything else is not ours
                // to overwrite.
                let f = inner.fs.open(&new_path, OpenMode::Write).at(&new_path)?;
                if f.len().at(&new_path)? != 0 {
                    // Not left by a roll of ours: nothing may remove it.
                    self.unfinished_roll = None;
                    return Err(Error::corrupt(&new_path, 0, crate::error::CorruptKind::OffsetOrder));
                }
                f
            }
            Err(e) => return Err(Error::io(&new_path, e)),
        };
        inner.fs.sync_dir(&inner.dir).at(&inner.dir)?;
        let opened = Opened::new(file, OffsetIndex::new(new_base), TimeIndex::new(new_base));
        seg.pin(Arc::clone(&opened));
        inner.segments.push(Arc::clone(&seg));
        old.seal();
        self.unfinished_roll = None;
        self.active = seg;
        self.opened = opened;
        self.tracker = IndexTracker { bytes_since_entry: 0, max_ts: NO_TS, max_ts_offset: new_base };
        self.pos = 0;
        self.allocated = 0;
        self.segment_limit = u64::from(config.segment_bytes);
        self.roll_jitter_ms = roll_jitter(config, &inner.dir, new_base);
        {
            let mut st = inner.sync_state.lock();
            st.synced = st.synced.max(new_base);
        }
        // The roll is done in memory. A checkpoint that cannot be written now only means the
        // next open re-validates more; it is written again at the next roll or close.
        // Its older version stays correct (the recovery point is only behind), so the rename
        // need not be durable yet.
        crate::trace::event!(
            info,
            partition = %inner.dir.display(),
            sealed_base = old.base,
            sealed_bytes = meta.size,
            new_base,
            "segment rolled"
        );
        let mut ck = inner.ckpt.lock();
        ck.recovery_point = new_base;
        inner.write_checkpoint(&mut ck, false, false)?;
        Ok(())
    }

    /// Makes room for `len` more bytes in the active segment. Fails cleanly (nothing written,
    /// nothing poisoned) when the disk is full. The reservation grows in steps; when a step does
    /// not fit on the disk, it falls back to exactly what this append needs, so a nearly full
    /// disk fills up to the last byte and appends work again as soon as a little space is freed.
    fn reserve(&mut self, len: u64, preallocate: bool) -> Result<()> {
        let need = self.pos + len;
        if need <= self.allocated {
            return Ok(());
        }
        let path = self.active.log_path();
        if self.allocated == 0 {
            self.opened.file.enable_mapped_writes(self.segment_limit.max(need)).at(&path)?;
        }
        let step =
            if preallocate { self.segment_limit } else { self.allocated.clamp(PREALLOCATE_MIN, PREALLOCATE_MAX_STEP) };
        let target = (self.allocated + step).min(self.segment_limit).max(need);
        match self.opened.file.allocate(target) {
            Ok(()) => {}
            Err(e) if crate::error::is_storage_full(&e) && target > need => {
                self.opened.file.allocate(need).map_err(|e| Error::io(&path, e))?;
                self.allocated = need;
                return Ok(());
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
        self.allocated = target;
        Ok(())
    }
}

impl Inner {
    /// Writes the checkpoint from the current state; `dir_sync` false leaves the rename itself
    /// not yet durable, for updates whose older version stays correct (only the recovery point
    /// moves).
    pub(crate) fn write_checkpoint(&self, st: &mut CkptState, clean: bool, dir_sync: bool) -> Result<()> {
        let view = self.view();
        let cp = Checkpoint {
            clean,
            log_start: self.log_start.load(Ordering::Acquire),
            recovery_point: st.recovery_point,
            next_offset: self.next_offset.load(Ordering::Acquire),
            cleaner_offset: st.cleaner_offset,
            segments: view.segments.iter().map(|s| s.meta()).collect(),
        };
        let p = self.dir.join(checkpoint::FILE_NAME);
        if dir_sync {
            durable_replace(&*self.fs, &p, &cp.encode()).at(&p)?;
        } else {
            crate::fs::replace_without_dir_sync(&*self.fs, &p, &cp.encode()).at(&p)?;
        }
        st.clean_on_disk = clean;
        self.clean_on_disk.store(clean, Ordering::Release);
        Ok(())
    }

    /// Before the first change after a clean open: the checkpoint must stop vouching for the
    /// files, or a crash now would be taken for a clean shutdown.
    pub(crate) fn mark_dirty(&self) -> Result<()> {
        if !self.clean_on_disk.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut st = self.ckpt.lock();
        if st.clean_on_disk {
            self.write_or_drop_checkpoint(&mut st, false)?;
        }
        Ok(())
    }

    /// Writes the checkpoint durably; on a full disk, removes it instead (unlinking needs no
    /// space). Without a checkpoint the next open re-validates every segment: slower, never
    /// wrong — and a full disk must not keep a partition from opening, closing or running the
    /// retention that frees the space.
    pub(crate) fn write_or_drop_checkpoint(&self, st: &mut CkptState, clean: bool) -> Result<()> {
        match self.write_checkpoint(st, clean, true) {
            Err(Error::StorageFull { .. }) => {
                let p = self.dir.join(checkpoint::FILE_NAME);
                crate::segment::files::remove_if_present(&*self.fs, &p)?;
                let _ = crate::segment::files::remove_if_present(
                    &*self.fs,
                    &self.dir.join(format!("{}.tmp", checkpoint::FILE_NAME)),
                );
                self.fs.sync_dir(&self.dir).at(&self.dir)?;
                st.clean_on_disk = false;
                self.clean_on_disk.store(false, Ordering::Release);
                Ok(())
            }
            r => r,
        }
    }
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
    let group = config.flush_messages == Some(1);
    if group {
        inner.appending.fetch_add(1, Ordering::AcqRel);
    }
    let result = append_locked(inner, records, &config, now);
    if group {
        inner.appending.fetch_sub(1, Ordering::AcqRel);
    }
    let done = result?;
    inner.listeners.appended();
    if done.rolled_below_start {
        // The segment just sealed lies wholly below the log start: delete it now, outside the
        // writer lock (or leave it to the next retention pass if one is running).
        if let Some(_m) = inner.maint.try_lock() {
            let _ = super::maintenance::delete_below_log_start(inner);
        }
    }
    if done.sync_needed {
        sync_to(inner, done.info.last_offset + 1)?;
    }
    Ok(done.info)
}

struct Appended {
    info: AppendInfo,
    sync_needed: bool,
    rolled_below_start: bool,
}

fn append_locked(inner: &Inner, records: &[Record<'_>], config: &TopicConfig, now: i64) -> Result<Appended> {
    let mut w = inner.writer.lock();
    inner.check_usable()?;
    let base = inner.next_offset.load(Ordering::Relaxed);
    let attrs = if config.timestamp_type == TimestampType::LogAppendTime { ATTR_LOG_APPEND_TIME } else { 0 };
    w.builder.begin(base);
    for (i, r) in records.iter().enumerate() {
        let ts = resolve_timestamp(r, config, now)?;
        w.builder.push(r, i as u64, ts);
    }
    let len = w.builder.len() as u64;
    let max = config.max_batch_bytes();
    if len > max {
        return Err(Error::RecordTooLarge { size: len, max });
    }
    let count = records.len() as u64;
    let last_offset = match base.checked_add(count - 1) {
        Some(l) if l < crate::batch::MAX_OFFSET => l,
        _ => return Err(Error::OffsetSpaceExhausted { log_end_offset: base, records: count }),
    };

    // Roll first if this batch does not belong in the active segment (Kafka's rules).
    let roll = should_roll(&RollParams {
        size: w.pos,
        incoming: len,
        segment_bytes: u64::from(config.segment_bytes),
        first_ts: w.active.meta().first_ts,
        incoming_max_ts: w.builder.max_timestamp(),
        segment_ms: config.segment_ms_i64(),
        jitter_ms: ms_i64(w.roll_jitter_ms),
        index_entries: w.opened.index.read().len(),
        max_index_entries: config.max_index_entries(),
        base: w.active.base,
        incoming_last_offset: last_offset,
    });
    let mut rolled_below_start = false;
    if roll.is_some() || w.unfinished_roll.is_some() {
        inner.mark_dirty()?;
        match w.roll(inner, base, config) {
            Ok(()) => {}
            // A full disk fails the append cleanly: either the roll can be retried, or it
            // completed in memory and only the checkpoint is behind.
            Err(e @ Error::StorageFull { .. }) => return Err(e),
            Err(e) => return Err(inner.poison(e)),
        }
        rolled_below_start = inner.log_start.load(Ordering::Acquire) >= base;
    }
    inner.mark_dirty()?;
    w.reserve(len, config.preallocate)?;
    let pos = w.pos;
    let header: BatchHeader = {
        let w = &mut *w;
        let (bytes, header) = w.builder.finish(attrs, None);
        if let Err(e) = w.opened.file.write_at(bytes, pos) {
            return Err(inner.poison(Error::io(&w.active.log_path(), e)));
        }
        header
    };
    if w.tracker.entry_due(config.index_interval_bytes) {
        let w = &mut *w;
        let mut index = w.opened.index.write();
        let mut time = w.opened.time.write();
        w.tracker.on_batch(pos, &header, config.index_interval_bytes, &mut index, &mut time);
    } else {
        // Most appends add no index entry: they take neither index lock.
        w.tracker.on_batch_between_entries(&header);
    }
    w.pos = pos + len;
    w.active.publish(w.pos, &header);
    inner.next_offset.store(header.next_offset(), Ordering::Release);
    w.unflushed += count;
    let info = AppendInfo {
        partition: inner.id,
        base_offset: base,
        last_offset: header.last_offset(),
        max_timestamp: header.max_timestamp,
        record_count: header.record_count,
    };
    let sync_needed = match (config.flush_messages, config.flush_ms) {
        (Some(n), _) if w.unflushed >= n => true,
        (_, Some(ms)) => {
            let last = inner.sync_state.lock().last_sync_ms;
            now.saturating_sub(last) >= ms_i64(ms)
        }
        _ => false,
    };
    Ok(Appended { info, sync_needed, rolled_below_start })
}

/// Seals the active segment now if it holds anything (a quiet partition's segment can then
/// expire under retention or be compacted). Returns whether it rolled.
pub(crate) fn force_roll(inner: &Inner) -> Result<bool> {
    let config = inner.config.read().clone();
    let mut w = inner.writer.lock();
    inner.check_usable()?;
    if w.pos == 0 {
        return Ok(false);
    }
    inner.mark_dirty()?;
    let base = inner.next_offset.load(Ordering::Acquire);
    match w.roll(inner, base, &config) {
        Ok(()) => Ok(true),
        Err(e @ Error::StorageFull { .. }) => Err(e),
        Err(e) => Err(inner.poison(e)),
    }
}

/// Waits until every offset below `target` is durable, running the fsync itself unless
/// another thread's fsync already covers it (group commit).
pub(crate) fn sync_to(inner: &Inner, target: u64) -> Result<()> {
    inner.check_usable()?;
    let mut st = inner.sync_state.lock();
    let mut spun = false;
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
        if spun {
            inner.sync_cv.wait(&mut st);
        } else {
            // Another thread's fsync is in flight. Wait for its end awake for a while (yielding
            // the core): a thread asleep on the condition variable takes tens of microseconds
            // to run again, and with many writers those wake-ups queue up behind each other.
            // (8 threads appending with an fsync each: 4.7× one thread's rate without this,
            // 5.2–5.4× with it.)
            spun = true;
            let epoch = inner.sync_epoch.load(Ordering::Acquire);
            parking_lot::MutexGuard::unlocked(&mut st, || spin_until_sync_ends(inner, epoch));
        }
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
        Err(e) => {
            crate::trace::event!(error, partition = %inner.dir.display(), error = %e, "fsync failed");
            Err(inner.poison(Error::io(&path, e)))
        }
    };
    inner.sync_epoch.fetch_add(1, Ordering::AcqRel);
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

/// Yields the core until the fsync that was in flight at `epoch` has ended, for at most
/// [`SYNC_WAIT_SPIN`]. Only decides when the waiter looks again: the caller re-checks the state
/// under the lock either way.
fn spin_until_sync_ends(inner: &Inner, epoch: u64) {
    let until = std::time::Instant::now() + SYNC_WAIT_SPIN;
    while inner.sync_epoch.load(Ordering::Acquire) == epoch && std::time::Instant::now() < until {
        std::thread::yield_now();
    }
}

/// Fsyncs when `flush.ms` has passed since the last fsync and something is unsynced (the
/// maintenance driver's job for partitions that stopped receiving appends). Returns whether
/// it synced.
pub(crate) fn flush_if_due(inner: &Inner) -> Result<bool> {
    let Some(ms) = inner.config.read().flush_ms else { return Ok(false) };
    let (synced, last) = {
        let st = inner.sync_state.lock();
        (st.synced, st.last_sync_ms)
    };
    let end = inner.next_offset.load(Ordering::Acquire);
    if end > synced && inner.clock.now_ms().saturating_sub(last) >= ms_i64(ms) {
        sync_to(inner, end)?;
        return Ok(true);
    }
    Ok(false)
}

/// When the next `flush.ms` fsync is due, in ms from now (`None`: nothing unsynced or no
/// `flush.ms`).
pub(crate) fn flush_due_in(inner: &Inner) -> Option<i64> {
    let ms = inner.config.read().flush_ms?;
    let st = inner.sync_state.lock();
    if inner.next_offset.load(Ordering::Acquire) <= st.synced {
        return None;
    }
    Some(st.last_sync_ms.saturating_add(ms_i64(ms)).saturating_sub(inner.clock.now_ms()).max(0))
}

pub(crate) fn close(inner: &Inner) -> Result<()> {
    // A retention or compaction pass in progress finishes (or stops at its next step) first.
    let _m = inner.maint.lock();
    let w = inner.writer.lock();
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
        let mut ck = inner.ckpt.lock();
        if ck.clean_on_disk {
            // Nothing changed since a clean open: the files already say what they should, and
            // a backup tool sees nothing touched.
            return Ok(());
        }
        w.tracker.finish(&mut w.opened.time.write());
        if w.opened.file.len().at(&path)? != w.pos {
            w.opened.file.set_len(w.pos).at(&path)?;
        }
        w.opened.file.sync_data().at(&path)?;
        let meta = w.active.meta();
        {
            // Derived data: on a full disk they are rebuilt at the next open.
            let index = w.opened.index.read();
            let time = w.opened.time.read();
            match crate::segment::write_indexes(&*inner.fs, &w.active, &meta, &index, &time) {
                Ok(()) | Err(Error::StorageFull { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        ck.recovery_point = w.active.base;
        inner.write_or_drop_checkpoint(&mut ck, true)
    })();
    inner.closed.store(true, Ordering::Release);
    inner.sync_cv.notify_all();
    inner.listeners.ring_all();
    for s in &inner.view().segments {
        s.close(&inner.cache);
    }
    inner.graveyard.reap(&*inner.fs);
    inner.lock.lock().take();
    result.map_err(|e| inner.poison(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> RollParams {
        RollParams {
            size: 100,
            incoming: 50,
            segment_bytes: 1000,
            first_ts: 1_000,
            incoming_max_ts: 1_500,
            segment_ms: 1_000,
            jitter_ms: 0,
            index_entries: 0,
            max_index_entries: 10,
            base: 0,
            incoming_last_offset: 10,
        }
    }

    #[test]
    fn roll_decision_table() {
        let cases: Vec<(&str, RollParams, Option<RollReason>)> = vec![
            ("fits", params(), None),
            ("empty never rolls", RollParams { size: 0, incoming: 5000, ..params() }, None),
            ("exactly full fits", RollParams { incoming: 900, ..params() }, None),
            ("one byte over", RollParams { incoming: 901, ..params() }, Some(RollReason::Size)),
            ("time: equal is not over", RollParams { incoming_max_ts: 2_000, ..params() }, None),
            ("time: strictly over", RollParams { incoming_max_ts: 2_001, ..params() }, Some(RollReason::Time)),
            (
                "jitter rolls earlier",
                RollParams { incoming_max_ts: 1_901, jitter_ms: 100, ..params() },
                Some(RollReason::Time),
            ),
            ("no first timestamp", RollParams { first_ts: NO_TS, incoming_max_ts: i64::MAX, ..params() }, None),
            ("index full", RollParams { index_entries: 10, ..params() }, Some(RollReason::IndexFull)),
            (
                "relative offset overflow",
                RollParams { incoming_last_offset: u64::from(u32::MAX) + 1, ..params() },
                Some(RollReason::Overflow),
            ),
            (
                "relative offset at the limit",
                RollParams { incoming_last_offset: u64::from(u32::MAX), ..params() },
                None,
            ),
            // Index positions are 32-bit: a segment never grows past 2³² − 1 bytes, whatever
            // the size limit (`segment.bytes` itself stays below 2³¹ in a config).
            (
                "position at the limit",
                RollParams { size: u64::from(u32::MAX) - 10, incoming: 10, segment_bytes: u64::MAX, ..params() },
                None,
            ),
            (
                "position overflow",
                RollParams { size: u64::from(u32::MAX) - 10, incoming: 11, segment_bytes: u64::MAX, ..params() },
                Some(RollReason::Overflow),
            ),
        ];
        for (name, p, want) in cases {
            assert_eq!(should_roll(&p), want, "{name}");
        }
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        let c = TopicConfig::default().segment_ms(1_000).segment_jitter_ms(300);
        let dir = std::path::Path::new("/d/0");
        let js: Vec<u64> = (0..1000).map(|b| roll_jitter(&c, dir, b)).collect();
        assert!(js.iter().all(|&j| j < 300));
        assert!(js.iter().any(|&j| j > 150) && js.iter().any(|&j| j < 150), "not spread: {js:?}");
        assert_eq!(roll_jitter(&TopicConfig::default(), dir, 7), 0);
        let capped = TopicConfig::default().segment_ms(10).segment_jitter_ms(1_000);
        assert!((0..100).all(|b| roll_jitter(&capped, dir, b) < 10));
    }

    /// Uniform over the bound, across segments of one partition and across partitions: 2,000
    /// uniform draws from 1,000 values take about 865 distinct ones and about 200 per tenth.
    #[test]
    fn jitter_is_uniform_over_segments_and_partitions() {
        let c = TopicConfig::default().segment_ms(10_000).segment_jitter_ms(1_000);
        let check = |what: &str, js: Vec<u64>| {
            let distinct = js.iter().collect::<std::collections::HashSet<_>>().len();
            assert!(distinct >= 780, "{what}: {distinct} distinct jitters of 2000");
            let mut tenths = [0u32; 10];
            for j in &js {
                tenths[(*j / 100) as usize] += 1;
            }
            assert!(tenths.iter().all(|n| (150..=250).contains(n)), "{what}: {tenths:?}");
        };
        let dir = std::path::Path::new("/data/topic-0");
        check("bases", (0..2000u64).map(|b| roll_jitter(&c, dir, b * 4096)).collect());
        check(
            "partitions",
            (0..2000).map(|p| roll_jitter(&c, std::path::Path::new(&format!("/data/topic-{p}")), 0)).collect(),
        );
    }
}
