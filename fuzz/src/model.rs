//! A reference model of one partition: a `Vec` of records plus the log start offset, driven
//! through the public API on the simulated file system and compared after every operation.
//! After a compaction the records have gaps (offsets removed), which reads skip.
//!
//! Shared, so that both check exactly the same semantics, by
//! - `tests/model.rs` (proptest; it includes this file with `#[path]`), and
//! - the `ops` fuzz target (`fuzz/fuzz_targets/ops.rs`).
//!
//! Semantics checked after each operation: `next_offset`, `log_start_offset`, the full
//! `iter` contents, the segment list's invariants. `read` (records from the requested offset,
//! whole valid batches, `OffsetOutOfRange` with the right bounds), `offset_for_timestamp`
//! (brute force over the model), truncation, log-start moves and append errors
//! (`EmptyBatch`, `ReservedTimestamp`, `RecordTooLarge`) are checked by the operations that use them.
//!
//! Crashes: after a [`SimFs`] crash in any mode the partition must reopen (strict recovery)
//! and hold a prefix of the model that ends on a batch boundary and keeps at least every
//! record known to be durable: everything under `Durability::EveryAppend`, and otherwise
//! everything up to the last `sync`, clean close, truncation, recovery, or the base of the
//! active segment (sealed segments are fsynced). [`Op::CrashDuring`] cuts the power part-way
//! through an operation (`SimFs::crash_after`): the log must then match the model as before
//! the operation or as after it (only "after" if the operation had returned `Ok`), with the
//! same rules; a truncation or log-start move is all-or-nothing, and so is a batch.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use partlog::fs::sim::{CrashMode, SimFs};
use partlog::testing::{BatchBuilder, BatchHeader, validate};
use partlog::{
    Clock, Consumer, ConsumerConfig, Durability, Error, Header, LogDir, ManualClock, OffsetAndMetadata,
    OffsetAndTimestamp, Partition, ReadOnlyPartition, Record, StoredRecord, TimestampType, TopicConfig, TopicPartition,
};

/// The partition directory on the simulated file system.
pub const DIR: &str = "/data/topic-0";
/// What the manual clock reads when a run starts.
pub const START_MS: i64 = 1_000;
/// Where [`Op::Commit`]'s log directory lives (beside the partition, on the same disk).
const GROUPS_DIR: &str = "/groups";
/// The topic whose offsets are committed.
const GROUPS_TOPIC: &str = "c";

/// A record as the generators make it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rec {
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value (`None`: tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Producer timestamp (`None`: "now").
    pub timestamp: Option<i64>,
}

impl Rec {
    /// The record to append, borrowing from `self`.
    pub fn to_record(&self) -> Record<'_> {
        Record {
            key: self.key.as_deref().map(Cow::Borrowed),
            value: self.value.as_deref().map(Cow::Borrowed),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| Header { key: Cow::Borrowed(k.as_str()), value: v.as_deref().map(Cow::Borrowed) })
                .collect(),
            timestamp: self.timestamp,
        }
    }
}

/// When appends are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// `Durability::EveryAppend`: every acknowledged append survives any crash.
    EveryAppend,
    /// `Durability::Os`: only what was synced survives.
    Os,
    /// `Durability::Periodic` every n messages (no timer).
    Periodic(u64),
}

/// The partition's configuration for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// `segment.bytes` (tiny, so rolls happen all the time).
    pub segment_bytes: u32,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes` (small values roll on a full index); `None`: default.
    pub segment_index_bytes: Option<u32>,
    /// `segment.ms` (small values roll on record time); `None`: default.
    pub segment_ms: Option<u64>,
    /// `max.message.bytes`; `None`: default.
    pub max_message_bytes: Option<u32>,
    /// Durability.
    pub flush: Flush,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            segment_bytes: 512,
            index_interval_bytes: 64,
            segment_index_bytes: None,
            segment_ms: None,
            max_message_bytes: None,
            flush: Flush::EveryAppend,
            log_append_time: false,
        }
    }
}

impl Setup {
    /// The topic configuration this setup describes.
    pub fn config(&self) -> TopicConfig {
        let mut c = TopicConfig::default()
            .segment_bytes(self.segment_bytes)
            .index_interval_bytes(self.index_interval_bytes)
            .durability(match self.flush {
                Flush::EveryAppend => Durability::EveryAppend,
                Flush::Os => Durability::Os,
                Flush::Periodic(n) => Durability::Periodic { messages: Some(n), interval: None },
            });
        if let Some(b) = self.segment_index_bytes {
            c = c.segment_index_bytes(b);
        }
        if let Some(ms) = self.segment_ms {
            c = c.segment_ms(ms);
        }
        if let Some(b) = self.max_message_bytes {
            c = c.max_message_bytes(b);
        }
        if self.log_append_time {
            c = c.timestamp_type(TimestampType::LogAppendTime);
        }
        c
    }

    /// Largest batch an append may write.
    fn max_batch_bytes(&self) -> u64 {
        u64::from(self.max_message_bytes.unwrap_or(partlog::DEFAULT_MAX_MESSAGE_BYTES).min(self.segment_bytes))
    }
}

/// How the simulated machine crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// Every unsynced write is lost.
    LoseUnsynced,
    /// A prefix of each file's unsynced writes survives, the next one possibly torn.
    TornPrefix(u64),
    /// Like `TornPrefix`, the torn part filled with garbage.
    Garbage(u64),
}

impl Crash {
    fn mode(self) -> CrashMode {
        match self {
            Crash::LoseUnsynced => CrashMode::LoseUnsynced,
            Crash::TornPrefix(seed) => CrashMode::TornPrefix { seed },
            Crash::Garbage(seed) => CrashMode::Garbage { seed },
        }
    }
}

/// One operation. Offsets are *selectors*, mapped onto the current log when the operation
/// runs (see [`Harness::apply`]), so that they stay interesting whatever came before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `append`.
    Append(Rec),
    /// `append_batch` (possibly empty: an `EmptyBatch` error).
    AppendBatch(Vec<Rec>),
    /// `read(offset, max_bytes)`; `at` selects an offset in `[log_start - 2, next + 2]`.
    Read {
        /// Offset selector.
        at: u16,
        /// Byte budget.
        max_bytes: u32,
    },
    /// `offset_for_timestamp`.
    ReadTs(i64),
    /// `truncate_to`; the selector picks anything from 0 (one time in 8) or near the log.
    Truncate(u16),
    /// `advance_log_start`; the selector picks an offset in `[log_start - 1, next + 2]`.
    AdvanceStart(u16),
    /// `sync`.
    Sync,
    /// `close` and open again.
    Reopen,
    /// Power loss, then open again.
    Crash(Crash),
    /// Moves the clock forward.
    Tick(u16),
    /// `run_retention` under `retention.ms = ms × 4` (`u16::MAX`: unlimited) and, for odd
    /// `bytes`, `retention.bytes = bytes × 2`; the configuration is restored afterwards. The
    /// new log start must be a segment boundary, `retention.bytes` must still be met by what
    /// remains, and every record from the new start must be unchanged.
    Retention {
        /// `retention.ms` selector.
        ms: u16,
        /// `retention.bytes` selector.
        bytes: u16,
    },
    /// A forced `compact` pass under `cleanup.policy=compact` and `delete.retention.ms =
    /// horizon × 8` (the policy is restored afterwards): survivors keep their offsets and
    /// contents, nothing at or above the pass's `cleaned_up_to` changes, and below it a record
    /// may go only if it has no key, is a tombstone, or a later record of its key below
    /// `cleaned_up_to` supersedes it; the latest value of every key there stays.
    Compact {
        /// `delete.retention.ms` selector.
        horizon: u8,
    },
    /// Reads the partition through a [`ReadOnlyPartition`] opened on the same files while the
    /// writer holds them (kept open across operations, so later appends, rolls, truncations,
    /// retention and compaction happen under it): from the offset `at` selects in
    /// `[log_start, next]` to the end, it must yield exactly the model's records, and its log
    /// end must be the writer's.
    ReadOnly {
        /// Offset selector.
        at: u16,
    },
    /// Commits offset `offset` of partition 0 of topic `c` for group `g{group % 3}` in a log
    /// directory beside the partition (same simulated disk, opened at the first commit): the
    /// commit must read back at once and, being fsynced, survive every later crash; one
    /// interrupted by a crash may survive or not. A crash or a reopen reopens the directory
    /// too and checks every group's committed offset.
    Commit {
        /// Group selector.
        group: u8,
        /// The offset committed.
        offset: u16,
    },
    /// Power loss part-way through `op`: the simulated disk stops after `after` more mutating
    /// operations (`SimFs::crash_after`), then crashes and the partition is opened again. The
    /// log must then be as before `op` or as after it (an unacknowledged `op` may go either
    /// way, an acknowledged one must have happened), up to the usual durability rules.
    CrashDuring {
        /// The interrupted operation (not itself a crash).
        op: Box<Op>,
        /// Mutating file-system operations allowed before the power fails.
        after: u8,
        /// How the disk loses unsynced data.
        crash: Crash,
    },
}

#[derive(Debug, Default, Clone)]
struct Model {
    /// Exactly the offsets `[log_start, next)`.
    records: Vec<StoredRecord>,
    log_start: u64,
    next: u64,
    /// Every offset below this survives a crash.
    durable: u64,
    /// Offsets where a batch ends (where a crash may cut the log), at or above `log_start`.
    boundaries: BTreeSet<u64>,
}

impl Model {
    /// Cuts the log so that `offset` is the end (`offset` within `[log_start, next]`).
    fn cut(&mut self, offset: u64) {
        self.records.retain(|r| r.offset < offset);
        self.next = offset;
        self.boundaries.retain(|&b| b <= offset);
        self.boundaries.insert(offset);
    }

    /// `truncate_to(offset)`.
    fn truncate_to(&mut self, offset: u64) {
        if offset >= self.next {
            return;
        }
        if offset <= self.log_start {
            // Everything goes; the log starts afresh at `offset`.
            self.records.clear();
            self.log_start = offset;
            self.boundaries.clear();
        }
        self.cut(offset);
        self.durable = offset;
    }

    /// `advance_log_start(offset)` for `offset <= next`.
    fn advance(&mut self, offset: u64) {
        if offset > self.log_start {
            self.log_start = offset;
            self.records.retain(|r| r.offset >= offset);
            self.boundaries.retain(|&b| b >= offset);
            self.boundaries.insert(offset);
        }
    }
}

/// What an append must do.
enum Expect {
    EmptyBatch,
    ReservedTimestamp,
    TooLarge { size: u64, max: u64 },
    Ok { timestamps: Vec<i64> },
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// A partition on a [`SimFs`] and its model.
pub struct Harness {
    setup: Setup,
    fs: Arc<SimFs>,
    clock: Arc<ManualClock>,
    p: Option<Partition>,
    /// A read-only handle on the partition's files ([`Op::ReadOnly`]), dropped at a crash.
    ro: Option<ReadOnlyPartition>,
    /// The log directory holding committed offsets ([`Op::Commit`]), once one was made.
    groups: Option<LogDir>,
    /// Every group's last acknowledged commit.
    commits: BTreeMap<u8, u16>,
    /// A commit a crash interrupted: it may or may not have happened.
    commit_maybe: Option<(u8, u16)>,
    m: Model,
    trace: String,
    /// Inside [`Op::CrashDuring`]: errors from the partition are expected, and recorded here
    /// instead of failing the run; the model moves on as if the operation had succeeded.
    lenient: bool,
    failed: bool,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("setup", &self.setup).field("model", &self.m).finish_non_exhaustive()
    }
}

/// Runs `ops` from an empty partition, checking the model after each; the error names the
/// failing operation and the history before it.
pub fn run(setup: &Setup, ops: &[Op]) -> Result<(), String> {
    let mut h = Harness::new(setup.clone())?;
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = h.apply(op) {
            return Err(format!("op #{i} {op:?} failed: {e}\nsetup: {setup:?}\nhistory:\n{}", h.trace));
        }
    }
    h.finish().map_err(|e| format!("final close/reopen failed: {e}\nsetup: {setup:?}\nhistory:\n{}", h.trace))
}

impl Harness {
    /// Opens an empty partition.
    pub fn new(setup: Setup) -> Result<Harness, String> {
        // The partition directory and its parent are created by `open`.
        let fs = SimFs::new();
        let clock = ManualClock::new(START_MS);
        let mut h = Harness {
            setup,
            fs,
            clock,
            p: None,
            ro: None,
            groups: None,
            commits: BTreeMap::new(),
            commit_maybe: None,
            m: Model::default(),
            trace: String::new(),
            lenient: false,
            failed: false,
        };
        h.m.boundaries.insert(0);
        h.open()?;
        h.check()?;
        Ok(h)
    }

    fn open(&mut self) -> Result<(), String> {
        let p = Partition::options()
            .fs(self.fs.clone())
            .clock(self.clock.clone())
            .config(self.setup.config())
            .open(Path::new(DIR))
            .map_err(|e| format!("open failed: {e}"))?;
        self.p = Some(p);
        Ok(())
    }

    fn p(&self) -> Result<&Partition, String> {
        self.p.as_ref().ok_or_else(|| "no open partition".to_owned())
    }

    /// Closes and reopens a last time, checks, and closes.
    pub fn finish(&mut self) -> Result<(), String> {
        self.apply(&Op::Reopen)?;
        self.p()?.close().map_err(|e| format!("close: {e}"))
    }

    /// Maps a selector onto `[lo, hi]`.
    fn pick(sel: u16, lo: u64, hi: u64) -> u64 {
        lo + u64::from(sel) % (hi - lo + 1)
    }

    /// Runs one operation against the partition and the model, then checks everything.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Crash(c) => {
                let _ = write!(self.trace, "crash({c:?}); open()");
                let m = self.m.clone();
                self.crash_and_recover(*c, vec![m])?;
            }
            Op::CrashDuring { op, after, crash } => self.crash_during(op, *after, *crash)?,
            op => self.step(op)?,
        }
        self.check()
    }

    /// An error from the partition: fails the run, or inside [`Op::CrashDuring`] is noted.
    fn fail<T>(&mut self, what: &str, r: partlog::Result<T>) -> Result<Option<T>, String> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if self.lenient => {
                let _ = write!(self.trace, " [{what} failed: {e}]");
                self.failed = true;
                Ok(None)
            }
            Err(e) => Err(format!("{what}: {e}")),
        }
    }

    /// One operation other than a crash, without the final check.
    fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Append(r) => self.append(std::slice::from_ref(r), true)?,
            Op::AppendBatch(rs) => self.append(rs, false)?,
            Op::Read { at, max_bytes } => {
                let offset = Self::pick(*at, self.m.log_start.saturating_sub(2), self.m.next + 2);
                let _ = writeln!(self.trace, "read({offset}, {max_bytes})");
                if !self.lenient {
                    self.check_read(offset, *max_bytes as usize)?;
                } else if let Some(p) = &self.p {
                    let _ = p.read(offset, *max_bytes as usize);
                }
            }
            Op::ReadTs(ts) => {
                let _ = writeln!(self.trace, "offset_for_timestamp({ts})");
                if !self.lenient {
                    self.check_ts(*ts)?;
                } else if let Some(p) = &self.p {
                    let _ = p.offset_for_timestamp(*ts);
                }
            }
            Op::Truncate(sel) => {
                let offset = if sel.is_multiple_of(8) {
                    Self::pick(sel / 8, 0, self.m.next + 2)
                } else {
                    Self::pick(*sel, self.m.log_start.saturating_sub(3), self.m.next + 2)
                };
                let _ = writeln!(self.trace, "truncate_to({offset})");
                let r = self.p()?.truncate_to(offset);
                self.fail(&format!("truncate_to({offset})"), r)?;
                self.m.truncate_to(offset);
            }
            Op::AdvanceStart(sel) => {
                let offset = Self::pick(*sel, self.m.log_start.saturating_sub(1), self.m.next + 2);
                let _ = writeln!(self.trace, "advance_log_start({offset})");
                let got = self.p()?.advance_log_start(offset);
                if offset > self.m.next {
                    let (start, end) = (self.m.log_start, self.m.next);
                    ensure!(
                        matches!(got, Err(Error::OffsetOutOfRange { requested, start: s, end: e })
                            if requested == offset && s == start && e == end),
                        "advance_log_start({offset}) past the end {end}: expected OffsetOutOfRange, got {got:?}"
                    );
                } else {
                    self.fail(&format!("advance_log_start({offset})"), got)?;
                    self.m.advance(offset);
                }
            }
            Op::Sync => {
                let _ = writeln!(self.trace, "sync()");
                let r = self.p()?.sync();
                if self.fail("sync", r)?.is_some() {
                    self.m.durable = self.m.next;
                }
            }
            Op::Reopen => {
                let _ = writeln!(self.trace, "close(); open()");
                let p = self.p.take().ok_or("no open partition")?;
                let closed = p.close();
                drop(p);
                if self.fail("close", closed)?.is_some() {
                    match self.open() {
                        Ok(()) => self.m.durable = self.m.next,
                        Err(e) if self.lenient => {
                            let _ = write!(self.trace, " [{e}]");
                            self.failed = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
                if !self.lenient
                    && let Some(dir) = self.groups.take()
                {
                    dir.close().map_err(|e| format!("close {GROUPS_DIR}: {e}"))?;
                    drop(dir);
                    self.open_groups()?;
                    self.check_commits()?;
                }
            }
            Op::Tick(ms) => {
                let _ = writeln!(self.trace, "clock += {ms}");
                self.clock.advance(i64::from(*ms));
            }
            Op::Retention { ms, bytes } => self.retention(*ms, *bytes)?,
            Op::ReadOnly { at } => self.read_only(*at)?,
            Op::Commit { group, offset } => self.commit(*group % 3, *offset)?,
            Op::Compact { horizon } => self.compact(*horizon)?,
            Op::Crash(_) | Op::CrashDuring { .. } => return Err("a crash cannot be interrupted".to_owned()),
        }
        Ok(())
    }

    fn crash_during(&mut self, op: &Op, after: u8, crash: Crash) -> Result<(), String> {
        if matches!(op, Op::Crash(_) | Op::CrashDuring { .. }) {
            return self.apply(op);
        }
        if matches!(op, Op::Retention { .. } | Op::Compact { .. }) {
            // What an interrupted pass leaves is not predictable from the model (the crash
            // sweeps of tests/crash_maintenance.rs cover it): the pass runs whole, then the
            // power fails.
            self.apply(op)?;
            return self.apply(&Op::Crash(crash));
        }
        let _ = write!(self.trace, "power fails after {after} mutations during: ");
        let before = self.m.clone();
        self.fs.crash_after(u64::from(after));
        self.lenient = true;
        self.failed = false;
        let stepped = self.step(op);
        self.lenient = false;
        stepped?;
        let mut candidates = vec![self.m.clone()];
        if self.failed {
            // Not acknowledged: it may have happened or not, and nothing new is durable.
            candidates[0].durable = candidates[0].durable.min(before.durable);
            candidates.push(before);
        }
        let _ = write!(self.trace, "crash({crash:?}); open()");
        self.crash_and_recover(crash, candidates)
    }

    /// Crashes, reopens, and checks the log against the first candidate state it matches:
    /// the same log start, an end on a batch boundary between the durable point and the
    /// candidate's end, and exactly the candidate's records up to there.
    fn crash_and_recover(&mut self, crash: Crash, candidates: Vec<Model>) -> Result<(), String> {
        self.fs.crash(crash.mode());
        // Dropping the old handle after the crash: its close fails on dead handles.
        drop(self.p.take());
        drop(self.ro.take());
        if self.groups.take().is_some() {
            self.open_groups()?;
            self.check_commits()?;
        }
        self.open()?;
        let p = self.p()?.clone();
        let (start, end) = (p.log_start_offset(), p.log_end_offset());
        let _ = writeln!(self.trace, " -> log [{start}, {end})");
        let mut got = Vec::new();
        for r in p.iter(start) {
            got.push(r.map_err(|e| format!("iter after recovery: {e}"))?);
        }
        drop(p);
        let mut why = Vec::new();
        for c in &candidates {
            let lower = c.durable.max(c.log_start);
            if start != c.log_start {
                why.push(format!("log start {start}, expected {}", c.log_start));
            } else if !(lower..=c.next).contains(&end) {
                why.push(format!("log end {end}, expected between {lower} (durable) and {} (appended)", c.next));
            } else if end != c.log_start && !c.boundaries.contains(&end) {
                why.push(format!("log end {end} inside a batch (batch ends {:?})", c.boundaries));
            } else {
                let mut m = c.clone();
                m.cut(end);
                m.durable = end;
                if got == m.records {
                    self.m = m;
                    return Ok(());
                }
                why.push(format!("records {got:?}, expected {:?}", m.records));
            }
        }
        Err(format!("after the crash: {}", why.join("; or ")))
    }

    fn expect_append(&self, recs: &[Rec]) -> Expect {
        if recs.is_empty() {
            return Expect::EmptyBatch;
        }
        let now = self.clock.now_ms();
        let mut timestamps = Vec::with_capacity(recs.len());
        for r in recs {
            let ts = if self.setup.log_append_time { now } else { r.timestamp.unwrap_or(now) };
            if ts == i64::MIN {
                return Expect::ReservedTimestamp;
            }
            timestamps.push(ts);
        }
        let mut b = BatchBuilder::new();
        b.begin(self.m.next);
        for (i, (r, &ts)) in recs.iter().zip(&timestamps).enumerate() {
            b.push(&r.to_record(), i as u64, ts);
        }
        let size = b.len() as u64;
        let max = self.setup.max_batch_bytes();
        if size > max {
            return Expect::TooLarge { size, max };
        }
        Expect::Ok { timestamps }
    }

    fn append(&mut self, recs: &[Rec], single: bool) -> Result<(), String> {
        let records: Vec<Record<'_>> = recs.iter().map(Rec::to_record).collect();
        let expect = self.expect_append(recs);
        let p = self.p()?;
        let got = if single { p.append(records[0].clone()).map(Into::into) } else { p.append_batch(&records) };
        let _ = writeln!(
            self.trace,
            "append{}({} records, {:?}) -> {:?}",
            if single { "" } else { "_batch" },
            recs.len(),
            recs.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
            got.as_ref().map(|i| i.base_offset).map_err(ToString::to_string)
        );
        match (expect, got) {
            (Expect::EmptyBatch, Err(Error::EmptyBatch)) => Ok(()),
            (Expect::ReservedTimestamp, Err(Error::ReservedTimestamp { .. })) => Ok(()),
            (Expect::TooLarge { size, max }, Err(Error::RecordTooLarge { size: s, max: m })) => {
                ensure!((s, m) == (size, max), "RecordTooLarge {{ size: {s}, max: {m} }}, expected {size}/{max}");
                Ok(())
            }
            (Expect::Ok { timestamps }, got) => {
                let n = recs.len() as u64;
                let base = self.m.next;
                let max_ts = timestamps.iter().copied().max().unwrap_or(i64::MIN);
                if let Some(info) = self.fail("append", got)? {
                    ensure!(
                        info.base_offset == base
                            && info.last_offset == base + n - 1
                            && info.record_count as u64 == n
                            && info.max_timestamp == max_ts,
                        "append returned {info:?}, expected base {base}, {n} records, max timestamp {max_ts}"
                    );
                }
                for (i, (r, ts)) in recs.iter().zip(timestamps).enumerate() {
                    self.m.records.push(StoredRecord {
                        offset: base + i as u64,
                        timestamp: ts,
                        key: r.key.clone(),
                        value: r.value.clone(),
                        headers: r.headers.clone(),
                    });
                }
                self.m.next = base + n;
                self.m.boundaries.insert(self.m.next);
                if self.setup.flush == Flush::EveryAppend {
                    self.m.durable = self.m.next;
                }
                Ok(())
            }
            (Expect::EmptyBatch | Expect::ReservedTimestamp | Expect::TooLarge { .. }, Err(_)) if self.lenient => {
                Ok(())
            }
            (Expect::EmptyBatch, got) => Err(format!("expected EmptyBatch, got {got:?}")),
            (Expect::ReservedTimestamp, got) => Err(format!("expected ReservedTimestamp, got {got:?}")),
            (Expect::TooLarge { size, max }, got) => Err(format!("expected RecordTooLarge {size}/{max}, got {got:?}")),
        }
    }

    fn retention(&mut self, ms: u16, bytes: u16) -> Result<(), String> {
        let retention_ms = (ms != u16::MAX).then(|| u64::from(ms) * 4);
        let retention_bytes = (bytes % 2 == 1).then(|| u64::from(bytes) * 2);
        let _ =
            writeln!(self.trace, "run_retention(retention.ms {retention_ms:?}, retention.bytes {retention_bytes:?})");
        let p = self.p()?.clone();
        let before = p.segments();
        let cfg = self.setup.config().retention_ms(retention_ms).retention_bytes(retention_bytes);
        p.set_config(cfg).map_err(|e| format!("set_config: {e}"))?;
        let report = p.run_retention();
        p.set_config(self.setup.config()).map_err(|e| format!("set_config: {e}"))?;
        let Some(report) = self.fail("run_retention", report)? else { return Ok(()) };
        let start = p.log_start_offset();
        ensure!(
            start >= self.m.log_start && start <= self.m.next,
            "retention moved the log start from {} to {start} (end {})",
            self.m.log_start,
            self.m.next
        );
        if start > self.m.log_start {
            ensure!(
                start == self.m.next || before.iter().any(|s| s.base_offset == start),
                "retention moved the log start to {start}, not a segment boundary of {before:?}"
            );
            ensure!(report.segments_deleted > 0, "the log start moved but the report deleted nothing: {report:?}");
        }
        // Size runs before time (Kafka's order), so only a pass that deleted nothing by time
        // must leave at least retention.bytes behind.
        if report.by_size > 0
            && report.by_time == 0
            && let Some(limit) = retention_bytes
        {
            let left: u64 = p.segments().iter().map(|s| s.size).sum();
            ensure!(left >= limit, "retention by size left {left} bytes, below retention.bytes {limit}: {report:?}");
        }
        self.m.advance(start);
        Ok(())
    }

    fn open_groups(&mut self) -> Result<(), String> {
        let dir = LogDir::options()
            .fs(self.fs.clone())
            .clock(self.clock.clone())
            .open(GROUPS_DIR)
            .map_err(|e| format!("open {GROUPS_DIR}: {e}"))?;
        if dir.topic(GROUPS_TOPIC).is_err() {
            dir.create_topic(GROUPS_TOPIC, TopicConfig::default()).map_err(|e| format!("create topic: {e}"))?;
        }
        self.groups = Some(dir);
        Ok(())
    }

    fn consumer(&self, group: u8) -> Result<Consumer, String> {
        let dir = self.groups.as_ref().ok_or("no log directory")?;
        dir.consumer(ConsumerConfig::new().group_id(format!("g{group}")).enable_auto_commit(false))
            .map_err(|e| format!("consumer: {e}"))
    }

    /// Every group's committed offset is its last acknowledged commit (or the interrupted
    /// one, which then counts as acknowledged).
    fn check_commits(&mut self) -> Result<(), String> {
        let tp = TopicPartition::new(GROUPS_TOPIC, 0);
        let maybe = self.commit_maybe.take();
        for g in 0..3u8 {
            let got = self.consumer(g)?.committed(&tp).map_err(|e| format!("committed: {e}"))?.map(|o| o.offset);
            let want = self.commits.get(&g).map(|&o| u64::from(o));
            match maybe {
                Some((mg, mo)) if mg == g && got == Some(u64::from(mo)) => {
                    self.commits.insert(g, mo);
                }
                _ => ensure!(got == want, "group g{g}: committed {got:?}, expected {want:?} (interrupted: {maybe:?})"),
            }
        }
        Ok(())
    }

    fn commit(&mut self, group: u8, offset: u16) -> Result<(), String> {
        let _ = writeln!(self.trace, "commit(g{group}, {offset})");
        if self.groups.is_none() {
            let opened = self.open_groups();
            if self.lenient && opened.is_err() {
                self.failed = true;
                return Ok(());
            }
            opened?;
        }
        if self.lenient {
            self.commit_maybe = Some((group, offset));
        }
        let tp = TopicPartition::new(GROUPS_TOPIC, 0);
        let mut c = match self.consumer(group) {
            Ok(c) => c,
            Err(_) if self.lenient => {
                self.failed = true;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let r = c.commit_offsets(&[(tp.clone(), OffsetAndMetadata::new(u64::from(offset)))]);
        if self.fail("commit", r)?.is_none() {
            return Ok(());
        }
        let back = c.committed(&tp);
        let Some(back) = self.fail("committed", back)? else { return Ok(()) };
        ensure!(back.as_ref().map(|o| o.offset) == Some(u64::from(offset)), "committed {offset}, read back {back:?}");
        self.commits.insert(group, offset);
        self.commit_maybe = None;
        let closed = c.close();
        self.fail("consumer close", closed)?;
        Ok(())
    }

    fn read_only(&mut self, at: u16) -> Result<(), String> {
        let offset = Self::pick(at, self.m.log_start, self.m.next);
        let _ = writeln!(self.trace, "read_only({offset})");
        if self.ro.is_none() {
            let opened = ReadOnlyPartition::open_on(self.fs.clone(), Path::new(DIR));
            let Some(ro) = self.fail("open_read_only", opened)? else { return Ok(()) };
            self.ro = Some(ro);
        }
        let ro = self.ro.clone().ok_or("no read-only handle")?;
        // Deterministic: list the directory again now rather than when a timer says so.
        ro.invalidate();
        let mut got = Vec::new();
        for r in ro.iter(offset) {
            match r {
                Ok(r) => got.push(r),
                Err(e) => {
                    self.fail::<()>("read-only iter", Err(e))?;
                    return Ok(());
                }
            }
        }
        if self.lenient {
            return Ok(());
        }
        let end = ro.log_end_offset().map_err(|e| format!("read-only log end: {e}"))?;
        ensure!(end == self.m.next, "read-only log end {end}, the writer's is {}", self.m.next);
        let start = ro.log_start_offset().map_err(|e| format!("read-only log start: {e}"))?;
        ensure!(start <= self.m.log_start, "read-only log start {start} past the writer's {}", self.m.log_start);
        let want: Vec<&StoredRecord> = self.m.records.iter().filter(|r| r.offset >= offset).collect();
        ensure!(got.iter().eq(want.iter().copied()), "read-only from {offset}: {got:?}, expected {want:?}");
        Ok(())
    }

    fn compact(&mut self, horizon: u8) -> Result<(), String> {
        let delete_retention = u64::from(horizon) * 8;
        let _ = writeln!(self.trace, "compact(delete.retention.ms {delete_retention})");
        let p = self.p()?.clone();
        let cfg = self
            .setup
            .config()
            .cleanup_policy(partlog::CleanupPolicy::COMPACT)
            .delete_retention_ms(delete_retention)
            .min_cleanable_dirty_ratio(0.0);
        p.set_config(cfg).map_err(|e| format!("set_config: {e}"))?;
        let report = p.compact();
        p.set_config(self.setup.config()).map_err(|e| format!("set_config: {e}"))?;
        let Some(report) = self.fail("compact", report)? else { return Ok(()) };
        let mut got = Vec::with_capacity(self.m.records.len());
        for r in p.iter(self.m.log_start) {
            got.push(r.map_err(|e| format!("iter after compaction: {e}"))?);
        }
        let upto = report.cleaned_up_to;
        // (At most the end: after a truncation into a cleaned segment, the clean part can reach
        // into the active segment.)
        ensure!(upto <= self.m.next, "cleaned up to {upto}, past the log end {}: {report:?}", self.m.next);
        // Survivors: a subsequence of the model, same offsets and contents.
        let mut it = self.m.records.iter();
        for g in &got {
            ensure!(it.any(|m| m == g), "after compaction {g:?} is not a record of the model (or out of order)");
        }
        let kept: BTreeSet<u64> = got.iter().map(|r| r.offset).collect();
        let records = &self.m.records;
        for (i, r) in records.iter().enumerate() {
            let superseded = || records[i + 1..].iter().any(|l| l.offset < upto && l.key == r.key);
            if kept.contains(&r.offset) {
                continue;
            }
            ensure!(r.offset < upto, "compaction removed {r:?}, at or above cleaned_up_to {upto}");
            ensure!(
                r.key.is_none() || r.value.is_none() || superseded(),
                "compaction removed {r:?}: it has a key, a value, and no later record of its key below {upto}"
            );
        }
        self.m.records = got;
        Ok(())
    }

    fn check_read(&self, offset: u64, max_bytes: usize) -> Result<(), String> {
        let (start, end) = (self.m.log_start, self.m.next);
        let got = self.p()?.read(offset, max_bytes);
        if offset < start || offset > end {
            ensure!(
                matches!(got, Err(Error::OffsetOutOfRange { requested, start: s, end: e })
                    if requested == offset && s == start && e == end),
                "read({offset}) outside [{start}, {end}]: expected OffsetOutOfRange, got {got:?}"
            );
            return Ok(());
        }
        let recs = got.map_err(|e| format!("read({offset}, {max_bytes}): {e}"))?;
        if offset == end {
            ensure!(recs.is_empty() && recs.next_fetch_offset() == end, "read at the end returned {recs:?}");
            return Ok(());
        }
        // The returned bytes are whole, valid batches.
        let mut rest = recs.as_bytes();
        let mut batches = 0;
        while !rest.is_empty() {
            let h = BatchHeader::parse(rest, rest.len()).map_err(|k| format!("read returned a bad batch: {k}"))?;
            let (b, r) = rest.split_at(h.length as usize);
            validate(b).map_err(|k| format!("read returned an invalid batch: {k}"))?;
            rest = r;
            batches += 1;
        }
        let first = self.m.records.partition_point(|r| r.offset < offset);
        if first == self.m.records.len() {
            // Only removed offsets from here to the end.
            ensure!(
                recs.iter().next().is_none() && recs.next_fetch_offset() == end,
                "read({offset}) in a gap running to the end {end} returned {recs:?}"
            );
            return Ok(());
        }
        ensure!(batches > 0, "read({offset}, {max_bytes}) inside the log returned nothing");
        ensure!(
            recs.size_bytes() <= max_bytes || batches == 1,
            "read({offset}, {max_bytes}) returned {} bytes in {batches} batches",
            recs.size_bytes()
        );
        let got: Vec<StoredRecord> = recs.iter().map(|r| r.to_owned()).collect();
        let want = self.m.records.get(first..first + got.len());
        ensure!(
            !got.is_empty() && want == Some(&got[..]),
            "read({offset}, {max_bytes}) returned {got:?}, expected a prefix of {:?}",
            &self.m.records[first..]
        );
        let last = got.last().map_or(offset, |r| r.offset);
        // The batch may end past its last surviving record (compaction keeps batches' offset
        // ranges), but never past the next record.
        let next_record = self.m.records.get(first + got.len()).map_or(end, |r| r.offset);
        ensure!(
            recs.next_fetch_offset() > last && recs.next_fetch_offset() <= next_record,
            "read next_offset {} after last record {last} (next record at {next_record})",
            recs.next_fetch_offset()
        );
        Ok(())
    }

    fn check_ts(&self, ts: i64) -> Result<(), String> {
        let got = self.p()?.offset_for_timestamp(ts).map_err(|e| format!("offset_for_timestamp({ts}): {e}"))?;
        let want = self
            .m
            .records
            .iter()
            .find(|r| r.timestamp >= ts)
            .map(|r| OffsetAndTimestamp { offset: r.offset, timestamp: r.timestamp });
        ensure!(got == want, "offset_for_timestamp({ts}) = {got:?}, brute force over the model says {want:?}");
        Ok(())
    }

    fn check(&mut self) -> Result<(), String> {
        let p = self.p()?;
        let (start, next) = (p.log_start_offset(), p.log_end_offset());
        ensure!(
            (start, next) == (self.m.log_start, self.m.next),
            "log spans [{start}, {next}), model [{}, {})",
            self.m.log_start,
            self.m.next
        );
        let mut got = Vec::with_capacity(self.m.records.len());
        for r in p.iter(start) {
            got.push(r.map_err(|e| format!("iter: {e}"))?);
        }
        if got != self.m.records {
            let diff = got.iter().zip(&self.m.records).position(|(a, b)| a != b);
            return Err(format!(
                "iter({start}) returned {} records, model has {}; first difference at index {diff:?}: {:?} vs {:?}",
                got.len(),
                self.m.records.len(),
                diff.and_then(|i| got.get(i)),
                diff.and_then(|i| self.m.records.get(i)),
            ));
        }
        let segs = p.segments();
        ensure!(!segs.is_empty(), "no segments");
        for (i, s) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            ensure!(s.active == last, "segment {i} of {}: active = {}", segs.len(), s.active);
            ensure!(s.base_offset <= s.end_offset, "segment {s:?}: base above next offset");
            if let Some(n) = segs.get(i + 1) {
                ensure!(s.end_offset <= n.base_offset, "segments overlap: {s:?} then {n:?}");
            }
        }
        ensure!(segs[0].base_offset <= start, "first segment {:?} starts above the log start {start}", segs[0]);
        // (A segment wholly below the log start may linger: advancing the start into the active
        // segment deletes nothing, and the roll that seals it later does not either. The next
        // advance or open deletes it. Not checked.)
        let active = &segs[segs.len() - 1];
        ensure!(active.end_offset == next, "active segment {active:?} ends below next offset {next}");
        // Sealed segments were fsynced when they were sealed.
        self.m.durable = self.m.durable.max(active.base_offset.min(next));
        Ok(())
    }
}
