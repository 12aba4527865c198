//! Changelogs over TLS with certificate verification, on a real broker:
//! tansu behind stunnel4, with a throwaway CA made at test time (see
//! `test_support::tls`). Needs `TANSU_BIN`, `stunnel4` and `openssl`; without
//! them every test here prints SKIPPED and passes. `cargo xtask test`
//! provides all three.
//!
//! tansu has no transactions, so these are at-least-once flows.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use state_changelog::rdkafka::consumer::{BaseConsumer, Consumer};
use state_changelog::{ChangelogError, ChangelogProducer, FailureKind, KafkaSettings};
use state_core::{cf, Codec, ProcessedOffsets, StorePartition};
use state_txn::PartitionTransaction;
use test_support::kafka::{create_topic, unique_name};
use test_support::tls::TlsBroker;

/// Produce on three partitions, delete the local state, recover it from
/// the changelog, compare every column family — every Kafka connection
/// over TLS, the broker's certificate verified against the test CA.
#[test]
fn changelog_round_trip_over_tls_with_verification() {
    let Some(broker) = TlsBroker::start() else { return };
    // Through the settings type, as statectl and pageviews build it.
    let mut settings = KafkaSettings::new();
    for (k, v) in broker.properties(&broker.ca) {
        settings.set(k, v);
    }
    let client = settings.client_config().expect("valid TLS settings");
    let topic = unique_name("changelog__tls--input--store");
    create_topic(&client, &topic, 3);
    round_trip_with(&client, &topic);
}

/// The same flow with a client that trusts another CA fails with an error
/// naming TLS and the broker's address, and writes nothing: neither to the
/// changelog topic nor to local state.
#[test]
fn a_client_trusting_another_ca_fails_clearly_and_writes_nothing() {
    let Some(broker) = TlsBroker::start() else { return };
    let good = broker.client(&broker.ca);
    let bad = broker.client(&broker.other_ca);
    let topic = unique_name("changelog__tls--input--untrusted");
    create_topic(&good, &topic, 1);
    let tls_error = |e: &ChangelogError| {
        let msg = e.to_string();
        assert!(msg.contains("TLS"), "names TLS: {msg}");
        assert!(
            msg.contains(&broker.address),
            "names the broker {}: {msg}",
            broker.address
        );
        assert_eq!(e.broker_failure().map(|f| f.kind), Some(FailureKind::Tls), "{msg}");
        eprintln!("as expected: {msg}");
    };

    // Produce: the checkpoint's flush fails, so the transaction is never
    // flushed locally.
    let dir = tempfile::tempdir().unwrap();
    let p = open(&dir.path().join("0"));
    let producer = Arc::new(ChangelogProducer::new(&bad).expect("creating a client does not connect"));
    let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, Some(producer.sink(topic.as_str(), 0)));
    t.set("count", &1u64, b"user-1").unwrap();
    t.prepare(Some(&ProcessedOffsets::new().with("input", 0))).unwrap();
    let err = producer
        .flush(Duration::from_secs(10))
        .expect_err("nothing is delivered without a trusted certificate");
    tls_error(&err);
    drop(t);
    assert_eq!(p.changelog_offset().unwrap(), None, "nothing written locally");
    assert!(!snapshot(&*p).contains_key(cf::DEFAULT), "nothing written locally");

    // Recover: fails before applying anything.
    let fresh = open(&dir.path().join("restored"));
    let (res, _) = recover_with(&bad, vec![(fresh.clone(), topic.as_str(), 0, committed_all())]);
    let err = res.expect_err("recovery cannot read the changelog");
    tls_error(&err);
    assert_eq!(fresh.changelog_offset().unwrap(), None, "nothing recovered");
    assert!(!snapshot(&*fresh).contains_key(cf::DEFAULT));

    // Topic administration too.
    let err = state_changelog::topic_partitions(&bad, &topic, Duration::from_secs(5)).unwrap_err();
    tls_error(&err);

    // And the broker holds no record: the trusted client sees an empty topic.
    let consumer: BaseConsumer = good.create().unwrap();
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, Duration::from_secs(30))
        .expect("watermarks over TLS");
    assert_eq!((low, high), (0, 0), "nothing reached the changelog");
}

/// SASL SCRAM-SHA-512 over TLS (tansu with `--authentication` behind
/// stunnel), with the settings given as `-X` arguments: the round trip
/// works as `state-app`, and a wrong password fails naming authentication
/// and the broker, without showing either password.
#[test]
fn sasl_scram_over_tls() {
    const PASSWORD: &str = "Scram-Pa55-7d2e";
    let Some(broker) = TlsBroker::start_with_users(&[("state-app", PASSWORD)]) else {
        return;
    };
    let settings = KafkaSettings::from_cli(None, &broker.sasl_overrides(&broker.ca, "state-app", PASSWORD), &[])
        .expect("valid -X arguments");
    let client = settings.client_config().expect("valid SASL settings");
    let topic = unique_name("changelog__sasl--input--store");
    create_topic(&client, &topic, 3);
    round_trip_with(&client, &topic);

    let wrong = "Wrong-Pa55-0000";
    let settings = KafkaSettings::from_cli(None, &broker.sasl_overrides(&broker.ca, "state-app", wrong), &[]).unwrap();
    let err = state_changelog::topic_partitions(&settings.client_config().unwrap(), &topic, Duration::from_secs(5))
        .expect_err("a wrong password is refused");
    let msg = format!("{err} {err:?}");
    assert_eq!(
        err.broker_failure().map(|f| f.kind),
        Some(FailureKind::Authentication),
        "{msg}"
    );
    assert!(msg.contains("authentication") && msg.contains(&broker.address), "{msg}");
    assert!(!msg.contains(wrong) && !msg.contains(PASSWORD), "{msg}");
    eprintln!("as expected: {err}");
}
