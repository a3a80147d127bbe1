//! `partlog groups` (kafka-consumer-groups).

use partlog::{GroupDescription, OffsetSpec, TopicPartition};
use serde_json::json;

use crate::FormatArg;
use crate::common::{self, Failure, Format, OK, Out, Outcome};

pub const EXAMPLES: &str = "\
Examples:
  partlog groups --dir data --list
  partlog groups --dir data --describe --group billing
  partlog groups --dir data --reset-offsets --group billing --topic orders --to-earliest            # a dry run
  partlog groups --dir data --reset-offsets --group billing --topic orders:0,2 --to-offset 100 --execute
  partlog groups --dir data --reset-offsets --group billing --all-topics --to-datetime 2024-05-01T00:00:00Z --execute
  partlog groups --dir data --reset-offsets --group billing --topic orders --shift-by -10 --execute
  partlog groups --dir data --delete --group billing

--list and --describe read the directory read-only and work while an application has it
open (they show committed offsets and lag; the members of a running application live in its
memory and are not shown). --reset-offsets only prints the plan unless --execute is given;
it (even as a dry run) and --delete need the directory to themselves.";

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["list", "describe", "reset_offsets", "delete"]))]
#[command(group = clap::ArgGroup::new("to").args(["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"]))]
pub struct Args {
    /// List the groups.
    #[arg(long)]
    list: bool,
    /// Show a group's committed offsets, log end offsets and lag per partition.
    #[arg(long)]
    describe: bool,
    /// Move a group's committed offsets (a dry run unless --execute).
    #[arg(long)]
    reset_offsets: bool,
    /// Delete a group and its committed offsets.
    #[arg(long)]
    delete: bool,
    /// The group.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// The topic to reset (repeatable): TOPIC for all its partitions, TOPIC:0,2 for some.
    #[arg(long, value_name = "TOPIC[:P,...]")]
    topic: Vec<String>,
    /// Reset every partition the group has an offset for.
    #[arg(long)]
    all_topics: bool,
    /// Reset to the log start.
    #[arg(long)]
    to_earliest: bool,
    /// Reset to the log end.
    #[arg(long)]
    to_latest: bool,
    /// Reset to the first record at or after this time (ms since 1970, or
    /// YYYY-MM-DDTHH:MM:SS[.mmm][Z|±HH:MM], UTC by default).
    #[arg(long, value_name = "TIME")]
    to_datetime: Option<String>,
    /// Reset to this offset (clamped into the log).
    #[arg(long, value_name = "N")]
    to_offset: Option<u64>,
    /// Move the committed offset by N (negative: back), clamped into the log.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Apply the reset (without it, only the plan is printed).
    #[arg(long)]
    execute: bool,
    #[command(flatten)]
    format: FormatArg,
}

fn need_group(a: &Args) -> Result<&str, Failure> {
    a.group.as_deref().ok_or_else(|| Failure::new("this action needs --group"))
}

pub fn run(a: Args, dir: &std::path::Path) -> Outcome {
    let mut out = Out::new();
    if a.list {
        let ro = common::open_read_only(dir)?;
        let groups = ro.list_groups()?;
        match a.format.format {
            Format::Text => {
                for g in &groups {
                    out.line(g)?;
                }
            }
            Format::Json => out.json(&json!(groups))?,
        }
        out.flush()?;
        return Ok(OK);
    }
    if a.describe {
        let group = need_group(&a)?;
        let ro = common::open_read_only(dir)?;
        let d = ro.describe_group(group)?;
        match a.format.format {
            Format::Text => describe_text(&mut out, &d)?,
            Format::Json => out.json(&describe_json(&d))?,
        }
        out.flush()?;
        return Ok(OK);
    }
    if a.delete {
        let group = need_group(&a)?;
        let d = common::open_for_writing(dir, "groups --delete")?;
        let r = d.delete_group(group);
        let closed = d.close();
        r?;
        closed?;
        out.line(&format!("Deleted consumer group {group}."))?;
        out.flush()?;
        return Ok(OK);
    }
    // --reset-offsets
    let group = need_group(&a)?;
    let spec = if a.to_earliest {
        OffsetSpec::Earliest
    } else if a.to_latest {
        OffsetSpec::Latest
    } else if let Some(t) = &a.to_datetime {
        OffsetSpec::Timestamp(common::parse_time(t)?)
    } else if let Some(o) = a.to_offset {
        OffsetSpec::Offset(o)
    } else if let Some(d) = a.shift_by {
        OffsetSpec::ShiftBy(d)
    } else {
        return Err(Failure::new(
            "--reset-offsets needs where to: --to-earliest, --to-latest, --to-datetime, --to-offset or --shift-by",
        ));
    };
    if a.topic.is_empty() && !a.all_topics {
        return Err(Failure::new("--reset-offsets needs --topic TOPIC[:P,...] or --all-topics"));
    }
    let mut wanted: Vec<(String, Option<Vec<u32>>)> = Vec::new();
    for t in &a.topic {
        match t.split_once(':') {
            None => wanted.push((t.clone(), None)),
            Some((name, ps)) => {
                let mut list = Vec::new();
                for p in ps.split(',') {
                    list.push(
                        p.trim()
                            .parse::<u32>()
                            .map_err(|_| Failure::new(format!("--topic {t}: `{p}` is not a partition number")))?,
                    );
                }
                wanted.push((name.to_owned(), Some(list)));
            }
        }
    }
    // Even the plan needs the directory to itself: it is made from the group's state, which
    // only the process holding the directory knows, and a group with members cannot be reset.
    let d = common::open_for_writing(dir, "groups --reset-offsets")?;
    let result = (|| -> Result<Vec<(TopicPartition, u64)>, Failure> {
        let mut tps = Vec::new();
        for (name, ps) in &wanted {
            let t = d.topic(name)?;
            match ps {
                None => tps.extend((0..t.partition_count()).map(|p| TopicPartition::new(name, p))),
                Some(list) => {
                    for &p in list {
                        t.partition(p)?;
                        tps.push(TopicPartition::new(name, p));
                    }
                }
            }
        }
        Ok(d.reset_group_offsets(group, &tps, spec, a.execute)?)
    })();
    let closed = d.close();
    let plan = result?;
    closed?;
    match a.format.format {
        Format::Text => {
            out.line(&format!("{:<20} {:<30} {:>9} {:>12}", "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"))?;
            for (tp, o) in &plan {
                out.line(&format!("{group:<20} {:<30} {:>9} {o:>12}", tp.topic, tp.partition))?;
            }
            if !a.execute {
                out.line("(a dry run: nothing was changed; add --execute to apply)")?;
            }
        }
        Format::Json => out.json(&json!({
            "group": group,
            "executed": a.execute,
            "offsets": plan.iter().map(|(tp, o)| json!({"topic": tp.topic, "partition": tp.partition, "offset": o})).collect::<Vec<_>>(),
        }))?,
    }
    out.flush()?;
    Ok(OK)
}

fn describe_text(out: &mut Out, d: &GroupDescription) -> Result<(), Failure> {
    out.line(&format!("Consumer group '{}' ({}, generation {}, {})", d.group, d.state, d.generation, d.strategy))?;
    out.line(&format!(
        "{:<20} {:<30} {:>9} {:>15} {:>15} {:>10} {}",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID"
    ))?;
    for p in &d.partitions {
        out.line(&format!(
            "{:<20} {:<30} {:>9} {:>15} {:>15} {:>10} {}",
            d.group,
            p.partition.topic,
            p.partition.partition,
            p.committed.as_ref().map_or("-".to_owned(), |c| c.offset.to_string()),
            p.log_end_offset,
            p.lag,
            p.owner.as_deref().unwrap_or("-"),
        ))?;
    }
    Ok(())
}

fn describe_json(d: &GroupDescription) -> serde_json::Value {
    json!({
        "group": d.group,
        "state": d.state,
        "generation": d.generation,
        "strategy": d.strategy,
        "partitions": d.partitions.iter().map(|p| json!({
            "topic": p.partition.topic,
            "partition": p.partition.partition,
            "committed_offset": p.committed.as_ref().map(|c| c.offset),
            "log_end_offset": p.log_end_offset,
            "lag": p.lag,
            "owner": p.owner,
        })).collect::<Vec<_>>(),
    })
}
