//! The demo's window operators: views per page in tumbling windows, and
//! sessions per user, on `state-windows`. Each is called once per record
//! with the record's partition transaction; its state lives in a windowed
//! store of the manager, so it follows the changelog through the crash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use state_windows::kinds::{FixedKind, SessionKind};
use state_windows::layout::Single;
use state_windows::{Count, DefinitionError, Session, Tumbling, WindowOperator};

/// Views per page and window: a count, emitted when the window closes.
pub(crate) type PageViews = WindowOperator<(), FixedKind, Single<Count>>;

/// Views per user session (records are the viewed page), emitted when the
/// session closes. (A session moves to a new key with every view, so each
/// view costs a changelog tombstone: quixstreams' layout. Larger session
/// states would outgrow the embedded mock cluster's 5 MB per partition at
/// the demo's default size.)
pub(crate) type UserSessions = WindowOperator<str, SessionKind, Single<Count>>;

/// Late records, counted by the operators' callbacks (the demo's input is
/// out of order by less than the grace, so a late record is a bug the
/// verification reports).
#[derive(Debug, Default)]
pub(crate) struct LateCounts {
    pub page_views: AtomicU64,
    pub sessions: AtomicU64,
}

impl LateCounts {
    pub fn total(&self) -> u64 {
        self.page_views.load(Ordering::Relaxed) + self.sessions.load(Ordering::Relaxed)
    }
}

/// Tumbling windows of `size` taking records up to `grace` late.
pub(crate) fn page_views(
    size: Duration,
    grace: Duration,
    late: &Arc<LateCounts>,
) -> Result<PageViews, DefinitionError> {
    let late = late.clone();
    Ok(Tumbling::new(size)
        .grace(grace)
        .aggregate(Count::new())?
        .on_late(move |_| {
            late.page_views.fetch_add(1, Ordering::Relaxed);
        }))
}

/// Sessions with inactivity gap `gap`.
pub(crate) fn user_sessions(gap: Duration, late: &Arc<LateCounts>) -> Result<UserSessions, DefinitionError> {
    let late = late.clone();
    Ok(Session::new(gap).aggregate(Count::new())?.on_late(move |_| {
        late.sessions.fetch_add(1, Ordering::Relaxed);
    }))
}
