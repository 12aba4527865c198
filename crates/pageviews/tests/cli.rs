//! The pageviews binary as an operator, or a hostile user, runs it:
//! arguments beyond their bounds, no broker, log filters and colour.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn pageviews(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pageviews"));
    command.args(args).env_remove("RUST_LOG").env_remove("NO_COLOR");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("pageviews runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 25: `--window-secs 2305843009213693952` divided by zero (exit
/// 101), `--partitions 3000000000` tripped a librdkafka assertion (134).
#[test]
fn extreme_arguments_are_refused_with_their_bounds() {
    for (args, says) in [
        (&["--window-secs", "2305843009213693952"][..], "not in 1..=31536000"),
        (&["--window-secs", "0"], "not in 1..=31536000"),
        (&["--partitions", "3000000000"], "not in 1..=256"),
        (&["--partitions", "0"], "not in 1..=256"),
        (&["--events", "0"], "--events"),
        (&["--users", "0"], "--users"),
        (&["--pages", "0"], "--pages"),
        (&["--commit-every", "0"], "--commit-every"),
        (&["--commit-every", "18446744073709551615"], "--commit-every"),
        (&["--crash-at", "NaN"], "not a fraction in [0, 1)"),
        (&["--crash-at", "1"], "not a fraction in [0, 1)"),
        (
            &["--linger-secs", "18446744073709551615", "--http", "0"],
            "--linger-secs",
        ),
    ] {
        // Small, in case an argument gets through and the demo runs.
        let mut all = args.to_vec();
        if args[0] != "--events" {
            all.extend(["--events", "1000"]);
        }
        let out = pageviews(&all, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
    }
}

/// Issue 25: against an address where nothing listens, pageviews waited
/// 60 s and said "creating a topic failed: OperationTimedOut".
#[test]
fn no_broker_is_reported_at_once_with_the_broker_and_the_cause() {
    let started = Instant::now();
    let out = pageviews(&["--brokers", "127.0.0.1:1", "--events", "1000"], &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let all = stderr(&out);
    // The error itself, not only librdkafka's log lines before it.
    let e = all
        .lines()
        .find(|l| l.starts_with("pageviews: error:"))
        .unwrap_or_else(|| panic!("no error line: {all}"));
    assert!(e.contains("127.0.0.1:1/bootstrap"), "names the broker: {e}");
    assert!(e.contains("Connection refused"), "names the cause: {e}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// Issue 25: colour codes reached stderr when it was not a terminal; a bad
/// filter fell back silently.
#[test]
fn logs_are_plain_when_not_on_a_terminal_and_bad_filters_are_refused() {
    // A small run logs its assignments at info.
    let out = pageviews(
        &[
            "--events",
            "1000",
            "--partitions",
            "1",
            "--commit-every",
            "100",
            "--crash-at",
            "0",
        ],
        &[("RUST_LOG", "info")],
    );
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("INFO"), "something was logged: {e}");
    assert!(!e.contains('\u{1b}'), "no escape codes on a pipe: {e:?}");

    for bad in ["nonsense[", "info,x=notalevel"] {
        let out = pageviews(&["--events", "1000", "--log", bad], &[]);
        assert_eq!(out.status.code(), Some(2), "--log {bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--log"), "{}", stderr(&out));
        let out = pageviews(&["--events", "1000"], &[("RUST_LOG", bad)]);
        assert_eq!(out.status.code(), Some(2), "RUST_LOG={bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("RUST_LOG"), "{}", stderr(&out));
    }
}
