//! Consumer-group members with keyed counts in a store with a changelog, on
//! the in-process mock cluster: a member dies without a clean shutdown (its
//! local state deleted), the other takes over, recovers from the changelog
//! and finishes. Counts must equal the input under exactly-once and never be
//! lower under at-least-once.

use state_manager::{ProcessingGuarantee, TopicPartition};
use test_support::counting::*;

#[test]
fn at_least_once_failover_never_loses_counts() {
    failover(ProcessingGuarantee::AtLeastOnce, "range", &|_| {});
}

#[test]
fn at_least_once_failover_with_cooperative_assignment_never_loses_counts() {
    failover(ProcessingGuarantee::AtLeastOnce, "cooperative-sticky", &|_| {});
}

// Exactly-once with *eager* assignment is not run on the mock cluster: the
// survivor's own partitions are revoked on failover, and the mock broker
// neither stores offsets sent in a transaction nor accepts the mirrored
// consumer commit during a rebalance, so it would restart them from stale
// offsets. On a real broker the offsets commit inside the transaction.

#[test]
fn exactly_once_failover_with_cooperative_assignment_is_exact() {
    failover(ProcessingGuarantee::ExactlyOnce, "cooperative-sticky", &|_| {});
}

/// A failure between producing the changelog and committing the Kafka
/// transaction leaves nothing visible locally; after a restart with the
/// local state deleted, recovery skips the aborted checkpoint's changelog
/// records and the counts come out exact.
#[test]
fn exactly_once_failed_commit_leaves_no_partial_state() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut m = member(
        &bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        "solo",
        "cooperative-sticky",
        Fate::Dies,
    );
    own_all(&mut m);
    let truth = produce_input(&cluster);
    process_until(&mut m, 120);
    m.manager.lock().commit(&m.consumer).unwrap();
    let before = counts(&m);

    process_until(&mut m, 200);
    cluster.request_errors(
        RDKafkaApiKey::AddOffsetsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
    );
    let err = m.manager.lock().commit(&m.consumer).unwrap_err();
    assert!(err.to_string().contains("checkpoint failed"), "{err}");
    assert_eq!(
        counts(&m),
        before,
        "nothing of the failed checkpoint is visible locally"
    );

    // Restart without the local state.
    let dir = m.dir.path().to_owned();
    std::mem::forget(m);
    std::fs::remove_dir_all(&dir).unwrap();
    cluster.clear_request_errors(RDKafkaApiKey::AddOffsetsToTxn);
    let mut m2 = member(
        &bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        "solo-2",
        "cooperative-sticky",
        Fate::Survives,
    );
    finish(&mut m2);
    assert_eq!(counts(&m2), truth, "exact after restart and recovery");
}

/// Revoking and reassigning a partition in one process keeps committed
/// work and never applies anything twice under exactly-once.
#[test]
fn revoke_and_reassign_in_one_process_is_exact() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut m = member(
        &bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        "one",
        "cooperative-sticky",
        Fate::Survives,
    );
    own_all(&mut m);
    let truth = produce_input(&cluster);
    process_until(&mut m, 100);
    // Revoke everything (committing first, as the rebalance context does)
    // and assign again: partitions reopen and recover from local state and
    // the changelog.
    let parts: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(INPUT, p)).collect();
    {
        let mut mgr = m.manager.lock();
        mgr.commit(&m.consumer).unwrap();
        mgr.on_revoke(&parts).unwrap();
        assert!(!mgr.is_assigned(INPUT, 0));
        mgr.on_assign(&m.consumer, &parts).unwrap();
    }
    finish(&mut m);
    assert_eq!(counts(&m), truth);
}
