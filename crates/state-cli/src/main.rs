//! `statectl`: the operator's tool for store partitions. See `statectl --help`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{value_parser, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use state_changelog::{KafkaSettings, RecoveryProgress};
use state_cli::{Checksums, CliError, CommittedOffsets, DumpOptions, Engine, PartitionDir, ReplaySource};
use state_core::Codec;
use tracing_subscriber::EnvFilter;

/// Inspect, dump, restore and verify the local state of Kafka stream
/// processors: RocksDB partitions (written by this library or quixstreams)
/// and fjall partitions.
///
/// A partition directory is <state-dir>/<group>/<store>/<stream>/<partition>.
/// On RocksDB, inspect, dump and verify open it read-only and work next to a
/// running application; fjall has no read-only mode, so every command needs
/// a fjall partition unlocked, as restore needs any partition (stop the
/// application first).
///
/// Exit status: 0 ok, 1 verify found differences, 2 error.
#[derive(Parser)]
#[command(name = "statectl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter for diagnostics on stderr: a level (error, warn, info,
    /// debug, trace) or directives such as warn,librdkafka=debug.
    #[arg(long, global = true, default_value = "warn", value_parser = log_filter)]
    log: String,
    /// Storage engine of the partition. Default: found from the files in
    /// the directory (RocksDB keeps CURRENT, fjall a version file); restore
    /// into an empty or missing directory writes RocksDB unless told.
    #[arg(long, global = true, value_enum)]
    backend: Option<BackendArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// RocksDB (this library's default; quixstreams).
    Rocksdb,
    /// fjall (Rust only).
    Fjall,
}

impl From<BackendArg> for Engine {
    fn from(b: BackendArg) -> Engine {
        match b {
            BackendArg::Rocksdb => Engine::RocksDb,
            BackendArg::Fjall => Engine::Fjall,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum CodecArg {
    /// MessagePack (this library's default).
    Msgpack,
    /// JSON (quixstreams' default serializer).
    Json,
    /// Bytes as they are.
    Raw,
}

impl From<CodecArg> for Codec {
    fn from(c: CodecArg) -> Codec {
        match c {
            CodecArg::Msgpack => Codec::MsgPack,
            CodecArg::Json => Codec::Json,
            CodecArg::Raw => Codec::Raw,
        }
    }
}

/// Longest `--timeout`: an hour (librdkafka takes its timeouts in
/// milliseconds, as 32-bit numbers).
const MAX_TIMEOUT_SECS: u64 = 3600;

#[derive(clap::Args)]
struct Changelog {
    /// Kafka bootstrap servers, e.g. localhost:9092 (overrides
    /// bootstrap.servers from -X and --kafka-config).
    #[arg(long)]
    brokers: Option<String>,
    /// A librdkafka client property, e.g. -X security.protocol=ssl
    /// -X ssl.ca.location=/etc/kafka/ca.pem; repeatable, applied after
    /// --kafka-config. Secret values never appear in output or logs.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    kafka_property: Vec<String>,
    /// A Java-style .properties file of librdkafka client properties
    /// (key=value per line, # comments), e.g. security settings kept out of
    /// the command line; repeatable.
    #[arg(long, value_name = "FILE")]
    kafka_config: Vec<PathBuf>,
    /// Changelog topic, e.g. changelog__my-app--clicks--counts.
    #[arg(long)]
    topic: String,
    /// Changelog partition (the same number as the source partition).
    #[arg(long, value_parser = value_parser!(i32).range(0..))]
    partition: i32,
    /// Committed source offset as TOPIC=OFFSET (next offset to consume);
    /// repeat per topic. Changelog records of checkpoints at or beyond it
    /// are skipped. Default: read from the consumer group named in the topic.
    #[arg(long, value_name = "TOPIC=OFFSET")]
    committed: Vec<String>,
    /// Seconds to wait for the brokers before giving up (1 to 3600).
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    timeout: u64,
}

impl Changelog {
    fn settings(&self) -> Result<KafkaSettings, CliError> {
        Ok(KafkaSettings::from_cli(
            self.brokers.as_deref(),
            &self.kafka_property,
            &self.kafka_config,
        )?)
    }

    fn source(&self) -> Result<ReplaySource, CliError> {
        Ok(ReplaySource {
            kafka: self.settings()?,
            topic: self.topic.clone(),
            partition: self.partition,
            timeout: Duration::from_secs(self.timeout),
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Column families, approximate key counts (RocksDB only), size on
    /// disk, the stored changelog offset, the recorded value codec and
    /// quixstreams' per-write TTL state of a partition; reads it whole to
    /// verify its block checksums (exit 2 if damaged).
    Inspect {
        /// Partition directory.
        dir: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Do not read the whole partition to verify its block checksums
        /// (fast on large partitions; damaged blocks then go unnoticed).
        #[arg(long)]
        skip_checksums: bool,
    },
    /// Every key and value as JSON lines, sorted by column family then key:
    /// {"cf", "key_hex", "key", "value", "value_hex"}. "key" is text when
    /// printable, "value" is decoded with --codec (null if it does not decode).
    /// In quixstreams' per-write TTL mode, default values are shown without
    /// their stamp, with "expires_at" (ms or "never") and "expired".
    Dump {
        /// Partition directory.
        dir: PathBuf,
        /// Only this column family (e.g. default).
        #[arg(long)]
        cf: Option<String>,
        /// How the store encoded values (quixstreams' default is json).
        /// Default: the codec recorded in the partition, else the one its
        /// values decode with (refused if they decode both ways). Another
        /// codec than the recorded one is refused; raw is always allowed.
        #[arg(long, value_enum)]
        codec: Option<CodecArg>,
    },
    /// Rebuild a partition from its changelog (creates DIR if missing; an
    /// existing partition continues from its stored offset). A partition
    /// that records its store kind and codec is replayed with their rules,
    /// as the application restores it. Prints a JSON summary line.
    Restore {
        /// Partition directory.
        dir: PathBuf,
        #[command(flatten)]
        changelog: Changelog,
    },
    /// Replay the changelog (up to DIR's stored offset) into a scratch
    /// partition, with the rules of the store kind and codec DIR records,
    /// and print every difference from DIR as a JSON line, then a summary
    /// line. Exit status 1 if anything differs.
    Verify {
        /// Partition directory.
        dir: PathBuf,
        #[command(flatten)]
        changelog: Changelog,
    },
}

/// `--log`: a filter tracing accepts.
fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a log filter ({e}); use a level (error, warn, info, debug, trace) or directives such as warn,librdkafka=debug"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Checked by clap (log_filter): this parse succeeds.
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colour only on a terminal (and without NO_COLOR): escape codes in a
    // log file or a pipe are noise.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    // Errors pass through a last filter: no secret setting's value is
    // printed, whatever a library or the broker put in a message.
    let settings = match &cli.command {
        Command::Restore { changelog, .. } | Command::Verify { changelog, .. } => changelog.settings().ok(),
        _ => None,
    };
    let engine = cli.backend.map(Engine::from);
    match run(cli.command, engine) {
        Ok(code) => code,
        Err(e) => {
            let message = e.to_string();
            let message = settings.map_or(message.clone(), |s| s.redact(&message));
            eprintln!("statectl: error: {message}");
            ExitCode::from(2)
        }
    }
}

fn println_json(v: &serde_json::Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}").map_err(|source| CliError::Io {
        what: "standard output".into(),
        source,
    })
}

/// A progress bar on stderr fed by recovery progress (hidden when stderr is
/// not a terminal).
fn recovery_bar() -> (ProgressBar, impl FnMut(&RecoveryProgress)) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} offsets ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let b = bar.clone();
    let update = move |p: &RecoveryProgress| {
        b.set_message(p.changelog.to_string());
        b.set_length(p.total);
        b.set_position(p.done);
    };
    (bar, update)
}

fn run(command: Command, engine: Option<Engine>) -> Result<ExitCode, CliError> {
    let at = |dir: PathBuf| PartitionDir::new(dir).with_engine(engine);
    match command {
        Command::Inspect {
            dir,
            json,
            skip_checksums,
        } => {
            let checksums = match skip_checksums {
                true => Checksums::Skip,
                false => Checksums::Verify,
            };
            let i = state_cli::inspect(&at(dir), checksums)?;
            if json {
                println_json(&i.to_json())?;
            } else {
                print!("{}", i.to_text());
            }
        }
        Command::Dump { dir, cf, codec } => {
            let options = DumpOptions {
                cf,
                codec: codec.map(Codec::from),
            };
            state_cli::dump(&at(dir), &options, &mut std::io::stdout().lock())?;
        }
        Command::Restore { dir, changelog } => {
            let committed = CommittedOffsets::parse(&changelog.committed)?;
            let (bar, mut update) = recovery_bar();
            let source = changelog.source()?;
            let summary = state_cli::restore(&at(dir), &source, &committed, &mut update);
            bar.finish_and_clear();
            println_json(&summary?.to_json())?;
        }
        Command::Verify { dir, changelog } => {
            let committed = CommittedOffsets::parse(&changelog.committed)?;
            let (bar, mut update) = recovery_bar();
            let source = changelog.source()?;
            let report = state_cli::verify(&at(dir), &source, &committed, &mut update);
            bar.finish_and_clear();
            let report = report?;
            for d in &report.differences {
                println_json(&d.to_json())?;
            }
            println_json(&report.summary_json())?;
            if !report.differences.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
