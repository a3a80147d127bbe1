//! The crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

/// What is wrong with bytes found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptKind {
    /// A batch's length field is smaller than a header or larger than any batch may be.
    BatchLength,
    /// A batch's checksum does not match its bytes.
    BatchChecksum,
    /// A batch carries a magic byte this version does not know.
    BatchMagic,
    /// A batch's fields contradict each other (offsets, counts, record framing).
    BatchInvalid,
    /// A batch uses a feature this build does not read (a compression codec, a transactional
    /// or control batch): it is refused rather than misread.
    UnsupportedFeature,
    /// A batch's offsets do not follow the previous batch, or fall outside its segment.
    OffsetOrder,
    /// An index or checkpoint file is damaged (bad magic, checksum or size).
    Metadata,
    /// Valid batches follow damaged bytes in the middle of a segment: data was lost in place,
    /// not at a torn tail, so recovery refuses to cut it away.
    MidLog,
}

impl std::fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            CorruptKind::BatchLength => "batch length out of bounds",
            CorruptKind::BatchChecksum => "batch checksum mismatch",
            CorruptKind::BatchMagic => "unknown batch magic byte",
            CorruptKind::BatchInvalid => "batch fields are inconsistent",
            CorruptKind::UnsupportedFeature => "batch uses a feature (codec, transactions) this build does not read",
            CorruptKind::OffsetOrder => "batch offsets out of order",
            CorruptKind::Metadata => "damaged metadata file",
            CorruptKind::MidLog => "damaged bytes followed by valid batches",
        };
        f.write_str(s)
    }
}

/// Every error partlog returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed on `path`.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The disk (or quota) is full. Nothing of the failed append was made visible; free space
    /// and retry.
    #[error("no space left on the device holding {}: free space and retry; nothing of the failed write is visible", path.display())]
    StorageFull {
        /// The file that could not grow.
        path: PathBuf,
    },
    /// Bytes on disk fail validation. Corrupt data is never returned as records.
    #[error("corrupt data in {} at byte {offset}: {kind}; restore the file from a backup or open with `RecoveryMode::TruncateCorrupt` to cut the log at this point", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position in the file where the damage starts.
        offset: u64,
        /// What is wrong.
        kind: CorruptKind,
    },
    /// A file was written by a newer (or unknown) format version.
    #[error("{} has format version {found}, this build reads up to {supported}: upgrade partlog", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The requested offset is outside `[start, end]`.
    #[error("offset {requested} is out of range: the log holds offsets {start}..{end}")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// The log start offset (first readable offset).
        start: u64,
        /// The log end offset (next offset to be written).
        end: u64,
    },
    /// A record or batch is larger than `max.message.bytes` (or the segment size).
    #[error(
        "record batch of {size} bytes exceeds the limit of {max} bytes (max.message.bytes / segment.bytes): split it or raise the limit"
    )]
    RecordTooLarge {
        /// Encoded size of the batch.
        size: u64,
        /// The limit in force.
        max: u64,
    },
    /// A record's timestamp is outside the window allowed by
    /// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms`.
    #[error(
        "record timestamp {timestamp} is {bound} the append time {now} by more than {max_ms} ms (message.timestamp.{bound}.max.ms): fix the producer's clock or widen the window"
    )]
    InvalidTimestamp {
        /// The record's timestamp (ms since the Unix epoch).
        timestamp: i64,
        /// The append time used for the check.
        now: i64,
        /// Which limit was crossed.
        bound: TimestampBound,
        /// The configured limit.
        max_ms: u64,
    },
    /// `i64::MIN` is reserved (it stands for "no timestamp" in segment summaries).
    #[error("record timestamp {timestamp} is reserved: use a timestamp above i64::MIN")]
    ReservedTimestamp {
        /// The rejected timestamp.
        timestamp: i64,
    },
    /// An append was given no records.
    #[error("an append needs at least one record")]
    EmptyBatch,
    /// A compacted topic (`cleanup.policy` includes `compact`) only takes records with a key.
    #[error(
        "record {index} of the append has no key, but the log is compacted (cleanup.policy=compact): give every record a key"
    )]
    KeyRequired {
        /// Position of the first keyless record in the append.
        index: usize,
    },
    /// The append would need offsets past the largest one partlog stores (`i64::MAX - 1`).
    #[error(
        "the partition's offset space is exhausted: the next offset is {log_end_offset}, an append of {records} records does not fit"
    )]
    OffsetSpaceExhausted {
        /// The partition's log end offset.
        log_end_offset: u64,
        /// Records in the refused append.
        records: u64,
    },
    /// A configuration key is unknown or its value is out of range.
    #[error("invalid configuration `{key}` = `{value}`: {reason}")]
    InvalidConfig {
        /// The Kafka-style key, e.g. `segment.bytes`.
        key: String,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A topic name breaks Kafka's rule: 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// No topic of that name exists in the log directory.
    #[error("topic {name:?} does not exist: create it first")]
    TopicNotFound {
        /// The topic name.
        name: String,
    },
    /// A topic of that name exists already.
    #[error("topic {name:?} already exists")]
    TopicExists {
        /// The topic name.
        name: String,
    },
    /// The partition index is not below the topic's partition count.
    #[error("topic {topic:?} has {count} partitions, there is no partition {partition}")]
    PartitionNotFound {
        /// The topic name.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        count: u32,
    },
    /// The directory is held by another open handle (this process or another one).
    #[error("{} is already open (locked by another handle or process): close it first", path.display())]
    Locked {
        /// The locked directory.
        path: PathBuf,
    },
    /// The directory exists, is not empty and was not created by partlog.
    #[error("{} is not a partlog directory ({reason}): choose an empty or new directory", path.display())]
    NotALogDir {
        /// The directory.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// An earlier write or fsync failed, so the on-disk state is unknown; reopen to recover.
    #[error("the log was poisoned by an earlier I/O failure ({cause}): reopen it to recover")]
    Poisoned {
        /// The first failure (a copy: I/O errors keep their kind, message and path).
        #[source]
        cause: std::sync::Arc<Error>,
    },
    /// The handle was closed.
    #[error("the log is closed")]
    Closed,
    /// A consumer has no committed offset for a partition and `auto.offset.reset=none`.
    #[error(
        "no committed offset for {topic}-{partition} and auto.offset.reset=none: commit or seek to a position first"
    )]
    NoOffsetForPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A commit was refused: the committer may not commit for that partition now.
    #[error("commit for group {group:?} of {topic}-{partition} refused: {reason}")]
    CommitRejected {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Why.
        reason: &'static str,
    },
    /// The consumer does not own that partition.
    #[error("{topic}-{partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// No consumer group of that id exists.
    #[error("consumer group {group:?} does not exist")]
    GroupNotFound {
        /// The group id.
        group: String,
    },
    /// The operation needs a group without members (reset, delete).
    #[error("consumer group {group:?} has active members: stop them first")]
    GroupNotEmpty {
        /// The group id.
        group: String,
    },
}

/// Which bound of the accepted timestamp window a record crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampBound {
    /// Older than `message.timestamp.before.max.ms` allows.
    Before,
    /// Newer than `message.timestamp.after.max.ms` allows.
    After,
}

impl std::fmt::Display for TimestampBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimestampBound::Before => "before",
            TimestampBound::After => "after",
        })
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on; ENOSPC/EDQUOT become [`Error::StorageFull`].
    pub(crate) fn io(path: &Path, source: io::Error) -> Error {
        if is_storage_full(&source) {
            return Error::StorageFull { path: path.to_path_buf() };
        }
        Error::Io { path: path.to_path_buf(), source }
    }

    /// A copy of this error for [`Error::Poisoned`]: the same variant and fields; an I/O
    /// error keeps its kind and message (not its OS-level source chain).
    pub(crate) fn copy(&self) -> Error {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: match source.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            Error::StorageFull { path } => Error::StorageFull { path: path.clone() },
            Error::Corrupt { path, offset, kind } => {
                Error::Corrupt { path: path.clone(), offset: *offset, kind: *kind }
            }
            Error::Poisoned { cause } => Error::Poisoned { cause: std::sync::Arc::clone(cause) },
            other => Error::Io { path: PathBuf::new(), source: io::Error::other(other.to_string()) },
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, kind: CorruptKind) -> Error {
        Error::Corrupt { path: path.to_path_buf(), offset, kind }
    }

    pub(crate) fn config(key: &str, value: impl ToString, reason: impl Into<String>) -> Error {
        Error::InvalidConfig { key: key.to_owned(), value: value.to_string(), reason: reason.into() }
    }
}

pub(crate) fn is_storage_full(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return code == libc::ENOSPC || code == libc::EDQUOT;
    }
    false
}

/// Attaches a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
