//! Names of the metrics this crate records through the `metrics` facade
//! (no-ops until the application installs a recorder, e.g. a Prometheus
//! exporter). The full table is in docs/operations.md.

/// Counter: changelog records handed to the producer by store partitions.
/// Labels: `topic`, `partition`.
pub const CHANGELOG_RECORDS: &str = "kafka_state_changelog_records_total";
/// Counter: key and value bytes of those records. Labels: `topic`, `partition`.
pub const CHANGELOG_BYTES: &str = "kafka_state_changelog_bytes_total";
