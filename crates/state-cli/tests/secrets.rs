//! No statectl output shows a password: a recognisable one is given with
//! -X and in a --kafka-config file, then every error path that involves
//! settings is triggered with librdkafka's full debug log on
//! (`--log trace -X debug=all`). Neither stdout nor stderr may contain it.

use std::path::Path;
use std::process::{Command, Output};

const PASSWORD: &str = "Hunter2-Sekr3t-cli-4e7a";

fn statectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statectl"))
        .args(args)
        .output()
        .expect("statectl runs")
}

fn check(what: &str, out: &Output, expect_in_stderr: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: exit status 2 (error)\n{stderr}");
    assert!(
        !stdout.contains(PASSWORD),
        "{what}: stdout shows the password:\n{stdout}"
    );
    assert!(
        !stderr.contains(PASSWORD),
        "{what}: stderr shows the password:\n{stderr}"
    );
    assert!(
        stderr.contains(expect_in_stderr),
        "{what}: stderr says {expect_in_stderr:?}:\n{stderr}"
    );
    stderr.into_owned()
}

/// `statectl COMMAND DIR --topic T --partition 0 --timeout 2 ARGS...` with
/// trace logging and librdkafka's debug log.
fn run(command: &str, dir: &Path, args: &[&str]) -> Output {
    let dir = dir.display().to_string();
    let mut all = vec![
        command,
        dir.as_str(),
        "--topic",
        "changelog__app--clicks--counts",
        "--partition",
        "0",
        "--timeout",
        "2",
        "--committed",
        "clicks=1",
        "--log",
        "trace",
        "-X",
        "debug=all",
    ];
    all.extend_from_slice(args);
    statectl(&all)
}

#[test]
fn statectl_never_prints_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("0");
    let props = tmp.path().join("client.properties");
    std::fs::write(
        &props,
        format!(
            "# SASL over TLS\nsecurity.protocol=sasl_ssl\nsasl.mechanisms=SCRAM-SHA-256\n\
             sasl.username=state-app\nsasl.password={PASSWORD}\nssl.key.password={PASSWORD}\n"
        ),
    )
    .unwrap();
    let props = props.display().to_string();
    let x_password = format!("sasl.password={PASSWORD}");
    let secret = ["--kafka-config", props.as_str(), "-X", x_password.as_str()];

    // verify needs an existing partition (it reads it before Kafka).
    let existing = tmp.path().join("existing");
    drop(state_rocksdb::RocksDbPartition::open(&existing, &Default::default()).unwrap());
    for (command, dir) in [("restore", &dest), ("verify", &existing)] {
        // An unreachable broker: librdkafka connects, fails and logs.
        let mut args = vec!["--brokers", "127.0.0.1:1"];
        args.extend_from_slice(&secret);
        let out = run(command, dir, &args);
        let stderr = check(
            &format!("{command}: unreachable"),
            &out,
            "cannot reach the Kafka brokers at 127.0.0.1:1",
        );
        assert!(
            stderr.contains("librdkafka"),
            "librdkafka's log is on stderr:\n{stderr}"
        );
    }

    // Settings librdkafka refuses, one holding the password as its value.
    let bad_value = format!("socket.timeout.ms={PASSWORD}");
    for (what, x, expect) in [
        ("unknown property", "no.such.property=1", "no.such.property"),
        ("refused value", bad_value.as_str(), "socket.timeout.ms"),
        ("Java-only property", "sasl.jaas.config=x", "sasl.jaas.config"),
    ] {
        let mut args = vec!["--brokers", "127.0.0.1:1", "-X", x];
        args.extend_from_slice(&secret);
        check(what, &run("restore", &dest, &args), expect);
    }

    // A -X argument that is only the password.
    let mut args = vec!["--brokers", "127.0.0.1:1", "-X", PASSWORD];
    args.extend_from_slice(&secret);
    check("bad -X", &run("restore", &dest, &args), "-X argument number 2");

    // A properties line that is only the password; an unreadable file.
    let bad = tmp.path().join("bad.properties");
    std::fs::write(&bad, format!("sasl.username=a\n{PASSWORD}\n")).unwrap();
    let bad = bad.display().to_string();
    check(
        "bad line",
        &run("restore", &dest, &["--brokers", "127.0.0.1:1", "--kafka-config", &bad]),
        "line 2",
    );
    let missing = tmp.path().join("missing.properties").display().to_string();
    let mut args = vec!["--brokers", "127.0.0.1:1", "--kafka-config", missing.as_str()];
    args.extend_from_slice(&["-X", x_password.as_str()]);
    check("missing file", &run("verify", &existing, &args), "missing.properties");

    // No brokers anywhere.
    check("no brokers", &run("restore", &dest, &secret), "no Kafka brokers");
    assert!(!dest.exists(), "nothing was created");
}
