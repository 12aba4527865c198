//! Reading the output back and comparing output and state with the truth.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use state_manager::{Codec, PartitionTransaction, ProcessingGuarantee, StateStoreManager, WindowedTransaction};

use crate::events::{partition_of, Truth};
use crate::topics::Stores;
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

/// The output topic, read back.
pub(crate) struct Output {
    /// Latest count per (page, window start), in partition order.
    pub latest: BTreeMap<(String, i64), u64>,
    /// Records read.
    pub records: u64,
}

/// Reads every committed record of the output topic.
pub(crate) fn read_output(client: &ClientConfig, topic: &str, partitions: u32) -> Result<Output> {
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
    let mut out = Output {
        latest: BTreeMap::new(),
        records: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                out.records += 1;
                let v: serde_json::Value =
                    serde_json::from_slice(msg.payload().unwrap_or_default()).map_err(|e| DemoError::BadRecord {
                        topic: topic.to_owned(),
                        reason: e.to_string(),
                    })?;
                let (Some(page), Some(start), Some(count)) =
                    (v["page"].as_str(), v["start"].as_i64(), v["count"].as_u64())
                else {
                    return Err(DemoError::BadRecord {
                        topic: topic.to_owned(),
                        reason: format!("not a window result: {v}"),
                    });
                };
                out.latest.insert((page.to_owned(), start), count);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "output reader error"),
            None => {
                let positions = kafka("reading output positions", consumer.position())?;
                let done = positions.elements().iter().all(|e| {
                    let high = highs.get(&e.partition()).copied().unwrap_or(0);
                    high == 0 || matches!(e.offset(), Offset::Offset(o) if o >= high)
                });
                if done {
                    return Ok(out);
                }
                if Instant::now() > deadline {
                    return Err(DemoError::Stuck(Duration::from_secs(120), "reading the output".into()));
                }
            }
        }
    }
}

/// Compares state and output with the truth, under the run's guarantee.
pub(crate) fn verify(
    truth: &Truth,
    output: &Output,
    manager: &StateStoreManager,
    stores: &Stores,
    cfg: &Config,
) -> Result<Verdict> {
    let mut problems = Vec::new();
    let mut above = 0;
    let exact = cfg.guarantee == ProcessingGuarantee::ExactlyOnce;
    let mut check = |what: String, have: u64, want: u64| {
        if have == want {
            return;
        }
        if !exact && have > want {
            above += 1;
        } else if problems.len() < 20 {
            problems.push(format!("{what}: {have}, expected {want}"));
        } else {
            problems.truncate(20);
            problems.push("…".into());
        }
    };
    let window_ms = cfg.window.as_millis() as i64;
    for (user, want) in &truth.user_totals {
        let p = partition_of(user, cfg.partitions);
        let t = PartitionTransaction::new(manager.partition(&stores.user_totals, p)?, Codec::MsgPack, None);
        let have: u64 = t.key_ref(user.as_bytes()).get("total")?.unwrap_or(0);
        check(format!("state: views of {user}"), have, *want);
    }
    for ((page, start), want) in &truth.windows {
        let p = partition_of(page, cfg.partitions);
        let t = WindowedTransaction::new(manager.partition(&stores.page_windows, p)?, Codec::MsgPack, None);
        let have: u64 = t
            .key_ref(page.as_bytes())
            .get_window(*start, start + window_ms)?
            .unwrap_or(0);
        check(format!("state: window {page}@{start}"), have, *want);
        let emitted = output.latest.get(&(page.clone(), *start)).copied().unwrap_or(0);
        check(format!("output: window {page}@{start}"), emitted, *want);
    }
    for key in output.latest.keys() {
        if !truth.windows.contains_key(key) {
            problems.push(format!("output: window {}@{} has no input", key.0, key.1));
        }
    }
    Ok(if !problems.is_empty() {
        Verdict::Mismatch(problems)
    } else if exact {
        Verdict::Exact
    } else {
        Verdict::AtLeast { above }
    })
}
