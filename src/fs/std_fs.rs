//! The production file system: `std::fs` plus `fallocate` and a memory-mapped write path for
//! the active segment.
//!
//! # The mapped write path
//! A `write(2)` costs close to a microsecond; a store into a shared file mapping costs a
//! `memcpy`. Both put the bytes into the same page cache, so both survive a crash of the
//! process once the call returns and neither survives power loss before an fsync. The active
//! segment therefore asks for mapped writes ([`FileHandle::enable_mapped_writes`]): the file is
//! grown with `fallocate` (so a full disk fails there, with ENOSPC, instead of as SIGBUS on a
//! store) and only the allocated region is ever written through the map. `fdatasync` writes
//! back pages dirtied through the map on Linux; elsewhere `msync` runs first.
//!
//! Residual risk, documented for users: a process that truncates a segment file under a live
//! writer (despite the directory lock) makes the next store raise SIGBUS. The directory lock
//! keeps other partlog handles away; nothing stops `truncate(1)`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{DirEntry, DirLock, EntryKind, FileHandle, FileId, FileSystem, OpenMode};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl StdFs {
    /// A shared handle to the real file system.
    pub fn shared() -> super::Fs {
        std::sync::Arc::new(StdFs)
    }
}

fn kind_of(ft: std::fs::FileType) -> EntryKind {
    if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            out.push(DirEntry { name: entry.file_name(), kind: kind_of(entry.file_type()?) });
        }
        Ok(out)
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        match std::fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(kind_of(m.file_type()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let mut opts = OpenOptions::new();
        opts.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::Write => {
                opts.write(true);
            }
            OpenMode::Create => {
                opts.write(true).create(true);
            }
            OpenMode::CreateNew => {
                opts.write(true).create_new(true);
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_NOFOLLOW);
        }
        let file = opts.open(path)?;
        Ok(Box::new(StdFile { file, map: OnceLock::new(), allocated: AtomicU64::new(0), populated: AtomicU64::new(0) }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(path)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            Ok(())
        }
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_NOFOLLOW);
        }
        let file = opts.open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdLock { file })),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(io::Error::new(io::ErrorKind::WouldBlock, "lock held by another handle"))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn file_id(&self, path: &Path) -> io::Result<Option<FileId>> {
        Ok(id_of(&std::fs::symlink_metadata(path)?))
    }
}

/// Device and inode of a file's metadata (Unix only).
fn id_of(m: &std::fs::Metadata) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileId { dev: m.dev(), ino: m.ino() })
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

#[derive(Debug)]
struct StdLock {
    file: File,
}

impl DirLock for StdLock {}

impl Drop for StdLock {
    fn drop(&mut self) {
        // Unlock explicitly rather than rely on the close: the lock belongs to the open file
        // description, and a child process forked by another thread of the application (in
        // the moment before its `exec` closes the inherited descriptor) would otherwise keep
        // it held after this handle is gone, so an immediate reopen would fail with `Locked`.
        let _ = self.file.unlock();
    }
}

/// A shared writable mapping of the first `len` bytes of a file.
struct Mapping {
    raw: memmap2::MmapRaw,
    len: u64,
    writable: bool,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("len", &self.len).finish()
    }
}

#[derive(Debug)]
struct StdFile {
    file: File,
    map: OnceLock<Mapping>,
    /// Bytes at the front of the file that are backed by allocated blocks and may be stored to
    /// through the map. Never more than the file's length or the map's length.
    allocated: AtomicU64,
    /// End of the mapped region already faulted in ahead of the writer
    /// ([`populate_ahead`](Self::populate_ahead)); advanced only by the single writer.
    populated: AtomicU64,
}

impl StdFile {
    /// The mapped region `[pos, pos + n)` if all of it may be accessed through the map.
    fn mapped(&self, pos: u64, n: usize) -> Option<*mut u8> {
        let map = self.map.get()?;
        let end = pos.checked_add(n as u64)?;
        if end > self.allocated.load(Ordering::Acquire) || end > map.len {
            return None;
        }
        let off = usize::try_from(pos).ok()?;
        // SAFETY: `off + n <= map.len`, checked above, so the pointer stays inside the mapping.
        Some(unsafe { map.raw.as_mut_ptr().add(off) })
    }

    /// Faults the next [`POPULATE_STEP`] bytes of the allocated, writable map in (writable)
    /// once a store ends within [`POPULATE_MARGIN`] of what is already faulted in, as Chronicle
    /// Queue's pretoucher does: a store to a fresh page of a shared file mapping takes a page
    /// fault (about 1.5 µs here) in the middle of an append, and small appends cross a page
    /// every few dozen records. One `MADV_POPULATE_WRITE` per 256 KiB does the same work for
    /// 64 pages in one call, so the appends in between fault no more. It only maps pages in
    /// (the bytes stay what they are; pages of the preallocated tail are zeros either way) and
    /// never reaches past the allocated region. Kernels before 5.14 refuse the advice, which is
    /// harmless: the stores then fault as before.
    fn populate_ahead(&self, end: u64) {
        #[cfg(target_os = "linux")]
        {
            const PAGE: u64 = 4096;
            let done = self.populated.load(Ordering::Relaxed);
            if end.saturating_add(POPULATE_MARGIN) <= done {
                return;
            }
            let from = done.max(end.next_multiple_of(PAGE));
            let to = from.saturating_add(POPULATE_STEP).min(self.allocated.load(Ordering::Acquire));
            let Ok(n) = usize::try_from(to.saturating_sub(from)) else { return };
            if n == 0 {
                return;
            }
            if let Some(ptr) = self.mapped(from, n) {
                // SAFETY: the range lies inside the writable mapping and the allocated part of
                // the file (checked by `mapped`), so faulting it in cannot raise SIGBUS;
                // MADV_POPULATE_WRITE changes no byte of it.
                unsafe {
                    libc::madvise(ptr.cast(), n, libc::MADV_POPULATE_WRITE);
                }
            }
            self.populated.store(to, Ordering::Relaxed);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = end;
    }
}

impl FileHandle for StdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn file_id(&self) -> io::Result<Option<FileId>> {
        Ok(id_of(&self.file.metadata()?))
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        if let Some(src) = self.mapped(pos, buf.len()) {
            // SAFETY: the source range lies inside the mapping and inside the allocated part of
            // the file (so no SIGBUS while the directory lock keeps other writers away); the
            // destination is a distinct, exclusively borrowed buffer. Callers only read ranges
            // the writer has finished and published, so no store races with this copy.
            unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
            return Ok(buf.len());
        }
        read_at_os(&self.file, buf, pos)
    }

    fn read_exact_unmapped(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match read_at_os(&self.file, buf, pos)? {
                0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file ends early")),
                n => {
                    buf = &mut buf[n..];
                    pos += n as u64;
                }
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        // Small writes go through the map (no syscall); large ones through pwrite, which fills
        // whole new pages without the page faults a first store to each page costs.
        if buf.len() < MAPPED_WRITE_MAX
            && self.map.get().is_some_and(|m| m.writable)
            && let Some(dst) = self.mapped(pos, buf.len())
        {
            // SAFETY: as in `read_at`; the single writer (serialized by the partition's writer
            // lock) stores to a range no reader reads until it is published.
            unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, buf.len()) };
            self.populate_ahead(pos + buf.len() as u64);
            return Ok(());
        }
        write_all_at_os(&self.file, buf, pos)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        // Shrink the mapped window first so no store can reach past the new end.
        let cur = self.allocated.load(Ordering::Acquire);
        if len < cur {
            self.allocated.store(len, Ordering::Release);
        }
        self.populated.fetch_min(len, Ordering::Relaxed);
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        #[cfg(not(target_os = "linux"))]
        if let Some(map) = self.map.get() {
            map.raw.flush()?;
        }
        self.file.sync_data()
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut have = self.allocated.load(Ordering::Acquire);
        if len <= have {
            return Ok(());
        }
        if have == 0 {
            // Bytes already in the file hold data: nothing to reserve there, and no system call
            // (a `fallocate` would change the file's mtime, which a clean reopen must not).
            let file_len = self.file.metadata()?.len();
            let existing = file_len.min(len);
            if existing > 0 {
                if let Some(map) = self.map.get().filter(|m| m.writable) {
                    self.allocated.store(existing.min(map.len), Ordering::Release);
                }
                have = existing;
                if len <= have {
                    return Ok(());
                }
            }
        }
        match fallocate(&self.file, have, len - have) {
            Ok(()) => {
                if let Some(map) = self.map.get().filter(|m| m.writable) {
                    self.allocated.store(len.min(map.len), Ordering::Release);
                    release_behind(map, have);
                }
                Ok(())
            }
            Err(e) if is_unsupported(&e) => {
                // No preallocation here: grow the file and keep writing with pwrite.
                if self.file.metadata()?.len() < len {
                    self.file.set_len(len)?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn enable_mapped_writes(&self, max_len: u64) -> io::Result<()> {
        if !cfg!(target_os = "linux") || max_len == 0 || self.map.get().is_some() {
            return Ok(());
        }
        let Ok(len) = usize::try_from(max_len) else { return Ok(()) };
        let raw = memmap2::MmapOptions::new().len(len).map_raw(&self.file)?;
        let _ = self.map.set(Mapping { raw, len: max_len, writable: true });
        Ok(())
    }

    fn map_for_reads(&self, len: u64) -> io::Result<()> {
        if !cfg!(target_os = "linux") || len == 0 || self.map.get().is_some() {
            return Ok(());
        }
        let Ok(n) = usize::try_from(len) else { return Ok(()) };
        if self.file.metadata()?.len() < len {
            return Ok(());
        }
        let raw = memmap2::MmapOptions::new().len(n).map_raw_read_only(&self.file)?;
        if self.map.set(Mapping { raw, len, writable: false }).is_ok() {
            self.allocated.store(len, Ordering::Release);
        }
        Ok(())
    }

    fn prefault(&self, pos: u64, len: usize) {
        #[cfg(target_os = "linux")]
        {
            const PAGE: u64 = 4096;
            let start = pos / PAGE * PAGE;
            let Ok(n) = usize::try_from(pos + len as u64 - start) else { return };
            if let Some(ptr) = self.mapped(start, n) {
                // SAFETY: the range lies inside the mapping and the file (checked by `mapped`);
                // MADV_POPULATE_READ only maps pages in, it never changes data. Kernels without
                // it return EINVAL, which is fine to ignore.
                unsafe {
                    libc::madvise(ptr.cast(), n, libc::MADV_POPULATE_READ);
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (pos, len);
    }

    fn release(&self, pos: u64, len: usize) {
        #[cfg(target_os = "linux")]
        {
            const PAGE: u64 = 4096;
            // Whole pages inside the range only.
            let start = pos.div_ceil(PAGE) * PAGE;
            let end = (pos + len as u64) / PAGE * PAGE;
            if end <= start || self.map.get().is_none_or(|m| m.writable) {
                return;
            }
            let Ok(n) = usize::try_from(end - start) else { return };
            if let Some(ptr) = self.mapped(start, n) {
                // SAFETY: the range lies inside a read-only file mapping (checked by `mapped`
                // and above). MADV_DONTNEED on a file-backed mapping drops page-table entries
                // only; the data stays in the page cache and any later access, by any reader,
                // faults it back in unchanged.
                unsafe {
                    libc::madvise(ptr.cast(), n, libc::MADV_DONTNEED);
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (pos, len);
    }

    fn hole_at_or_after(&self, pos: u64) -> io::Result<u64> {
        #[cfg(target_os = "linux")]
        {
            match lseek(&self.file, pos, libc::SEEK_HOLE)? {
                Some(at) => Ok(at),
                None => self.len(),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = pos;
            self.len()
        }
    }

    fn data_at_or_after(&self, pos: u64) -> io::Result<Option<u64>> {
        #[cfg(target_os = "linux")]
        {
            lseek(&self.file, pos, libc::SEEK_DATA)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok((pos < self.len()?).then_some(pos))
        }
    }

    fn mapped_slice(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let ptr = self.mapped(pos, len)?;
        // SAFETY: `mapped` checked the range lies inside the mapping and inside the file's
        // allocated length, and the caller only asks for bytes that are complete and never
        // rewritten while readers may look (sealed data, or the published part of the active
        // segment; truncation replaces files instead of shrinking them). The slice borrows
        // `self`, which owns the mapping.
        Some(unsafe { std::slice::from_raw_parts(ptr, len) })
    }
}

/// Writes smaller than this go through the map.
const MAPPED_WRITE_MAX: usize = 4096;

/// Bytes of the map faulted in ahead of the writer at a time. With 116-byte records, one
/// append in about 2,200 pays for the next 64 pages (tens of µs) instead of one in 35 paying a
/// page fault: single appends' p99 went from 1.7–2.0 µs to 0.50–0.56 µs and their p99.9 from
/// 4.5–6.0 µs to about 1.1 µs here, at the same throughput.
const POPULATE_STEP: u64 = 256 << 10;
/// A store ending this close to the faulted-in edge moves the edge on.
const POPULATE_MARGIN: u64 = 64 << 10;

/// Mapped pages further than this behind the write position are unmapped from the process
/// (they stay in the page cache), so a long active segment does not grow the resident set.
const RESIDENT_WINDOW: u64 = 32 << 20;

/// Drops the page-table entries of the mapped region well behind `end` (`MADV_DONTNEED` on a
/// shared file mapping keeps the data, which lives in the page cache; a later access faults it
/// back in).
fn release_behind(map: &Mapping, end: u64) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: u64 = 4096;
        let upto = end.saturating_sub(RESIDENT_WINDOW) / PAGE * PAGE;
        if upto == 0 {
            return;
        }
        let Ok(n) = usize::try_from(upto.min(map.len)) else { return };
        // SAFETY: the range lies inside the mapping; MADV_DONTNEED on a MAP_SHARED file mapping
        // discards no data. Readers of the range fault the pages back in from the page cache.
        unsafe {
            libc::madvise(map.raw.as_mut_ptr().cast(), n, libc::MADV_DONTNEED);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (map, end);
}

fn is_unsupported(e: &io::Error) -> bool {
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return code == libc::EOPNOTSUPP || code == libc::ENOSYS || code == libc::EINVAL;
    }
    e.kind() == io::ErrorKind::Unsupported
}

#[cfg(target_os = "linux")]
fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "allocation beyond off_t"));
    };
    loop {
        // SAFETY: plain syscall on a valid, owned file descriptor.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, off, n) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `lseek` with `SEEK_DATA` / `SEEK_HOLE`; `None` when there is no such offset (ENXIO: past
/// the end). File systems without hole support report all of the file as data, which is
/// correct, only not helpful.
#[cfg(target_os = "linux")]
fn lseek(file: &File, pos: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let Ok(off) = libc::off_t::try_from(pos) else { return Ok(None) };
    // SAFETY: plain syscall on a valid, owned file descriptor; it moves the file offset, which
    // partlog never uses (all I/O is positional).
    let rc = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            // No SEEK_DATA / SEEK_HOLE here: everything is data.
            Some(libc::EINVAL) if whence == libc::SEEK_DATA => Ok(Some(pos)),
            Some(libc::EINVAL) => Ok(Some(file.metadata()?.len())),
            _ => Err(err),
        };
    }
    Ok(u64::try_from(rc).ok())
}

#[cfg(not(target_os = "linux"))]
fn fallocate(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(unix)]
fn read_at_os(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(buf, pos) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(unix)]
fn write_all_at_os(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, pos)
}

#[cfg(windows)]
fn read_at_os(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    use std::os::windows::fs::FileExt;
    file.seek_read(buf, pos)
}

#[cfg(windows)]
fn write_all_at_os(file: &File, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, pos)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        buf = &buf[n..];
        pos += n as u64;
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The writer's faulted-in edge moves in whole steps, only when a store comes near it,
    /// never past the allocated region, and back with a shrink; the bytes are what was stored.
    #[test]
    fn the_map_is_faulted_in_ahead_of_small_stores_within_the_allocation() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        let f = StdFile { file, map: OnceLock::new(), allocated: AtomicU64::new(0), populated: AtomicU64::new(0) };
        let alloc = 2 * POPULATE_STEP + 8192;
        f.enable_mapped_writes(alloc + POPULATE_STEP)?;
        f.allocate(alloc)?;
        let edge = || f.populated.load(Ordering::Relaxed);
        assert_eq!(edge(), 0, "nothing stored yet");
        f.write_at(&[1; 100], 0)?;
        assert_eq!(edge(), 4096 + POPULATE_STEP, "the next step after the stored page");
        // A store well inside the faulted-in part leaves the edge.
        let inside = 4096 + POPULATE_STEP - POPULATE_MARGIN - 200;
        f.write_at(&[2; 100], inside)?;
        assert_eq!(edge(), 4096 + POPULATE_STEP);
        // One that ends within the margin moves it a step on, capped at the allocation.
        f.write_at(&[3; 100], inside + 150)?;
        assert_eq!(edge(), 4096 + 2 * POPULATE_STEP);
        // Near the end of the allocation there is nothing left to fault in past it.
        f.write_at(&[4; 100], alloc - 100)?;
        assert!(edge() <= alloc, "never past the allocated region");
        f.allocate(alloc + POPULATE_STEP)?;
        f.write_at(&[5; 100], alloc + 50)?;
        assert_eq!(edge(), alloc + POPULATE_STEP, "a grown allocation is faulted in up to its end");
        let bytes = std::fs::read(&path)?;
        assert_eq!(bytes.len() as u64, alloc + POPULATE_STEP);
        let expect = |at: u64, v: u8| bytes[at as usize..at as usize + 100].iter().all(|b| *b == v);
        assert!(expect(0, 1) && expect(inside, 2) && expect(inside + 150, 3) && expect(alloc - 100, 4));
        assert!(expect(alloc + 50, 5));
        let stored = [0..100, inside..inside + 250, alloc - 100..alloc + 150];
        for (i, b) in bytes.iter().enumerate() {
            if !stored.iter().any(|r| r.contains(&(i as u64))) {
                assert_eq!(*b, 0, "byte {i} changed by faulting its page in");
            }
        }
        f.set_len(8192)?;
        assert_eq!(edge(), 8192, "a shrink pulls the edge back");
        Ok(())
    }
}
