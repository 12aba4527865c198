//! Names of one run's topics and the handles of its stores.

use state_manager::{KeyValueStore, StoreHandle, WindowedStore};

/// The consumer group of the demo.
pub(crate) const GROUP: &str = "pageviews-demo";
/// The key-value store of view totals per user.
pub(crate) const USER_TOTALS: &str = "user-totals";
/// The windowed store of views per page.
pub(crate) const PAGE_WINDOWS: &str = "page-windows";
/// The windowed store of sessions per user.
pub(crate) const USER_SESSIONS: &str = "user-sessions";

/// Topic names of one run (suffixed on a real cluster so reruns start clean).
pub(crate) struct Topics {
    pub input: String,
    pub by_page: String,
    /// Closed page windows.
    pub output: String,
    /// Closed user sessions.
    pub sessions: String,
    /// Where the bare reference pipeline writes (one record per event).
    pub bare_output: String,
    /// The two-stage bare pipeline's repartition topic (its first stage
    /// writes one record per event here, keyed by page, as the demo's
    /// `by_page`).
    pub bare_by_page: String,
}

/// The stores of one processor, as its manager registered them.
#[derive(Clone, Debug)]
pub(crate) struct Stores {
    /// Views per user (stream: the input topic).
    pub user_totals: StoreHandle<KeyValueStore>,
    /// Views per page and window (stream: the by-page topic).
    pub page_windows: StoreHandle<WindowedStore>,
    /// Sessions per user (stream: the input topic).
    pub user_sessions: StoreHandle<WindowedStore>,
}
