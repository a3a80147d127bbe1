//! Topics: named sets of partitions with Kafka's key-to-partition mapping.

pub(crate) mod meta;
mod name;
mod partitioner;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

pub use name::{MAX_TOPIC_NAME_LEN, validate_topic_name};
pub use partitioner::{murmur2, partition_for_key};

use crate::config::ConfigEntry;
use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::partition::{AppendInfo, Partition, RecordMetadata};
use crate::record::Record;
use crate::segment::SegmentInfo;

/// Bytes appended to one partition by unkeyed records before the sticky partitioner moves on
/// (Kafka's producer `batch.size` default).
pub const STICKY_BATCH_BYTES: usize = 16_384;

/// The former name of [`RecordMetadata`].
#[deprecated(note = "renamed to `RecordMetadata`, Kafka's name")]
pub type TopicAppend = RecordMetadata;

#[derive(Debug, Default)]
struct Sticky {
    partition: u32,
    bytes: usize,
}

#[derive(Debug)]
pub(crate) struct TopicInner {
    pub(crate) name: String,
    pub(crate) config: RwLock<TopicConfig>,
    /// The directory defaults the configuration inherits from (for `describe`).
    pub(crate) defaults: TopicConfig,
    pub(crate) partitions: RwLock<Arc<Vec<Partition>>>,
    sticky: Mutex<Sticky>,
    pub(crate) deleted: AtomicBool,
}

/// A topic: `N` partitions, each its own log. Cheap to clone, `Send + Sync`.
///
/// Keyed records go to `(murmur2(key) & 0x7fffffff) % N`, exactly as Kafka's default partitioner
/// places them. Unkeyed records use a sticky partitioner: they fill one partition with about
/// [`STICKY_BATCH_BYTES`] and then move to the next one, round-robin, so consecutive unkeyed
/// appends batch well and spread evenly over time.
#[derive(Debug, Clone)]
pub struct Topic {
    pub(crate) inner: Arc<TopicInner>,
}

/// What [`LogDir::describe_topic`](crate::LogDir::describe_topic) reports.
#[derive(Debug, Clone)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Configuration in force (its partition count is the topic's).
    pub config: TopicConfig,
    /// Every key in force with where its value comes from (topic override, directory default
    /// or Kafka default), as `kafka-configs --describe` lists them.
    pub config_entries: Vec<ConfigEntry>,
    /// One entry per partition, in order.
    pub partitions: Vec<PartitionDescription>,
}

/// One partition in a [`TopicDescription`].
#[derive(Debug, Clone)]
pub struct PartitionDescription {
    /// Partition index.
    pub partition: u32,
    /// First readable offset.
    pub log_start_offset: u64,
    /// The log end offset: the next offset to be written.
    pub log_end_offset: u64,
    /// Bytes of record batches over all segments.
    pub size_bytes: u64,
    /// Its segments, oldest first.
    pub segments: Vec<SegmentInfo>,
}

impl Topic {
    pub(crate) fn new(name: String, config: TopicConfig, defaults: TopicConfig, partitions: Vec<Partition>) -> Topic {
        Topic {
            inner: Arc::new(TopicInner {
                name,
                config: RwLock::new(config),
                defaults,
                partitions: RwLock::new(Arc::new(partitions)),
                sticky: Mutex::new(Sticky::default()),
                deleted: AtomicBool::new(false),
            }),
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.inner.partitions.read().len() as u32
    }

    /// The configuration in force.
    pub fn config(&self) -> TopicConfig {
        self.inner.config.read().clone()
    }

    fn check(&self) -> Result<()> {
        if self.inner.deleted.load(Ordering::Acquire) {
            return Err(Error::TopicNotFound { name: self.inner.name.clone() });
        }
        Ok(())
    }

    /// Partition `index`.
    ///
    /// # Errors
    /// [`Error::PartitionNotFound`] when `index` ≥ the partition count;
    /// [`Error::TopicNotFound`] after the topic was deleted.
    pub fn partition(&self, index: u32) -> Result<Partition> {
        self.check()?;
        let parts = self.inner.partitions.read().clone();
        parts.get(index as usize).cloned().ok_or_else(|| Error::PartitionNotFound {
            topic: self.inner.name.clone(),
            partition: index,
            count: parts.len() as u32,
        })
    }

    /// All partitions, in order.
    pub fn partitions(&self) -> Vec<Partition> {
        self.inner.partitions.read().to_vec()
    }

    /// The partition a keyed record goes to (Kafka's default partitioner).
    pub fn partition_for_key(&self, key: &[u8]) -> u32 {
        partition_for_key(key, self.partition_count())
    }

    fn choose(&self, record: &Record<'_>, count: u32) -> u32 {
        match &record.key {
            Some(k) => partition_for_key(k, count),
            None => {
                let size = record.value.as_ref().map_or(0, |v| v.len()) + 64;
                let mut s = self.inner.sticky.lock();
                if s.bytes >= STICKY_BATCH_BYTES || s.partition >= count {
                    s.partition = (s.partition + 1) % count.max(1);
                    s.bytes = 0;
                }
                s.bytes += size;
                s.partition
            }
        }
    }

    /// Appends a record, routing it by key (or the sticky partitioner for unkeyed records).
    ///
    /// # Errors
    /// As [`Partition::append`]; [`Error::TopicNotFound`] after deletion.
    pub fn append(&self, record: Record<'_>) -> Result<RecordMetadata> {
        self.check()?;
        let parts = self.inner.partitions.read().clone();
        let p = self.choose(&record, parts.len() as u32);
        let part = parts.get(p as usize).ok_or(Error::PartitionNotFound {
            topic: self.inner.name.clone(),
            partition: p,
            count: parts.len() as u32,
        })?;
        let at = part.append(record)?;
        Ok(RecordMetadata { partition: p, ..at })
    }

    /// Appends to an explicit partition.
    ///
    /// # Errors
    /// [`Error::PartitionNotFound`], and as [`Partition::append`].
    pub fn append_to(&self, partition: u32, record: Record<'_>) -> Result<RecordMetadata> {
        let at = self.partition(partition)?.append(record)?;
        Ok(RecordMetadata { partition, ..at })
    }

    /// Appends records to an explicit partition as one atomic batch.
    ///
    /// # Errors
    /// [`Error::PartitionNotFound`], and as [`Partition::append_batch`].
    pub fn append_batch_to(&self, partition: u32, records: &[Record<'_>]) -> Result<AppendInfo> {
        let info = self.partition(partition)?.append_batch(records)?;
        Ok(AppendInfo { partition, ..info })
    }

    /// Appends many records: they are grouped by partition and each group is written as one
    /// atomic batch (atomic per partition, not across partitions). Returns where each record
    /// landed, in input order.
    ///
    /// # Errors
    /// As [`Partition::append_batch`] (an empty slice is [`Error::EmptyBatch`]). Groups
    /// written before a failing one stay written.
    pub fn append_batch(&self, records: &[Record<'_>]) -> Result<Vec<RecordMetadata>> {
        self.check()?;
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let parts = self.inner.partitions.read().clone();
        let count = parts.len() as u32;
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); parts.len()];
        for (i, r) in records.iter().enumerate() {
            let p = self.choose(r, count) as usize;
            if let Some(g) = groups.get_mut(p) {
                g.push(i);
            }
        }
        let mut out = vec![RecordMetadata { partition: 0, offset: 0, timestamp: 0 }; records.len()];
        let mut batch: Vec<Record<'_>> = Vec::new();
        for (p, idxs) in groups.iter().enumerate() {
            if idxs.is_empty() {
                continue;
            }
            batch.clear();
            batch.extend(idxs.iter().filter_map(|&i| records.get(i).cloned()));
            let Some(part) = parts.get(p) else { continue };
            let info = part.append_batch(&batch)?;
            for (k, &i) in idxs.iter().enumerate() {
                if let Some(slot) = out.get_mut(i) {
                    *slot = RecordMetadata {
                        partition: p as u32,
                        offset: info.base_offset + k as u64,
                        timestamp: info.max_timestamp,
                    };
                }
            }
        }
        Ok(out)
    }

    /// Runs retention on every partition now (see [`Partition::run_retention`]).
    ///
    /// # Errors
    /// The first partition's error.
    pub fn run_retention(&self) -> Result<Vec<crate::RetentionReport>> {
        self.partitions().iter().map(Partition::run_retention).collect()
    }

    /// Runs one compaction pass on every partition now (see [`Partition::compact`]).
    ///
    /// # Errors
    /// The first partition's error.
    pub fn compact(&self) -> Result<Vec<crate::CompactionReport>> {
        self.partitions().iter().map(Partition::compact).collect()
    }

    /// Syncs every partition (see [`Partition::sync`]).
    ///
    /// # Errors
    /// The first partition's error.
    pub fn sync(&self) -> Result<()> {
        for p in self.partitions() {
            p.sync()?;
        }
        Ok(())
    }

    /// Describes the topic's partitions.
    pub fn describe(&self) -> TopicDescription {
        let partitions = self
            .partitions()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let segments = p.segments();
                PartitionDescription {
                    partition: i as u32,
                    log_start_offset: p.log_start_offset(),
                    log_end_offset: p.log_end_offset(),
                    size_bytes: segments.iter().map(|s| s.size).sum(),
                    segments,
                }
            })
            .collect();
        let config = self.config();
        let config_entries = config.entries(&self.inner.defaults);
        TopicDescription { name: self.inner.name.clone(), config, config_entries, partitions }
    }
}
