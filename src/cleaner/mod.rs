//! Compaction (`cleanup.policy=compact`): Kafka's log cleaner, run when the application asks.
//!
//! A pass keeps the latest record of every key in the sealed segments it cleans; survivors
//! keep their offsets and order. It maps the *dirty* range (from the cleaner offset recorded
//! in the checkpoint up to the active segment, or to the first segment younger than
//! `min.compaction.lag.ms`) into a fixed-size [`offset map`](offset_map), then rewrites every
//! sealed segment up to the end of the mapped range, group by group (small segments are merged,
//! [`choose::group_by_size`]), and swaps each group in atomically
//! ([`crate::partition::maintenance::replace_sealed`]). A partition with more distinct keys
//! than the map holds is cleaned in several passes, each one advancing the cleaner offset.
//!
//! Tombstones remove earlier values of their key at once; the tombstone itself stays until
//! `delete.retention.ms` after the pass that first cleaned it, recorded as a delete horizon in
//! its batch (so it survives restarts), and goes in the first pass after that.
//!
//! Every byte the cleaner reads is checked ([`crate::segment::cursor`]); damage fails the pass
//! with [`Error::Corrupt`] and is kept in the partition's [`CleanerStatus`] — a damaged segment
//! is never "cleaned" into silent loss. A pass writes every group's segment first and swaps them
//! all in at once (one intent, a handful of fsyncs), so a pass that fails anywhere — damage met
//! while mapping or while rewriting, an I/O error, a full disk — changes no file of the log.
//!
//! Speed and memory: the key map starts small and grows with the distinct keys (up to
//! [`CleanerOptions::dedupe_buffer_bytes`]); map slots are prefetched a batch at a time. Once
//! the dirty range is mapped, the offsets the map holds (each key's latest) become a bitmap of
//! one bit per offset of the range, when it fits in what the map left of that memory; the
//! rewrite then decides a record of the range from its bit, in offset order, instead of
//! hashing its key and looking it up (records below the range, cleaned before, are still
//! looked up). Surviving records are copied byte for byte (a rewritten batch keeps its base
//! offset and base timestamp); pages read through a segment's map are released from the
//! resident set behind the pass.

pub(crate) mod choose;
mod clean;
pub(crate) mod offset_map;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub(crate) use clean::run as run_pass;

use crate::error::{Error, Result};

/// Default dedupe map memory (Kafka's `log.cleaner.dedupe.buffer.size`): 128 MiB at most; a
/// pass allocates only what its dirty range needs.
pub const DEFAULT_DEDUPE_BUFFER_BYTES: u64 = 128 << 20;
/// Default fill limit of the dedupe map (`log.cleaner.io.buffer.load.factor`).
pub const DEFAULT_DEDUPE_LOAD_FACTOR: f64 = 0.9;

/// Compaction engine settings, shared by the partitions of a log directory (Kafka's
/// `log.cleaner.*` broker settings).
///
/// ```
/// use partlog::CleanerOptions;
/// let o = CleanerOptions::default().dedupe_buffer_bytes(16 << 20).io_max_bytes_per_second(Some(50 << 20));
/// assert_eq!(o.get_dedupe_buffer_bytes(), 16 << 20);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerOptions {
    pub(crate) dedupe_buffer_bytes: u64,
    pub(crate) load_factor: f64,
    pub(crate) io_max_bytes_per_second: Option<u64>,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            dedupe_buffer_bytes: DEFAULT_DEDUPE_BUFFER_BYTES,
            load_factor: DEFAULT_DEDUPE_LOAD_FACTOR,
            io_max_bytes_per_second: None,
        }
    }
}

impl CleanerOptions {
    /// Largest memory for one pass's key map (24 bytes per key; at least 48). Fewer keys per
    /// pass only means more passes.
    pub fn dedupe_buffer_bytes(mut self, bytes: u64) -> Self {
        self.dedupe_buffer_bytes = bytes.max(2 * offset_map::SLOT_BYTES);
        self
    }
    /// Fraction of the map's slots filled before a pass stops mapping (0.1–1.0, default 0.9).
    pub fn load_factor(mut self, f: f64) -> Self {
        self.load_factor = if f.is_finite() { f.clamp(0.1, 1.0) } else { DEFAULT_DEDUPE_LOAD_FACTOR };
        self
    }
    /// Limit on the bytes per second compaction reads and writes, so it does not starve
    /// appends of disk bandwidth (`None`: unlimited; Kafka's
    /// `log.cleaner.io.max.bytes.per.second`).
    pub fn io_max_bytes_per_second(mut self, rate: Option<u64>) -> Self {
        self.io_max_bytes_per_second = rate.map(|r| r.max(1));
        self
    }
    /// The map memory limit.
    pub fn get_dedupe_buffer_bytes(&self) -> u64 {
        self.dedupe_buffer_bytes
    }
    /// The map fill limit.
    pub fn get_load_factor(&self) -> f64 {
        self.load_factor
    }
    /// The I/O limit.
    pub fn get_io_max_bytes_per_second(&self) -> Option<u64> {
        self.io_max_bytes_per_second
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Whether anything was cleanable (`false`: nothing dirty in sealed segments old enough).
    pub cleaned: bool,
    /// Where the pass started (the cleaner offset, or the log start if that was out of range).
    pub first_dirty_offset: u64,
    /// Everything below this is now clean (the new cleaner offset).
    pub cleaned_up_to: u64,
    /// The key map filled before the dirty range ended: another pass continues from
    /// `cleaned_up_to`.
    pub partial: bool,
    /// Segments rewritten.
    pub segments_before: u32,
    /// Segments they became.
    pub segments_after: u32,
    /// Bytes of the rewritten segments.
    pub bytes_before: u64,
    /// Bytes after rewriting.
    pub bytes_after: u64,
    /// Records removed (older values of a key, expired tombstones, keyless records).
    pub records_removed: u64,
    /// Tombstones removed because their delete horizon had passed.
    pub tombstones_removed: u64,
    /// Records without a key (written before the topic became compacted), removed as Kafka
    /// does.
    pub keyless_records_removed: u64,
    /// Batches stamped with a delete horizon for the first time.
    pub delete_horizons_set: u64,
    /// Distinct keys mapped.
    pub keys_mapped: u64,
    /// Memory of the key map.
    pub map_bytes: u64,
    /// Wall time of the pass.
    pub duration: Duration,
}

/// The compaction engine's state for one partition: its last outcome, visible so that a
/// partition that keeps failing is never silently uncleanable.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CleanerStatus {
    /// Passes run.
    pub passes: u64,
    /// The last successful pass.
    pub last_report: Option<CompactionReport>,
    /// The error of the last pass, if it failed (cleared by a successful one).
    pub last_error: Option<Arc<Error>>,
    /// Passes that failed in a row.
    pub consecutive_failures: u32,
}

pub(crate) type CleanerState = CleanerStatus;

/// A limit on bytes per second (Kafka's `Throttler`): after each 300 ms window, sleeps as long
/// as it takes to bring the observed rate down to the limit.
#[derive(Debug)]
pub(crate) struct Throttle {
    rate: Option<u64>,
    state: Mutex<(Instant, u64)>,
}

impl Throttle {
    pub(crate) fn new(rate: Option<u64>) -> Throttle {
        Throttle { rate, state: Mutex::new((Instant::now(), 0)) }
    }

    /// Accounts for `bytes` of I/O, sleeping if the rate is over the limit.
    pub(crate) fn consume(&self, bytes: u64) {
        let sleep = self.pause_at(bytes, Instant::now());
        if !sleep.is_zero() {
            std::thread::sleep(sleep);
        }
    }

    /// Accounts for `bytes` of I/O done by `now`; returns how long to pause before the next.
    fn pause_at(&self, bytes: u64, now: Instant) -> Duration {
        let Some(rate) = self.rate else { return Duration::ZERO };
        let mut s = self.state.lock();
        s.1 += bytes;
        let elapsed = now.saturating_duration_since(s.0);
        if elapsed < THROTTLE_WINDOW {
            return Duration::ZERO;
        }
        let wanted = Duration::from_secs_f64(s.1 as f64 / rate as f64);
        *s = (now, 0);
        wanted.saturating_sub(elapsed)
    }
}

/// How often the throttle compares the observed rate with the limit (Kafka's 300 ms).
const THROTTLE_WINDOW: Duration = Duration::from_millis(300);

/// Records a pass's outcome in the partition's cleaner state.
pub(crate) fn record(state: &Mutex<CleanerState>, outcome: &Result<CompactionReport>) {
    let mut s = state.lock();
    s.passes += 1;
    match outcome {
        Ok(r) => {
            s.last_report = Some(r.clone());
            s.last_error = None;
            s.consecutive_failures = 0;
        }
        Err(e) => {
            s.last_error = Some(Arc::new(e.copy()));
            s.consecutive_failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `total` bytes of I/O in `chunk`s, each taking `io` of (simulated) time, through a
    /// throttle of `rate` bytes/s; returns the simulated time it took, pauses included.
    fn simulate(rate: Option<u64>, total: u64, chunk: u64, io: Duration) -> Duration {
        let t = Throttle::new(rate);
        let start = *t.state.lock();
        let mut now = start.0;
        let mut done = 0;
        while done < total {
            now += io;
            done += chunk;
            now += t.pause_at(chunk, now);
        }
        now - start.0
    }

    #[test]
    fn options_clamp_and_read_back() {
        let o = CleanerOptions::default();
        assert_eq!(o.get_dedupe_buffer_bytes(), DEFAULT_DEDUPE_BUFFER_BYTES);
        assert_eq!(o.get_load_factor(), DEFAULT_DEDUPE_LOAD_FACTOR);
        assert_eq!(o.get_io_max_bytes_per_second(), None);
        let o = o.dedupe_buffer_bytes(1).load_factor(0.5).io_max_bytes_per_second(Some(0));
        assert_eq!(o.get_dedupe_buffer_bytes(), 48, "two slots at least");
        assert_eq!(o.get_load_factor(), 0.5);
        assert_eq!(o.get_io_max_bytes_per_second(), Some(1));
        assert_eq!(o.clone().dedupe_buffer_bytes(1_000).get_dedupe_buffer_bytes(), 1_000);
        assert_eq!(o.clone().load_factor(0.01).get_load_factor(), 0.1);
        assert_eq!(o.clone().load_factor(7.0).get_load_factor(), 1.0);
        assert_eq!(o.load_factor(f64::NAN).get_load_factor(), DEFAULT_DEDUPE_LOAD_FACTOR);
    }

    #[test]
    fn a_closed_window_pauses_for_the_excess() {
        // 1,000 bytes through 1,000 B/s in a window that closed exactly now (300 ms): 700 ms.
        let t = Throttle::new(Some(1_000));
        let t0 = t.state.lock().0;
        assert_eq!(t.pause_at(1_000, t0 + THROTTLE_WINDOW), Duration::from_millis(700));
    }

    #[test]
    fn consume_sleeps_for_the_pause() {
        // A window of 300 ms closed with 500 bytes at 1,000 B/s: consume sleeps about 200 ms.
        // (A lower bound on a sleep: it never returns early, however busy the machine.)
        let t = Throttle::new(Some(1_000));
        let start = Instant::now();
        t.state.lock().0 = start.checked_sub(THROTTLE_WINDOW).expect("a monotonic clock past 300 ms");
        t.consume(500);
        assert!(start.elapsed() >= Duration::from_millis(150), "slept {:?}", start.elapsed());
    }

    #[test]
    fn unlimited_never_pauses() {
        let took = simulate(None, 1 << 30, 1 << 20, Duration::from_micros(100));
        assert_eq!(took, Duration::from_micros(100) * 1024);
    }

    #[test]
    fn under_the_limit_never_pauses() {
        // 1 KiB every 10 ms is 100 KiB/s, under 1 MiB/s.
        let t = Throttle::new(Some(1 << 20));
        let mut now = t.state.lock().0;
        for _ in 0..1_000 {
            now += Duration::from_millis(10);
            assert_eq!(t.pause_at(1 << 10, now), Duration::ZERO);
        }
    }

    #[test]
    fn sustained_io_over_the_limit_is_held_to_it() {
        // E.g. 64 KiB chunks at 1 ms each (64 MiB/s) through a 10 MiB/s limit, for 200 MiB.
        for (rate, chunk, io) in [
            (10u64 << 20, 64u64 << 10, Duration::from_millis(1)),
            (1 << 20, 4 << 10, Duration::from_micros(500)),
            (100 << 20, 1 << 20, Duration::from_millis(2)),
        ] {
            let total = 20 * rate;
            let took = simulate(Some(rate), total, chunk, io).as_secs_f64();
            // The last window (at most 300 ms of I/O at full speed) is never paid for: the rule
            // is checked when a window closes.
            let raw = chunk as f64 / io.as_secs_f64();
            let last_window = raw * THROTTLE_WINDOW.as_secs_f64();
            let fastest = (total as f64 - last_window) / rate as f64;
            assert!(took >= fastest * 0.999, "limit {rate} B/s: {total} bytes in {took:.3} s, at least {fastest:.3}");
            assert!(
                took <= total as f64 / rate as f64 * 1.05,
                "limit {rate} B/s: {total} bytes in {took:.3} s is slowed down too much"
            );
        }
    }

    #[test]
    fn io_slower_than_the_limit_is_not_slowed_down() {
        // 1 MiB chunks at 100 ms each is 10 MiB/s, under a 50 MiB/s limit.
        let io = Duration::from_millis(100);
        assert_eq!(simulate(Some(50 << 20), 50 << 20, 1 << 20, io), io * 50);
    }
}
