//! Producer construction: the producer context that tracks deliveries, and
//! the defaults every producer of this crate gets.

use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use rustc_hash::FxHashMap;

use crate::error::{ChangelogError, Result};
use crate::kafka::client::KafkaClientContext;
use crate::kafka::delivered::{DeliveredCell, DeliveredCells};

#[derive(Default)]
struct DeliveryState {
    /// Records without a cell (produced by name: output records, a sink
    /// without a topic handle), by topic, then partition: looked up by the
    /// borrowed topic name, so a delivery report allocates nothing.
    last_offsets: FxHashMap<String, FxHashMap<i32, i64>>,
    failed: u64,
    /// Where the first failed record went, and the client's error.
    first_error: Option<(String, KafkaError)>,
}

/// The producer context: records the offset of every delivered record and
/// the first failure; logs and broker failures go through a
/// [`KafkaClientContext`].
#[derive(Default)]
pub struct DeliveryTracker {
    state: Mutex<DeliveryState>,
    /// Sinks' records: raised through the record's opaque.
    cells: DeliveredCells,
    client: KafkaClientContext,
}

impl DeliveryTracker {
    /// A tracker for a producer created from `config`.
    pub fn new(config: &ClientConfig) -> Self {
        DeliveryTracker {
            state: Mutex::default(),
            cells: DeliveredCells::default(),
            client: KafkaClientContext::new(config),
        }
    }

    /// The cell whose pointer records produced for `topic[partition]`
    /// carry as their opaque (see [`crate::kafka::delivered`]).
    pub(crate) fn delivered_cell(&self, topic: &str, partition: i32) -> Arc<DeliveredCell> {
        self.cells.cell(topic, partition)
    }

    /// The context that logs and remembers broker failures.
    pub fn client_context(&self) -> &KafkaClientContext {
        &self.client
    }
}

impl ClientContext for DeliveryTracker {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.client.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            // SAFETY: a delivery report's message is valid while it is
            // served; its opaque is null (rust-rdkafka's `()`) or a cell a
            // sink of this producer set, which `self.cells` keeps.
            if unsafe { DeliveredCells::raise((*m.ptr())._private, m.offset()) } {
                return;
            }
        }
        let mut st = self.state.lock();
        match result {
            Ok(m) => {
                let offsets = match st.last_offsets.get_mut(m.topic()) {
                    Some(o) => o,
                    None => st.last_offsets.entry(m.topic().to_owned()).or_default(),
                };
                let e = offsets.entry(m.partition()).or_insert(m.offset());
                *e = (*e).max(m.offset());
            }
            Err((e, m)) => {
                st.failed += 1;
                if st.first_error.is_none() {
                    st.first_error = Some((format!("{}[{}]", m.topic(), m.partition()), e.clone()));
                }
                tracing::error!(topic = m.topic(), partition = m.partition(), error = %e, "changelog delivery failed");
            }
        }
    }
}

impl DeliveryTracker {
    /// Offset of the last record delivered to `topic[partition]`.
    pub(crate) fn last_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let by_name = self
            .state
            .lock()
            .last_offsets
            .get(topic)
            .and_then(|o| o.get(&partition))
            .copied();
        by_name.max(self.cells.get(topic, partition))
    }

    /// True if a report for `topic[partition]` came without a cell.
    #[cfg(test)]
    pub(crate) fn tracked_by_name(&self, topic: &str, partition: i32) -> bool {
        self.state
            .lock()
            .last_offsets
            .get(topic)
            .is_some_and(|o| o.contains_key(&partition))
    }

    /// The failed deliveries since the last call, with where the first one
    /// went and the client's error for it; resets both.
    pub(crate) fn take_failures(&self) -> Option<(u64, Option<(String, KafkaError)>)> {
        let mut st = self.state.lock();
        if st.failed == 0 {
            return None;
        }
        let failed = std::mem::take(&mut st.failed);
        Some((failed, st.first_error.take()))
    }
}

/// The underlying rdkafka producer type. It is polled by the
/// [`crate::ChangelogProducer`] itself (on produce and flush), not by a
/// background thread, so a flush returns as soon as the last delivery
/// report arrives.
pub type KafkaProducer = BaseProducer<DeliveryTracker>;

/// A producer from `config`, with idempotence, `acks=all` and
/// `linger.ms=5` unless `config` sets them.
pub(crate) fn create_producer(config: &ClientConfig) -> Result<KafkaProducer> {
    let mut config = config.clone();
    for (k, v) in [("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "5")] {
        if config.get(k).is_none() {
            config.set(k, v);
        }
    }
    config
        .create_with_context(DeliveryTracker::new(&config))
        .map_err(|source| ChangelogError::from_kafka("creating the changelog producer", source, Some(&config), None))
}
