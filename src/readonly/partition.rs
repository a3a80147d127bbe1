//! [`ReadOnlyPartition`]: one partition directory read from outside the process that writes
//! it. The consistency argument is documented on `ReadOnlyLogDir`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::batch::{self, BatchHeader, HEADER_LEN, RecordIter};
use crate::config::DEFAULT_INDEX_INTERVAL_BYTES;
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::fs::{EntryKind, FileHandle, FileId, FileSystem, Fs, OpenMode, StdFs};
use crate::partition::checkpoint::{self, Checkpoint};
use crate::partition::{OffsetAndTimestamp, Records};
use crate::record::StoredRecord;
use crate::segment::files::{self, Ext, Parsed};
use crate::segment::{IndexTracker, NO_TS, OffsetIndex, Opened, SegMeta, Segment, SegmentInfo, TimeIndex};

/// Bytes read per I/O while scanning a segment.
const CHUNK: usize = 1 << 20;
/// The first read after a probe found a header.
const PROBE_STEP: usize = 4 << 10;
/// Bytes read past the budget on a read's first I/O (as the writer's read path does).
const LOOKAHEAD: usize = 1 << 10;
/// Segment files kept open at once (besides those a caller's [`Segment`] holds).
const OPEN_SEGMENTS: usize = 16;
/// The directory is listed again at least this often, events or not.
const RELIST_EVERY: Duration = Duration::from_secs(1);
/// How many times a read starts over on a fresh listing before giving up.
const RETRIES: usize = 64;
/// Largest index file read.
const MAX_INDEX_FILE: u64 = 256 << 20;

/// A partition directory opened read-only: another process may be appending to it, rolling
/// it, running retention or compaction on it. Nothing is locked, nothing is written, nothing
/// is recovered; what is read is what is durable or in the page cache, every batch checked.
///
/// Cheap to clone (an `Arc`), `Send + Sync`. See [`ReadOnlyLogDir`](crate::ReadOnlyLogDir) for
/// what a read-only reader sees and what it cannot.
///
/// ```
/// use partlog::{Partition, Record};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("events-0");
/// let writer = Partition::open(&path)?;            // holds the directory lock
/// writer.append(Record::with_value("hello"))?;
///
/// let reader = Partition::open_read_only(&path)?;  // does not need it
/// let recs = reader.read(0, 1 << 20)?;
/// assert_eq!(recs.iter().next().and_then(|r| r.value()), Some(&b"hello"[..]));
/// writer.append(Record::with_value("world"))?;
/// assert_eq!(reader.log_end_offset()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReadOnlyPartition {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    id: u32,
    fs: Fs,
    interval: u32,
    /// The topic, when opened as part of one: a partition directory that disappears means the
    /// topic was deleted.
    topic: Option<String>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    listing: Option<(Listing, Instant)>,
    /// Something changed in the directory (a follower's watch said so): list it again.
    dirty: bool,
    /// Open segments, least recently used first.
    open: Vec<Arc<Seg>>,
}

/// What one listing of the directory found.
#[derive(Debug, Clone, Default)]
struct Listing {
    /// Base offsets of the segments, ascending; the last one is the tail (the active
    /// segment, as far as this listing knows).
    bases: Vec<u64>,
    /// The log start offset: the checkpoint's, or the first segment's base if higher.
    log_start: u64,
}

/// An open segment file and what has been validated of it.
#[derive(Debug)]
struct Seg {
    base: u64,
    path: PathBuf,
    id: Option<FileId>,
    opened: Arc<Opened>,
    scan: Mutex<Scan>,
}

#[derive(Debug)]
struct Scan {
    /// Summary of the prefix `[0, meta.size)` known to hold valid batches.
    meta: SegMeta,
    tracker: IndexTracker,
}

/// A snapshot of the partition for one read.
#[derive(Debug)]
struct Snap {
    listing: Listing,
    tail: Option<Arc<Seg>>,
    start: u64,
    end: u64,
}

enum Step<T> {
    Found(T),
    Nothing,
    /// A file of the listing is gone or changed: list again and start over.
    Relist,
}

impl ReadOnlyPartition {
    /// Opens the partition directory `path` read-only (see [`Partition::open_read_only`](crate::Partition::open_read_only)).
    ///
    /// # Errors
    /// [`Error::NotALogDir`] when `path` is not a directory; [`Error::Corrupt`] for a symlink
    /// or directory posing as a segment file; [`Error::UnsupportedVersion`] for a checkpoint
    /// of a newer format; [`Error::Io`].
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnlyPartition> {
        Self::open_with(StdFs::shared(), path.as_ref(), 0, DEFAULT_INDEX_INTERVAL_BYTES, None)
    }

    pub(crate) fn open_with(
        fs: Fs,
        path: &Path,
        id: u32,
        interval: u32,
        topic: Option<&str>,
    ) -> Result<ReadOnlyPartition> {
        match fs.entry_kind(path).at(path)? {
            Some(EntryKind::Dir) => {}
            None => {
                return Err(Error::NotALogDir { path: path.to_path_buf(), reason: "it does not exist".into() });
            }
            Some(_) => return Err(Error::NotALogDir { path: path.to_path_buf(), reason: "not a directory".into() }),
        }
        let p = ReadOnlyPartition {
            inner: Arc::new(Inner {
                dir: path.to_path_buf(),
                id,
                fs,
                interval,
                topic: topic.map(str::to_owned),
                state: Mutex::new(State::default()),
            }),
        };
        p.snapshot(true)?;
        Ok(p)
    }

    /// The partition's directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The partition's index in its topic (0 when opened on its own).
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    /// The first readable offset, as of now.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn log_start_offset(&self) -> Result<u64> {
        Ok(self.snapshot(false)?.start)
    }

    /// The log end offset as far as it is readable now: one past the last complete, valid
    /// batch. A batch the writer is still writing is not counted.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn log_end_offset(&self) -> Result<u64> {
        Ok(self.snapshot(false)?.end)
    }

    /// Asks for the directory to be listed again before the next read (a follower's watch
    /// calls this when the directory changed).
    pub fn invalidate(&self) {
        self.inner.state.lock().dirty = true;
    }

    /// Reads whole batches starting with the one holding `offset`, up to about `max_bytes`
    /// (at least one batch), as [`Partition::read`](crate::Partition::read) does. Segments
    /// deleted or replaced under the read are listed again and the read retried.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the log start or past the log end;
    /// [`Error::Corrupt`] for damaged bytes in a sealed segment (never for a batch being
    /// written, which is simply not there yet); [`Error::Io`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Records> {
        let mut force = false;
        for _ in 0..RETRIES {
            let snap = self.snapshot(force)?;
            if offset < snap.start || offset > snap.end {
                if !force {
                    // The listing may be stale (the log grew or moved since): look again once.
                    force = true;
                    continue;
                }
                return Err(Error::OffsetOutOfRange { requested: offset, start: snap.start, end: snap.end });
            }
            if offset == snap.end {
                return Ok(Records::from_owned(Vec::new(), offset, offset));
            }
            match self.read_listed(&snap, offset, max_bytes)? {
                Step::Found(r) => return Ok(r),
                Step::Nothing => return Ok(Records::from_owned(Vec::new(), offset, snap.end)),
                Step::Relist => force = true,
            }
        }
        Err(self.unsettled())
    }

    /// Iterates owned records from `offset` to the end readable now, across segments.
    pub fn iter(&self, offset: u64) -> ReadOnlyIter {
        ReadOnlyIter { part: self.clone(), next: offset, buf: Vec::new().into_iter(), done: false }
    }

    /// A [`Follower`](crate::Follower) of this partition from `offset`: it waits for new
    /// appends and returns them as they land.
    ///
    /// # Errors
    /// As [`Follower::add`](crate::Follower::add).
    pub fn follow(&self, offset: u64) -> Result<crate::Follower> {
        let mut f = crate::Follower::new();
        f.add(self, offset)?;
        Ok(f)
    }

    /// The first offset whose record timestamp is ≥ `timestamp` (Kafka's `offsetsForTimes`),
    /// as [`Partition::offset_for_timestamp`](crate::Partition::offset_for_timestamp).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<OffsetAndTimestamp>> {
        let mut force = false;
        'retry: for _ in 0..RETRIES {
            let snap = self.snapshot(force)?;
            force = true;
            for (i, &base) in snap.listing.bases.iter().enumerate() {
                let Some(seg) = self.seg_for(&snap, i, base)? else { continue 'retry };
                let meta = seg.scan.lock().meta;
                if meta.max_ts == NO_TS || meta.max_ts < timestamp || meta.next_offset <= snap.start {
                    continue;
                }
                match self.find_time(&seg, meta, timestamp, snap.start)? {
                    Step::Found(hit) => return Ok(Some(hit)),
                    Step::Nothing => {}
                    Step::Relist => continue 'retry,
                }
            }
            return Ok(None);
        }
        Err(self.unsettled())
    }

    /// The segments' summaries, oldest first; the last is the active one (as far as a
    /// listing now can tell). Segments without an intact index file are scanned.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        'retry: for _ in 0..RETRIES {
            let snap = self.snapshot(true)?;
            let n = snap.listing.bases.len();
            let mut out = Vec::with_capacity(n);
            for (i, &base) in snap.listing.bases.iter().enumerate() {
                let Some((_, meta)) = self.seg_as_is(&snap, i, base)? else { continue 'retry };
                out.push(info(&meta, i + 1 == n));
            }
            return Ok(out);
        }
        Err(self.unsettled())
    }

    /// A read-only handle on the segment with base offset `base` (see [`Segment`]): what is
    /// valid of it now, with the offset and time index read from its files or, where they
    /// are missing or stale (always for the active segment, whose indexes live in the
    /// writer's memory), rebuilt in memory.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] when no segment has that base; as [`read`](Self::read).
    pub fn segment(&self, base: u64) -> Result<Segment> {
        'retry: for _ in 0..RETRIES {
            let snap = self.snapshot(true)?;
            let n = snap.listing.bases.len();
            let Some(i) = snap.listing.bases.iter().position(|&b| b == base) else {
                return Err(Error::OffsetOutOfRange { requested: base, start: snap.start, end: snap.end });
            };
            let Some((seg, mut meta)) = self.seg_as_is(&snap, i, base)? else { continue 'retry };
            if i + 1 < n {
                // A sealed segment is shown whole, damage included, so that its batches and
                // `verify` can say what is wrong where. The tail ends at its last valid batch.
                meta.size = seg.opened.file.len().at(&seg.path)?;
            }
            return Ok(Segment::new(&self.inner.dir, Arc::clone(&seg.opened), meta, i + 1 == n));
        }
        Err(self.unsettled())
    }

    fn unsettled(&self) -> Error {
        Error::Io {
            path: self.inner.dir.clone(),
            source: std::io::Error::other("the directory kept changing under a read-only read; retry"),
        }
    }

    /// The listing (fresh when asked, stale, or marked dirty) with the tail scanned up to now.
    fn snapshot(&self, force: bool) -> Result<Snap> {
        for _ in 0..RETRIES {
            let (listing, fresh) = {
                let mut st = self.inner.state.lock();
                match &st.listing {
                    Some((l, at)) if !force && !st.dirty && at.elapsed() < RELIST_EVERY => (l.clone(), false),
                    _ => {
                        st.dirty = false;
                        drop(st);
                        let l = self.list()?;
                        self.adopt(&l)?;
                        (l, true)
                    }
                }
            };
            let Some(&last) = listing.bases.last() else {
                let start = listing.log_start;
                return Ok(Snap { listing, tail: None, start, end: start });
            };
            let Some(tail) = self.handle(last)? else {
                self.invalidate();
                continue;
            };
            if !fresh && !self.same_file(&tail)? {
                // Deleted or replaced (a truncation) since it was opened.
                self.invalidate();
                continue;
            }
            let len = extend(&tail, self.inner.interval)?;
            let meta = tail.scan.lock().meta;
            if !fresh && meta.size == len {
                // Nothing past the valid end, not even preallocated zeros: the writer may have
                // sealed this segment and started the next. Look.
                let l = self.list()?;
                if l.bases.last() != Some(&last) {
                    self.adopt(&l)?;
                    continue;
                }
            }
            let end = meta.next_offset;
            let start = listing.log_start.min(end);
            return Ok(Snap { listing, tail: Some(tail), start, end });
        }
        Err(self.unsettled())
    }

    /// Lists the directory; a partition directory of a topic that is gone means the topic was
    /// deleted.
    fn list(&self) -> Result<Listing> {
        match list(&*self.inner.fs, &self.inner.dir) {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && self.inner.topic.is_some() =>
            {
                Err(Error::TopicNotFound { name: self.inner.topic.clone().unwrap_or_default() })
            }
            r => r,
        }
    }

    /// Makes `l` the current listing and lets go of segments it no longer has, or whose file
    /// was replaced (compaction, truncation).
    fn adopt(&self, l: &Listing) -> Result<()> {
        let fs = &*self.inner.fs;
        let mut st = self.inner.state.lock();
        let mut keep = Vec::with_capacity(st.open.len());
        for s in std::mem::take(&mut st.open) {
            if l.bases.binary_search(&s.base).is_err() {
                continue;
            }
            let now = match fs.file_id(&s.path) {
                Ok(id) => id,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&s.path, e)),
            };
            if now.is_some() && now != s.id {
                continue;
            }
            keep.push(s);
        }
        st.open = keep;
        st.listing = Some((l.clone(), Instant::now()));
        Ok(())
    }

    /// The open segment with base `base`, opening it if needed; `None` when its file is gone.
    fn handle(&self, base: u64) -> Result<Option<Arc<Seg>>> {
        {
            let mut st = self.inner.state.lock();
            if let Some(i) = st.open.iter().position(|s| s.base == base) {
                let s = st.open.remove(i);
                st.open.push(Arc::clone(&s));
                return Ok(Some(s));
            }
        }
        let Some(seg) = open_seg(&*self.inner.fs, &self.inner.dir, base)? else { return Ok(None) };
        let seg = Arc::new(seg);
        let mut st = self.inner.state.lock();
        if let Some(s) = st.open.iter().find(|s| s.base == base) {
            return Ok(Some(Arc::clone(s)));
        }
        st.open.push(Arc::clone(&seg));
        if st.open.len() > OPEN_SEGMENTS {
            // Never the tail's: it carries the scan the next read continues from.
            let tail = st.listing.as_ref().and_then(|(l, _)| l.bases.last().copied());
            if let Some(i) = st.open.iter().position(|s| Some(s.base) != tail) {
                st.open.remove(i);
            }
        }
        Ok(Some(seg))
    }

    /// Segment `i` of the snapshot with the summary of its valid prefix, damage or not;
    /// `None`: start over on a new listing.
    fn seg_as_is(&self, snap: &Snap, i: usize, base: u64) -> Result<Option<(Arc<Seg>, SegMeta)>> {
        let is_tail = i + 1 == snap.listing.bases.len();
        let seg = match &snap.tail {
            Some(t) if is_tail => Arc::clone(t),
            _ => {
                let Some(seg) = self.handle(base)? else {
                    self.invalidate();
                    return Ok(None);
                };
                extend(&seg, self.inner.interval)?;
                seg
            }
        };
        let meta = seg.scan.lock().meta;
        Ok(Some((seg, meta)))
    }

    /// Segment `i` of the snapshot, validated as far as it is valid; `None`: start over on a
    /// new listing.
    fn seg_for(&self, snap: &Snap, i: usize, base: u64) -> Result<Option<Arc<Seg>>> {
        let is_tail = i + 1 == snap.listing.bases.len();
        if is_tail && let Some(t) = &snap.tail {
            return Ok(Some(Arc::clone(t)));
        }
        let Some(seg) = self.handle(base)? else {
            self.invalidate();
            return Ok(None);
        };
        let len = extend(&seg, self.inner.interval)?;
        let valid = seg.scan.lock().meta.size;
        if valid < len {
            // Bytes that are not a valid batch inside a segment that has a successor: the
            // writer trimmed and fsynced it before creating the next one, so this is damage,
            // unless the file was replaced meanwhile (a truncation made it the tail again).
            if !self.still_sealed(&seg)? {
                self.invalidate();
                return Ok(None);
            }
            let stop = stop_kind(&seg, valid, len)?;
            return Err(Error::corrupt(&seg.path, valid, stop));
        }
        Ok(Some(seg))
    }

    /// Whether `seg`'s path still names the file it has open.
    fn same_file(&self, seg: &Seg) -> Result<bool> {
        match self.inner.fs.file_id(&seg.path) {
            Ok(id) => Ok(id.is_none() || id == seg.id),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&seg.path, e)),
        }
    }

    /// Whether `seg` is, on a fresh listing, still a sealed segment with the same file.
    fn still_sealed(&self, seg: &Seg) -> Result<bool> {
        let l = self.list()?;
        let same = self.same_file(seg)?;
        let sealed = l.bases.iter().position(|&b| b == seg.base).is_some_and(|i| i + 1 < l.bases.len());
        Ok(same && sealed)
    }

    fn read_listed(&self, snap: &Snap, offset: u64, max_bytes: usize) -> Result<Step<Records>> {
        let bases = &snap.listing.bases;
        let first = bases.partition_point(|&b| b <= offset).saturating_sub(1);
        for (i, &base) in bases.iter().enumerate().skip(first) {
            let Some(seg) = self.seg_for(snap, i, base)? else { return Ok(Step::Relist) };
            let meta = seg.scan.lock().meta;
            if meta.next_offset <= offset {
                continue;
            }
            match read_in(&seg, meta, offset, max_bytes, self.inner.interval) {
                Ok(Some(r)) => return Ok(Step::Found(r)),
                Ok(None) => {}
                Err(e @ Error::Corrupt { .. }) => {
                    // Bytes validated before fail now: the file changed under us, or rotted.
                    if i + 1 == bases.len() || !self.still_sealed(&seg)? {
                        self.invalidate();
                        return Ok(Step::Relist);
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Step::Nothing)
    }

    fn find_time(&self, seg: &Seg, meta: SegMeta, ts: i64, log_start: u64) -> Result<Step<OffsetAndTimestamp>> {
        let start_offset = seg.opened.time.read().lookup(ts).map_or(seg.base, |e| e.offset).max(log_start);
        let entry = seg.opened.index.read().lookup(start_offset);
        let from = start_position(&*seg.opened.file, entry, meta.size);
        let mut cursor = crate::segment::cursor::BatchCursor::new(&*seg.opened.file, &seg.path, from, meta.size, 0);
        loop {
            let b = match cursor.next_batch() {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(Step::Nothing),
                Err(Error::Corrupt { .. }) if !self.still_sealed(seg)? => {
                    self.invalidate();
                    return Ok(Step::Relist);
                }
                Err(e) => return Err(e),
            };
            let h = b.header;
            if h.max_timestamp >= ts && h.last_offset() >= start_offset {
                let hit = RecordIter::new(b.bytes, h).find(|r| r.offset() >= start_offset && r.timestamp() >= ts);
                if let Some(r) = hit {
                    return Ok(Step::Found(OffsetAndTimestamp { offset: r.offset(), timestamp: r.timestamp() }));
                }
            }
        }
    }
}

fn info(m: &SegMeta, active: bool) -> SegmentInfo {
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

/// Lists the partition directory: the segments' base offsets (without those wholly below the
/// log start, which the writer is deleting or will delete at its next open) and the log start.
fn list(fs: &dyn FileSystem, dir: &Path) -> Result<Listing> {
    let mut bases = Vec::new();
    for e in fs.read_dir(dir).at(dir)? {
        let Some(name) = e.name.to_str() else { continue };
        // Indexes, files in transit (`.cleaned`, `.deleted`), temporary and foreign files are
        // not segments.
        if let Some(Parsed::SegmentState(base, Ext::Log)) = files::parse(name) {
            if e.kind != EntryKind::File || base > batch::MAX_OFFSET {
                // Never followed, as the writer refuses it too.
                return Err(Error::corrupt(&dir.join(name), 0, CorruptKind::Metadata));
            }
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let cp_start = read_checkpoint(fs, dir)?.map(|c| c.log_start);
    let mut log_start = cp_start.unwrap_or(0);
    if let Some(&first) = bases.first() {
        log_start = log_start.max(first);
    }
    while bases.len() > 1 && bases.get(1).is_some_and(|&b| b <= log_start) {
        bases.remove(0);
    }
    Ok(Listing { bases, log_start })
}

fn read_checkpoint(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Checkpoint>> {
    let p = dir.join(checkpoint::FILE_NAME);
    let Some(buf) = read_small(fs, &p, 1 << 30)? else { return Ok(None) };
    match Checkpoint::decode(&buf) {
        Ok(c) => Ok(Some(c)),
        Err(checkpoint::Bad::Version(v)) => {
            Err(Error::UnsupportedVersion { path: p, found: u32::from(v), supported: u32::from(checkpoint::VERSION) })
        }
        Err(checkpoint::Bad::Damaged) => Ok(None),
    }
}

/// A whole small file; `None` when it does not exist or is larger than `max`.
fn read_small(fs: &dyn FileSystem, p: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let f = match fs.open(p, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(p, e)),
    };
    let len = f.len().at(p)?;
    if len > max {
        return Ok(None);
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let n = read_upto(&*f, &mut buf, 0).at(p)?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// Reads into `buf` at `pos` until it is full or the file ends; returns the bytes read.
fn read_upto(f: &dyn FileHandle, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], pos + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Opens segment `base` read-only; `None` when its file is gone (renamed or deleted since the
/// listing). A sealed segment whose index files are intact and describe exactly its file is
/// taken at their word (its batches are still checked as they are read); any other starts
/// unvalidated.
fn open_seg(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<Option<Seg>> {
    let path = files::path(dir, base, Ext::Log);
    let file = match fs.open(&path, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let id = file.file_id().at(&path)?;
    let len = file.len().at(&path)?;
    let (meta, index, time) = match load_indexes(fs, dir, base) {
        Some((m, i, t)) if m.size == len && m.size <= u64::from(u32::MAX) && m.next_offset >= m.base => (m, i, t),
        _ => (SegMeta::empty(base), OffsetIndex::new(base), TimeIndex::new(base)),
    };
    let tracker = IndexTracker::new(&meta, &index);
    let opened = Opened::new(file, index, time);
    Ok(Some(Seg { base, path, id, opened, scan: Mutex::new(Scan { meta, tracker }) }))
}

/// Both index files of segment `base`, if intact and describing the same segment.
fn load_indexes(fs: &dyn FileSystem, dir: &Path, base: u64) -> Option<(SegMeta, OffsetIndex, TimeIndex)> {
    let ibuf = read_small(fs, &files::path(dir, base, Ext::Index), MAX_INDEX_FILE).ok()??;
    let (meta, index) = OffsetIndex::decode(&ibuf)?;
    if meta.base != base {
        return None;
    }
    let tbuf = read_small(fs, &files::path(dir, base, Ext::TimeIndex), MAX_INDEX_FILE).ok()??;
    let time = TimeIndex::decode(&tbuf, base, meta.next_offset)?;
    Some((meta, index, time))
}

/// Validates `seg` from the end of its known-valid prefix as far as valid batches go,
/// extending its summary and in-memory indexes. Returns the file's length: bytes between the
/// valid end and it are a batch being written, preallocated zeros or (in a sealed segment)
/// damage.
fn extend(seg: &Seg, interval: u32) -> Result<u64> {
    let mut sc = seg.scan.lock();
    let file = &*seg.opened.file;
    let len = file.len().at(&seg.path)?;
    let mut pos = sc.meta.size;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_pos = pos;
    // The first read only probes for a header (past the end of an active segment lie
    // preallocated zeros, which a follower would otherwise copy at every poll); later reads
    // grow while they keep finding batches.
    let mut step = HEADER_LEN;
    while len.saturating_sub(pos) >= HEADER_LEN as u64 {
        let left = len - pos;
        let have = |buf: &Vec<u8>, buf_pos: u64, n: u64| pos >= buf_pos && pos + n <= buf_pos + buf.len() as u64;
        if !have(&buf, buf_pos, HEADER_LEN as u64) {
            buf.resize(usize::try_from(left.min(step as u64)).unwrap_or(step), 0);
            let n = read_upto(file, &mut buf, pos).at(&seg.path)?;
            buf.truncate(n);
            buf_pos = pos;
            step = (step.max(PROBE_STEP) * 2).min(CHUNK);
            if n < HEADER_LEN {
                break;
            }
        }
        let off = usize::try_from(pos - buf_pos).unwrap_or(usize::MAX);
        let Ok(h) = BatchHeader::parse(buf.get(off..).unwrap_or(&[]), usize::try_from(left).unwrap_or(usize::MAX))
        else {
            break;
        };
        let blen = u64::from(h.length);
        if !have(&buf, buf_pos, blen) {
            let want = left.min(blen.max(step as u64));
            buf.resize(usize::try_from(want).unwrap_or(CHUNK), 0);
            let n = read_upto(file, &mut buf, pos).at(&seg.path)?;
            buf.truncate(n);
            buf_pos = pos;
            step = (step.max(PROBE_STEP) * 2).min(CHUNK);
            if (n as u64) < blen {
                break;
            }
        }
        let off = usize::try_from(pos - buf_pos).unwrap_or(usize::MAX);
        let Some(bytes) = buf.get(off..off + h.length as usize) else { break };
        if batch::verify(bytes).is_err()
            || h.base_offset < sc.meta.next_offset
            || h.last_offset() - seg.base > u64::from(u32::MAX)
        {
            break;
        }
        let Scan { meta, tracker } = &mut *sc;
        {
            let mut index = seg.opened.index.write();
            let mut time = seg.opened.time.write();
            tracker.on_batch(pos, &h, interval, &mut index, &mut time);
        }
        if meta.records == 0 && meta.first_ts == NO_TS {
            meta.first_ts = h.base_timestamp;
        }
        meta.records += u64::from(h.record_count);
        meta.next_offset = h.next_offset();
        meta.max_ts = tracker.max_ts;
        meta.max_ts_offset = tracker.max_ts_offset;
        pos += blen;
        meta.size = pos;
    }
    Ok(len)
}

/// What is wrong at `pos` of a segment (for the error of a damaged sealed segment).
fn stop_kind(seg: &Seg, pos: u64, len: u64) -> Result<CorruptKind> {
    let left = len - pos;
    if left < HEADER_LEN as u64 {
        return Ok(CorruptKind::BatchLength);
    }
    let mut hdr = [0u8; HEADER_LEN];
    seg.opened.file.read_exact_at(&mut hdr, pos).at(&seg.path)?;
    let h = match BatchHeader::parse(&hdr, usize::try_from(left).unwrap_or(usize::MAX)) {
        Ok(h) => h,
        Err(k) => return Ok(k),
    };
    let mut bytes = vec![0u8; h.length as usize];
    seg.opened.file.read_exact_at(&mut bytes, pos).at(&seg.path)?;
    Ok(batch::verify(&bytes).err().unwrap_or(CorruptKind::OffsetOrder))
}

/// Where to start scanning for `entry`'s target: the entry's position when the batch there
/// really has the entry's base offset, otherwise the segment's start.
fn start_position(file: &dyn FileHandle, entry: crate::segment::IndexEntry, valid: u64) -> u64 {
    if entry.position == 0 {
        return 0;
    }
    let mut hdr = [0u8; HEADER_LEN];
    let ok = entry.position + HEADER_LEN as u64 <= valid
        && file.read_exact_at(&mut hdr, entry.position).is_ok()
        && BatchHeader::parse(&hdr, usize::MAX).is_ok_and(|h| h.base_offset == entry.offset);
    if ok { entry.position } else { 0 }
}

/// Reads batches of `seg` from the one holding `offset`, within its valid prefix `meta.size`,
/// checking each batch read (the ones passed over too). `None` when nothing at or after
/// `offset` is in this segment.
fn read_in(seg: &Seg, meta: SegMeta, offset: u64, max_bytes: usize, interval: u32) -> Result<Option<Records>> {
    let file = &*seg.opened.file;
    let valid = meta.size;
    let entry = seg.opened.index.read().lookup(offset);
    let from = start_position(file, entry, valid);
    if from >= valid {
        return Ok(None);
    }
    let avail = valid - from;
    let first_read = (max_bytes.min(1 << 30) + interval as usize + LOOKAHEAD) as u64;
    let mut buf = vec![0u8; usize::try_from(avail.min(first_read)).unwrap_or(CHUNK)];
    file.read_exact_at(&mut buf, from).at(&seg.path)?;
    let corrupt = |at: usize, k| Error::corrupt(&seg.path, from + at as u64, k);
    let mut cur = 0usize;
    let mut first: Option<usize> = None;
    let mut next_offset = offset;
    let mut min_base = if from == 0 { seg.base } else { entry.offset };
    while (from + cur as u64) < valid {
        let left = usize::try_from(valid - from - cur as u64).unwrap_or(usize::MAX);
        grow(file, &mut buf, from, cur + HEADER_LEN, valid).at(&seg.path)?;
        let h = match BatchHeader::parse(buf.get(cur..).unwrap_or(&[]), left) {
            Ok(h) => h,
            Err(_) if first.is_some() => break,
            Err(k) => return Err(corrupt(cur, k)),
        };
        let len = h.length as usize;
        if first.is_some_and(|f| cur + len - f > max_bytes) {
            break;
        }
        grow(file, &mut buf, from, cur + len, valid).at(&seg.path)?;
        let bytes = buf.get(cur..cur + len).unwrap_or(&[]);
        let checked = batch::verify(bytes)
            .and_then(|h| if h.base_offset < min_base { Err(CorruptKind::OffsetOrder) } else { Ok(h) });
        match checked {
            Ok(_) => {}
            Err(_) if first.is_some() => break,
            Err(k) => return Err(corrupt(cur, k)),
        }
        min_base = h.next_offset();
        if h.last_offset() < offset || (first.is_none() && !has_record_at_or_after(bytes, h, offset)) {
            cur += len;
            continue;
        }
        first.get_or_insert(cur);
        next_offset = h.next_offset();
        cur += len;
        if first.is_some_and(|f| cur - f >= max_bytes) {
            break;
        }
    }
    let Some(start) = first else { return Ok(None) };
    buf.truncate(cur);
    buf.drain(..start);
    Ok(Some(Records::from_owned(buf, offset, next_offset)))
}

/// Whether the (verified) batch holds a record with an offset ≥ `offset`.
fn has_record_at_or_after(bytes: &[u8], h: BatchHeader, offset: u64) -> bool {
    if h.record_count == 0 {
        return false;
    }
    if h.base_offset >= offset {
        return true;
    }
    let mut it = RecordIter::new(bytes, h);
    it.skip_before(offset).is_ok() && it.next().is_some()
}

/// Extends `buf` (the file from `from`) to `want` bytes, never past `valid`.
fn grow(file: &dyn FileHandle, buf: &mut Vec<u8>, from: u64, want: usize, valid: u64) -> std::io::Result<()> {
    let max = usize::try_from(valid - from).unwrap_or(usize::MAX);
    let want = want.min(max);
    let have = buf.len();
    if want <= have {
        return Ok(());
    }
    let want = want.max(have.saturating_mul(2)).min(max);
    buf.resize(want, 0);
    file.read_exact_at(&mut buf[have..], from + have as u64)
}

/// Owned records of a [`ReadOnlyPartition`] from an offset to the end readable when each
/// chunk is read.
#[derive(Debug)]
pub struct ReadOnlyIter {
    part: ReadOnlyPartition,
    next: u64,
    buf: std::vec::IntoIter<StoredRecord>,
    done: bool,
}

impl ReadOnlyIter {
    /// The offset the next chunk is read from.
    pub fn position(&self) -> u64 {
        self.next
    }
}

impl Iterator for ReadOnlyIter {
    type Item = Result<StoredRecord>;

    fn next(&mut self) -> Option<Result<StoredRecord>> {
        loop {
            if let Some(r) = self.buf.next() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            match self.part.read(self.next, 1 << 20) {
                Ok(r) if r.is_empty() => {
                    self.done = true;
                    return None;
                }
                Ok(r) => {
                    self.next = r.next_fetch_offset();
                    self.buf = r.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
