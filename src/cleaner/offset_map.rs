//! The cleaner's fixed-size map from key hash to the latest offset of that key (Kafka's
//! `SkimpyOffsetMap`).
//!
//! Each slot holds a 128-bit identity of a key and an offset: 24 bytes, as in Kafka. A key
//! of at most 15 bytes is its own identity (its bytes and its length, so two different short
//! keys never share a slot and no hash is computed); a longer key's identity is its
//! MurmurHash3 x64/128 hash with the top byte set to `0xff`, which no short key's identity
//! has. Lookups use open addressing with linear probing. The map never stores keys, so
//! its memory is `slots × 24` bytes whatever the keys' sizes; the table starts small and
//! doubles whenever it is half full, up to the configured limit (which fills up to the load
//! factor), so a pass over few keys takes little memory however many records it reads.
//!
//! **Collisions.** Two different long keys with the same 120 hash bits are taken for one key:
//! the older of the two records would be removed by compaction. For `n` distinct long keys in
//! one pass the chance of any such pair is about `n² / 2¹²¹` — for a billion keys, below
//! 10⁻¹⁸. Kafka accepts the same risk with MD5 for every key, short ones included.

/// Bytes one slot takes.
pub(crate) const SLOT_BYTES: u64 = 24;

fn table(slots: usize) -> Vec<[u64; 3]> {
    let t = vec![[0u64; 3]; slots];
    huge_pages(&t);
    t
}

/// Asks the kernel to back a large table with transparent huge pages: lookups land on random
/// slots, and with 4 KiB pages nearly every one of them also misses the TLB (a 24 MiB table
/// spans 6,144 pages). Only a hint; the table works the same without it.
fn huge_pages(t: &[[u64; 3]]) {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        const HUGE: usize = 2 << 20;
        let start = t.as_ptr() as usize;
        let end = start + std::mem::size_of_val(t);
        // The whole huge pages inside the table (madvise needs a page-aligned start).
        let from = start.next_multiple_of(HUGE);
        let to = end & !(HUGE - 1);
        if to > from {
            // SAFETY: MADV_HUGEPAGE changes how the kernel backs the range, never its
            // contents or its validity; the range lies inside the table's allocation.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(any(not(target_os = "linux"), miri))]
    let _ = t;
}

/// A table below its largest size doubles once it is this full (or at the load factor, when
/// that is lower); only the largest fills up to the load factor. Linear probing slows down
/// sharply as a table fills: a pass over 925,639 keys ran its map phase 20% faster in a
/// 50%-full table of 48 MiB than in an 88%-full one of 24 MiB.
const GROW_AT: f64 = 0.5;

fn fill_limit(slots: usize, load_factor: f64) -> usize {
    ((slots as f64 * load_factor) as usize).clamp(1, slots.saturating_sub(1).max(1))
}

/// A 128-bit key hash.
pub(crate) type KeyHash = u128;

/// The hash function; replaceable in tests to force collisions.
pub(crate) type HashFn = fn(&[u8]) -> KeyHash;

#[derive(Debug)]
pub(crate) struct OffsetMap {
    /// `[hash low, hash high, offset + 1]`; offset word 0 marks an empty slot. A power of two
    /// long, so a slot index is a mask of the hash.
    slots: Vec<[u64; 3]>,
    used: usize,
    /// Fill limit of the current table.
    max_used: usize,
    /// The table grows (doubling) up to this many slots.
    max_slots: usize,
    load_factor: f64,
    latest: Option<u64>,
    hash: HashFn,
}

/// The first table's slots: the map grows from here as keys come, so memory follows the
/// number of distinct keys rather than of records.
const INITIAL_SLOTS: usize = 1 << 14;

impl OffsetMap {
    /// A map of at most `max_slots` slots that takes at most `max_slots × load_factor` keys.
    pub(crate) fn new(max_slots: usize, load_factor: f64) -> OffsetMap {
        Self::with_hash(max_slots, load_factor, key_identity)
    }

    pub(crate) fn with_hash(max_slots: usize, load_factor: f64, hash: HashFn) -> OffsetMap {
        // A power of two: the largest not above `max_slots` (the memory limit holds).
        let max_slots = max_slots.max(2);
        let max_slots = if max_slots.is_power_of_two() { max_slots } else { max_slots.next_power_of_two() / 2 };
        let slots = INITIAL_SLOTS.min(max_slots);
        let mut m = OffsetMap { slots: table(slots), used: 0, max_used: 0, max_slots, load_factor, latest: None, hash };
        m.max_used = m.fill_limit_at(slots);
        m
    }

    /// How many keys a table of `slots` takes before it grows (or, at the largest size,
    /// before the map is full).
    fn fill_limit_at(&self, slots: usize) -> usize {
        let lf = if slots >= self.max_slots { self.load_factor } else { self.load_factor.min(GROW_AT) };
        fill_limit(slots, lf)
    }

    /// Whether no more distinct keys fit (the table is at its largest and full).
    #[cfg(test)]
    pub(crate) fn is_full(&self) -> bool {
        self.used >= self.max_used && self.slots.len() >= self.max_slots
    }

    /// Distinct keys (hashes) held.
    pub(crate) fn len(&self) -> usize {
        self.used
    }

    /// How many distinct keys fit at most.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        fill_limit(self.max_slots, self.load_factor)
    }

    /// Bytes the table takes now.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.slots.len() as u64 * SLOT_BYTES
    }

    /// The hash of `key`.
    #[inline]
    pub(crate) fn hash(&self, key: &[u8]) -> KeyHash {
        (self.hash)(key)
    }

    /// The slot where `h`'s probe starts. Short keys' identities are their raw bytes, so
    /// both halves are mixed (a counter key varies only in its last bytes).
    #[inline]
    fn home(&self, h: KeyHash) -> usize {
        let x = (h as u64) ^ ((h >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (fmix64(x) as usize) & (self.slots.len() - 1)
    }

    /// Hints the memory of `h`'s slot into the cache ahead of a [`put_hash`](Self::put_hash)
    /// or [`get_hash`](Self::get_hash): a table larger than the caches costs a miss per
    /// lookup otherwise.
    #[inline]
    pub(crate) fn prefetch(&self, h: KeyHash) {
        #[cfg(target_arch = "x86_64")]
        if let Some(slot) = self.slots.get(self.home(h)) {
            // SAFETY: a prefetch only hints the cache; it never faults and changes no memory.
            // The pointer is in bounds (it comes from a reference).
            unsafe {
                let p = slot.as_ptr();
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
                // A 24-byte slot that straddles two cache lines needs both.
                if (p as usize & 63) > 64 - SLOT_BYTES as usize {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.add(2).cast());
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    fn find(&self, h: KeyHash) -> usize {
        let (lo, hi) = (h as u64, (h >> 64) as u64);
        let mask = self.slots.len() - 1;
        let mut i = self.home(h);
        loop {
            let [a, b, o] = self.slots[i];
            if o == 0 || (a == lo && b == hi) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let bigger = table((self.slots.len() * 2).min(self.max_slots));
        let old = std::mem::replace(&mut self.slots, bigger);
        self.max_used = self.fill_limit_at(self.slots.len());
        for s in old.into_iter().filter(|s| s[2] != 0) {
            let h = u128::from(s[0]) | (u128::from(s[1]) << 64);
            let i = self.find(h);
            self.slots[i] = s;
        }
    }

    /// Records that the key hashing to `h` was last seen at `offset`. Returns `false` (nothing
    /// stored) when the key is new and the map is full.
    pub(crate) fn put_hash(&mut self, h: KeyHash, offset: u64) -> bool {
        let mut i = self.find(h);
        if self.slots[i][2] == 0 {
            if self.used >= self.max_used {
                if self.slots.len() >= self.max_slots {
                    return false;
                }
                self.grow();
                i = self.find(h);
            }
            self.used += 1;
        }
        self.slots[i] = [h as u64, (h >> 64) as u64, offset + 1];
        self.latest = Some(self.latest.map_or(offset, |l| l.max(offset)));
        true
    }

    /// Records that `key`'s latest occurrence so far is at `offset` (see
    /// [`put_hash`](Self::put_hash)).
    #[cfg(test)]
    pub(crate) fn put(&mut self, key: &[u8], offset: u64) -> bool {
        self.put_hash(self.hash(key), offset)
    }

    /// The latest offset recorded for the key hashing to `h`.
    pub(crate) fn get_hash(&self, h: KeyHash) -> Option<u64> {
        self.slots[self.find(h)][2].checked_sub(1)
    }

    /// The latest offset recorded for `key`.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8]) -> Option<u64> {
        self.get_hash(self.hash(key))
    }

    /// Calls `f` with the offset held in every used slot (each key's latest offset), in slot
    /// order.
    pub(crate) fn for_each_offset(&self, mut f: impl FnMut(u64)) {
        for s in &self.slots {
            if let Some(o) = s[2].checked_sub(1) {
                f(o);
            }
        }
    }

    /// The largest offset the map covers: records at or below it were all seen.
    pub(crate) fn latest(&self) -> Option<u64> {
        self.latest
    }

    /// Extends the covered range to `offset` (past an offset gap at the end of a segment).
    pub(crate) fn cover_up_to(&mut self, offset: u64) {
        self.latest = Some(self.latest.map_or(offset, |l| l.max(offset)));
    }
}

/// Keys up to this long are their own identity in the map.
const SHORT_KEY: usize = 15;

/// A key's identity in the map: a short key's bytes and length, otherwise its MurmurHash3
/// with the top byte `0xff` (see the module docs).
#[inline]
pub(crate) fn key_identity(key: &[u8]) -> KeyHash {
    if let Ok(k) = <[u8; 8]>::try_from(key) {
        return u128::from(u64::from_le_bytes(k)) | (8 << 120);
    }
    if key.len() <= SHORT_KEY {
        let mut b = [0u8; 16];
        b[..key.len()].copy_from_slice(key);
        b[15] = key.len() as u8;
        return u128::from_le_bytes(b);
    }
    murmur3_128(key) | (0xff << 120)
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// MurmurHash3, x64 128-bit variant, seed 0 (Austin Appleby's public-domain algorithm).
pub(crate) fn murmur3_128(key: &[u8]) -> KeyHash {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let (mut h1, mut h2) = (0u64, 0u64);
    let mut blocks = key.chunks_exact(16);
    for b in &mut blocks {
        let mut k1 = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let mut k2 = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(27).wrapping_add(h2).wrapping_mul(5).wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2.rotate_left(31).wrapping_add(h1).wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, &b) in tail.iter().enumerate() {
        if i < 8 {
            k1 |= u64::from(b) << (8 * i);
        } else {
            k2 |= u64::from(b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    let len = key.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (u128::from(h2) << 64) | u128::from(h1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_the_reference_vectors() {
        // From the reference implementation (h1, h2 as printed by MurmurHash3_x64_128).
        let h = murmur3_128(b"The quick brown fox jumps over the lazy dog");
        assert_eq!((h as u64, (h >> 64) as u64), (0xe34b_bc7b_bc07_1b6c, 0x7a43_3ca9_c49a_9347));
        assert_eq!(murmur3_128(b""), 0);
    }

    #[test]
    fn latest_offset_per_key_and_capacity() {
        let mut m = OffsetMap::new(16, 0.75);
        assert_eq!(m.capacity(), 12);
        assert!(m.put(b"a", 1) && m.put(b"b", 2) && m.put(b"a", 7));
        assert_eq!((m.get(b"a"), m.get(b"b"), m.get(b"c")), (Some(7), Some(2), None));
        assert_eq!((m.len(), m.latest()), (2, Some(7)));
        for i in 0..10u32 {
            assert!(m.put(&i.to_le_bytes(), 100 + u64::from(i)));
        }
        assert!(m.is_full());
        assert!(!m.put(b"new key", 200), "a full map takes no new key");
        assert!(m.put(b"a", 201), "a full map still updates a key it holds");
        assert_eq!(m.get(b"new key"), None);
        assert_eq!(m.memory_bytes(), 16 * SLOT_BYTES);
        m.cover_up_to(500);
        assert_eq!(m.latest(), Some(500));
    }

    #[test]
    fn the_table_grows_with_the_keys_up_to_its_limit() {
        let mut m = OffsetMap::new(1 << 20, 0.5);
        let first = m.memory_bytes();
        assert!(first < (1 << 20) * SLOT_BYTES);
        for i in 0..100_000u64 {
            assert!(m.put(&i.to_be_bytes(), i));
        }
        for i in 0..100_000u64 {
            assert_eq!(m.get(&i.to_be_bytes()), Some(i), "key {i} lost in a growth");
        }
        assert!(m.memory_bytes() > first && m.memory_bytes() <= 4 * 100_000 * SLOT_BYTES);
        // The limit rounds down to a power of two: 1000 slots are 512.
        let m = OffsetMap::new(1000, 1.0);
        assert_eq!(m.capacity(), 511);
    }

    #[test]
    fn short_keys_are_their_own_identity_and_long_ones_a_marked_hash() {
        // Different short keys never share an identity, lengths included.
        let keys: [&[u8]; 6] = [b"", b"\0", b"\0\0", b"a", b"a\0", b"0123456789abcde"];
        for (i, a) in keys.iter().enumerate() {
            assert_eq!(key_identity(a) >> 120, a.len() as u128, "{a:?} carries its length");
            for b in &keys[i + 1..] {
                assert_ne!(key_identity(a), key_identity(b), "{a:?} vs {b:?}");
            }
        }
        // The eight-byte fast path is the general short-key rule.
        let k = 0x0102_0304_0506_0708u64.to_be_bytes();
        let mut padded = [0u8; 16];
        padded[..8].copy_from_slice(&k);
        padded[15] = 8;
        assert_eq!(key_identity(&k), u128::from_le_bytes(padded));
        // A long key: its MurmurHash3 with the top byte 0xff, which no short key has.
        let long = b"The quick brown fox jumps over the lazy dog";
        assert_eq!(key_identity(long), murmur3_128(long) | (0xff << 120));
        assert_eq!(key_identity(b"0123456789abcdef") >> 120, 0xff, "16 bytes is long");
    }

    #[test]
    fn a_growing_table_stays_at_most_half_full_and_the_largest_fills_to_the_load_factor() {
        let mut m = OffsetMap::new(1 << 16, 0.9);
        for i in 0..20_000u64 {
            assert!(m.put(&i.to_be_bytes(), i));
            let slots = (m.memory_bytes() / SLOT_BYTES) as usize;
            if slots < 1 << 16 {
                assert!(m.len() * 2 <= slots, "{} keys in {slots} slots", m.len());
            }
        }
        // At its largest the table takes keys up to the load factor.
        for i in 20_000..58_982u64 {
            assert!(m.put(&i.to_be_bytes(), i), "key {i} refused below the load factor");
        }
        assert!(m.is_full());
        assert!(!m.put(&u64::MAX.to_be_bytes(), 1));
        assert_eq!(m.memory_bytes(), (1 << 16) * SLOT_BYTES);
        for i in (0..58_982u64).step_by(97) {
            assert_eq!(m.get(&i.to_be_bytes()), Some(i));
        }
    }

    /// Counter keys (the common case: an id that varies only in its last bytes) start their
    /// probes at well-spread slots, whichever half of the identity those bytes land in; the
    /// mixing is what keeps linear probing short with short keys as their own identity.
    #[test]
    fn counter_keys_start_their_probes_at_spread_slots() {
        let m = OffsetMap::new(1 << 20, 0.9);
        let slots = m.slots.len();
        let n = slots / 4;
        let spread = |keys: &mut dyn Iterator<Item = Vec<u8>>| {
            keys.map(|k| m.home(m.hash(&k))).collect::<std::collections::HashSet<usize>>().len()
        };
        // Eight-byte big-endian counters vary in the low half's top bytes; "key-00000001" in
        // the high half (bytes 8 to 11). Hashed uniformly, n keys in 4n slots would take about
        // 88% distinct slots.
        for (what, distinct) in [
            ("u64 counters", spread(&mut (0..n as u64).map(|i| i.to_be_bytes().to_vec()))),
            ("text counters", spread(&mut (0..n).map(|i| format!("key-{i:08}").into_bytes()))),
            ("u32 counters", spread(&mut (0..n as u32).map(|i| i.to_be_bytes().to_vec()))),
        ] {
            assert!(distinct * 4 >= n * 3, "{what}: {n} keys start at only {distinct} of {slots} slots");
        }
    }

    #[test]
    fn colliding_keys_are_taken_for_one_key() {
        // The documented rule, made visible with a hash that collides on the first byte.
        let mut m = OffsetMap::with_hash(8, 0.9, |k| u128::from(k.first().copied().unwrap_or(0)));
        m.put(b"apple", 3);
        m.put(b"avocado", 9);
        assert_eq!(m.get(b"apple"), Some(9), "apple's latest offset is avocado's");
        assert_eq!(m.len(), 1);
        assert_eq!(m.get(b"banana"), None);
    }
}
