//! Any file system seen through partlog's I/O seam, with two gates: once armed, `gate` holds
//! the next `sync_data` of a `.log` file, and `rename_gate` the next rename onto a `.log` file
//! (a truncation or compaction putting a new segment file in place), before it starts. The
//! held call tells the test it got there and waits until the test opens the gate. A test then
//! acts while an fsync or a segment swap is in flight, at a known point, instead of hoping a
//! thread is scheduled there.

use std::path::Path;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use partlog::fs::{DirEntry, DirLock, EntryKind, FileHandle, FileSystem, OpenMode};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Open,
    Armed,
    Holding,
}

/// The gate: arm it, wait until a call is held at it, open it.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

impl Gate {
    /// The next gated call stops at the gate.
    pub fn arm(&self) {
        *self.state.lock() = State::Armed;
    }
    /// Waits until a call is held at the gate.
    pub fn wait_held(&self) {
        let mut st = self.state.lock();
        while *st != State::Holding {
            self.changed.wait(&mut st);
        }
    }
    /// Lets the held call (if any) go on; later ones pass.
    pub fn open(&self) {
        *self.state.lock() = State::Open;
        self.changed.notify_all();
    }
    fn pass(&self) {
        let mut st = self.state.lock();
        if *st != State::Armed {
            return;
        }
        *st = State::Holding;
        self.changed.notify_all();
        while *st == State::Holding {
            self.changed.wait(&mut st);
        }
    }
}

/// `inner`, with a [`Gate`] on the fsync of `.log` files and one on renames onto them.
#[derive(Debug)]
pub struct GatedFs {
    pub inner: Arc<dyn FileSystem>,
    pub gate: Arc<Gate>,
    pub rename_gate: Arc<Gate>,
}

impl GatedFs {
    pub fn new(inner: Arc<dyn FileSystem>) -> GatedFs {
        GatedFs { inner, gate: Arc::default(), rename_gate: Arc::default() }
    }
}

fn is_log(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "log")
}

#[derive(Debug)]
struct GatedFile {
    inner: Box<dyn FileHandle>,
    gate: Option<Arc<Gate>>,
}

impl FileSystem for GatedFs {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<DirEntry>> {
        self.inner.read_dir(path)
    }
    fn entry_kind(&self, path: &Path) -> std::io::Result<Option<EntryKind>> {
        self.inner.entry_kind(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(GatedFile {
            inner: self.inner.open(path, mode)?,
            gate: is_log(path).then(|| Arc::clone(&self.gate)),
        }))
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        if is_log(to) {
            self.rename_gate.pass();
        }
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn DirLock>> {
        self.inner.lock(path)
    }
}

impl FileHandle for GatedFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, pos)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if let Some(g) = &self.gate {
            g.pass();
        }
        self.inner.sync_data()
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.inner.allocate(len)
    }
    fn enable_mapped_writes(&self, max_len: u64) -> std::io::Result<()> {
        self.inner.enable_mapped_writes(max_len)
    }
    fn hole_at_or_after(&self, pos: u64) -> std::io::Result<u64> {
        self.inner.hole_at_or_after(pos)
    }
    fn data_at_or_after(&self, pos: u64) -> std::io::Result<Option<u64>> {
        self.inner.data_at_or_after(pos)
    }
}
