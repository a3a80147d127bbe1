//! Read-only access (`LogDir::open_read_only`, `Partition::open_read_only`, `Follower`) and the
//! public `Segment` handle, in one process: the writer and the reader share nothing but the
//! directory, as they would across processes (the cross-process test is `readonly_live.rs`).
//!
//! Expected records come from what each test appended (keys and values derived from offsets),
//! never from the reader itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use partlog::{
    ConsumerConfig, CorruptKind, Error, FollowEvent, Follower, LogDir, OffsetReset, Partition, Record, StoredRecord,
    TopicConfig, TopicPartition,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn value_for(offset: u64) -> Vec<u8> {
    format!("value-{offset:06}").into_bytes()
}

fn key_for(offset: u64, keys: u64) -> Vec<u8> {
    format!("key-{}", offset % keys).into_bytes()
}

/// Appends `n` single-record batches keyed `offset % keys`; returns the end offset.
fn fill(p: &Partition, n: u64, keys: u64) -> Result<u64, Error> {
    for _ in 0..n {
        let o = p.log_end_offset();
        p.append(Record::new().key(key_for(o, keys)).value(value_for(o)).timestamp(1_000 + o as i64))?;
    }
    Ok(p.log_end_offset())
}

fn small() -> TopicConfig {
    TopicConfig::default().segment_bytes(1024).index_interval_bytes(128)
}

/// Every file under `dir` with its length, modification time and contents.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list") {
            let e = e.expect("entry");
            let m = std::fs::symlink_metadata(e.path()).expect("stat");
            if m.is_dir() {
                stack.push(e.path());
                out.insert(format!("{}/", e.path().display()), (0, m.modified().expect("mtime"), Vec::new()));
            } else {
                let bytes = std::fs::read(e.path()).expect("read");
                out.insert(e.path().display().to_string(), (m.len(), m.modified().expect("mtime"), bytes));
            }
        }
    }
    out
}

fn read_all_ro(p: &partlog::ReadOnlyPartition) -> Result<Vec<StoredRecord>, Error> {
    p.iter(p.log_start_offset()?).collect()
}

#[test]
fn reads_a_partition_while_the_writer_holds_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open_with(&path, small())?;
    let end = fill(&w, 300, 1_000)?;
    assert!(w.segments().len() > 5, "the test needs several segments");
    // The writer still holds the lock: a second writer is refused, a reader is not.
    assert!(matches!(Partition::open(&path), Err(Error::Locked { .. })));
    let r = Partition::open_read_only(&path)?;
    assert_eq!((r.log_start_offset()?, r.log_end_offset()?), (0, end));
    let all = read_all_ro(&r)?;
    assert_eq!(all.len() as u64, end);
    for (i, rec) in all.iter().enumerate() {
        assert_eq!(rec.offset, i as u64);
        assert_eq!(rec.value.as_deref(), Some(&value_for(i as u64)[..]));
    }
    // Reads from the middle, by offset and by timestamp.
    let mid = r.read(123, 1)?;
    assert_eq!(mid.iter().next().map(|x| x.offset()), Some(123));
    assert_eq!(r.offset_for_timestamp(1_000 + 200)?.map(|t| t.offset), Some(200));
    assert_eq!(r.offset_for_timestamp(1_000_000)?, None);
    // Appends after the open are seen, across rolls.
    let end2 = fill(&w, 100, 1_000)?;
    assert_eq!(r.log_end_offset()?, end2);
    assert_eq!(read_all_ro(&r)?.len() as u64, end2);
    // Out of range, as the writer's read.
    assert!(
        matches!(r.read(end2 + 1, 1), Err(Error::OffsetOutOfRange { requested, end, .. }) if requested == end2 + 1 && end == end2)
    );
    assert!(r.read(end2, 1)?.is_empty());
    // The summaries agree with the writer's.
    let ws = w.segments();
    let rs = r.segments()?;
    assert_eq!(ws.len(), rs.len());
    for (a, b) in ws.iter().zip(&rs) {
        assert_eq!(
            (a.base_offset, a.end_offset, a.size, a.record_count),
            (b.base_offset, b.end_offset, b.size, b.record_count)
        );
        assert_eq!((a.first_timestamp, a.max_timestamp, a.active), (b.first_timestamp, b.max_timestamp, b.active));
    }
    w.close()?;
    Ok(())
}

#[test]
fn a_reader_writes_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("data");
    {
        let dir = LogDir::open(&path)?;
        let t = dir.create_topic("t", small().partitions(2))?;
        for i in 0..200u64 {
            t.append_to((i % 2) as u32, Record::new().key(key_for(i, 7)).value(value_for(i)))?;
        }
        // Leave a crashed-looking state behind too: a stale temp file and a torn tail.
        dir.close()?;
    }
    let part0 = path.join("topics/t/0");
    let mut logs: Vec<_> = std::fs::read_dir(&part0)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let mut f = std::fs::OpenOptions::new().append(true).open(logs.last().ok_or("no segment")?)?;
    std::io::Write::write_all(&mut f, &[0x55; 40])?;
    drop(f);
    std::fs::write(path.join("topics/t/1/partition.checkpoint.tmp"), b"junk")?;
    let before = snapshot(&path);
    let ro = LogDir::open_read_only(&path)?;
    assert_eq!(ro.topics()?, ["t"]);
    let d = ro.describe_topic("t")?;
    assert_eq!(d.partitions.iter().map(|p| p.log_end_offset).sum::<u64>(), 200);
    for p in ro.topic("t")?.partitions() {
        assert_eq!(read_all_ro(p)?.len(), 100);
        for s in p.segments()? {
            assert!(p.segment(s.base_offset)?.verify()?.is_ok());
        }
        let mut f = Follower::new();
        f.add(p, 0)?;
        assert!(f.poll(Duration::from_millis(5))?.is_some());
    }
    assert_eq!(ro.list_groups()?, Vec::<String>::new());
    drop(ro);
    assert_eq!(before, snapshot(&path), "a read-only reader changed the directory");
    Ok(())
}

#[test]
fn refuses_what_is_not_a_log_dir() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let missing = tmp.path().join("missing");
    assert!(matches!(LogDir::open_read_only(&missing), Err(Error::NotALogDir { .. })));
    assert!(!missing.exists(), "a read-only open created the directory");
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign)?;
    std::fs::write(foreign.join("notes.txt"), b"hi")?;
    assert!(matches!(LogDir::open_read_only(&foreign), Err(Error::NotALogDir { .. })));
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x")?;
    assert!(matches!(Partition::open_read_only(&file), Err(Error::NotALogDir { .. })));
    let dir = LogDir::open(tmp.path().join("ok"))?;
    dir.create_topic("t", TopicConfig::default())?;
    let ro = LogDir::open_read_only(dir.path())?;
    assert!(matches!(ro.topic("nope"), Err(Error::TopicNotFound { .. })));
    assert!(matches!(ro.topic("t")?.partition(1), Err(Error::PartitionNotFound { .. })));
    assert!(matches!(ro.describe_group("g"), Err(Error::GroupNotFound { .. })));
    Ok(())
}

/// A batch half copied into the preallocated tail is the end, not an error; once complete it
/// is read.
#[test]
fn a_torn_tail_is_the_current_end() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open(&path)?;
    fill(&w, 10, 100)?;
    w.close()?;
    let log = path.join("00000000000000000000.log");
    let good = std::fs::read(&log)?;
    // The next batch, as the writer would write it: append it in a scratch copy.
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch)?;
    std::fs::write(scratch.join("00000000000000000000.log"), &good)?;
    let s = Partition::open(&scratch)?;
    s.append(Record::new().key("k").value("the eleventh").timestamp(1_010))?;
    s.close()?;
    let full = std::fs::read(scratch.join("00000000000000000000.log"))?;
    let batch = &full[good.len()..];
    let r = Partition::open_read_only(&path)?;
    for cut in [1, 4, 30, 67, 68, 69, batch.len() / 2, batch.len() - 1] {
        if batch[cut..].iter().all(|&b| b == 0) {
            // What is missing is zeros, which the preallocated tail already holds: those are
            // the batch's exact bytes, and a reader rightly returns it.
            continue;
        }
        let mut torn = good.clone();
        torn.extend_from_slice(&batch[..cut]);
        torn.resize(good.len() + 4096, 0); // the preallocated zeros after it
        std::fs::write(&log, &torn)?;
        r.invalidate();
        assert_eq!(r.log_end_offset()?, 10, "cut at {cut}");
        assert_eq!(read_all_ro(&r)?.len(), 10, "cut at {cut}");
    }
    let mut whole = good.clone();
    whole.extend_from_slice(batch);
    whole.resize(good.len() + 4096, 0);
    std::fs::write(&log, &whole)?;
    assert_eq!(r.log_end_offset()?, 11);
    let last = read_all_ro(&r)?.pop().ok_or("no records")?;
    assert_eq!((last.offset, last.value.as_deref()), (10, Some(&b"the eleventh"[..])));
    Ok(())
}

#[test]
fn retention_under_a_reader_moves_it_forward_never_errors() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open_with(&path, small().retention_bytes(Some(4096)))?;
    let end = fill(&w, 200, 1_000)?;
    let r = Partition::open_read_only(&path)?;
    let first = r.read(0, 1)?; // opens the first segment and holds it
    assert_eq!(first.iter().next().map(|x| x.offset()), Some(0));
    let mut f = Follower::new();
    f.add(&r, 0)?;
    let report = w.run_retention()?;
    assert!(report.segments_deleted > 0);
    let start = w.log_start_offset();
    assert!(start > 0);
    assert_eq!(r.log_start_offset()?, start);
    assert!(matches!(r.read(0, 1), Err(Error::OffsetOutOfRange { start: s, .. }) if s == start));
    match f.poll(Duration::from_secs(5))? {
        Some(FollowEvent::Reset { from, to, .. }) => assert_eq!((from, to), (0, start)),
        other => return Err(format!("expected a reset, got {other:?}").into()),
    }
    let mut seen = Vec::new();
    while let Some(ev) = f.poll(Duration::from_millis(20))? {
        match ev {
            FollowEvent::Records { records, .. } => seen.extend(records.iter().map(|x| x.offset())),
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    assert_eq!(seen, (start..end).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn compaction_under_a_reader_leaves_only_legal_gaps() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let keys = 10;
    let w = Partition::open_with(
        &path,
        small().set("cleanup.policy", "compact")?.set("min.cleanable.dirty.ratio", "0.01")?,
    )?;
    fill(&w, 150, keys)?;
    let r = Partition::open_read_only(&path)?;
    let mut f = Follower::new().max_bytes(256);
    f.add(&r, 0)?;
    let mut seen: Vec<StoredRecord> = Vec::new();
    // Read a little, compact, read on, append, compact again, read to the end.
    for _ in 0..3 {
        if let Some(FollowEvent::Records { records, .. }) = f.poll(Duration::from_millis(50))? {
            seen.extend(records);
        }
    }
    assert!(w.compact()?.cleaned);
    let end = fill(&w, 150, keys)?;
    while let Some(ev) = f.poll(Duration::from_millis(50))? {
        match ev {
            FollowEvent::Records { records, .. } => seen.extend(records),
            other => return Err(format!("unexpected {other:?}").into()),
        }
        if seen.len().is_multiple_of(40) {
            w.compact()?;
        }
    }
    assert!(seen.windows(2).all(|p| p[0].offset < p[1].offset), "not strictly increasing");
    let got: std::collections::BTreeSet<u64> = seen.iter().map(|x| x.offset).collect();
    for x in &seen {
        assert_eq!(x.key.as_deref(), Some(&key_for(x.offset, keys)[..]), "offset {}", x.offset);
        assert_eq!(x.value.as_deref(), Some(&value_for(x.offset)[..]), "offset {}", x.offset);
    }
    for o in 0..end {
        if !got.contains(&o) {
            assert!(o + keys < end, "offset {o} is missing but no later record has its key");
        }
    }
    // The latest record of every key is there.
    for o in end - keys..end {
        assert!(got.contains(&o), "the latest record of key {} (offset {o}) is missing", o % keys);
    }
    Ok(())
}

#[test]
fn truncation_is_noticed() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open_with(&path, small())?;
    let end = fill(&w, 50, 1_000)?;
    let r = Partition::open_read_only(&path)?;
    assert_eq!(r.log_end_offset()?, end);
    w.truncate_to(20)?;
    w.append(Record::new().key("new").value("after the cut"))?;
    assert_eq!(r.log_end_offset()?, 21);
    assert!(matches!(r.read(end, 1), Err(Error::OffsetOutOfRange { end: 21, .. })));
    let at20 = r.read(20, 1)?;
    assert_eq!(at20.iter().next().and_then(|x| x.value()), Some(&b"after the cut"[..]));
    Ok(())
}

#[test]
fn damage_in_a_sealed_segment_is_reported_with_where() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open_with(&path, small())?;
    fill(&w, 100, 1_000)?;
    let seg = w.segments()[1];
    w.close()?;
    let log = path.join(format!("{:020}.log", seg.base_offset));
    let mut bytes = std::fs::read(&log)?;
    // A byte inside the second batch's records: its CRC no longer matches.
    let first_len = u32::from_le_bytes(bytes[0..4].try_into()?) as usize;
    let at = first_len + 70;
    bytes[at] ^= 0xff;
    std::fs::write(&log, &bytes)?;
    let r = Partition::open_read_only(&path)?;
    // Records before the segment still read; the damaged batch is an error naming the file
    // and the batch's byte position.
    assert_eq!(r.read(0, 1)?.iter().next().map(|x| x.offset()), Some(0));
    let err = r.read(seg.base_offset + 1, 1).expect_err("damaged");
    assert!(
        matches!(&err, Error::Corrupt { path, offset, kind: CorruptKind::BatchChecksum } if *path == log && *offset == first_len as u64),
        "{err:?}"
    );
    let s = r.segment(seg.base_offset)?;
    let mut batches = s.batches();
    assert!(batches.next().ok_or("a batch")?.is_ok());
    assert!(matches!(batches.next(), Some(Err(Error::Corrupt { kind: CorruptKind::BatchChecksum, .. }))));
    assert!(batches.next().is_none());
    let v = s.verify()?;
    assert!(!v.is_ok());
    assert_eq!(v.problems[0].position, first_len as u64);
    assert_eq!(v.problems[0].kind, CorruptKind::BatchChecksum);
    assert!(v.problems[0].message.contains("resume"), "{}", v.problems[0].message);
    assert_eq!(v.batches, seg.record_count - 1, "every other batch checked");
    Ok(())
}

#[test]
fn segment_handles_describe_batches_and_indexes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open_with(&path, small().segment_bytes(8192).set("cleanup.policy", "compact")?)?;
    w.append_batch(&[
        Record::new().key("a").value("1").timestamp(5_000).header("h", "v"),
        Record::new().key("b").value("2").timestamp(4_000),
        Record::new().key("c").tombstone().timestamp(6_000),
    ])?;
    fill(&w, 40, 3)?;
    w.roll()?;
    let first = w.segment(0)?;
    assert!(!first.is_active());
    let b = first.batches().next().ok_or("a batch")??;
    let info = *b.info();
    assert_eq!((info.base_offset, info.last_offset, info.record_count), (0, 2, 3));
    assert_eq!((info.base_timestamp, info.max_timestamp, info.position), (5_000, 6_000, 0));
    assert_eq!(
        (info.codec_name(), info.transactional, info.control, info.delete_horizon),
        ("none", false, false, None)
    );
    assert_eq!(info.size as usize, b.as_bytes().len());
    let recs: Vec<_> = b.records().collect::<Result<_, _>>()?;
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].headers().collect::<Vec<_>>(), [("h", Some(&b"v"[..]))]);
    assert_eq!(recs[2].value(), None);
    let all: Vec<StoredRecord> = first.records().collect::<Result<_, _>>()?;
    assert_eq!(all.len() as u64, first.record_count());
    assert_eq!(first.end_offset(), 43);
    assert!(first.offset_index().len() > 1);
    // Later timestamps are all below the first batch's maximum: one entry, for that batch.
    assert_eq!(first.time_index().entries().map(|e| (e.timestamp, e.offset)).collect::<Vec<_>>(), [(6_000, 0)]);
    assert!(first.verify()?.is_ok());
    // After compaction, the rewritten batch carries a delete horizon for its tombstone.
    w.compact()?;
    let again = w.segment(0)?;
    let horizons: Vec<Option<i64>> =
        again.batches().map(|b| b.map(|b| b.info().delete_horizon)).collect::<Result<_, _>>()?;
    assert!(horizons.iter().any(Option::is_some), "{horizons:?}");
    assert!(again.verify()?.is_ok());
    // The read-only view of the same segment agrees.
    let r = Partition::open_read_only(&path)?;
    let ro = r.segment(0)?;
    assert_eq!(
        (ro.end_offset(), ro.record_count(), ro.size()),
        (again.end_offset(), again.record_count(), again.size())
    );
    assert!(ro.verify()?.is_ok());
    // The active segment, from both sides.
    let active = *w.segments().last().ok_or("segments")?;
    w.append(Record::new().key("z").value("last"))?;
    let wa = w.segment(active.base_offset)?;
    assert!(wa.is_active() && wa.verify()?.is_ok());
    let ra = r.segment(active.base_offset)?;
    assert!(ra.is_active() && ra.verify()?.is_ok());
    assert_eq!(ra.records().count(), wa.records().count());
    assert!(matches!(w.segment(12_345), Err(Error::OffsetOutOfRange { .. })));
    Ok(())
}

#[test]
fn index_damage_is_found_by_verify() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open_with(&path, small())?;
    fill(&w, 60, 1_000)?;
    w.roll()?;
    w.close()?;
    // An index entry pointing into the middle of a batch, with its checksums made right: the
    // file passes its own checks, but not against the log.
    let idx = path.join("00000000000000000000.index");
    let mut b = std::fs::read(&idx)?;
    let entry = 80; // the first entry: relative offset, then position
    let pos = u32::from_le_bytes(b[entry + 4..entry + 8].try_into()?);
    b[entry + 4..entry + 8].copy_from_slice(&(pos + 3).to_le_bytes());
    let body_crc = crc32fast::hash(&b[80..]);
    b[68..72].copy_from_slice(&body_crc.to_le_bytes());
    let head_crc = crc32fast::hash(&b[..76]);
    b[76..80].copy_from_slice(&head_crc.to_le_bytes());
    std::fs::write(&idx, &b)?;
    let r = Partition::open_read_only(&path)?;
    let v = r.segment(0)?.verify()?;
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert_eq!(v.problems[0].kind, CorruptKind::Metadata);
    assert_eq!(v.problems[0].file, idx);
    // Reads still work: an index entry that does not match its batch is not trusted.
    assert_eq!(read_all_ro(&r)?.len(), 60);
    Ok(())
}

#[test]
fn groups_are_visible_read_only() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(2))?;
    for i in 0..10u64 {
        t.append_to((i % 2) as u32, Record::with_value(value_for(i)))?;
    }
    let mut c = dir.consumer(ConsumerConfig::new().group_id("g").auto_offset_reset(OffsetReset::Earliest))?;
    c.assign(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)])?;
    c.commit_offsets(&[(TopicPartition::new("t", 0), partlog::OffsetAndMetadata::new(3))])?;
    let ro = LogDir::open_read_only(dir.path())?;
    assert_eq!(ro.list_groups()?, ["g"]);
    let d = ro.describe_group("g")?;
    assert_eq!(d.partitions.len(), 1);
    let p = &d.partitions[0];
    assert_eq!(
        (p.partition.partition, p.committed.as_ref().map(|c| c.offset), p.log_end_offset, p.lag),
        (0, Some(3), 5, 2)
    );
    assert!(d.members.is_empty());
    Ok(())
}

/// A follower in the same process as the writer, waiting on another thread: every append
/// reaches it, once, in order. (Latency is measured across processes in `readonly_live.rs`.)
#[test]
fn follower_sees_each_append() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open_with(&path, small())?;
    let r = Partition::open_read_only(&path)?;
    let mut f = r.follow(0)?;
    let n = 300u64;
    let reader = std::thread::spawn(move || -> Result<Vec<u64>, String> {
        let mut seen = Vec::new();
        while (seen.len() as u64) < n {
            match f.poll(Duration::from_secs(30)).map_err(|e| e.to_string())? {
                Some(FollowEvent::Records { records, .. }) => seen.extend(records.iter().map(|x| x.offset())),
                other => return Err(format!("{other:?}")),
            }
        }
        Ok(seen)
    });
    for i in 0..n {
        w.append(Record::new().value(value_for(i)))?;
        if i.is_multiple_of(25) {
            std::thread::sleep(Duration::from_millis(15)); // let the poll interval grow
        }
    }
    let seen = reader.join().map_err(|_| "reader panicked")??;
    assert_eq!(seen, (0..n).collect::<Vec<_>>());
    Ok(())
}

/// A sealed segment without index files is scanned; damage in it is still an error for reads
/// and shown whole by its `Segment`, while listing the segments does not fail.
#[test]
fn damage_in_an_unindexed_sealed_segment() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("p");
    let w = Partition::open_with(&path, small())?;
    fill(&w, 100, 1_000)?;
    let seg = w.segments()[2];
    w.close()?;
    std::fs::remove_file(path.join(format!("{:020}.index", seg.base_offset)))?;
    std::fs::remove_file(path.join(format!("{:020}.timeindex", seg.base_offset)))?;
    let log = path.join(format!("{:020}.log", seg.base_offset));
    let mut bytes = std::fs::read(&log)?;
    let n = bytes.len();
    bytes[n - 3] ^= 0x01; // inside the last batch
    std::fs::write(&log, &bytes)?;
    let r = Partition::open_read_only(&path)?;
    let infos = r.segments()?;
    assert_eq!(infos.len(), w.segments().len());
    assert!(infos[2].record_count < seg.record_count, "the summary covers the valid prefix only");
    let err = r.read(seg.end_offset - 1, 1).expect_err("damaged");
    assert!(matches!(err, Error::Corrupt { ref path, .. } if *path == log), "{err:?}");
    let s = r.segment(seg.base_offset)?;
    assert_eq!(s.size(), n as u64);
    let v = s.verify()?;
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert_eq!(v.problems[0].kind, CorruptKind::BatchChecksum);
    // Records in later segments are still readable.
    assert!(r.read(seg.end_offset, 1)?.iter().next().is_some());
    Ok(())
}

#[test]
fn a_topic_deleted_under_a_reader_is_not_found() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("data"))?;
    let t = dir.create_topic("t", TopicConfig::default())?;
    t.append(Record::with_value("x"))?;
    let ro = LogDir::open_read_only(dir.path())?;
    let p = ro.topic("t")?.partition(0)?;
    assert_eq!(p.log_end_offset()?, 1);
    dir.delete_topic("t")?;
    p.invalidate();
    assert!(matches!(p.read(0, 1), Err(Error::TopicNotFound { .. })));
    assert!(matches!(ro.topic("t"), Err(Error::TopicNotFound { .. })));
    Ok(())
}
