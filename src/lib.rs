//! # partlog
//!
//! Kafka's storage model as an embedded library: no server, just a directory.
//!
//! - A **record** has an optional key, an optional value (`None` is a tombstone), headers and a
//!   timestamp. Appending it gives it an **offset**: dense and increasing within its partition,
//!   never changed.
//! - A **partition** ([`Partition`]) is an append-only log split into **segments**: the active
//!   one takes appends and rolls by size (`segment.bytes`) or age (`segment.ms`); sealed ones
//!   are immutable. Each segment is a `.log` file of CRC-checked batches with a sparse offset
//!   index and a time index, named by its 20-digit base offset, as in Kafka.
//! - **Durability** is chosen per partition ([`Durability`]): leave write-back to the OS
//!   (Kafka's default), fsync before every append returns (with group commit), or fsync every N
//!   records / M ms.
//! - **Recovery** after a crash re-validates only what was not fsynced, cuts torn tails, rebuilds
//!   indexes, and refuses to silently drop valid data that follows damage.
//!
//! ```
//! use partlog::{Partition, Record, TopicConfig, Durability};
//! # let dir = tempfile::tempdir()?;
//! let log = Partition::open_with(dir.path().join("events-0"),
//!     TopicConfig::default().durability(Durability::EveryAppend))?;
//! let first = log.append(Record::new().key("user-1").value("signed up").timestamp(1_000))?;
//! log.append_batch(&[
//!     Record::new().key("user-2").value("signed up").timestamp(2_000),
//!     Record::new().key("user-1").value("paid").timestamp(3_000),
//! ])?;
//! assert_eq!(log.next_offset(), 3);
//! for rec in log.read(first.base_offset, 1 << 20)?.iter() {
//!     println!("{} {:?}", rec.offset(), rec.value());
//! }
//! let at = log.offset_for_timestamp(2_500)?.expect("a later record");
//! assert_eq!(at.offset, 2);
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod batch;
mod clock;
mod config;
mod error;
pub mod format;
pub mod fs;
mod logdir;
mod partition;
mod record;
mod segment;
mod topic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    CleanupPolicy, DEFAULT_DELETE_RETENTION_MS, DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MIN_CLEANABLE_DIRTY_RATIO, DEFAULT_RETENTION_MS, DEFAULT_SEGMENT_BYTES, DEFAULT_SEGMENT_INDEX_BYTES,
    DEFAULT_SEGMENT_MS, Durability, KEYS as CONFIG_KEYS, MIN_SEGMENT_BYTES, TimestampType, TopicConfig,
};
pub use error::{CorruptKind, Error, Result};
pub use logdir::{LogDir, LogDirOptions};
pub use partition::{
    AppendInfo, LogIter, Partition, PartitionOptions, Reader, Records, RecordsIter, RecoveryMode, TimestampOffset,
};
pub use record::{Header, HeaderIter, IntoBytes, Record, RecordRef, StoredRecord};
pub use segment::{
    DEFAULT_OPEN_SEGMENTS, HandleCache, IndexEntry, OffsetIndex, SegmentInfo, TimeIndex, TimeIndexEntry,
};
pub use topic::{
    MAX_TOPIC_NAME_LEN, PartitionDescription, STICKY_BATCH_BYTES, Topic, TopicAppend, TopicDescription, murmur2,
    partition_for_key, validate_topic_name,
};

/// Internals for tests, benches and fuzz targets. Not a stable API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing {
    pub use crate::batch::{BatchBuilder, BatchHeader, FIELD_OFFSETS, HEADER_LEN, validate};
}
