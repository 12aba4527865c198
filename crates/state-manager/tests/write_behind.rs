//! Stores behind write-behind caches under the manager, on the mock
//! cluster: checkpoints commit their changelogs while the backend lags; a
//! crash replays exactly the changes the backend did not get; a revocation
//! writes the cache out; and a store without a changelog is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use state_core::{Backend, BackendInfo, MemoryPartition, Result, StoreLocation, StorePartition};
use state_manager::{
    ManagerConfig, ManagerError, ProcessingGuarantee, StateStoreManager, StoreSpec, TopicPartition, WriteBehindConfig,
};
use test_support::counting::*;

/// A disk model: partitions kept in memory by store name and number, so a
/// member started after another crashed finds what reached the backend
/// (and nothing of what stayed in the crashed member's caches).
#[derive(Debug, Default)]
struct Disk {
    partitions: Mutex<HashMap<(String, u32), Arc<MemoryPartition>>>,
}

impl Disk {
    fn offset(&self, partition: u32) -> Option<u64> {
        let parts = self.partitions.lock();
        parts
            .get(&("counts".to_owned(), partition))
            .and_then(|p| p.changelog_offset().unwrap())
    }
}

impl Backend for Disk {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "disk-model",
            durable: true,
        }
    }

    fn open_partition(&self, store: &StoreLocation, partition: u32) -> Result<Arc<dyn StorePartition>> {
        let p = self
            .partitions
            .lock()
            .entry((store.name().to_owned(), partition))
            .or_insert_with(|| Arc::new(MemoryPartition::new()))
            .clone();
        Ok(p)
    }

    fn destroy_store(&self, store: &StoreLocation) -> Result<()> {
        self.partitions.lock().retain(|(name, _), _| name != store.name());
        Ok(())
    }
}

/// Flushed only when asked or revoked: no byte or time bound is reached.
fn lazy() -> WriteBehindConfig {
    WriteBehindConfig {
        max_dirty_age: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// A member whose stores keep their local writes on `disk` behind caches
/// configured as `cache`.
fn member_on(disk: &Arc<Disk>, bootstrap: &str, name: &str, fate: Fate, cache: WriteBehindConfig) -> Member {
    let backend: Arc<dyn Backend> = disk.clone();
    member_with_spec(
        bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        name,
        "cooperative-sticky",
        fate,
        tempfile::tempdir().unwrap(),
        |c| c.backend = backend,
        |s| s.write_behind(cache),
    )
}

fn all_partitions() -> Vec<TopicPartition> {
    (0..PARTITIONS).map(|p| TopicPartition::new(INPUT, p)).collect()
}

#[test]
fn a_crash_behind_write_behind_replays_the_unflushed_checkpoints_exactly() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let disk = Arc::new(Disk::default());
    let mut a = member_on(&disk, &bootstrap, "a", Fate::Dies, lazy());
    own_all(&mut a);
    let truth = produce_input(&cluster);

    process_until(&mut a, 100);
    a.manager.lock().commit(&a.consumer).unwrap();
    let stats = a.manager.lock().write_behind_stats(&a.counts).unwrap();
    assert_eq!(stats.len(), PARTITIONS as usize);
    assert!(
        stats.values().any(|s| s.changelog_offset.is_some()),
        "committed checkpoints are in the cache"
    );
    for (p, s) in &stats {
        assert_eq!(s.flushed_offset, None, "{p}: nothing reached the backend");
        assert_eq!(disk.offset(*p), None, "{p}");
    }

    // A flush writes each partition as one batch with its offset.
    a.manager.lock().flush_caches().unwrap();
    let flushed: Vec<Option<u64>> = (0..PARTITIONS as u32).map(|p| disk.offset(p)).collect();
    for (p, s) in a.manager.lock().write_behind_stats(&a.counts).unwrap() {
        assert_eq!(s.flushed_offset, s.changelog_offset, "{p}");
        assert_eq!(disk.offset(p), s.changelog_offset, "{p}");
    }

    // Two more checkpoints stay in the cache; then the member crashes.
    process_until(&mut a, 160);
    a.manager.lock().commit(&a.consumer).unwrap();
    process_until(&mut a, 200);
    a.manager.lock().commit(&a.consumer).unwrap();
    let lagging = a
        .manager
        .lock()
        .write_behind_stats(&a.counts)
        .unwrap()
        .values()
        .filter(|s| s.flushed_offset != s.changelog_offset)
        .count();
    assert!(lagging > 0, "some partition's backend is behind its changelog");
    std::mem::forget(a);
    let after_crash: Vec<Option<u64>> = (0..PARTITIONS as u32).map(|p| disk.offset(p)).collect();
    assert_eq!(after_crash, flushed, "the backend holds the last flush, nothing newer");

    // B starts on the same disk, replays the changelog after the flushed
    // offsets and finishes the input: exact.
    let mut b = member_on(&disk, &bootstrap, "b", Fate::Survives, lazy());
    finish(&mut b);
    assert_eq!(counts(&b), truth, "exact after a crash behind write-behind");

    // A revocation writes the caches out before the partitions close.
    let before: Vec<_> = b
        .manager
        .lock()
        .write_behind_stats(&b.counts)
        .unwrap()
        .into_iter()
        .collect();
    b.manager.lock().on_revoke(&all_partitions()).unwrap();
    for (p, s) in before {
        assert_eq!(disk.offset(p), s.changelog_offset, "{p}: flushed on revoke");
    }
}

#[test]
fn maintain_flushes_a_cache_once_its_age_bound_passed() {
    let age = Duration::from_millis(300);
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let disk = Arc::new(Disk::default());
    let cache = WriteBehindConfig {
        max_dirty_age: age,
        ..Default::default()
    };
    let mut a = member_on(&disk, &bootstrap, "a", Fate::Survives, cache);
    own_all(&mut a);
    produce_input(&cluster);
    process_until(&mut a, 100);
    a.manager.lock().commit(&a.consumer).unwrap();
    // Looked at by maintain (at most every 10 ms) as it runs in the loop.
    a.manager.lock().maintain(&a.consumer).unwrap();

    std::thread::sleep(age + Duration::from_millis(50));
    // One call after the bound passed writes every cache out.
    a.manager.lock().maintain(&a.consumer).unwrap();
    for (p, s) in a.manager.lock().write_behind_stats(&a.counts).unwrap() {
        assert_eq!(s.flushed_offset, s.changelog_offset, "{p}: flushed by maintain");
        assert_eq!(disk.offset(p), s.changelog_offset, "{p}");
    }
}

#[test]
fn write_behind_without_a_changelog_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = StateStoreManager::new(ManagerConfig::new("g", dir.path()), ClientConfig::new()).unwrap();
    let err = m
        .register_store(
            StoreSpec::key_value("clicks", "counts")
                .without_changelog()
                .write_behind(lazy()),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ManagerError::InvalidConfig {
                field: "write_behind",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("without_changelog"), "{err}");
    // The refused store was not registered: the same name registers fine.
    m.register_store(StoreSpec::key_value("clicks", "counts").without_changelog())
        .unwrap();
}
