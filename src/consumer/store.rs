//! The offset store: committed offsets and group states as records of the internal compacted
//! topic `__consumer_offsets`, as in Kafka, with an in-memory table loaded at first use.
//!
//! Record encoding (big-endian, as Kafka's coordinator writes them; strings are an i16 length
//! and UTF-8 bytes):
//!
//! | record | key | value |
//! |---|---|---|
//! | committed offset | version i16 = 1, group, topic, partition i32 (Kafka's `OffsetCommitKey` v1) | version i16 = 3, offset i64, leader epoch i32 (the assignment epoch), metadata, commit timestamp i64 (Kafka's `OffsetCommitValue` v3) |
//! | group state | version i16 = 2, group (Kafka's `GroupMetadataKey` v2) | version i16 = 1000 (partlog's own), generation i32, time the group became empty i64 (−1: it has members), assignment strategy |
//!
//! A null value (tombstone) deletes the key: an expired or reset offset, a deleted group. One
//! group's commit of several partitions is one batch in one partition of the offsets topic
//! (chosen from the group id as Kafka does: `abs(javaStringHash(group)) % partitions`), so it
//! is atomic. Compaction keeps the topic small.

use std::collections::{BTreeMap, HashMap};

use super::TopicPartition;
use crate::error::{CorruptKind, Error, Result};
use crate::record::Record;

/// Name of the internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's key version of a committed offset.
const KEY_OFFSET: i16 = 1;
/// Kafka's key version of group metadata.
const KEY_GROUP: i16 = 2;
/// Kafka's `OffsetCommitValue` version written.
const VALUE_OFFSET: i16 = 3;
/// partlog's own group-state value version.
const VALUE_GROUP: i16 = 1000;
/// Longest metadata string a commit may carry (Kafka's `offset.metadata.max.bytes`).
pub const MAX_METADATA_BYTES: usize = 4096;

/// A committed offset with its metadata (Kafka's `OffsetAndMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset to consume.
    pub offset: u64,
    /// Free-form metadata stored with the commit.
    pub metadata: String,
    /// When it was committed (ms since the Unix epoch).
    pub commit_timestamp: i64,
}

impl OffsetAndMetadata {
    /// An offset without metadata (the timestamp is set at commit time).
    pub fn new(offset: u64) -> Self {
        OffsetAndMetadata { offset, metadata: String::new(), commit_timestamp: 0 }
    }
}

/// A group's durable state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct GroupRecord {
    pub generation: u32,
    /// When the group became empty (`None`: it has members).
    pub empty_since: Option<i64>,
    pub strategy: String,
}

/// What one record of the offsets topic says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Offset { group: String, tp: TopicPartition, value: Option<(OffsetAndMetadata, i32)> },
    Group { group: String, value: Option<GroupRecord> },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.extend_from_slice(&(b.len().min(i16::MAX as usize) as i16).to_be_bytes());
    out.extend_from_slice(&b[..b.len().min(i16::MAX as usize)]);
}

struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn offset_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + group.len() + tp.topic.len());
    k.extend_from_slice(&KEY_OFFSET.to_be_bytes());
    put_str(&mut k, group);
    put_str(&mut k, &tp.topic);
    k.extend_from_slice(&(tp.partition as i32).to_be_bytes());
    k
}

/// The value of a committed offset; Kafka's leader-epoch field carries partlog's assignment
/// epoch of the partition in the group (see [`Table::apply`]).
pub(crate) fn offset_value(v: &OffsetAndMetadata, epoch: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + v.metadata.len());
    out.extend_from_slice(&VALUE_OFFSET.to_be_bytes());
    out.extend_from_slice(&(v.offset as i64).to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    put_str(&mut out, &v.metadata);
    out.extend_from_slice(&v.commit_timestamp.to_be_bytes());
    out
}

pub(crate) fn group_key(group: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + group.len());
    k.extend_from_slice(&KEY_GROUP.to_be_bytes());
    put_str(&mut k, group);
    k
}

pub(crate) fn group_value(g: &GroupRecord) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&VALUE_GROUP.to_be_bytes());
    out.extend_from_slice(&(g.generation as i32).to_be_bytes());
    out.extend_from_slice(&g.empty_since.unwrap_or(-1).to_be_bytes());
    put_str(&mut out, &g.strategy);
    out
}

/// Decodes one record of the offsets topic; `Err` with what is wrong for anything partlog did
/// not write.
pub(crate) fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> std::result::Result<Entry, &'static str> {
    let mut k = Cur(key.ok_or("a record without a key")?);
    match k.i16().ok_or("key too short")? {
        KEY_OFFSET => {
            let group = k.string().ok_or("bad group in key")?;
            let topic = k.string().ok_or("bad topic in key")?;
            let partition = k.i32().ok_or("bad partition in key")?;
            if !k.done() || partition < 0 {
                return Err("bad offset key");
            }
            let tp = TopicPartition { topic, partition: partition as u32 };
            let value = match value {
                None => None,
                Some(v) => {
                    let mut v = Cur(v);
                    if v.i16() != Some(VALUE_OFFSET) {
                        return Err("unknown offset value version");
                    }
                    let offset = v.i64().ok_or("value too short")?;
                    let epoch = v.i32().ok_or("value too short")?;
                    let metadata = v.string().ok_or("bad metadata")?;
                    let commit_timestamp = v.i64().ok_or("value too short")?;
                    if !v.done() || offset < 0 || epoch < -1 {
                        return Err("bad offset value");
                    }
                    Some((OffsetAndMetadata { offset: offset as u64, metadata, commit_timestamp }, epoch))
                }
            };
            Ok(Entry::Offset { group, tp, value })
        }
        KEY_GROUP => {
            let group = k.string().ok_or("bad group in key")?;
            if !k.done() {
                return Err("bad group key");
            }
            let value = match value {
                None => None,
                Some(v) => {
                    let mut v = Cur(v);
                    if v.i16() != Some(VALUE_GROUP) {
                        return Err("unknown group value version");
                    }
                    let generation = v.i32().ok_or("value too short")?;
                    let empty = v.i64().ok_or("value too short")?;
                    let strategy = v.string().ok_or("bad strategy")?;
                    if !v.done() || generation < 0 || empty < -1 {
                        return Err("bad group value");
                    }
                    Some(GroupRecord {
                        generation: generation as u32,
                        empty_since: (empty >= 0).then_some(empty),
                        strategy,
                    })
                }
            };
            Ok(Entry::Group { group, value })
        }
        _ => Err("unknown key version"),
    }
}

/// Java's `String.hashCode` over UTF-16 code units, as Kafka's coordinator uses it to place a
/// group.
pub(crate) fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(u));
    }
    h
}

/// The offsets-topic partition of `group` (Kafka's `Utils.abs(groupId.hashCode) % n`, where
/// `abs(i32::MIN)` is 0).
pub(crate) fn partition_for_group(group: &str, n: u32) -> u32 {
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.unsigned_abs() };
    abs % n.max(1)
}

/// The in-memory table the offsets topic is replayed into.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Per group: committed offset and the assignment epoch it was committed under.
    pub offsets: HashMap<String, BTreeMap<TopicPartition, (OffsetAndMetadata, i32)>>,
    pub groups: HashMap<String, GroupRecord>,
}

impl Table {
    /// Applies one record, in log order. A commit made under an older assignment epoch than
    /// the one recorded (a member that lost the partition, committing late) changes nothing:
    /// a slow member can never move another member's offset backwards, live or on reload.
    pub(crate) fn apply(&mut self, e: Entry) {
        match e {
            Entry::Offset { group, tp, value: Some(v) } => {
                let m = self.offsets.entry(group).or_default();
                if m.get(&tp).is_none_or(|(_, e)| v.1 >= *e) {
                    m.insert(tp, v);
                }
            }
            Entry::Offset { group, tp, value: None } => {
                if let Some(m) = self.offsets.get_mut(&group) {
                    m.remove(&tp);
                    if m.is_empty() {
                        self.offsets.remove(&group);
                    }
                }
            }
            Entry::Group { group, value: Some(v) } => {
                self.groups.insert(group, v);
            }
            Entry::Group { group, value: None } => {
                self.groups.remove(&group);
            }
        }
    }
}

/// Records for a commit of `offsets` (with their epochs) by `group`.
pub(crate) fn commit_records(
    group: &str,
    offsets: &[(TopicPartition, OffsetAndMetadata, i32)],
) -> Vec<Record<'static>> {
    offsets
        .iter()
        .map(|(tp, v, e)| {
            Record::new().key(offset_key(group, tp)).value(offset_value(v, *e)).timestamp(v.commit_timestamp)
        })
        .collect()
}

/// A tombstone for a committed offset.
pub(crate) fn offset_tombstone(group: &str, tp: &TopicPartition, now: i64) -> Record<'static> {
    Record::new().key(offset_key(group, tp)).timestamp(now)
}

/// The record of a group's state (`None`: the group is deleted).
pub(crate) fn group_record(group: &str, g: Option<&GroupRecord>, now: i64) -> Record<'static> {
    let r = Record::new().key(group_key(group)).timestamp(now);
    match g {
        Some(g) => r.value(group_value(g)),
        None => r,
    }
}

/// The error for an offsets-topic record partlog cannot have written: the path of the
/// offsets partition and the record's offset (in the `offset` field).
pub(crate) fn bad_record(path: std::path::PathBuf, offset: u64) -> Error {
    Error::Corrupt { path, offset, kind: CorruptKind::Metadata }
}

/// Checks commit metadata against Kafka's limit.
pub(crate) fn check_metadata(m: &str) -> Result<()> {
    if m.len() > MAX_METADATA_BYTES {
        return Err(Error::config(
            "offset.metadata.max.bytes",
            m.len(),
            format!("commit metadata is limited to {MAX_METADATA_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: u32) -> TopicPartition {
        TopicPartition { topic: t.into(), partition: p }
    }

    #[test]
    fn round_trips() {
        let v = OffsetAndMetadata { offset: 42, metadata: "m".into(), commit_timestamp: 7 };
        let k = offset_key("g", &tp("t", 3));
        let decoded = decode(Some(&k), Some(&offset_value(&v, 2)));
        assert_eq!(decoded, Ok(Entry::Offset { group: "g".into(), tp: tp("t", 3), value: Some((v, 2)) }));
        assert_eq!(decode(Some(&k), None), Ok(Entry::Offset { group: "g".into(), tp: tp("t", 3), value: None }));
        let g = GroupRecord { generation: 5, empty_since: Some(99), strategy: "range".into() };
        assert_eq!(
            decode(Some(&group_key("g")), Some(&group_value(&g))),
            Ok(Entry::Group { group: "g".into(), value: Some(g) })
        );
        // A group with members has no "empty since": it must come back without one, or a
        // reload would start its offsets' expiry clock.
        let live = GroupRecord { generation: 6, empty_since: None, strategy: "range".into() };
        let bytes = group_value(&live);
        assert_eq!(bytes[6..14], (-1i64).to_be_bytes(), "no empty-since time is written as -1");
        assert_eq!(
            decode(Some(&group_key("g")), Some(&bytes)),
            Ok(Entry::Group { group: "g".into(), value: Some(live) })
        );
    }

    #[test]
    fn kafka_byte_layout_of_an_offset_commit() {
        // OffsetCommitKey v1 ("g", "t", 1) and OffsetCommitValue v3 (offset 5, epoch -1, "",
        // timestamp 9), as Kafka's generated serializers lay them out.
        let k = offset_key("g", &tp("t", 1));
        assert_eq!(k, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
        let v = offset_value(&OffsetAndMetadata { offset: 5, metadata: String::new(), commit_timestamp: 9 }, -1);
        assert_eq!(v, [0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    }

    #[test]
    fn commit_metadata_may_take_exactly_kafkas_limit() {
        assert!(check_metadata("").is_ok());
        assert!(check_metadata(&"m".repeat(MAX_METADATA_BYTES)).is_ok(), "at the limit");
        let err = check_metadata(&"m".repeat(MAX_METADATA_BYTES + 1)).expect_err("one byte over");
        assert!(err.to_string().contains("offset.metadata.max.bytes"), "{err}");
    }

    #[test]
    fn hostile_records_are_refused() {
        let k = offset_key("g", &tp("t", 1));
        let good = offset_value(&OffsetAndMetadata::new(5), 0);
        type Case = (Option<Vec<u8>>, Option<Vec<u8>>);
        let mut cases: Vec<Case> = vec![
            (None, Some(good.clone())),
            (Some(vec![]), None),
            (Some(vec![0, 9]), None),
            (Some(k[..k.len() - 1].to_vec()), None),
            (Some([k.clone(), vec![0]].concat()), None),
            (Some(k.clone()), Some(good[..good.len() - 1].to_vec())),
            (Some(k.clone()), Some([good.clone(), vec![1]].concat())),
        ];
        let mut neg = good.clone();
        neg[2] = 0x80;
        cases.push((Some(k.clone()), Some(neg)));
        let mut ver = good.clone();
        ver[1] = 4;
        cases.push((Some(k.clone()), Some(ver)));
        let mut neg_part = k.clone();
        let n = neg_part.len();
        neg_part[n - 4] = 0xFF;
        cases.push((Some(neg_part), None));
        // Group values: one byte too many, a negative generation, an empty-since time below -1.
        let gk = group_key("g");
        let gv = |generation: i32, empty: i64| {
            let mut v = VALUE_GROUP.to_be_bytes().to_vec();
            v.extend_from_slice(&generation.to_be_bytes());
            v.extend_from_slice(&empty.to_be_bytes());
            put_str(&mut v, "range");
            v
        };
        for (generation, empty) in [(0, -1), (0, 0), (7, 12)] {
            assert!(decode(Some(&gk), Some(&gv(generation, empty))).is_ok(), "generation {generation}, empty {empty}");
        }
        cases.push((Some(gk.clone()), Some([gv(1, -1), vec![0]].concat())));
        cases.push((Some(gk.clone()), Some(gv(-1, -1))));
        cases.push((Some(gk.clone()), Some(gv(1, -2))));
        for (i, (k, v)) in cases.iter().enumerate() {
            assert!(decode(k.as_deref(), v.as_deref()).is_err(), "case {i} accepted");
        }
    }

    #[test]
    fn a_late_commit_under_an_older_epoch_changes_nothing() {
        let mut t = Table::default();
        let e = |offset, epoch| Entry::Offset {
            group: "g".into(),
            tp: tp("t", 0),
            value: Some((OffsetAndMetadata::new(offset), epoch)),
        };
        t.apply(e(10, 1));
        t.apply(e(50, 2));
        t.apply(e(20, 1));
        assert_eq!(t.offsets["g"][&tp("t", 0)].0.offset, 50);
        t.apply(e(40, 2));
        assert_eq!(t.offsets["g"][&tp("t", 0)].0.offset, 40, "the owner itself may move it back");
    }

    #[test]
    fn group_placement_follows_kafka() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(partition_for_group("hello", 50), 99_162_322 % 50);
        assert_eq!(partition_for_group("anything", 1), 0);
    }
}
