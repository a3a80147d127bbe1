//! Which part of a compacted partition can be cleaned, and whether it is due — Kafka's
//! `LogCleanerManager.cleanableOffsets` and `grabFilthiestCompactedLog`, as pure functions of
//! the segment summaries and the time.

use crate::config::{TopicConfig, ms_i64};
use crate::segment::{NO_TS, SegMeta};

/// The cleanable range of a partition and how dirty it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cleanable {
    /// Where cleaning starts: the recorded cleaner offset, or the log start when that is out of
    /// range (reset).
    pub first_dirty: u64,
    /// Whether `first_dirty` had to be reset because the recorded offset was outside
    /// `[log start, log end]`.
    pub reset: bool,
    /// Nothing at or above this is cleaned: the active segment's base, or the first segment
    /// younger than `min.compaction.lag.ms`.
    pub first_uncleanable: u64,
    /// Bytes of segments wholly below `first_dirty` (already clean).
    pub clean_bytes: u64,
    /// Bytes of segments in `[first_dirty, first_uncleanable)`.
    pub dirty_bytes: u64,
    /// Records in those segments (sizes the offset map).
    pub dirty_records: u64,
    /// `dirty / (clean + dirty)`.
    pub ratio: f64,
    /// How long past `max.compaction.lag.ms` the oldest dirty record is (ms; ≤ 0: not late).
    pub max_compaction_delay_ms: i64,
}

impl Cleanable {
    /// Due under Kafka's rule: dirty bytes exist and either the dirty ratio exceeds
    /// `min.cleanable.dirty.ratio` or a dirty record is older than `max.compaction.lag.ms`.
    pub(crate) fn is_due(&self, config: &TopicConfig) -> bool {
        self.dirty_bytes > 0 && (self.ratio > config.min_cleanable_dirty_ratio || self.max_compaction_delay_ms > 0)
    }
}

/// The cleanable range of `segments` (oldest first, the last one active).
pub(crate) fn cleanable(
    segments: &[SegMeta],
    log_start: u64,
    cleaner_offset: u64,
    now: i64,
    config: &TopicConfig,
) -> Cleanable {
    let Some((active, sealed)) = segments.split_last() else {
        return Cleanable {
            first_dirty: log_start,
            reset: false,
            first_uncleanable: log_start,
            clean_bytes: 0,
            dirty_bytes: 0,
            dirty_records: 0,
            ratio: 0.0,
            max_compaction_delay_ms: 0,
        };
    };
    let log_end = active.next_offset;
    let reset = cleaner_offset < log_start || cleaner_offset > log_end;
    let first_dirty = if reset { log_start } else { cleaner_offset };
    // Dirty, not active: the sealed segments that hold offsets at or above `first_dirty`.
    let dirty_segments = || sealed.iter().filter(|m| m.next_offset > first_dirty);
    let mut first_uncleanable = active.base;
    if config.min_compaction_lag_ms > 0 {
        let young = now.saturating_sub(ms_i64(config.min_compaction_lag_ms));
        if let Some(m) = dirty_segments().find(|m| m.max_ts != NO_TS && m.max_ts > young) {
            first_uncleanable = first_uncleanable.min(m.base);
        }
    }
    let clean_bytes: u64 = sealed.iter().filter(|m| m.next_offset <= first_dirty).map(|m| m.size).sum();
    let in_range = |m: &&SegMeta| m.next_offset > first_dirty && m.base < first_uncleanable;
    let dirty_bytes: u64 = sealed.iter().filter(in_range).map(|m| m.size).sum();
    let dirty_records: u64 = sealed.iter().filter(in_range).map(|m| m.records).sum();
    let total = clean_bytes + dirty_bytes;
    let ratio = if total == 0 { 0.0 } else { dirty_bytes as f64 / total as f64 };
    let max_compaction_delay_ms = match config.max_compaction_lag_ms {
        None => 0,
        Some(lag) => {
            let limit = now.saturating_sub(ms_i64(lag));
            let earliest = dirty_segments().filter(|m| m.first_ts != NO_TS && m.first_ts > 0).map(|m| m.first_ts).min();
            earliest.map_or(0, |e| if e < limit { limit - e } else { 0 })
        }
    };
    Cleanable {
        first_dirty,
        reset,
        first_uncleanable,
        clean_bytes,
        dirty_bytes,
        dirty_records,
        ratio,
        max_compaction_delay_ms,
    }
}

/// Groups consecutive segments so each group fits in one segment (Kafka's
/// `groupSegmentsBySize`): total bytes ≤ `max_bytes`, offset-index entries ≤ `max_entries`
/// (estimated at one per `interval` bytes), and offsets within a segment's u32 range. Each
/// item is `(base, end_offset, size)`; returns the group lengths, in order.
pub(crate) fn group_by_size(segs: &[(u64, u64, u64)], max_bytes: u64, max_entries: u64, interval: u64) -> Vec<usize> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let (base, _, size) = segs[i];
        let mut bytes = size;
        let mut n = 1;
        while let Some(&(_, end, s)) = segs.get(i + n) {
            let entries = (bytes + s) / interval.max(1);
            let span = end.saturating_sub(1).saturating_sub(base);
            if bytes + s > max_bytes || entries > max_entries || span > u64::from(u32::MAX) {
                break;
            }
            bytes += s;
            n += 1;
        }
        groups.push(n);
        i += n;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: u64, next: u64, size: u64, first_ts: i64, max_ts: i64) -> SegMeta {
        SegMeta { base, size, next_offset: next, records: next - base, first_ts, max_ts, max_ts_offset: base }
    }

    /// Three sealed segments of 100 bytes and an active one.
    fn log() -> Vec<SegMeta> {
        vec![
            seg(0, 10, 100, 1_000, 1_900),
            seg(10, 20, 100, 2_000, 2_900),
            seg(20, 30, 100, 3_000, 3_900),
            seg(30, 35, 50, 4_000, 4_500),
        ]
    }

    #[test]
    fn dirty_ratio_and_the_active_segment() {
        let c = TopicConfig::default().cleanup_policy(crate::CleanupPolicy::COMPACT);
        let x = cleanable(&log(), 0, 0, 10_000, &c);
        assert_eq!((x.first_dirty, x.first_uncleanable, x.clean_bytes, x.dirty_bytes), (0, 30, 0, 300));
        assert_eq!(x.ratio, 1.0);
        assert!(x.is_due(&c));
        // Cleaned up to 20: one dirty segment of three.
        let x = cleanable(&log(), 0, 20, 10_000, &c);
        assert_eq!((x.clean_bytes, x.dirty_bytes, x.dirty_records), (200, 100, 10));
        assert!((x.ratio - 1.0 / 3.0).abs() < 1e-9);
        assert!(!x.is_due(&c), "a third is below the default ratio of one half");
        assert!(x.is_due(&c.clone().min_cleanable_dirty_ratio(0.3)));
        // Everything clean: nothing due however low the ratio.
        let x = cleanable(&log(), 0, 30, 10_000, &c);
        assert!(x.dirty_bytes == 0 && !x.is_due(&c.clone().min_cleanable_dirty_ratio(0.0)));
    }

    #[test]
    fn dirty_offset_is_reset_when_out_of_range() {
        let c = TopicConfig::default();
        // Kafka's testDirtyOffsetResetIfLargerThanEndOffset / ...SmallerThanStartOffset.
        let x = cleanable(&log(), 10, 500, 0, &c);
        assert!(x.reset && x.first_dirty == 10);
        let x = cleanable(&log(), 10, 3, 0, &c);
        assert!(x.reset && x.first_dirty == 10);
        let x = cleanable(&log(), 10, 20, 0, &c);
        assert!(!x.reset && x.first_dirty == 20);
        // At the log start or the log end exactly, the offset is in range: no reset.
        let x = cleanable(&log(), 10, 10, 0, &c);
        assert!(!x.reset && x.first_dirty == 10);
        let x = cleanable(&log(), 10, 35, 0, &c);
        assert!(!x.reset && x.first_dirty == 35);
    }

    #[test]
    fn nothing_dirty_is_never_due() {
        // Kafka: a log needs cleaning now only with cleanable bytes, however late its oldest
        // dirty record is (here every dirty segment is held back by min.compaction.lag.ms).
        let c = TopicConfig::default().min_cleanable_dirty_ratio(0.0);
        let x = Cleanable {
            first_dirty: 20,
            reset: false,
            first_uncleanable: 20,
            clean_bytes: 200,
            dirty_bytes: 0,
            dirty_records: 0,
            ratio: 0.0,
            max_compaction_delay_ms: 5_000,
        };
        assert!(!x.is_due(&c));
        assert!(Cleanable { dirty_bytes: 1, ..x }.is_due(&c));
    }

    #[test]
    fn min_compaction_lag_keeps_young_segments_dirty() {
        // Kafka's testCleanableOffsetsForTime: segments younger than the lag are uncleanable.
        let c = TopicConfig::default().min_compaction_lag_ms(1_500);
        let x = cleanable(&log(), 0, 0, 4_000, &c);
        // now − lag = 2500: segment 10..20 (max 2900) is the first too young.
        assert_eq!(x.first_uncleanable, 10);
        assert_eq!(x.dirty_bytes, 100);
    }

    #[test]
    fn max_compaction_lag_makes_a_partition_due() {
        let c = TopicConfig::default().min_cleanable_dirty_ratio(0.99).max_compaction_lag_ms(Some(5_000));
        let x = cleanable(&log(), 0, 20, 7_000, &c);
        // Oldest dirty first timestamp 3000 < 7000 − 5000 = 2000? No: not late yet.
        assert_eq!(x.max_compaction_delay_ms, 0);
        assert!(!x.is_due(&c));
        let x = cleanable(&log(), 0, 20, 9_000, &c);
        assert_eq!(x.max_compaction_delay_ms, 1_000);
        assert!(x.is_due(&c));
        // Kafka ignores first-batch timestamps that are not positive (and segments without
        // one): only 3000 counts here.
        let mut l = log();
        l[1].first_ts = 0;
        l[2].first_ts = NO_TS;
        l.insert(3, seg(30, 31, 10, 3_000, 3_000));
        l[4] = seg(31, 35, 50, 4_000, 4_500);
        let x = cleanable(&l, 0, 10, 9_000, &c);
        assert_eq!(x.max_compaction_delay_ms, 1_000);
        // Exactly at the limit is not late.
        let x = cleanable(&l, 0, 10, 8_000, &c);
        assert_eq!(x.max_compaction_delay_ms, 0);
    }

    #[test]
    fn grouping_by_size_and_offset_span() {
        // Kafka's testSegmentGrouping, in small numbers.
        let s = |b, e, z| (b, e, z);
        let segs = [s(0, 10, 40), s(10, 20, 40), s(20, 30, 40), s(30, 40, 10), s(40, 50, 90)];
        assert_eq!(group_by_size(&segs, 100, u64::MAX, 1), vec![2, 2, 1]);
        assert_eq!(group_by_size(&segs, 1_000, u64::MAX, 1), vec![5]);
        assert_eq!(group_by_size(&segs, 1, u64::MAX, 1), vec![1, 1, 1, 1, 1]);
        // The offset span of one segment is limited to u32.
        let wide = [s(0, 10, 1), s(u64::from(u32::MAX), u64::from(u32::MAX) + 10, 1)];
        assert_eq!(group_by_size(&wide, 1_000, u64::MAX, 1), vec![1, 1]);
        // Limits are inclusive, as in Kafka: exactly max_bytes, exactly a u32 span.
        assert_eq!(group_by_size(&[s(0, 10, 40), s(10, 20, 60)], 100, u64::MAX, 1), vec![2]);
        let max = u64::from(u32::MAX);
        assert_eq!(group_by_size(&[s(0, 10, 1), s(10, max + 1, 1)], 1_000, u64::MAX, 1), vec![2]);
        assert_eq!(group_by_size(&[s(0, 10, 1), s(10, max + 2, 1)], 1_000, u64::MAX, 1), vec![1, 1]);
        // Index entries: 50 bytes at 10 per entry is 5 entries; at most 8 allowed.
        assert_eq!(group_by_size(&segs, 1_000, 8, 10), vec![2, 2, 1]);
        assert!(group_by_size(&[], 10, 10, 1).is_empty());
    }
}
