//! Command line and `PLC_*` environment variables: flags win over variables, which win over the
//! mode's defaults.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;

use crate::fixture::BATCH;

/// Workload names accepted by `--only`.
pub const WORKLOADS: &[&str] = &[
    "append",
    "single",
    "read",
    "tail",
    "random",
    "fsync",
    "reopen",
    "crash",
    "resources",
    "compact",
    "retention",
    "consumer",
];

const KNOWN_FLAGS: &[&str] = &[
    "--quick",
    "--only",
    "--rounds",
    "--records",
    "--single-records",
    "--random-log",
    "--random-reads",
    "--fsync-secs",
    "--segments",
    "--segment-records",
    "--crash-records",
    "--compact-mb",
    "--retention-segments",
    "--dir",
];

#[derive(Debug, Clone)]
pub struct Cfg {
    pub quick: bool,
    pub only: Option<BTreeSet<String>>,
    pub rounds: usize,
    pub records: usize,
    pub single_records: usize,
    pub random_log: usize,
    pub random_reads: usize,
    pub fsync_secs: f64,
    pub segments: usize,
    pub segment_records: usize,
    pub crash_records: usize,
    pub compact_mb: usize,
    pub retention_segments: usize,
    pub dir: PathBuf,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(format!("PLC_{name}")).ok().and_then(|v| v.replace('_', "").parse().ok())
}

impl Cfg {
    pub fn parse(args: &[String]) -> Cfg {
        let quick = args.iter().any(|a| a == "--quick");
        let pick = |name: &str, flag: &str, full: usize, quick_v: usize| -> usize {
            arg_value(args, flag)
                .and_then(|v| v.replace('_', "").parse().ok())
                .or_else(|| env_num(name))
                .unwrap_or(if quick { quick_v } else { full })
        };
        let fsync_secs = arg_value(args, "--fsync-secs")
            .and_then(|v| v.parse().ok())
            .or_else(|| env_num("FSYNC_SECS"))
            .unwrap_or(if quick { 0.5 } else { 2.0 });
        let only = arg_value(args, "--only").or_else(|| std::env::var("PLC_ONLY").ok()).map(|v| {
            let set: BTreeSet<String> = v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            for w in &set {
                if !WORKLOADS.contains(&w.as_str()) {
                    die(format!("unknown workload `{w}`; known: {}", WORKLOADS.join(",")));
                }
            }
            set
        });
        let dir = arg_value(args, "--dir")
            .or_else(|| std::env::var("PLC_DIR").ok())
            .map_or_else(std::env::temp_dir, PathBuf::from);
        for a in args.iter().skip(1) {
            if a.starts_with("--") && !KNOWN_FLAGS.contains(&a.as_str()) {
                die(format!("unknown flag `{a}`"));
            }
        }
        Cfg {
            quick,
            only,
            rounds: pick("ROUNDS", "--rounds", 5, 3).max(1),
            records: pick("RECORDS", "--records", 1_000_000, 200_000).max(BATCH),
            single_records: pick("SINGLE_RECORDS", "--single-records", 1_000_000, 100_000).max(1),
            random_log: pick("RANDOM_LOG", "--random-log", 10_000_000, 1_000_000).max(BATCH),
            random_reads: pick("RANDOM_READS", "--random-reads", 10_000, 10_000).max(1),
            fsync_secs,
            segments: pick("SEGMENTS", "--segments", 1_000, 1_000).max(2),
            segment_records: pick("SEGMENT_RECORDS", "--segment-records", 200, 100).max(1),
            crash_records: pick("CRASH_RECORDS", "--crash-records", 2_000_000, 300_000).max(BATCH),
            compact_mb: pick("COMPACT_MB", "--compact-mb", 1_024, 64).max(4),
            retention_segments: pick("RETENTION_SEGMENTS", "--retention-segments", 1_000, 1_000).max(1),
            dir,
        }
    }

    pub fn wants(&self, w: &str) -> bool {
        self.only.as_ref().is_none_or(|s| s.contains(w))
    }

    /// Rounds of the maintenance workloads (each round builds a fresh fixture).
    pub fn maintenance_rounds(&self) -> usize {
        self.rounds.min(3)
    }
}

fn arg_value(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned()
}

pub fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("partlog-compare: {msg}");
    std::process::exit(2)
}

/// `expect` for any `Debug` error (every system's errors, io errors).
pub trait OrDie<T> {
    fn or_die(self, what: &str) -> T;
}

impl<T, E: Debug> OrDie<T> for Result<T, E> {
    fn or_die(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => die(format!("{what}: {e:?}")),
        }
    }
}
