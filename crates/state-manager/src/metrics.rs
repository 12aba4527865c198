//! The metrics the manager records through the `metrics` facade (no-ops
//! until the application installs a recorder, e.g. a Prometheus exporter).
//! The table of every metric, with types and labels, is in
//! docs/operations.md; the changelog producer's own are in
//! `state_changelog::metrics`.

use std::time::Duration;

use state_core::PartitionStats;

/// Histogram, seconds: each stage of a checkpoint. Label `stage`:
/// `prepare`, `produce` (producer flush), `commit` (offsets or Kafka
/// transaction), `flush` (local write; with pipelined exactly-once
/// checkpoints, the wait for the write behind the poll loop), `set_aside`
/// (pipelined exactly-once: the local write handed to its thread),
/// `total`.
pub const CHECKPOINT_STAGE_SECONDS: &str = "kafka_state_checkpoint_stage_seconds";
/// Counter: checkpoints. Label `result`: `ok`, `failed`, `rewound` (an
/// exactly-once checkpoint the group did not take: processed again, see
/// [`crate::ManagerEvent::CheckpointRewound`]).
pub const CHECKPOINTS: &str = "kafka_state_checkpoints_total";
/// Counter: source records of rewound checkpoints, processed again.
pub const REWOUND_RECORDS: &str = "kafka_state_rewound_records_total";
/// Counter: offset commits the group refused while rebalancing that
/// succeeded after waiting ([`crate::ManagerEvent::CommitDelayedByRebalance`]).
pub const COMMITS_DELAYED_BY_REBALANCE: &str = "kafka_state_commits_delayed_by_rebalance_total";
/// Gauge: changelog records restored so far by a running restore.
/// Labels `topic`, `partition` (the changelog partition).
pub const RESTORE_DONE: &str = "kafka_state_restore_records_done";
/// Gauge: changelog records a running restore still has to apply.
pub const RESTORE_REMAINING: &str = "kafka_state_restore_records_remaining";
/// Gauge: records per second of a running restore.
pub const RESTORE_RATE: &str = "kafka_state_restore_records_per_second";
/// Gauge: changelog records a standby replica has not applied yet.
/// Labels `topic`, `partition`.
pub const STANDBY_LAG: &str = "kafka_state_standby_lag_records";
/// Gauge: store partitions here. Label `role`: `active`, `restoring`, `standby`.
pub const PARTITIONS: &str = "kafka_state_partitions";
/// Gauges of each open store partition (backend figures, see
/// [`PartitionStats`]). Labels `store`, `stream`, `partition`, `role`
/// (`active`, `standby`).
pub const PARTITION_LIVE_DATA_BYTES: &str = "kafka_state_partition_live_data_bytes";
/// See [`PARTITION_LIVE_DATA_BYTES`]: bytes in memtables / write buffers.
pub const PARTITION_MEMTABLE_BYTES: &str = "kafka_state_partition_memtable_bytes";
/// See [`PARTITION_LIVE_DATA_BYTES`]: block cache in use (RocksDB: the cache
/// shared by the backend's partitions).
pub const PARTITION_BLOCK_CACHE_BYTES: &str = "kafka_state_partition_block_cache_bytes";
/// See [`PARTITION_LIVE_DATA_BYTES`]: bytes compaction still has to rewrite.
pub const PARTITION_PENDING_COMPACTION_BYTES: &str = "kafka_state_partition_pending_compaction_bytes";
/// See [`PARTITION_LIVE_DATA_BYTES`]: bytes on disk.
pub const PARTITION_DISK_BYTES: &str = "kafka_state_partition_disk_bytes";

/// Counter: store partitions found damaged and moved to the quarantine
/// folder to be rebuilt from their changelogs
/// ([`crate::CorruptionPolicy::Rebuild`]). Labels `store`, `stream`,
/// `reason` (`corrupt`: corrupt or missing files; `offset_past_end`: the
/// stored changelog offset is past the changelog's end).
pub const PARTITIONS_REBUILT: &str = "kafka_state_partitions_rebuilt_total";
/// Counter: quarantined partition directories removed because the
/// quarantine folder held more than [`crate::QuarantineLimits`] allows.
pub const QUARANTINE_REMOVED: &str = "kafka_state_quarantine_removed_total";
/// Counter: local partitions removed by the state-dir cleaner
/// ([`crate::ManagerConfig::state_cleanup_delay`]). Labels `store`, `stream`.
pub const STATE_DIR_CLEANED: &str = "kafka_state_state_dir_cleaned_total";
/// Counter: local writes, flushes, opens and restores that failed because
/// the filesystem holding the state is full ([`crate::ManagerError::DiskFull`]).
/// Label `operation` (the backend's: `writing a batch`, `opening the
/// partition`, ...).
pub const DISK_FULL: &str = "kafka_state_disk_full_total";
/// Gauge: source partitions paused until their state can be reloaded from
/// the changelog after a full disk (non-zero: the disk is still full).
pub const WAITING_FOR_DISK: &str = "kafka_state_partitions_waiting_for_disk";

/// Counter: partition snapshots taken in the background
/// ([`crate::SnapshotSettings`]). Labels `store`, `stream`, `result`
/// (`ok`: uploaded and retention applied; `failed`: logged, retried at
/// the next due checkpoint).
pub const SNAPSHOTS_TAKEN: &str = "kafka_state_snapshots_taken_total";
/// Histogram, seconds: taking and uploading one snapshot (successful
/// ones). Labels `store`, `stream`.
pub const SNAPSHOT_SECONDS: &str = "kafka_state_snapshot_seconds";
/// Counter: bytes uploaded by snapshots (only files the store did not
/// hold yet). Labels `store`, `stream`.
pub const SNAPSHOT_BYTES_UPLOADED: &str = "kafka_state_snapshot_uploaded_bytes_total";
/// Counter: partitions without usable local state that looked for a
/// snapshot. Labels `store`, `stream`, `result` (`restored`: from a
/// snapshot, the changelog replayed after it; `none`: no usable snapshot,
/// the whole changelog replayed).
pub const SNAPSHOT_RESTORES: &str = "kafka_state_snapshot_restores_total";
/// Histogram, seconds: downloading, checking and opening a snapshot.
/// Labels `store`, `stream`.
pub const SNAPSHOT_RESTORE_SECONDS: &str = "kafka_state_snapshot_restore_seconds";
/// Counter: bytes of snapshots downloaded by restores.
pub const SNAPSHOT_BYTES_DOWNLOADED: &str = "kafka_state_snapshot_downloaded_bytes_total";
/// Counter: snapshots a restore could not use and skipped for an older one
/// (or a full replay). Labels `store`, `stream`, `reason` (`bad_manifest`:
/// unreadable manifest; `corrupt`: a file missing or damaged;
/// `past_end`: its changelog offset is past the changelog's committed end;
/// `other_format`: another backend, kind or codec; `failed`: the store or
/// the local disk failed).
pub const SNAPSHOTS_SKIPPED: &str = "kafka_state_snapshots_skipped_total";

/// Registers a description (HELP text) and unit of every metric the
/// library records, this crate's and the changelog producer's, with the
/// installed recorder. Call it once after installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    #[cfg(feature = "windows")]
    state_windows::metrics::describe();
    describe_histogram!(
        CHECKPOINT_STAGE_SECONDS,
        Unit::Seconds,
        "Time spent in each stage of a checkpoint"
    );
    describe_counter!(CHECKPOINTS, "Checkpoints, by result");
    describe_counter!(
        REWOUND_RECORDS,
        "Source records of checkpoints the group did not take, processed again"
    );
    describe_counter!(
        COMMITS_DELAYED_BY_REBALANCE,
        "Offset commits that waited for a rebalance to finish"
    );
    describe_gauge!(RESTORE_DONE, "Changelog records restored so far by a restore");
    describe_gauge!(RESTORE_REMAINING, "Changelog records a restore still has to apply");
    describe_gauge!(RESTORE_RATE, "Changelog records restored per second");
    describe_gauge!(STANDBY_LAG, "Changelog records a standby replica has not applied yet");
    describe_gauge!(PARTITIONS, "Store partitions on this instance, by role");
    describe_gauge!(
        PARTITION_LIVE_DATA_BYTES,
        Unit::Bytes,
        "Estimated live data of a store partition"
    );
    describe_gauge!(
        PARTITION_MEMTABLE_BYTES,
        Unit::Bytes,
        "Write buffers (memtables) of a store partition"
    );
    describe_gauge!(
        PARTITION_BLOCK_CACHE_BYTES,
        Unit::Bytes,
        "Block cache in use (shared by a backend's partitions)"
    );
    describe_gauge!(
        PARTITION_PENDING_COMPACTION_BYTES,
        Unit::Bytes,
        "Bytes compaction still has to rewrite"
    );
    describe_gauge!(PARTITION_DISK_BYTES, Unit::Bytes, "Files of a store partition on disk");
    describe_counter!(
        PARTITIONS_REBUILT,
        "Damaged store partitions moved to quarantine and rebuilt from their changelogs"
    );
    describe_counter!(
        QUARANTINE_REMOVED,
        "Quarantined partition directories removed beyond the quarantine's bounds"
    );
    describe_counter!(
        STATE_DIR_CLEANED,
        "Local partitions not assigned here for longer than the cleanup delay, removed"
    );
    describe_counter!(
        DISK_FULL,
        "Local writes, flushes, opens and restores that failed because the state's filesystem is full"
    );
    describe_gauge!(
        WAITING_FOR_DISK,
        "Source partitions paused until their state can be reloaded after a full disk"
    );
    describe_counter!(
        SNAPSHOTS_TAKEN,
        "Partition snapshots taken in the background, by result"
    );
    describe_histogram!(SNAPSHOT_SECONDS, Unit::Seconds, "Time to take and upload a snapshot");
    describe_counter!(
        SNAPSHOT_BYTES_UPLOADED,
        Unit::Bytes,
        "Bytes uploaded by snapshots (files the store did not hold yet)"
    );
    describe_counter!(
        SNAPSHOT_RESTORES,
        "Partitions without local state that looked for a snapshot, by result"
    );
    describe_histogram!(
        SNAPSHOT_RESTORE_SECONDS,
        Unit::Seconds,
        "Time to download, check and open a snapshot"
    );
    describe_counter!(SNAPSHOT_BYTES_DOWNLOADED, Unit::Bytes, "Bytes of snapshots downloaded");
    describe_counter!(
        SNAPSHOTS_SKIPPED,
        "Snapshots a restore could not use (damaged, past the changelog end, another format), by reason"
    );
    describe_counter!(
        state_changelog::metrics::CHANGELOG_RECORDS,
        "Changelog records produced"
    );
    describe_counter!(
        state_changelog::metrics::CHANGELOG_BYTES,
        Unit::Bytes,
        "Key and value bytes of the changelog records produced"
    );
}

/// How often partition figures are exported (from `maintain`).
pub(crate) const EXPORT_INTERVAL: Duration = Duration::from_secs(5);

pub(crate) fn stage(stage: &'static str, took: Duration) {
    metrics::histogram!(CHECKPOINT_STAGE_SECONDS, "stage" => stage).record(took.as_secs_f64());
}

/// Counts a checkpoint with `result` (`ok`, `failed`, `rewound`).
pub(crate) fn checkpoint(result: &'static str) {
    metrics::counter!(CHECKPOINTS, "result" => result).increment(1);
}

pub(crate) fn rewound_records(n: u64) {
    metrics::counter!(REWOUND_RECORDS).increment(n);
}

pub(crate) fn commit_delayed_by_rebalance() {
    metrics::counter!(COMMITS_DELAYED_BY_REBALANCE).increment(1);
}

pub(crate) fn restore(topic: &str, partition: i32, done: u64, total: u64, rate: f64) {
    let labels = [("topic", topic.to_owned()), ("partition", partition.to_string())];
    metrics::gauge!(RESTORE_DONE, &labels).set(done as f64);
    metrics::gauge!(RESTORE_REMAINING, &labels).set(total.saturating_sub(done) as f64);
    metrics::gauge!(RESTORE_RATE, &labels).set(rate);
}

pub(crate) fn standby_lag(topic: &str, partition: i32, lag: u64) {
    let labels = [("topic", topic.to_owned()), ("partition", partition.to_string())];
    metrics::gauge!(STANDBY_LAG, &labels).set(lag as f64);
}

pub(crate) fn partitions(role: &'static str, n: usize) {
    metrics::gauge!(PARTITIONS, "role" => role).set(n as f64);
}

/// Sets (or, with `stats = None`, zeroes) the figures of one partition.
pub(crate) fn partition(store: &str, stream: &str, partition: u32, role: &'static str, stats: Option<&PartitionStats>) {
    let labels = [
        ("store", store.to_owned()),
        ("stream", stream.to_owned()),
        ("partition", partition.to_string()),
        ("role", role.to_owned()),
    ];
    let value = |f: fn(&PartitionStats) -> Option<u64>| stats.and_then(f).unwrap_or(0) as f64;
    metrics::gauge!(PARTITION_LIVE_DATA_BYTES, &labels).set(value(|s| s.live_data_bytes));
    metrics::gauge!(PARTITION_MEMTABLE_BYTES, &labels).set(value(|s| s.memtable_bytes));
    metrics::gauge!(PARTITION_BLOCK_CACHE_BYTES, &labels).set(value(|s| s.block_cache_bytes));
    metrics::gauge!(PARTITION_PENDING_COMPACTION_BYTES, &labels).set(value(|s| s.pending_compaction_bytes));
    metrics::gauge!(PARTITION_DISK_BYTES, &labels).set(value(|s| s.disk_bytes));
}

pub(crate) fn partition_rebuilt(store: &str, stream: &str, reason: &'static str) {
    let labels = [
        ("store", store.to_owned()),
        ("stream", stream.to_owned()),
        ("reason", reason.to_owned()),
    ];
    metrics::counter!(PARTITIONS_REBUILT, &labels).increment(1);
}

pub(crate) fn quarantine_removed() {
    metrics::counter!(QUARANTINE_REMOVED).increment(1);
}

pub(crate) fn state_dir_cleaned(store: &str, stream: &str) {
    let labels = [("store", store.to_owned()), ("stream", stream.to_owned())];
    metrics::counter!(STATE_DIR_CLEANED, &labels).increment(1);
}

pub(crate) fn disk_full(operation: &'static str) {
    metrics::counter!(DISK_FULL, "operation" => operation).increment(1);
}

pub(crate) fn waiting_for_disk(n: usize) {
    metrics::gauge!(WAITING_FOR_DISK).set(n as f64);
}
