//! `statectl restore` and `statectl verify`: a partition rebuilt from its
//! changelog through the library's own recovery.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use state_changelog::{
    topic_partitions, ApplyStats, ChangelogError, KafkaSettings, RecoveryConfig, RecoveryManager, RecoveryPartition,
    RecoveryProgress,
};
use state_core::{ReplayCheck, StorePartition};

use crate::corruption;
use crate::diff::{diff_partitions, Difference};
use crate::engine::Engine;
use crate::error::{CliError, Result};
use crate::partition_dir::{open_writable, PartitionDir};
use crate::store_format::RecordedStore;

/// Where the changelog is.
#[derive(Clone, Debug)]
pub struct ReplaySource {
    /// Kafka client settings: `bootstrap.servers` and any other librdkafka
    /// property (TLS, SASL), as `--brokers`, `-X` and `--kafka-config`
    /// give them. `Debug` redacts secrets.
    pub kafka: KafkaSettings,
    /// Changelog topic.
    pub topic: String,
    /// Changelog partition (= source partition).
    pub partition: i32,
    /// How long to wait for the brokers.
    pub timeout: Duration,
    /// Set from another thread or a signal handler to stop a restore or
    /// verify in progress: it ends with [`CliError::Interrupted`], a
    /// restored partition keeping what was applied so far (its data and
    /// changelog offset agree). `statectl` sets it on Ctrl-C and SIGTERM.
    pub stop: Arc<AtomicBool>,
}

/// Which checkpoints count as committed during a replay: changelog records
/// tagged with source offsets at or beyond these are skipped, as the
/// application's own recovery does.
#[derive(Clone, Debug)]
pub enum CommittedOffsets {
    /// Read from the consumer group named in the changelog topic
    /// (`changelog__<group>--<stream>--<store>`).
    FromGroup,
    /// Given explicitly: source topic → next offset to consume.
    Explicit(BTreeMap<String, i64>),
}

impl CommittedOffsets {
    /// Parses `TOPIC=OFFSET` arguments; none means [`CommittedOffsets::FromGroup`].
    pub fn parse(args: &[String]) -> Result<Self> {
        if args.is_empty() {
            return Ok(CommittedOffsets::FromGroup);
        }
        let mut map = BTreeMap::new();
        for a in args {
            let (topic, offset) = a.rsplit_once('=').ok_or_else(|| CliError::BadCommitted(a.clone()))?;
            let offset: i64 = offset.parse().map_err(|_| CliError::BadCommitted(a.clone()))?;
            if topic.is_empty() || offset < 0 {
                return Err(CliError::BadCommitted(a.clone()));
            }
            map.insert(topic.to_owned(), offset);
        }
        Ok(CommittedOffsets::Explicit(map))
    }
}

/// What `restore` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Partition directory.
    pub path: PathBuf,
    /// The engine it was written with.
    pub engine: Engine,
    /// The store kind and codec the partition records, whose rules the
    /// replay followed; `None`: none recorded, records applied as they are.
    pub store: Option<RecordedStore>,
    /// Applied / skipped records, batches.
    pub stats: ApplyStats,
    /// The stored changelog offset afterwards.
    pub changelog_offset: Option<u64>,
    /// Committed source offsets the replay used.
    pub committed: BTreeMap<String, i64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl RestoreSummary {
    /// The summary as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let (store_kind, codec) = RecordedStore::json_fields(self.store);
        json!({
            "path": self.path.display().to_string(),
            "backend": self.engine.name(),
            "store_kind": store_kind,
            "codec": codec,
            "applied": self.stats.applied,
            "skipped": self.stats.skipped,
            "batches": self.stats.batches,
            "changelog_offset": self.changelog_offset,
            "committed": self.committed,
            "elapsed_ms": self.elapsed.as_millis() as u64,
        })
    }
}

/// What `verify` found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The engine of the partition (and of the scratch replica).
    pub engine: Engine,
    /// The store kind and codec the partition records, whose rules the
    /// replay followed; `None`: none recorded, records applied as they are.
    pub store: Option<RecordedStore>,
    /// Every key that differs.
    pub differences: Vec<Difference>,
    /// Keys compared.
    pub compared: u64,
    /// The directory's stored changelog offset (the replay stops there).
    pub changelog_offset: Option<u64>,
    /// Changelog records applied to the scratch partition.
    pub replayed: u64,
}

impl VerifyReport {
    /// The summary (without the differences) as one JSON object.
    pub fn summary_json(&self) -> serde_json::Value {
        let (store_kind, codec) = RecordedStore::json_fields(self.store);
        json!({
            "backend": self.engine.name(),
            "store_kind": store_kind,
            "codec": codec,
            "differences": self.differences.len(),
            "compared_keys": self.compared,
            "changelog_offset": self.changelog_offset,
            "replayed_records": self.replayed,
        })
    }
}

impl ReplaySource {
    /// `bootstrap.servers`, for messages.
    fn brokers(&self) -> String {
        self.kafka.brokers().unwrap_or_default().to_owned()
    }
}

/// The validated client configuration; `socket.timeout.ms` follows
/// `--timeout` unless set explicitly.
fn client(source: &ReplaySource) -> Result<ClientConfig> {
    if source.kafka.brokers().is_none() {
        return Err(CliError::NoBrokers);
    }
    let mut c = source.kafka.client_config()?;
    if c.get("socket.timeout.ms").is_none() {
        c.set(
            "socket.timeout.ms",
            (source.timeout.as_millis().max(10) as u64).to_string(),
        );
    }
    Ok(c)
}

/// The brokers answer, the topic exists and has the partition.
fn check_source(source: &ReplaySource) -> Result<ClientConfig> {
    let kafka = client(source)?;
    let started = Instant::now();
    let partitions = topic_partitions(&kafka, &source.topic, source.timeout).map_err(|e| match e {
        // Not a connection problem: a refused setting, or a client librdkafka
        // would not create (e.g. ssl.ca.location names a missing file).
        e @ (ChangelogError::Settings(_)
        | ChangelogError::Kafka {
            source: KafkaError::ClientCreation(_),
            ..
        }) => CliError::Changelog(e),
        e => CliError::Unreachable {
            brokers: source.brokers(),
            timeout: started.elapsed(),
            reason: e.to_string(),
        },
    })?;
    match partitions {
        None => Err(CliError::UnknownTopic {
            topic: source.topic.clone(),
            brokers: source.brokers(),
        }),
        Some(n) if source.partition < 0 || source.partition as usize >= n => Err(CliError::NoSuchPartition {
            topic: source.topic.clone(),
            partitions: n,
            partition: source.partition,
        }),
        Some(_) => Ok(kafka),
    }
}

/// `changelog__<group>--<stream>--<store>` → (group, stream).
fn group_and_stream(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix("changelog__")?;
    let parts: Vec<&str> = rest.split("--").collect();
    match parts.as_slice() {
        [group, stream, _store] => Some((group, stream)),
        _ => None,
    }
}

fn committed_offsets(
    kafka: &ClientConfig,
    source: &ReplaySource,
    committed: &CommittedOffsets,
) -> Result<BTreeMap<String, i64>> {
    let CommittedOffsets::Explicit(map) = committed else {
        let (group, stream) = group_and_stream(&source.topic).ok_or_else(|| CliError::NoCommittedOffsets {
            reason: format!("{:?} is not named changelog__<group>--<stream>--<store>", source.topic),
        })?;
        let consumer: BaseConsumer = state_changelog::ConsumerSettings::new(group)
            .client_config(kafka)
            .create()
            .map_err(|e| CliError::NoCommittedOffsets { reason: e.to_string() })?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(stream, source.partition);
        let got = consumer
            .committed_offsets(tpl, source.timeout)
            .map_err(|e| CliError::NoCommittedOffsets {
                reason: format!("reading group {group:?}: {e}"),
            })?;
        let mut map = BTreeMap::new();
        for e in got.elements() {
            if let Offset::Offset(o) = e.offset() {
                map.insert(e.topic().to_owned(), o);
            }
        }
        if map.is_empty() {
            tracing::warn!(
                group,
                stream,
                "the group has no committed offset for this partition: every checkpoint counts as uncommitted"
            );
        }
        return Ok(map);
    };
    Ok(map.clone())
}

/// One replay of the source changelog into one partition.
struct Replay {
    partition: Arc<dyn StorePartition>,
    /// Where the partition is, for messages.
    location: String,
    committed: BTreeMap<String, i64>,
    /// The last changelog offset to apply (`None`: up to the end).
    until: Option<u64>,
    /// The rules of the store's recorded kind and codec; `None` replays
    /// records as they are.
    check: Option<ReplayCheck>,
}

fn replay_into(
    kafka: &ClientConfig,
    source: &ReplaySource,
    replay: Replay,
    progress: &mut dyn FnMut(&RecoveryProgress),
) -> Result<ApplyStats> {
    let config = RecoveryConfig {
        metadata_timeout: source.timeout,
        // The command's one timeout bounds retries of transient failures too.
        retry_timeout: source.timeout,
        stall_timeout: source.timeout.max(Duration::from_secs(10)),
        ..RecoveryConfig::default()
    };
    let recovery = RecoveryManager::new(kafka, config, source.stop.clone())?;
    let done = recovery.recover(
        vec![RecoveryPartition {
            partition: replay.partition,
            changelog: state_core::TopicPartition::new(source.topic.as_str(), source.partition),
            committed_offsets: replay.committed,
            location: replay.location,
            until: replay.until,
            replay_check: replay.check,
        }],
        progress,
    )?;
    Ok(done.into_iter().map(|r| r.stats).next().unwrap_or_default())
}

/// The replay rules of `recorded` for `target` at `path` (recording kind
/// and codec in it if it has none); `None` when `dir` records nothing:
/// records are then replayed as they are. That is said on stderr: as a
/// warning when `dir` holds data (quixstreams or an older version wrote
/// it), as information for a new partition.
fn replay_check(
    recorded: Option<RecordedStore>,
    target: &dyn StorePartition,
    path: &Path,
    dir: &Path,
    dir_has_data: bool,
) -> Result<Option<ReplayCheck>> {
    if let Some(r) = recorded {
        return Ok(Some(r.replay_check(target, path)?));
    }
    if dir_has_data {
        tracing::warn!(
            partition = %dir.display(),
            "the partition records no store kind and codec (written by quixstreams, or by an older \
             version): changelog records are replayed as they are, without the codec and TTL checks"
        );
    } else {
        tracing::info!(
            partition = %dir.display(),
            "a new partition: changelog records are applied as they are; the application records its \
             store's kind and codec when it first opens the partition"
        );
    }
    Ok(None)
}

/// Rebuilds the partition at `dir` from the changelog (creating it if
/// missing, with [`PartitionDir::engine_for_writing`]; an existing
/// partition continues from its stored offset, as the application would).
/// A partition that records its store kind and codec is replayed into with
/// their rules, as the manager restores it: records of another codec and
/// TTL-stamped records in a store without TTL support are refused.
///
/// The directory must be missing, empty or a partition
/// ([`CliError::ForeignTarget`] otherwise), and is locked before anything
/// in it is touched. An existing partition is read whole first (block
/// checksums verified) before it is continued; damaged files are
/// [`state_core::Error::PartitionCorrupt`].
pub fn restore(
    dir: &PartitionDir,
    source: &ReplaySource,
    committed: &CommittedOffsets,
    progress: &mut dyn FnMut(&RecoveryProgress),
) -> Result<RestoreSummary> {
    restore_into(dir, source, committed, progress).map_err(|e| {
        e.stopped_as(
            "restore",
            &dir.path,
            "the partition keeps what was applied so far (its data and changelog offset agree); \
             run the same command again to continue",
        )
        .corrupt_at(&dir.path)
    })
}

fn restore_into(
    dir: &PartitionDir,
    source: &ReplaySource,
    committed: &CommittedOffsets,
    progress: &mut dyn FnMut(&RecoveryProgress),
) -> Result<RestoreSummary> {
    let started = Instant::now();
    let engine = dir.engine_for_writing()?;
    let kafka = check_source(source)?;
    let committed = committed_offsets(&kafka, source, committed)?;
    let opened = dir.open_for_writing()?;
    let partition = &opened.partition;
    let store = RecordedStore::read(partition.as_ref(), &dir.path)?;
    let has_data = partition.changelog_offset()?.is_some();
    if has_data {
        // Continuing from the stored offset claims what is there is sound.
        corruption::read_everything(partition.as_ref())?;
    }
    let check = replay_check(store, partition.as_ref(), &dir.path, &dir.path, has_data)?;
    let stats = replay_into(
        &kafka,
        source,
        Replay {
            partition: partition.clone(),
            location: dir.path.display().to_string(),
            committed: committed.clone(),
            until: None,
            check,
        },
        progress,
    )?;
    Ok(RestoreSummary {
        path: dir.path.clone(),
        engine,
        store,
        stats,
        changelog_offset: partition.changelog_offset()?,
        committed,
        elapsed: started.elapsed(),
    })
}

/// Replays the changelog, up to the stored offset of the partition at `dir`,
/// into a scratch partition of the same engine and compares the two key by
/// key. The scratch partition gets the store kind and codec `dir` records
/// and is replayed into with their rules, as the manager restores. Every
/// block of `dir` is read (checksums verified); damaged files are
/// [`state_core::Error::PartitionCorrupt`].
pub fn verify(
    dir: &PartitionDir,
    source: &ReplaySource,
    committed: &CommittedOffsets,
    progress: &mut dyn FnMut(&RecoveryProgress),
) -> Result<VerifyReport> {
    compare(dir, source, committed, progress).map_err(|e| {
        e.stopped_as(
            "verify",
            &dir.path,
            "nothing was compared; the partition is unchanged and the scratch copy is removed",
        )
        .corrupt_at(&dir.path)
    })
}

fn compare(
    dir: &PartitionDir,
    source: &ReplaySource,
    committed: &CommittedOffsets,
    progress: &mut dyn FnMut(&RecoveryProgress),
) -> Result<VerifyReport> {
    let opened = dir.open_for_reading()?;
    let actual = opened.partition();
    let changelog_offset = actual.changelog_offset()?;
    let store = RecordedStore::read(actual, &dir.path)?;
    let kafka = check_source(source)?;
    let committed = committed_offsets(&kafka, source, committed)?;
    let scratch_dir = tempfile::Builder::new()
        .prefix("statectl-verify-")
        .tempdir()
        .map_err(|source| CliError::Io {
            what: "a scratch directory".into(),
            source,
        })?;
    // The replica holds the same data as DIR: it goes into a subdirectory
    // the partition creates owner-only (a temporary directory is 0755).
    let scratch_path = scratch_dir.path().join("partition");
    let scratch = open_writable(opened.engine(), &scratch_path)?;
    let replayed = match changelog_offset {
        // The directory claims nothing from the changelog: compare with empty.
        None => 0,
        Some(until) => {
            let check = replay_check(store, scratch.as_ref(), &scratch_path, &dir.path, true)?;
            let replay = Replay {
                partition: scratch.clone(),
                location: scratch_path.display().to_string(),
                committed,
                until: Some(until),
                check,
            };
            replay_into(&kafka, source, replay, progress)?.applied
        }
    };
    let (differences, compared) = diff_partitions(actual, scratch.as_ref())?;
    Ok(VerifyReport {
        engine: opened.engine(),
        store,
        differences,
        compared,
        changelog_offset,
        replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_arguments_parse_or_say_why_not() {
        let ok = CommittedOffsets::parse(&["clicks=12".into(), "a=b=3".into()]).unwrap();
        let CommittedOffsets::Explicit(map) = ok else {
            panic!("explicit")
        };
        assert_eq!(map["clicks"], 12);
        assert_eq!(map["a=b"], 3);
        for bad in ["clicks", "clicks=-1", "=3", "clicks=x"] {
            let err = CommittedOffsets::parse(&[bad.into()]).unwrap_err();
            assert!(matches!(err, CliError::BadCommitted(_)), "{bad}: {err}");
        }
        assert!(matches!(
            CommittedOffsets::parse(&[]).unwrap(),
            CommittedOffsets::FromGroup
        ));
    }

    #[test]
    fn group_and_stream_come_from_the_changelog_name() {
        assert_eq!(group_and_stream("changelog__g--clicks--counts"), Some(("g", "clicks")));
        assert_eq!(group_and_stream("changelog__g--x"), None);
        assert_eq!(group_and_stream("other"), None);
    }
}
