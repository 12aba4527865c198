//! The manager's producer and, under exactly-once, its Kafka transaction:
//! created on first use, a transaction begun with each checkpoint's first
//! change, committed or aborted by the checkpoint.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;
use state_changelog::{ChangelogError, ChangelogProducer};

use crate::config::{ManagerConfig, ProcessingGuarantee};
use crate::error::{CheckpointError, ManagerError, Result};
use crate::partitioner::PARTITIONER_SETTING;
use crate::stage::CheckpointStage;

/// See the [module docs](self).
pub(crate) struct ProducerLifecycle {
    client: ClientConfig,
    guarantee: ProcessingGuarantee,
    transactional_id: String,
    timeout: Duration,
    producer: Option<Arc<ChangelogProducer>>,
    transaction_open: bool,
}

impl ProducerLifecycle {
    /// The producer of `config`, with `kafka`'s settings and
    /// [`ManagerConfig::producer_properties`] over them, for the instance
    /// `instance_id`.
    pub(crate) fn new(config: &ManagerConfig, kafka: &ClientConfig, instance_id: &str) -> Self {
        let mut client = kafka.clone();
        for (key, value) in &config.producer_properties {
            client.set(key, value);
        }
        // Keyed output records land where readers of the manager's
        // partitioner look (the manager refused a conflicting setting).
        if client.get(PARTITIONER_SETTING).is_none() {
            client.set(PARTITIONER_SETTING, config.partitioner.librdkafka_name());
        }
        ProducerLifecycle {
            client,
            guarantee: config.guarantee,
            transactional_id: format!("{}-{}", config.group_id, instance_id),
            timeout: config.kafka_timeout,
            producer: None,
            transaction_open: false,
        }
    }

    /// The producer, created (and, under exactly-once, initialised for
    /// transactions) on first use.
    pub(crate) fn producer(&mut self) -> Result<Arc<ChangelogProducer>> {
        if let Some(p) = &self.producer {
            return Ok(p.clone());
        }
        let mut cfg = self.client.clone();
        if self.guarantee == ProcessingGuarantee::ExactlyOnce {
            cfg.set("transactional.id", &self.transactional_id);
            cfg.set("transaction.timeout.ms", "60000");
        }
        let p = Arc::new(ChangelogProducer::new(&cfg)?);
        if self.guarantee == ProcessingGuarantee::ExactlyOnce {
            p.kafka()
                .init_transactions(self.timeout)
                .map_err(|source| ManagerError::Kafka {
                    operation: "initialising transactions",
                    source,
                })?;
        }
        self.producer = Some(p.clone());
        Ok(p)
    }

    /// Exactly-once: begins the checkpoint's Kafka transaction unless one is
    /// open. At-least-once: nothing.
    pub(crate) fn begin(&mut self) -> Result<()> {
        if self.guarantee != ProcessingGuarantee::ExactlyOnce || self.transaction_open {
            return Ok(());
        }
        let p = self.producer()?;
        p.kafka().begin_transaction().map_err(|source| ManagerError::Kafka {
            operation: "beginning a transaction",
            source,
        })?;
        self.transaction_open = true;
        Ok(())
    }

    pub(crate) fn transaction_open(&self) -> bool {
        self.transaction_open
    }

    /// Waits until every record produced so far is delivered; a failed
    /// delivery is an error.
    pub(crate) fn flush(&self) -> std::result::Result<(), ChangelogError> {
        match &self.producer {
            Some(p) => p.flush(self.timeout),
            None => Ok(()),
        }
    }

    /// The offset of the last record delivered to `topic[partition]`;
    /// `None` when nothing was delivered there, or when the partition or
    /// the reported offset is outside Kafka's range (a broker never
    /// acknowledges a record at a negative offset, so such a report is not
    /// taken as a position).
    pub(crate) fn last_offset(&self, topic: &str, partition: u32) -> Option<u64> {
        let partition = i32::try_from(partition).ok()?;
        let offset = self.producer.as_ref()?.last_offset(topic, partition)?;
        u64::try_from(offset).ok()
    }

    /// Exactly-once: adds the source offsets `tpl` to the open transaction
    /// and commits it.
    pub(crate) fn commit_transaction<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        tpl: &TopicPartitionList,
        consumer: &K,
    ) -> Result<()> {
        let failed = |cause| ManagerError::CheckpointFailed {
            stage: CheckpointStage::Committed,
            cause: Box::new(cause),
        };
        let p = self.producer()?;
        if tpl.count() > 0 {
            let meta = consumer
                .group_metadata()
                .ok_or_else(|| failed(CheckpointError::NoGroupMetadata))?;
            p.kafka()
                .send_offsets_to_transaction(tpl, &meta, self.timeout)
                .map_err(|source| {
                    failed(CheckpointError::Kafka {
                        operation: "adding the offsets to the transaction",
                        source,
                    })
                })?;
        }
        p.kafka().commit_transaction(self.timeout).map_err(|source| {
            failed(CheckpointError::Kafka {
                operation: "committing the transaction",
                source,
            })
        })?;
        self.transaction_open = false;
        Ok(())
    }

    /// Aborts the open transaction, if any, after a failed checkpoint; a
    /// failure to abort is logged (the checkpoint's own error is reported).
    pub(crate) fn abort_after_failure(&mut self) {
        if let Err(e) = self.abort() {
            tracing::error!(error = %e, "aborting the Kafka transaction failed");
        }
    }

    /// Aborts the open transaction, if any.
    pub(crate) fn abort(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.transaction_open) {
            return Ok(());
        }
        if let Some(p) = &self.producer {
            // Records of the transaction still in flight (outputs sent
            // since the last checkpoint) hold the abort until their
            // delivery reports are served.
            p.settle_for_abort(self.timeout);
            p.kafka()
                .abort_transaction(self.timeout)
                .map_err(|source| ManagerError::Kafka {
                    operation: "aborting the transaction",
                    source,
                })?;
        }
        Ok(())
    }
}
