//! A bounded cache of open sealed segments (file handle + loaded indexes).
//!
//! Sealed segments are opened on first read and closed when evicted, so a partition with
//! thousands of segments holds at most `capacity` open files and loaded indexes, not one per
//! segment forever. Readers hold an `Arc` while they read; eviction only drops the cache's
//! reference, so a file is closed when its last reader finishes.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Opened;

/// Default number of sealed segments kept open per cache.
pub const DEFAULT_OPEN_SEGMENTS: usize = 128;

/// Bounded LRU of open sealed segments; one can be shared by many partitions.
#[derive(Debug)]
pub struct HandleCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tick: u64,
    map: HashMap<u64, (u64, Arc<Opened>)>,
}

impl HandleCache {
    /// A cache keeping at most `capacity` (≥ 1) sealed segments open.
    pub fn new(capacity: usize) -> Arc<HandleCache> {
        Arc::new(HandleCache { capacity: capacity.max(1), inner: Mutex::new(Inner::default()) })
    }

    /// Segments currently held open by the cache.
    pub fn open_count(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records a use of `opened`, inserting it if absent and evicting the least recently used
    /// entry when over capacity.
    pub(crate) fn touch(&self, opened: &Arc<Opened>) {
        let evicted;
        {
            let mut g = self.inner.lock();
            g.tick += 1;
            let tick = g.tick;
            match g.map.get_mut(&opened.id) {
                Some(e) => {
                    e.0 = tick;
                    return;
                }
                None => {
                    g.map.insert(opened.id, (tick, Arc::clone(opened)));
                }
            }
            evicted = if g.map.len() > self.capacity {
                let victim = g.map.iter().min_by_key(|(_, (t, _))| *t).map(|(id, _)| *id);
                victim.and_then(|id| g.map.remove(&id))
            } else {
                None
            };
        }
        // Close outside the lock.
        drop(evicted);
    }

    pub(crate) fn remove(&self, id: u64) {
        let removed = self.inner.lock().map.remove(&id);
        drop(removed);
    }
}
