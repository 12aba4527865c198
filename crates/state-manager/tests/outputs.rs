//! Output records through the manager's topic handles
//! (`StateStoreManager::output_topic`).

use std::sync::Arc;

use rdkafka::consumer::BaseConsumer;
use state_core::MemoryBackend;
use state_manager::{ManagerConfig, OutputRecord, ProcessingGuarantee, StateStoreManager};
use test_support::kafka::{client, mock_cluster, read_to_end};

#[test]
fn an_output_topic_is_kept_per_topic_and_its_records_commit_with_the_checkpoint() {
    let cluster = mock_cluster(&[("out-a", 1), ("out-b", 1)]).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ManagerConfig::with_backend("g", dir.path(), MemoryBackend::shared());
    config.guarantee = ProcessingGuarantee::ExactlyOnce;
    let mut m = StateStoreManager::new(config, client(&bootstrap)).unwrap();
    let consumer: BaseConsumer = client(&bootstrap).set("group.id", "g").create().unwrap();

    let a = m.output_topic("out-a").unwrap();
    assert!(
        Arc::ptr_eq(&a, &m.output_topic("out-a").unwrap()),
        "one handle per topic"
    );
    let b = m.output_topic("out-b").unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert!(
        Arc::ptr_eq(a.producer(), &m.output_producer().unwrap()),
        "the manager's producer"
    );

    a.send(OutputRecord::new().key(b"k").value(b"v").timestamp(42)).unwrap();
    b.send(OutputRecord::new().key(b"k2").value(b"w").partition(0)).unwrap();
    m.commit(&consumer).unwrap();
    assert_eq!(
        read_to_end(&bootstrap, "out-a", 0),
        vec![(b"k".to_vec(), b"v".to_vec(), Some(42))]
    );
    assert_eq!(read_to_end(&bootstrap, "out-b", 0)[0].1, b"w".to_vec());
    // The next checkpoint's transaction takes them as well.
    m.output_topic("out-a")
        .unwrap()
        .send(OutputRecord::new().key(b"k").value(b"v2"))
        .unwrap();
    m.commit(&consumer).unwrap();
    assert_eq!(read_to_end(&bootstrap, "out-a", 0).len(), 2);
}
