//! [`ChangelogApplier`]: applies changelog records to a store partition in
//! batches — the core of recovery, independent of how records are fetched.

use std::collections::BTreeMap;
use std::sync::Arc;

use state_core::{
    ProcessedOffsets, ReplayCheck, ReplayedRecord, StorePartition, WriteBatch, CF_HEADER, PROCESSED_OFFSETS_HEADER,
    TTL_STAMPED_HEADER, VALUE_CODEC_HEADER,
};

use crate::error::{ChangelogError, Result};
use crate::restore::writer::BatchWriter;

/// One changelog record as fetched, borrowed from the consumer's message.
#[derive(Clone, Copy, Debug)]
pub struct IncomingRecord<'a> {
    /// Record offset in the changelog partition.
    pub offset: i64,
    /// Record key (`None` is an error).
    pub key: Option<&'a [u8]>,
    /// Record value (`None` is a tombstone).
    pub value: Option<&'a [u8]>,
    /// The `__column_family__` header value.
    pub column_family: Option<&'a [u8]>,
    /// The `__processed_tp_offsets__` header value.
    pub processed_offsets: Option<&'a [u8]>,
    /// The `__ttl_stamped__` header value (quixstreams' per-write TTL); any
    /// non-empty value means the record's value carries a stamp.
    pub ttl_stamped: Option<&'a [u8]>,
    /// The `__value_codec__` header value (absent: JSON).
    pub value_codec: Option<&'a [u8]>,
}

impl<'a> IncomingRecord<'a> {
    /// Builds a record from `(name, value)` header pairs.
    pub fn from_headers(
        offset: i64,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> Self {
        let mut column_family = None;
        let mut processed_offsets = None;
        let mut ttl_stamped = None;
        let mut value_codec = None;
        for (name, v) in headers {
            if name == CF_HEADER {
                column_family = v;
            } else if name == PROCESSED_OFFSETS_HEADER {
                processed_offsets = v;
            } else if name == TTL_STAMPED_HEADER {
                ttl_stamped = v;
            } else if name == VALUE_CODEC_HEADER {
                value_codec = v;
            }
        }
        IncomingRecord {
            offset,
            key,
            value,
            column_family,
            processed_offsets,
            ttl_stamped,
            value_codec,
        }
    }

    /// Forgets every header field (a partial parse is started over).
    pub(crate) fn clear_headers(&mut self) {
        self.column_family = None;
        self.processed_offsets = None;
        self.ttl_stamped = None;
        self.value_codec = None;
    }
}

/// Counters of an applier's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Records written to the partition.
    pub applied: u64,
    /// Records skipped because their source offsets were not committed.
    pub skipped: u64,
    /// Batches written.
    pub batches: u64,
}

/// Tuning of a [`ChangelogApplier`].
pub struct ApplierConfig {
    /// Flush automatically once this many records are pending.
    pub max_batch_records: usize,
}

impl Default for ApplierConfig {
    fn default() -> Self {
        ApplierConfig {
            max_batch_records: 10_000,
        }
    }
}

/// Applies changelog records of one partition.
///
/// Records accumulate in one [`WriteBatch`] together with the offset of the
/// last record; [`ChangelogApplier::flush`] writes it atomically (as a bulk
/// write, see [`StorePartition::write_bulk`]) and [`ChangelogApplier::finish`]
/// makes everything durable. An invalid record fails with a typed error and
/// drops the pending batch, so the partition stays at the last written batch:
/// its data and its stored offset always agree.
///
/// A batch that fills up during [`apply`](ChangelogApplier::apply) (or is
/// handed over with [`submit`](ChangelogApplier::submit)) is written by a
/// background thread while the next one fills; its outcome is reported by
/// the next `apply` that fills a batch, `submit`, `flush` or `finish`.
/// Batches are written one at a time, in order.
///
/// A record whose `__processed_tp_offsets__` are not below the committed
/// source offsets belongs to a checkpoint that never committed: it is
/// skipped, but the stored offset still advances past it.
///
/// With a [`ReplayCheck`] ([`with_replay_check`](Self::with_replay_check),
/// from the partition's `state_core::PartitionFormat`), every record is
/// checked against the partition's codec and TTL support first (a mismatch
/// is a typed error and nothing of its batch is written), applied records
/// follow quixstreams' per-write TTL replay rules, and
/// [`finish`](Self::finish) settles the end of the replay.
pub struct ChangelogApplier<P: StorePartition + ?Sized = dyn StorePartition> {
    partition: Arc<P>,
    topic: String,
    partition_no: i32,
    committed: BTreeMap<String, i64>,
    batch: WriteBatch,
    pending: usize,
    config: ApplierConfig,
    stats: ApplyStats,
    // The last header seen and its verdict: consecutive records of one
    // checkpoint share the header, so it is parsed once per checkpoint.
    last_header: Vec<u8>,
    last_verdict: bool,
    /// Started by the first batch that fills up; small recoveries never
    /// start one.
    writer: Option<BatchWriter>,
    /// The last written batch's buffer, cleared, to fill after the current one.
    spare: Option<WriteBatch>,
    /// Codec and TTL rules, when the caller gave the partition's format.
    replay: Option<ReplayCheck>,
    /// Set by [`loading_into_empty`](Self::loading_into_empty).
    bulk_load: bool,
}

/// A batch of a load into an empty partition is this many times
/// [`ApplierConfig::max_batch_records`] (unless [`LOAD_BATCH_BYTES`] is
/// reached first): a sorted table file per batch, so fewer and larger.
const LOAD_BATCH_FACTOR: usize = 10;

/// The most bytes of keys and values a load batch holds.
const LOAD_BATCH_BYTES: usize = 64 << 20;

impl<P: StorePartition + ?Sized + 'static> ChangelogApplier<P> {
    /// An applier for `partition`, fed from `topic[partition_no]`, with the
    /// committed source offsets (`topic -> next offset to consume`).
    pub fn new(
        partition: Arc<P>,
        topic: impl Into<String>,
        partition_no: i32,
        committed: BTreeMap<String, i64>,
        config: ApplierConfig,
    ) -> Self {
        ChangelogApplier {
            partition,
            topic: topic.into(),
            partition_no,
            committed,
            batch: WriteBatch::with_capacity(config.max_batch_records, 0),
            pending: 0,
            config,
            stats: ApplyStats::default(),
            last_header: Vec::new(),
            last_verdict: true,
            writer: None,
            spare: None,
            replay: None,
            bulk_load: false,
        }
    }

    /// The same applier, for a restore into a partition that holds nothing
    /// yet (no stored changelog offset): batches are larger and written
    /// with [`StorePartition::load_bulk`], which a backend may turn into
    /// sorted table files. The end state is the one of the default path;
    /// a load batch is not atomic, though: after a crash or a failed
    /// write the partition may hold data past its stored changelog offset,
    /// which a restore from that offset rewrites (see `load_bulk`). Not for
    /// standbys, whose small batches would each become a file.
    pub fn loading_into_empty(mut self) -> Self {
        self.bulk_load = true;
        self
    }

    /// Whether the pending batch is full.
    fn batch_full(&self) -> bool {
        if self.bulk_load {
            self.pending >= self.config.max_batch_records.saturating_mul(LOAD_BATCH_FACTOR)
                || self.batch.data_size() >= LOAD_BATCH_BYTES
        } else {
            self.pending >= self.config.max_batch_records
        }
    }

    fn write_now(&self, batch: &WriteBatch) -> state_core::Result<()> {
        if self.bulk_load {
            self.partition.load_bulk(batch)
        } else {
            self.partition.write_bulk(batch)
        }
    }

    /// The same applier, checking and applying every record with `check`
    /// (see [`ReplayCheck`]): the codec of every record must be the
    /// partition's, TTL-stamped records need TTL support, and TTL replay
    /// follows quixstreams. Build `check` with
    /// `state_core::check_store_format(..)?.replay_check()`.
    pub fn with_replay_check(mut self, check: ReplayCheck) -> Self {
        self.replay = Some(check);
        self
    }

    /// Work done so far.
    pub fn stats(&self) -> ApplyStats {
        self.stats
    }

    /// The committed source offsets records are judged by.
    pub fn committed(&self) -> &BTreeMap<String, i64> {
        &self.committed
    }

    /// Replaces the committed source offsets records are judged by (a
    /// standby refreshes them as the owner commits).
    pub fn set_committed(&mut self, committed: BTreeMap<String, i64>) {
        if committed != self.committed {
            self.committed = committed;
            // The cached verdict was made against the old offsets.
            self.last_header.clear();
        }
    }

    /// Like [`apply`](Self::apply), but a record of a checkpoint not (yet)
    /// committed is neither applied nor skipped: nothing is staged and
    /// `Ok(false)` is returned, so the caller can stop before it and offer
    /// it again once the owner's commits moved on. What a standby uses: it
    /// must never hold changes of a checkpoint that may still abort.
    pub fn apply_committed(&mut self, record: IncomingRecord<'_>) -> Result<bool> {
        let committed = match self.should_apply(record.processed_offsets, record.offset) {
            Ok(verdict) => verdict,
            Err(e) => {
                self.discard();
                if let Err(w) = self.wait_for_writer() {
                    tracing::error!(error = %w, "writing the previous changelog batch failed too");
                }
                return Err(e);
            }
        };
        if !committed {
            return Ok(false);
        }
        self.apply(record)?;
        Ok(true)
    }

    fn should_apply(&mut self, header: Option<&[u8]>, offset: i64) -> Result<bool> {
        let Some(header) = header else { return Ok(true) };
        if header == self.last_header.as_slice() && !self.last_header.is_empty() {
            return Ok(self.last_verdict);
        }
        let parsed = ProcessedOffsets::from_header(header).map_err(|e| ChangelogError::InvalidProcessedOffsets {
            topic: self.topic.clone(),
            partition: self.partition_no,
            offset,
            reason: e.to_string(),
        })?;
        let verdict = parsed.is_none_or(|p| p.is_committed(&self.committed));
        self.last_header.clear();
        self.last_header.extend_from_slice(header);
        self.last_verdict = verdict;
        Ok(verdict)
    }

    /// Adds one record to the pending batch (flushing when it is full).
    pub fn apply(&mut self, record: IncomingRecord<'_>) -> Result<()> {
        match self.validate_and_stage(record) {
            Ok(()) => {}
            Err(e) => {
                self.discard();
                // Settle the batch in flight, so that on error the partition
                // is exactly at the last batch written.
                if let Err(w) = self.wait_for_writer() {
                    tracing::error!(error = %w, "writing the previous changelog batch failed too");
                }
                return Err(e);
            }
        }
        if self.batch_full() {
            self.submit()?;
        }
        Ok(())
    }

    fn validate_and_stage(&mut self, record: IncomingRecord<'_>) -> Result<()> {
        let offset = record.offset;
        let cf_bytes = record
            .column_family
            .ok_or_else(|| ChangelogError::MissingColumnFamilyHeader {
                topic: self.topic.clone(),
                partition: self.partition_no,
                offset,
            })?;
        let cf = std::str::from_utf8(cf_bytes)
            .ok()
            // The metadata column family is local bookkeeping (the stored
            // changelog offset): a record aimed at it would corrupt recovery.
            .filter(|s| !s.is_empty() && *s != state_core::cf::METADATA)
            .ok_or_else(|| ChangelogError::InvalidColumnFamilyHeader {
                topic: self.topic.clone(),
                partition: self.partition_no,
                offset,
            })?;
        let key = record.key.ok_or_else(|| ChangelogError::NullKey {
            topic: self.topic.clone(),
            partition: self.partition_no,
            offset,
        })?;
        let apply = self.should_apply(record.processed_offsets, offset)?;
        if let Some(check) = self.replay.as_mut() {
            let replayed = ReplayedRecord {
                offset,
                cf,
                key,
                value: record.value,
                ttl_stamped: record.ttl_stamped.is_some_and(|v| !v.is_empty()),
                value_codec: record.value_codec,
            };
            check.check(&replayed)?;
            if apply {
                check.stage(&replayed, &mut self.batch);
                self.stats.applied += 1;
            } else {
                self.stats.skipped += 1;
            }
        } else if apply {
            self.batch.push(cf, key, record.value);
            self.stats.applied += 1;
        } else {
            self.stats.skipped += 1;
        }
        self.batch.set_changelog_offset(offset.max(0) as u64);
        self.pending += 1;
        Ok(())
    }

    /// Drops the pending batch (after an error).
    fn discard(&mut self) {
        self.batch.clear();
        self.pending = 0;
    }

    /// Waits for the batch the writer thread has in flight; on its failure
    /// the pending batch is dropped too (it must not be written after a
    /// gap).
    fn wait_for_writer(&mut self) -> Result<()> {
        let Some((buffer, res)) = self.writer.as_mut().and_then(BatchWriter::wait) else {
            return Ok(());
        };
        if let Err(e) = res {
            self.discard();
            return Err(e.into());
        }
        self.stats.batches += 1;
        self.spare = buffer;
        Ok(())
    }

    /// Hands the pending batch, if any, to the writer thread (started on
    /// first use) and starts a new one. It is written before the next
    /// `submit`, `flush` or `finish` returns; an error of that write is
    /// reported by whichever of them comes first.
    ///
    /// A load into an empty partition ([`loading_into_empty`](Self::loading_into_empty))
    /// hands over only full batches: a smaller one stays pending for the
    /// next full one, `flush` or `finish`.
    pub fn submit(&mut self) -> Result<()> {
        if self.bulk_load && !self.batch_full() {
            return Ok(());
        }
        self.wait_for_writer()?;
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = BatchWriter::spawn(self.partition.clone(), self.bulk_load);
        }
        let Some(writer) = self.writer.as_mut() else {
            return self.write_here();
        };
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| WriteBatch::with_capacity(self.config.max_batch_records, 0));
        let full = std::mem::replace(&mut self.batch, next);
        self.pending = 0;
        writer.send(full)?;
        Ok(())
    }

    /// Writes the pending batch, if any, atomically with its last offset,
    /// after any batch in flight; when it returns, everything applied so far
    /// is in the partition (not yet durable: see [`finish`](Self::finish)).
    pub fn flush(&mut self) -> Result<()> {
        self.wait_for_writer()?;
        self.write_here()
    }

    /// Writes the pending batch on this thread.
    fn write_here(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let res = self.write_now(&self.batch);
        self.discard();
        res?;
        self.stats.batches += 1;
        Ok(())
    }

    /// Flushes, settles the end of the replay (with a [`ReplayCheck`]: see
    /// [`ReplayCheck::complete`], which may refuse a quixstreams TTL state
    /// with a typed error) and makes every applied batch durable.
    pub fn finish(&mut self) -> Result<ApplyStats> {
        self.flush()?;
        if let Some(check) = self.replay.as_mut() {
            check.complete(&*self.partition)?;
        }
        self.partition.persist()?;
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state_core::{cf, MemoryPartition};

    fn rec<'a>(offset: i64, key: &'a [u8], value: Option<&'a [u8]>, header: Option<&'a [u8]>) -> IncomingRecord<'a> {
        IncomingRecord {
            offset,
            key: Some(key),
            value,
            column_family: Some(b"default"),
            processed_offsets: header,
            ttl_stamped: None,
            value_codec: None,
        }
    }

    fn applier(p: &Arc<MemoryPartition>, committed: i64) -> ChangelogApplier<MemoryPartition> {
        let mut c = BTreeMap::new();
        c.insert("input".to_string(), committed);
        ChangelogApplier::new(p.clone(), "changelog", 0, c, ApplierConfig { max_batch_records: 2 })
    }

    #[test]
    fn applies_in_batches_and_stores_the_offset() {
        let p = Arc::new(MemoryPartition::new());
        let mut a = applier(&p, 100);
        a.apply(rec(0, b"a", Some(b"1"), Some(br#"{"input":1}"#))).unwrap();
        a.apply(rec(1, b"b", Some(b"2"), Some(br#"{"input":2}"#))).unwrap();
        a.apply(rec(2, b"a", None, None)).unwrap();
        let stats = a.finish().unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                applied: 3,
                skipped: 0,
                batches: 2
            }
        );
        assert_eq!(p.get(cf::DEFAULT, b"a").unwrap(), None, "tombstones delete");
        assert_eq!(p.get(cf::DEFAULT, b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(p.changelog_offset().unwrap(), Some(2));
    }

    #[test]
    fn uncommitted_records_are_skipped_but_the_offset_advances() {
        let p = Arc::new(MemoryPartition::new());
        let mut a = applier(&p, 5);
        a.apply(rec(10, b"a", Some(b"1"), Some(br#"{"input":4}"#))).unwrap();
        a.apply(rec(11, b"b", Some(b"2"), Some(br#"{"input":5}"#))).unwrap();
        a.apply(rec(12, b"c", Some(b"3"), Some(br#"{"other":1}"#))).unwrap();
        let stats = a.finish().unwrap();
        assert_eq!((stats.applied, stats.skipped), (1, 2));
        assert!(p.get(cf::DEFAULT, b"a").unwrap().is_some());
        assert!(
            p.get(cf::DEFAULT, b"b").unwrap().is_none(),
            "processed offset == committed is not committed"
        );
        assert!(
            p.get(cf::DEFAULT, b"c").unwrap().is_none(),
            "a topic without a committed offset is skipped"
        );
        assert_eq!(p.changelog_offset().unwrap(), Some(12));
    }

    #[test]
    fn bad_records_fail_typed_and_apply_nothing_of_their_batch() {
        let p = Arc::new(MemoryPartition::new());
        let mut a = applier(&p, 100);
        a.apply(rec(0, b"a", Some(b"1"), None)).unwrap();
        a.apply(rec(1, b"b", Some(b"1"), None)).unwrap(); // batch of 2 flushed
        a.apply(rec(2, b"c", Some(b"1"), None)).unwrap();
        let mut missing = rec(3, b"d", Some(b"1"), None);
        missing.column_family = None;
        let err = a.apply(missing).unwrap_err();
        assert!(
            matches!(err, ChangelogError::MissingColumnFamilyHeader { offset: 3, .. }),
            "{err}"
        );
        assert_eq!(p.get(cf::DEFAULT, b"c").unwrap(), None, "the pending batch is dropped");
        assert_eq!(p.changelog_offset().unwrap(), Some(1), "offset and data agree");

        let mut null_key = rec(4, b"", None, None);
        null_key.key = None;
        assert!(matches!(
            a.apply(null_key),
            Err(ChangelogError::NullKey { offset: 4, .. })
        ));
        let bad_header = rec(5, b"e", Some(b"1"), Some(b"{oops"));
        assert!(matches!(
            a.apply(bad_header),
            Err(ChangelogError::InvalidProcessedOffsets { .. })
        ));
        for name in [&b"\xff"[..], b"", b"__metadata__"] {
            let mut bad_cf = rec(6, b"e", Some(b"1"), None);
            bad_cf.column_family = Some(name);
            assert!(matches!(
                a.apply(bad_cf),
                Err(ChangelogError::InvalidColumnFamilyHeader { .. })
            ));
        }
        assert_eq!(p.changelog_offset().unwrap(), Some(1), "the stored offset is untouched");
    }

    #[test]
    fn a_failed_background_write_is_reported_and_nothing_after_it_is_written() {
        // The third bulk write fails, once: a write after the gap would
        // succeed and show.
        let bulk_writes = std::sync::atomic::AtomicUsize::new(0);
        let p = Arc::new(state_core::testkit::FailingWrites::new(
            MemoryPartition::new(),
            move |kind| {
                use std::sync::atomic::Ordering;
                (kind == state_core::testkit::WriteKind::WriteBulk && bulk_writes.fetch_add(1, Ordering::SeqCst) == 2)
                    .then(|| state_core::Error::backend("test", "writing a bulk batch", "disk full"))
            },
        ));
        let mut a = ChangelogApplier::new(
            p.clone(),
            "changelog",
            0,
            BTreeMap::new(),
            ApplierConfig { max_batch_records: 2 },
        );
        let mut err = None;
        // Batches of two: 0-1 and 2-3 are written, 4-5 fails in the
        // background and is reported by a later call, at the latest by finish.
        for i in 0..10u8 {
            if let Err(e) = a.apply(rec(i64::from(i), &[b'a' + i], Some(b"1"), None)) {
                err = Some(e);
                break;
            }
        }
        let err = match err {
            Some(e) => e,
            None => a.finish().unwrap_err(),
        };
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(p.changelog_offset().unwrap(), Some(3), "offset and data agree");
        assert!(p.get(cf::DEFAULT, b"d").unwrap().is_some());
        for k in [b"e", b"f", b"g", b"h", b"i", b"j"] {
            assert!(p.get(cf::DEFAULT, k).unwrap().is_none(), "{k:?} is not written");
        }
    }

    fn snapshot(p: &MemoryPartition) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for name in p.column_families().unwrap() {
            for item in p.iter_range(&name, b"", None, state_core::Direction::Forward).unwrap() {
                let (k, v) = item.unwrap();
                out.push((name.clone(), k, v));
            }
        }
        out
    }

    fn format(p: &MemoryPartition, codec: state_core::Codec, ttl: bool) -> state_core::PartitionFormat {
        let mut f = state_core::StoreFormat::key_value(codec);
        if ttl {
            f = f.with_ttl(state_core::ttl::TtlOptions::default());
        }
        state_core::check_store_format(p, &f, std::path::Path::new("/state/0")).unwrap()
    }

    #[test]
    fn a_record_of_another_codec_is_refused_and_nothing_of_its_batch_is_written() {
        // A quixstreams (JSON, no codec header) changelog into a MessagePack store.
        let p = Arc::new(MemoryPartition::new());
        let check = format(&p, state_core::Codec::MsgPack, false).replay_check();
        let before = snapshot(&p);
        let mut a = applier(&p, 100).with_replay_check(check);
        let err = a.apply(rec(0, b"user|\"count\"", Some(b"7"), None)).unwrap_err();
        assert!(
            matches!(
                err,
                ChangelogError::State(state_core::Error::ReplayCodecMismatch { offset: 0, .. })
            ),
            "{err}"
        );
        assert!(a.finish().is_ok());
        assert_eq!(snapshot(&p), before, "nothing written");

        // Records naming their codec are checked by name.
        let p = Arc::new(MemoryPartition::new());
        let check = format(&p, state_core::Codec::Json, false).replay_check();
        let before = snapshot(&p);
        let mut a = applier(&p, 100).with_replay_check(check);
        a.apply(rec(0, b"a", Some(b"1"), None)).unwrap();
        let mut r = rec(1, b"b", Some(b"\x01"), None);
        r.value_codec = Some(b"msgpack");
        assert!(matches!(
            a.apply(r),
            Err(ChangelogError::State(state_core::Error::ReplayCodecMismatch {
                offset: 1,
                ..
            }))
        ));
        assert_eq!(snapshot(&p), before, "the pending batch (with record 0) is dropped");
    }

    #[test]
    fn ttl_records_into_a_store_without_ttl_support_are_refused_and_nothing_is_written() {
        let p = Arc::new(MemoryPartition::new());
        let check = format(&p, state_core::Codec::Json, false).replay_check();
        let before = snapshot(&p);
        let mut a = applier(&p, 100).with_replay_check(check);
        let mut r = rec(0, b"k", Some(b"\xff\xff\xff\xff\xff\xff\xff\xff1"), None);
        r.ttl_stamped = Some(b"\x01");
        let err = a.apply(r).unwrap_err();
        assert!(
            matches!(
                err,
                ChangelogError::State(state_core::Error::ReplayTtlUnsupported { offset: 0 })
            ),
            "{err}"
        );
        assert_eq!(snapshot(&p), before);
    }

    /// The changelog quixstreams 3.28.1 produced for its TTL fixture run,
    /// replayed through the applier, gives quixstreams' reads.
    #[test]
    fn quixstreams_ttl_changelog_replays_to_its_reads() {
        use state_txn::{GetOptions, PartitionTransaction};
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/quixstreams/ttl_populated_flip.json");
        let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let unhex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        for replay in fx["replays"].as_array().unwrap() {
            let p = Arc::new(MemoryPartition::new());
            let f = format(&p, state_core::Codec::Json, true);
            let committed: BTreeMap<String, i64> = replay["committed_offsets"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
                .collect();
            let mut a = ChangelogApplier::new(
                p.clone(),
                "changelog",
                0,
                committed,
                ApplierConfig { max_batch_records: 7 },
            )
            .with_replay_check(f.replay_check());
            let records: Vec<_> = fx["changelog_all"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let headers: Vec<(String, Option<Vec<u8>>)> = r["headers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|h| (h[0].as_str().unwrap().to_owned(), h[1].as_str().map(unhex)))
                        .collect();
                    (
                        r["offset"].as_i64().unwrap(),
                        unhex(r["key_hex"].as_str().unwrap()),
                        r["value_hex"].as_str().map(unhex),
                        headers,
                    )
                })
                .collect();
            for (offset, key, value, headers) in &records {
                a.apply(IncomingRecord::from_headers(
                    *offset,
                    Some(key),
                    value.as_deref(),
                    headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())),
                ))
                .unwrap();
            }
            a.finish().unwrap();
            let state = std::sync::Arc::new(
                state_core::ttl::TtlState::load(&*p, state_core::ttl::TtlOptions::default()).unwrap(),
            );
            let t = PartitionTransaction::with_ttl_state(
                p.clone() as Arc<dyn StorePartition>,
                state_core::Codec::Json,
                None,
                state.clone(),
            );
            for read in replay["reads"].as_array().unwrap() {
                let prefix = unhex(read["prefix"]["hex"].as_str().unwrap());
                let at = GetOptions {
                    timestamp: read["timestamp"].as_i64(),
                    ..GetOptions::default()
                };
                let got = match read["op"].as_str().unwrap() {
                    "get" => t
                        .get_with::<_, serde_json::Value>(read["key"].as_str().unwrap(), &prefix, at)
                        .unwrap()
                        .unwrap_or(serde_json::Value::Null),
                    "get_bytes" => match t
                        .get_bytes_with(&unhex(read["key"]["hex"].as_str().unwrap()), &prefix, at)
                        .unwrap()
                    {
                        Some(b) => serde_json::json!({"hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>()}),
                        None => serde_json::Value::Null,
                    },
                    _ => serde_json::json!(t.exists_with(read["key"].as_str().unwrap(), &prefix, at).unwrap()),
                };
                assert_eq!(got, read["result"], "{}: {read}", replay["label"]);
            }
        }
    }

    #[test]
    fn apply_committed_holds_uncommitted_records_until_the_offsets_move() {
        let p = Arc::new(MemoryPartition::new());
        let mut a = applier(&p, 5);
        assert!(a
            .apply_committed(rec(0, b"a", Some(b"1"), Some(br#"{"input":4}"#)))
            .unwrap());
        assert!(
            !a.apply_committed(rec(1, b"b", Some(b"2"), Some(br#"{"input":5}"#)))
                .unwrap(),
            "processed 5 is not below committed 5: held"
        );
        a.flush().unwrap();
        assert_eq!(
            p.changelog_offset().unwrap(),
            Some(0),
            "the held record's offset is not stored"
        );
        assert!(p.get(cf::DEFAULT, b"b").unwrap().is_none());
        let mut c = BTreeMap::new();
        c.insert("input".to_string(), 6);
        a.set_committed(c);
        assert!(a
            .apply_committed(rec(1, b"b", Some(b"2"), Some(br#"{"input":5}"#)))
            .unwrap());
        a.finish().unwrap();
        assert_eq!(p.get(cf::DEFAULT, b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(p.changelog_offset().unwrap(), Some(1));
        assert_eq!(a.stats().skipped, 0, "nothing was skipped");
    }

    #[test]
    fn submitted_batches_are_written_in_order_before_flush_returns() {
        let p = Arc::new(MemoryPartition::new());
        let mut a = applier(&p, 100);
        for i in 0..101i64 {
            a.apply(rec(i, b"k", Some(&[i as u8]), None)).unwrap();
            if i % 7 == 0 {
                a.submit().unwrap();
            }
        }
        a.flush().unwrap();
        assert_eq!(
            p.get(cf::DEFAULT, b"k").unwrap(),
            Some(vec![100]),
            "the last write wins"
        );
        assert_eq!(p.changelog_offset().unwrap(), Some(100));
        assert_eq!(a.stats().applied, 101);
    }
}
