//! The whole demo: topics, input, the processor, the crash, the check and
//! the summary.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use state_changelog::{changelog_topic_name, create_topic};
use state_manager::StateContext;

use crate::bare::{BareRun, Stages};
use crate::events::{partition_of, Generator, Truth};
use crate::http::{check_bind, Endpoints, Listening, Phase, Server, Shared};
use crate::processor::{send, Run, SnapshotRestores, Tally, TimeSplit, COMPRESSION};
use crate::progress::Progress;
use crate::topics::{Topics, GROUP, PAGE_WINDOWS, USER_SESSIONS, USER_TOTALS};
use crate::verify::{read_output, verify, Operators, Verdict};
use crate::windows::{page_views, user_sessions, LateCounts};
use crate::{kafka, Config, DemoError, Hold, Result};

/// What a run measured and found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Events in the input.
    pub events: u64,
    /// Input records processed, re-processing after the crash included.
    pub processed: u64,
    /// Wall time of processing (both processors, recovery included).
    pub elapsed: Duration,
    /// The parts of `elapsed` each processor, in turn, waited for the
    /// consumer group to assign it partitions after subscribing: the
    /// broker's rebalance delay (at the start, and again after the crash),
    /// not the demo's work. Restores come after and are not in them.
    pub group_waits: Vec<Duration>,
    /// Input records processed before the crash.
    pub crashed_after: Option<u64>,
    /// Changelog offsets replayed by the second processor.
    pub restored: u64,
    /// What the second processor restored from snapshots before
    /// replaying the changelogs' tails (`None`: no `snapshots`). Its time
    /// is not in [`Report::recovery`], which starts with the first restore
    /// of a changelog.
    pub from_snapshots: Option<SnapshotRestores>,
    /// How long that recovery took: from the start of its first restore to
    /// the end of its last, on the restorer's clock.
    pub recovery: Duration,
    /// How long a bare consumer with the restore consumer's settings took
    /// to read the same changelog offsets afterwards, on the same cluster
    /// (`None`: no recovery, or the reading failed).
    pub bare_read: Option<Duration>,
    /// How long the bare pipeline (consume → produce, the same client
    /// settings and guarantee, no state) took for the same events on the
    /// same cluster, afterwards (`None`: it failed).
    pub bare_pipeline: Option<BareRun>,
    /// How long the same bare pipeline took in the demo's two stages
    /// (input → a by-page repartition topic → output: every event consumed
    /// and produced twice, as the demo's are), no state, afterwards
    /// (`None`: it failed).
    pub bare_two_stage: Option<BareRun>,
    /// Exactly-once checkpoints whose transaction committed but whose
    /// mirrored offset commit the group refused, so their records were
    /// processed again (`ManagerEvent::CheckpointRewound`; only with
    /// `mirror_transactional_offsets`, which the demo sets on the mock
    /// cluster). The state stays exact, but the output records of such a
    /// checkpoint were already committed and are emitted twice.
    pub rewound_checkpoints: u64,
    /// Records the consumer handed out again with no rewind, and input
    /// offsets it jumped over, both processors together: either breaks
    /// exactly-once (see `Deliveries`); 0 and 0 in a sound run.
    pub delivered_again: u64,
    /// See [`Report::delivered_again`].
    pub skipped_offsets: u64,
    /// Where the processing time went, both processors together.
    pub split: TimeSplit,
    /// Page windows closed and emitted.
    pub windows_emitted: usize,
    /// User sessions closed and emitted.
    pub sessions_emitted: usize,
    /// Output records read (closed windows and sessions).
    pub output_records: u64,
    /// The comparison with the truth.
    pub verdict: Verdict,
}

impl Report {
    /// Input events per second of processing.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// `elapsed` without the group waits: the time the processors held
    /// their partitions (restoring or processing).
    pub fn processing(&self) -> Duration {
        self.elapsed.saturating_sub(self.group_waits.iter().sum())
    }

    /// Input events per second of [`processing`](Self::processing).
    pub fn processing_events_per_sec(&self) -> f64 {
        self.events as f64 / self.processing().as_secs_f64().max(1e-9)
    }

    /// Events per second of the bare pipeline, wall time (`None`: not
    /// measured).
    pub fn bare_events_per_sec(&self) -> Option<f64> {
        self.rate_of(self.bare_pipeline.map(|b| b.took))
    }

    /// Events per second of the two-stage bare pipeline, wall time
    /// (`None`: not measured).
    pub fn bare_two_stage_events_per_sec(&self) -> Option<f64> {
        self.rate_of(self.bare_two_stage.map(|b| b.took))
    }

    /// Events per second of a reference that took `took` for the events.
    fn rate_of(&self, took: Option<Duration>) -> Option<f64> {
        took.filter(|b| !b.is_zero())
            .map(|b| self.events as f64 / b.as_secs_f64())
    }

    /// The summary line of a reference run (none if it was not measured):
    /// the demo's events/s against it in wall time, and without either's
    /// group waits.
    fn reference_line(&self, label: &str, run: Option<BareRun>, shape: &str) -> String {
        let Some(run) = run else { return String::new() };
        let Some(rate) = self.rate_of(Some(run.took)) else {
            return String::new();
        };
        let mut line = format!(
            "{label:<17}{} in {:.1} s ({rate:.0} events/s; {shape}, no state): the demo does {:.2}x",
            self.events,
            run.took.as_secs_f64(),
            self.events_per_sec() / rate
        );
        let held = run.took.saturating_sub(run.group_wait);
        if !held.is_zero() {
            line += &format!(
                "; without group waits {:.1} s against the demo's {:.1} s: {:.2}x",
                held.as_secs_f64(),
                self.processing().as_secs_f64(),
                held.as_secs_f64() / self.processing().as_secs_f64().max(1e-9)
            );
        }
        line + "\n"
    }

    /// Changelog records restored per second of recovery.
    pub fn recovery_per_sec(&self) -> f64 {
        self.restored as f64 / self.recovery.as_secs_f64().max(1e-9)
    }

    /// The human summary printed at the end.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "events:          {} in {:.1} s ({:.0} events/s, {} processed incl. re-processing)\n",
            self.events,
            self.elapsed.as_secs_f64(),
            self.events_per_sec(),
            self.processed
        );
        if !self.group_waits.is_empty() {
            let waits: Vec<String> = self
                .group_waits
                .iter()
                .map(|w| format!("{:.1} s", w.as_secs_f64()))
                .collect();
            s += &format!(
                "group waits:     {} of it waiting for the consumer group to assign partitions (the broker's rebalance delay, each processor in turn); processing {:.1} s, {:.0} events/s\n",
                waits.join(" + "),
                self.processing().as_secs_f64(),
                self.processing_events_per_sec()
            );
        }
        if self.split.checkpoint_count > 0 {
            let busy = self
                .processing()
                .saturating_sub(self.split.empty_polls + self.split.checkpoints);
            s += &format!(
                "time split:      of processing, {:.1} s in {} checkpoints (output sent, changelogs, commits), {:.1} s in polls that returned nothing, {:.1} s processing records ({:.1} s of it in the polls that returned them)\n",
                self.split.checkpoints.as_secs_f64(),
                self.split.checkpoint_count,
                self.split.empty_polls.as_secs_f64(),
                busy.as_secs_f64(),
                self.split.record_polls.as_secs_f64()
            );
            if let Some(t) = self.split.poll_thread {
                s += &format!(
                    "poll thread:     {:.1} s on a core, {:.1} s waiting for one (from its first poll to its last, both processors)\n",
                    t.on_cpu.as_secs_f64(),
                    t.waiting.as_secs_f64()
                );
            }
        }
        s += &self.reference_line("bare pipeline:", self.bare_pipeline, "consume -> produce");
        s += &self.reference_line(
            "bare two-stage:",
            self.bare_two_stage,
            "input -> by-page -> output as the demo",
        );
        match self.crashed_after {
            Some(n) => {
                s += &format!(
                    "crash:           after {n} events, local state deleted\nrecovery:        {} changelog records restored in {:.2} s ({:.0} records/s",
                    self.restored,
                    self.recovery.as_secs_f64(),
                    self.recovery_per_sec()
                );
                if let Some(bare) = self.bare_read.filter(|b| !b.is_zero()) {
                    let bare_rate = self.restored as f64 / bare.as_secs_f64();
                    s += &format!(
                        "; a bare consumer reads them in {:.2} s, {bare_rate:.0} records/s: {:.2}x",
                        bare.as_secs_f64(),
                        self.recovery_per_sec() / bare_rate
                    );
                }
                s += ")\n";
                if let Some(r) = self.from_snapshots {
                    s += &format!(
                        "snapshots:       {} store partitions restored from snapshots ({} bytes downloaded, checked and opened in {:.2} s, before the recovery above), then only their changelogs' tails\n",
                        r.partitions,
                        r.bytes,
                        r.took.as_secs_f64()
                    );
                }
            }
            None => s += "crash:           none\n",
        }
        if self.rewound_checkpoints > 0 {
            s += &format!(
                "rewound:         {} checkpoints committed but refused by the group were processed again; their output records are in the output twice\n",
                self.rewound_checkpoints
            );
        }
        if self.delivered_again > 0 || self.skipped_offsets > 0 {
            s += &format!(
                "deliveries:      the consumer handed out {} records again with no rewind and jumped over {} input offsets (--log warn shows each)\n",
                self.delivered_again, self.skipped_offsets
            );
        }
        s += &format!(
            "windows emitted: {} page windows and {} user sessions closed ({} output records)\n",
            self.windows_emitted, self.sessions_emitted, self.output_records
        );
        s += &format!("verified: {}\n", self.verdict);
        s
    }
}

/// Produces the click stream; returns the truth computed from it.
fn produce_input(cfg: &Config, client: &ClientConfig, topic: &str, progress: &Progress) -> Result<Truth> {
    let producer: BaseProducer = kafka(
        "creating the input producer",
        client
            .clone()
            .set("linger.ms", "20")
            .set("compression.type", COMPRESSION)
            .create(),
    )?;
    let window_ms = cfg.window.as_millis() as i64;
    let mut truth = Truth::default();
    let meter = progress.meter("producing", cfg.events, "events");
    for (i, view) in Generator::new(cfg.seed, cfg.users, cfg.pages)
        .take(cfg.events as usize)
        .enumerate()
    {
        truth.add(&view, window_ms);
        let rec = BaseRecord::to(topic)
            .key(view.user.as_bytes())
            .payload(view.page.as_bytes())
            .partition(partition_of(&view.user, cfg.partitions) as i32)
            .timestamp(view.ts);
        send(&producer, "producing input", rec)?;
        if i % 10_000 == 0 {
            meter.set_position(i as u64);
        }
    }
    kafka("flushing the input", producer.flush(Duration::from_secs(120)))?;
    meter.set_position(cfg.events);
    meter.finish();
    Ok(truth)
}

/// Where each partition of the (fully produced) input ends.
fn input_ends(client: &ClientConfig, topic: &str, partitions: u32) -> Result<Vec<i64>> {
    let consumer = crate::processor::ends_client(client)?;
    (0..partitions as i32)
        .map(|p| {
            kafka(
                "reading the input's end",
                consumer.fetch_watermarks(topic, p, Duration::from_secs(10)),
            )
            .map(|(_, high)| high)
        })
        .collect()
}

/// Fails if the mock cluster dropped old records of any partition of
/// `topics` (its log is capped at 5 MB per partition), which would make the
/// verification meaningless.
fn check_nothing_dropped(consumer: &BaseConsumer<StateContext>, topics: &[String], partitions: u32) -> Result<()> {
    for topic in topics {
        for partition in 0..partitions as i32 {
            let (low, _) = kafka(
                "reading watermarks",
                consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)),
            )?;
            if low > 0 {
                return Err(DemoError::MockRetention {
                    topic: topic.clone(),
                    partition,
                    low,
                });
            }
        }
    }
    Ok(())
}

/// Deletes the processor's local state directory.
fn delete_state(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Starts the HTTP listeners `cfg` asks for, sharing `shared`.
fn start_servers(cfg: &Config, shared: &Arc<Shared>, progress: &Progress) -> Result<Vec<Server>> {
    let mut servers = Vec::new();
    for (addr, endpoints) in [(cfg.http, Endpoints::All), (cfg.metrics, Endpoints::MetricsOnly)] {
        let Some(addr) = addr else { continue };
        let server = Server::start(addr, endpoints, shared.clone())?;
        let what = match endpoints {
            Endpoints::All => "/metrics, /users/<id>/views, /pages/<page>/windows, /status",
            Endpoints::MetricsOnly => "/metrics",
        };
        progress.println(&format!(
            "serving http://{}/ ({what}; no authentication)",
            server.addr()
        ));
        if let Some(tx) = &cfg.listening {
            // A caller that stopped listening does not stop the run.
            let _ = tx.send(Listening {
                endpoints,
                addr: server.addr(),
            });
        }
        servers.push(server);
    }
    Ok(servers)
}

/// How long the first request to `--brokers` may take before the run
/// gives up, naming the brokers and what the client reported.
const BROKER_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the brokers for `topic`'s metadata: fails within
/// [`BROKER_PROBE_TIMEOUT`] when they do not answer, with the broker and
/// the cause librdkafka reported (refused connection, TLS, authentication)
/// instead of a topic creation timing out a minute later.
fn probe_brokers(client: &ClientConfig, brokers: &str, topic: &str) -> Result<()> {
    let started = Instant::now();
    match state_changelog::topic_partitions(client, topic, BROKER_PROBE_TIMEOUT) {
        Ok(_) => Ok(()),
        // Not a connection problem: a refused setting, or a client
        // librdkafka would not create.
        Err(
            e @ (state_changelog::ChangelogError::Settings(_)
            | state_changelog::ChangelogError::Kafka {
                source: rdkafka::error::KafkaError::ClientCreation(_),
                ..
            }),
        ) => Err(e.into()),
        Err(source) => Err(DemoError::Unreachable {
            brokers: brokers.to_owned(),
            timeout: started.elapsed(),
            source: Box::new(source),
        }),
    }
}

/// Runs the whole demo: input, processing with a crash, verification.
pub fn run(cfg: &Config) -> Result<Report> {
    crate::limits::check(cfg)?;
    if let Some(addr) = cfg.http {
        check_bind("--http", addr, cfg.http_allow_remote)?;
    }
    if let Some(addr) = cfg.metrics {
        check_bind("--metrics", addr, cfg.http_allow_remote)?;
    }
    // Declared before everything that may hold the state open (servers,
    // processors), so it is deleted after them.
    let scratch = tempfile::tempdir()?;
    let progress = Progress::new(cfg.progress);
    let mock: Option<MockCluster<'static, DefaultProducerContext>> = match cfg.brokers {
        Some(_) => None,
        None => Some(kafka("starting the mock cluster", MockCluster::new(1))?),
    };
    let brokers = match (&cfg.brokers, &mock) {
        (Some(b), _) => b.clone(),
        (None, Some(m)) => m.bootstrap_servers(),
        (None, None) => unreachable!("a mock cluster is started when no brokers are given"),
    };
    let mut client = ClientConfig::new();
    cfg.kafka.apply_to(&mut client);
    client.set("bootstrap.servers", &brokers);
    // Fresh names on a real cluster, so a rerun does not see old records.
    let suffix = match cfg.brokers {
        Some(_) => format!(
            "-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        ),
        None => String::new(),
    };
    let topics = Topics {
        input: format!("pageviews{suffix}"),
        by_page: format!("pageviews-by-page{suffix}"),
        output: format!("page-window-counts{suffix}"),
        sessions: format!("user-sessions{suffix}"),
        bare_output: format!("pageviews-bare-out{suffix}"),
        bare_by_page: format!("pageviews-bare-by-page{suffix}"),
    };
    let window_ms = cfg.window.as_millis() as i64;
    // The recorder goes in before any processor exists: metric handles
    // taken earlier would record nowhere.
    let shared = match cfg.http.is_some() || cfg.metrics.is_some() {
        true => Some(Arc::new(Shared::new(
            crate::http::prometheus()?,
            cfg.events,
            cfg.partitions,
            window_ms,
            &topics.input,
            &topics.by_page,
        ))),
        false => None,
    };
    let _servers = match &shared {
        Some(shared) => start_servers(cfg, shared, &progress)?,
        None => Vec::new(),
    };
    match &mock {
        // The mock cluster answers topic creation through its own API only.
        Some(m) => {
            let changelogs = [
                changelog_topic_name(GROUP, &topics.input, USER_TOTALS),
                changelog_topic_name(GROUP, &topics.input, USER_SESSIONS),
                changelog_topic_name(GROUP, &topics.by_page, PAGE_WINDOWS),
            ];
            for t in [
                &topics.input,
                &topics.by_page,
                &topics.output,
                &topics.sessions,
                &topics.bare_output,
                &topics.bare_by_page,
            ]
            .into_iter()
            .chain(&changelogs)
            {
                kafka("creating a topic", m.create_topic(t, cfg.partitions as i32, 1))?;
            }
        }
        None => {
            probe_brokers(&client, &brokers, &topics.input)?;
            for t in [
                &topics.input,
                &topics.by_page,
                &topics.output,
                &topics.sessions,
                &topics.bare_output,
                &topics.bare_by_page,
            ] {
                create_topic(&client, t, cfg.partitions as usize, 1, &[], Duration::from_secs(30))?;
            }
        }
    }
    let state_dir = cfg.state_dir.clone().unwrap_or_else(|| scratch.path().join("state"));
    let late = Arc::new(LateCounts::default());
    let invalid = |e: state_windows::DefinitionError| DemoError::Config(e.to_string());
    let mut run = Run {
        cfg,
        client: client.clone(),
        topics: &topics,
        state_dir: state_dir.clone(),
        views: page_views(cfg.window, cfg.window_grace, &late).map_err(invalid)?,
        sessions: user_sessions(cfg.session_gap, &late).map_err(invalid)?,
        input_ends: Vec::new(),
        progress: progress.clone(),
        shared: shared.clone(),
    };
    let phase = |p: Phase| {
        if let Some(s) = &shared {
            s.set_phase(p);
        }
    };

    phase(Phase::Producing);
    let truth = produce_input(cfg, &client, &topics.input, &progress)?;
    run.input_ends = input_ends(&client, &topics.input, cfg.partitions)?;
    let started = Instant::now();
    let meter = progress.meter("processing", cfg.events, "events");
    let mut processed = 0u64;
    let crash_after = (cfg.crash_at > 0.0).then_some((cfg.events as f64 * cfg.crash_at) as u64);

    let mut crashed_after = None;
    let mut group_waits = Vec::new();
    let mut tally = Tally::default();
    if let Some(n) = crash_after.filter(|n| *n > 0) {
        let mut first = run.processor()?;
        run.drive(&mut first, Some(n), &mut processed, &meter)?;
        group_waits.push(first.join.waited());
        // Readers let go of the processor before it goes (waiting for
        // reads in flight): nothing is served from state about to be
        // deleted, and the next processor's readers start from what it
        // restores.
        if let Some(s) = &shared {
            s.clear_live(Phase::Restarting);
            s.crashed(processed);
        }
        // The crash: the checkpoint in flight is dropped, never committed,
        // and the local state is gone.
        first.manager.lock().abort()?;
        // The next processor restores every changelog from its start: the
        // mock cluster must still hold it. (Changelog records it drops
        // later are never read again.)
        if mock.is_some() {
            let changelogs: Vec<String> = first
                .manager
                .lock()
                .changelog_topics()
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            check_nothing_dropped(&first.consumer, &changelogs, cfg.partitions)?;
        }
        tally += first.tally();
        drop(first);
        delete_state(&state_dir)?;
        crashed_after = Some(processed);
        progress.println(&format!("crashed after {processed} events; local state deleted"));
    }
    let mut second = run.processor()?;
    run.drive(&mut second, None, &mut processed, &meter)?;
    group_waits.push(second.join.waited());
    meter.set_position(processed.min(cfg.events));
    meter.finish();
    let elapsed = started.elapsed();
    phase(Phase::Verifying);

    let (restored, recovery, ranges) = {
        let r = second.recovery.lock();
        let time = match (r.started, r.finished) {
            (Some(s), Some(f)) => f.saturating_duration_since(s),
            _ => Duration::ZERO,
        };
        let ranges: std::collections::BTreeMap<(String, i32), u64> =
            r.partitions.iter().map(|(k, p)| (k.clone(), p.total)).collect();
        (r.partitions.values().map(|p| p.done).sum::<u64>(), time, ranges)
    };
    if mock.is_some() {
        // What processing and the check read; the changelogs were checked
        // before their restore.
        let all = [
            topics.input.clone(),
            topics.by_page.clone(),
            topics.output.clone(),
            topics.sessions.clone(),
        ];
        check_nothing_dropped(&second.consumer, &all, cfg.partitions)?;
    }
    let output = read_output(&client, &topics, cfg.partitions)?;
    let operators = Operators {
        views: &run.views,
        sessions: &run.sessions,
        late: late.total(),
    };
    let verdict = verify(&truth, &output, &second.manager.lock(), &second.stores, &operators, cfg)?;
    // The limit the recovery rate is shown next to; a reference, so a
    // failure to read it costs the run nothing but the figure.
    let bare_read = match crashed_after.is_some() && restored > 0 {
        true => match crate::bare::bare_read(&client, &ranges) {
            Ok(took) => Some(took),
            Err(e) => {
                tracing::warn!(error = %e, "reading the changelogs with a bare consumer failed");
                None
            }
        },
        false => None,
    };
    // The limit the events/s is shown next to; also a reference only.
    let bare = |stages: Stages<'_>| match crate::bare::bare_pipeline(cfg, &client, &topics.input, stages) {
        Ok(run) => Some(run),
        Err(e) => {
            tracing::warn!(error = %e, "the bare reference pipeline failed");
            None
        }
    };
    let bare_pipeline = bare(Stages::One {
        output: &topics.bare_output,
    });
    let bare_two_stage = bare(Stages::Two {
        by_page: &topics.bare_by_page,
        output: &topics.bare_output,
    });
    if let Some(s) = &shared {
        s.finished(processed, verdict.to_string());
    }
    let until = match &cfg.hold {
        Hold::No => None,
        Hold::For(d) => Some(crossbeam_channel::after(*d)),
        Hold::Until(_) => Some(crossbeam_channel::never()),
    };
    if let Some(until) = until {
        progress.println("run finished; still serving its final state");
        let released = match &cfg.hold {
            Hold::Until(rx) => rx.clone(),
            _ => crossbeam_channel::never(),
        };
        let tick = crossbeam_channel::tick(Duration::from_millis(500));
        loop {
            crossbeam_channel::select! {
                recv(until) -> _ => break,
                recv(released) -> _ => break,
                // Keeps partition metrics (exported every few seconds) fresh.
                recv(tick) -> _ => second.manager.lock().maintain(&second.consumer)?,
            }
        }
    }
    if let Some(s) = &shared {
        s.clear_live(Phase::Finished);
    }
    tally += second.tally();
    Ok(Report {
        events: cfg.events,
        processed,
        elapsed,
        group_waits,
        crashed_after: crashed_after.filter(|_| crash_after.is_some()),
        restored,
        from_snapshots: cfg.snapshots.as_ref().map(|_| *second.from_snapshots.lock()),
        rewound_checkpoints: tally.rewound_checkpoints,
        delivered_again: tally.delivered_again,
        skipped_offsets: tally.skipped_offsets,
        split: tally.split,
        recovery,
        bare_read,
        bare_pipeline,
        bare_two_stage,
        windows_emitted: output.windows.len(),
        sessions_emitted: output.sessions.len(),
        output_records: output.records,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread_time::ThreadTime;

    fn report() -> Report {
        Report {
            events: 10,
            processed: 10,
            elapsed: Duration::from_secs(1),
            group_waits: Vec::new(),
            crashed_after: None,
            restored: 0,
            from_snapshots: None,
            recovery: Duration::ZERO,
            bare_read: None,
            bare_pipeline: None,
            bare_two_stage: None,
            rewound_checkpoints: 0,
            delivered_again: 0,
            skipped_offsets: 0,
            split: TimeSplit::default(),
            windows_emitted: 0,
            sessions_emitted: 0,
            output_records: 0,
            verdict: Verdict::Exact,
        }
    }

    #[test]
    fn the_summary_names_rewound_checkpoints_only_when_there_were_some() {
        assert!(!report().summary().contains("rewound:"), "{}", report().summary());
        let rewound = Report {
            rewound_checkpoints: 2,
            ..report()
        };
        assert!(
            rewound.summary().contains("rewound:         2 checkpoints"),
            "{}",
            rewound.summary()
        );
    }

    #[test]
    fn the_summary_splits_the_processing_time_once_a_checkpoint_committed() {
        assert!(!report().summary().contains("time split:"), "{}", report().summary());
        let split = Report {
            elapsed: Duration::from_secs(10),
            split: TimeSplit {
                empty_polls: Duration::from_secs(1),
                record_polls: Duration::from_secs(2),
                checkpoints: Duration::from_secs(4),
                checkpoint_count: 7,
                poll_thread: Some(ThreadTime {
                    on_cpu: Duration::from_millis(8500),
                    waiting: Duration::from_millis(300),
                }),
            },
            ..report()
        };
        assert!(
            split.summary().contains(
                "time split:      of processing, 4.0 s in 7 checkpoints (output sent, changelogs, commits), 1.0 s in polls that returned nothing, 5.0 s processing records (2.0 s of it in the polls that returned them)"
            ),
            "{}",
            split.summary()
        );
        assert!(
            split
                .summary()
                .contains("poll thread:     8.5 s on a core, 0.3 s waiting for one"),
            "{}",
            split.summary()
        );
    }

    #[test]
    fn the_summary_names_delivery_anomalies_only_when_there_were_some() {
        assert!(!report().summary().contains("deliveries:"), "{}", report().summary());
        let again = Report {
            delivered_again: 3,
            ..report()
        };
        assert!(
            again.summary().contains("handed out 3 records again"),
            "{}",
            again.summary()
        );
    }
}
