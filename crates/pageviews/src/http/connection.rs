//! One connection: read one request head within the limits, answer it,
//! close. Request bodies are never read (no endpoint takes one), so a
//! declared length costs nothing.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

use super::connections::Ticket;
use super::reply::Reply;
use super::server::{Handler, Limits};
use super::HTTP_REQUESTS;

/// A request head that passed every check.
#[derive(Debug, PartialEq, Eq)]
struct RequestHead {
    method: String,
    /// The request target: path and query (origin form).
    target: String,
    /// The client sent (or announced) more than the head: a body, or
    /// further requests. They are never read; see [`drain`].
    unread: bool,
}

/// Why no request is answered.
#[derive(Debug)]
enum NoRequest {
    /// The client closed, was shut down to make room, or sent nothing in
    /// time: close without a word.
    Closed,
    /// The client gets this answer, then the connection closes.
    Refused(Reply),
}

/// Serves the one request of `stream` (accepted at `accepted`) with
/// `handler`, then closes it.
pub(super) fn serve(mut stream: TcpStream, accepted: Instant, limits: &Limits, handler: &Handler, ticket: &Ticket) {
    let _ = stream.set_nodelay(true);
    let (reply, head_only, unread) = match read_head(&mut stream, accepted + limits.head_timeout, limits) {
        Ok(head) => {
            ticket.answering();
            (handler(&head.method, &head.target), head.method == "HEAD", head.unread)
        }
        Err(NoRequest::Closed) => return,
        Err(NoRequest::Refused(reply)) => {
            metrics::counter!(HTTP_REQUESTS, "endpoint" => "refused", "status" => reply.status.to_string())
                .increment(1);
            (reply, false, true)
        }
    };
    if let Err(e) = write_by(
        &mut stream,
        &reply.to_http(head_only),
        Instant::now() + limits.write_timeout,
    ) {
        tracing::debug!(error = %e, "answering an HTTP request failed (client gone or not reading)");
        return;
    }
    if unread {
        drain(&mut stream, limits);
    }
}

/// Reads until the end of the request head, which must arrive by
/// `deadline` and fit in `limits.max_head_bytes`, and parses it.
fn read_head(stream: &mut TcpStream, deadline: Instant, limits: &Limits) -> Result<RequestHead, NoRequest> {
    let mut buf = vec![0u8; limits.max_head_bytes];
    let mut filled = 0;
    let mut scanned = 0;
    loop {
        // Parse only once the bytes could end a head: each parse is then
        // linear, however slowly the head arrives.
        if ends_head(&buf[scanned..filled]) {
            if let Some(head) = parse_head(&buf[..filled], limits)? {
                return Ok(head);
            }
        }
        scanned = filled.saturating_sub(3);
        if filled == buf.len() {
            return Err(NoRequest::Refused(too_large(&buf, limits)));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(match filled {
                0 => NoRequest::Closed,
                _ => NoRequest::Refused(Reply::error(
                    408,
                    format!(
                        "the request head did not arrive within {:?}; send it at once",
                        limits.head_timeout
                    ),
                )),
            });
        }
        stream.set_read_timeout(Some(left)).map_err(|_| NoRequest::Closed)?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err(NoRequest::Closed),
            Ok(n) => filled += n,
            // Timed out (the loop checks the deadline) or interrupted.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(NoRequest::Closed),
        }
    }
}

/// Whether `bytes` hold an empty line (the end of a head; bare LF is
/// accepted as httparse accepts it).
fn ends_head(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// The request in `bytes`; `None` when the head is not complete yet
/// (blank lines before a request line).
fn parse_head(bytes: &[u8], limits: &Limits) -> Result<Option<RequestHead>, NoRequest> {
    let refused = |status, message: String| NoRequest::Refused(Reply::error(status, message));
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refused(431, format!("more than {} header fields", limits.max_headers)))
        }
        Err(httparse::Error::Version) => {
            return Err(refused(505, "only HTTP/1.0 and HTTP/1.1 are served".into()));
        }
        Err(e) => return Err(refused(400, format!("malformed request head: {e}"))),
    };
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Err(refused(400, "malformed request line".into()));
    };
    if !target.starts_with('/') {
        return Err(refused(
            400,
            "the request target must be a path such as /metrics".into(),
        ));
    }
    let mut body = false;
    for h in request.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| refused(400, "Content-Length is not a number".into()))?;
            body |= length > 0;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            body = true;
        }
    }
    Ok(Some(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        unread: body || bytes.len() > len,
    }))
}

/// The answer to a head longer than the limit: 414 when not even the
/// request line ended, else 431.
fn too_large(buf: &[u8], limits: &Limits) -> Reply {
    if buf.contains(&b'\n') {
        Reply::error(
            431,
            format!(
                "the request head (request line and header fields) is longer than {} bytes",
                limits.max_head_bytes
            ),
        )
    } else {
        Reply::error(
            414,
            format!("the request line is longer than {} bytes", limits.max_head_bytes),
        )
    }
}

/// Writes all of `bytes` by `deadline`, however slowly the client reads.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ends the answer (FIN), then reads and drops what the client still
/// sends, a bounded amount for a bounded time: closing with unread bytes
/// would reset the connection, and the client could lose the answer.
fn drain(stream: &mut TcpStream, limits: &Limits) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + limits.drain_timeout;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < limits.drain_bytes {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<RequestHead>, NoRequest> {
        parse_head(bytes, &Limits::default())
    }

    fn status(r: Result<Option<RequestHead>, NoRequest>) -> u16 {
        match r {
            Err(NoRequest::Refused(reply)) => reply.status,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn heads_parse_and_bodies_are_noticed_never_read() {
        let head = parse(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            head,
            RequestHead {
                method: "GET".into(),
                target: "/status".into(),
                unread: false
            }
        );
        let head = parse(b"POST /status HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.unread, "a declared body is left unread");
        let head = parse(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.unread);
        let head = parse(b"GET / HTTP/1.1\r\n\r\nGET /again HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.unread, "a pipelined request is not answered");
        assert!(
            parse(b"\r\n\r\n").unwrap().is_none(),
            "blank lines first: not yet a head"
        );
    }

    #[test]
    fn bad_heads_get_the_status_that_says_why() {
        assert_eq!(status(parse(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")), 400);
        assert_eq!(status(parse(b"GET / HTTP/1.1\r\nContent-Length: 1e9\r\n\r\n")), 400);
        assert_eq!(status(parse(b"GET http://x/ HTTP/1.1\r\n\r\n")), 400);
        assert_eq!(status(parse(b"GET / HTTP/2.0\r\n\r\n")), 505);
        assert_eq!(status(parse(b"GET /\x01 HTTP/1.1\r\n\r\n")), 400);
        assert_eq!(status(parse(b"G(T / HTTP/1.1\r\n\r\n")), 400);
        assert_eq!(status(parse(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n")), 400);
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(status(parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())), 431);
        // Invalid UTF-8 in the target is refused, never passed on.
        assert_eq!(status(parse(b"GET /\xff\xfe HTTP/1.1\r\n\r\n")), 400);
    }

    #[test]
    fn the_end_of_a_head_is_found_with_either_line_ending() {
        assert!(ends_head(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(ends_head(b"GET / HTTP/1.1\n\n"));
        assert!(!ends_head(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    }
}
