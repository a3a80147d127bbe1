//! What the mirror and the import share on the Kafka side: client configuration, reaching
//! the cluster with bounded retries, creating or checking a topic, and reading the last
//! record of each partition.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Error, Result, kafka};
use crate::position::{Tail, decode_offset, last_header};

/// Default number of attempts to reach the cluster ([`Connect::attempts`]).
pub const DEFAULT_CONNECT_ATTEMPTS: u32 = 5;
/// Default first pause between attempts; it doubles after each ([`Connect::backoff`]).
pub const DEFAULT_CONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// Default time one attempt (a metadata request) may take ([`Connect::timeout`]).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The last record of a Kafka partition, as far as resuming needs it.
#[derive(Debug, Clone)]
pub(crate) struct TailRecord {
    pub(crate) tail: Tail,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
}

/// A Kafka record as the import's tail check needs it: offset, key, value.
pub(crate) type KafkaRecordAt = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// How to reach the cluster: the bootstrap servers, extra client settings, and the retry
/// policy of the first contact.
#[derive(Debug, Clone)]
pub struct Connect {
    pub(crate) bootstrap: String,
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) attempts: u32,
    pub(crate) backoff: Duration,
    pub(crate) timeout: Duration,
}

impl Connect {
    /// Contact `bootstrap` (`host:port[,host:port...]`, Kafka's `bootstrap.servers`).
    pub fn new(bootstrap: impl Into<String>) -> Connect {
        Connect {
            bootstrap: bootstrap.into(),
            settings: Vec::new(),
            attempts: DEFAULT_CONNECT_ATTEMPTS,
            backoff: DEFAULT_CONNECT_BACKOFF,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Adds a librdkafka client setting (`security.protocol`, `sasl.*`, `client.id`, ...),
    /// passed to every client this creates. Settings the tool depends on
    /// (`enable.idempotence`, `acks`, `enable.auto.commit`, ...) are set after these and win.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Connect {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// Attempts to reach the cluster before giving up with [`Error::Unreachable`] (at least
    /// 1; default [`DEFAULT_CONNECT_ATTEMPTS`]).
    pub fn attempts(mut self, n: u32) -> Connect {
        self.attempts = n.max(1);
        self
    }

    /// The pause after the first failed attempt; it doubles after each (default
    /// [`DEFAULT_CONNECT_BACKOFF`]).
    pub fn backoff(mut self, d: Duration) -> Connect {
        self.backoff = d;
        self
    }

    /// How long one request to the cluster may take (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn timeout(mut self, d: Duration) -> Connect {
        self.timeout = d;
        self
    }

    /// The bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub(crate) fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        // Quiet: failures reach the caller as errors, not as log lines on standard error.
        c.set("log_level", "0");
        for (k, v) in &self.settings {
            c.set(k, v);
        }
        c
    }

    /// A consumer for metadata, watermarks and tail reads (never joins a group).
    pub(crate) fn plain_consumer(&self) -> Result<BaseConsumer> {
        let mut c = self.config();
        c.set("group.id", "partlog-tail-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false")
            .set("enable.partition.eof", "true")
            // An empty fetch at the end of a partition returns at once.
            .set("fetch.wait.max.ms", "10");
        c.create().map_err(kafka("creating a Kafka consumer"))
    }

    pub(crate) fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.config().create().map_err(kafka("creating a Kafka admin client"))
    }

    /// Partition count of `topic` (`None`: it does not exist), retrying an unreachable
    /// cluster with backoff.
    pub(crate) fn partition_count(&self, consumer: &BaseConsumer, topic: &str) -> Result<Option<u32>> {
        let mut pause = self.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match consumer.fetch_metadata(Some(topic), self.timeout) {
                Ok(md) => {
                    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
                    return match t.error() {
                        None => Ok(Some(t.partitions().len() as u32)),
                        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => Ok(None),
                        Some(e) => Err(Error::Kafka {
                            action: format!("reading the metadata of topic `{topic}`"),
                            source: KafkaError::MetadataFetch(RDKafkaErrorCode::from(e)),
                        }),
                    };
                }
                Err(e) if attempt >= self.attempts => {
                    return Err(Error::Unreachable { bootstrap: self.bootstrap.clone(), attempts: attempt, source: e });
                }
                Err(_) => {
                    std::thread::sleep(pause);
                    pause = pause.saturating_mul(2);
                }
            }
        }
    }

    /// Makes sure Kafka topic `topic` exists with `partitions` partitions: creates it (with
    /// `configs`) when missing, refuses when it has another count.
    pub(crate) fn ensure_topic(
        &self,
        consumer: &BaseConsumer,
        topic: &str,
        partitions: u32,
        replication: i32,
        configs: &[(String, String)],
        partlog_topic: &str,
    ) -> Result<()> {
        let mismatch = |n: u32| Error::PartitionCountMismatch {
            kafka_topic: topic.to_owned(),
            kafka_partitions: n,
            partlog_topic: partlog_topic.to_owned(),
            partlog_partitions: partitions,
        };
        match self.partition_count(consumer, topic)? {
            Some(n) if n == partitions => return Ok(()),
            Some(n) => return Err(mismatch(n)),
            None => {}
        }
        let admin = self.admin()?;
        let mut new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(replication));
        for (k, v) in configs {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout)).request_timeout(Some(self.timeout));
        let results = futures_executor::block_on(admin.create_topics([&new], &opts))
            .map_err(kafka(format!("creating Kafka topic `{topic}`")))?;
        for r in results {
            match r {
                Ok(_) => {}
                // Created meanwhile by someone else: checked below like any existing topic.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(Error::Kafka {
                        action: format!("creating Kafka topic `{topic}`"),
                        source: KafkaError::AdminOp(code),
                    });
                }
            }
        }
        // Metadata can lag a creation by a moment.
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.partition_count(consumer, topic)? {
                Some(n) if n == partitions => return Ok(()),
                Some(n) => return Err(mismatch(n)),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                None => {
                    return Err(Error::Kafka {
                        action: format!("waiting for the new Kafka topic `{topic}` to appear"),
                        source: KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
                    });
                }
            }
        }
    }

    /// The topic's `max.message.bytes`, when the cluster reports it.
    pub(crate) fn max_message_bytes(&self, topic: &str) -> Option<usize> {
        let admin = self.admin().ok()?;
        let opts = AdminOptions::new().request_timeout(Some(self.timeout));
        let res = futures_executor::block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &opts)).ok()?;
        let r = res.into_iter().next()?.ok()?;
        r.get("max.message.bytes")?.value.as_deref()?.parse().ok()
    }

    /// The first record at or after `offset` in a partition, as `(offset, key, value)`;
    /// `None` when the partition ends before it.
    pub(crate) fn record_at(
        &self,
        consumer: &BaseConsumer,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<KafkaRecordAt>> {
        // Some brokers serve no fetch at or past the high watermark they report, even when it
        // lags their last batch: start no later than just below it and skip forward.
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, self.timeout)
            .map_err(kafka(format!("reading the offsets of Kafka topic `{topic}` partition {partition}")))?;
        if high <= low {
            return Ok(None);
        }
        let start = offset.min(high - 1).max(low);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(kafka("choosing a partition to read"))?;
        consumer.assign(&tpl).map_err(kafka("assigning a partition to read"))?;
        let deadline = Instant::now() + self.timeout;
        let found = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                consumer.unassign().map_err(kafka("unassigning a partition"))?;
                return Err(Error::Kafka {
                    action: format!("reading offset {offset} of Kafka topic `{topic}` partition {partition}"),
                    source: KafkaError::MessageConsumption(RDKafkaErrorCode::RequestTimedOut),
                });
            }
            match consumer.poll(left) {
                Some(Ok(m)) if m.partition() == partition && m.offset() >= offset => {
                    break Some((m.offset(), m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
                }
                Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break None,
                Some(Err(KafkaError::PartitionEOF(_))) | Some(Ok(_)) | None => {}
                Some(Err(e)) => {
                    return Err(Error::Kafka {
                        action: format!("reading offset {offset} of Kafka topic `{topic}` partition {partition}"),
                        source: e,
                    });
                }
            }
        };
        consumer.unassign().map_err(kafka("unassigning a partition"))?;
        Ok(found)
    }

    /// What the last record of each partition of `topic` says.
    pub(crate) fn tails(
        &self,
        consumer: &BaseConsumer,
        topic: &str,
        partitions: u32,
        header: &str,
    ) -> Result<Vec<TailRecord>> {
        let mut out = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            out.push(self.tail(consumer, topic, p as i32, header)?);
        }
        Ok(out)
    }

    fn tail(&self, consumer: &BaseConsumer, topic: &str, partition: i32, header: &str) -> Result<TailRecord> {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, self.timeout)
            .map_err(kafka(format!("reading the offsets of Kafka topic `{topic}` partition {partition}")))?;
        if high <= 0 {
            return Ok(TailRecord { tail: Tail::Empty, key: None, value: None });
        }
        if low >= high {
            return Err(Error::ForeignWriter {
                destination: format!("kafka topic `{topic}`"),
                partition: partition as u32,
                reason: format!(
                    "it holds no record (offsets {low}..{high}: deleted by retention), so its last record's position cannot be read"
                ),
            });
        }
        // Read from just below the high watermark to the end of the partition (the
        // consumer's end-of-partition event), keeping the last record: a broker whose high
        // watermark lags its last batch (some report the last batch's base offset + 1)
        // still gives the true last record.
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset((high - 1).max(low)))
            .map_err(kafka("choosing a partition to read"))?;
        consumer.assign(&tpl).map_err(kafka("assigning a partition to read"))?;
        let deadline = Instant::now() + self.timeout;
        let mut last = None;
        let found = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            match consumer.poll(left) {
                Some(Ok(m)) if m.partition() == partition => {
                    let tail = match m.headers() {
                        None => Tail::NoHeader,
                        Some(h) => match last_header(h.iter().map(|h| (h.key, h.value)), header) {
                            None => Tail::NoHeader,
                            Some(v) => match decode_offset(v) {
                                Some(o) => Tail::At(o),
                                None => Tail::BadHeader(v.map_or(0, <[u8]>::len)),
                            },
                        },
                    };
                    last = Some(TailRecord {
                        tail,
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(KafkaError::PartitionEOF(p))) if p == partition && last.is_some() => break last,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    return Err(Error::Kafka {
                        action: format!("reading the last record of Kafka topic `{topic}` partition {partition}"),
                        source: e,
                    });
                }
                None => {}
            }
        };
        consumer.unassign().map_err(kafka("unassigning a partition"))?;
        match found {
            Some(t) => Ok(t),
            None => Err(Error::Kafka {
                action: format!(
                    "reading the last record (offset {}) of Kafka topic `{topic}` partition {partition}",
                    high - 1
                ),
                source: KafkaError::MessageConsumption(RDKafkaErrorCode::RequestTimedOut),
            }),
        }
    }
}
