//! The workloads, each writing its section of the report and its summary rows.

pub mod compaction;
pub mod consumer;
pub mod crash;
pub mod footprint;
pub mod fsync;
pub mod random;
pub mod reopen;
pub mod retention;
pub mod throughput;

use crate::report::{Better, Report, Rounds, fmt_ratio, median, progress};
use crate::systems::{PEERS, SYSTEMS, Sys, order, order_label};

/// Runs `rounds` rounds of `run(sys, round)` (one value per system per round, every round in
/// a rotated order) and prints one row per round, the median row, and partlog's per-round
/// ratios against each peer (> 1× means partlog is better).
pub fn run_rounds(
    rep: &mut Report,
    what: &str,
    rounds: usize,
    better: Better,
    mut run: impl FnMut(Sys, usize) -> f64,
    fmt: impl Fn(f64) -> String,
) -> Rounds {
    let mut head = String::from("| round (order) |");
    for s in SYSTEMS {
        head.push_str(&format!(" {} |", s.label()));
    }
    for p in PEERS {
        head.push_str(&format!(" partlog vs {} |", p.label()));
    }
    rep.line(head);
    rep.line(format!("|---|{}", "---:|".repeat(SYSTEMS.len() + PEERS.len())));
    let mut out = Rounds::default();
    for r in 0..rounds {
        let o = order(r);
        let mut this = [0.0f64; 5];
        for sys in o {
            progress(format!("{what}: round {} {}", r + 1, sys.name()));
            this[sys.index()] = run(sys, r);
        }
        out.push(better, this);
        let ratios = out.ratios.clone().map(|v| v.last().copied().unwrap_or(f64::NAN));
        rep.line(row(&format!("{} ({})", r + 1, order_label(&o)), &this.map(&fmt), &ratios.map(fmt_ratio), false));
    }
    let med: [String; 5] = std::array::from_fn(|i| fmt(median(&out.values[i])));
    rep.line(row("**median**", &med, &out.median_ratios().map(fmt_ratio), true));
    out
}

fn row(label: &str, cells: &[String; 5], ratios: &[String; 4], bold_ratios: bool) -> String {
    let mut s = format!("| {label} |");
    for c in cells {
        s.push_str(&format!(" {c} |"));
    }
    for r in ratios {
        if bold_ratios {
            s.push_str(&format!(" **{r}** |"));
        } else {
            s.push_str(&format!(" {r} |"));
        }
    }
    s
}
