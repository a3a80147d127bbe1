//! `partlog mirror` and `partlog import`: copy a topic into a Kafka cluster, or a Kafka topic
//! into the directory, each record once (the `partlog-kafka` crate; cargo feature `kafka`).

use std::time::{Duration, Instant};

use partlog_kafka::{Connect, Import, ImportOptions, Mirror, MirrorOptions};

use crate::common::{self, Failure, OK, Outcome};

pub const MIRROR_EXAMPLES: &str = "\
Examples:
  partlog mirror --dir data --topic orders --bootstrap-server 127.0.0.1:9092
  partlog mirror --dir data --topic orders --bootstrap-server kafka-1:9092 --kafka-topic orders-v1 --follow
  partlog mirror --dir data --topic orders --bootstrap-server 127.0.0.1:9092 --resume-wait-ms 200   # a single broker

Every record goes to the same partition number of the Kafka topic (created with the same
partition count when missing; a different count is refused), with its key, value, headers
and timestamp, and its partlog offset in the `partlog.offset` header. A restart resumes
after the last record each Kafka partition holds, so nothing is copied twice or skipped;
the mirror must be the only writer of the Kafka topic. Before resuming it waits
--resume-wait-ms (default 60 s: long enough for a request of a killed mirror to commit on a
replicated cluster). It reads the directory without locking it, so it runs beside the
application; with --record-offsets it takes the directory's lock and records its position
in the consumer group partlog-mirror.<kafka topic>. Without --follow it stops once
everything there was at the start is in Kafka; with --follow it keeps copying and reports
its lag on standard error.";

pub const IMPORT_EXAMPLES: &str = "\
Examples:
  partlog import --dir data --topic orders --bootstrap-server 127.0.0.1:9092
  partlog import --dir data --topic orders --bootstrap-server kafka-1:9092 --kafka-topic orders-v1 --follow

Every Kafka record is appended to the same partition number of the partlog topic (created
with the Kafka topic's partition count when missing), with its Kafka offset in the
`kafka.offset` header. The position is committed to the Kafka consumer group --group
(default partlog-import.<topic>); a restart resumes after the last record the partlog
partition holds, whatever the group says, so nothing is appended twice. It needs the
directory to itself (exit code 4 otherwise).";

/// What both commands take to reach the cluster.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The Kafka cluster: host:port[,host:port...] (Kafka's bootstrap.servers).
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap_server: String,
    /// The Kafka topic (default: the partlog topic's name).
    #[arg(long, value_name = "TOPIC")]
    kafka_topic: Option<String>,
    /// Keep copying new records (until interrupted), reporting the lag.
    #[arg(long)]
    follow: bool,
    /// Attempts to reach the cluster before giving up, with doubling pauses between them.
    #[arg(long, value_name = "N", default_value_t = partlog_kafka::DEFAULT_CONNECT_ATTEMPTS)]
    connect_attempts: u32,
    /// How long one request to the cluster may take, in ms.
    #[arg(long, value_name = "MS", default_value_t = partlog_kafka::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)]
    request_timeout_ms: u64,
    /// A Kafka client setting (security.protocol, sasl.*, client.id, ...); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    client_config: Vec<String>,
    /// How often --follow reports the lag on standard error, in ms.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    report_interval_ms: u64,
}

impl ConnectArgs {
    fn connect(&self) -> Result<Connect, Failure> {
        let mut c = Connect::new(&self.bootstrap_server)
            .attempts(self.connect_attempts)
            .timeout(Duration::from_millis(self.request_timeout_ms.max(1)));
        for kv in &self.client_config {
            let (k, v) = common::key_value(kv, "--client-config")?;
            c = c.set(k, v);
        }
        Ok(c)
    }
}

#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    /// The partlog topic to mirror.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    #[command(flatten)]
    connect: ConnectArgs,
    /// How long a start waits before its final read of the Kafka tail, in ms (see above).
    #[arg(long, value_name = "MS", default_value_t = partlog_kafka::DEFAULT_RESUME_WAIT.as_millis() as u64)]
    resume_wait_ms: u64,
    /// A configuration for a Kafka topic the mirror creates (retention.ms, cleanup.policy, ...); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    topic_config: Vec<String>,
    /// Take the directory's lock and record the position in partlog's committed offsets.
    #[arg(long)]
    record_offsets: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The partlog topic to import into.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    #[command(flatten)]
    connect: ConnectArgs,
    /// The Kafka consumer group that stores the import's committed offsets.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
}

fn failure(e: partlog_kafka::Error) -> Failure {
    match e {
        partlog_kafka::Error::Partlog(e) => e.into(),
        other => Failure::new(other.to_string()),
    }
}

pub fn mirror(a: MirrorArgs, dir: &std::path::Path) -> Outcome {
    let mut options = MirrorOptions::new(a.connect.connect()?).resume_wait(Duration::from_millis(a.resume_wait_ms));
    if let Some(t) = &a.connect.kafka_topic {
        options = options.kafka_topic(t);
    }
    for kv in &a.topic_config {
        let (k, v) = common::key_value(kv, "--topic-config")?;
        options = options.topic_config(k, v);
    }
    let writable =
        if a.record_offsets { Some(common::open_for_writing(dir, "mirror --record-offsets")?) } else { None };
    let result = (|| -> Result<(), Failure> {
        let mut m = match &writable {
            Some(d) => Mirror::from_dir(d, &a.topic, options).map_err(failure)?,
            None => {
                let source = common::open_read_only(dir)?.topic(&a.topic)?;
                Mirror::from_read_only(source, options).map_err(failure)?
            }
        };
        eprintln!(
            "partlog: mirroring `{}` to Kafka topic `{}` at {}, resuming at offsets {:?}",
            a.topic,
            m.kafka_topic(),
            a.connect.bootstrap_server,
            m.resumed_at()
        );
        let mut copied = m.catch_up().map_err(failure)?;
        if a.connect.follow {
            let every = Duration::from_millis(a.connect.report_interval_ms.max(1));
            let mut next_report = Instant::now();
            loop {
                copied += m.poll(Duration::from_millis(100)).map_err(failure)? as u64;
                if Instant::now() >= next_report {
                    let progress = m.progress().map_err(failure)?;
                    let lag: u64 = progress.iter().map(|p| p.lag()).sum();
                    let per: Vec<String> = progress.iter().map(|p| format!("{}:{}", p.partition, p.lag())).collect();
                    eprintln!("partlog: mirrored {copied} records, lag {lag} (per partition {})", per.join(" "));
                    next_report = Instant::now() + every;
                }
            }
        }
        m.close().map_err(failure)?;
        eprintln!(
            "partlog: mirrored {copied} records to Kafka topic `{}`",
            a.connect.kafka_topic.as_deref().unwrap_or(&a.topic)
        );
        Ok(())
    })();
    if let Some(d) = writable {
        common::close(d)?;
    }
    result.map(|()| OK)
}

pub fn import(a: ImportArgs, dir: &std::path::Path) -> Outcome {
    let mut options = ImportOptions::new(a.connect.connect()?);
    if let Some(t) = &a.connect.kafka_topic {
        options = options.kafka_topic(t);
    }
    if let Some(g) = &a.group {
        options = options.group(g);
    }
    let d = common::open_or_create(dir, "import")?;
    let result = (|| -> Result<(), Failure> {
        let mut imp = Import::new(&d, &a.topic, options).map_err(failure)?;
        eprintln!(
            "partlog: importing Kafka topic `{}` at {} into `{}`, resuming at Kafka offsets {:?}",
            imp.kafka_topic(),
            a.connect.bootstrap_server,
            a.topic,
            imp.resumed_at()
        );
        let mut copied = imp.catch_up().map_err(failure)?;
        if a.connect.follow {
            let every = Duration::from_millis(a.connect.report_interval_ms.max(1));
            let mut next_report = Instant::now();
            loop {
                copied += imp.poll(Duration::from_millis(100)).map_err(failure)? as u64;
                if Instant::now() >= next_report {
                    eprintln!("partlog: imported {copied} records, lag {}", imp.lag().map_err(failure)?);
                    next_report = Instant::now() + every;
                }
            }
        }
        imp.close().map_err(failure)?;
        eprintln!("partlog: imported {copied} records into `{}`", a.topic);
        Ok(())
    })();
    common::close(d)?;
    result.map(|()| OK)
}
