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
//! Reads go through the manager's [`StateReader`](state_manager::StateReader): they see what the last
//! checkpoint committed, only for partitions this instance owns and has
//! restored. A partition that is restoring (or a processor restarting)
//! answers 503 with `Retry-After`, a partition owned elsewhere 404; never
//! stale data. Path segments are percent-decoded: page `/page/0042` is
//! `/pages/%2Fpage%2F0042/windows` (or `/pages//page/0042/windows`).
//!
//! There is no authentication: anyone who can connect can read every
//! count. The servers bind to loopback unless told otherwise, and hold
//! every client to limits (request head size, time to send it, time to
//! read the answer, connections; request bodies are never read): see
//! docs/operations.md, "The HTTP server".
//!
//! The module's parts: `server` listens and enforces the request limits
//! (with `connections`, the open connections, and `connection`, one
//! request and its answer); `shared` holds what the run shares with the
//! handlers and answers requests, `request` parses paths and queries,
//! `reply` builds answers.

mod connection;
mod connections;
mod reply;
mod request;
mod server;
mod shared;

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{DemoError, Result};

pub(crate) use server::Server;
pub(crate) use shared::{Live, Phase, Shared};

/// Counter: HTTP requests answered. Labels `endpoint` (`metrics`,
/// `user_views`, `page_windows`, `status`, `index`, `other`; `refused`:
/// answered by the server itself, for a request beyond its limits or a
/// full listener), `status` (the HTTP status code).
pub const HTTP_REQUESTS: &str = "pageviews_http_requests_total";
/// Counter: input events processed (re-processing after the crash included).
pub const EVENTS_PROCESSED: &str = "pageviews_events_processed_total";

/// Bucket bounds (seconds) of the checkpoint stage histograms.
const STAGE_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

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

/// Buckets of the snapshot histograms (taking one, restoring one), in
/// seconds: from a small partition on a local disk to a large one over a
/// network.
const SNAPSHOT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

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
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(state_manager::metrics::SNAPSHOT_SECONDS.to_owned()),
                        SNAPSHOT_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(state_manager::metrics::SNAPSHOT_RESTORE_SECONDS.to_owned()),
                        SNAPSHOT_BUCKETS,
                    )
                })
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
