//! Consumer construction and diagnosis.

use std::time::Duration;

use rdkafka::consumer::BaseConsumer;

use crate::kafka::client::KafkaClientContext;

/// Serves a consumer's pending events (log lines, errors) for a moment so
/// its context sees the broker failures librdkafka reported. Only called
/// on the way to an error: messages polled here are dropped.
pub(crate) fn serve_events(consumer: &BaseConsumer<KafkaClientContext>) {
    // rdkafka's `poll` serves log events internally and returns `None` for
    // them as for an empty queue, so poll for a fixed time.
    let until = std::time::Instant::now() + Duration::from_millis(50);
    while std::time::Instant::now() < until {
        let _ = consumer.poll(Duration::from_millis(10));
    }
}
