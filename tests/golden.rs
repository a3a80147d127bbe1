//! Golden fixtures: partition directories written by partlog 0.1 (on-disk format version 2)
//! and checked in under `tests/fixtures/golden/v2/`, each with the exact records it must yield
//! (`expected.txt`). Every later release must open them the same way; a format change that
//! breaks this needs a new format version and a migration, not a new fixture.
//!
//! - `healthy`: closed cleanly, three segments.
//! - `crashed`: the files as a crash left them (no clean close, the active segment still
//!   preallocated with zeros, `EveryAppend`): every record is there.
//! - `torn`: `healthy` with its last batch cut in half: that batch goes, the rest stays.
//! - `corrupt`: `healthy` with a flipped byte in a batch that valid batches follow, and no
//!   checkpoint (so open re-validates everything): open refuses (`Corrupt`, with the byte
//!   offset); `TruncateCorrupt` cuts there.
//!
//! The files are also decoded with the independent encoder in `tests/spec`, which follows the
//! byte tables of `src/format.rs`: if the code and the tables disagree, this fails.
//!
//! Regenerate (only for a new format version, into a new directory):
//! `PARTLOG_GOLDEN_OUT=/tmp/golden cargo test --test golden -- --ignored generate`.

use std::path::{Path, PathBuf};

use partlog::{Durability, Error, Partition, Record, RecoveryMode, StoredRecord, TopicConfig};

mod spec;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/v2")
}

const CASES: [&str; 4] = ["healthy", "crashed", "torn", "corrupt"];

// ---------------------------------------------------------------------------------------------
// What a fixture must yield.

/// One record: offset, timestamp, key, value.
type Row = (u64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Debug, PartialEq, Eq)]
struct Expected {
    /// `None`: open succeeds; `Some((file, byte, kind))`: open fails with `Corrupt`.
    corrupt: Option<(String, u64, String)>,
    log_start: u64,
    log_end: u64,
    records: Vec<Row>,
}

fn hex(b: &Option<Vec<u8>>) -> String {
    match b {
        None => "-".into(),
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn unhex(s: &str) -> TestResult<Option<Vec<u8>>> {
    if s == "-" {
        return Ok(None);
    }
    let bytes = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16)).collect::<Result<_, _>>()?;
    Ok(Some(bytes))
}

impl Expected {
    fn parse(text: &str) -> TestResult<Expected> {
        let mut e = Expected { corrupt: None, log_start: 0, log_end: 0, records: Vec::new() };
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["corrupt", file, at, kind] => e.corrupt = Some(((*file).into(), at.parse()?, (*kind).into())),
                ["log_start", n] => e.log_start = n.parse()?,
                ["log_end", n] => e.log_end = n.parse()?,
                ["record", o, ts, k, v] => e.records.push((o.parse()?, ts.parse()?, unhex(k)?, unhex(v)?)),
                _ => return Err(format!("expected.txt: bad line {line:?}").into()),
            }
        }
        Ok(e)
    }

    fn render(&self) -> String {
        let mut s = String::from("# What partlog must read from this directory (see tests/golden.rs).\n");
        if let Some((f, at, k)) = &self.corrupt {
            s.push_str(&format!("corrupt {f} {at} {k}\n"));
        }
        s.push_str(&format!("log_start {}\nlog_end {}\n", self.log_start, self.log_end));
        for (o, ts, k, v) in &self.records {
            s.push_str(&format!("record {o} {ts} {} {}\n", hex(k), hex(v)));
        }
        s
    }
}

fn records_of(p: &Partition) -> TestResult<Vec<Row>> {
    let got: Vec<StoredRecord> = p.iter(p.log_start_offset()).collect::<Result<_, _>>()?;
    Ok(got.into_iter().map(|r| (r.offset, r.timestamp, r.key, r.value)).collect())
}

/// Copies a fixture into a temporary directory (open may repair files; the checked-in ones
/// stay as they are).
fn copy_fixture(name: &str) -> TestResult<(tempfile::TempDir, PathBuf)> {
    let tmp = tempfile::tempdir()?;
    let dst = tmp.path().join(name);
    std::fs::create_dir(&dst)?;
    for e in std::fs::read_dir(fixtures().join(name).join("partition"))? {
        let e = e?;
        std::fs::copy(e.path(), dst.join(e.file_name()))?;
    }
    Ok((tmp, dst))
}

fn kind_name(e: &Error) -> String {
    match e {
        Error::Corrupt { kind, .. } => format!("{kind:?}"),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

#[test]
fn golden_fixtures_open_as_recorded() -> TestResult {
    for name in CASES {
        let want = Expected::parse(&std::fs::read_to_string(fixtures().join(name).join("expected.txt"))?)?;
        let (_tmp, dir) = copy_fixture(name)?;
        match (Partition::open(&dir), &want.corrupt) {
            (Ok(p), None) => {
                assert_eq!((p.log_start_offset(), p.log_end_offset()), (want.log_start, want.log_end), "{name}");
                assert_eq!(records_of(&p)?, want.records, "{name}");
                // Reopening what this release repaired yields the same again.
                p.close()?;
                drop(p);
                let p = Partition::open(&dir)?;
                assert_eq!(records_of(&p)?, want.records, "{name} (reopened)");
            }
            (Err(e @ Error::Corrupt { .. }), Some((file, at, kind))) => {
                let Error::Corrupt { path, offset, .. } = &e else { unreachable!() };
                assert_eq!(path.file_name().and_then(|f| f.to_str()), Some(file.as_str()), "{name}");
                assert_eq!((*offset, kind_name(&e)), (*at, kind.clone()), "{name}");
                // The caller may choose to cut the damage away: the records before it remain.
                let p = Partition::options().recovery(RecoveryMode::TruncateCorrupt).open(&dir)?;
                assert_eq!(records_of(&p)?, want.records, "{name} (TruncateCorrupt)");
                assert_eq!(p.log_end_offset(), want.log_end, "{name} (TruncateCorrupt)");
            }
            (r, want) => panic!("{name}: open gave {:?}, expected corrupt {want:?}", r.map(|p| p.log_end_offset())),
        }
    }
    Ok(())
}

/// The healthy fixture against the byte tables: every batch, record, checkpoint field and
/// segment summary decodes with the independent decoder and agrees with `expected.txt`.
#[test]
fn golden_fixtures_match_the_format_tables() -> TestResult {
    let name = "healthy";
    let want = Expected::parse(&std::fs::read_to_string(fixtures().join(name).join("expected.txt"))?)?;
    let dir = fixtures().join(name).join("partition");
    let cp = spec::Checkpoint::decode(&std::fs::read(dir.join("partition.checkpoint"))?);
    assert!(cp.clean, "a clean close sets the clean flag");
    assert_eq!((cp.log_start, cp.log_end), (want.log_start, want.log_end));
    let mut decoded = Vec::new();
    for s in &cp.segments {
        let log = std::fs::read(dir.join(spec::seg_name(s.base, "log")))?;
        assert_eq!(log.len() as u64, s.size, "segment {} size", s.base);
        let batches = spec::batches(&log);
        let recs: Vec<spec::Rec> = batches.iter().flat_map(|(_, b)| spec::records(b)).collect();
        assert_eq!(recs.len() as u64, s.records, "segment {} record count", s.base);
        let last = batches.last().map(|(_, b)| spec::header(b));
        assert_eq!(last.map_or(s.base, |h| h.base_offset + u64::from(h.last_delta) + 1), s.next_offset);
        assert_eq!(recs.first().map(|r| r.ts).unwrap_or(i64::MIN), s.first_ts, "segment {} first ts", s.base);
        assert_eq!(recs.iter().map(|r| r.ts).max().unwrap_or(i64::MIN), s.max_ts, "segment {} max ts", s.base);
        for (_, b) in &batches {
            let h = spec::header(b);
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (-1, -1, -1));
            assert_eq!((h.attributes, h.delete_horizon), (0, i64::MIN));
        }
        // The offset index header (`PLIX`) describes this segment.
        let idx = std::fs::read(dir.join(spec::seg_name(s.base, "index")))?;
        assert_eq!(&idx[0..4], b"PLIX");
        assert_eq!(u16::from_le_bytes([idx[4], idx[5]]), 1);
        let field = |at: usize| u64::from_le_bytes(idx[at..at + 8].try_into().unwrap());
        assert_eq!((field(8), field(16), field(24), field(32)), (s.base, s.size, s.next_offset, s.records));
        assert_eq!(u32::from_le_bytes(idx[76..80].try_into()?), crc32fast::hash(&idx[..76]), "index header CRC");
        let n = u32::from_le_bytes(idx[64..68].try_into()?) as usize;
        assert_eq!(idx.len(), 80 + 8 * n);
        assert_eq!(u32::from_le_bytes(idx[68..72].try_into()?), crc32fast::hash(&idx[80..]), "index entries CRC");
        for e in idx[80..].chunks_exact(8) {
            let (rel, pos) = (u32::from_le_bytes(e[0..4].try_into()?), u32::from_le_bytes(e[4..8].try_into()?));
            let at = batches.iter().find(|(p, _)| *p == pos as usize).ok_or("index entry off a batch")?;
            assert_eq!(spec::header(at.1).base_offset, s.base + u64::from(rel), "index entry ({rel}, {pos})");
        }
        let ti = std::fs::read(dir.join(spec::seg_name(s.base, "timeindex")))?;
        assert_eq!(&ti[0..4], b"PLTX");
        assert_eq!(u64::from_le_bytes(ti[8..16].try_into()?), s.base);
        assert_eq!(u32::from_le_bytes(ti[28..32].try_into()?), crc32fast::hash(&ti[..28]), "time index header CRC");
        decoded.extend(recs.into_iter().map(|r| (r.offset, r.ts, r.key, r.value)));
    }
    assert_eq!(decoded, want.records);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The generator (run by hand for a new format version).

fn config() -> TopicConfig {
    TopicConfig::default().segment_bytes(700).index_interval_bytes(100).durability(Durability::EveryAppend)
}

/// Records with keys, a tombstone, a keyless record and batches, timestamps fixed.
fn fill(p: &Partition) -> TestResult {
    for i in 0..30u64 {
        let ts = 1_600_000_000_000 + i as i64 * 1_000;
        let key = format!("key-{}", i % 5);
        let value = format!("value-{i:02}-{}", "z".repeat((i % 9) as usize));
        if i % 7 == 3 {
            let v2 = format!("{value}-b");
            p.append_batch(&[
                Record::new().key(key.as_str()).value(value.as_str()).timestamp(ts),
                Record::new().value(v2.as_str()).timestamp(ts + 1),
            ])?;
        } else if i % 11 == 5 {
            p.append(Record::new().key(key.as_str()).timestamp(ts))?; // a tombstone
        } else {
            p.append(Record::new().key(key.as_str()).value(value.as_str()).timestamp(ts))?;
        }
    }
    Ok(())
}

fn save(src: &Path, dst: &Path) -> TestResult {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let n = e.file_name();
        if n != ".lock" {
            std::fs::copy(e.path(), dst.join(&n))?;
        }
    }
    Ok(())
}

#[test]
#[ignore = "writes fixtures: PARTLOG_GOLDEN_OUT=<dir> cargo test --test golden -- --ignored generate"]
fn generate() -> TestResult {
    let Ok(out) = std::env::var("PARTLOG_GOLDEN_OUT") else { return Ok(()) };
    let out = PathBuf::from(out);
    let tmp = tempfile::tempdir()?;
    let expect_of = |p: &Partition| -> TestResult<Expected> {
        Ok(Expected {
            corrupt: None,
            log_start: p.log_start_offset(),
            log_end: p.log_end_offset(),
            records: records_of(p)?,
        })
    };
    // healthy
    let h = tmp.path().join("healthy");
    let p = Partition::open_with(&h, config())?;
    fill(&p)?;
    p.close()?;
    drop(p);
    save(&h, &out.join("healthy/partition"))?;
    let p = Partition::open(&h)?;
    let healthy = expect_of(&p)?;
    drop(p);
    std::fs::write(out.join("healthy/expected.txt"), healthy.render())?;
    // crashed: the files while the partition is still open (nothing closed, tail preallocated)
    let c = tmp.path().join("crashed");
    let p = Partition::open_with(&c, config())?;
    fill(&p)?;
    save(&c, &out.join("crashed/partition"))?;
    drop(p);
    std::fs::write(out.join("crashed/expected.txt"), Expected { ..expect_of(&Partition::open(&c)?)? }.render())?;
    // torn: the last batch cut in half
    let cp = spec::Checkpoint::decode(&std::fs::read(h.join("partition.checkpoint"))?);
    let last = cp.segments.last().ok_or("no segment")?;
    let name = spec::seg_name(last.base, "log");
    save(&out.join("healthy/partition"), &out.join("torn/partition"))?;
    let log = std::fs::read(out.join("healthy/partition").join(&name))?;
    let (pos, b) = *spec::batches(&log).last().ok_or("no batch")?;
    std::fs::write(out.join("torn/partition").join(&name), &log[..pos + b.len() / 2])?;
    let t = tmp.path().join("torn");
    save(&out.join("torn/partition"), &t)?;
    std::fs::write(out.join("torn/expected.txt"), expect_of(&Partition::open(&t)?)?.render())?;
    // corrupt: a payload byte of the second batch of the first segment
    let first = spec::seg_name(cp.segments[0].base, "log");
    save(&out.join("healthy/partition"), &out.join("corrupt/partition"))?;
    let mut log = std::fs::read(out.join("healthy/partition").join(&first))?;
    let (pos, b) = spec::batches(&log)[1];
    let at = pos + b.len() - 2;
    log[at] ^= 0x20;
    std::fs::write(out.join("corrupt/partition").join(&first), &log)?;
    // Without the checkpoint (it crashed too), open re-validates every segment and meets it.
    std::fs::remove_file(out.join("corrupt/partition/partition.checkpoint"))?;
    let k = tmp.path().join("corrupt");
    save(&out.join("corrupt/partition"), &k)?;
    let err = Partition::open(&k).err().ok_or("the corrupt fixture opened")?;
    let Error::Corrupt { offset, .. } = &err else { return Err(err.into()) };
    let p = Partition::options().recovery(RecoveryMode::TruncateCorrupt).open(&k)?;
    let e = Expected { corrupt: Some((first.clone(), *offset, kind_name(&err))), ..expect_of(&p)? };
    std::fs::write(out.join("corrupt/expected.txt"), e.render())?;
    Ok(())
}
