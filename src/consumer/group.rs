//! The in-process group coordinator of a log directory: group membership, assignment,
//! partition ownership and the committed-offset table.
//!
//! **Ownership.** Each partition of a group's subscription has at most one owner at any
//! moment. A rebalance computes a *target* assignment; a partition whose target owner differs
//! from its current owner stays with the current owner until that member lets it go (at its
//! next poll, after being told, or when it leaves or is expelled for not polling within
//! `max.poll.interval.ms`); only then does the new owner take it. Under the eager assignors
//! (range, round-robin) every member lets go of everything at each rebalance; under the
//! cooperative one only of what moves.
//!
//! **Epochs.** Every time a partition changes hands its assignment epoch grows. Commits carry
//! the committer's epoch, and a commit under an older epoch than the one recorded changes
//! nothing — live or when the offsets topic is replayed — so a member that lost a partition
//! can never move the new owner's offset backwards.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::TopicPartition;
use super::assignor::{self, Assignment, AssignmentStrategy, Subscriptions};
use super::store::{self, Entry, GroupRecord, OFFSETS_TOPIC, OffsetAndMetadata, Table};
use crate::config::{CleanupPolicy, TopicConfig};
use crate::error::{Error, Result};
use crate::logdir::LogDir;
use crate::partition::Doorbell;
use crate::topic::Topic;

/// Segment size of the offsets topic (Kafka's `offsets.topic.segment.bytes`).
pub const OFFSETS_SEGMENT_BYTES: u32 = 100 * 1024 * 1024;

#[derive(Debug)]
struct Member {
    topics: BTreeSet<String>,
    last_seen: i64,
    in_poll: bool,
    max_poll_interval_ms: u64,
    bell: Weak<Doorbell>,
}

#[derive(Debug)]
struct Group {
    generation: u32,
    strategy: AssignmentStrategy,
    members: BTreeMap<String, Member>,
    target: Assignment,
    owners: HashMap<TopicPartition, String>,
    /// Partition counts the target was computed for.
    counts: BTreeMap<String, u32>,
    empty_since: Option<i64>,
}

impl Group {
    fn new(strategy: AssignmentStrategy, generation: u32) -> Group {
        Group {
            generation,
            strategy,
            members: BTreeMap::new(),
            target: Assignment::new(),
            owners: HashMap::new(),
            counts: BTreeMap::new(),
            empty_since: None,
        }
    }

    fn ring_all(&self) {
        for m in self.members.values() {
            if let Some(b) = m.bell.upgrade() {
                b.ring();
            }
        }
    }
}

/// A member asking to join a group.
#[derive(Debug)]
pub(crate) struct Join<'a> {
    pub client_id: &'a str,
    pub topics: BTreeSet<String>,
    pub strategy: AssignmentStrategy,
    pub max_poll_interval_ms: u64,
    pub bell: &'a Arc<Doorbell>,
}

/// What a member sees of its group at a heartbeat.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemberView {
    pub generation: u32,
    /// The member is no longer in the group (expelled, or the group was deleted).
    pub expelled: bool,
    pub target: BTreeSet<TopicPartition>,
    pub owned: BTreeSet<TopicPartition>,
    pub cooperative: bool,
}

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    table: Table,
    groups: HashMap<String, Group>,
    /// Assignment epoch of each (group, partition): grows at every change of owner.
    epochs: HashMap<(String, TopicPartition), i32>,
    next_member: u64,
}

/// The coordinator of one log directory.
#[derive(Debug, Default)]
pub(crate) struct Coordinator {
    state: Mutex<State>,
}

/// One member of a group, as `describe` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// Topics it subscribes to.
    pub topics: Vec<String>,
    /// Partitions it owns now.
    pub assignment: Vec<TopicPartition>,
}

/// A partition in a group description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    /// The partition.
    pub partition: TopicPartition,
    /// Its committed offset, if any.
    pub committed: Option<OffsetAndMetadata>,
    /// Its log end offset.
    pub log_end_offset: u64,
    /// `log end − committed` (the whole partition when nothing is committed).
    pub lag: u64,
    /// The member that owns it, if any.
    pub owner: Option<String>,
}

/// A group, as `kafka-consumer-groups --describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group id.
    pub group: String,
    /// `Empty` or `Stable` (a group with members); Kafka's names.
    pub state: &'static str,
    /// Rebalances so far.
    pub generation: u32,
    /// The assignment strategy's Kafka name.
    pub strategy: &'static str,
    /// Its members.
    pub members: Vec<MemberDescription>,
    /// Every partition it has a committed offset for or owns, with its lag.
    pub partitions: Vec<GroupPartition>,
}

/// Where [`reset_offsets`](crate::LogDir::reset_group_offsets) moves a group's offsets
/// (`kafka-consumer-groups --reset-offsets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// The first offset with a timestamp at or after this (the log end if none).
    Timestamp(i64),
    /// This offset, clamped into the log.
    Offset(u64),
    /// The committed offset moved by this much, clamped into the log.
    ShiftBy(i64),
}

fn offsets_config(partitions: u32) -> TopicConfig {
    TopicConfig::default()
        .partitions(partitions)
        .cleanup_policy(CleanupPolicy::COMPACT)
        .segment_bytes(OFFSETS_SEGMENT_BYTES)
        .durability(crate::config::Durability::EveryAppend)
}

impl Coordinator {
    /// The offsets topic, created on first use.
    fn offsets_topic(dir: &LogDir) -> Result<Topic> {
        dir.internal_topic(OFFSETS_TOPIC, offsets_config(dir.offsets_partitions()))
    }

    /// Replays the offsets topic into the table once.
    fn load(&self, dir: &LogDir, st: &mut State) -> Result<()> {
        if st.loaded {
            return Ok(());
        }
        let topic = Self::offsets_topic(dir)?;
        let mut table = Table::default();
        for p in topic.partitions() {
            let mut reader = p.reader(p.log_start_offset());
            while let Some(recs) = reader.next_records()? {
                for r in recs.iter() {
                    let e = store::decode(r.key(), r.value()).map_err(|_| store::bad_record(p.path(), r.offset()))?;
                    table.apply(e);
                }
            }
        }
        for (g, offsets) in &table.offsets {
            for (tp, (_, epoch)) in offsets {
                st.epochs.insert((g.clone(), tp.clone()), *epoch);
            }
        }
        for (g, rec) in &table.groups {
            let strategy = AssignmentStrategy::parse(&rec.strategy).unwrap_or_default();
            let mut group = Group::new(strategy, rec.generation);
            group.empty_since = Some(rec.empty_since.unwrap_or_else(|| dir.now_ms()));
            st.groups.insert(g.clone(), group);
        }
        st.table = table;
        st.loaded = true;
        Ok(())
    }

    fn append_group(dir: &LogDir, group: &str, rec: Option<&GroupRecord>) -> Result<()> {
        let topic = Self::offsets_topic(dir)?;
        let p = store::partition_for_group(group, topic.partition_count());
        topic.append_batch_to(p, &[store::group_record(group, rec, dir.now_ms())])?;
        Ok(())
    }

    /// Adds a member; the group rebalances. Returns the member id.
    pub(crate) fn join(&self, dir: &LogDir, group: &str, req: Join<'_>) -> Result<String> {
        let Join { client_id, topics, strategy, max_poll_interval_ms, bell } = req;
        let now = dir.now_ms();
        let (id, record) = {
            let mut st = self.state.lock();
            self.load(dir, &mut st)?;
            st.next_member += 1;
            let id = format!("{client_id}-{}", st.next_member);
            let g = st.groups.entry(group.to_owned()).or_insert_with(|| Group::new(strategy, 0));
            if g.members.is_empty() {
                g.strategy = strategy;
            }
            let was_empty = g.members.is_empty();
            g.members.insert(
                id.clone(),
                Member { topics, last_seen: now, in_poll: false, max_poll_interval_ms, bell: Arc::downgrade(bell) },
            );
            g.empty_since = None;
            rebalance(dir, g)?;
            let record = was_empty.then(|| GroupRecord {
                generation: g.generation,
                empty_since: None,
                strategy: g.strategy.name().to_owned(),
            });
            (id, record)
        };
        if let Some(r) = record {
            Self::append_group(dir, group, Some(&r))?;
        }
        Ok(id)
    }

    /// A member's view of its group; expels members that stopped polling and rebalances
    /// when subscribed topics gained partitions.
    pub(crate) fn heartbeat(&self, dir: &LogDir, group: &str, member: &str, in_poll: bool) -> Result<MemberView> {
        let now = dir.now_ms();
        let (view, emptied) = {
            let mut st = self.state.lock();
            self.load(dir, &mut st)?;
            let Some(g) = st.groups.get_mut(group) else {
                return Ok(MemberView { expelled: true, ..MemberView::default() });
            };
            let emptied = expire_members(dir, g, now)?.then(|| GroupRecord {
                generation: g.generation,
                empty_since: Some(now),
                strategy: g.strategy.name().to_owned(),
            });
            let view = match g.members.get_mut(member) {
                None => MemberView { expelled: true, generation: g.generation, ..MemberView::default() },
                Some(m) => {
                    m.last_seen = now;
                    m.in_poll = in_poll;
                    if counts_changed(dir, g)? {
                        rebalance(dir, g)?;
                    }
                    MemberView {
                        generation: g.generation,
                        expelled: false,
                        target: g.target.get(member).cloned().unwrap_or_default(),
                        owned: g
                            .owners
                            .iter()
                            .filter(|(_, o)| o.as_str() == member)
                            .map(|(tp, _)| tp.clone())
                            .collect(),
                        cooperative: g.strategy.is_cooperative(),
                    }
                }
            };
            (view, emptied)
        };
        if let Some(r) = emptied {
            Self::append_group(dir, group, Some(&r))?;
        }
        Ok(view)
    }

    /// Lets go of `tps` (the member was told, and committed what it wanted to); their target
    /// owners are woken to take them.
    pub(crate) fn release(&self, group: &str, member: &str, tps: &BTreeSet<TopicPartition>) {
        let mut st = self.state.lock();
        let Some(g) = st.groups.get_mut(group) else { return };
        for tp in tps {
            if g.owners.get(tp).is_some_and(|o| o == member) {
                g.owners.remove(tp);
            }
        }
        g.ring_all();
    }

    /// Takes every partition of the member's target that nobody owns; returns them with the
    /// assignment epoch each is taken under.
    pub(crate) fn acquire(&self, group: &str, member: &str) -> Vec<(TopicPartition, i32)> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let Some(g) = st.groups.get_mut(group) else { return Vec::new() };
        if !g.members.contains_key(member) {
            return Vec::new();
        }
        let target = g.target.get(member).cloned().unwrap_or_default();
        let mut out = Vec::new();
        for tp in target {
            if g.owners.contains_key(&tp) {
                continue;
            }
            g.owners.insert(tp.clone(), member.to_owned());
            let e = st.epochs.entry((group.to_owned(), tp.clone())).or_insert(-1);
            *e += 1;
            out.push((tp, *e));
        }
        out
    }

    /// Removes a member (close or drop): its partitions are let go and the group rebalances.
    pub(crate) fn leave(&self, dir: &LogDir, group: &str, member: &str) -> Result<()> {
        let now = dir.now_ms();
        let record = {
            let mut st = self.state.lock();
            let Some(g) = st.groups.get_mut(group) else { return Ok(()) };
            if g.members.remove(member).is_none() {
                return Ok(());
            }
            g.owners.retain(|_, o| o != member);
            let emptied = g.members.is_empty();
            if emptied {
                g.empty_since = Some(now);
            }
            rebalance(dir, g)?;
            emptied.then(|| GroupRecord {
                generation: g.generation,
                empty_since: Some(now),
                strategy: g.strategy.name().to_owned(),
            })
        };
        if let Some(r) = record {
            Self::append_group(dir, group, Some(&r))?;
        }
        Ok(())
    }

    /// Checks that `member` may commit `offsets` for `group` now and returns them with their
    /// epochs. `member` `None`: a consumer with manually assigned partitions, allowed only
    /// while the group has no members.
    fn check_commit(
        &self,
        dir: &LogDir,
        group: &str,
        member: Option<&str>,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<Vec<(TopicPartition, OffsetAndMetadata, i32)>> {
        let mut st = self.state.lock();
        self.load(dir, &mut st)?;
        let st = &mut *st;
        let g = st.groups.get(group);
        let mut out = Vec::with_capacity(offsets.len());
        for (tp, om) in offsets {
            store::check_metadata(&om.metadata)?;
            let epoch = st.epochs.get(&(group.to_owned(), tp.clone())).copied().unwrap_or(-1);
            match (member, g) {
                (Some(m), Some(g)) => {
                    if !g.members.contains_key(m) {
                        return Err(Error::CommitRejected {
                            group: group.to_owned(),
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            reason: "the member is no longer in the group (it left or stopped polling)",
                        });
                    }
                    if g.owners.get(tp).is_none_or(|o| o != m) {
                        return Err(Error::CommitRejected {
                            group: group.to_owned(),
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            reason: "the partition is not assigned to this member (it moved in a rebalance)",
                        });
                    }
                }
                (Some(_), None) => {
                    return Err(Error::CommitRejected {
                        group: group.to_owned(),
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        reason: "the group does not exist any more",
                    });
                }
                (None, Some(g)) if !g.members.is_empty() => {
                    return Err(Error::CommitRejected {
                        group: group.to_owned(),
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        reason: "the group has active members; a consumer with manual assignment cannot commit for it",
                    });
                }
                (None, _) => {}
            }
            out.push((tp.clone(), om.clone(), epoch));
        }
        Ok(out)
    }

    /// Commits `offsets` for `group` durably (under the offsets topic's durability: fsync,
    /// with group commit, by default). One call is one atomic batch.
    pub(crate) fn commit(
        &self,
        dir: &LogDir,
        group: &str,
        member: Option<&str>,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let now = dir.now_ms();
        let mut entries = self.check_commit(dir, group, member, offsets)?;
        for e in &mut entries {
            e.1.commit_timestamp = now;
        }
        let topic = Self::offsets_topic(dir)?;
        let p = store::partition_for_group(group, topic.partition_count());
        // The append (and its fsync) runs outside the coordinator's lock: commits of many
        // members share fsyncs.
        topic.append_batch_to(p, &store::commit_records(group, &entries))?;
        let mut st = self.state.lock();
        for (tp, om, epoch) in entries {
            st.table.apply(Entry::Offset { group: group.to_owned(), tp, value: Some((om, epoch)) });
        }
        Ok(())
    }

    /// The committed offset of `tp` for `group`.
    pub(crate) fn committed(
        &self,
        dir: &LogDir,
        group: &str,
        tp: &TopicPartition,
    ) -> Result<Option<OffsetAndMetadata>> {
        let mut st = self.state.lock();
        self.load(dir, &mut st)?;
        Ok(st.table.offsets.get(group).and_then(|m| m.get(tp)).map(|(om, _)| om.clone()))
    }

    /// Group ids with members or committed offsets, sorted.
    pub(crate) fn list(&self, dir: &LogDir) -> Result<Vec<String>> {
        let mut st = self.state.lock();
        self.load(dir, &mut st)?;
        let mut ids: BTreeSet<String> = st.groups.keys().cloned().collect();
        ids.extend(st.table.offsets.keys().cloned());
        Ok(ids.into_iter().collect())
    }

    pub(crate) fn describe(&self, dir: &LogDir, group: &str) -> Result<GroupDescription> {
        let mut st = self.state.lock();
        self.load(dir, &mut st)?;
        let g = st.groups.get(group);
        let offsets = st.table.offsets.get(group);
        if g.is_none() && offsets.is_none() {
            return Err(Error::GroupNotFound { group: group.to_owned() });
        }
        let mut tps: BTreeSet<TopicPartition> = offsets.map(|m| m.keys().cloned().collect()).unwrap_or_default();
        if let Some(g) = g {
            tps.extend(g.owners.keys().cloned());
            tps.extend(g.target.values().flatten().cloned());
        }
        let mut partitions = Vec::new();
        for tp in tps {
            let committed = offsets.and_then(|m| m.get(&tp)).map(|(om, _)| om.clone());
            let end = dir.topic(&tp.topic).and_then(|t| t.partition(tp.partition)).map_or(0, |p| p.log_end_offset());
            let lag = end.saturating_sub(committed.as_ref().map_or(0, |c| c.offset));
            let owner = g.and_then(|g| g.owners.get(&tp).cloned());
            partitions.push(GroupPartition { partition: tp, committed, log_end_offset: end, lag, owner });
        }
        let members = g
            .map(|g| {
                g.members
                    .iter()
                    .map(|(id, m)| MemberDescription {
                        member_id: id.clone(),
                        topics: m.topics.iter().cloned().collect(),
                        assignment: g
                            .owners
                            .iter()
                            .filter(|(_, o)| *o == id)
                            .map(|(tp, _)| tp.clone())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let active = g.is_some_and(|g| !g.members.is_empty());
        Ok(GroupDescription {
            group: group.to_owned(),
            state: if active { "Stable" } else { "Empty" },
            generation: g.map_or(0, |g| g.generation),
            strategy: g.map_or(AssignmentStrategy::default(), |g| g.strategy).name(),
            members,
            partitions,
        })
    }

    fn require_empty(st: &State, group: &str) -> Result<()> {
        if st.groups.get(group).is_some_and(|g| !g.members.is_empty()) {
            return Err(Error::GroupNotEmpty { group: group.to_owned() });
        }
        Ok(())
    }

    /// Moves the committed offsets of an empty group (Kafka requires the group inactive).
    /// `partitions` empty: every partition the group has an offset for. Returns the new
    /// offsets; written only when `execute` (a dry run otherwise, as Kafka's tool).
    pub(crate) fn reset(
        &self,
        dir: &LogDir,
        group: &str,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
        execute: bool,
    ) -> Result<Vec<(TopicPartition, u64)>> {
        let (plan, epochs) = {
            let mut st = self.state.lock();
            self.load(dir, &mut st)?;
            Self::require_empty(&st, group)?;
            let current = st.table.offsets.get(group);
            let tps: Vec<TopicPartition> = if partitions.is_empty() {
                current.map(|m| m.keys().cloned().collect()).unwrap_or_default()
            } else {
                partitions.to_vec()
            };
            let mut plan = Vec::new();
            let mut epochs = Vec::new();
            for tp in tps {
                let p = dir.topic(&tp.topic)?.partition(tp.partition)?;
                let (start, end) = (p.log_start_offset(), p.log_end_offset());
                let committed = current.and_then(|m| m.get(&tp)).map(|(om, _)| om.offset);
                let to = match spec {
                    OffsetSpec::Earliest => start,
                    OffsetSpec::Latest => end,
                    OffsetSpec::Timestamp(t) => p.offset_for_timestamp(t)?.map_or(end, |o| o.offset),
                    OffsetSpec::Offset(o) => o.clamp(start, end),
                    OffsetSpec::ShiftBy(d) => {
                        let base = committed.unwrap_or(start);
                        base.saturating_add_signed(d).clamp(start, end)
                    }
                };
                let e = st.epochs.get(&(group.to_owned(), tp.clone())).copied().unwrap_or(-1) + 1;
                epochs.push(e);
                plan.push((tp, to));
            }
            (plan, epochs)
        };
        if execute && !plan.is_empty() {
            let now = dir.now_ms();
            let entries: Vec<(TopicPartition, OffsetAndMetadata, i32)> = plan
                .iter()
                .zip(&epochs)
                .map(|((tp, o), e)| {
                    (tp.clone(), OffsetAndMetadata { offset: *o, metadata: String::new(), commit_timestamp: now }, *e)
                })
                .collect();
            let topic = Self::offsets_topic(dir)?;
            let p = store::partition_for_group(group, topic.partition_count());
            topic.append_batch_to(p, &store::commit_records(group, &entries))?;
            let mut st = self.state.lock();
            for (tp, om, e) in entries {
                st.epochs.insert((group.to_owned(), tp.clone()), e);
                st.table.apply(Entry::Offset { group: group.to_owned(), tp, value: Some((om, e)) });
            }
        }
        Ok(plan)
    }

    /// Deletes an empty group and its committed offsets.
    pub(crate) fn delete(&self, dir: &LogDir, group: &str) -> Result<()> {
        let tombstones = {
            let mut st = self.state.lock();
            self.load(dir, &mut st)?;
            Self::require_empty(&st, group)?;
            if !st.groups.contains_key(group) && !st.table.offsets.contains_key(group) {
                return Err(Error::GroupNotFound { group: group.to_owned() });
            }
            self.tombstones(dir, &st, group)
        };
        let topic = Self::offsets_topic(dir)?;
        let p = store::partition_for_group(group, topic.partition_count());
        topic.append_batch_to(p, &tombstones)?;
        let mut st = self.state.lock();
        st.table.offsets.remove(group);
        st.table.groups.remove(group);
        st.groups.remove(group);
        st.epochs.retain(|(g, _), _| g != group);
        Ok(())
    }

    fn tombstones(&self, dir: &LogDir, st: &State, group: &str) -> Vec<crate::record::Record<'static>> {
        let now = dir.now_ms();
        let mut recs: Vec<_> = st
            .table
            .offsets
            .get(group)
            .map(|m| m.keys().map(|tp| store::offset_tombstone(group, tp, now)).collect())
            .unwrap_or_default();
        recs.push(store::group_record(group, None, now));
        recs
    }

    /// Expires the offsets of groups empty for longer than `retention_ms` (Kafka's
    /// `offsets.retention.minutes`), and expels members that stopped polling. Returns the
    /// groups whose offsets expired.
    pub(crate) fn expire(&self, dir: &LogDir, retention_ms: u64) -> Result<Vec<String>> {
        let now = dir.now_ms();
        let doomed: Vec<(String, Vec<crate::record::Record<'static>>)> = {
            let mut st = self.state.lock();
            if !st.loaded && !dir.has_internal_topic(OFFSETS_TOPIC) {
                return Ok(Vec::new());
            }
            self.load(dir, &mut st)?;
            for g in st.groups.values_mut() {
                expire_members(dir, g, now)?;
            }
            let limit = i64::try_from(retention_ms).unwrap_or(i64::MAX);
            let mut ids: BTreeSet<String> = st.table.offsets.keys().cloned().collect();
            ids.extend(st.groups.keys().cloned());
            ids.into_iter()
                .filter(|id| {
                    let g = st.groups.get(id);
                    let since = match g {
                        Some(g) if !g.members.is_empty() => return false,
                        Some(g) => g.empty_since,
                        // Offsets of a group never seen with members (manual commits): by the
                        // latest commit.
                        None => {
                            st.table.offsets.get(id).and_then(|m| m.values().map(|(om, _)| om.commit_timestamp).max())
                        }
                    };
                    since.is_some_and(|t| now.saturating_sub(t) >= limit)
                })
                .map(|id| {
                    let recs = self.tombstones(dir, &st, &id);
                    (id, recs)
                })
                .collect()
        };
        let mut out = Vec::new();
        for (group, recs) in doomed {
            let topic = Self::offsets_topic(dir)?;
            let p = store::partition_for_group(&group, topic.partition_count());
            topic.append_batch_to(p, &recs)?;
            let mut st = self.state.lock();
            st.table.offsets.remove(&group);
            st.table.groups.remove(&group);
            st.groups.remove(&group);
            out.push(group);
        }
        Ok(out)
    }
}

/// Partition counts of `topics`, skipping topics that do not exist (yet).
fn partition_counts(dir: &LogDir, topics: &BTreeSet<String>) -> Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for t in topics {
        match dir.topic(t) {
            Ok(topic) => {
                out.insert(t.clone(), topic.partition_count());
            }
            Err(Error::TopicNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn all_topics(g: &Group) -> BTreeSet<String> {
    g.members.values().flat_map(|m| m.topics.iter().cloned()).collect()
}

fn counts_changed(dir: &LogDir, g: &Group) -> Result<bool> {
    Ok(partition_counts(dir, &all_topics(g))? != g.counts)
}

/// Computes a new target assignment (a new generation) and wakes every member.
fn rebalance(dir: &LogDir, g: &mut Group) -> Result<()> {
    let counts = partition_counts(dir, &all_topics(g))?;
    let subs: Subscriptions = g.members.iter().map(|(id, m)| (id.clone(), m.topics.clone())).collect();
    let previous: Assignment = {
        let mut a = Assignment::new();
        for (tp, o) in &g.owners {
            a.entry(o.clone()).or_default().insert(tp.clone());
        }
        a
    };
    g.target = assignor::assign(g.strategy, &subs, &counts, &previous);
    g.counts = counts;
    g.generation = g.generation.wrapping_add(1);
    g.ring_all();
    Ok(())
}

/// Expels members that have not polled within their `max.poll.interval.ms`; returns whether
/// the group became empty.
fn expire_members(dir: &LogDir, g: &mut Group, now: i64) -> Result<bool> {
    let late: Vec<String> = g
        .members
        .iter()
        .filter(|(_, m)| {
            !m.in_poll && now.saturating_sub(m.last_seen) > i64::try_from(m.max_poll_interval_ms).unwrap_or(i64::MAX)
        })
        .map(|(id, _)| id.clone())
        .collect();
    if late.is_empty() {
        return Ok(false);
    }
    for id in &late {
        g.members.remove(id);
        g.owners.retain(|_, o| o != id);
    }
    let emptied = g.members.is_empty();
    if emptied {
        g.empty_since = Some(now);
    }
    rebalance(dir, g)?;
    Ok(emptied)
}
