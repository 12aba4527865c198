//! Paths and queries of requests: which endpoint, which parameters.

/// The endpoint a path names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route<'a> {
    Metrics,
    Index,
    Status,
    UserViews(&'a str),
    PageWindows(&'a str),
    Other,
}

impl<'a> Route<'a> {
    pub(super) fn of(path: &'a str) -> Self {
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

    pub(super) fn label(&self) -> &'static str {
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
pub(super) struct WindowQuery {
    pub(super) from: i64,
    pub(super) to: i64,
}

impl WindowQuery {
    pub(super) fn parse(query: &str) -> std::result::Result<Self, String> {
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

pub(super) fn no_query(query: &str) -> std::result::Result<(), String> {
    if query.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unexpected query {query:?}: /users/<id>/views takes no parameters"
        ))
    }
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub(super) fn percent_decode(s: &str) -> std::result::Result<String, String> {
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
}
