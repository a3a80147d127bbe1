//! The mirror: follows a partlog topic and produces every record to a Kafka topic with the
//! same partition count, to the same partition number, exactly once.
//!
//! # How exactly once holds without transactions
//! - **Within one run**, the producer is Kafka's idempotent producer (`enable.idempotence`,
//!   `acks=all`, `enable.gapless.guarantee`): the broker drops a retried batch it already
//!   has and refuses one that would leave a hole, so each partition receives the records in
//!   order, each once, or the run stops with an error.
//! - **Across runs** (a crash, a kill, a restart), the position is the Kafka topic itself:
//!   every record carries the partlog offset it came from in the
//!   [`partlog.offset`](crate::PARTLOG_OFFSET_HEADER) header, so a new run reads the last
//!   record of each Kafka partition and resumes at the offset after it. Whatever the old run
//!   had delivered is there, whatever it had not is not, and the tail says which is which.
//!   Kafka offsets are not partlog offsets (a compacted partlog topic has gaps; Kafka's
//!   offsets are dense), which is why the header, not the offset, carries the position.
//! - **The single-writer rule**: the mirror must be the only writer of its Kafka partitions,
//!   and only one mirror may run per Kafka topic. A record from anyone else at the tail makes
//!   the position unknowable; the mirror then refuses to start
//!   ([`Error::ForeignWriter`]) rather than guess. (A foreign
//!   record in the middle, followed by mirrored ones, is not detected: that is the rule's
//!   part.) The tail record is also checked against the partlog record it names: same key,
//!   same value, and an offset below the partlog log end.
//!
//! # The replicated-cluster window, and the resume wait
//! On a single broker, a produce request is committed the moment the broker appends it. On
//! a replicated cluster with `acks=all` it is committed when every in-sync replica has it,
//! and a consumer (the tail read) only sees committed records. So when a mirror is killed,
//! its last request may be **appended on the leader but not yet committed**, or still in a
//! socket buffer on its way there; a new run that read the tail at that moment would resume
//! at an offset the old request also carries, and once that request commits, Kafka holds
//! those records twice. (The idempotent producer cannot help: the new run is a new producer
//! id.)
//!
//! The window is bounded. A dead process sends nothing new; the bytes it had handed to the
//! kernel reach the leader, or the connection fails, within the client's request timeout;
//! a request the leader appended is then replicated by its in-sync followers, and a
//! follower that does not catch up within the broker's `replica.lag.time.max.ms` leaves the
//! in-sync set, after which the record commits without it (or is truncated away by a new
//! leader, if the leader fails). So after the old producer's `request.timeout.ms` plus
//! `replica.lag.time.max.ms` have passed since it was last alive, every request it sent is
//! committed or gone for good, and the tail is final.
//!
//! The mirror therefore reads the tail once (to refuse a foreign writer early), waits
//! [`MirrorOptions::resume_wait`] — by default [`DEFAULT_RESUME_WAIT`], the mirror's own
//! request timeout plus Kafka's default `replica.lag.time.max.ms` — and reads the tail
//! again; the second read decides. The wait is counted from the start of the new run,
//! because when the old one died is not known: the start is the latest moment it can have
//! been alive (a heartbeat would only give an earlier one). It is skipped when the old run
//! is known to have stopped cleanly: [`Mirror::close`] flushes every request to its outcome
//! and then records a clean stop in partlog's committed offsets, which the next run reads
//! (writable directories only). Against a single broker the window is the broker's own
//! request handling, and a wait of a few hundred milliseconds covers it.
//!
//! # Committed offsets in partlog
//! With a writable [`LogDir`] ([`Mirror::from_dir`]) the mirror commits the position Kafka
//! has acknowledged per partition to the consumer group
//! [`mirror_group(kafka_topic)`](mirror_group) every [`MirrorOptions::commit_interval`]
//! and at [`close`](Mirror::close), so `LogDir::describe_group` (and `partlog groups
//! --describe`) shows the mirror's lag; the commit metadata says whether the run is
//! `running` or made a `clean-stop`. These offsets are for monitoring: resuming never trusts
//! them over the Kafka tail. Following a directory that another process holds
//! ([`Mirror::from_read_only`]) records nothing in it (a read-only reader writes nothing):
//! the lag is visible from [`Mirror::progress`] (and the CLI's reports), and every start
//! waits the resume window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use partlog::{
    Consumer, ConsumerConfig, FollowEvent, Follower, LogDir, OffsetAndMetadata, ReadOnlyTopic, RecordRef,
    TopicPartition,
};
use rdkafka::ClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::client::Connect;
use crate::error::{Error, Result, kafka};
use crate::position::{PARTLOG_OFFSET_HEADER, Tail, batch_size, encode_offset, resume_at};

/// Default [`MirrorOptions::resume_wait`]: the mirror's request timeout
/// ([`DEFAULT_REQUEST_TIMEOUT_MS`]) plus Kafka's default `replica.lag.time.max.ms` (30 s).
pub const DEFAULT_RESUME_WAIT: Duration = Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS + 30_000);
/// The producer's `request.timeout.ms`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Default [`MirrorOptions::delivery_timeout`] (the producer's `delivery.timeout.ms`).
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Default [`MirrorOptions::linger`] (the producer's `linger.ms`).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// Default [`MirrorOptions::commit_interval`].
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// The limit assumed when the cluster does not report the topic's `max.message.bytes`
/// (Kafka's default).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// Commit metadata of a running mirror.
const RUNNING: &str = "running";
/// Commit metadata after [`Mirror::close`] delivered everything.
const CLEAN_STOP: &str = "clean-stop";

/// The partlog consumer group that records a mirror's position: `partlog-mirror.<kafka topic>`.
pub fn mirror_group(kafka_topic: &str) -> String {
    format!("partlog-mirror.{kafka_topic}")
}

/// How a [`Mirror`] runs.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    connect: Connect,
    kafka_topic: Option<String>,
    resume_wait: Duration,
    delivery_timeout: Duration,
    linger: Duration,
    commit_interval: Duration,
    replication_factor: i32,
    topic_configs: Vec<(String, String)>,
    max_message_bytes: Option<usize>,
}

impl MirrorOptions {
    /// Mirror to the cluster `connect` reaches.
    pub fn new(connect: Connect) -> MirrorOptions {
        MirrorOptions {
            connect,
            kafka_topic: None,
            resume_wait: DEFAULT_RESUME_WAIT,
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            linger: DEFAULT_LINGER,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            replication_factor: -1,
            topic_configs: Vec::new(),
            max_message_bytes: None,
        }
    }

    /// The Kafka topic (default: the partlog topic's name).
    pub fn kafka_topic(mut self, name: impl Into<String>) -> MirrorOptions {
        self.kafka_topic = Some(name.into());
        self
    }

    /// How long a start waits between its two reads of the Kafka tail, so that a request of
    /// a killed predecessor can no longer commit after the second (default
    /// [`DEFAULT_RESUME_WAIT`]; see the [module docs](self) for the argument). Skipped after
    /// a recorded clean stop. Against a single broker a few hundred milliseconds suffice.
    pub fn resume_wait(mut self, d: Duration) -> MirrorOptions {
        self.resume_wait = d;
        self
    }

    /// How long the producer keeps retrying a record before the mirror stops with
    /// [`Error::Delivery`] (Kafka's `delivery.timeout.ms`; default
    /// [`DEFAULT_DELIVERY_TIMEOUT`]).
    pub fn delivery_timeout(mut self, d: Duration) -> MirrorOptions {
        self.delivery_timeout = d;
        self
    }

    /// How long the producer waits to fill a batch (Kafka's `linger.ms`; default
    /// [`DEFAULT_LINGER`]).
    pub fn linger(mut self, d: Duration) -> MirrorOptions {
        self.linger = d;
        self
    }

    /// How often the position is committed to partlog (default [`DEFAULT_COMMIT_INTERVAL`];
    /// writable directories only).
    pub fn commit_interval(mut self, d: Duration) -> MirrorOptions {
        self.commit_interval = d;
        self
    }

    /// Replication factor of a Kafka topic the mirror creates (default: the broker's).
    pub fn replication_factor(mut self, n: i32) -> MirrorOptions {
        self.replication_factor = n;
        self
    }

    /// A topic configuration (`retention.ms`, `cleanup.policy`, `max.message.bytes`, ...)
    /// for a Kafka topic the mirror creates; the same keys partlog's `TopicConfig::set`
    /// takes.
    pub fn topic_config(mut self, key: impl Into<String>, value: impl Into<String>) -> MirrorOptions {
        self.topic_configs.push((key.into(), value.into()));
        self
    }

    /// The largest record batch the Kafka topic accepts (default: its `max.message.bytes`
    /// as the cluster reports it, else [`DEFAULT_MAX_MESSAGE_BYTES`]). A larger record
    /// stops the mirror with [`Error::RecordTooLarge`].
    pub fn max_message_bytes(mut self, n: usize) -> MirrorOptions {
        self.max_message_bytes = Some(n);
        self
    }
}

/// One partition's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: u32,
    /// The next partlog offset to be handed to the producer.
    pub sent: u64,
    /// The partlog offset after the last record Kafka acknowledged (or where this run
    /// resumed, before any).
    pub delivered: u64,
    /// The partlog partition's log end offset.
    pub source_end: u64,
}

impl PartitionProgress {
    /// Records of the source not yet acknowledged by Kafka (an upper bound: a compacted
    /// source has gaps).
    pub fn lag(&self) -> u64 {
        self.source_end.saturating_sub(self.delivered)
    }
}

/// What the delivery reports tell the mirror's thread.
#[derive(Debug)]
struct Deliveries {
    delivered: Vec<AtomicU64>,
    failed: std::sync::Mutex<Option<(u32, u64, KafkaError)>>,
}

#[derive(Debug)]
struct Context(Arc<Deliveries>);

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, offset: Self::DeliveryOpaque) {
        use rdkafka::message::Message;
        match result {
            Ok(m) => {
                if let Some(d) = usize::try_from(m.partition()).ok().and_then(|p| self.0.delivered.get(p)) {
                    d.fetch_max(offset as u64 + 1, Ordering::AcqRel);
                }
            }
            Err((e, m)) => {
                if let Ok(mut f) = self.0.failed.lock()
                    && f.is_none()
                {
                    *f = Some((m.partition() as u32, offset as u64, e.clone()));
                }
            }
        }
    }
}

/// Follows a partlog topic and produces each record to Kafka once (see the [module
/// docs](self)).
///
/// ```no_run
/// use partlog::{LogDir, Record, TopicConfig};
/// use partlog_kafka::{Connect, Mirror, MirrorOptions};
/// use std::time::Duration;
///
/// let dir = LogDir::open("./data")?;
/// let orders = dir.create_topic("orders", TopicConfig::default().partitions(3))?;
/// orders.append(Record::new().key("customer-42").value("{\"total\":99}"))?;
///
/// let options = MirrorOptions::new(Connect::new("127.0.0.1:9092")).resume_wait(Duration::from_millis(500));
/// let mut mirror = Mirror::from_dir(&dir, "orders", options)?;
/// mirror.catch_up()?;                       // everything appended so far is in Kafka
/// for _ in 0..100 {
///     mirror.poll(Duration::from_millis(100))?;   // and what is appended from now on
/// }
/// println!("lag: {}", mirror.lag()?);
/// mirror.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mirror {
    topic: String,
    kafka_topic: String,
    source: ReadOnlyTopic,
    follower: Follower,
    producer: BaseProducer<Context>,
    deliveries: Arc<Deliveries>,
    sent: Vec<u64>,
    max_message_bytes: usize,
    commits: Option<Consumer>,
    commit_interval: Duration,
    last_commit: Instant,
    resumed_at: Vec<u64>,
    waited: Duration,
    /// The error the run stopped with, if it did.
    stopped: Option<String>,
    bootstrap: String,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("topic", &self.topic)
            .field("kafka_topic", &self.kafka_topic)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// Mirrors topic `topic` of a directory this process has open for writing, and records
    /// the position in the consumer group [`mirror_group`].
    ///
    /// # Errors
    /// As [`from_read_only`](Self::from_read_only), and [`Error::Partlog`] when the group's
    /// offsets cannot be read or committed.
    pub fn from_dir(dir: &LogDir, topic: &str, options: MirrorOptions) -> Result<Mirror> {
        let source = LogDir::open_read_only(dir.path())?.topic(topic)?;
        let kafka_topic = options.kafka_topic.clone().unwrap_or_else(|| topic.to_owned());
        let mut consumer =
            dir.consumer(ConsumerConfig::new().group_id(mirror_group(&kafka_topic)).enable_auto_commit(false))?;
        let tps: Vec<TopicPartition> = (0..source.partition_count()).map(|p| TopicPartition::new(topic, p)).collect();
        consumer.assign(&tps)?;
        Mirror::start(source, options, Some(consumer))
    }

    /// Mirrors a topic opened read-only (a directory another process writes). Nothing is
    /// recorded in the directory.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when no broker answers; [`Error::PartitionCountMismatch`] when
    /// the Kafka topic exists with another partition count; [`Error::ForeignWriter`] when
    /// the tail of a Kafka partition was not written by a mirror of this topic;
    /// [`Error::SourceGap`] when the partlog topic no longer holds the next record to copy;
    /// [`Error::Kafka`], [`Error::Partlog`].
    pub fn from_read_only(source: ReadOnlyTopic, options: MirrorOptions) -> Result<Mirror> {
        Mirror::start(source, options, None)
    }

    fn start(source: ReadOnlyTopic, options: MirrorOptions, mut commits: Option<Consumer>) -> Result<Mirror> {
        let topic = source.name().to_owned();
        let kafka_topic = options.kafka_topic.clone().unwrap_or_else(|| topic.clone());
        let n = source.partition_count();
        let connect = &options.connect;
        let consumer = connect.plain_consumer()?;
        connect.ensure_topic(&consumer, &kafka_topic, n, options.replication_factor, &options.topic_configs, &topic)?;
        let max_message_bytes = options
            .max_message_bytes
            .or_else(|| connect.max_message_bytes(&kafka_topic))
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);

        // First read: refuse a foreign writer before waiting.
        let first = resume_points(connect, &consumer, &source, &kafka_topic)?;
        let clean = match &commits {
            Some(c) => (0..n).all(|p| {
                matches!(c.committed(&TopicPartition::new(&topic, p)),
                    Ok(Some(m)) if m.metadata == CLEAN_STOP && first.get(p as usize) == Some(&m.offset))
            }),
            None => false,
        };
        let waited = if clean { Duration::ZERO } else { options.resume_wait };
        std::thread::sleep(waited);
        let resumed_at =
            if waited.is_zero() { first } else { resume_points(connect, &consumer, &source, &kafka_topic)? };
        drop(consumer);

        // From here on the run may produce: a crash must make the next start wait.
        if let Some(c) = &mut commits {
            commit(c, &topic, &resumed_at, RUNNING)?;
        }

        let deliveries = Arc::new(Deliveries {
            delivered: resumed_at.iter().map(|&o| AtomicU64::new(o)).collect(),
            failed: std::sync::Mutex::new(None),
        });
        let mut config = connect.config();
        let batch = max_message_bytes.clamp(1, 1_000_000);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("enable.gapless.guarantee", "true")
            .set("max.in.flight.requests.per.connection", "5")
            .set("compression.type", "none")
            .set("linger.ms", options.linger.as_millis().to_string())
            .set("delivery.timeout.ms", options.delivery_timeout.as_millis().max(1).to_string())
            .set("request.timeout.ms", DEFAULT_REQUEST_TIMEOUT_MS.to_string())
            .set("batch.size", batch.to_string())
            .set("message.max.bytes", (max_message_bytes.max(1000) + 1024).to_string());
        let producer: BaseProducer<Context> = config
            .create_with_context(Context(Arc::clone(&deliveries)))
            .map_err(kafka("creating the Kafka producer"))?;

        let mut follower = Follower::new();
        for (p, &at) in source.partitions().iter().zip(&resumed_at) {
            follower.add(p, at)?;
        }
        Ok(Mirror {
            topic,
            kafka_topic,
            source,
            follower,
            producer,
            deliveries,
            sent: resumed_at.clone(),
            max_message_bytes,
            commits,
            commit_interval: options.commit_interval,
            last_commit: Instant::now(),
            resumed_at,
            waited,
            stopped: None,
            bootstrap: options.connect.bootstrap().to_owned(),
        })
    }

    /// The Kafka topic.
    pub fn kafka_topic(&self) -> &str {
        &self.kafka_topic
    }

    /// Where this run resumed, per partition (the partlog offset of the first record it
    /// copies).
    pub fn resumed_at(&self) -> &[u64] {
        &self.resumed_at
    }

    /// How long the start waited out the resume window (zero after a clean stop).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The largest record batch the mirror hands to Kafka.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Copies records appended since the last call, waiting up to `timeout` for some;
    /// returns how many were handed to the producer (delivery follows asynchronously:
    /// [`flush`](Self::flush) waits for it).
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] (after delivering everything before it),
    /// [`Error::Delivery`] for a record Kafka did not take, [`Error::SourceGap`],
    /// [`Error::Partlog`]. After an error the mirror stops: every later call is
    /// [`Error::Stopped`]; start a new one.
    pub fn poll(&mut self, timeout: Duration) -> Result<usize> {
        if let Some(reason) = &self.stopped {
            return Err(Error::Stopped { reason: reason.clone() });
        }
        let r = self.poll_inner(timeout);
        if let Err(e) = &r
            && !matches!(e, Error::Stopped { .. })
        {
            self.stopped = Some(e.to_string());
        }
        r
    }

    fn poll_inner(&mut self, timeout: Duration) -> Result<usize> {
        self.check_failed()?;
        let mut count = 0;
        match self.follower.poll(timeout)? {
            None => {}
            Some(FollowEvent::Records { partition, records }) => {
                let p = partition.id();
                for r in records.iter() {
                    self.send(p, &r)?;
                    count += 1;
                }
            }
            Some(FollowEvent::Reset { partition, from, to }) => {
                return Err(Error::SourceGap { topic: self.topic.clone(), partition: partition.id(), from, to });
            }
            Some(_) => {}
        }
        self.producer.poll(Duration::ZERO);
        self.check_failed()?;
        if self.commits.is_some() && self.last_commit.elapsed() >= self.commit_interval {
            self.commit_delivered(RUNNING)?;
        }
        Ok(count)
    }

    /// Copies everything the partlog topic holds now and waits until Kafka acknowledged it;
    /// returns how many records were copied.
    ///
    /// # Errors
    /// As [`poll`](Self::poll) and [`flush`](Self::flush).
    pub fn catch_up(&mut self) -> Result<u64> {
        let mut ends = Vec::with_capacity(self.sent.len());
        for p in self.source.partitions() {
            ends.push(p.log_end_offset()?);
        }
        let mut n = 0u64;
        while self.follower.positions().iter().zip(&ends).any(|((_, at), end)| at < end) {
            let got = self.poll(Duration::from_millis(10))?;
            n += got as u64;
            if got == 0 {
                // Nothing more below the ends (a compacted tail): done.
                let stuck = self
                    .follower
                    .positions()
                    .iter()
                    .zip(&ends)
                    .all(|((p, at), end)| at >= end || p.log_end_offset().map(|e| e <= *at).unwrap_or(false));
                if stuck {
                    break;
                }
            }
        }
        self.flush(Duration::MAX)?;
        if self.commits.is_some() {
            self.commit_delivered(RUNNING)?;
        }
        Ok(n)
    }

    /// Waits up to `timeout` until every record handed to the producer was acknowledged.
    ///
    /// # Errors
    /// [`Error::Delivery`] (with [`KafkaError::Flush`] when the time ran out).
    pub fn flush(&mut self, timeout: Duration) -> Result<()> {
        let timeout = if timeout == Duration::MAX { None } else { Some(timeout) };
        let r = self.producer.flush(timeout);
        self.check_failed()?;
        r.map_err(|source| self.delivery_error(source))
    }

    fn delivery_error(&self, source: KafkaError) -> Error {
        let (partition, offset) = self
            .deliveries
            .delivered
            .iter()
            .zip(&self.sent)
            .enumerate()
            .find(|(_, (d, s))| d.load(Ordering::Acquire) < **s)
            .map_or((0, 0), |(p, (d, _))| (p as u32, d.load(Ordering::Acquire)));
        Error::Delivery {
            bootstrap: self.bootstrap.clone(),
            topic: self.topic.clone(),
            partition,
            offset,
            source: Box::new(source),
        }
    }

    /// Each partition's progress.
    ///
    /// # Errors
    /// [`Error::Partlog`] when a log end cannot be read.
    pub fn progress(&self) -> Result<Vec<PartitionProgress>> {
        let mut out = Vec::with_capacity(self.sent.len());
        for (i, p) in self.source.partitions().iter().enumerate() {
            out.push(PartitionProgress {
                partition: p.id(),
                sent: self.sent.get(i).copied().unwrap_or(0),
                delivered: self.deliveries.delivered.get(i).map_or(0, |d| d.load(Ordering::Acquire)),
                source_end: p.log_end_offset()?,
            });
        }
        Ok(out)
    }

    /// Records not yet acknowledged by Kafka, over all partitions.
    ///
    /// # Errors
    /// As [`progress`](Self::progress).
    pub fn lag(&self) -> Result<u64> {
        Ok(self.progress()?.iter().map(PartitionProgress::lag).sum())
    }

    /// Delivers everything handed to the producer, records a clean stop (writable
    /// directories), and ends the run. The next start needs no resume wait.
    ///
    /// # Errors
    /// As [`flush`](Self::flush); [`Error::Partlog`] when the commit fails.
    pub fn close(mut self) -> Result<()> {
        self.flush(Duration::MAX)?;
        if self.commits.is_some() {
            self.commit_delivered(CLEAN_STOP)?;
        }
        if let Some(c) = self.commits.take() {
            c.close()?;
        }
        Ok(())
    }

    fn check_failed(&self) -> Result<()> {
        let failed = self.deliveries.failed.lock().ok().and_then(|f| f.clone());
        match failed {
            None => Ok(()),
            Some((partition, offset, KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge))) => {
                // The broker refused it: its size, as the pre-check would have computed it.
                let size = self
                    .source
                    .partition(partition)
                    .and_then(|p| p.read(offset, 1))
                    .ok()
                    .and_then(|recs| recs.iter().find(|r| r.offset() == offset).map(|r| record_batch_size(&r)))
                    .unwrap_or(0);
                Err(Error::RecordTooLarge {
                    topic: self.topic.clone(),
                    partition,
                    offset,
                    size,
                    max: self.max_message_bytes,
                })
            }
            Some((partition, offset, source)) => Err(Error::Delivery {
                bootstrap: self.bootstrap.clone(),
                topic: self.topic.clone(),
                partition,
                offset,
                source: Box::new(source),
            }),
        }
    }

    fn commit_delivered(&mut self, state: &str) -> Result<()> {
        let at: Vec<u64> = self.deliveries.delivered.iter().map(|d| d.load(Ordering::Acquire)).collect();
        if let Some(c) = &mut self.commits {
            commit(c, &self.topic, &at, state)?;
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    fn send(&mut self, partition: u32, r: &RecordRef<'_>) -> Result<()> {
        let offset = r.offset();
        let too_large = |size| Error::RecordTooLarge {
            topic: self.topic.clone(),
            partition,
            offset,
            size,
            max: self.max_message_bytes,
        };
        let header = encode_offset(offset);
        let size = record_batch_size(r);
        if size > self.max_message_bytes {
            // Stop at it, with everything before it delivered.
            let err = too_large(size);
            self.flush(Duration::MAX)?;
            return Err(err);
        }
        let mut headers = OwnedHeaders::new_with_capacity(r.headers().count() + 1);
        for (k, v) in r.headers() {
            headers = headers.insert(Header { key: k, value: v });
        }
        headers = headers.insert(Header { key: PARTLOG_OFFSET_HEADER, value: Some(&header[..]) });
        let opaque = usize::try_from(offset).map_err(|_| Error::InvalidOption {
            key: "offset".into(),
            value: offset.to_string(),
            reason: "offsets above usize::MAX cannot be tracked on this platform".into(),
        })?;
        let mut record: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(&self.kafka_topic, opaque)
            .partition(partition as i32)
            .timestamp(r.timestamp())
            .headers(headers);
        if let Some(k) = r.key() {
            record = record.key(k);
        }
        if let Some(v) = r.value() {
            record = record.payload(v);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(5));
                    self.check_failed()?;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    let err = too_large(size);
                    self.flush(Duration::MAX)?;
                    return Err(err);
                }
                Err((source, _)) => {
                    return Err(Error::Delivery {
                        bootstrap: self.bootstrap.clone(),
                        topic: self.topic.clone(),
                        partition,
                        offset,
                        source: Box::new(source),
                    });
                }
            }
        }
        if let Some(s) = self.sent.get_mut(partition as usize) {
            *s = offset + 1;
        }
        Ok(())
    }
}

/// Bytes of the one-record Kafka batch the mirror makes of `r` (its position header included).
fn record_batch_size(r: &RecordRef<'_>) -> usize {
    batch_size(
        r.key().map(<[u8]>::len),
        r.value().map(<[u8]>::len),
        r.headers()
            .map(|(k, v)| (k.len(), v.map(<[u8]>::len)))
            .chain(std::iter::once((PARTLOG_OFFSET_HEADER.len(), Some(8)))),
    )
}

fn commit(c: &mut Consumer, topic: &str, at: &[u64], state: &str) -> Result<()> {
    let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = at
        .iter()
        .enumerate()
        .map(|(p, &o)| {
            let mut m = OffsetAndMetadata::new(o);
            m.metadata = state.to_owned();
            (TopicPartition::new(topic, p as u32), m)
        })
        .collect();
    c.commit_offsets(&offsets)?;
    Ok(())
}

/// Reads the Kafka tail of every partition and decides where to resume, checking each tail
/// against the partlog record it names.
fn resume_points(
    connect: &Connect,
    consumer: &BaseConsumer,
    source: &ReadOnlyTopic,
    kafka_topic: &str,
) -> Result<Vec<u64>> {
    let tails = connect.tails(consumer, kafka_topic, source.partition_count(), PARTLOG_OFFSET_HEADER)?;
    let mut out = Vec::with_capacity(tails.len());
    for (part, t) in source.partitions().iter().zip(tails) {
        let foreign = |reason: String| Error::ForeignWriter {
            destination: format!("kafka topic `{kafka_topic}`"),
            partition: part.id(),
            reason,
        };
        let start = part.log_start_offset()?;
        let end = part.log_end_offset()?;
        let at = resume_at(&t.tail, start, end).map_err(foreign)?;
        if let Tail::At(o) = t.tail
            && o >= start
        {
            let recs = part.read(o, 1)?;
            if let Some(r) = recs.iter().next()
                && r.offset() == o
                && (r.key() != t.key.as_deref() || r.value() != t.value.as_deref())
            {
                return Err(foreign(format!(
                    "its last record says it was copied from offset {o}, but its key or value differs from that partlog record"
                )));
            }
        }
        if at < start {
            return Err(Error::SourceGap {
                topic: source.name().to_owned(),
                partition: part.id(),
                from: at,
                to: start,
            });
        }
        out.push(at);
    }
    Ok(out)
}
