//! A real consuming process killed with SIGKILL, again and again, then restarted: committed
//! offsets survive, every restart resumes at the last acknowledged commit or later (no
//! acknowledged commit lost) and never past what was processed (nothing skipped), and
//! together the runs cover every record (at least once).
//!
//! The test re-executes its own binary to run the `#[ignore]`d `child_consumer`, which
//! consumes a pre-filled topic in a group, processing and committing after every poll, and
//! prints `DONE <p> <offset>` for every record it processed and `COMMIT <p> <offset>` once a
//! commit returned. A run's start in a partition is the first offset it processed there.
//! Seeds: `PARTLOG_SEED`.

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use partlog::{ConsumerConfig, LogDir, OffsetReset, Record, TopicConfig, TopicPartition};

mod common;
use common::{Rng, seed};

type R = Result<(), Box<dyn std::error::Error>>;

const ENV_DIR: &str = "PARTLOG_CONSUMER_DIR";
const PARTITIONS: u32 = 3;
const PER_PARTITION: u64 = 20_000;

fn config() -> ConsumerConfig {
    ConsumerConfig::new()
        .group_id("billing")
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .max_poll_records(50)
}

#[test]
#[ignore = "run by consumer_killed_with_sigkill_resumes_from_its_commits in a child process"]
fn child_consumer() -> R {
    let Ok(path) = std::env::var(ENV_DIR) else { return Ok(()) };
    let dir = LogDir::open(&path)?;
    let mut c = dir.consumer(config())?;
    c.subscribe(&["t"])?;
    let out = std::io::stdout();
    loop {
        let recs = c.poll(Duration::from_millis(100))?;
        let mut lines = String::new();
        if recs.is_empty() {
            lines.push_str("IDLE\n");
        }
        for r in recs.iter() {
            lines.push_str(&format!("DONE {} {}\n", r.partition(), r.offset()));
        }
        {
            let mut o = out.lock();
            std::io::Write::write_all(&mut o, lines.as_bytes())?;
            std::io::Write::flush(&mut o)?;
        }
        if !recs.is_empty() {
            c.commit()?;
            let mut lines = String::new();
            for tp in c.assignment() {
                lines.push_str(&format!("COMMIT {} {}\n", tp.partition, c.position(&tp)?));
            }
            let mut o = out.lock();
            std::io::Write::write_all(&mut o, lines.as_bytes())?;
            std::io::Write::flush(&mut o)?;
        }
    }
}

/// What one child run reported.
#[derive(Debug, Default)]
struct Run {
    starts: BTreeMap<u32, u64>,
    done: BTreeMap<u32, BTreeSet<u64>>,
    committed: BTreeMap<u32, u64>,
}

fn run_child(dir: &Path, delay_ms: u64) -> Result<Run, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["child_consumer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                // Only complete lines count: a line cut by the kill was not fully reported.
                Ok(n) if n > 0 && buf.ends_with(b"\n") => {
                    if tx.send(String::from_utf8_lossy(&buf).trim_end().to_owned()).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    // Kill it a while after it started consuming.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => {
                let started = l.contains("DONE ") || l.contains("IDLE");
                lines.push(l);
                if started {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if child.try_wait()?.is_some() {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(delay_ms));
    child.kill()?;
    let status = child.wait()?;
    let _ = reader.join();
    lines.extend(rx.try_iter());
    if status.signal() != Some(9) {
        return Err(format!(
            "the child was not killed by SIGKILL: {status:?}; last lines {:?}",
            lines.iter().rev().take(5).collect::<Vec<_>>()
        )
        .into());
    }
    let mut run = Run::default();
    for l in &lines {
        let Some(i) = ["DONE ", "COMMIT "].iter().find_map(|t| l.find(t).map(|i| (i, *t))) else { continue };
        let mut f = l[i.0 + i.1.len()..].split(' ');
        let (Some(p), Some(o)) =
            (f.next().and_then(|x| x.parse::<u32>().ok()), f.next().and_then(|x| x.parse::<u64>().ok()))
        else {
            continue;
        };
        match i.1 {
            "DONE " => {
                run.done.entry(p).or_default().insert(o);
                run.starts.entry(p).or_insert(o);
            }
            _ => {
                let c = run.committed.entry(p).or_insert(o);
                *c = (*c).max(o);
            }
        }
    }
    Ok(run)
}

#[test]
fn consumer_killed_with_sigkill_resumes_from_its_commits() -> R {
    let s = seed("consumer_killed_with_sigkill_resumes_from_its_commits");
    let mut rng = Rng::new(s);
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("d");
    {
        let dir = LogDir::open(&path)?;
        let t = dir.create_topic("t", TopicConfig::default().partitions(PARTITIONS))?;
        for p in 0..PARTITIONS {
            let recs: Vec<Record<'_>> = (0..100).map(|i| Record::with_value(format!("{i}"))).collect();
            for _ in 0..PER_PARTITION / 100 {
                t.append_batch_to(p, &recs)?;
            }
        }
        dir.close()?;
    }
    let cycles: usize = std::env::var("PARTLOG_KILL_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let mut processed: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    // The last commit each partition had acknowledged, and how far it was processed.
    let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
    let mut reached: BTreeMap<u32, u64> = BTreeMap::new();
    for cycle in 0..cycles {
        let run = run_child(&path, rng.range(5, 60))?;
        for (p, start) in &run.starts {
            let floor = acked.get(p).copied().unwrap_or(0);
            let ceil = reached.get(p).copied().unwrap_or(0);
            assert!(
                *start >= floor,
                "cycle {cycle}: partition {p} restarted at {start}, below the acknowledged commit {floor}"
            );
            assert!(
                *start <= ceil,
                "cycle {cycle}: partition {p} restarted at {start}, past the {ceil} records processed: skipped"
            );
        }
        for (p, done) in run.done {
            if let Some(&m) = done.iter().next_back() {
                let r = reached.entry(p).or_insert(0);
                *r = (*r).max(m + 1);
            }
            processed.entry(p).or_default().extend(done);
        }
        for (p, c) in run.committed {
            let a = acked.entry(p).or_insert(0);
            *a = (*a).max(c);
        }
    }
    assert!(acked.values().sum::<u64>() > 0, "no child ever committed: the test tested nothing");
    println!("acknowledged commits after {cycles} kills: {acked:?}");
    // The durable commits are at least the acknowledged ones.
    let dir = LogDir::open(&path)?;
    let mut c = dir.consumer(config())?;
    for p in 0..PARTITIONS {
        let committed = c.committed(&TopicPartition::new("t", p))?.map_or(0, |o| o.offset);
        assert!(committed >= acked.get(&p).copied().unwrap_or(0), "partition {p}: acknowledged commit lost");
    }
    // Finishing the work covers every record: at least once, nothing skipped.
    c.subscribe(&["t"])?;
    loop {
        let recs = c.poll(Duration::from_millis(300))?;
        if recs.is_empty() && recs.events().is_empty() {
            break;
        }
        for r in recs.iter() {
            processed.entry(r.partition()).or_default().insert(r.offset());
        }
    }
    for p in 0..PARTITIONS {
        let got = processed.get(&p).map_or(0, BTreeSet::len) as u64;
        assert_eq!(got, PER_PARTITION, "partition {p}: some records were never processed");
    }
    Ok(())
}
