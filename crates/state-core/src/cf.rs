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

/// Column families whose writes are never produced to the changelog.
pub const LOCAL_ONLY: &[&str] = &[METADATA];

/// True if writes to `cf` stay local and are never emitted to the changelog.
pub fn is_local_only(cf: &str) -> bool {
    LOCAL_ONLY.contains(&cf)
}

/// Key in [`METADATA`] recording which kind of store a partition holds
/// (`key-value`, `windowed`, `timestamped`); see [`crate::check_store_kind`].
pub const STORE_KIND_KEY: &[u8] = b"__store_kind__";
