//! [`bare_pipeline`]: the demo's input consumed and one record produced
//! per event, with the demo's client settings and guarantee but no state —
//! the limit the demo's events/s is printed next to, on the same cluster
//! in the same run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use state_changelog::ChangelogProducer;
use state_manager::ProcessingGuarantee;

use crate::processor::{consumer_config, send, COMPRESSION};
use crate::{kafka, Config, DemoError, Result};

/// The bare pipeline's consumer group (and transactional id prefix).
const GROUP: &str = "pageviews-bare";
/// How long a transaction or offset commit may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Give up when no record arrives for this long.
const STALL: Duration = Duration::from_secs(60);

/// Reads the `cfg.events` records of `input` from the start with a fresh
/// group member configured as the demo's processor is (subscribed, the
/// same consumer settings), produces one record per event to `output`
/// with the demo's producer settings (idempotent, lz4; transactional under
/// exactly-once), and every `cfg.commit_every` events commits the
/// consumer's offsets as the guarantee asks: in the producer's transaction
/// (exactly-once) or after a flush (at-least-once). Timed as the demo's
/// processing is: from creating the clients to the last commit. Returns
/// the time taken.
pub(crate) fn bare_pipeline(cfg: &Config, client: &ClientConfig, input: &str, output: &str) -> Result<Duration> {
    let started = Instant::now();
    let c = consumer_config(client, GROUP);
    let consumer: BaseConsumer = kafka("creating the bare pipeline's consumer", c.create())?;
    kafka("subscribing the bare pipeline", consumer.subscribe(&[input]))?;

    let exactly_once = cfg.guarantee == ProcessingGuarantee::ExactlyOnce;
    let mut p = client.clone();
    p.set("compression.type", COMPRESSION);
    if exactly_once {
        p.set("transactional.id", format!("{GROUP}-{}", std::process::id()))
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
    // The next offset to consume, per input partition.
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut transaction_open = false;
    let mut last_record = Instant::now();
    while consumed < cfg.events {
        let msg = match consumer.poll(Duration::from_millis(100)) {
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
        let record = BaseRecord::to(output)
            .key(msg.key().unwrap_or_default())
            .payload(msg.payload().unwrap_or_default())
            .partition(msg.partition());
        send(producer, "producing the bare pipeline's output", record)?;
        positions.insert(msg.partition(), msg.offset() + 1);
        consumed += 1;
        in_checkpoint += 1;
        if in_checkpoint >= cfg.commit_every || consumed == cfg.events {
            commit(&consumer, producer, input, &positions, exactly_once)?;
            transaction_open = false;
            in_checkpoint = 0;
        }
    }
    let took = started.elapsed();
    consumer.unsubscribe();
    Ok(took)
}

/// Commits `positions` (next offset per partition of `input`): in the open transaction under exactly-once, after
/// every produced record is acknowledged under at-least-once.
fn commit<P: Producer<C>, C: rdkafka::producer::ProducerContext>(
    consumer: &BaseConsumer,
    producer: &P,
    input: &str,
    positions: &BTreeMap<i32, i64>,
    exactly_once: bool,
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (partition, next) in positions {
        kafka(
            "listing the bare pipeline's offsets",
            tpl.add_partition_offset(input, *partition, Offset::Offset(*next)),
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
