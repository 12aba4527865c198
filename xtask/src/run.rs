//! The commands: each makes sure the prerequisites are there, then runs
//! cargo from the workspace root.

use std::path::PathBuf;
use std::process::Command;

use crate::broker::Broker;
use crate::moto::{self, Moto};
use crate::prereq::{self, Purpose};

pub fn root() -> PathBuf {
    // xtask/ is a direct child of the workspace root. `cargo run` says
    // where it is now; the path compiled in is a fallback only: a target
    // directory shared between checkouts can hold a binary built in
    // another one.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("starting {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// `cargo run --release -p pageviews -- ARGS`.
pub fn demo(args: &[String]) -> Result<(), String> {
    prereq::system_packages(Purpose::Build)?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "pageviews", "--"]).args(args);
    run(cmd, "the pageviews demo")
}

/// `cargo run --release -p devtools -- TOOL ARGS`, after building all of
/// devtools' binaries: the crash harness and the benchmarks start
/// `crash-counter`, `count-member` and `mock-broker` as processes of
/// their own, which `cargo run` alone would not rebuild (a stale one, or
/// another checkout's in a shared target dir, would run instead).
pub fn devtools(tool: &str, args: &[String]) -> Result<(), String> {
    prereq::system_packages(Purpose::Build)?;
    let mut build = cargo();
    build.args(["build", "--release", "-p", "devtools", "--bins"]);
    run(build, "building devtools")?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "devtools", "--", tool]).args(args);
    run(cmd, tool)
}

/// `cargo test --workspace ARGS` with a tansu broker for the real-broker
/// suites (unless `KAFKA_BOOTSTRAP_SERVERS` names one already) and a moto
/// S3 server for the snapshot tests that go through S3 (unless
/// `STATE_SNAPSHOT_S3_ENDPOINT` names one). Both are installed, if
/// missing, while the tests build. moto that cannot be installed is
/// reported and its tests skip with the reason; tansu is required.
pub fn test(args: &[String]) -> Result<(), String> {
    prereq::system_packages(Purpose::Test)?;
    let external = std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok().filter(|s| !s.is_empty());
    let external_s3 = std::env::var(moto::ENDPOINT_VAR).ok().filter(|s| !s.is_empty());
    let install = match external {
        Some(_) => None,
        None => prereq::start_tansu_install()?,
    };
    let moto_install = match external_s3 {
        Some(_) => Ok(None),
        None => moto::start_install(),
    };
    let mut build = cargo();
    build.args(["test", "--workspace", "--no-run"]);
    let built = run(build, "building the tests");
    let tansu = match external {
        Some(_) => None,
        None => Some(prereq::finish_tansu_install(install)?),
    };
    let moto_bin = match external_s3 {
        Some(_) => None,
        None => Some(moto_install.and_then(moto::finish_install)),
    };
    built?;
    let broker = match &tansu {
        Some(bin) => Some(Broker::start(bin)?),
        None => None,
    };
    let s3 = match moto_bin {
        Some(Ok(bin)) => match Moto::start(&bin) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("xtask: {e}; the S3 snapshot tests will skip");
                None
            }
        },
        Some(Err(e)) => {
            eprintln!("xtask: {e}; the S3 snapshot tests will skip");
            None
        }
        None => None,
    };
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]).args(args);
    match (&broker, &tansu) {
        (Some(b), Some(bin)) => {
            cmd.env("KAFKA_BOOTSTRAP_SERVERS", &b.address).env("TANSU_BIN", bin);
        }
        _ => eprintln!(
            "xtask: using the broker at {} (KAFKA_BOOTSTRAP_SERVERS)",
            std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_default()
        ),
    }
    if let Some(m) = &s3 {
        cmd.env(moto::ENDPOINT_VAR, &m.endpoint);
    }
    let res = run(cmd, "the tests");
    drop(broker);
    drop(s3);
    res
}
