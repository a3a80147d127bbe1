//! `partlog`: Kafka's command-line tools for a partlog log directory.
//!
//! | Kafka | partlog |
//! |---|---|
//! | `kafka-topics` | `partlog topics` |
//! | `kafka-console-producer` | `partlog produce` |
//! | `kafka-console-consumer` | `partlog consume` |
//! | `kafka-dump-log` | `partlog dump` |
//! | `kafka-consumer-groups` | `partlog groups` |
//! | (the broker's log cleaner and retention) | `partlog compact`, `partlog retention` |
//! | (MirrorMaker, a connector) | `partlog mirror` (to a Kafka cluster), `partlog import` (from one) |
//!
//! Commands that only read (`topics --list/--describe`, `consume` without `--group`, `dump`,
//! `groups --list/--describe`) open the directory read-only and work while an application
//! has it open; commands that write take the directory's lock and refuse, with exit code 4,
//! when another process holds it.

mod common;
mod consume;
mod dump;
mod groups;
#[cfg(feature = "kafka")]
mod kafka;
mod maint;
mod produce;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use common::Format;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the command failed: bad input, unknown topic or group, bad configuration value, I/O error
  2  the command line is wrong (unknown flag, missing argument)
  3  damaged data was found (dump, or any read that met it)
  4  a command that writes found the directory in use by another process (its lock is held)";

/// Kafka's tools for a partlog log directory: topics, a console producer and consumer, a log
/// dumper, consumer groups, retention and compaction.
#[derive(Debug, Parser)]
#[command(
    name = "partlog",
    version,
    after_help = EXIT_CODES,
    long_about = "Kafka's tools for a partlog log directory: topics, a console producer and consumer, a log dumper, consumer groups, retention and compaction.\n\nCommands that only read work on a directory that a running application has open; commands that write need the directory to themselves."
)]
struct Cli {
    /// The log directory (also PARTLOG_DIR); before or after the command.
    #[arg(long, env = "PARTLOG_DIR", hide_env_values = true, value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe, alter and delete topics (kafka-topics).
    #[command(after_help = topics::EXAMPLES)]
    Topics(topics::Args),
    /// Append lines from standard input as records (kafka-console-producer).
    #[command(after_help = produce::EXAMPLES)]
    Produce(produce::Args),
    /// Print records, optionally following new ones (kafka-console-consumer).
    #[command(after_help = consume::EXAMPLES)]
    Consume(consume::Args),
    /// Print segments, batches and records with their offsets, timestamps and checksums (kafka-dump-log).
    #[command(after_help = dump::EXAMPLES)]
    Dump(dump::Args),
    /// List, describe, reset and delete consumer groups (kafka-consumer-groups).
    #[command(after_help = groups::EXAMPLES)]
    Groups(groups::Args),
    /// Run one retention pass now and report what it deleted.
    #[command(after_help = maint::RETENTION_EXAMPLES)]
    Retention(maint::Args),
    /// Run one compaction pass now on compacted topics and report what it removed.
    #[command(after_help = maint::COMPACT_EXAMPLES)]
    Compact(maint::Args),
    /// Copy a topic into a Kafka cluster, each record once, to the same partition (feature `kafka`).
    #[cfg(feature = "kafka")]
    #[command(after_help = kafka::MIRROR_EXAMPLES)]
    Mirror(kafka::MirrorArgs),
    /// Copy a Kafka topic into a topic of the directory, each record once (feature `kafka`).
    #[cfg(feature = "kafka")]
    #[command(after_help = kafka::IMPORT_EXAMPLES)]
    Import(kafka::ImportArgs),
}

/// The `--format` argument of listings.
#[derive(Debug, clap::Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(dir) = cli.dir else {
        eprintln!("partlog: --dir DIR is required (or set PARTLOG_DIR): the log directory to work on");
        return ExitCode::from(2);
    };
    let outcome = match cli.command {
        Command::Topics(a) => topics::run(a, &dir),
        Command::Produce(a) => produce::run(a, &dir),
        Command::Consume(a) => consume::run(a, &dir),
        Command::Dump(a) => dump::run(a, &dir),
        Command::Groups(a) => groups::run(a, &dir),
        Command::Retention(a) => maint::retention(a, &dir),
        Command::Compact(a) => maint::compact(a, &dir),
        #[cfg(feature = "kafka")]
        Command::Mirror(a) => kafka::mirror(a, &dir),
        #[cfg(feature = "kafka")]
        Command::Import(a) => kafka::import(a, &dir),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("partlog: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
