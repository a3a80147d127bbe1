//! `partlog dump` (kafka-dump-log): segments, batches and records as stored, read through
//! [`partlog::segment::Segment`]; damage makes the exit code 3.

use partlog::segment::{BatchInfo, Segment};
use partlog::{ReadOnlyPartition, TimestampType};
use serde_json::json;

use crate::common::{self, Failure, Format, OK, Out, Outcome};

pub const EXAMPLES: &str = "\
Examples:
  partlog dump --dir data --topic orders                       # every partition, every segment
  partlog dump --dir data --topic orders --partition 0 --records
  partlog dump --dir data --topic orders --partition 0 --segment 4821 --verify
  partlog dump --dir data --topic orders --verify --format json

It reads the directory read-only, so it works while an application writes it (the active
segment is shown as far as its batches are complete). Every batch is checked; with --verify
each segment is also checked as a whole: batch framing, offsets, bytes after the last batch
and the offset and time indexes against the log. Any damage found makes the exit code 3.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Only this partition.
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// Only the segment with this base offset.
    #[arg(long, value_name = "BASE")]
    segment: Option<u64>,
    /// Check each segment as a whole and list every problem with where it is.
    #[arg(long)]
    verify: bool,
    /// Print each record too.
    #[arg(long)]
    records: bool,
    /// Output format (json: one object per segment, per line).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(a: Args, dir: &std::path::Path) -> Outcome {
    let ro = common::open_read_only(dir)?;
    let topic = ro.topic(&a.topic)?;
    let parts: Vec<ReadOnlyPartition> = match a.partition {
        Some(p) => vec![topic.partition(p)?],
        None => topic.partitions().to_vec(),
    };
    let mut work: Vec<(ReadOnlyPartition, u64)> = Vec::new();
    for p in &parts {
        let segs = p.segments()?;
        match a.segment {
            Some(base) => {
                if segs.iter().any(|s| s.base_offset == base) {
                    work.push((p.clone(), base));
                } else if a.partition.is_some() {
                    return Err(Failure::new(format!(
                        "partition {} of {} has no segment with base offset {base}; its segments start at {}",
                        p.id(),
                        a.topic,
                        segs.iter().map(|s| s.base_offset.to_string()).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            None => work.extend(segs.iter().map(|s| (p.clone(), s.base_offset))),
        }
    }
    if work.is_empty()
        && let Some(base) = a.segment
    {
        return Err(Failure::new(format!("no partition of {} has a segment with base offset {base}", a.topic)));
    }
    let pb = common::progress(work.len() as u64, "segments");
    let mut out = Out::new();
    let mut damaged = 0u64;
    for (p, base) in work {
        let seg = match p.segment(base) {
            Ok(s) => s,
            // Deleted by retention or merged by compaction since the listing.
            Err(partlog::Error::OffsetOutOfRange { .. }) => {
                pb.inc(1);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut text = String::new();
        let bad = dump_segment(&a, &p, &seg, &mut text)?;
        damaged += u64::from(bad);
        pb.suspend(|| out.bytes(text.as_bytes()))?;
        pb.inc(1);
        if out.closed() {
            break;
        }
    }
    pb.finish_and_clear();
    out.flush()?;
    if damaged > 0 {
        return Err(Failure::corrupt(format!(
            "damage found in {damaged} segment{} of {} (see the output above)",
            if damaged == 1 { "" } else { "s" },
            a.topic
        )));
    }
    Ok(OK)
}

/// Appends the dump of one segment to `text`; returns whether anything was wrong.
fn dump_segment(a: &Args, p: &ReadOnlyPartition, seg: &Segment, text: &mut String) -> Result<bool, Failure> {
    let mut bad = false;
    let mut batches = Vec::new();
    let mut error: Option<String> = None;
    for b in seg.batches() {
        match b {
            Ok(b) => {
                let mut recs = Vec::new();
                if a.records {
                    for r in b.records() {
                        match r {
                            Ok(r) => recs.push(r.to_owned()),
                            Err(e) => {
                                error = Some(e.to_string());
                                break;
                            }
                        }
                    }
                }
                batches.push((*b.info(), recs));
                if error.is_some() {
                    break;
                }
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    bad |= error.is_some();
    let verification = if a.verify { Some(seg.verify()?) } else { None };
    bad |= verification.as_ref().is_some_and(|v| !v.is_ok());
    if a.format == Format::Json {
        let v = json!({
            "topic": a.topic,
            "partition": p.id(),
            "file": seg.log_path().display().to_string(),
            "base_offset": seg.base_offset(),
            "end_offset": seg.end_offset(),
            "size": seg.size(),
            "records": seg.record_count(),
            "first_timestamp": seg.first_timestamp(),
            "max_timestamp": seg.max_timestamp(),
            "active": seg.is_active(),
            "offset_index_entries": seg.offset_index().len(),
            "time_index_entries": seg.time_index().len(),
            "batches": batches.iter().map(|(b, recs)| {
                let mut o = batch_json(b);
                if a.records {
                    o["records"] = json!(recs.iter().map(|r| json!({
                        "offset": r.offset,
                        "timestamp": r.timestamp,
                        "key": common::json_bytes(r.key.as_deref()),
                        "value": common::json_bytes(r.value.as_deref()),
                        "headers": r.headers.iter().map(|(k, v)| json!({"key": k, "value": common::json_bytes(v.as_deref())})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>());
                }
                o
            }).collect::<Vec<_>>(),
            "error": error,
            "verification": verification.as_ref().map(|v| json!({
                "ok": v.is_ok(),
                "batches": v.batches,
                "records": v.records,
                "bytes": v.bytes,
                "problems": v.problems.iter().map(|p| json!({
                    "file": p.file.display().to_string(),
                    "position": p.position,
                    "kind": p.kind.to_string(),
                    "message": p.message,
                })).collect::<Vec<_>>(),
            })),
        });
        text.push_str(&v.to_string());
        text.push('\n');
        return Ok(bad);
    }
    use std::fmt::Write as _;
    let _ = writeln!(text, "Dumping {}", seg.log_path().display());
    let _ = writeln!(
        text,
        "Segment: partition {} base offset {} end offset {} size {} records {} first timestamp {} max timestamp {} active {} offset index entries {} time index entries {}",
        p.id(),
        seg.base_offset(),
        seg.end_offset(),
        seg.size(),
        seg.record_count(),
        opt(seg.first_timestamp()),
        opt(seg.max_timestamp()),
        seg.is_active(),
        seg.offset_index().len(),
        seg.time_index().len()
    );
    for (b, recs) in &batches {
        let _ = writeln!(text, "{}", batch_text(b));
        for r in recs {
            let headers: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
            let _ = writeln!(
                text,
                "| offset: {} {}: {} keySize: {} valueSize: {} headerKeys: [{}] key: {} payload: {}",
                r.offset,
                ts_name(b.timestamp_type),
                r.timestamp,
                r.key.as_ref().map_or(-1, |k| k.len() as i64),
                r.value.as_ref().map_or(-1, |v| v.len() as i64),
                headers.join(","),
                common::text_bytes(r.key.as_deref()),
                common::text_bytes(r.value.as_deref()),
            );
        }
    }
    if let Some(e) = &error {
        let _ = writeln!(text, "DAMAGED: {e}");
    }
    if let Some(v) = &verification {
        let _ = writeln!(
            text,
            "Verification: {} ({} batches, {} records, {} bytes checked)",
            if v.is_ok() { "ok" } else { "FAILED" },
            v.batches,
            v.records,
            v.bytes
        );
        for p in &v.problems {
            let _ = writeln!(text, "PROBLEM: {p}");
        }
    }
    Ok(bad)
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "none".into(), |t| t.to_string())
}

fn ts_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::LogAppendTime => "LogAppendTime",
        _ => "CreateTime",
    }
}

fn batch_text(b: &BatchInfo) -> String {
    format!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} producerId: {} producerEpoch: {} isTransactional: {} isControl: {} deleteHorizonMs: {} position: {} {}: {} maxTimestamp: {} size: {} magic: 2 compresscodec: {} crc: {} isvalid: true",
        b.base_offset,
        b.last_offset,
        b.record_count,
        b.base_sequence,
        b.producer_id,
        b.producer_epoch,
        b.transactional,
        b.control,
        opt(b.delete_horizon),
        b.position,
        ts_name(b.timestamp_type),
        b.base_timestamp,
        b.max_timestamp,
        b.size,
        b.codec_name(),
        b.crc,
    )
}

fn batch_json(b: &BatchInfo) -> serde_json::Value {
    json!({
        "base_offset": b.base_offset,
        "last_offset": b.last_offset,
        "count": b.record_count,
        "position": b.position,
        "size": b.size,
        "crc": b.crc,
        "crc_valid": true,
        "attributes": b.attributes,
        "timestamp_type": ts_name(b.timestamp_type),
        "base_timestamp": b.base_timestamp,
        "max_timestamp": b.max_timestamp,
        "compression": b.codec_name(),
        "transactional": b.transactional,
        "control": b.control,
        "delete_horizon": b.delete_horizon,
        "producer_id": b.producer_id,
        "producer_epoch": b.producer_epoch,
        "base_sequence": b.base_sequence,
    })
}
