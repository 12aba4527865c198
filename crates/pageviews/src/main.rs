//! `cargo run --release -p pageviews -- --help`

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{value_parser, Parser, ValueEnum};
use pageviews::{limits, Config, Hold, ProcessingGuarantee};
use state_changelog::KafkaSettings;

/// mimalloc for the whole process: built with its `override` feature it is
/// also the `malloc` of librdkafka (a few allocations per message) and
/// RocksDB. With glibc's malloc the demo spent about a fifth of its CPU
/// time allocating and, without a crash, ran at 0.36-0.37x the bare
/// pipeline; with mimalloc at 0.49-0.57x (docs/performance.md, "The
/// allocator, the group's waits and the end of a run").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A stateful stream-processing pipeline, start to finish: a click stream
/// counted per page in tumbling windows, per user, and in user sessions,
/// with changelogs and
/// exactly-once; a crash half-way (local state deleted) and recovery; and a
/// check of every count against the input.
///
/// Without --brokers it runs on an in-process mock Kafka cluster: nothing to
/// install. Exit status 0 when verified, 1 on a mismatch, 2 on an error.
#[derive(Parser)]
#[command(name = "pageviews")]
#[command(group(clap::ArgGroup::new("serve").args(["http", "metrics"]).multiple(true)))]
struct Args {
    /// Events in the click stream.
    #[arg(long, default_value_t = 1_000_000, value_parser = value_parser!(u64).range(1..=limits::MAX_EVENTS))]
    events: u64,
    /// Distinct users.
    #[arg(long, default_value_t = 10_000, value_parser = value_parser!(u32).range(1..=i64::from(limits::MAX_USERS)))]
    users: u32,
    /// Distinct pages.
    #[arg(long, default_value_t = 500, value_parser = value_parser!(u32).range(1..=i64::from(limits::MAX_PAGES)))]
    pages: u32,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 4, value_parser = value_parser!(u32).range(1..=i64::from(limits::MAX_PARTITIONS)))]
    partitions: u32,
    /// Tumbling window size in seconds.
    #[arg(long, default_value_t = 10, value_parser = value_parser!(u64).range(1..=limits::MAX_WINDOW_SECS))]
    window_secs: u64,
    /// How late a record may come for its page window, in seconds.
    #[arg(long, default_value_t = 60)]
    window_grace_secs: u64,
    /// Inactivity gap of the user sessions, in seconds.
    #[arg(long, default_value_t = 30)]
    session_gap_secs: u64,
    /// Processing guarantee.
    #[arg(long, value_enum, default_value = "exactly-once")]
    guarantee: Guarantee,
    /// Use this Kafka (host:port) instead of the in-process mock cluster
    /// (so does bootstrap.servers from -X or --kafka-config).
    #[arg(long)]
    brokers: Option<String>,
    /// A librdkafka client property for every Kafka client, e.g.
    /// -X security.protocol=ssl -X ssl.ca.location=ca.pem; repeatable,
    /// applied after --kafka-config. Secret values are never shown.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    kafka_property: Vec<String>,
    /// A Java-style .properties file of librdkafka client properties
    /// (key=value per line, # comments); repeatable.
    #[arg(long, value_name = "FILE")]
    kafka_config: Vec<std::path::PathBuf>,
    /// Crash after this fraction of the input, in [0, 1); 0 for no crash.
    #[arg(long, default_value_t = 0.5, value_parser = limits::parse_crash_at)]
    crash_at: f64,
    /// Input records per checkpoint.
    #[arg(long, default_value_t = 20_000, value_parser = value_parser!(u64).range(1..=limits::MAX_COMMIT_EVERY))]
    commit_every: u64,
    /// Seed of the click stream.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Storage backend of the state stores.
    #[arg(long, value_enum, default_value = "rocksdb")]
    backend: BackendArg,
    /// Defer the stores' local writes in write-behind caches (the
    /// changelogs still get every checkpoint).
    #[arg(long)]
    write_behind: bool,
    /// Wait for each checkpoint's local write before processing more
    /// records (pipelined checkpoints off; see `ManagerConfig::pipelined_checkpoints`).
    /// --write-behind always checkpoints this way.
    #[arg(long)]
    sequential_checkpoints: bool,
    /// Keep the stores' state in DIR and leave it there after the run, for
    /// `statectl inspect|dump|verify` (default: a temporary directory,
    /// removed at the end). The crash phase deletes what DIR holds, as a
    /// lost disk would; the end state is the one restored after it.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<std::path::PathBuf>,
    /// Take snapshots of the stores' partitions into DIR (a snapshot store
    /// on the local filesystem) while running; after the crash, recovery
    /// restores the newest snapshots and replays only the changelogs after
    /// them. Keep DIR outside --state-dir; it is left in place after the run.
    #[arg(long, value_name = "DIR")]
    snapshots: Option<std::path::PathBuf>,
    /// Serve HTTP while running: GET /metrics (Prometheus), /users/<id>/views,
    /// /pages/<page>/windows?from=&to= and /status. PORT alone means
    /// 127.0.0.1:PORT. NO AUTHENTICATION: anyone who can connect reads every
    /// count; other than loopback addresses need --http-allow-remote.
    #[arg(long, value_name = "[IP:]PORT", value_parser = listen_addr)]
    http: Option<SocketAddr>,
    /// Serve only GET /metrics (Prometheus text) here while running. PORT
    /// alone means 127.0.0.1:PORT. No authentication; other than loopback
    /// addresses need --http-allow-remote.
    #[arg(long, value_name = "[IP:]PORT", value_parser = listen_addr)]
    metrics: Option<SocketAddr>,
    /// Let --http and --metrics listen on addresses other than loopback.
    /// The endpoints have NO AUTHENTICATION: anyone who can reach the port
    /// reads every count and metric.
    #[arg(long)]
    http_allow_remote: bool,
    /// After the run, keep serving its final state over --http/--metrics
    /// for this many seconds.
    #[arg(long, value_name = "SECS", requires = "serve", value_parser = value_parser!(u64).range(0..=limits::MAX_LINGER_SECS))]
    linger_secs: Option<u64>,
    /// Log filter for diagnostics on stderr: a level (error, warn, info,
    /// debug, trace) or directives such as warn,librdkafka=debug. Default:
    /// RUST_LOG, else error. librdkafka logs only the debug contexts its
    /// client is given: PAGEVIEWS_CONSUMER_DEBUG=topic,fetch (say) gives
    /// them to the processors' consumers.
    #[arg(long, value_name = "FILTER", value_parser = log_filter)]
    log: Option<String>,
}

/// `--log`: a filter tracing accepts.
fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a log filter ({e}); use a level (error, warn, info, debug, trace) or directives such as warn,librdkafka=debug"))
}

/// Logs to stderr with `filter` (`--log`, else RUST_LOG, else errors
/// only), in colour only on a terminal (and without NO_COLOR).
fn init_logging(filter: Option<&str>) -> Result<(), String> {
    let filter = match (filter, std::env::var("RUST_LOG")) {
        (Some(f), _) => tracing_subscriber::EnvFilter::try_new(f).map_err(|e| format!("--log {f:?}: {e}"))?,
        (None, Ok(f)) => tracing_subscriber::EnvFilter::try_new(&f).map_err(|e| {
            format!(
                "RUST_LOG={f:?} is not a log filter ({e}); use a level (error, warn, info, debug, trace) \
                 or directives such as warn,librdkafka=debug"
            )
        })?,
        (None, Err(_)) => tracing_subscriber::EnvFilter::new("error"),
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    Ok(())
}

/// `PORT` (on 127.0.0.1) or `IP:PORT`; no host names, so the address that
/// is checked is the one that is bound.
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not PORT or IP:PORT (e.g. 9464, 127.0.0.1:9464, [::1]:9464)"))
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// RocksDB (C++), one database per partition.
    Rocksdb,
    /// fjall, Rust only (no C++), one database per partition.
    Fjall,
    /// In memory: rebuilt from the changelog on every assignment.
    Memory,
}

impl BackendArg {
    fn backend(self) -> std::sync::Arc<dyn state_manager::Backend> {
        match self {
            BackendArg::Rocksdb => state_manager::RocksDbBackend::shared(Default::default()),
            BackendArg::Fjall => state_fjall::FjallBackend::shared(Default::default()),
            BackendArg::Memory => state_manager::MemoryBackend::shared(),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Guarantee {
    ExactlyOnce,
    AtLeastOnce,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Err(e) = init_logging(a.log.as_deref()) {
        eprintln!("pageviews: error: {e}");
        return ExitCode::from(2);
    }
    let kafka = match KafkaSettings::from_cli(a.brokers.as_deref(), &a.kafka_property, &a.kafka_config)
        .and_then(|k| k.validate().map(|()| k))
    {
        Ok(k) => k,
        Err(e) => {
            eprintln!("pageviews: error: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = Config {
        events: a.events,
        users: a.users,
        pages: a.pages,
        partitions: a.partitions,
        window: Duration::from_secs(a.window_secs),
        window_grace: Duration::from_secs(a.window_grace_secs),
        session_gap: Duration::from_secs(a.session_gap_secs),
        guarantee: match a.guarantee {
            Guarantee::ExactlyOnce => ProcessingGuarantee::ExactlyOnce,
            Guarantee::AtLeastOnce => ProcessingGuarantee::AtLeastOnce,
        },
        brokers: kafka.brokers().map(str::to_owned),
        kafka: kafka.clone(),
        crash_at: a.crash_at,
        // At most MAX_COMMIT_EVERY (clap's range): fits any usize.
        commit_every: usize::try_from(a.commit_every).unwrap_or(usize::MAX),
        seed: a.seed,
        state_dir: a.state_dir,
        snapshots: a.snapshots,
        backend: a.backend.backend(),
        write_behind: a.write_behind,
        pipelined: !a.sequential_checkpoints,
        progress: true,
        http: a.http,
        metrics: a.metrics,
        http_allow_remote: a.http_allow_remote,
        listening: None,
        hold: match a.linger_secs {
            None | Some(0) => Hold::No,
            Some(secs) => Hold::For(Duration::from_secs(secs)),
        },
    };
    match pageviews::run(&cfg) {
        Ok(report) => {
            print!("{}", report.summary());
            if report.verdict.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            // No secret setting's value is printed, whatever is in the message.
            eprintln!("pageviews: error: {}", kafka.redact(&e.to_string()));
            ExitCode::from(2)
        }
    }
}
