//! The librdkafka settings the manager relies on, in one call each: the
//! processing consumer's ([`ManagerConfig::consumer_config`]) and those of
//! producers whose records a reader must find
//! ([`ManagerConfig::producer_config`]).

use rdkafka::config::ClientConfig;
use state_changelog::ConsumerSettings;

use crate::config::ManagerConfig;
use crate::error::{ManagerError, Result};
use crate::partitioner::PARTITIONER_SETTING;

/// librdkafka's consumer-group assignment strategy setting.
const ASSIGNMENT_STRATEGY: &str = "partition.assignment.strategy";

impl ManagerConfig {
    /// The processing consumer's settings as a [`ConsumerSettings`]: group
    /// [`group_id`](Self::group_id), no auto-commit, read-committed,
    /// [`auto_offset_reset`](Self::auto_offset_reset), and a short fetch
    /// backoff (docs/operations.md, "Tuning your processing consumer").
    pub fn consumer_settings(&self) -> ConsumerSettings {
        ConsumerSettings::new(self.group_id.as_str())
            .offset_reset(self.auto_offset_reset)
            .short_fetch_backoff()
    }

    /// `client` (bootstrap servers, security, timeouts: kept as they are)
    /// with every setting the manager relies on in the processing
    /// consumer:
    ///
    /// * `group.id` = [`group_id`](Self::group_id): the group whose
    ///   rebalances move the state;
    /// * `enable.auto.commit=false`: offsets are committed only with the
    ///   checkpoint that holds their state;
    /// * `isolation.level=read_committed`: records of aborted or open
    ///   transactions are never processed (exactly-once needs it; under
    ///   at-least-once it costs nothing);
    /// * `auto.offset.reset` from [`auto_offset_reset`](Self::auto_offset_reset)
    ///   (earliest by default);
    /// * `fetch.queue.backoff.ms=5` unless `client` sets it;
    /// * `partition.assignment.strategy=cooperative-sticky` unless `client`
    ///   sets it: in a rebalance, partitions that stay keep processing and
    ///   only moved partitions restore (eager assignment revokes all).
    ///
    /// ```
    /// use state_manager::rdkafka::ClientConfig;
    /// use state_manager::{ManagerConfig, MemoryBackend};
    ///
    /// let mut client = ClientConfig::new();
    /// client.set("bootstrap.servers", "localhost:9092");
    /// let config = ManagerConfig::with_backend("word-count", "./state", MemoryBackend::shared());
    /// let consumer = config.consumer_config(&client);
    /// assert_eq!(consumer.get("group.id"), Some("word-count"));
    /// assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
    /// assert_eq!(consumer.get("auto.offset.reset"), Some("earliest"));
    /// ```
    pub fn consumer_config(&self, client: &ClientConfig) -> ClientConfig {
        let mut config = self.consumer_settings().client_config(client);
        if config.get(ASSIGNMENT_STRATEGY).is_none() {
            config.set(ASSIGNMENT_STRATEGY, "cooperative-sticky");
        }
        config
    }

    /// `client` with `partitioner` set to [`partitioner`](Self::partitioner),
    /// for producers of the source topics (and any whose keys a reader
    /// looks up): their keys land where [`crate::StateReader::partition_of`]
    /// and the state look for them. The manager's own producer gets the
    /// same setting.
    ///
    /// Fails with [`ManagerError::PartitionerMismatch`] if `client` sets
    /// another partitioner: such a producer would put keys where no reader
    /// finds their state.
    pub fn producer_config(&self, client: &ClientConfig) -> Result<ClientConfig> {
        self.check_partitioner(client.get(PARTITIONER_SETTING), "the producer's client configuration")?;
        let mut config = client.clone();
        config.set(PARTITIONER_SETTING, self.partitioner.librdkafka_name());
        Ok(config)
    }

    /// Refuses a `partitioner` setting (found in `place`) other than
    /// [`partitioner`](Self::partitioner).
    pub(crate) fn check_partitioner(&self, setting: Option<&str>, place: &'static str) -> Result<()> {
        match setting {
            Some(found) if found != self.partitioner.librdkafka_name() => Err(ManagerError::PartitionerMismatch {
                expected: self.partitioner,
                found: found.to_owned(),
                place,
            }),
            _ => Ok(()),
        }
    }

    /// Checks the manager's client configuration `kafka` and
    /// [`producer_properties`](Self::producer_properties) against
    /// [`partitioner`](Self::partitioner).
    pub(crate) fn check_partitioners(&self, kafka: &ClientConfig) -> Result<()> {
        self.check_partitioner(kafka.get(PARTITIONER_SETTING), "the manager's client configuration")?;
        let from_properties = self
            .producer_properties
            .iter()
            .rev()
            .find(|(k, _)| k == PARTITIONER_SETTING)
            .map(|(_, v)| v.as_str());
        self.check_partitioner(from_properties, "ManagerConfig::producer_properties")
    }
}

#[cfg(test)]
mod tests {
    use state_changelog::OffsetReset;

    use super::*;
    use crate::partitioner::Partitioner;

    fn config() -> ManagerConfig {
        ManagerConfig::with_backend("g", "/tmp/x", state_core::MemoryBackend::shared())
    }

    #[test]
    fn the_consumer_gets_what_the_manager_relies_on_and_keeps_the_rest() {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", "b:9092")
            .set("enable.auto.commit", "true")
            .set("session.timeout.ms", "6000");
        let mut cfg = config();
        cfg.auto_offset_reset = OffsetReset::Latest;
        let c = cfg.consumer_config(&client);
        for (k, v) in [
            ("bootstrap.servers", "b:9092"),
            ("session.timeout.ms", "6000"),
            ("group.id", "g"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "latest"),
            ("fetch.queue.backoff.ms", "5"),
            ("partition.assignment.strategy", "cooperative-sticky"),
        ] {
            assert_eq!(c.get(k), Some(v), "{k}");
        }
        client.set("partition.assignment.strategy", "range");
        assert_eq!(
            cfg.consumer_config(&client).get("partition.assignment.strategy"),
            Some("range")
        );
    }

    #[test]
    fn producers_get_the_partitioner_and_another_one_is_refused() {
        let cfg = config();
        let p = cfg.producer_config(&ClientConfig::new()).unwrap();
        assert_eq!(p.get("partitioner"), Some("murmur2_random"));
        let mut client = ClientConfig::new();
        client.set("partitioner", "consistent_random");
        let err = cfg.producer_config(&client).unwrap_err();
        assert!(
            matches!(
                &err,
                ManagerError::PartitionerMismatch { expected: Partitioner::Murmur2Random, found, .. } if found == "consistent_random"
            ),
            "{err}"
        );
        let mut cfg = config();
        cfg.producer_properties.push(("partitioner".into(), "fnv1a".into()));
        assert!(cfg.check_partitioners(&ClientConfig::new()).is_err());
        cfg.partitioner = Partitioner::Fnv1a;
        assert!(cfg.check_partitioners(&ClientConfig::new()).is_ok());
    }
}
