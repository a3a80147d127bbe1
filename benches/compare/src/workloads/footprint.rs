//! Memory and open files of each system during a read workload.
//!
//! Each system is measured in a fresh child process (`--footprint SYS KIND ROOT LOG READS`), so
//! none inherits another's freed-but-kept heap or its library pages: the child samples
//! `/proc/self/fd` and `/proc/self/status` before opening the log (the baseline), right after
//! opening it, every ~1 MiB of a sequential read or every 100 random reads (outside the timed
//! calls), and after closing it. The report gives deltas from the baseline: at open, the peak
//! and after close.

use std::path::Path;
use std::process::Command;

use crate::cli::{Cfg, OrDie, die};
use crate::fixture::{random_offsets, values};
use crate::procfs::{Mem, delta_mib, mem, open_fds};
use crate::report::{Better, Report, progress};
use crate::systems::{self, SYSTEMS, Sys};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sequential,
    Random,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sequential => "seq",
            Kind::Random => "random",
        }
    }
}

/// Samples of one child: before open, right after open, the peak, after close.
#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    pub fds: [usize; 4],
    pub mem: [Mem; 4],
}

const BEFORE: usize = 0;
const OPEN: usize = 1;
const PEAK: usize = 2;
const CLOSED: usize = 3;

/// The child: runs the read workload once and prints one `FOOTPRINT` line.
pub fn child(args: &[String]) -> ! {
    let parse = |i: usize| args.get(i).and_then(|s| s.parse::<usize>().ok());
    let (Some(sys), Some(kind), Some(root), Some(log), Some(reads)) =
        (args.first().and_then(|s| Sys::parse(s)), args.get(1), args.get(2), parse(3), parse(4))
    else {
        die("usage: --footprint SYS seq|random ROOT LOG READS")
    };
    let v = values();
    let (warmup, offsets) = random_offsets(log, reads);
    let mut samples: Vec<(usize, Mem)> = Vec::with_capacity(1 << 16);
    let before = (open_fds(), mem());
    let root = Path::new(root);
    let mut probe = || samples.push((open_fds(), mem()));
    match kind.as_str() {
        "seq" => {
            systems::read_all(sys, root, &mut probe);
        }
        "random" => {
            systems::random_reads(sys, root, &warmup, &offsets, &v, &mut probe);
        }
        other => die(format!("unknown footprint kind {other}")),
    }
    let closed = (open_fds(), mem());
    let open = samples.first().copied().unwrap_or(before);
    let peak = samples.iter().fold(open, |a, s| (a.0.max(s.0), a.1.max(s.1)));
    let mut line = String::from("FOOTPRINT");
    for (f, m) in [before, open, peak, closed] {
        line.push_str(&format!(" {f} {} {} {}", m.rss_kb, m.anon_kb, m.file_kb));
    }
    println!("{line}");
    std::process::exit(0)
}

fn measure(sys: Sys, kind: Kind, root: &Path, log: usize, reads: usize) -> Footprint {
    let exe = std::env::current_exe().or_die("current_exe");
    let out = Command::new(exe)
        .arg("--footprint")
        .arg(sys.name())
        .arg(kind.name())
        .arg(root)
        .arg(log.to_string())
        .arg(reads.to_string())
        .output()
        .or_die("spawn footprint child");
    if !out.status.success() {
        die(format!("footprint child for {} failed: {}", sys.name(), String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .lines()
        .find_map(|l| l.strip_prefix("FOOTPRINT "))
        .unwrap_or_else(|| die(format!("footprint child for {} printed no result", sys.name())))
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if nums.len() != 16 {
        die(format!("footprint child for {}: bad line {text}", sys.name()));
    }
    let mut f = Footprint::default();
    for i in 0..4 {
        f.fds[i] = nums[i * 4] as usize;
        f.mem[i] = Mem { rss_kb: nums[i * 4 + 1], anon_kb: nums[i * 4 + 2], file_kb: nums[i * 4 + 3], hwm_kb: 0 };
    }
    f
}

/// Measures every system on the fixture at `root` and writes the table and summary rows.
pub fn section(rep: &mut Report, cfg: &Cfg, what: &str, root: &Path, kind: Kind) {
    let (log, reads) = match kind {
        Kind::Sequential => (cfg.records, 0),
        Kind::Random => (cfg.random_log, cfg.random_reads),
    };
    let mut all = Vec::new();
    for sys in SYSTEMS {
        progress(format!("footprint ({}): {}", kind.name(), sys.name()));
        all.push(measure(sys, kind, root, log, reads));
    }
    rep.line(format!(
        "\n#### Memory and open files during the {what} (each system alone in a fresh process; deltas from \
         before opening the log)\n"
    ));
    rep.line(
        "| system | fds at open | fds peak | fds after close | VmRSS at open | VmRSS peak | RssAnon peak | RssFile \
         peak | VmRSS after close |",
    );
    rep.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (sys, f) in SYSTEMS.iter().zip(&all) {
        let fd = |i: usize| format!("{:+}", f.fds[i] as i64 - f.fds[BEFORE] as i64);
        let b = f.mem[BEFORE];
        rep.line(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            sys.label(),
            fd(OPEN),
            fd(PEAK),
            fd(CLOSED),
            delta_mib(f.mem[OPEN].rss_kb, b.rss_kb),
            delta_mib(f.mem[PEAK].rss_kb, b.rss_kb),
            delta_mib(f.mem[PEAK].anon_kb, b.anon_kb),
            delta_mib(f.mem[PEAK].file_kb, b.file_kb),
            delta_mib(f.mem[CLOSED].rss_kb, b.rss_kb),
        ));
    }
    rep.line(
        "\nVmRSS = RssAnon (heap and anonymous maps: caches, buffers) + RssFile (file pages mapped into the \
         process: memory-mapped segments and indexes, and the library code first run in this process) + \
         RssShmem. Mapped file pages are page cache shared with the kernel and can be dropped under memory \
         pressure; RssAnon cannot. A peak is the largest sample, not a continuous maximum.",
    );
    let label = match kind {
        Kind::Sequential => "Memory during sequential read",
        Kind::Random => "Memory during random reads",
    };
    let delta =
        |f: &Footprint, pick: fn(&Mem) -> u64| (pick(&f.mem[PEAK]) as f64 - pick(&f.mem[BEFORE]) as f64) / 1024.0;
    let rss: [f64; 5] = std::array::from_fn(|i| delta(&all[i], |m| m.rss_kb));
    let anon: [f64; 5] = std::array::from_fn(|i| delta(&all[i], |m| m.anon_kb));
    let fds: [f64; 5] = std::array::from_fn(|i| all[i].fds[PEAK] as f64 - all[i].fds[BEFORE] as f64);
    let mb = |x: f64| format!("{x:+.1} MiB");
    rep.summary_from_medians(label, "peak ΔVmRSS", Better::Lower, rss, 0.5, mb);
    rep.summary_from_medians(label, "peak ΔRssAnon", Better::Lower, anon, 0.5, mb);
    rep.summary_from_medians(&label.replace("Memory", "Open files"), "peak Δfds", Better::Lower, fds, 1.0, |x| {
        format!("{x:+.0}")
    });
}
