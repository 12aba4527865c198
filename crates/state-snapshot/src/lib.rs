//! Partition snapshots in an object store: the local filesystem always;
//! S3, GCS and Azure with the `aws`, `gcp`, `azure` features (object_store's
//! own clients).
//!
//! * [`SnapshotStore`] — a connected store ([`StoreOptions`] configure it;
//!   credentials come from the environment or a config file, never the URL,
//!   and never appear in messages).
//! * Upload ([`SnapshotStore::create`], [`SnapshotStore::upload`]):
//!   a backend's [`LocalSnapshot`](state_core::LocalSnapshot), only the
//!   files the store does not hold yet (content-addressed by XXH3-128 and
//!   size), then a [`Manifest`].
//! * Download ([`SnapshotStore::download`], [`SnapshotStore::restore`],
//!   [`SnapshotStore::verify`]): every file's checksum checked.
//! * Retention ([`SnapshotStore::prune`], [`Retention`]).
//! * Layout of the objects: [`SnapshotScope`]; the manifest format:
//!   docs/formats.md.
//! * [`crash_point`] — named kill points on these paths for the crash
//!   harness (a test facility, inert unless armed by an environment
//!   variable).

mod checksum;
mod connect;
pub mod crash_point;
mod download;
mod error;
mod list;
mod manifest;
mod progress;
mod retention;
mod scope;
mod secrets;
mod store;
#[cfg(test)]
mod testing;
mod upload;

pub use checksum::Checksum;
pub use connect::StoreOptions;
pub use download::Verified;
pub use error::{Result, SnapshotError};
pub use list::Listed;
pub use manifest::{Manifest, ManifestFile, FORMAT_VERSION};
pub use progress::{NoProgress, Progress};
pub use retention::Pruned;
pub use scope::SnapshotScope;
pub use secrets::{display_url, is_secret_option, Secrets};
pub use store::{Retention, SnapshotStore};
pub use upload::Uploaded;
