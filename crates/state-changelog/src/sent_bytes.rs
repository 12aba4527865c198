//! [`SentBytes`]: a running total of the changelog bytes a store
//! partition's sinks handed to the producer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use state_core::ChangelogRecord;

/// A running total of the bytes of the changelog records handed to the
/// producer through the sinks that share it
/// ([`ChangelogProducer::sink_counting`](crate::ChangelogProducer::sink_counting)):
/// each record's key, value and header keys and values, as given to
/// rdkafka (not the broker's framing or compression). Records of a Kafka
/// transaction later aborted stay counted. Clones share one total; a new
/// `SentBytes` starts at zero. Adding is one relaxed atomic add per record.
#[derive(Clone, Debug, Default)]
pub struct SentBytes(Arc<AtomicU64>);

impl SentBytes {
    /// A total at zero.
    pub fn new() -> Self {
        SentBytes::default()
    }

    /// The bytes counted so far (wraps only past `u64::MAX`).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts `bytes` more.
    pub fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The size [`SentBytes`] counts for `record`: key, value (none for a
    /// tombstone), and every header's key and value.
    pub fn size_of(record: &ChangelogRecord<'_>) -> u64 {
        let headers: usize = record.headers().map(|(k, v)| k.len() + v.len()).sum();
        (record.key.len() + record.value.map_or(0, <[u8]>::len) + headers) as u64
    }
}

#[cfg(test)]
mod tests {
    use state_core::{ChangelogRecord, ProcessedOffsets};

    use super::*;

    #[test]
    fn clones_share_one_total_of_keys_values_and_headers() {
        let offsets = ProcessedOffsets::new().with("input", 41).to_header();
        let record = ChangelogRecord::new("default", b"key", Some(b"value"), Some(&offsets));
        let headers: usize = record.headers().map(|(k, v)| k.len() + v.len()).sum();
        assert!(headers > "default".len(), "the headers count too");
        let size = SentBytes::size_of(&record);
        assert_eq!(size, (3 + 5 + headers) as u64);
        let tombstone = ChangelogRecord { value: None, ..record };
        assert_eq!(SentBytes::size_of(&tombstone), (3 + headers) as u64);

        let total = SentBytes::new();
        let shared = total.clone();
        shared.add(size);
        total.add(7);
        assert_eq!(total.get(), size + 7);
        assert_eq!(SentBytes::new().get(), 0, "a new total starts at zero");
    }
}
