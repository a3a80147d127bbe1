//! Topic and partition configuration, with Kafka's key names and defaults.
//!
//! Every setting is a typed builder setter and a `key=value` string ([`TopicConfig::set`]).
//! Unknown keys and out-of-range values are [`Error::InvalidConfig`] naming the key.
//!
//! A `TopicConfig` remembers which keys were set on it (by a setter or [`TopicConfig::set`]):
//! those are its *overrides*. A topic created in a [`LogDir`](crate::LogDir) inherits every
//! other key from the directory's defaults, and those from Kafka's defaults, as a Kafka topic
//! inherits broker defaults. Typed setters use `None` for "unlimited"; Kafka's `-1` and
//! `Long.MAX_VALUE` appear only in the string form.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::error::{Error, Result};

/// Default `segment.bytes`: 1 GiB.
pub const DEFAULT_SEGMENT_BYTES: u32 = 1 << 30;
/// Default `segment.ms`: 7 days.
pub const DEFAULT_SEGMENT_MS: u64 = 7 * 24 * 3600 * 1000;
/// Default `segment.index.bytes`: 10 MiB.
pub const DEFAULT_SEGMENT_INDEX_BYTES: u32 = 10 * 1024 * 1024;
/// Default `index.interval.bytes`: 4096.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;
/// Default `retention.ms`: 7 days.
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;
/// Default `max.message.bytes`: 1 MiB + 12, as Kafka.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1_048_588;
/// Default `delete.retention.ms`: 24 hours.
pub const DEFAULT_DELETE_RETENTION_MS: u64 = 24 * 3600 * 1000;
/// Default `min.cleanable.dirty.ratio`: 0.5.
pub const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;
/// Default `file.delete.delay.ms`: 60 s (accepted; see [`KEYS`] for its meaning here).
pub const DEFAULT_FILE_DELETE_DELAY_MS: u64 = 60_000;
/// Smallest accepted `segment.bytes`: 14, Kafka's minimum, so any Kafka topic configuration
/// can be applied. A segment smaller than one batch (a batch header alone is 68 bytes, see
/// [`format`](crate::format)) makes every append fail with [`Error::RecordTooLarge`], as Kafka
/// refuses a batch larger than `segment.bytes`.
pub const MIN_SEGMENT_BYTES: u32 = 14;

/// Which timestamp a record carries (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// The producer's timestamp (or the append time when the record has none).
    #[default]
    CreateTime,
    /// The time of the append, overwriting the producer's.
    LogAppendTime,
}

/// `cleanup.policy`: `delete`, `compact` or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Time and size retention delete old segments.
    pub delete: bool,
    /// Compaction keeps the latest value per key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// `cleanup.policy=delete` (the default): retention by time and size.
    pub const DELETE: CleanupPolicy = CleanupPolicy { delete: true, compact: false };
    /// `cleanup.policy=compact`: keep the latest record per key.
    pub const COMPACT: CleanupPolicy = CleanupPolicy { delete: false, compact: true };
    /// `cleanup.policy=compact,delete`: compaction and retention.
    pub const COMPACT_DELETE: CleanupPolicy = CleanupPolicy { delete: true, compact: true };
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy::DELETE
    }
}

/// When appended data is forced to disk. Maps to Kafka's `flush.messages` / `flush.ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Leave write-back to the operating system (Kafka's default). An acknowledged append
    /// survives a crash of the process, not a power loss or kernel crash until the next fsync
    /// (at segment roll, [`Partition::sync`](crate::Partition::sync) or close).
    Os,
    /// fsync before `append` returns (`flush.messages=1`). Concurrent appenders share one fsync
    /// (group commit). An acknowledged append survives power loss.
    EveryAppend,
    /// fsync once `messages` records are unsynced or `interval` has passed since the last fsync,
    /// whichever comes first (`flush.messages` / `flush.ms`). Up to that much acknowledged data
    /// may be lost on power loss.
    Periodic {
        /// Records between fsyncs (`flush.messages`); `None` for no count limit.
        messages: Option<u64>,
        /// Time between fsyncs (`flush.ms`); `None` for no time limit.
        interval: Option<Duration>,
    },
}

/// What a key does in partlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEffect {
    /// The key takes effect, with Kafka's meaning.
    Applied,
    /// Accepted and stored; it has no effect in partlog (a replicated-cluster or broker
    /// setting, or one partlog meets another way). The text says why.
    NoEffect(&'static str),
}

/// One Kafka topic-level configuration key as partlog understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// The Kafka key, e.g. `retention.ms`.
    pub key: &'static str,
    /// Whether it takes effect.
    pub effect: KeyEffect,
}

const CLUSTER: KeyEffect = KeyEffect::NoEffect("a replicated-cluster setting: partlog has one copy on one machine");
const TIERED: KeyEffect = KeyEffect::NoEffect("tiered storage is a broker feature: all of partlog's data is local");
const FORMAT: KeyEffect = KeyEffect::NoEffect("partlog has one record format, so there is nothing to convert");

/// Every topic-level key Kafka has, and what it does in partlog. [`TopicConfig::set`] accepts
/// each of them (values are checked as Kafka checks them); nothing else.
pub const KEYS: &[KeyInfo] = &[
    KeyInfo { key: "cleanup.policy", effect: KeyEffect::Applied },
    KeyInfo { key: "compression.type", effect: KeyEffect::Applied },
    KeyInfo {
        key: "compression.gzip.level",
        effect: KeyEffect::NoEffect("kept for when a gzip codec is built in; partlog writes uncompressed batches"),
    },
    KeyInfo {
        key: "compression.lz4.level",
        effect: KeyEffect::NoEffect("kept for when an lz4 codec is built in; partlog writes uncompressed batches"),
    },
    KeyInfo {
        key: "compression.zstd.level",
        effect: KeyEffect::NoEffect("kept for when a zstd codec is built in; partlog writes uncompressed batches"),
    },
    KeyInfo { key: "delete.retention.ms", effect: KeyEffect::Applied },
    KeyInfo {
        key: "file.delete.delay.ms",
        effect: KeyEffect::NoEffect(
            "partlog unlinks a deleted segment when its last reader lets go, so no delay is needed to protect reads",
        ),
    },
    KeyInfo { key: "flush.messages", effect: KeyEffect::Applied },
    KeyInfo { key: "flush.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "follower.replication.throttled.replicas", effect: CLUSTER },
    KeyInfo { key: "index.interval.bytes", effect: KeyEffect::Applied },
    KeyInfo { key: "leader.replication.throttled.replicas", effect: CLUSTER },
    KeyInfo { key: "local.retention.bytes", effect: TIERED },
    KeyInfo { key: "local.retention.ms", effect: TIERED },
    KeyInfo { key: "max.compaction.lag.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "max.message.bytes", effect: KeyEffect::Applied },
    KeyInfo { key: "message.downconversion.enable", effect: FORMAT },
    KeyInfo { key: "message.format.version", effect: FORMAT },
    KeyInfo { key: "message.timestamp.after.max.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "message.timestamp.before.max.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "message.timestamp.difference.max.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "message.timestamp.type", effect: KeyEffect::Applied },
    KeyInfo { key: "min.cleanable.dirty.ratio", effect: KeyEffect::Applied },
    KeyInfo { key: "min.compaction.lag.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "min.insync.replicas", effect: CLUSTER },
    KeyInfo { key: "preallocate", effect: KeyEffect::Applied },
    KeyInfo { key: "remote.log.copy.disable", effect: TIERED },
    KeyInfo { key: "remote.log.delete.on.disable", effect: TIERED },
    KeyInfo { key: "remote.storage.enable", effect: TIERED },
    KeyInfo { key: "retention.bytes", effect: KeyEffect::Applied },
    KeyInfo { key: "retention.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "segment.bytes", effect: KeyEffect::Applied },
    KeyInfo { key: "segment.index.bytes", effect: KeyEffect::Applied },
    KeyInfo { key: "segment.jitter.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "segment.ms", effect: KeyEffect::Applied },
    KeyInfo { key: "unclean.leader.election.enable", effect: CLUSTER },
];

/// The pseudo-key under which the partition count of a new topic is tracked (Kafka's broker
/// setting `num.partitions`).
pub(crate) const PARTITIONS_KEY: &str = "num.partitions";

fn static_key(key: &str) -> Option<&'static str> {
    if key == PARTITIONS_KEY {
        return Some(PARTITIONS_KEY);
    }
    KEYS.iter().find(|k| k.key == key).map(|k| k.key)
}

/// Where a value in force comes from (Kafka's `ConfigEntry.ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic itself.
    Topic,
    /// Inherited from the log directory's defaults
    /// ([`LogDirOptions::defaults`](crate::LogDirOptions::defaults)).
    Directory,
    /// Kafka's default.
    Default,
}

/// One key of a topic's configuration as [`describe`](crate::Topic::describe) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The Kafka key.
    pub key: &'static str,
    /// The value in force, in Kafka's string form.
    pub value: String,
    /// Where it comes from.
    pub source: ConfigSource,
    /// Whether it takes effect in partlog.
    pub effect: KeyEffect,
}

/// Configuration of a topic and of each of its partitions, with Kafka's names and defaults.
///
/// Build it with the typed setters or with [`set`](Self::set) and Kafka's keys; read it back
/// with the `get_*` methods or [`get`](Self::get). Keys set on a value are its overrides
/// ([`overrides`](Self::overrides)); a topic inherits the rest from its directory.
///
/// ```
/// use partlog::TopicConfig;
/// let c = TopicConfig::default()
///     .partitions(3)
///     .set("retention.ms", "3600000")?
///     .set("cleanup.policy", "compact,delete")?;
/// assert_eq!(c.get_retention_ms(), Some(3_600_000));
/// assert!(c.get_cleanup_policy().compact && c.get_cleanup_policy().delete);
/// assert_eq!(c.get("retention.ms").as_deref(), Some("3600000"));
/// assert!(c.is_set("retention.ms") && !c.is_set("segment.bytes"));
/// assert!(TopicConfig::default().set("no.such.key", "1").is_err());
/// // Settings of a replicated cluster are accepted (and kept), with no effect here.
/// let c = c.set("min.insync.replicas", "2")?;
/// assert_eq!(c.get("min.insync.replicas").as_deref(), Some("2"));
/// # Ok::<(), partlog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub(crate) partitions: u32,
    pub(crate) cleanup_policy: CleanupPolicy,
    pub(crate) retention_ms: Option<u64>,
    pub(crate) retention_bytes: Option<u64>,
    pub(crate) segment_bytes: u32,
    pub(crate) segment_ms: u64,
    pub(crate) segment_jitter_ms: u64,
    pub(crate) segment_index_bytes: u32,
    pub(crate) index_interval_bytes: u32,
    pub(crate) max_message_bytes: u32,
    pub(crate) timestamp_type: TimestampType,
    pub(crate) timestamp_before_max_ms: Option<u64>,
    pub(crate) timestamp_after_max_ms: Option<u64>,
    pub(crate) flush_messages: Option<u64>,
    pub(crate) flush_ms: Option<u64>,
    pub(crate) min_cleanable_dirty_ratio: f64,
    pub(crate) delete_retention_ms: u64,
    pub(crate) min_compaction_lag_ms: u64,
    pub(crate) max_compaction_lag_ms: Option<u64>,
    pub(crate) preallocate: bool,
    /// Keys kept as given, in Kafka's string form: those without an effect here, and
    /// `compression.type`.
    pub(crate) stored: BTreeMap<&'static str, String>,
    /// Keys set on this value (its overrides).
    pub(crate) explicit: BTreeSet<&'static str>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            cleanup_policy: CleanupPolicy::default(),
            retention_ms: Some(DEFAULT_RETENTION_MS),
            retention_bytes: None,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: DEFAULT_SEGMENT_MS,
            segment_jitter_ms: 0,
            segment_index_bytes: DEFAULT_SEGMENT_INDEX_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: None,
            timestamp_after_max_ms: None,
            flush_messages: None,
            flush_ms: None,
            min_cleanable_dirty_ratio: DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: None,
            preallocate: false,
            stored: default_stored(),
            explicit: BTreeSet::new(),
        }
    }
}

/// Kafka's defaults of the keys kept as strings.
fn default_stored() -> BTreeMap<&'static str, String> {
    [
        ("compression.type", "producer"),
        ("compression.gzip.level", "-1"),
        ("compression.lz4.level", "9"),
        ("compression.zstd.level", "3"),
        ("file.delete.delay.ms", "60000"),
        ("follower.replication.throttled.replicas", ""),
        ("leader.replication.throttled.replicas", ""),
        ("local.retention.bytes", "-2"),
        ("local.retention.ms", "-2"),
        ("message.downconversion.enable", "true"),
        ("message.format.version", "3.0-IV1"),
        ("min.insync.replicas", "1"),
        ("remote.log.copy.disable", "false"),
        ("remote.log.delete.on.disable", "false"),
        ("remote.storage.enable", "false"),
        ("unclean.leader.election.enable", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

fn parse_i64(key: &str, value: &str) -> Result<i64> {
    value.trim().parse::<i64>().map_err(|_| Error::config(key, value, "expected a whole number"))
}

/// A whole number ≥ `min`, as u64.
fn parse_at_least(key: &str, value: &str, min: i64) -> Result<u64> {
    let v = parse_i64(key, value)?;
    if v < min {
        return Err(Error::config(key, value, format!("must be at least {min}")));
    }
    Ok(v.max(0) as u64)
}

fn parse_u32_range(key: &str, value: &str, min: u32, max: u32) -> Result<u32> {
    let v = parse_i64(key, value)?;
    if v < i64::from(min) || v > i64::from(max) {
        return Err(Error::config(key, value, format!("must be between {min} and {max}")));
    }
    Ok(v as u32)
}

fn parse_i64_range(key: &str, value: &str, min: i64, max: i64) -> Result<i64> {
    let v = parse_i64(key, value)?;
    if v < min || v > max {
        return Err(Error::config(key, value, format!("must be between {min} and {max}")));
    }
    Ok(v)
}

/// −1 means unlimited, otherwise ≥ 0 (Kafka's convention for `retention.*`).
fn parse_minus_one_unlimited(key: &str, value: &str) -> Result<Option<u64>> {
    match parse_i64(key, value)? {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v as u64)),
        _ => Err(Error::config(key, value, "must be -1 (unlimited) or at least 0")),
    }
}

/// `Long.MAX_VALUE` means unlimited, otherwise ≥ `min` (Kafka's convention for `flush.*`,
/// `message.timestamp.*.max.ms`, `max.compaction.lag.ms`).
fn parse_max_unlimited(key: &str, value: &str, min: i64) -> Result<Option<u64>> {
    let v = parse_at_least(key, value, min)?;
    Ok(if v == i64::MAX as u64 { None } else { Some(v) })
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(Error::config(key, value, "expected `true` or `false`")),
    }
}

/// `*`, empty, or `partition:broker` pairs separated by commas.
fn check_replica_list(key: &str, value: &str) -> Result<()> {
    let v = value.trim();
    if v.is_empty() || v == "*" {
        return Ok(());
    }
    for pair in v.split(',') {
        let ok = pair
            .trim()
            .split_once(':')
            .is_some_and(|(p, b)| p.trim().parse::<u32>().is_ok() && b.trim().parse::<i32>().is_ok());
        if !ok {
            return Err(Error::config(key, value, "expected `*` or a list of `partition:broker` pairs"));
        }
    }
    Ok(())
}

fn unlimited_as_minus_one(v: Option<u64>) -> String {
    v.map_or_else(|| "-1".to_owned(), |v| v.to_string())
}

fn unlimited_as_long_max(v: Option<u64>) -> String {
    v.map_or_else(|| i64::MAX.to_string(), |v| v.to_string())
}

impl TopicConfig {
    /// Kafka's defaults with nothing set (the same as [`Default`]).
    pub fn new() -> Self {
        TopicConfig::default()
    }

    fn mark(mut self, key: &'static str) -> Self {
        self.explicit.insert(key);
        self
    }

    /// Sets the partition count of a new topic (≥ 1; Kafka's `num.partitions`).
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self.mark(PARTITIONS_KEY)
    }

    /// Sets `cleanup.policy`.
    pub fn cleanup_policy(mut self, p: CleanupPolicy) -> Self {
        self.cleanup_policy = p;
        self.mark("cleanup.policy")
    }

    /// Sets `retention.ms` (`None`: unlimited, Kafka's −1).
    pub fn retention_ms(mut self, ms: Option<u64>) -> Self {
        self.retention_ms = ms;
        self.mark("retention.ms")
    }

    /// Sets `retention.bytes` (`None`: unlimited, Kafka's −1).
    pub fn retention_bytes(mut self, bytes: Option<u64>) -> Self {
        self.retention_bytes = bytes;
        self.mark("retention.bytes")
    }

    /// Sets `segment.bytes` (default [`DEFAULT_SEGMENT_BYTES`], at least [`MIN_SEGMENT_BYTES`]).
    pub fn segment_bytes(mut self, bytes: u32) -> Self {
        self.segment_bytes = bytes;
        self.mark("segment.bytes")
    }

    /// Sets `segment.ms` (default [`DEFAULT_SEGMENT_MS`]).
    pub fn segment_ms(mut self, ms: u64) -> Self {
        self.segment_ms = ms;
        self.mark("segment.ms")
    }

    /// Sets `segment.jitter.ms`: each segment rolls up to this much before `segment.ms`
    /// (chosen at random per segment), so many partitions do not all roll at once.
    pub fn segment_jitter_ms(mut self, ms: u64) -> Self {
        self.segment_jitter_ms = ms;
        self.mark("segment.jitter.ms")
    }

    /// Sets `segment.index.bytes` (default [`DEFAULT_SEGMENT_INDEX_BYTES`]).
    pub fn segment_index_bytes(mut self, bytes: u32) -> Self {
        self.segment_index_bytes = bytes;
        self.mark("segment.index.bytes")
    }

    /// Sets `index.interval.bytes` (default [`DEFAULT_INDEX_INTERVAL_BYTES`]).
    pub fn index_interval_bytes(mut self, bytes: u32) -> Self {
        self.index_interval_bytes = bytes;
        self.mark("index.interval.bytes")
    }

    /// Sets `max.message.bytes` (default [`DEFAULT_MAX_MESSAGE_BYTES`]).
    pub fn max_message_bytes(mut self, bytes: u32) -> Self {
        self.max_message_bytes = bytes;
        self.mark("max.message.bytes")
    }

    /// Sets `message.timestamp.type`.
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self.mark("message.timestamp.type")
    }

    /// Sets `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`: how far
    /// a CreateTime timestamp may lie before or after the append time (`None`: unlimited).
    pub fn timestamp_window(mut self, before_ms: Option<u64>, after_ms: Option<u64>) -> Self {
        self.timestamp_before_max_ms = before_ms;
        self.timestamp_after_max_ms = after_ms;
        self.mark("message.timestamp.before.max.ms").mark("message.timestamp.after.max.ms")
    }

    /// Sets `flush.messages`: fsync after this many unsynced records (`None`: never by count;
    /// `Some(1)`: every append, with group commit).
    pub fn flush_messages(mut self, n: Option<u64>) -> Self {
        self.flush_messages = n;
        self.mark("flush.messages")
    }

    /// Sets `flush.ms`: fsync when the last fsync is this old (`None`: never by time).
    pub fn flush_ms(mut self, ms: Option<u64>) -> Self {
        self.flush_ms = ms;
        self.mark("flush.ms")
    }

    /// Sets `flush.messages` and `flush.ms` from a [`Durability`] choice.
    pub fn durability(self, d: Durability) -> Self {
        match d {
            Durability::Os => self.flush_messages(None).flush_ms(None),
            Durability::EveryAppend => self.flush_messages(Some(1)).flush_ms(None),
            Durability::Periodic { messages, interval } => self
                .flush_messages(messages.map(|m| m.max(1)))
                .flush_ms(interval.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        }
    }

    /// Sets `min.cleanable.dirty.ratio`.
    pub fn min_cleanable_dirty_ratio(mut self, r: f64) -> Self {
        self.min_cleanable_dirty_ratio = r;
        self.mark("min.cleanable.dirty.ratio")
    }

    /// Sets `delete.retention.ms`: how long compaction keeps a tombstone after the pass that
    /// first cleaned it.
    pub fn delete_retention_ms(mut self, ms: u64) -> Self {
        self.delete_retention_ms = ms;
        self.mark("delete.retention.ms")
    }

    /// Sets `min.compaction.lag.ms`: records younger than this are not compacted.
    pub fn min_compaction_lag_ms(mut self, ms: u64) -> Self {
        self.min_compaction_lag_ms = ms;
        self.mark("min.compaction.lag.ms")
    }

    /// Sets `max.compaction.lag.ms`: a record older than this makes its partition due for
    /// compaction whatever its dirty ratio (`None`: no limit).
    pub fn max_compaction_lag_ms(mut self, ms: Option<u64>) -> Self {
        self.max_compaction_lag_ms = ms;
        self.mark("max.compaction.lag.ms")
    }

    /// Sets `preallocate`: reserve the whole `segment.bytes` when a segment is created, not in
    /// growing steps.
    pub fn preallocate(mut self, on: bool) -> Self {
        self.preallocate = on;
        self.mark("preallocate")
    }

    /// The partition count of a new topic.
    pub fn get_partitions(&self) -> u32 {
        self.partitions
    }
    /// `cleanup.policy`.
    pub fn get_cleanup_policy(&self) -> CleanupPolicy {
        self.cleanup_policy
    }
    /// `retention.ms` (`None`: unlimited).
    pub fn get_retention_ms(&self) -> Option<u64> {
        self.retention_ms
    }
    /// `retention.bytes` (`None`: unlimited).
    pub fn get_retention_bytes(&self) -> Option<u64> {
        self.retention_bytes
    }
    /// `segment.bytes`.
    pub fn get_segment_bytes(&self) -> u32 {
        self.segment_bytes
    }
    /// `segment.ms`.
    pub fn get_segment_ms(&self) -> u64 {
        self.segment_ms
    }
    /// `segment.jitter.ms`.
    pub fn get_segment_jitter_ms(&self) -> u64 {
        self.segment_jitter_ms
    }
    /// `segment.index.bytes`.
    pub fn get_segment_index_bytes(&self) -> u32 {
        self.segment_index_bytes
    }
    /// `index.interval.bytes`.
    pub fn get_index_interval_bytes(&self) -> u32 {
        self.index_interval_bytes
    }
    /// `max.message.bytes`.
    pub fn get_max_message_bytes(&self) -> u32 {
        self.max_message_bytes
    }
    /// `message.timestamp.type`.
    pub fn get_timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }
    /// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms` (`None`:
    /// unlimited).
    pub fn get_timestamp_window(&self) -> (Option<u64>, Option<u64>) {
        (self.timestamp_before_max_ms, self.timestamp_after_max_ms)
    }
    /// `flush.messages` (`None`: never by count).
    pub fn get_flush_messages(&self) -> Option<u64> {
        self.flush_messages
    }
    /// `flush.ms` (`None`: never by time).
    pub fn get_flush_ms(&self) -> Option<u64> {
        self.flush_ms
    }
    /// `min.cleanable.dirty.ratio`.
    pub fn get_min_cleanable_dirty_ratio(&self) -> f64 {
        self.min_cleanable_dirty_ratio
    }
    /// `delete.retention.ms`.
    pub fn get_delete_retention_ms(&self) -> u64 {
        self.delete_retention_ms
    }
    /// `min.compaction.lag.ms`.
    pub fn get_min_compaction_lag_ms(&self) -> u64 {
        self.min_compaction_lag_ms
    }
    /// `max.compaction.lag.ms` (`None`: no limit).
    pub fn get_max_compaction_lag_ms(&self) -> Option<u64> {
        self.max_compaction_lag_ms
    }
    /// `preallocate`.
    pub fn get_preallocate(&self) -> bool {
        self.preallocate
    }

    /// The [`Durability`] that `flush.messages` / `flush.ms` describe.
    pub fn durability_mode(&self) -> Durability {
        match (self.flush_messages, self.flush_ms) {
            (None, None) => Durability::Os,
            (Some(1), _) => Durability::EveryAppend,
            (m, ms) => Durability::Periodic { messages: m, interval: ms.map(Duration::from_millis) },
        }
    }

    /// Whether `key` was set on this value (an override), by a setter or [`set`](Self::set).
    pub fn is_set(&self, key: &str) -> bool {
        self.explicit.contains(key)
    }

    /// The keys set on this value, with their values in Kafka's string form, sorted by key.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        self.to_pairs().into_iter().filter(|(k, _)| self.explicit.contains(k)).collect()
    }

    /// The value of a Kafka key in Kafka's string form (`None` for an unknown key).
    pub fn get(&self, key: &str) -> Option<String> {
        if key == PARTITIONS_KEY {
            return Some(self.partitions.to_string());
        }
        self.to_pairs().into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Sets one setting by its Kafka key from a string, e.g. `set("retention.ms", "-1")`.
    /// Every Kafka topic-level key is accepted (see [`KEYS`]); `num.partitions` sets the
    /// partition count.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key for an unknown key or a bad value.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        let Some(k) = static_key(key) else {
            let known: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
            return Err(Error::config(
                key,
                value,
                format!("not a Kafka topic configuration key; known keys: {}", known.join(", ")),
            ));
        };
        let v = value.trim();
        match k {
            PARTITIONS_KEY => self.partitions = parse_u32_range(k, v, 1, i32::MAX as u32)?,
            "cleanup.policy" => {
                let mut p = CleanupPolicy { delete: false, compact: false };
                for part in v.split(',').map(str::trim) {
                    match part {
                        "delete" => p.delete = true,
                        "compact" => p.compact = true,
                        _ => return Err(Error::config(k, value, "expected `delete`, `compact` or `compact,delete`")),
                    }
                }
                self.cleanup_policy = p;
            }
            "retention.ms" => self.retention_ms = parse_minus_one_unlimited(k, v)?,
            "retention.bytes" => self.retention_bytes = parse_minus_one_unlimited(k, v)?,
            "segment.bytes" => self.segment_bytes = parse_u32_range(k, v, MIN_SEGMENT_BYTES, i32::MAX as u32)?,
            "segment.ms" => self.segment_ms = parse_at_least(k, v, 1)?,
            "segment.jitter.ms" => self.segment_jitter_ms = parse_at_least(k, v, 0)?,
            "segment.index.bytes" => self.segment_index_bytes = parse_u32_range(k, v, 4, i32::MAX as u32)?,
            "index.interval.bytes" => self.index_interval_bytes = parse_u32_range(k, v, 0, i32::MAX as u32)?,
            "max.message.bytes" => self.max_message_bytes = parse_u32_range(k, v, 0, i32::MAX as u32)?,
            "message.timestamp.type" => {
                self.timestamp_type = match v {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(Error::config(k, value, "expected `CreateTime` or `LogAppendTime`")),
                }
            }
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = parse_max_unlimited(k, v, 0)?,
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = parse_max_unlimited(k, v, 0)?,
            "message.timestamp.difference.max.ms" => {
                // Deprecated by Kafka in favour of the two keys above; it sets whichever of
                // them is not set explicitly, and is not kept itself.
                let d = parse_max_unlimited(k, v, 0)?;
                if !self.explicit.contains("message.timestamp.before.max.ms") {
                    self.timestamp_before_max_ms = d;
                    self.explicit.insert("message.timestamp.before.max.ms");
                }
                if !self.explicit.contains("message.timestamp.after.max.ms") {
                    self.timestamp_after_max_ms = d;
                    self.explicit.insert("message.timestamp.after.max.ms");
                }
                return Ok(self);
            }
            "flush.messages" => self.flush_messages = parse_max_unlimited(k, v, 1)?,
            "flush.ms" => self.flush_ms = parse_max_unlimited(k, v, 0)?,
            "min.cleanable.dirty.ratio" => {
                let r: f64 = v.parse().map_err(|_| Error::config(k, value, "expected a number between 0 and 1"))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(Error::config(k, value, "must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = r;
            }
            "delete.retention.ms" => self.delete_retention_ms = parse_at_least(k, v, 0)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = parse_at_least(k, v, 0)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = parse_max_unlimited(k, v, 1)?,
            "preallocate" => self.preallocate = parse_bool(k, v)?,
            "compression.type" => {
                match v {
                    "producer" | "uncompressed" => {}
                    "gzip" | "snappy" | "lz4" | "zstd" => {
                        return Err(Error::config(
                            k,
                            value,
                            "compression codecs are not built into this version of partlog: use `producer` or `uncompressed`",
                        ));
                    }
                    _ => {
                        return Err(Error::config(
                            k,
                            value,
                            "expected one of `producer`, `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`",
                        ));
                    }
                }
                self.stored.insert(k, v.to_owned());
            }
            "compression.gzip.level" => {
                let l = parse_i64_range(k, v, -1, 9)?;
                if l == 0 {
                    return Err(Error::config(k, value, "must be -1 (the codec's default) or between 1 and 9"));
                }
                self.stored.insert(k, l.to_string());
            }
            "compression.lz4.level" => {
                self.stored.insert(k, parse_i64_range(k, v, 1, 17)?.to_string());
            }
            "compression.zstd.level" => {
                self.stored.insert(k, parse_i64_range(k, v, -131_072, 22)?.to_string());
            }
            "file.delete.delay.ms" => {
                self.stored.insert(k, parse_at_least(k, v, 0)?.to_string());
            }
            "min.insync.replicas" => {
                self.stored.insert(k, parse_u32_range(k, v, 1, i32::MAX as u32)?.to_string());
            }
            "local.retention.ms" | "local.retention.bytes" => {
                self.stored.insert(k, parse_i64_range(k, v, -2, i64::MAX)?.to_string());
            }
            "message.downconversion.enable"
            | "unclean.leader.election.enable"
            | "remote.storage.enable"
            | "remote.log.copy.disable"
            | "remote.log.delete.on.disable" => {
                self.stored.insert(k, parse_bool(k, v)?.to_string());
            }
            "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
                check_replica_list(k, v)?;
                self.stored.insert(k, v.to_owned());
            }
            "message.format.version" => {
                if v.is_empty() {
                    return Err(Error::config(k, value, "expected a Kafka version such as `3.0-IV1`"));
                }
                self.stored.insert(k, v.to_owned());
            }
            _ => return Err(Error::config(k, value, "not a Kafka topic configuration key")),
        }
        self.explicit.insert(k);
        Ok(self)
    }

    /// Applies `key=value` pairs in order.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub fn set_all<'k>(mut self, pairs: impl IntoIterator<Item = (&'k str, &'k str)>) -> Result<Self> {
        for (k, v) in pairs {
            self = self.set(k, v)?;
        }
        Ok(self)
    }

    /// Every key of [`KEYS`] (except the deprecated `message.timestamp.difference.max.ms`)
    /// with the value in force, in Kafka's string form, sorted by key.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let policy = match (self.cleanup_policy.compact, self.cleanup_policy.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        };
        let mut out: Vec<(&'static str, String)> = vec![
            ("cleanup.policy", policy.to_owned()),
            ("retention.ms", unlimited_as_minus_one(self.retention_ms)),
            ("retention.bytes", unlimited_as_minus_one(self.retention_bytes)),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("segment.jitter.ms", self.segment_jitter_ms.to_string()),
            ("segment.index.bytes", self.segment_index_bytes.to_string()),
            ("index.interval.bytes", self.index_interval_bytes.to_string()),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            (
                "message.timestamp.type",
                match self.timestamp_type {
                    TimestampType::CreateTime => "CreateTime",
                    TimestampType::LogAppendTime => "LogAppendTime",
                }
                .to_owned(),
            ),
            ("message.timestamp.before.max.ms", unlimited_as_long_max(self.timestamp_before_max_ms)),
            ("message.timestamp.after.max.ms", unlimited_as_long_max(self.timestamp_after_max_ms)),
            ("flush.messages", unlimited_as_long_max(self.flush_messages)),
            ("flush.ms", unlimited_as_long_max(self.flush_ms)),
            ("min.cleanable.dirty.ratio", self.min_cleanable_dirty_ratio.to_string()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            ("min.compaction.lag.ms", self.min_compaction_lag_ms.to_string()),
            ("max.compaction.lag.ms", unlimited_as_long_max(self.max_compaction_lag_ms)),
            ("preallocate", self.preallocate.to_string()),
        ];
        out.extend(self.stored.iter().map(|(k, v)| (*k, v.clone())));
        out.sort_by_key(|(k, _)| *k);
        out
    }

    /// Checks every value and the relations between them (for values set through the typed
    /// setters, which do not check).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first offending key.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 {
            return Err(Error::config(PARTITIONS_KEY, self.partitions, "a topic needs at least one partition"));
        }
        // Round-trip every value through the string parser, which holds the range rules.
        let mut check = TopicConfig::default();
        for (k, v) in self.to_pairs() {
            check = check.set(k, &v)?;
        }
        if let Some(max) = self.max_compaction_lag_ms
            && max < self.min_compaction_lag_ms
        {
            return Err(Error::config("max.compaction.lag.ms", max, "must not be below min.compaction.lag.ms"));
        }
        if !self.cleanup_policy.compact && !self.cleanup_policy.delete {
            return Err(Error::config("cleanup.policy", "", "name at least one of `delete`, `compact`"));
        }
        Ok(())
    }

    /// This configuration's overrides applied on top of `base` (a directory's defaults): every
    /// key set here wins, every other key comes from `base`. The result's overrides are this
    /// value's.
    pub fn inherit_from(&self, base: &TopicConfig) -> TopicConfig {
        let mut out = base.clone();
        let mine: BTreeMap<&'static str, String> = self.to_pairs().into_iter().collect();
        for &k in &self.explicit {
            if k == PARTITIONS_KEY {
                out.partitions = self.partitions;
            } else if let Some(v) = mine.get(k)
                && let Ok(next) = out.clone().set(k, v)
            {
                out = next;
            }
        }
        out.explicit = self.explicit.clone();
        out
    }

    /// The value in force of every key, with where it comes from, given the directory defaults
    /// this configuration inherited from.
    pub fn entries(&self, directory: &TopicConfig) -> Vec<ConfigEntry> {
        self.to_pairs()
            .into_iter()
            .map(|(key, value)| {
                let source = if self.explicit.contains(key) {
                    ConfigSource::Topic
                } else if directory.explicit.contains(key) {
                    ConfigSource::Directory
                } else {
                    ConfigSource::Default
                };
                let effect = KEYS.iter().find(|k| k.key == key).map_or(KeyEffect::Applied, |k| k.effect);
                ConfigEntry { key, value, source, effect }
            })
            .collect()
    }

    /// Largest batch an append may write: `max.message.bytes`, capped by `segment.bytes`.
    pub(crate) fn max_batch_bytes(&self) -> u64 {
        u64::from(self.max_message_bytes).min(u64::from(self.segment_bytes))
    }

    /// Offset-index entries one segment may hold.
    pub(crate) fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8).max(1) as usize
    }

    /// `segment.ms` as a signed duration, for comparisons with timestamps.
    pub(crate) fn segment_ms_i64(&self) -> i64 {
        i64::try_from(self.segment_ms).unwrap_or(i64::MAX)
    }
}

pub(crate) fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_named_constants_and_kafka() {
        let c = TopicConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.segment_ms, 604_800_000);
        assert_eq!(c.retention_ms, Some(604_800_000));
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.segment_index_bytes, 10_485_760);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(c.durability_mode(), Durability::Os);
        assert_eq!(c.get("file.delete.delay.ms"), Some(DEFAULT_FILE_DELETE_DELAY_MS.to_string()));
        assert!(c.overrides().is_empty());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn pairs_round_trip() -> Result<()> {
        let c = TopicConfig::default()
            .set("retention.ms", "-1")?
            .set("retention.bytes", "12345")?
            .set("cleanup.policy", "compact")?
            .set("message.timestamp.type", "LogAppendTime")?
            .set("flush.messages", "1")?
            .set("segment.bytes", "1048576")?
            .set("min.insync.replicas", "3")?;
        let mut back = TopicConfig::default();
        for (k, v) in c.overrides() {
            back = back.set(k, &v)?;
        }
        assert_eq!(back, c);
        assert_eq!(c.durability_mode(), Durability::EveryAppend);
        Ok(())
    }

    #[test]
    fn every_kafka_key_is_accepted_with_its_default() -> Result<()> {
        let defaults = TopicConfig::default().to_pairs();
        for info in KEYS {
            if info.key == "message.timestamp.difference.max.ms" {
                continue;
            }
            let (_, v) = defaults
                .iter()
                .find(|(k, _)| *k == info.key)
                .ok_or_else(|| Error::config(info.key, "", "missing from to_pairs"))?;
            let c = TopicConfig::default().set(info.key, v)?;
            assert!(c.is_set(info.key), "{}", info.key);
        }
        Ok(())
    }

    #[test]
    fn bad_values_name_the_key() {
        for (k, v) in [
            ("segment.bytes", "10"),
            ("segment.bytes", "abc"),
            ("retention.ms", "-5"),
            ("cleanup.policy", "archive"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("message.timestamp.type", "Now"),
            ("flush.messages", "0"),
            ("segment.ms", "0"),
            ("bogus.key", "1"),
            ("preallocate", "yes"),
            ("min.insync.replicas", "0"),
            ("compression.type", "brotli"),
            ("compression.type", "zstd"),
            ("compression.zstd.level", "23"),
            ("leader.replication.throttled.replicas", "0:x"),
            ("unclean.leader.election.enable", "1"),
        ] {
            match TopicConfig::default().set(k, v) {
                Err(Error::InvalidConfig { key, .. }) => assert_eq!(key, k),
                other => panic!("{k}={v}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn kafka_minimum_segment_size() -> Result<()> {
        assert_eq!(TopicConfig::default().set("segment.bytes", "14")?.segment_bytes, 14);
        assert!(TopicConfig::default().set("segment.bytes", "13").is_err());
        Ok(())
    }

    #[test]
    fn deprecated_difference_sets_what_is_not_set() -> Result<()> {
        let c = TopicConfig::default()
            .set("message.timestamp.before.max.ms", "10")?
            .set("message.timestamp.difference.max.ms", "99")?;
        assert_eq!(c.get_timestamp_window(), (Some(10), Some(99)));
        Ok(())
    }

    #[test]
    fn overrides_win_and_the_rest_is_inherited() -> Result<()> {
        let dir = TopicConfig::default().segment_bytes(65_536).retention_ms(Some(60_000));
        let topic = TopicConfig::default().partitions(2).retention_ms(Some(5_000));
        let eff = topic.inherit_from(&dir);
        assert_eq!((eff.partitions, eff.segment_bytes, eff.retention_ms), (2, 65_536, Some(5_000)));
        assert!(eff.is_set("retention.ms") && !eff.is_set("segment.bytes"));
        let src = |k: &str| eff.entries(&dir).into_iter().find(|e| e.key == k).map(|e| e.source);
        assert_eq!(src("retention.ms"), Some(ConfigSource::Topic));
        assert_eq!(src("segment.bytes"), Some(ConfigSource::Directory));
        assert_eq!(src("flush.ms"), Some(ConfigSource::Default));
        Ok(())
    }

    #[test]
    fn validate_catches_typed_setter_mistakes() {
        assert!(TopicConfig::default().partitions(0).validate().is_err());
        assert!(TopicConfig::default().segment_bytes(1).validate().is_err());
        assert!(TopicConfig::default().min_compaction_lag_ms(10).max_compaction_lag_ms(Some(5)).validate().is_err());
    }
}
