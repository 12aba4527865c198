//! [`bare_pipeline`]: the demo's input consumed and one record produced
//! per event, with the demo's client settings and guarantee but no state —
//! the limit the demo's events/s is printed next to, on the same cluster
//! in the same run.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use state_changelog::ChangelogProducer;
use state_manager::ProcessingGuarantee;

use crate::events::partition_of;
use crate::processor::{consumer_config, send, GroupJoin, COMPRESSION};
use crate::{kafka, Config, DemoError, Result};

/// The bare pipeline's consumer group (and transactional id prefix).
const GROUP: &str = "pageviews-bare";
/// How long a transaction or offset commit may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Give up when no record arrives for this long.
const STALL: Duration = Duration::from_secs(60);

/// The shape of a bare pipeline.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stages<'a> {
    /// Each event is produced once, to `output`.
    One {
        /// Where the events go.
        output: &'a str,
    },
    /// The demo's topology without its state: each event is produced to
    /// `by_page` keyed by its page (the partition the demo's repartition
    /// picks), and each record read back from there to `output`.
    Two {
        /// The repartition topic.
        by_page: &'a str,
        /// Where the repartitioned records go.
        output: &'a str,
    },
}

/// What a bare pipeline run took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BareRun {
    /// From creating its clients to its last commit.
    pub took: Duration,
    /// The part of `took` its consumer waited for the group to assign it
    /// partitions (the broker's rebalance delay, not the pipeline's work).
    pub group_wait: Duration,
}

/// Reads the `cfg.events` records of `input` from the start with a fresh
/// group member configured as the demo's processor is (subscribed, the
/// same consumer settings), produces one record per record read as
/// `stages` says with the demo's producer settings (idempotent, lz4;
/// transactional under exactly-once), and every `cfg.commit_every`
/// records commits the consumer's offsets as the guarantee asks: in the
/// producer's transaction (exactly-once) or after a flush (at-least-once).
/// Timed as the demo's processing is: from creating the clients to the
/// last commit, with the wait for the group's first assignment measured
/// on its own.
pub(crate) fn bare_pipeline(cfg: &Config, client: &ClientConfig, input: &str, stages: Stages<'_>) -> Result<BareRun> {
    let started = Instant::now();
    let (group, reads, expected) = match stages {
        Stages::One { .. } => (GROUP.to_owned(), vec![input], cfg.events),
        Stages::Two { by_page, .. } => (format!("{GROUP}-two-stage"), vec![input, by_page], 2 * cfg.events),
    };
    let c = consumer_config(client, &group, cfg.brokers.is_none());
    let consumer: BaseConsumer = kafka("creating the bare pipeline's consumer", c.create())?;
    kafka("subscribing the bare pipeline", consumer.subscribe(&reads))?;
    let mut join = GroupJoin::new();

    let exactly_once = cfg.guarantee == ProcessingGuarantee::ExactlyOnce;
    let mut p = client.clone();
    p.set("compression.type", COMPRESSION);
    if exactly_once {
        p.set("transactional.id", format!("{group}-{}", std::process::id()))
            .set("transaction.timeout.ms", "60000");
    }
    let producer = ChangelogProducer::new(&p)?;
    let producer = producer.kafka();
    if exactly_once {
        kafka(
            "initialising the bare pipeline's transactions",
            producer.init_transactions(TIMEOUT),
        )?;
    }

    let mut consumed = 0u64;
    let mut in_checkpoint = 0usize;
    // The next offset to consume, per topic and partition read (a few:
    // searched, so a record allocates nothing here).
    let mut positions: Vec<(String, i32, i64)> = Vec::new();
    let mut transaction_open = false;
    let mut last_record = Instant::now();
    while consumed < expected {
        let polled = consumer.poll(Duration::from_millis(100));
        join.check(&consumer)?;
        let msg = match polled {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "bare pipeline: consumer error");
                continue;
            }
            None => {
                if last_record.elapsed() > STALL {
                    return Err(DemoError::Stuck(STALL, "the bare pipeline got no records".into()));
                }
                continue;
            }
        };
        last_record = Instant::now();
        if exactly_once && !transaction_open {
            kafka("beginning a bare pipeline transaction", producer.begin_transaction())?;
            transaction_open = true;
        }
        let record = match stages {
            Stages::Two { by_page, .. } if msg.topic() == input => {
                // The demo's event: key user, payload page.
                let page = msg.payload().unwrap_or_default();
                let partition = partition_of(&String::from_utf8_lossy(page), cfg.partitions);
                BaseRecord::to(by_page)
                    .key(page)
                    .payload(&[][..])
                    .partition(partition as i32)
            }
            Stages::One { output } | Stages::Two { output, .. } => BaseRecord::to(output)
                .key(msg.key().unwrap_or_default())
                .payload(msg.payload().unwrap_or_default())
                .partition(msg.partition()),
        };
        send(producer, "producing the bare pipeline's output", record)?;
        let (topic, partition, next) = (msg.topic(), msg.partition(), msg.offset() + 1);
        match positions.iter_mut().find(|(t, p, _)| *p == partition && t == topic) {
            Some(position) => position.2 = next,
            None => positions.push((topic.to_owned(), partition, next)),
        }
        consumed += 1;
        in_checkpoint += 1;
        if in_checkpoint >= cfg.commit_every || consumed == expected {
            commit(&consumer, producer, &positions, exactly_once)?;
            transaction_open = false;
            in_checkpoint = 0;
        }
    }
    let took = started.elapsed();
    consumer.unsubscribe();
    Ok(BareRun {
        took,
        group_wait: join.waited(),
    })
}

/// Commits `positions` (next offset per topic and partition read): in the open transaction under exactly-once, after
/// every produced record is acknowledged under at-least-once.
fn commit<P: Producer<C>, C: rdkafka::producer::ProducerContext>(
    consumer: &BaseConsumer,
    producer: &P,
    positions: &[(String, i32, i64)],
    exactly_once: bool,
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, next) in positions {
        kafka(
            "listing the bare pipeline's offsets",
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)),
        )?;
    }
    if exactly_once {
        let group = consumer.group_metadata().ok_or_else(|| DemoError::Kafka {
            operation: "reading the bare pipeline's group metadata",
            source: rdkafka::error::KafkaError::Subscription("no group metadata".into()),
        })?;
        kafka(
            "sending the bare pipeline's offsets",
            producer.send_offsets_to_transaction(&tpl, &group, TIMEOUT),
        )?;
        kafka(
            "committing a bare pipeline transaction",
            producer.commit_transaction(TIMEOUT),
        )?;
    } else {
        kafka("flushing the bare pipeline's output", producer.flush(TIMEOUT))?;
        kafka(
            "committing the bare pipeline's offsets",
            consumer.commit(&tpl, CommitMode::Sync),
        )?;
    }
    Ok(())
}
