//! Consumer groups: splitting partitions, rebalancing on join, leave, drop and poll timeout,
//! exactly one owner per partition, commit fencing, resuming from committed offsets, the
//! offset store's durability and its hostile input, and the group admin operations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use partlog::fs::sim::{CrashMode, SimFs};
use partlog::{
    AssignmentStrategy, Consumer, ConsumerConfig, Durability, Error, LogDir, ManualClock, OffsetReset, OffsetSpec,
    RebalanceEvent, Record, TopicConfig, TopicPartition,
};

mod common;
use common::{Rng, seed};

type R = Result<(), Box<dyn std::error::Error>>;

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(1);

fn sim_dir(fs: &Arc<SimFs>, clock: &Arc<ManualClock>) -> partlog::Result<LogDir> {
    LogDir::options().fs(fs.clone()).clock(clock.clone()).open("/d")
}

fn member(dir: &LogDir, group: &str, strategy: AssignmentStrategy) -> partlog::Result<Consumer> {
    let mut c = dir.consumer(
        ConsumerConfig::new()
            .group_id(group)
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .assignment_strategy(strategy),
    )?;
    c.subscribe(&["t"])?;
    Ok(c)
}

/// Polls every consumer, round after round, until two rounds in a row report no change (a
/// release shows only in the next round's assignment); returns each one's assignment.
fn settle(cs: &mut [&mut Consumer]) -> partlog::Result<Vec<BTreeSet<TopicPartition>>> {
    let mut quiet = 0;
    for _ in 0..40 {
        let mut changed = false;
        for c in cs.iter_mut() {
            let r = c.poll(SHORT)?;
            changed |= !r.events().is_empty();
        }
        quiet = if changed { 0 } else { quiet + 1 };
        if quiet == 2 {
            break;
        }
    }
    Ok(cs.iter().map(|c| c.assignment().into_iter().collect()).collect())
}

fn all_partitions(n: u32) -> BTreeSet<TopicPartition> {
    (0..n).map(|p| TopicPartition::new("t", p)).collect()
}

fn assert_split(sets: &[BTreeSet<TopicPartition>], n: u32) {
    let mut seen = BTreeSet::new();
    for s in sets {
        for tp in s {
            assert!(seen.insert(tp.clone()), "{tp} owned twice: {sets:?}");
        }
    }
    assert_eq!(seen, all_partitions(n), "not every partition owned: {sets:?}");
}

#[test]
fn members_split_partitions_and_rebalance_on_join_and_leave() -> R {
    for strategy in [AssignmentStrategy::Range, AssignmentStrategy::RoundRobin, AssignmentStrategy::CooperativeSticky] {
        let fs = SimFs::new();
        let clock = ManualClock::new(1_000);
        let dir = sim_dir(&fs, &clock)?;
        dir.create_topic("t", TopicConfig::default().partitions(6))?;
        let mut a = member(&dir, "g", strategy)?;
        let sets = settle(&mut [&mut a])?;
        assert_eq!(sets[0], all_partitions(6), "{strategy:?}: a lone member owns everything");
        let mut b = member(&dir, "g", strategy)?;
        let sets = settle(&mut [&mut a, &mut b])?;
        assert_split(&sets, 6);
        assert_eq!((sets[0].len(), sets[1].len()), (3, 3), "{strategy:?}");
        let mut c = member(&dir, "g", strategy)?;
        let sets = settle(&mut [&mut a, &mut b, &mut c])?;
        assert_split(&sets, 6);
        assert!(sets.iter().all(|s| s.len() == 2), "{strategy:?}: {sets:?}");
        // More members than partitions: the rest stay idle.
        let mut idle: Vec<Consumer> = (0..4).map(|_| member(&dir, "g", strategy)).collect::<Result<_, _>>()?;
        {
            let mut all: Vec<&mut Consumer> = vec![&mut a, &mut b, &mut c];
            all.extend(idle.iter_mut());
            let sets = settle(&mut all)?;
            assert_split(&sets, 6);
            assert_eq!(sets.iter().filter(|s| s.is_empty()).count(), 1);
        }
        drop(idle);
        // close and drop both leave the group at once.
        c.close()?;
        let sets = settle(&mut [&mut a, &mut b])?;
        assert_split(&sets, 6);
        drop(b);
        let sets = settle(&mut [&mut a])?;
        assert_eq!(sets[0], all_partitions(6), "{strategy:?}");
    }
    Ok(())
}

#[test]
fn a_partition_moves_only_after_its_owner_let_go_and_may_commit_first() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000);
    let dir = sim_dir(&fs, &clock)?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(2))?;
    for p in 0..2 {
        for i in 0..10 {
            t.append_to(p, Record::with_value(format!("{i}")))?;
        }
    }
    let mut a = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
    let first = a.poll(LONG)?;
    assert_eq!(first.assigned().len(), 2);
    // b joins: one partition moves from a to b.
    let mut b = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
    assert!(b.poll(SHORT)?.assigned().is_empty(), "b took a partition a still owns");
    let r = a.poll(SHORT)?;
    let revoked = r.revoked();
    assert_eq!(revoked.len(), 1, "{:?}", r.events());
    // a still owns it until its next poll, and may commit its progress on it.
    assert!(a.assignment().contains(&revoked[0]));
    assert!(b.poll(SHORT)?.assigned().is_empty(), "b took the partition before a let go");
    a.commit_offsets(&[(revoked[0].clone(), partlog::OffsetAndMetadata::new(7))])?;
    // a's next poll lets go; b takes it and resumes at the committed offset.
    a.poll(SHORT)?;
    assert!(!a.assignment().contains(&revoked[0]));
    let r = b.poll(LONG)?;
    assert_eq!(r.assigned(), revoked);
    let r = if r.is_empty() { b.poll(LONG)? } else { r };
    assert_eq!(r.iter().next().map(|x| (x.partition(), x.offset())), Some((revoked[0].partition, 7)));
    // a may not commit for the partition it gave away.
    let err = a.commit_offsets(&[(revoked[0].clone(), partlog::OffsetAndMetadata::new(0))]);
    assert!(matches!(err, Err(Error::CommitRejected { .. })), "{err:?}");
    Ok(())
}

#[test]
fn eager_assignors_revoke_everything_at_each_rebalance() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000);
    let dir = sim_dir(&fs, &clock)?;
    dir.create_topic("t", TopicConfig::default().partitions(4))?;
    let mut a = member(&dir, "g", AssignmentStrategy::Range)?;
    settle(&mut [&mut a])?;
    let _b = member(&dir, "g", AssignmentStrategy::Range)?;
    let r = a.poll(SHORT)?;
    assert_eq!(r.revoked().len(), 4, "eager: all of a's partitions are revoked, {:?}", r.events());
    Ok(())
}

#[test]
fn a_member_that_stops_polling_is_expelled_and_fenced() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000);
    let dir = sim_dir(&fs, &clock)?;
    dir.create_topic("t", TopicConfig::default().partitions(2))?;
    let cfg = |ms| {
        ConsumerConfig::new()
            .group_id("g")
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .max_poll_interval_ms(ms)
    };
    let mut slow = dir.consumer(cfg(1_000))?;
    slow.subscribe(&["t"])?;
    let mut fast = dir.consumer(cfg(1_000))?;
    fast.subscribe(&["t"])?;
    let sets = settle(&mut [&mut slow, &mut fast])?;
    assert_split(&sets, 2);
    let slow_had: Vec<TopicPartition> = slow.assignment();
    assert_eq!(slow_had.len(), 1);
    // slow stops polling for longer than max.poll.interval.ms; fast keeps polling.
    clock.advance(1_001);
    let sets = settle(&mut [&mut fast])?;
    assert_eq!(sets[0], all_partitions(2), "fast did not take over the expelled member's partition");
    // The slow member's late commit is fenced.
    let late = slow.commit_offsets(&[(slow_had[0].clone(), partlog::OffsetAndMetadata::new(0))]);
    assert!(matches!(late, Err(Error::CommitRejected { .. })), "{late:?}");
    // Its next poll reports the loss and it rejoins.
    let r = slow.poll(SHORT)?;
    assert!(r.events().iter().any(|e| matches!(e, RebalanceEvent::Lost(l) if *l == slow_had)), "{:?}", r.events());
    let sets = settle(&mut [&mut slow, &mut fast])?;
    assert_split(&sets, 2);
    Ok(())
}

/// Many threads join, poll and leave one group at random; a shared table records each
/// partition's owner as the application sees it (from `assigned` until the poll after
/// `revoked`): never two at once, and every record is delivered exactly once per owner change
/// without gaps (at-least-once from committed offsets).
#[test]
fn exactly_one_owner_under_concurrent_joins_and_leaves() -> R {
    let s = seed("exactly_one_owner_under_concurrent_joins_and_leaves");
    let tmp = tempfile::tempdir()?;
    let dir = LogDir::open(tmp.path().join("d"))?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(8))?;
    for p in 0..8 {
        for i in 0..200 {
            t.append_to(p, Record::with_value(format!("{i}")))?;
        }
    }
    // Eager and cooperative protocols alike; the seed picks one.
    let strategy = if s.is_multiple_of(2) { AssignmentStrategy::CooperativeSticky } else { AssignmentStrategy::Range };
    println!("strategy {strategy:?}");
    let owners: Arc<Mutex<HashMap<TopicPartition, usize>>> = Arc::default();
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let threads: Vec<_> = (0..6)
        .map(|id| {
            let (dir, owners, violations) = (dir.clone(), Arc::clone(&owners), Arc::clone(&violations));
            std::thread::spawn(move || -> partlog::Result<()> {
                let mut rng = Rng::new(s ^ (id as u64 * 7919));
                for _round in 0..4 {
                    let mut c = member(&dir, "g", strategy)?;
                    let mut revoked: Vec<TopicPartition> = Vec::new();
                    for _ in 0..rng.range(5, 40) {
                        {
                            // The application is done with what was revoked before polling.
                            let mut o = owners.lock().map_err(|_| Error::Closed)?;
                            for tp in revoked.drain(..) {
                                if o.remove(&tp) != Some(id) {
                                    violations
                                        .lock()
                                        .map_err(|_| Error::Closed)?
                                        .push(format!("{id} released {tp} it did not own"));
                                }
                            }
                        }
                        let r = c.poll(Duration::from_millis(rng.range(0, 3)))?;
                        {
                            let mut o = owners.lock().map_err(|_| Error::Closed)?;
                            for tp in r.assigned() {
                                if let Some(prev) = o.insert(tp.clone(), id) {
                                    violations
                                        .lock()
                                        .map_err(|_| Error::Closed)?
                                        .push(format!("{id} got {tp} while {prev} owned it"));
                                }
                            }
                            for rec in r.iter() {
                                let tp = TopicPartition::new(rec.topic(), rec.partition());
                                if o.get(&tp) != Some(&id) {
                                    violations
                                        .lock()
                                        .map_err(|_| Error::Closed)?
                                        .push(format!("{id} read {tp} without owning it"));
                                }
                            }
                        }
                        revoked.extend(r.revoked());
                        if rng.below(3) == 0 {
                            match c.commit() {
                                Ok(()) | Err(Error::CommitRejected { .. }) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    {
                        let mut o = owners.lock().map_err(|_| Error::Closed)?;
                        for tp in c.assignment() {
                            o.remove(&tp);
                        }
                    }
                    c.close()?;
                }
                Ok(())
            })
        })
        .collect();
    for h in threads {
        h.join().map_err(|_| "a member thread panicked")??;
    }
    let v = violations.lock().map_err(|_| "poisoned")?;
    assert!(v.is_empty(), "ownership violations: {v:?}");
    Ok(())
}

#[test]
fn restart_resumes_from_commits_with_nothing_skipped() -> R {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("d");
    let mut processed: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    {
        let dir = LogDir::open(&path)?;
        let t = dir.create_topic("t", TopicConfig::default().partitions(3))?;
        for p in 0..3 {
            for i in 0..100 {
                t.append_to(p, Record::with_value(format!("{i}")))?;
            }
        }
        let mut c = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
        let mut n = 0;
        while n < 150 {
            let r = c.poll(LONG)?;
            for rec in r.iter() {
                processed.entry(rec.partition()).or_default().push(rec.offset());
                n += 1;
            }
            if n < 120 {
                c.commit()?;
            }
        }
        // A crash: records after the last commit were processed but not committed.
        drop(c);
        dir.close()?;
    }
    let dir = LogDir::open(&path)?;
    let mut c = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
    let mut again: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut n = 0;
    loop {
        let r = c.poll(Duration::from_millis(200))?;
        if r.is_empty() && r.events().is_empty() {
            break;
        }
        for rec in r.iter() {
            again.entry(rec.partition()).or_default().push(rec.offset());
            n += 1;
        }
    }
    assert!(n > 0 && n <= 300);
    for p in 0..3u32 {
        let first = processed.get(&p).cloned().unwrap_or_default();
        let second = again.get(&p).cloned().unwrap_or_default();
        // Resumed at a committed offset: the second run starts at or before where the first
        // stopped (the uncommitted window is redelivered), and together they cover 0..100.
        let resumed_at = second.first().copied().unwrap_or(100);
        assert!(resumed_at <= first.last().map_or(0, |l| l + 1), "partition {p}: skipped records");
        let all: BTreeSet<u64> = first.iter().chain(&second).copied().collect();
        assert_eq!(all, (0..100).collect::<BTreeSet<_>>(), "partition {p}");
        assert_eq!(second, (resumed_at..100).collect::<Vec<_>>(), "partition {p}: not in order");
    }
    Ok(())
}

#[test]
fn an_acknowledged_commit_survives_power_loss_at_every_point() -> R {
    // Count the operations of one commit, then crash after each of them.
    let run = |k: Option<u64>| -> Result<(Arc<SimFs>, bool), Box<dyn std::error::Error>> {
        let fs = SimFs::new();
        let clock = ManualClock::new(1_000);
        let dir = sim_dir(&fs, &clock)?;
        let t = dir.create_topic("t", TopicConfig::default().durability(Durability::EveryAppend))?;
        for i in 0..5 {
            t.append(Record::with_value(format!("{i}")))?;
        }
        let mut c = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
        c.poll(LONG)?;
        c.commit_offsets(&[(TopicPartition::new("t", 0), partlog::OffsetAndMetadata::new(2))])?;
        if let Some(k) = k {
            fs.crash_after(k);
        }
        let acked = c.commit_offsets(&[(TopicPartition::new("t", 0), partlog::OffsetAndMetadata::new(4))]).is_ok();
        fs.crash(CrashMode::LoseUnsynced);
        std::mem::forget(c);
        std::mem::forget(dir);
        Ok((fs, acked))
    };
    let (fs, _) = run(None)?;
    let total = fs.mutating_ops();
    for k in 0..total {
        let (fs, acked) = run(Some(k))?;
        let clock = ManualClock::new(2_000);
        let dir = sim_dir(&fs, &clock)?;
        let c = dir.consumer(ConsumerConfig::new().group_id("g"))?;
        let got = c.committed(&TopicPartition::new("t", 0))?.map(|o| o.offset);
        if acked {
            assert_eq!(got, Some(4), "crash after {k} ops: an acknowledged commit was lost");
        } else {
            assert!(got == Some(2) || got == Some(4), "crash after {k} ops: {got:?}");
        }
    }
    Ok(())
}

#[test]
fn a_commit_past_a_lost_log_end_is_reset() -> R {
    // The data topic does not fsync; the offsets topic does: after a power loss the commit
    // can point past the data that survived.
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000);
    let dir = sim_dir(&fs, &clock)?;
    let t = dir.create_topic("t", TopicConfig::default().durability(Durability::Os))?;
    t.partition(0)?.sync()?;
    for i in 0..10 {
        t.append(Record::with_value(format!("{i}")))?;
    }
    let mut c = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
    c.poll(LONG)?;
    c.commit()?;
    fs.crash(CrashMode::LoseUnsynced);
    std::mem::forget(c);
    std::mem::forget(t);
    std::mem::forget(dir);
    let dir = sim_dir(&fs, &clock)?;
    let tp = TopicPartition::new("t", 0);
    let end = dir.topic("t")?.partition(0)?.log_end_offset();
    let committed = dir.consumer(ConsumerConfig::new().group_id("g"))?.committed(&tp)?.map(|o| o.offset);
    assert!(committed > Some(end), "setup: the commit {committed:?} should be past the log end {end}");
    let mut c = dir.consumer(ConsumerConfig::new().group_id("g").auto_offset_reset(OffsetReset::Earliest))?;
    c.assign(std::slice::from_ref(&tp))?;
    assert_eq!(c.position(&tp)?, 0, "earliest: from the log start");
    let mut strict = dir.consumer(ConsumerConfig::new().group_id("g").auto_offset_reset(OffsetReset::None))?;
    strict.assign(std::slice::from_ref(&tp))?;
    assert!(matches!(strict.position(&tp), Err(Error::OffsetOutOfRange { .. })));
    Ok(())
}

#[test]
fn committed_offsets_survive_compaction_of_the_offsets_topic() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000);
    let dir = sim_dir(&fs, &clock)?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(4))?;
    for p in 0..4 {
        t.append_to(p, Record::with_value("x"))?;
    }
    let mut c = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
    settle(&mut [&mut c])?;
    for round in 0..300u64 {
        let offsets: Vec<_> =
            (0..4).map(|p| (TopicPartition::new("t", p), partlog::OffsetAndMetadata::new(round % 2))).collect();
        c.commit_offsets(&offsets)?;
    }
    let offsets = dir.topic(partlog::OFFSETS_TOPIC)?.partition(0)?;
    offsets.roll()?;
    let report = offsets.compact()?;
    assert!(report.cleaned && report.records_removed > 1_000, "{report:?}");
    c.close()?;
    dir.close()?;
    let dir = sim_dir(&fs, &clock)?;
    let c = dir.consumer(ConsumerConfig::new().group_id("g"))?;
    for p in 0..4 {
        assert_eq!(c.committed(&TopicPartition::new("t", p))?.map(|o| o.offset), Some(1));
    }
    Ok(())
}

#[test]
fn hostile_offset_records_are_a_typed_error() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000);
    let dir = sim_dir(&fs, &clock)?;
    dir.create_topic("t", TopicConfig::default())?;
    let mut c = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
    c.poll(SHORT)?;
    c.commit_offsets(&[(TopicPartition::new("t", 0), partlog::OffsetAndMetadata::new(0))])?;
    c.close()?;
    // Forge a record in the offsets topic: a known key version with a truncated value.
    let offsets = dir.topic(partlog::OFFSETS_TOPIC)?.partition(0)?;
    let mut key = vec![0u8, 1, 0, 1, b'g', 0, 1, b't'];
    key.extend_from_slice(&0i32.to_be_bytes());
    offsets.append(Record::new().key(key).value(vec![0u8, 3, 1]))?;
    dir.close()?;
    let dir = sim_dir(&fs, &clock)?;
    let err = dir.list_groups().err().ok_or("a forged offset record was accepted")?;
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    let c = dir.consumer(ConsumerConfig::new().group_id("g"))?;
    assert!(matches!(c.committed(&TopicPartition::new("t", 0)), Err(Error::Corrupt { .. })));
    Ok(())
}

#[test]
fn list_describe_reset_and_delete_groups() -> R {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000);
    let dir = sim_dir(&fs, &clock)?;
    let t = dir.create_topic("t", TopicConfig::default().partitions(2))?;
    for p in 0..2 {
        for i in 0..10 {
            t.append_to(p, Record::with_value(format!("{i}")).timestamp(1_000 + i))?;
        }
    }
    let mut c = member(&dir, "g", AssignmentStrategy::CooperativeSticky)?;
    settle(&mut [&mut c])?;
    c.commit_offsets(&[
        (TopicPartition::new("t", 0), partlog::OffsetAndMetadata::new(4)),
        (TopicPartition::new("t", 1), partlog::OffsetAndMetadata::new(9)),
    ])?;
    assert_eq!(dir.list_groups()?, vec!["g".to_owned()]);
    let d = dir.describe_group("g")?;
    assert_eq!((d.state, d.members.len()), ("Stable", 1));
    let lags: Vec<(u32, u64)> = d.partitions.iter().map(|p| (p.partition.partition, p.lag)).collect();
    assert_eq!(lags, vec![(0, 6), (1, 1)]);
    assert!(matches!(dir.reset_group_offsets("g", &[], OffsetSpec::Earliest, true), Err(Error::GroupNotEmpty { .. })));
    assert!(matches!(dir.delete_group("g"), Err(Error::GroupNotEmpty { .. })));
    c.close()?;
    assert_eq!(dir.describe_group("g")?.state, "Empty");
    // A dry run changes nothing.
    let plan = dir.reset_group_offsets("g", &[], OffsetSpec::Latest, false)?;
    assert_eq!(plan.iter().map(|(_, o)| *o).collect::<Vec<_>>(), vec![10, 10]);
    let probe = dir.consumer(ConsumerConfig::new().group_id("g"))?;
    assert_eq!(probe.committed(&TopicPartition::new("t", 0))?.map(|o| o.offset), Some(4));
    for (spec, want) in [
        (OffsetSpec::ShiftBy(-2), vec![2, 7]),
        (OffsetSpec::ShiftBy(100), vec![10, 10]),
        (OffsetSpec::Offset(3), vec![3, 3]),
        (OffsetSpec::Timestamp(1_005), vec![5, 5]),
        (OffsetSpec::Earliest, vec![0, 0]),
    ] {
        let done = dir.reset_group_offsets("g", &[], spec, true)?;
        assert_eq!(done.iter().map(|(_, o)| *o).collect::<Vec<_>>(), want, "{spec:?}");
        let got: Vec<u64> = (0..2)
            .map(|p| probe.committed(&TopicPartition::new("t", p)).map(|o| o.map_or(u64::MAX, |o| o.offset)))
            .collect::<Result<_, _>>()?;
        assert_eq!(got, want, "{spec:?} not applied");
    }
    dir.delete_group("g")?;
    assert!(dir.list_groups()?.is_empty());
    assert!(matches!(dir.describe_group("g"), Err(Error::GroupNotFound { .. })));
    // Deleted durably.
    dir.close()?;
    let dir = sim_dir(&fs, &clock)?;
    assert!(dir.list_groups()?.is_empty());
    let _ = Path::new("/");
    Ok(())
}
