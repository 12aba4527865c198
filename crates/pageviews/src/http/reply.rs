//! [`Reply`]: one answer, built by the handlers.

use serde_json::{json, Value};

/// What 503 answers tell clients to wait, seconds.
const RETRY_AFTER_SECS: u32 = 1;

/// One answer.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    body: Vec<u8>,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(super) fn json(status: u16, body: Value) -> Self {
        let mut body = body.to_string().into_bytes();
        body.push(b'\n');
        Reply {
            status,
            body,
            content_type: "application/json",
            headers: Vec::new(),
        }
    }

    pub(super) fn error(status: u16, message: String) -> Self {
        Reply::json(status, json!({ "error": message, "status": status }))
    }

    pub(super) fn text(status: u16, body: String, content_type: &'static str) -> Self {
        Reply {
            status,
            body: body.into_bytes(),
            content_type,
            headers: Vec::new(),
        }
    }

    /// Adds `Retry-After` (for 503).
    pub(super) fn retry(mut self) -> Self {
        self.headers.push(("Retry-After", RETRY_AFTER_SECS.to_string()));
        self
    }

    /// Adds `Allow: GET, HEAD` (for 405).
    pub(super) fn allow_get(mut self) -> Self {
        self.headers.push(("Allow", "GET, HEAD".into()));
        self
    }

    /// The answer as bytes on the wire: status line, headers and (unless
    /// `head_only`, for `HEAD`) the body. Every answer closes its
    /// connection: one request per connection keeps a client from holding
    /// a connection open between requests.
    pub(super) fn to_http(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            // Values are ours (numbers, method lists); a line break would
            // split the header, so none gets through.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            head += &format!("{name}: {value}\r\n");
        }
        head += "\r\n";
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase of the status codes the endpoints and the server use.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_complete_http_messages_that_close_the_connection() {
        let reply = Reply::error(503, "restoring".into()).retry();
        let wire = String::from_utf8(reply.to_http(false)).unwrap();
        let (head, body) = wire.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(head.contains("\r\nRetry-After: 1"), "{head}");
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())), "{head}");
        assert!(body.contains("restoring"), "{body}");
        let head_only = String::from_utf8(reply.to_http(true)).unwrap();
        assert_eq!(head_only, format!("{head}\r\n\r\n"), "HEAD: the same head, no body");
    }
}
