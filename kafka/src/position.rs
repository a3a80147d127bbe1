//! Where a copied record came from: the header that carries its source offset, and the pure
//! decisions of where to resume made from the destination's last record.
//!
//! | header | written by | value |
//! |---|---|---|
//! | [`PARTLOG_OFFSET_HEADER`] (`partlog.offset`) | the mirror, on every Kafka record | the partlog offset, 8 bytes big-endian |
//! | [`KAFKA_OFFSET_HEADER`] (`kafka.offset`) | the import, on every partlog record | the Kafka offset, 8 bytes big-endian |
//!
//! The header is the last one of the record, after the source record's own headers, so a
//! consumer that ignores it sees the source headers unchanged and in order.

/// Header the mirror adds to every Kafka record: the partlog offset it was copied from, 8
/// bytes big-endian (Kafka's byte order).
pub const PARTLOG_OFFSET_HEADER: &str = "partlog.offset";

/// Header the import adds to every partlog record: the Kafka offset it was copied from, 8
/// bytes big-endian.
pub const KAFKA_OFFSET_HEADER: &str = "kafka.offset";

/// The header value for `offset`.
pub fn encode_offset(offset: u64) -> [u8; 8] {
    offset.to_be_bytes()
}

/// The offset in a header value; `None` unless it is exactly 8 bytes.
pub fn decode_offset(value: Option<&[u8]>) -> Option<u64> {
    let bytes: [u8; 8] = value?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The last value of header `name` among `headers`, if any.
pub(crate) fn last_header<'a>(
    headers: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    name: &str,
) -> Option<Option<&'a [u8]>> {
    headers.filter(|(k, _)| *k == name).map(|(_, v)| v).last()
}

/// Bytes of Kafka's zig-zag varint encoding of `v`.
fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

fn bytes_len(b: Option<usize>) -> usize {
    match b {
        None => varint_len(-1),
        Some(n) => varint_len(n as i64) + n,
    }
}

/// Bytes of a Kafka v2 record batch holding this one record (the size `max.message.bytes`
/// limits): the 61-byte batch header, then the record with its length prefix.
pub fn batch_size(
    key: Option<usize>,
    value: Option<usize>,
    headers: impl Iterator<Item = (usize, Option<usize>)>,
) -> usize {
    const BATCH_HEADER: usize = 61;
    let mut count = 0i64;
    let mut hbytes = 0usize;
    for (k, v) in headers {
        count += 1;
        hbytes += bytes_len(Some(k)) + bytes_len(v);
    }
    // attributes, timestamp delta 0, offset delta 0.
    let body = 1 + 1 + 1 + bytes_len(key) + bytes_len(value) + varint_len(count) + hbytes;
    BATCH_HEADER + varint_len(body as i64) + body
}

/// What the last record of a destination partition says about where to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The destination partition is empty.
    Empty,
    /// Its last record carries a position header with this source offset.
    At(u64),
    /// Its last record has no position header.
    NoHeader,
    /// Its last record's position header is not 8 bytes.
    BadHeader(usize),
}

/// Where to resume copying a source partition, given the destination's tail and the
/// source's log end: the offset after the one the tail came from, or, for an empty
/// destination, `empty_start`. `Err` carries the reason a foreign writer is suspected.
pub fn resume_at(tail: &Tail, empty_start: u64, source_end: u64) -> Result<u64, String> {
    match *tail {
        Tail::Empty => Ok(empty_start),
        Tail::NoHeader => Err("its last record has no position header".into()),
        Tail::BadHeader(n) => Err(format!("its last record's position header is {n} bytes, not 8")),
        Tail::At(o) if o >= source_end => {
            Err(format!("its last record says it was copied from offset {o}, but the source's log end is {source_end}"))
        }
        Tail::At(o) => Ok(o + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_big_endian() {
        assert_eq!(encode_offset(1), [0, 0, 0, 0, 0, 0, 0, 1]);
        for o in [0, 1, 255, 256, u64::MAX] {
            assert_eq!(decode_offset(Some(&encode_offset(o))), Some(o));
        }
        assert_eq!(decode_offset(None), None);
        assert_eq!(decode_offset(Some(&[1, 2, 3])), None);
        assert_eq!(decode_offset(Some(&[0; 9])), None);
    }

    #[test]
    fn resume_decisions() {
        assert_eq!(resume_at(&Tail::Empty, 7, 10), Ok(7));
        assert_eq!(resume_at(&Tail::At(0), 0, 10), Ok(1));
        assert_eq!(resume_at(&Tail::At(9), 0, 10), Ok(10));
        assert!(resume_at(&Tail::At(10), 0, 10).is_err());
        assert!(resume_at(&Tail::NoHeader, 0, 10).is_err());
        assert!(resume_at(&Tail::BadHeader(4), 0, 10).unwrap_err().contains("4 bytes"));
    }

    #[test]
    fn batch_sizes_follow_kafkas_layout() {
        // One record, no key, no value, no headers: 61 + length(1) + 1+1+1 + key(-1: 1) +
        // value(-1: 1) + header count(1) = 68 (Kafka's DefaultRecordBatch for one empty record).
        assert_eq!(batch_size(None, None, std::iter::empty()), 68);
        assert_eq!(batch_size(Some(3), Some(5), std::iter::empty()), 68 + 3 + 5);
        assert_eq!(batch_size(None, None, [(4, Some(8))].into_iter()), 68 + 1 + 4 + 1 + 8);
        // A 200-byte value needs a 2-byte varint (zig-zag 400).
        assert_eq!(batch_size(None, Some(200), std::iter::empty()), 68 + 1 + 200 + 1);
        assert_eq!(varint_len(-1), 1);
        assert_eq!(varint_len(63), 1);
        assert_eq!(varint_len(64), 2);
    }
}
