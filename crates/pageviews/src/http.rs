//! The HTTP endpoints pageviews serves while it runs (`--http`, `--metrics`):
//! Prometheus metrics and interactive queries of the committed state.
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /metrics` | every metric, Prometheus text format |
//! | `GET /users/<id>/views` | `{"user", "partition", "views"}`: the user's committed total |
//! | `GET /pages/<page>/windows?from=&to=` | `{"page", "partition", "windows": [{"start", "end", "count"}]}`: the page's windows with `from <= start <= to` (ms since the epoch, both optional) |
//! | `GET /status` | the run's phase, progress and partitions |
//!
//! Reads go through the manager's [`StateReader`]: they see what the last
//! checkpoint committed, only for partitions this instance owns and has
//! restored. A partition that is restoring (or a processor restarting)
//! answers 503 with `Retry-After`, a partition owned elsewhere 404; never
//! stale data. Path segments are percent-decoded: page `/page/0042` is
//! `/pages/%2Fpage%2F0042/windows` (or `/pages//page/0042/windows`).
//!
//! There is no authentication: anyone who can connect can read every
//! count. The servers bind to loopback unless told otherwise.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use state_changelog::changelog_topic_name;
use state_core::Direction;
use state_manager::{ManagerError, StateReader};
use tiny_http::{Header, Method, Request, Response};

use crate::events::partition_of;
use crate::restores::RecoveryStats;
use crate::topics::{Stores, GROUP, PAGE_WINDOWS, USER_TOTALS};
use crate::{DemoError, Result};

/// Counter: HTTP requests answered. Labels `endpoint` (`metrics`,
/// `user_views`, `page_windows`, `status`, `index`, `other`), `status`
/// (the HTTP status code).
pub const HTTP_REQUESTS: &str = "pageviews_http_requests_total";
/// Counter: input events processed (re-processing after the crash included).
pub const EVENTS_PROCESSED: &str = "pageviews_events_processed_total";

/// Bucket bounds (seconds) of the checkpoint stage histograms.
const STAGE_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// How long a worker waits for a request before it looks at its stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(200);
/// How often the Prometheus recorder's upkeep (histogram housekeeping) runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// What 503 answers tell clients to wait, seconds.
const RETRY_AFTER_SECS: u32 = 1;

/// Which endpoints a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    /// `/metrics`, the queries and `/status` (`--http`).
    All,
    /// `/metrics` only (`--metrics`).
    MetricsOnly,
}

/// A listener that is up: sent on [`crate::Config::listening`] once bound
/// (useful with port 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listening {
    /// What it serves.
    pub endpoints: Endpoints,
    /// The address it is bound to.
    pub addr: SocketAddr,
}

/// The Prometheus recorder of this process, installed as the `metrics`
/// facade's global recorder on first use (there is one per process).
pub(crate) fn prometheus() -> Result<PrometheusHandle> {
    static HANDLE: OnceLock<std::result::Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(state_manager::metrics::CHECKPOINT_STAGE_SECONDS.to_owned()),
                    STAGE_BUCKETS,
                )
                .and_then(|b| b.install_recorder())
                .map_err(|e| e.to_string())?;
            describe_metrics();
            Ok(handle)
        })
        .clone()
        .map_err(DemoError::Metrics)
}

/// HELP lines of every metric /metrics shows (docs/operations.md has the table).
fn describe_metrics() {
    use metrics::describe_counter;
    state_manager::metrics::describe();
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered by pageviews");
    describe_counter!(
        EVENTS_PROCESSED,
        "Input events processed by pageviews, re-processing included"
    );
}

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
    prometheus: PrometheusHandle,
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
    fn handle(&self, endpoints: Endpoints, method: &Method, url: &str) -> Reply {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let route = Route::of(path);
        let reply = self.route(endpoints, method, path, query, &route);
        metrics::counter!(HTTP_REQUESTS, "endpoint" => route.label(), "status" => reply.status.to_string())
            .increment(1);
        reply
    }

    fn route(&self, endpoints: Endpoints, method: &Method, path: &str, query: &str, route: &Route<'_>) -> Reply {
        if endpoints == Endpoints::MetricsOnly && *route != Route::Metrics {
            return Reply::error(
                404,
                format!("{path}: not found; this listener (--metrics) serves only GET /metrics"),
            );
        }
        if !matches!(method, Method::Get | Method::Head) {
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

/// The endpoint a path names.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Metrics,
    Index,
    Status,
    UserViews(&'a str),
    PageWindows(&'a str),
    Other,
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Self {
        match path {
            "/metrics" => return Route::Metrics,
            "/" => return Route::Index,
            "/status" => return Route::Status,
            _ => {}
        }
        if let Some(user) = path.strip_prefix("/users/").and_then(|p| p.strip_suffix("/views")) {
            return Route::UserViews(user);
        }
        // Pages contain slashes; everything between the two fixed parts is
        // the page.
        if let Some(page) = path.strip_prefix("/pages/").and_then(|p| p.strip_suffix("/windows")) {
            return Route::PageWindows(page);
        }
        Route::Other
    }

    fn label(&self) -> &'static str {
        match self {
            Route::Metrics => "metrics",
            Route::Index => "index",
            Route::Status => "status",
            Route::UserViews(_) => "user_views",
            Route::PageWindows(_) => "page_windows",
            Route::Other => "other",
        }
    }
}

/// `?from=&to=` of the windows query: window starts, ms since the epoch,
/// both inclusive, both optional.
#[derive(Debug, PartialEq, Eq)]
struct WindowQuery {
    from: i64,
    to: i64,
}

impl WindowQuery {
    fn parse(query: &str) -> std::result::Result<Self, String> {
        let mut from = None;
        let mut to = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name)?;
            let value = percent_decode(value)?;
            let slot = match name.as_str() {
                "from" => &mut from,
                "to" => &mut to,
                _ => return Err(format!("unknown query parameter {name:?}; expected from and to")),
            };
            if slot.is_some() {
                return Err(format!("query parameter {name:?} is given twice"));
            }
            let ms: i64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{name}={value:?} is not a window start in milliseconds since the epoch"))?;
            *slot = Some(ms);
        }
        let q = WindowQuery {
            from: from.unwrap_or(i64::MIN),
            to: to.unwrap_or(i64::MAX),
        };
        if q.from > q.to {
            return Err(format!("from ({}) is after to ({})", q.from, q.to));
        }
        Ok(q)
    }
}

fn no_query(query: &str) -> std::result::Result<(), String> {
    if query.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unexpected query {query:?}: /users/<id>/views takes no parameters"
        ))
    }
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{s:?} has a bad percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// One answer.
struct Reply {
    status: u16,
    body: Vec<u8>,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        let mut body = body.to_string().into_bytes();
        body.push(b'\n');
        Reply {
            status,
            body,
            content_type: "application/json",
            headers: Vec::new(),
        }
    }

    fn error(status: u16, message: String) -> Self {
        Reply::json(status, json!({ "error": message, "status": status }))
    }

    fn text(status: u16, body: String, content_type: &'static str) -> Self {
        Reply {
            status,
            body: body.into_bytes(),
            content_type,
            headers: Vec::new(),
        }
    }

    /// Adds `Retry-After` (for 503).
    fn retry(mut self) -> Self {
        self.headers.push(("Retry-After", RETRY_AFTER_SECS.to_string()));
        self
    }

    /// Adds `Allow: GET, HEAD` (for 405).
    fn allow_get(mut self) -> Self {
        self.headers.push(("Allow", "GET, HEAD".into()));
        self
    }

    fn into_response(self) -> Response<Cursor<Vec<u8>>> {
        let mut response = Response::from_data(self.body).with_status_code(self.status);
        let headers = std::iter::once(("Content-Type", self.content_type.to_owned())).chain(self.headers);
        for (name, value) in headers {
            if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(h);
            }
        }
        response
    }
}

/// A running listener; stops (and joins its threads) when dropped.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` and serves `endpoints` from `workers` threads.
    pub fn start(addr: SocketAddr, endpoints: Endpoints, shared: Arc<Shared>) -> Result<Server> {
        let server = tiny_http::Server::http(addr).map_err(|e| DemoError::Http {
            addr,
            reason: e.to_string(),
        })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = match endpoints {
            Endpoints::All => 2,
            Endpoints::MetricsOnly => 1,
        };
        let mut workers = Vec::new();
        for i in 0..threads {
            let (server, stop, shared) = (server.clone(), stop.clone(), shared.clone());
            let worker = std::thread::Builder::new()
                .name(format!("pageviews-http-{}-{i}", bound.port()))
                .spawn(move || serve(&server, &stop, &shared, endpoints))?;
            workers.push(worker);
        }
        Ok(Server {
            addr: bound,
            stop,
            workers,
        })
    }

    /// The address it is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                tracing::error!(addr = %self.addr, "an HTTP worker panicked");
            }
        }
    }
}

/// One worker: answers requests until `stop`.
fn serve(server: &tiny_http::Server, stop: &AtomicBool, shared: &Shared, endpoints: Endpoints) {
    let mut last_upkeep = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match server.recv_timeout(RECV_TIMEOUT) {
            Ok(Some(request)) => answer(request, shared, endpoints),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "receiving an HTTP request failed"),
        }
        if last_upkeep.elapsed() >= UPKEEP_EVERY {
            shared.prometheus.run_upkeep();
            last_upkeep = Instant::now();
        }
    }
}

fn answer(request: Request, shared: &Shared, endpoints: Endpoints) {
    let reply = shared.handle(endpoints, request.method(), request.url());
    if let Err(e) = request.respond(reply.into_response()) {
        tracing::debug!(error = %e, "answering an HTTP request failed (client gone?)");
    }
}

/// Refuses an address beyond this machine unless `allow_remote`.
pub(crate) fn check_bind(flag: &str, addr: SocketAddr, allow_remote: bool) -> Result<()> {
    if addr.ip().is_loopback() || allow_remote {
        return Ok(());
    }
    Err(DemoError::Config(format!(
        "{flag} {addr} would listen beyond this machine, and the endpoints have no authentication \
         (anyone who can connect reads every count); use a loopback address such as 127.0.0.1, \
         or allow it explicitly (--http-allow-remote, Config::http_allow_remote)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::of("/metrics"), Route::Metrics);
        assert_eq!(Route::of("/users/user-00001/views"), Route::UserViews("user-00001"));
        assert_eq!(Route::of("/pages//page/0042/windows"), Route::PageWindows("/page/0042"));
        assert_eq!(
            Route::of("/pages/%2Fpage%2F0042/windows"),
            Route::PageWindows("%2Fpage%2F0042")
        );
        assert_eq!(Route::of("/users/x"), Route::Other);
        assert_eq!(Route::of("/metrics/"), Route::Other);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2Fpage%2f0042").as_deref(), Ok("/page/0042"));
        assert_eq!(percent_decode("user-1").as_deref(), Ok("user-1"));
        assert!(percent_decode("%2").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%ff").is_err(), "not UTF-8");
    }

    #[test]
    fn window_queries() {
        assert_eq!(
            WindowQuery::parse(""),
            Ok(WindowQuery {
                from: i64::MIN,
                to: i64::MAX
            })
        );
        assert_eq!(
            WindowQuery::parse("from=10&to=20"),
            Ok(WindowQuery { from: 10, to: 20 })
        );
        for bad in ["from=x", "from=1&from=2", "since=1", "from=3&to=2", "to="] {
            assert!(WindowQuery::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_loopback_without_the_flag() {
        let lo: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        assert!(check_bind("--http", lo, false).is_ok());
        assert!(check_bind("--http", v6, false).is_ok());
        let e = check_bind("--http", any, false).unwrap_err().to_string();
        assert!(
            e.contains("no authentication") && e.contains("--http-allow-remote"),
            "{e}"
        );
        assert!(check_bind("--http", any, true).is_ok());
    }
}
