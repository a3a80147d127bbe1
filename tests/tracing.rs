//! The `tracing` feature: the engine's notable actions arrive as events with target
//! `partlog`, at the documented levels, with the fields an operator needs.

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use partlog::fs::sim::SimFs;
use partlog::{CleanupPolicy, Durability, ManualClock, Partition, Record, TopicConfig};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Level, Metadata, Subscriber};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One captured event: level, target and every field as text.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    target: String,
    fields: Vec<(String, String)>,
}

impl Captured {
    fn message(&self) -> &str {
        self.field("message").unwrap_or("")
    }
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A subscriber that records every event.
#[derive(Default)]
struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
    ids: AtomicU64,
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.ids.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        let m = event.metadata();
        self.events.lock().push(Captured { level: *m.level(), target: m.target().to_owned(), fields });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Runs `f` with a capturing subscriber; returns partlog's events.
fn capture(f: impl FnOnce() -> TestResult) -> Result<Vec<Captured>, Box<dyn std::error::Error>> {
    let sub = Capture::default();
    let events = Arc::clone(&sub.events);
    tracing::subscriber::with_default(sub, f)?;
    let all = events.lock().clone();
    Ok(all.into_iter().filter(|e| e.target == "partlog").collect())
}

fn find<'a>(events: &'a [Captured], message: &str) -> Option<&'a Captured> {
    events.iter().find(|e| e.message() == message)
}

#[test]
fn rolls_retention_compaction_and_truncation_are_reported() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let clock = ManualClock::new(1_700_000_000_000);
    let cfg = TopicConfig::default()
        .segment_bytes(200)
        .retention_ms(Some(60_000))
        .cleanup_policy(CleanupPolicy::COMPACT_DELETE)
        .min_cleanable_dirty_ratio(0.0);
    let events = capture(|| {
        let p = Partition::options().clock(clock.clone()).config(cfg.clone()).open(tmp.path().join("p"))?;
        for i in 0..20u32 {
            let k = format!("k{}", i % 3);
            p.append(Record::new().key(k.as_bytes()).value(&b"v".repeat(60)[..]))?;
        }
        p.compact()?;
        p.truncate_to(p.log_end_offset() - 1)?;
        clock.advance(120_000);
        p.append(Record::new().key(&b"new"[..]).value(&b"x"[..]))?;
        let r = p.run_retention()?;
        assert!(r.segments_deleted > 0);
        p.close()?;
        Ok(())
    })?;
    let roll = find(&events, "segment rolled").ok_or("a roll event")?;
    assert_eq!(roll.level, Level::INFO);
    assert!(roll.field("partition").is_some_and(|p| p.ends_with("/p")), "{roll:?}");
    assert!(roll.field("new_base").is_some() && roll.field("sealed_bytes").is_some(), "{roll:?}");
    let compaction = find(&events, "compaction pass").ok_or("a compaction event")?;
    assert!(compaction.field("report").is_some_and(|r| r.contains("records_removed")), "{compaction:?}");
    let trunc = find(&events, "log truncated").ok_or("a truncation event")?;
    assert_eq!((trunc.field("from"), trunc.field("to")), (Some("20"), Some("19")));
    let ret = find(&events, "retention deleted segments").ok_or("a retention event")?;
    assert!(ret.field("report").is_some_and(|r| r.contains("by_time")), "{ret:?}");
    // Nothing at warn or above in a healthy run.
    assert!(events.iter().all(|e| e.level > Level::WARN), "{events:?}");
    Ok(())
}

#[test]
fn a_torn_tail_and_an_unclean_open_are_reported() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    {
        let p = Partition::open(&dir)?;
        for _ in 0..10 {
            p.append(Record::with_value(&b"value"[..]))?;
        }
        // No close: the checkpoint stays unclean, as after a crash.
        std::mem::forget(p);
    }
    // Append half a batch header's worth of garbage: a torn tail.
    let log = dir.join(format!("{:020}.log", 0));
    let len = std::fs::metadata(&log)?.len();
    let f = std::fs::OpenOptions::new().write(true).open(&log)?;
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0x40, 0, 0, 0, 1, 2, 3], len)?;
    drop(f);
    // The forgotten handle still holds the directory lock in this process, so open a copy of
    // the files, as a restarted process would find them.
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy)?;
    for e in std::fs::read_dir(&dir)? {
        let e = e?;
        if e.file_name() != ".lock" {
            std::fs::copy(e.path(), copy.join(e.file_name()))?;
        }
    }
    let events = capture(|| {
        let p = Partition::open(&copy)?;
        assert_eq!(p.log_end_offset(), 10);
        assert!(p.recovery_report().tail_cut.is_some());
        p.close()?;
        Ok(())
    })?;
    let cut = find(&events, "torn tail cut at open").ok_or("a tail-cut event")?;
    assert_eq!(cut.level, Level::WARN);
    assert!(cut.field("cut").is_some_and(|c| c.contains("Some")), "{cut:?}");
    let open = find(&events, "partition opened after recovery").ok_or("a recovery event")?;
    assert!(open.field("report").is_some_and(|r| r.contains("clean: false")), "{open:?}");
    Ok(())
}

#[test]
fn a_failed_fsync_and_the_poisoning_it_causes_are_errors() -> TestResult {
    let fs = SimFs::new();
    let events = capture(|| {
        let p =
            Partition::options().fs(fs.clone()).config(TopicConfig::default().durability(Durability::Os)).open("/p")?;
        p.append(Record::with_value(&b"ok"[..]))?;
        // The explicit sync's only operation is its fsync (see tests/faults.rs).
        fs.fail_nth(0, ErrorKind::Other);
        assert!(p.sync().is_err());
        assert!(p.append(Record::with_value(&b"x"[..])).is_err(), "poisoned");
        assert!(p.sync().is_err());
        Ok(())
    })?;
    let fsync = find(&events, "fsync failed").ok_or("an fsync event")?;
    assert_eq!(fsync.level, Level::ERROR);
    let poisoned = find(&events, "partition poisoned: no more writes until reopened").ok_or("a poison event")?;
    assert_eq!(poisoned.level, Level::ERROR);
    assert!(poisoned.field("error").is_some());
    // Exactly one poisoning event, however many calls fail afterwards.
    assert_eq!(events.iter().filter(|e| e.message().starts_with("partition poisoned")).count(), 1);
    Ok(())
}

/// Passes that change nothing are not reported; a compaction pass is reported as failed only
/// when it failed for a reason other than the partition's configuration or its closing.
#[test]
fn quiet_passes_are_not_reported_and_only_real_failures_warn() -> TestResult {
    let fs = SimFs::new();
    let p = Partition::options().fs(fs.clone()).open("/p")?;
    for _ in 0..3 {
        p.append(Record::with_value(&b"v"[..]))?;
    }
    let quiet = capture(|| {
        p.truncate_to(p.log_end_offset())?;
        assert_eq!(p.run_retention()?.segments_deleted, 0);
        assert!(matches!(p.compact(), Err(partlog::Error::InvalidConfig { .. })), "not a compacted log");
        Ok(())
    })?;
    assert!(quiet.is_empty(), "{quiet:?}");
    assert_eq!(p.log_end_offset(), 3);

    let cfg = TopicConfig::default()
        .segment_bytes(200)
        .cleanup_policy(CleanupPolicy::COMPACT_DELETE)
        .min_cleanable_dirty_ratio(0.0);
    let q = Partition::options().fs(fs.clone()).config(cfg).open("/q")?;
    let append = |n: u32| -> TestResult {
        for i in 0..n {
            q.append(Record::new().key(format!("k{}", i % 3).as_bytes()).value(&b"v".repeat(60)[..]))?;
        }
        Ok(())
    };
    append(20)?;
    assert!(q.compact()?.cleaned);
    let second = capture(|| {
        assert!(!q.compact()?.cleaned, "nothing new to clean");
        Ok(())
    })?;
    assert!(second.is_empty(), "{second:?}");
    append(20)?;
    let failed = capture(|| {
        fs.fail_nth(0, ErrorKind::Other);
        assert!(q.compact().is_err());
        Ok(())
    })?;
    let warn = find(&failed, "compaction pass failed").ok_or("a failed-pass event")?;
    assert_eq!(warn.level, Level::WARN);
    assert!(find(&failed, "compaction pass").is_none(), "{failed:?}");
    q.close()?;
    let closed = capture(|| {
        assert!(matches!(q.compact(), Err(partlog::Error::Closed)));
        Ok(())
    })?;
    assert!(closed.is_empty(), "{closed:?}");
    Ok(())
}
