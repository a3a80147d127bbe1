//! partlog's consumer API against partlog's own partition reads (the peers have no consumer
//! groups): append → poll wake-up latency (blocking `poll` and the async `Stream`), consumer
//! throughput against raw `Partition` reads of the same topic, and commit rates from 1 and 8
//! threads with and without fsync.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use partlog::{ConsumerConfig, LogDir, OffsetAndMetadata, Record, TopicConfig, TopicPartition};

use crate::cli::{Cfg, OrDie, die};
use crate::fixture::{BATCH, POOL, Values, tempdir};
use crate::report::Report;
use crate::report::{Cell, fmt_ns, fmt_rate, fmt_ratio, median, pct, per_sec, progress};

/// Wake-ups measured per latency run.
const WAKEUPS: usize = 2_000;
/// Records in the throughput topic.
const TOPIC_RECORDS: usize = 1_000_000;
/// The producer's pause between wake-ups when the consumer should still be looking, and when
/// it should have parked (its spin or yield lasts 50 µs).
const BUSY_PAUSE_US: u64 = 20;
const PARKED_PAUSE_US: u64 = 1_000;

/// Partitions of the throughput topic.
const TOPIC_PARTITIONS: u32 = 3;

pub fn run(rep: &mut Report, cfg: &Cfg, v: &Values) {
    rep.line("\n### Consumers (partlog only: the peers have no consumer API)\n");
    let rounds = cfg.rounds.max(1);

    // Append → poll.
    let mut sync_med = Vec::new();
    let mut sync_p99 = Vec::new();
    let mut async_med = Vec::new();
    let mut async_p99 = Vec::new();
    let mut parked: [Vec<f64>; 4] = Default::default();
    rep.line(format!(
        "Append → wake-up: a consumer blocked in `poll` (or awaiting its `Stream`) on an empty topic, another thread \
         appends one record, then waits until it is consumed and pauses; latency from before `append` to the record \
         in the consumer's hands. {WAKEUPS} records per round. Busy: a {BUSY_PAUSE_US} µs pause, so the append lands \
         while the caught-up consumer still looks (it spins or yields for 50 µs before it parks). Parked: a \
         {PARKED_PAUSE_US} µs pause, so the consumer's thread or task is asleep and the append has to wake it.\n"
    ));
    rep.line(
        "| round | busy poll median | busy poll p99 | busy stream median | busy stream p99 | parked poll median / p99 | parked stream median / p99 |",
    );
    rep.line("|---|---:|---:|---:|---:|---:|---:|");
    for r in 0..rounds {
        progress(format!("consumer: wake-up round {}", r + 1));
        let busy = Duration::from_micros(BUSY_PAUSE_US);
        let quiet = Duration::from_micros(PARKED_PAUSE_US);
        let s = wakeups(cfg, v, false, busy);
        let a = wakeups(cfg, v, true, busy);
        let ps = wakeups(cfg, v, false, quiet);
        let pa = wakeups(cfg, v, true, quiet);
        rep.line(format!(
            "| {} | {} | {} | {} | {} | {} / {} | {} / {} |",
            r + 1,
            fmt_ns(pct(&s, 0.5)),
            fmt_ns(pct(&s, 0.99)),
            fmt_ns(pct(&a, 0.5)),
            fmt_ns(pct(&a, 0.99)),
            fmt_ns(pct(&ps, 0.5)),
            fmt_ns(pct(&ps, 0.99)),
            fmt_ns(pct(&pa, 0.5)),
            fmt_ns(pct(&pa, 0.99)),
        ));
        sync_med.push(pct(&s, 0.5));
        sync_p99.push(pct(&s, 0.99));
        async_med.push(pct(&a, 0.5));
        async_p99.push(pct(&a, 0.99));
        for (acc, x) in parked.iter_mut().zip([pct(&ps, 0.5), pct(&ps, 0.99), pct(&pa, 0.5), pct(&pa, 0.99)]) {
            acc.push(x);
        }
    }
    let (sm, sp, am, ap) = (median(&sync_med), median(&sync_p99), median(&async_med), median(&async_p99));
    let pk: Vec<String> = parked.iter().map(|v| fmt_ns(median(v))).collect();
    rep.line(format!(
        "| **median** | **{}** | {} | **{}** | {} | {} / {} | {} / {} |",
        fmt_ns(sm),
        fmt_ns(sp),
        fmt_ns(am),
        fmt_ns(ap),
        pk[0],
        pk[1],
        pk[2],
        pk[3]
    ));
    partlog_only(rep, "Append → poll wake-up, busy", "median / p99", format!("{} / {}", fmt_ns(sm), fmt_ns(sp)));
    partlog_only(rep, "Append → Stream wake-up, busy", "median / p99", format!("{} / {}", fmt_ns(am), fmt_ns(ap)));
    partlog_only(rep, "Append → poll wake-up, parked", "median / p99", format!("{} / {}", pk[0], pk[1]));
    partlog_only(rep, "Append → Stream wake-up, parked", "median / p99", format!("{} / {}", pk[2], pk[3]));
    rep.goal(
        "append → poll median ≤ 20 µs, p99 ≤ 200 µs (busy)",
        format!("{} / {}", fmt_ns(sm), fmt_ns(sp)),
        Some(sm <= 20e3 && sp <= 200e3),
    );
    rep.goal(
        "append → Stream median ≤ 20 µs, p99 ≤ 200 µs (busy)",
        format!("{} / {}", fmt_ns(am), fmt_ns(ap)),
        Some(am <= 20e3 && ap <= 200e3),
    );

    // Throughput.
    let records = if cfg.quick { TOPIC_RECORDS / 4 } else { TOPIC_RECORDS };
    progress(format!("consumer: writing a {records}-record topic"));
    let fixture = tempdir(cfg, "consumer-topic");
    {
        let dir = LogDir::open(fixture.path()).or_die("partlog open dir");
        let t = dir.create_topic("t", TopicConfig::default().partitions(TOPIC_PARTITIONS)).or_die("create topic");
        let mut i = 0;
        while i < records {
            for p in 0..TOPIC_PARTITIONS {
                let k = BATCH.min(records - i);
                if k == 0 {
                    break;
                }
                let recs: Vec<Record<'_>> = (i..i + k).map(|j| Record::with_value(&v[j % POOL][..])).collect();
                t.append_batch_to(p, &recs).or_die("append");
                i += k;
            }
        }
        dir.close().or_die("close dir");
    }
    rep.line(format!(
        "\nConsumer throughput: a {records}-record topic of {TOPIC_PARTITIONS} partitions read to its end by one \
         consumer (`assign` all partitions, `poll` until every record is seen, values summed) and by `Partition` \
         readers of the same partitions one after the other (1 MiB chunks); records/s, both on a freshly opened \
         directory.\n"
    ));
    rep.line("| round | consumer | raw partitions | consumer / raw |");
    rep.line("|---|---:|---:|---:|");
    let mut ratios = Vec::new();
    let mut cons = Vec::new();
    let mut raws = Vec::new();
    for r in 0..rounds {
        progress(format!("consumer: throughput round {}", r + 1));
        let (c, raw) = if r % 2 == 0 {
            let c = consume_all(fixture.path(), records);
            (c, raw_all(fixture.path(), records))
        } else {
            let raw = raw_all(fixture.path(), records);
            (consume_all(fixture.path(), records), raw)
        };
        rep.line(format!("| {} | {} | {} | {} |", r + 1, fmt_rate(c), fmt_rate(raw), fmt_ratio(c / raw)));
        ratios.push(c / raw);
        cons.push(c);
        raws.push(raw);
    }
    let q = median(&ratios);
    rep.line(format!(
        "| **median** | **{}** | {} | **{}** |",
        fmt_rate(median(&cons)),
        fmt_rate(median(&raws)),
        fmt_ratio(q)
    ));
    partlog_only(
        rep,
        "Consumer poll loop, 3 partitions",
        "records/s (vs raw partition reads)",
        format!("{} ({} of raw)", fmt_rate(median(&cons)), fmt_ratio(q)),
    );
    rep.goal("consumer throughput ≥ 80% of raw partition reads", fmt_ratio(q), Some(q >= 0.8));

    // Commits.
    let secs = cfg.fsync_secs.max(0.2);
    rep.line(format!(
        "\nCommit rate: each thread owns one consumer (its own group, manual assignment of one partition of an \
         8-partition topic) and commits a new offset in a loop for {secs:.1} s; commits/s over all threads. \
         fsync'd: the offsets topic as created (`flush.messages=1`, concurrent commits share fsyncs); page cache: \
         the offsets topic altered to `flush.messages=9223372036854775807`.\n"
    ));
    rep.line("| round | fsync'd 1T | fsync'd 8T | 8T/1T | page cache 1T | page cache 8T | 8T/1T |");
    rep.line("|---|---:|---:|---:|---:|---:|---:|");
    let mut durable_scale = Vec::new();
    let mut rates: [Vec<f64>; 4] = Default::default();
    for r in 0..rounds {
        progress(format!("consumer: commit round {}", r + 1));
        let d1 = commits(cfg, 1, secs, true);
        let d8 = commits(cfg, 8, secs, true);
        let o1 = commits(cfg, 1, secs, false);
        let o8 = commits(cfg, 8, secs, false);
        rep.line(format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r + 1,
            fmt_rate(d1),
            fmt_rate(d8),
            fmt_ratio(d8 / d1),
            fmt_rate(o1),
            fmt_rate(o8),
            fmt_ratio(o8 / o1)
        ));
        durable_scale.push(d8 / d1);
        for (i, x) in [d1, d8, o1, o8].into_iter().enumerate() {
            rates[i].push(x);
        }
    }
    let m: [f64; 4] = std::array::from_fn(|i| median(&rates[i]));
    let ds = median(&durable_scale);
    rep.line(format!(
        "| **median** | **{}** | **{}** | **{}** | **{}** | **{}** | {} |",
        fmt_rate(m[0]),
        fmt_rate(m[1]),
        fmt_ratio(ds),
        fmt_rate(m[2]),
        fmt_rate(m[3]),
        fmt_ratio(m[3] / m[2])
    ));
    partlog_only(rep, "Commit, fsync'd", "commits/s 1T / 8T", format!("{} / {}", fmt_rate(m[0]), fmt_rate(m[1])));
    partlog_only(rep, "Commit, page cache", "commits/s 1T / 8T", format!("{} / {}", fmt_rate(m[2]), fmt_rate(m[3])));
    rep.goal("fsync'd commits, 8 threads ≥ 5× 1 thread", fmt_ratio(ds), Some(ds >= 5.0));
}

/// A summary row with partlog's value only.
fn partlog_only(rep: &mut Report, workload: &str, metric: &str, value: String) {
    let na = || Cell::NotApplicable("no consumer API");
    rep.summary_row(workload, metric, [Cell::Value(value), na(), na(), na(), Cell::NotApplicable("—")], [None; 4]);
}

/// Append → consume latencies (ns), sorted.
fn wakeups(cfg: &Cfg, v: &Values, stream: bool, pause_for: Duration) -> Vec<f64> {
    let tmp = tempdir(cfg, "wakeup");
    let dir = LogDir::open(tmp.path()).or_die("partlog open dir");
    let topic = dir.create_topic("w", TopicConfig::default()).or_die("create topic");
    let mut consumer =
        dir.consumer(ConsumerConfig::new().set("auto.offset.reset", "earliest").or_die("config")).or_die("consumer");
    consumer.assign(&[TopicPartition::new("w", 0)]).or_die("assign");
    let seen = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(2));
    let producer = {
        let (seen, start) = (Arc::clone(&seen), Arc::clone(&start));
        let v0 = v[0];
        std::thread::spawn(move || {
            start.wait();
            let mut sent = Vec::with_capacity(WAKEUPS);
            for i in 0..WAKEUPS {
                let t = Instant::now();
                topic.append(Record::with_value(&v0[..])).or_die("append");
                sent.push(t);
                while seen.load(Ordering::Acquire) <= i {
                    std::hint::spin_loop();
                }
                let pause = Instant::now();
                while pause.elapsed() < pause_for {
                    std::hint::spin_loop();
                }
            }
            sent
        })
    };
    let mut got = Vec::with_capacity(WAKEUPS);
    start.wait();
    if stream {
        let mut s = consumer.stream();
        block_on(async {
            while got.len() < WAKEUPS {
                let r = next(&mut s).await.unwrap_or_else(|| die("stream ended"));
                r.or_die("stream");
                got.push(Instant::now());
                seen.fetch_add(1, Ordering::Release);
            }
        });
    } else {
        while got.len() < WAKEUPS {
            let recs = consumer.poll(Duration::from_secs(5)).or_die("poll");
            for _ in recs.iter() {
                got.push(Instant::now());
                seen.fetch_add(1, Ordering::Release);
            }
        }
    }
    let sent = producer.join().unwrap_or_else(|_| die("producer panicked"));
    let mut lat: Vec<f64> = sent.iter().zip(&got).map(|(s, g)| g.duration_since(*s).as_nanos() as f64).collect();
    lat.sort_by(f64::total_cmp);
    drop(consumer);
    dir.close().or_die("close dir");
    lat
}

/// Consumer records/s reading the whole topic.
fn consume_all(path: &std::path::Path, records: usize) -> f64 {
    let dir = LogDir::open(path).or_die("partlog open dir");
    let mut c = dir
        .consumer(
            ConsumerConfig::new()
                .set("auto.offset.reset", "earliest")
                .and_then(|c| c.set("max.poll.records", "100000"))
                .or_die("config"),
        )
        .or_die("consumer");
    let tps: Vec<TopicPartition> = (0..TOPIC_PARTITIONS).map(|p| TopicPartition::new("t", p)).collect();
    c.assign(&tps).or_die("assign");
    let mut n = 0usize;
    let mut sum = 0u64;
    let t = Instant::now();
    while n < records {
        let recs = c.poll(Duration::from_secs(5)).or_die("poll");
        if recs.is_empty() {
            die("consumer: poll returned nothing before the end");
        }
        for r in recs.iter() {
            sum += u64::from(r.value().map_or(0, |b| b[0]));
            n += 1;
        }
    }
    let d = t.elapsed();
    std::hint::black_box(sum);
    if n != records {
        die(format!("consumer: {n} records, expected {records}"));
    }
    drop(c);
    dir.close().or_die("close dir");
    per_sec(n, d)
}

/// Raw `Partition` reader records/s over the same partitions.
fn raw_all(path: &std::path::Path, records: usize) -> f64 {
    let dir = LogDir::open(path).or_die("partlog open dir");
    let topic = dir.topic("t").or_die("topic");
    let mut n = 0usize;
    let mut sum = 0u64;
    let t = Instant::now();
    for p in topic.partitions() {
        let mut reader = p.reader(0);
        while let Some(chunk) = reader.next_records().or_die("read") {
            for r in chunk.iter() {
                sum += u64::from(r.value().map_or(0, |b| b[0]));
                n += 1;
            }
        }
    }
    let d = t.elapsed();
    std::hint::black_box(sum);
    if n != records {
        die(format!("raw: {n} records, expected {records}"));
    }
    drop(topic);
    dir.close().or_die("close dir");
    per_sec(n, d)
}

/// Commits/s from `threads` threads for `secs`.
fn commits(cfg: &Cfg, threads: usize, secs: f64, durable: bool) -> f64 {
    let tmp = tempdir(cfg, "commits");
    let dir = LogDir::open(tmp.path()).or_die("partlog open dir");
    dir.create_topic("c", TopicConfig::default().partitions(8)).or_die("create topic");
    let mut consumers: Vec<_> = (0..threads)
        .map(|i| {
            let mut c = dir
                .consumer(ConsumerConfig::new().group_id(format!("g{i}")).enable_auto_commit(false))
                .or_die("consumer");
            c.assign(&[TopicPartition::new("c", i as u32)]).or_die("assign");
            c
        })
        .collect();
    // The first commit creates the offsets topic.
    consumers[0].commit_offsets(&[(TopicPartition::new("c", 0), OffsetAndMetadata::new(0))]).or_die("commit");
    if !durable {
        dir.alter_topic_config("__consumer_offsets", &[("flush.messages", "9223372036854775807")])
            .or_die("alter offsets topic");
    }
    let stop = AtomicBool::new(false);
    let total = AtomicUsize::new(0);
    let barrier = Barrier::new(threads + 1);
    let d = std::thread::scope(|s| {
        for (i, c) in consumers.iter_mut().enumerate() {
            let (stop, total, barrier) = (&stop, &total, &barrier);
            s.spawn(move || {
                let tp = TopicPartition::new("c", i as u32);
                barrier.wait();
                let mut k = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    c.commit_offsets(&[(tp.clone(), OffsetAndMetadata::new(k))]).or_die("commit");
                    k += 1;
                }
                total.fetch_add(k as usize - 1, Ordering::Relaxed);
            });
        }
        barrier.wait();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        t
    });
    let elapsed = d.elapsed();
    drop(consumers);
    dir.close().or_die("close dir");
    per_sec(total.load(Ordering::Relaxed), elapsed)
}

/// The stream's next item.
fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> impl Future<Output = Option<S::Item>> + '_ {
    std::future::poll_fn(move |cx| Pin::new(&mut *s).poll_next(cx))
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `f` on this thread, parking while it is pending (a minimal executor: no runtime).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
