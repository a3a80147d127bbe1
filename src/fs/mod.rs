//! The I/O seam: the only place that touches the operating system's file API.
//!
//! Everything partlog stores goes through [`FileSystem`] and [`FileHandle`]. Production uses
//! [`StdFs`]; tests use the simulated file system (feature `testing`), which loses every write
//! and directory entry that was not made durable when it "crashes", and can fail any operation.
//!
//! Every durability barrier is a named method: [`FileHandle::sync_data`] (fdatasync),
//! [`FileSystem::sync_dir`] (fsync of a directory) and [`durable_replace`] (write temp, fsync,
//! rename, fsync directory).

use std::ffi::OsString;
use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

mod std_fs;
pub use std_fs::StdFs;

#[cfg(any(test, feature = "testing"))]
pub mod sim;

/// What a directory entry is, without following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed by partlog).
    Symlink,
    /// Anything else (socket, device, fifo).
    Other,
}

/// One entry of [`FileSystem::read_dir`].
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The entry's file name.
    pub name: OsString,
    /// Its kind, as `lstat` sees it.
    pub kind: EntryKind,
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    Write,
    /// Read and write; create the file if missing, keep its contents otherwise.
    Create,
    /// Read and write; the file must not exist yet.
    CreateNew,
}

/// An exclusive lock on a directory, released when dropped.
pub trait DirLock: Send + Sync + Debug {}

/// A file system: production ([`StdFs`]) or simulated.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates `path` and its missing parents. New entries are not durable until
    /// [`sync_dir`](Self::sync_dir) is called on each parent.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Lists a directory, without `.` and `..`, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// The kind of `path` without following symlinks; `Ok(None)` when it does not exist.
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>>;
    /// Opens a file. Symlinks are refused (`O_NOFOLLOW`).
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>>;
    /// Removes a file (not durable until the parent directory is synced).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything below it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Renames atomically, replacing `to` if it exists (not durable until the parent
    /// directories are synced).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of directory `path` durable (fsync of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive, non-blocking lock on `path` (a file that is created if missing).
    /// Fails with `ErrorKind::WouldBlock` when another handle holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>>;
    /// Which file `path` names now, without following symlinks; `Ok(None)` where the file
    /// system cannot tell (default). Read-only readers compare it with
    /// [`FileHandle::file_id`] to notice a file replaced under an open handle.
    fn file_id(&self, path: &Path) -> io::Result<Option<FileId>> {
        let _ = path;
        Ok(None)
    }
}

/// The identity of a file (device and inode number on Unix): equal for two names or handles
/// of the same file, different once a name was made to point at another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// The device.
    pub dev: u64,
    /// The inode number.
    pub ino: u64,
}

/// An open file. All methods take `&self`: positional reads and writes can run concurrently.
#[allow(clippy::len_without_is_empty)]
pub trait FileHandle: Send + Sync + Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`, growing the file if needed. Once this returns the bytes are
    /// visible to readers and survive a crash of this process (they are in the OS page cache),
    /// but not a power loss until [`sync_data`](Self::sync_data).
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Truncates or extends (with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's contents and length durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Reserves disk blocks so the file is at least `len` bytes long (zero-filled), failing
    /// with ENOSPC now rather than later. Used for the active segment, which may then be
    /// written through a memory map.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Asks for writes below `max_len` to go through a memory map when the platform allows
    /// (the bytes still land in the page cache exactly as with `write(2)`). Only the region
    /// made by [`allocate`](Self::allocate) is ever mapped for stores. A hint: may do nothing.
    fn enable_mapped_writes(&self, max_len: u64) -> io::Result<()>;

    /// Asks for the first `len` bytes (which never change again) to be mapped read-only, so
    /// [`mapped_slice`](Self::mapped_slice) can serve reads without copying. A hint: may do
    /// nothing.
    fn map_for_reads(&self, len: u64) -> io::Result<()> {
        let _ = len;
        Ok(())
    }

    /// The bytes `[pos, pos + len)` straight from a memory map, when the file is mapped and the
    /// range is inside the mapped, allocated part. Callers only ask for ranges that are
    /// complete and never rewritten while any reader may look at them.
    fn mapped_slice(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let _ = (pos, len);
        None
    }

    /// Hints that `[pos, pos + len)` of the memory map is about to be read, so its pages can be
    /// mapped in one go rather than one fault at a time. Does nothing where there is no map.
    fn prefault(&self, pos: u64, len: usize) {
        let _ = (pos, len);
    }

    /// The first offset at or after `pos` that lies in a hole (a range with no data on disk,
    /// which reads as zeros), or the file's length when there is none. Default: the length
    /// (no hole information).
    fn hole_at_or_after(&self, pos: u64) -> io::Result<u64> {
        let _ = pos;
        self.len()
    }

    /// The first offset at or after `pos` that holds data, skipping holes; `None` when there
    /// is no data from `pos` to the end. Default: `pos` itself (no hole information).
    fn data_at_or_after(&self, pos: u64) -> io::Result<Option<u64>> {
        Ok((pos < self.len()?).then_some(pos))
    }

    /// Hints that `[pos, pos + len)` of the read map will not be needed again soon: its pages
    /// leave this process's resident set (they stay in the page cache; a later read maps them
    /// back in). Does nothing where there is no read map.
    fn release(&self, pos: u64, len: usize) {
        let _ = (pos, len);
    }

    /// Like [`read_exact_at`](Self::read_exact_at), but never through a memory map: a copy by
    /// system call, which costs less than the page faults a first touch of a map takes.
    fn read_exact_unmapped(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.read_exact_at(buf, pos)
    }

    /// Which file this handle has open (see [`FileSystem::file_id`]); `Ok(None)` where the
    /// file system cannot tell (default).
    fn file_id(&self) -> io::Result<Option<FileId>> {
        Ok(None)
    }

    /// Reads exactly `buf.len()` bytes at `pos`, failing with `UnexpectedEof` if the file is
    /// shorter.
    fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, pos) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file ends early")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Shared file-system handle.
pub type Fs = Arc<dyn FileSystem>;

/// Replaces `path` with `contents` through a temporary file and a rename, without any fsync.
/// For derived data whose loss or damage is detected and repaired (indexes): after a crash the
/// file is the old one, the new one, or damaged, never a silent mix that passes its checksums.
pub fn replace_unsynced(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let f = fs.open(&tmp, OpenMode::Create)?;
        f.set_len(0)?;
        f.write_at(contents, 0)?;
    }
    fs.rename(&tmp, path)
}

fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::path::PathBuf::from(tmp)
}

/// Like [`durable_replace`] but without the directory fsync: after a crash `path` holds the old
/// or the new contents (both complete), not necessarily the new. For files whose older version
/// is still correct, only less current (the checkpoint after a segment roll).
pub fn replace_without_dir_sync(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let f = fs.open(&tmp, OpenMode::Create)?;
        f.set_len(0)?;
        f.write_at(contents, 0)?;
        f.sync_data()?;
    }
    fs.rename(&tmp, path)
}

/// Creates `path` and any missing ancestors, and makes every new directory entry durable
/// (an fsync of each created directory's parent, deepest first). Returns whether anything was
/// created.
pub fn create_dir_durable(fs: &dyn FileSystem, path: &Path) -> io::Result<bool> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur.filter(|p| !p.as_os_str().is_empty()) {
        if fs.entry_kind(p)?.is_some() {
            break;
        }
        missing.push(p);
        cur = p.parent();
    }
    if missing.is_empty() {
        return Ok(false);
    }
    fs.create_dir_all(path)?;
    for p in &missing {
        let parent = p.parent().filter(|q| !q.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
        fs.sync_dir(parent)?;
    }
    Ok(true)
}

/// Replaces `path` with `contents` atomically and durably: write `path.tmp`, fsync it, rename it
/// over `path`, fsync the directory. After a crash at any point, `path` holds either the old
/// or the new contents, never a mix.
pub fn durable_replace(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> io::Result<()> {
    replace_without_dir_sync(fs, path, contents)?;
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    fs.sync_dir(parent)
}
