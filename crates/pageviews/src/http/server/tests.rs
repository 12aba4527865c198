//! The listener against hostile clients: huge declared bodies, oversized
//! heads, slow and idle clients, clients that do not read, more
//! connections than it serves. Deadlines in these tests only turn a hang
//! into a failure, except where a limit's own timeout is what is tested.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// Answers GET and HEAD with 200 and the target, anything else 405;
/// `/big` is 8 MiB, `/block` counts itself in `blocked` and waits for
/// `release`.
fn handler(release: crossbeam_channel::Receiver<()>, blocked: Arc<AtomicUsize>) -> Handler {
    Arc::new(move |method: &str, target: &str| match (method, target) {
        ("GET" | "HEAD", "/big") => Reply::text(200, "x".repeat(8 << 20), "text/plain"),
        ("GET" | "HEAD", "/block") => {
            blocked.fetch_add(1, Ordering::SeqCst);
            let _ = release.recv_timeout(Duration::from_secs(60));
            Reply::text(200, "released".into(), "text/plain")
        }
        ("GET" | "HEAD", _) => Reply::text(200, target.to_owned(), "text/plain"),
        _ => Reply::error(405, format!("{method} {target}: only GET is supported")).allow_get(),
    })
}

/// A server, the sender that releases `/block` requests and their count.
fn start_counting(limits: Limits) -> (Server, crossbeam_channel::Sender<()>, Arc<AtomicUsize>) {
    let (release, rx) = crossbeam_channel::unbounded();
    let blocked = Arc::new(AtomicUsize::new(0));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::serve(addr, limits, handler(rx, blocked.clone()), Box::new(|| {})).unwrap();
    (server, release, blocked)
}

fn start(limits: Limits) -> (Server, crossbeam_channel::Sender<()>) {
    let (server, release, _) = start_counting(limits);
    (server, release)
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Everything the server sends until it closes: (status, whole answer).
fn answer(mut s: TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    (status, text)
}

fn request(server: &Server, raw: &[u8]) -> (u16, String) {
    let mut s = connect(server);
    s.write_all(raw).unwrap();
    answer(s)
}

fn get(server: &Server, path: &str) -> (u16, String) {
    request(server, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
}

/// Waits until the server holds at most `n` connections.
fn wait_open_at_most(server: &Server, n: usize) {
    let started = Instant::now();
    while server.open_connections() > n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} connections still open",
            server.open_connections()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_huge_declared_body_is_never_read_or_allocated() {
    let (server, _release) = start(Limits::default());
    let mut s = connect(&server);
    s.write_all(b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        .unwrap();
    // Some of the body, as a client streaming it would send.
    let _ = s.write_all(&[b'a'; 16 << 10]);
    let (status, text) = answer(s);
    assert_eq!(status, 405, "{text}");
    assert!(text.contains("Allow: GET, HEAD"), "{text}");
    // Chunked bodies too.
    let (status, _) = request(
        &server,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\nabc",
    );
    assert_eq!(status, 405);
    assert_eq!(get(&server, "/after").0, 200, "still serving");
}

#[test]
fn oversized_heads_are_refused_and_the_server_goes_on() {
    let (server, _release) = start(Limits::default());
    let mut head = b"GET /status HTTP/1.1\r\nHost: x\r\n".to_vec();
    head.extend_from_slice(format!("X-Filler: {}\r\n\r\n", "y".repeat(10_000)).as_bytes());
    let (status, text) = request(&server, &head);
    assert_eq!(status, 431, "{text}");
    assert!(text.contains("longer than 8192 bytes"), "{text}");
    // A request line alone beyond the limit.
    let line = format!("GET /{} HTTP/1.1\r\n\r\n", "p".repeat(10_000));
    assert_eq!(request(&server, line.as_bytes()).0, 414);
    // Many small header fields.
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(
        request(&server, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).0,
        431
    );
    // Garbage.
    assert_eq!(request(&server, b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n").0, 400);
    assert_eq!(get(&server, "/after").0, 200, "still serving");
}

#[test]
fn a_slow_client_does_not_block_others_and_is_cut_off_at_the_head_timeout() {
    let limits = Limits {
        head_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let (server, _release) = start(limits);
    let slow_done = Arc::new(AtomicBool::new(false));
    let slow = {
        let mut s = connect(&server);
        let done = slow_done.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            // One byte every 100 ms of a head that would take 20 s.
            for b in b"GET /slow HTTP/1.1\r\nX-Slow: 01234567890123456789012345678901234567890123456789\
                       01234567890123456789012345678901234567890123456789012345678901234567890123456789\
                       0123456789012345678901234567890123456789\r\n\r\n"
            {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let (status, _) = answer(s);
            done.store(true, Ordering::SeqCst);
            (status, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&server, "/fast").0, 200);
    assert!(
        !slow_done.load(Ordering::SeqCst),
        "answered while the slow client dribbles"
    );
    let (status, took) = slow.join().unwrap();
    assert_eq!(status, 408);
    assert!(
        took < Duration::from_secs(15),
        "cut off at the head timeout, not at its end: {took:?}"
    );
}

#[test]
fn idle_connections_cannot_lock_others_out() {
    let limits = Limits {
        max_connections: 32,
        ..Limits::default()
    };
    let (server, _release) = start(limits);
    let idle: Vec<TcpStream> = (0..300).map(|_| connect(&server)).collect();
    // Every new connection makes room by closing the oldest idle one.
    for i in 0..5 {
        assert_eq!(get(&server, &format!("/{i}")).0, 200);
    }
    wait_open_at_most(&server, 32);
    // The oldest idle connections were closed by the server.
    let mut first = idle.into_iter().next().unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(first.read(&mut buf).unwrap_or(0), 0, "closed");
}

#[test]
fn idle_connections_are_closed_at_the_head_timeout() {
    let limits = Limits {
        head_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (server, _release) = start(limits);
    let mut idle: Vec<TcpStream> = (0..20).map(|_| connect(&server)).collect();
    for s in &mut idle {
        let mut buf = [0u8; 1];
        // Closed without an answer: nothing was asked.
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    }
    wait_open_at_most(&server, 0);
}

#[test]
fn when_every_connection_is_being_answered_a_new_one_gets_503() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (server, release, in_handler) = start_counting(limits);
    let blocked: Vec<_> = (0..2)
        .map(|_| {
            let mut s = connect(&server);
            s.write_all(b"GET /block HTTP/1.1\r\n\r\n").unwrap();
            std::thread::spawn(move || answer(s))
        })
        .collect();
    // Both inside the handler: no longer closed to make room.
    let started = Instant::now();
    while in_handler.load(Ordering::SeqCst) < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "never full");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, text) = get(&server, "/probe");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("Retry-After: 1"), "{text}");
    for _ in 0..2 {
        release.send(()).unwrap();
    }
    for b in blocked {
        assert_eq!(b.join().unwrap().0, 200);
    }
    assert_eq!(get(&server, "/after").0, 200);
}

#[test]
fn a_client_that_does_not_read_its_answer_is_dropped_at_the_write_timeout() {
    let limits = Limits {
        write_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (server, _release) = start(limits);
    let mut s = connect(&server);
    s.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
    // Never read: the 8 MiB answer cannot fit in the socket buffers.
    wait_open_at_most(&server, 0);
    drop(s);
    assert_eq!(get(&server, "/after").0, 200);
}

#[test]
fn head_requests_get_the_head_only() {
    let (server, _release) = start(Limits::default());
    let (status, text) = request(&server, b"HEAD /abc HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
    assert!(text.contains("Content-Length: 4"), "{text}");
    // HTTP/1.0 and a half-closed client are served too.
    let mut s = connect(&server);
    s.write_all(b"GET /ten HTTP/1.0\r\n\r\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (status, text) = answer(s);
    assert_eq!(status, 200);
    assert!(text.ends_with("/ten"), "{text}");
}

#[test]
fn dropping_the_server_closes_its_connections_and_returns() {
    let (server, _release) = start(Limits::default());
    let mut idle: Vec<TcpStream> = (0..50).map(|_| connect(&server)).collect();
    wait_open_at_least(&server, 50);
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(10));
    for s in &mut idle {
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    }
}

fn wait_open_at_least(server: &Server, n: usize) {
    let started = Instant::now();
    while server.open_connections() < n {
        assert!(started.elapsed() < Duration::from_secs(60), "never {n} connections");
        std::thread::sleep(Duration::from_millis(10));
    }
}
