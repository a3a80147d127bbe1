//! [`Follower`]: waits for new appends in read-only partitions and hands them out as they land.

#[cfg(not(target_os = "linux"))]
use std::path::Path;
use std::time::{Duration, Instant};

use super::ReadOnlyPartition;
use crate::error::{Error, Result};
use crate::partition::Records;

/// Poll interval right after records were found.
pub const MIN_POLL: Duration = Duration::from_millis(1);
/// Longest poll interval, reached after a quiet spell.
pub const MAX_POLL: Duration = Duration::from_millis(10);

/// What [`Follower::poll`] returns.
#[derive(Debug)]
#[non_exhaustive]
pub enum FollowEvent {
    /// New records of one partition.
    Records {
        /// The partition they come from.
        partition: ReadOnlyPartition,
        /// Whole batches; records before the follower's position are skipped.
        records: Records,
    },
    /// The position fell out of the log and was moved: below the log start (retention
    /// deleted records before they were read: `to` is the new log start) or past the log end
    /// (the log was truncated: `to` is the new end). Records between `from` and `to` were not
    /// and will not be returned.
    Reset {
        /// The partition.
        partition: ReadOnlyPartition,
        /// The position before.
        from: u64,
        /// The position now.
        to: u64,
    },
}

/// Follows read-only partitions: returns records as they are appended, in offset order per
/// partition, each once.
///
/// How it notices them:
/// - **Appends** are written through a shared memory map of the active segment, and stores
///   into a mapping raise no file-system event (inotify(7): "inotify does not report file
///   accesses and modifications that may occur because of mmap(2)"). So the tail of each
///   followed partition is *polled*: one `fstat` and, when the file grew past what was
///   validated, a small `pread` for the next batch header. The poll interval starts at
///   [`MIN_POLL`] after anything was found and doubles while nothing is, up to [`MAX_POLL`]:
///   a follower sees an append within about a millisecond while data flows, and within
///   [`MAX_POLL`] after a quiet spell.
/// - **Rolls, retention and compaction** create, rename and delete files. On Linux an inotify
///   watch on each partition directory reports them at once (and the writes that do go
///   through `write(2)`: large batches, the checkpoint), waking the follower and marking the
///   partition's listing stale. Elsewhere — and on Linux if inotify is unavailable or its
///   queue overflows — the listing is refreshed when the tail shows no preallocated space
///   past its end (the writer may have sealed it) and at least once a second.
///
/// Neither costs the writer anything: the reader takes no lock the writer takes and writes
/// nothing; a watch adds a queued event to the writer's directory operations.
///
/// ```
/// use partlog::{Follower, FollowEvent, Partition, Record};
/// use std::time::Duration;
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("p");
/// let writer = Partition::open(&path)?;
/// let mut follower = Follower::new();
/// follower.add(&Partition::open_read_only(&path)?, 0)?;
/// writer.append(Record::with_value("hello"))?;
/// match follower.poll(Duration::from_secs(10))? {
///     Some(FollowEvent::Records { records, .. }) => {
///         assert_eq!(records.iter().next().and_then(|r| r.value()), Some(&b"hello"[..]));
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Follower {
    parts: Vec<(ReadOnlyPartition, u64)>,
    watch: Watch,
    next: usize,
    max_bytes: usize,
    interval: Duration,
}

impl Default for Follower {
    fn default() -> Self {
        Follower::new()
    }
}

impl Follower {
    /// A follower of no partition yet.
    pub fn new() -> Follower {
        Follower { parts: Vec::new(), watch: Watch::new(), next: 0, max_bytes: 1 << 20, interval: MIN_POLL }
    }

    /// Bytes of batches one [`poll`](Self::poll) returns at most (at least one batch;
    /// default 1 MiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes.max(1);
        self
    }

    /// Follows `partition` from `offset`.
    ///
    /// # Errors
    /// Never on Linux's inotify being unavailable (the follower polls instead); [`Error::Io`]
    /// only for other failures to watch the directory.
    pub fn add(&mut self, partition: &ReadOnlyPartition, offset: u64) -> Result<()> {
        self.watch.add(partition.path(), self.parts.len());
        self.parts.push((partition.clone(), offset));
        Ok(())
    }

    /// Each followed partition with the offset the next record will come from.
    pub fn positions(&self) -> Vec<(ReadOnlyPartition, u64)> {
        self.parts.clone()
    }

    /// Whether directory changes are reported by inotify (`false`: the listing is polled).
    pub fn uses_inotify(&self) -> bool {
        self.watch.active()
    }

    /// The next records appended at or after the followed positions, waiting up to
    /// `timeout` for them; `None` when the time passed without any. Partitions take turns.
    ///
    /// # Errors
    /// As [`ReadOnlyPartition::read`], except that falling out of the log is a
    /// [`FollowEvent::Reset`], not an error.
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<FollowEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.parts.len();
            for k in 0..n {
                let i = (self.next + k) % n;
                let Some((part, pos)) = self.parts.get_mut(i) else { continue };
                match part.read(*pos, self.max_bytes) {
                    Ok(r) if !r.is_empty() => {
                        *pos = r.next_fetch_offset();
                        self.next = i + 1;
                        self.interval = MIN_POLL;
                        return Ok(Some(FollowEvent::Records { partition: part.clone(), records: r }));
                    }
                    Ok(r) => *pos = r.next_fetch_offset().max(*pos),
                    Err(Error::OffsetOutOfRange { start, end, .. }) => {
                        let from = *pos;
                        *pos = if from < start { start } else { end };
                        self.next = i + 1;
                        return Ok(Some(FollowEvent::Reset { partition: part.clone(), from, to: *pos }));
                    }
                    Err(e) => return Err(e),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut changed = Vec::new();
            self.watch.wait(self.interval.min(left), &mut changed);
            for i in changed {
                match i {
                    Changed::One(i) => {
                        if let Some((p, _)) = self.parts.get(i) {
                            p.invalidate();
                        }
                    }
                    Changed::All => self.parts.iter().for_each(|(p, _)| p.invalidate()),
                }
            }
            self.interval = (self.interval * 2).min(MAX_POLL);
        }
    }
}

/// A partition whose directory changed, or all of them (the event queue overflowed).
#[derive(Debug, Clone, Copy)]
enum Changed {
    One(usize),
    All,
}

#[cfg(target_os = "linux")]
use linux::Watch;

#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
struct Watch;

#[cfg(not(target_os = "linux"))]
impl Watch {
    fn new() -> Watch {
        Watch
    }
    fn add(&mut self, _dir: &Path, _index: usize) {}
    fn active(&self) -> bool {
        false
    }
    fn wait(&mut self, timeout: Duration, _changed: &mut Vec<Changed>) {
        std::thread::sleep(timeout);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::time::Duration;

    use super::Changed;

    /// What makes a listing stale: a file created, renamed in or out, or deleted, or the
    /// directory itself going away.
    const LISTING: u32 = libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_MOVED_FROM
        | libc::IN_MOVED_TO
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_IGNORED;
    /// What is watched: the above, and writes made with `write(2)`.
    const MASK: u32 = LISTING | libc::IN_MODIFY;
    /// `struct inotify_event` without its name.
    const EVENT_HEADER: usize = 16;

    /// An inotify instance watching partition directories (`None`: unavailable, so the
    /// follower only polls).
    #[derive(Debug)]
    pub(super) struct Watch {
        fd: Option<OwnedFd>,
        wds: Vec<(i32, usize)>,
    }

    impl Watch {
        pub(super) fn new() -> Watch {
            // SAFETY: plain syscall; the result is checked before it is used as a descriptor.
            let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
            // SAFETY: `fd` is a fresh descriptor this value now owns alone.
            let fd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
            Watch { fd, wds: Vec::new() }
        }

        pub(super) fn active(&self) -> bool {
            self.fd.is_some()
        }

        pub(super) fn add(&mut self, dir: &Path, index: usize) {
            let Some(fd) = &self.fd else { return };
            let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return };
            // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
            let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), MASK) };
            if wd >= 0 {
                self.wds.push((wd, index));
            }
            // A directory that cannot be watched (the watch limit, say) is polled instead:
            // its listing is refreshed at least once a second and whenever its tail looks
            // sealed.
        }

        /// Waits up to `timeout` for events; pushes the partitions whose listing went stale.
        pub(super) fn wait(&mut self, timeout: Duration, changed: &mut Vec<Changed>) {
            let Some(fd) = &self.fd else {
                std::thread::sleep(timeout);
                return;
            };
            let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
            let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc <= 0 {
                return;
            }
            let mut buf = [0u8; 8192];
            loop {
                // SAFETY: reads at most `buf.len()` bytes into `buf`, which outlives the call.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                let Ok(n) = usize::try_from(n) else { return };
                if n == 0 {
                    return;
                }
                let mut off = 0;
                while off + EVENT_HEADER <= n {
                    let word = |at: usize| {
                        let mut w = [0u8; 4];
                        w.copy_from_slice(buf.get(off + at..off + at + 4).unwrap_or(&[0; 4]));
                        w
                    };
                    let wd = i32::from_ne_bytes(word(0));
                    let mask = u32::from_ne_bytes(word(4));
                    let len = u32::from_ne_bytes(word(12)) as usize;
                    off += EVENT_HEADER + len;
                    if mask & libc::IN_Q_OVERFLOW != 0 {
                        changed.push(Changed::All);
                    } else if mask & LISTING != 0
                        && let Some(&(_, i)) = self.wds.iter().find(|(w, _)| *w == wd)
                    {
                        changed.push(Changed::One(i));
                    }
                }
            }
        }
    }
}
