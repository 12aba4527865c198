//! The development tools `cargo xtask` runs (in release mode, after making
//! sure the machine can build RocksDB). Run directly with
//! `cargo run --release -p devtools -- <command>`:
//!
//! * `cargo xtask bench [--workload wN|win-KIND|budget]` — the workloads of
//!   docs/performance.md, one JSON line per (system, workload) on stdout.
//! * `cargo xtask crash [--kills N] [--seed S]` — the crash harness: kill a
//!   stateful processor at random points and compare with a model.
//! * `cargo xtask fuzz [--seconds S]` — random and mutated inputs for every
//!   decoder; fails on a panic.
//! * `cargo xtask fixtures` — regenerate `fixtures/format/*.json` from the
//!   code; tests compare the code against the checked-in files.

mod bench;
mod crash;
mod fixtures;
mod fuzz;
mod params;
mod rng;
mod takeover;

use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: cargo xtask <command>

commands:
  bench [--workload wN|takeover|win-KIND|e2e|e2e-eos|e2e-alos|budget] [--brokers HOST:PORT]
                                run the benchmark workloads w1..w6, takeover and the window
                                workloads win-tumbling, win-hopping, win-sliding,
                                win-session (N, K, C from the environment); w4/w5 use the
                                in-process mock cluster unless --brokers is given; takeover
                                always does; QUIX_PYTHON=<python with quixstreams 3.28.1>
                                runs quixstreams' window and e2e baselines in the same run;
                                e2e = e2e-eos + e2e-alos (with the bare pipeline)
                                budget (only when named): 64 partitions x 3 stores with and
                                without a 512 MiB memory budget, peak RSS of each
  crash [--kills N] [--seed S] [--guarantee exactly-once|at-least-once]
        [--chunk RECORDS] [--keys K] [--partitions P] [--backend rocksdb|fjall|memory]
        [--standbys] [--write-behind] [--pipelined] [--kill-in-restore]
        [--corrupt | --corrupt-only KIND] [--snapshots] [--snapshot-every RECORDS]
                                kill a stateful processor N times (default 50) at random
                                points, then compare state and output with a model;
                                --standbys runs a second member beside it, both keeping
                                standby replicas; --pipelined turns on pipelined
                                checkpoints; --corrupt damages one partition's files
                                before each restart (kinds: flip-table, flip-log,
                                delete-table, truncate-manifest, truncate-current,
                                offset-past-end, offset-garbled); --snapshots keeps
                                partition snapshots in a shared local store (taken every
                                RECORDS changelog records, default 6), kills half the runs
                                at snapshot crash points (upload, before the manifest,
                                download, tail replay) and damages the newest snapshot
                                before some restarts
  fuzz [--seconds S] [--seed N]  random and mutated inputs for every decoder of bytes
                                from disk or Kafka, S seconds per target (default 60)
  fixtures                      regenerate fixtures/format from the code"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        Some("crash") => crash::run(&args[1..]),
        Some("fixtures") => fixtures::run(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("-h" | "--help") | None => {
            eprintln!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
