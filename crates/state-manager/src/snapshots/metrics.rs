//! The snapshot metrics (names in [`crate::metrics`], the table in
//! docs/operations.md).

use std::time::Duration;

use crate::metrics::{
    SNAPSHOTS_SKIPPED, SNAPSHOTS_TAKEN, SNAPSHOT_BYTES_DOWNLOADED, SNAPSHOT_BYTES_UPLOADED, SNAPSHOT_RESTORES,
    SNAPSHOT_RESTORE_SECONDS, SNAPSHOT_SECONDS,
};

/// A snapshot taken and uploaded (`ok`) or not (`failed`), after `took`,
/// uploading `bytes`.
pub(crate) fn taken(store: &str, stream: &str, result: &'static str, took: Duration, bytes: u64) {
    let labels = [("store", store.to_owned()), ("stream", stream.to_owned())];
    metrics::counter!(
        SNAPSHOTS_TAKEN,
        &[
            ("store", store.to_owned()),
            ("stream", stream.to_owned()),
            ("result", result.to_owned())
        ]
    )
    .increment(1);
    if result == "ok" {
        metrics::histogram!(SNAPSHOT_SECONDS, &labels).record(took.as_secs_f64());
        metrics::counter!(SNAPSHOT_BYTES_UPLOADED, &labels).increment(bytes);
    }
}

/// A partition's bootstrap ended: `restored` from a snapshot (`bytes`
/// downloaded, after `took`) or `none` usable (full replay).
pub(crate) fn restore(store: &str, stream: &str, result: &'static str, took: Duration, bytes: u64) {
    let labels = [("store", store.to_owned()), ("stream", stream.to_owned())];
    metrics::counter!(
        SNAPSHOT_RESTORES,
        &[
            ("store", store.to_owned()),
            ("stream", stream.to_owned()),
            ("result", result.to_owned())
        ]
    )
    .increment(1);
    if result == "restored" {
        metrics::histogram!(SNAPSHOT_RESTORE_SECONDS, &labels).record(took.as_secs_f64());
        metrics::counter!(SNAPSHOT_BYTES_DOWNLOADED, &labels).increment(bytes);
    }
}

/// A snapshot a restore could not use, and why (`bad_manifest`,
/// `corrupt`, `past_end`, `other_format`, `failed`).
pub(crate) fn skipped(store: &str, stream: &str, reason: &'static str) {
    metrics::counter!(
        SNAPSHOTS_SKIPPED,
        &[
            ("store", store.to_owned()),
            ("stream", stream.to_owned()),
            ("reason", reason.to_owned())
        ]
    )
    .increment(1);
}
