//! The segment list: the one owner of which segments make up the log, and the only code that
//! publishes a new list.
//!
//! Readers take an `Arc` snapshot ([`View`]) and let go of the lock at once. Every change —
//! roll, truncation, retention, a compaction swap — publishes a new `View` with the next
//! generation number. A plan made on an old view names the segments it was made for, and is
//! declined ([`Conflict`]) when any of them is no longer current, instead of being applied to
//! the wrong segments.
//!
//! Who changes the list: the writer (roll, under the writer lock) appends a new active
//! segment; truncation (maintenance lock + writer lock) cuts the tail; retention and
//! compaction (maintenance lock) remove or replace sealed segments. Each change is computed
//! from the list current at the moment of publication, under the list's own lock, so a roll
//! and a retention pass never undo each other.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::segment::SegmentState;

/// A snapshot of the segment list.
#[derive(Debug)]
pub(crate) struct View {
    /// Bumped by every publication.
    pub(crate) generation: u64,
    /// Oldest first; the last one is the active segment.
    pub(crate) segments: Vec<Arc<SegmentState>>,
}

impl View {
    /// Index of the segment that would hold `offset` (the last with base ≤ offset).
    pub(crate) fn floor(&self, offset: u64) -> usize {
        self.segments.partition_point(|s| s.base <= offset).saturating_sub(1)
    }

    /// The active segment.
    pub(crate) fn active(&self) -> Option<&Arc<SegmentState>> {
        self.segments.last()
    }

    /// The sealed segments, oldest first.
    pub(crate) fn sealed(&self) -> &[Arc<SegmentState>] {
        self.segments.split_last().map_or(&[], |(_, rest)| rest)
    }
}

/// A change was planned on segments that are no longer current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conflict;

/// The owner of the current [`View`].
#[derive(Debug)]
pub(crate) struct SegmentSet {
    view: RwLock<Arc<View>>,
}

impl SegmentSet {
    pub(crate) fn new(segments: Vec<Arc<SegmentState>>) -> SegmentSet {
        SegmentSet { view: RwLock::new(Arc::new(View { generation: 0, segments })) }
    }

    /// The current snapshot.
    pub(crate) fn current(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Publishes the list `f` computes from the current one (`None`: leave it).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&View) -> Option<(Vec<Arc<SegmentState>>, R)>) -> Option<R> {
        let mut v = self.view.write();
        let (segments, r) = f(&v)?;
        *v = Arc::new(View { generation: v.generation + 1, segments });
        Some(r)
    }

    /// Appends a new active segment (a roll).
    pub(crate) fn push(&self, seg: Arc<SegmentState>) {
        self.update(|v| {
            let mut segments = v.segments.clone();
            segments.push(seg);
            Some((segments, ()))
        });
    }

    /// Replaces the whole list (truncation, which holds every lock).
    pub(crate) fn replace_all(&self, segments: Vec<Arc<SegmentState>>) {
        self.update(|_| Some((segments, ())));
    }

    /// Replaces the sealed run `old` (contiguous, oldest first) by `new`. Declined when `old` is
    /// not, segment for segment, a current run of sealed segments.
    pub(crate) fn replace_run(&self, old: &[Arc<SegmentState>], new: Vec<Arc<SegmentState>>) -> Result<(), Conflict> {
        self.update(|v| {
            let first = old.first()?;
            let at = v.segments.iter().position(|s| Arc::ptr_eq(s, first))?;
            let run = v.segments.get(at..at + old.len())?;
            let is_run = run.iter().zip(old).all(|(a, b)| Arc::ptr_eq(a, b));
            // The active segment is never part of a run.
            if !is_run || at + old.len() >= v.segments.len() {
                return None;
            }
            let mut segments = Vec::with_capacity(v.segments.len() - old.len() + new.len());
            segments.extend_from_slice(&v.segments[..at]);
            segments.extend(new);
            segments.extend_from_slice(&v.segments[at + old.len()..]);
            Some((segments, ()))
        })
        .ok_or(Conflict)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::SegmentSet;
    use crate::segment::{SegMeta, SegmentState};

    fn segs(bases: &[u64]) -> Vec<Arc<SegmentState>> {
        let dir: Arc<Path> = Arc::from(Path::new("/nowhere"));
        bases.iter().map(|&b| SegmentState::new(Arc::clone(&dir), SegMeta::empty(b))).collect()
    }

    fn bases(set: &SegmentSet) -> Vec<u64> {
        set.current().segments.iter().map(|s| s.base).collect()
    }

    #[test]
    fn every_publication_has_a_new_generation() {
        let set = SegmentSet::new(segs(&[0]));
        let g0 = set.current().generation;
        set.push(segs(&[10]).remove(0));
        let g1 = set.current().generation;
        set.replace_all(segs(&[20]));
        let g2 = set.current().generation;
        assert!(g0 < g1 && g1 < g2, "{g0} {g1} {g2}");
        // A declined update publishes nothing.
        assert_eq!(set.update(|_| None::<(Vec<_>, ())>), None);
        assert_eq!(set.current().generation, g2);
    }

    #[test]
    fn a_sealed_run_anywhere_before_the_active_segment_is_replaced_in_place() {
        // Runs at the start, in the middle and just before the active segment.
        for (run, want) in [
            (0..2, vec![100, 2, 3, 4, 5, 6]),
            (2..4, vec![0, 1, 100, 4, 5, 6]),
            (3..6, vec![0, 1, 2, 100, 6]),
            (5..6, vec![0, 1, 2, 3, 4, 100, 6]),
        ] {
            let all = segs(&[0, 1, 2, 3, 4, 5, 6]);
            let set = SegmentSet::new(all.clone());
            set.replace_run(&all[run.clone()], segs(&[100])).unwrap_or_else(|_| panic!("run {run:?} declined"));
            assert_eq!(bases(&set), want, "run {run:?}");
        }
    }

    #[test]
    fn what_is_not_a_current_sealed_run_is_declined() {
        let all = segs(&[0, 1, 2, 3]);
        let set = SegmentSet::new(all.clone());
        let g = set.current().generation;
        // Not contiguous.
        assert!(set.replace_run(&[Arc::clone(&all[0]), Arc::clone(&all[2])], segs(&[100])).is_err());
        // Includes the active segment.
        assert!(set.replace_run(&all[2..4], segs(&[100])).is_err());
        assert!(set.replace_run(&all[1..4], segs(&[100])).is_err());
        // Not in the list at all.
        assert!(set.replace_run(&segs(&[1]), segs(&[100])).is_err());
        // Runs past the end.
        assert!(set.replace_run(&[Arc::clone(&all[3]), Arc::clone(&all[0])], segs(&[100])).is_err());
        assert_eq!(bases(&set), vec![0, 1, 2, 3]);
        assert_eq!(set.current().generation, g);
    }
}
