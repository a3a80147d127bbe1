//! Truncating the tail of the log, made atomic with a redo intent.
//!
//! Cutting a log can touch several files: later segments are deleted, the segment holding the
//! new end is cut, and a batch straddling the cut is rewritten with only its records below it.
//! To make that all-or-nothing, the complete plan is first written durably to
//! `truncate.intent`; then it is carried out; then the intent is removed. An open that finds a
//! valid intent carries it out again (every step is idempotent) before recovering, so a crash
//! leaves either the old log (intent never durable) or the new one.
//!
//! `truncate.intent` layout: magic `PLTR` [u8; 4], version u16 (1), kind u16 (0: cut within a
//! segment, 1: delete everything and restart at the target), target offset u64, segment base
//! u64, cut position u64, rewrite length u32, the rewritten batch, CRC-32 of all preceding
//! bytes u32.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use byteorder::{ByteOrder, LittleEndian as LE};

use super::recovery::delete_segment_files;
use super::writer::Writer;
use super::{Inner, View};
use crate::batch::{BatchBuilder, BatchHeader, HEADER_LEN, RecordIter};
use crate::config::TopicConfig;
use crate::error::{Error, IoContext, Result};
use crate::fs::{FileSystem, OpenMode, durable_replace};
use crate::segment::{IndexTracker, NO_TS, OffsetIndex, Opened, SegMeta, Segment, TimeIndex, log_file, log_name};

pub(crate) const INTENT_FILE: &str = "truncate.intent";
const MAGIC: &[u8; 4] = b"PLTR";
const VERSION: u16 = 1;
const HEADER: usize = 36;

/// A truncation plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Intent {
    /// Delete every segment and restart the log at `target`.
    pub full: bool,
    /// The new log end offset.
    pub target: u64,
    /// The segment that keeps the new end (unused when `full`).
    pub seg_base: u64,
    /// Its new length before `rewrite`.
    pub cut: u64,
    /// A batch written at `cut`: the records of a straddling batch that lie below `target`.
    pub rewrite: Vec<u8>,
}

impl Intent {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER + self.rewrite.len() + 4];
        out[0..4].copy_from_slice(MAGIC);
        LE::write_u16(&mut out[4..6], VERSION);
        LE::write_u16(&mut out[6..8], u16::from(self.full));
        LE::write_u64(&mut out[8..16], self.target);
        LE::write_u64(&mut out[16..24], self.seg_base);
        LE::write_u64(&mut out[24..32], self.cut);
        LE::write_u32(&mut out[32..36], self.rewrite.len() as u32);
        out[HEADER..HEADER + self.rewrite.len()].copy_from_slice(&self.rewrite);
        let n = out.len() - 4;
        let crc = crc32fast::hash(&out[..n]);
        LE::write_u32(&mut out[n..], crc);
        out
    }

    fn decode(buf: &[u8]) -> Option<Intent> {
        let h = buf.get(..HEADER)?;
        if &h[0..4] != MAGIC || LE::read_u16(&h[4..6]) != VERSION {
            return None;
        }
        let len = LE::read_u32(&h[32..36]) as usize;
        if buf.len() != HEADER.checked_add(len)?.checked_add(4)? {
            return None;
        }
        let n = buf.len() - 4;
        if crc32fast::hash(&buf[..n]) != LE::read_u32(&buf[n..]) {
            return None;
        }
        let rewrite = buf[HEADER..n].to_vec();
        if !rewrite.is_empty() && crate::batch::validate(&rewrite).is_err() {
            return None;
        }
        let kind = LE::read_u16(&h[6..8]);
        let target = LE::read_u64(&h[8..16]);
        let seg_base = LE::read_u64(&h[16..24]);
        // Only plans partlog could have written are carried out.
        if kind > 1 || target > crate::batch::MAX_OFFSET || seg_base > target {
            return None;
        }
        Some(Intent {
            full: kind == 1,
            target: LE::read_u64(&h[8..16]),
            seg_base: LE::read_u64(&h[16..24]),
            cut: LE::read_u64(&h[24..32]),
            rewrite,
        })
    }
}

/// Carries out `intent` on the files. Idempotent. `bases` are the segments present, oldest
/// first; returns the bases that remain.
fn apply_files(fs: &dyn FileSystem, dir: &Path, intent: &Intent, bases: &[u64]) -> Result<Vec<u64>> {
    if intent.full {
        for &b in bases.iter().rev().filter(|&&b| b != intent.target) {
            delete_segment_files(fs, dir, b)?;
        }
        let p = dir.join(log_name(intent.target));
        let f = fs.open(&p, OpenMode::Create).at(&p)?;
        f.set_len(0).at(&p)?;
        f.sync_data().at(&p)?;
        for ext in ["index", "timeindex"] {
            remove_if_present(fs, &dir.join(format!("{:020}.{ext}", intent.target)))?;
        }
        fs.sync_dir(dir).at(dir)?;
        return Ok(vec![intent.target]);
    }
    for &b in bases.iter().rev().filter(|&&b| b > intent.seg_base) {
        delete_segment_files(fs, dir, b)?;
    }
    // The kept prefix goes into a new file that replaces the segment: a file that readers may
    // have memory-mapped is never shrunk in place (that would turn their reads into SIGBUS).
    let p = dir.join(log_name(intent.seg_base));
    let tmp = dir.join(format!("{}.tmp", log_name(intent.seg_base)));
    {
        let src = fs.open(&p, OpenMode::Read).at(&p)?;
        let dst = fs.open(&tmp, OpenMode::Create).at(&tmp)?;
        dst.set_len(0).at(&tmp)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        while pos < intent.cut {
            let n = usize::try_from((intent.cut - pos).min(buf.len() as u64)).unwrap_or(buf.len());
            src.read_exact_at(&mut buf[..n], pos).at(&p)?;
            dst.write_at(&buf[..n], pos).at(&tmp)?;
            pos += n as u64;
        }
        if !intent.rewrite.is_empty() {
            dst.write_at(&intent.rewrite, intent.cut).at(&tmp)?;
        }
        dst.sync_data().at(&tmp)?;
    }
    fs.rename(&tmp, &p).at(&p)?;
    for ext in ["index", "timeindex"] {
        remove_if_present(fs, &dir.join(format!("{:020}.{ext}", intent.seg_base)))?;
    }
    fs.sync_dir(dir).at(dir)?;
    Ok(bases.iter().copied().filter(|&b| b <= intent.seg_base).collect())
}

fn remove_if_present(fs: &dyn FileSystem, p: &Path) -> Result<()> {
    match fs.remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(p, e)),
        _ => Ok(()),
    }
}

/// At open: finishes an interrupted truncation. Returns the intent carried out, if any.
pub(crate) fn redo_on_open(fs: &dyn FileSystem, dir: &Path, bases: &mut Vec<u64>) -> Result<Option<Intent>> {
    let p = dir.join(INTENT_FILE);
    if fs.entry_kind(&p).at(&p)?.is_none() {
        return Ok(None);
    }
    let f = fs.open(&p, OpenMode::Read).at(&p)?;
    let len = f.len().at(&p)?;
    let intent = if len <= (1 << 31) + 64 {
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, 0).at(&p)?;
        Intent::decode(&buf)
    } else {
        None
    };
    let Some(intent) = intent else {
        // Never made durable, so never acted upon.
        fs.remove_file(&p).at(&p)?;
        fs.sync_dir(dir).at(dir)?;
        return Ok(None);
    };
    let seg_len = if intent.full {
        None
    } else {
        let lp = dir.join(log_name(intent.seg_base));
        match fs.open(&lp, OpenMode::Read) {
            Ok(f) => Some(f.len().at(&lp)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&lp, e)),
        }
    };
    if !intent.full && seg_len.is_none_or(|len| len < intent.cut) {
        // The segment no longer holds what the plan keeps (it never became durable): the log
        // already ends before the target, so there is nothing left to cut.
        fs.remove_file(&p).at(&p)?;
        fs.sync_dir(dir).at(dir)?;
        return Ok(None);
    }
    *bases = apply_files(fs, dir, &intent, bases)?;
    Ok(Some(intent))
}

/// Removes the intent once its effect is recorded in the checkpoint.
pub(crate) fn finish(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let p = dir.join(INTENT_FILE);
    remove_if_present(fs, &p)?;
    fs.sync_dir(dir).at(dir)
}

pub(crate) fn truncate_to(inner: &Inner, offset: u64) -> Result<()> {
    let config = inner.config.read().clone();
    let mut w = inner.writer.lock();
    inner.check_usable()?;
    let end = inner.next_offset.load(Ordering::Acquire);
    if offset >= end {
        return Ok(());
    }
    w.mark_dirty(inner)?;
    let log_start = inner.log_start.load(Ordering::Acquire);
    let view = inner.view();
    let intent = if offset <= log_start {
        Intent { full: true, target: offset, seg_base: offset, cut: 0, rewrite: Vec::new() }
    } else {
        plan_within(inner, &view, offset, &config)?
    };
    // The bytes the plan keeps must be durable before the plan is, or a crash could leave an
    // intent that refers to data that is gone.
    if !intent.full {
        let path = w.active.log_path();
        if view.segments.last().is_some_and(|s| s.base == intent.seg_base) {
            w.opened.file.sync_data().map_err(|e| inner.poison(Error::io(&path, e)))?;
        }
    }
    // Nothing has changed until the intent is durable; a failure here leaves the log as it was.
    let p = inner.dir.join(INTENT_FILE);
    durable_replace(&*inner.fs, &p, &intent.encode()).at(&p)?;
    let result = execute(inner, &mut w, &view, &intent, &config);
    result.map_err(|e| inner.poison(e))
}

/// Finds where to cut so that `offset` becomes the log end.
fn plan_within(inner: &Inner, view: &View, offset: u64, config: &TopicConfig) -> Result<Intent> {
    let idx = view.floor(offset);
    let Some(target) = view.segments.get(idx) else {
        return Err(Error::OffsetOutOfRange { requested: offset, start: 0, end: 0 });
    };
    let opened = inner.open_segment(target, config.index_interval_bytes)?;
    let path = target.log_path();
    let size = target.len.load(Ordering::Acquire);
    let mut pos = opened.index.read().lookup(offset).position;
    let mut buf = [0u8; HEADER_LEN];
    let mut rewrite = Vec::new();
    while pos < size {
        opened.file.read_exact_at(&mut buf, pos).at(&path)?;
        let left = usize::try_from(size - pos).unwrap_or(usize::MAX);
        let h = BatchHeader::parse(&buf, left).map_err(|k| Error::corrupt(&path, pos, k))?;
        if h.last_offset() >= offset {
            if h.base_offset < offset {
                let mut whole = vec![0u8; h.length as usize];
                opened.file.read_exact_at(&mut whole, pos).at(&path)?;
                crate::batch::validate(&whole).map_err(|k| Error::corrupt(&path, pos, k))?;
                let mut b = BatchBuilder::new();
                b.begin(h.base_offset);
                for r in RecordIter::new(&whole, h).filter(|r| r.offset() < offset) {
                    b.push_ref(&r);
                }
                if !b.is_empty() {
                    let last_delta = offset - 1 - h.base_offset;
                    rewrite = b.finish(h.attributes, Some(last_delta)).0.to_vec();
                }
            }
            break;
        }
        pos += u64::from(h.length);
    }
    Ok(Intent { full: false, target: offset, seg_base: target.base, cut: pos.min(size), rewrite })
}

/// Carries out a durable intent on the files and in memory, then records it and drops the
/// intent.
fn execute(inner: &Inner, w: &mut Writer, view: &View, intent: &Intent, config: &TopicConfig) -> Result<()> {
    let doomed: Vec<&Arc<Segment>> = if intent.full {
        view.segments.iter().collect()
    } else {
        view.segments.iter().filter(|s| s.base > intent.seg_base).collect()
    };
    for s in &doomed {
        s.deleted.store(true, Ordering::Release);
        s.close(&inner.cache);
    }
    let bases: Vec<u64> = view.segments.iter().map(|s| s.base).collect();
    if intent.full {
        if let Some(s) = view.segments.iter().find(|s| s.base == intent.target) {
            s.close(&inner.cache);
        }
        apply_files(&*inner.fs, &inner.dir, intent, &bases)?;
        let seg = Segment::new(Arc::clone(&inner.dir), SegMeta::empty(intent.target));
        let p = seg.log_path();
        let file = inner.fs.open(&p, OpenMode::Write).at(&p)?;
        let opened = Opened::new(file, OffsetIndex::new(intent.target), TimeIndex::new(intent.target));
        seg.pin(Arc::clone(&opened));
        inner.log_start.store(intent.target, Ordering::Release);
        *inner.view.write() = Arc::new(View { segments: vec![Arc::clone(&seg)] });
        w.active = seg;
        w.opened = opened;
        w.tracker = IndexTracker { bytes_since_entry: 0, max_ts: NO_TS, max_ts_offset: intent.target };
        w.pos = 0;
    } else {
        let Some(target) = view.segments.iter().find(|s| s.base == intent.seg_base).cloned() else {
            return Err(Error::corrupt(&inner.dir, 0, crate::error::CorruptKind::Metadata));
        };
        target.close(&inner.cache);
        apply_files(&*inner.fs, &inner.dir, intent, &bases)?;
        // The segment file was replaced: the writer continues on the new one, while readers
        // still holding the old handle keep reading the old (unchanged) file.
        let p = target.log_path();
        let file = inner.fs.open(&p, OpenMode::Write).at(&p)?;
        let opened = Opened::new(file, OffsetIndex::new(target.base), TimeIndex::new(target.base));
        let path = target.log_path();
        let end = intent.cut + intent.rewrite.len() as u64;
        let scan = log_file::scan(&*opened.file, &path, target.base, end, config.index_interval_bytes)?;
        if let Some(stop) = scan.stop {
            return Err(Error::corrupt(&path, stop.pos, stop.kind));
        }
        *opened.index.write() = scan.index;
        *opened.time.write() = scan.time;
        target.set_meta(&scan.meta);
        target.pin(Arc::clone(&opened));
        let keep = view.segments.iter().take_while(|s| s.base <= intent.seg_base).cloned().collect();
        *inner.view.write() = Arc::new(View { segments: keep });
        w.active = target;
        w.opened = opened;
        w.tracker = scan.tracker;
        w.pos = end;
    }
    inner.next_offset.store(intent.target, Ordering::Release);
    // A fresh handle: its map and preallocation are set up by the next append.
    w.allocated = 0;
    w.segment_limit = u64::from(config.segment_bytes).max(w.pos);
    w.recovery_point = w.recovery_point.min(w.active.base);
    {
        let mut st = inner.sync_state.lock();
        st.synced = st.synced.min(intent.target);
    }
    w.write_checkpoint(inner, false)?;
    finish(&*inner.fs, &inner.dir)
}
