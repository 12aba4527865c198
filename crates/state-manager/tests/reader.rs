//! Interactive queries: readers on other threads, during checkpoints, see
//! whole checkpoints only; partitions not owned are a typed error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use state_core::{Backend, MemoryBackend};
use state_manager::{
    murmur2_partition, ManagerConfig, ManagerError, Partitioner, RocksDbBackend, StateStoreManager, StoreSpec,
    TopicPartition,
};

/// A consumer that never connects: a store without a changelog needs no
/// broker to be assigned and checkpointed.
fn consumer() -> BaseConsumer {
    ClientConfig::new().set("group.id", "g").create().unwrap()
}

/// Checkpoints write `a` and `b` to the same value; four readers check they
/// are equal in every read, across checkpoints; then the partition is
/// revoked and reads of it fail with `NotOwned`.
fn pairs_stay_equal(backend: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let config = ManagerConfig::with_backend("g", dir.path(), backend);
    let mut m = StateStoreManager::new(config, ClientConfig::new()).unwrap();
    let pairs = m
        .register_store(StoreSpec::key_value("clicks", "pairs").without_changelog())
        .unwrap();
    let c = consumer();
    let parts = [TopicPartition::new("clicks", 0)];
    m.on_assign(&c, &parts).unwrap();
    assert!(m.is_ready("clicks", 0));
    let reader = m.reader();
    let done = AtomicBool::new(false);
    let mut last = 0;
    let reads = AtomicU64::new(0);
    let seen_nonzero = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let reader = reader.clone();
            let pairs = pairs.clone();
            let (done, reads, seen_nonzero) = (&done, &reads, &seen_nonzero);
            s.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let (a, b): (Option<u64>, Option<u64>) = reader
                        .with_key_value(&pairs, 0, |t| Ok((t.get("a", b"")?, t.get("b", b"")?)))
                        .unwrap();
                    assert_eq!(a, b, "a reader saw half a checkpoint");
                    if a.is_some_and(|v| v > 0) {
                        seen_nonzero.fetch_add(1, Ordering::Relaxed);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // At least 300 checkpoints, and until the readers have read a lot
        // (however the scheduler interleaves the threads).
        let mut i = 0u64;
        while i < 300 || (reads.load(Ordering::Relaxed) < 200 && i < 100_000) {
            i += 1;
            let t = m.txn(&pairs, 0).unwrap();
            t.set("a", &i, b"").unwrap();
            // Filler keys make each checkpoint a bigger batch.
            for f in 0..20u64 {
                t.set(&format!("filler-{f}"), &i, b"").unwrap();
            }
            t.set("b", &i, b"").unwrap();
            m.commit(&c).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        last = i;
    });
    eprintln!(
        "{} reads across {last} checkpoints, {} of them after the first",
        reads.load(Ordering::Relaxed),
        seen_nonzero.load(Ordering::Relaxed)
    );
    assert!(reads.load(Ordering::Relaxed) >= 200, "the readers ran");
    assert_eq!(
        reader.get::<_, u64>(&pairs, 0, "a", b"").unwrap(),
        Some(last),
        "committed state"
    );
    let err = reader.get::<_, u64>(&pairs, 1, "a", b"").unwrap_err();
    assert!(matches!(err, ManagerError::NotOwned { partition: 1, .. }), "{err}");
    m.on_revoke(&parts).unwrap();
    let err = reader.get::<_, u64>(&pairs, 0, "a", b"").unwrap_err();
    assert!(
        matches!(err, ManagerError::NotOwned { partition: 0, .. }),
        "a revoked partition is a typed error, never stale data: {err}"
    );
}

#[test]
fn readers_never_see_half_a_checkpoint_on_rocksdb() {
    pairs_stay_equal(RocksDbBackend::shared(Default::default()));
}

#[test]
fn readers_never_see_half_a_checkpoint_in_memory() {
    pairs_stay_equal(MemoryBackend::shared());
}

#[test]
fn readers_never_see_half_a_checkpoint_on_fjall() {
    pairs_stay_equal(state_fjall::FjallBackend::shared(Default::default()));
}

#[test]
fn murmur2_partition_is_the_java_clients_partitioner() {
    // Kafka's DefaultPartitioner: toPositive(murmur2(key)) % partitions.
    assert_eq!(murmur2_partition(b"foobar", 1), 0);
    let counts: Vec<u32> = (0..1000)
        .map(|i| murmur2_partition(format!("user-{i}").as_bytes(), 4))
        .fold(vec![0; 4], |mut acc, p| {
            acc[p as usize] += 1;
            acc
        });
    assert!(
        counts.iter().all(|c| *c > 150),
        "keys spread over partitions: {counts:?}"
    );
}

/// Every partitioner puts each key where a librdkafka producer with the
/// same `partitioner` setting puts it, and the reader of a manager routes
/// keys with the manager's partitioner.
#[test]
fn partitioners_put_keys_where_librdkafka_does() {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::time::Duration;

    const PARTITIONS: u32 = 7;
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for partitioner in [
        Partitioner::Murmur2Random,
        Partitioner::Murmur2,
        Partitioner::ConsistentRandom,
        Partitioner::Consistent,
        Partitioner::Fnv1aRandom,
        Partitioner::Fnv1a,
    ] {
        let topic = format!("keys-{partitioner}");
        cluster.create_topic(&topic, PARTITIONS as i32, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("partitioner", partitioner.librdkafka_name())
            .create()
            .unwrap();
        for key in &keys {
            producer
                .send(BaseRecord::<str, str>::to(&topic).key(key).payload(key))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", format!("reader-{partitioner}"))
            .create()
            .unwrap();
        let mut all = rdkafka::TopicPartitionList::new();
        for p in 0..PARTITIONS as i32 {
            all.add_partition_offset(&topic, p, rdkafka::Offset::Beginning).unwrap();
        }
        consumer.assign(&all).unwrap();
        let mut seen = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while seen < keys.len() {
            assert!(
                std::time::Instant::now() < deadline,
                "{partitioner}: records did not arrive"
            );
            let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let msg = msg.unwrap();
            let key = msg.key().unwrap();
            assert_eq!(
                partitioner.partition(key, PARTITIONS),
                Some(msg.partition() as u32),
                "{partitioner}: {}",
                String::from_utf8_lossy(key)
            );
            seen += 1;
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let mut config = ManagerConfig::with_backend("g", dir.path(), MemoryBackend::shared());
    config.partitioner = Partitioner::ConsistentRandom;
    let m = StateStoreManager::new(config, ClientConfig::new()).unwrap();
    let reader = m.reader();
    assert_eq!(reader.partitioner(), Partitioner::ConsistentRandom);
    assert_eq!(
        reader.partition_of(b"key-1", PARTITIONS),
        Partitioner::ConsistentRandom.partition(b"key-1", PARTITIONS)
    );
}

#[test]
fn a_client_configuration_with_another_partitioner_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = ManagerConfig::with_backend("g", dir.path(), MemoryBackend::shared());
    let mut kafka = ClientConfig::new();
    kafka.set("partitioner", "consistent_random");
    let err = StateStoreManager::new(config, kafka).unwrap_err();
    assert!(matches!(err, ManagerError::PartitionerMismatch { .. }), "{err}");
    assert!(err.to_string().contains("ManagerConfig::partitioner"), "{err}");
}

#[test]
fn each_manager_has_its_own_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = ManagerConfig::with_backend("g", dir.path(), MemoryBackend::shared());
    let a = StateStoreManager::new(config.clone(), ClientConfig::new()).unwrap();
    let b = StateStoreManager::new(config.clone(), ClientConfig::new()).unwrap();
    assert_ne!(a.instance_id(), b.instance_id());
    assert_ne!(a.transactional_id(), b.transactional_id());
    assert!(a.transactional_id().starts_with("g-"), "{}", a.transactional_id());
    let mut named = config;
    named.instance_id = Some("pod-7".into());
    let c = StateStoreManager::new(named, ClientConfig::new()).unwrap();
    assert_eq!(c.transactional_id(), "g-pod-7");
}
