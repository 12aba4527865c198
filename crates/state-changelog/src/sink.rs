//! [`ChangelogProducer::sink`]: a store partition's changelog sink, producing
//! through a topic handle it keeps.
//!
//! rust-rdkafka's `BaseProducer::send` names the topic by string: every
//! record copies the name into a new `CString`, and librdkafka looks the
//! topic up under its client-wide write lock (`rd_kafka_topic_new0`);
//! `OwnedHeaders` copies every header name into another `CString`. A
//! checkpoint of the pageviews demo produces ~27,000 changelog records, and
//! that per-record work was a large part of its `prepare` stage. A sink
//! instead keeps a librdkafka topic handle and hands each record with its
//! headers over in one `rd_kafka_produceva` call: the topic is never looked
//! up by name, and the header names are static C strings. Each record
//! carries its partition's delivered-offset cell as its opaque, so its
//! delivery report finds the partition without reading the topic name
//! (see `kafka::delivered`).

use std::sync::Arc;

use rdkafka::producer::Producer;
use state_core::{ChangelogRecord, ChangelogSink};

use crate::error::Result;
use crate::kafka::delivered::DeliveredCell;
use crate::producer::ChangelogProducer;
use crate::sent_bytes::SentBytes;
use crate::topic_handle::{Fields, TopicHandle};

impl ChangelogProducer {
    /// A sink writing to `topic[partition]`.
    pub fn sink(self: &Arc<Self>, topic: impl Into<String>, partition: i32) -> Arc<dyn ChangelogSink> {
        self.new_sink(topic.into(), partition, None)
    }

    /// A sink writing to `topic[partition]` that also adds the size of
    /// every record it hands over to `sent` (see [`SentBytes`]).
    pub fn sink_counting(
        self: &Arc<Self>,
        topic: impl Into<String>,
        partition: i32,
        sent: SentBytes,
    ) -> Arc<dyn ChangelogSink> {
        self.new_sink(topic.into(), partition, Some(sent))
    }

    fn new_sink(self: &Arc<Self>, topic: String, partition: i32, sent: Option<SentBytes>) -> Arc<dyn ChangelogSink> {
        Arc::new(PartitionSink::new(self.clone(), topic, partition, sent))
    }
}

/// Writes one store partition's changelog records to `topic[partition]`.
pub(crate) struct PartitionSink {
    /// Declared first, so it is destroyed before `producer` can go.
    handle: Option<TopicHandle>,
    /// Where the reports of records produced through `handle` note the
    /// last delivered offset.
    delivered: Arc<DeliveredCell>,
    producer: Arc<ChangelogProducer>,
    topic: String,
    partition: i32,
    // Looked up once per sink, so a record costs two atomic adds.
    records: metrics::Counter,
    bytes: metrics::Counter,
    sent: Option<SentBytes>,
}

impl PartitionSink {
    /// A sink for `topic[partition]` on `producer`, adding the size of
    /// every record it hands over to `sent` if given.
    pub(crate) fn new(
        producer: Arc<ChangelogProducer>,
        topic: String,
        partition: i32,
        sent: Option<SentBytes>,
    ) -> Self {
        let labels = [("topic", topic.clone()), ("partition", partition.to_string())];
        PartitionSink {
            handle: TopicHandle::new(&producer, &topic),
            delivered: producer.kafka().context().delivered_cell(&topic, partition),
            records: metrics::counter!(crate::metrics::CHANGELOG_RECORDS, &labels),
            bytes: metrics::counter!(crate::metrics::CHANGELOG_BYTES, &labels),
            producer,
            topic,
            partition,
            sent,
        }
    }

    /// Hands `record` over through the topic handle, waiting while the
    /// producer's queue is full; without a handle (librdkafka refused the
    /// name when the sink was made), by name, which reports why.
    fn produce(&self, record: ChangelogRecord<'_>) -> Result<()> {
        let Some(handle) = &self.handle else {
            return self.producer.produce(&self.topic, self.partition, record);
        };
        handle.produce_waiting(&self.producer, &self.topic, || Fields {
            partition: self.partition,
            opaque: self.delivered.as_opaque(),
            key: Some(record.key),
            value: record.value,
            timestamp: None,
            headers: record.c_headers(),
        })
    }
}

impl ChangelogSink for PartitionSink {
    fn send(&self, record: ChangelogRecord<'_>) -> state_core::Result<()> {
        let size = record.key.len() + record.value.map_or(0, <[u8]>::len);
        let sent_size = self.sent.as_ref().map(|_| SentBytes::size_of(&record));
        self.produce(record)
            .map_err(|e| state_core::Error::Changelog(Box::new(e)))?;
        self.records.increment(1);
        self.bytes.increment(size as u64);
        if let (Some(sent), Some(n)) = (&self.sent, sent_size) {
            sent.add(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::config::ClientConfig;

    use super::*;

    #[test]
    fn a_sinks_deliveries_are_noted_in_its_cell_not_by_topic_name() {
        let topic = "cl-sink-cells";
        let cluster = test_support::kafka::mock_cluster(&[(topic, 2)]).expect("mock cluster");
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", cluster.bootstrap_servers());
        let producer = Arc::new(ChangelogProducer::new(&config).expect("a producer"));
        let sink = producer.sink(topic, 1);
        for key in [&b"a"[..], b"b", b"c"] {
            sink.send(ChangelogRecord::new("default", key, Some(b"v"), None))
                .expect("handed over");
        }
        producer.flush(Duration::from_secs(10)).expect("delivered");
        let tracker = producer.kafka().context();
        assert_eq!(producer.last_offset(topic, 1), Some(2));
        assert!(
            !tracker.tracked_by_name(topic, 1),
            "the reports went through the cell, not the topic name"
        );
    }
}
