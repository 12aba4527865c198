//! A consumer-group member counting records per key in a store with a
//! changelog, for the multi-process failover test
//! (`crates/devtools/tests/process_failover.rs`). Not a user tool.
//!
//! `count-member BOOTSTRAP STATE_DIR INSTANCE TOPIC PARTITIONS`
//! Prints `processed N` lines as it goes; once it owns every partition and
//! has committed up to each high watermark it prints `counts <json>` and exits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset};
use state_manager::{ManagerConfig, StateContext, StateStoreManager, StoreSpec};
use test_support::counting::count;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, state_dir, instance, topic, partitions] = args.as_slice() else {
        return Err("usage: count-member BOOTSTRAP STATE_DIR INSTANCE TOPIC PARTITIONS".into());
    };
    let partitions: usize = partitions.parse()?;
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", bootstrap);
    let mut config = ManagerConfig::new("count-group", state_dir);
    config.instance_id = Some(instance.clone());
    let mut manager = StateStoreManager::new(config, kafka.clone())?;
    let counts_store = manager.register_store(StoreSpec::key_value(topic, "counts"))?;
    let manager = Arc::new(Mutex::new(manager));
    let consumer: BaseConsumer<StateContext> = state_changelog::ConsumerSettings::new("count-group")
        .from_earliest()
        .apply_to(&mut kafka)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create_with_context(StateContext::new(manager.clone()))?;
    consumer.subscribe(&[topic.as_str()])?;
    let mut processed = 0usize;
    let mut since_commit = 0usize;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if Instant::now() > deadline {
            return Err("did not finish within 240 s".into());
        }
        let msg = consumer.poll(Duration::from_millis(100));
        let mut m = manager.lock();
        m.maintain(&consumer)?;
        match msg {
            Some(Ok(msg)) => {
                count(&mut m, &counts_store, topic, &msg)?;
                processed += 1;
                since_commit += 1;
                println!("processed {processed}");
                if since_commit >= 10 {
                    m.commit(&consumer)?;
                    since_commit = 0;
                }
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {
                m.commit(&consumer)?;
                since_commit = 0;
                let assignment = consumer.assignment()?;
                if assignment.count() != partitions {
                    continue;
                }
                let committed = consumer.committed_offsets(assignment, Duration::from_secs(10))?;
                let mut done = true;
                for e in committed.elements() {
                    let (_, high) = consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(10))?;
                    done &= matches!(e.offset(), Offset::Offset(o) if o >= high);
                }
                if done {
                    let mut counts = BTreeMap::new();
                    for p in 0..partitions as u32 {
                        let part = m.partition(&counts_store, p)?;
                        for item in part.iter_range("default", b"", None, state_core::Direction::Forward)? {
                            let (k, v) = item?;
                            let prefix = k.split(|b| *b == b'|').next().unwrap_or_default();
                            let n: u64 = state_core::Codec::MsgPack.decode(&v)?;
                            counts.insert(String::from_utf8_lossy(prefix).into_owned(), n);
                        }
                    }
                    println!("counts {}", serde_json::to_string(&counts)?);
                    return Ok(());
                }
            }
        }
    }
}
