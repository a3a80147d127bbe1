//! Topic and partition configuration, with Kafka's key names and defaults.
//!
//! Every setting is a typed builder setter and a `key=value` string ([`TopicConfig::set`]).
//! Unknown keys and out-of-range values are [`Error::InvalidConfig`] naming the key.

use std::time::Duration;

use crate::error::{Error, Result};

/// Default `segment.bytes`: 1 GiB.
pub const DEFAULT_SEGMENT_BYTES: u32 = 1 << 30;
/// Default `segment.ms`: 7 days.
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 3600 * 1000;
/// Default `segment.index.bytes`: 10 MiB.
pub const DEFAULT_SEGMENT_INDEX_BYTES: u32 = 10 * 1024 * 1024;
/// Default `index.interval.bytes`: 4096.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;
/// Default `retention.ms`: 7 days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Default `max.message.bytes`: 1 MiB + 12, as Kafka.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1_048_588;
/// Default `delete.retention.ms`: 24 hours.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// Default `min.cleanable.dirty.ratio`: 0.5.
pub const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;
/// Smallest accepted `segment.bytes`.
pub const MIN_SEGMENT_BYTES: u32 = 128;

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

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy { delete: true, compact: false }
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
        /// Records between fsyncs (`flush.messages`); `u64::MAX` for none.
        messages: u64,
        /// Time between fsyncs (`flush.ms`); `None` for none.
        interval: Option<Duration>,
    },
}

/// Configuration of a topic and of each of its partitions, with Kafka's names and defaults.
///
/// ```
/// use partlog::TopicConfig;
/// let c = TopicConfig::default()
///     .partitions(3)
///     .set("retention.ms", "3600000")?
///     .set("cleanup.policy", "compact,delete")?;
/// assert_eq!(c.retention_ms, Some(3_600_000));
/// assert!(c.cleanup_policy.compact && c.cleanup_policy.delete);
/// assert!(TopicConfig::default().set("no.such.key", "1").is_err());
/// # Ok::<(), partlog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopicConfig {
    /// Number of partitions of a new topic (not a Kafka topic config, but `num.partitions`).
    pub partitions: u32,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `retention.ms`; `None` is unlimited (−1).
    pub retention_ms: Option<i64>,
    /// `retention.bytes`; `None` is unlimited (−1).
    pub retention_bytes: Option<u64>,
    /// `segment.bytes`: roll the active segment before it grows past this.
    pub segment_bytes: u32,
    /// `segment.ms`: roll once the active segment's first record is this old (record time).
    pub segment_ms: i64,
    /// `segment.index.bytes`: the offset index of one segment holds at most this many bytes
    /// (8 per entry); a full index rolls the segment.
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: bytes of log between offset-index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest encoded batch an append may write.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: reject CreateTime timestamps further in the past.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: reject CreateTime timestamps further in the future.
    pub timestamp_after_max_ms: i64,
    /// `flush.messages`: fsync after this many unsynced records (`u64::MAX`: never; 1: every
    /// append, with group commit).
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the oldest unsynced append is this old (`u64::MAX`: never).
    pub flush_ms: u64,
    /// `min.cleanable.dirty.ratio` (used by compaction).
    pub min_cleanable_dirty_ratio: f64,
    /// `delete.retention.ms`: how long tombstones survive compaction.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
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
            segment_index_bytes: DEFAULT_SEGMENT_INDEX_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            min_cleanable_dirty_ratio: DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

/// The Kafka keys [`TopicConfig::set`] understands.
pub const KEYS: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "flush.messages",
    "flush.ms",
    "min.cleanable.dirty.ratio",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
];

fn parse_i64(key: &str, value: &str) -> Result<i64> {
    value.trim().parse::<i64>().map_err(|_| Error::config(key, value, "expected a whole number"))
}

fn at_least(key: &str, value: &str, v: i64, min: i64) -> Result<i64> {
    if v < min {
        return Err(Error::config(key, value, format!("must be at least {min}")));
    }
    Ok(v)
}

fn parse_u32_range(key: &str, value: &str, min: u32, max: u32) -> Result<u32> {
    let v = parse_i64(key, value)?;
    if v < i64::from(min) || v > i64::from(max) {
        return Err(Error::config(key, value, format!("must be between {min} and {max}")));
    }
    Ok(v as u32)
}

/// −1 means unlimited, otherwise ≥ 0 (Kafka's convention).
fn parse_limit(key: &str, value: &str) -> Result<Option<i64>> {
    match parse_i64(key, value)? {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v)),
        _ => Err(Error::config(key, value, "must be -1 (unlimited) or at least 0")),
    }
}

/// Kafka uses `Long.MAX_VALUE` for "never"; map values ≥ 1 to u64, anything ≥ i64::MAX to MAX.
fn parse_flush(key: &str, value: &str) -> Result<u64> {
    let v = at_least(key, value, parse_i64(key, value)?, 1)?;
    Ok(if v == i64::MAX { u64::MAX } else { v as u64 })
}

impl TopicConfig {
    /// Sets the partition count of a new topic (≥ 1).
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self
    }

    /// Sets `cleanup.policy`.
    pub fn cleanup_policy(mut self, p: CleanupPolicy) -> Self {
        self.cleanup_policy = p;
        self
    }

    /// Sets `retention.ms` (`None` = unlimited).
    pub fn retention_ms(mut self, ms: Option<i64>) -> Self {
        self.retention_ms = ms;
        self
    }

    /// Sets `retention.bytes` (`None` = unlimited).
    pub fn retention_bytes(mut self, bytes: Option<u64>) -> Self {
        self.retention_bytes = bytes;
        self
    }

    /// Sets `segment.bytes` (default [`DEFAULT_SEGMENT_BYTES`]).
    pub fn segment_bytes(mut self, bytes: u32) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets `segment.ms` (default [`DEFAULT_SEGMENT_MS`]).
    pub fn segment_ms(mut self, ms: i64) -> Self {
        self.segment_ms = ms;
        self
    }

    /// Sets `segment.index.bytes` (default [`DEFAULT_SEGMENT_INDEX_BYTES`]).
    pub fn segment_index_bytes(mut self, bytes: u32) -> Self {
        self.segment_index_bytes = bytes;
        self
    }

    /// Sets `index.interval.bytes` (default [`DEFAULT_INDEX_INTERVAL_BYTES`]).
    pub fn index_interval_bytes(mut self, bytes: u32) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Sets `max.message.bytes` (default [`DEFAULT_MAX_MESSAGE_BYTES`]).
    pub fn max_message_bytes(mut self, bytes: u32) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Sets `message.timestamp.type`.
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    /// Sets `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`.
    pub fn timestamp_window(mut self, before_ms: i64, after_ms: i64) -> Self {
        self.timestamp_before_max_ms = before_ms;
        self.timestamp_after_max_ms = after_ms;
        self
    }

    /// Sets `flush.messages` and `flush.ms` from a [`Durability`] choice.
    pub fn durability(mut self, d: Durability) -> Self {
        match d {
            Durability::Os => {
                self.flush_messages = u64::MAX;
                self.flush_ms = u64::MAX;
            }
            Durability::EveryAppend => {
                self.flush_messages = 1;
                self.flush_ms = u64::MAX;
            }
            Durability::Periodic { messages, interval } => {
                self.flush_messages = messages.max(1);
                self.flush_ms = interval.map_or(u64::MAX, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
            }
        }
        self
    }

    /// The [`Durability`] that `flush.messages` / `flush.ms` describe.
    pub fn durability_mode(&self) -> Durability {
        match (self.flush_messages, self.flush_ms) {
            (u64::MAX, u64::MAX) => Durability::Os,
            (1, _) => Durability::EveryAppend,
            (m, ms) => {
                Durability::Periodic { messages: m, interval: (ms != u64::MAX).then(|| Duration::from_millis(ms)) }
            }
        }
    }

    /// Sets `min.cleanable.dirty.ratio`.
    pub fn min_cleanable_dirty_ratio(mut self, r: f64) -> Self {
        self.min_cleanable_dirty_ratio = r;
        self
    }

    /// Sets `delete.retention.ms`.
    pub fn delete_retention_ms(mut self, ms: i64) -> Self {
        self.delete_retention_ms = ms;
        self
    }

    /// Sets `min.compaction.lag.ms`.
    pub fn min_compaction_lag_ms(mut self, ms: i64) -> Self {
        self.min_compaction_lag_ms = ms;
        self
    }

    /// Sets `max.compaction.lag.ms`.
    pub fn max_compaction_lag_ms(mut self, ms: i64) -> Self {
        self.max_compaction_lag_ms = ms;
        self
    }

    /// Sets one setting by its Kafka key from a string, e.g. `set("retention.ms", "-1")`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key for an unknown key or a bad value.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        let v = value.trim();
        match key {
            "cleanup.policy" => {
                let mut p = CleanupPolicy { delete: false, compact: false };
                for part in v.split(',').map(str::trim) {
                    match part {
                        "delete" => p.delete = true,
                        "compact" => p.compact = true,
                        _ => return Err(Error::config(key, value, "expected `delete`, `compact` or `compact,delete`")),
                    }
                }
                self.cleanup_policy = p;
            }
            "retention.ms" => self.retention_ms = parse_limit(key, v)?,
            "retention.bytes" => self.retention_bytes = parse_limit(key, v)?.map(|b| b as u64),
            "segment.bytes" => self.segment_bytes = parse_u32_range(key, v, MIN_SEGMENT_BYTES, i32::MAX as u32)?,
            "segment.ms" => self.segment_ms = at_least(key, v, parse_i64(key, v)?, 1)?,
            "segment.index.bytes" => self.segment_index_bytes = parse_u32_range(key, v, 8, i32::MAX as u32)?,
            "index.interval.bytes" => self.index_interval_bytes = parse_u32_range(key, v, 0, i32::MAX as u32)?,
            "max.message.bytes" => self.max_message_bytes = parse_u32_range(key, v, 0, i32::MAX as u32)?,
            "message.timestamp.type" => {
                self.timestamp_type = match v {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(Error::config(key, value, "expected `CreateTime` or `LogAppendTime`")),
                }
            }
            "message.timestamp.before.max.ms" => {
                self.timestamp_before_max_ms = at_least(key, v, parse_i64(key, v)?, 0)?
            }
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = at_least(key, v, parse_i64(key, v)?, 0)?,
            "flush.messages" => self.flush_messages = parse_flush(key, v)?,
            "flush.ms" => {
                // Kafka allows 0 for flush.ms; treat it as "every append".
                let ms = at_least(key, v, parse_i64(key, v)?, 0)?;
                self.flush_ms = if ms == i64::MAX { u64::MAX } else { ms as u64 };
            }
            "min.cleanable.dirty.ratio" => {
                let r: f64 = v.parse().map_err(|_| Error::config(key, value, "expected a number between 0 and 1"))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(Error::config(key, value, "must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = r;
            }
            "delete.retention.ms" => self.delete_retention_ms = at_least(key, v, parse_i64(key, v)?, 0)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = at_least(key, v, parse_i64(key, v)?, 0)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = at_least(key, v, parse_i64(key, v)?, 1)?,
            _ => {
                return Err(Error::config(
                    key,
                    value,
                    format!("unknown configuration key; known keys: {}", KEYS.join(", ")),
                ));
            }
        }
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

    /// The settings as Kafka `key=value` pairs (every key in [`KEYS`]).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let limit = |v: Option<i64>| v.map_or("-1".to_owned(), |v| v.to_string());
        let flush = |v: u64| if v == u64::MAX { i64::MAX.to_string() } else { v.to_string() };
        let policy = match (self.cleanup_policy.compact, self.cleanup_policy.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        };
        vec![
            ("cleanup.policy", policy.to_owned()),
            ("retention.ms", limit(self.retention_ms)),
            ("retention.bytes", limit(self.retention_bytes.map(|b| b as i64))),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
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
            ("message.timestamp.before.max.ms", self.timestamp_before_max_ms.to_string()),
            ("message.timestamp.after.max.ms", self.timestamp_after_max_ms.to_string()),
            ("flush.messages", flush(self.flush_messages)),
            ("flush.ms", flush(self.flush_ms)),
            ("min.cleanable.dirty.ratio", self.min_cleanable_dirty_ratio.to_string()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            ("min.compaction.lag.ms", self.min_compaction_lag_ms.to_string()),
            ("max.compaction.lag.ms", self.max_compaction_lag_ms.to_string()),
        ]
    }

    /// Checks every value and the relations between them (for values set through the typed
    /// setters, which do not check).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first offending key.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 {
            return Err(Error::config("partitions", self.partitions, "a topic needs at least one partition"));
        }
        // Round-trip every value through the string parser, which holds the range rules.
        let mut check = TopicConfig::default();
        for (k, v) in self.to_pairs() {
            check = check.set(k, &v)?;
        }
        if self.segment_ms < 1 {
            return Err(Error::config("segment.ms", self.segment_ms, "must be at least 1"));
        }
        if self.max_compaction_lag_ms < self.min_compaction_lag_ms {
            return Err(Error::config(
                "max.compaction.lag.ms",
                self.max_compaction_lag_ms,
                "must not be below min.compaction.lag.ms",
            ));
        }
        if !self.cleanup_policy.compact && !self.cleanup_policy.delete {
            return Err(Error::config("cleanup.policy", "", "name at least one of `delete`, `compact`"));
        }
        Ok(())
    }

    /// Largest batch an append may write: `max.message.bytes`, capped by `segment.bytes`.
    pub(crate) fn max_batch_bytes(&self) -> u64 {
        u64::from(self.max_message_bytes).min(u64::from(self.segment_bytes))
    }

    /// Offset-index entries one segment may hold.
    pub(crate) fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8).max(1) as usize
    }
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
            .set("segment.bytes", "1048576")?;
        let mut back = TopicConfig::default();
        for (k, v) in c.to_pairs() {
            back = back.set(k, &v)?;
        }
        assert_eq!(back, c);
        assert_eq!(c.durability_mode(), Durability::EveryAppend);
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
        ] {
            match TopicConfig::default().set(k, v) {
                Err(Error::InvalidConfig { key, .. }) => assert_eq!(key, k),
                other => panic!("{k}={v}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn validate_catches_typed_setter_mistakes() {
        assert!(TopicConfig::default().partitions(0).validate().is_err());
        assert!(TopicConfig::default().segment_bytes(1).validate().is_err());
        assert!(TopicConfig::default().min_compaction_lag_ms(10).max_compaction_lag_ms(5).validate().is_err());
    }
}
