//! The `partlog` binary driven as a user drives it: arguments, standard input, standard
//! output, exit codes; against an idle directory and against one that another process (this
//! test binary, re-executed as `child_writer`) holds open and appends to.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ENV_CHILD: &str = "PARTLOG_CLI_CHILD_DIR";

fn partlog() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("partlog").expect("the partlog binary")
}

fn dir_arg(d: &Path) -> [String; 2] {
    ["--dir".into(), d.display().to_string()]
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir` with its contents (what "nothing written" is checked against).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn create(d: &Path, topic: &str, extra: &[&str]) {
    partlog().args(dir_arg(d)).args(["topics", "--create", "--topic", topic]).args(extra).assert().success();
}

fn produce(d: &Path, topic: &str, extra: &[&str], input: &str) {
    partlog().args(["produce", "--topic", topic]).args(dir_arg(d)).args(extra).write_stdin(input).assert().success();
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn help_shows_examples_and_exit_codes() {
    partlog().arg("--help").assert().success().stdout(predicate::str::contains("Exit codes"));
    for cmd in ["topics", "produce", "consume", "dump", "groups", "retention", "compact"] {
        partlog().args([cmd, "--help"]).assert().success().stdout(predicate::str::contains("Examples:"));
    }
    partlog().arg("frobnicate").assert().code(2);
    partlog().args(["topics", "--dir", "x"]).assert().code(2); // no action
}

#[test]
fn topics_lifecycle() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    partlog()
        .args(dir_arg(&d))
        .args(["topics", "--create", "--topic", "orders", "--partitions", "3"])
        .assert()
        .success()
        .stdout("Created topic orders.\n");
    create(&d, "users", &["--config", "cleanup.policy=compact"]);
    partlog().args(dir_arg(&d)).args(["topics", "--list"]).assert().success().stdout("orders\nusers\n");
    let out = partlog().args(dir_arg(&d)).args(["topics", "--list", "--format", "json"]).output()?;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout)?, serde_json::json!(["orders", "users"]));
    // Again: an error, unless --if-not-exists.
    partlog()
        .args(dir_arg(&d))
        .args(["topics", "--create", "--topic", "orders"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    partlog().args(dir_arg(&d)).args(["topics", "--create", "--topic", "orders", "--if-not-exists"]).assert().success();
    let out =
        partlog().args(dir_arg(&d)).args(["topics", "--describe", "--topic", "users", "--format", "json"]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v[0]["config"]["cleanup.policy"], "compact");
    assert_eq!(v[0]["partition_count"], 1);
    partlog()
        .args(dir_arg(&d))
        .args(["topics", "--alter", "--topic", "orders", "--config", "retention.ms=60000", "--partitions", "5"])
        .assert()
        .success();
    partlog()
        .args(dir_arg(&d))
        .args(["topics", "--describe", "--topic", "orders"])
        .assert()
        .success()
        .stdout(predicate::str::contains("PartitionCount: 5").and(predicate::str::contains("retention.ms=60000")));
    partlog()
        .args(dir_arg(&d))
        .args(["topics", "--alter", "--topic", "orders", "--delete-config", "retention.ms"])
        .assert()
        .success();
    partlog()
        .args(dir_arg(&d))
        .args(["topics", "--describe", "--topic", "orders"])
        .assert()
        .success()
        .stdout(predicate::str::contains("retention.ms").not());
    partlog().args(dir_arg(&d)).args(["topics", "--delete", "--topic", "orders"]).assert().success();
    partlog().args(dir_arg(&d)).args(["topics", "--list"]).assert().success().stdout("users\n");
    Ok(())
}

#[test]
fn produce_then_consume() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    create(&d, "t", &["--partitions", "2"]);
    produce(&d, "t", &["--key-separator", ":", "--header", "src=test"], "a:one\nb:two\na:three\nc:four\n");
    produce(&d, "t", &["--partition", "1"], "unkeyed\n");
    let out = partlog()
        .args(dir_arg(&d))
        .args(["consume", "--topic", "t", "--from-beginning", "--format", "json"])
        .assert()
        .success()
        .stderr(predicate::str::contains("Processed a total of 5 messages"))
        .get_output()
        .clone();
    let recs = json_lines(&stdout_of(&out));
    assert_eq!(recs.len(), 5);
    // Keyed records stay in their key's partition, in order.
    let values_of = |key: &str| -> Vec<String> {
        recs.iter().filter(|r| r["key"] == key).map(|r| r["value"].as_str().unwrap_or("").to_owned()).collect()
    };
    assert_eq!(values_of("a"), ["one", "three"]);
    let a_parts: Vec<&serde_json::Value> = recs.iter().filter(|r| r["key"] == "a").map(|r| &r["partition"]).collect();
    assert_eq!(a_parts[0], a_parts[1]);
    assert!(recs.iter().filter(|r| r["key"] != serde_json::Value::Null).all(|r| r["headers"][0]["key"] == "src"));
    let unkeyed: Vec<_> = recs.iter().filter(|r| r["key"].is_null()).collect();
    assert_eq!(
        (unkeyed.len(), &unkeyed[0]["partition"], &unkeyed[0]["value"]),
        (1, &serde_json::json!(1), &serde_json::json!("unkeyed"))
    );
    // Text: the value, and what the Kafka properties ask for.
    let p = recs.iter().find(|r| r["key"] == "c").map(|r| r["partition"].as_u64().unwrap_or(0)).unwrap_or(0);
    partlog()
        .args(dir_arg(&d))
        .args(["consume", "--topic", "t", "--partition", &p.to_string(), "--from-beginning", "--max-messages", "1"])
        .args(["--property", "print.key=true", "--property", "key.separator=|", "--property", "print.offset=true"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"^Offset:0\|[abc]\|(one|two|three|four)\n$")?);
    // Without a start, only new records: none.
    partlog().args(dir_arg(&d)).args(["consume", "--topic", "t"]).assert().success().stdout("");
    // --offset and --timestamp.
    partlog()
        .args(dir_arg(&d))
        .args(["consume", "--topic", "t", "--partition", "1", "--offset", "0"])
        .assert()
        .success()
        .stdout(predicate::str::contains("unkeyed"));
    partlog()
        .args(dir_arg(&d))
        .args(["consume", "--topic", "t", "--timestamp", "2999-01-01T00:00:00Z"])
        .assert()
        .success()
        .stdout("");
    let all = partlog().args(dir_arg(&d)).args(["consume", "--topic", "t", "--timestamp", "0"]).output()?;
    assert_eq!(stdout_of(&all).lines().count(), 5);
    Ok(())
}

/// Reads lines from a child's stdout on a thread, so the test can wait with a timeout.
fn line_reader(child: &mut Child) -> Result<mpsc::Receiver<String>, Box<dyn std::error::Error>> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

fn bin() -> Result<Command, Box<dyn std::error::Error>> {
    Ok(Command::cargo_bin("partlog")?)
}

/// `consume --follow` in one process, `produce` in another: each line reaches the consumer
/// before the next one is typed.
#[test]
fn follow_sees_each_produced_line_at_once() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    create(&d, "chat", &[]);
    let mut consumer = bin()?
        .args(dir_arg(&d))
        .args(["consume", "--topic", "chat", "--follow", "--max-messages", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let lines = line_reader(&mut consumer)?;
    std::thread::sleep(Duration::from_millis(300)); // the consumer starts at the log end
    let mut producer = bin()?.args(dir_arg(&d)).args(["produce", "--topic", "chat"]).stdin(Stdio::piped()).spawn()?;
    let mut stdin = producer.stdin.take().ok_or("no stdin")?;
    let mut waits = Vec::new();
    for i in 0..5 {
        let msg = format!("message {i}");
        let at = Instant::now();
        writeln!(stdin, "{msg}")?;
        stdin.flush()?;
        let got =
            lines.recv_timeout(Duration::from_secs(30)).map_err(|_| format!("{msg} never reached the consumer"))?;
        waits.push(at.elapsed());
        assert_eq!(got, msg);
    }
    drop(stdin);
    assert!(producer.wait()?.success());
    assert!(consumer.wait()?.success());
    println!("line typed to line printed, across two processes: {waits:?}");
    Ok(())
}

#[test]
fn bad_input_is_one_sentence_and_writes_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    create(&d, "t", &[]);
    create(&d, "kv", &["--config", "cleanup.policy=compact"]);
    produce(&d, "t", &[], "first\n");
    let before = snapshot(&d);
    let one_sentence =
        || predicate::str::starts_with("partlog: ").and(predicate::function(|s: &str| s.lines().count() == 1));
    let missing = tmp.path().join("nope");
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign)?;
    std::fs::write(foreign.join("x.txt"), b"mine")?;
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (vec!["consume".into(), "--topic".into(), "t".into()], "missing dir", "does not exist"),
        (vec!["produce".into(), "--topic".into(), "t".into()], "missing dir", "does not exist"),
        (vec!["dump".into(), "--topic".into(), "t".into()], "missing dir", "does not exist"),
    ];
    for (args, what, says) in cases {
        partlog()
            .args(dir_arg(&missing))
            .args(&args)
            .assert()
            .code(1)
            .stderr(one_sentence().and(predicate::str::contains(says)))
            .stdout("");
        assert!(!missing.exists(), "{what}: created the directory");
    }
    partlog()
        .args(dir_arg(&foreign))
        .args(["topics", "--create", "--topic", "t"])
        .assert()
        .code(1)
        .stderr(one_sentence().and(predicate::str::contains("not a partlog directory")));
    assert_eq!(std::fs::read_dir(&foreign)?.count(), 1, "wrote into a foreign directory");
    let d_s = d.display().to_string();
    let bad: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["consume", "--topic", "nope"], "", "does not exist"),
        (vec!["produce", "--topic", "nope"], "x\n", "does not exist"),
        (vec!["dump", "--topic", "nope"], "", "does not exist"),
        (vec!["topics", "--create", "--topic", "z", "--config", "retention.ms=soon"], "", "retention.ms"),
        (vec!["topics", "--create", "--topic", "z", "--config", "no.such.key=1"], "", "no.such.key"),
        (vec!["topics", "--create", "--topic", "z", "--config", "novalue"], "", "key=value"),
        (vec!["topics", "--create", "--topic", "bad/name"], "", "invalid topic name"),
        (vec!["topics", "--alter", "--topic", "t", "--config", "segment.bytes=-5"], "", "segment.bytes"),
        (vec!["topics", "--delete", "--topic", "nope"], "", "does not exist"),
        (vec!["produce", "--topic", "t", "--key-separator", ":"], "no separator here\n", "line 1 has no key separator"),
        (vec!["produce", "--topic", "kv"], "unkeyed\n", "compacted"),
        (vec!["produce", "--topic", "t", "--partition", "7"], "x\n", "no partition 7"),
        (vec!["produce", "--topic", "t", "--header", "nokv"], "x\n", "key=value"),
        (vec!["consume", "--topic", "t", "--timestamp", "yesterday"], "", "is not a time"),
        (vec!["consume", "--topic", "t", "--partition", "3"], "", "no partition 3"),
        (vec!["consume", "--topic", "t", "--offset", "99"], "", "out of range"),
        (vec!["consume", "--topic", "t", "--property", "print.colour=true"], "", "unknown --property"),
        (vec!["dump", "--topic", "t", "--partition", "0", "--segment", "77"], "", "no segment with base offset 77"),
        (vec!["groups", "--describe", "--group", "nobody"], "", "does not exist"),
        (vec!["compact", "--topic", "t"], "", "not compacted"),
    ];
    for (args, input, says) in bad {
        partlog()
            .args(["--dir", d_s.as_str()])
            .args(&args)
            .write_stdin(input)
            .assert()
            .code(1)
            .stderr(one_sentence().and(predicate::str::contains(says)));
        assert_eq!(before, snapshot(&d), "{args:?} changed the directory");
    }
    // A malformed line after good ones: those before it are appended, nothing after it.
    partlog()
        .args(dir_arg(&d))
        .args(["produce", "--topic", "kv", "--key-separator", ":"])
        .write_stdin("a:1\nb:2\nbroken\nc:3\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("line 3").and(predicate::str::contains("2 lines before it were")));
    let out = partlog().args(dir_arg(&d)).args(["consume", "--topic", "kv", "--from-beginning"]).output()?;
    assert_eq!(stdout_of(&out), "1\n2\n");
    Ok(())
}

/// The child: holds a log directory open and appends to topic `live` until killed. Does
/// nothing unless `PARTLOG_CLI_CHILD_DIR` is set.
#[test]
#[ignore = "child process of the CLI tests (does nothing unless PARTLOG_CLI_CHILD_DIR is set)"]
fn child_writer() -> TestResult {
    let Ok(path) = std::env::var(ENV_CHILD) else { return Ok(()) };
    let dir = partlog::LogDir::open(&path)?;
    let cfg = partlog::TopicConfig::default().segment_bytes(2048).retention_bytes(Some(64 << 10));
    let t = dir.create_topic("live", cfg)?;
    let p = t.partition(0)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY")?;
    out.flush()?;
    for i in 0..200_000u64 {
        let o = p.log_end_offset();
        p.append(partlog::Record::new().key(format!("k{}", o % 5)).value(format!("v{o}")))?;
        if i % 500 == 499 {
            p.run_retention()?;
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    Ok(())
}

struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_writer(d: &Path) -> Result<Writer, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["child_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_CHILD, d)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let lines = line_reader(&mut child)?;
    let w = Writer(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(100))
            && l.contains("READY")
        {
            std::thread::sleep(Duration::from_millis(200)); // some appends and rolls first
            return Ok(w);
        }
    }
    Err("the writer never got ready".into())
}

/// Values `v<offset>` in order: dense from the first one.
fn check_dense(out: &str) -> Result<usize, String> {
    let offs: Vec<u64> = out
        .lines()
        .map(|l| l.strip_prefix('v').and_then(|n| n.parse().ok()).ok_or(format!("unexpected line {l:?}")))
        .collect::<Result<_, _>>()?;
    for w in offs.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(format!("offset {} follows {}", w[1], w[0]));
        }
    }
    Ok(offs.len())
}

#[test]
fn against_a_directory_another_process_writes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    let _w = start_writer(&d)?;
    // Reading commands work while the writer holds the directory.
    partlog().args(dir_arg(&d)).args(["topics", "--list"]).assert().success().stdout("live\n");
    partlog()
        .args(dir_arg(&d))
        .args(["topics", "--describe"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Topic: live"));
    let out = partlog().args(dir_arg(&d)).args(["consume", "--topic", "live", "--from-beginning"]).output()?;
    assert!(out.status.success());
    let n = check_dense(&stdout_of(&out))?;
    assert!(n > 0);
    let out = partlog()
        .args(dir_arg(&d))
        .args(["consume", "--topic", "live", "--follow", "--max-messages", "300"])
        .timeout(Duration::from_secs(60))
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(check_dense(&stdout_of(&out))?, 300);
    for _ in 0..5 {
        partlog().args(dir_arg(&d)).args(["dump", "--topic", "live", "--verify"]).assert().success();
    }
    partlog().args(dir_arg(&d)).args(["dump", "--topic", "live", "--records", "--format", "json"]).assert().success();
    // Commands that write refuse, with exit code 4 and one sentence, and write nothing.
    let topics_dir = d.join("topics");
    let writing: Vec<Vec<&str>> = vec![
        vec!["topics", "--create", "--topic", "other"],
        vec!["topics", "--alter", "--topic", "live", "--config", "retention.ms=1"],
        vec!["topics", "--delete", "--topic", "live"],
        vec!["produce", "--topic", "live"],
        vec!["consume", "--topic", "live", "--group", "g", "--from-beginning"],
        vec!["groups", "--reset-offsets", "--group", "g", "--all-topics", "--to-earliest", "--execute"],
        vec!["groups", "--delete", "--group", "g"],
        vec!["retention"],
        vec!["compact"],
    ];
    for args in writing {
        partlog().args(dir_arg(&d)).args(&args).write_stdin("not appended\n").assert().code(4).stderr(
            predicate::str::contains("in use by another process")
                .and(predicate::function(|s: &str| s.lines().count() == 1)),
        );
    }
    let names: Vec<String> =
        std::fs::read_dir(&topics_dir)?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["live"]);
    let out = partlog().args(dir_arg(&d)).args(["consume", "--topic", "live", "--from-beginning"]).output()?;
    assert!(!stdout_of(&out).contains("not appended"));
    assert!(!d.join("topics/__consumer_offsets").exists(), "a refused group command created the offsets topic");
    Ok(())
}

#[test]
fn dump_reports_damage_with_exit_code_3() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    create(&d, "t", &["--config", "segment.bytes=1024"]);
    let lines: String = (0..60).map(|i| format!("record number {i}\n")).collect();
    produce(&d, "t", &[], &lines);
    partlog()
        .args(dir_arg(&d))
        .args(["dump", "--topic", "t", "--verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Verification: ok"));
    let seg = d.join("topics/t/0/00000000000000000000.log");
    let mut b = std::fs::read(&seg)?;
    b[100] ^= 0x40; // the attributes of the second batch (each batch here is 90 bytes)
    std::fs::write(&seg, &b)?;
    partlog()
        .args(dir_arg(&d))
        .args(["dump", "--topic", "t"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("DAMAGED"))
        .stderr(predicate::str::contains("damage found"));
    partlog().args(dir_arg(&d)).args(["dump", "--topic", "t", "--segment", "0", "--verify"]).assert().code(3).stdout(
        predicate::str::contains("PROBLEM").and(predicate::str::contains(
            "at byte 90: batch fields are inconsistent; valid batches resume at byte 180",
        )),
    );
    let out = partlog().args(dir_arg(&d)).args(["dump", "--topic", "t", "--verify", "--format", "json"]).output()?;
    assert_eq!(out.status.code(), Some(3));
    let segs = json_lines(&stdout_of(&out));
    assert_eq!(segs[0]["verification"]["ok"], false);
    assert!(segs[1..].iter().all(|s| s["verification"]["ok"] == true));
    // Reading the damaged records is an error too, with its own exit code.
    partlog().args(dir_arg(&d)).args(["consume", "--topic", "t", "--from-beginning"]).assert().code(3);
    Ok(())
}

#[test]
fn groups_commit_describe_reset_delete() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    create(&d, "t", &["--partitions", "2"]);
    produce(&d, "t", &["--partition", "0"], "a\nb\nc\nd\n");
    produce(&d, "t", &["--partition", "1"], "e\nf\n");
    // Consume three records as group g: it commits what it printed.
    partlog()
        .args(dir_arg(&d))
        .args([
            "consume",
            "--topic",
            "t",
            "--partition",
            "0",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            "3",
        ])
        .assert()
        .success()
        .stdout("a\nb\nc\n");
    partlog().args(dir_arg(&d)).args(["groups", "--list"]).assert().success().stdout("g\n");
    let desc = |d: &Path| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let out =
            partlog().args(dir_arg(d)).args(["groups", "--describe", "--group", "g", "--format", "json"]).output()?;
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let v = desc(&d)?;
    assert_eq!(
        (v["partitions"][0]["committed_offset"].as_u64(), v["partitions"][0]["lag"].as_u64()),
        (Some(3), Some(1))
    );
    // The group resumes where it committed.
    partlog()
        .args(dir_arg(&d))
        .args(["consume", "--topic", "t", "--partition", "0", "--group", "g"])
        .assert()
        .success()
        .stdout("d\n");
    // A dry run changes nothing; --execute does.
    partlog()
        .args(dir_arg(&d))
        .args(["groups", "--reset-offsets", "--group", "g", "--topic", "t:0", "--to-earliest"])
        .assert()
        .success()
        .stdout(predicate::str::contains("dry run"));
    assert_eq!(desc(&d)?["partitions"][0]["committed_offset"].as_u64(), Some(4));
    partlog()
        .args(dir_arg(&d))
        .args(["groups", "--reset-offsets", "--group", "g", "--topic", "t:0", "--shift-by", "-3", "--execute"])
        .assert()
        .success();
    assert_eq!(desc(&d)?["partitions"][0]["committed_offset"].as_u64(), Some(1));
    partlog()
        .args(dir_arg(&d))
        .args(["consume", "--topic", "t", "--partition", "0", "--group", "g"])
        .assert()
        .success()
        .stdout("b\nc\nd\n");
    partlog().args(dir_arg(&d)).args(["groups", "--delete", "--group", "g"]).assert().success();
    partlog().args(dir_arg(&d)).args(["groups", "--list"]).assert().success().stdout("");
    Ok(())
}

#[test]
fn retention_and_compaction_passes_report() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    create(&d, "logs", &["--config", "segment.bytes=1024", "--config", "retention.bytes=2048"]);
    create(
        &d,
        "kv",
        &[
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.bytes=1024",
            "--config",
            "min.cleanable.dirty.ratio=0.01",
        ],
    );
    let lines: String = (0..200).map(|i| format!("line {i}\n")).collect();
    produce(&d, "logs", &[], &lines);
    let kv: String = (0..200).map(|i| format!("k{}:{i}\n", i % 4)).collect();
    produce(&d, "kv", &["--key-separator", ":"], &kv);
    let out = partlog().args(dir_arg(&d)).args(["retention", "--topic", "logs", "--format", "json"]).output()?;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(v[0]["segments_deleted"].as_u64().unwrap_or(0) > 0, "{v}");
    let start = v[0]["log_start_offset"].as_u64().unwrap_or(0);
    assert!(start > 0);
    let first = partlog()
        .args(dir_arg(&d))
        .args(["consume", "--topic", "logs", "--from-beginning", "--max-messages", "1"])
        .output()?;
    assert_eq!(stdout_of(&first), format!("line {start}\n"));
    let out = partlog().args(dir_arg(&d)).args(["compact", "--format", "json"]).output()?;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v.as_array().map(Vec::len), Some(1), "only the compacted topic: {v}");
    assert!(v[0]["records_removed"].as_u64().unwrap_or(0) > 100, "{v}");
    // Each key's latest value survives.
    let out = partlog()
        .args(dir_arg(&d))
        .args([
            "consume",
            "--topic",
            "kv",
            "--from-beginning",
            "--property",
            "print.key=true",
            "--property",
            "key.separator==",
        ])
        .output()?;
    let text = stdout_of(&out);
    for k in 0..4 {
        let latest = 196 + k;
        assert!(text.contains(&format!("k{k}={latest}\n")), "k{k}: {text}");
    }
    partlog().args(dir_arg(&d)).args(["retention"]).assert().success().stdout(predicate::str::contains("TOPIC"));
    Ok(())
}

/// A loopback port nothing listens on (bound, then released).
#[cfg(feature = "kafka")]
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(1, |a| a.port())
}

#[cfg(feature = "kafka")]
#[test]
fn kafka_commands_explain_themselves() {
    for cmd in ["mirror", "import"] {
        partlog()
            .args([cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"))
            .stdout(predicate::str::contains("--bootstrap-server"));
    }
    partlog().args(["mirror", "--dir", "x", "--topic", "t"]).assert().code(2); // no --bootstrap-server
}

#[cfg(feature = "kafka")]
#[test]
fn kafka_unreachable_broker_is_named_and_nothing_changes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path().join("data");
    create(&d, "orders", &["--partitions", "2"]);
    produce(&d, "orders", &[], "a\nb\nc\n");
    let before = snapshot(&d);
    let address = format!("127.0.0.1:{}", dead_port());
    for cmd in ["mirror", "import"] {
        let out = partlog()
            .args(dir_arg(&d))
            .args([cmd, "--topic", "orders", "--bootstrap-server", &address])
            .args(["--connect-attempts", "2", "--request-timeout-ms", "300"])
            .output()?;
        assert_eq!(out.status.code(), Some(1), "{cmd}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&address) && err.contains("2 attempts"), "{cmd}: {err}");
    }
    assert_eq!(snapshot(&d).keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "no file added or removed");
    Ok(())
}

/// Needs a broker (`KAFKA_BOOTSTRAP_SERVERS`, as `.ci/kafka` sets it); skips without one.
#[cfg(feature = "kafka")]
#[test]
fn kafka_mirror_then_import_round_trip() -> TestResult {
    let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "kafka_mirror_then_import_round_trip: skipped: KAFKA_BOOTSTRAP_SERVERS is not set"
        );
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    create(&src, "orders", &["--partitions", "3"]);
    let lines: String = (0..300).map(|i| format!("k{i}:value {i}\n")).collect();
    let total = 301;
    produce(&src, "orders", &["--key-separator", ":"], &lines);
    let kafka_topic = format!("cli-{}-{}", std::process::id(), dead_port());
    let out = partlog()
        .args(dir_arg(&src))
        .args(["mirror", "--topic", "orders", "--bootstrap-server", &bootstrap, "--kafka-topic", &kafka_topic])
        .args(["--resume-wait-ms", "100"])
        .output()?;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("mirrored 300 records"), "{out:?}");
    // Again with --record-offsets: nothing to copy, and the position lands in the group.
    produce(&src, "orders", &["--key-separator", ":"], "late:one more\n");
    let out = partlog()
        .args(dir_arg(&src))
        .args(["mirror", "--topic", "orders", "--bootstrap-server", &bootstrap, "--kafka-topic", &kafka_topic])
        .args(["--resume-wait-ms", "100", "--record-offsets"])
        .output()?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("mirrored 1 records"), "{out:?}");
    let group = format!("partlog-mirror.{kafka_topic}");
    let out =
        partlog().args(dir_arg(&src)).args(["groups", "--describe", "--group", &group, "--format", "json"]).output()?;
    assert!(out.status.success(), "{out:?}");
    let described: serde_json::Value = serde_json::from_str(&stdout_of(&out))?;
    let parts = described["partitions"].as_array().ok_or("partitions")?;
    assert_eq!(parts.len(), 3, "{described}");
    for p in parts {
        assert_eq!(p["lag"], 0, "{described}");
        assert_eq!(p["committed_offset"], p["log_end_offset"], "{described}");
    }
    let out = partlog()
        .args(dir_arg(&dst))
        .args(["import", "--topic", "copy", "--bootstrap-server", &bootstrap, "--kafka-topic", &kafka_topic])
        .output()?;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("imported {total} records")), "{out:?}");
    let read = |d: &Path, t: &str| -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
        let out = partlog()
            .args(dir_arg(d))
            .args(["consume", "--topic", t, "--from-beginning", "--format", "json"])
            .output()?;
        let mut v: Vec<serde_json::Value> = json_lines(&stdout_of(&out))
            .into_iter()
            .map(|r| serde_json::json!([r["partition"], r["offset"], r["key"], r["value"]]))
            .collect();
        v.sort_by_key(|x| x.to_string());
        Ok(v)
    };
    assert_eq!(read(&src, "orders")?, read(&dst, "copy")?);
    Ok(())
}
