//! Broker faults injected with the mock cluster's error injection: each
//! either is retried to success or fails the checkpoint with a typed error,
//! and never leaves a partial checkpoint in local state. After a failure the
//! member is restarted (as an application would be) and must end exact
//! (exactly-once) or never below the input (at-least-once).

use std::time::Duration;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use state_manager::{ManagerError, ProcessingGuarantee, TopicPartition};
use test_support::counting::*;

const COOP: &str = "cooperative-sticky";

fn ready(bootstrap: &str, guarantee: ProcessingGuarantee, name: &str, timeout: Duration) -> Member {
    let mut m = member_with(
        bootstrap,
        guarantee,
        name,
        COOP,
        Fate::Dies,
        tempfile::tempdir().unwrap(),
        |c| c.kafka_timeout = timeout,
    );
    own_all(&mut m);
    m
}

/// Restarts `m` as a new process would: same state directory and instance,
/// new clients. Like a process exit, nothing more is committed and the
/// partitions' files are released; the group only notices when the old
/// member's session times out.
fn restart(m: Member, bootstrap: &str, guarantee: ProcessingGuarantee, name: &str) -> Member {
    let all: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(INPUT, p)).collect();
    {
        let mut mgr = m.manager.lock();
        // A transaction left in a failed state may refuse the abort.
        let _ = mgr.abort();
        mgr.on_revoke(&all).unwrap();
    }
    let Member { dir, consumer, .. } = m;
    std::mem::forget(consumer);
    member_with(bootstrap, guarantee, name, COOP, Fate::Survives, dir, |_| {})
}

fn assert_final(m: &Member, truth: &std::collections::BTreeMap<String, u64>, guarantee: ProcessingGuarantee) {
    let got = counts(m);
    for (k, want) in truth {
        match guarantee {
            ProcessingGuarantee::ExactlyOnce => assert_eq!(got[k], *want, "{k}"),
            ProcessingGuarantee::AtLeastOnce => assert!(got[k] >= *want, "{k}: {} < {want}", got[k]),
        }
    }
}

/// A checkpoint that fails on `api` returning `error`: typed error, nothing
/// of it local, and a restarted member ends correct.
fn failed_checkpoint(guarantee: ProcessingGuarantee, api: RDKafkaApiKey, error: RDKafkaRespErr) {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut m = ready(&bootstrap, guarantee, "faulty", Duration::from_secs(5));
    let truth = produce_input(&cluster);
    process_until(&mut m, 100);
    m.manager.lock().commit(&m.consumer).unwrap();
    let before = counts(&m);
    process_until(&mut m, 180);
    cluster.request_errors(api, &[error; 16]);
    let err = m.manager.lock().commit(&m.consumer).unwrap_err();
    assert!(
        matches!(err, ManagerError::CheckpointFailed { .. }),
        "{api:?}/{error:?}: {err}"
    );
    assert_eq!(counts(&m), before, "nothing of the failed checkpoint is local");
    cluster.clear_request_errors(api);
    let mut m = restart(m, &bootstrap, guarantee, "faulty");
    finish(&mut m);
    assert_final(&m, &truth, guarantee);
}

#[test]
fn a_produce_error_fails_the_at_least_once_checkpoint_cleanly() {
    failed_checkpoint(
        ProcessingGuarantee::AtLeastOnce,
        RDKafkaApiKey::Produce,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    );
}

#[test]
fn an_add_partitions_to_txn_error_fails_the_exactly_once_checkpoint_cleanly() {
    failed_checkpoint(
        ProcessingGuarantee::ExactlyOnce,
        RDKafkaApiKey::AddPartitionsToTxn,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    );
}

#[test]
fn an_end_txn_error_fails_the_exactly_once_checkpoint_cleanly() {
    failed_checkpoint(
        ProcessingGuarantee::ExactlyOnce,
        RDKafkaApiKey::EndTxn,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
    );
}

/// Retriable errors are retried by the client: the checkpoint succeeds.
#[test]
fn retriable_produce_and_end_txn_errors_are_retried() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut m = ready(
        &bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        "retry",
        Duration::from_secs(20),
    );
    let truth = produce_input(&cluster);
    process_until(&mut m, 120);
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 3],
    );
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 2],
    );
    m.manager.lock().commit(&m.consumer).unwrap();
    finish(&mut m);
    assert_eq!(counts(&m), truth);
}

#[test]
fn init_producer_id_errors_are_typed_or_retried() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let m = ready(
        &bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        "init",
        Duration::from_secs(5),
    );
    cluster.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED; 4],
    );
    let err = m.manager.lock().processed(INPUT, 0, 0).unwrap_err();
    assert!(
        matches!(
            err,
            ManagerError::Kafka {
                operation: "initialising transactions",
                ..
            }
        ),
        "{err}"
    );
    cluster.clear_request_errors(RDKafkaApiKey::InitProducerId);

    // Retriable: the next member initialises after the coordinator recovers.
    cluster.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 2],
    );
    let truth = produce_input(&cluster);
    let mut m = restart(m, &bootstrap, ProcessingGuarantee::ExactlyOnce, "init");
    finish(&mut m);
    assert_eq!(counts(&m), truth);
}

/// Fetch errors while a member recovers its partitions are retried; the
/// recovered counts are exact.
#[test]
fn fetch_errors_during_recovery_are_retried() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut a = ready(
        &bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        "a",
        Duration::from_secs(10),
    );
    let truth = produce_input(&cluster);
    process_until(&mut a, 150);
    a.manager.lock().commit(&a.consumer).unwrap();
    // Crash with the local state gone: B must recover everything.
    let dir = a.dir.path().to_owned();
    std::mem::forget(a);
    std::fs::remove_dir_all(&dir).unwrap();
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 6],
    );
    let mut b = member(&bootstrap, ProcessingGuarantee::ExactlyOnce, "b", COOP, Fate::Survives);
    finish(&mut b);
    assert_eq!(counts(&b), truth);
}

/// The only broker goes down mid-checkpoint: the checkpoint fails with a
/// typed error once the timeout passes, nothing of it is local, and after
/// the broker is back a restarted member finishes with nothing lost.
#[test]
fn a_broker_down_for_a_while_loses_nothing() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let guarantee = ProcessingGuarantee::AtLeastOnce;
    let mut m = ready(&bootstrap, guarantee, "down", Duration::from_secs(2));
    let truth = produce_input(&cluster);
    process_until(&mut m, 90);
    m.manager.lock().commit(&m.consumer).unwrap();
    let before = counts(&m);
    process_until(&mut m, 160);
    cluster.broker_down(1).unwrap();
    let err = m.manager.lock().commit(&m.consumer).unwrap_err();
    assert!(matches!(err, ManagerError::CheckpointFailed { .. }), "{err}");
    assert_eq!(counts(&m), before);
    cluster.broker_up(1).unwrap();
    let mut m = restart(m, &bootstrap, guarantee, "down");
    finish(&mut m);
    assert_final(&m, &truth, guarantee);
}
