//! [`SnapshotStore`]: a connected object store holding partition
//! snapshots, with the blocking calls the rest of the crate makes on it.
//! Uploading, downloading, listing and retention are in their own modules
//! (`upload`, `download`, `list`, `retention`), each an `impl` block here.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload};

use crate::connect::{connect, Connected, StoreOptions};
use crate::error::{Result, SnapshotError};

/// How many snapshots retention keeps, and how long a file no manifest
/// references is kept anyway (it may belong to an upload in progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Newest snapshots kept per partition (at least 1).
    pub keep_newest: usize,
    /// Files and pending manifests younger than this are never deleted;
    /// an upload that takes longer than 90% of it is abandoned before its
    /// manifest is written ([`SnapshotError::UploadTooSlow`]).
    pub grace: Duration,
}

impl Default for Retention {
    /// The newest 3 snapshots; an hour of grace.
    fn default() -> Self {
        Retention {
            keep_newest: 3,
            grace: Duration::from_secs(3600),
        }
    }
}

/// An object store holding partition snapshots (see [`crate::SnapshotScope`]
/// for the layout). Blocking: it runs its own single-threaded I/O runtime,
/// so it must not be called from inside an async runtime's thread (use
/// `spawn_blocking`).
pub struct SnapshotStore {
    pub(crate) conn: Connected,
    pub(crate) retention: Retention,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("url", &self.conn.display)
            .field("retention", &self.retention)
            .finish()
    }
}

impl SnapshotStore {
    /// Connects to the store at `url` (`file:///abs/dir`;
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
    /// with the `aws`, `gcp`, `azure` features), configured by the
    /// environment and `options` (credentials never in the URL). Makes no
    /// request: a store that cannot be reached fails on first use.
    pub fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        let conn = connect(url, options)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SnapshotError::Runtime)?;
        Ok(SnapshotStore {
            conn,
            retention: Retention::default(),
            runtime,
        })
    }

    /// The same with retention `retention` (`keep_newest` at least 1).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Retention {
            keep_newest: retention.keep_newest.max(1),
            ..retention
        };
        self
    }

    /// The retention in force.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The store's URL as it may be shown (no credentials).
    pub fn url(&self) -> &str {
        &self.conn.display
    }

    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The store's failure of `operation` on `object`, secrets redacted.
    pub(crate) fn failed(&self, operation: &'static str, object: &Path, e: object_store::Error) -> SnapshotError {
        SnapshotError::Store {
            store: self.conn.display.clone(),
            operation,
            object: object.to_string(),
            not_found: matches!(e, object_store::Error::NotFound { .. }),
            message: self.conn.secrets.redact(&e.to_string()),
        }
    }

    /// Every object under `prefix` (none if it does not exist).
    pub(crate) fn list_objects(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        self.block_on(async {
            let mut stream = self.conn.store.list(Some(prefix));
            let mut out = Vec::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(meta) => out.push(meta),
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.failed("listing", prefix, e)),
                }
            }
            Ok(out)
        })
    }

    /// The whole object `object`.
    pub(crate) fn get_bytes(&self, object: &Path) -> Result<Vec<u8>> {
        self.block_on(async {
            let got = self
                .conn
                .store
                .get(object)
                .await
                .map_err(|e| self.failed("reading", object, e))?;
            let bytes = got.bytes().await.map_err(|e| self.failed("reading", object, e))?;
            Ok(bytes.to_vec())
        })
    }

    /// Writes `bytes` as `object` (atomically: readers see all or nothing).
    pub(crate) fn put_bytes(&self, object: &Path, bytes: Vec<u8>) -> Result<()> {
        self.block_on(async {
            self.conn
                .store
                .put(object, PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| self.failed("writing", object, e))
        })
    }

    /// Deletes `object`; one already gone is fine.
    pub(crate) fn delete(&self, object: &Path) -> Result<()> {
        self.block_on(async {
            match self.conn.store.delete(object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.failed("deleting", object, e)),
            }
        })
    }
}

/// The last part of an object's key.
pub(crate) fn object_name(path: &Path) -> String {
    path.filename().unwrap_or_default().to_owned()
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Age of an object (zero if its time is in the future).
pub(crate) fn age(meta: &ObjectMeta) -> Duration {
    let modified = meta.last_modified.timestamp_millis().max(0) as u64;
    Duration::from_millis(now_unix_ms().saturating_sub(modified))
}
