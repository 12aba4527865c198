//! [`ChangelogProducer`]: one Kafka producer shared by every store partition
//! of an application, tracking delivery per changelog partition.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use state_core::ChangelogRecord;

use crate::error::BrokerFailure;
use crate::error::{ChangelogError, Result};
use crate::kafka::producer::{create_producer, KafkaProducer};

/// Produces changelog records for all store partitions of an application.
///
/// * Each store partition gets a [`state_core::ChangelogSink`] from [`ChangelogProducer::sink`]
///   that writes to its own changelog partition with both headers.
/// * [`ChangelogProducer::flush`] waits for every record and fails with
///   [`ChangelogError::Delivery`] if any was not delivered since the last
///   flush — the checkpoint must then fail.
/// * [`ChangelogProducer::last_offset`] is the offset of the last delivered
///   record of a changelog partition: what a checkpoint stores with the data.
///
/// The client configuration is the caller's (bootstrap servers, security);
/// idempotence and `acks=all` are set unless the caller set them. Set
/// `transactional.id` for exactly-once and drive the transaction through
/// [`ChangelogProducer::kafka`].
pub struct ChangelogProducer {
    producer: KafkaProducer,
    sends: AtomicU32,
}

impl std::fmt::Debug for ChangelogProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogProducer").finish_non_exhaustive()
    }
}

impl ChangelogProducer {
    /// Creates the producer from `config`.
    pub fn new(config: &ClientConfig) -> Result<Self> {
        Ok(ChangelogProducer {
            producer: create_producer(config)?,
            sends: AtomicU32::new(0),
        })
    }

    /// The rdkafka producer (for transactions and output records).
    pub fn kafka(&self) -> &KafkaProducer {
        &self.producer
    }

    /// The last broker connection failure librdkafka reported to this
    /// producer (a TLS handshake or authentication failure, say), after
    /// serving pending events. Callers wrapping a failed transactional
    /// call on [`ChangelogProducer::kafka`] add it to their error.
    pub fn last_broker_failure(&self) -> Option<BrokerFailure> {
        self.producer.poll(Duration::ZERO);
        self.producer.context().client_context().last_failure()
    }

    /// Hands one record to the producer, waiting while its queue is full.
    pub fn produce(&self, topic: &str, partition: i32, record: ChangelogRecord<'_>) -> Result<()> {
        // `__column_family__`, `__processed_tp_offsets__`, and, when set,
        // `__ttl_stamped__` and `__value_codec__`.
        let mut headers = OwnedHeaders::new_with_capacity(4);
        for (key, value) in record.headers() {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut rec = BaseRecord::<[u8], [u8], ()>::to(topic)
            .partition(partition)
            .key(record.key)
            .headers(headers);
        if let Some(v) = record.value {
            rec = rec.payload(v);
        }
        self.serve_reports_now_and_then();
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    self.wait_for_room();
                }
                Err((source, _)) => return Err(produce_failed(topic, partition, source)),
            }
        }
    }

    /// Serves delivery reports every 1024 records handed over, so they do
    /// not pile up between flushes.
    pub(crate) fn serve_reports_now_and_then(&self) {
        if self.sends.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            self.producer.poll(Duration::ZERO);
        }
    }

    /// The producer's queue is full: serves delivery reports for a moment
    /// so it drains.
    pub(crate) fn wait_for_room(&self) {
        self.producer.poll(Duration::from_millis(5));
    }

    /// Serves the delivery reports of every record handed over, waiting up
    /// to `timeout`, and forgets their failures: for a transaction about
    /// to be aborted, whose records are discarded anyway. librdkafka's
    /// `abort_transaction` waits for those reports, which only this
    /// producer's polls serve.
    pub fn settle_for_abort(&self, timeout: Duration) {
        let started = Instant::now();
        while self.producer.in_flight_count() > 0 && started.elapsed() < timeout {
            self.producer.poll(Duration::from_millis(1));
        }
        self.producer.context().take_failures();
    }

    /// Waits until every record handed over is delivered or failed. Fails
    /// if any record failed since the last flush (and resets that state).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        if self.producer.in_flight_count() == 0 {
            return self.after_flush(Instant::now());
        }
        std::thread::scope(|scope| {
            // librdkafka sends batches without waiting out `linger.ms` only
            // while a flush call runs; the zero-timeout calls below hold
            // it for an instant, so the checkpoint's last batches lingered
            // (e2e at-least-once: ~16 ms per checkpoint, see
            // docs/performance.md). One call held open on a helper thread
            // keeps that state for the whole flush: with delivery reports
            // as events (rust-rdkafka's mode) it only waits for the
            // message count to reach zero and never serves the queue,
            // which this thread does.
            let holder = FlushHolder(self.producer.client().native_ptr());
            let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            let held = scope.spawn(move || holder.hold(timeout_ms));
            let res = self.flush_polling(timeout);
            // The holder returns once the count is zero; keep serving
            // delivery reports until then (a failed flush left some).
            while !held.is_finished() {
                self.producer.poll(Duration::from_millis(1));
            }
            res
        })
    }

    fn flush_polling(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        // rdkafka's own flush polls in 100 ms steps; poll in 1 ms steps
        // instead so a checkpoint waits no longer than the broker does.
        // rust-rdkafka rounds the time left down to whole milliseconds, so
        // `poll(1 ms)` never blocks: this loop spins. Blocking on
        // librdkafka's queue wake-up instead made the wait longer: each
        // delivery report then pays a blocked thread's wake-up (measured on
        // a 2-core VM, docs/performance.md, "What did not help").
        loop {
            // A zero-timeout flush makes librdkafka send lingering batches now.
            match self.producer.flush(Duration::ZERO) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {}
                Err(e) => {
                    return Err(ChangelogError::from_kafka(
                        "flushing the changelog producer",
                        e,
                        None,
                        Some(self.producer.context().client_context()),
                    ))
                }
            }
            self.producer.poll(Duration::from_millis(1));
            if started.elapsed() > timeout {
                return Err(ChangelogError::FlushTimeout {
                    timeout_ms: timeout.as_millis(),
                    in_flight: self.producer.in_flight_count(),
                    last_broker_failure: self.producer.context().client_context().last_failure().map(Box::new),
                });
            }
        }
        self.after_flush(started)
    }

    /// Serves the last delivery reports and fails if any record failed
    /// since the last flush.
    fn after_flush(&self, started: Instant) -> Result<()> {
        // Serve the last delivery reports.
        self.producer.poll(Duration::ZERO);
        if let Some((failed, first_error)) = self.producer.context().take_failures() {
            let (mut first, source) = match first_error {
                Some((at, e)) => (format!("{at}: {e}"), Some(e)),
                None => (String::new(), None),
            };
            if let Some(f) = self.producer.context().client_context().last_failure() {
                first = format!("{first}; last broker error: {f}");
            }
            return Err(ChangelogError::Delivery { failed, first, source });
        }
        tracing::trace!(elapsed = ?started.elapsed(), "changelog producer flushed");
        Ok(())
    }

    /// Offset of the last record delivered to `topic[partition]`.
    pub fn last_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.producer.context().last_offset(topic, partition)
    }
}

/// A record `topic[partition]` could not be handed to the producer.
pub(crate) fn produce_failed(topic: &str, partition: i32, source: KafkaError) -> ChangelogError {
    ChangelogError::Produce {
        topic: topic.to_owned(),
        partition,
        source: Box::new(source),
    }
}

/// The producer's native handle, for one `rd_kafka_flush` held open on a
/// helper thread while the owner polls (see [`ChangelogProducer::flush`]).
struct FlushHolder(*mut rdkafka::bindings::rd_kafka_t);

// SAFETY: librdkafka's handle is thread-safe; `rd_kafka_flush` may be
// called from any thread. The handle outlives the scoped thread that uses
// it (the producer is borrowed for the scope).
unsafe impl Send for FlushHolder {}

impl FlushHolder {
    /// Waits (up to `timeout_ms`) until no message is in flight, with
    /// librdkafka's flushing state on. Its result is not needed: the
    /// polling flush decides success.
    fn hold(self, timeout_ms: i32) {
        // SAFETY: a live producer handle (see the `Send` impl); in
        // delivery-report event mode `rd_kafka_flush` does not serve the
        // event queue, so it does not race the owner's polls.
        unsafe {
            rdkafka::bindings::rd_kafka_flush(self.0, timeout_ms);
        }
    }
}
