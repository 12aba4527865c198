//! What the run shares with the HTTP handlers, and the handlers.

use std::collections::BTreeSet;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use state_changelog::changelog_topic_name;
use state_core::Direction;
use state_manager::{ManagerError, StateReader};

use super::reply::Reply;
use super::request::{no_query, percent_decode, Route, WindowQuery};
use super::{Endpoints, HTTP_REQUESTS};
use crate::events::partition_of;
use crate::restores::RecoveryStats;
use crate::topics::{Stores, GROUP, PAGE_WINDOWS, USER_TOTALS};

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Creating topics.
    Starting,
    /// Writing the click stream.
    Producing,
    /// A processor is running (restoring, processing).
    Processing,
    /// Between the crash and the next processor.
    Restarting,
    /// Reading the output back and comparing.
    Verifying,
    /// Done; the final state is still served (see `Config::hold`).
    Finished,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Producing => "producing",
            Phase::Processing => "processing",
            Phase::Restarting => "restarting",
            Phase::Verifying => "verifying",
            Phase::Finished => "finished",
        }
    }
}

/// The state of the current processor that the handlers read.
pub(crate) struct Live {
    /// Reads committed state without the manager's lock.
    pub reader: StateReader,
    /// The processor's store handles.
    pub stores: Stores,
    /// Its restore progress.
    pub recovery: Arc<Mutex<RecoveryStats>>,
}

/// What `/status` shows and the handlers use to tell "restoring" (503)
/// from "owned elsewhere" (404).
struct Status {
    phase: Phase,
    processed: u64,
    crashed_after: Option<u64>,
    /// Source partitions assigned here, as (stream, partition).
    assigned: BTreeSet<(String, u32)>,
    /// Those still restoring.
    restoring: BTreeSet<(String, u32)>,
    verdict: Option<String>,
}

/// What the run shares with the HTTP handlers.
pub(crate) struct Shared {
    /// The current processor's reader; `None` while none runs. Handlers hold
    /// the read lock for the length of one read, so taking the write lock
    /// (before a processor is dropped) waits for reads in flight.
    live: RwLock<Option<Live>>,
    status: Mutex<Status>,
    events: u64,
    partitions: u32,
    window_ms: i64,
    /// The input topic (stream of the user totals).
    input: String,
    /// The repartition topic (stream of the page windows).
    by_page: String,
    pub(super) prometheus: PrometheusHandle,
}

impl Shared {
    /// Shared state of a run over `partitions` partitions.
    pub fn new(
        prometheus: PrometheusHandle,
        events: u64,
        partitions: u32,
        window_ms: i64,
        input: &str,
        by_page: &str,
    ) -> Self {
        Shared {
            live: RwLock::new(None),
            status: Mutex::new(Status {
                phase: Phase::Starting,
                processed: 0,
                crashed_after: None,
                assigned: BTreeSet::new(),
                restoring: BTreeSet::new(),
                verdict: None,
            }),
            events,
            partitions,
            window_ms,
            input: input.to_owned(),
            by_page: by_page.to_owned(),
            prometheus,
        }
    }

    /// Moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.status.lock().phase = phase;
    }

    /// Serves `live` (a new processor's state) from now on.
    pub fn set_live(&self, live: Live) {
        *self.live.write() = Some(live);
        let mut s = self.status.lock();
        s.phase = Phase::Processing;
        s.assigned.clear();
        s.restoring.clear();
    }

    /// Stops serving the current processor's state (waiting for reads in
    /// flight) and moves to `phase`.
    pub fn clear_live(&self, phase: Phase) {
        *self.live.write() = None;
        let mut s = self.status.lock();
        s.phase = phase;
        s.assigned.clear();
        s.restoring.clear();
    }

    /// Records the crash point.
    pub fn crashed(&self, after: u64) {
        self.status.lock().crashed_after = Some(after);
    }

    /// Records progress and the current assignment.
    pub fn update(&self, processed: u64, assigned: BTreeSet<(String, u32)>, restoring: BTreeSet<(String, u32)>) {
        let mut s = self.status.lock();
        s.processed = processed;
        s.assigned = assigned;
        s.restoring = restoring;
    }

    /// Records the verdict; the phase becomes [`Phase::Finished`].
    pub fn finished(&self, processed: u64, verdict: String) {
        let mut s = self.status.lock();
        s.processed = processed;
        s.verdict = Some(verdict);
        s.phase = Phase::Finished;
    }

    /// The streams whose partitions the demo assigns.
    pub fn streams(&self) -> [&str; 2] {
        [&self.input, &self.by_page]
    }

    /// Answers one request (and counts it).
    pub(super) fn handle(&self, endpoints: Endpoints, method: &str, url: &str) -> Reply {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let route = Route::of(path);
        let reply = self.route(endpoints, method, path, query, &route);
        metrics::counter!(HTTP_REQUESTS, "endpoint" => route.label(), "status" => reply.status.to_string())
            .increment(1);
        reply
    }

    fn route(&self, endpoints: Endpoints, method: &str, path: &str, query: &str, route: &Route<'_>) -> Reply {
        if endpoints == Endpoints::MetricsOnly && *route != Route::Metrics {
            return Reply::error(
                404,
                format!("{path}: not found; this listener (--metrics) serves only GET /metrics"),
            );
        }
        if !matches!(method, "GET" | "HEAD") {
            return Reply::error(405, format!("{method} {path}: only GET is supported")).allow_get();
        }
        match *route {
            Route::Metrics => {
                self.prometheus.run_upkeep();
                Reply::text(
                    200,
                    self.prometheus.render(),
                    "text/plain; version=0.0.4; charset=utf-8",
                )
            }
            Route::Index => Reply::json(
                200,
                json!({
                    "endpoints": [
                        "GET /metrics",
                        "GET /users/<id>/views",
                        "GET /pages/<page>/windows?from=<ms>&to=<ms>",
                        "GET /status",
                    ],
                    "authentication": "none",
                }),
            ),
            Route::Status => self.status(),
            Route::UserViews(raw) => match percent_decode(raw) {
                Ok(user) if !user.is_empty() => match no_query(query) {
                    Ok(()) => self.user_views(&user),
                    Err(e) => Reply::error(400, e),
                },
                Ok(_) => Reply::error(400, "the user id is empty: GET /users/<id>/views".into()),
                Err(e) => Reply::error(400, format!("user id: {e}")),
            },
            Route::PageWindows(raw) => match percent_decode(raw) {
                Ok(page) if !page.is_empty() => match WindowQuery::parse(query) {
                    Ok(q) => self.page_windows(&page, q),
                    Err(e) => Reply::error(400, e),
                },
                Ok(_) => Reply::error(400, "the page is empty: GET /pages/<page>/windows".into()),
                Err(e) => Reply::error(400, format!("page: {e}")),
            },
            Route::Other => Reply::error(
                404,
                format!(
                    "{path}: not found; try GET /metrics, /users/<id>/views, /pages/<page>/windows?from=&to= or /status"
                ),
            ),
        }
    }

    fn status(&self) -> Reply {
        let s = self.status.lock();
        let list = |set: &BTreeSet<(String, u32)>, stream: &str| -> Vec<u32> {
            set.iter().filter(|(s, _)| s == stream).map(|(_, p)| *p).collect()
        };
        let by_stream = |set: &BTreeSet<(String, u32)>| -> Value {
            json!({
                USER_TOTALS: list(set, &self.input),
                PAGE_WINDOWS: list(set, &self.by_page),
            })
        };
        Reply::json(
            200,
            json!({
                "phase": s.phase.as_str(),
                "events": self.events,
                "processed": s.processed,
                "crashed_after": s.crashed_after,
                "partitions": self.partitions,
                "assigned": by_stream(&s.assigned),
                "restoring": by_stream(&s.restoring),
                "verified": s.verdict,
            }),
        )
    }

    fn user_views(&self, user: &str) -> Reply {
        let partition = partition_of(user, self.partitions);
        let live = self.live.read();
        let Some(live) = live.as_ref() else {
            return self.no_processor();
        };
        match live
            .reader
            .get::<str, u64>(&live.stores.user_totals, partition, "total", user.as_bytes())
        {
            Ok(views) => Reply::json(
                200,
                json!({ "user": user, "partition": partition, "views": views.unwrap_or(0) }),
            ),
            Err(ManagerError::NotOwned { .. }) => self.not_readable(live, &self.input, USER_TOTALS, partition),
            Err(e) => Reply::error(500, format!("reading the views of {user:?}: {e}")),
        }
    }

    fn page_windows(&self, page: &str, q: WindowQuery) -> Reply {
        let partition = partition_of(page, self.partitions);
        let live = self.live.read();
        let Some(live) = live.as_ref() else {
            return self.no_processor();
        };
        // The reader's range excludes its lower bound; the query includes it.
        match live.reader.get_windows::<u64>(
            &live.stores.page_windows,
            partition,
            q.from.saturating_sub(1),
            q.to,
            page.as_bytes(),
            Direction::Forward,
        ) {
            Ok(windows) => Reply::json(
                200,
                json!({
                    "page": page,
                    "partition": partition,
                    "window_ms": self.window_ms,
                    "windows": windows
                        .iter()
                        .map(|w| json!({ "start": w.start, "end": w.end, "count": w.value }))
                        .collect::<Vec<_>>(),
                }),
            ),
            Err(ManagerError::NotOwned { .. }) => self.not_readable(live, &self.by_page, PAGE_WINDOWS, partition),
            Err(e) => Reply::error(500, format!("reading the windows of {page:?}: {e}")),
        }
    }

    fn no_processor(&self) -> Reply {
        let phase = self.status.lock().phase;
        let why = match phase {
            Phase::Restarting => "the processor crashed (on purpose) and its successor is starting",
            Phase::Finished => "the run is over",
            _ => "no processor is running yet",
        };
        Reply::error(503, format!("no state to read: {why} (phase {})", phase.as_str())).retry()
    }

    /// Why partition `partition` of `store` (stream `stream`) cannot be read.
    fn not_readable(&self, live: &Live, stream: &str, store: &str, partition: u32) -> Reply {
        let s = self.status.lock();
        let key = (stream.to_owned(), partition);
        if s.restoring.contains(&key) {
            let changelog = changelog_topic_name(GROUP, stream, store);
            let progress = live
                .recovery
                .lock()
                .partitions
                .get(&(changelog, partition as i32))
                .map(|r| format!(" ({} of {} changelog records)", r.done, r.total))
                .unwrap_or_default();
            return Reply::error(
                503,
                format!("partition {partition} of store {store:?} is restoring its state from the changelog{progress}"),
            )
            .retry();
        }
        if s.assigned.contains(&key) || !s.assigned.iter().any(|(st, _)| st == stream) {
            // Assigned but not readable yet, or nothing of the stream is
            // assigned yet: the group is still handing partitions out.
            return Reply::error(
                503,
                format!("partition {partition} of store {store:?} is being assigned to this instance"),
            )
            .retry();
        }
        Reply::error(
            404,
            format!(
                "partition {partition} of store {store:?} (stream {stream:?}) is not owned by this instance; \
                 ask the instance that owns it"
            ),
        )
    }
}
