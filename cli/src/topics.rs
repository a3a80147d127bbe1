//! `partlog topics` (kafka-topics).

use partlog::{ConfigSource, Error, TopicConfig, TopicDescription};
use serde_json::json;

use crate::FormatArg;
use crate::common::{self, Failure, Format, OK, Out, Outcome};

pub const EXAMPLES: &str = "\
Examples:
  partlog topics --dir data --create --topic orders --partitions 3
  partlog topics --dir data --create --topic users --config cleanup.policy=compact
  partlog topics --dir data --list
  partlog topics --dir data --describe --topic orders
  partlog topics --dir data --alter --topic orders --config retention.ms=3600000
  partlog topics --dir data --alter --topic orders --partitions 6
  partlog topics --dir data --delete --topic orders

--create makes the log directory when it does not exist yet. --list and --describe read
the directory read-only and work while an application has it open; the others need it to
themselves.";

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["create", "list", "describe", "alter", "delete"]))]
pub struct Args {
    /// Create a topic.
    #[arg(long)]
    create: bool,
    /// List topic names.
    #[arg(long)]
    list: bool,
    /// Describe topics (all, or --topic): partitions, offsets, sizes, configuration.
    #[arg(long)]
    describe: bool,
    /// Change a topic's configuration (--config, --delete-config) or grow it (--partitions).
    #[arg(long)]
    alter: bool,
    /// Delete a topic and all its data.
    #[arg(long)]
    delete: bool,
    /// The topic.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// Number of partitions (--create: default 1; --alter: the new, larger count).
    #[arg(long, value_name = "N")]
    partitions: Option<u32>,
    /// A configuration override, Kafka's key names (repeatable), e.g. cleanup.policy=compact.
    #[arg(long, value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Remove a configuration override (--alter; repeatable).
    #[arg(long, value_name = "KEY")]
    delete_config: Vec<String>,
    /// With --create: succeed if the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
    /// With --list or --describe: include internal topics (__consumer_offsets).
    #[arg(long)]
    include_internal: bool,
    #[command(flatten)]
    format: FormatArg,
}

fn need_topic(a: &Args) -> Result<&str, Failure> {
    a.topic.as_deref().ok_or_else(|| Failure::new("this action needs --topic"))
}

fn parse_config(a: &Args, base: TopicConfig) -> Result<TopicConfig, Failure> {
    let mut c = base;
    for kv in &a.config {
        let (k, v) = common::key_value(kv, "--config")?;
        c = c.set(&k, &v)?;
    }
    Ok(c)
}

pub fn run(a: Args, dir: &std::path::Path) -> Outcome {
    if a.create {
        let name = need_topic(&a)?;
        let partitions = a.partitions.unwrap_or(1);
        // Everything is checked before the directory is touched.
        let config = parse_config(&a, TopicConfig::default().partitions(partitions))?;
        config.validate()?;
        partlog::validate_topic_name(name)?;
        let d = common::open_or_create(dir, "topics --create")?;
        let created = match d.create_topic(name, config) {
            Ok(_) => true,
            Err(Error::TopicExists { .. }) if a.if_not_exists => false,
            Err(e) => {
                let _ = d.close();
                return Err(e.into());
            }
        };
        common::close(d)?;
        let mut out = Out::new();
        if created {
            out.line(&format!("Created topic {name}."))?;
        }
        out.flush()?;
        return Ok(OK);
    }
    if a.list {
        let ro = common::open_read_only(dir)?;
        let names = ro.list_topics(a.include_internal)?;
        let mut out = Out::new();
        match a.format.format {
            Format::Text => {
                for n in &names {
                    out.line(n)?;
                }
            }
            Format::Json => out.json(&json!(names))?,
        }
        out.flush()?;
        return Ok(OK);
    }
    if a.describe {
        let ro = common::open_read_only(dir)?;
        let names = match &a.topic {
            Some(t) => vec![t.clone()],
            None => ro.list_topics(a.include_internal)?,
        };
        let mut descs = Vec::new();
        for n in &names {
            descs.push(ro.describe_topic(n)?);
        }
        let mut out = Out::new();
        match a.format.format {
            Format::Text => {
                for d in &descs {
                    describe_text(&mut out, d)?;
                }
            }
            Format::Json => out.json(&json!(descs.iter().map(describe_json).collect::<Vec<_>>()))?,
        }
        out.flush()?;
        return Ok(OK);
    }
    if a.alter {
        let name = need_topic(&a)?;
        if a.config.is_empty() && a.delete_config.is_empty() && a.partitions.is_none() {
            return Err(Failure::new("--alter needs --config, --delete-config or --partitions"));
        }
        let mut changes = Vec::new();
        for kv in &a.config {
            changes.push(common::key_value(kv, "--config")?);
        }
        // Check the values before opening anything.
        let mut check = TopicConfig::default();
        for (k, v) in &changes {
            check = check.set(k, v)?;
        }
        let d = common::open_for_writing(dir, "topics --alter")?;
        let result = (|| -> Result<(), Error> {
            d.topic(name)?;
            if !changes.is_empty() {
                let pairs: Vec<(&str, &str)> = changes.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                d.alter_topic_config(name, &pairs)?;
            }
            if !a.delete_config.is_empty() {
                let keys: Vec<&str> = a.delete_config.iter().map(String::as_str).collect();
                d.delete_topic_config(name, &keys)?;
            }
            if let Some(n) = a.partitions {
                d.add_partitions(name, n)?;
            }
            Ok(())
        })();
        let closed = d.close();
        result?;
        closed?;
        let mut out = Out::new();
        out.line(&format!("Altered topic {name}."))?;
        out.flush()?;
        return Ok(OK);
    }
    // --delete
    let name = need_topic(&a)?;
    let d = common::open_for_writing(dir, "topics --delete")?;
    let result = d.delete_topic(name);
    let closed = d.close();
    result?;
    closed?;
    let mut out = Out::new();
    out.line(&format!("Deleted topic {name}."))?;
    out.flush()?;
    Ok(OK)
}

fn overrides(d: &TopicDescription) -> Vec<(String, String)> {
    d.config_entries
        .iter()
        .filter(|e| e.source == ConfigSource::Topic)
        .map(|e| (e.key.to_owned(), e.value.clone()))
        .collect()
}

fn describe_text(out: &mut Out, d: &TopicDescription) -> Result<(), Failure> {
    let configs: Vec<String> = overrides(d).iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.line(&format!("Topic: {}\tPartitionCount: {}\tConfigs: {}", d.name, d.partitions.len(), configs.join(",")))?;
    for p in &d.partitions {
        out.line(&format!(
            "\tTopic: {}\tPartition: {}\tLogStartOffset: {}\tLogEndOffset: {}\tSize: {}\tSegments: {}",
            d.name,
            p.partition,
            p.log_start_offset,
            p.log_end_offset,
            p.size_bytes,
            p.segments.len()
        ))?;
    }
    Ok(())
}

fn describe_json(d: &TopicDescription) -> serde_json::Value {
    let config: serde_json::Map<String, serde_json::Value> =
        overrides(d).into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
    json!({
        "topic": d.name,
        "partition_count": d.partitions.len(),
        "config": config,
        "partitions": d.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "log_start_offset": p.log_start_offset,
            "log_end_offset": p.log_end_offset,
            "size_bytes": p.size_bytes,
            "segments": p.segments.len(),
        })).collect::<Vec<_>>(),
    })
}
