//! The error type shared by every backend and by the layers built on them.

use std::path::PathBuf;

use crate::ids::StoreKind;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause kept by [`Error::Backend`] and [`Error::Changelog`]: any error
/// (or message) that can cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// ` <subject>` when there is one, for [`Error::Backend`]'s message.
fn on(subject: &Option<String>) -> String {
    subject.as_deref().map(|s| format!(" {s}")).unwrap_or_default()
}

/// ` (it needed N more bytes)` when known, for [`Error::DiskFull`]'s message.
fn needed(bytes: &Option<u64>) -> String {
    bytes
        .map(|n| format!(" (it needed {n} more bytes)"))
        .unwrap_or_default()
}

/// A storage engine option a backend relies on, named in
/// [`Error::OptionsRefused`] when a user's options hook changed it.
#[derive(Debug, PartialEq, Eq)]
pub struct RequiredOption {
    /// Backend name.
    pub backend: &'static str,
    /// The option, as the engine names it.
    pub option: &'static str,
    /// The value the backend needs.
    pub value: &'static str,
    /// What depends on it.
    pub why: &'static str,
}

/// Everything that can go wrong below the transaction layer: encoding, the
/// storage backend, and store/partition bookkeeping.
///
/// Messages are written for the operator who reads them in a log: they say
/// what happened and, where there is something to do, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value or key could not be encoded with the store's codec.
    #[error("cannot encode a value with the {codec} codec: {reason}")]
    Encode {
        /// Codec name (`msgpack`, `json`, `raw`).
        codec: &'static str,
        /// What the encoder reported.
        reason: String,
    },

    /// Stored bytes could not be decoded with the store's codec. The stored
    /// bytes are left untouched.
    #[error(
        "cannot decode {len} stored bytes with the {codec} codec: {reason} \
         (was the store written with another codec?)"
    )]
    Decode {
        /// Codec name.
        codec: &'static str,
        /// Length of the undecodable input.
        len: usize,
        /// What the decoder reported.
        reason: String,
    },

    /// Key bytes do not have the layout their column family requires
    /// (for example a window key shorter than its two timestamps).
    #[error("malformed key in layout {layout}: {reason}")]
    MalformedKey {
        /// Which layout was expected (`u64`, `window`, `timestamped`, ...).
        layout: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The storage backend failed. The operation had no effect unless the
    /// message says otherwise.
    #[error("{backend} backend failed while {operation}{}: {source}", on(.subject))]
    Backend {
        /// Backend name (`rocksdb`, `memory`, ...).
        backend: &'static str,
        /// What was being done (`reading`, `writing a batch`, ...).
        operation: &'static str,
        /// What it was done on (a partition directory, a column family),
        /// when the operation alone does not say.
        subject: Option<String>,
        /// The backend's own error (or, where the backend raised none, a
        /// message saying what is wrong).
        #[source]
        source: BoxError,
    },

    /// The filesystem holding the partition has no space left: a write,
    /// flush or open failed with `ENOSPC`. A failed write batch had no
    /// effect (batches are atomic); RocksDB may have turned the database
    /// read-only, which only reopening it clears. Match it with
    /// [`Error::is_disk_full`] or [`crate::disk_full_in`].
    #[error(
        "no space left on the filesystem holding {path}: the {backend} backend failed while {operation}{}; \
         free space on that filesystem (or grow it), then the call can be retried: nothing committed is lost",
        needed(.needed_bytes)
    )]
    DiskFull {
        /// Backend name.
        backend: &'static str,
        /// What was being done (`writing a batch`, `flushing memtables`, ...).
        operation: &'static str,
        /// The partition directory.
        path: PathBuf,
        /// How many more bytes the operation needed, when the backend says.
        needed_bytes: Option<u64>,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },

    /// The stored changelog offset is not 8 bytes: the metadata column family
    /// is corrupt or was written by something else.
    #[error(
        "stored changelog offset is {len} bytes, expected 8: the partition's \
         metadata is corrupt; delete the partition directory and recover it \
         from the changelog"
    )]
    CorruptChangelogOffset {
        /// Length of the stored value.
        len: usize,
    },

    /// A partition's files are locked by another process (or another open
    /// handle in this one) and the lock was not released within the retries.
    #[error(
        "partition at {path} is locked by another process or handle after \
         {attempts} attempts; stop the other instance or wait for it to \
         release the partition"
    )]
    PartitionLocked {
        /// Partition directory.
        path: PathBuf,
        /// How many opens were tried.
        attempts: u32,
    },

    /// There is no partition at the path (nothing there, or not a database).
    #[error(
        "no store partition at {path}: the directory does not exist or holds no \
         database; check the path (a partition directory is \
         <state-dir>/<group>/<store>/<stream>/<partition>)"
    )]
    PartitionNotFound {
        /// The path that was opened.
        path: PathBuf,
    },

    /// The partition's files are damaged or are not a database of this
    /// backend.
    #[error(
        "partition at {path} is corrupt or not a {backend} database ({reason}); \
         move the directory aside and let the partition recover from its changelog"
    )]
    PartitionCorrupt {
        /// Backend name.
        backend: &'static str,
        /// Partition directory.
        path: PathBuf,
        /// What the backend reported.
        reason: String,
    },

    /// A user's options hook changed a setting the backend relies on. The
    /// partition was closed again before anything was read or written.
    #[error(
        "the options hook set {}={found} for the partition at {path}, but the {} backend relies on {}={} \
         ({}); remove that setting from the hook",
        .required.option, .required.backend, .required.option, .required.value, .required.why
    )]
    OptionsRefused {
        /// Partition directory.
        path: PathBuf,
        /// The setting the backend relies on (static: it keeps the error
        /// small).
        required: &'static RequiredOption,
        /// The value the hook left.
        found: String,
    },

    /// The partition holds a different kind of store than the one opening it
    /// (e.g. a key-value store opened as windowed).
    #[error(
        "partition at {path} holds a {found} store, but was opened as {wanted}; \
         check the store name, or delete the directory if the store's kind changed \
         on purpose (it is rebuilt from the changelog)"
    )]
    WrongStoreKind {
        /// Partition directory.
        path: PathBuf,
        /// The kind recorded in the partition, as recorded (it may name no
        /// kind this version knows).
        found: String,
        /// The kind that was asked for.
        wanted: StoreKind,
    },

    /// Opening was abandoned because the caller's stop signal was raised.
    #[error("opening partition at {path} was cancelled by the stop signal")]
    OpenCancelled {
        /// Partition directory.
        path: PathBuf,
    },

    /// The requested partition is not assigned to this store.
    #[error("partition {partition} of store {store:?} is not assigned")]
    PartitionNotAssigned {
        /// Store name.
        store: String,
        /// Partition number.
        partition: u32,
    },

    /// An operation that needs no open partitions found some.
    #[error(
        "store {store:?} still has assigned partitions {partitions:?}; revoke \
         them before {operation}"
    )]
    PartitionsStillAssigned {
        /// Store name.
        store: String,
        /// What was refused.
        operation: &'static str,
        /// The assigned partitions.
        partitions: Vec<u32>,
    },

    /// A filesystem operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A write was attempted through a read-only snapshot.
    #[error("this is a read-only snapshot of a partition; write through the partition's transactions")]
    ReadOnly,

    /// A changelog sink refused or failed to accept a record.
    #[error("changelog sink failed: {0}")]
    Changelog(#[source] BoxError),

    /// The partition records another value codec than the one it is opened
    /// with. Nothing was read or written.
    #[error(
        "partition at {path} was written with the {recorded} codec but is opened with {requested}, \
         which would misread its values; open it with the {recorded} codec (or delete the directory \
         and recover it from a changelog written with {requested})"
    )]
    CodecMismatch {
        /// Partition directory.
        path: PathBuf,
        /// The codec recorded in the partition.
        recorded: String,
        /// The codec it was opened with.
        requested: &'static str,
    },

    /// The partition records no codec and its values look like another one
    /// than requested (a quixstreams store opened with MessagePack, say).
    /// Nothing was written.
    #[error(
        "partition at {path} records no value codec (it was written by quixstreams or an older \
         version) and its values look like {looks_like}, not {requested}; open it with the \
         {looks_like} codec, or if it really is {requested}, record that with \
         state_core::record_codec first"
    )]
    CodecUnrecorded {
        /// Partition directory.
        path: PathBuf,
        /// The codec it was opened with.
        requested: &'static str,
        /// The codec its values look like.
        looks_like: &'static str,
    },

    /// The partition is in quixstreams' per-write TTL mode but is opened by a
    /// store without TTL support, which would read the 8-byte stamps as
    /// data. Nothing was written.
    #[error(
        "partition at {path} is in quixstreams' per-write TTL mode (__ttl_enabled__: every value \
         starts with an 8-byte expiry stamp) but is opened as a {kind} store without TTL support, \
         which would read the stamps as data; open it as a key-value store with \
         TtlSupport::Enabled"
    )]
    TtlModeMismatch {
        /// Partition directory.
        path: PathBuf,
        /// The kind of store opening it.
        kind: StoreKind,
    },

    /// Per-write TTL was asked for a store kind that has none (quixstreams
    /// has it for key-value stores only).
    #[error(
        "per-write TTL is supported by key-value stores only, not {kind} stores; open the store \
         with TtlSupport::Disabled"
    )]
    TtlUnsupportedKind {
        /// The kind of store.
        kind: StoreKind,
    },

    /// The partition is in a state of quixstreams' TTL migration that we do
    /// not take over. Nothing was written.
    #[error("partition at {path}: {situation}")]
    TtlLegacyState {
        /// Partition directory.
        path: PathBuf,
        /// Which state, and what to do.
        situation: crate::legacy_ttl::LegacyTtl,
    },

    /// A changelog record was written with another codec than the partition
    /// it is replayed into. Nothing of the record (or its batch) was
    /// written.
    #[error(
        "changelog record at offset {offset} was written with the {found} codec, but the partition \
         records {expected}; replaying it would misread its values. Recover into a store opened \
         with that codec, or, if these records predate the __value_codec__ header and really are \
         {expected}, replay with HeaderlessRecords::StoreCodec"
    )]
    ReplayCodecMismatch {
        /// Offset of the record.
        offset: i64,
        /// The codec the record says it was written with.
        found: String,
        /// The partition's codec.
        expected: &'static str,
    },

    /// A record of quixstreams' per-write TTL (a `__ttl_stamped__` value or
    /// the migration-done marker) was replayed into a store without TTL
    /// support. Nothing of the record (or its batch) was written.
    #[error(
        "changelog record at offset {offset} belongs to quixstreams' per-write TTL mode \
         (__ttl_stamped__ or __ttl_migration_done__), but the store was opened without TTL support; \
         open it as a key-value store with TtlSupport::Enabled"
    )]
    ReplayTtlUnsupported {
        /// Offset of the record.
        offset: i64,
    },
}

impl Error {
    /// A [`Error::Backend`] error: `backend` failed while doing `operation`
    /// because of `source` (the backend's error, or a message where it
    /// raised none).
    pub fn backend(backend: &'static str, operation: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            operation,
            subject: None,
            source: source.into(),
        }
    }

    /// A [`Error::Backend`] error about `subject` (a partition directory, a
    /// column family): `backend` failed while doing `operation` on it
    /// because of `source`.
    pub fn backend_on(
        backend: &'static str,
        operation: &'static str,
        subject: impl std::fmt::Display,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            backend,
            operation,
            subject: Some(subject.to_string()),
            source: source.into(),
        }
    }

    /// Shorthand for an [`Error::MalformedKey`] error.
    pub fn malformed_key(layout: &'static str, reason: impl Into<String>) -> Self {
        Error::MalformedKey {
            layout,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn backend_errors_keep_their_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no access");
        let err = Error::backend_on("rocksdb", "opening the partition", "/state/g/s/t/0", io);
        assert_eq!(
            err.to_string(),
            "rocksdb backend failed while opening the partition /state/g/s/t/0: no access"
        );
        let cause = err.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            cause.map(std::io::Error::kind),
            Some(std::io::ErrorKind::PermissionDenied)
        );

        let err = Error::backend("fjall", "writing a batch", "key too long");
        assert_eq!(
            err.to_string(),
            "fjall backend failed while writing a batch: key too long"
        );
        assert_eq!(err.source().map(ToString::to_string).as_deref(), Some("key too long"));
    }

    #[test]
    fn changelog_errors_keep_their_cause() {
        let err = Error::Changelog(Box::new(std::io::Error::other("broker down")));
        assert_eq!(err.to_string(), "changelog sink failed: broker down");
        assert!(err.source().is_some_and(|s| s.is::<std::io::Error>()));
    }
}
