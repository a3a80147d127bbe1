//! `partlog retention` and `partlog compact`: one pass now, with its report.

use partlog::{LogDir, Partition};
use serde_json::json;

use crate::FormatArg;
use crate::common::{self, Failure, Format, OK, Out, Outcome};

pub const RETENTION_EXAMPLES: &str = "\
Examples:
  partlog retention --dir data                 # every topic
  partlog retention --dir data --topic orders --format json

Applies retention.ms, retention.bytes and the log start offset as configured on each topic,
deleting whole old segments (Kafka's rules). Needs the directory to itself.";

pub const COMPACT_EXAMPLES: &str = "\
Examples:
  partlog compact --dir data                   # every compacted topic
  partlog compact --dir data --topic users

Keeps the latest record of every key in the sealed segments of compacted topics
(cleanup.policy=compact). Needs the directory to itself.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this topic.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    #[command(flatten)]
    format: FormatArg,
}

fn partitions(d: &LogDir, topic: &Option<String>) -> Result<Vec<(String, Partition)>, Failure> {
    let names = match topic {
        Some(t) => vec![t.clone()],
        None => d.topics()?,
    };
    let mut out = Vec::new();
    for n in names {
        let t = d.topic(&n)?;
        out.extend(t.partitions().into_iter().map(|p| (n.clone(), p)));
    }
    Ok(out)
}

pub fn retention(a: Args, dir: &std::path::Path) -> Outcome {
    let d = common::open_for_writing(dir, "retention")?;
    let result = (|| -> Result<Vec<serde_json::Value>, Failure> {
        let parts = partitions(&d, &a.topic)?;
        let pb = common::progress(parts.len() as u64, "retention");
        let mut rows = Vec::new();
        for (t, p) in parts {
            let r = p.run_retention()?;
            rows.push(json!({
                "topic": t,
                "partition": p.id(),
                "segments_deleted": r.segments_deleted,
                "by_log_start": r.by_log_start,
                "by_size": r.by_size,
                "by_time": r.by_time,
                "bytes_reclaimed": r.bytes_reclaimed,
                "records_removed": r.records_removed,
                "log_start_offset": r.log_start_offset,
                "duration_ms": r.duration.as_millis() as u64,
            }));
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok(rows)
    })();
    let closed = d.close();
    let rows = result?;
    closed?;
    let mut out = Out::new();
    match a.format.format {
        Format::Json => out.json(&json!(rows))?,
        Format::Text => {
            out.line(&format!(
                "{:<30} {:>9} {:>8} {:>14} {:>12} {:>15}",
                "TOPIC", "PARTITION", "DELETED", "BYTES", "RECORDS", "LOG-START"
            ))?;
            for r in &rows {
                out.line(&format!(
                    "{:<30} {:>9} {:>8} {:>14} {:>12} {:>15}",
                    r["topic"].as_str().unwrap_or(""),
                    r["partition"],
                    r["segments_deleted"],
                    r["bytes_reclaimed"],
                    r["records_removed"],
                    r["log_start_offset"]
                ))?;
            }
        }
    }
    out.flush()?;
    Ok(OK)
}

pub fn compact(a: Args, dir: &std::path::Path) -> Outcome {
    let d = common::open_for_writing(dir, "compact")?;
    let result = (|| -> Result<Vec<serde_json::Value>, Failure> {
        let mut parts = partitions(&d, &a.topic)?;
        if let Some(t) = &a.topic
            && parts.first().is_some_and(|(_, p)| !p.config().get_cleanup_policy().compact)
        {
            return Err(Failure::new(format!(
                "topic {t} is not compacted (cleanup.policy has no `compact`): set it with `partlog topics --alter --topic {t} --config cleanup.policy=compact`"
            )));
        }
        parts.retain(|(_, p)| p.config().get_cleanup_policy().compact);
        let pb = common::progress(parts.len() as u64, "compaction");
        let mut rows = Vec::new();
        for (t, p) in parts {
            let r = p.compact()?;
            rows.push(json!({
                "topic": t,
                "partition": p.id(),
                "cleaned": r.cleaned,
                "first_dirty_offset": r.first_dirty_offset,
                "cleaned_up_to": r.cleaned_up_to,
                "partial": r.partial,
                "segments_before": r.segments_before,
                "segments_after": r.segments_after,
                "bytes_before": r.bytes_before,
                "bytes_after": r.bytes_after,
                "records_removed": r.records_removed,
                "tombstones_removed": r.tombstones_removed,
                "duration_ms": r.duration.as_millis() as u64,
            }));
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok(rows)
    })();
    let closed = d.close();
    let rows = result?;
    closed?;
    let mut out = Out::new();
    match a.format.format {
        Format::Json => out.json(&json!(rows))?,
        Format::Text => {
            out.line(&format!(
                "{:<30} {:>9} {:>8} {:>10} {:>14} {:>12}",
                "TOPIC", "PARTITION", "CLEANED", "SEGMENTS", "BYTES", "REMOVED"
            ))?;
            for r in &rows {
                out.line(&format!(
                    "{:<30} {:>9} {:>8} {:>10} {:>14} {:>12}",
                    r["topic"].as_str().unwrap_or(""),
                    r["partition"],
                    r["cleaned"],
                    format!("{}->{}", r["segments_before"], r["segments_after"]),
                    format!("{}->{}", r["bytes_before"], r["bytes_after"]),
                    r["records_removed"]
                ))?;
            }
        }
    }
    out.flush()?;
    Ok(OK)
}
