//! [`RecoveryConfig`]: the tuning shared by every mode of the restore
//! engine.

use std::time::Duration;

/// Tuning of restores, standbys and blocking recovery.
#[derive(Clone, Debug)]
pub struct RecoveryConfig {
    /// Records per write batch at most.
    pub batch_records: usize,
    /// How long one poll waits.
    pub poll_timeout: Duration,
    /// Timeout of metadata calls (watermarks, committed offsets, seeks).
    pub metadata_timeout: Duration,
    /// How long a watermark request that fails transiently (a timeout, a
    /// lost connection, a leader moving) is retried, with backoff, before
    /// the restore or standby that asked fails.
    pub retry_timeout: Duration,
    /// Give up if a restore makes no progress for this long.
    pub stall_timeout: Duration,
    /// Minimum time between two progress reports of a partition.
    pub progress_interval: Duration,
    /// Standby replicas: how often the owner's committed offsets (which
    /// decide what a standby may apply) and the standby's lag are refreshed.
    pub standby_refresh_interval: Duration,
    /// Standby replicas: the longest a staged batch waits before it is
    /// written, so a standby's stored offset follows its changelog.
    pub standby_flush_interval: Duration,
    /// librdkafka properties of the restore consumer only, over the client
    /// configuration (which the producers share): for example
    /// `fetch.wait.max.ms`, how long a fetch at a partition's end waits
    /// (500 ms by default; each finished restore costs up to that). Default
    /// empty.
    pub consumer_properties: Vec<(String, String)>,
}

impl RecoveryConfig {
    /// `client` with [`consumer_properties`](Self::consumer_properties) over it.
    pub(crate) fn consumer_client(&self, client: &rdkafka::config::ClientConfig) -> rdkafka::config::ClientConfig {
        let mut client = client.clone();
        for (key, value) in &self.consumer_properties {
            client.set(key, value);
        }
        client
    }
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            batch_records: 10_000,
            poll_timeout: Duration::from_millis(100),
            metadata_timeout: Duration::from_secs(10),
            retry_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_millis(500),
            standby_refresh_interval: Duration::from_secs(1),
            standby_flush_interval: Duration::from_secs(1),
            consumer_properties: Vec::new(),
        }
    }
}
