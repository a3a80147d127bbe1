//! partlog-compare: runs partlog, commitlog 0.2, SQLite (rusqlite), fjall and a raw
//! `std::fs::File` baseline on the same workloads in one process and prints Markdown tables (see
//! README.md).
//!
//! Usage: `cargo run --release -- [--quick] [--only append,single,read,tail,random,fsync,reopen,crash,resources,compact,retention,consumer]
//! [--rounds N] [--records N] [--single-records N] [--random-log N] [--random-reads N]
//! [--fsync-secs S] [--segments N] [--segment-records N] [--crash-records N] [--compact-mb N]
//! [--retention-segments N] [--dir PATH]`.
//! Every count can also come from an environment variable `PLC_<NAME>` (`PLC_RECORDS`, ...);
//! arguments win.

mod cli;
mod fixture;
mod procfs;
mod report;
mod systems;
mod workloads;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cli::Cfg;
use fixture::{VALUE, values};
use procfs::{mem, open_fds};
use report::Report;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--crash-writer") => systems::crash_writer(&args[2..]),
        Some("--footprint") => workloads::footprint::child(&args[2..]),
        Some("--compact-child") => workloads::compaction::child(&args[2..]),
        _ => {}
    }
    let cfg = Cfg::parse(&args);
    let v = values();
    let mut rep = Report::default();
    let started = Instant::now();
    let fds_at_start = open_fds();
    let mem_at_start = mem();

    if cfg.wants("append") {
        workloads::throughput::append(&mut rep, &cfg, &v);
    }
    if cfg.wants("single") {
        workloads::throughput::single(&mut rep, &cfg, &v);
    }
    if cfg.wants("read") {
        workloads::throughput::read(&mut rep, &cfg, &v);
    }
    if cfg.wants("tail") {
        workloads::throughput::tail(&mut rep, &cfg, &v);
    }
    if cfg.wants("random") {
        workloads::random::run(&mut rep, &cfg, &v);
    }
    if cfg.wants("fsync") {
        workloads::fsync::run(&mut rep, &cfg, &v);
    }
    if cfg.wants("reopen") || cfg.wants("resources") {
        workloads::reopen::run(&mut rep, &cfg, &v, fds_at_start, mem_at_start);
    }
    if cfg.wants("crash") {
        workloads::crash::run(&mut rep, &cfg);
    }
    if cfg.wants("compact") {
        workloads::compaction::run(&mut rep, &cfg, &v);
    }
    if cfg.wants("retention") {
        workloads::retention::run(&mut rep, &cfg, &v);
    }
    if cfg.wants("consumer") {
        workloads::consumer::run(&mut rep, &cfg, &v);
    }

    let mut out = header(&cfg);
    out.push_str("\n### Summary\n\n");
    out.push_str(
        "Medians over the rounds of each workload below. \"partlog vs X\" is how many times better partlog is \
         (> 1× = partlog better): partlog's rate over X's for records/s and MB/s, X's value over partlog's for \
         latency, time and memory; for workloads run in rounds it is the median of the per-round ratios (not \
         the ratio of the medians), for the memory and open-file rows (one measurement each) the ratio of the \
         values. `n/a` says why a system has no value.\n\n",
    );
    out.push_str(&rep.summary_table());
    out.push_str(&rep.out);
    out.push_str("\n### Goals\n\n| goal | measured | met |\n|---|---:|:---:|\n");
    for (g, m, met) in &rep.goals {
        let mark = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        out.push_str(&format!("| {g} | {m} | {mark} |\n"));
    }
    out.push_str(&format!("\nTotal run time: {:.1} s.\n", started.elapsed().as_secs_f64()));
    print!("{out}");
}

/// The report's title and the facts needed to reproduce it.
fn header(cfg: &Cfg) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--", "src"]).lines().count();
    let mut s = format!(
        "## partlog vs commitlog 0.2 vs SQLite vs fjall 3 vs raw `std::fs::File` ({} mode)\n\n",
        if cfg.quick { "quick" } else { "full" }
    );
    s.push_str(&format!(
        "partlog at `{head}`{}; commitlog 0.2, rusqlite 0.43 with bundled SQLite {}, fjall 3.1 (versions pinned in \
         `benches/compare/Cargo.lock`).\n\n",
        if dirty > 0 { format!(" plus {dirty} uncommitted change(s) under src/") } else { String::new() },
        rusqlite::version()
    ));
    s.push_str(&format!(
        "Machine: {} × {cpu}, Linux {}; data dir {} ({}). Values are {VALUE} B; MB/s counts value bytes (10⁶ B/s). \
         Each throughput workload runs in {} rounds; every round runs all five systems in a rotated order (p = \
         partlog, c = commitlog, s = SQLite, f = fjall, r = raw) and its ratios compare runs of the same round. \
         Only the append/read calls are timed (not open, close or cleanup).\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel.trim(),
        cfg.dir.display(),
        fs_type(&cfg.dir),
        cfg.rounds
    ));
    s
}

fn fs_type(dir: &Path) -> String {
    // The longest mount point that is a prefix of the (canonical) directory.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (_dev, mp, ty) = (it.next()?, it.next()?, it.next()?);
            dir.starts_with(mp).then(|| (mp.len(), ty.to_owned()))
        })
        .max_by_key(|(n, _)| *n)
        .map_or_else(|| "unknown fs".to_owned(), |(_, t)| t)
}
