//! A complete stateful processor with its own poll loop: page views counted
//! per page, exactly once, with state that follows the consumer group's
//! partitions. (`state_manager::App` writes this loop for you.)
//! Run against a broker: `KAFKA_BOOTSTRAP_SERVERS=host:port cargo run --example page_counts`;
//! press Enter to stop cleanly.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use state_manager::rdkafka::consumer::{BaseConsumer, Consumer};
use state_manager::rdkafka::{ClientConfig, Message};
use state_manager::{ManagerConfig, Mutex, ProcessingGuarantee, StateContext, StateStoreManager, StoreSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "localhost:9092".into());
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", &brokers);

    // 1. Where state lives, what a checkpoint promises, which stores exist.
    let mut config = ManagerConfig::new("page-counter", "./state");
    config.guarantee = ProcessingGuarantee::ExactlyOnce;
    // The group, no auto-commit, read_committed, earliest, cooperative-sticky.
    let consumer_config = config.consumer_config(&kafka);
    let mut manager = StateStoreManager::new(config, kafka)?;
    let counts = manager.register_store(StoreSpec::key_value("page-views", "counts"))?;
    manager.ensure_changelog_topics(&Default::default())?;
    let manager = Arc::new(Mutex::new(manager));

    // 2. A consumer whose rebalances open store partitions (restored on a
    //    thread beside this loop) and close them.
    let consumer: BaseConsumer<StateContext> =
        consumer_config.create_with_context(StateContext::new(manager.clone()))?;
    consumer.subscribe(&["page-views"])?;
    let stop = Arc::new(AtomicBool::new(false));
    let on_enter = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        on_enter.store(true, Ordering::Relaxed);
    });

    // 3. Read-modify-write per page; commit state, changelog and offsets together.
    while !stop.load(Ordering::Relaxed) {
        if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
            let msg = msg?;
            let (partition, page) = (msg.partition() as u32, msg.key().unwrap_or_default().to_vec());
            let mut m = manager.lock();
            let mut views = m.txn(&counts, partition)?.key(&page); // the page's state
            let n: u64 = views.get("views")?.unwrap_or(0);
            views.set("views", &(n + 1))?;
            m.processed("page-views", partition, msg.offset())?;
        }
        // Errors from rebalances and restores, resuming restored
        // partitions, standbys, and a checkpoint every commit_interval.
        manager.lock().maintain(&consumer)?;
    }
    // 4. A clean shutdown: commit, leave the group (the partitions move at
    //    once, nothing is processed twice), close every store.
    StateStoreManager::close(&manager, consumer)?;
    Ok(())
}
