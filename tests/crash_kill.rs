//! Real processes killed with SIGKILL while appending, on the real file system.
//!
//! The test re-executes its own test binary to run the `#[ignore]`d `child_writer` test, which
//! opens a partition in a directory given by env var, appends records whose contents are
//! derived from their offsets, and prints `ACK <offset>` (flushed) once each append returned.
//! The parent kills it (SIGKILL) a random 20–150 ms after the child reported the partition open
//! (so the kill lands among appends, not in process start-up), reads the acknowledgements,
//! reopens the partition and checks that every acknowledged offset is there with the right
//! contents and that the log is a dense prefix of what the child appended (no gaps, no
//! garbage). Rounds continue on the
//! same directory, so recovery from earlier kills (by the parent or by the next child) is
//! exercised too.
//!
//! SIGKILL does not test fsync: the kernel's page cache survives the death of a process, so
//! even unsynced (`Durability::Os`) acknowledged appends must survive here. Power loss, where
//! only fsynced data survives, is what `tests/crash_sim.rs` simulates.
//!
//! Seeds: `PARTLOG_SEED=<n>` replays a run (printed at the start of each test).

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use partlog::{Durability, Partition, Record, TopicConfig};

mod common;
use common::{Rng, seed};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ENV_DIR: &str = "PARTLOG_CHILD_DIR";
const ENV_MODE: &str = "PARTLOG_CHILD_MODE";
const ENV_SEED: &str = "PARTLOG_CHILD_SEED";
/// The child stops appending after this many appends per run (then waits to be killed), so a
/// parent that died cannot leave it filling the disk.
const CHILD_MAX_APPENDS: u64 = 50_000;
/// Largest batch the child appends.
const MAX_BATCH: u64 = 5;

/// The key of the record at `offset`.
fn key_for(offset: u64) -> Vec<u8> {
    format!("k{}", offset % 13).into_bytes()
}

/// The value of the record at `offset`: its offset, then filler of a length and byte that
/// depend on it.
fn value_for(offset: u64) -> Vec<u8> {
    let mut v = format!("offset-{offset}:").into_bytes();
    let fill = b'a' + (offset % 26) as u8;
    v.resize(v.len() + (offset.wrapping_mul(7) % 61) as usize, fill);
    v
}

fn config(mode: &str) -> TopicConfig {
    match mode {
        "every" => {
            TopicConfig::default().segment_bytes(8 << 10).index_interval_bytes(512).durability(Durability::EveryAppend)
        }
        _ => TopicConfig::default().segment_bytes(64 << 10).index_interval_bytes(1024).durability(Durability::Os),
    }
}

/// The child: appends until killed. Does nothing unless `PARTLOG_CHILD_DIR` is set.
#[test]
#[ignore = "child process of the crash_kill tests (does nothing unless PARTLOG_CHILD_DIR is set)"]
fn child_writer() -> TestResult {
    let Ok(dir) = std::env::var(ENV_DIR) else { return Ok(()) };
    let mode = std::env::var(ENV_MODE)?;
    let mut rng = Rng(std::env::var(ENV_SEED)?.parse()?);
    let p = Partition::open_with(&dir, config(&mode))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "OPEN {}", p.log_end_offset())?;
    out.flush()?;
    for _ in 0..CHILD_MAX_APPENDS {
        let base = p.log_end_offset();
        let n = if rng.range(0, 3) == 0 { rng.range(2, MAX_BATCH) } else { 1 };
        let (keys, values): (Vec<_>, Vec<_>) = (base..base + n).map(|o| (key_for(o), value_for(o))).unzip();
        let recs: Vec<Record<'_>> = keys.iter().zip(&values).map(|(k, v)| Record::new().key(k).value(v)).collect();
        let info = if n == 1 { p.append(recs[0].clone())?.into() } else { p.append_batch(&recs)? };
        assert_eq!((info.base_offset, info.last_offset), (base, base + n - 1), "child: offsets");
        let mut line = String::new();
        for o in base..base + n {
            line.push_str(&format!("ACK {o}\n"));
        }
        out.write_all(line.as_bytes())?;
        out.flush()?;
    }
    writeln!(out, "DONE")?;
    out.flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The rest of a line after `tag` (the harness may print `test child_writer ... ` before the
/// child's first line).
fn after_tag<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.find(tag).map(|i| &line[i + tag.len()..])
}

/// Spawns a child on `dir`, kills it `delay_ms` after it opened the partition; returns the
/// acknowledged offsets (complete lines only) and the log end the child saw when it opened.
fn run_child(
    dir: &Path,
    mode: &str,
    child_seed: u64,
    delay_ms: u64,
) -> Result<(Vec<u64>, u64), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["child_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_MODE, mode)
        .env(ENV_SEED, child_seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut stderr = child.stderr.take().ok_or("no child stderr")?;
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
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut opened = false;
    while !opened && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                opened = after_tag(&l, "OPEN ").is_some();
                lines.push(l);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if child.try_wait()?.is_some() {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if opened {
        std::thread::sleep(Duration::from_millis(delay_ms));
    }
    child.kill()?;
    let status = child.wait()?;
    let _ = reader.join();
    lines.extend(rx.try_iter());
    let mut err = String::new();
    stderr.read_to_string(&mut err)?;
    if status.signal() != Some(9) {
        let out: Vec<&String> = lines.iter().rev().take(20).collect();
        return Err(
            format!("child was not killed by SIGKILL: {status:?}\nstderr:\n{err}\nlast stdout lines: {out:?}").into()
        );
    }
    if !opened {
        return Err(format!("child never opened the partition within 60 s\nstderr:\n{err}").into());
    }
    let mut acked = Vec::new();
    let mut open_end = 0;
    for l in &lines {
        if let Some(rest) = after_tag(l, "ACK ") {
            acked.push(rest.parse::<u64>().map_err(|e| format!("bad ACK line {l:?}: {e}"))?);
        } else if let Some(rest) = after_tag(l, "OPEN ") {
            open_end = rest.parse::<u64>().map_err(|e| format!("bad OPEN line {l:?}: {e}"))?;
        }
    }
    Ok((acked, open_end))
}

/// Reopens the partition and checks it: log start 0, offsets dense from 0, every record's
/// key and value derived from its offset, every acknowledged offset present, nothing beyond
/// what could have been appended. Returns the log end.
fn verify(dir: &Path, mode: &str, max_acked: Option<u64>, may_end_by: u64, round: usize) -> Result<u64, String> {
    let ctx = format!("round {round} ({mode})");
    let p = Partition::open_with(dir, config(mode)).map_err(|e| format!("{ctx}: reopen after SIGKILL failed: {e}"))?;
    if p.log_start_offset() != 0 {
        return Err(format!("{ctx}: log start {}", p.log_start_offset()));
    }
    let mut n = 0u64;
    for r in p.iter(0) {
        let r = r.map_err(|e| format!("{ctx}: reading offset {n}: {e}"))?;
        if r.offset != n {
            return Err(format!("{ctx}: offset {} follows {} (a gap)", r.offset, n.wrapping_sub(1)));
        }
        if r.key.as_deref() != Some(&key_for(n)[..]) || r.value.as_deref() != Some(&value_for(n)[..]) {
            return Err(format!("{ctx}: offset {n} holds {r:?}, not what was appended there"));
        }
        n += 1;
    }
    if p.log_end_offset() != n {
        return Err(format!("{ctx}: next_offset {} but {n} records readable", p.log_end_offset()));
    }
    if let Some(m) = max_acked
        && m >= n
    {
        return Err(format!("{ctx}: offset {m} was acknowledged but the log ends at {n}"));
    }
    if n > may_end_by {
        return Err(format!("{ctx}: the log ends at {n}, beyond anything appended (at most {may_end_by})"));
    }
    p.close().map_err(|e| format!("{ctx}: close: {e}"))?;
    Ok(n)
}

fn kill_rounds(mode: &str, test: &str) -> TestResult {
    let seed = seed(test);
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("events-0");
    let rounds = 10;
    // Highest acknowledged offset so far, and the end of the log as far as the parent knows.
    let mut max_acked: Option<u64> = None;
    let mut known_end = 0u64;
    let mut total_acked = 0usize;
    for round in 0..rounds {
        let delay = rng.range(20, 150);
        let (acked, open_end) = run_child(&dir, mode, rng.next_u64(), delay)?;
        // The child starts after everything acknowledged, at most one unacknowledged append
        // (the one a kill interrupted) further; its acknowledgements follow densely from there.
        let acked_end = max_acked.map_or(0, |m| m + 1);
        assert!(open_end >= acked_end, "round {round}: the child opened at {open_end}, below acknowledged {acked_end}");
        assert!(
            open_end <= known_end + MAX_BATCH,
            "round {round}: the child opened at {open_end}, more than a batch past {known_end}"
        );
        if let Some(&first) = acked.first() {
            assert_eq!(first, open_end, "round {round}: first acknowledgement");
        }
        for w in acked.windows(2) {
            assert_eq!(w[1], w[0] + 1, "round {round}: child acknowledged {} after {}", w[1], w[0]);
        }
        total_acked += acked.len();
        max_acked = acked.last().copied().max(max_acked);
        known_end = open_end.max(max_acked.map_or(0, |m| m + 1));
        println!("round {round}: killed after {delay} ms, {} acks, max acked {max_acked:?}", acked.len());
        // Every other round the next child recovers the killed one's log itself; the parent
        // checks the rest (and the last).
        if round % 2 == 1 || round + 1 == rounds {
            // At most one unacknowledged append (the one the kill interrupted) beyond what the
            // last child started from or had acknowledged.
            let may_end_by = known_end + MAX_BATCH;
            verify(&dir, mode, max_acked, may_end_by, round)?;
        }
    }
    assert!(total_acked > 0, "no child ever acknowledged an append: the test exercised nothing");
    Ok(())
}

/// SIGKILL with `Durability::Os`: acknowledged appends survive (they are in the page cache).
#[test]
fn sigkill_rounds_os() -> TestResult {
    kill_rounds("os", "sigkill_rounds_os")
}

/// SIGKILL with `Durability::EveryAppend`.
#[test]
fn sigkill_rounds_every_append() -> TestResult {
    kill_rounds("every", "sigkill_rounds_every_append")
}
