//! A state directory written by one kind of store is refused, with a typed
//! error and its data untouched, when a store of another kind opens it.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use state_core::{Error, StoreKind};
use state_manager::{
    KeyValueStore, ManagerConfig, ManagerError, StateStoreManager, StoreHandle, StoreSpec, StoreType, TopicPartition,
};

fn manager<T: StoreType>(dir: &std::path::Path, spec: StoreSpec<T>) -> (StateStoreManager, StoreHandle<T>) {
    let mut m = StateStoreManager::new(ManagerConfig::new("g", dir), ClientConfig::new()).unwrap();
    let handle = m.register_store(spec.without_changelog()).unwrap();
    (m, handle)
}

/// A consumer that never connects: stores without a changelog need no
/// committed offsets and no pausing.
fn consumer() -> BaseConsumer {
    ClientConfig::new().set("group.id", "g").create().unwrap()
}

fn key_value() -> StoreSpec<KeyValueStore> {
    StoreSpec::key_value("clicks", "counts")
}

#[test]
fn a_key_value_partition_is_not_opened_as_windowed() {
    let dir = tempfile::tempdir().unwrap();
    let parts = vec![TopicPartition::new("clicks", 0)];
    let (mut kv, counts) = manager(dir.path(), key_value());
    kv.on_assign(&consumer(), &parts).unwrap();
    kv.partition(&counts, 0).unwrap().put("default", b"k", b"v").unwrap();
    kv.on_revoke(&parts).unwrap();
    drop(kv);

    let (mut windowed, _) = manager(dir.path(), StoreSpec::windowed("clicks", "counts"));
    let err = windowed.on_assign(&consumer(), &parts).unwrap_err();
    assert!(
        matches!(&err, ManagerError::State(Error::WrongStoreKind { found, wanted: StoreKind::Windowed, .. })
            if found == "key-value"),
        "{err}"
    );
    assert!(
        !windowed.is_assigned("clicks", 0),
        "the refused partition is closed again"
    );
    drop(windowed);

    let (mut kv, counts) = manager(dir.path(), key_value());
    kv.on_assign(&consumer(), &parts).unwrap();
    let p = kv.partition(&counts, 0).unwrap();
    assert_eq!(p.get("default", b"k").unwrap().as_deref(), Some(&b"v"[..]));
}
