//! An async stateful processor: rdkafka's `StreamConsumer` on tokio, keyed
//! counts, exactly once. Every blocking call of the manager (commits,
//! flushes, restores) runs on tokio's blocking pool (feature `tokio`).
//!
//! `cargo run -p state-manager --features tokio --example async_counts`
//! runs it on an in-process mock cluster: it produces its own input,
//! processes it, and checks every count (exit status 1 on a mismatch).
//! Set `KAFKA_BOOTSTRAP_SERVERS` to use a real broker (with the topics
//! `async-input` and `changelog__async-counts--async-input--counts` created,
//! 3 partitions each).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_manager::rdkafka::consumer::{Consumer, StreamConsumer};
use state_manager::rdkafka::mocking::MockCluster;
use state_manager::rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use state_manager::rdkafka::{ClientConfig, Message};
use state_manager::{
    AsyncStateManager, ConsumerSettings, ManagerConfig, Mutex, ProcessingGuarantee, StateContext, StateStoreManager,
    StoreSpec,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

const INPUT: &str = "async-input";
const GROUP: &str = "async-counts";
const PARTITIONS: i32 = 3;
const KEYS: usize = 30;

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    /// Records processed.
    pub processed: usize,
    /// key -> (count read back from the state, count in the input).
    pub counts: BTreeMap<String, (u64, u64)>,
}

impl Outcome {
    /// True if every key's state equals its input count.
    pub fn exact(&self) -> bool {
        self.counts.values().all(|(have, want)| have == want)
    }
}

/// Produces `records` keyed records (blocking: run it off the executor).
fn produce_input(bootstrap: &str, records: usize) -> Result<BTreeMap<String, u64>, Error> {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let mut truth = BTreeMap::new();
    for i in 0..records {
        let k = i % KEYS;
        let key = format!("key-{k}");
        let record = BaseRecord::<str, str>::to(INPUT)
            .key(&key)
            .payload("click")
            .partition(k as i32 % PARTITIONS);
        producer.send(record).map_err(|(e, _)| e)?;
        *truth.entry(key).or_insert(0) += 1;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(truth)
}

/// Counts `records` records exactly once on `bootstrap` (or a mock cluster).
pub async fn run(bootstrap: Option<String>, records: usize) -> Result<Outcome, Error> {
    // The mock cluster lives as long as this function.
    let (bootstrap, _mock): (String, Option<MockCluster<'static, DefaultProducerContext>>) = match bootstrap {
        Some(b) => (b, None),
        None => {
            let mock = MockCluster::new(1)?;
            mock.create_topic(INPUT, PARTITIONS, 1)?;
            mock.create_topic(&format!("changelog__{GROUP}--{INPUT}--counts"), PARTITIONS, 1)?;
            (mock.bootstrap_servers(), Some(mock))
        }
    };
    let b = bootstrap.clone();
    let truth = tokio::task::spawn_blocking(move || produce_input(&b, records)).await??;

    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", &bootstrap);
    let dir = tempfile::tempdir()?;
    let mut config = ManagerConfig::new(GROUP, dir.path());
    config.guarantee = ProcessingGuarantee::ExactlyOnce;
    config.commit_interval = Duration::from_millis(300);
    // librdkafka's mock cluster does not store offsets sent in a transaction.
    config.mirror_transactional_offsets = _mock.is_some();
    let mut manager = StateStoreManager::new(config, kafka.clone())?;
    let counts = manager.register_store(StoreSpec::key_value(INPUT, "counts"))?;
    let shared = Arc::new(Mutex::new(manager));
    let manager = AsyncStateManager::new(shared.clone());

    let consumer: Arc<StreamConsumer<StateContext>> = Arc::new(
        ConsumerSettings::new(GROUP)
            .from_earliest()
            .apply_to(&mut kafka)
            .create_with_context(StateContext::new(shared))?,
    );
    consumer.subscribe(&[INPUT])?;

    let mut processed = 0usize;
    let mut last_maintain = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while processed < records {
        if Instant::now() > deadline {
            return Err(format!("processed {processed} of {records} records in 120 s").into());
        }
        match tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await {
            Ok(Ok(msg)) => {
                let partition = msg.partition() as u32;
                let key = msg.key().unwrap_or_default().to_vec();
                // Per-record work touches the checkpoint's transaction only.
                manager.with(|m| -> state_manager::Result<()> {
                    let mut state = m.txn(&counts, partition)?.key(&key);
                    let n: u64 = state.get("count")?.unwrap_or(0);
                    state.set("count", &(n + 1))?;
                    m.processed(INPUT, partition, msg.offset())
                })?;
                processed += 1;
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {} // nothing within 100 ms
        }
        if last_maintain.elapsed() >= Duration::from_millis(100) {
            // Restores, resumes, the periodic checkpoint: on the blocking pool.
            manager.maintain(consumer.clone()).await?;
            last_maintain = Instant::now();
        }
    }
    manager.commit(consumer.clone()).await?;

    let reader = manager.with(|m| m.reader());
    let mut outcome = Outcome {
        processed,
        counts: BTreeMap::new(),
    };
    for (key, want) in truth {
        let k: usize = key.trim_start_matches("key-").parse()?;
        let partition = (k as i32 % PARTITIONS) as u32;
        let have: u64 = reader
            .with_key_value(&counts, partition, |t| t.key_ref(key.as_bytes()).get("count"))?
            .unwrap_or(0);
        outcome.counts.insert(key, (have, want));
    }
    // A clean shutdown: nothing left uncommitted, partitions handed over at
    // once (the consumer leaves the group), restorer stopped.
    manager.close(consumer).await?;
    Ok(outcome)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok();
    let outcome = run(bootstrap, 3_000).await?;
    println!("processed {} records", outcome.processed);
    if outcome.exact() {
        println!("verified: exact");
        Ok(())
    } else {
        for (key, (have, want)) in &outcome.counts {
            if have != want {
                eprintln!("{key}: {have}, expected {want}");
            }
        }
        std::process::exit(1);
    }
}

/// `cargo test` runs this (the example is declared with `test = true`): on
/// the mock cluster, every count is exact.
#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_counts_is_exact_on_the_mock_cluster() {
        let outcome = super::run(None, 3_000).await.expect("the example runs");
        assert_eq!(outcome.processed, 3_000);
        for (key, (have, want)) in &outcome.counts {
            assert_eq!(have, want, "{key}");
        }
        assert!(outcome.exact());
    }
}
