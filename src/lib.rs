//! # partlog
//!
//! Kafka's storage model as an embedded library: no server, just a directory.
//!
//! - A **record** has an optional key, an optional value (`None` is a tombstone), headers and a
//!   timestamp. Appending it gives it an **offset**: dense and increasing within its partition,
//!   never changed.
//! - A **log directory** ([`LogDir`]) holds named **topics** ([`Topic`]), each split into
//!   **partitions**. A keyed record always goes to the partition Kafka's default partitioner
//!   would choose (murmur2 of the key); unkeyed records are spread.
//! - A **partition** ([`Partition`]) is an append-only log split into **segments**: the active
//!   one takes appends and rolls by size (`segment.bytes`) or age (`segment.ms`); sealed ones
//!   are immutable. Each segment is a `.log` file of CRC-checked batches with a sparse offset
//!   index and a time index, named by its 20-digit base offset, as in Kafka. The bytes are
//!   specified in [`format`](mod@format).
//! - **Durability** is chosen per topic ([`Durability`]): leave write-back to the OS (Kafka's
//!   default), fsync before every append returns (with group commit), or fsync every N records
//!   / M ms.
//! - **Recovery** after a crash re-validates only what was not fsynced, cuts torn tails, rebuilds
//!   indexes, and refuses to silently drop valid data that follows damage.
//! - Configuration uses Kafka's key names ([`TopicConfig::set`]).
//!
//! ```
//! use partlog::{LogDir, Record, TopicConfig};
//! # let tmp = tempfile::tempdir()?;
//! # let path = tmp.path().join("data");
//! let dir = LogDir::open(&path)?;                  // creates it if missing, takes its lock
//! let orders = dir.create_topic("orders", TopicConfig::default().partitions(3))?;
//! let at = orders.append(Record::new().key("customer-42").value("{\"total\":99}").timestamp(1_000))?;
//! assert_eq!(at.partition, orders.partition_for_key(b"customer-42"));
//!
//! let part = orders.partition(at.partition)?;
//! for rec in part.read(at.offset, 1 << 20)?.iter() {
//!     assert_eq!(rec.value(), Some(&b"{\"total\":99}"[..]));
//! }
//! assert_eq!(part.offset_for_timestamp(500)?.map(|t| t.offset), Some(at.offset));
//! dir.close()?;
//!
//! // Reopen: everything is still there.
//! let dir = LogDir::open(&path)?;
//! assert_eq!(dir.topic("orders")?.partition(at.partition)?.log_end_offset(), at.offset + 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A single partition can also be used on its own:
//!
//! ```
//! use partlog::{Durability, Partition, Record, TopicConfig};
//! # let dir = tempfile::tempdir()?;
//! let log = Partition::open_with(dir.path().join("events-0"),
//!     TopicConfig::default().durability(Durability::EveryAppend))?;
//! log.append_batch(&[
//!     Record::new().key("user-1").value("signed up").timestamp(1_000),
//!     Record::new().key("user-1").value("paid").timestamp(3_000),
//! ])?;
//! let at = log.offset_for_timestamp(2_000)?.expect("a later record");
//! assert_eq!(at.offset, 1);
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod batch;
mod cleaner;
mod clock;
mod config;
mod consumer;
mod error;
pub mod format;
#[cfg(any(test, feature = "testing"))]
pub mod fs;
#[cfg(not(any(test, feature = "testing")))]
mod fs;
mod logdir;
mod maintenance;
mod partition;
mod readonly;
mod record;
mod retention;
pub mod segment;
mod topic;
mod trace;

pub use cleaner::{
    CleanerOptions, CleanerStatus, CompactionReport, DEFAULT_DEDUPE_BUFFER_BYTES, DEFAULT_DEDUPE_LOAD_FACTOR,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    CleanupPolicy, ConfigEntry, ConfigSource, DEFAULT_DELETE_RETENTION_MS, DEFAULT_FILE_DELETE_DELAY_MS,
    DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MIN_CLEANABLE_DIRTY_RATIO, DEFAULT_RETENTION_MS,
    DEFAULT_SEGMENT_BYTES, DEFAULT_SEGMENT_INDEX_BYTES, DEFAULT_SEGMENT_MS, Durability, KEYS as CONFIG_KEYS, KeyEffect,
    KeyInfo, MIN_SEGMENT_BYTES, TimestampType, TopicConfig,
};
pub use consumer::{
    AssignmentStrategy, CONSUMER_KEYS, Consumer, ConsumerConfig, ConsumerRecord, ConsumerRecords,
    DEFAULT_AUTO_COMMIT_INTERVAL_MS, DEFAULT_FETCH_MAX_BYTES, DEFAULT_MAX_PARTITION_FETCH_BYTES,
    DEFAULT_MAX_POLL_INTERVAL_MS, DEFAULT_MAX_POLL_RECORDS, GroupDescription, GroupPartition, MemberDescription,
    OFFSETS_TOPIC, OffsetAndMetadata, OffsetReset, OffsetSpec, RebalanceEvent, TopicPartition,
};
#[cfg(feature = "async")]
pub use consumer::{ConsumerStream, OwnedConsumerRecord};
pub use error::{CorruptKind, Error, Result, TimestampBound};
pub use logdir::{DEFAULT_OFFSETS_PARTITIONS, DEFAULT_OFFSETS_RETENTION_MS, LogDir, LogDirOptions};
pub use maintenance::{
    CLEANER_BACKOFF, MAX_MAINTENANCE_INTERVAL, Maintenance, MaintenanceReport, MaintenanceWorker, PartitionRef,
};
#[allow(deprecated)]
pub use partition::TimestampOffset;
pub use partition::{
    AppendInfo, Doorbell, LogIter, OffsetAndTimestamp, Partition, PartitionOptions, Reader, RecordMetadata, Records,
    RecordsIter, RecoveryMode, RecoveryReport, TailCut,
};
pub use readonly::{
    FollowEvent, Follower, MAX_POLL as FOLLOW_MAX_POLL, MIN_POLL as FOLLOW_MIN_POLL, ReadOnlyIter, ReadOnlyLogDir,
    ReadOnlyPartition, ReadOnlyTopic,
};
pub use record::{Header, HeaderIter, IntoBytes, Record, RecordRef, StoredRecord};
pub use retention::{DeleteReason, RetentionReport};
#[allow(deprecated)]
pub use topic::TopicAppend;
pub use topic::{
    MAX_TOPIC_NAME_LEN, PartitionDescription, STICKY_BATCH_BYTES, Topic, TopicDescription, murmur2, partition_for_key,
    validate_topic_name,
};

/// Internals for tests, benches and fuzz targets. Not a stable API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing {
    pub use crate::batch::{BatchBuilder, BatchHeader, FIELD_OFFSETS, HEADER_LEN, MAGIC, validate};
}
