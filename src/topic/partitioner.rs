//! Kafka's default partitioner for keyed records: 32-bit MurmurHash2 of the key bytes (seed
//! `0x9747b28c`, as in Kafka's `Utils.murmur2`), sign bit cleared, modulo the partition count.
//! The same key lands in the same partition a Kafka cluster with the same partition count would
//! choose.

/// Kafka's `Utils.murmur2` of `data`, as a signed 32-bit value.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&b) = tail.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions` (> 0).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn matches_kafka_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for &(key, want) in cases {
            assert_eq!(murmur2(key), want, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partitions_follow_the_formula() {
        // toPositive(murmur2) % n, computed from the vectors above by hand.
        assert_eq!(partition_for_key(b"21", 3), 0);
        assert_eq!(partition_for_key(b"foobar", 10), 6);
        assert_eq!(partition_for_key(b"a-little-bit-longer-string", 10), 9);
        assert_eq!(partition_for_key(b"abc", 10), 7);
        for n in 1..50 {
            assert!(partition_for_key(b"anything", n) < n);
        }
    }
}
