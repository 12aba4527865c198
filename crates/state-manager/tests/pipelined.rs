//! Pipelined at-least-once checkpoints (`ManagerConfig::pipelined_checkpoints`)
//! on the mock cluster: a checkpoint's local state and offsets land only
//! once its records are delivered; a failed delivery leaves none of it
//! local and its records are processed again, counted once; the committed
//! offsets never pass what is delivered and written.

use std::time::Duration;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use state_manager::{ManagerConfig, ManagerError, ProcessingGuarantee, TopicPartition};
use test_support::counting::*;

const COOP: &str = "cooperative-sticky";
const ALOS: ProcessingGuarantee = ProcessingGuarantee::AtLeastOnce;

fn pipelined(c: &mut ManagerConfig) {
    c.pipelined_checkpoints = true;
    c.kafka_timeout = Duration::from_secs(5);
}

fn ready(bootstrap: &str, name: &str, dir: tempfile::TempDir, fate: Fate) -> Member {
    let mut m = member_with(bootstrap, ALOS, name, COOP, fate, dir, pipelined);
    own_all(&mut m);
    m
}

/// Restarts `m` as a new process would (see tests/faults.rs).
fn restart(m: Member, bootstrap: &str, name: &str) -> Member {
    let all: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(INPUT, p)).collect();
    {
        let mut mgr = m.manager.lock();
        let _ = mgr.abort();
        mgr.on_revoke(&all).unwrap();
    }
    let Member { dir, consumer, .. } = m;
    std::mem::forget(consumer);
    ready(bootstrap, name, dir, Fate::Survives)
}

#[test]
fn a_checkpoint_is_local_only_once_the_next_one_finishes_it() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut m = ready(&bootstrap, "p", tempfile::tempdir().unwrap(), Fate::Survives);
    let truth = produce_input(&cluster);
    process_until(&mut m, 100);
    let before = counts(&m);
    m.manager.lock().commit(&m.consumer).unwrap();
    assert_eq!(counts(&m), before, "in flight: set aside, not local yet");
    m.manager.lock().finish_checkpoint(&m.consumer).unwrap();
    let after: u64 = counts(&m).values().sum();
    assert_eq!(after, 100, "finished: all of it local");
    finish(&mut m);
    assert_eq!(counts(&m), truth);
}

#[test]
fn a_failed_delivery_of_the_checkpoint_in_flight_keeps_it_out_of_local_state_and_it_is_counted_once() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut m = ready(&bootstrap, "faulty", tempfile::tempdir().unwrap(), Fate::Dies);
    let truth = produce_input(&cluster);
    process_until(&mut m, 100);
    m.manager.lock().commit(&m.consumer).unwrap();
    m.manager.lock().finish_checkpoint(&m.consumer).unwrap();
    process_until(&mut m, 180);
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 16],
    );
    // Set aside and in flight; its changelog records are refused.
    m.manager.lock().commit(&m.consumer).unwrap();
    let err = m.manager.lock().finish_checkpoint(&m.consumer).unwrap_err();
    assert!(matches!(err, ManagerError::CheckpointFailed { .. }), "{err}");
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    let mut m = restart(m, &bootstrap, "faulty");
    finish(&mut m);
    // Had any of it reached local state, processing it again would count
    // it twice.
    assert_eq!(counts(&m), truth, "its records processed again, once");
}

#[test]
fn close_finishes_the_checkpoint_in_flight() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let mut m = ready(&bootstrap, "closing", dir, Fate::Survives);
    let truth = produce_input(&cluster);
    process_until(&mut m, RECORDS);
    m.manager.lock().commit(&m.consumer).unwrap();
    let Member {
        dir, consumer, manager, ..
    } = m;
    state_manager::StateStoreManager::close(&manager, consumer).unwrap();
    drop(manager);
    // A new member on the same state finds everything committed and local.
    let mut m = ready(&bootstrap, "closing", dir, Fate::Survives);
    assert!(
        m.caught_up().unwrap(),
        "the checkpoint in flight was committed by close"
    );
    assert_eq!(counts(&m), truth);
    finish(&mut m);
}
