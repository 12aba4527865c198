//! The same scenarios on a real Kafka-protocol broker (tansu in CI; any Kafka
//! works). Set `KAFKA_BOOTSTRAP_SERVERS=host:port`; without it every test
//! here prints that it was skipped and returns. `.ci/run` starts tansu and
//! sets the variable, so CI always runs them.

mod common;

use std::time::Duration;

use common::*;
use state_changelog::{
    changelog_topic_name, describe_topic_config, ensure_changelog_topic, ChangelogError, ChangelogTopicConfig,
};
use test_support::kafka::unique_name;

fn broker() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            eprintln!("SKIPPED: KAFKA_BOOTSTRAP_SERVERS is not set; no real broker to test against");
            None
        }
    }
}

/// Creates a plain topic through the admin API and waits for its metadata.
fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    test_support::kafka::create_topic(&client(bootstrap), topic, partitions as usize);
}

fn wait_for_topic(bootstrap: &str, topic: &str, partitions: usize) {
    test_support::kafka::wait_for_topic(&client(bootstrap), topic, partitions);
}

#[test]
fn changelog_topics_are_created_compacted_and_validated() {
    let Some(b) = broker() else { return };
    let source = unique_name("source");
    create_topic(&b, &source, 3);
    let changelog = changelog_topic_name("group", &source, "counts");
    let cfg = ChangelogTopicConfig {
        replication_factor: 1,
        ..Default::default()
    };
    assert_eq!(
        ensure_changelog_topic(&client(&b), &source, &changelog, &cfg).unwrap(),
        3
    );
    wait_for_topic(&b, &changelog, 3);
    let configs = describe_topic_config(&client(&b), &changelog, Duration::from_secs(30)).unwrap();
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("compact"),
        "{configs:?}"
    );
    assert_eq!(
        ensure_changelog_topic(&client(&b), &source, &changelog, &cfg).unwrap(),
        3,
        "idempotent"
    );

    let other = unique_name("source-2");
    create_topic(&b, &other, 2);
    let err = ensure_changelog_topic(&client(&b), &other, &changelog, &cfg).unwrap_err();
    assert!(
        matches!(
            err,
            ChangelogError::PartitionCountMismatch {
                expected: 2,
                actual: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn round_trip_on_three_partitions() {
    let Some(b) = broker() else { return };
    let topic = unique_name("changelog__it--input--store");
    create_topic(&b, &topic, 3);
    round_trip(&b, &topic);
}

#[test]
fn uncommitted_checkpoints_are_skipped() {
    let Some(b) = broker() else { return };
    let topic = unique_name("cl-skip");
    create_topic(&b, &topic, 1);
    uncommitted_are_skipped(&b, &topic);
}

#[test]
fn a_stored_offset_beyond_the_high_watermark_is_refused() {
    let Some(b) = broker() else { return };
    let topic = unique_name("cl-invalid");
    create_topic(&b, &topic, 1);
    invalid_stored_offset(&b, &topic);
}
