//! [`Reply`]: one answer, built by the handlers.

use std::io::Cursor;

use serde_json::{json, Value};
use tiny_http::{Header, Response};

/// What 503 answers tell clients to wait, seconds.
const RETRY_AFTER_SECS: u32 = 1;

/// One answer.
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

    pub(super) fn into_response(self) -> Response<Cursor<Vec<u8>>> {
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
