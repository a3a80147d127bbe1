//! # partlog-kafka
//!
//! The road from an embedded [`partlog`] directory to a Kafka cluster, and back.
//!
//! partlog already uses Kafka's record model (key, value or tombstone, headers, timestamp,
//! dense offsets per partition), Kafka's default partitioner (murmur2 of the key) and Kafka's
//! configuration keys, so moving to a cluster needs no new data model — only the records
//! copied over, in order, each once:
//!
//! - A [`Mirror`] follows a partlog topic and produces every record to a Kafka topic with the
//!   same partition count (created when missing), **to the same partition number**, with its
//!   key, value (a tombstone stays a null value), headers and timestamp, plus the partlog
//!   offset in the [`PARTLOG_OFFSET_HEADER`] header. It uses Kafka's idempotent producer and
//!   resumes, after a crash or a restart, from the last record of each Kafka partition:
//!   nothing lost, nothing twice, no Kafka transactions needed. The argument, the
//!   single-writer rule, and the wait that covers a replicated cluster are in the
//!   [`mirror`] module's docs.
//! - An [`Import`] consumes a Kafka topic into a partlog topic (same partition numbers, the
//!   Kafka offset in the [`KAFKA_OFFSET_HEADER`] header), resuming from the consumer
//!   group's committed offset, corrected by the partlog tail so that a restart never
//!   appends a record twice ([`import`] module docs).
//!
//! Both are plain blocking loops on the caller's thread (the Kafka client runs its own
//! threads underneath): [`Mirror::poll`] / [`Import::poll`] copy what arrived,
//! `catch_up` copies everything there is now, `close` ends a run cleanly. The `partlog`
//! command line offers both as `partlog mirror` and `partlog import`.
//!
//! ```no_run
//! use partlog::{LogDir, Record, TopicConfig};
//! use partlog_kafka::{Connect, Mirror, MirrorOptions};
//! use std::time::Duration;
//!
//! let dir = LogDir::open("./data")?;
//! let orders = dir.create_topic("orders", TopicConfig::default().partitions(3))?;
//! for i in 0..1000 {
//!     orders.append(Record::new().key(format!("customer-{i}")).value("{\"total\":99}"))?;
//! }
//!
//! let connect = Connect::new("127.0.0.1:9092");
//! let mut mirror = Mirror::from_dir(&dir, "orders", MirrorOptions::new(connect).kafka_topic("orders"))?;
//! mirror.catch_up()?;                          // the 1000 records are in Kafka, each once
//! let deadline = std::time::Instant::now() + Duration::from_secs(60);
//! while std::time::Instant::now() < deadline {
//!     mirror.poll(Duration::from_millis(100))?;    // and so is every later append
//! }
//! mirror.close()?;                             // delivered, and a clean stop recorded
//! dir.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The Kafka client is [`rdkafka`] with librdkafka built from its bundled sources (no system
//! library, no cmake): it has Kafka's idempotent producer, admin requests to create and
//! describe topics, and consumer groups, which the mirror and the import need; a pure Rust
//! client without an idempotent producer could not give the exactly-once argument above.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod client;
mod error;
pub mod import;
pub mod mirror;
mod position;

pub use client::{Connect, DEFAULT_CONNECT_ATTEMPTS, DEFAULT_CONNECT_BACKOFF, DEFAULT_REQUEST_TIMEOUT};
pub use error::{Error, Result};
pub use import::{DEFAULT_IMPORT_COMMIT_INTERVAL, DEFAULT_MAX_BATCH_RECORDS, Import, ImportOptions, import_group};
pub use mirror::{
    DEFAULT_COMMIT_INTERVAL, DEFAULT_DELIVERY_TIMEOUT, DEFAULT_LINGER, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_RESUME_WAIT, Mirror, MirrorOptions, PartitionProgress, mirror_group,
};
pub use position::{KAFKA_OFFSET_HEADER, PARTLOG_OFFSET_HEADER, batch_size, decode_offset, encode_offset};
