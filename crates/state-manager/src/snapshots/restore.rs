//! Restoring a partition from the newest usable snapshot: what a
//! bootstrap job does on its thread.
//!
//! Newest first, a snapshot is used only if its manifest reads, it was
//! taken by the same backend for the same kind and codec, it holds a
//! changelog offset, that offset is before the changelog's committed end
//! (a snapshot past it would hold records a full replay never applies, or
//! belong to a recreated changelog), and every file downloads with its
//! checksum. Anything else is logged, counted and skipped for the next
//! older one; with none left, the partition replays its whole changelog.
//! A restore cancelled (the manager stopping) ends at once, with nothing
//! installed: the partition keeps its previous local data (none, for a
//! new one), and its next assignment starts over.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use state_core::{Backend, StoreKind, StoreLocation, TopicPartition};
use state_snapshot::{Manifest, Progress, SnapshotError, SnapshotScope, SnapshotStore};

use super::metrics;

/// A store partition without usable local state, to restore from a
/// snapshot. The partition must not be open anywhere while the job runs.
pub(crate) struct BootstrapJob {
    /// The registry's id of the store.
    pub(crate) store_id: usize,
    /// The store partition.
    pub(crate) partition: u32,
    /// The store's name and stream (logs, metrics).
    pub(crate) store_name: String,
    pub(crate) stream: String,
    /// Its changelog partition.
    pub(crate) changelog: TopicPartition,
    /// Where its snapshots are.
    pub(crate) scope: SnapshotScope,
    /// The backend that opens it, and where.
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) location: StoreLocation,
    /// The kind and codec the store records (a snapshot of another is not
    /// used: opening it would be refused).
    pub(crate) kind: StoreKind,
    pub(crate) codec: String,
    /// The offset its local data holds (`None`: no local state).
    pub(crate) local_offset: Option<u64>,
    /// A snapshot is used over local state only if at least this many
    /// offsets newer.
    pub(crate) min_gain: u64,
    /// An empty (or absent) directory on the partition's filesystem to
    /// download into.
    pub(crate) scratch: PathBuf,
}

/// What a bootstrap job did, and the snapshots it skipped (their
/// `reason` labels), for the poll loop to count.
#[derive(Debug)]
pub(crate) struct BootstrapReport {
    pub(crate) outcome: Bootstrapped,
    pub(crate) skipped: Vec<&'static str>,
    pub(crate) took: std::time::Duration,
    /// Bytes downloaded by the snapshot used.
    pub(crate) bytes: u64,
}

impl BootstrapReport {
    /// Records the report in the metrics of `job`'s store.
    pub(crate) fn count(&self, store: &str, stream: &str) {
        for reason in &self.skipped {
            metrics::skipped(store, stream, reason);
        }
        let result = match self.outcome {
            Bootstrapped::Snapshot { .. } => "restored",
            Bootstrapped::Nothing => "none",
        };
        metrics::restore(store, stream, result, self.took, self.bytes);
    }
}

/// What a bootstrap job did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bootstrapped {
    /// The partition now holds snapshot `id`, at changelog offset `offset`.
    Snapshot {
        /// The snapshot's id.
        id: String,
        /// Its changelog offset.
        offset: u64,
    },
    /// No usable snapshot: the partition's local data is as before (or
    /// none), and it replays its changelog from its own stored offset.
    Nothing,
}

/// Restores `job`'s partition from the newest usable snapshot in `store`
/// whose offset is before `end` (the changelog's high watermark, the last
/// stable offset under read_committed). `progress` cancels it
/// ([`Progress::cancelled`]): the report is then [`Bootstrapped::Nothing`]
/// and nothing was installed.
pub(crate) fn restore_newest(
    store: &SnapshotStore,
    job: &BootstrapJob,
    end: i64,
    progress: &dyn Progress,
) -> BootstrapReport {
    let started = Instant::now();
    let mut skipped = Vec::new();
    let mut skip = |id: &str, reason: &'static str, error: &dyn std::fmt::Display| {
        skipped.push(reason);
        tracing::warn!(
            store = job.store_name.as_str(),
            stream = job.stream.as_str(),
            partition = job.partition,
            snapshot = id,
            reason,
            error = %error,
            "snapshot not used; trying the next older one (or the full changelog)"
        );
    };
    let ids = match store.snapshot_ids(&job.scope) {
        Ok(ids) => ids,
        Err(e) => {
            skip("-", "failed", &e);
            return BootstrapReport {
                outcome: Bootstrapped::Nothing,
                skipped,
                took: started.elapsed(),
                bytes: 0,
            };
        }
    };
    for id in ids.iter().rev() {
        if progress.cancelled() {
            break;
        }
        let manifest = match store.manifest(&job.scope, id) {
            Ok(m) => m,
            Err(e) => {
                skip(id, reason_of(&e), &e);
                continue;
            }
        };
        if let Err(why) = fits(&manifest, job) {
            skip(id, "other_format", &why);
            continue;
        }
        let Some(offset) = manifest.changelog_offset else {
            // An empty snapshot saves nothing over a full replay.
            continue;
        };
        // Past `i64::MAX` (a damaged manifest) is past any end too.
        if i64::try_from(offset).map_or(true, |o| o >= end) {
            let why = format!("its changelog offset {offset} is not before the changelog's committed end {end}");
            skip(id, "past_end", &why);
            continue;
        }
        if let Some(local) = job.local_offset {
            if offset < local.saturating_add(job.min_gain) {
                // Older snapshots are older still: local state it is.
                break;
            }
        }
        let _ = state_core::remove_store_dir(&job.scratch);
        match store.restore(&job.scope, id, &*job.backend, &job.location, &job.scratch, progress) {
            Ok((manifest, opened)) => {
                // The registry opens it again, with its format checks.
                drop(opened);
                let bytes = manifest.total_bytes();
                tracing::info!(
                    store = job.store_name.as_str(),
                    stream = job.stream.as_str(),
                    partition = job.partition,
                    snapshot = id.as_str(),
                    offset,
                    bytes,
                    took = ?started.elapsed(),
                    "restored the partition from a snapshot; replaying the changelog after it"
                );
                return BootstrapReport {
                    outcome: Bootstrapped::Snapshot { id: id.clone(), offset },
                    skipped,
                    took: started.elapsed(),
                    bytes,
                };
            }
            Err(e) if e.is_cancelled() => {
                // Not the snapshot's fault: no older one is tried.
                let _ = state_core::remove_store_dir(&job.scratch);
                tracing::info!(
                    store = job.store_name.as_str(),
                    stream = job.stream.as_str(),
                    partition = job.partition,
                    snapshot = id.as_str(),
                    "snapshot restore cancelled: the manager is stopping; nothing was installed"
                );
                break;
            }
            Err(e) => {
                if matches!(e, SnapshotError::OffsetMismatch { .. }) {
                    // The partition's directory holds the refused snapshot:
                    // it must not be replayed over.
                    let dir = job.location.partition_dir(job.partition);
                    if let Err(rm) = state_core::remove_store_dir(&dir) {
                        tracing::error!(path = %dir.display(), error = %rm, "cannot delete a refused snapshot");
                    }
                }
                let _ = state_core::remove_store_dir(&job.scratch);
                skip(id, reason_of(&e), &e);
            }
        }
    }
    BootstrapReport {
        outcome: Bootstrapped::Nothing,
        skipped,
        took: started.elapsed(),
        bytes: 0,
    }
}

/// `Err` saying why a snapshot of `manifest` cannot become `job`'s
/// partition (another backend, kind or codec).
fn fits(manifest: &Manifest, job: &BootstrapJob) -> Result<(), String> {
    let backend = job.backend.info().name;
    if manifest.backend != backend {
        return Err(format!(
            "taken by the {} backend, the store is on {backend}",
            manifest.backend
        ));
    }
    if let Some(kind) = manifest.kind.as_deref().filter(|k| *k != job.kind.as_str()) {
        return Err(format!("a {kind} store, this one is {}", job.kind.as_str()));
    }
    if let Some(codec) = manifest.codec.as_deref().filter(|c| *c != job.codec) {
        return Err(format!("codec {codec}, the store's is {}", job.codec));
    }
    Ok(())
}

/// The `reason` label of a snapshot that failed with `e`.
fn reason_of(e: &SnapshotError) -> &'static str {
    match e {
        SnapshotError::BadManifest { .. } | SnapshotError::NoSuchSnapshot { .. } => "bad_manifest",
        SnapshotError::Corrupt { .. } | SnapshotError::OffsetMismatch { .. } => "corrupt",
        SnapshotError::Target(_) | SnapshotError::NotSupported { .. } => "other_format",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    //! Which snapshot a bootstrap picks, on fjall and a local store (the
    //! changelog's end given, no broker).

    use state_core::{cf, WriteBatch};
    use state_fjall::{FjallBackend, FjallOptions};
    use state_snapshot::{NoProgress, StoreOptions};

    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        store: SnapshotStore,
        backend: Arc<dyn Backend>,
        location: StoreLocation,
    }

    /// Snapshots of partition 0 at offsets 9 and 19 (key `k` = offset).
    fn fixture() -> Fixture {
        fixture_at(&[9, 19])
    }

    /// Snapshots of partition 0 at `offsets`, oldest first (key `k` =
    /// offset).
    fn fixture_at(offsets: &[u64]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SnapshotStore::open(&format!("file://{}/store", dir.path().display()), &StoreOptions::new()).unwrap();
        let backend = FjallBackend::shared(FjallOptions::default());
        let location = StoreLocation::new("counts", dir.path().join("counts"));
        let p = backend.open_partition(&location, 0).unwrap();
        for &offset in offsets {
            let mut b = WriteBatch::new();
            b.put(cf::DEFAULT, b"k", offset.to_string().as_bytes());
            b.set_changelog_offset(offset);
            p.write(&b).unwrap();
            p.persist().unwrap();
            store
                .create(
                    &*p,
                    "fjall",
                    &scope(),
                    Some(StoreKind::KeyValue),
                    dir.path(),
                    &NoProgress,
                )
                .unwrap();
        }
        drop(p);
        state_core::remove_store_dir(&location.partition_dir(0)).unwrap();
        Fixture {
            dir,
            store,
            backend,
            location,
        }
    }

    fn scope() -> SnapshotScope {
        SnapshotScope::new("changelog", 0).unwrap()
    }

    fn job(f: &Fixture, local_offset: Option<u64>, min_gain: u64, kind: StoreKind) -> BootstrapJob {
        BootstrapJob {
            store_id: 0,
            partition: 0,
            store_name: "counts".into(),
            stream: "input".into(),
            changelog: TopicPartition::new("changelog", 0),
            scope: scope(),
            backend: f.backend.clone(),
            location: f.location.clone(),
            kind,
            codec: "msgpack".into(),
            local_offset,
            min_gain,
            scratch: f.dir.path().join("scratch"),
        }
    }

    /// The value of `k` in the partition's local data now.
    fn local_value(f: &Fixture) -> Option<String> {
        let p = f.backend.open_partition(&f.location, 0).unwrap();
        let v = p.get(cf::DEFAULT, b"k").unwrap();
        v.map(|v| String::from_utf8(v).unwrap())
    }

    fn restored(report: &BootstrapReport) -> Option<u64> {
        match report.outcome {
            Bootstrapped::Snapshot { offset, .. } => Some(offset),
            Bootstrapped::Nothing => None,
        }
    }

    #[test]
    fn an_empty_partition_gets_the_newest_snapshot() {
        let f = fixture();
        let report = restore_newest(&f.store, &job(&f, None, 0, StoreKind::KeyValue), 100, &NoProgress);
        assert_eq!(restored(&report), Some(19));
        assert!(report.skipped.is_empty());
        assert_eq!(local_value(&f).as_deref(), Some("19"));
        assert!(!f.dir.path().join("scratch").exists(), "the download moved into place");
    }

    #[test]
    fn a_snapshot_not_before_the_changelog_end_is_skipped() {
        let f = fixture();
        let report = restore_newest(&f.store, &job(&f, None, 0, StoreKind::KeyValue), 19, &NoProgress);
        assert_eq!(restored(&report), Some(9));
        assert_eq!(report.skipped, vec!["past_end"]);
        assert_eq!(local_value(&f).as_deref(), Some("9"));
    }

    #[test]
    fn a_snapshot_whose_offset_is_past_any_changelog_is_skipped() {
        // A damaged manifest: an offset past `i64::MAX` must not read as
        // negative, before the changelog's end.
        let f = fixture_at(&[9, 1 << 63]);
        let report = restore_newest(&f.store, &job(&f, None, 0, StoreKind::KeyValue), 100, &NoProgress);
        assert_eq!(restored(&report), Some(9));
        assert_eq!(report.skipped, vec!["past_end"]);
        assert_eq!(local_value(&f).as_deref(), Some("9"));
    }

    #[test]
    fn local_state_is_replaced_only_by_a_snapshot_far_enough_ahead() {
        let f = fixture();
        let report = restore_newest(&f.store, &job(&f, Some(15), 10, StoreKind::KeyValue), 100, &NoProgress);
        assert_eq!(restored(&report), None, "19 is not 10 past 15");
        let report = restore_newest(&f.store, &job(&f, Some(5), 10, StoreKind::KeyValue), 100, &NoProgress);
        assert_eq!(restored(&report), Some(19));
    }

    #[test]
    fn a_snapshot_of_another_kind_is_never_used() {
        let f = fixture();
        let report = restore_newest(&f.store, &job(&f, None, 0, StoreKind::Windowed), 100, &NoProgress);
        assert_eq!(restored(&report), None);
        assert_eq!(report.skipped, vec!["other_format", "other_format"]);
        assert_eq!(local_value(&f), None, "nothing restored");
    }

    /// Cancelled once the download moved a first byte: mid-download.
    #[derive(Default)]
    struct CancelAfterFirstBytes(std::sync::atomic::AtomicU64);

    impl Progress for CancelAfterFirstBytes {
        fn advance(&self, bytes: u64) {
            self.0.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }

        fn cancelled(&self) -> bool {
            self.0.load(std::sync::atomic::Ordering::Relaxed) > 0
        }
    }

    #[test]
    fn a_cancelled_restore_installs_nothing_and_skips_nothing() {
        let f = fixture();
        let progress = CancelAfterFirstBytes::default();
        let report = restore_newest(&f.store, &job(&f, None, 0, StoreKind::KeyValue), 100, &progress);
        assert!(progress.cancelled(), "the download started");
        assert_eq!(restored(&report), None);
        assert!(report.skipped.is_empty(), "no snapshot is blamed: {:?}", report.skipped);
        assert!(!f.dir.path().join("scratch").exists());
        assert!(!f.location.partition_dir(0).exists(), "nothing installed");
    }

    #[test]
    fn nothing_in_the_store_is_nothing_to_restore() {
        let f = fixture();
        let empty = SnapshotStore::open(
            &format!("file://{}/empty", f.dir.path().display()),
            &StoreOptions::new(),
        )
        .unwrap();
        let report = restore_newest(&empty, &job(&f, None, 0, StoreKind::KeyValue), 100, &NoProgress);
        assert_eq!(restored(&report), None);
        assert!(report.skipped.is_empty());
    }
}
