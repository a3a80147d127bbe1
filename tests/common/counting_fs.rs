//! The real file system seen through partlog's I/O seam: the bytes read through every handle
//! are counted (what a bound on work measures, where a time limit would depend on the
//! machine), and opening one chosen path for reading, or allocating past a chosen length, can
//! be made to fail with `EIO`. Handles have no read maps, so every byte read goes through
//! `read_at` and is counted; unless `keep_maps` is set, which keeps the real handles' maps, so
//! that only the bytes read by system call are counted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use partlog::fs::{DirEntry, DirLock, EntryKind, FileHandle, FileSystem, OpenMode, StdFs};

/// `EIO` on Linux: what opening `fail_open` for reading fails with.
pub const EIO: i32 = 5;

#[derive(Debug, Default)]
pub struct CountingFs {
    /// Bytes read so far, through every handle.
    pub read: Arc<AtomicU64>,
    /// Read calls so far, through every handle.
    pub reads: Arc<AtomicU64>,
    /// Opening this path for reading fails with `EIO`.
    pub fail_open: Option<PathBuf>,
    /// Allocating a file to this length or more fails with `EIO` (smaller allocations work).
    pub fail_allocate_from: Option<u64>,
    /// Handles keep the real file system's read and write maps (bytes read through a map are
    /// not counted).
    pub keep_maps: bool,
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn FileHandle>,
    read: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    fail_allocate_from: Option<u64>,
    keep_maps: bool,
}

impl FileSystem for CountingFs {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<DirEntry>> {
        StdFs.read_dir(path)
    }
    fn entry_kind(&self, path: &Path) -> std::io::Result<Option<EntryKind>> {
        StdFs.entry_kind(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn FileHandle>> {
        if self.fail_open.as_deref() == Some(path) && mode == OpenMode::Read {
            return Err(std::io::Error::from_raw_os_error(EIO));
        }
        Ok(Box::new(CountingFile {
            inner: StdFs.open(path, mode)?,
            read: Arc::clone(&self.read),
            reads: Arc::clone(&self.reads),
            fail_allocate_from: self.fail_allocate_from,
            keep_maps: self.keep_maps,
        }))
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        StdFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        StdFs.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        StdFs.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        StdFs.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn DirLock>> {
        StdFs.lock(path)
    }
}

impl FileHandle for CountingFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        let n = self.inner.read_at(buf, pos)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, pos)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        if self.fail_allocate_from.is_some_and(|from| len >= from) {
            return Err(std::io::Error::from_raw_os_error(EIO));
        }
        self.inner.allocate(len)
    }
    fn enable_mapped_writes(&self, max_len: u64) -> std::io::Result<()> {
        self.inner.enable_mapped_writes(max_len)
    }
    fn map_for_reads(&self, len: u64) -> std::io::Result<()> {
        if self.keep_maps { self.inner.map_for_reads(len) } else { Ok(()) }
    }
    fn mapped_slice(&self, pos: u64, len: usize) -> Option<&[u8]> {
        self.inner.mapped_slice(pos, len).filter(|_| self.keep_maps)
    }
    fn hole_at_or_after(&self, pos: u64) -> std::io::Result<u64> {
        self.inner.hole_at_or_after(pos)
    }
    fn data_at_or_after(&self, pos: u64) -> std::io::Result<Option<u64>> {
        self.inner.data_at_or_after(pos)
    }
}
