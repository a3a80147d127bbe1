//! `partlog consume` (kafka-console-consumer): read-only by default, so it works on a
//! directory an application is writing; with `--group` it consumes as a group member and
//! commits, which needs the directory to itself.

use std::time::Duration;

use partlog::{
    ConsumerConfig, Error, FollowEvent, Follower, OffsetReset, ReadOnlyPartition, RecordRef, TopicPartition,
};
use serde_json::json;

use crate::common::{self, Failure, Format, OK, Out, Outcome};

pub const EXAMPLES: &str = "\
Examples:
  partlog consume --dir data --topic orders --from-beginning
  partlog consume --dir data --topic orders --follow                   # new records, until Ctrl-C
  partlog consume --dir data --topic orders --partition 1 --offset 42 --max-messages 10
  partlog consume --dir data --topic orders --timestamp 2024-05-01T12:00:00Z
  partlog consume --dir data --topic orders --from-beginning --format json
  partlog consume --dir data --topic orders --from-beginning --property print.key=true --property print.offset=true
  partlog consume --dir data --topic orders --group billing            # commits its offsets

Without --group it only reads (no lock, nothing written), so it works while an application
appends, rolls, deletes and compacts. Where it starts: --from-beginning (the log start),
--offset N (every chosen partition), --timestamp T (the first record at or after T), or, by
default, the log end (only new records), as Kafka's console consumer. Without --follow it
stops at the log end as it was when it started. With --group it resumes from the group's
committed offsets and commits what it printed; that needs the directory to itself (exit
code 4 otherwise). It ends by printing on standard error how many records it processed.";

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("start").args(["from_beginning", "offset", "timestamp"]))]
pub struct Args {
    /// The topic to read.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Start at the log start (with --group: where there is no committed offset).
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset in every chosen partition.
    #[arg(long, value_name = "N")]
    offset: Option<u64>,
    /// Start at the first record with a timestamp at or after this (ms since 1970, or
    /// YYYY-MM-DDTHH:MM:SS[.mmm][Z|±HH:MM], UTC by default).
    #[arg(long, value_name = "TIME")]
    timestamp: Option<String>,
    /// Read only this partition.
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// Consume as a member of this consumer group and commit its offsets.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Keep waiting for new records instead of stopping at the log end.
    #[arg(long)]
    follow: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Output: `text` (the value, plus what --property asks for) or `json` (one object per
    /// record).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Kafka's formatter settings for text output: print.key, print.offset, print.partition,
    /// print.timestamp, print.headers, print.value (true/false) and key.separator.
    #[arg(long, value_name = "KEY=VALUE")]
    property: Vec<String>,
}

/// What text output shows (Kafka's DefaultMessageFormatter).
#[derive(Debug)]
struct Shape {
    format: Format,
    key: bool,
    value: bool,
    offset: bool,
    partition: bool,
    timestamp: bool,
    headers: bool,
    separator: String,
}

impl Shape {
    fn new(a: &Args) -> Result<Shape, Failure> {
        let mut s = Shape {
            format: a.format,
            key: false,
            value: true,
            offset: false,
            partition: false,
            timestamp: false,
            headers: false,
            separator: "\t".into(),
        };
        for p in &a.property {
            let (k, v) = common::key_value(p, "--property")?;
            let on = || match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Failure::new(format!("--property {k} must be true or false, not `{v}`"))),
            };
            match k.as_str() {
                "print.key" => s.key = on()?,
                "print.value" => s.value = on()?,
                "print.offset" => s.offset = on()?,
                "print.partition" => s.partition = on()?,
                "print.timestamp" => s.timestamp = on()?,
                "print.headers" => s.headers = on()?,
                "key.separator" => s.separator = v.clone(),
                _ => {
                    return Err(Failure::new(format!(
                        "unknown --property `{k}`: use print.key, print.value, print.offset, print.partition, print.timestamp, print.headers or key.separator"
                    )));
                }
            }
        }
        Ok(s)
    }

    fn print(&self, out: &mut Out, topic: &str, partition: u32, r: &RecordRef<'_>) -> Result<(), Failure> {
        if self.format == Format::Json {
            let headers: Vec<serde_json::Value> =
                r.headers().map(|(k, v)| json!({ "key": k, "value": common::json_bytes(v) })).collect();
            return out.json(&json!({
                "topic": topic,
                "partition": partition,
                "offset": r.offset(),
                "timestamp": r.timestamp(),
                "key": common::json_bytes(r.key()),
                "value": common::json_bytes(r.value()),
                "headers": headers,
            }));
        }
        let mut fields: Vec<String> = Vec::new();
        if self.timestamp {
            fields.push(format!("CreateTime:{}", r.timestamp()));
        }
        if self.partition {
            fields.push(format!("Partition:{partition}"));
        }
        if self.offset {
            fields.push(format!("Offset:{}", r.offset()));
        }
        if self.headers {
            let hs: Vec<String> = r.headers().map(|(k, v)| format!("{k}:{}", common::text_bytes(v))).collect();
            fields.push(if hs.is_empty() { "NO_HEADERS".into() } else { hs.join(",") });
        }
        if self.key {
            fields.push(common::text_bytes(r.key()));
        }
        if self.value {
            fields.push(common::text_bytes(r.value()));
        }
        out.line(&fields.join(&self.separator))
    }
}

pub fn run(a: Args, dir: &std::path::Path) -> Outcome {
    let shape = Shape::new(&a)?;
    let timestamp = a.timestamp.as_deref().map(common::parse_time).transpose()?;
    if a.max_messages == Some(0) {
        eprintln!("Processed a total of 0 messages");
        return Ok(OK);
    }
    let n = match &a.group {
        Some(g) => consume_group(&a, dir, g, &shape, timestamp)?,
        None => consume_read_only(&a, dir, &shape, timestamp)?,
    };
    eprintln!("Processed a total of {n} messages");
    Ok(OK)
}

/// Where a partition starts.
fn start_of(a: &Args, p: &ReadOnlyPartition, timestamp: Option<i64>) -> Result<u64, Failure> {
    if a.from_beginning {
        return Ok(p.log_start_offset()?);
    }
    if let Some(o) = a.offset {
        let (s, e) = (p.log_start_offset()?, p.log_end_offset()?);
        if o < s || o > e {
            return Err(Failure::new(format!(
                "offset {o} is out of range for partition {}: it holds offsets {s}..{e}",
                p.id()
            )));
        }
        return Ok(o);
    }
    if let Some(t) = timestamp {
        return Ok(match p.offset_for_timestamp(t)? {
            Some(hit) => hit.offset,
            None => p.log_end_offset()?,
        });
    }
    Ok(p.log_end_offset()?)
}

fn consume_read_only(a: &Args, dir: &std::path::Path, shape: &Shape, timestamp: Option<i64>) -> Result<u64, Failure> {
    let ro = common::open_read_only(dir)?;
    let topic = ro.topic(&a.topic)?;
    let parts: Vec<ReadOnlyPartition> = match a.partition {
        Some(p) => vec![topic.partition(p)?],
        None => topic.partitions().to_vec(),
    };
    let mut follower = Follower::new();
    let mut stops = Vec::new();
    for p in &parts {
        let at = start_of(a, p, timestamp)?;
        follower.add(p, at)?;
        stops.push((p.path().to_path_buf(), p.log_end_offset()?));
    }
    let mut out = Out::new();
    let mut n = 0u64;
    let limit = a.max_messages.unwrap_or(u64::MAX);
    'outer: loop {
        if !a.follow {
            let done = follower.positions().iter().zip(&stops).all(|((_, at), (_, stop))| at >= stop);
            if done {
                break;
            }
        }
        let wait = if a.follow { Duration::from_millis(500) } else { Duration::ZERO };
        match follower.poll(wait)? {
            None => {
                out.flush()?;
                if !a.follow {
                    // Nothing more below the stops (compacted-away offsets at the end).
                    break;
                }
            }
            Some(FollowEvent::Records { partition, records }) => {
                let stop = if a.follow {
                    u64::MAX
                } else {
                    stops.iter().find(|(p, _)| p == partition.path()).map_or(u64::MAX, |s| s.1)
                };
                for r in records.iter() {
                    if r.offset() >= stop {
                        break;
                    }
                    shape.print(&mut out, &a.topic, partition.id(), &r)?;
                    n += 1;
                    if n >= limit {
                        break 'outer;
                    }
                }
                out.flush()?;
            }
            Some(FollowEvent::Reset { partition, from, to }) => {
                out.flush()?;
                if from < to {
                    eprintln!(
                        "partlog: partition {}: offsets {from}..{to} were deleted by retention before they were read; continuing at {to}",
                        partition.id()
                    );
                } else {
                    eprintln!(
                        "partlog: partition {}: the log was truncated to {to} (the reader was at {from}); continuing there",
                        partition.id()
                    );
                }
            }
            Some(_) => {}
        }
        if out.closed() {
            break;
        }
    }
    out.flush()?;
    Ok(n)
}

fn consume_group(
    a: &Args,
    dir: &std::path::Path,
    group: &str,
    shape: &Shape,
    timestamp: Option<i64>,
) -> Result<u64, Failure> {
    let dir = common::open_for_writing(dir, "consume --group (it commits the group's offsets)")?;
    let result = (|| -> Result<u64, Failure> {
        let topic = dir.topic(&a.topic)?;
        let tps: Vec<TopicPartition> = match a.partition {
            Some(p) => {
                topic.partition(p)?;
                vec![TopicPartition::new(&a.topic, p)]
            }
            None => (0..topic.partition_count()).map(|p| TopicPartition::new(&a.topic, p)).collect(),
        };
        let reset = if a.from_beginning { OffsetReset::Earliest } else { OffsetReset::Latest };
        let mut c =
            dir.consumer(ConsumerConfig::new().group_id(group).auto_offset_reset(reset).enable_auto_commit(false))?;
        c.assign(&tps)?;
        if let Some(o) = a.offset {
            for tp in &tps {
                c.seek(tp, o)?;
            }
        }
        if let Some(t) = timestamp {
            c.seek_to_timestamp(&tps, t)?;
        }
        let mut out = Out::new();
        let mut n = 0u64;
        let limit = a.max_messages.unwrap_or(u64::MAX);
        loop {
            let recs = c.poll(Duration::from_millis(if a.follow { 500 } else { 50 }))?;
            let mut printed: Vec<(TopicPartition, u64)> = Vec::new();
            for r in recs.iter() {
                if n >= limit {
                    break;
                }
                shape.print(&mut out, &a.topic, r.partition(), &r.record())?;
                n += 1;
                printed.push((TopicPartition::new(&a.topic, r.partition()), r.offset() + 1));
            }
            out.flush()?;
            // Commit exactly what was printed (a record past --max-messages stays unread).
            let mut upto: std::collections::BTreeMap<TopicPartition, u64> = std::collections::BTreeMap::new();
            for (tp, o) in printed {
                upto.insert(tp, o);
            }
            if !upto.is_empty() {
                let offsets: Vec<_> =
                    upto.into_iter().map(|(tp, o)| (tp, partlog::OffsetAndMetadata::new(o))).collect();
                c.commit_offsets(&offsets)?;
            }
            if n >= limit || out.closed() {
                break;
            }
            if !a.follow && recs.is_empty() {
                let mut caught_up = true;
                for tp in &tps {
                    caught_up &= c.lag(tp)? == 0;
                }
                if caught_up {
                    break;
                }
            }
        }
        c.close()?;
        Ok(n)
    })();
    let closed = dir.close();
    let n = result?;
    closed.map_err(|e: Error| Failure::from(e))?;
    Ok(n)
}
