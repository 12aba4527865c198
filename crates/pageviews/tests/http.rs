//! pageviews' HTTP endpoints while the demo runs on the mock cluster, read
//! with a real HTTP client: interactive queries never go back, never pass
//! the verified count and end on it; /metrics is valid Prometheus text with
//! every documented metric.
//!
//! No timing assertions: the tests wait for what they need (the run's
//! `/status`, a listener's address, a metric) with generous deadlines that
//! only turn a hang into a failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use pageviews::events::{partition_of, window_start, Generator};
use pageviews::http::{Endpoints, Listening};
use pageviews::{Config, DemoError, Hold, Report, Verdict};
use serde_json::Value;

/// Only turns a hang into a failure.
const DEADLINE: Duration = Duration::from_secs(600);

/// A plain-HTTP client that returns every status (errors included).
struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Straight to the loopback listener, whatever *_PROXY says.
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client {
            agent,
            base: format!("http://{addr}"),
        }
    }

    /// Status, Content-Type and body of `GET path`.
    fn get(&self, path: &str) -> (u16, String, String) {
        let mut resp = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("GET {path}: reading the body: {e}"));
        (status, content_type, body)
    }

    /// Status and JSON body of `GET path`.
    fn json(&self, path: &str) -> (u16, Value) {
        let (status, content_type, body) = self.get(path);
        assert_eq!(content_type, "application/json", "GET {path}: {body}");
        let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        (status, v)
    }

    fn phase(&self) -> String {
        let (status, v) = self.json("/status");
        assert_eq!(status, 200, "{v}");
        v["phase"].as_str().unwrap_or_default().to_owned()
    }
}

/// A run in a thread, holding its final state until `release` is dropped.
struct Running {
    run: Option<JoinHandle<Result<Report, Box<DemoError>>>>,
    release: Sender<()>,
    listening: Vec<Listening>,
}

impl Running {
    fn start(cfg: Config, listeners: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (release, hold): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(0);
        let cfg = Config {
            listening: Some(tx),
            hold: Hold::Until(hold),
            ..cfg
        };
        // Boxed: the error is large, and it only crosses the thread to be shown.
        let run = std::thread::spawn(move || pageviews::run(&cfg).map_err(Box::new));
        let mut listening = Vec::new();
        while listening.len() < listeners {
            match rx.recv_timeout(DEADLINE) {
                Ok(l) => listening.push(l),
                Err(e) => panic!("no listener after {DEADLINE:?} ({e}); the run: {:?}", run.join()),
            }
        }
        Running {
            run: Some(run),
            release,
            listening,
        }
    }

    fn client(&self, endpoints: Endpoints) -> Client {
        Client::new(self.addr(endpoints))
    }

    fn addr(&self, endpoints: Endpoints) -> SocketAddr {
        let l = self.listening.iter().find(|l| l.endpoints == endpoints);
        l.expect("that listener was asked for").addr
    }

    /// Fails with the run's error if it ended before it was released.
    fn check(&mut self) {
        if self.run.as_ref().is_some_and(|r| r.is_finished()) {
            let result = self.run.take().map(|r| r.join());
            panic!("the run ended before it was released: {result:?}");
        }
    }

    /// Waits until the run is verified (it then holds its final state).
    fn wait_finished(&mut self, http: &Client) {
        let started = Instant::now();
        loop {
            self.check();
            if http.phase() == "finished" {
                return;
            }
            assert!(started.elapsed() < DEADLINE, "no end of the run after {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Lets the run return; its report.
    fn finish(mut self) -> Report {
        drop(self.release);
        let run = self.run.take().expect("the run was not joined before");
        run.join().expect("the run panicked").expect("the run failed")
    }
}

/// 20 s of event time: with the default 10 s windows and 60 s grace, no
/// page window closes during the run, so the state holds every window of
/// the page to the end (closed windows leave the state for the output).
fn small_config() -> Config {
    let localhost: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Config {
        events: 20_000,
        users: 200,
        pages: 50,
        commit_every: 1_000,
        http: Some(localhost),
        ..Config::default()
    }
}

/// One user's (or window's) reads: monotonic and within the truth.
#[derive(Default)]
struct Reads {
    last: u64,
    values: BTreeSet<u64>,
}

impl Reads {
    fn saw(&mut self, what: &str, v: u64, truth: u64) {
        assert!(v >= self.last, "{what} went down from {} to {v}", self.last);
        assert!(v <= truth, "{what} is {v}, above the verified count {truth}");
        self.last = v;
        self.values.insert(v);
    }
}

#[test]
fn interactive_queries_never_go_back_and_end_at_the_verified_count() {
    let cfg = small_config();
    // The truth, from the input alone.
    let window_ms = cfg.window.as_millis() as i64;
    let mut views: HashMap<String, u64> = HashMap::new();
    let mut windows: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for v in Generator::new(cfg.seed, cfg.users, cfg.pages).take(cfg.events as usize) {
        *views.entry(v.user.clone()).or_default() += 1;
        *windows
            .entry((v.page.clone(), window_start(v.ts, window_ms)))
            .or_default() += 1;
    }
    // One user per partition, and the most viewed page.
    let mut users = BTreeMap::new();
    for u in 0..cfg.users {
        let user = format!("user-{u:05}");
        users.entry(partition_of(&user, cfg.partitions)).or_insert(user);
    }
    assert_eq!(users.len(), cfg.partitions as usize);
    let page = "/page/0000";
    let page_windows: BTreeMap<i64, u64> = windows
        .iter()
        .filter(|((p, _), _)| p == page)
        .map(|((_, start), n)| (*start, *n))
        .collect();
    let page_path = "/pages/%2Fpage%2F0000/windows";

    let mut running = Running::start(cfg.clone(), 1);
    let http = running.client(Endpoints::All);
    let mut reads: BTreeMap<String, Reads> = BTreeMap::new();
    let mut window_reads: BTreeMap<i64, Reads> = BTreeMap::new();
    let (mut ok, mut unavailable) = (0u64, BTreeMap::<String, u64>::new());
    let started = Instant::now();
    loop {
        running.check();
        // Read the phase first: once it says finished, every read after
        // it is of the final state.
        let finished = http.phase() == "finished";
        for user in users.values() {
            let (status, v) = http.json(&format!("/users/{user}/views"));
            match status {
                200 => {
                    ok += 1;
                    assert_eq!(v["user"], user.as_str(), "{v}");
                    let n = v["views"].as_u64().unwrap_or_else(|| panic!("no views: {v}"));
                    reads.entry(user.clone()).or_default().saw(user, n, views[user]);
                }
                // Restarting after the crash, or restoring: never a stale
                // value, an error that says why.
                503 => {
                    let why = v["error"]
                        .as_str()
                        .unwrap_or_else(|| panic!("503 without an error: {v}"));
                    assert!(!finished, "503 after the run finished: {v}");
                    let kind = why.split(':').next().unwrap_or(why).to_owned();
                    *unavailable.entry(kind).or_default() += 1;
                }
                _ => panic!("GET /users/{user}/views: {status} {v}"),
            }
        }
        let (status, v) = http.json(page_path);
        if status == 200 {
            assert_eq!(v["page"], page, "{v}");
            for w in v["windows"].as_array().unwrap_or_else(|| panic!("no windows: {v}")) {
                let (start, end, count) = (w["start"].as_i64(), w["end"].as_i64(), w["count"].as_u64());
                let (Some(start), Some(end), Some(count)) = (start, end, count) else {
                    panic!("bad window {w}")
                };
                assert_eq!(end - start, window_ms, "{w}");
                let truth = page_windows.get(&start).copied().unwrap_or(0);
                window_reads
                    .entry(start)
                    .or_default()
                    .saw(&format!("{page}@{start}"), count, truth);
            }
        } else {
            assert_eq!(status, 503, "{v}");
        }
        if finished {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "no end of the run after {DEADLINE:?}");
    }
    // The final state is the verified one.
    for user in users.values() {
        assert_eq!(reads[user].last, views[user], "final views of {user}");
    }
    let last: BTreeMap<i64, u64> = window_reads.iter().map(|(s, r)| (*s, r.last)).collect();
    assert_eq!(last, page_windows, "final windows of {page}");

    // A window range: from and to are inclusive window starts.
    let starts: Vec<i64> = page_windows.keys().copied().collect();
    let (from, to) = (starts[1], starts[3]);
    let (status, v) = http.json(&format!("{page_path}?from={from}&to={to}"));
    assert_eq!(status, 200, "{v}");
    let got: Vec<i64> = v["windows"]
        .as_array()
        .map(|ws| ws.iter().filter_map(|w| w["start"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(got, starts[1..=3].to_vec());
    // The other form of the page path.
    let (status, v2) = http.json(&format!("/pages/{page}/windows?from={from}&to={to}"));
    assert_eq!((status, &v2), (200, &v));

    // Bad requests say what is wrong.
    for (path, status, mention) in [
        ("/pages/x/windows?from=yesterday", 400, "from"),
        ("/pages/x/windows?from=5&to=1", 400, "after"),
        ("/pages/x/windows?since=1", 400, "since"),
        ("/users//views", 400, "empty"),
        ("/users/a%zz/views", 400, "escape"),
        ("/users/a/views?x=1", 400, "query"),
        ("/nothing-here", 404, "/metrics"),
    ] {
        let (got, v) = http.json(path);
        let error = v["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{path}: {v}");
        assert!(error.contains(mention), "{path}: {error:?} should mention {mention:?}");
    }
    // A user never seen has no views (not an error).
    let (status, v) = http.json("/users/nobody/views");
    assert_eq!((status, v["views"].as_u64()), (200, Some(0)), "{v}");

    let report = running.finish();
    println!(
        "{ok} reads of committed views, unavailable: {unavailable:?}; distinct values per user: {:?}",
        reads.values().map(|r| r.values.len()).collect::<Vec<_>>()
    );
    println!("{}", report.summary());
    assert_eq!(report.verdict, Verdict::Exact, "{}", report.summary());
    assert!(report.crashed_after.is_some());
}

/// One metric family of a Prometheus text exposition.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    /// (sample name, labels, value)
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

/// Parses the Prometheus text format (version 0.0.4), strictly enough to
/// fail on anything a Prometheus server would reject.
fn parse_prometheus(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{}",
                        at()
                    );
                    let f = families.entry(name.to_owned()).or_default();
                    assert!(f.kind.is_empty(), "second TYPE, {}", at());
                    f.kind = kind.to_owned();
                }
                (Some("HELP"), Some(name), _) => families.entry(name.to_owned()).or_default().help = true,
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value, {}", at()));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .enumerate()
                    .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())),
            "bad metric name, {}",
            at()
        );
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let close = loop {
                let (start, c) = chars.next().unwrap_or_else(|| panic!("unclosed labels, {}", at()));
                if c == '}' {
                    break start;
                }
                if c == ',' {
                    continue;
                }
                let eq = after[start..]
                    .find('=')
                    .unwrap_or_else(|| panic!("label without =, {}", at()))
                    + start;
                let key = &after[start..eq];
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label, {}",
                    at()
                );
                while chars.peek().is_some_and(|(j, _)| *j <= eq) {
                    chars.next();
                }
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "unquoted label value, {}",
                    at()
                );
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c @ ('\\' | '"')) => value.push(c),
                            other => panic!("bad escape {other:?}, {}", at()),
                        },
                        Some(c) => value.push(c),
                        None => panic!("unterminated label value, {}", at()),
                    }
                }
                labels.insert(key.to_owned(), value);
            };
            rest = &after[close + 1..];
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().unwrap_or_else(|| panic!("no value, {}", at()));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value, {}", at())),
        };
        if let Some(ts) = fields.next() {
            assert!(ts.parse::<i64>().is_ok(), "bad timestamp, {}", at());
        }
        assert!(fields.next().is_none(), "trailing fields, {}", at());
        // Histogram and summary samples belong to their family.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|base| families.contains_key(*base)))
            .unwrap_or(name);
        let f = families
            .get_mut(family)
            .unwrap_or_else(|| panic!("sample before its TYPE, {}", at()));
        f.samples.push((name.to_owned(), labels, value));
    }
    families
}

/// The metric table of docs/operations.md: name → (type, label names).
fn documented_metrics() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `name` | type | labels | meaning |
        let [_, name, kind, labels, _, _] = cells[..] else {
            continue;
        };
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        if !(name.starts_with("kafka_state_") || name.starts_with("pageviews_")) {
            continue;
        }
        let labels = labels.split('`').skip(1).step_by(2).map(str::to_owned).collect();
        out.insert(name.to_owned(), (kind.to_owned(), labels));
    }
    out
}

#[test]
fn metrics_are_prometheus_text_with_every_documented_metric() {
    use state_changelog::metrics as cl;
    use state_manager::metrics as m;

    let documented = documented_metrics();
    // Every metric the crates define is in the table.
    for name in [
        m::CHECKPOINT_STAGE_SECONDS,
        m::CHECKPOINTS,
        m::REWOUND_RECORDS,
        m::COMMITS_DELAYED_BY_REBALANCE,
        m::RESTORE_DONE,
        m::RESTORE_REMAINING,
        m::RESTORE_RATE,
        m::STANDBY_LAG,
        m::PARTITIONS,
        m::PARTITION_LIVE_DATA_BYTES,
        m::PARTITION_MEMTABLE_BYTES,
        m::PARTITION_BLOCK_CACHE_BYTES,
        m::PARTITION_PENDING_COMPACTION_BYTES,
        m::PARTITION_DISK_BYTES,
        m::PARTITIONS_REBUILT,
        m::QUARANTINE_REMOVED,
        m::STATE_DIR_CLEANED,
        m::DISK_FULL,
        m::WAITING_FOR_DISK,
        m::SNAPSHOTS_TAKEN,
        m::SNAPSHOT_SECONDS,
        m::SNAPSHOT_BYTES_UPLOADED,
        m::SNAPSHOT_RESTORES,
        m::SNAPSHOT_RESTORE_SECONDS,
        m::SNAPSHOT_BYTES_DOWNLOADED,
        m::SNAPSHOTS_SKIPPED,
        cl::CHANGELOG_RECORDS,
        cl::CHANGELOG_BYTES,
        state_windows::metrics::LATE_RECORDS,
        pageviews::http::HTTP_REQUESTS,
        pageviews::http::EVENTS_PROCESSED,
    ] {
        assert!(
            documented.contains_key(name),
            "{name} is not in docs/operations.md's table"
        );
    }
    // A one-instance run keeps no standby replicas: no lag to report; and
    // no other member makes its group rebalance under a commit; the demo's
    // records come within their windows' grace: none is late; nothing is
    // damaged, so nothing is rebuilt or quarantined; the state-dir cleaner
    // is off; the disk does not fill up; no snapshot is damaged, so none
    // is skipped.
    let absent_here = [
        m::DISK_FULL,
        m::SNAPSHOTS_SKIPPED,
        m::PARTITIONS_REBUILT,
        m::QUARANTINE_REMOVED,
        m::STATE_DIR_CLEANED,
        m::STANDBY_LAG,
        m::REWOUND_RECORDS,
        m::COMMITS_DELAYED_BY_REBALANCE,
        state_windows::metrics::LATE_RECORDS,
    ];
    // Zero at the end of a run: restores are done; a small store has no
    // compaction debt; no partition waits for disk space.
    let zero_at_the_end = [
        m::RESTORE_REMAINING,
        m::PARTITION_PENDING_COMPACTION_BYTES,
        m::WAITING_FOR_DISK,
    ];

    let localhost: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // Snapshots taken before the crash and restored after it: their
    // metrics too.
    let snapshots = tempfile::tempdir().unwrap();
    let cfg = Config {
        metrics: Some(localhost),
        snapshots: Some(snapshots.path().to_owned()),
        ..small_config()
    };
    let mut running = Running::start(cfg, 2);
    let http = running.client(Endpoints::All);
    let scrape = running.client(Endpoints::MetricsOnly);
    running.wait_finished(&http);

    // Partition figures are exported every few seconds by the manager
    // (which the held run keeps maintaining): wait for them.
    let started = Instant::now();
    let families = loop {
        let (status, content_type, body) = scrape.get("/metrics");
        assert_eq!(status, 200, "{body}");
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let families = parse_prometheus(&body);
        let exported = |name: &str| {
            families.get(name).is_some_and(|f| {
                f.samples
                    .iter()
                    .any(|(_, l, v)| l.get("role").is_some_and(|r| r == "active") && *v > 0.0)
            })
        };
        if exported(m::PARTITION_DISK_BYTES) && exported(m::PARTITION_LIVE_DATA_BYTES) {
            break families;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no partition figures after {DEADLINE:?}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    for (name, (kind, labels)) in &documented {
        if absent_here.contains(&name.as_str()) {
            continue;
        }
        let f = families
            .get(name)
            .unwrap_or_else(|| panic!("{name} is documented but not exported"));
        assert_eq!(&f.kind, kind, "type of {name}");
        assert!(f.help, "{name} has no HELP line");
        for (sample, l, _) in &f.samples {
            let keys: BTreeSet<String> = l.keys().filter(|k| *k != "le").cloned().collect();
            assert_eq!(&keys, labels, "labels of {sample}");
        }
        let total: f64 = match kind.as_str() {
            "histogram" => f
                .samples
                .iter()
                .filter(|(s, _, _)| s.ends_with("_count"))
                .map(|(_, _, v)| v)
                .sum(),
            _ => f.samples.iter().map(|(_, _, v)| v).sum(),
        };
        if zero_at_the_end.contains(&name.as_str()) {
            assert!(total >= 0.0, "{name}: {total}");
        } else {
            assert!(total > 0.0, "{name} is zero: {:?}", f.samples);
        }
    }
    // Every checkpoint stage has observations.
    let stages: BTreeSet<&str> = families[m::CHECKPOINT_STAGE_SECONDS]
        .samples
        .iter()
        .filter(|(s, _, v)| s.ends_with("_count") && *v > 0.0)
        .filter_map(|(_, l, _)| l.get("stage").map(String::as_str))
        .collect();
    assert!(stages.contains("total") && stages.contains("commit"), "{stages:?}");

    // The metrics-only listener serves nothing else.
    let (status, v) = scrape.json("/users/user-00001/views");
    assert_eq!(status, 404, "{v}");

    let report = running.finish();
    assert_eq!(report.verdict, Verdict::Exact, "{}", report.summary());
}

/// Sends `raw` on a new connection; the status of the answer (the server
/// closes after it).
fn raw_request(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The server may answer and close before a long request is all sent.
    let _ = s.write_all(raw);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no answer from {addr}: {text:?}"))
}

/// What an unauthenticated client can send (issue 25): a huge declared
/// body, 10,000 header bytes, a byte per second, 300 idle connections.
/// Both listeners keep answering, and the run still verifies exactly.
#[test]
fn hostile_clients_neither_stop_the_run_nor_lock_others_out() {
    let localhost: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let cfg = Config {
        metrics: Some(localhost),
        ..small_config()
    };
    let mut running = Running::start(cfg, 2);
    let http = running.client(Endpoints::All);
    let mut idle = Vec::new();
    for endpoints in [Endpoints::All, Endpoints::MetricsOnly] {
        let addr = running.addr(endpoints);
        idle.extend((0..300).map(|_| TcpStream::connect(addr).expect("an idle connection")));
        assert_eq!(
            raw_request(
                addr,
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"
            ),
            405,
            "a huge declared body"
        );
        let mut big_head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
        big_head.extend_from_slice(format!("X-Filler: {}\r\n\r\n", "y".repeat(10_000)).as_bytes());
        assert_eq!(raw_request(addr, &big_head), 431, "10,000 header bytes");

        // A byte per second: others are answered meanwhile.
        let mut slow = TcpStream::connect(addr).expect("a slow connection");
        let dribble = std::thread::spawn(move || {
            for b in b"GET /metrics HTTP/1.1\r\n" {
                if slow.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let (status, _, _) = Client::new(addr).get("/metrics");
        assert_eq!(status, 200, "answered while idle and slow clients hold connections");
        assert!(!http.phase().is_empty(), "/status answers");
        running.check();
        drop(dribble);
    }
    running.wait_finished(&http);
    let (status, _, _) = running.client(Endpoints::MetricsOnly).get("/metrics");
    assert_eq!(status, 200);
    drop(idle);
    let report = running.finish();
    assert_eq!(report.verdict, Verdict::Exact, "{}", report.summary());
}
