//! Injected faults and resource limits: failed fsync and write (poisoning), a full disk
//! (simulated and a real tmpfs), the directory lock (same process and another process), and
//! group commit under concurrent `EveryAppend` appends.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use partlog::fs::sim::SimFs;
use partlog::{Durability, Error, ManualClock, Partition, Record, StoredRecord, TopicConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const T0: i64 = 1_700_000_000_000;
const DIR: &str = "/p";

fn key_of(i: u64) -> Vec<u8> {
    format!("key-{}", i % 7).into_bytes()
}

/// The value of the `i`-th record appended in a test.
fn value_of(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i}:").into_bytes();
    v.resize(v.len() + (i as usize * 13) % 40, b'a' + (i % 26) as u8);
    v
}

fn append_nth(p: &Partition, i: u64) -> Result<partlog::AppendInfo, Error> {
    let (k, v) = (key_of(i), value_of(i));
    p.append(Record::new().key(&k).value(&v).timestamp(T0 + i as i64)).map(Into::into)
}

fn sim_open(fs: &Arc<SimFs>, cfg: &TopicConfig) -> Result<Partition, Error> {
    Partition::options().fs(fs.clone()).clock(ManualClock::new(T0)).config(cfg.clone()).open(DIR)
}

fn read_all(p: &Partition) -> Result<Vec<StoredRecord>, Error> {
    p.iter(p.log_start_offset()).collect()
}

/// Checks that the log holds exactly records `0..n` as [`append_nth`] wrote them.
fn assert_records(p: &Partition, n: u64, ctx: &str) -> TestResult {
    let got = read_all(p)?;
    assert_eq!(got.len() as u64, n, "{ctx}: record count");
    for (i, r) in got.iter().enumerate() {
        let i = i as u64;
        assert_eq!(r.offset, i, "{ctx}: offsets are dense");
        assert_eq!(r.key.as_deref(), Some(&key_of(i)[..]), "{ctx}: key at {i}");
        assert_eq!(r.value.as_deref(), Some(&value_of(i)[..]), "{ctx}: value at {i}");
        assert_eq!(r.timestamp, T0 + i as i64, "{ctx}: timestamp at {i}");
    }
    assert_eq!(p.log_end_offset(), n, "{ctx}: next offset");
    Ok(())
}

fn assert_poisoned<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    assert!(matches!(r, Err(Error::Poisoned { .. })), "{what} on a poisoned partition gave {r:?}");
}

/// Mutating operations one more steady-state append makes, measured on a twin file system
/// (same config, same history), so a fault can be aimed at one of them.
fn ops_per_append(cfg: &TopicConfig, warmup: u64) -> Result<u64, Error> {
    let fs = SimFs::new();
    let p = sim_open(&fs, cfg)?;
    for i in 0..warmup {
        append_nth(&p, i)?;
    }
    let before = fs.mutating_ops();
    append_nth(&p, warmup)?;
    Ok(fs.mutating_ops() - before)
}

fn big_segments(d: Durability) -> TopicConfig {
    TopicConfig::default().segment_bytes(1 << 20).durability(d)
}

/// Poisoned partition behaviour shared by the fsync and write tests: every write-side call
/// fails with `Poisoned`, reads of acknowledged data still work.
fn check_poisoned_but_readable(p: &Partition, acked: u64) -> TestResult {
    assert_poisoned(append_nth(p, acked), "append");
    assert_poisoned(p.append_batch(&[Record::with_value("a"), Record::with_value("b")]), "append_batch");
    assert_poisoned(p.sync(), "sync");
    assert_poisoned(p.flush(), "flush");
    assert_poisoned(p.truncate_to(0), "truncate_to");
    assert_poisoned(p.advance_log_start(1), "advance_log_start");
    // Reads of what was acknowledged still work.
    let got: Vec<StoredRecord> = p.iter(0).take(acked as usize).collect::<Result<_, _>>()?;
    assert_eq!(got.len() as u64, acked);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.value.as_deref(), Some(&value_of(i as u64)[..]), "read of {i} after poisoning");
    }
    Ok(())
}

/// After the poisoned handle is dropped, a reopen (no crash) has every acknowledged record,
/// possibly the one whose append failed, and takes appends again at the next offset.
fn check_reopen_after_poison(fs: &Arc<SimFs>, cfg: &TopicConfig, acked: u64, maybe_one_more: bool) -> TestResult {
    let p = sim_open(fs, cfg)?;
    let n = p.log_end_offset();
    assert!(n == acked || (maybe_one_more && n == acked + 1), "reopened log ends at {n}, acknowledged {acked}");
    assert_records(&p, n, "after reopen")?;
    let info = append_nth(&p, n)?;
    assert_eq!(info.base_offset, n, "append after reopen");
    p.close()?;
    let p = sim_open(fs, cfg)?;
    assert_records(&p, n + 1, "after close and reopen")?;
    Ok(())
}

/// A failed fsync inside an `EveryAppend` append poisons the partition.
#[test]
fn failed_fsync_in_append_poisons() -> TestResult {
    let cfg = big_segments(Durability::EveryAppend);
    let warmup = 5;
    // The fsync is the last operation of an `EveryAppend` append (it must not return before).
    let per_append = ops_per_append(&cfg, warmup)?;
    assert!(per_append >= 2, "an EveryAppend append makes at least a write and an fsync, saw {per_append} ops");
    let fs = SimFs::new();
    let p = sim_open(&fs, &cfg)?;
    for i in 0..warmup {
        assert_eq!(append_nth(&p, i)?.base_offset, i);
    }
    fs.fail_nth(per_append - 1, ErrorKind::Other);
    let r = append_nth(&p, warmup);
    assert!(matches!(r, Err(Error::Io { .. })), "append whose fsync failed gave {r:?}");
    check_poisoned_but_readable(&p, warmup)?;
    drop(p);
    // The failed append's bytes were written before the fsync: they may be there.
    check_reopen_after_poison(&fs, &cfg, warmup, true)
}

/// A failed explicit `sync()` (with `Durability::Os`) poisons the partition too.
#[test]
fn failed_explicit_sync_poisons() -> TestResult {
    let cfg = big_segments(Durability::Os);
    let fs = SimFs::new();
    let p = sim_open(&fs, &cfg)?;
    for i in 0..4 {
        append_nth(&p, i)?;
    }
    let before = fs.mutating_ops();
    fs.fail_nth(0, ErrorKind::Other);
    let r = p.sync();
    assert!(matches!(r, Err(Error::Io { .. })), "sync whose fsync failed gave {r:?}");
    assert_eq!(fs.mutating_ops(), before, "the sync's only operation was the failed fsync");
    check_poisoned_but_readable(&p, 4)?;
    drop(p);
    check_reopen_after_poison(&fs, &cfg, 4, false)
}

/// A failed write poisons the partition; the failed append leaves nothing behind.
#[test]
fn failed_write_poisons() -> TestResult {
    let cfg = big_segments(Durability::Os);
    let warmup = 5;
    // With `Durability::Os` and room in the preallocated segment, an append is one write.
    assert_eq!(ops_per_append(&cfg, warmup)?, 1, "a steady-state Os append should be a single write");
    let fs = SimFs::new();
    let p = sim_open(&fs, &cfg)?;
    for i in 0..warmup {
        append_nth(&p, i)?;
    }
    fs.fail_nth(0, ErrorKind::Other);
    let r = append_nth(&p, warmup);
    assert!(matches!(r, Err(Error::Io { .. })), "append whose write failed gave {r:?}");
    assert_eq!(p.log_end_offset(), warmup, "a failed write must not advance the log end");
    check_poisoned_but_readable(&p, warmup)?;
    drop(p);
    check_reopen_after_poison(&fs, &cfg, warmup, false)
}

// ---------------------------------------------------------------------------------------------
// Disk full.

/// A full disk fails an append with `StorageFull`, changes nothing and does not poison. The
/// preallocation step never makes a disk look full early: when a step does not fit, the
/// append reserves just what it needs, so the disk fills to the last record, and after space
/// is freed the same append succeeds at the next offset.
#[test]
fn storage_full_on_preallocation_does_not_poison() -> TestResult {
    let cfg = TopicConfig::default().segment_bytes(64 << 10).durability(Durability::EveryAppend);
    let fs = SimFs::new();
    let p = sim_open(&fs, &cfg)?;
    // Far less than one preallocation step (64 KiB), room for a few dozen records.
    fs.set_capacity(Some(fs.used_bytes() + (4 << 10)));
    let mut n = 0;
    let err = loop {
        match append_nth(&p, n) {
            Ok(info) => {
                assert_eq!(info.base_offset, n);
                n += 1;
            }
            Err(e) => break e,
        }
        assert!(n < 1_000, "a 4 KiB disk never filled");
    };
    assert!(matches!(err, Error::StorageFull { .. }), "{err:?}");
    assert!(n >= 20, "only {n} appends fit in 4 KiB: the reservation asked for more than the appends needed");
    for attempt in 0..3 {
        let r = append_nth(&p, n);
        assert!(matches!(r, Err(Error::StorageFull { .. })), "attempt {attempt}: {r:?}");
        assert_eq!(p.log_end_offset(), n);
        assert!(p.flush().is_ok(), "a failed preallocation must not poison");
    }
    fs.set_capacity(None);
    for i in n..n + 10 {
        assert_eq!(append_nth(&p, i)?.base_offset, i);
    }
    p.close()?;
    let p = sim_open(&fs, &cfg)?;
    assert_records(&p, n + 10, "after reopen")?;
    Ok(())
}

/// Fill the simulated disk at many different points (rolls included): appends fail with
/// `StorageFull`, the partition keeps working once space is freed, with dense offsets, and
/// everything acknowledged is there after close and reopen.
fn storage_full_sweep(caps: impl Iterator<Item = u64>) -> TestResult {
    let cfg = TopicConfig::default().segment_bytes(1024).index_interval_bytes(128).durability(Durability::EveryAppend);
    let mut failures = Vec::new();
    let mut tried = 0;
    for cap in caps {
        let fs = SimFs::new();
        fs.set_capacity(Some(cap));
        let Ok(p) = sim_open(&fs, &cfg) else { continue };
        tried += 1;
        let mut n = 0u64;
        let err = loop {
            match append_nth(&p, n) {
                Ok(info) => {
                    assert_eq!(info.base_offset, n, "cap {cap}: offsets are dense");
                    n += 1;
                }
                Err(e) => break e,
            }
            assert!(n < 10_000, "cap {cap}: the disk never filled");
        };
        let one = || -> Result<(), String> {
            if !matches!(err, Error::StorageFull { .. }) {
                return Err(format!("cap {cap}: append #{n} failed with {err:?}, expected StorageFull"));
            }
            fs.set_capacity(None);
            let info = append_nth(&p, n).map_err(|e| format!("cap {cap}: append #{n} after freeing space: {e:?}"))?;
            if info.base_offset != n {
                return Err(format!(
                    "cap {cap}: append after freeing space got offset {}, expected {n}",
                    info.base_offset
                ));
            }
            p.close().map_err(|e| format!("cap {cap}: close: {e:?}"))?;
            let p = sim_open(&fs, &cfg).map_err(|e| format!("cap {cap}: reopen: {e:?}"))?;
            assert_records(&p, n + 1, &format!("cap {cap}")).map_err(|e| e.to_string())?;
            Ok(())
        };
        if let Err(e) = one() {
            failures.push(e);
        }
    }
    assert!(tried > 10, "only {tried} capacities let the partition open");
    for f in failures.iter().take(6) {
        println!("FAILURE: {f}");
    }
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(format!("{} of {tried} capacities failed; the first: {first}", failures.len()).into()),
    }
}

/// Disk full at any point, including while a segment rolls (sealing writes index files and the
/// checkpoint): `StorageFull` is documented as "nothing written; retry after freeing space".
#[test]

fn storage_full_anywhere_is_retryable() -> TestResult {
    storage_full_sweep((1000..9000).step_by(37))
}

/// Unmounts a tmpfs when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.0).status() {
            Ok(s) if s.success() => {}
            other => eprintln!("umount {} failed: {other:?}", self.0.display()),
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and an owned, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return u64::MAX;
    }
    st.f_bavail as u64 * st.f_frsize as u64
}

/// A real full disk: an 8 MiB tmpfs (needs root; skipped otherwise), with the default
/// configuration (1 GiB segments, far larger than the disk) and with 16 MiB segments. Appends
/// fail with `StorageFull` only once the disk is really full, and work again as soon as a
/// little space is freed.
#[test]
fn storage_full_on_real_tmpfs() -> TestResult {
    if !is_root() {
        println!("SKIP: storage_full_on_real_tmpfs needs root to mount a tmpfs");
        return Ok(());
    }
    for cfg in [TopicConfig::default(), TopicConfig::default().segment_bytes(16 << 20)] {
        storage_full_on_tmpfs_with(cfg)?;
    }
    Ok(())
}

fn storage_full_on_tmpfs_with(cfg: TopicConfig) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt)?;
    let status = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&mnt).status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        println!("SKIP: storage_full_on_real_tmpfs: mount -t tmpfs failed: {status:?}");
        return Ok(());
    }
    let _mount = Mount(mnt.clone());
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![7u8; 256 << 10])?;
    let dir = mnt.join("events-0");
    let mut n = 0u64;
    {
        let p = Partition::open_with(&dir, cfg.clone())?;
        let big = |i: u64| {
            let mut v = value_of(i);
            v.resize(2000, b'z');
            v
        };
        let err = loop {
            let v = big(n);
            match p.append(Record::new().key(key_of(n)).value(&v).timestamp(T0 + n as i64)) {
                Ok(info) => {
                    assert_eq!(info.offset, n);
                    n += 1;
                }
                Err(e) => break e,
            }
            assert!(n < 10_000, "an 8 MiB tmpfs never filled");
        };
        assert!(matches!(err, Error::StorageFull { .. }), "append #{n} on a full disk gave {err:?}");
        let free = free_bytes(&mnt);
        assert!(free < 64 << 10, "StorageFull with {free} bytes still free ({cfg:?})");
        assert!(n > 3_000, "only {n} appends of 2 KB fit in 8 MiB");
        // Freeing a quarter of a MiB lets about a hundred more records in, at once.
        std::fs::remove_file(&ballast)?;
        for _ in 0..100 {
            let v = big(n);
            let info = p.append(Record::new().key(key_of(n)).value(&v).timestamp(T0 + n as i64))?;
            assert_eq!(info.offset, n, "append after freeing space");
            n += 1;
        }
        p.close()?;
    }
    let p = Partition::open_with(&dir, cfg.clone())?;
    let got = read_all(&p)?;
    assert_eq!(got.len() as u64, n);
    for (i, r) in got.iter().enumerate() {
        let i = i as u64;
        assert_eq!(r.offset, i);
        assert!(r.value.as_deref().is_some_and(|v| v.starts_with(&value_of(i)) && v.len() == 2000), "value at {i}");
    }
    p.close()?;
    drop(p);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The directory lock.

/// A second open of an open partition fails with `Locked`, in the same process, on the real
/// file system and on the simulated one; dropping the first handle releases it.
#[test]
fn second_open_in_same_process_is_locked() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("t-0");
    let p = Partition::open(&dir)?;
    let clone = p.clone();
    let r = Partition::open(&dir);
    assert!(matches!(r, Err(Error::Locked { .. })), "second open gave {r:?}");
    drop(p);
    let r = Partition::open(&dir);
    assert!(matches!(r, Err(Error::Locked { .. })), "a live clone still holds the lock, got {r:?}");
    drop(clone);
    let p = Partition::open(&dir)?;
    p.close()?;
    // close() releases the lock once the handles are gone.
    drop(p);
    Partition::open(&dir)?.close()?;

    let fs = SimFs::new();
    let cfg = TopicConfig::default();
    let p = sim_open(&fs, &cfg)?;
    assert!(matches!(sim_open(&fs, &cfg), Err(Error::Locked { .. })));
    drop(p);
    sim_open(&fs, &cfg)?;
    Ok(())
}

const ENV_LOCK_DIR: &str = "PARTLOG_LOCK_HOLDER_DIR";

/// Child process for `second_open_in_other_process_is_locked`: holds the partition open until
/// it reads a line on stdin. Does nothing unless `PARTLOG_LOCK_HOLDER_DIR` is set.
#[test]
#[ignore = "child process of second_open_in_other_process_is_locked"]
fn child_lock_holder() -> TestResult {
    let Ok(dir) = std::env::var(ENV_LOCK_DIR) else { return Ok(()) };
    let p = Partition::open(&dir)?;
    append_nth(&p, 0)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nLOCKED")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    p.close()?;
    Ok(())
}

/// A partition held open by another process cannot be opened (`Locked`) until that process
/// lets go.
#[test]
fn second_open_in_other_process_is_locked() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("t-0");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["child_lock_holder", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_LOCK_DIR, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            let status = child.wait()?;
            return Err(format!("the child exited before taking the lock: {status:?}").into());
        }
        if line.trim_end() == "LOCKED" {
            break;
        }
    }
    let r = Partition::open(&dir);
    let locked = matches!(r, Err(Error::Locked { .. }));
    // Let the child go whatever happened, then judge.
    let mut stdin = child.stdin.take().ok_or("no child stdin")?;
    writeln!(stdin)?;
    drop(stdin);
    let status = child.wait()?;
    assert!(locked, "open while another process holds the partition gave {r:?}");
    assert!(status.success(), "the lock holder failed: {status:?}");
    let p = Partition::open(&dir)?;
    assert_eq!(p.log_end_offset(), 1, "the child's record");
    p.close()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Group commit.

/// 8 threads append 200 records each with `EveryAppend` on the real file system: offsets are
/// unique and dense, increasing per thread, and every record is where its append said.
#[test]
fn group_commit_concurrent_appends() -> TestResult {
    const THREADS: u64 = 8;
    const PER: u64 = 200;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("gc-0");
    let cfg = TopicConfig::default().segment_bytes(64 << 10).durability(Durability::EveryAppend);
    let p = Partition::open_with(&dir, cfg.clone())?;
    let value = |t: u64, i: u64| format!("thread-{t}-record-{i}").into_bytes();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || -> Result<Vec<u64>, Error> {
                (0..PER)
                    .map(|i| {
                        let v = value(t, i);
                        let info = p.append(Record::new().key(format!("t{t}")).value(&v))?;
                        assert_eq!(info.partition, 0);
                        Ok(info.offset)
                    })
                    .collect()
            })
        })
        .collect();
    let mut by_thread = Vec::new();
    for h in handles {
        by_thread.push(h.join().map_err(|_| "appender thread panicked")??);
    }
    let mut all: Vec<u64> = by_thread.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..THREADS * PER).collect::<Vec<_>>(), "offsets must be unique and dense");
    for (t, offs) in by_thread.iter().enumerate() {
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "thread {t}'s offsets must increase");
    }
    p.close()?;
    drop(p);
    let p = Partition::open_with(&dir, cfg.clone())?;
    let got = read_all(&p)?;
    assert_eq!(got.len() as u64, THREADS * PER);
    for (t, offs) in by_thread.iter().enumerate() {
        for (i, &o) in offs.iter().enumerate() {
            let r = &got[o as usize];
            assert_eq!(r.offset, o);
            assert_eq!(r.value.as_deref(), Some(&value(t as u64, i as u64)[..]), "record at {o}");
            assert_eq!(r.key.as_deref(), Some(format!("t{t}").as_bytes()));
        }
    }
    Ok(())
}
