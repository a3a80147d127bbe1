//! Opening a partition: list the directory, trust what the checkpoint vouches for, re-validate
//! the rest, cut torn tails, and refuse (or, if asked, cut) damage with valid data after it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::{Condvar, Mutex, RwLock};

use super::checkpoint::{self, Checkpoint};
use super::writer::Writer;
use super::{Inner, PartitionOptions, RecoveryMode, SyncState, View};
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::fs::{EntryKind, FileSystem, OpenMode};
use crate::segment::log_file;
use crate::segment::{
    DEFAULT_OPEN_SEGMENTS, HandleCache, IndexTracker, OffsetIndex, Opened, SegMeta, Segment, TimeIndex, parse_name,
    read_index_meta,
};

pub(crate) const LOCK_FILE: &str = ".lock";

/// Files of one segment found in the directory.
#[derive(Debug, Default)]
struct Found {
    log: bool,
    index: bool,
    time: bool,
}

pub(crate) fn open(path: &Path, opts: PartitionOptions) -> Result<Inner> {
    let fs = Arc::clone(&opts.fs);
    let created = crate::fs::create_dir_durable(&*fs, path).at(path)?;
    if !created && fs.entry_kind(path).at(path)? != Some(EntryKind::Dir) {
        return Err(Error::NotALogDir { path: path.to_path_buf(), reason: "not a directory".into() });
    }
    let lock = if opts.lock { Some(take_lock(&*fs, path)?) } else { None };

    let dir: Arc<Path> = Arc::from(path);
    let mut found: BTreeMap<u64, Found> = BTreeMap::new();
    let mut checkpoint_present = false;
    for entry in fs.read_dir(path).at(path)? {
        let Some(name) = entry.name.to_str() else { continue };
        if name == checkpoint::FILE_NAME {
            checkpoint_present = entry.kind == EntryKind::File;
            continue;
        }
        if name.ends_with(".tmp") && entry.kind == EntryKind::File {
            // Leftover of an interrupted atomic replace: the real file is intact.
            let p = path.join(name);
            fs.remove_file(&p).at(&p)?;
            continue;
        }
        let Some((base, ext)) = parse_name(name) else { continue };
        let f = found.entry(base).or_default();
        let flag = match ext {
            "log" => &mut f.log,
            "index" => &mut f.index,
            "timeindex" => &mut f.time,
            _ => continue,
        };
        if entry.kind != EntryKind::File {
            // A symlink or directory posing as a segment file is never followed.
            return Err(Error::corrupt(&path.join(name), 0, CorruptKind::Metadata));
        }
        *flag = true;
    }
    // Index files without a log are orphans from an interrupted delete.
    let orphans: Vec<u64> = found.iter().filter(|(_, f)| !f.log).map(|(b, _)| *b).collect();
    for base in orphans {
        for ext in ["index", "timeindex"] {
            let p = path.join(format!("{base:020}.{ext}"));
            if fs.entry_kind(&p).at(&p)?.is_some() {
                fs.remove_file(&p).at(&p)?;
            }
        }
        found.remove(&base);
    }

    if let Some((&base, _)) = found.iter().find(|(b, _)| **b > crate::batch::MAX_OFFSET) {
        let p = path.join(crate::segment::log_name(base));
        return Err(Error::corrupt(&p, 0, CorruptKind::Metadata));
    }
    let cp = if checkpoint_present { read_checkpoint(&*fs, path)? } else { None };
    // A checkpoint whose offsets lie outside the offset space is as good as damaged.
    let cp = cp.filter(|c| c.log_start <= crate::batch::MAX_OFFSET && c.next_offset <= crate::batch::MAX_OFFSET);
    let mut bases: Vec<u64> = found.keys().copied().collect();
    // Finish a truncation that was durably planned but maybe not carried out.
    let redone = super::truncate::redo_on_open(&*fs, path, &mut bases)?;
    let mut log_start = cp.as_ref().map_or(0, |c| c.log_start);
    if let Some(&first) = bases.first() {
        if cp.is_none() {
            log_start = first;
        }
        log_start = log_start.max(first);
    }
    if let Some(intent) = redone.as_ref().filter(|i| i.full) {
        log_start = intent.target;
    }

    // Segments wholly below the log start are left over from an interrupted advance.
    while bases.len() > 1 && bases.get(1).is_some_and(|&b| b <= log_start) {
        let b = bases.remove(0);
        delete_segment_files(&*fs, path, b)?;
    }

    let clean = redone.is_none()
        && cp.as_ref().is_some_and(|c| {
            c.clean
                && c.segments.len() == bases.len()
                && c.segments.iter().zip(&bases).all(|(m, b)| m.base == *b)
                // The active segment was trimmed at close: any other length means it changed
                // since, so it is re-validated rather than trusted.
                && c.segments.last().is_some_and(|m| file_len(&*fs, path, m.base) == Some(m.size))
        });
    let recovery_point = match (&cp, &redone) {
        (Some(c), _) if clean => c.next_offset,
        // A redone truncation changed the segment it cut: re-validate from there.
        (Some(c), Some(i)) => c.recovery_point.min(i.seg_base),
        (Some(c), None) => c.recovery_point,
        (None, _) => 0,
    };
    let interval = opts.config.index_interval_bytes;

    let mut metas: Vec<SegMeta> = Vec::with_capacity(bases.len());
    let mut active_scan: Option<log_file::Scan> = None;
    let mut active_loaded: Option<(OffsetIndex, TimeIndex)> = None;
    let mut recovered_any = false;
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let is_last = i + 1 == bases.len();
        let next_base = bases.get(i + 1).copied();
        let from_cp = cp.as_ref().and_then(|c| c.segments.iter().find(|m| m.base == base).copied());
        let trusted = if clean {
            from_cp
        } else if next_base.is_some_and(|nb| nb <= recovery_point) {
            // Sealed and fsynced before the checkpoint was written.
            from_cp.or_else(|| read_index_meta(&*fs, path, base))
        } else {
            None
        };
        // Even a checksummed summary must describe this segment plausibly to be trusted.
        let mut trusted = trusted.filter(|m| plausible(m, base, next_base));
        if is_last && let Some(m) = trusted {
            // The active segment's summary is cheap to confirm against the log itself: its
            // last batches (from the last index entry on) must end exactly where it says.
            let seg = Segment::new(Arc::clone(&dir), m);
            match seg.load_indexes(&*fs, &m) {
                Some((index, time)) if tail_matches(&*fs, &seg, &m, &index) => active_loaded = Some((index, time)),
                _ => trusted = None,
            }
        }
        if let Some(m) = trusted {
            metas.push(m);
            i += 1;
            continue;
        }
        // Re-validate this segment from its first byte.
        recovered_any = true;
        let log_path = path.join(crate::segment::log_name(base));
        let file = fs.open(&log_path, OpenMode::Write).at(&log_path)?;
        let file_len = file.len().at(&log_path)?;
        let mut scan = log_file::scan(&*file, &log_path, base, file_len, interval)?;
        if scan.meta.size < file_len {
            let stop = scan.stop.unwrap_or(log_file::Stop { pos: scan.meta.size, kind: CorruptKind::BatchLength });
            let later_here = log_file::valid_batch_after(&*file, &log_path, stop.pos, file_len, scan.meta.next_offset)?;
            let later_segments = bases[i + 1..].iter().any(|&b| segment_has_data(&*fs, path, b));
            // In the active segment, valid data after a whole page of zeros is what a power loss
            // leaves when the kernel wrote later pages back before earlier ones: those writes
            // were never synced (a sync covers everything before it), so this is a torn tail.
            // Anywhere else, or without such a hole, it is damage to data that was durable.
            let power_loss_hole = match later_here {
                Some(at) if !later_segments && at > stop.pos => {
                    log_file::has_zero_page(&*file, &log_path, stop.pos, at)?
                }
                _ => false,
            };
            let later_data = (later_here.is_some() && !power_loss_hole) || later_segments;
            if later_data && opts.recovery == RecoveryMode::Strict {
                let kind = if stop.kind == CorruptKind::BatchLength { CorruptKind::MidLog } else { stop.kind };
                return Err(Error::corrupt(&log_path, stop.pos, kind));
            }
            // A torn tail (or damage the caller chose to cut): drop it and every later segment.
            file.set_len(scan.meta.size).at(&log_path)?;
            file.sync_data().at(&log_path)?;
            for &b in &bases[i + 1..] {
                delete_segment_files(&*fs, path, b)?;
            }
            bases.truncate(i + 1);
        }
        if bases.len() != i + 1 {
            // A sealed segment above the recovery point: make it durable and index it.
            file.sync_data().at(&log_path)?;
            scan.tracker.finish(&mut scan.time);
            let seg = Segment::new(Arc::clone(&dir), scan.meta);
            crate::segment::write_indexes(&*fs, &seg, &scan.meta, &scan.index, &scan.time)?;
            metas.push(scan.meta);
            i += 1;
            continue;
        }
        metas.push(scan.meta);
        active_scan = Some(scan);
        let _ = is_last;
        i += 1;
    }

    // Offsets must increase from segment to segment.
    for w in metas.windows(2) {
        if let [a, b] = w
            && a.next_offset > b.base
        {
            let p = path.join(crate::segment::log_name(b.base));
            return Err(Error::corrupt(&p, 0, CorruptKind::OffsetOrder));
        }
    }

    let config = Arc::new(opts.config.clone());
    let cache = opts.cache.clone().unwrap_or_else(|| HandleCache::new(DEFAULT_OPEN_SEGMENTS));

    // The end of the log may lie below the log start (everything was deleted): start afresh.
    let end = metas.last().map_or(log_start, |m| m.next_offset);
    if metas.is_empty() || end < log_start {
        for m in &metas {
            delete_segment_files(&*fs, path, m.base)?;
        }
        metas.clear();
        active_scan = None;
        recovered_any = true;
        let seg = Segment::new(Arc::clone(&dir), SegMeta::empty(log_start));
        let p = seg.log_path();
        fs.open(&p, OpenMode::Create).at(&p)?;
        fs.sync_dir(path).at(path)?;
        metas.push(SegMeta::empty(log_start));
    }

    // Build the segment list and the active segment's writer state.
    let mut segments: Vec<Arc<Segment>> = metas.iter().map(|m| Segment::new(Arc::clone(&dir), *m)).collect();
    let Some(active) = segments.last().cloned() else {
        return Err(Error::corrupt(path, 0, CorruptKind::Metadata));
    };
    let active_meta = active.meta();
    let log_path = active.log_path();
    let file = fs.open(&log_path, OpenMode::Write).at(&log_path)?;
    let (index, time, tracker) = match active_scan {
        Some(s) => (s.index, s.time, s.tracker),
        None => {
            // Clean shutdown or trusted: use the index files written at close, or rebuild.
            let loaded = active_loaded.take().or_else(|| active.load_indexes(&*fs, &active_meta));
            match loaded {
                Some((i, t)) => {
                    let tr = IndexTracker::new(&active_meta, &i);
                    (i, t, tr)
                }
                None => {
                    let s = log_file::rebuild(&*file, &log_path, active.base, active_meta.size, interval)?;
                    (s.index, s.time, s.tracker)
                }
            }
        }
    };
    // Cut anything past the valid end (preallocated zeros, appended garbage).
    if file.len().at(&log_path)? != active_meta.size {
        file.set_len(active_meta.size).at(&log_path)?;
        file.sync_data().at(&log_path)?;
    }
    // Map the active segment now, so reads of it are served from memory before any append.
    file.enable_mapped_writes(u64::from(opts.config.segment_bytes).max(active_meta.size)).at(&log_path)?;
    if active_meta.size > 0 {
        file.allocate(active_meta.size).at(&log_path)?;
    }
    let opened = Opened::new(file, index, time);
    active.pin(Arc::clone(&opened));
    segments.shrink_to_fit();

    let next_offset = active_meta.next_offset;
    let writer = Writer::new(Arc::clone(&active), opened, tracker, &config, clean && !recovered_any);
    let inner = Inner {
        dir,
        fs,
        clock: opts.clock,
        cache,
        config: RwLock::new(config),
        writer: Mutex::new(writer),
        view: RwLock::new(Arc::new(View { segments })),
        log_start: AtomicU64::new(log_start),
        next_offset: AtomicU64::new(next_offset),
        sync_state: Mutex::new(SyncState { synced: if clean { next_offset } else { 0 }, ..SyncState::default() }),
        sync_cv: Condvar::new(),
        appending: std::sync::atomic::AtomicUsize::new(0),
        last_group: std::sync::atomic::AtomicUsize::new(1),
        poisoned: AtomicBool::new(false),
        poison_cause: Mutex::new(None),
        closed: AtomicBool::new(false),
        map_reads: opts.map_reads,
        id: opts.id,
        lock: Mutex::new(lock),
    };
    if !clean {
        // Everything before the active segment is now validated and durable.
        let mut w = inner.writer.lock();
        w.write_checkpoint(&inner, false)?;
    }
    if redone.is_some() {
        super::truncate::finish(&*inner.fs, path)?;
    }
    Ok(inner)
}

pub(crate) fn take_lock(fs: &dyn FileSystem, dir: &Path) -> Result<Box<dyn crate::fs::DirLock>> {
    let p = dir.join(LOCK_FILE);
    match fs.lock(&p) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Error::Locked { path: dir.to_path_buf() }),
        Err(e) => Err(Error::io(&p, e)),
    }
}

fn read_checkpoint(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Checkpoint>> {
    let p = dir.join(checkpoint::FILE_NAME);
    let f = fs.open(&p, OpenMode::Read).at(&p)?;
    let len = f.len().at(&p)?;
    if len > 1 << 30 {
        return Ok(None);
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    f.read_exact_at(&mut buf, 0).at(&p)?;
    match Checkpoint::decode(&buf) {
        Ok(c) => Ok(Some(c)),
        Err(checkpoint::Bad::Version(v)) => {
            Err(Error::UnsupportedVersion { path: p, found: u32::from(v), supported: 1 })
        }
        // A damaged checkpoint only costs a full re-validation.
        Err(checkpoint::Bad::Damaged) => Ok(None),
    }
}

/// Whether the batches from the last index entry of `seg` to its recorded size are intact and
/// end at its recorded next offset.
fn tail_matches(fs: &dyn FileSystem, seg: &Segment, m: &SegMeta, index: &OffsetIndex) -> bool {
    let p = seg.log_path();
    let Ok(f) = fs.open(&p, OpenMode::Read) else { return false };
    let from = index.entries().last().map_or(0, |e| e.position);
    match log_file::next_offset_of_range(&*f, &p, from, m.size) {
        Ok(Some(next)) => next == m.next_offset,
        Ok(None) => m.size == 0 && from == 0,
        Err(_) => false,
    }
}

/// Whether a stored summary can describe the segment with base `base` (followed by
/// `next_base`): offsets in order, within the offset space and a segment's u32 range.
fn plausible(m: &SegMeta, base: u64, next_base: Option<u64>) -> bool {
    m.base == base
        && m.next_offset >= m.base
        && m.next_offset <= crate::batch::MAX_OFFSET
        && m.next_offset - m.base <= u64::from(u32::MAX) + 1
        && m.size <= u64::from(u32::MAX)
        && (m.size == 0) == (m.next_offset == m.base)
        && next_base.is_none_or(|nb| m.next_offset <= nb)
}

fn file_len(fs: &dyn FileSystem, dir: &Path, base: u64) -> Option<u64> {
    let p = dir.join(crate::segment::log_name(base));
    fs.open(&p, OpenMode::Read).ok()?.len().ok()
}

fn segment_has_data(fs: &dyn FileSystem, dir: &Path, base: u64) -> bool {
    let p = dir.join(crate::segment::log_name(base));
    let Ok(f) = fs.open(&p, OpenMode::Read) else { return false };
    let Ok(len) = f.len() else { return false };
    log_file::scan(&*f, &p, base, len, u32::MAX).is_ok_and(|s| s.meta.records > 0 || s.meta.size > 0)
}

/// Removes a segment's files (log last, so a crash leaves at worst orphan indexes, which the
/// next open deletes). The caller syncs the directory.
pub(crate) fn delete_segment_files(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<()> {
    for ext in ["index", "timeindex", "log"] {
        let p = dir.join(format!("{base:020}.{ext}"));
        match fs.remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    fs.sync_dir(dir).at(dir)
}
