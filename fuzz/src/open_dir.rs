//! The `open_dir` target: a partition directory made of fuzzed files.
//!
//! Input layout (see [`Layout`]): a flags byte, the segment count, the first base offset, the
//! configuration, then per segment its `.log`, `.index` and `.timeindex` (u16 length, then
//! bytes; length `0xFFFF` = no such file), then `partition.checkpoint` and `segments.intent`
//! the same way, then timestamps to probe. Flags ask the harness to repair checksums, offsets and summaries, so
//! that the fuzzer reaches the code behind them.
//!
//! If the directory opens, everything is read with `iter`, `offset_for_timestamp` is probed,
//! one record is appended, the partition is closed and opened again: nothing may panic or
//! allocate without bound, and a directory that partlog itself closed cleanly must reopen
//! with the same contents.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use partlog::fs::sim::SimFs;
use partlog::fs::{EntryKind, FileSystem};
use partlog::{ManualClock, Partition, Record, RecoveryMode, StoredRecord, TopicConfig};

use crate::input::{Input, Output};
use crate::spec::{self, Checkpoint, Meta};

/// The partition directory.
pub const DIR: &str = "/logs/t-0";

/// Repair the checkpoint's and the truncation intent's magic, version, count and checksum.
pub const FIX_CHECKPOINT: u8 = 1;
/// Repair the indexes' magic, version, base, count and checksums.
pub const FIX_INDEXES: u8 = 2;
/// Recompute every batch checksum.
pub const FIX_LOG_CRC: u8 = 4;
/// Renumber batches so each follows the previous one.
pub const FIX_LOG_OFFSETS: u8 = 8;
/// Open with `RecoveryMode::TruncateCorrupt`.
pub const TRUNCATE_CORRUPT: u8 = 16;
/// Build the checkpoint from the logs; its bytes are then a perturbation script.
pub const SYNTH_CHECKPOINT: u8 = 32;
/// Plant odd entries (symlink, directory, orphan index, `.tmp` file); one more byte.
pub const EXTRAS: u8 = 64;
/// Write the logs' true summaries into the `.index` headers (with [`FIX_INDEXES`]).
pub const INDEX_SUMMARIES: u8 = 128;

/// Gap value meaning "the next segment starts where the previous one's log ends".
pub const AUTO_BASE: u16 = u16::MAX;
/// File length meaning "no such file".
pub const ABSENT: u16 = u16::MAX;

/// One segment's files.
#[derive(Debug, Clone, Default)]
pub struct SegFiles {
    /// Gap from the previous segment's base ([`AUTO_BASE`]: its log's end); ignored for the
    /// first segment.
    pub gap: u16,
    /// `.log` bytes.
    pub log: Vec<u8>,
    /// `.index` bytes.
    pub index: Option<Vec<u8>>,
    /// `.timeindex` bytes.
    pub time: Option<Vec<u8>>,
}

/// A decoded input.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Flag bits (`FIX_*` and friends).
    pub flags: u8,
    /// First segment's base offset.
    pub base: u64,
    /// `segment.bytes` = 128 + this % 8192.
    pub segment_bytes: u16,
    /// `index.interval.bytes` = 4 × this.
    pub interval: u8,
    /// 1 to 4 segments.
    pub segments: Vec<SegFiles>,
    /// Checkpoint bytes (a perturbation script with [`SYNTH_CHECKPOINT`]).
    pub checkpoint: Option<Vec<u8>>,
    /// `segments.intent` bytes.
    pub intent: Option<Vec<u8>>,
    /// With [`EXTRAS`]: bit 0 symlink posing as a log, bit 1 `partition.checkpoint.tmp`,
    /// bit 2 directory posing as an index, bit 3 orphan index, bit 4 stale lock file.
    pub extras: u8,
    /// Timestamps to probe.
    pub probes: [i64; 2],
}

fn file(inp: &mut Input<'_>) -> Option<Vec<u8>> {
    match inp.u16() {
        ABSENT => None,
        n => Some(inp.bytes(usize::from(n)).to_vec()),
    }
}

fn put_file(out: &mut Output, f: Option<&[u8]>) {
    match f {
        None => out.u16(ABSENT),
        Some(b) => out.u16(b.len() as u16).bytes(b),
    };
}

impl Layout {
    /// Decodes an input.
    pub fn decode(data: &[u8]) -> Layout {
        let mut inp = Input::new(data);
        let flags = inp.u8();
        let n = 1 + inp.u8() % 4;
        let base = inp.u64();
        let segment_bytes = inp.u16();
        let interval = inp.u8();
        let segments = (0..n)
            .map(|_| SegFiles {
                gap: inp.u16(),
                log: file(&mut inp).unwrap_or_default(),
                index: file(&mut inp),
                time: file(&mut inp),
            })
            .collect();
        let checkpoint = file(&mut inp);
        let intent = file(&mut inp);
        let extras = if flags & EXTRAS != 0 { inp.u8() } else { 0 };
        let probes = [inp.i64(), inp.i64()];
        Layout { flags, base, segment_bytes, interval, segments, checkpoint, intent, extras, probes }
    }

    /// Encodes (the inverse of [`decode`](Self::decode) for 1 to 4 segments).
    pub fn encode(&self) -> Vec<u8> {
        assert!((1..=4).contains(&self.segments.len()), "a layout has 1 to 4 segments, not {}", self.segments.len());
        let mut out = Output::default();
        out.u8(self.flags).u8(self.segments.len() as u8 - 1).u64(self.base).u16(self.segment_bytes).u8(self.interval);
        for s in &self.segments {
            out.u16(s.gap);
            put_file(&mut out, Some(&s.log));
            put_file(&mut out, s.index.as_deref());
            put_file(&mut out, s.time.as_deref());
        }
        put_file(&mut out, self.checkpoint.as_deref());
        put_file(&mut out, self.intent.as_deref());
        if self.flags & EXTRAS != 0 {
            out.u8(self.extras);
        }
        out.i64(self.probes[0]).i64(self.probes[1]);
        out.buf
    }
}

fn seg_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Builds the directory on a fresh [`SimFs`]; returns it and the directory's path.
pub fn plant(l: &Layout) -> (Arc<SimFs>, PathBuf) {
    let fs = SimFs::new();
    let dir = PathBuf::from(DIR);
    fs.create_dir_all(&dir).expect("mkdir");
    for d in ["/", "/logs", DIR] {
        fs.sync_dir(Path::new(d)).expect("sync dir");
    }
    let mut metas: Vec<Meta> = Vec::new();
    let mut base = l.base;
    for (i, s) in l.segments.iter().enumerate() {
        if i > 0 {
            let prev = metas[i - 1];
            base = if s.gap == AUTO_BASE { prev.next_offset } else { prev.base.saturating_add(u64::from(s.gap)) };
        }
        let mut log = s.log.clone();
        if l.flags & (FIX_LOG_CRC | FIX_LOG_OFFSETS) != 0 {
            spec::fix_log(&mut log, base, l.flags & FIX_LOG_OFFSETS != 0);
        }
        let (meta, _) = spec::scan(&log, base);
        metas.push(meta);
        // Two segments with one name: the later files win, as on a real disk.
        fs.write_file(&seg_path(&dir, base, "log"), &log).expect("plant log");
        if let Some(idx) = &s.index {
            let mut idx = idx.clone();
            if l.flags & FIX_INDEXES != 0 {
                spec::fix_index(&mut idx, base, (l.flags & INDEX_SUMMARIES != 0).then_some(&meta));
            }
            fs.write_file(&seg_path(&dir, base, "index"), &idx).expect("plant index");
        }
        if let Some(t) = &s.time {
            let mut t = t.clone();
            if l.flags & FIX_INDEXES != 0 {
                spec::fix_time_index(&mut t, base);
            }
            fs.write_file(&seg_path(&dir, base, "timeindex"), &t).expect("plant timeindex");
        }
    }
    if let Some(cp) = &l.checkpoint {
        let bytes = if l.flags & SYNTH_CHECKPOINT != 0 {
            synth_checkpoint(&metas, cp).encode()
        } else {
            let mut cp = cp.clone();
            if l.flags & FIX_CHECKPOINT != 0 {
                spec::fix_checkpoint(&mut cp);
            }
            cp
        };
        fs.write_file(&dir.join("partition.checkpoint"), &bytes).expect("plant checkpoint");
    }
    if let Some(intent) = &l.intent {
        let mut intent = intent.clone();
        if l.flags & FIX_CHECKPOINT != 0 {
            spec::fix_intent(&mut intent);
        }
        fs.write_file(&dir.join(spec::INTENT_FILE), &intent).expect("plant intent");
    }
    // Odd entries; one that collides with a planted file is left out.
    let other = metas.last().map_or(l.base, |m| m.next_offset).saturating_add(1000);
    if l.extras & 1 != 0 {
        let _ = fs.symlink(Path::new("/elsewhere"), &seg_path(&dir, other, "log"));
    }
    if l.extras & 2 != 0 {
        let _ = fs.write_file(&dir.join("partition.checkpoint.tmp"), b"half-written");
    }
    if l.extras & 4 != 0 {
        let _ = fs.create_dir_all(&seg_path(&dir, other, "index")).and_then(|()| fs.sync_dir(&dir));
    }
    if l.extras & 8 != 0 {
        let _ = fs.write_file(&seg_path(&dir, other.saturating_add(1), "index"), &[0u8; 80]);
    }
    if l.extras & 16 != 0 {
        let _ = fs.write_file(&dir.join(".lock"), b"");
    }
    (fs, dir)
}

/// A checkpoint as partlog would write it for these segments, then changed by `script`:
/// byte 0 bit 0 = clean; then (field, delta) byte pairs adding a signed delta to one field
/// (0 log start, 1 recovery point, 2 next offset, 3.. a segment summary field), or with bit 7
/// of the field byte setting it to the u64 that follows.
pub fn synth_checkpoint(metas: &[Meta], script: &[u8]) -> Checkpoint {
    let mut cp = Checkpoint {
        clean: false,
        log_start: metas.first().map_or(0, |m| m.base),
        recovery_point: metas.last().map_or(0, |m| m.base),
        next_offset: metas.last().map_or(0, |m| m.next_offset),
        cleaner_offset: metas.first().map_or(0, |m| m.base),
        segments: metas.to_vec(),
    };
    let mut inp = Input::new(script);
    cp.clean = inp.u8() & 1 != 0;
    while !inp.is_empty() {
        let field = inp.u8();
        let set = field & 0x80 != 0;
        let delta = if set { inp.u64() } else { i64::from(inp.u8() as i8) as u64 };
        let f = usize::from(field & 0x7f);
        let slot: &mut u64 = match f {
            0 => &mut cp.log_start,
            1 => &mut cp.recovery_point,
            2 => &mut cp.next_offset,
            _ if cp.segments.is_empty() => continue,
            _ => {
                let n = cp.segments.len();
                let m = &mut cp.segments[(f - 3) / 7 % n];
                match (f - 3) % 7 {
                    0 => &mut m.base,
                    1 => &mut m.size,
                    2 => &mut m.next_offset,
                    3 => &mut m.records,
                    4 => {
                        let mut v = m.first_ts as u64;
                        apply(&mut v, set, delta);
                        m.first_ts = v as i64;
                        continue;
                    }
                    5 => {
                        let mut v = m.max_ts as u64;
                        apply(&mut v, set, delta);
                        m.max_ts = v as i64;
                        continue;
                    }
                    _ => &mut m.max_ts_offset,
                }
            }
        };
        apply(slot, set, delta);
    }
    cp
}

fn apply(v: &mut u64, set: bool, delta: u64) {
    *v = if set { delta } else { v.wrapping_add(delta) };
}

/// Everything `iter` yields from the log start, and whether it got to the end without error.
fn read_all(p: &Partition) -> (Vec<StoredRecord>, bool) {
    let mut out = Vec::new();
    for r in p.iter(p.log_start_offset()) {
        match r {
            Ok(r) => out.push(r),
            Err(_) => return (out, false),
        }
        assert!(out.len() < 1_000_000, "iter does not end");
    }
    (out, true)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let layout = Layout::decode(data);
    let (fs, dir) = plant(&layout);
    let config = TopicConfig::default()
        .segment_bytes(128 + u32::from(layout.segment_bytes) % 8192)
        .index_interval_bytes(4 * u32::from(layout.interval));
    let recovery =
        if layout.flags & TRUNCATE_CORRUPT != 0 { RecoveryMode::TruncateCorrupt } else { RecoveryMode::Strict };
    let open = || {
        Partition::options()
            .fs(fs.clone())
            .clock(ManualClock::new(5_000))
            .config(config.clone())
            .recovery(recovery)
            .open(&dir)
    };
    // What partlog would write itself for these logs, to tell truthful metadata from lies.
    let truthful = metadata_is_truthful(&fs, &dir, &config, recovery);
    let Ok(p) = open() else { return };
    if !truthful {
        // The checkpoint, an index or a truncation intent vouches for something the logs do not
        // hold. partlog trusts checksummed metadata by design, so only robustness is checked:
        // no panic, no unbounded allocation, and what partlog closed cleanly opens again.
        let _ = read_all(&p);
        for t in [i64::MIN, i64::MAX, layout.probes[0]] {
            let _ = p.offset_for_timestamp(t);
        }
        let _ = p.append(Record::new().key("fuzz").value("appended").timestamp(4_000));
        let closed = p.close();
        drop(p);
        if closed.is_ok() {
            let p = open().unwrap_or_else(|e| panic!("reopening after a clean close failed: {e}"));
            let _ = read_all(&p);
        }
        return;
    }
    let (start, next) = (p.log_start_offset(), p.log_end_offset());
    assert!(start <= next, "log start {start} above the log end {next}");
    let (records, complete) = read_all(&p);
    for w in records.windows(2) {
        assert!(w[0].offset < w[1].offset, "iter: offsets out of order: {} then {}", w[0].offset, w[1].offset);
    }
    for r in &records {
        assert!((start..next).contains(&r.offset), "iter: offset {} outside [{start}, {next})", r.offset);
    }
    if let Ok(r) = p.read(start, 1)
        && let (Some(first), true) = (r.iter().next(), complete)
    {
        assert_eq!(Some(&first.to_owned()), records.first(), "read(log start) and iter disagree");
    }
    let mut probes = layout.probes.to_vec();
    probes.extend([i64::MIN, i64::MAX]);
    probes.extend(records.first().map(|r| r.timestamp));
    probes.extend(records.iter().map(|r| r.timestamp).max());
    for t in probes {
        if let Ok(Some(hit)) = p.offset_for_timestamp(t) {
            assert!(hit.timestamp >= t, "offset_for_timestamp({t}) found an earlier timestamp: {hit:?}");
            assert!((start..next).contains(&hit.offset), "offset_for_timestamp({t}) = {hit:?} outside the log");
            if complete {
                assert!(
                    records.iter().any(|r| r.offset == hit.offset && r.timestamp == hit.timestamp),
                    "offset_for_timestamp({t}) = {hit:?} is no record of the log"
                );
            }
        }
    }
    let appended = StoredRecord {
        offset: next,
        timestamp: 4_000,
        key: Some(b"fuzz".to_vec()),
        value: Some(b"appended".to_vec()),
        headers: vec![],
    };
    let app = p.append(Record::new().key("fuzz").value("appended").timestamp(4_000));
    if let Ok(info) = &app {
        assert_eq!(info.offset, next, "append got offset {} at log end {next}", info.offset);
        assert_eq!(p.log_end_offset(), next + 1);
        let r = p.read(next, 1).unwrap_or_else(|e| panic!("reading the appended record: {e}"));
        assert_eq!(
            r.iter().next().map(|r| r.to_owned()).as_ref(),
            Some(&appended),
            "the appended record reads back wrong"
        );
    }
    let end = (p.log_start_offset(), p.log_end_offset());
    let closed = p.close();
    drop(p);
    if closed.is_err() {
        return;
    }
    // What partlog closed cleanly, it must open again, unchanged.
    let p = open().unwrap_or_else(|e| panic!("reopening after a clean close failed: {e}"));
    assert_eq!((p.log_start_offset(), p.log_end_offset()), end, "log bounds changed across a clean close");
    let (again, complete_again) = read_all(&p);
    if complete && app.is_ok() {
        let mut want = records;
        want.push(appended);
        assert!(complete_again, "the log read completely before the close, not after");
        assert_eq!(again, want, "contents changed across a clean close");
    }
    let _ = p.close();
    assert!(fs.exists(&dir) && fs.entry_kind(&dir).ok().flatten() == Some(EntryKind::Dir));
}

/// Whether the planted metadata is what partlog would have written for the planted logs:
/// either nothing is trusted (no valid checkpoint, or an unclean one whose recovery point
/// is at or below the first segment, so recovery re-validates every log), or every `.index`
/// and `.timeindex` file is absent or identical to the one partlog writes for that log and
/// the checkpoint's summaries match partlog's.
pub fn metadata_is_truthful(fs: &SimFs, dir: &Path, config: &TopicConfig, recovery: RecoveryMode) -> bool {
    let entries = fs.read_dir(dir).unwrap_or_default();
    let names: Vec<String> = entries.iter().filter_map(|e| e.name.to_str().map(str::to_owned)).collect();
    let mut logs: Vec<(u64, Vec<u8>)> = names
        .iter()
        .filter_map(|n| Some((n.strip_suffix(".log")?.parse().ok()?, fs.read_file(&dir.join(n)).ok()?)))
        .collect();
    logs.sort_unstable();
    if fs.exists(&dir.join(spec::INTENT_FILE)) {
        // A truncation to redo: what the logs should hold is the intent's business.
        return false;
    }
    let cp = fs.read_file(&dir.join("partition.checkpoint")).ok().and_then(|b| Checkpoint::decode(&b));
    let first = logs.first().map_or(0, |l| l.0);
    let trusts = cp.as_ref().is_some_and(|c| c.clean || c.recovery_point > first);
    if !trusts {
        return true;
    }
    // Let partlog write the metadata for the bare logs.
    let reference = SimFs::new();
    let made = reference.create_dir_all(dir).and_then(|()| reference.sync_dir(Path::new("/")));
    if made.is_err() {
        return false;
    }
    for (base, log) in &logs {
        if reference.write_file(&seg_path(dir, *base, "log"), log).is_err() {
            return false;
        }
    }
    let opened = Partition::options().fs(reference.clone()).config(config.clone()).recovery(recovery).open(dir);
    if opened.and_then(|p| p.close()).is_err() {
        return false;
    }
    let want_cp = reference.read_file(&dir.join("partition.checkpoint")).ok().and_then(|b| Checkpoint::decode(&b));
    let (Some(cp), Some(want_cp)) = (cp, want_cp) else { return false };
    // The summaries recovery takes on trust: all of a clean checkpoint that names exactly the
    // segments present, else those of segments that end at or below the recovery point.
    let bases: Vec<u64> = logs.iter().map(|l| l.0).collect();
    let clean = cp.clean && cp.segments.iter().map(|m| m.base).eq(bases.iter().copied());
    let trusted = |m: &&Meta| {
        let next_base = bases.iter().copied().find(|&b| b > m.base);
        bases.contains(&m.base) && (clean || next_base.is_some_and(|nb| nb <= cp.recovery_point))
    };
    if !cp.segments.iter().filter(trusted).all(|m| want_cp.segments.contains(m)) {
        return false;
    }
    names.iter().filter(|n| n.ends_with("index")).all(|n| {
        let p = dir.join(n);
        fs.read_file(&p).ok() == reference.read_file(&p).ok()
    })
}

/// Files of a partition directory made by partlog on `fs`, as a [`Layout`] (raw, no repairs).
pub fn capture(fs: &SimFs, dir: &Path, flags: u8, segment_bytes: u32, interval: u32) -> Layout {
    let mut bases: Vec<u64> = fs
        .read_dir(dir)
        .expect("read_dir")
        .iter()
        .filter_map(|e| e.name.to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    let read = |p: PathBuf| fs.read_file(&p).ok();
    let segments = bases
        .iter()
        .enumerate()
        .map(|(i, &b)| SegFiles {
            gap: if i == 0 { 0 } else { (b - bases[i - 1]) as u16 },
            log: read(seg_path(dir, b, "log")).unwrap_or_default(),
            index: read(seg_path(dir, b, "index")),
            time: read(seg_path(dir, b, "timeindex")),
        })
        .collect();
    Layout {
        flags,
        base: bases.first().copied().unwrap_or(0),
        segment_bytes: (segment_bytes - 128) as u16,
        interval: (interval / 4) as u8,
        segments,
        checkpoint: read(dir.join("partition.checkpoint")),
        intent: read(dir.join(spec::INTENT_FILE)),
        extras: 0,
        probes: [1_005, 0],
    }
}

/// Seed inputs: directories partlog wrote (clean, crashed, truncated), raw and repaired.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use partlog::Durability;
    use partlog::fs::sim::CrashMode;
    let (segment_bytes, interval) = (560u32, 64u32);
    let make = |n: u64, close: bool, crash: Option<CrashMode>, edit: &dyn Fn(&Partition)| {
        let fs = SimFs::new();
        let dir = Path::new(DIR);
        fs.create_dir_all(dir).expect("mkdir");
        fs.sync_dir(Path::new("/")).expect("sync");
        fs.sync_dir(Path::new("/logs")).expect("sync");
        let config = TopicConfig::default()
            .segment_bytes(segment_bytes)
            .index_interval_bytes(interval)
            .durability(Durability::Os);
        let p = Partition::options().fs(fs.clone()).config(config).open(dir).expect("open");
        for i in 0..n {
            let v = format!("v{i}");
            let rec = Record::new().key("k").value(v.as_str()).header("h", "x").timestamp(1_000 + i as i64 * 3);
            p.append(rec).expect("append");
            if i == n / 2 {
                p.sync().expect("sync");
            }
        }
        edit(&p);
        if close {
            p.close().expect("close");
        }
        if let Some(mode) = crash {
            fs.crash(mode);
        }
        drop(p);
        fs
    };
    let none = |_: &Partition| {};
    let dir = Path::new(DIR);
    let cap = |fs: &SimFs, flags| capture(fs, dir, flags, segment_bytes, interval).encode();
    let clean = make(20, true, None, &none);
    let crashed = make(20, false, Some(CrashMode::TornPrefix { seed: 3 }), &none);
    let edited = make(24, true, None, &|p: &Partition| {
        p.advance_log_start(9).expect("advance");
        p.truncate_to(20).expect("truncate");
    });
    let empty = make(0, true, None, &none);
    // Power fails during a truncation, at the first point where its intent is on disk.
    let interrupted = (1..64)
        .map(|k| {
            let fs = SimFs::new();
            let config = TopicConfig::default()
                .segment_bytes(segment_bytes)
                .index_interval_bytes(interval)
                .durability(Durability::EveryAppend);
            let p = Partition::options().fs(fs.clone()).config(config).open(dir).expect("open");
            let batch: Vec<Record<'_>> = (0..4).map(|i| Record::with_value(vec![b'x'; i + 1]).timestamp(7)).collect();
            for _ in 0..3 {
                p.append_batch(&batch).expect("append");
            }
            fs.crash_after(k);
            let _ = p.truncate_to(6);
            fs.crash(CrashMode::LoseUnsynced);
            drop(p);
            fs
        })
        .find(|fs| fs.exists(&dir.join(spec::INTENT_FILE)))
        .expect("a crash point with the intent on disk");
    let all_fixes = FIX_CHECKPOINT | FIX_INDEXES | FIX_LOG_CRC | FIX_LOG_OFFSETS | INDEX_SUMMARIES;
    let mut synth = capture(&clean, dir, all_fixes | SYNTH_CHECKPOINT, segment_bytes, interval);
    synth.checkpoint = Some(vec![1, 4, 1]); // clean, first segment's size + 1
    let mut extras = capture(&crashed, dir, EXTRAS | TRUNCATE_CORRUPT, segment_bytes, interval);
    extras.extras = 0x1f;
    extras.segments.truncate(2);
    vec![
        ("clean", cap(&clean, 0)),
        ("clean-repaired", cap(&clean, all_fixes)),
        ("crashed", cap(&crashed, 0)),
        ("advanced-truncated", cap(&edited, 0)),
        ("empty", cap(&empty, 0)),
        ("truncate-intent", cap(&interrupted, 0)),
        ("synth-checkpoint", synth.encode()),
        ("extras-truncate-corrupt", extras.encode()),
        (
            "garbage",
            b"\x04\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x08\x00\x00\x20\x00garbage-garbage-garbage-garbage"
                .to_vec(),
        ),
    ]
}
