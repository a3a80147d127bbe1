//! fsync before every append returns, from 1 and 8 threads.

use std::time::Duration;

use crate::cli::Cfg;
use crate::fixture::{Values, tempdir};
use crate::report::{Better, Report, Rounds, fmt_rate, fmt_ratio, per_sec, progress};
use crate::systems::{self, PEERS, SYSTEMS, Sys, order, order_label};

/// Slices each fsync run is cut into, alternating 1 and 8 threads.
const SLICES: usize = 4;

pub fn run(rep: &mut Report, cfg: &Cfg, v: &Values) {
    rep.line(format!(
        "\n### fsync before every append returns, 1 and 8 threads ({:.1} s per system and thread count per round, \
         in {SLICES} alternating slices; records/s)\n",
        cfg.fsync_secs
    ));
    let mut head = String::from("| round (order) |");
    for s in SYSTEMS {
        head.push_str(&format!(" {} 1T | {} 8T |", s.label(), s.label()));
    }
    rep.line(head);
    rep.line(format!("|---|{}", "---:|".repeat(2 * SYSTEMS.len())));
    let mut one = Rounds::default();
    let mut eight = Rounds::default();
    let mut scale: [Vec<f64>; 5] = Default::default();
    for r in 0..cfg.rounds {
        let o = order(r);
        let mut row = [(0.0, 0.0); 5];
        for sys in o {
            // fsync latency on a shared VM drifts within seconds, so 1 and 8 threads alternate in
            // short slices (1, 8, 8, 1, ...) and each rate sums its slices.
            progress(format!("fsync: round {} {}", r + 1, sys.name()));
            let mut acc = [(0usize, Duration::ZERO); 2];
            for slice in 0..SLICES {
                let pair = if slice % 2 == 0 { [1, 8] } else { [8, 1] };
                for threads in pair {
                    let d = tempdir(cfg, "fsync");
                    let (n, t) = systems::fsync_run(sys, d.path(), threads, cfg.fsync_secs / SLICES as f64, v);
                    let a = &mut acc[usize::from(threads != 1)];
                    a.0 += n;
                    a.1 += t;
                }
            }
            row[sys.index()] = (per_sec(acc[0].0, acc[0].1), per_sec(acc[1].0, acc[1].1));
            scale[sys.index()].push(row[sys.index()].1 / row[sys.index()].0);
        }
        one.push(Better::Higher, row.map(|x| x.0));
        eight.push(Better::Higher, row.map(|x| x.1));
        let mut line = format!("| {} ({}) |", r + 1, order_label(&o));
        for (a, b) in row {
            line.push_str(&format!(" {} | {} |", fmt_rate(a), fmt_rate(b)));
        }
        rep.line(line);
    }
    let s: [f64; 5] = std::array::from_fn(|i| crate::report::median(&scale[i]));
    rep.line("\nMedians over the rounds; partlog's ratios are medians of per-round ratios.\n");
    rep.line("| system | 1 thread | 8 threads | 8T/1T | partlog vs it, 1T | partlog vs it, 8T |");
    rep.line("|---|---:|---:|---:|---:|---:|");
    let (r1, r8) = (one.median_ratios(), eight.median_ratios());
    for sys in SYSTEMS {
        let (a, b) = match PEERS.iter().position(|p| *p == sys) {
            Some(i) => (fmt_ratio(r1[i]), fmt_ratio(r8[i])),
            None => ("—".to_owned(), "—".to_owned()),
        };
        rep.line(format!(
            "| {} | {} | {} | {} | {a} | {b} |",
            sys.label(),
            fmt_rate(one.median_value(sys)),
            fmt_rate(eight.median_value(sys)),
            fmt_ratio(s[sys.index()]),
        ));
    }
    one.summary(rep, "fsync per append, 1 thread", "records/s", fmt_rate);
    eight.summary(rep, "fsync per append, 8 threads", "records/s", fmt_rate);
    rep.line(
        "\npartlog: `Durability::EveryAppend`, one shared `Partition`, `append` per record (concurrent appends \
         share fsyncs: group commit). commitlog: `Mutex<CommitLog>`, `append_msg` + `flush()` per record; \
         **commitlog 0.2's `flush()` does not fsync the log** (`Segment::flush_sync` is `File::flush`, a no-op \
         for `std::fs::File`; only the index mmap is msync'ed), so the harness also calls `sync_data()` on the \
         active segment file under the same lock. SQLite: `Mutex<Connection>`, WAL with `synchronous=FULL`, one \
         prepared `INSERT` per record in autocommit mode (each commit fsyncs the WAL; SQLite has one writer at \
         a time and no group commit). fjall: a one-record `WriteBatch` with \
         `durability(Some(PersistMode::SyncData))` per record, offsets from an atomic counter, no lock of the \
         harness's (fjall serializes journal writes and their fsyncs itself). raw: `Mutex<File>`, `write` + \
         `sync_data` per record under the lock.",
    );
    let p = s[Sys::Partlog.index()];
    rep.goal("8-thread fsync appends ≥ 5× 1 thread", fmt_ratio(p), Some(p >= 5.0));
}
