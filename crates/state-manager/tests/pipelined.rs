//! Pipelined checkpoints (`ManagerConfig::pipelined_checkpoints`) on the
//! mock cluster. At-least-once: a checkpoint's local state and offsets land
//! only once its records are delivered; a failed delivery leaves none of it
//! local and its records are processed again, counted once; the committed
//! offsets never pass what is delivered and written. Exactly-once: a
//! checkpoint's local write lands behind the poll loop, the records
//! processed meanwhile read through it, and a failover stays exact. (A
//! failed write behind the poll loop: tests/disk_full.rs.)

use std::sync::Arc;
use std::time::Duration;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use state_core::{
    Backend, BackendInfo, Direction, KvIter, ReadView, Result, StoreLocation, StorePartition, WriteBatch,
};
use state_manager::{ManagerConfig, ManagerError, ProcessingGuarantee, TopicPartition};
use test_support::counting::*;

const COOP: &str = "cooperative-sticky";
const ALOS: ProcessingGuarantee = ProcessingGuarantee::AtLeastOnce;
const EOS: ProcessingGuarantee = ProcessingGuarantee::ExactlyOnce;

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

/// A backend whose checkpoint writes take [`SLOW_WRITE`] each, so that the
/// records after a checkpoint are processed while its write is still
/// behind the poll loop.
#[derive(Debug)]
struct SlowWrites(Arc<dyn Backend>);

const SLOW_WRITE: Duration = Duration::from_millis(40);

impl Backend for SlowWrites {
    fn info(&self) -> BackendInfo {
        self.0.info()
    }

    fn open_partition(&self, store: &StoreLocation, partition: u32) -> Result<Arc<dyn StorePartition>> {
        Ok(Arc::new(SlowPartition(self.0.open_partition(store, partition)?)))
    }

    fn destroy_store(&self, store: &StoreLocation) -> Result<()> {
        self.0.destroy_store(store)
    }
}

struct SlowPartition(Arc<dyn StorePartition>);

impl StorePartition for SlowPartition {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(cf, key)
    }

    fn iter_range<'a>(&'a self, cf: &str, lower: &[u8], upper: Option<&[u8]>, d: Direction) -> Result<KvIter<'a>> {
        self.0.iter_range(cf, lower, upper, d)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        std::thread::sleep(SLOW_WRITE);
        self.0.write(batch)
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.0.write_bulk(batch)
    }

    fn persist(&self) -> Result<()> {
        self.0.persist()
    }

    fn column_families(&self) -> Result<Vec<String>> {
        self.0.column_families()
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        self.0.read_view()
    }
}

#[test]
fn exactly_once_the_records_after_a_checkpoint_read_its_write_behind_the_poll_loop() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let slow_writes = |c: &mut ManagerConfig| {
        pipelined(c);
        c.backend = Arc::new(SlowWrites(c.backend.clone()));
    };
    let mut m = member_with(
        &bootstrap,
        EOS,
        "eos",
        COOP,
        Fate::Survives,
        tempfile::tempdir().unwrap(),
        slow_writes,
    );
    own_all(&mut m);
    let truth = produce_input(&cluster);
    // Many short checkpoints: every one's records count on top of the
    // write of the one before, which may not have landed yet.
    let mut processed = 0;
    while processed < RECORDS {
        processed = (processed + 7).min(RECORDS);
        process_until(&mut m, processed);
        m.manager.lock().commit(&m.consumer).unwrap();
    }
    m.manager.lock().finish_checkpoint(&m.consumer).unwrap();
    assert_eq!(counts(&m), truth, "every record counted once, on top of the one before");
    finish(&mut m);
    assert_eq!(counts(&m), truth);
}

#[test]
fn exactly_once_pipelined_failover_with_cooperative_assignment_is_exact() {
    failover(EOS, COOP, &pipelined);
}

#[test]
fn exactly_once_close_lands_the_write_behind_the_poll_loop() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let mut m = member_with(&bootstrap, EOS, "closing", COOP, Fate::Survives, dir, pipelined);
    own_all(&mut m);
    let truth = produce_input(&cluster);
    process_until(&mut m, RECORDS);
    m.manager.lock().commit(&m.consumer).unwrap();
    let Member {
        dir, consumer, manager, ..
    } = m;
    state_manager::StateStoreManager::close(&manager, consumer).unwrap();
    drop(manager);
    // A new member on the same state finds all of it local.
    let mut m = member_with(&bootstrap, EOS, "closing", COOP, Fate::Survives, dir, pipelined);
    own_all(&mut m);
    assert!(m.caught_up().unwrap());
    assert_eq!(counts(&m), truth, "the write in flight landed before close returned");
    finish(&mut m);
}
