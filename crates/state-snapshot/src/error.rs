//! [`SnapshotError`]: what can go wrong with snapshots, said for the
//! operator who reads it in a log.

use std::path::PathBuf;

/// A `Result` whose error is [`SnapshotError`].
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// Everything that can go wrong while taking, uploading, listing,
/// downloading, verifying or pruning snapshots.
///
/// No message holds a credential: store URLs are shown without user
/// information or query strings, and messages of the object store's client
/// pass through [`crate::Secrets::redact`] before they are kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The store URL cannot be used.
    #[error(
        "snapshot store {url:?}: {reason}; give a URL such as file:///var/lib/app/snapshots or \
         s3://bucket/prefix"
    )]
    BadUrl {
        /// The URL, without credentials.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The URL names a service this build has no client for.
    #[error(
        "snapshot store {url:?} needs the {feature:?} feature of state-snapshot (kafka-state: \
         snapshots-{feature}), which this build does not have"
    )]
    ServiceNotBuilt {
        /// The URL, without credentials.
        url: String,
        /// The feature that adds the service.
        feature: &'static str,
    },

    /// A store option (`KEY=VALUE`, from a config file or the command line)
    /// is not one object_store knows for this service.
    #[error("snapshot store option {key:?}: {reason}")]
    BadOption {
        /// The option's key (never its value).
        key: String,
        /// Why it was refused.
        reason: String,
    },

    /// The object store refused or failed a request.
    #[error("snapshot store {store}: {operation} {object} failed: {message}")]
    Store {
        /// The store, without credentials.
        store: String,
        /// What was being done (`uploading`, `listing`, ...).
        operation: &'static str,
        /// The object or prefix it was done on.
        object: String,
        /// The client's message, secrets redacted.
        message: String,
        /// Whether the object was simply not there.
        not_found: bool,
    },

    /// A local file or directory could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The partition or backend failed (taking a snapshot, opening a
    /// restored one).
    #[error(transparent)]
    Partition(#[from] state_core::Error),

    /// A manifest cannot be read or is not one this version understands.
    #[error(
        "snapshot manifest {object} is unusable ({reason}); the snapshot is skipped (restores fall \
         back to an older one) and retention removes it"
    )]
    BadManifest {
        /// The manifest's object key.
        object: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A downloaded (or verified) file is not what the manifest says.
    #[error(
        "snapshot {snapshot}: file {file} is damaged in the store ({reason}); this snapshot cannot \
         be used (restores fall back to an older one)"
    )]
    Corrupt {
        /// The snapshot's id.
        snapshot: String,
        /// The file's path inside the snapshot.
        file: String,
        /// Expected and found size or checksum.
        reason: String,
    },

    /// A restored snapshot opened, but its data does not carry the
    /// changelog offset its manifest records.
    #[error(
        "snapshot {snapshot} opened with changelog offset {found:?}, but its manifest records \
         {recorded:?}; the snapshot is not used"
    )]
    OffsetMismatch {
        /// The snapshot's id.
        snapshot: String,
        /// The offset in the manifest.
        recorded: Option<u64>,
        /// The offset in the opened data.
        found: Option<u64>,
    },

    /// No snapshot has the requested id.
    #[error("no snapshot {snapshot} of store {scope} in {store}; `statectl snapshot list` shows the ids")]
    NoSuchSnapshot {
        /// The requested id.
        snapshot: String,
        /// The store's name and partition.
        scope: String,
        /// The store, without credentials.
        store: String,
    },

    /// An upload took so long that retention might already treat its
    /// files as orphans; it was abandoned before its manifest was written.
    #[error(
        "uploading snapshot {snapshot} took {elapsed_s} s, past its deadline of {deadline_s} s \
         (90% of the retention grace period); it was abandoned (its files are removed by retention). \
         Raise the grace period above the longest upload"
    )]
    UploadTooSlow {
        /// The snapshot's id.
        snapshot: String,
        /// Seconds the upload took.
        elapsed_s: u64,
        /// The deadline, seconds.
        deadline_s: u64,
    },

    /// The caller cancelled a download, restore or verification
    /// ([`crate::Progress::cancelled`]), usually because the process is
    /// stopping. A download's partial files are deleted and a restore
    /// installed nothing: the partition's directory is as before.
    #[error(
        "snapshot {snapshot}: the download was cancelled (the process is stopping); its partial \
         files were deleted and nothing was installed, so the partition restores again (from a \
         snapshot or its changelog) when it is next assigned"
    )]
    Cancelled {
        /// The snapshot's id.
        snapshot: String,
    },

    /// The backend of the partition takes no snapshots.
    #[error("the {backend} backend takes no snapshots")]
    NotSupported {
        /// The backend's name.
        backend: &'static str,
    },

    /// A snapshot's files cannot be restored into the target: another
    /// backend, a directory that is not empty.
    #[error("{0}")]
    Target(String),

    /// The snapshot store's own runtime could not start.
    #[error("cannot start the snapshot store's I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl SnapshotError {
    /// True if the error says an object was not in the store.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SnapshotError::Store { not_found: true, .. })
    }

    /// True if the caller cancelled the operation
    /// ([`SnapshotError::Cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, SnapshotError::Cancelled { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SnapshotError {
        let path = path.into();
        move |source| SnapshotError::Io { path, source }
    }
}
