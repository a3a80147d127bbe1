//! Random one-record reads by offset.

use crate::cli::Cfg;
use crate::fixture::{Values, WARMUP_READS, dir_bytes, random_offsets, tempdir};
use crate::report::{Better, Report, Rounds, fmt_ns, fmt_rate, pct, per_sec, progress};
use crate::systems::{self, SYSTEMS, fjall, order, order_label};
use crate::workloads::footprint;

pub fn run(rep: &mut Report, cfg: &Cfg, v: &Values) {
    let n = cfg.random_log;
    progress(format!("random reads: writing {n}-record fixtures"));
    let fixture = tempdir(cfg, "random");
    let mut build = Vec::new();
    for sys in SYSTEMS {
        let d = systems::write_read_fixture(sys, fixture.path(), v, n);
        build.push(format!("{} {} rec/s", sys.label(), fmt_rate(per_sec(n, d))));
    }
    fjall::take_drains();
    let (warmup, offsets) = random_offsets(n, cfg.random_reads);

    rep.line(format!(
        "\n### Random reads by offset ({} reads in a {n}-record log, after {WARMUP_READS} warm-up reads)\n",
        cfg.random_reads
    ));
    let mut head = String::from("| round (order) |");
    for s in SYSTEMS {
        head.push_str(&format!(" {} median | {} p99 |", s.label(), s.label()));
    }
    rep.line(head.clone());
    rep.line(format!("|---|{}", "---:|".repeat(2 * SYSTEMS.len())));
    let mut med = Rounds::default();
    let mut p99 = Rounds::default();
    let mut warm_med = Rounds::default();
    let mut warm_p99 = Rounds::default();
    let mut warm_lines = Vec::new();
    for r in 0..cfg.rounds {
        let o = order(r);
        let mut row = [(0.0, 0.0); 5];
        let mut warm = [(0.0, 0.0); 5];
        for sys in o {
            progress(format!("random reads: round {} {}", r + 1, sys.name()));
            let lat = systems::random_reads(sys, fixture.path(), &warmup, &offsets, v, &mut || {});
            row[sys.index()] = (pct(&lat.cold, 0.5), pct(&lat.cold, 0.99));
            warm[sys.index()] = (pct(&lat.warm, 0.5), pct(&lat.warm, 0.99));
        }
        med.push(Better::Lower, row.map(|x| x.0));
        p99.push(Better::Lower, row.map(|x| x.1));
        warm_med.push(Better::Lower, warm.map(|x| x.0));
        warm_p99.push(Better::Lower, warm.map(|x| x.1));
        let cells = |row: [(f64, f64); 5]| {
            let mut line = format!("| {} ({}) |", r + 1, order_label(&o));
            for (m, p) in row {
                line.push_str(&format!(" {} | {} |", fmt_ns(m), fmt_ns(p)));
            }
            line
        };
        rep.line(cells(row));
        warm_lines.push(cells(warm));
    }
    let medians = |med: &Rounds, p99: &Rounds| {
        let mut line = String::from("| **median** |");
        for s in SYSTEMS {
            line.push_str(&format!(" **{}** | {} |", fmt_ns(med.median_value(s)), fmt_ns(p99.median_value(s))));
        }
        line
    };
    rep.line(medians(&med, &p99));
    rep.line(
        "\nWarm: the same offsets read a third time right after, in the same process (the steady state: every \
         place read twice before). partlog's second pass is slower than both (see the README: a small read's \
         first visit to a page copies it, the second maps it in).\n",
    );
    rep.line(head.clone());
    rep.line(format!("|---|{}", "---:|".repeat(2 * SYSTEMS.len())));
    for l in warm_lines {
        rep.line(l);
    }
    rep.line(medians(&warm_med, &warm_p99));
    med.summary(rep, "Random read", "median latency", fmt_ns);
    p99.summary(rep, "Random read", "p99 latency", fmt_ns);
    warm_med.summary(rep, "Random read, warm", "median latency", fmt_ns);
    warm_p99.summary(rep, "Random read, warm", "p99 latency", fmt_ns);
    let sizes: Vec<String> = SYSTEMS
        .iter()
        .map(|s| format!("{} {:.0} MB", s.label(), dir_bytes(&s.path(fixture.path())) as f64 / 1e6))
        .collect();
    rep.line(format!(
        "\npartlog: `read(o, 1)` and the first record; commitlog: `read(o, ReadLimit::max_bytes({}))` (one \
         message) and its first message; SQLite: the prepared `SELECT ... WHERE \"offset\" >= ?1 ORDER BY \
         \"offset\" LIMIT 1`; fjall: `get(o as big-endian u64)` (a point lookup; its fixture was flushed into \
         tables before close); raw: `pread` of 100 bytes at `o × 100` (fixed-size records, no index: a floor). \
         Every value is checked. Each latency includes one `Instant::now()` pair. Fixture build (batched, not \
         part of the goals): {}; on-disk sizes: {}.",
        systems::commitlog::ONE_MESSAGE,
        build.join(", "),
        sizes.join(", "),
    ));
    let m = med.median_value(systems::Sys::Partlog);
    rep.goal("random read median ≤ 2 µs", fmt_ns(m), Some(m <= 2_000.0));
    let w = warm_med.median_value(systems::Sys::Partlog);
    rep.goal("random read, warm, median ≤ 0.5 µs", fmt_ns(w), Some(w <= 500.0));
    footprint::section(rep, cfg, "random reads", fixture.path(), footprint::Kind::Random);
}
