//! What the Kafka tests share: the broker address (or a skip), unique names, a plain Kafka
//! consumer and producer that do not go through the crate's code, Kafka's partitioner written
//! out again, and a seeded random source.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The broker under test, or `None` (and a printed line) when there is none.
pub fn bootstrap(test: &str) -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(s) if !s.is_empty() => Some(s),
        _ => {
            // Straight to the standard error stream, past the test harness's capture, so
            // that a plain `cargo test` shows what did not run.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "{test}: skipped: KAFKA_BOOTSTRAP_SERVERS is not set (.ci/kafka starts a broker and sets it)"
            );
            None
        }
    }
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{}-{}", std::process::id(), nanos % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("log_level", "0");
    c
}

/// Creates a Kafka topic directly (not through the crate).
pub fn create_kafka_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) -> TestResult {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create()?;
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in futures_executor::block_on(admin.create_topics([&t], &opts))? {
        r.map_err(|(t, e)| format!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// A record read back from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Every record of every partition of `topic`, read with a plain consumer from the start to
/// the high watermark.
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Result<Vec<Vec<KafkaRecord>>, Box<dyn std::error::Error>> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", unique("test-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let mut ends = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        ends.push(high);
        tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
    }
    consumer.assign(&tpl)?;
    let mut out: Vec<Vec<KafkaRecord>> = (0..partitions).map(|_| Vec::new()).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    // The end of each partition is where the consumer reports it (its end-of-partition
    // event), not the high watermark alone: some brokers report the last batch's base
    // offset + 1 there.
    let mut eof: Vec<bool> = ends.iter().map(|&e| e <= 0).collect();
    while !eof.iter().all(|&e| e) {
        if Instant::now() > deadline {
            return Err(format!(
                "reading {topic} back took too long: {:?} of {ends:?}",
                out.iter().map(Vec::len).collect::<Vec<_>>()
            )
            .into());
        }
        let m = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                let reached =
                    out.get(p as usize).and_then(|v| v.last()).is_some_and(|r| r.offset + 1 >= ends[p as usize]);
                if let (true, Some(e)) = (reached, eof.get_mut(p as usize)) {
                    *e = true;
                }
                continue;
            }
            Some(m) => m?,
        };
        let headers = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect())
            .unwrap_or_default();
        let rec = KafkaRecord {
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        };
        if let Some(v) = out.get_mut(m.partition() as usize) {
            v.push(rec);
        }
    }
    Ok(out)
}

/// The partlog offset a mirrored Kafka record carries.
pub fn partlog_offset(r: &KafkaRecord) -> Option<u64> {
    let (_, v) = r.headers.iter().rev().find(|(k, _)| k == "partlog.offset")?;
    Some(u64::from_be_bytes(v.as_deref()?.try_into().ok()?))
}

/// Kafka's `Utils.murmur2`, written out from Kafka's source independently of partlog's.
pub fn kafka_murmur2(data: &[u8]) -> i32 {
    let length = data.len() as i32;
    let seed: i32 = 0x9747b28c_u32 as i32;
    let m: i32 = 0x5bd1e995;
    let r = 24;
    let mut h: i32 = seed ^ length;
    let length4 = length / 4;
    for i in 0..length4 as usize {
        let i4 = i * 4;
        let mut k: i32 = (data[i4] as i32 & 0xff)
            + ((data[i4 + 1] as i32 & 0xff) << 8)
            + ((data[i4 + 2] as i32 & 0xff) << 16)
            + ((data[i4 + 3] as i32 & 0xff) << 24);
        k = k.wrapping_mul(m);
        k ^= ((k as u32) >> r) as i32;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let base = (length & !3) as usize;
    match length % 4 {
        3 => {
            h ^= (data[base + 2] as i32 & 0xff) << 16;
            h ^= (data[base + 1] as i32 & 0xff) << 8;
            h ^= data[base] as i32 & 0xff;
            h = h.wrapping_mul(m);
        }
        2 => {
            h ^= (data[base + 1] as i32 & 0xff) << 8;
            h ^= data[base] as i32 & 0xff;
            h = h.wrapping_mul(m);
        }
        1 => {
            h ^= data[base] as i32 & 0xff;
            h = h.wrapping_mul(m);
        }
        _ => {}
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(m);
    h ^= ((h as u32) >> 15) as i32;
    h
}

/// Kafka's `BuiltInPartitioner.partitionForKey`: `toPositive(murmur2(key)) % n`.
pub fn kafka_partition(key: &[u8], n: u32) -> u32 {
    ((kafka_murmur2(key) & 0x7fffffff) as u32) % n
}

/// A small seeded generator (xorshift64*), so a randomized run can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `PARTLOG_KAFKA_SEED`, else from the clock; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("PARTLOG_KAFKA_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        println!("{test}: seed {seed} (replay with PARTLOG_KAFKA_SEED={seed})");
        Rng(seed | 1)
    }

    /// A second generator, seeded from this one.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next() | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(1, |a| a.port())
}

/// A broker of the test's own (the `tansu` binary on the PATH, in-memory storage), stopped
/// when dropped; for tests that take a broker away.
pub struct Broker {
    child: Option<std::process::Child>,
    pub port: u16,
}

impl Broker {
    /// Starts one on `port` (a free one when 0); `None` when `tansu` is not installed.
    pub fn start(port: u16) -> Result<Option<Broker>, Box<dyn std::error::Error>> {
        let port = if port == 0 { dead_port() } else { port };
        let url = format!("tcp://127.0.0.1:{port}");
        let spawned = std::process::Command::new("tansu")
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &format!("memory://test-{port}/")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let broker = Broker { child: Some(child), port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("the test's broker did not listen on {port}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(broker))
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL: it holds nothing worth keeping) and waits for it.
    pub fn stop(&mut self) -> TestResult {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// One kill cycle: runs the ignored test `child` of this test binary in a new process with
/// `env`, lets it work for `run`, then kills it with SIGKILL. A child that exited by itself
/// fails the cycle with what it printed on standard error.
pub fn run_then_kill(child: &str, env: &[(&str, &str)], run: Duration, what: &str) -> TestResult {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["--ignored", "--exact", child, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut c = cmd.spawn()?;
    std::thread::sleep(run);
    if let Some(status) = c.try_wait()? {
        let mut err = String::new();
        if let Some(mut e) = c.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err)?;
        }
        return Err(format!("the {what} exited by itself ({status}): {err}").into());
    }
    c.kill()?; // SIGKILL
    c.wait()?;
    Ok(())
}
