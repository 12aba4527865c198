//! The synthetic click stream and the truth computed from it, independently
//! of the pipeline.

use std::collections::{BTreeMap, HashMap};

/// Event time of the first event: 2026-01-01T00:00:00Z.
pub const BASE_TS_MS: i64 = 1_767_225_600_000;

/// One page view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageView {
    /// Who.
    pub user: String,
    /// Which page.
    pub page: String,
    /// Event time, ms since the epoch.
    pub ts: i64,
}

/// A small, seeded generator (splitmix64): the same seed gives the same stream.
pub struct Generator {
    state: u64,
    users: u32,
    pages: u32,
    next: u64,
}

impl Generator {
    /// A stream over `users` users and `pages` pages.
    pub fn new(seed: u64, users: u32, pages: u32) -> Self {
        Generator {
            state: seed,
            users: users.max(1),
            pages: pages.max(1),
            next: 0,
        }
    }

    fn rand(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Iterator for Generator {
    type Item = PageView;

    fn next(&mut self) -> Option<PageView> {
        let user = self.rand() % self.users as u64;
        // Popular pages get most views: squaring a uniform draw skews it low.
        let x = (self.rand() >> 11) as f64 / (1u64 << 53) as f64;
        let page = ((x * x) * self.pages as f64) as u64;
        // About a thousand views per second of event time, a little out of order.
        let jitter = (self.rand() % 2_000) as i64 - 1_000;
        let ts = BASE_TS_MS + self.next as i64 + jitter;
        self.next += 1;
        Some(PageView {
            user: format!("user-{user:05}"),
            page: format!("/page/{page:04}"),
            ts: ts.max(0),
        })
    }
}

/// Start of the tumbling window of `window_ms` holding `ts`.
pub fn window_start(ts: i64, window_ms: i64) -> i64 {
    ts - ts.rem_euclid(window_ms)
}

/// What the pipeline must end with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Truth {
    /// Views per user.
    pub user_totals: HashMap<String, u64>,
    /// Views per (page, window start).
    pub windows: BTreeMap<(String, i64), u64>,
    /// The newest event time of each page.
    pub page_newest: HashMap<String, i64>,
    /// The time of every view of each user, in input order.
    pub user_views: HashMap<String, Vec<i64>>,
}

/// A user session as the input defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTruth {
    /// One past the time of its last view (sessions are `[first, last + 1)`).
    pub end: i64,
    /// Its views.
    pub views: u64,
}

impl Truth {
    /// Adds one view.
    pub fn add(&mut self, view: &PageView, window_ms: i64) {
        *self.user_totals.entry(view.user.clone()).or_default() += 1;
        *self
            .windows
            .entry((view.page.clone(), window_start(view.ts, window_ms)))
            .or_default() += 1;
        let newest = self.page_newest.entry(view.page.clone()).or_insert(view.ts);
        *newest = (*newest).max(view.ts);
        self.user_views.entry(view.user.clone()).or_default().push(view.ts);
    }

    /// The sessions of every user with inactivity gap `gap_ms`, by (user,
    /// start): each user's views in time order, split where two are more
    /// than `gap_ms` apart.
    pub fn sessions(&self, gap_ms: i64) -> BTreeMap<(String, i64), SessionTruth> {
        let mut out = BTreeMap::new();
        for (user, views) in &self.user_views {
            let mut views = views.clone();
            views.sort_unstable();
            let mut current: Option<(i64, SessionTruth)> = None;
            for ts in views {
                match &mut current {
                    Some((_, s)) if ts - (s.end - 1) <= gap_ms => {
                        s.end = ts + 1;
                        s.views += 1;
                    }
                    _ => {
                        if let Some((start, s)) = current.take() {
                            out.insert((user.clone(), start), s);
                        }
                        current = Some((ts, SessionTruth { end: ts + 1, views: 1 }));
                    }
                }
            }
            if let Some((start, s)) = current {
                out.insert((user.clone(), start), s);
            }
        }
        out
    }
}

/// Partition of `key` among `partitions`: Kafka's default partitioner for
/// keyed records (murmur2, as the Java client and librdkafka's
/// `murmur2_random` use), so the demo's records, its state and the HTTP
/// queries agree with any Kafka producer. The demo still sets each record's
/// partition itself: librdkafka's own default is CRC32 (`consistent_random`).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    state_manager::murmur2_partition(key.as_bytes(), partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_seeded_and_skewed() {
        let a: Vec<_> = Generator::new(7, 100, 50).take(1000).collect();
        let b: Vec<_> = Generator::new(7, 100, 50).take(1000).collect();
        assert_eq!(a, b);
        let low = a.iter().filter(|v| v.page.as_str() < "/page/0025").count();
        assert!(low > 600, "half the pages get most views: {low}");
        assert!(a.iter().all(|v| v.ts >= BASE_TS_MS - 1_000));
    }

    #[test]
    fn keys_go_where_kafka_puts_them() {
        // Kafka's UtilsTest: murmur2("foobar") = -790332482; the default
        // partitioner takes it positive, modulo the partition count.
        assert_eq!(
            partition_of("foobar", 100),
            ((-790_332_482i32) as u32 & 0x7fff_ffff) % 100
        );
        assert!((0..1000).all(|u| partition_of(&format!("user-{u:05}"), 4) < 4));
    }

    #[test]
    fn sessions_split_at_gaps_longer_than_the_gap() {
        let mut t = Truth::default();
        for (ts, page) in [(100, "/b"), (50, "/a"), (130, "/c"), (130, "/d"), (200, "/e")] {
            t.add(
                &PageView {
                    user: "u".into(),
                    page: page.into(),
                    ts,
                },
                10,
            );
        }
        let s = t.sessions(50);
        let first = &s[&("u".to_owned(), 50)];
        assert_eq!((first.end, first.views), (131, 4));
        assert_eq!(s[&("u".to_owned(), 200)].views, 1);
    }

    #[test]
    fn windows_are_aligned() {
        assert_eq!(window_start(12_345, 10_000), 10_000);
        assert_eq!(window_start(10_000, 10_000), 10_000);
    }
}
