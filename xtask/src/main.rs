//! `cargo xtask`: the project's front door, in the style of rust-analyzer's
//! xtask. It has no dependencies, so it builds in seconds on a fresh
//! machine; it installs what is missing (and says so), then runs cargo.
//!
//! * `cargo xtask demo [-- ARGS]` — the main job: `cargo run --release -p pageviews -- ARGS`.
//! * `cargo xtask test [-- ARGS]` — the tests: `cargo test --workspace ARGS`, with a
//!   tansu broker started for the real-broker suites and stopped after.
//! * `cargo xtask bench|crash|fuzz|fixtures ...` — dev tools (`crates/devtools`).
//! * `cargo xtask prerequisites` — install what building and testing need.

mod broker;
mod modules;
mod moto;
mod prereq;
mod run;

use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: cargo xtask <command> [args]

commands:
  demo [-- ARGS]       run the main job (pageviews demo) on an embedded Kafka;
                       ARGS go to pageviews (try `cargo xtask demo -- --help`)
  test [-- ARGS]       run every test; starts a tansu broker for the real-broker
                       suites unless KAFKA_BOOTSTRAP_SERVERS is set; ARGS go to
                       `cargo test --workspace`
  bench [ARGS]         benchmarks (see docs/performance.md)
  crash [ARGS]         the crash harness (see docs/guarantees.md)
  fuzz [ARGS]          fuzz every decoder
  fixtures             regenerate fixtures/format from the code
  modules              check that no crate has a module cycle (docs/architecture.md)
  prerequisites        install system packages (and tansu with --broker)

Missing system packages (libclang-dev for RocksDB's bindings, pkg-config and
libssl-dev for TLS, stunnel4 and openssl for the TLS tests) are installed with
apt-get when running as root or with password-less sudo; otherwise the exact
command to run is printed."
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = |from: usize| -> Vec<String> {
        let tail = args.get(from..).unwrap_or_default();
        // Accept both `demo -- ARGS` and `demo ARGS`.
        match tail.first().map(String::as_str) {
            Some("--") => tail[1..].to_vec(),
            _ => tail.to_vec(),
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("demo") => run::demo(&rest(1)),
        Some("test") => run::test(&rest(1)),
        Some(tool @ ("bench" | "crash" | "fuzz" | "fixtures")) => run::devtools(tool, &rest(1)),
        Some("modules") => modules::check(&run::root()),
        Some("prerequisites") => {
            let broker = args.iter().any(|a| a == "--broker");
            prereq::system_packages(prereq::Purpose::Test).and_then(|()| {
                if broker {
                    prereq::tansu().map(|_| ())
                } else {
                    Ok(())
                }
            })
        }
        Some("-h" | "--help" | "help") | None => {
            eprintln!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
