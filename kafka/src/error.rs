//! The crate's one error type.

use rdkafka::error::KafkaError;

/// What the mirror and the import can fail with. Every variant names what failed and where,
/// and its message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The partlog side failed (opening the directory, reading, appending, committing).
    #[error(transparent)]
    Partlog(#[from] partlog::Error),

    /// No broker answered at `bootstrap` after `attempts` tries with growing pauses between
    /// them. Nothing was produced, consumed or committed, so nothing is lost: start again
    /// once the broker is up.
    #[error(
        "cannot reach a Kafka broker at {bootstrap} ({attempts} attempts, the last failing with: {source}); check that the broker is running and that --bootstrap-server names its advertised address"
    )]
    Unreachable {
        /// The `bootstrap.servers` that was tried.
        bootstrap: String,
        /// How many attempts were made.
        attempts: u32,
        /// The client's last error.
        source: KafkaError,
    },

    /// A request to the cluster failed.
    #[error("Kafka request failed while {action}: {source}")]
    Kafka {
        /// What was being done.
        action: String,
        /// The client's error.
        source: KafkaError,
    },

    /// The Kafka topic exists with a different partition count than the partlog topic.
    /// Records keep their partition number across, so the counts must be equal.
    #[error(
        "Kafka topic `{kafka_topic}` has {kafka_partitions} partitions but partlog topic `{partlog_topic}` has {partlog_partitions}: records keep their partition number, so the counts must match; use another Kafka topic (--kafka-topic) or change the partition count on one side"
    )]
    PartitionCountMismatch {
        /// The Kafka topic.
        kafka_topic: String,
        /// Its partition count.
        kafka_partitions: u32,
        /// The partlog topic.
        partlog_topic: String,
        /// Its partition count.
        partlog_partitions: u32,
    },

    /// The last record of a destination partition was not written by this tool from this
    /// source (no position header, a malformed one, or one that does not match the source):
    /// another writer wrote to it, so where to resume cannot be known. Nothing was written.
    #[error(
        "refusing to resume {destination} partition {partition}: {reason}; another writer has written to it (the mirror and the import must be the only writers of their destination partitions), so where to resume is unknown"
    )]
    ForeignWriter {
        /// The destination topic (`kafka topic X` or `partlog topic X`).
        destination: String,
        /// The partition.
        partition: u32,
        /// What was found.
        reason: String,
    },

    /// A record is larger than the destination accepts. The mirror or import stopped at it:
    /// everything before it was delivered, nothing after it was; raise the limit
    /// (`max.message.bytes` of the Kafka topic, or of the partlog topic) and start again.
    #[error(
        "record at offset {offset} of partition {partition} of `{topic}` is {size} bytes as a batch, larger than the destination's limit of {max} bytes (max.message.bytes); stopped there: everything before it was delivered, nothing after it; raise the limit and start again"
    )]
    RecordTooLarge {
        /// The source topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The record's offset in the source.
        offset: u64,
        /// Its size as a one-record batch.
        size: usize,
        /// The limit.
        max: usize,
    },

    /// A record could not be delivered. The mirror stopped: records before it are in Kafka,
    /// the next start resumes at the first record not there.
    #[error(
        "delivering the record at offset {offset} of partition {partition} of `{topic}` to Kafka at {bootstrap} failed: {source}; stopped there, the next start resumes after the last record Kafka holds"
    )]
    Delivery {
        /// The `bootstrap.servers` of the cluster.
        bootstrap: String,
        /// The source topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The record's offset in the source.
        offset: u64,
        /// The client's error (boxed: it is the largest field of this enum).
        source: Box<KafkaError>,
    },

    /// Records of the source were deleted (by retention) before they were copied, or the
    /// source was truncated below what was copied.
    #[error(
        "partition {partition} of `{topic}` no longer holds offsets {from}..{to}, which were not copied yet (deleted by retention, or the log was truncated): the destination would miss them; copy from a source that still holds them, or start over with a fresh destination"
    )]
    SourceGap {
        /// The source topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The first offset missing.
        from: u64,
        /// Where the source resumes.
        to: u64,
    },

    /// The mirror or import already stopped with an error; it copies nothing more. Start a
    /// new one: it resumes after the last record the destination holds.
    #[error("stopped earlier ({reason}); start a new run, which resumes after the last record the destination holds")]
    Stopped {
        /// The error it stopped with.
        reason: String,
    },

    /// An option has a value that cannot work.
    #[error("invalid option {key}={value}: {reason}")]
    InvalidOption {
        /// The option.
        key: String,
        /// Its value.
        value: String,
        /// Why it cannot work.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
    let action = action.into();
    move |source| Error::Kafka { action, source }
}
