//! [`ReplayCheck`]: the rules recovery applies to each changelog record of
//! one partition besides writing it — the codec check, and quixstreams
//! 3.28.1's per-write TTL replay (switching into TTL mode, index entries,
//! dropping values already expired, the legacy-key census).
//!
//! It does not fetch or batch records; a recovery loop (`state-changelog`'s
//! `ChangelogApplier`) calls [`ReplayCheck::check`] on every record,
//! [`ReplayCheck::stage`] on every record it applies, and
//! [`ReplayCheck::complete`] once the partition has caught up.

use std::path::PathBuf;
use std::sync::Arc;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::legacy_ttl::LegacyTtl;
use crate::partition::{Direction, StorePartition};
use crate::ttl::{self, StampEvidence, TtlState};
use crate::{cf, WriteBatch};

/// How records without the `__value_codec__` header are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HeaderlessRecords {
    /// As JSON: the changelog format's default (quixstreams writes no codec
    /// header, and neither do our JSON stores). Replaying them into a store
    /// with another codec is refused.
    #[default]
    Json,
    /// As written with the store's own codec: for changelogs produced by
    /// versions of this library that did not write the header yet.
    StoreCodec,
}

/// One changelog record as [`ReplayCheck`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayedRecord<'a> {
    /// Offset in the changelog partition (for messages).
    pub offset: i64,
    /// Column family (the `__column_family__` header).
    pub cf: &'a str,
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes, `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// True if the `__ttl_stamped__` header is present and not empty.
    pub ttl_stamped: bool,
    /// The `__value_codec__` header, if present.
    pub value_codec: Option<&'a [u8]>,
}

/// The per-record rules of replaying a changelog into one partition. Built
/// from the partition's [`crate::PartitionFormat`] (see
/// [`crate::PartitionFormat::replay_check`]).
///
/// Guarantees:
/// * a record written with another codec than the partition's is an error
///   before anything of it is staged ([`Error::ReplayCodecMismatch`]);
/// * a TTL-stamped record replayed into a store without TTL support is an
///   error ([`Error::ReplayTtlUnsupported`]);
/// * with TTL support, records are applied as quixstreams' recovery does,
///   except where `docs/formats.md` says otherwise.
#[derive(Debug)]
pub struct ReplayCheck {
    path: PathBuf,
    codec: Codec,
    headerless: HeaderlessRecords,
    ttl: Option<Arc<TtlState>>,
    /// The high-water when the first stamped record that can expire was
    /// replayed (`Some(None)`: captured, there was none).
    frontier: Option<Option<u64>>,
    saw_stamped: bool,
    saw_done: bool,
    done_at_open: bool,
    expired_drops: u64,
}

impl ReplayCheck {
    /// Checks for a partition written with `codec`; `ttl` is its shared TTL
    /// state if the store has TTL support.
    pub fn new(codec: Codec, ttl: Option<Arc<TtlState>>) -> Self {
        let done_at_open = ttl.as_ref().is_some_and(|t| t.migration_done());
        ReplayCheck {
            path: PathBuf::from("(partition being recovered)"),
            codec,
            headerless: HeaderlessRecords::Json,
            ttl,
            frontier: None,
            saw_stamped: false,
            saw_done: false,
            done_at_open,
            expired_drops: 0,
        }
    }

    /// The same, reading records without a codec header as `headerless`.
    pub fn headerless(self, headerless: HeaderlessRecords) -> Self {
        ReplayCheck { headerless, ..self }
    }

    /// The same, naming `path` as the partition in errors.
    pub fn located_at(self, path: impl Into<PathBuf>) -> Self {
        ReplayCheck {
            path: path.into(),
            ..self
        }
    }

    /// The partition's codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// How many stamped records were dropped because they had already
    /// expired at the partition's high-water.
    pub fn expired_drops(&self) -> u64 {
        self.expired_drops
    }

    /// Validates `record` against the partition's codec and TTL support.
    /// Call it for every record, applied or skipped.
    pub fn check(&self, record: &ReplayedRecord<'_>) -> Result<()> {
        let found = match record.value_codec {
            Some(name) => Some(String::from_utf8_lossy(name)),
            None => match self.headerless {
                HeaderlessRecords::Json => Some("json".into()),
                HeaderlessRecords::StoreCodec => None,
            },
        };
        if let Some(found) = found {
            if found != self.codec.name() {
                return Err(Error::ReplayCodecMismatch {
                    offset: record.offset,
                    found: if record.value_codec.is_some() {
                        found.into_owned()
                    } else {
                        "json (no __value_codec__ header: quixstreams' default)".to_owned()
                    },
                    expected: self.codec.name(),
                });
            }
        }
        let ttl_record = (record.ttl_stamped && record.cf == cf::DEFAULT)
            || (record.cf == cf::TTL_SYSTEM && record.key == cf::TTL_MIGRATION_DONE_KEY);
        if ttl_record && self.ttl.is_none() {
            return Err(Error::ReplayTtlUnsupported { offset: record.offset });
        }
        Ok(())
    }

    fn enable(&self, ttl: &TtlState, batch: &mut WriteBatch) {
        if !ttl.is_enabled() {
            ttl.enable();
            batch.put(cf::METADATA, cf::TTL_ENABLED_KEY, b"\x01");
            batch.put(
                cf::METADATA,
                cf::TTL_FORMAT_VERSION_KEY,
                &cf::TTL_FORMAT_VERSION.to_be_bytes(),
            );
        }
    }

    /// Adds to `batch` what applying `record` writes. Without TTL support
    /// that is the record itself; with it, quixstreams' rules: a stamped
    /// `default` record or the migration-done marker switch the partition
    /// into TTL mode; stamped values get their index entry, or are deleted
    /// if they expired at the partition's high-water; local-only column
    /// families are ignored once in TTL mode; until the migration is known
    /// done, unstamped `default` keys are kept in the
    /// `__ttl_backfill_pending__` census.
    pub fn stage(&mut self, record: &ReplayedRecord<'_>, batch: &mut WriteBatch) {
        let Some(ttl) = self.ttl.clone() else {
            batch.push(record.cf, record.key, record.value);
            return;
        };
        let is_default = record.cf == cf::DEFAULT;
        if record.cf == cf::TTL_SYSTEM && record.key == cf::TTL_MIGRATION_DONE_KEY {
            self.saw_done = true;
            ttl.set_migration_done();
            self.enable(&ttl, batch);
        }
        if is_default && record.ttl_stamped {
            self.enable(&ttl, batch);
        }
        if is_default && !(self.done_at_open || self.saw_done) {
            if record.ttl_stamped {
                self.saw_stamped = true;
                batch.delete(cf::TTL_BACKFILL_PENDING, record.key);
            } else if record.value.is_some() {
                batch.put(cf::TTL_BACKFILL_PENDING, record.key, b"");
            } else {
                batch.delete(cf::TTL_BACKFILL_PENDING, record.key);
            }
        }
        if !ttl.is_enabled() {
            batch.push(record.cf, record.key, record.value);
            return;
        }
        if cf::is_local_only(record.cf) {
            return;
        }
        let Some(value) = record.value else {
            batch.delete(record.cf, record.key);
            return;
        };
        if !is_default || !record.ttl_stamped {
            batch.put(record.cf, record.key, value);
            return;
        }
        let (stored, stamp) = normalize_replayed_value(value);
        if stamp != ttl::NEVER {
            let frontier = *self.frontier.get_or_insert_with(|| ttl.high_water());
            if frontier.is_some_and(|f| stamp <= f) {
                self.expired_drops += 1;
                batch.delete(cf::DEFAULT, record.key);
                return;
            }
        }
        batch.put(cf::DEFAULT, record.key, &stored);
        if stamp != ttl::NEVER {
            batch.put(cf::TTL_INDEX, &ttl::index_key(stamp, record.key), b"");
        }
    }

    /// Settles the end of a replay, after every staged batch was written to
    /// `partition` (quixstreams' `complete_recovery`):
    ///
    /// * migration-done marker known: the census is discarded (an index is
    ///   rebuilt from it first if every censused value is stamped);
    /// * in TTL mode with unstamped values left in the census:
    ///   [`Error::TtlLegacyState`] (quixstreams would stamp them and produce
    ///   them); the census stays, so opening the partition is refused too;
    /// * in TTL mode, census empty, no marker: the marker is written locally
    ///   (quixstreams also produces it; recovery here has no producer);
    /// * not in TTL mode: a census whose values look stamped is refused
    ///   ([`LegacyTtl::UnheaderedStamps`]); otherwise it is discarded.
    pub fn complete<P: StorePartition + ?Sized>(&mut self, partition: &P) -> Result<()> {
        let Some(ttl) = self.ttl.clone() else {
            return Ok(());
        };
        if self.expired_drops > 0 {
            tracing::info!(
                dropped = self.expired_drops,
                "recovery dropped TTL-stamped records already expired at the partition's high-water"
            );
        }
        let census = census_keys(partition)?;
        let mut batch = WriteBatch::new();
        if self.done_at_open || self.saw_done {
            if !census.is_empty() {
                let mut stamps = Vec::with_capacity(census.len());
                for key in &census {
                    match partition.get(cf::DEFAULT, key)?.as_deref().and_then(ttl::decode_stamp) {
                        Some((stamp, _)) => stamps.push(stamp),
                        None => break,
                    }
                }
                if stamps.len() == census.len() {
                    for (key, stamp) in census.iter().zip(stamps) {
                        if stamp != ttl::NEVER {
                            batch.put(cf::TTL_INDEX, &ttl::index_key(stamp, key), b"");
                        }
                    }
                }
                for key in &census {
                    batch.delete(cf::TTL_BACKFILL_PENDING, key);
                }
            }
        } else if ttl.is_enabled() {
            if !census.is_empty() {
                return Err(Error::TtlLegacyState {
                    path: self.path.clone(),
                    situation: LegacyTtl::PendingRecoveryCompletion {
                        keys: census.len() as u64,
                    },
                });
            }
            batch.put(
                cf::TTL_SYSTEM,
                cf::TTL_MIGRATION_DONE_KEY,
                &cf::TTL_FORMAT_VERSION.to_be_bytes(),
            );
            ttl.set_migration_done();
        } else if !census.is_empty() {
            let now = ttl::wall_clock_ms();
            for key in &census {
                if let Some(value) = partition.get(cf::DEFAULT, key)? {
                    if ttl::stamp_evidence(&value, now) == StampEvidence::Stamped {
                        return Err(Error::TtlLegacyState {
                            path: self.path.clone(),
                            situation: LegacyTtl::UnheaderedStamps,
                        });
                    }
                }
            }
            for key in &census {
                batch.delete(cf::TTL_BACKFILL_PENDING, key);
            }
        }
        if !batch.is_empty() {
            partition.write(&batch)?;
        }
        Ok(())
    }
}

fn census_keys<P: StorePartition + ?Sized>(partition: &P) -> Result<Vec<Vec<u8>>> {
    partition
        .iter_range(cf::TTL_BACKFILL_PENDING, b"", None, Direction::Forward)?
        .map(|item| item.map(|(k, _)| k))
        .collect()
}

/// quixstreams' `_normalize_replay_value`: a stamped record's value as it is
/// stored, and its stamp. A value that is not a valid stamp is wrapped with
/// [`ttl::NEVER`]; a double-stamped one loses its outer stamp.
fn normalize_replayed_value(value: &[u8]) -> (Vec<u8>, u64) {
    let Some((stamp, payload)) = ttl::decode_stamp(value) else {
        return (ttl::stamp_value(ttl::NEVER, value), ttl::NEVER);
    };
    if ttl::stamp_evidence(payload, ttl::wall_clock_ms()) == StampEvidence::Stamped {
        if let Some((inner, _)) = ttl::decode_stamp(payload) {
            return (payload.to_vec(), inner);
        }
    }
    (value.to_vec(), stamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ttl::TtlOptions;
    use crate::MemoryPartition;

    fn rec<'a>(cf: &'a str, key: &'a [u8], value: Option<&'a [u8]>, stamped: bool) -> ReplayedRecord<'a> {
        ReplayedRecord {
            offset: 7,
            cf,
            key,
            value,
            ttl_stamped: stamped,
            value_codec: None,
        }
    }

    #[test]
    fn codec_header_must_match() {
        let json = ReplayCheck::new(Codec::Json, None);
        json.check(&rec("default", b"k", Some(b"1"), false)).unwrap();
        let mut r = rec("default", b"k", Some(b"\x01"), false);
        r.value_codec = Some(b"msgpack");
        let err = json.check(&r).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ReplayCodecMismatch {
                    offset: 7,
                    expected: "json",
                    ..
                }
            ),
            "{err}"
        );
        let msgpack = ReplayCheck::new(Codec::MsgPack, None);
        msgpack.check(&r).unwrap();
        let err = msgpack.check(&rec("default", b"k", Some(b"7"), false)).unwrap_err();
        assert!(err.to_string().contains("quixstreams' default"), "{err}");
        let legacy = ReplayCheck::new(Codec::MsgPack, None).headerless(HeaderlessRecords::StoreCodec);
        legacy.check(&rec("default", b"k", Some(b"7"), false)).unwrap();
    }

    #[test]
    fn stamped_records_need_ttl_support() {
        let plain = ReplayCheck::new(Codec::Json, None);
        let err = plain.check(&rec("default", b"k", Some(b"1"), true)).unwrap_err();
        assert!(matches!(err, Error::ReplayTtlUnsupported { offset: 7 }), "{err}");
        let marker = rec(
            cf::TTL_SYSTEM,
            cf::TTL_MIGRATION_DONE_KEY,
            Some(&[0, 0, 0, 0, 0, 0, 0, 2]),
            false,
        );
        assert!(plain.check(&marker).is_err());
        // A stamped header on another column family is not TTL data.
        plain.check(&rec("__values__", b"k", Some(b"1"), true)).unwrap();
    }

    #[test]
    fn ttl_replay_switches_mode_indexes_and_drops_expired() {
        let p = MemoryPartition::new();
        let state = Arc::new(TtlState::new(TtlOptions::default()));
        state.advance_high_water(Some(100));
        let mut check = ReplayCheck::new(Codec::Json, Some(state.clone()));
        let mut batch = WriteBatch::new();
        check.stage(&rec("default", b"legacy", Some(b"1"), false), &mut batch);
        assert!(!state.is_enabled());
        let live = ttl::stamp_value(500, b"2");
        let dead = ttl::stamp_value(100, b"3");
        check.stage(
            &rec("default", b"legacy", Some(&ttl::stamp_value(600, b"1")), true),
            &mut batch,
        );
        check.stage(&rec("default", b"live", Some(&live), true), &mut batch);
        check.stage(&rec("default", b"dead", Some(&dead), true), &mut batch);
        check.stage(&rec("default", b"bare", Some(b"\"x\""), true), &mut batch);
        check.stage(&rec(cf::TTL_INDEX, b"ignored", Some(b""), false), &mut batch);
        p.write(&batch).unwrap();
        assert!(state.is_enabled());
        assert_eq!(check.expired_drops(), 1);
        assert_eq!(p.get(cf::DEFAULT, b"live").unwrap(), Some(live));
        assert_eq!(p.get(cf::DEFAULT, b"dead").unwrap(), None, "expired at the high-water");
        assert_eq!(
            p.get(cf::DEFAULT, b"bare").unwrap(),
            Some(ttl::stamp_value(ttl::NEVER, b"\"x\"")),
            "an unstamped value under the header never expires"
        );
        assert!(p.get(cf::TTL_INDEX, &ttl::index_key(500, b"live")).unwrap().is_some());
        assert!(p.get(cf::TTL_INDEX, b"ignored").unwrap().is_none());
        assert_eq!(
            p.get(cf::METADATA, cf::TTL_ENABLED_KEY).unwrap().as_deref(),
            Some(&b"\x01"[..])
        );
        check.complete(&p).unwrap();
        assert!(
            p.get(cf::TTL_SYSTEM, cf::TTL_MIGRATION_DONE_KEY).unwrap().is_some(),
            "the marker is written locally when the changelog had none"
        );
        assert!(census_keys(&p).unwrap().is_empty());
    }

    #[test]
    fn a_mixed_changelog_without_marker_is_refused_at_completion() {
        let p = MemoryPartition::new();
        let state = Arc::new(TtlState::new(TtlOptions::default()));
        let mut check = ReplayCheck::new(Codec::Json, Some(state));
        let mut batch = WriteBatch::new();
        check.stage(&rec("default", b"left-over", Some(b"1"), false), &mut batch);
        check.stage(
            &rec("default", b"stamped", Some(&ttl::stamp_value(500, b"2")), true),
            &mut batch,
        );
        p.write(&batch).unwrap();
        let before = p.get(cf::DEFAULT, b"left-over").unwrap();
        let err = check.complete(&p).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TtlLegacyState {
                    situation: LegacyTtl::PendingRecoveryCompletion { keys: 1 },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(p.get(cf::DEFAULT, b"left-over").unwrap(), before, "nothing re-stamped");
        assert!(
            p.get(cf::TTL_SYSTEM, cf::TTL_MIGRATION_DONE_KEY).unwrap().is_none(),
            "no marker"
        );
        assert_eq!(
            census_keys(&p).unwrap(),
            vec![b"left-over".to_vec()],
            "the census stays"
        );
    }

    #[test]
    fn a_legacy_changelog_leaves_no_census_and_unheadered_stamps_are_refused() {
        let p = MemoryPartition::new();
        let mut check = ReplayCheck::new(Codec::Json, Some(Arc::new(TtlState::new(TtlOptions::default()))));
        let mut batch = WriteBatch::new();
        check.stage(&rec("default", b"a", Some(b"1"), false), &mut batch);
        check.stage(&rec("default", b"b", Some(b"2"), false), &mut batch);
        check.stage(&rec("default", b"b", None, false), &mut batch);
        p.write(&batch).unwrap();
        check.complete(&p).unwrap();
        assert!(census_keys(&p).unwrap().is_empty());
        assert_eq!(p.get(cf::DEFAULT, b"a").unwrap().as_deref(), Some(&b"1"[..]));

        let p = MemoryPartition::new();
        let mut check = ReplayCheck::new(Codec::Json, Some(Arc::new(TtlState::new(TtlOptions::default()))));
        let mut batch = WriteBatch::new();
        let v = ttl::stamp_value(ttl::wall_clock_ms(), b"\"v3.24\"");
        check.stage(&rec("default", b"a", Some(&v), false), &mut batch);
        p.write(&batch).unwrap();
        let err = check.complete(&p).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TtlLegacyState {
                    situation: LegacyTtl::UnheaderedStamps,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(p.get(cf::DEFAULT, b"a").unwrap(), Some(v), "values untouched");
    }
}
