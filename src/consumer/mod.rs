//! Consumers, consumer groups and committed offsets — Kafka's consuming model, in-process.
//!
//! A [`Consumer`] subscribes to topics as a member of a group (`group.id`), or is assigned
//! partitions by hand, and [`poll`](Consumer::poll)s records across them: fairly (each poll
//! starts at the next partition), bounded by `max.poll.records` and byte budgets. Caught up,
//! `poll` waits until an append lands or the timeout passes, woken by the append itself.
//!
//! Members of one group split the partitions of their subscriptions (range, round-robin or
//! cooperative-sticky assignment); when members join, leave or stop polling within
//! `max.poll.interval.ms`, partitions move. A member is told which partitions it is losing
//! ([`ConsumerRecords::revoked`]) and keeps them until its next poll, so it can commit first;
//! only then does the new owner get them, resuming from the committed offsets.
//!
//! Committed offsets live in the internal compacted topic `__consumer_offsets`, fsynced by
//! default (a commit survives power loss once [`commit`](Consumer::commit) returns).
//!
//! Delivery semantics are the application's choice:
//! - **at least once** (the default): records are processed, then committed — with
//!   `enable.auto.commit=true` each poll commits what earlier polls returned, or call
//!   [`commit`](Consumer::commit) after processing;
//! - **at most once**: [`commit`](Consumer::commit) right after `poll`, before processing;
//! - **exactly once** needs the application's own idempotence (e.g. store the offset with the
//!   result, and [`seek`](Consumer::seek) to it at start).
//!
//! ```
//! use partlog::{ConsumerConfig, LogDir, Record, TopicConfig};
//! use std::time::Duration;
//! # let tmp = tempfile::tempdir()?;
//! let dir = LogDir::open(tmp.path().join("data"))?;
//! let orders = dir.create_topic("orders", TopicConfig::default().partitions(2))?;
//! for i in 0..10 {
//!     orders.append(Record::new().key(format!("customer-{i}")).value("order"))?;
//! }
//! let mut consumer = dir.consumer(
//!     ConsumerConfig::new().group_id("billing").set("auto.offset.reset", "earliest")?,
//! )?;
//! consumer.subscribe(&["orders"])?;
//! let mut seen = 0;
//! while seen < 10 {
//!     let records = consumer.poll(Duration::from_secs(1))?;
//!     for r in records.iter() {
//!         assert_eq!(r.topic(), "orders");
//!         seen += 1;
//!     }
//!     consumer.commit()?; // after processing: at least once
//! }
//! consumer.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod assignor;
pub(crate) mod group;
pub(crate) mod store;
#[cfg(feature = "async")]
mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use assignor::AssignmentStrategy;
pub use group::{GroupDescription, GroupPartition, MemberDescription, OffsetSpec};
pub use store::{OFFSETS_TOPIC, OffsetAndMetadata};
#[cfg(feature = "async")]
pub use stream::{ConsumerStream, OwnedConsumerRecord};

use crate::error::{Error, Result};
use crate::logdir::LogDir;
use crate::partition::{Doorbell, Partition, Records};
use crate::record::RecordRef;

/// A topic and a partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Where a consumer starts when it has no committed offset, or when its position fell out of
/// the log (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start.
    Earliest,
    /// The log end: only records appended from now on (Kafka's default).
    #[default]
    Latest,
    /// Fail with [`Error::NoOffsetForPartition`] (no committed offset) or
    /// [`Error::OffsetOutOfRange`] (position outside the log).
    None,
}

/// Default `max.poll.records`.
pub const DEFAULT_MAX_POLL_RECORDS: usize = 500;
/// Default `max.poll.interval.ms`: 5 minutes.
pub const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;
/// Default `auto.commit.interval.ms`.
pub const DEFAULT_AUTO_COMMIT_INTERVAL_MS: u64 = 5_000;
/// Default `fetch.max.bytes`: 50 MiB.
pub const DEFAULT_FETCH_MAX_BYTES: usize = 52_428_800;
/// Default `max.partition.fetch.bytes`: 1 MiB.
pub const DEFAULT_MAX_PARTITION_FETCH_BYTES: usize = 1_048_576;

/// A consumer's configuration, with Kafka's keys and defaults.
///
/// ```
/// use partlog::{ConsumerConfig, OffsetReset};
/// let c = ConsumerConfig::new()
///     .group_id("billing")
///     .set("auto.offset.reset", "earliest")?
///     .set("max.poll.records", "100")?;
/// assert_eq!(c.get_auto_offset_reset(), OffsetReset::Earliest);
/// assert!(ConsumerConfig::new().set("max.poll.records", "0").is_err());
/// # Ok::<(), partlog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub(crate) group_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) auto_offset_reset: OffsetReset,
    pub(crate) enable_auto_commit: bool,
    pub(crate) auto_commit_interval_ms: u64,
    pub(crate) max_poll_records: usize,
    pub(crate) max_poll_interval_ms: u64,
    pub(crate) fetch_max_bytes: usize,
    pub(crate) max_partition_fetch_bytes: usize,
    pub(crate) strategy: AssignmentStrategy,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            client_id: "consumer".into(),
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval_ms: DEFAULT_AUTO_COMMIT_INTERVAL_MS,
            max_poll_records: DEFAULT_MAX_POLL_RECORDS,
            max_poll_interval_ms: DEFAULT_MAX_POLL_INTERVAL_MS,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            max_partition_fetch_bytes: DEFAULT_MAX_PARTITION_FETCH_BYTES,
            strategy: AssignmentStrategy::default(),
        }
    }
}

/// The consumer keys [`ConsumerConfig::set`] accepts. Keys that only matter for a networked
/// client (`session.timeout.ms`, `heartbeat.interval.ms`, `fetch.min.bytes`,
/// `fetch.max.wait.ms`, `isolation.level`, `bootstrap.servers`, deserializers …) are accepted
/// and have no effect.
pub const CONSUMER_KEYS: &[&str] = &[
    "group.id",
    "client.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "max.poll.records",
    "max.poll.interval.ms",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "partition.assignment.strategy",
];

const NO_EFFECT_KEYS: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "fetch.min.bytes",
    "fetch.max.wait.ms",
    "isolation.level",
    "bootstrap.servers",
    "key.deserializer",
    "value.deserializer",
    "request.timeout.ms",
    "default.api.timeout.ms",
    "check.crcs",
    "allow.auto.create.topics",
    "client.rack",
    "group.protocol",
];

fn positive(key: &str, value: &str) -> Result<u64> {
    match value.trim().parse::<u64>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(Error::config(key, value, "expected a whole number above 0")),
    }
}

impl ConsumerConfig {
    /// Kafka's defaults, no group.
    pub fn new() -> Self {
        ConsumerConfig::default()
    }

    /// Sets `group.id`: consumers with the same group id split partitions and share committed
    /// offsets.
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// Sets `client.id` (the prefix of member ids).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, r: OffsetReset) -> Self {
        self.auto_offset_reset = r;
        self
    }

    /// Sets `enable.auto.commit` (default true: each poll commits what earlier polls
    /// returned, at most every `auto.commit.interval.ms`, and close commits the rest).
    pub fn enable_auto_commit(mut self, on: bool) -> Self {
        self.enable_auto_commit = on;
        self
    }

    /// Sets `max.poll.records` (≥ 1).
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n.max(1);
        self
    }

    /// Sets `max.poll.interval.ms`: a member that does not call `poll` for this long leaves
    /// its group and its partitions move.
    pub fn max_poll_interval_ms(mut self, ms: u64) -> Self {
        self.max_poll_interval_ms = ms.max(1);
        self
    }

    /// Sets `partition.assignment.strategy`.
    pub fn assignment_strategy(mut self, s: AssignmentStrategy) -> Self {
        self.strategy = s;
        self
    }

    /// The group id.
    pub fn get_group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }
    /// `auto.offset.reset`.
    pub fn get_auto_offset_reset(&self) -> OffsetReset {
        self.auto_offset_reset
    }
    /// `enable.auto.commit`.
    pub fn get_enable_auto_commit(&self) -> bool {
        self.enable_auto_commit
    }
    /// `max.poll.records`.
    pub fn get_max_poll_records(&self) -> usize {
        self.max_poll_records
    }
    /// `max.poll.interval.ms`.
    pub fn get_max_poll_interval_ms(&self) -> u64 {
        self.max_poll_interval_ms
    }
    /// `partition.assignment.strategy`.
    pub fn get_assignment_strategy(&self) -> AssignmentStrategy {
        self.strategy
    }

    /// Sets one key by Kafka's name.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        let v = value.trim();
        match key {
            "group.id" => self.group_id = (!v.is_empty()).then(|| v.to_owned()),
            "client.id" => self.client_id = v.to_owned(),
            "auto.offset.reset" => {
                self.auto_offset_reset = match v {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => return Err(Error::config(key, value, "expected `earliest`, `latest` or `none`")),
                }
            }
            "enable.auto.commit" => {
                self.enable_auto_commit = match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Error::config(key, value, "expected `true` or `false`")),
                }
            }
            "auto.commit.interval.ms" => self.auto_commit_interval_ms = positive(key, v)?,
            "max.poll.records" => self.max_poll_records = usize::try_from(positive(key, v)?).unwrap_or(usize::MAX),
            "max.poll.interval.ms" => self.max_poll_interval_ms = positive(key, v)?,
            "fetch.max.bytes" => self.fetch_max_bytes = usize::try_from(positive(key, v)?).unwrap_or(usize::MAX),
            "max.partition.fetch.bytes" => {
                self.max_partition_fetch_bytes = usize::try_from(positive(key, v)?).unwrap_or(usize::MAX)
            }
            "partition.assignment.strategy" => {
                // Kafka takes a list; the first one partlog knows wins.
                self.strategy = v.split(',').find_map(AssignmentStrategy::parse).ok_or_else(|| {
                    Error::config(key, value, "expected `range`, `roundrobin` or `cooperative-sticky`")
                })?;
            }
            k if NO_EFFECT_KEYS.contains(&k) => {}
            _ => {
                return Err(Error::config(
                    key,
                    value,
                    format!("not a consumer configuration key; known keys: {}", CONSUMER_KEYS.join(", ")),
                ));
            }
        }
        Ok(self)
    }
}

/// A change of what a consumer owns, reported by [`ConsumerRecords::revoked`] and
/// [`ConsumerRecords::assigned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// These partitions move to other members: the consumer keeps them until its next poll
    /// (no more records are fetched from them) so it can commit what it processed.
    Revoked(Vec<TopicPartition>),
    /// The consumer lost these partitions without being able to commit (it was expelled for
    /// not polling within `max.poll.interval.ms`).
    Lost(Vec<TopicPartition>),
    /// These partitions are now the consumer's.
    Assigned(Vec<TopicPartition>),
}

#[derive(Debug)]
struct Owned {
    partition: Partition,
    /// The next offset to return; resolved from the committed offset or the reset policy.
    position: Option<u64>,
    /// Offset after the last record handed out (what a commit records).
    consumed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    None,
    Subscribed { member: String, topics: BTreeSet<String> },
    Assigned,
}

/// Records fetched from one partition: topic, partition, the batches.
type Fetched = (Arc<str>, u32, Records);

/// Records returned by one [`Consumer::poll`], across partitions, borrowing their bytes.
#[derive(Debug, Default)]
pub struct ConsumerRecords {
    parts: Vec<Fetched>,
    count: usize,
    events: Vec<RebalanceEvent>,
}

/// One record of a [`ConsumerRecords`].
#[derive(Debug, Clone, Copy)]
pub struct ConsumerRecord<'a> {
    topic: &'a str,
    partition: u32,
    record: RecordRef<'a>,
}

impl<'a> ConsumerRecord<'a> {
    /// The topic.
    pub fn topic(&self) -> &'a str {
        self.topic
    }
    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }
    /// The offset.
    pub fn offset(&self) -> u64 {
        self.record.offset()
    }
    /// The timestamp (ms since the Unix epoch).
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp()
    }
    /// The key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.record.key()
    }
    /// The value (`None`: a tombstone).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.record.value()
    }
    /// The record itself (headers and all).
    pub fn record(&self) -> RecordRef<'a> {
        self.record
    }
}

impl ConsumerRecords {
    /// Records returned.
    pub fn count(&self) -> usize {
        self.count
    }
    /// True when no record was returned.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The records, partition by partition, each partition's in offset order.
    pub fn iter(&self) -> impl Iterator<Item = ConsumerRecord<'_>> + '_ {
        self.parts
            .iter()
            .flat_map(|(t, p, recs)| recs.iter().map(move |record| ConsumerRecord { topic: t, partition: *p, record }))
    }
    /// Partitions the records came from.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.parts.iter().map(|(t, p, _)| TopicPartition::new(t.as_ref(), *p)).collect()
    }
    /// Assignment changes this poll reported.
    pub fn events(&self) -> &[RebalanceEvent] {
        &self.events
    }
    /// Partitions this consumer is losing: commit their offsets before the next poll.
    pub fn revoked(&self) -> Vec<TopicPartition> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RebalanceEvent::Revoked(v) | RebalanceEvent::Lost(v) => Some(v.clone()),
                RebalanceEvent::Assigned(_) => None,
            })
            .flatten()
            .collect()
    }
    /// Partitions this consumer gained.
    pub fn assigned(&self) -> Vec<TopicPartition> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RebalanceEvent::Assigned(v) => Some(v.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// A consumer of a log directory's topics. Not shared between threads (it is `Send`): give
/// each thread its own, in the same group to split the work.
#[derive(Debug)]
pub struct Consumer {
    dir: LogDir,
    config: ConsumerConfig,
    bell: Arc<Doorbell>,
    mode: Mode,
    owned: BTreeMap<TopicPartition, Owned>,
    /// Announced as revoked; let go of at the next poll.
    revoking: BTreeSet<TopicPartition>,
    generation: u32,
    next_start: usize,
    last_auto_commit: Instant,
    closed: bool,
}

impl Consumer {
    pub(crate) fn new(dir: LogDir, config: ConsumerConfig) -> Consumer {
        Consumer {
            dir,
            config,
            bell: Doorbell::new(),
            mode: Mode::None,
            owned: BTreeMap::new(),
            revoking: BTreeSet::new(),
            generation: 0,
            next_start: 0,
            last_auto_commit: Instant::now(),
            closed: false,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn group(&self) -> Result<&str> {
        self.config.group_id.as_deref().ok_or_else(|| Error::config("group.id", "", "this needs a group.id"))
    }

    /// Joins the consumer's group subscribed to `topics` (replacing an earlier subscription or
    /// manual assignment); partitions are assigned at the next poll.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without a `group.id`; [`Error::TopicNotFound`].
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.check_open()?;
        let group = self.group()?.to_owned();
        for t in topics {
            self.dir.topic(t)?;
        }
        self.unsubscribe()?;
        let topics: BTreeSet<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let member = self.dir.coordinator().join(&self.dir, &group, self.join_request(topics.clone()))?;
        self.mode = Mode::Subscribed { member, topics };
        Ok(())
    }

    /// Consumes exactly these partitions, outside any group's assignment (replacing a
    /// subscription). Positions come from the group's committed offsets when there is a
    /// `group.id`, else from `auto.offset.reset`.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`], [`Error::PartitionNotFound`].
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.unsubscribe()?;
        for tp in partitions {
            let p = self.dir.topic(&tp.topic)?.partition(tp.partition)?;
            p.register_doorbell(&self.bell);
            self.owned.insert(tp.clone(), Owned { partition: p, position: None, consumed: None });
        }
        self.mode = Mode::Assigned;
        Ok(())
    }

    /// Leaves the group (or drops the manual assignment), committing first under auto-commit.
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn unsubscribe(&mut self) -> Result<()> {
        if self.config.enable_auto_commit {
            self.commit_consumed(None)?;
        }
        let owned = std::mem::take(&mut self.owned);
        for o in owned.values() {
            o.partition.unregister_doorbell(&self.bell);
        }
        self.revoking.clear();
        if let Mode::Subscribed { member, .. } = std::mem::replace(&mut self.mode, Mode::None)
            && let Some(g) = self.config.group_id.clone()
        {
            self.dir.coordinator().leave(&self.dir, &g, &member)?;
        }
        Ok(())
    }

    fn join_request(&self, topics: BTreeSet<String>) -> group::Join<'_> {
        group::Join {
            client_id: &self.config.client_id,
            topics,
            strategy: self.config.strategy,
            max_poll_interval_ms: self.config.max_poll_interval_ms,
            bell: &self.bell,
        }
    }

    /// The partitions this consumer owns now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.keys().cloned().collect()
    }

    /// The member id in the group, when subscribed.
    pub fn member_id(&self) -> Option<&str> {
        match &self.mode {
            Mode::Subscribed { member, .. } => Some(member),
            _ => None,
        }
    }

    fn member(&self) -> Option<String> {
        self.member_id().map(str::to_owned)
    }

    /// Brings the owned partitions in line with the group: lets go of what was announced as
    /// revoked, announces new revocations, takes newly assigned partitions.
    fn sync_group(&mut self, events: &mut Vec<RebalanceEvent>) -> Result<()> {
        let Mode::Subscribed { member, topics } = self.mode.clone() else { return Ok(()) };
        let group = self.group()?.to_owned();
        let dir = self.dir.clone();
        let coord = dir.coordinator();
        let view = coord.heartbeat(&dir, &group, &member, true)?;
        if view.expelled {
            // Expelled (it did not poll in time): whatever it owned is lost; rejoin.
            let lost: Vec<TopicPartition> = self.owned.keys().cloned().collect();
            for o in self.owned.values() {
                o.partition.unregister_doorbell(&self.bell);
            }
            self.owned.clear();
            self.revoking.clear();
            if !lost.is_empty() {
                events.push(RebalanceEvent::Lost(lost));
            }
            let id = coord.join(&dir, &group, self.join_request(topics.clone()))?;
            self.mode = Mode::Subscribed { member: id, topics };
            return Ok(());
        }
        // Let go of what the previous poll announced (the application had its chance to commit).
        if !self.revoking.is_empty() {
            if self.config.enable_auto_commit {
                let tps: Vec<TopicPartition> = self.revoking.iter().cloned().collect();
                self.commit_consumed(Some(&tps))?;
            }
            let gone = std::mem::take(&mut self.revoking);
            for tp in &gone {
                if let Some(o) = self.owned.remove(tp) {
                    o.partition.unregister_doorbell(&self.bell);
                }
            }
            coord.release(&group, &member, &gone);
        }
        let eager_round = !view.cooperative && view.generation != self.generation;
        self.generation = view.generation;
        // Announce what moves away (under eager assignors: everything, at each new generation).
        let leaving: Vec<TopicPartition> =
            self.owned.keys().filter(|tp| eager_round || !view.target.contains(*tp)).cloned().collect();
        if !leaving.is_empty() {
            self.revoking.extend(leaving.iter().cloned());
            events.push(RebalanceEvent::Revoked(leaving));
        }
        // Ownership the coordinator dropped (it should not happen otherwise).
        let stale: Vec<TopicPartition> = self.owned.keys().filter(|tp| !view.owned.contains(*tp)).cloned().collect();
        for tp in stale {
            if let Some(o) = self.owned.remove(&tp) {
                o.partition.unregister_doorbell(&self.bell);
            }
            self.revoking.remove(&tp);
        }
        if self.revoking.is_empty() {
            let got = coord.acquire(&group, &member);
            if !got.is_empty() {
                let mut list = Vec::with_capacity(got.len());
                for (tp, _epoch) in got {
                    let p = self.dir.topic(&tp.topic)?.partition(tp.partition)?;
                    p.register_doorbell(&self.bell);
                    self.owned.insert(tp.clone(), Owned { partition: p, position: None, consumed: None });
                    list.push(tp);
                }
                events.push(RebalanceEvent::Assigned(list));
            }
        }
        Ok(())
    }

    /// Resolves a partition's position: the committed offset, or the reset policy.
    fn resolve(&self, tp: &TopicPartition, o: &Owned) -> Result<u64> {
        let (start, end) = (o.partition.log_start_offset(), o.partition.log_end_offset());
        let committed = match &self.config.group_id {
            Some(g) => self.dir.coordinator().committed(&self.dir, g, tp)?.map(|c| c.offset),
            None => None,
        };
        match committed {
            Some(c) if c >= start && c <= end => Ok(c),
            Some(c) => self.reset_position(o, Some(c)),
            None => match self.config.auto_offset_reset {
                OffsetReset::Earliest => Ok(start),
                OffsetReset::Latest => Ok(end),
                OffsetReset::None => {
                    Err(Error::NoOffsetForPartition { topic: tp.topic.clone(), partition: tp.partition })
                }
            },
        }
    }

    /// Where a position outside the log goes under `auto.offset.reset`.
    fn reset_position(&self, o: &Owned, position: Option<u64>) -> Result<u64> {
        let (start, end) = (o.partition.log_start_offset(), o.partition.log_end_offset());
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => Ok(start),
            OffsetReset::Latest => Ok(end),
            OffsetReset::None => Err(Error::OffsetOutOfRange { requested: position.unwrap_or(0), start, end }),
        }
    }

    /// Fetches one round across the owned partitions, starting at the next one in turn.
    fn fetch(&mut self) -> Result<(Vec<Fetched>, usize)> {
        let keys: Vec<TopicPartition> = self.owned.keys().filter(|tp| !self.revoking.contains(*tp)).cloned().collect();
        if keys.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let n = keys.len();
        let start = self.next_start % n;
        self.next_start = self.next_start.wrapping_add(1);
        let mut out = Vec::new();
        let mut records_left = self.config.max_poll_records;
        let mut bytes_left = self.config.fetch_max_bytes;
        for i in 0..n {
            if records_left == 0 || bytes_left == 0 {
                break;
            }
            let tp = &keys[(start + i) % n];
            let position = match self.owned.get(tp).and_then(|o| o.position) {
                Some(p) => p,
                None => {
                    let Some(o) = self.owned.get(tp) else { continue };
                    let p = self.resolve(tp, o)?;
                    if let Some(o) = self.owned.get_mut(tp) {
                        o.position = Some(p);
                    }
                    p
                }
            };
            let Some(o) = self.owned.get(tp) else { continue };
            let budget = self.config.max_partition_fetch_bytes.min(bytes_left);
            let mut recs = match o.partition.read(position, budget) {
                Ok(r) => r,
                Err(Error::OffsetOutOfRange { .. }) => {
                    // Retention moved the log start past the position (or a truncation the end
                    // below it): auto.offset.reset decides.
                    let p = self.reset_position(o, Some(position))?;
                    if let Some(o) = self.owned.get_mut(tp) {
                        o.position = Some(p);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let kept = recs.limit(records_left);
            let next = recs.next_fetch_offset();
            if let Some(o) = self.owned.get_mut(tp) {
                o.position = Some(next);
                if kept > 0 {
                    o.consumed = Some(next);
                }
            }
            if kept == 0 {
                continue;
            }
            records_left -= kept;
            bytes_left = bytes_left.saturating_sub(recs.size_bytes());
            out.push((Arc::from(tp.topic.as_str()), tp.partition, recs));
        }
        Ok((out, self.config.max_poll_records - records_left))
    }

    /// Returns records from the owned partitions, waiting up to `timeout` for new ones when
    /// caught up (woken by the appends themselves). Also keeps the group membership: reports
    /// partitions revoked and assigned, and commits under auto-commit.
    ///
    /// # Errors
    /// [`Error::NoOffsetForPartition`] / [`Error::OffsetOutOfRange`] under
    /// `auto.offset.reset=none`; [`Error::Closed`]; read and commit errors.
    pub fn poll(&mut self, timeout: Duration) -> Result<ConsumerRecords> {
        self.poll_inner(Some(timeout), false)
    }

    /// One poll without waiting and without touching the doorbell: for the stream, which arms
    /// the doorbell itself. The member stays "in poll" for the group's liveness check.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn poll_ready(&mut self) -> Result<ConsumerRecords> {
        self.poll_inner(None, true)
    }

    fn poll_inner(&mut self, timeout: Option<Duration>, stay_in_poll: bool) -> Result<ConsumerRecords> {
        self.check_open()?;
        let deadline = Instant::now() + timeout.unwrap_or(Duration::ZERO);
        let mut events = Vec::new();
        if self.config.enable_auto_commit
            && self.last_auto_commit.elapsed() >= Duration::from_millis(self.config.auto_commit_interval_ms)
        {
            self.commit_consumed(None)?;
            self.last_auto_commit = Instant::now();
        }
        let result = (|| -> Result<ConsumerRecords> {
            loop {
                self.sync_group(&mut events)?;
                let (parts, count) = self.fetch()?;
                if !parts.is_empty() || !events.is_empty() || timeout.is_none() {
                    return Ok(ConsumerRecords { parts, count, events: std::mem::take(&mut events) });
                }
                // Caught up: arm, look once more, then wait for an append or a group change.
                self.bell.arm();
                let (parts, count) = self.fetch()?;
                if !parts.is_empty() {
                    self.bell.disarm();
                    return Ok(ConsumerRecords { parts, count, events: std::mem::take(&mut events) });
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.bell.disarm();
                    return Ok(ConsumerRecords::default());
                }
                // Wake up now and then to keep the group's liveness checks going.
                self.bell.wait(left.min(Duration::from_millis(500)));
            }
        })();
        if let (Mode::Subscribed { member, .. }, Some(g)) = (&self.mode, &self.config.group_id) {
            let _ = self.dir.coordinator().heartbeat(&self.dir, g, member, stay_in_poll);
        }
        result
    }

    /// Commits the consumed position of every owned partition (or of `only`).
    fn commit_consumed(&mut self, only: Option<&[TopicPartition]>) -> Result<()> {
        let Some(group) = self.config.group_id.clone() else { return Ok(()) };
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = self
            .owned
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .filter_map(|(tp, o)| o.consumed.map(|c| (tp.clone(), OffsetAndMetadata::new(c))))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        self.dir.coordinator().commit(&self.dir, &group, self.member().as_deref(), &offsets)?;
        for (tp, _) in &offsets {
            if let Some(o) = self.owned.get_mut(tp) {
                o.consumed = None;
            }
        }
        Ok(())
    }

    /// Commits, durably, the position after the last record every owned partition returned.
    ///
    /// # Errors
    /// [`Error::CommitRejected`] when a partition moved to another member;
    /// [`Error::InvalidConfig`] without a `group.id`; I/O errors.
    pub fn commit(&mut self) -> Result<()> {
        self.check_open()?;
        self.group()?;
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = self
            .owned
            .iter()
            .filter_map(|(tp, o)| o.position.map(|p| (tp.clone(), OffsetAndMetadata::new(p))))
            .collect();
        self.commit_offsets(&offsets)
    }

    /// Commits these offsets (the next offset to consume, with metadata) as one atomic batch.
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<()> {
        self.check_open()?;
        let group = self.group()?.to_owned();
        self.dir.coordinator().commit(&self.dir, &group, self.member().as_deref(), offsets)?;
        for (tp, om) in offsets {
            if let Some(o) = self.owned.get_mut(tp)
                && o.consumed.is_some_and(|c| c <= om.offset)
            {
                o.consumed = None;
            }
        }
        Ok(())
    }

    /// The group's committed offset of `tp`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without a `group.id`; I/O errors.
    pub fn committed(&self, tp: &TopicPartition) -> Result<Option<OffsetAndMetadata>> {
        let group = self.group()?;
        self.dir.coordinator().committed(&self.dir, group, tp)
    }

    fn owned_mut(&mut self, tp: &TopicPartition) -> Result<&mut Owned> {
        self.owned.get_mut(tp).ok_or_else(|| Error::NotAssigned { topic: tp.topic.clone(), partition: tp.partition })
    }

    /// Moves the position of `tp` (owned by this consumer) to `offset`.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<()> {
        self.owned_mut(tp)?.position = Some(offset);
        Ok(())
    }

    /// Moves the positions of `tps` (all owned ones when empty) to their log start.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn seek_to_beginning(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in self.selected(tps) {
            let o = self.owned_mut(&tp)?;
            o.position = Some(o.partition.log_start_offset());
        }
        Ok(())
    }

    /// Moves the positions of `tps` (all owned ones when empty) to their log end.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn seek_to_end(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in self.selected(tps) {
            let o = self.owned_mut(&tp)?;
            o.position = Some(o.partition.log_end_offset());
        }
        Ok(())
    }

    /// Moves the position of `tps` (all owned ones when empty) to the first record with a
    /// timestamp at or after `timestamp`, or the log end when there is none.
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; read errors.
    pub fn seek_to_timestamp(&mut self, tps: &[TopicPartition], timestamp: i64) -> Result<()> {
        for tp in self.selected(tps) {
            let o = self.owned_mut(&tp)?;
            let at =
                o.partition.offset_for_timestamp(timestamp)?.map_or_else(|| o.partition.log_end_offset(), |t| t.offset);
            o.position = Some(at);
        }
        Ok(())
    }

    fn selected(&self, tps: &[TopicPartition]) -> Vec<TopicPartition> {
        if tps.is_empty() { self.owned.keys().cloned().collect() } else { tps.to_vec() }
    }

    /// The next offset `poll` returns for `tp`, resolving it (committed offset or reset
    /// policy) if it is not known yet.
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; as [`poll`](Self::poll).
    pub fn position(&mut self, tp: &TopicPartition) -> Result<u64> {
        if let Some(p) = self.owned.get(tp).and_then(|o| o.position) {
            return Ok(p);
        }
        let o = self
            .owned
            .get(tp)
            .ok_or_else(|| Error::NotAssigned { topic: tp.topic.clone(), partition: tp.partition })?;
        let p = self.resolve(tp, o)?;
        self.owned_mut(tp)?.position = Some(p);
        Ok(p)
    }

    /// `log end − position` of `tp`.
    ///
    /// # Errors
    /// As [`position`](Self::position).
    pub fn lag(&mut self, tp: &TopicPartition) -> Result<u64> {
        let p = self.position(tp)?;
        Ok(self.owned_mut(tp)?.partition.log_end_offset().saturating_sub(p))
    }

    /// Commits under auto-commit, leaves the group (its partitions move to the other members
    /// at once) and stops the consumer. Dropping a consumer does the same, ignoring errors.
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.unsubscribe();
        self.closed = true;
        r
    }

    /// The doorbell rung by appends to the owned partitions (and by group changes).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn doorbell(&self) -> &Arc<Doorbell> {
        &self.bell
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
