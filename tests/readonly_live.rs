//! A real writer process and a read-only follower in another process.
//!
//! The test re-executes its own binary to run the `#[ignore]`d `child_live_writer`, which
//! opens a log directory, creates a topic under retention (`events`, small segments,
//! `retention.bytes`) and a compacted one (`compacted`, keys `offset % KEYS`), and appends to
//! both, paced, while it runs retention and compaction passes; it prints the log start after
//! every retention pass, and at the end the final log end offsets and how many segments each
//! topic rolled. Every record's key and value derive from its offset; a header carries the
//! wall-clock time of the append.
//!
//! The parent follows both topics read-only with a [`Follower`] while the writer runs, and
//! also lists segments and verifies one now and then (what `partlog dump` does). Then it
//! checks: nothing ever failed; per topic the stream is strictly increasing and every record
//! holds what was appended at its offset; `events` is dense except where the follower was
//! lapped by retention (a reset to a log start the writer reported); in `compacted` every
//! missing offset has a later record with the same key, and the latest record of every key is
//! there. It prints the follow latency (append to receipt), measured, not asserted.
//!
//! `PARTLOG_LIVE_ITERATIONS` sets the writer's iterations (default 3000; the ignored
//! `live_follow_long` runs 30000). Seeds: `PARTLOG_SEED`.

#![cfg(unix)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use partlog::{FollowEvent, Follower, LogDir, Record, TopicConfig};

mod common;
use common::{Rng, seed};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ENV_DIR: &str = "PARTLOG_LIVE_DIR";
const ENV_SEED: &str = "PARTLOG_LIVE_SEED";
const ENV_ITER: &str = "PARTLOG_LIVE_ITERATIONS";
const KEYS: u64 = 17;

fn key_for(topic: &str, offset: u64) -> Vec<u8> {
    match topic {
        "compacted" => format!("key-{}", offset % KEYS).into_bytes(),
        _ => format!("e{offset}").into_bytes(),
    }
}

fn value_for(topic: &str, offset: u64) -> Vec<u8> {
    let mut v = format!("{topic}@{offset}:").into_bytes();
    v.resize(v.len() + (offset % 37) as usize, b'a' + (offset % 26) as u8);
    v
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn config(topic: &str) -> Result<TopicConfig, partlog::Error> {
    let base = TopicConfig::default().segment_bytes(4096).index_interval_bytes(512);
    match topic {
        "compacted" => base.set("cleanup.policy", "compact")?.set("min.cleanable.dirty.ratio", "0.01"),
        _ => Ok(base.retention_bytes(Some(256 << 10))),
    }
}

/// The writer. Does nothing unless `PARTLOG_LIVE_DIR` is set.
#[test]
#[ignore = "child process of the live follow tests (does nothing unless PARTLOG_LIVE_DIR is set)"]
fn child_live_writer() -> TestResult {
    let Ok(path) = std::env::var(ENV_DIR) else { return Ok(()) };
    let mut rng = Rng(std::env::var(ENV_SEED)?.parse()?);
    let iterations: u64 = std::env::var(ENV_ITER)?.parse()?;
    let dir = LogDir::open(&path)?;
    let topics = ["events", "compacted"];
    let handles: Vec<_> = topics.iter().map(|t| dir.create_topic(t, config(t)?)).collect::<Result<_, _>>()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY")?;
    out.flush()?;
    let mut rolls = [0u64; 2];
    let mut active = [0u64; 2];
    for i in 0..iterations {
        for (k, (t, h)) in topics.iter().zip(&handles).enumerate() {
            let p = h.partition(0)?;
            let base = p.log_end_offset();
            let n = rng.range(1, 3);
            let (keys, values): (Vec<_>, Vec<_>) = (base..base + n).map(|o| (key_for(t, o), value_for(t, o))).unzip();
            let at = now_us().to_string();
            let recs: Vec<Record<'_>> =
                keys.iter().zip(&values).map(|(k, v)| Record::new().key(k).value(v).header("t", at.as_str())).collect();
            let info = p.append_batch(&recs)?;
            assert_eq!(info.base_offset, base, "writer: offsets");
            let now = p.segments().last().map_or(0, |s| s.base_offset);
            if now != active[k] {
                rolls[k] += 1;
                active[k] = now;
            }
        }
        if i % 40 == 39 {
            let r = handles[0].partition(0)?.run_retention()?;
            writeln!(out, "START {}", r.log_start_offset)?;
            out.flush()?;
        }
        if i % 150 == 149 {
            handles[1].partition(0)?.compact()?;
        }
        if rng.below(4) == 0 {
            std::thread::sleep(Duration::from_micros(rng.range(100, 1500)));
        }
    }
    let mut line = String::from("END");
    for (k, (t, h)) in topics.iter().zip(&handles).enumerate() {
        let p = h.partition(0)?;
        line.push_str(&format!(" {t} {} {}", p.log_end_offset(), rolls[k]));
    }
    writeln!(out, "{line}")?;
    out.flush()?;
    dir.close()?;
    Ok(())
}

#[derive(Debug, Default)]
struct Seen {
    offsets: Vec<u64>,
    resets: Vec<(u64, u64)>,
    latencies_us: Vec<u64>,
}

fn live_follow(iterations: u64, test: &str) -> TestResult {
    let seed = seed(test);
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("data");
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["child_live_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, &path)
        .env(ENV_SEED, seed.to_string())
        .env(ENV_ITER, iterations.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(l) = line else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let wait_line = |tag: &str| -> Result<String, Box<dyn std::error::Error>> {
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100))
                && let Some(i) = l.find(tag)
            {
                return Ok(l[i..].to_owned());
            }
        }
        Err(format!("the writer never printed {tag}").into())
    };
    wait_line("READY")?;
    let ro = LogDir::open_read_only(&path)?;
    let parts = [ro.topic("events")?.partition(0)?, ro.topic("compacted")?.partition(0)?];
    let mut follower = Follower::new();
    for p in &parts {
        follower.add(p, 0)?;
    }
    // A second follower of the compacted topic that lags behind (it polls one small chunk
    // every tenth round), so compaction rewrites what it has not read yet.
    let mut slow = Follower::new().max_bytes(256);
    slow.add(&parts[1], 0)?;
    let mut slow_seen = Seen::default();
    let mut round = 0u64;
    let mut seen = [Seen::default(), Seen::default()];
    let mut starts: Vec<u64> = Vec::new();
    let mut end: Option<[(u64, u64); 2]> = None;
    let mut last_check = Instant::now();
    let mut checks = 0u32;
    loop {
        for l in rx.try_iter() {
            if let Some(i) = l.find("START ") {
                starts.push(l[i + 6..].trim().parse()?);
            } else if let Some(i) = l.find("END ") {
                let f: Vec<&str> = l[i + 4..].split_whitespace().collect();
                let num = |k: usize| f.get(k).ok_or("short END line").map(|s| s.parse::<u64>());
                end = Some([(num(1)??, num(2)??), (num(4)??, num(5)??)]);
            }
        }
        round += 1;
        let draining = end.is_some();
        if (round.is_multiple_of(10) || draining)
            && let Some(ev) = slow.poll(Duration::ZERO).map_err(|e| format!("slow follower failed: {e}"))?
        {
            match ev {
                FollowEvent::Records { records, .. } => {
                    for r in records.iter() {
                        if r.key() != Some(&key_for("compacted", r.offset())[..])
                            || r.value() != Some(&value_for("compacted", r.offset())[..])
                        {
                            return Err(format!("slow: offset {}: not what was appended there", r.offset()).into());
                        }
                        slow_seen.offsets.push(r.offset());
                    }
                }
                FollowEvent::Reset { from, to, .. } => slow_seen.resets.push((from, to)),
                other => return Err(format!("unexpected {other:?}").into()),
            }
        }
        if let Some(e) = end {
            let pos = follower.positions();
            let slow_at = slow.positions().first().map_or(0, |p| p.1);
            if pos.iter().zip(&e).all(|((_, at), (want, _))| at >= want) && slow_at >= e[1].0 {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the follower did not reach the end in time: {:?} vs {end:?}",
                follower.positions().iter().map(|p| p.1).collect::<Vec<_>>()
            )
            .into());
        }
        let main_done = end.is_some_and(|e| follower.positions().iter().zip(&e).all(|((_, at), (want, _))| at >= want));
        let wait = if main_done { Duration::ZERO } else { Duration::from_millis(50) };
        match follower.poll(wait).map_err(|e| format!("follower failed: {e}"))? {
            None => {}
            Some(FollowEvent::Records { partition, records }) => {
                let k = usize::from(partition.path() != parts[0].path());
                let topic = if k == 0 { "events" } else { "compacted" };
                let now = now_us();
                for r in records.iter() {
                    if r.key() != Some(&key_for(topic, r.offset())[..])
                        || r.value() != Some(&value_for(topic, r.offset())[..])
                    {
                        return Err(format!(
                            "{topic} offset {}: not what was appended there: {:?}",
                            r.offset(),
                            r.to_owned()
                        )
                        .into());
                    }
                    let t: u64 = r
                        .headers()
                        .find(|(k, _)| *k == "t")
                        .and_then(|(_, v)| std::str::from_utf8(v?).ok()?.parse().ok())
                        .ok_or("no time header")?;
                    seen[k].latencies_us.push(now.saturating_sub(t));
                    seen[k].offsets.push(r.offset());
                }
            }
            Some(FollowEvent::Reset { partition, from, to }) => {
                let k = usize::from(partition.path() != parts[0].path());
                seen[k].resets.push((from, to));
            }
            Some(other) => return Err(format!("unexpected {other:?}").into()),
        }
        if last_check.elapsed() > Duration::from_millis(100) {
            // What `partlog dump` does, on the live directory: list, open, verify.
            last_check = Instant::now();
            for p in &parts {
                let segs = p.segments().map_err(|e| format!("segments() failed on a live directory: {e}"))?;
                let Some(s) = segs.first() else { continue };
                match p.segment(s.base_offset) {
                    Ok(h) => {
                        let v = h.verify()?;
                        if !v.is_ok() {
                            return Err(format!("verify of a live segment failed: {:?}", v.problems).into());
                        }
                        checks += 1;
                    }
                    // Deleted or merged away since the listing.
                    Err(partlog::Error::OffsetOutOfRange { .. }) => {}
                    Err(e) => return Err(format!("segment() failed on a live directory: {e}").into()),
                }
            }
        }
    }
    let status = child.wait()?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err)?;
    }
    assert!(status.success(), "writer failed: {status:?}\n{err}");
    let end = end.ok_or("no END")?;
    let max_start = starts.iter().copied().max().unwrap_or(0);

    // events: strictly increasing, dense but for resets to a log start the writer reported.
    let ev = &seen[0];
    let mut expect = 0u64;
    let mut resets = ev.resets.iter().peekable();
    for &o in &ev.offsets {
        while let Some(&&(from, to)) = resets.peek() {
            if from == expect && o >= to {
                assert!(
                    to > from && to <= max_start,
                    "events: reset {from}->{to} beyond any log start (max {max_start})"
                );
                expect = to;
                resets.next();
            } else {
                break;
            }
        }
        assert_eq!(o, expect, "events: offset {o} where {expect} was due (a gap or a repeat)");
        expect = o + 1;
    }
    assert_eq!(expect, end[0].0, "events: the stream does not reach the log end");
    // compacted: strictly increasing; gaps only where a later record has the same key.
    let cend = end[1].0;
    let check_compacted = |who: &str, s: &Seen| -> Result<usize, String> {
        if !s.resets.is_empty() {
            return Err(format!("{who}: resets {:?} (nothing deletes from it)", s.resets));
        }
        if !s.offsets.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!("{who}: not strictly increasing"));
        }
        let got: BTreeSet<u64> = s.offsets.iter().copied().collect();
        let missing: Vec<u64> = (0..cend).filter(|o| !got.contains(o)).collect();
        if let Some(o) = missing.iter().find(|&&o| o + KEYS >= cend) {
            return Err(format!("{who}: offset {o} missing, yet it is the latest record of its key"));
        }
        Ok(missing.len())
    };
    let removed_fast = check_compacted("compacted", &seen[1])?;
    let removed_slow = check_compacted("compacted (slow follower)", &slow_seen)?;
    println!(
        "live follow: events {} records ({} resets), compacted {} records ({} skipped as compacted), slow follower {} ({} skipped), {} rolls of events and {} of compacted, {} segment checks",
        ev.offsets.len(),
        ev.resets.len(),
        seen[1].offsets.len(),
        removed_fast,
        slow_seen.offsets.len(),
        removed_slow,
        end[0].1,
        end[1].1,
        checks
    );
    assert!(end[0].1 >= 100 && end[1].1 >= 100, "too few rolls to have tested them: {} and {}", end[0].1, end[1].1);
    let mut lat: Vec<u64> = seen.iter().flat_map(|s| s.latencies_us.iter().copied()).collect();
    lat.sort_unstable();
    if !lat.is_empty() {
        println!(
            "follow latency across processes (append to receipt, {} records, inotify {}): p50 {} us, p90 {} us, p99 {} us, max {} us",
            lat.len(),
            follower.uses_inotify(),
            lat[lat.len() / 2],
            lat[lat.len() * 9 / 10],
            lat[lat.len() * 99 / 100],
            lat[lat.len() - 1]
        );
    }
    Ok(())
}

/// A few seconds: thousands of appends, hundreds of rolls, retention and compaction passes.
#[test]
fn live_writer_and_read_only_follower() -> TestResult {
    let n = std::env::var(ENV_ITER).ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    live_follow(n, "live_writer_and_read_only_follower")
}

#[test]
#[ignore = "long: 30,000 writer iterations"]
fn live_follow_long() -> TestResult {
    live_follow(30_000, "live_follow_long")
}
