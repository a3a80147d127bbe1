//! Partition assignors: who in a group consumes which partition. Pure functions of the
//! members' subscriptions, the topics' partition counts and (for the sticky one) the previous
//! assignment, so they are table-tested against Kafka's documented examples.

use std::collections::{BTreeMap, BTreeSet};

use super::TopicPartition;

/// How a group splits partitions among its members (Kafka's `partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssignmentStrategy {
    /// Kafka's `RangeAssignor`: per topic, consecutive ranges in member-id order. Eager: every
    /// rebalance revokes every partition first.
    Range,
    /// Kafka's `RoundRobinAssignor`: all partitions dealt round-robin over the members. Eager.
    RoundRobin,
    /// Kafka's `CooperativeStickyAssignor` idea: balanced, keeps every partition with its
    /// owner where balance allows, and only the partitions that move are revoked (a member
    /// gets a partition only after its previous owner let it go).
    #[default]
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// Kafka's name of the assignor.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Parses Kafka's names (the short ones, or the class names).
    pub fn parse(s: &str) -> Option<AssignmentStrategy> {
        match s.trim() {
            "range" | "org.apache.kafka.clients.consumer.RangeAssignor" => Some(AssignmentStrategy::Range),
            "roundrobin" | "org.apache.kafka.clients.consumer.RoundRobinAssignor" => {
                Some(AssignmentStrategy::RoundRobin)
            }
            "cooperative-sticky" | "sticky" | "org.apache.kafka.clients.consumer.CooperativeStickyAssignor" => {
                Some(AssignmentStrategy::CooperativeSticky)
            }
            _ => None,
        }
    }

    /// Whether a rebalance revokes only the partitions that move (cooperative) rather than
    /// everything (eager).
    pub fn is_cooperative(self) -> bool {
        self == AssignmentStrategy::CooperativeSticky
    }
}

/// Members by id with the topics each subscribes to.
pub(crate) type Subscriptions = BTreeMap<String, BTreeSet<String>>;
/// Member id → its partitions.
pub(crate) type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

fn empty_for(members: &Subscriptions) -> Assignment {
    members.keys().map(|m| (m.clone(), BTreeSet::new())).collect()
}

/// Kafka's range assignor: for each topic, its partitions in order and its subscribers in
/// member-id order; each gets `n / c`, and the first `n % c` one more.
pub(crate) fn range(members: &Subscriptions, partitions: &BTreeMap<String, u32>) -> Assignment {
    let mut out = empty_for(members);
    for (topic, &n) in partitions {
        let subs: Vec<&String> = members.iter().filter(|(_, t)| t.contains(topic)).map(|(m, _)| m).collect();
        if subs.is_empty() {
            continue;
        }
        let c = subs.len() as u32;
        let (per, extra) = (n / c, n % c);
        let mut next = 0u32;
        for (i, m) in subs.iter().enumerate() {
            let take = per + u32::from((i as u32) < extra);
            let set = out.entry((*m).clone()).or_default();
            for p in next..next + take {
                set.insert(TopicPartition { topic: topic.clone(), partition: p });
            }
            next += take;
        }
    }
    out
}

/// Kafka's round-robin assignor: every partition of every subscribed topic, in (topic,
/// partition) order, dealt to the members in member-id order, skipping members not subscribed
/// to its topic.
pub(crate) fn round_robin(members: &Subscriptions, partitions: &BTreeMap<String, u32>) -> Assignment {
    let mut out = empty_for(members);
    let ids: Vec<&String> = members.keys().collect();
    if ids.is_empty() {
        return out;
    }
    let mut i = 0usize;
    for (topic, &n) in partitions {
        if !members.values().any(|t| t.contains(topic)) {
            continue;
        }
        for p in 0..n {
            // The next member in circular order that subscribes to this topic.
            while !members[ids[i % ids.len()]].contains(topic) {
                i += 1;
            }
            out.entry(ids[i % ids.len()].clone())
                .or_default()
                .insert(TopicPartition { topic: topic.clone(), partition: p });
            i += 1;
        }
    }
    out
}

/// A sticky, balanced assignment: every member keeps the partitions it had (and still may
/// have) up to its fair share, then the rest go to the least loaded eligible members. With
/// equal subscriptions the counts differ by at most one and a membership change moves only
/// the partitions balance requires.
pub(crate) fn sticky(members: &Subscriptions, partitions: &BTreeMap<String, u32>, previous: &Assignment) -> Assignment {
    let mut out = empty_for(members);
    if members.is_empty() {
        return out;
    }
    let all: Vec<TopicPartition> = partitions
        .iter()
        .filter(|(t, _)| members.values().any(|s| s.contains(*t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition { topic: t.clone(), partition: p }))
        .collect();
    let quota = all.len().div_ceil(members.len());
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    for (m, subs) in members {
        let Some(prev) = previous.get(m) else { continue };
        let set = out.entry(m.clone()).or_default();
        for tp in prev {
            if set.len() >= quota {
                break;
            }
            let exists = partitions.get(&tp.topic).is_some_and(|&n| tp.partition < n);
            if exists && subs.contains(&tp.topic) && taken.insert(tp.clone()) {
                set.insert(tp.clone());
            }
        }
    }
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let best = members
            .iter()
            .filter(|(_, s)| s.contains(&tp.topic))
            .min_by_key(|(m, _)| (out.get(*m).map_or(0, BTreeSet::len), (*m).clone()))
            .map(|(m, _)| m.clone());
        if let Some(m) = best {
            out.entry(m).or_default().insert(tp.clone());
        }
    }
    // Keeping up to the ceiling can leave a member two below another (a member that kept
    // `quota` while the floor is lower): move partitions from the most to the least loaded.
    while let (Some(max), Some(min)) = (
        out.iter().max_by_key(|(m, s)| (s.len(), std::cmp::Reverse((*m).clone()))).map(|(m, s)| (m.clone(), s.len())),
        out.iter().min_by_key(|(m, s)| (s.len(), (*m).clone())).map(|(m, s)| (m.clone(), s.len())),
    ) {
        if max.1 <= min.1 + 1 {
            break;
        }
        let movable = out[&max.0].iter().rev().find(|tp| members[&min.0].contains(&tp.topic)).cloned();
        let Some(tp) = movable else { break };
        out.entry(max.0.clone()).or_default().remove(&tp);
        out.entry(min.0.clone()).or_default().insert(tp);
    }
    out
}

/// The assignment of `strategy`.
pub(crate) fn assign(
    strategy: AssignmentStrategy,
    members: &Subscriptions,
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
) -> Assignment {
    match strategy {
        AssignmentStrategy::Range => range(members, partitions),
        AssignmentStrategy::RoundRobin => round_robin(members, partitions),
        AssignmentStrategy::CooperativeSticky => sticky(members, partitions, previous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: u32) -> TopicPartition {
        TopicPartition { topic: t.into(), partition: p }
    }

    fn subs(list: &[(&str, &[&str])]) -> Subscriptions {
        list.iter().map(|(m, ts)| ((*m).to_owned(), ts.iter().map(|t| (*t).to_owned()).collect())).collect()
    }

    fn parts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    fn got(a: &Assignment, m: &str) -> Vec<TopicPartition> {
        a.get(m).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    #[test]
    fn range_matches_kafkas_documented_example() {
        // RangeAssignor javadoc: C0, C1 subscribed to t0, t1 (3 partitions each):
        // C0: [t0p0, t0p1, t1p0, t1p1], C1: [t0p2, t1p2].
        let m = subs(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let a = range(&m, &parts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(got(&a, "C0"), vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]);
        assert_eq!(got(&a, "C1"), vec![tp("t0", 2), tp("t1", 2)]);
    }

    #[test]
    fn round_robin_matches_kafkas_documented_examples() {
        // RoundRobinAssignor javadoc, same members and topics:
        // C0: [t0p0, t0p2, t1p1], C1: [t0p1, t1p0, t1p2].
        let m = subs(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let a = round_robin(&m, &parts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(got(&a, "C0"), vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
        assert_eq!(got(&a, "C1"), vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);
        // Unequal subscriptions (javadoc): C0 [t0], C1 [t0, t1], C2 [t0, t1, t2]; t0 has 1
        // partition, t1 2, t2 3: C0 [t0p0], C1 [t1p0], C2 [t1p1, t2p0, t2p1, t2p2].
        let m = subs(&[("C0", &["t0"]), ("C1", &["t0", "t1"]), ("C2", &["t0", "t1", "t2"])]);
        let a = round_robin(&m, &parts(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        assert_eq!(got(&a, "C0"), vec![tp("t0", 0)]);
        assert_eq!(got(&a, "C1"), vec![tp("t1", 0)]);
        assert_eq!(got(&a, "C2"), vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle() {
        let m = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        for strategy in
            [AssignmentStrategy::Range, AssignmentStrategy::RoundRobin, AssignmentStrategy::CooperativeSticky]
        {
            let a = assign(strategy, &m, &parts(&[("t", 2)]), &Assignment::new());
            let counts: Vec<usize> = a.values().map(BTreeSet::len).collect();
            assert_eq!(counts.iter().sum::<usize>(), 2, "{strategy:?}");
            assert_eq!(counts.iter().filter(|&&c| c == 0).count(), 1, "{strategy:?}");
        }
    }

    #[test]
    fn sticky_keeps_owners_and_moves_only_what_balance_needs() {
        let p = parts(&[("t", 6)]);
        let two = subs(&[("a", &["t"]), ("b", &["t"])]);
        let first = sticky(&two, &p, &Assignment::new());
        assert_eq!(first.values().map(BTreeSet::len).collect::<Vec<_>>(), vec![3, 3]);
        // A third member joins: each old member gives up exactly one partition.
        let three = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let second = sticky(&three, &p, &first);
        for m in ["a", "b"] {
            assert_eq!(second[m].len(), 2);
            assert!(second[m].is_subset(&first[m]), "{m} lost a partition it could keep");
        }
        assert_eq!(second["c"].len(), 2);
        // It leaves again: its partitions go back, the others stay put.
        let third = sticky(&two, &p, &second);
        for m in ["a", "b"] {
            assert!(second[m].is_subset(&third[m]));
            assert_eq!(third[m].len(), 3);
        }
        // Every partition has exactly one owner in each.
        for a in [&first, &second, &third] {
            let all: Vec<&TopicPartition> = a.values().flatten().collect();
            let unique: BTreeSet<&TopicPartition> = all.iter().copied().collect();
            assert_eq!((all.len(), unique.len()), (6, 6));
        }
    }

    #[test]
    fn sticky_rebalances_a_lopsided_previous_assignment() {
        // All six were with "a"; "b" joins: three move.
        let p = parts(&[("t", 6)]);
        let prev: Assignment = [("a".to_owned(), (0..6).map(|i| tp("t", i)).collect())].into_iter().collect();
        let a = sticky(&subs(&[("a", &["t"]), ("b", &["t"])]), &p, &prev);
        assert_eq!((a["a"].len(), a["b"].len()), (3, 3));
        // Ten partitions over four members: 3, 3, 2, 2 whatever the history.
        let p = parts(&[("t", 10)]);
        let prev: Assignment = [("a".to_owned(), (0..10).map(|i| tp("t", i)).collect())].into_iter().collect();
        let m = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"]), ("d", &["t"])]);
        let a = sticky(&m, &p, &prev);
        let mut counts: Vec<usize> = a.values().map(BTreeSet::len).collect();
        counts.sort_unstable();
        assert_eq!(counts, vec![2, 2, 3, 3]);
    }

    #[test]
    fn names_parse() {
        for s in [AssignmentStrategy::Range, AssignmentStrategy::RoundRobin, AssignmentStrategy::CooperativeSticky] {
            assert_eq!(AssignmentStrategy::parse(s.name()), Some(s));
        }
        assert_eq!(
            AssignmentStrategy::parse("org.apache.kafka.clients.consumer.RangeAssignor"),
            Some(AssignmentStrategy::Range)
        );
        assert_eq!(AssignmentStrategy::parse("nope"), None);
    }
}
