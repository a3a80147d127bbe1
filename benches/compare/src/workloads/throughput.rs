//! Throughput workloads: batched append, one record per call, sequential read, tail read.

use super::run_rounds;
use crate::cli::{Cfg, die};
use crate::fixture::{BATCH, Seen, VALUE, Values, tempdir};
use crate::report::{Better, Report, Rounds, fmt_mb, fmt_ms, fmt_rate, fmt_ratio, median, per_sec, progress};
use crate::systems::{self, SYSTEMS, Sys, fjall};
use crate::workloads::footprint;

/// Runs a records-per-second workload: an untimed warm-up of every system, then the rounds.
fn rounds(rep: &mut Report, cfg: &Cfg, title: &str, records: usize, mut run: impl FnMut(Sys) -> f64) -> Rounds {
    rep.line(format!("\n### {title} ({records} records of {VALUE} B; records/s)\n"));
    // One untimed warm-up run of each system first: the first runs after start-up (cold
    // allocator, page cache and CPU frequency) are consistently slower and would bias round 1.
    for sys in SYSTEMS {
        progress(format!("{title}: warm-up {}", sys.name()));
        run(sys);
    }
    fjall::take_drains();
    let r = run_rounds(rep, title, cfg.rounds, Better::Higher, |sys, _| run(sys), fmt_rate);
    let mbs: Vec<String> = SYSTEMS.iter().map(|s| format!("{} {}", s.label(), fmt_mb(r.median_value(*s)))).collect();
    rep.line(format!("\nMB/s of values at the median: {}.", mbs.join(", ")));
    r
}

/// The note on fjall's background work after its timed append runs.
fn fjall_drain_note(rep: &mut Report) {
    let d = fjall::take_drains();
    if !d.is_empty() {
        rep.line(format!(
            "fjall flushes memtables and compacts on background threads; after each timed fjall run the harness \
             waited (untimed) a median {} (max {}) for that work to finish before closing it.",
            fmt_ms(median(&d)),
            fmt_ms(d.iter().copied().fold(0.0, f64::max))
        ));
    }
}

pub fn append(rep: &mut Report, cfg: &Cfg, v: &Values) {
    let title = "Batched append, 100 records per call";
    let r = rounds(rep, cfg, title, cfg.records, |sys| {
        let d = tempdir(cfg, "append");
        per_sec(cfg.records, systems::write_batched(sys, d.path(), v, cfg.records))
    });
    r.summary(rep, "Batched append (100 per call)", "records/s", fmt_rate);
    let m = r.median_ratios();
    rep.goal("batched append ≥ 2× commitlog", fmt_ratio(m[0]), Some(m[0] >= 2.0));
    rep.goal("batched append ≥ 70% of raw write", format!("{:.0}%", m[3] * 100.0), Some(m[3] >= 0.7));
    rep.line(
        "\npartlog: `append_batch` of 100 `Record`s; commitlog: `append` of a `MessageBuf` with 100 messages; \
         SQLite: one transaction (`BEGIN`, 100 prepared `INSERT`s, `COMMIT`) per batch, `synchronous=NORMAL`; \
         fjall: one `WriteBatch` of 100 inserts per batch (default durability: flushed to the OS); raw: the 100 \
         values copied into one buffer and written with one `write(2)`.",
    );
    fjall_drain_note(rep);
}

pub fn single(rep: &mut Report, cfg: &Cfg, v: &Values) {
    let n = cfg.single_records;
    let r = rounds(rep, cfg, "One record per call", n, |sys| {
        let d = tempdir(cfg, "single");
        per_sec(n, systems::write_single(sys, d.path(), v, n))
    });
    r.summary(rep, "One record per call", "records/s", fmt_rate);
    let m = r.median_ratios();
    rep.goal("one-record appends ≥ 2× commitlog", fmt_ratio(m[0]), Some(m[0] >= 2.0));
    rep.line(
        "\nSame guarantee for all: once the call returns the record survives a crash of the process (it is in \
         the kernel's page cache). partlog: `append` (the active segment is written through a shared mapping); \
         commitlog: `append_msg`, which does one `write(2)` on an unbuffered `std::fs::File` and stores its index \
         entry into a shared mmap, so it keeps no user-space buffer and needs no `flush()` per call (its \
         `flush()` would only msync the index); SQLite: one prepared `INSERT` per record in autocommit mode (a \
         transaction each; WAL, `synchronous=NORMAL`, so SQLite also fsyncs at each WAL checkpoint, every \
         ~1,000 pages); fjall: `Keyspace::insert` (journal flushed to the OS per call); raw: one `write(2)` per \
         record.",
    );
    fjall_drain_note(rep);
}

pub fn read(rep: &mut Report, cfg: &Cfg, v: &Values) {
    progress("sequential read: writing fixtures");
    let fixture = tempdir(cfg, "read");
    for sys in SYSTEMS {
        systems::write_read_fixture(sys, fixture.path(), v, cfg.records);
    }
    fjall::take_drains();
    let expect = Seen::expected(v, 0, cfg.records);
    let r = rounds(rep, cfg, "Sequential read of the whole log", cfg.records, |sys| {
        let (d, seen) = systems::read_all(sys, fixture.path(), &mut || {});
        if seen != expect {
            die(format!("{}: read {seen:?}, expected {expect:?}", sys.name()));
        }
        per_sec(cfg.records, d)
    });
    r.summary(rep, "Sequential read", "records/s", fmt_rate);
    let m = r.median_ratios();
    rep.goal("sequential read ≥ 2× commitlog", fmt_ratio(m[0]), Some(m[0] >= 2.0));
    rep.line(
        "\nThe log is reopened before each read (not timed) and read from the page cache, ~1 MiB per call. \
         partlog: `reader(0).next_records()` (1 MiB chunks, every batch CRC-checked) iterating every record; \
         commitlog: `read(offset, ReadLimit::max_bytes(1 MiB))` (every message CRC-32C-checked); SQLite: the \
         prepared `SELECT \"offset\", value FROM log WHERE \"offset\" >= ?1 ORDER BY \"offset\" LIMIT 10485` \
         (~1 MiB of values) from the last offset seen + 1; fjall: `range(key..).take(10485)` likewise (its \
         fixture's memtable was flushed into a table before close, so reads go through its block cache and \
         table files); raw: `read(2)` into a 1 MiB buffer, split into 100-byte records. Each touches every \
         value's first byte; record counts and checksums are checked to agree.",
    );
    footprint::section(rep, cfg, "sequential read of the whole log", fixture.path(), footprint::Kind::Sequential);
}

pub fn tail(rep: &mut Report, cfg: &Cfg, v: &Values) {
    let title = "Tail read: append a batch of 100, read it back at once";
    let r = rounds(rep, cfg, title, cfg.records, |sys| {
        let d = tempdir(cfg, "tail");
        per_sec(cfg.records, systems::tail(sys, d.path(), v, cfg.records))
    });
    r.summary(rep, "Tail read (append 100, read them back)", "records/s", fmt_rate);
    rep.line(format!(
        "\nA consumer that keeps up with its producer: each step appends {BATCH} records as one batch (as in the \
         batched-append workload) and then reads from the batch's first offset with the same calls as the \
         sequential read (partlog `read(base, 1 MiB)`, commitlog `read(base, 1 MiB)`, SQLite the prepared \
         `SELECT ... LIMIT 10485`, fjall `range(key(base)..)`, raw `pread` of the batch's bytes); every step \
         must see exactly its {BATCH} records, and their checksum is checked. records/s counts each record \
         once (appended and read)."
    ));
    fjall_drain_note(rep);
}
