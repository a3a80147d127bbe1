//! The `decode_batch` target.
//!
//! First input byte, bit 0 clear: **decode mode**. The rest is a batch (with bit 1 the length
//! field is set to its size, with bit 2 the checksum is recomputed, so the fuzzer gets past
//! both). `validate` must agree with the reference decoder in [`crate::spec`]; an accepted
//! batch must read back through a partition exactly as the reference decodes it.
//!
//! Bit 0 set: **round-trip mode**. The rest describes records (see [`round_trip`]), which are
//! built into a batch with `BatchBuilder`; `validate` must accept it (unless its offsets
//! overflow) and it must decode to the same records.

use std::path::Path;

use partlog::fs::FileSystem;
use partlog::fs::sim::SimFs;
use partlog::testing::{BatchBuilder, BatchHeader, validate};
use partlog::{OffsetAndTimestamp, Partition, StoredRecord};

use crate::input::{Input, Output};
use crate::ops::{decode_rec, encode_rec};
use crate::spec;

/// Runs one input; panics on a disagreement.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    if mode & 1 == 0 {
        decode(mode, inp.rest());
    } else {
        round_trip(mode, &mut inp);
    }
}

fn decode(mode: u8, bytes: &[u8]) {
    let mut buf = bytes.to_vec();
    if mode & 2 != 0 && buf.len() >= 4 {
        let n = buf.len() as u32;
        spec::put_u32(&mut buf, 0, n);
    }
    if mode & 4 != 0 && buf.len() >= 8 {
        let crc = spec::crc32(&buf[8..]);
        spec::put_u32(&mut buf, 4, crc);
    }
    match (validate(&buf), spec::decode(&buf)) {
        (Ok(h), Ok(b)) => {
            check_header(&h, &b);
            check_readable(&buf, &b);
        }
        (Err(_), Err(_)) => {}
        (Ok(h), Err(why)) => panic!("validate accepted a batch the format forbids ({why}): {h:?}"),
        (Err(kind), Ok(b)) => panic!("validate rejected a well-formed batch ({kind}): {b:?}"),
    }
}

fn check_header(h: &BatchHeader, b: &spec::Batch) {
    let got = (
        h.length,
        h.crc,
        h.attributes,
        h.base_offset,
        h.last_offset_delta,
        h.base_timestamp,
        h.max_timestamp,
        h.record_count,
    );
    let want = (
        b.length,
        b.crc,
        b.attributes,
        b.base_offset,
        b.last_offset_delta,
        b.base_timestamp,
        b.max_timestamp,
        b.record_count,
    );
    assert_eq!(got, want, "header fields differ from the reference decoder");
    assert_eq!(h.last_offset(), b.last_offset());
}

/// Round-trip input: base offset (a u64 with mode bit 1, else one byte), record count
/// (byte % 9), then per record a timestamp (i64), a gap to its offset delta (byte % 4) and
/// the record ([`decode_rec`]); finally a byte whose bit 7 asks for `last_offset_delta` to
/// exceed the last record's by its low bits. Mode bit 2 is the attributes' timestamp type (bit 3).
pub fn round_trip(mode: u8, inp: &mut Input<'_>) {
    let base = if mode & 2 != 0 { inp.u64() } else { u64::from(inp.u8()) };
    let attributes = u16::from((mode >> 2) & 1) << 3;
    let n = inp.u8() % 9;
    let mut builder = BatchBuilder::new();
    builder.begin(base);
    let mut expected = Vec::new();
    let mut delta = 0u64;
    for i in 0..n {
        let ts = inp.i64();
        let gap = u64::from(inp.u8() % 4);
        delta = if i == 0 { gap } else { delta + 1 + gap };
        let rec = decode_rec(inp);
        builder.push(&rec.to_record(), delta, ts);
        expected.push(StoredRecord {
            offset: base.wrapping_add(delta),
            timestamp: ts,
            key: rec.key,
            value: rec.value,
            headers: rec.headers,
        });
    }
    let extra = inp.u8();
    let last = (extra & 0x80 != 0).then(|| delta + u64::from(extra & 0x7f));
    let (bytes, header) = builder.finish(attributes, last);
    let bytes = bytes.to_vec();
    let valid = base.checked_add(u64::from(header.last_offset_delta)).is_some_and(|l| l < spec::MAX_OFFSET);
    match validate(&bytes) {
        Ok(h) => {
            assert!(valid, "validate accepted a batch whose last offset is past the offset space: {h:?}");
            assert_eq!(h, header, "validate's header differs from the builder's");
            let b = spec::decode(&bytes).unwrap_or_else(|e| panic!("reference decoder rejects a built batch: {e}"));
            check_header(&h, &b);
            assert_eq!(b.records, expected, "the batch decodes to other records than were built");
            assert_eq!(h.record_count as usize, expected.len());
            let max = expected.iter().map(|r| r.timestamp).max();
            if let Some(max) = max {
                assert_eq!(h.max_timestamp, max, "max_timestamp is not the records' largest");
                assert_eq!(h.base_timestamp, expected[0].timestamp);
            }
            check_readable(&bytes, &b);
        }
        Err(kind) => assert!(!valid, "validate rejected a batch built by BatchBuilder ({kind}): {header:?}"),
    }
}

/// A valid batch planted as a segment must open, and read back as the reference decodes it.
fn check_readable(buf: &[u8], b: &spec::Batch) {
    let fs = SimFs::new();
    let dir = Path::new("/p");
    let planted = fs.create_dir_all(dir).and_then(|()| fs.sync_dir(Path::new("/")));
    planted.and_then(|()| fs.write_file(&dir.join(format!("{:020}.log", b.base_offset)), buf)).expect("plant");
    let p = Partition::options()
        .fs(fs.clone())
        .open(dir)
        .unwrap_or_else(|e| panic!("a valid batch as the only segment does not open: {e}"));
    assert_eq!((p.log_start_offset(), p.log_end_offset()), (b.base_offset, b.next_offset()));
    let got: Vec<StoredRecord> =
        p.iter(b.base_offset).map(|r| r.unwrap_or_else(|e| panic!("reading a valid batch failed: {e}"))).collect();
    assert_eq!(got, b.records, "the partition reads other records than the reference decoder");
    let recs = p.read(b.base_offset, 0).unwrap_or_else(|e| panic!("read: {e}"));
    // A batch without records may be passed over (nothing in it to return).
    if !(b.records.is_empty() && recs.is_empty()) {
        assert_eq!(recs.as_bytes(), buf, "read returned other bytes than the batch");
    }
    // offset_for_timestamp relies on the header's max_timestamp: check it where that is true.
    let max = b.records.iter().map(|r| r.timestamp).max();
    if max.is_some_and(|m| b.max_timestamp >= m && b.max_timestamp != i64::MIN) {
        let mut probes: Vec<i64> = b.records.iter().map(|r| r.timestamp).collect();
        probes.extend([i64::MIN, i64::MAX, b.max_timestamp]);
        for t in probes {
            let want = b
                .records
                .iter()
                .find(|r| r.timestamp >= t)
                .map(|r| OffsetAndTimestamp { offset: r.offset, timestamp: r.timestamp });
            let got = p.offset_for_timestamp(t).unwrap_or_else(|e| panic!("offset_for_timestamp({t}): {e}"));
            assert_eq!(got, want, "offset_for_timestamp({t}) disagrees with brute force");
        }
    }
    p.close().unwrap_or_else(|e| panic!("close: {e}"));
}

/// Seed inputs: valid batches in decode mode and builder descriptions.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let rec = |i: u8| crate::model::Rec {
        key: i.is_multiple_of(2).then(|| vec![b'k', i]),
        value: (i % 3 != 2).then(|| vec![b'v'; usize::from(i) * 3]),
        headers: if i % 2 == 1 { vec![("h".to_owned(), Some(vec![i])), ("é".to_owned(), None)] } else { vec![] },
        timestamp: None,
    };
    let mut b = BatchBuilder::new();
    b.begin(5);
    for i in 0..3u8 {
        b.push(&rec(i).to_record(), u64::from(i) * 2, 1_000 + i64::from(i));
    }
    let batch = b.finish(0, Some(7)).0.to_vec();
    let mut decode = vec![0u8];
    decode.extend_from_slice(&batch);
    let mut fixed = vec![6u8];
    fixed.extend_from_slice(&batch);
    fixed[1 + 60] ^= 0x20; // a changed byte, checksum repaired by the mode bits

    let mut rt = Output::default();
    rt.u8(1).u8(9).u8(3);
    for i in 0..3u8 {
        rt.i64(i64::from(i) * 100 - 50).u8(i);
        encode_rec(&mut rt, &rec(i));
    }
    rt.u8(0x83);
    let mut big = Output::default();
    big.u8(3 | 4).u64(i64::MAX as u64 - 10).u8(2);
    for i in 0..2u8 {
        big.i64(i64::MIN + i64::from(i)).u8(0);
        encode_rec(&mut big, &rec(i + 3));
    }
    big.u8(0x85);
    vec![
        ("decode-valid", decode),
        ("decode-fixups", fixed),
        ("round-trip", rt.buf),
        ("round-trip-overflow", big.buf),
        ("empty", vec![1, 0, 0]),
    ]
}
