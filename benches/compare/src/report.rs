//! The Markdown report: detail sections in run order, a summary table (one row per workload
//! metric, every system, partlog's ratio against each peer) and the goals.

use std::time::Duration;

use crate::fixture::VALUE;
use crate::systems::{PEERS, SYSTEMS, Sys};

#[derive(Default)]
pub struct Report {
    pub out: String,
    pub goals: Vec<(String, String, Option<bool>)>,
    pub summary: Vec<SummaryRow>,
}

/// One row of the summary table.
pub struct SummaryRow {
    pub workload: String,
    pub metric: String,
    /// One cell per system, in [`SYSTEMS`] order.
    pub cells: [String; 5],
    /// partlog against each peer, in [`PEERS`] order.
    pub ratios: [String; 4],
}

/// A summary cell: a measured value, or why there is none.
#[derive(Debug, Clone)]
pub enum Cell {
    /// The median value, as text.
    Value(String),
    /// The system cannot do the workload or it is not measured; the reason.
    NotApplicable(&'static str),
}

/// Whether a larger value of a metric is better (rates) or a smaller one (latency, time, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

impl Report {
    pub fn line(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    pub fn goal(&mut self, goal: &str, measured: String, met: Option<bool>) {
        self.goals.push((goal.to_owned(), measured, met));
    }

    /// A summary row whose ratios are the medians of per-round ratios (`ratios[i]`: partlog
    /// against `PEERS[i]`, already oriented so that > 1× means partlog is better; `None` where
    /// a cell is n/a).
    pub fn summary_row(&mut self, workload: &str, metric: &str, cells: [Cell; 5], ratios: [Option<f64>; 4]) {
        let text = |c: &Cell| match c {
            Cell::Value(s) => s.clone(),
            Cell::NotApplicable(why) => format!("n/a ({why})"),
        };
        let cells_txt = [text(&cells[0]), text(&cells[1]), text(&cells[2]), text(&cells[3]), text(&cells[4])];
        let ratio_txt = |i: usize| match (&cells[0], &cells[i + 1], ratios[i]) {
            (Cell::Value(..), Cell::Value(..), Some(r)) if r.is_finite() && r > 0.0 => fmt_ratio(r),
            (Cell::Value(..), Cell::Value(..), _) => "—".to_owned(),
            _ => "n/a".to_owned(),
        };
        self.summary.push(SummaryRow {
            workload: workload.to_owned(),
            metric: metric.to_owned(),
            cells: cells_txt,
            ratios: [ratio_txt(0), ratio_txt(1), ratio_txt(2), ratio_txt(3)],
        });
    }

    /// A summary row from one value per system, with ratios computed from the values; for
    /// measurements without rounds.
    /// A ratio is only given where both values are at least `min_for_ratio` (a ratio of two
    /// near-zero deltas means nothing); otherwise the cell shows "—".
    pub fn summary_from_medians(
        &mut self,
        workload: &str,
        metric: &str,
        better: Better,
        values: [f64; 5],
        min_for_ratio: f64,
        fmt: impl Fn(f64) -> String,
    ) {
        let cells: [Cell; 5] = std::array::from_fn(|i| Cell::Value(fmt(values[i])));
        let ratios: [Option<f64>; 4] = std::array::from_fn(|i| {
            let (p, o) = (values[0], values[i + 1]);
            (p >= min_for_ratio && o >= min_for_ratio).then(|| oriented(better, p, o))
        });
        self.summary_row(workload, metric, cells, ratios);
    }

    pub fn summary_table(&self) -> String {
        let mut s = String::new();
        s.push_str("| workload | metric |");
        for sys in SYSTEMS {
            s.push_str(&format!(" {} |", sys.label()));
        }
        for peer in PEERS {
            s.push_str(&format!(" partlog vs {} |", peer.label()));
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---:|".repeat(SYSTEMS.len() + PEERS.len()));
        s.push('\n');
        for r in &self.summary {
            s.push_str(&format!("| {} | {} |", r.workload, r.metric));
            for c in &r.cells {
                s.push_str(&format!(" {c} |"));
            }
            for c in &r.ratios {
                s.push_str(&format!(" {c} |"));
            }
            s.push('\n');
        }
        s
    }
}

/// partlog's value against another's, as "times better": `p / o` for rates, `o / p` for
/// latency, time and memory.
pub fn oriented(better: Better, partlog: f64, other: f64) -> f64 {
    match better {
        Better::Higher => partlog / other,
        Better::Lower => other / partlog,
    }
}

/// Per-round values of every system, and partlog's per-round ratios against each peer.
#[derive(Debug, Clone, Default)]
pub struct Rounds {
    pub values: [Vec<f64>; 5],
    pub ratios: [Vec<f64>; 4],
}

impl Rounds {
    /// Records one round (`this[i]` for `SYSTEMS[i]`).
    pub fn push(&mut self, better: Better, this: [f64; 5]) {
        for (i, x) in this.iter().enumerate() {
            self.values[i].push(*x);
        }
        for i in 0..PEERS.len() {
            self.ratios[i].push(oriented(better, this[0], this[i + 1]));
        }
    }

    pub fn median_value(&self, sys: Sys) -> f64 {
        median(&self.values[sys.index()])
    }

    pub fn median_ratios(&self) -> [f64; 4] {
        std::array::from_fn(|i| median(&self.ratios[i]))
    }

    /// The summary row of these rounds, every system measured.
    pub fn summary(&self, rep: &mut Report, workload: &str, metric: &str, fmt: impl Fn(f64) -> String) {
        let cells: [Cell; 5] = std::array::from_fn(|i| {
            let m = median(&self.values[i]);
            Cell::Value(fmt(m))
        });
        let r = self.median_ratios();
        rep.summary_row(workload, metric, cells, r.map(Some));
    }
}

pub fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Percentile `p` (0..=1) of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

pub fn fmt_mb(records_per_sec: f64) -> String {
    format!("{:.0}", records_per_sec * VALUE as f64 / 1e6)
}

pub fn fmt_ratio(x: f64) -> String {
    if x >= 0.1 || !x.is_finite() {
        format!("{x:.2}×")
    } else if x >= 0.001 {
        format!("{x:.3}×")
    } else {
        "< 0.001×".to_owned()
    }
}

pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// A time given in ms, in the unit that suits it.
pub fn fmt_ms(ms: f64) -> String {
    fmt_ns(ms * 1e6)
}

pub fn progress(msg: impl std::fmt::Display) {
    eprintln!("[compare] {msg}");
}
