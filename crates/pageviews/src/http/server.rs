//! [`Server`]: a listener and its worker threads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::Request;

use super::shared::Shared;
use super::Endpoints;
use crate::{DemoError, Result};

/// How long a worker waits for a request before it looks at its stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(200);
/// How often the Prometheus recorder's upkeep (histogram housekeeping) runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

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
