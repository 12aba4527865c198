//! `statectl verify` and `restore` over TLS, as docs/operations.md shows
//! them: tansu behind stunnel4 with a throwaway CA (`test_support::tls`,
//! as in the state-changelog suite). Needs `TANSU_BIN`, `stunnel4` and
//! `openssl`; otherwise prints SKIPPED and passes.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use state_changelog::ChangelogProducer;
use state_core::{Codec, ProcessedOffsets};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use state_txn::PartitionTransaction;
use test_support::tls::TlsBroker;

fn statectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statectl"))
        .args(args)
        .output()
        .expect("statectl runs")
}

#[test]
fn verify_and_restore_over_tls() {
    let Some(broker) = TlsBroker::start() else { return };
    let client = broker.client(&broker.ca);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    let topic = format!("changelog__app--clicks--counts{nanos}");
    state_changelog::create_topic(&client, &topic, 1, 1, &[], Duration::from_secs(30)).expect("create topic");

    // A partition written through its changelog over TLS.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("0");
    {
        let producer = Arc::new(ChangelogProducer::new(&client).unwrap());
        let p = Arc::new(RocksDbPartition::open(&dir, &RocksDbOptions::default()).unwrap());
        for (i, processed) in [10i64, 20].into_iter().enumerate() {
            let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, Some(producer.sink(topic.as_str(), 0)));
            t.set("count", &(i as u64 + 1), b"a").unwrap();
            t.prepare(Some(&ProcessedOffsets::new().with("clicks", processed)))
                .unwrap();
            producer.flush(Duration::from_secs(30)).unwrap();
            t.flush(producer.last_offset(&topic, 0).map(|o| o as u64)).unwrap();
        }
    }

    // The properties-file form, as in docs/operations.md.
    let props = tmp.path().join("client.properties");
    std::fs::write(
        &props,
        format!(
            "# kafka-state client settings\nbootstrap.servers={}\nsecurity.protocol=SSL\nssl.ca.location={}\n",
            broker.address,
            broker.ca.display()
        ),
    )
    .unwrap();
    let dir_s = dir.display().to_string();
    let props_s = props.display().to_string();
    let common = [
        "--topic",
        topic.as_str(),
        "--partition",
        "0",
        "--committed",
        "clicks=21",
    ];
    let mut args = vec!["verify", dir_s.as_str(), "--kafka-config", props_s.as_str()];
    args.extend_from_slice(&common);
    let out = statectl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "verify over TLS:\n{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("one JSON summary line");
    assert_eq!(summary["differences"], 0, "{summary}");
    assert_eq!(summary["replayed_records"], 2, "{summary}");

    // The -X form, restoring into a new directory.
    let restored = tmp.path().join("restored").display().to_string();
    let ca = format!("ssl.ca.location={}", broker.ca.display());
    let mut args = vec![
        "restore",
        restored.as_str(),
        "--brokers",
        broker.address.as_str(),
        "-X",
        "security.protocol=ssl",
        "-X",
        ca.as_str(),
    ];
    args.extend_from_slice(&common);
    let out = statectl(&args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Trusting another CA: a clear error naming TLS and the broker.
    let other = format!("ssl.ca.location={}", broker.other_ca.display());
    let mut args = vec![
        "verify",
        dir_s.as_str(),
        "--kafka-config",
        props_s.as_str(),
        "-X",
        other.as_str(),
        "--timeout",
        "5",
    ];
    args.extend_from_slice(&common);
    let out = statectl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("statectl: error:"), "{stderr}");
    assert!(
        last.contains("TLS connection to broker") && last.contains(&broker.address),
        "{last}"
    );
    assert!(out.stdout.is_empty(), "no report on stdout");
}
