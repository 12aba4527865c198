//! Column family names and the rule for which of them reach the changelog.
//!
//! The names are part of the on-disk and wire format: they are the ones
//! quixstreams uses, so a changelog written by either can be replayed by the
//! other.

/// The column family for user key-value data.
pub const DEFAULT: &str = "default";
/// Local-only bookkeeping: the stored changelog offset. Never emitted.
pub const METADATA: &str = "__metadata__";
/// Windowed stores: the last expired window start per prefix.
pub const EXPIRATION_INDEX: &str = "__expiration-index__";
/// Windowed stores: the last deleted window start per prefix.
pub const DELETION_INDEX: &str = "__deletion-index__";
/// Windowed stores: the last deleted collection value start per prefix.
pub const VALUE_DELETION_INDEX: &str = "__value-deletion-index__";
/// Windowed stores: the latest event timestamp seen per prefix.
pub const LATEST_TIMESTAMPS: &str = "__latest-timestamps__";
/// Windowed stores: values of collection windows.
pub const VALUES: &str = "__values__";
/// The persistent counter that makes keys unique (duplicates, collections).
pub const GLOBAL_COUNTER: &str = "__global-counter__";
/// Timestamped stores: the minimum eligible timestamp per prefix.
pub const MIN_ELIGIBLE_TIMESTAMPS: &str = "__min-eligible-timestamps__";

/// Key of the stored changelog offset inside [`METADATA`] (value: u64 BE).
pub const CHANGELOG_OFFSET_KEY: &[u8] = b"__changelog_offset__";

/// Per-write TTL (key-value stores in TTL mode): `u64 BE expiry ++ key` ->
/// empty value, one entry per value that can expire. Local only.
pub const TTL_INDEX: &str = "__ttl_index__";
/// Per-write TTL: the replicated "migration done" marker
/// ([`TTL_MIGRATION_DONE_KEY`] -> u64 BE format version). Produced last in the
/// checkpoint that switches a partition into TTL mode.
pub const TTL_SYSTEM: &str = "__ttl_system__";
/// quixstreams' census of legacy keys seen while replaying a changelog into a
/// TTL-capable partition (key -> empty value). Local only.
pub const TTL_BACKFILL_PENDING: &str = "__ttl_backfill_pending__";
/// quixstreams' ledger of keys already stamped by an interrupted live
/// backfill (key -> empty value). Local only; we never write it.
pub const TTL_BACKFILL_STAMPED: &str = "__ttl_backfill_stamped__";
/// quixstreams' backup of values taken by a provisional v3.24.0-stamp
/// adoption (key -> original value). Local only; we never write it.
pub const TTL_ADOPT_BACKUP: &str = "__ttl_adopt_backup__";

/// The one key of [`TTL_SYSTEM`].
pub const TTL_MIGRATION_DONE_KEY: &[u8] = b"__ttl_migration_done__";
/// [`METADATA`] key: `01` once the partition is in per-write TTL mode.
pub const TTL_ENABLED_KEY: &[u8] = b"__ttl_enabled__";
/// [`METADATA`] key: u64 BE layout version of stamped values (2).
pub const TTL_FORMAT_VERSION_KEY: &[u8] = b"__ttl_format_version__";
/// [`METADATA`] key: u64 BE, the highest event time seen by the partition
/// (the clock of the read-time filter and the sweep), written on every flush
/// of a partition in TTL mode.
pub const TTL_HIGH_WATER_KEY: &[u8] = b"__ttl_high_water_ms__";
/// [`METADATA`] key written by quixstreams while a v3.24.0-stamp adoption is
/// provisional (u64 BE wall-clock ms). We never write it.
pub const TTL_ADOPT_PENDING_KEY: &[u8] = b"__ttl_adopt_pending__";
/// [`METADATA`] key: quixstreams' live-backfill progress counter (u64 BE).
/// We never write it.
pub const TTL_BACKFILL_PROGRESS_KEY: &[u8] = b"__ttl_backfill_progress__";
/// [`METADATA`] key: quixstreams' "a live backfill is in flight" marker. We
/// never write it.
pub const TTL_BACKFILL_IN_PROGRESS_KEY: &[u8] = b"__ttl_backfill_in_progress__";
/// The stamped-value layout version quixstreams 3.28.1 writes and reads.
pub const TTL_FORMAT_VERSION: u64 = 2;

/// [`METADATA`] key recording the value codec the partition was written with
/// (`msgpack`, `json`, `raw`, UTF-8); see [`crate::check_store_format`].
/// quixstreams neither writes nor reads it.
pub const VALUE_CODEC_KEY: &[u8] = b"__value_codec__";

/// Column families whose writes are never produced to the changelog (the
/// same set as quixstreams' `LOCAL_ONLY_CFS`). [`TTL_SYSTEM`] is replicated on
/// purpose: its marker must survive a rebuild from the changelog.
pub const LOCAL_ONLY: &[&str] = &[
    METADATA,
    TTL_INDEX,
    TTL_BACKFILL_PENDING,
    TTL_BACKFILL_STAMPED,
    TTL_ADOPT_BACKUP,
];

/// True if writes to `cf` stay local and are never emitted to the changelog.
pub fn is_local_only(cf: &str) -> bool {
    LOCAL_ONLY.contains(&cf)
}

/// Key in [`METADATA`] recording which kind of store a partition holds
/// (`key-value`, `windowed`, `timestamped`); see [`crate::check_store_kind`].
pub const STORE_KIND_KEY: &[u8] = b"__store_kind__";
