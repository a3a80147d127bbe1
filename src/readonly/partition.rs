//! [`ReadOnlyPartition`]: one partition directory read from outside the process that writes
//! it. The consistency argument is documented on `ReadOnlyLogDir`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::scan::{Listing, Seg, extend, info, list, open_seg, read_in, start_position, stop_kind};
use crate::batch::RecordIter;
use crate::config::DEFAULT_INDEX_INTERVAL_BYTES;
use crate::error::{Error, IoContext, Result};
use crate::fs::{EntryKind, Fs, StdFs};
use crate::partition::{OffsetAndTimestamp, Records};
use crate::record::StoredRecord;
use crate::segment::{NO_TS, SegMeta, Segment, SegmentInfo};

/// Segment files kept open at once (besides those a caller's [`Segment`] holds).
const OPEN_SEGMENTS: usize = 16;
/// The directory is listed again at least this often, events or not.
const RELIST_EVERY: Duration = Duration::from_secs(1);
/// How many times a read starts over on a fresh listing before giving up.
const RETRIES: usize = 64;

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

    /// Opens `path` read-only on the file system `fs` (tests: a simulated file system shared
    /// with a writer).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn open_on(fs: Fs, path: impl AsRef<Path>) -> Result<ReadOnlyPartition> {
        Self::open_with(fs, path.as_ref(), 0, DEFAULT_INDEX_INTERVAL_BYTES, None)
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
