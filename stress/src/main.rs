//! partlog-stress: a supervisor that runs worker processes on one log directory, kills each
//! with SIGKILL at a random moment, and checks the directory against the expected state the
//! worker reported. See README.md.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use partlog::{CleanupPolicy, ConsumerConfig, LogDir, OffsetReset, Record, TopicConfig, TopicPartition};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The topic appended to, with retention by size.
const STREAM: &str = "stream";
const STREAM_PARTITIONS: u32 = 2;
/// The compacted topic.
const TABLE: &str = "table";
const KEYS: u64 = 16;
const GROUP: &str = "stress";

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The bytes written at `offset` of `topic`/`partition`.
fn value_for(topic: &str, partition: u32, offset: u64) -> Vec<u8> {
    let mut v = format!("{topic}/{partition}@{offset}:").into_bytes();
    v.resize(v.len() + (offset.wrapping_mul(31) % 200) as usize, b'a' + (offset % 26) as u8);
    v
}

fn key_for(offset: u64) -> String {
    format!("key-{}", offset % KEYS)
}

fn stream_config() -> TopicConfig {
    TopicConfig::default()
        .partitions(STREAM_PARTITIONS)
        .segment_bytes(16 << 10)
        .index_interval_bytes(1024)
        .retention_bytes(Some(128 << 10))
}

fn table_config() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(32 << 10)
        .index_interval_bytes(512)
        .cleanup_policy(CleanupPolicy::COMPACT)
        .min_cleanable_dirty_ratio(0.05)
}

fn open_dir(path: &Path) -> Res<LogDir> {
    let d = LogDir::options().offsets_topic_num_partitions(1).open(path)?;
    if d.topic(STREAM).is_err() {
        d.create_topic(STREAM, stream_config())?;
    }
    if d.topic(TABLE).is_err() {
        d.create_topic(TABLE, table_config())?;
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// The worker.

struct Out(std::sync::Mutex<std::io::Stdout>);

impl Out {
    fn line(&self, s: &str) {
        let mut o = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }
}

/// Exits with status 3: a reader saw bytes that were never written where it read them.
fn wrong(msg: String) -> ! {
    eprintln!("WRONG {msg}");
    std::process::exit(3);
}

fn worker(path: &Path, seed: u64) -> Res {
    let dir = Arc::new(open_dir(path)?);
    let out = Arc::new(Out(std::sync::Mutex::new(std::io::stdout())));
    out.line("OPEN");
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // Appenders: one per partition, so the offset of each append is the log end before it.
    let parts: Vec<(&'static str, u32)> = (0..STREAM_PARTITIONS).map(|p| (STREAM, p)).chain([(TABLE, 0)]).collect();
    for (i, (topic, p)) in parts.into_iter().enumerate() {
        let (dir, out) = (Arc::clone(&dir), Arc::clone(&out));
        let mut rng = Rng(seed ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        threads.push(std::thread::spawn(move || -> partlog::Result<()> {
            let part = dir.topic(topic)?.partition(p)?;
            loop {
                let base = part.log_end_offset();
                let n = 1 + rng.below(4);
                let vals: Vec<Vec<u8>> = (base..base + n).map(|o| value_for(topic, p, o)).collect();
                let keys: Vec<String> = (base..base + n).map(key_for).collect();
                let recs: Vec<Record<'_>> =
                    vals.iter().zip(&keys).map(|(v, k)| Record::new().key(k.as_str()).value(v.as_slice())).collect();
                let info = part.append_batch(&recs)?;
                if info.base_offset != base {
                    wrong(format!("{topic}/{p}: append landed at {}, log end was {base}", info.base_offset));
                }
                out.line(&format!("A {topic} {p} {base} {n}"));
                // The compacted topic grows slowly, so compaction passes keep up with it.
                if topic == TABLE || rng.below(50) == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }));
    }
    // Readers: random offsets, every record checked.
    for i in 0..2u64 {
        let (dir, stop) = (Arc::clone(&dir), Arc::clone(&stop));
        let mut rng = Rng(seed ^ (i + 100).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        threads.push(std::thread::spawn(move || -> partlog::Result<()> {
            let topics = [dir.topic(STREAM)?, dir.topic(TABLE)?];
            while !stop.load(Ordering::Relaxed) {
                let t = &topics[rng.below(2) as usize];
                let p = rng.below(u64::from(t.partition_count())) as u32;
                let part = t.partition(p)?;
                let (start, end) = (part.log_start_offset(), part.log_end_offset());
                if end == start {
                    continue;
                }
                let at = start + rng.below(end - start);
                // Retention may move the log start under the read: then it is out of range.
                let Ok(recs) = part.read(at, 1 + rng.below(16 << 10) as usize) else { continue };
                for r in recs.iter() {
                    if r.value() != Some(&value_for(t.name(), p, r.offset())[..]) {
                        wrong(format!("reader: {}/{p}@{} holds other bytes", t.name(), r.offset()));
                    }
                }
            }
            Ok(())
        }));
    }
    // A consumer in a group, committing what it processed.
    {
        let (dir, out, stop) = (Arc::clone(&dir), Arc::clone(&out), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || -> partlog::Result<()> {
            let mut c = dir.consumer(
                ConsumerConfig::new()
                    .group_id(GROUP)
                    .enable_auto_commit(false)
                    .auto_offset_reset(OffsetReset::Earliest),
            )?;
            c.subscribe(&[STREAM])?;
            while !stop.load(Ordering::Relaxed) {
                let recs = c.poll(Duration::from_millis(20))?;
                let mut last: BTreeMap<u32, u64> = BTreeMap::new();
                for r in recs.iter() {
                    if r.value() != Some(&value_for(STREAM, r.partition(), r.offset())[..]) {
                        wrong(format!("consumer: {STREAM}/{}@{} holds other bytes", r.partition(), r.offset()));
                    }
                    last.insert(r.partition(), r.offset() + 1);
                }
                if last.is_empty() {
                    continue;
                }
                c.commit()?;
                for (p, o) in last {
                    out.line(&format!("C {p} {o}"));
                }
            }
            Ok(())
        }));
    }
    // Maintenance: retention and compaction passes.
    {
        let (dir, out, stop) = (Arc::clone(&dir), Arc::clone(&out), Arc::clone(&stop));
        let mut rng = Rng(seed ^ 0xC0FF_EE00);
        threads.push(std::thread::spawn(move || -> partlog::Result<()> {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5 + rng.below(40)));
                let t = dir.topic(STREAM)?;
                let reports = t.run_retention()?;
                for (p, _) in reports.iter().enumerate() {
                    out.line(&format!("R {p} {}", t.partition(p as u32)?.log_start_offset()));
                }
                if rng.below(2) == 0 {
                    let table = dir.topic(TABLE)?.partition(0)?;
                    table.roll()?;
                    table.compact()?;
                    check_latest_per_key(&table);
                }
            }
            Ok(())
        }));
    }
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => wrong("a worker thread panicked".into()),
        }
    }
    Ok(())
}

/// Right after a compaction pass: below the active segment no record can have been superseded
/// by one the pass did not see, so each key's newest record there (known from the offsets:
/// keys repeat every `KEYS` offsets) must still be readable.
fn check_latest_per_key(table: &partlog::Partition) {
    let Some(active) = table.segments().last().map(|s| s.base_offset) else { return };
    let from = active.saturating_sub(2 * KEYS).max(table.log_start_offset());
    let mut seen = std::collections::BTreeSet::new();
    let mut at = from;
    while at < active {
        let Ok(recs) = table.read(at, 1 << 16) else { return };
        if recs.is_empty() {
            break;
        }
        for r in recs.iter().filter(|r| r.offset() < active) {
            seen.insert(r.offset());
        }
        at = recs.next_fetch_offset();
    }
    for o in active.saturating_sub(KEYS).max(from)..active {
        if !seen.contains(&o) {
            wrong(format!("{TABLE}: after compaction, the newest record of {} (offset {o}) is gone", key_for(o)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The supervisor and its oracle.

/// What the workers acknowledged so far, across all cycles.
#[derive(Default)]
struct Expected {
    /// Per (topic, partition): acknowledged log end.
    end: BTreeMap<(String, u32), u64>,
    /// Per stream partition: the log start an acknowledged retention pass reached.
    start: BTreeMap<u32, u64>,
    /// Per stream partition: the last acknowledged commit.
    committed: BTreeMap<u32, u64>,
}

impl Expected {
    fn apply(&mut self, line: &str) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["A", topic, p, base, n] => {
                if let (Ok(p), Ok(base), Ok(n)) = (p.parse(), base.parse::<u64>(), n.parse::<u64>()) {
                    let e = self.end.entry(((*topic).to_owned(), p)).or_default();
                    *e = (*e).max(base + n);
                }
            }
            ["R", p, start] => {
                if let (Ok(p), Ok(s)) = (p.parse(), start.parse()) {
                    let e = self.start.entry(p).or_default();
                    *e = (*e).max(s);
                }
            }
            ["C", p, o] => {
                if let (Ok(p), Ok(o)) = (p.parse(), o.parse()) {
                    let e = self.committed.entry(p).or_default();
                    *e = (*e).max(o);
                }
            }
            _ => {}
        }
    }
}

/// Checks the directory against everything acknowledged; returns a summary.
fn verify(path: &Path, exp: &mut Expected) -> Res<String> {
    let d = open_dir(path)?;
    let mut summary = Vec::new();
    for p in 0..STREAM_PARTITIONS {
        let part = d.topic(STREAM)?.partition(p)?;
        let (start, end) = (part.log_start_offset(), part.log_end_offset());
        let acked_end = exp.end.get(&(STREAM.to_owned(), p)).copied().unwrap_or(0);
        let acked_start = exp.start.get(&p).copied().unwrap_or(0);
        if end < acked_end {
            return Err(format!("{STREAM}/{p}: appends acknowledged up to {acked_end}, log end {end}").into());
        }
        if start < acked_start {
            return Err(format!("{STREAM}/{p}: retention reached {acked_start}, log start is {start}").into());
        }
        let mut o = start;
        for r in part.iter(start) {
            let r = r?;
            if r.offset != o || r.value.as_deref() != Some(&value_for(STREAM, p, o)[..]) {
                return Err(format!("{STREAM}/{p}: offset {o}: found offset {} with other bytes", r.offset).into());
            }
            o += 1;
        }
        if o != end {
            return Err(format!("{STREAM}/{p}: read up to {o}, log end {end}").into());
        }
        exp.end.insert((STREAM.to_owned(), p), end);
        exp.start.insert(p, start);
        summary.push(format!("{STREAM}/{p} [{start}, {end})"));
    }
    // The compacted topic: offsets increase, bytes are the ones written, and each key's newest
    // acknowledged record (or a later one of that key) is there.
    let table = d.topic(TABLE)?.partition(0)?;
    let end = table.log_end_offset();
    let acked_end = exp.end.get(&(TABLE.to_owned(), 0)).copied().unwrap_or(0);
    if end < acked_end {
        return Err(format!("{TABLE}: appends acknowledged up to {acked_end}, log end {end}").into());
    }
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    let mut prev: Option<u64> = None;
    let mut n = 0u64;
    for r in table.iter(table.log_start_offset()) {
        let r = r?;
        if prev.is_some_and(|p| r.offset <= p) || r.value.as_deref() != Some(&value_for(TABLE, 0, r.offset)[..]) {
            return Err(format!("{TABLE}: offset {} out of order or holding other bytes", r.offset).into());
        }
        if r.key.as_deref() != Some(key_for(r.offset).as_bytes()) {
            return Err(format!("{TABLE}: offset {} has another key", r.offset).into());
        }
        prev = Some(r.offset);
        latest.insert(key_for(r.offset), r.offset);
        n += 1;
    }
    for k in 0..KEYS.min(acked_end) {
        let newest = (acked_end.saturating_sub(KEYS)..acked_end).rev().find(|o| o % KEYS == k).unwrap_or(k);
        if latest.get(&key_for(newest)).is_none_or(|&o| o < newest) {
            return Err(format!("{TABLE}: key {} lost its record at {newest}", key_for(newest)).into());
        }
    }
    exp.end.insert((TABLE.to_owned(), 0), end);
    summary.push(format!("{TABLE} {n} records to {end}"));
    // Committed offsets.
    let c = d.consumer(ConsumerConfig::new().group_id(GROUP).enable_auto_commit(false))?;
    for p in 0..STREAM_PARTITIONS {
        let got = c.committed(&TopicPartition::new(STREAM, p))?.map_or(0, |m| m.offset);
        let acked = exp.committed.get(&p).copied().unwrap_or(0);
        let end = exp.end.get(&(STREAM.to_owned(), p)).copied().unwrap_or(0);
        if got < acked || got > end {
            return Err(
                format!("group {GROUP}: {STREAM}/{p} committed {got}, acknowledged {acked}, log end {end}").into()
            );
        }
        exp.committed.insert(p, got);
    }
    drop(c);
    d.close()?;
    Ok(summary.join(", "))
}

struct Args {
    seconds: u64,
    seed: u64,
    dir: Option<PathBuf>,
    worker: bool,
}

fn args() -> Res<Args> {
    let mut a = Args { seconds: 60, seed: 0, dir: None, worker: false };
    let mut seed = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => a.seconds = it.next().ok_or("--seconds N")?.parse()?,
            "--seed" => seed = Some(it.next().ok_or("--seed N")?.parse()?),
            "--dir" => a.dir = Some(it.next().ok_or("--dir PATH")?.into()),
            "--worker" => a.worker = true,
            "-h" | "--help" => {
                println!("partlog-stress [--seconds N] [--seed N] [--dir PATH]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    a.seed = seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        t.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    Ok(a)
}

fn main() -> Res {
    let a = args()?;
    if a.worker {
        return worker(a.dir.as_deref().ok_or("--worker needs --dir")?, a.seed);
    }
    println!("partlog-stress: seed {} (replay with --seed {}), {} s", a.seed, a.seed, a.seconds);
    let tmp = tempfile::tempdir()?;
    let path = a.dir.clone().unwrap_or_else(|| tmp.path().join("logdir"));
    let mut rng = Rng(a.seed);
    let mut exp = Expected::default();
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let exe = std::env::current_exe()?;
    let mut cycle = 0u64;
    while Instant::now() < deadline {
        let worker_seed = rng.next();
        let run_ms = 100 + rng.below(1400);
        let mut child = Command::new(&exe)
            .args(["--worker", "--dir"])
            .arg(&path)
            .args(["--seed", &worker_seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let reader = std::thread::spawn(move || -> Vec<String> {
            BufReader::new(stdout).lines().map_while(Result::ok).collect()
        });
        std::thread::sleep(Duration::from_millis(run_ms));
        let _ = child.kill();
        let status = child.wait()?;
        let lines = reader.join().map_err(|_| "reader thread panicked")?;
        use std::os::unix::process::ExitStatusExt;
        if status.signal() != Some(libc::SIGKILL) {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return Err(format!("cycle {cycle} (seed {}): the worker exited by itself: {status}: {err}", a.seed).into());
        }
        let acked = lines.iter().filter(|l| !l.starts_with("OPEN")).count();
        for l in &lines {
            exp.apply(l);
        }
        match verify(&path, &mut exp) {
            Ok(s) => println!("cycle {cycle}: killed after {run_ms} ms, {acked} acknowledgements; {s}"),
            Err(e) => return Err(format!("cycle {cycle} (seed {}): {e}", a.seed).into()),
        }
        cycle += 1;
    }
    println!("partlog-stress: {cycle} cycles passed (seed {})", a.seed);
    Ok(())
}
