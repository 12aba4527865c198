//! [`ConsumerSettings`]: the one place the consumer properties of restores,
//! standbys, recovery, verification readers and processing consumers are
//! written down; consumer construction and diagnosis.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;

use crate::error::{ChangelogError, Result};
use crate::kafka::client::KafkaClientContext;

/// The group [`crate::RecoveryManager`] reads with when its client
/// configuration names none (it only reads; it never commits).
pub(crate) const RECOVERY_GROUP: &str = "kafka-state-recovery";

/// What [`ConsumerSettings::short_fetch_backoff`] sets
/// `fetch.queue.backoff.ms` to.
pub(crate) const SHORT_FETCH_BACKOFF_MS: &str = "5";

/// Where a consumer starts reading a partition that has no committed
/// offset (or an out-of-range one): librdkafka's `auto.offset.reset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OffsetReset {
    /// From the partition's first record (Kafka Streams' default: a new
    /// application processes what its input already holds).
    #[default]
    Earliest,
    /// From the partition's end: only records produced from now on
    /// (librdkafka's and quixstreams' default).
    Latest,
}

impl OffsetReset {
    /// The value of `auto.offset.reset`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// What [`ConsumerSettings::short_fetch_wait`] sets `fetch.wait.max.ms`
/// to.
pub(crate) const SHORT_FETCH_WAIT_MS: &str = "100";

/// The librdkafka properties of a consumer that reads state or the records
/// state is built from: the restore consumer (active restores and
/// standbys), blocking recovery, verification readers, and the processing
/// consumers of applications built on the manager.
///
/// Every consumer configured with it:
///
/// * is in consumer group `group.id` (committed offsets are read from it,
///   and a processing consumer commits there);
/// * never commits on its own (`enable.auto.commit=false`): offsets are
///   committed with the checkpoint that holds their state, or not at all;
/// * reads committed records only (`isolation.level=read_committed`):
///   records of aborted or still open transactions are never delivered.
///
/// Options add what some consumers need:
/// [`from_earliest`](Self::from_earliest) (or
/// [`offset_reset`](Self::offset_reset)),
/// [`without_offset_store`](Self::without_offset_store),
/// [`short_fetch_backoff`](Self::short_fetch_backoff),
/// [`short_fetch_wait`](Self::short_fetch_wait);
/// [`restore`](Self::restore) is all four. The settings are applied on top
/// of the caller's client configuration (bootstrap servers, security),
/// whose other properties they leave alone.
///
/// ```
/// use state_changelog::rdkafka::ClientConfig;
/// use state_changelog::ConsumerSettings;
///
/// let mut client = ClientConfig::new();
/// client.set("bootstrap.servers", "localhost:9092");
/// let consumer = ConsumerSettings::new("page-counter").from_earliest().client_config(&client);
/// assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
/// assert_eq!(consumer.get("auto.offset.reset"), Some("earliest"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerSettings {
    group_id: String,
    offset_reset: Option<OffsetReset>,
    store_offsets: bool,
    short_fetch_backoff: bool,
    short_fetch_wait: bool,
}

impl ConsumerSettings {
    /// A consumer in group `group_id` that commits only when told to and
    /// reads committed records only.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerSettings {
            group_id: group_id.into(),
            offset_reset: None,
            store_offsets: true,
            short_fetch_backoff: false,
            short_fetch_wait: false,
        }
    }

    /// The restore consumer's settings (restores, standbys, recovery):
    /// [`new`](Self::new) plus [`from_earliest`](Self::from_earliest),
    /// [`without_offset_store`](Self::without_offset_store),
    /// [`short_fetch_backoff`](Self::short_fetch_backoff) and
    /// [`short_fetch_wait`](Self::short_fetch_wait). `group_id` is only
    /// read from (the application's group, for the committed offsets that
    /// decide which changelog records are committed).
    pub fn restore(group_id: impl Into<String>) -> Self {
        ConsumerSettings::new(group_id)
            .from_earliest()
            .without_offset_store()
            .short_fetch_backoff()
            .short_fetch_wait()
    }

    /// `auto.offset.reset=earliest`: a partition without a committed (or
    /// with an out-of-range) offset is read from its first record, not
    /// from its end (librdkafka's default).
    pub fn from_earliest(self) -> Self {
        self.offset_reset(OffsetReset::Earliest)
    }

    /// `auto.offset.reset` set to `reset`: where a partition without a
    /// committed (or with an out-of-range) offset is read from.
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.offset_reset = Some(reset);
        self
    }

    /// `enable.auto.offset.store=false`: a consumer that never commits does
    /// not track what it consumed either.
    pub fn without_offset_store(mut self) -> Self {
        self.store_offsets = false;
        self
    }

    /// `fetch.queue.backoff.ms=5` unless the client configuration sets it.
    /// librdkafka pauses fetching for that long (1 s by default) whenever
    /// its prefetch queue is over its threshold, which happens all the time
    /// when the reader does work between polls (writing RocksDB batches,
    /// processing): recovering 1M records from the mock cluster took 8.2 s
    /// with the default and 1.8 s with 5 ms (`cargo xtask bench --workload
    /// w4`).
    pub fn short_fetch_backoff(mut self) -> Self {
        self.short_fetch_backoff = true;
        self
    }

    /// `fetch.wait.max.ms=100` unless the client configuration sets it.
    /// Once every assigned partition's records are prefetched, a fetch
    /// waits that long (500 ms by default) for new ones, and a partition
    /// assigned meanwhile, or a request behind it on the same connection,
    /// waits with it: with 500 ms the demo's restores took 0.81 s instead
    /// of 0.52 s (see docs/performance.md, "Restore path"). The price: a
    /// consumer with nothing new to read (standbys of a quiet changelog)
    /// sends 10 fetches a second per broker instead of 2.
    pub fn short_fetch_wait(mut self) -> Self {
        self.short_fetch_wait = true;
        self
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Sets these properties on `config` (replacing the caller's values of
    /// the same properties, except `fetch.queue.backoff.ms` and
    /// `fetch.wait.max.ms`, which are only set if missing). Returns
    /// `config` for chaining further `set` calls.
    pub fn apply_to<'a>(&self, config: &'a mut ClientConfig) -> &'a mut ClientConfig {
        config
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        if let Some(reset) = self.offset_reset {
            config.set("auto.offset.reset", reset.as_str());
        }
        if !self.store_offsets {
            config.set("enable.auto.offset.store", "false");
        }
        if self.short_fetch_backoff && config.get("fetch.queue.backoff.ms").is_none() {
            config.set("fetch.queue.backoff.ms", SHORT_FETCH_BACKOFF_MS);
        }
        if self.short_fetch_wait && config.get("fetch.wait.max.ms").is_none() {
            config.set("fetch.wait.max.ms", SHORT_FETCH_WAIT_MS);
        }
        config
    }

    /// `client` (bootstrap servers, security, ...) with these properties.
    pub fn client_config(&self, client: &ClientConfig) -> ClientConfig {
        let mut config = client.clone();
        self.apply_to(&mut config);
        config
    }
}

/// A consumer of `client` configured with `settings`, whose context logs
/// and remembers broker failures. `what` names it in the error, e.g.
/// "creating the restore consumer".
pub(crate) fn create_consumer(
    client: &ClientConfig,
    settings: &ConsumerSettings,
    what: &'static str,
) -> Result<BaseConsumer<KafkaClientContext>> {
    let config = settings.client_config(client);
    config
        .create_with_context(KafkaClientContext::new(&config))
        .map_err(|source| ChangelogError::from_kafka(what, source, Some(&config), None))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_settings_are_those_recovery_always_used() {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", "b:9092")
            .set("enable.auto.commit", "true");
        let c = ConsumerSettings::restore("app").client_config(&client);
        for (k, v) in [
            ("bootstrap.servers", "b:9092"),
            ("group.id", "app"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.offset.store", "false"),
            ("fetch.queue.backoff.ms", "5"),
            ("fetch.wait.max.ms", "100"),
        ] {
            assert_eq!(c.get(k), Some(v), "{k}");
        }
    }

    #[test]
    fn options_are_off_unless_asked_for_and_a_set_fetch_backoff_wins() {
        let c = ConsumerSettings::new("g").client_config(&ClientConfig::new());
        assert_eq!(c.get("auto.offset.reset"), None);
        assert_eq!(c.get("enable.auto.offset.store"), None);
        assert_eq!(c.get("fetch.queue.backoff.ms"), None);
        assert_eq!(c.get("fetch.wait.max.ms"), None);
        let mut client = ClientConfig::new();
        client.set("fetch.queue.backoff.ms", "50").set("fetch.wait.max.ms", "7");
        let c = ConsumerSettings::new("g")
            .short_fetch_backoff()
            .short_fetch_wait()
            .client_config(&client);
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("50"));
        assert_eq!(c.get("fetch.wait.max.ms"), Some("7"));
    }
}
