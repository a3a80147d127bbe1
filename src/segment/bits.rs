//! A fixed-size set of bits that many readers set and test without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// `len` bits, all clear at first. Out-of-range bits read as clear and are never set.
#[derive(Debug, Default)]
pub(crate) struct AtomicBits {
    words: Box<[AtomicU64]>,
    len: usize,
}

impl AtomicBits {
    pub(crate) fn new(len: usize) -> AtomicBits {
        AtomicBits { words: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(), len }
    }

    /// Number of bits.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether bit `i` is set.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> bool {
        i < self.len && self.words.get(i / 64).is_some_and(|w| w.load(Ordering::Acquire) & (1 << (i % 64)) != 0)
    }

    /// Sets bit `i`; returns whether it was set before.
    #[inline]
    pub(crate) fn set(&self, i: usize) -> bool {
        i < self.len
            && self.words.get(i / 64).is_some_and(|w| {
                let bit = 1 << (i % 64);
                // A plain load first: the common case (already set) writes nothing, so readers on
                // several cores do not fight over the cache line.
                w.load(Ordering::Relaxed) & bit != 0 || w.fetch_or(bit, Ordering::AcqRel) & bit != 0
            })
    }
}

#[cfg(test)]
mod tests {
    use super::AtomicBits;

    #[test]
    fn bits_are_independent_and_bounded() {
        let b = AtomicBits::new(130);
        assert!(!b.get(0) && !b.get(129));
        assert!(!b.set(129));
        assert!(b.set(129));
        assert!(b.get(129) && !b.get(128) && !b.get(1));
        assert!(!b.set(64));
        assert!(b.get(64) && !b.get(63) && !b.get(65));
        // Out of range: never set, always clear.
        assert!(!b.set(1_000));
        assert!(!b.get(1_000));
        assert!(!AtomicBits::new(0).get(0));
        // Bits past `len` in the last word are out of range too.
        assert!(!b.set(130));
        assert!(!b.get(130));
        assert_eq!(b.len(), 130);
    }
}
