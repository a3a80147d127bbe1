//! Power loss on a real kernel: ext4 on a loop device, cut mid-workload with the
//! `FS_IOC_GOINGDOWN` ioctl in `NOLOGFLUSH` mode (everything not yet committed to the journal
//! or fsynced is lost, as when the power goes), then unmounted, mounted again (journal replay,
//! as at boot) and checked.
//!
//! The simulated file system (`tests/crash_sim.rs`) checks partlog against a model of what a
//! disk keeps; this checks the model's main assumption against a real file system, and that
//! the real file system's barriers (`fdatasync`, the directory fsync in `StdFs`) are called at
//! all: the simulated tests never run `StdFs`.
//!
//! Each workload runs in a child process (this test binary re-executed with the `#[ignore]`d
//! `power_loss_child`), which prints `BEGIN <t> <op>` before and `ACK <t> <op>` after every
//! operation, `t` being `CLOCK_MONOTONIC` in nanoseconds. The parent takes the time, cuts the
//! disk, kills the child and checks that every operation acknowledged *before the cut began*
//! survived (the cut is not atomic with an `fdatasync` already in flight, which may return
//! success and still lose its data). Operations that began but were not acknowledged before
//! the cut may or may not have happened; nothing else may have.
//!
//! Workloads: appends under each durability policy (`EveryAppend`, `flush.messages`,
//! `flush.ms`, `Os` with explicit syncs), topic create and delete, truncation, retention,
//! compaction and consumer-group offset commits. Rounds continue on the same file system, so
//! recovery from earlier cuts is exercised too.
//!
//! Needs root, `/dev/loop-control`, `losetup`, `mkfs.ext4` and `mount`; elsewhere each test
//! prints `SKIP:` and passes. The mount and the loop device are always released (a guard with
//! `Drop`), also when a check fails. `PARTLOG_POWER_LOSS_ROUNDS` sets the rounds per workload
//! (default 2); seeds replay from `PARTLOG_SEED`. `.ci/power-loss` runs the long version.

#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use partlog::{
    CleanupPolicy, Clock, ConsumerConfig, Durability, LogDir, ManualClock, OffsetAndMetadata, Partition, Record,
    TopicConfig, TopicPartition,
};

mod common;
use common::{Rng, seed};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const ENV_DIR: &str = "PARTLOG_PL_DIR";
const ENV_WORKLOAD: &str = "PARTLOG_PL_WORKLOAD";
const ENV_SEED: &str = "PARTLOG_PL_SEED";
const ENV_ROUND: &str = "PARTLOG_PL_ROUND";

/// `_IOR('X', 125, __u32)`: shut the file system down.
const FS_IOC_GOINGDOWN: libc::c_ulong = 0x8004_587d;
/// Shut down without flushing the journal: what is not committed yet is lost.
const FS_GOINGDOWN_NOLOGFLUSH: u32 = 2;
/// The child stops after this many operations per run (then waits to be killed).
const CHILD_MAX_OPS: u64 = 20_000;

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------------------------
// The loop device, the mount, and their guard.

fn run(cmd: &str, args: &[&str]) -> TestResult<String> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!("{cmd} {args:?}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Why this machine cannot run the test, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (loop devices and mount)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control".into());
    }
    for tool in ["losetup", "mkfs.ext4", "mount", "umount"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} not found (apt-get install e2fsprogs util-linux mount)"));
        }
    }
    if !std::fs::read_to_string("/proc/filesystems").is_ok_and(|s| s.contains("ext4")) {
        return Some("the kernel has no ext4".into());
    }
    None
}

/// ext4 on a loop device over an image in a temporary directory, mounted at `mnt`. Dropping it
/// unmounts and detaches, whatever state the test left.
struct Disk {
    tmp: tempfile::TempDir,
    dev: String,
    mnt: PathBuf,
    mounted: bool,
}

impl Disk {
    fn new() -> TestResult<Disk> {
        let tmp = tempfile::Builder::new().prefix("partlog-power-loss-").tempdir()?;
        let img = tmp.path().join("disk.img");
        std::fs::File::create(&img)?.set_len(192 << 20)?;
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt)?;
        let dev = run("losetup", &["-f", "--show", img.to_str().ok_or("path")?])?;
        let mut disk = Disk { tmp, dev, mnt, mounted: false };
        run("mkfs.ext4", &["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", &disk.dev])?;
        disk.mount()?;
        Ok(disk)
    }

    /// Mounts with a long journal commit interval, so nothing becomes durable by the clock
    /// during a round: only through partlog's own barriers.
    fn mount(&mut self) -> TestResult {
        run("mount", &["-t", "ext4", "-o", "commit=600", &self.dev, self.mnt.to_str().ok_or("path")?])?;
        self.mounted = true;
        Ok(())
    }

    fn unmount(&mut self) -> TestResult {
        let mnt = self.mnt.to_str().ok_or("path")?.to_owned();
        let mut last = None;
        for _ in 0..50 {
            match run("umount", &[&mnt]) {
                Ok(_) => {
                    self.mounted = false;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(last.unwrap_or_else(|| "umount failed".into()))
    }

    /// The power cut: stop the file system without flushing its journal.
    fn cut(&self) -> TestResult {
        let f = std::fs::File::open(&self.mnt)?;
        let flag = FS_GOINGDOWN_NOLOGFLUSH;
        use std::os::fd::AsRawFd;
        // SAFETY: the ioctl reads a u32 from the pointer, which outlives the call.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GOINGDOWN as _, &flag as *const u32) };
        if rc != 0 {
            return Err(format!("FS_IOC_GOINGDOWN: {}", std::io::Error::last_os_error()).into());
        }
        Ok(())
    }

    /// After the cut: unmount and mount again, which replays the journal as a reboot would.
    fn reboot(&mut self) -> TestResult {
        self.unmount()?;
        self.mount()
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if self.mounted && self.unmount().is_err() {
            let _ = run("umount", &["-l", self.mnt.to_str().unwrap_or_default()]);
        }
        let _ = run("losetup", &["-d", &self.dev]);
        let _ = self.tmp.path();
    }
}

/// A child process, killed when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// What the child reports.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    t: u64,
    op: Vec<String>,
}

#[derive(Debug, Default)]
struct Report {
    /// Operations acknowledged before the cut began, in order.
    acked: Vec<Vec<String>>,
    /// Operations that began but were not acknowledged before the cut (one, or a few when the
    /// cut raced with an fsync).
    uncertain: Vec<Vec<String>>,
    /// Lines of `INFO` the child printed (its state at open).
    info: Vec<Vec<String>>,
}

fn after_tag<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.find(tag).map(|i| &line[i + tag.len()..])
}

fn parse(lines: &[String], cut_at: u64) -> Report {
    let mut begun: Vec<Event> = Vec::new();
    let mut acked: Vec<Event> = Vec::new();
    let mut info = Vec::new();
    for l in lines {
        let (tag, rest) = if let Some(r) = after_tag(l, "BEGIN ") {
            ("B", r)
        } else if let Some(r) = after_tag(l, "ACK ") {
            ("A", r)
        } else if let Some(r) = after_tag(l, "INFO ") {
            info.push(r.split_whitespace().map(str::to_owned).collect());
            continue;
        } else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let Some(t) = w.next().and_then(|t| t.parse().ok()) else { continue };
        let e = Event { t, op: w.map(str::to_owned).collect() };
        if tag == "B" { begun.push(e) } else { acked.push(e) }
    }
    let done: Vec<Vec<String>> = acked.iter().filter(|e| e.t < cut_at).map(|e| e.op.clone()).collect();
    let uncertain = begun.iter().skip(done.len()).map(|e| e.op.clone()).collect();
    Report { acked: done, uncertain, info }
}

// ---------------------------------------------------------------------------------------------
// Workloads: the child side.

fn value_for(o: u64, generation: u64) -> Vec<u8> {
    let mut v = format!("g{generation}-o{o}:").into_bytes();
    v.resize(v.len() + (o.wrapping_mul(7) % 90) as usize, b'a' + (o % 26) as u8);
    v
}

/// The generation a value was written in, if it is a value for offset `o`.
fn generation_of(o: u64, v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let g: u64 = s.strip_prefix('g')?.split('-').next()?.parse().ok()?;
    (value_for(o, g) == v).then_some(g)
}

fn key_for(o: u64) -> String {
    format!("k{}", o % 7)
}

struct Out(std::io::StdoutLock<'static>);

impl Out {
    fn line(&mut self, tag: &str, op: &str) -> TestResult {
        writeln!(self.0, "{tag} {} {op}", now_ns())?;
        self.0.flush()?;
        Ok(())
    }
    /// Runs `f` between a `BEGIN` and an `ACK` line for `op`.
    fn op<T>(&mut self, op: &str, f: impl FnOnce() -> partlog::Result<T>) -> TestResult<T> {
        self.line("BEGIN", op)?;
        let r = f()?;
        self.line("ACK", op)?;
        Ok(r)
    }
}

fn pause(rng: &mut Rng, max_us: u64) {
    std::thread::sleep(Duration::from_micros(rng.below(max_us)));
}

fn partition_config(workload: &str) -> TopicConfig {
    let base = TopicConfig::default().segment_bytes(16 << 10).index_interval_bytes(512);
    match workload {
        "every-append" | "truncate" => base.durability(Durability::EveryAppend),
        "flush-messages" => base.durability(Durability::Periodic { messages: Some(4), interval: None }),
        "flush-ms" => {
            base.durability(Durability::Periodic { messages: None, interval: Some(Duration::from_millis(20)) })
        }
        "retention" => base.segment_bytes(1 << 10).retention_bytes(Some(2 << 10)).durability(Durability::EveryAppend),
        "compaction" => base
            .segment_bytes(2 << 10)
            .cleanup_policy(CleanupPolicy::COMPACT)
            .min_cleanable_dirty_ratio(0.01)
            .durability(Durability::EveryAppend),
        _ => base.durability(Durability::Os),
    }
}

/// Appends under the durability of `workload`, acknowledging only what that policy promises
/// to keep: every append (`EveryAppend`), every 4th record (`flush.messages=4`), an append
/// 20 ms of (manual) clock after the last fsync (`flush.ms=20`), an explicit `sync()` (`Os`).
fn child_appends(dir: &Path, workload: &str, rng: &mut Rng, generation: u64, out: &mut Out) -> TestResult {
    let clock = ManualClock::new(1_700_000_000_000);
    let p = Partition::options().clock(clock.clone()).config(partition_config(workload)).open(dir.join("p"))?;
    writeln!(out.0, "INFO open {}", p.log_end_offset())?;
    out.0.flush()?;
    let mut unflushed = 0u64;
    let mut last_sync_ms = 0i64; // the partition's: no fsync yet since the open
    for i in 0..CHILD_MAX_OPS {
        let base = p.log_end_offset();
        let n = if rng.below(3) == 0 { rng.range(2, 3) } else { 1 };
        let vals: Vec<Vec<u8>> = (base..base + n).map(|o| value_for(o, generation)).collect();
        let recs: Vec<Record<'_>> = vals.iter().map(|v| Record::new().key("k").value(v.as_slice())).collect();
        clock.advance(7);
        let end = base + n;
        let durable = match workload {
            "every-append" => true,
            "flush-messages" => {
                unflushed += n;
                unflushed >= 4
            }
            "flush-ms" => clock.now_ms() - last_sync_ms >= 20,
            _ => false,
        };
        if durable {
            out.op(&format!("durable {end}"), || p.append_batch(&recs))?;
            unflushed = 0;
            last_sync_ms = clock.now_ms();
        } else {
            let info = p.append_batch(&recs)?;
            assert_eq!(info.base_offset, base, "child: offsets");
        }
        if workload == "os" && i % 5 == 4 {
            out.op(&format!("durable {end}"), || p.sync())?;
        }
        pause(rng, 500);
    }
    Ok(())
}

/// Creates and deletes topics, acknowledging each.
fn child_topics(dir: &Path, rng: &mut Rng, out: &mut Out) -> TestResult {
    let d = LogDir::options().offsets_topic_num_partitions(1).open(dir.join("d"))?;
    let mut live: Vec<u64> = d.topics()?.iter().filter_map(|t| t.strip_prefix('t')?.parse().ok()).collect();
    let mut next = live.iter().max().map_or(0, |m| m + 1);
    writeln!(out.0, "INFO topics {}", live.len())?;
    out.0.flush()?;
    for _ in 0..CHILD_MAX_OPS {
        if live.is_empty() || rng.below(5) < 3 {
            let i = next;
            next += 1;
            let cfg = TopicConfig::default().partitions(1 + (i % 2) as u32);
            out.op(&format!("create {i}"), || d.create_topic(&format!("t{i}"), cfg).map(drop))?;
            live.push(i);
        } else {
            let i = live.swap_remove(rng.below(live.len() as u64) as usize);
            out.op(&format!("delete {i}"), || d.delete_topic(&format!("t{i}")))?;
        }
        pause(rng, 6_000);
    }
    Ok(())
}

/// Appends (`EveryAppend`) and now and then truncates the tail.
fn child_truncate(dir: &Path, rng: &mut Rng, generation: u64, out: &mut Out) -> TestResult {
    let p = Partition::options().config(partition_config("truncate")).open(dir.join("p"))?;
    for _ in 0..CHILD_MAX_OPS {
        let end = p.log_end_offset();
        if end > 10 && rng.below(8) == 0 {
            let to = end - rng.range(1, 10);
            out.op(&format!("truncate {to}"), || p.truncate_to(to))?;
            pause(rng, 6_000);
            continue;
        }
        let n = if rng.below(3) == 0 { rng.range(2, 4) } else { 1 };
        let vals: Vec<Vec<u8>> = (end..end + n).map(|o| value_for(o, generation)).collect();
        let recs: Vec<Record<'_>> = vals.iter().map(|v| Record::new().key("k").value(v.as_slice())).collect();
        out.op(&format!("append {end} {n}"), || p.append_batch(&recs))?;
        pause(rng, 500);
    }
    Ok(())
}

/// Appends (`EveryAppend`) with retention by size, running a retention pass now and then.
fn child_retention(dir: &Path, rng: &mut Rng, generation: u64, out: &mut Out) -> TestResult {
    let p = Partition::options().config(partition_config("retention")).open(dir.join("p"))?;
    for i in 0..CHILD_MAX_OPS {
        let end = p.log_end_offset();
        let v = value_for(end, generation);
        out.op(&format!("durable {}", end + 1), || p.append(Record::new().key("k").value(v.as_slice())))?;
        if i >= 23 && i % 8 == 7 {
            out.op("retention", || p.run_retention())?;
            out.line("INFO", &format!("start {}", p.log_start_offset()))?;
            pause(rng, 8_000);
        }
        pause(rng, 300);
    }
    Ok(())
}

/// Appends keyed records (`EveryAppend`, compacted topic), compacting now and then.
fn child_compaction(dir: &Path, rng: &mut Rng, generation: u64, out: &mut Out) -> TestResult {
    let p = Partition::options().config(partition_config("compaction")).open(dir.join("p"))?;
    for i in 0..CHILD_MAX_OPS {
        let end = p.log_end_offset();
        let v = value_for(end, generation);
        let k = key_for(end);
        out.op(&format!("durable {}", end + 1), || p.append(Record::new().key(k.as_str()).value(v.as_slice())))?;
        if i % 12 == 11 {
            p.roll()?;
            out.op("compact", || p.compact())?;
            pause(rng, 8_000);
        }
        pause(rng, 300);
    }
    Ok(())
}

/// Commits ever larger offsets of a group.
fn child_commits(dir: &Path, rng: &mut Rng, out: &mut Out) -> TestResult {
    let d = LogDir::options().offsets_topic_num_partitions(1).open(dir.join("d"))?;
    if d.topic("in").is_err() {
        let t = d.create_topic("in", TopicConfig::default())?;
        for i in 0..50 {
            t.append(Record::new().key("k").value(format!("v{i}")))?;
        }
    }
    let mut c = d.consumer(ConsumerConfig::new().group_id("g").enable_auto_commit(false))?;
    let tp = TopicPartition::new("in", 0);
    c.assign(std::slice::from_ref(&tp))?;
    let first = c.committed(&tp)?.map_or(0, |m| m.offset) + 1;
    for o in first..first + CHILD_MAX_OPS {
        out.op(&format!("commit {o}"), || c.commit_offsets(&[(tp.clone(), OffsetAndMetadata::new(o))]))?;
        pause(rng, 3_000);
    }
    Ok(())
}

/// The child: runs one workload until the disk goes away or it is killed.
#[test]
#[ignore = "child process of the power_loss tests (does nothing unless PARTLOG_PL_DIR is set)"]
fn power_loss_child() -> TestResult {
    let Ok(dir) = std::env::var(ENV_DIR) else { return Ok(()) };
    let dir = PathBuf::from(dir);
    let workload = std::env::var(ENV_WORKLOAD)?;
    let mut rng = Rng(std::env::var(ENV_SEED)?.parse()?);
    let generation: u64 = std::env::var(ENV_ROUND)?.parse()?;
    let mut out = Out(std::io::stdout().lock());
    writeln!(out.0, "READY")?;
    out.0.flush()?;
    let r = match workload.as_str() {
        "topics" => child_topics(&dir, &mut rng, &mut out),
        "truncate" => child_truncate(&dir, &mut rng, generation, &mut out),
        "retention" => child_retention(&dir, &mut rng, generation, &mut out),
        "compaction" => child_compaction(&dir, &mut rng, generation, &mut out),
        "commits" => child_commits(&dir, &mut rng, &mut out),
        w => child_appends(&dir, w, &mut rng, generation, &mut out),
    };
    // After the cut every operation fails: report it and wait to be killed.
    writeln!(out.0, "STOPPED {r:?}")?;
    out.0.flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: rounds of run, cut, reboot, check.

/// Runs the child on `dir` and cuts the power `delay` after it reported ready; returns what it
/// acknowledged before the cut began.
fn round(disk: &mut Disk, workload: &str, child_seed: u64, generation: u64, delay: Duration) -> TestResult<Report> {
    let exe = std::env::current_exe()?;
    let mut child = ChildGuard(
        Command::new(exe)
            .args(["power_loss_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(ENV_DIR, &disk.mnt)
            .env(ENV_WORKLOAD, workload)
            .env(ENV_SEED, child_seed.to_string())
            .env(ENV_ROUND, generation.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Wait until the child acknowledged the workload's characteristic operation once, so
    // the cut lands among them.
    let mark = match workload {
        "topics" => " delete ",
        "truncate" => " truncate ",
        "retention" => " retention",
        "compaction" => " compact",
        _ => "ACK ",
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let seen = l.contains("ACK ") && l.contains(mark);
                lines.push(l);
                if seen {
                    break;
                }
            }
            Err(_) => {
                let _ = child.0.kill();
                let mut err = String::new();
                if let Some(mut e) = child.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("child never acknowledged an operation; output {lines:?}; stderr {err}").into());
            }
        }
    }
    std::thread::sleep(delay);
    let cut_at = now_ns();
    disk.cut()?;
    // Let operations racing with the cut finish failing, then kill the child.
    std::thread::sleep(Duration::from_millis(10));
    drop(child);
    let _ = reader.join();
    lines.extend(rx.try_iter());
    disk.reboot()?;
    Ok(parse(&lines, cut_at))
}

fn rounds() -> u64 {
    std::env::var("PARTLOG_POWER_LOSS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2)
}

/// Runs `rounds()` rounds of `workload`, checking each with `check` (which gets the report and
/// the mount point and keeps its own state across rounds).
fn power_loss(workload: &str, mut check: impl FnMut(&Report, &Path) -> TestResult<String>) -> TestResult {
    let name = format!("power_loss_{workload}");
    if let Some(why) = skip_reason() {
        println!("SKIP: {name}: {why}");
        return Ok(());
    }
    let seed = seed(&name);
    let mut rng = Rng(seed);
    let mut disk = Disk::new()?;
    for r in 0..rounds() {
        let delay = Duration::from_millis(rng.range(0, 40));
        let report = round(&mut disk, workload, rng.next_u64(), r + 1, delay)?;
        if report.acked.is_empty() {
            return Err(format!("{name} round {r}: nothing acknowledged before the cut").into());
        }
        let summary = check(&report, &disk.mnt).map_err(|e| format!("{name} round {r} (PARTLOG_SEED={seed}): {e}"))?;
        println!("{name} round {r}: cut after {delay:?}: {} acknowledged; {summary}", report.acked.len());
    }
    Ok(())
}

/// The largest `durable <end>` acknowledged.
fn durable_end(report: &Report) -> u64 {
    report.acked.iter().filter(|op| op[0] == "durable").filter_map(|op| op[1].parse().ok()).max().unwrap_or(0)
}

/// Checks a partition written by the append workloads: dense from its log start, every value
/// the one written at its offset, at least up to what was acknowledged as durable.
fn check_appended(p: &Partition, must_reach: u64) -> TestResult<u64> {
    let end = p.log_end_offset();
    if end < must_reach {
        return Err(format!("acknowledged as durable up to {must_reach}, only {end} survived power loss").into());
    }
    let mut o = p.log_start_offset();
    for r in p.iter(o) {
        let r = r?;
        if r.offset != o {
            return Err(format!("offset {o} missing (next is {})", r.offset).into());
        }
        let v = r.value.unwrap_or_default();
        if generation_of(o, &v).is_none() {
            return Err(format!("offset {o} holds bytes never written there: {:?}", String::from_utf8_lossy(&v)).into());
        }
        o += 1;
    }
    if o != end {
        return Err(format!("read up to {o}, log end {end}").into());
    }
    Ok(end)
}

fn append_workload(workload: &str) -> TestResult {
    let mut floor = 0u64;
    power_loss(workload, |report, mnt| {
        let p = Partition::options().config(partition_config(workload)).open(mnt.join("p"))?;
        let must = durable_end(report).max(floor);
        let end = check_appended(&p, must)?;
        p.close()?;
        // What survived this cut was synced at close: the next round must keep it.
        floor = end;
        Ok(format!("durable up to {must}, log end {end}"))
    })
}

#[test]
fn power_loss_every_append() -> TestResult {
    append_workload("every-append")
}

#[test]
fn power_loss_flush_messages() -> TestResult {
    append_workload("flush-messages")
}

#[test]
fn power_loss_flush_ms() -> TestResult {
    append_workload("flush-ms")
}

#[test]
fn power_loss_os_with_sync() -> TestResult {
    append_workload("os")
}

#[test]
fn power_loss_topic_create_delete() -> TestResult {
    // Topic number -> exists, as of the last check.
    let mut known: BTreeMap<u64, bool> = BTreeMap::new();
    power_loss("topics", |report, mnt| {
        let uncertain: BTreeSet<u64> = report.uncertain.iter().filter_map(|op| op[1].parse().ok()).collect();
        for op in &report.acked {
            let i: u64 = op[1].parse()?;
            known.insert(i, op[0] == "create");
        }
        let d = LogDir::options().offsets_topic_num_partitions(1).open(mnt.join("d"))?;
        let now: BTreeSet<u64> = d.topics()?.iter().filter_map(|t| t.strip_prefix('t')?.parse().ok()).collect();
        for (&i, &exists) in &known {
            if uncertain.contains(&i) {
                continue;
            }
            if now.contains(&i) != exists {
                let what = if exists { "created" } else { "deleted" };
                return Err(format!(
                    "topic t{i} was {what} (acknowledged before the cut), but after power loss it {}",
                    if exists { "is gone" } else { "exists" }
                )
                .into());
            }
        }
        for i in &now {
            if !known.contains_key(i) && !uncertain.contains(i) {
                return Err(format!("topic t{i} exists but was never created").into());
            }
            let t = d.topic(&format!("t{i}"))?;
            if t.partition_count() != 1 + (*i % 2) as u32 {
                return Err(format!("topic t{i} has {} partitions", t.partition_count()).into());
            }
        }
        for i in &uncertain {
            known.insert(*i, now.contains(i));
        }
        d.close()?;
        Ok(format!("{} topics", now.len()))
    })
}

#[test]
fn power_loss_truncate() -> TestResult {
    // The log as of the last check: (offset, generation) per record.
    let mut model: Vec<u64> = Vec::new();
    let mut generation = 0u64;
    power_loss("truncate", |report, mnt| {
        generation += 1;
        let mut m = model.clone();
        for op in &report.acked {
            match op[0].as_str() {
                "append" => {
                    let (at, n): (u64, u64) = (op[1].parse()?, op[2].parse()?);
                    if at != m.len() as u64 {
                        return Err(format!("append acknowledged at {at}, model end {}", m.len()).into());
                    }
                    m.extend(std::iter::repeat_n(generation, n as usize));
                }
                "truncate" => m.truncate(op[1].parse()?),
                _ => {}
            }
        }
        // A truncation in flight may have happened: the log may end as low as its target.
        let low = report
            .uncertain
            .iter()
            .filter(|op| op[0] == "truncate")
            .filter_map(|op| op[1].parse::<usize>().ok())
            .fold(m.len(), usize::min);
        let p = Partition::options().config(partition_config("truncate")).open(mnt.join("p"))?;
        let got: Vec<(u64, Vec<u8>)> =
            p.iter(0).map(|r| r.map(|r| (r.offset, r.value.unwrap_or_default()))).collect::<Result<_, _>>()?;
        if got.len() < low {
            return Err(format!("{} records acknowledged, {} survived", low, got.len()).into());
        }
        for (i, (o, v)) in got.iter().enumerate() {
            let g = generation_of(*o, v).ok_or_else(|| format!("offset {o}: bytes never written there"))?;
            if *o != i as u64 {
                return Err(format!("record {i} has offset {o}").into());
            }
            // Below `low` exactly the model; above it only data of this round's operations
            // (never a record an acknowledged truncation removed).
            let ok = if i < low { m[i] == g } else { m.get(i) == Some(&g) || g == generation };
            if !ok {
                return Err(format!("offset {o} holds generation {g}, expected {:?}", m.get(i)).into());
            }
        }
        model = got.iter().map(|(o, v)| generation_of(*o, v).unwrap_or(0)).collect();
        p.close()?;
        Ok(format!("{} records", model.len()))
    })
}

#[test]
fn power_loss_retention() -> TestResult {
    let mut start_floor = 0u64;
    let mut end_floor = 0u64;
    power_loss("retention", |report, mnt| {
        // The log start an acknowledged retention pass reached (it reports it right after).
        let acked_passes = report.acked.iter().filter(|op| op[0] == "retention").count();
        let starts: Vec<u64> =
            report.info.iter().filter(|i| i.len() >= 3 && i[1] == "start").filter_map(|i| i[2].parse().ok()).collect();
        let must_start = starts.get(..acked_passes).and_then(|s| s.iter().max().copied()).unwrap_or(0).max(start_floor);
        let p = Partition::options().config(partition_config("retention")).open(mnt.join("p"))?;
        let end = check_appended(&p, durable_end(report).max(end_floor))?;
        let start = p.log_start_offset();
        if start < must_start {
            return Err(format!(
                "retention moved the log start to {must_start} (acknowledged), after power loss it is {start}"
            )
            .into());
        }
        start_floor = start;
        end_floor = end;
        p.close()?;
        Ok(format!("log start {start} (at least {must_start}), end {end}"))
    })
}

#[test]
fn power_loss_compaction() -> TestResult {
    let mut end_floor = 0u64;
    power_loss("compaction", |report, mnt| {
        let p = Partition::options().config(partition_config("compaction")).open(mnt.join("p"))?;
        let must = durable_end(report).max(end_floor);
        let end = p.log_end_offset();
        if end < must {
            return Err(format!("acknowledged up to {must}, log end {end} after power loss").into());
        }
        // Offsets increase, every value is the one written at its offset under its key, and
        // the latest record of each key up to what was acknowledged is there.
        let mut latest: BTreeMap<String, u64> = BTreeMap::new();
        let mut last: Option<u64> = None;
        for r in p.iter(p.log_start_offset()) {
            let r = r?;
            if last.is_some_and(|l| r.offset <= l) {
                return Err(format!("offset {} after {last:?}", r.offset).into());
            }
            last = Some(r.offset);
            let k = String::from_utf8(r.key.clone().unwrap_or_default())?;
            if k != key_for(r.offset) || generation_of(r.offset, &r.value.clone().unwrap_or_default()).is_none() {
                return Err(format!("offset {} holds a record never written there", r.offset).into());
            }
            latest.insert(k, r.offset);
        }
        for k in 0..7u64.min(must) {
            // The newest acknowledged offset with key k.
            let newest = (0..must).rev().find(|o| o % 7 == k).unwrap_or(0);
            let key = key_for(newest);
            if latest.get(&key).is_none_or(|&o| o < newest) {
                return Err(format!(
                    "key {key}: its record at {newest} (acknowledged) is gone; latest {:?}",
                    latest.get(&key)
                )
                .into());
            }
        }
        end_floor = end;
        p.close()?;
        Ok(format!("log end {end}, {} keys", latest.len()))
    })
}

#[test]
fn power_loss_offset_commits() -> TestResult {
    let mut floor = 0u64;
    power_loss("commits", |report, mnt| {
        let acked = report.acked.iter().filter(|op| op[0] == "commit").filter_map(|op| op[1].parse::<u64>().ok()).max();
        let must = acked.unwrap_or(0).max(floor);
        let tried = report.uncertain.iter().filter_map(|op| op[1].parse::<u64>().ok()).max().unwrap_or(must).max(must);
        let d = LogDir::options().offsets_topic_num_partitions(1).open(mnt.join("d"))?;
        let c = d.consumer(ConsumerConfig::new().group_id("g").enable_auto_commit(false))?;
        let got = c.committed(&TopicPartition::new("in", 0))?.map(|m| m.offset);
        match got {
            Some(o) if o >= must && o <= tried => floor = o,
            other => return Err(format!(
                "committed {must} (acknowledged), after power loss the group has {other:?} (at most {tried} was tried)"
            )
            .into()),
        }
        drop(c);
        d.close()?;
        Ok(format!("committed {floor}"))
    })
}
