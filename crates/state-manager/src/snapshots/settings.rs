//! [`SnapshotSettings`]: where the manager keeps partition snapshots, when
//! it takes them and when it restores from them.

use std::sync::Arc;
use std::time::Duration;

use state_snapshot::SnapshotStore;

/// Snapshots of the manager's store partitions in an object store
/// ([`crate::ManagerConfig::snapshots`]).
///
/// * **Restores:** a partition assigned here (or kept as a standby
///   replica) with no local state (a new or empty directory, or one
///   self-healing moved to quarantine) is
///   restored from the newest usable snapshot plus the changelog after it,
///   instead of the whole changelog. A snapshot that cannot be used
///   (unreadable manifest, a file missing or damaged, its offset past the
///   changelog's end, another backend or format) is logged, counted
///   (`kafka_state_snapshot_restores_total{result="skipped"}`) and skipped
///   for the next older one; without one, the changelog is replayed in
///   full. Never a wrong state: see docs/guarantees.md, "Snapshots".
/// * **Taking them:** after a checkpoint's local flush, a partition whose
///   changelog moved at least [`every_records`](Self::every_records)
///   records, or that sent at least [`every_bytes`](Self::every_bytes)
///   changelog bytes from here, or for which [`every`](Self::every) passed
///   with at least one record, since its last snapshot is snapshotted and
///   uploaded on a background thread (one at a time per partition,
///   retention applied after each upload). All three `None`: no snapshots
///   are taken here (others may take them; restores still use them).
///
/// Retention (how many snapshots are kept) is the store's
/// ([`SnapshotStore::with_retention`]).
#[derive(Clone, Debug)]
pub struct SnapshotSettings {
    /// The object store the snapshots are kept in. Each store partition's
    /// snapshots are kept under its changelog topic's name and partition
    /// (unique per group, store and stream).
    pub store: Arc<SnapshotStore>,
    /// Take a snapshot of a partition once its changelog moved this many
    /// offsets since its last snapshot (or since it was assigned here).
    /// Default 1,000,000.
    pub every_records: Option<u64>,
    /// Take a snapshot of a partition once this instance handed this many
    /// bytes of its changelog records (keys, values and headers, as given
    /// to the producer) to the producer since its last snapshot (or since
    /// it was assigned here). Default `None`: the record count and the
    /// interval already bound the changelog a restore replays, and a
    /// bytes threshold is for stores whose record sizes vary widely (a few
    /// large values can make a long tail in few records); set it to bound
    /// the bytes a restore's tail reads (1 GiB, say).
    pub every_bytes: Option<u64>,
    /// Take a snapshot of a partition once this long passed since its
    /// last snapshot (or since it was assigned here) and its changelog
    /// moved. Default 10 minutes.
    pub every: Option<Duration>,
    /// Restore partitions without local state from snapshots (default
    /// true).
    pub restore: bool,
    /// Also restore from a snapshot a partition whose local state is this
    /// many changelog offsets or more behind the newest snapshot (`None`,
    /// the default: only partitions without local state; their local state
    /// is replaced only by a snapshot at least this much newer).
    pub restore_when_behind: Option<u64>,
}

impl SnapshotSettings {
    /// Snapshots in `store`, taken every 1,000,000 changelog records or 10
    /// minutes (not by bytes), used for restores.
    pub fn new(store: SnapshotStore) -> Self {
        SnapshotSettings {
            store: Arc::new(store),
            every_records: Some(1_000_000),
            every_bytes: None,
            every: Some(Duration::from_secs(600)),
            restore: true,
            restore_when_behind: None,
        }
    }

    /// The same, taken every `records` changelog records (`None`: not by
    /// count).
    pub fn every_records(mut self, records: Option<u64>) -> Self {
        self.every_records = records;
        self
    }

    /// The same, taken every `bytes` changelog bytes sent from here
    /// (`None`, the default: not by size).
    pub fn every_bytes(mut self, bytes: Option<u64>) -> Self {
        self.every_bytes = bytes;
        self
    }

    /// The same, taken every `interval` (`None`: not by time).
    pub fn every(mut self, interval: Option<Duration>) -> Self {
        self.every = interval;
        self
    }

    /// The same, never taking snapshots here (restores still use those
    /// others took).
    pub fn restore_only(mut self) -> Self {
        self.every_records = None;
        self.every_bytes = None;
        self.every = None;
        self
    }

    /// True if this instance takes snapshots.
    pub fn takes_snapshots(&self) -> bool {
        self.every_records.is_some() || self.every_bytes.is_some() || self.every.is_some()
    }

    /// True if a partition whose changelog moved `records` offsets, and to
    /// whose changelog this instance sent `bytes`, over `elapsed` since its
    /// last snapshot is due for another. Nothing is due while the
    /// changelog did not move (`records` 0): its snapshot would be the
    /// last one again.
    pub fn due(&self, records: u64, bytes: u64, elapsed: Duration) -> bool {
        records > 0
            && (self.every_records.is_some_and(|n| records >= n.max(1))
                || self.every_bytes.is_some_and(|n| bytes >= n.max(1))
                || self.every.is_some_and(|t| elapsed >= t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SnapshotSettings {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = SnapshotStore::open(&url, &state_snapshot::StoreOptions::new()).unwrap();
        SnapshotSettings::new(store)
    }

    #[test]
    fn a_partition_is_due_by_records_or_time_once_it_moved() {
        let s = settings().every_records(Some(100)).every(Some(Duration::from_secs(60)));
        assert!(
            !s.due(99, 1 << 40, Duration::from_secs(59)),
            "no bytes threshold by default"
        );
        assert!(s.due(100, 0, Duration::ZERO));
        assert!(s.due(1, 0, Duration::from_secs(60)));
        assert!(!s.due(0, 0, Duration::from_secs(3600)), "nothing new: no snapshot");
        let s = s.restore_only();
        assert!(!s.takes_snapshots());
        assert!(!s.due(1_000_000_000, 1 << 40, Duration::from_secs(3600)));
    }

    #[test]
    fn a_partition_is_due_by_bytes_alone_once_it_moved() {
        let s = settings().every_records(None).every(None).every_bytes(Some(4096));
        assert!(s.takes_snapshots(), "a bytes threshold alone takes snapshots");
        assert!(
            !s.due(1_000_000, 4095, Duration::from_secs(3600)),
            "neither count nor time counts"
        );
        assert!(s.due(1, 4096, Duration::ZERO));
        assert!(!s.due(0, 1 << 20, Duration::ZERO), "nothing new: no snapshot");
        let s = s.restore_only();
        assert!(!s.takes_snapshots());
        assert_eq!(s.every_bytes, None);
        assert!(!s.due(1, 1 << 40, Duration::ZERO));
        // A zero threshold means any byte, as for records.
        let s = settings().every_records(None).every(None).every_bytes(Some(0));
        assert!(s.due(1, 1, Duration::ZERO));
        assert!(!s.due(1, 0, Duration::ZERO));
    }
}
