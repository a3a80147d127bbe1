//! Read-only access to a log directory that another process may be writing. The guarantees
//! and their argument are documented on [`ReadOnlyLogDir`].

mod follow;
mod groups;
mod partition;
mod scan;

use std::path::{Path, PathBuf};

pub use follow::{FollowEvent, Follower, MAX_POLL, MIN_POLL};
pub use partition::{ReadOnlyIter, ReadOnlyPartition};

use crate::config::TopicConfig;
use crate::consumer::GroupDescription;
use crate::error::{Error, IoContext, Result};
use crate::fs::{EntryKind, Fs, StdFs};
use crate::logdir::{META_FILE, TOPICS, check_meta, is_internal, read_topic_meta};
use crate::topic::{PartitionDescription, TopicDescription, validate_topic_name};

/// A log directory opened read-only, for a reader outside the process that writes it: a CLI,
/// a backup, a tail. Opened with [`LogDir::open_read_only`](crate::LogDir::open_read_only) or
/// [`Partition::open_read_only`](crate::Partition::open_read_only).
///
/// # What a read-only reader does
/// It takes no lock and waits for none, recovers nothing, rebuilds no index on disk, writes
/// no checkpoint, removes no leftover: it opens files read-only and reads them with `pread`
/// (never a memory map: another process may shrink or replace a file, which would turn a
/// mapped read into SIGBUS). It lists a partition directory, reads the checkpoint for the log
/// start, and takes the segments' `.log` files for the log; index files are used where they
/// are intact and describe their file exactly, and otherwise rebuilt in memory.
///
/// # Why what it returns is right
/// Every batch a read returns, and every batch it passes over, is checked: header, length,
/// CRC, offsets ascending. What the writer does under it, and why each is harmless:
/// - **Appends** land after the valid end of the active segment, inside a preallocated,
///   zero-filled region (written through a memory map; the page cache is shared, so a
///   `pread` sees each byte as soon as it is stored). A batch that is still being copied
///   fails its CRC (or its length points into zeros, or past the file) and is simply the
///   current end: never an error, never returned, looked at again at the next read. A
///   batch whose CRC matches has exactly the bytes the writer produced.
/// - **Rolls** trim the active segment to its data, fsync it, and only then create the next
///   segment file. So once a listing shows a successor, the segment before it is final, and
///   bytes in it that are not a valid batch are damage ([`Error::Corrupt`](crate::Error::Corrupt)),
///   not a race — unless a fresh listing shows the file was replaced meanwhile, in which case
///   the read starts over.
/// - **Retention** writes the new log start to the checkpoint durably before renaming any
///   file to `.deleted`; the reader takes the log start from the checkpoint (or the first
///   segment's base, if higher). A segment it holds open stays readable through its
///   descriptor; one that is gone when it opens it makes it list the directory again and
///   retry, and then the offset is below the new log start
///   ([`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange); a [`Follower`] reports
///   it as a [`FollowEvent::Reset`]).
/// - **Compaction** writes each cleaned segment completely and fsyncs it before renaming it
///   over the segment of the same base (an atomic replace of the name: the reader opens the
///   old file or the new one, both complete); merged segments' files are renamed away after.
///   Compaction never moves a record to another offset or changes it, it only removes
///   records. So whatever mix of old and new files a listing catches mid-swap, each offset
///   holds the same record in every file that has it, and a reader that only moves forward
///   by offset returns records of the log in order, each once, missing only records
///   compaction removed.
/// - **Truncation** replaces the segment holding the new end (a copy renamed over it) and
///   deletes later ones. A reader notices the replaced file by its identity (device and
///   inode) at the next listing. Records it returned from above the new end were in the log
///   when it read them; a position past the new end is out of range.
///
/// Directory listings are atomic per entry (an entry that is not being created, renamed or
/// removed is listed exactly once; a name renamed over stays listed), and a read never trusts
/// a listing beyond a second, nor after a follower's watch reported a change.
///
/// # What it cannot see
/// - The writer's **in-memory state**: the active segment's offset and time index (written
///   to disk only when the segment is sealed or the log closed) — the reader rebuilds them
///   in memory by scanning the active segment once, then incrementally; the directory
///   defaults the writer was opened with ([`LogDirOptions::defaults`](crate::LogDirOptions::defaults))
///   — topic configurations show the topic's own overrides over Kafka's defaults; consumer
///   group members, which live in the writing process (groups are shown with their
///   committed offsets and their last recorded state).
/// - **Bytes not yet written** by the writer: an append becomes visible when its batch is
///   completely in the page cache, which is an instant after the writer's `append` returns
///   at the latest.
/// - After a **crash** of the writer, until it is reopened: a torn tail is the end, as for
///   appends in flight; segments a crashed retention left below the log start are skipped.
///
/// What it holds: up to 16 open segment files per partition (plus the ones a caller's
/// [`Segment`](crate::segment::Segment) handles hold). A file retention deleted stays
/// allocated on disk while a reader has it open; the reader lets go of such files at its
/// next listing.
///
/// ```
/// use partlog::{LogDir, Record, TopicConfig};
/// # let tmp = tempfile::tempdir()?;
/// # let path = tmp.path().join("data");
/// let dir = LogDir::open(&path)?;                        // the application, writing
/// let orders = dir.create_topic("orders", TopicConfig::default().partitions(2))?;
/// orders.append_to(1, Record::new().key("k").value("v"))?;
///
/// let ro = LogDir::open_read_only(&path)?;               // another process, reading
/// assert_eq!(ro.topics()?, ["orders"]);
/// let p = ro.topic("orders")?.partition(1)?;
/// assert_eq!(p.log_end_offset()?, 1);
/// let rec = p.iter(0).next().expect("one record")?;
/// assert_eq!(rec.value.as_deref(), Some(&b"v"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Cheap to clone; every call looks at the directory as it is now.
#[derive(Debug, Clone)]
pub struct ReadOnlyLogDir {
    path: PathBuf,
    fs: Fs,
}

impl ReadOnlyLogDir {
    /// Opens the log directory at `path` read-only (see
    /// [`LogDir::open_read_only`](crate::LogDir::open_read_only)).
    ///
    /// # Errors
    /// [`Error::NotALogDir`] when `path` does not exist, is not a directory or is not a
    /// partlog directory (no `partlog.meta`); [`Error::UnsupportedVersion`]; [`Error::Io`].
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnlyLogDir> {
        let path = path.as_ref();
        let fs = StdFs::shared();
        match fs.entry_kind(path).at(path)? {
            Some(EntryKind::Dir) => {}
            None => return Err(Error::NotALogDir { path: path.to_path_buf(), reason: "it does not exist".into() }),
            Some(_) => return Err(Error::NotALogDir { path: path.to_path_buf(), reason: "not a directory".into() }),
        }
        let meta = path.join(META_FILE);
        if fs.entry_kind(&meta).at(&meta)? != Some(EntryKind::File) {
            return Err(Error::NotALogDir { path: path.to_path_buf(), reason: format!("it has no {META_FILE}") });
        }
        check_meta(&*fs, &meta)?;
        Ok(ReadOnlyLogDir { path: path.to_path_buf(), fs })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the application's topics, sorted (internal ones left out).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn topics(&self) -> Result<Vec<String>> {
        self.list_topics(false)
    }

    /// Names of all topics, sorted; internal ones (`__consumer_offsets`) only when asked.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn list_topics(&self, include_internal: bool) -> Result<Vec<String>> {
        let p = self.path.join(TOPICS);
        let mut names: Vec<String> = self
            .fs
            .read_dir(&p)
            .at(&p)?
            .into_iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .filter_map(|e| e.name.into_string().ok())
            .filter(|n| validate_topic_name(n).is_ok())
            .filter(|n| include_internal || !is_internal(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Opens topic `name` read-only.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::InvalidTopicName`], [`Error::Corrupt`] for damaged
    /// topic metadata, [`Error::Io`].
    pub fn topic(&self, name: &str) -> Result<ReadOnlyTopic> {
        validate_topic_name(name)?;
        let dir = self.path.join(TOPICS).join(name);
        let gone = || Error::TopicNotFound { name: name.to_owned() };
        if self.fs.entry_kind(&dir).at(&dir)? != Some(EntryKind::Dir) {
            return Err(gone());
        }
        let config = match read_topic_meta(&*self.fs, &dir) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
            r => r?,
        }
        .inherit_from(&TopicConfig::default());
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            let pd = dir.join(p.to_string());
            let part = ReadOnlyPartition::open_with(
                std::sync::Arc::clone(&self.fs),
                &pd,
                p,
                config.index_interval_bytes,
                Some(name),
            );
            match part {
                Ok(part) => partitions.push(part),
                Err(Error::NotALogDir { .. }) => return Err(gone()),
                Err(e) => return Err(e),
            }
        }
        Ok(ReadOnlyTopic { name: name.to_owned(), config, partitions })
    }

    /// Describes topic `name` as [`LogDir::describe_topic`](crate::LogDir::describe_topic)
    /// does, from what is readable now.
    ///
    /// # Errors
    /// As [`topic`](Self::topic) and [`ReadOnlyPartition::segments`].
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.topic(name)?.describe()
    }

    /// Consumer groups with committed offsets or a recorded state, sorted, replayed from
    /// `__consumer_offsets`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an offset record partlog did not write; as
    /// [`ReadOnlyPartition::read`].
    pub fn list_groups(&self) -> Result<Vec<String>> {
        groups::list(self)
    }

    /// A group's committed offsets and lag per partition, and its last recorded state.
    /// Members are not visible read-only (they live in the writing process), so `members` is
    /// empty and no partition has an `owner`.
    ///
    /// # Errors
    /// [`Error::GroupNotFound`]; as [`list_groups`](Self::list_groups).
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        groups::describe(self, group)
    }
}

/// A topic opened read-only.
#[derive(Debug, Clone)]
pub struct ReadOnlyTopic {
    name: String,
    config: TopicConfig,
    partitions: Vec<ReadOnlyPartition>,
}

impl ReadOnlyTopic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration: the topic's overrides over Kafka's defaults (the directory
    /// defaults of the writing process are not visible).
    pub fn config(&self) -> &TopicConfig {
        &self.config
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// Partition `index`.
    ///
    /// # Errors
    /// [`Error::PartitionNotFound`].
    pub fn partition(&self, index: u32) -> Result<ReadOnlyPartition> {
        self.partitions.get(index as usize).cloned().ok_or_else(|| Error::PartitionNotFound {
            topic: self.name.clone(),
            partition: index,
            count: self.partition_count(),
        })
    }

    /// All partitions, in order.
    pub fn partitions(&self) -> &[ReadOnlyPartition] {
        &self.partitions
    }

    /// Describes the topic from what is readable now.
    ///
    /// # Errors
    /// As [`ReadOnlyPartition::segments`].
    pub fn describe(&self) -> Result<TopicDescription> {
        let mut partitions = Vec::with_capacity(self.partitions.len());
        for p in &self.partitions {
            let segments = p.segments()?;
            let log_end_offset = segments.last().map_or(p.log_end_offset()?, |s| s.end_offset);
            partitions.push(PartitionDescription {
                partition: p.id(),
                log_start_offset: p.log_start_offset()?.min(log_end_offset),
                log_end_offset,
                size_bytes: segments.iter().map(|s| s.size).sum(),
                segments,
            });
        }
        let config_entries = self.config.entries(&TopicConfig::default());
        Ok(TopicDescription { name: self.name.clone(), config: self.config.clone(), config_entries, partitions })
    }
}
