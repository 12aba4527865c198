//! The metrics window operators record through the `metrics` facade
//! (no-ops until the application installs a recorder). The table of every
//! metric of the library is in `docs/operations.md`.

/// Counter: records that came too late for at least one of their windows
/// (each counted once, whatever the number of windows). Label `window`:
/// the operator's store name.
pub const LATE_RECORDS: &str = "kafka_state_window_late_records_total";

/// Registers the description (HELP text) of every metric of this crate
/// with the installed recorder. `state_manager::metrics::describe` calls
/// it too.
pub fn describe() {
    metrics::describe_counter!(
        LATE_RECORDS,
        "Records that arrived after at least one of their windows had closed, by window"
    );
}

pub(crate) fn late_record(window: &str) {
    metrics::counter!(LATE_RECORDS, "window" => window.to_owned()).increment(1);
}
