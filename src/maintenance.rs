//! The maintenance driver: everything periodic a log directory needs — `flush.ms` deadlines,
//! retention, compaction of the dirtiest due partition — owned by one driver the application
//! either steps from its own thread ([`Maintenance::run_once`]) or starts as one background
//! thread ([`LogDir::start_maintenance`]) and stops gracefully. partlog starts no thread the
//! application did not ask for.
//!
//! ```
//! use partlog::{LogDir, ManualClock, Record, TopicConfig};
//! # let tmp = tempfile::tempdir()?;
//! let clock = ManualClock::new(1_000_000);
//! let dir = LogDir::options().clock(clock.clone()).open(tmp.path().join("data"))?;
//! let t = dir.create_topic("events", TopicConfig::default().retention_ms(Some(60_000)))?;
//! t.append(Record::with_value("old"))?;
//! clock.advance(120_000);
//! let mut m = dir.maintenance();
//! let report = m.run_once();
//! assert_eq!(report.retention.len(), 1);
//! assert!(report.errors.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::cleaner::{CleanerOptions, CompactionReport, Throttle, choose};
use crate::error::Error;
use crate::logdir::LogDir;
use crate::partition::Partition;
use crate::retention::RetentionReport;

/// Longest the driver asks to wait between runs (Kafka checks retention every 5 minutes).
pub const MAX_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(300);
/// How long the driver waits after a run that found nothing to compact (Kafka's
/// `log.cleaner.backoff.ms`).
pub const CLEANER_BACKOFF: Duration = Duration::from_secs(15);

/// Which partition a maintenance result is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRef {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

/// What one [`Maintenance::run_once`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Partitions fsynced because `flush.ms` had passed.
    pub flushed: Vec<PartitionRef>,
    /// Retention passes that deleted something.
    pub retention: Vec<(PartitionRef, RetentionReport)>,
    /// The compaction pass run on the dirtiest due partition, if any was due.
    pub compaction: Option<(PartitionRef, CompactionReport)>,
    /// What failed (the run goes on with the other partitions). A partition whose compaction
    /// keeps failing also shows it in [`Partition::cleaner_status`].
    pub errors: Vec<(PartitionRef, Error)>,
    /// When the driver wants to run next.
    pub next_run_in: Duration,
}

/// The maintenance driver of one log directory. Cheap to create; see the module docs.
#[derive(Debug)]
pub struct Maintenance {
    dir: LogDir,
    cleaner: CleanerOptions,
    throttle: Arc<Throttle>,
}

impl Maintenance {
    pub(crate) fn new(dir: LogDir, cleaner: CleanerOptions, throttle: Arc<Throttle>) -> Maintenance {
        Maintenance { dir, cleaner, throttle }
    }

    /// Runs everything that is due now, once: fsyncs partitions whose `flush.ms` passed, runs
    /// retention where a segment is due (by time, size or log start), and one compaction pass
    /// on the compacted partition with the highest dirty ratio among those due (Kafka's
    /// `min.cleanable.dirty.ratio` and `max.compaction.lag.ms` rules). Returns what it did
    /// and when it wants to run next.
    pub fn run_once(&mut self) -> MaintenanceReport {
        let mut report = MaintenanceReport { next_run_in: MAX_MAINTENANCE_INTERVAL, ..Default::default() };
        let parts = match self.dir.all_partitions() {
            Ok(p) => p,
            Err(e) => {
                report.errors.push((PartitionRef { topic: String::new(), partition: 0 }, e));
                return report;
            }
        };
        let mut next_ms: i64 = i64::try_from(MAX_MAINTENANCE_INTERVAL.as_millis()).unwrap_or(i64::MAX);
        let mut dirtiest: Option<(f64, PartitionRef, Partition)> = None;
        for (topic, p) in &parts {
            let at = PartitionRef { topic: topic.clone(), partition: p.id() };
            let inner = &p.inner;
            match crate::partition::flush_if_due(inner) {
                Ok(true) => report.flushed.push(at.clone()),
                Ok(false) => {}
                Err(e) => report.errors.push((at.clone(), e)),
            }
            if let Some(ms) = crate::partition::flush_due_in(inner) {
                next_ms = next_ms.min(ms);
            }
            let config = p.config();
            let now = inner.clock.now_ms();
            let mut metas: Vec<_> = inner.view().segments.iter().map(|s| s.meta()).collect();
            let mut log_start = p.log_start_offset();
            let plan = crate::retention::plan(&metas, log_start, now, &config);
            if !plan.reasons.is_empty() || plan.roll_first {
                match p.run_retention() {
                    Ok(r) if r.segments_deleted > 0 || r.rolled => report.retention.push((at.clone(), r)),
                    Ok(_) => {}
                    Err(e) => report.errors.push((at.clone(), e)),
                }
                // Plan what comes next on the segments as they are now.
                metas = inner.view().segments.iter().map(|s| s.meta()).collect();
                log_start = p.log_start_offset();
            }
            if let Some(ms) = crate::retention::next_expiry_in(&metas, now, &config) {
                next_ms = next_ms.min(ms.max(0));
            }
            if config.cleanup_policy.compact {
                let offset = crate::partition::maintenance::cleaner_offset(inner);
                let c = choose::cleanable(&metas, log_start, offset, now, &config);
                if c.is_due(&config) && dirtiest.as_ref().is_none_or(|(r, _, _)| c.ratio > *r) {
                    dirtiest = Some((c.ratio, at.clone(), p.clone()));
                }
            }
        }
        // Committed offsets of groups empty for offsets.retention.minutes.
        if let Err(e) = self.dir.expire_offsets() {
            report.errors.push((PartitionRef { topic: crate::OFFSETS_TOPIC.to_owned(), partition: 0 }, e));
        }
        match dirtiest {
            Some((_, at, p)) => {
                match p.compact_throttled(&self.cleaner, &self.throttle, false) {
                    Ok(r) => {
                        if r.partial {
                            next_ms = 0;
                        }
                        report.compaction = Some((at, r));
                    }
                    Err(e) => report.errors.push((at, e)),
                }
                // Other partitions may be due as well: come back soon.
                next_ms = next_ms.min(0);
            }
            None => {
                next_ms = next_ms.min(i64::try_from(CLEANER_BACKOFF.as_millis()).unwrap_or(i64::MAX));
            }
        }
        report.next_run_in = Duration::from_millis(u64::try_from(next_ms.max(0)).unwrap_or(0));
        report
    }
}

/// The background maintenance thread of a log directory, started by
/// [`LogDir::start_maintenance`]. Dropping it stops it too (without waiting).
#[derive(Debug)]
pub struct MaintenanceWorker {
    shared: Arc<WorkerShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct WorkerShared {
    /// `(stop, woken)`: a wake while a run is in progress is not lost.
    stop: Mutex<(bool, bool)>,
    wake: Condvar,
    last: Mutex<Option<MaintenanceReport>>,
}

impl MaintenanceWorker {
    pub(crate) fn start(mut m: Maintenance) -> std::io::Result<MaintenanceWorker> {
        let shared = Arc::new(WorkerShared::default());
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("partlog-maintenance".into()).spawn(move || {
            loop {
                if s.stop.lock().0 || m.dir.is_closed() {
                    return;
                }
                s.stop.lock().1 = false;
                let report = m.run_once();
                // Waits on the wall clock (the directory's clock may be a test clock), at
                // least 1 ms so a busy cleaner still yields.
                let wait = report.next_run_in.clamp(Duration::from_millis(1), MAX_MAINTENANCE_INTERVAL);
                *s.last.lock() = Some(report);
                let mut st = s.stop.lock();
                if !st.0 && !st.1 {
                    s.wake.wait_for(&mut st, wait);
                }
                if st.0 {
                    return;
                }
            }
        })?;
        Ok(MaintenanceWorker { shared, thread: Some(thread) })
    }

    /// Takes the report of the worker's last run.
    pub fn take_last_report(&self) -> Option<MaintenanceReport> {
        self.shared.last.lock().take()
    }

    /// Asks the worker to run again now instead of waiting.
    pub fn wake(&self) {
        self.shared.stop.lock().1 = true;
        self.shared.wake.notify_all();
    }

    /// Stops the worker after its current step and waits for it.
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn signal_stop(&self) {
        self.shared.stop.lock().0 = true;
        self.shared.wake.notify_all();
    }
}

impl Drop for MaintenanceWorker {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
