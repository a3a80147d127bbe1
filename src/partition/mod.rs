//! One partition: an append-only log of segments in one directory.
//!
//! # Concurrency
//! One writer at a time, behind `writer` (a mutex): appends from many threads are serialized
//! and offsets stay dense. Readers never take that lock: they clone an `Arc` snapshot of the
//! segment list ([`segments::View`]) and read up to the published end, which the writer stores
//! with `Release` after the bytes are in place and readers load with `Acquire`. A reader that
//! meets a segment retired under it (deleted or replaced) retries on the current list.
//!
//! Retention, compaction swaps and truncation are serialized by `maint`; they change the
//! segment list only through [`segments::SegmentSet`] and the primitives in
//! [`maintenance`], and do their unlinks and fsyncs outside the writer lock.
//!
//! Lock order, where more than one is held: `maint` → `writer` → `ckpt` → the segment list →
//! `sync_state`; a segment's slot lock and the handle cache's lock are taken alone or last.

pub(crate) mod checkpoint;
pub(crate) mod intent;
pub(crate) mod maintenance;
pub(crate) mod notify;
mod read;
mod recovery;
pub(crate) mod segments;
mod truncate;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};

pub use notify::Doorbell;
#[allow(deprecated)]
pub use read::TimestampOffset;
pub use read::{LogIter, OffsetAndTimestamp, Reader, Records, RecordsIter};
pub(crate) use recovery::take_lock as take_dir_lock;
pub use recovery::{RecoveryReport, TailCut};
pub(crate) use segments::View;
pub(crate) use writer::{flush_due_in, flush_if_due, force_roll};

use crate::clock::{Clock, SystemClock};
use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::fs::{DirLock, Fs, StdFs};
use crate::record::Record;
use crate::segment::{Graveyard, HandleCache, OffsetIndex, Segment, SegmentInfo, SegmentState, TimeIndex};

/// What to do when recovery finds damage with valid data after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Refuse to open: return [`Error::Corrupt`] and touch nothing, so the data can be saved.
    #[default]
    Strict,
    /// Cut the log at the first damaged batch, deleting everything after it (data loss the
    /// caller chose).
    TruncateCorrupt,
}

/// Where one appended record landed (Kafka's `RecordMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition (its index in the topic; a partition opened on its own has the id
    /// given by [`PartitionOptions::partition_id`], 0 by default).
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
    /// The record's timestamp as stored (the append time under `LogAppendTime`).
    pub timestamp: i64,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// The partition (see [`RecordMetadata::partition`]).
    pub partition: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// Largest timestamp in the batch (the append time under `LogAppendTime`).
    pub max_timestamp: i64,
    /// Records written.
    pub record_count: u32,
}

impl From<RecordMetadata> for AppendInfo {
    /// A single appended record as a batch of one.
    fn from(r: RecordMetadata) -> AppendInfo {
        AppendInfo {
            partition: r.partition,
            base_offset: r.offset,
            last_offset: r.offset,
            max_timestamp: r.timestamp,
            record_count: 1,
        }
    }
}

/// Options for opening a [`Partition`].
#[derive(Debug, Clone)]
pub struct PartitionOptions {
    pub(crate) config: TopicConfig,
    pub(crate) fs: Fs,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) recovery: RecoveryMode,
    pub(crate) cache: Option<Arc<HandleCache>>,
    pub(crate) lock: bool,
    pub(crate) map_reads: bool,
    pub(crate) id: u32,
}

impl Default for PartitionOptions {
    fn default() -> Self {
        PartitionOptions {
            config: TopicConfig::default(),
            fs: StdFs::shared(),
            clock: Arc::new(SystemClock),
            recovery: RecoveryMode::Strict,
            cache: None,
            lock: true,
            map_reads: cfg!(target_os = "linux"),
            id: 0,
        }
    }
}

impl PartitionOptions {
    /// Sets the log configuration (segment size, durability, ...).
    pub fn config(mut self, config: TopicConfig) -> Self {
        self.config = config;
        self
    }
    /// Uses another file system (the simulated one in tests). Unstable: only with the
    /// `testing` feature.
    #[cfg(any(test, feature = "testing"))]
    pub fn fs(self, fs: Fs) -> Self {
        self.with_fs(fs)
    }
    pub(crate) fn with_fs(mut self, fs: Fs) -> Self {
        self.fs = fs;
        self
    }
    /// Uses another clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Chooses what recovery does with mid-log damage.
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }
    /// Whether reads are served from read-only memory maps of sealed segments (default: on
    /// Linux). Maps avoid a copy and a system call per read; the cost is that a disk read
    /// error on mapped data raises SIGBUS instead of returning [`Error::Io`]. Turn this off to
    /// read every segment with `pread`.
    pub fn mmap_reads(mut self, on: bool) -> Self {
        self.map_reads = on;
        self
    }
    /// The partition's index in its topic, reported in [`RecordMetadata`] and
    /// [`AppendInfo`] (default 0; a [`LogDir`](crate::LogDir) sets it).
    pub fn partition_id(mut self, id: u32) -> Self {
        self.id = id;
        self
    }
    /// Shares a cache of open sealed segments with other partitions.
    pub fn handle_cache(mut self, cache: Arc<HandleCache>) -> Self {
        self.cache = Some(cache);
        self
    }
    /// Opens (creating if needed) the partition in directory `path`.
    ///
    /// # Errors
    /// [`Error::Locked`] if another handle has it open, [`Error::Corrupt`] for damage recovery
    /// may not cut away, [`Error::InvalidConfig`], [`Error::Io`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<Partition> {
        Partition::open_inner(path.as_ref(), self)
    }
}

/// The checkpoint's own state, and the lock that serializes writing the file.
#[derive(Debug)]
pub(crate) struct CkptState {
    /// Whether the checkpoint on disk claims a clean shutdown (cleared before the first
    /// change after a clean open).
    pub(crate) clean_on_disk: bool,
    /// Base offset of the first segment that is not known to be fsynced.
    pub(crate) recovery_point: u64,
    /// Compaction has cleaned everything below this offset (Kafka's first dirty offset).
    pub(crate) cleaner_offset: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// Offsets below this are durable.
    pub(crate) synced: u64,
    pub(crate) in_progress: bool,
    pub(crate) last_sync_ms: i64,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: Arc<Path>,
    pub(crate) fs: Fs,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: Arc<HandleCache>,
    pub(crate) config: RwLock<Arc<TopicConfig>>,
    pub(crate) writer: Mutex<writer::Writer>,
    pub(crate) segments: segments::SegmentSet,
    /// Serializes retention, compaction swaps, log-start moves and truncation.
    pub(crate) maint: Mutex<()>,
    pub(crate) ckpt: Mutex<CkptState>,
    /// Mirrors `ckpt.clean_on_disk`, so appends after the first change need no lock to see it.
    pub(crate) clean_on_disk: AtomicBool,
    /// Files of retired segments, unlinked by the next maintenance call once unreferenced.
    pub(crate) graveyard: Arc<Graveyard>,
    /// What the open that produced this handle did.
    pub(crate) report: RecoveryReport,
    /// The compaction engine's last outcome for this partition.
    pub(crate) cleaner: Mutex<crate::cleaner::CleanerState>,
    /// Doorbells of waiters to ring after each append.
    pub(crate) listeners: notify::Listeners,
    pub(crate) log_start: AtomicU64,
    pub(crate) next_offset: AtomicU64,
    pub(crate) sync_state: Mutex<SyncState>,
    /// Appends under `flush.messages=1` that have started but not yet asked for their fsync:
    /// the thread about to fsync waits briefly for them so they share it (group commit).
    pub(crate) appending: std::sync::atomic::AtomicUsize,
    /// How many records the last fsync covered: the next one waits briefly for as many.
    pub(crate) last_group: std::sync::atomic::AtomicUsize,
    /// Counts finished fsyncs of the group commit (successful or not), so that threads waiting
    /// for one can watch for its end without the lock.
    pub(crate) sync_epoch: AtomicU64,
    pub(crate) sync_cv: Condvar,
    pub(crate) poisoned: AtomicBool,
    pub(crate) poison_cause: Mutex<Option<Arc<Error>>>,
    pub(crate) closed: AtomicBool,
    /// Serve reads of sealed segments from read-only memory maps.
    pub(crate) map_reads: bool,
    /// The partition's index in its topic.
    pub(crate) id: u32,
    /// The directory lock, released by `close`.
    pub(crate) lock: Mutex<Option<Box<dyn DirLock>>>,
}

/// One partition's log: append records, read them back by offset or timestamp.
///
/// Cheap to clone (an `Arc`), `Send + Sync`: clones share one log. Appends from many threads
/// are serialized; reads run concurrently with appends and each other.
///
/// ```
/// use partlog::{Partition, Record};
/// # let dir = tempfile::tempdir()?;
/// let p = Partition::open(dir.path().join("orders-0"))?;
/// let at = p.append(Record::new().key("k").value("hello"))?;
/// let recs = p.read(at.offset, 1 << 20)?;
/// let first = recs.iter().next().expect("one record");
/// assert_eq!(first.value(), Some(&b"hello"[..]));
/// p.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Partition {
    pub(crate) inner: Arc<Inner>,
}

impl Partition {
    /// Opens (creating if needed) a partition directory with the default configuration.
    ///
    /// # Errors
    /// As [`PartitionOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Partition> {
        PartitionOptions::default().open(path)
    }

    /// Opens with a configuration.
    ///
    /// # Errors
    /// As [`PartitionOptions::open`].
    pub fn open_with(path: impl AsRef<Path>, config: TopicConfig) -> Result<Partition> {
        PartitionOptions::default().config(config).open(path)
    }

    /// Options for opening a partition.
    pub fn options() -> PartitionOptions {
        PartitionOptions::default()
    }

    fn open_inner(path: &Path, opts: PartitionOptions) -> Result<Partition> {
        opts.config.validate()?;
        let inner = recovery::open(path, opts)?;
        let report = &inner.report;
        if report.tail_cut.is_some() {
            crate::trace::event!(warn, partition = %path.display(), cut = ?report.tail_cut, "torn tail cut at open");
        }
        if !report.clean {
            crate::trace::event!(info, partition = %path.display(), ?report, "partition opened after recovery");
        }
        Ok(Partition { inner: Arc::new(inner) })
    }

    /// Appends one record; returns its offset and timestamp.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`], [`Error::InvalidTimestamp`], [`Error::ReservedTimestamp`],
    /// [`Error::KeyRequired`] on a compacted log, [`Error::StorageFull`] (nothing written;
    /// retry after freeing space), [`Error::Poisoned`] after an earlier I/O failure,
    /// [`Error::Closed`].
    pub fn append(&self, record: Record<'_>) -> Result<RecordMetadata> {
        let info = self.append_batch(std::slice::from_ref(&record))?;
        Ok(RecordMetadata { partition: info.partition, offset: info.base_offset, timestamp: info.max_timestamp })
    }

    /// The partition's index in its topic (see [`PartitionOptions::partition_id`]).
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    /// Registers `bell` to be rung by every append while it is armed (see [`Doorbell`]); the
    /// partition keeps only a weak reference.
    pub fn register_doorbell(&self, bell: &Arc<Doorbell>) {
        self.inner.listeners.register(bell);
    }

    /// Stops ringing `bell`.
    pub fn unregister_doorbell(&self, bell: &Arc<Doorbell>) {
        self.inner.listeners.unregister(bell);
    }

    /// Waits until the log end offset is above `offset` (a record at or after it can be read)
    /// or `timeout` passes, without polling: woken by the append itself. Returns whether it is.
    ///
    /// ```
    /// use partlog::{Partition, Record};
    /// use std::time::Duration;
    /// # let dir = tempfile::tempdir()?;
    /// let p = Partition::open(dir.path().join("p"))?;
    /// let writer = p.clone();
    /// let t = std::thread::spawn(move || writer.append(Record::with_value("hello")));
    /// assert!(p.wait_for(0, Duration::from_secs(30)));
    /// t.join().expect("appender")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for(&self, offset: u64, timeout: std::time::Duration) -> bool {
        if self.log_end_offset() > offset {
            return true;
        }
        let deadline = std::time::Instant::now() + timeout;
        let bell = Doorbell::new();
        self.register_doorbell(&bell);
        let found = loop {
            bell.arm();
            if self.log_end_offset() > offset {
                bell.disarm();
                break true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.inner.closed.load(Ordering::Acquire) {
                break false;
            }
            bell.wait(left);
        };
        self.unregister_doorbell(&bell);
        found
    }

    /// Appends records as one atomic batch: after a crash either all of them are in the log or
    /// none is. Offsets are consecutive.
    ///
    /// # Errors
    /// As [`append`](Self::append); an empty slice is [`Error::EmptyBatch`].
    pub fn append_batch(&self, records: &[Record<'_>]) -> Result<AppendInfo> {
        writer::append(&self.inner, records)
    }

    /// Reads whole batches starting with the one holding `offset`, up to about `max_bytes`
    /// (at least one batch, however large). Records before `offset` are skipped; reading inside
    /// an offset gap (left by compaction) returns the next record that exists.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the log start or past the log end;
    /// [`Error::Corrupt`] if the bytes fail their checksum (never returned as records).
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Records> {
        read::read(&self.inner, offset, max_bytes)
    }

    /// Iterates owned records from `offset` to the current end, across segments.
    pub fn iter(&self, offset: u64) -> LogIter {
        LogIter::new(self.clone(), offset)
    }

    /// A batch-at-a-time reader from `offset`, for the fastest sequential scans.
    pub fn reader(&self, offset: u64) -> Reader {
        Reader::new(self.clone(), offset)
    }

    /// The first offset whose record timestamp is ≥ `timestamp`, in offset order (Kafka's
    /// `offsetsForTimes`); `None` when no record is that late.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`].
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<OffsetAndTimestamp>> {
        read::offset_for_timestamp(&self.inner, timestamp)
    }

    /// First readable offset.
    pub fn log_start_offset(&self) -> u64 {
        self.inner.log_start.load(Ordering::Acquire)
    }

    /// The log end offset: the offset the next record will get (Kafka's LEO).
    pub fn log_end_offset(&self) -> u64 {
        self.inner.next_offset.load(Ordering::Acquire)
    }

    /// The log end offset.
    #[deprecated(note = "renamed to `log_end_offset`")]
    pub fn next_offset(&self) -> u64 {
        self.log_end_offset()
    }

    /// Opens a read-only partition directory that another process may be writing (see
    /// [`ReadOnlyPartition`](crate::ReadOnlyPartition)): no lock, no recovery, not a byte
    /// written.
    ///
    /// # Errors
    /// As [`ReadOnlyPartition::open`](crate::ReadOnlyPartition::open).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<crate::ReadOnlyPartition> {
        crate::ReadOnlyPartition::open(path)
    }

    /// The segments' summaries, oldest first; the last is the active one. Cheap: no file is
    /// opened. For a handle on one segment's files, see [`segment`](Self::segment).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        // The active segment's summary changes with every append, field by field: read it
        // under the writer lock so that its size, end offset and record count agree.
        let _w = self.inner.writer.lock();
        let view = self.inner.view();
        let n = view.segments.len();
        view.segments.iter().enumerate().map(|(i, s)| s.info(i + 1 == n)).collect()
    }

    /// A read-only handle on the segment with base offset `base` (see [`Segment`]): a
    /// snapshot of its published bytes and indexes, usable while appends, retention and
    /// compaction go on (a segment retired meanwhile stays readable through the handle).
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] when no segment has that base; [`Error::Io`] or
    /// [`Error::Corrupt`] opening it.
    pub fn segment(&self, base: u64) -> Result<Segment> {
        let interval = self.inner.config.read().index_interval_bytes;
        let mut view = self.inner.view();
        for _ in 0..RETIRED_RETRIES {
            let n = view.segments.len();
            let Some((i, seg)) = view.segments.iter().enumerate().find(|(_, s)| s.base == base) else {
                return Err(Error::OffsetOutOfRange {
                    requested: base,
                    start: self.log_start_offset(),
                    end: self.log_end_offset(),
                });
            };
            // The summary before the indexes (entries past it are left out of the snapshot);
            // the active segment's under the writer lock, so that its fields agree.
            let meta = if i + 1 == n {
                let _w = self.inner.writer.lock();
                seg.meta()
            } else {
                seg.meta()
            };
            match self.inner.open_segment(seg, interval)? {
                Some(opened) => return Ok(Segment::new(&self.inner.dir, opened, meta, i + 1 == n)),
                None => view = self.inner.view_after(&view),
            }
        }
        Err(self.inner.unsettled())
    }

    /// A copy of the offset and time index of the segment with base offset `base`.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] when no segment has that base; [`Error::Io`] or
    /// [`Error::Corrupt`] opening it.
    pub fn segment_indexes(&self, base: u64) -> Result<(OffsetIndex, TimeIndex)> {
        let interval = self.inner.config.read().index_interval_bytes;
        let mut view = self.inner.view();
        for _ in 0..RETIRED_RETRIES {
            let seg = view.segments.iter().find(|s| s.base == base).ok_or(Error::OffsetOutOfRange {
                requested: base,
                start: self.log_start_offset(),
                end: self.log_end_offset(),
            })?;
            match self.inner.open_segment(seg, interval)? {
                Some(opened) => return Ok((opened.index.read().clone(), opened.time.read().clone())),
                None => view = self.inner.view_after(&view),
            }
        }
        Err(self.inner.unsettled())
    }

    /// Removes every record at or after `offset`; the next append gets `offset`.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Poisoned`], [`Error::Closed`].
    pub fn truncate_to(&self, offset: u64) -> Result<()> {
        let before = self.log_end_offset();
        truncate::truncate_to(&self.inner, offset)?;
        if before > offset {
            crate::trace::event!(info, partition = %self.inner.dir.display(), from = before, to = offset, "log truncated");
        }
        Ok(())
    }

    /// Makes `offset` the log start: records below it become unreadable and whole segments
    /// below it are deleted. Fails past the log end.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] if `offset` > [`log_end_offset`](Self::log_end_offset).
    pub fn advance_log_start(&self, offset: u64) -> Result<()> {
        maintenance::advance_log_start(&self.inner, offset)
    }

    /// Runs retention now (`retention.ms`, `retention.bytes`, the log start): deletes the
    /// oldest segments that are due, rolling a quiet active segment first when it is due too.
    /// Appends go on meanwhile; files are unlinked once no reader holds them.
    ///
    /// ```
    /// use partlog::{ManualClock, Partition, Record, TopicConfig};
    /// # let dir = tempfile::tempdir()?;
    /// let clock = ManualClock::new(1_000_000);
    /// let p = Partition::options()
    ///     .config(TopicConfig::default().retention_ms(Some(60_000)))
    ///     .clock(clock.clone())
    ///     .open(dir.path().join("p"))?;
    /// p.append(Record::with_value("old"))?;
    /// clock.advance(60_001);
    /// let report = p.run_retention()?;
    /// assert_eq!(report.segments_deleted, 1);
    /// assert_eq!((p.log_start_offset(), p.log_end_offset()), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Poisoned`], [`Error::Closed`].
    pub fn run_retention(&self) -> Result<crate::RetentionReport> {
        let report = crate::retention::run(&self.inner)?;
        if report.segments_deleted > 0 {
            crate::trace::event!(info, partition = %self.inner.dir.display(), ?report, "retention deleted segments");
        }
        Ok(report)
    }

    /// Runs one compaction pass now, whether or not the partition is due (its dirty ratio and
    /// `max.compaction.lag.ms` decide that for the maintenance driver), with default
    /// [`CleanerOptions`](crate::CleanerOptions). See [`compact_with`](Self::compact_with).
    ///
    /// # Errors
    /// As [`compact_with`](Self::compact_with).
    pub fn compact(&self) -> Result<crate::CompactionReport> {
        self.compact_with(&crate::CleanerOptions::default())
    }

    /// Runs one compaction pass now with the given options. The outcome is also kept in
    /// [`cleaner_status`](Self::cleaner_status).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `cleanup.policy` has no `compact`; [`Error::Corrupt`]
    /// when a segment to clean is damaged (nothing changes: a pass swaps its work in only
    /// once all of it is written); [`Error::Io`],
    /// [`Error::StorageFull`], [`Error::Poisoned`].
    pub fn compact_with(&self, options: &crate::CleanerOptions) -> Result<crate::CompactionReport> {
        let throttle = crate::cleaner::Throttle::new(options.io_max_bytes_per_second);
        self.compact_throttled(options, &throttle, true)
    }

    pub(crate) fn compact_throttled(
        &self,
        options: &crate::CleanerOptions,
        throttle: &crate::cleaner::Throttle,
        force: bool,
    ) -> Result<crate::CompactionReport> {
        let out = crate::cleaner::run_pass(&self.inner, options, throttle, force);
        if !matches!(out, Err(Error::InvalidConfig { .. } | Error::Closed)) {
            crate::cleaner::record(&self.inner.cleaner, &out);
        }
        match &out {
            Ok(report) if report.cleaned => {
                crate::trace::event!(info, partition = %self.inner.dir.display(), ?report, "compaction pass");
            }
            Err(e) if !matches!(e, Error::InvalidConfig { .. } | Error::Closed) => {
                crate::trace::event!(warn, partition = %self.inner.dir.display(), error = %e, "compaction pass failed");
            }
            _ => {}
        }
        out
    }

    /// The compaction engine's last outcome for this partition: a partition whose passes
    /// keep failing shows it here.
    pub fn cleaner_status(&self) -> crate::CleanerStatus {
        self.inner.cleaner.lock().clone()
    }

    /// Seals the active segment now if it holds anything, so it can expire or be compacted.
    /// Returns whether it rolled.
    ///
    /// # Errors
    /// [`Error::StorageFull`], [`Error::Io`], [`Error::Poisoned`], [`Error::Closed`].
    pub fn roll(&self) -> Result<bool> {
        writer::force_roll(&self.inner)
    }

    /// What the open that produced this handle did: clean or not, what was re-validated, what
    /// was cut and why, which indexes were rebuilt.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Reports an earlier write failure, if any. Every append already hands its bytes to the
    /// operating system before returning (partlog keeps no user-space write buffer), so
    /// appended data survives a crash of this process without calling this.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::Closed`].
    pub fn flush(&self) -> Result<()> {
        self.inner.check_usable()
    }

    /// Makes every record appended so far durable against power loss (fdatasync of the
    /// active segment; earlier segments were synced when they were sealed). Concurrent callers
    /// share one fsync.
    ///
    /// # Errors
    /// [`Error::Poisoned`] (the fsync failed: the log must be reopened), [`Error::Closed`].
    pub fn sync(&self) -> Result<()> {
        let target = self.log_end_offset();
        writer::sync_to(&self.inner, target)
    }

    /// Syncs, writes the indexes and a clean-shutdown checkpoint (so the next open skips
    /// recovery) and releases the directory lock. Later calls on any clone fail with
    /// [`Error::Closed`].
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Poisoned`].
    pub fn close(&self) -> Result<()> {
        writer::close(&self.inner)
    }

    /// The configuration in force.
    pub fn config(&self) -> TopicConfig {
        (**self.inner.config.read()).clone()
    }

    /// Changes the configuration; it applies from the next append (segment sizes from the
    /// next roll).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn set_config(&self, config: TopicConfig) -> Result<()> {
        config.validate()?;
        *self.inner.config.write() = Arc::new(config);
        Ok(())
    }

    /// The partition's directory.
    pub fn path(&self) -> PathBuf {
        self.inner.dir.to_path_buf()
    }

    /// The shared cache of open sealed segments.
    pub fn handle_cache(&self) -> Arc<HandleCache> {
        Arc::clone(&self.inner.cache)
    }
}

impl Inner {
    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.poisoned.load(Ordering::Acquire) {
            let cause = self.poison_cause.lock().clone();
            let cause = cause.unwrap_or_else(|| Arc::new(Error::Closed));
            return Err(Error::Poisoned { cause });
        }
        Ok(())
    }

    /// Marks the partition unusable after a failed write or fsync; returns the error to report.
    pub(crate) fn poison(&self, err: Error) -> Error {
        let mut cause = self.poison_cause.lock();
        if cause.is_none() {
            crate::trace::event!(error, partition = %self.dir.display(), error = %err, "partition poisoned: no more writes until reopened");
            *cause = Some(Arc::new(err.copy()));
        }
        self.poisoned.store(true, Ordering::Release);
        err
    }

    /// Opens (or finds open) a segment for reading.
    /// Opens (or finds open) a segment for reading; `None` when it was retired (the caller
    /// retries on [`view_after`](Self::view_after)).
    pub(crate) fn open_segment(
        &self,
        seg: &SegmentState,
        interval: u32,
    ) -> Result<Option<Arc<crate::segment::Opened>>> {
        seg.open(&*self.fs, &self.cache, interval, self.map_reads)
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.segments.current()
    }

    /// The segment list once it is newer than `seen`: a reader that met a retired segment in
    /// `seen` waits (briefly: retirement and the publication of the list without it follow
    /// each other directly) for the list that no longer has it.
    pub(crate) fn view_after(&self, seen: &View) -> Arc<View> {
        for i in 0..RETIRED_WAIT_STEPS {
            let v = self.view();
            if v.generation != seen.generation {
                return v;
            }
            if i < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        self.view()
    }

    /// The error when the segment list did not settle within the retries.
    pub(crate) fn unsettled(&self) -> Error {
        Error::Io {
            path: self.dir.to_path_buf(),
            source: std::io::Error::other("the segment list kept changing under a read; retry"),
        }
    }
}

/// How many times a reader retries on a newer segment list after meeting a retired segment.
pub(crate) const RETIRED_RETRIES: usize = 64;
/// Steps of [`Inner::view_after`]'s wait (64 yields, then 1 ms sleeps: about 1 s at most).
const RETIRED_WAIT_STEPS: usize = 1_064;

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.load(Ordering::Acquire) && !self.poisoned.load(Ordering::Acquire) {
            let _ = writer::close(self);
        }
    }
}

#[cfg(test)]
mod tests;
