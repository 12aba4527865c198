//! `statectl`: the operator's tool for store partitions. See `statectl --help`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{value_parser, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use state_changelog::{KafkaSettings, RecoveryProgress};
use state_cli::{
    Checksums, CliError, CommittedOffsets, DumpOptions, Engine, PartitionDir, ReplaySource, SnapshotTarget,
};
use state_core::Codec;
use state_snapshot::{Retention, SnapshotScope, SnapshotStore, StoreOptions};
use tracing_subscriber::EnvFilter;

/// Inspect, dump, restore and verify the local state of Kafka stream
/// processors: RocksDB partitions (written by this library or quixstreams)
/// and fjall partitions; take and restore partition snapshots in an object
/// store (statectl snapshot).
///
/// A partition directory is <state-dir>/<group>/<store>/<stream>/<partition>.
/// On RocksDB, inspect, dump and verify open it read-only and work next to a
/// running application; fjall has no read-only mode, so every command needs
/// a fjall partition unlocked, as restore needs any partition (stop the
/// application first).
///
/// Exit status: 0 ok, 1 verify found differences, 2 error, 130 restore or
/// verify stopped by Ctrl-C or SIGTERM (a restored partition keeps what
/// was applied, consistent; run again to continue).
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
            // Only the replaying commands get the handler: a first Ctrl-C
            // stops them cleanly (see `state_cli::stop_on_signals`).
            stop: state_cli::stop_on_signals(),
        })
    }
}

/// Longest retention grace period: a week.
const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;

#[derive(clap::Args)]
struct SnapshotStoreArgs {
    /// Snapshot store URL: file:///absolute/dir (s3://bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix in builds with the aws,
    /// gcp, azure features). Credentials never go in the URL: they come
    /// from the environment (AWS_*, GOOGLE_*, AZURE_* as object_store reads
    /// them) or --store-config.
    #[arg(long, value_name = "URL")]
    store: String,
    /// A file of store options, one KEY=VALUE per line (# comments), with
    /// object_store's keys: aws_region, aws_endpoint, aws_access_key_id,
    /// aws_secret_access_key, ... Keep it readable by you only. Its values
    /// never appear in output or logs.
    #[arg(long, value_name = "FILE")]
    store_config: Option<PathBuf>,
    /// A store option that is not a secret, e.g. -O aws_region=eu-west-1;
    /// repeatable, applied after --store-config. Secrets (keys, tokens,
    /// passwords) are refused here: use --store-config or the environment.
    #[arg(short = 'O', value_name = "KEY=VALUE")]
    store_option: Vec<String>,
    /// The store name the snapshots are kept under (e.g. the store's
    /// name or its changelog topic; distinct per application sharing the
    /// URL).
    #[arg(long)]
    name: String,
    /// The partition.
    #[arg(long, value_parser = value_parser!(u32).range(0..=i32::MAX as i64))]
    partition: u32,
}

impl SnapshotStoreArgs {
    fn target(&self, retention: Retention) -> Result<SnapshotTarget, CliError> {
        let mut options = match &self.store_config {
            Some(path) => StoreOptions::from_file(path)?,
            None => StoreOptions::new(),
        };
        for option in &self.store_option {
            let Some((key, value)) = option.split_once('=') else {
                return Err(CliError::StoreOption {
                    key: option
                        .split(['=', ':'])
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(40)
                        .collect(),
                    reason: "not KEY=VALUE".into(),
                });
            };
            if state_snapshot::is_secret_option(key) {
                return Err(CliError::StoreOption {
                    key: key.to_owned(),
                    reason: "a secret does not belong on the command line (other users see it in the process \
                             list); put it in the --store-config file or the environment"
                        .into(),
                });
            }
            options = options.with(key.trim(), value.trim());
        }
        Ok(SnapshotTarget {
            store: SnapshotStore::open(&self.store, &options)?.with_retention(retention),
            scope: SnapshotScope::new(self.name.clone(), self.partition)?,
        })
    }
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// The partition's snapshots, oldest first, one JSON line each: id,
    /// changelog_offset, backend, layout, codec, kind, files, bytes,
    /// created_unix_ms (or id and error for an unreadable manifest).
    List {
        #[command(flatten)]
        store: SnapshotStoreArgs,
    },
    /// Take a snapshot of the partition in DIR and upload the files the
    /// store does not hold yet, then apply retention (--keep). DIR must
    /// not be open elsewhere (stop the application). Prints a JSON
    /// summary line.
    Create {
        /// Partition directory.
        dir: PathBuf,
        #[command(flatten)]
        store: SnapshotStoreArgs,
        /// Snapshots kept per partition (older ones are deleted, with the
        /// files no kept snapshot uses).
        #[arg(long, default_value_t = 3, value_parser = value_parser!(u64).range(1..=10_000))]
        keep: u64,
        /// Seconds a file no snapshot uses is kept anyway, for uploads in
        /// progress (and the longest an upload may take).
        #[arg(long, default_value_t = 3600, value_parser = value_parser!(u64).range(1..=MAX_GRACE_SECS))]
        grace: u64,
    },
    /// Download a snapshot into DIR (missing or empty), checking every
    /// file's checksum; DIR is then a partition directory of the
    /// snapshot's backend. Prints a JSON summary line.
    Restore {
        /// Directory to restore into.
        dir: PathBuf,
        #[command(flatten)]
        store: SnapshotStoreArgs,
        /// The snapshot's id (from list). Default: the newest usable one.
        #[arg(long)]
        id: Option<String>,
    },
    /// Read a snapshot's files (every snapshot's without --id) and check
    /// their sizes and checksums; one JSON line per snapshot. Exit status 1
    /// if any is damaged or missing a file.
    Verify {
        #[command(flatten)]
        store: SnapshotStoreArgs,
        /// The snapshot's id. Default: every snapshot.
        #[arg(long)]
        id: Option<String>,
    },
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
    /// Partition snapshots in an object store: list, create, restore,
    /// verify.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
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
            match e {
                CliError::Interrupted { .. } => ExitCode::from(state_cli::INTERRUPTED_EXIT),
                _ => ExitCode::from(2),
            }
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

/// A progress bar on stderr fed by snapshot transfers (hidden when stderr
/// is not a terminal).
struct TransferBar(ProgressBar);

impl TransferBar {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        TransferBar(bar)
    }
}

impl state_snapshot::Progress for TransferBar {
    fn begin(&self, phase: &'static str, total_bytes: u64) {
        self.0.set_message(phase);
        self.0.set_length(total_bytes);
        self.0.set_position(0);
        self.0.reset_eta();
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for TransferBar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn run_snapshot(command: SnapshotCommand, engine: Option<Engine>) -> Result<ExitCode, CliError> {
    let retention = Retention::default();
    match command {
        SnapshotCommand::List { store } => {
            let target = store.target(retention)?;
            for listed in target.store.list(&target.scope)? {
                let line = match listed.manifest {
                    Ok(m) => serde_json::json!({
                        "id": m.id,
                        "changelog_offset": m.changelog_offset,
                        "backend": m.backend,
                        "layout": m.layout,
                        "codec": m.codec,
                        "kind": m.kind,
                        "files": m.files.len(),
                        "bytes": m.total_bytes(),
                        "created_unix_ms": m.created_unix_ms,
                    }),
                    Err(e) => serde_json::json!({"id": listed.id, "error": e.to_string()}),
                };
                println_json(&line)?;
            }
        }
        SnapshotCommand::Create {
            dir,
            store,
            keep,
            grace,
        } => {
            let target = store.target(Retention {
                keep_newest: usize::try_from(keep).unwrap_or(usize::MAX),
                grace: Duration::from_secs(grace),
            })?;
            let bar = TransferBar::new();
            let (up, pruned) = state_cli::snapshot_create(&PartitionDir::new(dir).with_engine(engine), &target, &bar)?;
            drop(bar);
            println_json(&serde_json::json!({
                "id": up.manifest.id,
                "changelog_offset": up.manifest.changelog_offset,
                "backend": up.manifest.backend,
                "files_uploaded": up.files_uploaded,
                "bytes_uploaded": up.bytes_uploaded,
                "files_reused": up.files_reused,
                "bytes_reused": up.bytes_reused,
                "snapshots_kept": pruned.kept.len(),
                "snapshots_deleted": pruned.deleted.len(),
                "files_deleted": pruned.files_deleted,
                "bytes_deleted": pruned.bytes_deleted,
            }))?;
        }
        SnapshotCommand::Restore { dir, store, id } => {
            let target = store.target(retention)?;
            let id = match id {
                Some(id) => id,
                None => state_cli::newest_snapshot(&target)?,
            };
            let bar = TransferBar::new();
            let m = state_cli::snapshot_restore(&target, &id, &dir, &bar)?;
            drop(bar);
            println_json(&serde_json::json!({
                "id": m.id,
                "dir": dir.display().to_string(),
                "changelog_offset": m.changelog_offset,
                "backend": m.backend,
                "files": m.files.len(),
                "bytes": m.total_bytes(),
            }))?;
        }
        SnapshotCommand::Verify { store, id } => {
            let target = store.target(retention)?;
            let bar = TransferBar::new();
            let results = state_cli::snapshot_verify(&target, id.as_deref(), &bar)?;
            drop(bar);
            let mut damaged = false;
            for (id, result) in results {
                let line = match result {
                    Ok(v) => {
                        damaged |= !v.problems.is_empty();
                        let problems: Vec<String> = v.problems.iter().map(|p| p.to_string()).collect();
                        serde_json::json!({"id": id, "ok": problems.is_empty(), "files": v.manifest.files.len(), "problems": problems})
                    }
                    Err(e) => {
                        damaged = true;
                        serde_json::json!({"id": id, "ok": false, "problems": [e.to_string()]})
                    }
                };
                println_json(&line)?;
            }
            if damaged {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
        Command::Snapshot(command) => return run_snapshot(command, engine),
    }
    Ok(ExitCode::SUCCESS)
}
