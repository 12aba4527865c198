//! [`Connections`]: the open connections of one listener, so that it can
//! bound them, make room by closing the one that has waited longest for
//! its request head, and close them all when it stops.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How long accepting waits for connections closed to make room to leave
/// before it refuses a new one (their threads leave at once unless the
/// machine is starved of CPU).
const EVICTED_LEAVE_WAIT: Duration = Duration::from_secs(2);

/// The open connections of one listener.
#[derive(Default)]
pub(super) struct Connections {
    open: Mutex<Vec<Open>>,
    /// Signalled whenever a connection leaves `open`.
    left: Condvar,
    next_id: AtomicU64,
}

/// One open connection.
struct Open {
    id: u64,
    accepted: Instant,
    /// A handle on the same socket, to shut it down from another thread
    /// (which ends any read or write blocked on it).
    socket: TcpStream,
    /// Still waiting for its request head (may be closed to make room).
    reading: bool,
    /// Shut down to make room; its thread is ending.
    evicted: bool,
}

/// A connection's place among the open ones; it leaves when dropped.
pub(super) struct Ticket {
    connections: Arc<Connections>,
    id: u64,
}

impl Connections {
    /// Registers `stream`, keeping at most `max` connections served: at
    /// the limit, the connection that has waited longest for its request
    /// head is shut down to make room. `None` when none can be (every
    /// connection is being answered): the caller refuses `stream`.
    pub fn admit(self: &Arc<Self>, stream: &TcpStream, max: usize) -> io::Result<Option<Ticket>> {
        let mut open = self.open.lock();
        // Evicted connections leave as soon as their threads notice, which
        // is at once on an idle machine; on a busy one, wait (briefly) for
        // them rather than refuse a client while idle ones are going.
        let deadline = Instant::now() + EVICTED_LEAVE_WAIT;
        while open.len() >= max.saturating_mul(2) {
            if self.left.wait_until(&mut open, deadline).timed_out() {
                return Ok(None);
            }
        }
        if open.iter().filter(|c| !c.evicted).count() >= max {
            let oldest = open
                .iter_mut()
                .filter(|c| c.reading && !c.evicted)
                .min_by_key(|c| c.accepted);
            let Some(oldest) = oldest else {
                return Ok(None);
            };
            oldest.evicted = true;
            let _ = oldest.socket.shutdown(Shutdown::Both);
            tracing::debug!("closed the HTTP connection waiting longest for its request, to make room");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        open.push(Open {
            id,
            accepted: Instant::now(),
            socket: stream.try_clone()?,
            reading: true,
            evicted: false,
        });
        Ok(Some(Ticket {
            connections: self.clone(),
            id,
        }))
    }

    /// Connections open now (evicted ones until their threads end).
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    /// Shuts every connection down (their threads end).
    pub fn close_all(&self) {
        for c in self.open.lock().iter() {
            let _ = c.socket.shutdown(Shutdown::Both);
        }
    }
}

impl Ticket {
    /// The request head is in: from now on the connection is being
    /// answered and is not closed to make room.
    pub fn answering(&self) {
        if let Some(c) = self.connections.open.lock().iter_mut().find(|c| c.id == self.id) {
            c.reading = false;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.connections.open.lock().retain(|c| c.id != self.id);
        self.connections.left.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;

    use super::*;

    /// A connected pair: (client, server side).
    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn at_the_limit_the_oldest_reader_makes_room_and_answering_ones_never_do() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Arc::new(Connections::default());
        let (mut first_client, first) = pair(&listener);
        let (_c2, second) = pair(&listener);
        let a = connections.admit(&first, 2).unwrap().unwrap();
        let b = connections.admit(&second, 2).unwrap().unwrap();
        b.answering();

        // Full: the first (still reading) is shut down for the third.
        let (_c3, third) = pair(&listener);
        let c = connections.admit(&third, 2).unwrap().expect("room made");
        let mut buf = [0u8; 1];
        assert_eq!(first_client.read(&mut buf).unwrap(), 0, "the oldest reader was closed");
        drop(a);
        assert_eq!(connections.len(), 2);

        // Full of answering connections: refused.
        c.answering();
        let (_c4, fourth) = pair(&listener);
        assert!(connections.admit(&fourth, 2).unwrap().is_none());

        drop((b, c));
        assert_eq!(connections.len(), 0);
    }
}
