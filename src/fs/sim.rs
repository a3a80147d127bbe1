//! A simulated, in-memory file system for crash-safety tests.
//!
//! [`SimFs`] models what a real disk and kernel guarantee after a power loss, as adversarially
//! as the POSIX contract allows:
//!
//! * A file's contents are durable only as of its last [`FileHandle::sync_data`]. Writes and
//!   length changes made since then are *pending*; a crash keeps none, or a prefix, of them (the
//!   next pending write may even be torn, see [`CrashMode`]).
//! * A directory's entries are durable only as of its last [`FileSystem::sync_dir`]. Creating,
//!   removing or renaming an entry changes only the current entries; syncing a file does not
//!   make its directory entry durable.
//! * Open handles refer to inodes: they keep working after their file is unlinked or renamed,
//!   and die at the next [`SimFs::crash`].
//!
//! Faults can be injected: [`SimFs::crash_after`] stops the world after a number of mutating
//! operations, [`SimFs::fail_nth`] fails one operation, [`SimFs::set_capacity`] makes the disk
//! fill up.
//!
//! *Mutating operations* are: `create_dir_all` (when it creates anything), `open` with
//! `Create`/`CreateNew` (when it creates the file), `lock` (when it creates the file),
//! `remove_file`, `remove_dir_all`, `rename`, `sync_dir`, and on handles `write_at`, `set_len`,
//! `allocate` and `sync_data`. Faults apply to an operation only once it has validated its
//! arguments, i.e. when it would otherwise succeed.
//!
//! Paths are resolved component by component from the root, through current entries; relative
//! paths are relative to the root, `.` components are ignored and `..` is refused.
//!
//! # Memory maps
//! By default (as [`StdFs`](super::StdFs) on Linux) handles honour the mapping hints:
//! [`FileHandle::map_for_reads`] and [`FileHandle::enable_mapped_writes`] map a file, and
//! [`FileHandle::mapped_slice`] then serves its bytes without a copy, so the read path partlog
//! takes on Linux — scans and record views straight from a map — is the one the crash sweeps
//! run. A view is a snapshot of the bytes when it was handed out; a real map would show later
//! changes instead, which is why the seam promises that mapped bytes are never rewritten (and
//! never cut off by a truncation) while a handle may serve them. The simulation checks that
//! promise: a write that changes a byte a live view holds, or a `set_len` that cuts into one
//! (SIGBUS on a real map), is a *map violation*. Violations panic, naming the file and the
//! range; [`SimFs::set_mapped`] turns maps off (every read then goes through `read_at`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::{self, ErrorKind};
use std::path::{Component, Path};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, MutexGuard};

use super::{DirEntry, DirLock, EntryKind, FileHandle, FileId, FileSystem, OpenMode};

/// Inode number.
type Ino = u64;

/// The root directory's inode; it always exists and is durable.
const ROOT: Ino = 0;

/// Largest file the simulation agrees to hold, so a bogus length fails instead of aborting.
const MAX_FILE_LEN: u64 = 1 << 32;

/// What survives a [`SimFs::crash`] of the data written (but not synced) before it.
///
/// In every mode, directory entries revert to their last synced state and file contents to
/// their last synced contents first; the modes differ in which pending (unsynced) mutations of
/// each file are then re-applied, as the disk may have persisted some of them on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every pending mutation is lost.
    LoseUnsynced,
    /// For each file, a random-length prefix of its pending mutations survives, in order,
    /// possibly followed by a random-length prefix of the bytes of the next pending write (a
    /// torn write).
    TornPrefix {
        /// Seed of the random choices; the same seed on the same history gives the same result.
        seed: u64,
    },
    /// Like [`TornPrefix`](Self::TornPrefix), but the torn part of the next pending write holds
    /// random bytes instead of the ones written (a sector half-written with garbage).
    Garbage {
        /// Seed of the random choices; the same seed on the same history gives the same result.
        seed: u64,
    },
}

/// A pending (not yet durable) change to a file.
#[derive(Debug, Clone)]
enum Mutation {
    Write { pos: usize, bytes: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Default)]
struct FileNode {
    /// Current contents, as readers see them.
    data: Vec<u8>,
    /// Contents as of the last `sync_data`.
    durable: Vec<u8>,
    /// Mutations since the last `sync_data`, in order.
    pending: Vec<Mutation>,
}

#[derive(Debug, Default)]
struct DirNode {
    entries: BTreeMap<OsString, Ino>,
    durable_entries: BTreeMap<OsString, Ino>,
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
    Symlink,
}

impl Node {
    fn kind(&self) -> EntryKind {
        match self {
            Node::File(_) => EntryKind::File,
            Node::Dir(_) => EntryKind::Dir,
            Node::Symlink => EntryKind::Symlink,
        }
    }
}

/// The whole simulated machine: inodes, locks, open handles and armed faults.
#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
    /// Incremented by every crash; handles from an older generation are dead.
    generation: u64,
    /// Open handle count per inode of the current generation.
    open: HashMap<Ino, usize>,
    /// Held locks: normalized path -> lock id.
    locks: HashMap<Vec<OsString>, u64>,
    next_lock_id: u64,
    /// Successful mutating operations.
    mutating_ops: u64,
    /// Mutating operations that reached their commit point (successful or failed by a fault).
    seq: u64,
    /// Armed one-shot faults, keyed by the `seq` they fire at.
    faults: BTreeMap<u64, ErrorKind>,
    /// Mutating operations left before the world stops.
    budget: Option<u64>,
    /// Set once the `crash_after` budget is exhausted: everything fails until `crash`.
    halted: bool,
    capacity: Option<u64>,
    /// Whether handles opened from now on honour the mapping hints.
    unmapped: bool,
    /// Byte ranges handed out by `mapped_slice`, per inode: (handle, start, end).
    pins: HashMap<Ino, Vec<(u64, usize, usize)>>,
    next_handle: u64,
    /// Bumped per inode by [`SimFs::write_file`]: bytes changed from outside, which a real map
    /// would show, so views taken before are not handed out again.
    planted: HashMap<Ino, u64>,
}

fn err(kind: ErrorKind, msg: &'static str) -> io::Error {
    io::Error::new(kind, msg)
}

fn not_found() -> io::Error {
    err(ErrorKind::NotFound, "sim: no such file or directory")
}

fn not_a_dir() -> io::Error {
    err(ErrorKind::NotADirectory, "sim: not a directory")
}

fn is_a_dir() -> io::Error {
    err(ErrorKind::IsADirectory, "sim: is a directory")
}

fn symlink_refused() -> io::Error {
    io::Error::other("sim: refusing to follow a symlink")
}

/// Splits `path` into normal components; the root, `.` and a leading `/` are dropped.
fn components(path: &Path) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name.to_owned()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(err(ErrorKind::InvalidInput, "sim: `..` is not supported"));
            }
        }
    }
    Ok(out)
}

/// A file length or offset, refused beyond [`MAX_FILE_LEN`].
fn to_usize(n: u64) -> io::Result<usize> {
    let n = usize::try_from(n).ok().filter(|_| n <= MAX_FILE_LEN);
    n.ok_or_else(|| err(ErrorKind::FileTooLarge, "sim: file too large"))
}

/// Writes `bytes` at `pos`, zero-filling any gap.
fn apply_write(data: &mut Vec<u8>, pos: usize, bytes: &[u8]) {
    let end = pos.saturating_add(bytes.len());
    if data.len() < end {
        data.resize(end, 0);
    }
    if let Some(dst) = data.get_mut(pos..end) {
        dst.copy_from_slice(bytes);
    }
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Write { pos, bytes } => apply_write(data, *pos, bytes),
        Mutation::SetLen(len) => data.resize(*len, 0),
    }
}

/// splitmix64: small, deterministic, good enough for choosing crash outcomes.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        // The result is below `n`, so the cast back is lossless; the modulo bias is irrelevant.
        (self.next() % n.max(1) as u64) as usize
    }
}

impl State {
    fn new() -> State {
        let mut st = State { next_ino: ROOT + 1, ..State::default() };
        st.nodes.insert(ROOT, Node::Dir(DirNode::default()));
        st
    }

    fn check_live(&self) -> io::Result<()> {
        if self.halted { Err(io::Error::other("simulated crash")) } else { Ok(()) }
    }

    /// Resolves `comps` through current entries. `Ok(None)` when some component is missing;
    /// an error when a non-final component is not a directory.
    fn lookup(&self, comps: &[OsString]) -> io::Result<Option<Ino>> {
        let mut cur = ROOT;
        for name in comps {
            let Some(Node::Dir(dir)) = self.nodes.get(&cur) else {
                return Err(not_a_dir());
            };
            match dir.entries.get(name) {
                Some(&ino) => cur = ino,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The existing directory that holds (or would hold) the last component of `comps`, and
    /// that component.
    fn parent<'a>(&self, comps: &'a [OsString]) -> io::Result<(Ino, &'a OsString)> {
        let Some((name, dir)) = comps.split_last() else {
            return Err(err(ErrorKind::InvalidInput, "sim: the root has no parent"));
        };
        let ino = self.lookup(dir)?.ok_or_else(not_found)?;
        match self.nodes.get(&ino) {
            Some(Node::Dir(_)) => Ok((ino, name)),
            _ => Err(not_a_dir()),
        }
    }

    /// Resolves `comps` to an existing inode.
    fn resolve(&self, comps: &[OsString]) -> io::Result<Ino> {
        self.lookup(comps)?.ok_or_else(not_found)
    }

    /// Adds the entry `name -> ino` to directory `dir` (and to its durable entries too).
    fn link(&mut self, dir: Ino, name: &OsString, ino: Ino, durable: bool) {
        if let Some(d) = self.dir_mut(dir) {
            d.entries.insert(name.clone(), ino);
            if durable {
                d.durable_entries.insert(name.clone(), ino);
            }
        }
    }

    /// Creates an empty file at the missing path `comps` (a mutating operation).
    fn create_file(&mut self, comps: &[OsString]) -> io::Result<Ino> {
        let (parent, name) = self.parent(comps)?;
        self.mutate(|st| {
            let ino = st.alloc(Node::File(FileNode::default()));
            st.link(parent, name, ino, false);
            ino
        })
    }

    fn node(&self, ino: Ino) -> io::Result<&Node> {
        self.nodes.get(&ino).ok_or_else(not_found)
    }

    fn file(&self, ino: Ino) -> io::Result<&FileNode> {
        match self.node(ino)? {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(is_a_dir()),
            Node::Symlink => Err(symlink_refused()),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Option<&mut FileNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Option<&mut DirNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    fn alloc(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    /// Runs the effect of a mutating operation whose arguments were validated: fires an armed
    /// fault (no effect) or applies `f` and counts the operation.
    fn mutate<R>(&mut self, f: impl FnOnce(&mut State) -> R) -> io::Result<R> {
        let seq = self.seq;
        self.seq += 1;
        if let Some(kind) = self.faults.remove(&seq) {
            return Err(err(kind, "simulated fault"));
        }
        let out = f(self);
        self.mutating_ops += 1;
        if let Some(left) = self.budget.as_mut() {
            *left = left.saturating_sub(1);
            self.halted = *left == 0;
        }
        Ok(out)
    }

    /// Inodes reachable from `start` through current (or, with `durable`, durable) entries.
    fn reachable(&self, start: Ino, durable: bool) -> BTreeSet<Ino> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            if let Some(Node::Dir(d)) = self.nodes.get(&ino) {
                let entries = if durable { &d.durable_entries } else { &d.entries };
                stack.extend(entries.values().copied().filter(|i| !seen.contains(i)));
            }
        }
        seen
    }

    /// Bytes of all files reachable from the root or open (and `also`).
    fn used_bytes(&self, also: Option<Ino>) -> u64 {
        let mut inos = self.reachable(ROOT, false);
        inos.extend(self.open.keys().copied());
        inos.extend(also);
        inos.iter()
            .filter_map(|i| match self.nodes.get(i) {
                Some(Node::File(f)) => Some(f.data.len() as u64),
                _ => None,
            })
            .sum()
    }

    /// Fails with `StorageFull` if growing file `ino` to `new_len` exceeds the capacity.
    fn check_growth(&self, ino: Ino, new_len: usize) -> io::Result<()> {
        let Some(cap) = self.capacity else { return Ok(()) };
        let old = self.file(ino)?.data.len();
        if new_len <= old {
            return Ok(());
        }
        let used = self.used_bytes(Some(ino));
        let total = used.saturating_sub(old as u64).saturating_add(new_len as u64);
        if total > cap {
            return Err(io::Error::from(ErrorKind::StorageFull));
        }
        Ok(())
    }

    /// Panics if writing `bytes` at `pos` of `ino` changes a byte a live map view holds, or
    /// (`bytes == None`) if cutting the file to `pos` bytes cuts into one.
    fn check_pins(&self, ino: Ino, pos: usize, bytes: Option<&[u8]>) {
        let Some(pins) = self.pins.get(&ino) else { return };
        let Ok(file) = self.file(ino) else { return };
        for &(handle, start, end) in pins {
            let violated = match bytes {
                None => pos < end,
                Some(b) => {
                    let (a, z) = (pos.max(start), pos.saturating_add(b.len()).min(end));
                    a < z && file.data.get(a..z) != b.get(a - pos..z - pos)
                }
            };
            assert!(
                !violated,
                "sim: map violation: {} bytes [{start}, {end}) of inode {ino}, mapped by handle {handle}, at {pos}",
                if bytes.is_some() { "a write changes" } else { "a truncation cuts into" }
            );
        }
    }

    fn crash(&mut self, mode: CrashMode) {
        let (seed, garbage) = match mode {
            CrashMode::LoseUnsynced => (None, false),
            CrashMode::TornPrefix { seed } => (Some(seed), false),
            CrashMode::Garbage { seed } => (Some(seed), true),
        };
        let mut rng = Rng(seed.unwrap_or(0) ^ 0x5EED_5EED_5EED_5EED);
        for node in self.nodes.values_mut() {
            match node {
                Node::Dir(d) => d.entries = d.durable_entries.clone(),
                Node::File(f) => {
                    let pending = std::mem::take(&mut f.pending);
                    let mut data = std::mem::take(&mut f.durable);
                    if seed.is_some() && !pending.is_empty() {
                        let keep = rng.below(pending.len() + 1);
                        for m in pending.iter().take(keep) {
                            apply(&mut data, m);
                        }
                        if let Some(Mutation::Write { pos, bytes }) = pending.get(keep) {
                            let torn = rng.below(bytes.len());
                            let part: Vec<u8> = if garbage {
                                (0..torn).map(|_| rng.next() as u8).collect()
                            } else {
                                bytes.iter().take(torn).copied().collect()
                            };
                            if !part.is_empty() {
                                apply_write(&mut data, *pos, &part);
                            }
                        }
                    }
                    f.data = data.clone();
                    f.durable = data;
                }
                Node::Symlink => {}
            }
        }
        let live = self.reachable(ROOT, true);
        self.nodes.retain(|ino, _| live.contains(ino));
        self.open.clear();
        self.pins.clear();
        self.locks.clear();
        self.generation += 1;
        self.faults.clear();
        self.budget = None;
        self.halted = false;
    }
}

/// An in-memory file system that forgets everything not made durable when it crashes.
///
/// Create one with [`SimFs::new`]; the `Arc<SimFs>` coerces to [`super::Fs`]. See the
/// [module documentation](self) for the model.
#[derive(Debug)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl SimFs {
    /// A new, empty file system holding only its (durable) root directory.
    pub fn new() -> Arc<SimFs> {
        Arc::new(SimFs { state: Arc::new(Mutex::new(State::new())) })
    }

    /// Simulates a power loss followed by a restart of the process.
    ///
    /// Every directory's entries revert to their last synced state and every file's contents
    /// to their last synced contents, plus whatever of the pending mutations `mode` keeps.
    /// Afterwards the state is durable as it stands. All locks are released, every handle
    /// opened before the crash fails any call with an error, armed faults (`crash_after`,
    /// `fail_nth`) are cleared and [`generation`](Self::generation) increments. The capacity
    /// set by [`set_capacity`](Self::set_capacity) is kept.
    pub fn crash(&self, mode: CrashMode) {
        self.state.lock().crash(mode);
    }

    /// After `ops` more mutating operations succeed, every later operation (on the file system
    /// or on any handle, mutating or not) fails with `io::Error::other("simulated crash")`
    /// until [`crash`](Self::crash) is called. `crash_after(0)` stops everything right away,
    /// so the very next mutating operation fails.
    pub fn crash_after(&self, ops: u64) {
        let mut st = self.state.lock();
        if ops == 0 {
            st.halted = true;
        } else {
            st.budget = Some(ops);
        }
    }

    /// Arms a one-shot fault: the `n`-th mutating operation from now (0-based) fails with an
    /// error of kind `kind` and has no effect; later operations work. Operations failed by a
    /// fault count in the numbering (so `fail_nth(0, k)` and `fail_nth(1, k)` fail the next
    /// two operations) but not in [`mutating_ops`](Self::mutating_ops).
    pub fn fail_nth(&self, n: u64, kind: ErrorKind) {
        let mut st = self.state.lock();
        let at = st.seq.saturating_add(n);
        st.faults.insert(at, kind);
    }

    /// Whether handles opened from now on honour the mapping hints (the default) or ignore them,
    /// so that every read goes through `read_at`. See the [module documentation](self).
    pub fn set_mapped(&self, on: bool) {
        self.state.lock().unmapped = !on;
    }

    /// Limits the total size of all files (reachable from the root or open): growing a file
    /// with `write_at`, `set_len` or `allocate` past it fails with `ErrorKind::StorageFull` and
    /// has no effect. `None` (the default) means unlimited.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    /// Bytes of all files reachable from the root or still open: what
    /// [`set_capacity`](Self::set_capacity) counts.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used_bytes(None)
    }

    /// How many mutating operations have succeeded so far.
    pub fn mutating_ops(&self) -> u64 {
        self.state.lock().mutating_ops
    }

    /// How many times [`crash`](Self::crash) was called.
    pub fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Whether the budget set by [`crash_after`](Self::crash_after) is exhausted, i.e. every
    /// operation fails until the next [`crash`](Self::crash).
    pub fn is_halted(&self) -> bool {
        self.state.lock().halted
    }

    /// The current contents of the file at `path` (inspection: ignores faults and does not
    /// count as an operation).
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inspect(path, |f| f.data.clone())
    }

    /// The current length of the file at `path` (inspection, like
    /// [`read_file`](Self::read_file)).
    pub fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inspect(path, |f| f.data.len() as u64)
    }

    fn inspect<R>(&self, path: &Path, f: impl FnOnce(&FileNode) -> R) -> io::Result<R> {
        let comps = components(path)?;
        let st = self.state.lock();
        Ok(f(st.file(st.resolve(&comps)?)?))
    }

    /// Locks the state for a file-system operation on `path`, unless the world is halted.
    fn live(&self, path: &Path) -> io::Result<(MutexGuard<'_, State>, Vec<OsString>)> {
        let comps = components(path)?;
        let st = self.state.lock();
        st.check_live()?;
        Ok((st, comps))
    }

    /// `remove_file` (`dir_ok == false`) and `remove_dir_all` (`dir_ok == true`).
    fn unlink(&self, path: &Path, dir_ok: bool) -> io::Result<()> {
        let (mut st, comps) = self.live(path)?;
        match (st.node(st.resolve(&comps)?)?, dir_ok) {
            (Node::Dir(_), false) => return Err(is_a_dir()),
            (Node::File(_), true) => return Err(not_a_dir()),
            _ => {}
        }
        let (parent, name) = st.parent(&comps)?;
        st.mutate(|st| {
            if let Some(d) = st.dir_mut(parent) {
                d.entries.remove(name);
            }
        })
    }

    /// Whether `path` currently exists (inspection, like [`read_file`](Self::read_file)).
    pub fn exists(&self, path: &Path) -> bool {
        let Ok(comps) = components(path) else { return false };
        matches!(self.state.lock().lookup(&comps), Ok(Some(_)))
    }

    /// Creates or overwrites the file at `path` (its parent must exist) with `data`, and makes
    /// both its contents and its directory entry durable at once: for tests that plant files.
    /// Ignores faults and capacity and does not count as an operation. Open handles see the new
    /// bytes, through `read_at` and through maps (views handed out earlier keep the old ones:
    /// the change came from outside, which the map-violation check does not police).
    pub fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let comps = components(path)?;
        let mut st = self.state.lock();
        let existing = st.lookup(&comps)?;
        if let Some(ino) = existing {
            st.file(ino)?;
        }
        let (parent, name) = st.parent(&comps)?;
        let file = FileNode { data: data.to_vec(), durable: data.to_vec(), pending: Vec::new() };
        let ino = match existing {
            Some(ino) => {
                st.nodes.insert(ino, Node::File(file)); // same inode: open handles see it
                *st.planted.entry(ino).or_default() += 1; // and so do maps of it, from now on
                ino
            }
            None => st.alloc(Node::File(file)),
        };
        st.link(parent, name, ino, true);
        Ok(())
    }

    /// Creates a symbolic link at `path` (which must not exist; its parent must) whose entry is
    /// durable at once. The sim never follows links: `open` refuses them and `read_dir` and
    /// `entry_kind` report [`EntryKind::Symlink`]. `target` is not interpreted. Ignores faults
    /// and does not count as an operation.
    pub fn symlink(&self, target: &Path, path: &Path) -> io::Result<()> {
        let _ = target;
        let comps = components(path)?;
        let mut st = self.state.lock();
        if st.lookup(&comps)?.is_some() {
            return Err(err(ErrorKind::AlreadyExists, "sim: path exists"));
        }
        let (parent, name) = st.parent(&comps)?;
        let ino = st.alloc(Node::Symlink);
        st.link(parent, name, ino, true);
        Ok(())
    }
}

impl FileSystem for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let (mut st, comps) = self.live(path)?;
        let mut cur = ROOT;
        let mut missing = comps.as_slice();
        while let Some((name, rest)) = missing.split_first() {
            let Some(Node::Dir(d)) = st.nodes.get(&cur) else { return Err(not_a_dir()) };
            match d.entries.get(name) {
                Some(&ino) => {
                    cur = ino;
                    missing = rest;
                }
                None => break,
            }
        }
        match st.nodes.get(&cur) {
            Some(Node::Dir(_)) => {}
            _ if missing.is_empty() => {
                return Err(err(ErrorKind::AlreadyExists, "sim: exists, not a directory"));
            }
            _ => return Err(not_a_dir()),
        }
        if missing.is_empty() {
            return Ok(());
        }
        st.mutate(|st| {
            for name in missing {
                let ino = st.alloc(Node::Dir(DirNode::default()));
                st.link(cur, name, ino, false);
                cur = ino;
            }
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let (st, comps) = self.live(path)?;
        let ino = st.resolve(&comps)?;
        let Node::Dir(d) = st.node(ino)? else { return Err(not_a_dir()) };
        Ok(d.entries
            .iter()
            .map(|(name, ino)| DirEntry {
                name: name.clone(),
                kind: st.nodes.get(ino).map_or(EntryKind::Other, Node::kind),
            })
            .collect())
    }

    fn file_id(&self, path: &Path) -> io::Result<Option<FileId>> {
        let (st, comps) = self.live(path)?;
        match st.lookup(&comps)? {
            Some(ino) => Ok(Some(FileId { dev: 0, ino })),
            None => Err(not_found()),
        }
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        let (st, comps) = self.live(path)?;
        match st.lookup(&comps)? {
            Some(ino) => Ok(Some(st.node(ino)?.kind())),
            None => Ok(None),
        }
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let (mut st, comps) = self.live(path)?;
        let ino = match st.lookup(&comps)? {
            Some(_) if mode == OpenMode::CreateNew => {
                return Err(err(ErrorKind::AlreadyExists, "sim: file exists"));
            }
            Some(ino) => {
                st.file(ino)?;
                ino
            }
            None if matches!(mode, OpenMode::Read | OpenMode::Write) => return Err(not_found()),
            None => st.create_file(&comps)?,
        };
        *st.open.entry(ino).or_default() += 1;
        let id = st.next_handle;
        st.next_handle += 1;
        Ok(Box::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
            generation: st.generation,
            writable: mode != OpenMode::Read,
            id,
            mappable: !st.unmapped,
            map_len: OnceLock::new(),
            views: Views::default(),
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.unlink(path, false)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.unlink(path, true)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let to_c = components(to)?;
        let (mut st, from_c) = self.live(from)?;
        let src = st.resolve(&from_c)?;
        let (from_parent, from_name) = st.parent(&from_c)?;
        let (to_parent, to_name) = st.parent(&to_c)?;
        let src_is_dir = matches!(st.node(src)?, Node::Dir(_));
        if src_is_dir && st.reachable(src, false).contains(&to_parent) {
            return Err(err(ErrorKind::InvalidInput, "sim: cannot move a directory into itself"));
        }
        let dst = st.lookup(&to_c)?;
        if let Some(dst) = dst.filter(|&d| d != src) {
            match (src_is_dir, st.node(dst)?) {
                (true, Node::Dir(d)) if !d.entries.is_empty() => {
                    return Err(err(ErrorKind::DirectoryNotEmpty, "sim: directory not empty"));
                }
                (true, Node::Dir(_)) => {}
                (true, _) => return Err(not_a_dir()),
                (false, Node::Dir(_)) => return Err(is_a_dir()),
                (false, _) => {}
            }
        }
        st.mutate(|st| {
            if dst == Some(src) {
                return; // two names of one inode: POSIX says do nothing
            }
            if let Some(d) = st.dir_mut(from_parent) {
                d.entries.remove(from_name);
            }
            st.link(to_parent, to_name, src, false);
        })
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let (mut st, comps) = self.live(path)?;
        let ino = st.resolve(&comps)?;
        if !matches!(st.node(ino)?, Node::Dir(_)) {
            return Err(not_a_dir());
        }
        st.mutate(|st| {
            if let Some(d) = st.dir_mut(ino) {
                d.durable_entries = d.entries.clone();
            }
        })
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let (mut st, comps) = self.live(path)?;
        if st.locks.contains_key(&comps) {
            return Err(err(ErrorKind::WouldBlock, "sim: lock held"));
        }
        match st.lookup(&comps)? {
            Some(ino) => {
                st.file(ino)?;
            }
            None => {
                st.create_file(&comps)?;
            }
        }
        let id = st.next_lock_id;
        st.next_lock_id += 1;
        st.locks.insert(comps.clone(), id);
        Ok(Box::new(SimLock { state: Arc::clone(&self.state), key: comps, id }))
    }
}

/// An open file of a [`SimFs`]; dead (every call fails) after the next crash.
#[derive(Debug)]
pub struct SimFile {
    state: Arc<Mutex<State>>,
    ino: Ino,
    generation: u64,
    writable: bool,
    id: u64,
    /// Whether the mapping hints are honoured.
    mappable: bool,
    /// Set by the first mapping hint: the length of the (simulated) map.
    map_len: OnceLock<u64>,
    /// Snapshots handed out by `mapped_slice`; they live as long as the handle.
    views: Views,
}

/// Most snapshots one handle keeps; past it, `mapped_slice` declines (reads use `read_at`).
const MAX_VIEWS: usize = 4096;
/// Most bytes of snapshots one handle keeps.
const MAX_VIEW_BYTES: usize = 64 << 20;

/// An append-only list of snapshots: each one stays put (and borrowable) until the handle
/// drops.
#[derive(Debug, Default)]
struct Views {
    head: OnceLock<Box<View>>,
}

#[derive(Debug)]
struct View {
    start: usize,
    /// The inode's [`State::planted`] count when the snapshot was taken.
    epoch: u64,
    bytes: Box<[u8]>,
    next: OnceLock<Box<View>>,
}

impl SimFile {
    /// The snapshot of `[pos, pos + len)`, taken now if no earlier one covers it.
    fn view(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        let epoch = self.state.lock().planted.get(&self.ino).copied().unwrap_or(0);
        let covers = |v: &View| v.epoch == epoch && v.start <= pos && end <= v.start + v.bytes.len();
        let mut slot = &self.views.head;
        let (mut count, mut bytes) = (0usize, 0usize);
        loop {
            match slot.get() {
                Some(v) if covers(v) => return v.bytes.get(pos - v.start..end - v.start),
                Some(v) => {
                    count += 1;
                    bytes += v.bytes.len();
                    slot = &v.next;
                }
                None => {
                    if count >= MAX_VIEWS || bytes.saturating_add(len) > MAX_VIEW_BYTES {
                        return None;
                    }
                    let snapshot = {
                        let mut st = self.state.lock();
                        if st.generation != self.generation
                            || st.halted
                            || st.planted.get(&self.ino).copied().unwrap_or(0) != epoch
                        {
                            return None;
                        }
                        let data = &st.file(self.ino).ok()?.data;
                        let snap: Box<[u8]> = data.get(pos..end)?.into();
                        st.pins.entry(self.ino).or_default().push((self.id, pos, end));
                        snap
                    };
                    // Another thread may have appended first: then look on from its view.
                    let _ = slot.set(Box::new(View { start: pos, epoch, bytes: snapshot, next: OnceLock::new() }));
                }
            }
        }
    }
}

impl SimFile {
    /// Runs `f` on the state if this handle is alive (and writable, with `write`) and the world
    /// is not halted.
    fn with<R>(&self, write: bool, f: impl FnOnce(&mut State) -> io::Result<R>) -> io::Result<R> {
        let mut st = self.state.lock();
        if st.generation != self.generation {
            return Err(io::Error::other("simulated crash: handle from before the crash"));
        }
        st.check_live()?;
        if write && !self.writable {
            return Err(err(ErrorKind::PermissionDenied, "sim: handle is read-only"));
        }
        f(&mut st)
    }

    /// Sets the length to `len`, recording a pending length change; with `grow_only`, never
    /// shrinks (and records nothing when the file is long enough).
    fn resize(&self, len: u64, grow_only: bool) -> io::Result<()> {
        let ino = self.ino;
        self.with(true, |st| {
            let len = to_usize(len)?;
            let cur = st.file(ino)?.data.len();
            st.check_growth(ino, len)?;
            if len < cur && !grow_only {
                st.check_pins(ino, len, None);
            }
            st.mutate(|st| {
                if let Some(f) = st.file_mut(ino)
                    && !(grow_only && len <= cur)
                {
                    f.data.resize(len, 0);
                    f.pending.push(Mutation::SetLen(len));
                }
            })
        })
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.generation == self.generation
            && let Some(pins) = st.pins.get_mut(&self.ino)
        {
            pins.retain(|p| p.0 != self.id);
            if pins.is_empty() {
                st.pins.remove(&self.ino);
            }
        }
        if st.generation == self.generation
            && let Some(n) = st.open.get_mut(&self.ino)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.open.remove(&self.ino);
            }
        }
    }
}

impl FileHandle for SimFile {
    fn file_id(&self) -> io::Result<Option<FileId>> {
        self.with(false, |_| Ok(Some(FileId { dev: 0, ino: self.ino })))
    }

    fn len(&self) -> io::Result<u64> {
        self.with(false, |st| Ok(st.file(self.ino)?.data.len() as u64))
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.with(false, |st| {
            let data = &st.file(self.ino)?.data;
            let src = usize::try_from(pos).ok().and_then(|p| data.get(p..)).unwrap_or_default();
            let n = src.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
                dst.copy_from_slice(src);
            }
            Ok(n)
        })
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let ino = self.ino;
        self.with(true, |st| {
            let pos = to_usize(pos)?;
            to_usize(pos as u64 + buf.len() as u64)?; // no overflow: pos <= MAX_FILE_LEN
            let cur = st.file(ino)?.data.len();
            if !buf.is_empty() {
                st.check_growth(ino, cur.max(pos + buf.len()))?;
                st.check_pins(ino, pos, Some(buf));
            }
            st.mutate(|st| {
                if let Some(f) = st.file_mut(ino)
                    && !buf.is_empty()
                {
                    apply_write(&mut f.data, pos, buf);
                    f.pending.push(Mutation::Write { pos, bytes: buf.to_vec() });
                }
            })
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.resize(len, false)
    }

    fn sync_data(&self) -> io::Result<()> {
        let ino = self.ino;
        self.with(false, |st| {
            st.file(ino)?;
            st.mutate(|st| {
                if let Some(f) = st.file_mut(ino) {
                    f.durable = f.data.clone();
                    f.pending.clear();
                }
            })
        })
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.resize(len, true)
    }

    fn enable_mapped_writes(&self, max_len: u64) -> io::Result<()> {
        self.with(false, |_| Ok(()))?;
        if self.mappable && max_len > 0 {
            let _ = self.map_len.set(max_len);
        }
        Ok(())
    }

    fn map_for_reads(&self, len: u64) -> io::Result<()> {
        let file_len = self.with(false, |st| Ok(st.file(self.ino)?.data.len() as u64))?;
        if self.mappable && len > 0 && file_len >= len && self.map_len.set(len).is_ok() {
            // Sealed bytes: one view of all of them serves every later read.
            let n = usize::try_from(len).map_err(|_| err(ErrorKind::FileTooLarge, "sim: map too large"))?;
            let _ = self.view(0, n);
        }
        Ok(())
    }

    fn mapped_slice(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let map_len = *self.map_len.get()?;
        let end = pos.checked_add(len as u64)?;
        if end > map_len {
            return None;
        }
        self.view(usize::try_from(pos).ok()?, len)
    }
}

/// A lock taken with [`FileSystem::lock`] on a [`SimFs`]; released when dropped or by a crash.
#[derive(Debug)]
pub struct SimLock {
    state: Arc<Mutex<State>>,
    key: Vec<OsString>,
    id: u64,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.locks.get(&self.key) == Some(&self.id) {
            st.locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Fs;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    fn kind<T>(r: io::Result<T>) -> Option<io::ErrorKind> {
        r.err().map(|e| e.kind())
    }

    /// Creates `/d/f` with durable entries for `/d` and `/d/f`, holding `data` durably.
    fn durable_file(fs: &SimFs, data: &[u8]) -> io::Result<Box<dyn FileHandle>> {
        fs.create_dir_all(p("/d"))?;
        fs.sync_dir(p("/"))?;
        let f = fs.open(p("/d/f"), OpenMode::CreateNew)?;
        f.write_at(data, 0)?;
        f.sync_data()?;
        fs.sync_dir(p("/d"))?;
        Ok(f)
    }

    #[test]
    fn maps_serve_views_of_the_bytes() -> io::Result<()> {
        let fs = SimFs::new();
        let f = durable_file(&fs, b"hello world")?;
        assert_eq!(f.mapped_slice(0, 5), None, "not mapped yet");
        f.map_for_reads(11)?;
        assert_eq!(f.mapped_slice(6, 5), Some(&b"world"[..]));
        assert_eq!(f.mapped_slice(6, 6), None, "past the map");
        // A write map grows with the file: bytes written later can be viewed once there.
        let g = fs.open(p("/d/g"), OpenMode::Create)?;
        g.enable_mapped_writes(1 << 20)?;
        g.allocate(64)?;
        g.write_at(b"abc", 0)?;
        assert_eq!(g.mapped_slice(0, 3), Some(&b"abc"[..]));
        g.write_at(b"def", 3)?; // outside every view: allowed
        assert_eq!(g.mapped_slice(0, 6), Some(&b"abcdef"[..]));
        g.write_at(b"abc", 0)?; // the same bytes again: no change, allowed
        g.set_len(6)?; // trimming past every view: allowed
        // Without maps every read goes through `read_at`.
        fs.set_mapped(false);
        let h = fs.open(p("/d/f"), OpenMode::Read)?;
        h.map_for_reads(11)?;
        assert_eq!(h.mapped_slice(0, 5), None);
        Ok(())
    }

    #[test]
    #[should_panic(expected = "map violation: a write changes")]
    fn changing_viewed_bytes_is_a_map_violation() {
        let fs = SimFs::new();
        let f = durable_file(&fs, b"hello world").unwrap();
        f.map_for_reads(11).unwrap();
        let w = fs.open(p("/d/f"), OpenMode::Write).unwrap();
        let _ = w.write_at(b"J", 0);
    }

    #[test]
    #[should_panic(expected = "map violation: a truncation cuts into")]
    fn truncating_viewed_bytes_is_a_map_violation() {
        let fs = SimFs::new();
        let f = durable_file(&fs, b"hello world").unwrap();
        f.map_for_reads(11).unwrap();
        let _ = f.set_len(4);
    }

    #[test]
    fn views_end_with_their_handle_and_at_a_crash() -> io::Result<()> {
        let fs = SimFs::new();
        let f = durable_file(&fs, b"hello world")?;
        f.map_for_reads(11)?;
        drop(f);
        let w = fs.open(p("/d/f"), OpenMode::Write)?;
        w.write_at(b"J", 0)?; // nobody maps it any more
        let r = fs.open(p("/d/f"), OpenMode::Read)?;
        r.map_for_reads(11)?;
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(r.mapped_slice(0, 5), Some(&b"Jello"[..]), "a view outlives the crash");
        let w = fs.open(p("/d/f"), OpenMode::Write)?;
        w.write_at(b"Y", 0)?; // the mapping handle died with the crash
        Ok(())
    }

    #[test]
    fn unsynced_data_lost_synced_kept() -> io::Result<()> {
        let fs = SimFs::new();
        let f = durable_file(&fs, b"hello")?;
        f.write_at(b" world", 5)?;
        f.set_len(20)?;
        assert_eq!(fs.read_file(p("/d/f"))?.len(), 20);
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f"))?, b"hello");
        let f = fs.open(p("/d/f"), OpenMode::Write)?;
        f.write_at(b" world", 5)?;
        f.sync_data()?;
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f"))?, b"hello world");
        Ok(())
    }

    #[test]
    fn synced_file_in_unsynced_dir_disappears() -> io::Result<()> {
        let fs = SimFs::new();
        fs.create_dir_all(p("/d"))?;
        fs.sync_dir(p("/"))?;
        let f = fs.open(p("/d/f"), OpenMode::Create)?;
        f.write_at(b"x", 0)?;
        f.sync_data()?;
        assert!(fs.exists(p("/d/f")));
        fs.crash(CrashMode::TornPrefix { seed: 1 });
        assert!(fs.exists(p("/d")));
        assert!(!fs.exists(p("/d/f")));
        // New directories are volatile too until their parent is synced.
        fs.create_dir_all(p("/d/e/g"))?;
        fs.sync_dir(p("/d/e"))?;
        fs.crash(CrashMode::LoseUnsynced);
        assert!(!fs.exists(p("/d/e")));
        Ok(())
    }

    #[test]
    fn rename_durable_only_after_sync_dir() -> io::Result<()> {
        let fs = SimFs::new();
        drop(durable_file(&fs, b"old")?);
        fs.write_file(p("/d/g"), b"new")?;
        fs.rename(p("/d/g"), p("/d/f"))?;
        assert_eq!(fs.read_file(p("/d/f"))?, b"new");
        assert!(!fs.exists(p("/d/g")));
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f"))?, b"old");
        assert_eq!(fs.read_file(p("/d/g"))?, b"new");
        fs.rename(p("/d/g"), p("/d/f"))?;
        fs.sync_dir(p("/d"))?;
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f"))?, b"new");
        assert!(!fs.exists(p("/d/g")));
        Ok(())
    }

    #[test]
    fn durable_replace_is_atomic() -> io::Result<()> {
        for k in 0..8 {
            let fs = SimFs::new();
            fs.write_file(p("/m"), b"old")?;
            fs.crash_after(k);
            let _ = crate::fs::durable_replace(&*fs, p("/m"), b"new contents");
            fs.crash(CrashMode::Garbage { seed: k });
            let got = fs.read_file(p("/m"))?;
            assert!(got == b"old" || got == b"new contents", "k={k}: {got:?}");
        }
        Ok(())
    }

    #[test]
    fn handles_survive_unlink_and_die_at_crash() -> io::Result<()> {
        let fs = SimFs::new();
        let f = durable_file(&fs, b"abc")?;
        fs.rename(p("/d"), p("/e"))?;
        assert_eq!(fs.read_file(p("/e/f"))?, b"abc");
        fs.remove_file(p("/e/f"))?;
        f.write_at(b"d", 3)?;
        let mut buf = [0u8; 8];
        assert_eq!(f.read_at(&mut buf, 0)?, 4);
        assert_eq!(&buf[..4], b"abcd");
        assert_eq!(f.read_at(&mut buf, 4)?, 0);
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.generation(), 1);
        assert_eq!(fs.read_file(p("/d/f"))?, b"abc");
        for r in [f.len().map(drop), f.write_at(b"x", 0), f.sync_data(), f.read_at(&mut buf, 0).map(drop)] {
            let e = r.err().map(|e| e.to_string());
            assert_eq!(e.as_deref(), Some("simulated crash: handle from before the crash"));
        }
        Ok(())
    }

    #[test]
    fn crash_after_stops_everything() -> io::Result<()> {
        for k in 0..4u64 {
            let fs = SimFs::new();
            fs.crash_after(k);
            let mut results = Vec::new();
            for i in 0..6 {
                results.push(fs.create_dir_all(Path::new(&format!("/d{i}"))).is_ok());
            }
            let expected: Vec<bool> = (0..6).map(|i| i < k).collect();
            assert_eq!(results, expected, "k={k}");
            assert_eq!(fs.mutating_ops(), k);
            assert!(fs.is_halted());
            assert!(fs.entry_kind(p("/d0")).is_err(), "non-mutating ops fail too");
            fs.crash(CrashMode::LoseUnsynced);
            assert!(!fs.is_halted());
            fs.create_dir_all(p("/x"))?;
        }
        let fs = SimFs::new();
        let f = fs.open(p("/f"), OpenMode::Create)?;
        fs.crash_after(2);
        f.write_at(b"a", 0)?;
        f.write_at(b"b", 1)?;
        assert_eq!(f.len().map_err(|e| e.to_string()), Err("simulated crash".to_owned()));
        Ok(())
    }

    #[test]
    fn fail_nth_fails_once_without_effect() -> io::Result<()> {
        let fs = SimFs::new();
        let f = fs.open(p("/f"), OpenMode::Create)?;
        let before = fs.mutating_ops();
        fs.fail_nth(1, io::ErrorKind::Interrupted);
        f.write_at(b"a", 0)?;
        assert_eq!(kind(f.write_at(b"b", 1)), Some(io::ErrorKind::Interrupted));
        assert_eq!(fs.read_file(p("/f"))?, b"a");
        f.write_at(b"c", 1)?;
        assert_eq!(fs.read_file(p("/f"))?, b"ac");
        assert_eq!(fs.mutating_ops(), before + 2);
        fs.fail_nth(0, io::ErrorKind::PermissionDenied);
        assert_eq!(kind(fs.rename(p("/f"), p("/g"))), Some(io::ErrorKind::PermissionDenied));
        assert!(fs.exists(p("/f")) && !fs.exists(p("/g")));
        // Errors from validation do not consume the fault.
        fs.fail_nth(0, io::ErrorKind::Other);
        assert_eq!(kind(fs.remove_file(p("/nope"))), Some(io::ErrorKind::NotFound));
        assert_eq!(kind(fs.remove_file(p("/f"))), Some(io::ErrorKind::Other));
        fs.remove_file(p("/f"))?;
        Ok(())
    }

    #[test]
    fn capacity_gives_storage_full() -> io::Result<()> {
        let fs = SimFs::new();
        fs.set_capacity(Some(10));
        let a = fs.open(p("/a"), OpenMode::Create)?;
        let b = fs.open(p("/b"), OpenMode::Create)?;
        a.write_at(b"123456", 0)?;
        assert_eq!(kind(b.write_at(b"12345", 0)), Some(io::ErrorKind::StorageFull));
        assert_eq!(kind(b.allocate(5)), Some(io::ErrorKind::StorageFull));
        assert_eq!(kind(b.set_len(5)), Some(io::ErrorKind::StorageFull));
        assert_eq!(fs.file_len(p("/b"))?, 0);
        b.allocate(4)?;
        a.write_at(b"xy", 0)?; // overwriting does not grow
        // An unlinked file still uses space while open.
        fs.remove_file(p("/a"))?;
        assert_eq!(kind(b.set_len(5)), Some(io::ErrorKind::StorageFull));
        drop(a);
        b.set_len(10)?;
        Ok(())
    }

    #[test]
    fn lock_is_exclusive_and_released() -> io::Result<()> {
        let fs = SimFs::new();
        let g = fs.lock(p("/lock"))?;
        assert!(fs.exists(p("/lock")));
        assert_eq!(kind(fs.lock(p("/lock"))), Some(io::ErrorKind::WouldBlock));
        assert_eq!(kind(fs.lock(p("lock"))), Some(io::ErrorKind::WouldBlock));
        let other = fs.lock(p("/other"))?;
        drop(g);
        let g2 = fs.lock(p("/lock"))?;
        fs.crash(CrashMode::LoseUnsynced);
        let _g3 = fs.lock(p("/lock"))?;
        drop(g2); // a stale guard must not release the new lock
        drop(other);
        assert_eq!(kind(fs.lock(p("/lock"))), Some(io::ErrorKind::WouldBlock));
        Ok(())
    }

    #[test]
    fn torn_prefix_keeps_a_prefix() -> io::Result<()> {
        let pending: &[&[u8]] = &[b"cd", b"efg", b"h", b"ijklmnop"];
        let all: Vec<u8> = pending.concat();
        let mut lens = BTreeSet::new();
        for seed in 0..64 {
            let fs = SimFs::new();
            fs.write_file(p("/f"), b"AB")?;
            let f = fs.open(p("/f"), OpenMode::Write)?;
            let mut pos = 2;
            for w in pending {
                f.write_at(w, pos)?;
                pos += w.len() as u64;
            }
            fs.crash(CrashMode::TornPrefix { seed });
            let got = fs.read_file(p("/f"))?;
            assert!(got.starts_with(b"AB"), "seed {seed}: {got:?}");
            let rest = got.get(2..).unwrap_or_default();
            assert!(all.starts_with(rest), "seed {seed}: {got:?}");
            lens.insert(rest.len());
        }
        // The outcomes vary, including a torn write (a length no write boundary matches).
        assert!(lens.len() >= 5, "{lens:?}");
        assert!(lens.iter().any(|l| ![0, 2, 5, 6, 14].contains(l)), "{lens:?}");
        Ok(())
    }

    #[test]
    fn garbage_tears_with_other_bytes() -> io::Result<()> {
        let mut saw_garbage = false;
        for seed in 0..64 {
            let fs = SimFs::new();
            fs.write_file(p("/f"), b"AB")?;
            let f = fs.open(p("/f"), OpenMode::Write)?;
            f.write_at(&[7u8; 32], 2)?;
            fs.crash(CrashMode::Garbage { seed });
            let got = fs.read_file(p("/f"))?;
            assert!(got.starts_with(b"AB") && got.len() <= 34, "seed {seed}: {got:?}");
            saw_garbage |= got.len() > 2 && got.len() < 34 && got.iter().skip(2).any(|&b| b != 7);
        }
        assert!(saw_garbage);
        Ok(())
    }

    #[test]
    fn namespace_ops() -> io::Result<()> {
        let sim = SimFs::new();
        let fs: Fs = sim.clone();
        fs.create_dir_all(p("/a/b"))?;
        fs.open(p("/a/b/f"), OpenMode::CreateNew)?.write_at(b"1", 0)?;
        assert_eq!(kind(fs.open(p("/a/b/f"), OpenMode::CreateNew)), Some(io::ErrorKind::AlreadyExists));
        assert_eq!(kind(fs.open(p("/a/x"), OpenMode::Read)), Some(io::ErrorKind::NotFound));
        assert_eq!(kind(fs.open(p("/a"), OpenMode::Read)), Some(io::ErrorKind::IsADirectory));
        sim.symlink(p("/a/b/f"), p("/a/link"))?;
        assert!(fs.open(p("/a/link"), OpenMode::Read).is_err());
        assert!(fs.open(p("/a/link"), OpenMode::Create).is_err());
        let mut names: Vec<_> = fs.read_dir(p("/a"))?.into_iter().map(|e| (e.name, e.kind)).collect();
        names.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(names, vec![("b".into(), EntryKind::Dir), ("link".into(), EntryKind::Symlink)]);
        assert_eq!(fs.entry_kind(p("/a/nope"))?, None);
        assert_eq!(fs.entry_kind(p("/nope/nope"))?, None);
        assert_eq!(fs.entry_kind(p("./a/b/f"))?, Some(EntryKind::File));
        assert!(fs.entry_kind(p("/a/../a")).is_err());
        assert_eq!(kind(fs.rename(p("/a"), p("/a/b/c"))), Some(io::ErrorKind::InvalidInput));
        fs.rename(p("/a/b"), p("/c"))?;
        assert_eq!(sim.read_file(p("/c/f"))?, b"1");
        fs.remove_dir_all(p("/c"))?;
        assert!(!sim.exists(p("/c/f")));
        let ops = sim.mutating_ops();
        fs.create_dir_all(p("/a"))?;
        assert_eq!(sim.mutating_ops(), ops, "creating nothing is not a mutation");
        Ok(())
    }
}
