//! Retention (`cleanup.policy=delete`): which old segments go, as Kafka decides it.
//!
//! [`plan`] is a pure function of the segment summaries, the log start, the time and the
//! configuration; [`run`] carries a plan out through the partition's maintenance primitives
//! (rolling a quiet active segment first when it must go too).
//!
//! Kafka's three rules, applied in its order, each to what the previous left:
//! 1. **log start** (DeleteRecords, [`Partition::advance_log_start`](crate::Partition::advance_log_start)):
//!    a segment goes when the next one starts at or below the log start — under every policy;
//! 2. **size** (`retention.bytes`): while the partition is larger than the limit, the oldest
//!    segment goes if what remains is still at least the limit;
//! 3. **time** (`retention.ms`): a segment goes when `now − its largest timestamp >
//!    retention.ms` (strictly).
//!
//! Only a contiguous prefix is ever deleted, the log end offset never moves, and an empty
//! active segment always stays: after everything expired, the next append gets the old end
//! offset.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::{TopicConfig, ms_i64};
use crate::error::{Error, Result};
use crate::partition::{Inner, maintenance};
use crate::segment::{NO_TS, SegMeta, SegmentState};

/// Why a segment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// Wholly below the log start offset.
    LogStart,
    /// `retention.bytes`.
    Size,
    /// `retention.ms`.
    Time,
}

/// What retention would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    /// Why each segment of the deleted prefix goes, oldest first.
    pub reasons: Vec<DeleteReason>,
    /// The prefix includes the (non-empty) active segment: roll it first, then plan again.
    pub roll_first: bool,
}

/// Decides which prefix of `segments` (oldest first, the last one active) goes.
pub(crate) fn plan(segments: &[SegMeta], log_start: u64, now: i64, config: &TopicConfig) -> Plan {
    let n = segments.len();
    let mut reasons = Vec::new();
    // Upper bound of segment i: the next segment's base, or the log end for the last.
    let upper = |i: usize| segments.get(i + 1).map_or_else(|| segments[i].next_offset, |s| s.base);
    let deletable = |i: usize| i + 1 < n || segments[i].size > 0;
    let mut i = 0;
    while i < n && deletable(i) && upper(i) <= log_start {
        reasons.push(DeleteReason::LogStart);
        i += 1;
    }
    if config.cleanup_policy.delete {
        if let Some(limit) = config.retention_bytes {
            let total: u64 = segments[i..].iter().map(|s| s.size).sum();
            if total >= limit {
                let mut diff = total - limit;
                while i < n && deletable(i) && diff >= segments[i].size {
                    diff -= segments[i].size;
                    reasons.push(DeleteReason::Size);
                    i += 1;
                }
            }
        }
        if let Some(ms) = config.retention_ms {
            let limit = ms_i64(ms);
            // A segment without a timestamp holds no record and expires with its neighbours.
            let expired = |s: &SegMeta| s.max_ts == NO_TS || now.saturating_sub(s.max_ts) > limit;
            while i < n && deletable(i) && expired(&segments[i]) {
                reasons.push(DeleteReason::Time);
                i += 1;
            }
        }
    }
    let roll_first = i == n && n > 0;
    Plan { reasons, roll_first }
}

/// When retention will next find something to delete by time, in ms from `now` (`None`:
/// never, as things stand).
pub(crate) fn next_expiry_in(segments: &[SegMeta], now: i64, config: &TopicConfig) -> Option<i64> {
    if !config.cleanup_policy.delete {
        return None;
    }
    let ms = ms_i64(config.retention_ms?);
    segments.iter().filter(|s| s.max_ts != NO_TS).map(|s| s.max_ts.saturating_add(ms).saturating_add(1) - now).min()
}

/// What a retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: u32,
    /// Of those, deleted for being below the log start.
    pub by_log_start: u32,
    /// Deleted for `retention.bytes`.
    pub by_size: u32,
    /// Deleted for `retention.ms`.
    pub by_time: u32,
    /// Bytes of log taken out (the files go once no reader holds them).
    pub bytes_reclaimed: u64,
    /// Records taken out.
    pub records_removed: u64,
    /// Whether the quiet active segment was rolled so that it could expire.
    pub rolled: bool,
    /// The log start offset afterwards.
    pub log_start_offset: u64,
    /// Wall time of the pass.
    pub duration: Duration,
}

/// Runs retention on one partition now.
pub(crate) fn run(inner: &Inner) -> Result<RetentionReport> {
    let started = Instant::now();
    let _m = inner.maint.lock();
    inner.check_usable()?;
    inner.graveyard.reap(&*inner.fs);
    let mut report = RetentionReport::default();
    for _ in 0..4 {
        let config = inner.config.read().clone();
        let now = inner.clock.now_ms();
        let view = inner.view();
        let metas: Vec<SegMeta> = view.segments.iter().map(|s| s.meta()).collect();
        let log_start = inner.log_start.load(Ordering::Acquire);
        let p = plan(&metas, log_start, now, &config);
        if p.roll_first {
            let active = view.active().map(Arc::as_ptr);
            drop(view);
            // Everything is deletable, the active segment too: seal it so it can go, leaving
            // an empty active segment at the log end (Kafka does the same).
            match crate::partition::force_roll(inner) {
                Ok(rolled) => report.rolled |= rolled,
                // On a full disk the roll can complete with only its checkpoint unwritten
                // (the next open re-validates more); retention is what frees the space.
                Err(Error::StorageFull { .. }) if inner.view().active().map(Arc::as_ptr) != active => {
                    report.rolled = true;
                }
                Err(e) => return Err(e),
            }
            continue;
        }
        let k = p.reasons.len();
        if k == 0 {
            break;
        }
        let doomed: Vec<Arc<SegmentState>> = view.segments[..k].to_vec();
        let new_start = view.segments.get(k).map_or(log_start, |s| s.base).max(log_start);
        drop(view);
        match maintenance::delete_prefix(inner, &doomed, new_start)? {
            Ok(bytes) => {
                report.segments_deleted += k as u32;
                report.bytes_reclaimed += bytes;
                report.records_removed += metas[..k].iter().map(|m| m.records).sum::<u64>();
                for r in &p.reasons {
                    match r {
                        DeleteReason::LogStart => report.by_log_start += 1,
                        DeleteReason::Size => report.by_size += 1,
                        DeleteReason::Time => report.by_time += 1,
                    }
                }
                break;
            }
            // The list changed under the plan (a roll): plan again.
            Err(_) => continue,
        }
    }
    inner.graveyard.reap(&*inner.fs);
    report.log_start_offset = inner.log_start.load(Ordering::Acquire);
    report.duration = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CleanupPolicy;

    /// Segments of `size` bytes holding 5 offsets each, timestamps 1000·i; the last is active.
    fn segs(n: u64, size: u64, active_size: u64) -> Vec<SegMeta> {
        (0..n)
            .map(|i| {
                let active = i + 1 == n;
                let sz = if active { active_size } else { size };
                let next = if active && sz == 0 { i * 5 } else { i * 5 + 5 };
                let ts = if sz == 0 { NO_TS } else { 1_000 * (i as i64 + 1) };
                SegMeta {
                    base: i * 5,
                    size: sz,
                    next_offset: next,
                    records: next - i * 5,
                    first_ts: ts,
                    max_ts: ts,
                    max_ts_offset: i * 5,
                }
            })
            .collect()
    }

    fn no_time() -> TopicConfig {
        TopicConfig::default().retention_ms(None)
    }

    #[test]
    fn an_empty_sealed_segment_is_deleted_like_any_other() {
        // Compaction can leave a sealed segment with no bytes (every record removed): below the
        // log start or expired, it goes; only an empty active segment stays.
        let mut s = segs(3, 500, 0);
        s[0].size = 0;
        s[0].max_ts = NO_TS;
        let p = plan(&s, 5, 0, &no_time());
        assert_eq!(p.reasons, vec![DeleteReason::LogStart]);
        let p = plan(&s, 0, 10_000, &TopicConfig::default().retention_ms(Some(1)));
        assert_eq!(p.reasons, vec![DeleteReason::Time, DeleteReason::Time]);
        assert!(!p.roll_first, "the empty active segment stays and needs no roll");
    }

    #[test]
    fn a_log_start_past_every_segment_deletes_them_all_and_stops() {
        // Everything is below the log start: every segment goes (the active one after a
        // roll), and the size and time rules find nothing left to look at.
        let s = segs(3, 500, 500);
        let config = TopicConfig::default().retention_bytes(Some(0)).retention_ms(Some(0));
        let p = plan(&s, 15, 1_000_000, &config);
        assert_eq!(p.reasons, vec![DeleteReason::LogStart; 3]);
        assert!(p.roll_first);
    }

    #[test]
    fn no_segments_no_plan() {
        let p = plan(&[], 0, 1_000_000, &TopicConfig::default().retention_bytes(Some(0)).retention_ms(Some(0)));
        assert!(p.reasons.is_empty());
        assert!(!p.roll_first);
    }

    #[test]
    fn size_retention_keeps_at_least_the_limit() {
        // Kafka's shouldDeleteSizeBasedSegments: 15 batches of 100 bytes, 5 per segment (three
        // segments). A limit of 10 batches leaves 2 segments; of 15, all 3.
        let s = segs(3, 500, 500);
        let p = plan(&s, 0, 0, &no_time().retention_bytes(Some(1000)));
        assert_eq!(p.reasons, vec![DeleteReason::Size]);
        let p = plan(&s, 0, 0, &no_time().retention_bytes(Some(1500)));
        assert!(p.reasons.is_empty());
        // Just below the total: the oldest would take it under the limit, so it stays.
        let p = plan(&s, 0, 0, &no_time().retention_bytes(Some(1001)));
        assert!(p.reasons.is_empty());
    }

    #[test]
    fn time_retention_is_strict_and_by_largest_timestamp() {
        let s = segs(4, 100, 0);
        // Segment i has max ts 1000·(i+1). At 3000 with retention 1000, segment 0 is 2000 old
        // (expired) and segment 1 exactly 1000 (not: the rule is strictly greater).
        let c = TopicConfig::default().retention_ms(Some(1_000));
        assert_eq!(plan(&s, 0, 3_000, &c).reasons, vec![DeleteReason::Time]);
        assert_eq!(plan(&s, 0, 3_001, &c).reasons.len(), 2);
        // The empty active segment never goes.
        let p = plan(&s, 0, i64::MAX, &c);
        assert_eq!((p.reasons.len(), p.roll_first), (3, false));
    }

    #[test]
    fn log_start_retention_applies_under_every_policy() {
        // Kafka's testLogDeletionAfterDeleteRecords and
        // shouldDeleteStartOffsetBreachedSegmentsWhenPolicyDoesNotIncludeDelete.
        let s = segs(4, 100, 100);
        for policy in [CleanupPolicy::DELETE, CleanupPolicy::COMPACT, CleanupPolicy::COMPACT_DELETE] {
            let c = no_time().cleanup_policy(policy);
            assert_eq!(plan(&s, 1, 0, &c).reasons.len(), 0);
            assert_eq!(plan(&s, 5, 0, &c).reasons, vec![DeleteReason::LogStart]);
            assert_eq!(plan(&s, 6, 0, &c).reasons.len(), 1);
            assert_eq!(plan(&s, 15, 0, &c).reasons.len(), 3);
        }
        // A compacted-only topic ignores size and time.
        let c = TopicConfig::default().cleanup_policy(CleanupPolicy::COMPACT).retention_bytes(Some(1));
        assert!(plan(&s, 0, i64::MAX, &c).reasons.is_empty());
    }

    #[test]
    fn an_expired_active_segment_is_rolled_first() {
        let s = segs(2, 100, 100);
        let c = TopicConfig::default().retention_ms(Some(10));
        let p = plan(&s, 0, 1_000_000, &c);
        assert!(p.roll_first);
        // Log start at the end (DeleteRecords of everything): the same.
        assert!(plan(&s, 10, 0, &no_time()).roll_first);
    }

    #[test]
    fn only_a_prefix_goes() {
        // The middle segment is old, the first is young: nothing goes by time.
        let mut s = segs(3, 100, 100);
        s[0].max_ts = 9_000;
        let c = TopicConfig::default().retention_ms(Some(1_000));
        assert!(plan(&s, 0, 5_000, &c).reasons.is_empty());
    }

    #[test]
    fn next_expiry() {
        let s = segs(3, 100, 100);
        let c = TopicConfig::default().retention_ms(Some(1_000));
        assert_eq!(next_expiry_in(&s, 1_500, &c), Some(501));
        assert_eq!(next_expiry_in(&s, 1_500, &no_time()), None);
    }
}
