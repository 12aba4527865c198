//! Reading the output back and comparing output and state with the truth.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use state_manager::{Codec, PartitionTransaction, ProcessingGuarantee, StateStoreManager, WindowedTransaction};

use crate::events::{partition_of, SessionTruth, Truth};
use crate::topics::{Stores, Topics};
use crate::windows::{PageViews, UserSessions};
use crate::{kafka, Config, DemoError, Result};

/// The outcome of the comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every count in the state and the output equals the truth.
    Exact,
    /// At-least-once: no count is below the truth; `above` counts are higher
    /// (records processed again after the crash).
    AtLeast {
        /// Counts above the truth.
        above: usize,
    },
    /// Something is wrong: the first differences found.
    Mismatch(Vec<String>),
}

impl Verdict {
    /// True unless [`Verdict::Mismatch`].
    pub fn is_ok(&self) -> bool {
        !matches!(self, Verdict::Mismatch(_))
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Exact => f.write_str("exact"),
            Verdict::AtLeast { above } => write!(f, "at-least-once (no count below the truth; {above} above it)"),
            Verdict::Mismatch(d) => write!(f, "MISMATCH ({} shown):\n  {}", d.len(), d.join("\n  ")),
        }
    }
}

/// The output topics, read back.
#[derive(Default)]
pub(crate) struct Output {
    /// The counts emitted for each closed page window (page, start), one
    /// per output record.
    pub windows: BTreeMap<(String, i64), Vec<u64>>,
    /// The sessions emitted for each closed session (user, start).
    pub sessions: BTreeMap<(String, i64), Vec<SessionTruth>>,
    /// Records read (both topics).
    pub records: u64,
}

fn bad(topic: &str, reason: impl Into<String>) -> DemoError {
    DemoError::BadRecord {
        topic: topic.to_owned(),
        reason: reason.into(),
    }
}

/// Reads every committed record of `topic`, giving each to `f`.
fn read_topic(
    client: &ClientConfig,
    topic: &str,
    partitions: u32,
    mut f: impl FnMut(&BorrowedMessage<'_>) -> Result<()>,
) -> Result<()> {
    let consumer: BaseConsumer = kafka(
        "creating the output reader",
        state_changelog::ConsumerSettings::new("pageviews-demo-verifier")
            .client_config(client)
            .create(),
    )?;
    let mut tpl = TopicPartitionList::new();
    let mut highs = BTreeMap::new();
    for p in 0..partitions as i32 {
        let (_, high) = kafka(
            "reading output watermarks",
            consumer.fetch_watermarks(topic, p, Duration::from_secs(10)),
        )?;
        highs.insert(p, high);
        kafka(
            "assigning output",
            tpl.add_partition_offset(topic, p, Offset::Beginning),
        )?;
    }
    kafka("assigning output", consumer.assign(&tpl))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => f(&msg)?,
            Some(Err(e)) => tracing::warn!(error = %e, "output reader error"),
            None => {
                let positions = kafka("reading output positions", consumer.position())?;
                let done = positions.elements().iter().all(|e| {
                    let high = highs.get(&e.partition()).copied().unwrap_or(0);
                    high == 0 || matches!(e.offset(), Offset::Offset(o) if o >= high)
                });
                if done {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(DemoError::Stuck(Duration::from_secs(120), format!("reading {topic}")));
                }
            }
        }
    }
}

fn json(topic: &str, msg: &BorrowedMessage<'_>) -> Result<serde_json::Value> {
    serde_json::from_slice(msg.payload().unwrap_or_default()).map_err(|e| bad(topic, e.to_string()))
}

/// Reads every committed record of the closed windows and sessions topics.
pub(crate) fn read_output(client: &ClientConfig, topics: &Topics, partitions: u32) -> Result<Output> {
    let mut out = Output::default();
    read_topic(client, &topics.output, partitions, |msg| {
        out.records += 1;
        let v = json(&topics.output, msg)?;
        let (Some(page), Some(start), Some(count)) = (v["page"].as_str(), v["start"].as_i64(), v["count"].as_u64())
        else {
            return Err(bad(&topics.output, format!("not a window result: {v}")));
        };
        out.windows.entry((page.to_owned(), start)).or_default().push(count);
        Ok(())
    })?;
    read_topic(client, &topics.sessions, partitions, |msg| {
        out.records += 1;
        let v = json(&topics.sessions, msg)?;
        let fields = (
            v["user"].as_str(),
            v["start"].as_i64(),
            v["end"].as_i64(),
            v["views"].as_u64(),
        );
        let (Some(user), Some(start), Some(end), Some(views)) = fields else {
            return Err(bad(&topics.sessions, format!("not a session: {v}")));
        };
        out.sessions
            .entry((user.to_owned(), start))
            .or_default()
            .push(SessionTruth { end, views });
        Ok(())
    })?;
    Ok(out)
}

/// The window operators, whose open windows the check reads.
pub(crate) struct Operators<'a> {
    pub views: &'a PageViews,
    pub sessions: &'a UserSessions,
    /// Records either operator found late.
    pub late: u64,
}

/// Collects the differences found, under the run's guarantee.
struct Findings {
    exact: bool,
    problems: Vec<String>,
    above: usize,
}

impl Findings {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 20 {
            self.problems.push(p);
        } else if self.problems.len() == 20 {
            self.problems.push("…".into());
        }
    }

    /// A difference that sums up others: shown first, whatever the count.
    fn headline(&mut self, p: String) {
        self.problems.insert(0, p);
    }

    /// `have` for `what`, which should be `want`; above it is allowed
    /// (and counted) under at-least-once.
    /// Returns true if the difference is a problem.
    fn count(&mut self, what: impl FnOnce() -> String, have: u64, want: u64) -> bool {
        if have == want {
            return false;
        }
        if !self.exact && have > want {
            self.above += 1;
            false
        } else {
            self.problem(format!("{}: {have}, expected {want}", what()));
            true
        }
    }
}

/// Compares state and output with the truth, under the run's guarantee:
/// every user total in the state; every page window and user session that
/// must have closed (its end at or before the newest time of its page or
/// user minus grace, or minus two gaps) emitted once with its exact
/// content, every other one open in the state with it; nothing else
/// emitted or open; no late record.
pub(crate) fn verify(
    truth: &Truth,
    output: &Output,
    manager: &StateStoreManager,
    stores: &Stores,
    operators: &Operators<'_>,
    cfg: &Config,
) -> Result<Verdict> {
    let mut f = Findings {
        exact: cfg.guarantee == ProcessingGuarantee::ExactlyOnce,
        problems: Vec::new(),
        above: 0,
    };
    if operators.late > 0 {
        f.problem(format!(
            "{} records came later than their window's grace and were left out; raise --window-grace-secs",
            operators.late
        ));
    }
    // Per partition: users whose total is wrong, and by how much in all
    // (which partitions a failure touched says more than 20 users do).
    let mut wrong: BTreeMap<u32, (usize, i64)> = BTreeMap::new();
    for (user, want) in &truth.user_totals {
        let p = partition_of(user, cfg.partitions);
        let t = PartitionTransaction::new(manager.partition(&stores.user_totals, p)?, Codec::MsgPack, None);
        let have: u64 = t.key_ref(user.as_bytes()).get("total")?.unwrap_or(0);
        if f.count(|| format!("state: views of {user}"), have, *want) {
            let e = wrong.entry(p).or_default();
            e.0 += 1;
            e.1 += have as i64 - *want as i64;
        }
    }
    for (p, (users, diff)) in wrong.iter().rev() {
        f.headline(format!(
            "state: partition {p}: {users} user totals wrong, {diff:+} views in all"
        ));
    }

    // Page windows.
    let window_ms = cfg.window.as_millis() as i64;
    let grace_ms = cfg.window_grace.as_millis() as i64;
    let mut open = BTreeMap::new();
    for page in truth.page_newest.keys() {
        let p = partition_of(page, cfg.partitions);
        let t = WindowedTransaction::new(manager.partition(&stores.page_windows, p)?, Codec::MsgPack, None);
        for w in operators.views.open_windows(&t, page.as_bytes())? {
            open.insert((page.clone(), w.start), w.value);
        }
    }
    for ((page, start), want) in &truth.windows {
        let id = (page.clone(), *start);
        let closed = start + window_ms <= truth.page_newest[page] - grace_ms;
        match (closed, output.windows.get(&id), open.remove(&id)) {
            (true, Some(emitted), None) => {
                f.count(
                    || format!("output: window {page}@{start} emitted"),
                    emitted.len() as u64,
                    1,
                );
                for &have in emitted {
                    f.count(|| format!("output: window {page}@{start}"), have, *want);
                }
            }
            (false, None, Some(have)) => {
                f.count(|| format!("state: open window {page}@{start}"), have, *want);
            }
            (closed, emitted, state) => f.problem(format!(
                "window {page}@{start} should be {}; emitted {emitted:?}, open with {state:?}",
                if closed { "closed and emitted" } else { "open" }
            )),
        }
    }
    for (page, start) in output.windows.keys().chain(open.keys()) {
        if !truth.windows.contains_key(&(page.clone(), *start)) {
            f.problem(format!("window {page}@{start} has no input"));
        }
    }

    // User sessions.
    let gap_ms = cfg.session_gap.as_millis() as i64;
    let sessions = truth.sessions(gap_ms);
    let mut open = BTreeMap::new();
    for user in truth.user_views.keys() {
        let p = partition_of(user, cfg.partitions);
        let t = WindowedTransaction::new(manager.partition(&stores.user_sessions, p)?, Codec::MsgPack, None);
        for s in operators.sessions.open_windows(&t, user.as_bytes())? {
            open.insert(
                (user.clone(), s.start),
                SessionTruth {
                    end: s.end,
                    views: s.value,
                },
            );
        }
    }
    let newest: BTreeMap<&String, i64> = truth
        .user_views
        .iter()
        .map(|(u, v)| (u, v.iter().copied().max().unwrap_or(0)))
        .collect();
    for ((user, start), want) in &sessions {
        let id = (user.clone(), *start);
        let closed = want.end <= newest[user] - 2 * gap_ms;
        match (closed, output.sessions.get(&id), open.remove(&id)) {
            (true, Some(emitted), None) => {
                f.count(
                    || format!("output: session {user}@{start} emitted"),
                    emitted.len() as u64,
                    1,
                );
                if emitted.iter().any(|s| s != want) {
                    f.problem(format!(
                        "output: session {user}@{start}: {emitted:?}, expected {want:?}"
                    ));
                }
            }
            (false, None, Some(have)) if &have == want => {}
            (closed, emitted, state) => f.problem(format!(
                "session {user}@{start} ({want:?}) should be {}; emitted {emitted:?}, open as {state:?}",
                if closed { "closed and emitted" } else { "open" }
            )),
        }
    }
    for (user, start) in output.sessions.keys().chain(open.keys()) {
        if !sessions.contains_key(&(user.clone(), *start)) {
            f.problem(format!("session {user}@{start} is not in the input"));
        }
    }

    Ok(if !f.problems.is_empty() {
        Verdict::Mismatch(f.problems)
    } else if f.exact {
        Verdict::Exact
    } else {
        Verdict::AtLeast { above: f.above }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_headline_comes_first_even_past_the_limit() {
        let mut f = Findings {
            exact: true,
            problems: Vec::new(),
            above: 0,
        };
        for i in 0..30 {
            f.count(|| format!("count {i}"), 1, 2);
        }
        f.headline("partition 1: 30 wrong".into());
        assert_eq!(f.problems[0], "partition 1: 30 wrong");
        assert_eq!(f.problems.len(), 22, "20 differences, the ellipsis, the headline");
    }
}
