//! The read path: byte budgets, reads from inside a batch, offset gaps, lookups by timestamp
//! (Kafka's `LogSegmentTest.testFindOffsetByTimestamp` and a brute-force model), iteration
//! across segments, segment metadata and index lookups, and reads racing a writer.
//!
//! Sizes are checked against an independent encoder of the documented batch format, and
//! `.log` files against an independent reader of it.
//!
//! Randomized tests print their seed; replay with `PARTLOG_SEED=<seed>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use partlog::segment::HandleCache;
use partlog::testing::BatchBuilder;
use partlog::{Error, ManualClock, Partition, Record, StoredRecord, TimestampType, TopicConfig};

mod common;
use common::{Rng, seed};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const HEADER_LEN: usize = 68;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A record as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exp {
    offset: u64,
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

fn value_of(offset: u64, len: usize) -> Vec<u8> {
    let mut v = offset.to_le_bytes().to_vec();
    v.extend((0..len).map(|i| (offset as u8) ^ (i as u8)));
    v
}

fn rec(e: &Exp) -> Record<'_> {
    let mut r = Record::new().timestamp(e.ts);
    r.key = e.key.as_deref().map(std::borrow::Cow::Borrowed);
    r.value = e.value.as_deref().map(std::borrow::Cow::Borrowed);
    r
}

fn check_record(got: &StoredRecord, e: &Exp) {
    assert_eq!(got.offset, e.offset);
    assert_eq!(got.timestamp, e.ts, "timestamp of {}", e.offset);
    assert_eq!(got.key, e.key, "key of {}", e.offset);
    assert_eq!(got.value, e.value, "value of {}", e.offset);
    assert!(got.headers.is_empty());
}

/// Independent encoder: the size of a batch holding `records` (documented format).
fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn field_len(b: Option<&[u8]>) -> usize {
    match b {
        None => uvarint_len(zigzag(-1)),
        Some(b) => uvarint_len(zigzag(b.len() as i64)) + b.len(),
    }
}

fn batch_len(records: &[Exp]) -> usize {
    let base_ts = records[0].ts;
    let mut total = HEADER_LEN;
    for (delta, e) in records.iter().enumerate() {
        let body = 1
            + uvarint_len(zigzag(e.ts.wrapping_sub(base_ts)))
            + uvarint_len(delta as u64)
            + field_len(e.key.as_deref())
            + field_len(e.value.as_deref())
            + 1;
        total += uvarint_len(body as u64) + body;
    }
    total
}

/// The model of a log: records by offset and the batches they were appended in.
#[derive(Debug, Default)]
struct Model {
    recs: Vec<Exp>,
    /// (base offset, last offset, encoded length) of each append.
    batches: Vec<(u64, u64, usize)>,
}

impl Model {
    fn append(&mut self, p: &Partition, recs: Vec<Exp>) -> TestResult {
        let base = self.recs.len() as u64;
        assert!(recs.iter().zip(base..).all(|(e, o)| e.offset == o));
        let info = if recs.len() == 1 {
            p.append(rec(&recs[0]))?.into()
        } else {
            p.append_batch(&recs.iter().map(rec).collect::<Vec<_>>())?
        };
        assert_eq!((info.base_offset, info.last_offset), (base, base + recs.len() as u64 - 1));
        assert_eq!(info.max_timestamp, recs.iter().map(|e| e.ts).max().unwrap_or(i64::MIN));
        self.batches.push((base, info.last_offset, batch_len(&recs)));
        self.recs.extend(recs);
        Ok(())
    }

    fn next(&self) -> u64 {
        self.recs.len() as u64
    }

    /// The batch holding `offset`.
    fn batch_of(&self, offset: u64) -> (u64, u64, usize) {
        let i = self.batches.partition_point(|b| b.1 < offset);
        self.batches[i]
    }
}

fn random_batch(rng: &mut Rng, base: u64, ts: &mut dyn FnMut(&mut Rng, u64) -> i64) -> Vec<Exp> {
    let n = if rng.below(3) == 0 { rng.range(2, 12) } else { 1 };
    (base..base + n)
        .map(|o| Exp {
            offset: o,
            ts: ts(rng, o),
            key: (rng.below(4) != 0).then(|| format!("key-{}", o % 17).into_bytes()),
            value: (rng.below(10) != 0).then(|| value_of(o, rng.below(300) as usize)),
        })
        .collect()
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// (position, length, base offset, last offset, max timestamp) of each batch in a `.log` image.
fn parse_batches(bytes: &[u8]) -> Vec<(usize, usize, u64, u64, i64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER_LEN <= bytes.len() {
        let len = le_u32(bytes, pos) as usize;
        if len < HEADER_LEN || pos + len > bytes.len() {
            break;
        }
        let base = le_u64(bytes, pos + 16);
        out.push((pos, len, base, base + u64::from(le_u32(bytes, pos + 12)), le_u64(bytes, pos + 32) as i64));
        pos += len;
    }
    out
}

fn seg_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn collect(p: &Partition, from: u64) -> TestResult<Vec<StoredRecord>> {
    Ok(p.iter(from).collect::<Result<Vec<_>, _>>()?)
}

/// Brute force: the first record at or after `start` (in offset order) with ts ≥ `ts`.
fn first_at_or_after(recs: &[Exp], start: u64, ts: i64) -> Option<(u64, i64)> {
    recs.iter().filter(|e| e.offset >= start).find(|e| e.ts >= ts).map(|e| (e.offset, e.ts))
}

fn by_ts(p: &Partition, ts: i64) -> TestResult<Option<(u64, i64)>> {
    Ok(p.offset_for_timestamp(ts)?.map(|t| (t.offset, t.timestamp)))
}

// ---------------------------------------------------------------------------------------------
// Byte budgets
// ---------------------------------------------------------------------------------------------

/// KIP-74: the first batch is returned whole even when it is larger than the budget; records
/// before the requested offset are skipped; `next_offset` points past the returned batches.
#[test]
fn a_batch_larger_than_the_budget_is_returned_whole() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open(tmp.path().join("p"))?;
    let mut m = Model::default();
    m.append(&p, vec![Exp { offset: 0, ts: 1, key: None, value: Some(b"first".to_vec()) }])?;
    let big: Vec<Exp> = (1..21)
        .map(|o| Exp { offset: o, ts: 1 + o as i64, key: Some(b"k".to_vec()), value: Some(value_of(o, 100)) })
        .collect();
    m.append(&p, big)?;
    m.append(&p, vec![Exp { offset: 21, ts: 50, key: None, value: None }])?;
    let big_len = m.batches[1].2;
    assert!(big_len > 2_000);
    for (from, budget) in [(1u64, 0usize), (1, 1), (1, 100), (1, big_len - 1), (1, big_len), (8, 1), (20, 10)] {
        let r = p.read(from, budget)?;
        assert_eq!(r.size_bytes(), big_len, "read({from}, {budget}) returns exactly the big batch");
        assert_eq!(le_u64(r.as_bytes(), 16), 1, "whole batches: the returned bytes start at the batch start");
        assert_eq!(r.next_fetch_offset(), 21);
        let got: Vec<StoredRecord> = r.iter().map(|r| r.to_owned()).collect();
        assert_eq!(got.len() as u64, 21 - from, "records before {from} are skipped");
        for (g, e) in got.iter().zip(&m.recs[from as usize..]) {
            check_record(g, e);
        }
        let owned: Vec<StoredRecord> = r.into_iter().collect();
        assert_eq!(owned, got);
    }
    // Exactly the budget of two batches gets both.
    let r = p.read(1, big_len + m.batches[2].2)?;
    assert_eq!((r.size_bytes(), r.next_fetch_offset()), (big_len + m.batches[2].2, 22));
    // At the end: empty, and next_offset stays.
    let r = p.read(22, 100)?;
    assert!(r.is_empty() && r.size_bytes() == 0 && r.next_fetch_offset() == 22 && r.iter().next().is_none());
    Ok(())
}

/// Random logs and random budgets: results are whole, consecutive batches of one segment,
/// starting with the batch holding the offset, within the budget (unless a single batch),
/// and not stopping early while the next batch of the segment would still fit.
#[test]
fn reads_respect_the_byte_budget() -> TestResult {
    let mut rng = Rng::new(seed("reads_respect_the_byte_budget"));
    let tmp = tempfile::tempdir()?;
    let cfg = TopicConfig::default().segment_bytes(8192).index_interval_bytes(rng.range(0, 2000) as u32);
    let p = Partition::open_with(tmp.path().join("p"), cfg)?;
    let mut m = Model::default();
    while m.next() < 600 {
        let b = random_batch(&mut rng, m.next(), &mut |_, o| 1_000 + o as i64);
        m.append(&p, b)?;
    }
    let segs = p.segments();
    assert!(segs.len() > 3, "{segs:?}");
    for _ in 0..1500 {
        let from = rng.below(m.next());
        let budget = [0, 1, 64, 300, 1000, 5000, 20_000][rng.below(7) as usize] + rng.below(100) as usize;
        let r = p.read(from, budget)?;
        let batches = parse_batches(r.as_bytes());
        let total: usize = batches.iter().map(|b| b.1).sum();
        assert_eq!(total, r.size_bytes(), "only whole batches");
        let (first_base, first_last, first_len) = m.batch_of(from);
        assert_eq!((batches[0].2, batches[0].3, batches[0].1), (first_base, first_last, first_len), "read({from})");
        assert!(r.size_bytes() <= budget || batches.len() == 1, "read({from}, {budget}) gave {} bytes", r.size_bytes());
        for w in batches.windows(2) {
            assert_eq!(w[0].3 + 1, w[1].2, "consecutive batches");
        }
        let last = batches[batches.len() - 1];
        assert_eq!(r.next_fetch_offset(), last.3 + 1);
        let seg = segs.iter().rfind(|s| s.base_offset <= from).ok_or("no segment")?;
        assert!(last.3 < seg.end_offset, "a read stays within one segment");
        if r.next_fetch_offset() < seg.end_offset {
            let (_, _, next_len) = m.batch_of(r.next_fetch_offset());
            assert!(
                r.size_bytes() + next_len > budget,
                "read({from}, {budget}) stopped at {} bytes though the next batch ({next_len}) fits",
                r.size_bytes()
            );
        }
        let got: Vec<StoredRecord> = r.iter().map(|r| r.to_owned()).collect();
        assert_eq!(got.first().map(|g| g.offset), Some(from));
        assert_eq!(got.len() as u64, r.next_fetch_offset() - from);
        for g in &got {
            check_record(g, &m.recs[g.offset as usize]);
        }
    }
    // A chained reader visits every record once, whatever its chunk size.
    for chunk in [1usize, 100, 4096, 1 << 20] {
        let mut reader = p.reader(0).chunk_bytes(chunk);
        let mut next = 0u64;
        while let Some(r) = reader.next_records()? {
            for rec in r.iter() {
                assert_eq!(rec.offset(), next);
                next += 1;
            }
            assert_eq!(reader.position(), r.next_fetch_offset());
            assert_eq!(r.next_fetch_offset(), next);
        }
        assert_eq!(next, m.next());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Offset gaps
// ---------------------------------------------------------------------------------------------

/// Segment files with offset gaps (as compaction leaves them), built with the batch encoder:
/// inside a batch, between batches and between segments. Reading inside a gap returns the next
/// record that exists.
#[test]
fn reads_inside_offset_gaps_return_the_next_record() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    std::fs::create_dir_all(&dir)?;
    // (offsets present, last offset the batch covers)
    let seg0: Vec<(Vec<u64>, u64)> = vec![
        (vec![0, 1, 2], 2),
        (vec![3, 5, 9], 9),     // holes inside the batch
        (vec![10], 14),         // the batch covers 11..14 with no records
        (vec![20, 21], 21),     // hole between batches (15..19)
        (vec![22, 23, 30], 31), // hole inside and at the end
    ];
    let seg1: Vec<(Vec<u64>, u64)> = vec![(vec![40, 41], 41), (vec![45], 47)]; // hole between segments
    let mut present = Vec::new();
    for (base, batches) in [(0u64, &seg0), (40, &seg1)] {
        let mut file = Vec::new();
        for (offs, last) in batches {
            let mut b = BatchBuilder::new();
            b.begin(offs[0]);
            for &o in offs {
                let v = value_of(o, 3);
                b.push(&Record::new().value(v.as_slice()), o - offs[0], 100 + o as i64);
                present.push(o);
            }
            let (bytes, h) = b.finish(0, Some(last - offs[0]));
            assert_eq!(h.last_offset(), *last);
            file.extend_from_slice(bytes);
        }
        std::fs::write(seg_path(&dir, base, "log"), file)?;
    }
    let p = Partition::open_with(&dir, TopicConfig::default().index_interval_bytes(1))?;
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (0, 48));
    let all = collect(&p, 0)?;
    assert_eq!(all.iter().map(|r| r.offset).collect::<Vec<_>>(), present);
    for r in &all {
        assert_eq!(r.value.as_deref(), Some(value_of(r.offset, 3).as_slice()));
        assert_eq!(r.timestamp, 100 + r.offset as i64);
    }
    for o in 0..48u64 {
        let want = present.iter().copied().find(|&x| x >= o);
        // A read may stop at a batch that only covers the gap (see the ignored test below), but
        // then it must let the reader move on, and never return a record other than the next.
        for budget in [1, 1 << 20] {
            let r = p.read(o, budget)?;
            match r.iter().next() {
                Some(rec) => assert_eq!(Some(rec.offset()), want, "read({o}, {budget})"),
                None => assert!(r.next_fetch_offset() > o, "read({o}, {budget}) makes no progress"),
            }
        }
        let it: Vec<u64> = p.iter(o).map(|r| r.map(|r| r.offset)).collect::<Result<_, _>>()?;
        assert_eq!(it, present.iter().copied().filter(|&x| x >= o).collect::<Vec<_>>(), "iter({o})");
        // Timestamps grow with offsets here, so the answer is the next present record too.
        let t = p.offset_for_timestamp(100 + o as i64)?.map(|t| t.offset);
        assert_eq!(t, want, "offset_for_timestamp({})", 100 + o);
    }
    // Appends continue after the last covered offset; the gap after 45 stays.
    assert_eq!(p.append(Record::with_value("next").timestamp(500))?.offset, 48);
    assert_eq!(p.iter(46).next().transpose()?.map(|r| r.offset), Some(48));
    // Moving the log start into a gap.
    p.advance_log_start(16)?;
    assert_eq!(p.read(16, 1)?.iter().next().map(|r| r.offset()), Some(20));
    assert_eq!(p.offset_for_timestamp(0)?.map(|t| t.offset), Some(20));
    p.close()?;
    drop(p);
    let p = Partition::open(&dir)?;
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (16, 49));
    assert_eq!(p.read(16, 1)?.iter().next().map(|r| r.offset()), Some(20));
    Ok(())
}

/// `read` promises the next record that exists when the offset is in a gap, whatever the
/// budget: a batch that covers the gap but holds no record at or after the offset must not use
/// up the "at least one batch".
#[test]
fn a_small_read_inside_a_gap_still_returns_the_next_record() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    std::fs::create_dir_all(&dir)?;
    for (base, batches) in [(0u64, vec![(vec![0u64, 1], 5u64), (vec![6], 6), (vec![7], 9)]), (10, vec![(vec![12], 12)])]
    {
        let mut file = Vec::new();
        for (offs, last) in batches {
            let mut b = BatchBuilder::new();
            b.begin(offs[0]);
            for &o in &offs {
                b.push(&Record::with_value("v"), o - offs[0], 1);
            }
            file.extend_from_slice(b.finish(0, Some(last - offs[0])).0);
        }
        std::fs::write(seg_path(&dir, base, "log"), file)?;
    }
    let p = Partition::open(&dir)?;
    assert_eq!(p.log_end_offset(), 13);
    for o in 2..=6 {
        assert_eq!(p.read(o, 1)?.iter().next().map(|r| r.offset()), Some(6), "read({o}, 1)");
    }
    // At the end of a segment the next record is in the next segment.
    for o in 8..=12 {
        for budget in [1, 1 << 20] {
            assert_eq!(p.read(o, budget)?.iter().next().map(|r| r.offset()), Some(12), "read({o}, {budget})");
        }
    }
    Ok(())
}

/// Starts inside batches (`advance_log_start`) and batches cut in the middle (`truncate_to`)
/// read like any other.
#[test]
fn log_start_and_truncation_inside_batches() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = Partition::open_with(tmp.path().join("p"), TopicConfig::default().segment_bytes(2048))?;
    let mut m = Model::default();
    for _ in 0..20 {
        let base = m.next();
        m.append(
            &p,
            (base..base + 10)
                .map(|o| Exp { offset: o, ts: o as i64, key: None, value: Some(value_of(o, 20)) })
                .collect(),
        )?;
    }
    p.advance_log_start(35)?;
    let r = p.read(35, 1)?;
    assert_eq!(le_u64(r.as_bytes(), 16), 30, "the whole batch is returned");
    assert_eq!(r.iter().next().map(|r| r.offset()), Some(35), "records below the log start are skipped");
    assert_eq!(collect(&p, 35)?.first().map(|r| r.offset), Some(35));
    assert_eq!(p.offset_for_timestamp(0)?.map(|t| t.offset), Some(35), "nothing below the log start");
    assert!(matches!(p.read(34, 1), Err(Error::OffsetOutOfRange { requested: 34, start: 35, end: 200 })));
    // Cut batch 150..159 after 153.
    p.truncate_to(154)?;
    m.recs.truncate(154);
    assert_eq!(p.log_end_offset(), 154);
    let r = p.read(152, 1 << 20)?;
    assert_eq!(r.next_fetch_offset(), 154);
    assert_eq!(r.iter().map(|r| r.offset()).collect::<Vec<_>>(), vec![152, 153]);
    m.append(&p, vec![Exp { offset: 154, ts: 154, key: None, value: Some(b"new".to_vec()) }])?;
    let got = collect(&p, 35)?;
    assert_eq!(got.len(), 154 - 35 + 1);
    for g in &got {
        check_record(g, &m.recs[g.offset as usize]);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Offset for timestamp
// ---------------------------------------------------------------------------------------------

/// Kafka `LogSegmentTest.testFindOffsetByTimestamp`: offsets 40..49 with timestamp 10×offset,
/// an index entry every two messages. Offsets 0..39 are fillers: with lower timestamps in one
/// variant, with higher ones hidden below the log start in the other. Several index densities
/// and segment sizes give the same answers.
#[test]
fn offset_for_timestamp_kafka_find_offset_by_timestamp() -> TestResult {
    let expected: [(i64, Option<u64>); 10] = [
        (420, Some(42)),
        (421, Some(43)),
        (430, Some(43)),
        (431, Some(44)),
        (401, Some(41)),
        (399, Some(40)),
        (400, Some(40)),
        (490, Some(49)),
        (491, None),
        (i64::MIN + 1, Some(40)),
    ];
    let tmp = tempfile::tempdir()?;
    let one = |o: u64| Exp { offset: o, ts: 10 * o as i64, key: None, value: Some(format!("msg{o:02}").into_bytes()) };
    let len = batch_len(&[one(40)]) as u32;
    let mut n = 0;
    for hidden_fillers in [false, true] {
        // "Every two messages": an entry is added once more than `interval` bytes were written
        // since the last one.
        for interval in [0, 1, len, len + len / 2, 4096] {
            for segment_bytes in [1 << 20, 4 * len, 128.max(len)] {
                n += 1;
                let cfg = TopicConfig::default().segment_bytes(segment_bytes).index_interval_bytes(interval);
                let p = Partition::open_with(tmp.path().join(format!("p{n}")), cfg)?;
                let mut m = Model::default();
                for o in 0..40 {
                    let ts = if hidden_fillers { 1_000_000 + o as i64 } else { o as i64 };
                    m.append(&p, vec![Exp { ts, ..one(o) }])?;
                }
                if hidden_fillers {
                    p.advance_log_start(40)?;
                }
                for o in 40..50 {
                    m.append(&p, vec![one(o)])?;
                }
                let ctx = format!("hidden {hidden_fillers}, interval {interval}, segment {segment_bytes}");
                for (ts, want) in expected {
                    let want = if !hidden_fillers && ts == i64::MIN + 1 { Some(0) } else { want };
                    let got = p.offset_for_timestamp(ts)?;
                    assert_eq!(got.map(|t| t.offset), want, "{ctx}: ts {ts}");
                    if let Some(t) = got {
                        assert_eq!(t.timestamp, m.recs[t.offset as usize].ts, "{ctx}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// Producers' timestamps need not grow: random timestamps, random batches, many segments,
/// against a brute-force search; after moving the log start, reopening and losing the indexes.
#[test]
fn offset_for_timestamp_matches_brute_force_on_non_monotonic_timestamps() -> TestResult {
    let mut rng = Rng::new(seed("offset_for_timestamp_matches_brute_force_on_non_monotonic_timestamps"));
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let cfg = TopicConfig::default()
        .segment_bytes(rng.range(4096, 12_000) as u32)
        .index_interval_bytes(rng.range(0, 600) as u32);
    let p = Partition::open_with(&dir, cfg.clone())?;
    let mut m = Model::default();
    let spread = rng.range(50, 5_000) as i64;
    while m.next() < 700 {
        let b = random_batch(&mut rng, m.next(), &mut |rng, o| {
            // Mostly rising with jitter, sometimes far back, sometimes far ahead.
            match rng.below(10) {
                0 => rng.below(spread as u64) as i64,
                1 => o as i64 * 10 + spread + rng.below(spread as u64) as i64,
                _ => o as i64 * 10 - (rng.below(spread as u64) as i64) / 2,
            }
        });
        m.append(&p, b)?;
    }
    assert!(p.segments().len() >= 4);
    let lo = m.recs.iter().map(|e| e.ts).min().unwrap_or(0);
    let hi = m.recs.iter().map(|e| e.ts).max().unwrap_or(0);
    let queries = |rng: &mut Rng, m: &Model| -> Vec<i64> {
        let mut q: Vec<i64> = vec![lo - 1, lo, hi, hi + 1, i64::MIN + 1, i64::MAX];
        for _ in 0..300 {
            let e = &m.recs[rng.below(m.next()) as usize];
            q.extend([e.ts - 1, e.ts, e.ts + 1]);
            q.push(lo + rng.below((hi - lo + 1) as u64) as i64);
        }
        q
    };
    let check = |p: &Partition, m: &Model, start: u64, qs: &[i64], ctx: &str| -> TestResult {
        for &q in qs {
            assert_eq!(by_ts(p, q)?, first_at_or_after(&m.recs, start, q), "{ctx}: ts {q}");
        }
        Ok(())
    };
    let qs = queries(&mut rng, &m);
    check(&p, &m, 0, &qs, "fresh")?;
    let start = rng.range(1, m.next() / 2);
    p.advance_log_start(start)?;
    let start = p.log_start_offset();
    check(&p, &m, start, &qs, "after advance_log_start")?;
    p.close()?;
    drop(p);
    let p = Partition::open_with(&dir, cfg.clone())?;
    check(&p, &m, start, &qs, "reopened")?;
    drop(p);
    for e in std::fs::read_dir(&dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".index") || name.ends_with(".timeindex") {
            std::fs::remove_file(e.path())?;
        }
    }
    let p = Partition::open_with(&dir, cfg)?;
    check(&p, &m, start, &qs, "indexes rebuilt")?;
    Ok(())
}

/// `LogAppendTime`: the append time replaces the producer's timestamp for every record of a
/// batch, and lookups find records by it.
#[test]
fn offset_for_timestamp_with_log_append_time() -> TestResult {
    let mut rng = Rng::new(seed("offset_for_timestamp_with_log_append_time"));
    let tmp = tempfile::tempdir()?;
    let clock = ManualClock::new(1_000_000);
    let cfg = TopicConfig::default()
        .timestamp_type(TimestampType::LogAppendTime)
        .segment_bytes(2048)
        .index_interval_bytes(200);
    let p = Partition::options().config(cfg).clock(clock.clone()).open(tmp.path().join("p"))?;
    let mut times = Vec::new(); // append time of each offset
    for _ in 0..200 {
        // The clock mostly moves forward, sometimes stands still or steps back.
        match rng.below(10) {
            0 => {}
            1 => clock.advance(-(rng.below(50) as i64)),
            _ => clock.advance(rng.range(1, 100) as i64),
        }
        let now = clock_now(&clock);
        let n = rng.range(1, 4);
        let vals: Vec<Vec<u8>> = (0..n).map(|i| value_of(i, 5)).collect();
        let recs: Vec<Record<'_>> = vals.iter().map(|v| Record::with_value(v.as_slice()).timestamp(7)).collect();
        let info = p.append_batch(&recs)?;
        assert_eq!(info.max_timestamp, now);
        times.extend(std::iter::repeat_n(now, n as usize));
    }
    let got = collect(&p, 0)?;
    assert_eq!(got.iter().map(|r| r.timestamp).collect::<Vec<_>>(), times, "stored timestamps are the append times");
    let recs: Vec<Exp> =
        times.iter().enumerate().map(|(o, &ts)| Exp { offset: o as u64, ts, key: None, value: None }).collect();
    for q in times.iter().flat_map(|&t| [t - 1, t, t + 1]) {
        assert_eq!(by_ts(&p, q)?, first_at_or_after(&recs, 0, q), "ts {q}");
    }
    Ok(())
}

fn clock_now(c: &ManualClock) -> i64 {
    use partlog::Clock;
    c.now_ms()
}

// ---------------------------------------------------------------------------------------------
// Iteration, segment metadata, index lookups
// ---------------------------------------------------------------------------------------------

#[test]
fn iteration_segments_and_indexes_agree_with_the_model() -> TestResult {
    let mut rng = Rng::new(seed("iteration_segments_and_indexes_agree_with_the_model"));
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let cfg = TopicConfig::default()
        .segment_bytes(rng.range(4096, 8192) as u32)
        .index_interval_bytes(rng.range(0, 1500) as u32);
    let p = Partition::open_with(&dir, cfg.clone())?;
    let mut m = Model::default();
    while m.next() < 800 {
        let b = random_batch(&mut rng, m.next(), &mut |rng, o| o as i64 * 5 - rng.below(40) as i64);
        m.append(&p, b)?;
    }
    check_segments(&p, &dir, &m, true)?;
    for from in [0, 1, rng.below(m.next()), m.next() - 1, m.next()] {
        let got = collect(&p, from)?;
        assert_eq!(got.len() as u64, m.next() - from);
        for (g, e) in got.iter().zip(&m.recs[from as usize..]) {
            check_record(g, e);
        }
    }
    p.close()?;
    drop(p);
    // After a clean close the files hold exactly the batches, and everything is the same.
    let p = Partition::open_with(&dir, cfg)?;
    check_segments(&p, &dir, &m, false)?;
    let got = collect(&p, 0)?;
    assert_eq!(got.len(), m.recs.len());
    for (g, e) in got.iter().zip(&m.recs) {
        check_record(g, e);
    }
    Ok(())
}

fn check_segments(p: &Partition, dir: &Path, m: &Model, open: bool) -> TestResult {
    let mut rng = Rng::new(m.next());
    let segs = p.segments();
    assert_eq!(segs.first().map(|s| s.base_offset), Some(0));
    assert_eq!(segs.last().map(|s| s.end_offset), Some(m.next()));
    let written: usize = m.batches.iter().map(|b| b.2).sum();
    assert_eq!(segs.iter().map(|s| s.size).sum::<u64>(), written as u64, "segment sizes add up to the bytes written");
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s.active, i + 1 == segs.len());
        if let Some(next) = segs.get(i + 1) {
            assert_eq!(s.end_offset, next.base_offset, "no holes between segments");
        }
        let in_seg: Vec<&Exp> =
            m.recs.iter().filter(|e| e.offset >= s.base_offset && e.offset < s.end_offset).collect();
        assert_eq!(s.record_count, in_seg.len() as u64, "segment {}", s.base_offset);
        assert_eq!(s.first_timestamp, in_seg.first().map(|e| e.ts), "segment {}", s.base_offset);
        assert_eq!(s.max_timestamp, in_seg.iter().map(|e| e.ts).max(), "segment {}", s.base_offset);
        let batch_bytes: usize =
            m.batches.iter().filter(|b| b.0 >= s.base_offset && b.0 < s.end_offset).map(|b| b.2).sum();
        assert_eq!(s.size, batch_bytes as u64, "segment {}", s.base_offset);
        let file = std::fs::read(seg_path(dir, s.base_offset, "log"))?;
        if !open || !s.active {
            assert_eq!(file.len() as u64, s.size, "sealed and closed segments are trimmed");
        }
        let batches = parse_batches(&file[..s.size as usize]);
        assert_eq!(batches.iter().map(|b| b.1).sum::<usize>() as u64, s.size);
        assert_eq!(batches.first().map(|b| b.2), in_seg.first().map(|e| e.offset));

        let (index, time) = p.segment_indexes(s.base_offset)?;
        assert_eq!(index.base_offset(), s.base_offset);
        let mut probes: Vec<u64> = (0..30).map(|_| s.base_offset + rng.below(s.end_offset - s.base_offset)).collect();
        probes.extend([s.base_offset, s.end_offset - 1]);
        for o in probes {
            let e = index.lookup(o);
            let b = batches
                .iter()
                .find(|b| b.0 as u64 == e.position)
                .ok_or_else(|| format!("lookup({o}) = {e:?} is not a batch start"))?;
            assert_eq!(b.2, e.offset, "lookup({o}): the entry's offset is the batch's base offset");
            assert!(b.2 <= o, "lookup({o}) = {e:?} is past the offset");
        }
        for w in index.entries().collect::<Vec<_>>().windows(2) {
            assert!(w[0].offset < w[1].offset && w[0].position < w[1].position);
        }
        // Time index entry (T, O): T is first reached in the batch at O; nothing before is as late.
        let tentries: Vec<_> = time.entries().collect();
        for w in tentries.windows(2) {
            assert!(w[0].timestamp < w[1].timestamp && w[0].offset <= w[1].offset, "{tentries:?}");
        }
        for t in &tentries {
            let b = batches.iter().find(|b| b.2 == t.offset).ok_or("time entry is not at a batch start")?;
            assert_eq!(b.4, t.timestamp, "the batch at {} has max timestamp {}", t.offset, t.timestamp);
            assert!(in_seg.iter().filter(|e| e.offset < t.offset).all(|e| e.ts < t.timestamp));
            assert_eq!(time.lookup(t.timestamp), Some(*t));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

fn conc_value(o: u64) -> Vec<u8> {
    let mut v = format!("offset {o} ").into_bytes();
    v.resize(20 + (o % 50) as usize, (o % 251) as u8);
    v
}

fn conc_ts(o: u64) -> i64 {
    5_000 + 2 * o as i64
}

fn check_conc(r: &partlog::RecordRef<'_>) -> Result<(), String> {
    let o = r.offset();
    if r.value() != Some(conc_value(o).as_slice())
        || r.timestamp() != conc_ts(o)
        || r.key() != Some(&o.to_le_bytes()[..])
    {
        return Err(format!("record {o} has wrong contents: {r:?}"));
    }
    Ok(())
}

/// Four readers (random reads, iteration, timestamp lookups, segment metadata) while one writer
/// appends 20k records through small segments and a tiny handle cache: readers never see an
/// error or a record whose contents do not match its offset.
#[test]
fn readers_racing_a_writer_see_only_correct_records() -> TestResult {
    let s = seed("readers_racing_a_writer_see_only_correct_records");
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let cfg = TopicConfig::default().segment_bytes(32 << 10).index_interval_bytes(512);
    let p = Partition::options().config(cfg.clone()).handle_cache(HandleCache::new(2)).open(&dir)?;
    const TOTAL: u64 = 20_000;
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for id in 0..4u64 {
        let (p, done, reads) = (p.clone(), Arc::clone(&done), Arc::clone(&reads));
        readers.push(std::thread::spawn(move || -> Result<(), String> {
            let mut rng = Rng::new(s ^ (id + 1));
            let mut rounds = 0u64;
            while !done.load(Ordering::Acquire) || rounds < 20 {
                rounds += 1;
                let end = p.log_end_offset();
                if end == 0 {
                    std::thread::yield_now();
                    continue;
                }
                let o = rng.below(end);
                match (id + rounds) % 4 {
                    0 | 1 => {
                        let budget = rng.below(3000) as usize;
                        let r = p.read(o, budget).map_err(|e| format!("read({o}): {e}"))?;
                        let mut want = o;
                        for rec in r.iter() {
                            if rec.offset() != want {
                                return Err(format!("read({o}): offset {} where {want} was due", rec.offset()));
                            }
                            check_conc(&rec)?;
                            want += 1;
                        }
                        if want == o || r.next_fetch_offset() != want {
                            return Err(format!("read({o}) returned nothing or a wrong next offset"));
                        }
                    }
                    2 => {
                        for (want, rec) in (o..).zip(p.iter(o).take(300)) {
                            let rec = rec.map_err(|e| format!("iter({o}): {e}"))?;
                            if rec.offset != want || rec.value != Some(conc_value(want)) {
                                return Err(format!("iter({o}): got {} where {want} was due", rec.offset));
                            }
                        }
                    }
                    _ => {
                        let t = p.offset_for_timestamp(conc_ts(o)).map_err(|e| format!("by ts: {e}"))?;
                        if t.map(|t| (t.offset, t.timestamp)) != Some((o, conc_ts(o))) {
                            return Err(format!("offset_for_timestamp({}) = {t:?}, want {o}", conc_ts(o)));
                        }
                        let segs = p.segments();
                        if segs.windows(2).any(|w| w[0].end_offset != w[1].base_offset) {
                            return Err(format!("segments with holes: {segs:?}"));
                        }
                    }
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let mut rng = Rng::new(s);
    let mut o = 0u64;
    let writer = (|| -> TestResult {
        while o < TOTAL {
            let n = rng.range(1, 8).min(TOTAL - o);
            let vals: Vec<(Vec<u8>, [u8; 8])> = (o..o + n).map(|x| (conc_value(x), x.to_le_bytes())).collect();
            let recs: Vec<Record<'_>> = vals
                .iter()
                .zip(o..)
                .map(|((v, k), x)| Record::new().key(&k[..]).value(v.as_slice()).timestamp(conc_ts(x)))
                .collect();
            let info = p.append_batch(&recs)?;
            assert_eq!(info.base_offset, o);
            o += n;
        }
        Ok(())
    })();
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().map_err(|_| "reader panicked")??;
    }
    writer?;
    assert!(reads.load(Ordering::Relaxed) >= 80, "readers did work");
    assert!(p.segments().len() > 10, "rolled many times");
    let check_final = |p: &Partition| -> TestResult {
        let mut want = 0;
        for r in p.iter(0) {
            let r = r?;
            assert_eq!(r.offset, want);
            assert_eq!(r.value, Some(conc_value(want)));
            want += 1;
        }
        assert_eq!(want, TOTAL);
        Ok(())
    };
    check_final(&p)?;
    p.close()?;
    drop(p);
    check_final(&Partition::open_with(&dir, cfg)?)
}

/// Records per batch in [`sealed_log`]: enough that each batch is larger than the index
/// interval, so each has its own index entry.
const PER_BATCH: u64 = 80;

/// A sealed log of `batches` batches of [`PER_BATCH`] records, values `value_of(offset, 60)`.
fn sealed_log(dir: &Path, batches: u64) -> TestResult<Partition> {
    let cfg = TopicConfig::default().segment_bytes(256 << 10);
    let p = Partition::open_with(dir, cfg.clone())?;
    for b in 0..batches {
        let vals: Vec<Vec<u8>> = (0..PER_BATCH).map(|i| value_of(b * PER_BATCH + i, 60)).collect();
        let recs: Vec<Record<'_>> = vals.iter().map(|v| Record::with_value(&v[..])).collect();
        p.append_batch(&recs)?;
    }
    p.close()?;
    Ok(Partition::open_with(dir, cfg)?)
}

#[test]
fn first_and_repeated_small_reads_agree_on_mapped_and_copied_paths() -> TestResult {
    // The first small read in a chunk of a sealed segment copies with pread; later ones use the
    // map and skip a batch's CRC check that already passed. All must return the same records.
    let dir = tempfile::tempdir()?;
    let p = sealed_log(dir.path(), 400)?;
    assert!(p.segments().len() > 3, "several sealed segments");
    let end = p.log_end_offset();
    let mut rng = Rng::new(seed("first_and_repeated_small_reads"));
    let offsets: Vec<u64> = (0..3000).map(|_| rng.below(end)).collect();
    for pass in 0..3 {
        for &o in &offsets {
            let r = p.read(o, 1)?;
            let got = r.iter().next().ok_or("a record")?;
            assert_eq!(got.offset(), o, "pass {pass}");
            assert_eq!(got.value(), Some(&value_of(o, 60)[..]), "pass {pass} offset {o}");
            // The whole batch comes back and the next fetch offset is its end.
            assert_eq!(r.next_fetch_offset(), (o / PER_BATCH + 1) * PER_BATCH);
        }
    }
    // With maps off every read copies; same answers.
    drop(p);
    let p = partlog::PartitionOptions::default().mmap_reads(false).open(dir.path())?;
    for &o in offsets.iter().take(500) {
        let r = p.read(o, 1)?;
        assert_eq!(r.iter().next().map(|x| x.value().map(<[u8]>::to_vec)), Some(Some(value_of(o, 60))));
    }
    Ok(())
}

#[test]
fn damage_in_a_sealed_batch_is_caught_at_its_first_read_through_each_handle() -> TestResult {
    // A batch's CRC passes once per open handle; a damaged batch is caught the first time it is
    // read, and again after a reopen even if it was damaged after a read that passed.
    let dir = tempfile::tempdir()?;
    let p = sealed_log(dir.path(), 100)?;
    let first = p.segments()[0];
    assert!(!first.active);
    let log = seg_path(dir.path(), first.base_offset, "log");
    let bytes = std::fs::read(&log)?;
    let batches = parse_batches(&bytes);
    let flip = |at: usize| -> TestResult {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&log)?;
        let mut b = [0u8];
        f.read_exact_at(&mut b, at as u64)?;
        f.write_all_at(&[b[0] ^ 0x5a], at as u64)?;
        Ok(())
    };
    // Batch 3 damaged before any read: the first read of it fails, and so does the next.
    let (pos3, len3, base3, ..) = batches[3];
    assert!(len3 > 4096, "each batch has its own index entry");
    flip(pos3 + len3 - 5)?;
    for _ in 0..2 {
        match p.read(base3 + 7, 1) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("expected Corrupt, got {:?}", other.map(|r| r.size_bytes())),
        }
    }
    // Batch 5 read (and so checked) first, damaged afterwards: a new handle catches it.
    let (pos5, len5, base5, ..) = batches[5];
    assert_eq!(p.read(base5 + 1, 1)?.iter().next().map(|r| r.offset()), Some(base5 + 1));
    flip(pos5 + len5 - 5)?;
    drop(p);
    let p = Partition::open_with(dir.path(), TopicConfig::default().segment_bytes(256 << 10))?;
    for _ in 0..2 {
        match p.read(base5 + 1, 1) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("expected Corrupt after reopen, got {:?}", other.map(|r| r.size_bytes())),
        }
    }
    // Undamaged batches around them still read.
    let (_, _, base4, ..) = batches[4];
    assert_eq!(p.read(base4, 1)?.iter().next().map(|r| r.offset()), Some(base4));
    Ok(())
}

/// Small reads that come back to the same sealed batches (the third read of a batch starts its
/// walk from a record directory built at the second) return exactly what the first did, in
/// dense batches and in compacted ones with offset gaps.
#[test]
fn repeated_small_reads_of_sealed_batches_return_the_same_records() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let cfg = TopicConfig::default().segment_bytes(64 << 10).cleanup_policy(partlog::CleanupPolicy::COMPACT);
    let mut expected: Vec<(u64, Vec<u8>)> = Vec::new();
    {
        let p = Partition::open_with(&dir, cfg.clone())?;
        let mut offset = 0u64;
        for b in 0..40u64 {
            let n = 40 + (b % 5) * 20;
            let vals: Vec<Vec<u8>> = (0..n).map(|i| value_of(offset + i, 20 + ((offset + i) % 90) as usize)).collect();
            // Every third record has a key of its own; the others share 200 keys, so compaction
            // leaves gaps everywhere.
            let keys: Vec<String> = (offset..offset + n)
                .map(|o| if o % 3 == 0 { format!("u{o}") } else { format!("k{}", o % 200) })
                .collect();
            let recs: Vec<Record<'_>> =
                keys.iter().zip(&vals).map(|(k, v)| Record::new().key(k.as_str()).value(&v[..])).collect();
            p.append_batch(&recs)?;
            offset += n;
        }
        p.close()?;
    }
    let read_all_three_times = |p: &Partition, expected: &[(u64, Vec<u8>)]| -> TestResult {
        let mut rng = Rng::new(seed("repeated_small_reads"));
        for pass in 0..3 {
            let mut order: Vec<usize> = (0..expected.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.range(0, i as u64) as usize);
            }
            for &i in &order {
                let (o, v) = &expected[i];
                let recs = p.read(*o, 1)?;
                let got: Vec<(u64, Vec<u8>)> =
                    recs.iter().map(|r| (r.offset(), r.value().unwrap_or_default().to_vec())).collect();
                // The whole rest of the batch, in order, from the record asked for.
                assert!(!got.is_empty(), "pass {pass}: nothing at {o}");
                assert_eq!(&got[..], &expected[i..i + got.len()], "pass {pass}: read at {o}");
                assert_eq!(&got[0].1, v);
            }
        }
        Ok(())
    };
    // Dense batches, every segment but the last sealed and mapped.
    let all: Vec<(u64, Vec<u8>)> = {
        let p = Partition::open_with(&dir, cfg.clone())?;
        p.iter(0).map(|r| r.map(|r| (r.offset, r.value.unwrap_or_default()))).collect::<Result<_, _>>()?
    };
    expected.extend(all);
    assert!(expected.len() > 2_000);
    {
        let p = Partition::open_with(&dir, cfg.clone())?;
        assert!(p.segments().len() > 3, "sealed segments to read");
        read_all_three_times(&p, &expected)?;
        p.close()?;
    }
    // Compacted: the survivors keep their offsets, with gaps between them.
    {
        let p = Partition::open_with(&dir, cfg.clone().min_cleanable_dirty_ratio(0.0))?;
        assert!(p.compact()?.records_removed > 0);
        p.close()?;
    }
    let p = Partition::open_with(&dir, cfg)?;
    let left: Vec<(u64, Vec<u8>)> =
        p.iter(0).map(|r| r.map(|r| (r.offset, r.value.unwrap_or_default()))).collect::<Result<_, _>>()?;
    assert!(left.len() < expected.len(), "{} left of {}", left.len(), expected.len());
    assert!(left.windows(2).any(|w| w[1].0 > w[0].0 + 1), "offset gaps");
    read_all_three_times(&p, &left)?;
    Ok(())
}
