//! [`Server`]: one listener, serving every connection on its own thread
//! within the [`Limits`] that keep an unauthenticated client from stopping
//! it or starving other clients.
//!
//! Why a server of our own (on `std` and `httparse`) and not tiny_http or
//! hyper: docs/operations.md, "The HTTP server".

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::connection;
use super::connections::Connections;
use super::reply::Reply;
use super::shared::Shared;
use super::{Endpoints, HTTP_REQUESTS};
use crate::{DemoError, Result};

/// How often the Prometheus recorder's upkeep (histogram housekeeping) runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// How long the acceptor sleeps when no connection is waiting (it polls a
/// non-blocking listener so that it can notice its stop flag).
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// Stack of a connection thread: parsing, a state read, a JSON answer.
const CONNECTION_STACK: usize = 512 << 10;
/// How long a stopping server waits for its connection threads to end.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Answers one request: (method, request target) → the answer.
pub(super) type Handler = Arc<dyn Fn(&str, &str) -> Reply + Send + Sync>;

/// What one listener accepts. Every limit is enforced before anything is
/// allocated for it, and no request body is ever read: the endpoints take
/// none.
#[derive(Clone, Debug)]
pub(super) struct Limits {
    /// Request line and header fields together; more is 431 (414 when the
    /// request line alone is longer).
    pub max_head_bytes: usize,
    /// Header fields; more is 431.
    pub max_headers: usize,
    /// From the connection's accept to the end of its request head. A
    /// client that is slower gets 408 and is disconnected; one that sent
    /// nothing is disconnected.
    pub head_timeout: Duration,
    /// For writing the answer to a client that does not read it.
    pub write_timeout: Duration,
    /// Connections served at once. At the limit, the connection that has
    /// waited longest for its request head is closed to make room (idle
    /// and slow clients cannot lock others out); when every connection is
    /// being answered, a new one gets 503.
    pub max_connections: usize,
    /// After answering a request that came with a body or more bytes, at
    /// most this much is read and thrown away (within `drain_timeout`)
    /// before closing, so that the client sees the answer rather than a
    /// reset.
    pub drain_bytes: usize,
    /// See `drain_bytes`.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 << 10,
            max_headers: 32,
            head_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 128,
            drain_bytes: 64 << 10,
            drain_timeout: Duration::from_secs(1),
        }
    }
}

/// A running listener; stops (closing its connections) when dropped.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    connections: Arc<Connections>,
}

impl Server {
    /// Binds `addr` and serves `endpoints` of `shared` with the default
    /// [`Limits`].
    pub fn start(addr: SocketAddr, endpoints: Endpoints, shared: Arc<Shared>) -> Result<Server> {
        let handler: Handler = {
            let shared = shared.clone();
            Arc::new(move |method: &str, target: &str| shared.handle(endpoints, method, target))
        };
        let upkeep = move || shared.prometheus.run_upkeep();
        Server::serve(addr, Limits::default(), handler, Box::new(upkeep))
    }

    /// Binds `addr` and answers every request with `handler`, within
    /// `limits`; `upkeep` runs every few seconds on the accepting thread.
    pub(super) fn serve(
        addr: SocketAddr,
        limits: Limits,
        handler: Handler,
        upkeep: Box<dyn FnMut() + Send>,
    ) -> Result<Server> {
        let http_error = |e: std::io::Error| DemoError::Http {
            addr,
            reason: e.to_string(),
        };
        let listener = TcpListener::bind(addr).map_err(http_error)?;
        let bound = listener.local_addr().map_err(http_error)?;
        listener.set_nonblocking(true).map_err(http_error)?;
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Connections::default());
        let acceptor = Acceptor {
            listener,
            limits: Arc::new(limits),
            handler,
            connections: connections.clone(),
            stop: stop.clone(),
            upkeep,
        };
        let acceptor = std::thread::Builder::new()
            .name(format!("pageviews-http-{}", bound.port()))
            .spawn(move || acceptor.run())?;
        Ok(Server {
            addr: bound,
            stop,
            acceptor: Some(acceptor),
            connections,
        })
    }

    /// The address it is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now (for tests).
    #[cfg(test)]
    pub(super) fn open_connections(&self) -> usize {
        self.connections.len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            if acceptor.join().is_err() {
                tracing::error!(addr = %self.addr, "the HTTP acceptor panicked");
            }
        }
        // No new connections now; ending the open ones wakes their threads
        // out of any read or write.
        self.connections.close_all();
        let started = Instant::now();
        while self.connections.len() > 0 && started.elapsed() < STOP_WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The accepting thread of one listener.
struct Acceptor {
    listener: TcpListener,
    limits: Arc<Limits>,
    handler: Handler,
    connections: Arc<Connections>,
    stop: Arc<AtomicBool>,
    upkeep: Box<dyn FnMut() + Send>,
}

impl Acceptor {
    fn run(mut self) {
        let mut last_upkeep = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    std::thread::sleep(ACCEPT_POLL);
                }
            }
            if last_upkeep.elapsed() >= UPKEEP_EVERY {
                (self.upkeep)();
                last_upkeep = Instant::now();
            }
        }
    }

    /// Serves `stream` on a thread of its own, or refuses it when every
    /// connection is being answered.
    fn admit(&self, stream: TcpStream) {
        let accepted = Instant::now();
        // Accepted sockets may inherit the listener's non-blocking mode.
        if stream.set_nonblocking(false).is_err() {
            return;
        }
        let ticket = match self.connections.admit(&stream, self.limits.max_connections) {
            Ok(Some(ticket)) => ticket,
            Ok(None) => return refuse_busy(stream),
            Err(e) => {
                tracing::debug!(error = %e, "registering an HTTP connection failed");
                return;
            }
        };
        let (limits, handler) = (self.limits.clone(), self.handler.clone());
        let spawned = std::thread::Builder::new()
            .name("pageviews-http-conn".into())
            .stack_size(CONNECTION_STACK)
            .spawn(move || connection::serve(stream, accepted, &limits, &handler, &ticket));
        if let Err(e) = spawned {
            // The closure (stream and ticket) is dropped: the connection closes.
            tracing::warn!(error = %e, "cannot start a thread for an HTTP connection; it is closed");
        }
    }
}

/// Tells a client that every connection is being answered, without
/// waiting for it (the socket is non-blocking: what does not fit in its
/// send buffer is lost), and closes.
fn refuse_busy(mut stream: TcpStream) {
    let reply = Reply::error(
        503,
        "every connection of this listener is being answered; retry shortly".into(),
    )
    .retry();
    metrics::counter!(HTTP_REQUESTS, "endpoint" => "refused", "status" => "503").increment(1);
    if stream.set_nonblocking(true).is_ok() {
        let _ = stream.write(&reply.to_http(false));
    }
}

#[cfg(test)]
mod tests;
