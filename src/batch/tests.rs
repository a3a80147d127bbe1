use super::*;
use crate::record::Record;

fn build(records: &[Record<'_>], base: u64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.begin(base);
    for (i, r) in records.iter().enumerate() {
        b.push(r, i as u64, r.timestamp.unwrap_or(1000 + i as i64));
    }
    b.finish(0, None).0.to_vec()
}

#[test]
fn round_trip_keeps_every_field() {
    let records = vec![
        Record::new().key("k1").value("v1").header("h", "x").timestamp(5),
        Record::new().value("v2").timestamp(-7),
        Record::new().key("k3").null_header("n").timestamp(i64::MAX),
        Record::new(),
    ];
    let buf = build(&records, 42);
    let h = validate(&buf).unwrap();
    assert_eq!(h.base_offset, 42);
    assert_eq!(h.record_count, 4);
    assert_eq!(h.last_offset(), 45);
    assert_eq!(h.max_timestamp, i64::MAX);
    let got: Vec<_> = RecordIter::new(&buf, h).map(|r| r.to_owned()).collect();
    assert_eq!(got.len(), 4);
    for (i, (g, r)) in got.iter().zip(&records).enumerate() {
        assert_eq!(g.offset, 42 + i as u64);
        assert_eq!(g.key.as_deref(), r.key.as_deref());
        assert_eq!(g.value.as_deref(), r.value.as_deref());
        assert_eq!(Some(g.timestamp), r.timestamp.or(Some(1000 + i as i64)));
        let hs: Vec<_> =
            r.headers.iter().map(|h| (h.key.to_string(), h.value.as_deref().map(<[u8]>::to_vec))).collect();
        assert_eq!(g.headers, hs);
    }
}

#[test]
fn finish_returns_the_header_it_wrote() {
    let mut b = BatchBuilder::new();
    b.begin(7);
    b.push(&Record::new().key("k").value("v"), 0, 11);
    b.push(&Record::new().value("w"), 1, 12);
    let (bytes, returned) = b.finish(0, None);
    let bytes = bytes.to_vec();
    let parsed = validate(&bytes).unwrap();
    assert_ne!(returned.crc, 0);
    assert_eq!(returned, parsed);
}

#[test]
fn every_flipped_byte_is_detected() {
    let buf = build(&[Record::new().key("a").value("bcd"), Record::new().value("e")], 7);
    for i in 0..buf.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = buf.clone();
            bad[i] ^= bit;
            assert!(validate(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
    }
}

#[test]
fn named_header_fields_map_to_kinds() {
    let buf = build(&[Record::new().value("x")], 0);
    for &(name, off) in FIELD_OFFSETS {
        let mut bad = buf.clone();
        bad[off] ^= 0x40;
        let err = validate(&bad).unwrap_err();
        let expected_ok = match name {
            "length" => err == CorruptKind::BatchLength,
            "magic" => err == CorruptKind::BatchMagic,
            "attributes" | "reserved1" | "reserved2" => err == CorruptKind::BatchInvalid,
            _ => matches!(err, CorruptKind::BatchChecksum | CorruptKind::BatchInvalid),
        };
        assert!(expected_ok, "field {name}: got {err:?}");
    }
}

#[test]
fn hostile_lengths_are_rejected_without_allocating() {
    let mut buf = build(&[Record::new().value("x")], 0);
    LE::write_u32(&mut buf[OFF_LENGTH..], u32::MAX);
    assert_eq!(BatchHeader::parse(&buf, usize::MAX), Err(CorruptKind::BatchLength));
    LE::write_u32(&mut buf[OFF_LENGTH..], 0);
    assert_eq!(BatchHeader::parse(&buf, usize::MAX), Err(CorruptKind::BatchLength));
    assert_eq!(BatchHeader::parse(&[0u8; HEADER_LEN], usize::MAX), Err(CorruptKind::BatchLength));
    assert_eq!(BatchHeader::parse(&buf[..10], usize::MAX), Err(CorruptKind::BatchLength));
}

#[test]
fn truncated_batches_never_validate() {
    let buf = build(&[Record::new().key("k").value(vec![9u8; 300])], 3);
    for cut in 0..buf.len() {
        assert!(validate(&buf[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn iterating_from_the_record_directory_yields_what_a_full_walk_yields() {
    // Records of assorted sizes (keys, tombstones, headers), so positions are irregular.
    let vals: Vec<Vec<u8>> = (0..200usize).map(|i| vec![i as u8; (i * 37) % 300]).collect();
    let records: Vec<Record<'_>> = (0..200usize)
        .map(|i| {
            let r = Record::new().key(format!("k{i}")).timestamp(i as i64);
            let r = if i % 11 == 0 { r } else { r.value(&vals[i][..]) };
            if i % 7 == 0 { r.header("h", "x") } else { r }
        })
        .collect();
    let buf = build(&records, 1_000);
    let h = validate(&buf).unwrap();
    let dir = record_directory(&buf, h).expect("a dense batch of 200 records has a directory");
    assert_eq!(dir.len(), 25, "one entry per eight records");
    let all: Vec<_> = RecordIter::new(&buf, h).map(|r| r.to_owned()).collect();
    for target in 1_000..1_200u64 {
        let mut it = RecordIter::from_directory(&buf, h, &dir, target);
        it.skip_before(target).unwrap();
        let got: Vec<_> = it.map(|r| r.to_owned()).collect();
        assert_eq!(got, all[(target - 1_000) as usize..], "from offset {target}");
    }
    // Below the batch and past it: the whole batch, and nothing.
    let got: Vec<_> = RecordIter::from_directory(&buf, h, &dir, 0).map(|r| r.to_owned()).collect();
    assert_eq!(got, all);
    let mut it = RecordIter::from_directory(&buf, h, &dir, 5_000);
    it.skip_before(5_000).unwrap();
    assert_eq!(it.count(), 0);
}

#[test]
fn only_dense_batches_of_enough_records_get_a_directory() {
    let many: Vec<Record<'_>> = (0..64).map(|_| Record::new().value("v")).collect();
    let buf = build(&many, 0);
    assert!(record_directory(&buf, validate(&buf).unwrap()).is_some());
    let few = build(&many[..31], 0);
    assert!(record_directory(&few, validate(&few).unwrap()).is_none(), "31 records: walking them is cheap");
    let enough = build(&many[..32], 0);
    assert_eq!(record_directory(&enough, validate(&enough).unwrap()).map(|d| d.len()), Some(4), "32 records do");
    // An offset gap, as compaction leaves: record i is no longer at base + i.
    let mut b = BatchBuilder::new();
    b.begin(0);
    for i in 0..64u64 {
        b.push(&Record::new().value("v"), i * 2, 1);
    }
    let gappy = b.finish(0, None).0.to_vec();
    let h = validate(&gappy).unwrap();
    assert_eq!(h.last_offset_delta, 126);
    assert!(record_directory(&gappy, h).is_none());
}

/// Each consistency rule of the header refuses a header on its own (`parse` does not check
/// the CRC, so the header bytes are changed in place): a record count above the batch's
/// offset span, a last offset at the end of the offset space, a reserved byte set, a delete
/// horizon without its attribute bit or the bit without a horizon. Kills `||` -> `&&` between
/// the count rule and the offset-space rule (the header was then refused only when both
/// held).
#[test]
fn each_header_rule_refuses_a_header_on_its_own() {
    let good = build(&[Record::new().value("a"), Record::new().value("b")], 10);
    let parse = |change: &dyn Fn(&mut [u8])| {
        let mut b = good.clone();
        change(&mut b);
        BatchHeader::parse(&b, b.len())
    };
    let invalid = |r: Result<BatchHeader, CorruptKind>| matches!(r, Err(CorruptKind::BatchInvalid));
    assert!(parse(&|_| {}).is_ok());
    // Two offsets (last offset delta 1), three records.
    assert!(invalid(parse(&|b| LE::write_u32(&mut b[OFF_COUNT..], 3))));
    // The last offset at MAX_OFFSET; one below it is still an offset.
    assert!(invalid(parse(&|b| LE::write_u64(&mut b[OFF_BASE_OFFSET..], MAX_OFFSET - 1))));
    assert!(parse(&|b| LE::write_u64(&mut b[OFF_BASE_OFFSET..], MAX_OFFSET - 2)).is_ok());
    assert!(invalid(parse(&|b| b[OFF_RESERVED1] = 1)));
    assert!(invalid(parse(&|b| LE::write_u16(&mut b[OFF_RESERVED2..], 1))));
    assert!(invalid(parse(&|b| LE::write_i64(&mut b[OFF_DELETE_HORIZON..], 5))));
    assert!(invalid(parse(&|b| {
        let a = LE::read_u16(&b[OFF_ATTRIBUTES..]);
        LE::write_u16(&mut b[OFF_ATTRIBUTES..], a | ATTR_DELETE_HORIZON);
    })));
}

/// `validate` walks the records: bytes left over after the declared records, or fewer records
/// than declared, make a batch invalid even with a matching CRC (recomputed here after each
/// change). Kills `||` -> `&&` in the final framing check (a batch was then refused only when
/// both were wrong).
#[test]
fn validate_refuses_leftover_bytes_and_missing_records_alone() {
    let good = build(&[Record::new().value("a"), Record::new().value("b")], 10);
    assert!(validate(&good).is_ok());
    let reseal = |mut b: Vec<u8>| {
        let len = b.len() as u32;
        LE::write_u32(&mut b[OFF_LENGTH..], len);
        let crc = crc32fast::hash(&b[OFF_MAGIC..]);
        LE::write_u32(&mut b[OFF_CRC..], crc);
        b
    };
    // Three bytes after the two declared records.
    let mut extra = good.clone();
    extra.extend_from_slice(&[0, 0, 0]);
    let extra = reseal(extra);
    assert!(matches!(validate(&extra), Err(CorruptKind::BatchInvalid)), "{:?}", validate(&extra));
    // Three records declared over three offsets, two present.
    let mut short = good.clone();
    LE::write_u32(&mut short[OFF_LAST_DELTA..], 2);
    LE::write_u32(&mut short[OFF_COUNT..], 3);
    let short = reseal(short);
    assert!(BatchHeader::parse(&short, short.len()).is_ok(), "the header alone is consistent");
    assert!(validate(&short).is_err());
}

/// Passing over records checks their offset deltas as it goes: a checksum-valid batch whose
/// deltas do not strictly increase (0, 2, 2, 3) is malformed when `skip_before` meets the
/// repeated one, and so is decoding them. Kills `||` -> `&&` in that check in `skip_before`
/// and in `next_checked` (a repeated delta was then let through).
#[test]
fn skipping_records_refuses_offset_deltas_that_do_not_increase() {
    let mut b = BatchBuilder::new();
    b.begin(100);
    for d in [0u64, 2, 2, 3] {
        b.push(&Record::new().value("v"), d, 1_000);
    }
    let buf = b.finish(0, None).0.to_vec();
    let h = verify(&buf).expect("the header and CRC are valid");
    assert_eq!((h.record_count, h.last_offset_delta), (4, 3));
    let mut it = RecordIter::new(&buf, h);
    assert_eq!(it.skip_before(102), Ok(()), "up to the first delta 2, all is in order");
    let mut it = RecordIter::new(&buf, h);
    assert_eq!(it.skip_before(103), Err(CorruptKind::BatchInvalid));
    // Decoding the records meets it too: two records, then the error (and `validate` says so).
    let mut it = RecordIter::new(&buf, h);
    let offsets = [it.next_checked().map(|r| r.map(|r| r.offset)), it.next_checked().map(|r| r.map(|r| r.offset))];
    assert_eq!(offsets, [Ok(Some(100)), Ok(Some(102))]);
    assert!(it.next_checked().is_err());
    assert_eq!(validate(&buf).err(), Some(CorruptKind::BatchInvalid));
}

#[test]
fn varints_round_trip_at_every_length_boundary() {
    // Each value on either side of a length boundary: 2^(7k) − 1 takes k bytes, 2^(7k) takes
    // k + 1, and a middle byte of exactly 0x80 (2^14 is 0x80 0x80 0x01) is a continuation.
    let mut values = vec![0u64, u64::MAX, u64::MAX - 1, 1 << 63];
    for k in 1..=9u32 {
        let edge = 1u64 << (7 * k);
        values.extend([edge - 1, edge, edge + 1]);
    }
    for v in values {
        let mut out = Vec::new();
        put_uvarint(&mut out, v);
        let want_len = if v == 0 { 1 } else { (64 - v.leading_zeros() as usize).div_ceil(7) };
        assert_eq!(out.len(), want_len, "encoded length of {v:#x}");
        assert_eq!(uvarint_len(v), want_len, "computed length of {v:#x}");
        let mut r = Reader::new(&out);
        assert_eq!(r.uvarint(), Some(v), "decoding {v:#x} from {out:02x?}");
        assert!(r.rest().is_empty(), "{v:#x} left bytes behind");
        // The same bytes followed by more: the varint ends where it says.
        let mut more = out.clone();
        more.extend_from_slice(&[0x7f, 0x05]);
        let mut r = Reader::new(&more);
        assert_eq!(r.uvarint(), Some(v), "decoding {v:#x} followed by more bytes");
        assert_eq!(r.rest(), &[0x7f, 0x05][..], "{v:#x} took the wrong number of bytes");
    }
    let signed = [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, i32::MAX as i64, (1 << 62) - 1, -(1 << 62)];
    for v in signed.into_iter().chain([i64::MAX, i64::MIN, i64::MIN + 1]) {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        assert_eq!(out.len(), varint_len(v), "length of {v}");
        assert_eq!(Reader::new(&out).varint(), Some(v), "decoding {v}");
    }
}

#[test]
fn a_ten_byte_varint_may_carry_only_the_top_bit_in_its_last_byte() {
    // Nine continuation bytes carry 63 bits; the tenth may add only bit 63.
    let mut max = vec![0xffu8; 9];
    max.push(0x01);
    assert_eq!(Reader::new(&max).uvarint(), Some(u64::MAX));
    let mut top = vec![0x80u8; 9];
    top.push(0x01);
    assert_eq!(Reader::new(&top).uvarint(), Some(1 << 63));
    // Any larger tenth byte would overflow 64 bits: refused, not wrapped.
    for last in [0x02u8, 0x03, 0x7f] {
        let mut over = vec![0x80u8; 9];
        over.push(last);
        assert_eq!(Reader::new(&over).uvarint(), None, "tenth byte {last:#x}");
    }
    // A tenth byte that asks for an eleventh is refused too.
    let mut long = vec![0x80u8; 9];
    long.extend([0x81, 0x00]);
    assert_eq!(Reader::new(&long).uvarint(), None);
    // So is one that never ends.
    assert_eq!(Reader::new(&[0xff; 11]).uvarint(), None);
}

#[test]
fn a_builder_reports_its_state_and_writes_no_producer() {
    let mut b = BatchBuilder::new();
    b.begin(0);
    assert!(b.is_empty());
    assert_eq!(b.max_timestamp(), i64::MIN);
    b.push(&Record::new().value("a"), 0, 40);
    b.push(&Record::new().value("b"), 1, 25);
    assert!(!b.is_empty());
    assert_eq!(b.max_timestamp(), 40);
    // A batch without an idempotent producer: Kafka's "none" (−1) in all three fields.
    let (bytes, h) = b.finish(0, None);
    assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (-1, -1, -1));
    assert_eq!(LE::read_i64(&bytes[OFF_PRODUCER_ID..]), -1);
    assert_eq!(LE::read_i16(&bytes[OFF_PRODUCER_EPOCH..]), -1);
    assert_eq!(LE::read_i32(&bytes[OFF_BASE_SEQUENCE..]), -1);
    // A delete horizon sets its attribute bit, whether or not the caller's attributes had it.
    for attrs in [0, ATTR_DELETE_HORIZON] {
        b.begin(0);
        b.push(&Record::new().key("k"), 0, 1);
        b.set_delete_horizon(Some(99));
        let (bytes, h) = b.finish(attrs, None);
        assert_eq!(h.attributes & ATTR_DELETE_HORIZON, ATTR_DELETE_HORIZON, "attributes {attrs:#x}");
        assert_eq!(validate(bytes).unwrap().delete_horizon, 99);
    }
}
