//! `partlog produce` (kafka-console-producer): one record per line of standard input,
//! appended as each line arrives.

use std::io::BufRead;

use partlog::{Error, Record};

use crate::common::{self, Failure, OK, Outcome};

pub const EXAMPLES: &str = "\
Examples:
  echo hello | partlog produce --dir data --topic orders
  partlog produce --dir data --topic users --key-separator : < users.txt     # lines key:value
  partlog produce --dir data --topic orders --partition 2 --header source=cli

Each line is appended as it arrives, so a `partlog consume --follow` on the topic sees it at
once. Keyed records go to the partition Kafka's partitioner picks, unkeyed ones are spread
(sticky). A malformed line stops the command with exit code 1: the lines before it were
appended, it and the lines after it were not. The directory must not be open in another
process (exit code 4).";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic to append to.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Split each line into key and value at the first occurrence of this string (Kafka's
    /// parse.key=true with key.separator). Without it, lines are values without a key.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Append to this partition instead of the one the key (or the sticky partitioner) picks.
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// A header added to every record (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    header: Vec<String>,
    /// Kafka's producer settings for the line format: parse.key=true, key.separator=SEP.
    #[arg(long, value_name = "KEY=VALUE")]
    property: Vec<String>,
}

pub fn run(a: Args, dir: &std::path::Path) -> Outcome {
    let mut headers = Vec::new();
    for h in &a.header {
        headers.push(common::key_value(h, "--header")?);
    }
    let mut separator = a.key_separator.clone();
    let mut parse_key = separator.is_some();
    for p in &a.property {
        match common::key_value(p, "--property")? {
            (k, v) if k == "parse.key" => parse_key = v == "true",
            (k, v) if k == "key.separator" => separator = Some(v),
            (k, _) => return Err(Failure::new(format!("unknown --property `{k}`: use parse.key or key.separator"))),
        }
    }
    let separator = match (parse_key, separator) {
        (true, Some(s)) if !s.is_empty() => Some(s),
        (true, Some(_)) => return Err(Failure::new("--key-separator cannot be empty")),
        (true, None) => Some("\t".to_owned()),
        (false, _) => None,
    };
    let d = common::open_for_writing(dir, "produce")?;
    let result = produce(&d, &a, separator.as_deref(), &headers);
    let closed = d.close();
    result?;
    closed?;
    Ok(OK)
}

fn produce(
    dir: &partlog::LogDir,
    a: &Args,
    separator: Option<&str>,
    headers: &[(String, String)],
) -> Result<u64, Failure> {
    let topic = dir.topic(&a.topic)?;
    if let Some(p) = a.partition {
        topic.partition(p)?;
    }
    let compacted = topic.config().get_cleanup_policy().compact;
    // A count of lines only when they come from a file or a pipe, not while someone types.
    let pb = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        indicatif::ProgressBar::hidden()
    } else {
        common::spinner("lines appended")
    };
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let mut buf = Vec::new();
    let mut n = 0u64;
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let read =
            lines.read_until(b'\n', &mut buf).map_err(|e| Failure::new(format!("cannot read standard input: {e}")))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        if buf.ends_with(b"\n") {
            buf.pop();
            if buf.ends_with(b"\r") {
                buf.pop();
            }
        }
        let (key, value): (Option<&[u8]>, &[u8]) = match separator {
            None => (None, &buf),
            Some(sep) => match find(&buf, sep.as_bytes()) {
                Some(i) => (Some(&buf[..i]), &buf[i + sep.len()..]),
                None => {
                    return Err(Failure::new(format!(
                        "line {line_no} has no key separator {sep:?}: nothing of it or after it was appended ({n} lines before it were)"
                    )));
                }
            },
        };
        if compacted && key.is_none() {
            return Err(Failure::new(format!(
                "line {line_no} has no key, but topic {} is compacted: give every line a key with --key-separator (nothing of it or after it was appended; {n} lines before it were)",
                a.topic
            )));
        }
        let mut rec = Record::new().value(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        for (k, v) in headers {
            rec = rec.header(k.as_str(), v.as_bytes());
        }
        let appended = match a.partition {
            Some(p) => topic.append_to(p, rec),
            None => topic.append(rec),
        };
        match appended {
            Ok(_) => {}
            Err(e @ (Error::RecordTooLarge { .. } | Error::KeyRequired { .. } | Error::InvalidTimestamp { .. })) => {
                return Err(Failure::new(format!(
                    "line {line_no} was refused: {e} (nothing of it or after it was appended; {n} lines before it were)"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        n += 1;
        pb.inc(1);
        pb.set_message(format!("{n} lines appended"));
    }
    pb.finish_and_clear();
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
