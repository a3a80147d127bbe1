//! Consumer groups seen read-only: `__consumer_offsets` replayed into the offset table, as
//! the coordinator loads it, without joining or changing anything.

use std::collections::BTreeSet;

use super::ReadOnlyLogDir;
use crate::consumer::store::{self, OFFSETS_TOPIC, Table};
use crate::consumer::{AssignmentStrategy, GroupDescription, GroupPartition};
use crate::error::{Error, Result};

/// The offset table as the offsets topic holds it now (empty when there is no such topic).
fn load(dir: &ReadOnlyLogDir) -> Result<Table> {
    let mut table = Table::default();
    let topic = match dir.topic(OFFSETS_TOPIC) {
        Ok(t) => t,
        Err(Error::TopicNotFound { .. }) => return Ok(table),
        Err(e) => return Err(e),
    };
    for p in topic.partitions() {
        let mut at = p.log_start_offset()?;
        loop {
            let recs = p.read(at, 1 << 20)?;
            if recs.is_empty() {
                break;
            }
            at = recs.next_fetch_offset();
            for r in recs.iter() {
                let e = store::decode(r.key(), r.value())
                    .map_err(|_| store::bad_record(p.path().to_path_buf(), r.offset()))?;
                table.apply(e);
            }
        }
    }
    Ok(table)
}

pub(super) fn list(dir: &ReadOnlyLogDir) -> Result<Vec<String>> {
    let table = load(dir)?;
    let mut ids: BTreeSet<String> = table.groups.keys().cloned().collect();
    ids.extend(table.offsets.keys().cloned());
    Ok(ids.into_iter().collect())
}

pub(super) fn describe(dir: &ReadOnlyLogDir, group: &str) -> Result<GroupDescription> {
    let table = load(dir)?;
    let rec = table.groups.get(group);
    let offsets = table.offsets.get(group);
    if rec.is_none() && offsets.is_none() {
        return Err(Error::GroupNotFound { group: group.to_owned() });
    }
    let mut partitions = Vec::new();
    for (tp, (om, _)) in offsets.into_iter().flatten() {
        let end = match dir.topic(&tp.topic).and_then(|t| t.partition(tp.partition)) {
            Ok(p) => p.log_end_offset()?,
            Err(Error::TopicNotFound { .. } | Error::PartitionNotFound { .. }) => 0,
            Err(e) => return Err(e),
        };
        partitions.push(GroupPartition {
            partition: tp.clone(),
            committed: Some(om.clone()),
            log_end_offset: end,
            lag: end.saturating_sub(om.offset),
            owner: None,
        });
    }
    let has_members = rec.is_some_and(|r| r.empty_since.is_none());
    Ok(GroupDescription {
        group: group.to_owned(),
        state: if has_members { "Stable" } else { "Empty" },
        generation: rec.map_or(0, |r| r.generation),
        strategy: rec.and_then(|r| AssignmentStrategy::parse(&r.strategy)).unwrap_or_default().name(),
        members: Vec::new(),
        partitions,
    })
}
