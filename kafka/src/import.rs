//! The import: consumes a Kafka topic into a partlog topic (same partition numbers), each
//! record once.
//!
//! # How exactly once holds
//! Every partlog record gets the Kafka offset it came from in the
//! [`kafka.offset`](crate::KAFKA_OFFSET_HEADER) header, and records are appended to partlog
//! in atomic batches (all of a batch or none of it survives a crash). A start reads the last
//! record of each partlog partition and resumes at the Kafka offset after it: the partlog
//! tail decides, overriding the Kafka consumer group's committed offset when the two
//! disagree (a commit is made after the append it covers, so it can only be behind after a
//! crash — or ahead, if the partlog directory lost appends that were never fsynced, and then
//! the tail is right too). The committed offset decides only for an empty partlog partition,
//! where there is no tail; before committing, the import syncs the partlog topic, so a
//! commit never covers records a power loss could take back.
//!
//! The single-writer rule holds here as for the mirror: the import must be the only writer
//! of its partlog partitions. A last record without the header stops the start
//! ([`Error::ForeignWriter`]).
//!
//! The consumer is assigned its partitions (it does not join the group, so a start takes no
//! rebalance); the group only stores the committed offsets, `partlog-import.<partlog topic>`
//! by default ([`import_group`]).

use std::time::{Duration, Instant};

use partlog::{LogDir, Record, Topic, TopicConfig};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::Connect;
use crate::error::{Error, Result, kafka};
use crate::position::{KAFKA_OFFSET_HEADER, Tail, batch_size, decode_offset, encode_offset, last_header};

/// Bytes of a partlog batch header (the `format` module of partlog) and of Kafka's.
const PARTLOG_BATCH_HEADER: usize = 68;
const KAFKA_BATCH_HEADER: usize = 61;

/// Default [`ImportOptions::commit_interval`].
pub const DEFAULT_IMPORT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`ImportOptions::max_batch_records`].
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 5_000;

/// The Kafka consumer group an import commits to by default: `partlog-import.<partlog topic>`.
pub fn import_group(partlog_topic: &str) -> String {
    format!("partlog-import.{partlog_topic}")
}

/// How an [`Import`] runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    connect: Connect,
    kafka_topic: Option<String>,
    group: Option<String>,
    commit_interval: Duration,
    max_batch_records: usize,
    topic_config: TopicConfig,
}

impl ImportOptions {
    /// Import from the cluster `connect` reaches.
    pub fn new(connect: Connect) -> ImportOptions {
        ImportOptions {
            connect,
            kafka_topic: None,
            group: None,
            commit_interval: DEFAULT_IMPORT_COMMIT_INTERVAL,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            topic_config: TopicConfig::default(),
        }
    }

    /// The Kafka topic (default: the partlog topic's name).
    pub fn kafka_topic(mut self, name: impl Into<String>) -> ImportOptions {
        self.kafka_topic = Some(name.into());
        self
    }

    /// The Kafka consumer group that stores the committed offsets (default
    /// [`import_group`]).
    pub fn group(mut self, group: impl Into<String>) -> ImportOptions {
        self.group = Some(group.into());
        self
    }

    /// How often the position is synced in partlog and committed to Kafka (default
    /// [`DEFAULT_IMPORT_COMMIT_INTERVAL`]).
    pub fn commit_interval(mut self, d: Duration) -> ImportOptions {
        self.commit_interval = d;
        self
    }

    /// Most records appended to one partition as one batch (default
    /// [`DEFAULT_MAX_BATCH_RECORDS`]).
    pub fn max_batch_records(mut self, n: usize) -> ImportOptions {
        self.max_batch_records = n.max(1);
        self
    }

    /// The configuration of a partlog topic the import creates (its partition count is
    /// replaced by the Kafka topic's).
    pub fn topic_config(mut self, config: TopicConfig) -> ImportOptions {
        self.topic_config = config;
        self
    }
}

/// A Kafka record waiting to be appended.
#[derive(Debug)]
struct Pending {
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Consumes a Kafka topic into a partlog topic, each record once (see the [module
/// docs](self)).
///
/// ```no_run
/// use partlog::LogDir;
/// use partlog_kafka::{Connect, Import, ImportOptions};
///
/// let dir = LogDir::open("./data")?;
/// let mut import = Import::new(&dir, "orders", ImportOptions::new(Connect::new("127.0.0.1:9092")))?;
/// let copied = import.catch_up()?;          // everything the Kafka topic holds now
/// println!("imported {copied} records, lag {}", import.lag()?);
/// import.close()?;
/// dir.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Import {
    topic: Topic,
    kafka_topic: String,
    consumer: BaseConsumer,
    connect: Connect,
    /// The next Kafka offset to append, per partition.
    next: Vec<i64>,
    committed: Vec<i64>,
    resumed_at: Vec<i64>,
    pending: Vec<Vec<Pending>>,
    /// Whether the consumer reported reaching the end of each partition since its last record.
    at_end: Vec<bool>,
    max_batch_records: usize,
    max_batch_bytes: usize,
    commit_interval: Duration,
    last_commit: Instant,
    /// The error the run stopped with, if it did.
    stopped: Option<String>,
}

impl std::fmt::Debug for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Import")
            .field("topic", &self.topic.name())
            .field("kafka_topic", &self.kafka_topic)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Import {
    /// Imports into topic `topic` of `dir`, creating it with the Kafka topic's partition
    /// count if it does not exist.
    ///
    /// # Errors
    /// [`Error::Unreachable`]; [`Error::Kafka`] when the Kafka topic does not exist;
    /// [`Error::PartitionCountMismatch`] when the partlog topic has another count;
    /// [`Error::ForeignWriter`] when a partlog partition's last record has no Kafka offset
    /// header or names an offset Kafka does not have; [`Error::Partlog`].
    pub fn new(dir: &LogDir, topic: &str, options: ImportOptions) -> Result<Import> {
        let kafka_topic = options.kafka_topic.clone().unwrap_or_else(|| topic.to_owned());
        let group = options.group.clone().unwrap_or_else(|| import_group(topic));
        let connect = options.connect.clone();
        let mut config = connect.config();
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = config.create().map_err(kafka("creating the Kafka consumer"))?;
        let Some(n) = connect.partition_count(&consumer, &kafka_topic)? else {
            return Err(Error::Kafka {
                action: format!("looking up Kafka topic `{kafka_topic}` to import"),
                source: KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
            });
        };
        let topic_handle = match dir.topic(topic) {
            Ok(t) => t,
            Err(partlog::Error::TopicNotFound { .. }) => {
                dir.create_topic(topic, options.topic_config.clone().partitions(n))?
            }
            Err(e) => return Err(e.into()),
        };
        if topic_handle.partition_count() != n {
            return Err(Error::PartitionCountMismatch {
                kafka_topic,
                kafka_partitions: n,
                partlog_topic: topic.to_owned(),
                partlog_partitions: topic_handle.partition_count(),
            });
        }

        let mut want = TopicPartitionList::new();
        for p in 0..n {
            want.add_partition(&kafka_topic, p as i32);
        }
        let committed = consumer
            .committed_offsets(want, connect.timeout)
            .map_err(kafka(format!("reading the committed offsets of group `{group}`")))?;
        let checker = connect.plain_consumer()?;
        let mut next = Vec::with_capacity(n as usize);
        let mut assign = TopicPartitionList::new();
        for p in 0..n {
            let (low, _) = consumer
                .fetch_watermarks(&kafka_topic, p as i32, connect.timeout)
                .map_err(kafka(format!("reading the offsets of Kafka topic `{kafka_topic}` partition {p}")))?;
            let (tail, last) = partlog_tail(&topic_handle.partition(p)?)?;
            let foreign = |reason: String| Error::ForeignWriter {
                destination: format!("partlog topic `{topic}`"),
                partition: p,
                reason,
            };
            let at = match tail {
                Tail::At(o) => {
                    let o = i64::try_from(o).map_err(|_| foreign(format!("its last record names Kafka offset {o}")))?;
                    // The Kafka record it names must be there, with the same key and value
                    // (unless Kafka no longer holds it).
                    match connect.record_at(&checker, &kafka_topic, p as i32, o)? {
                        None => {
                            return Err(foreign(format!(
                                "its last record says it was copied from Kafka offset {o}, but the Kafka partition ends before it"
                            )));
                        }
                        Some((found, key, value)) => {
                            if found == o && last.as_ref().is_some_and(|r| r.key != key || r.value != value) {
                                return Err(foreign(format!(
                                    "its last record says it was copied from Kafka offset {o}, but its key or value differs from that Kafka record"
                                )));
                            }
                        }
                    }
                    o + 1
                }
                Tail::NoHeader => return Err(foreign("its last record has no Kafka offset header".into())),
                Tail::BadHeader(len) => {
                    return Err(foreign(format!("its last record's Kafka offset header is {len} bytes, not 8")));
                }
                Tail::Empty => match committed.find_partition(&kafka_topic, p as i32).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) if o >= low => o,
                    _ => low,
                },
            };
            assign
                .add_partition_offset(&kafka_topic, p as i32, Offset::Offset(at))
                .map_err(kafka("choosing where to start"))?;
            next.push(at);
        }
        consumer.assign(&assign).map_err(kafka(format!("assigning the partitions of `{kafka_topic}`")))?;
        let max_batch_bytes = topic_handle.config().get_max_message_bytes() as usize;
        Ok(Import {
            topic: topic_handle,
            kafka_topic,
            consumer,
            connect,
            committed: vec![-1; n as usize],
            resumed_at: next.clone(),
            next,
            pending: (0..n).map(|_| Vec::new()).collect(),
            at_end: vec![false; n as usize],
            max_batch_records: options.max_batch_records,
            max_batch_bytes,
            commit_interval: options.commit_interval,
            last_commit: Instant::now(),
            stopped: None,
        })
    }

    /// The Kafka topic.
    pub fn kafka_topic(&self) -> &str {
        &self.kafka_topic
    }

    /// Where this run resumed, per partition (the Kafka offset of the first record it reads).
    pub fn resumed_at(&self) -> &[i64] {
        &self.resumed_at
    }

    /// The next Kafka offset to append, per partition.
    pub fn positions(&self) -> &[i64] {
        &self.next
    }

    /// Appends the Kafka records that arrive within `timeout` (up to the batch limit);
    /// returns how many were appended.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] for a record larger than the partlog topic's
    /// `max.message.bytes` (after appending everything before it); [`Error::Kafka`];
    /// [`Error::Partlog`]. After an error the import stops: every later call is
    /// [`Error::Stopped`]; start a new one.
    pub fn poll(&mut self, timeout: Duration) -> Result<usize> {
        if let Some(reason) = &self.stopped {
            return Err(Error::Stopped { reason: reason.clone() });
        }
        let r = self.poll_inner(timeout);
        if let Err(e) = &r {
            self.stopped = Some(e.to_string());
        }
        r
    }

    fn poll_inner(&mut self, timeout: Duration) -> Result<usize> {
        let mut got = 0;
        let mut wait = timeout;
        while got < self.max_batch_records {
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if let Some(e) = usize::try_from(p).ok().and_then(|p| self.at_end.get_mut(p)) {
                        *e = true;
                    }
                }
                Some(Err(e)) => {
                    return Err(Error::Kafka { action: format!("consuming `{}`", self.kafka_topic), source: e });
                }
                Some(Ok(m)) => {
                    if let Some(e) = usize::try_from(m.partition()).ok().and_then(|p| self.at_end.get_mut(p)) {
                        *e = false;
                    }
                    take(&mut self.pending, &m);
                    got += 1;
                }
            }
            wait = Duration::ZERO;
        }
        let n = self.append_pending()?;
        if self.last_commit.elapsed() >= self.commit_interval {
            self.commit(CommitMode::Async)?;
        }
        Ok(n)
    }

    /// Imports everything the Kafka topic holds now; returns how many records.
    ///
    /// # Errors
    /// As [`poll`](Self::poll).
    pub fn catch_up(&mut self) -> Result<u64> {
        // The end is where the consumer reports reaching it (its end-of-partition event),
        // which also holds for a broker whose high watermark lags its last batch.
        self.at_end.iter_mut().for_each(|e| *e = false);
        let mut n = 0u64;
        while !self.at_end.iter().all(|&e| e) {
            n += self.poll(Duration::from_millis(100))? as u64;
        }
        n += self.append_pending()? as u64;
        self.commit(CommitMode::Sync)?;
        Ok(n)
    }

    /// Kafka records not yet imported, over all partitions.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the log ends cannot be read.
    pub fn lag(&self) -> Result<u64> {
        let ends = self.high_watermarks()?;
        Ok(self.next.iter().zip(&ends).map(|(at, end)| (end - at).max(0) as u64).sum())
    }

    /// Syncs the partlog topic, commits the position to Kafka and ends the run.
    ///
    /// # Errors
    /// [`Error::Partlog`], [`Error::Kafka`].
    pub fn close(mut self) -> Result<()> {
        self.append_pending()?;
        self.commit(CommitMode::Sync)
    }

    fn high_watermarks(&self) -> Result<Vec<i64>> {
        let mut ends = Vec::with_capacity(self.next.len());
        for p in 0..self.next.len() {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.kafka_topic, p as i32, self.connect.timeout)
                .map_err(kafka(format!("reading the log end of Kafka topic `{}` partition {p}", self.kafka_topic)))?;
            ends.push(high);
        }
        Ok(ends)
    }
}

fn take(pending: &mut [Vec<Pending>], m: &BorrowedMessage<'_>) {
    let Some(queue) = usize::try_from(m.partition()).ok().and_then(|p| pending.get_mut(p)) else { return };
    let headers = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect())
        .unwrap_or_default();
    queue.push(Pending {
        offset: m.offset(),
        timestamp: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    });
}

impl Import {
    /// Appends what was consumed, partition by partition, in batches that fit the partlog
    /// topic's `max.message.bytes`.
    fn append_pending(&mut self) -> Result<usize> {
        let mut total = 0;
        for p in 0..self.pending.len() {
            let pending = std::mem::take(self.pending.get_mut(p).ok_or(Error::InvalidOption {
                key: "partition".into(),
                value: p.to_string(),
                reason: "not a partition of the topic".into(),
            })?);
            let headers: Vec<[u8; 8]> = pending.iter().map(|r| encode_offset(r.offset as u64)).collect();
            let mut start = 0;
            while start < pending.len() {
                let mut end = start;
                let mut bytes = PARTLOG_BATCH_HEADER;
                while let Some(r) = pending.get(end) {
                    let body = record_size(r) - KAFKA_BATCH_HEADER;
                    if PARTLOG_BATCH_HEADER + body > self.max_batch_bytes {
                        if end == start {
                            return Err(Error::RecordTooLarge {
                                topic: self.kafka_topic.clone(),
                                partition: p as u32,
                                offset: r.offset as u64,
                                size: PARTLOG_BATCH_HEADER + body,
                                max: self.max_batch_bytes,
                            });
                        }
                        break;
                    }
                    if end > start && bytes + body > self.max_batch_bytes {
                        break;
                    }
                    bytes += body;
                    end += 1;
                }
                let batch: Vec<Record<'_>> = pending
                    .get(start..end)
                    .unwrap_or_default()
                    .iter()
                    .zip(headers.get(start..end).unwrap_or_default())
                    .map(|(r, h)| {
                        let mut rec = Record::new();
                        rec.key = r.key.as_deref().map(std::borrow::Cow::Borrowed);
                        rec.value = r.value.as_deref().map(std::borrow::Cow::Borrowed);
                        rec.timestamp = r.timestamp;
                        for (k, v) in &r.headers {
                            rec.headers.push(partlog::Header {
                                key: std::borrow::Cow::Borrowed(k.as_str()),
                                value: v.as_deref().map(std::borrow::Cow::Borrowed),
                            });
                        }
                        rec.header(KAFKA_OFFSET_HEADER, &h[..])
                    })
                    .collect();
                match self.topic.append_batch_to(p as u32, &batch) {
                    Ok(_) => {}
                    Err(partlog::Error::RecordTooLarge { size, max }) if end - start == 1 => {
                        let offset = pending.get(start).map_or(0, |r| r.offset as u64);
                        return Err(Error::RecordTooLarge {
                            topic: self.kafka_topic.clone(),
                            partition: p as u32,
                            offset,
                            size: usize::try_from(size).unwrap_or(usize::MAX),
                            max: usize::try_from(max).unwrap_or(usize::MAX),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
                if let (Some(last), Some(next)) = (pending.get(end - 1), self.next.get_mut(p)) {
                    *next = last.offset + 1;
                }
                total += end - start;
                start = end;
            }
        }
        Ok(total)
    }

    fn commit(&mut self, mode: CommitMode) -> Result<()> {
        self.last_commit = Instant::now();
        if self.next == self.committed {
            return Ok(());
        }
        // A commit must never cover appends a power loss could take back.
        self.topic.sync()?;
        let mut tpl = TopicPartitionList::new();
        for (p, &at) in self.next.iter().enumerate() {
            tpl.add_partition_offset(&self.kafka_topic, p as i32, Offset::Offset(at))
                .map_err(kafka("choosing offsets to commit"))?;
        }
        self.consumer
            .commit(&tpl, mode)
            .map_err(kafka(format!("committing the import's position in `{}`", self.kafka_topic)))?;
        self.committed = self.next.clone();
        Ok(())
    }
}

fn record_size(r: &Pending) -> usize {
    batch_size(
        r.key.as_ref().map(Vec::len),
        r.value.as_ref().map(Vec::len),
        r.headers
            .iter()
            .map(|(k, v)| (k.len(), v.as_ref().map(Vec::len)))
            .chain(std::iter::once((KAFKA_OFFSET_HEADER.len(), Some(8)))),
    )
}

/// What the last record of a partlog partition says about the Kafka offset it came from,
/// and the record.
fn partlog_tail(p: &partlog::Partition) -> Result<(Tail, Option<partlog::StoredRecord>)> {
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    if end <= start {
        return Ok((Tail::Empty, None));
    }
    // The last record may be missing (compacted away): step back until one is found.
    let mut back = 1u64;
    loop {
        let from = end.saturating_sub(back).max(start);
        let mut last = None;
        for rec in p.iter(from) {
            let rec = rec?;
            if rec.offset >= end {
                break;
            }
            last = Some(rec);
        }
        if let Some(rec) = last {
            let h = last_header(rec.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())), KAFKA_OFFSET_HEADER);
            let tail = match h {
                None => Tail::NoHeader,
                Some(v) => match decode_offset(v) {
                    Some(o) => Tail::At(o),
                    None => Tail::BadHeader(v.map_or(0, <[u8]>::len)),
                },
            };
            return Ok((tail, Some(rec)));
        }
        if from == start {
            return Ok((Tail::Empty, None));
        }
        back = back.saturating_mul(16);
    }
}
