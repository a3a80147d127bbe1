//! A segment: one `.log` file of record batches plus its `.index` and `.timeindex`, named by the
//! 20-digit base offset.
//!
//! The active segment is written by the partition's single writer; sealed segments are
//! immutable, opened lazily on first read through a bounded [`HandleCache`] and closed again
//! when evicted.

mod bits;
mod cache;
pub(crate) mod cursor;
pub(crate) mod files;
pub(crate) mod log_file;
mod offset_index;
mod public;
mod time_index;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Mutex, RwLock};

pub use cache::{DEFAULT_OPEN_SEGMENTS, HandleCache};
pub use offset_index::{IndexEntry, OffsetIndex};
pub use public::{Batch, BatchInfo, BatchRecords, Batches, Problem, Segment, SegmentRecords, Verification};
pub use time_index::{TimeIndex, TimeIndexEntry};

use crate::batch::BatchHeader;
use crate::error::{Error, IoContext, Result};
use crate::fs::{FileHandle, FileSystem, OpenMode, replace_unsynced};

/// `i64::MIN` stands for "no timestamp" in summaries.
pub(crate) const NO_TS: i64 = i64::MIN;

use files::Ext;

/// Files of retired segments whose last reader has let go, waiting to be unlinked by whoever
/// runs maintenance next (never by the thread that happened to drop the last reference, which
/// may be an appender).
#[derive(Debug, Default)]
pub(crate) struct Graveyard {
    files: parking_lot::Mutex<Vec<PathBuf>>,
}

impl Graveyard {
    pub(crate) fn new() -> Arc<Graveyard> {
        Arc::new(Graveyard::default())
    }

    fn bury(&self, files: Vec<PathBuf>) {
        if !files.is_empty() {
            self.files.lock().extend(files);
        }
    }

    /// Unlinks every file buried so far; returns how many went. A file that cannot be removed
    /// now stays buried for the next call (and `.deleted` leftovers are removed at open).
    pub(crate) fn reap(&self, fs: &dyn FileSystem) -> usize {
        let files = std::mem::take(&mut *self.files.lock());
        let mut gone = 0;
        let mut keep = Vec::new();
        for f in files {
            match fs.remove_file(&f) {
                Ok(()) => gone += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => keep.push(f),
            }
        }
        self.bury(keep);
        gone
    }
}

/// Where a retired segment's files go when its last reference is dropped.
#[derive(Debug)]
struct Reaper {
    graveyard: Arc<Graveyard>,
    files: Vec<PathBuf>,
}

/// A summary of one segment, as stored in index headers and the partition checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegMeta {
    pub base: u64,
    pub size: u64,
    pub next_offset: u64,
    pub records: u64,
    pub first_ts: i64,
    pub max_ts: i64,
    pub max_ts_offset: u64,
}

impl SegMeta {
    pub(crate) fn empty(base: u64) -> Self {
        SegMeta { base, size: 0, next_offset: base, records: 0, first_ts: NO_TS, max_ts: NO_TS, max_ts_offset: base }
    }
}

/// What the public API tells about a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// First offset the segment may hold (its file name).
    pub base_offset: u64,
    /// One past the last offset it covers (exclusive, like the log end offset).
    pub end_offset: u64,
    /// Bytes of record batches.
    pub size: u64,
    /// Records it holds.
    pub record_count: u64,
    /// Base timestamp of its first batch: its first record's, or, where the segment begins
    /// with an empty batch (a truncation into a gap that compaction left writes one), that
    /// batch's. `None` for an empty segment.
    pub first_timestamp: Option<i64>,
    /// Largest record timestamp.
    pub max_timestamp: Option<i64>,
    /// Whether it is the active (writable) segment.
    pub active: bool,
}

/// An open segment: the `.log` handle and the loaded indexes.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) id: u64,
    pub(crate) file: Box<dyn FileHandle>,
    pub(crate) index: RwLock<OffsetIndex>,
    pub(crate) time: RwLock<TimeIndex>,
    /// Sealed segments only (empty otherwise): bit `i` is set once the batch starting at
    /// offset-index entry `i` has passed its CRC check through this handle. Sealed bytes never
    /// change while the handle lives, so later reads of that batch skip the check.
    verified: bits::AtomicBits,
    /// Sealed, memory-mapped segments only: bit `c` is set once a read has been served from
    /// the `MAP_CHUNK`-byte chunk `c` of the file (see [`Opened::map_warm`]).
    touched: bits::AtomicBits,
    /// Sealed segments only: the record directory (see [`crate::batch::record_directory`]) of
    /// the batch at offset-index entry `i`, built the second time a read lands on that batch
    /// through this handle. Allocated at the first one.
    dirs: OnceLock<Box<[RecordDirSlot]>>,
}

/// One batch's record directory, set once (empty: the batch cannot have one).
type RecordDirSlot = OnceLock<Box<[u32]>>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The granularity at which reads of a sealed, mapped segment track which parts of the map
/// they have used: a page. (A 64 KiB chunk, the kernel's fault-around window, sent a third of
/// the small reads of a random workload over a 1 GiB log to the map, each paying a page fault
/// that costs more than the copy it saves: 4.2 µs median against 3.9 µs with pages.)
pub(crate) const MAP_CHUNK: u64 = 4 << 10;

impl Opened {
    pub(crate) fn new(file: Box<dyn FileHandle>, index: OffsetIndex, time: TimeIndex) -> Arc<Opened> {
        Arc::new(Opened {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            file,
            index: RwLock::new(index),
            time: RwLock::new(time),
            verified: bits::AtomicBits::default(),
            touched: bits::AtomicBits::default(),
            dirs: OnceLock::new(),
        })
    }

    /// A sealed segment of `size` bytes: its batches' checks are remembered.
    pub(crate) fn sealed(file: Box<dyn FileHandle>, index: OffsetIndex, time: TimeIndex, size: u64) -> Arc<Opened> {
        let mapped = file.mapped_slice(0, 0).is_some();
        let entries = index.len();
        let chunks = if mapped { usize::try_from(size.div_ceil(MAP_CHUNK)).unwrap_or(0) } else { 0 };
        Arc::new(Opened {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            file,
            index: RwLock::new(index),
            time: RwLock::new(time),
            verified: bits::AtomicBits::new(entries),
            touched: bits::AtomicBits::new(chunks),
            dirs: OnceLock::new(),
        })
    }

    /// Whether the batch at offset-index entry `slot` has passed its CRC check through this
    /// handle (never true for the active segment).
    #[inline]
    pub(crate) fn is_verified(&self, slot: usize) -> bool {
        self.verified.get(slot)
    }

    /// Records that the batch at offset-index entry `slot` passed its CRC check.
    #[inline]
    pub(crate) fn mark_verified(&self, slot: usize) {
        self.verified.set(slot);
    }

    /// The record directory of the (verified) batch at offset-index entry `slot`, building it
    /// with `batch` when there is none yet. `None` for the active segment and for batches that
    /// cannot have one.
    pub(crate) fn record_dir(&self, slot: usize, batch: impl FnOnce() -> Option<Box<[u32]>>) -> Option<&[u32]> {
        let n = self.verified.len();
        if slot >= n || !self.is_verified(slot) {
            return None;
        }
        let dirs = self.dirs.get_or_init(|| (0..n).map(|_| OnceLock::new()).collect());
        let d = dirs.get(slot)?;
        // An empty directory records that the batch cannot have one.
        let d = d.get_or_init(|| batch().unwrap_or_default());
        (!d.is_empty()).then_some(&**d)
    }

    /// The record directory of the batch at entry `slot`: `None` when none was built yet,
    /// empty when the batch cannot have one.
    pub(crate) fn existing_record_dir(&self, slot: usize) -> Option<&[u32]> {
        self.dirs.get()?.get(slot)?.get().map(|d| &**d)
    }

    /// For a small read at `pos` of a sealed, mapped segment: whether to use the map (true) or
    /// copy with a system call (false). The first read in a chunk copies, which costs less
    /// than the page fault a first touch of the map takes; the second and later ones use the
    /// map. Random reads spread over a large log so pay
    /// one system call each, and reads that come back to a region are served from memory.
    /// Always true for other segments.
    #[inline]
    pub(crate) fn map_warm(&self, pos: u64) -> bool {
        let c = usize::try_from(pos / MAP_CHUNK).unwrap_or(usize::MAX);
        self.touched.len() == 0 || self.touched.set(c) || c >= self.touched.len()
    }
}

#[derive(Debug)]
enum Slot {
    Closed,
    Open(Weak<Opened>),
    Pinned(Arc<Opened>),
}

/// One segment of a partition, shared between the writer and readers.
#[derive(Debug)]
pub(crate) struct SegmentState {
    pub(crate) base: u64,
    dir: Arc<Path>,
    /// Bytes readers may see (the end of the last complete batch).
    pub(crate) len: AtomicU64,
    pub(crate) next_offset: AtomicU64,
    records: AtomicU64,
    first_ts: AtomicI64,
    max_ts: AtomicI64,
    max_ts_offset: AtomicU64,
    slot: Mutex<Slot>,
    /// Taken out of the log (deleted by retention or truncation, replaced by compaction): it
    /// is never opened again, and readers that meet it retry on the current segment list.
    retired: AtomicBool,
    reaper: OnceLock<Reaper>,
}

impl Drop for SegmentState {
    fn drop(&mut self) {
        if let Some(r) = self.reaper.take() {
            r.graveyard.bury(r.files);
        }
    }
}

impl SegmentState {
    pub(crate) fn new(dir: Arc<Path>, meta: SegMeta) -> Arc<SegmentState> {
        Arc::new(SegmentState {
            base: meta.base,
            dir,
            len: AtomicU64::new(meta.size),
            next_offset: AtomicU64::new(meta.next_offset),
            records: AtomicU64::new(meta.records),
            first_ts: AtomicI64::new(meta.first_ts),
            max_ts: AtomicI64::new(meta.max_ts),
            max_ts_offset: AtomicU64::new(meta.max_ts_offset),
            slot: Mutex::new(Slot::Closed),
            retired: AtomicBool::new(false),
            reaper: OnceLock::new(),
        })
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        files::path(&self.dir, self.base, Ext::Log)
    }
    pub(crate) fn index_path(&self) -> PathBuf {
        files::path(&self.dir, self.base, Ext::Index)
    }
    pub(crate) fn time_path(&self) -> PathBuf {
        files::path(&self.dir, self.base, Ext::TimeIndex)
    }

    /// Takes the segment out of the log: no reader opens it again (a reader holding an open
    /// handle keeps reading its unchanged bytes), and the handle caches let go of it. Done
    /// under the slot lock, so an open racing this either completed before (on the old file)
    /// or sees the segment retired — never opens a file that was renamed or replaced since.
    pub(crate) fn retire(&self, cache: &HandleCache) {
        let mut slot = self.slot.lock();
        self.retired.store(true, Ordering::Release);
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Pinned(o) => cache.remove(o.id),
            Slot::Open(w) => {
                if let Some(o) = w.upgrade() {
                    cache.remove(o.id);
                }
            }
            Slot::Closed => {}
        }
    }

    /// Whether [`retire`](Self::retire) was called.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// After [`retire`](Self::retire): `files` (renamed out of the log) are unlinked once the
    /// last reference to this segment is gone.
    pub(crate) fn bury_when_dropped(&self, graveyard: &Arc<Graveyard>, files: Vec<PathBuf>) {
        let _ = self.reaper.set(Reaper { graveyard: Arc::clone(graveyard), files });
    }

    pub(crate) fn meta(&self) -> SegMeta {
        SegMeta {
            base: self.base,
            size: self.len.load(Ordering::Acquire),
            next_offset: self.next_offset.load(Ordering::Acquire),
            records: self.records.load(Ordering::Acquire),
            first_ts: self.first_ts.load(Ordering::Acquire),
            max_ts: self.max_ts.load(Ordering::Acquire),
            max_ts_offset: self.max_ts_offset.load(Ordering::Acquire),
        }
    }

    pub(crate) fn info(&self, active: bool) -> SegmentInfo {
        let m = self.meta();
        SegmentInfo {
            base_offset: m.base,
            end_offset: m.next_offset,
            size: m.size,
            record_count: m.records,
            first_timestamp: (m.first_ts != NO_TS).then_some(m.first_ts),
            max_timestamp: (m.max_ts != NO_TS).then_some(m.max_ts),
            active,
        }
    }

    pub(crate) fn max_ts(&self) -> i64 {
        self.max_ts.load(Ordering::Acquire)
    }

    /// Publishes one appended batch (writer only).
    pub(crate) fn publish(&self, end: u64, h: &BatchHeader) {
        if self.records.load(Ordering::Relaxed) == 0 && self.first_ts.load(Ordering::Relaxed) == NO_TS {
            self.first_ts.store(h.base_timestamp, Ordering::Release);
        }
        if h.max_timestamp > self.max_ts.load(Ordering::Relaxed) || self.max_ts.load(Ordering::Relaxed) == NO_TS {
            self.max_ts.store(h.max_timestamp, Ordering::Release);
            self.max_ts_offset.store(h.base_offset, Ordering::Release);
        }
        self.records.fetch_add(u64::from(h.record_count), Ordering::AcqRel);
        self.len.store(end, Ordering::Release);
        self.next_offset.store(h.next_offset(), Ordering::Release);
    }

    /// Makes this the active segment with an already open handle.
    pub(crate) fn pin(&self, opened: Arc<Opened>) {
        *self.slot.lock() = Slot::Pinned(opened);
    }

    /// Lets go of the writer's handle when the segment is sealed: its writable mapping goes
    /// away once current readers finish, and the next read opens the file read-only.
    pub(crate) fn seal(&self) {
        *self.slot.lock() = Slot::Closed;
    }

    /// Forgets any open handle (at close).
    pub(crate) fn close(&self, cache: &HandleCache) {
        let mut slot = self.slot.lock();
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Pinned(o) => cache.remove(o.id),
            Slot::Open(w) => {
                if let Some(o) = w.upgrade() {
                    cache.remove(o.id);
                }
            }
            Slot::Closed => {}
        }
    }

    /// The open handle, opening the sealed segment (and loading or rebuilding its indexes) on
    /// first use. `None` when the segment was retired: the caller retries on the current
    /// segment list.
    pub(crate) fn open(
        &self,
        fs: &dyn FileSystem,
        cache: &HandleCache,
        interval: u32,
        map_reads: bool,
    ) -> Result<Option<Arc<Opened>>> {
        let mut slot = self.slot.lock();
        if self.is_retired() {
            return Ok(None);
        }
        match &*slot {
            Slot::Pinned(o) => return Ok(Some(Arc::clone(o))),
            Slot::Open(w) => {
                if let Some(o) = w.upgrade() {
                    cache.touch(&o);
                    return Ok(Some(o));
                }
            }
            Slot::Closed => {}
        }
        let opened = self.open_sealed(fs, interval, map_reads)?;
        cache.touch(&opened);
        *slot = Slot::Open(Arc::downgrade(&opened));
        Ok(Some(opened))
    }

    fn open_sealed(&self, fs: &dyn FileSystem, interval: u32, map_reads: bool) -> Result<Arc<Opened>> {
        let log_path = self.log_path();
        let file = fs.open(&log_path, OpenMode::Read).at(&log_path)?;
        let meta = self.meta();
        let file_len = file.len().at(&log_path)?;
        if file_len < meta.size {
            return Err(Error::corrupt(&log_path, file_len, crate::error::CorruptKind::BatchLength));
        }
        if map_reads {
            file.map_for_reads(meta.size).at(&log_path)?;
        }
        if let Some((index, time)) = self.load_indexes(fs, &meta) {
            return Ok(Opened::sealed(file, index, time, meta.size));
        }
        // Missing or damaged indexes: rebuild from the log, which is the source of truth.
        let rebuilt = log_file::rebuild(&*file, &log_path, self.base, meta.size, interval)?;
        if rebuilt.meta.size != meta.size || rebuilt.meta.next_offset > meta.next_offset.max(rebuilt.meta.next_offset) {
            return Err(Error::corrupt(&log_path, rebuilt.meta.size, crate::error::CorruptKind::BatchInvalid));
        }
        let _ = write_indexes(fs, self, &rebuilt.meta, &rebuilt.index, &rebuilt.time);
        Ok(Opened::sealed(file, rebuilt.index, rebuilt.time, meta.size))
    }

    /// Loads both index files if they are intact and describe exactly this segment.
    pub(crate) fn load_indexes(&self, fs: &dyn FileSystem, meta: &SegMeta) -> Option<(OffsetIndex, TimeIndex)> {
        let ibuf = read_small_file(fs, &self.index_path())?;
        let (imeta, index) = OffsetIndex::decode(&ibuf)?;
        if imeta.base != meta.base || imeta.size != meta.size || imeta.next_offset != meta.next_offset {
            return None;
        }
        let tbuf = read_small_file(fs, &self.time_path())?;
        let time = TimeIndex::decode(&tbuf, meta.base, meta.next_offset)?;
        Some((index, time))
    }
}

/// Reads a whole index file, refusing anything implausibly large.
fn read_small_file(fs: &dyn FileSystem, path: &Path) -> Option<Vec<u8>> {
    let f = fs.open(path, OpenMode::Read).ok()?;
    let len = usize::try_from(f.len().ok()?).ok()?;
    if len > 256 << 20 {
        return None;
    }
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, 0).ok()?;
    Some(buf)
}

/// Reads the summary from an `.index` header (one small read), if it is intact.
pub(crate) fn read_index_meta(fs: &dyn FileSystem, dir: &Path, base: u64) -> Option<SegMeta> {
    let path = files::path(dir, base, Ext::Index);
    let f = fs.open(&path, OpenMode::Read).ok()?;
    let mut h = [0u8; offset_index::HEADER_LEN];
    f.read_exact_at(&mut h, 0).ok()?;
    let (meta, _) = OffsetIndex::decode_meta(&h)?;
    (meta.base == base).then_some(meta)
}

/// Writes both index files (temp + rename, no fsync). They are derived data: after a crash
/// each is the old file, the new one, missing or damaged, and anything but a match of the
/// segment's summary and checksums is rebuilt from the log.
pub(crate) fn write_indexes(
    fs: &dyn FileSystem,
    seg: &SegmentState,
    meta: &SegMeta,
    index: &OffsetIndex,
    time: &TimeIndex,
) -> Result<()> {
    let ip = seg.index_path();
    replace_unsynced(fs, &ip, &index.encode(meta)).at(&ip)?;
    let tp = seg.time_path();
    replace_unsynced(fs, &tp, &time.encode()).at(&tp)?;
    Ok(())
}

/// Keeps the index rules (`index.interval.bytes`, max-timestamp tracking) in one place, for
/// appends and for rebuilding from the log alike.
#[derive(Debug, Clone)]
pub(crate) struct IndexTracker {
    pub bytes_since_entry: u64,
    pub max_ts: i64,
    pub max_ts_offset: u64,
}

impl IndexTracker {
    pub(crate) fn new(meta: &SegMeta, index: &OffsetIndex) -> Self {
        let last_pos = index.entries().last().map_or(0, |e| e.position);
        IndexTracker {
            bytes_since_entry: meta.size.saturating_sub(last_pos),
            max_ts: meta.max_ts,
            max_ts_offset: meta.max_ts_offset,
        }
    }

    /// Accounts for the batch `h` written at `pos`; adds index entries when due.
    pub(crate) fn on_batch(
        &mut self,
        pos: u64,
        h: &BatchHeader,
        interval: u32,
        index: &mut OffsetIndex,
        time: &mut TimeIndex,
    ) {
        self.note_max_ts(h);
        if self.entry_due(interval) {
            index.push(h.base_offset, pos);
            time.maybe_push(self.max_ts, self.max_ts_offset);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(h.length);
    }

    /// Whether the next batch gets index entries ([`on_batch`](Self::on_batch) writes them);
    /// when it does not, [`on_batch_between_entries`](Self::on_batch_between_entries) does the
    /// same bookkeeping without the indexes (and their locks).
    #[inline]
    pub(crate) fn entry_due(&self, interval: u32) -> bool {
        self.bytes_since_entry > u64::from(interval)
    }

    /// [`on_batch`](Self::on_batch) for a batch that gets no index entry.
    #[inline]
    pub(crate) fn on_batch_between_entries(&mut self, h: &BatchHeader) {
        self.note_max_ts(h);
        self.bytes_since_entry += u64::from(h.length);
    }

    #[inline]
    fn note_max_ts(&mut self, h: &BatchHeader) {
        if h.max_timestamp > self.max_ts || self.max_ts == NO_TS {
            self.max_ts = h.max_timestamp;
            self.max_ts_offset = h.base_offset;
        }
    }

    /// The last time-index entry, written when the segment is sealed or closed.
    pub(crate) fn finish(&self, time: &mut TimeIndex) {
        if self.max_ts != NO_TS {
            time.maybe_push(self.max_ts, self.max_ts_offset);
        }
    }
}
