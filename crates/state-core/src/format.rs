//! What a partition was written with — store kind, value codec, per-write
//! TTL mode — checked on open, so a store is never read with the wrong
//! rules.

use std::path::Path;
use std::sync::Arc;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::ids::StoreKind;
use crate::legacy_ttl::LegacyTtl;
use crate::partition::{Direction, StorePartition};
use crate::replay::ReplayCheck;
use crate::ttl::{self, StampedRead, TtlOptions, TtlState};
use crate::{cf, keys, WriteBatch};

/// Whether a store accepts quixstreams' per-write TTL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TtlSupport {
    /// The store never uses TTL. Opening a partition in TTL mode, or
    /// replaying TTL-stamped records into it, is refused.
    #[default]
    Disabled,
    /// Key-value stores only: writes may carry a TTL (the first one switches
    /// the partition into TTL mode), reads strip stamps and hide expired
    /// values, partitions already in TTL mode open normally.
    Enabled(TtlOptions),
}

/// What a store expects of its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreFormat {
    /// The kind of store; its [`StoreKind::as_str`] is recorded on first
    /// open.
    pub kind: StoreKind,
    /// The codec values (and typed keys) are encoded with.
    pub codec: Codec,
    /// Per-write TTL.
    pub ttl: TtlSupport,
}

impl StoreFormat {
    /// A store of `kind` with `codec`, without TTL support.
    pub fn new(kind: StoreKind, codec: Codec) -> Self {
        StoreFormat {
            kind,
            codec,
            ttl: TtlSupport::Disabled,
        }
    }

    /// A key-value store with `codec`, without TTL support.
    pub fn key_value(codec: Codec) -> StoreFormat {
        StoreFormat::new(StoreKind::KeyValue, codec)
    }

    /// The same, with per-write TTL support (key-value stores only).
    pub fn with_ttl(self, options: TtlOptions) -> Self {
        StoreFormat {
            ttl: TtlSupport::Enabled(options),
            ..self
        }
    }
}

/// What [`check_store_format`] found: what transactions and recovery of the
/// partition must be built with.
#[derive(Clone, Debug)]
pub struct PartitionFormat {
    /// Where the partition lives (for messages).
    pub path: std::path::PathBuf,
    /// The codec the partition is written with (equal to the requested one).
    pub codec: Codec,
    /// The shared TTL state, for key-value stores opened with
    /// [`TtlSupport::Enabled`]; `None` otherwise.
    pub ttl: Option<Arc<TtlState>>,
    /// A replay into this partition has not finished (quixstreams' census
    /// `__ttl_backfill_pending__` is not empty): run recovery with
    /// [`PartitionFormat::replay_check`] up to the end of the changelog and
    /// `finish` it before processing, even if the partition is caught up
    /// (quixstreams' `has_incomplete_ttl_migration`). Its end settles or
    /// refuses the state.
    pub replay_pending: bool,
}

impl PartitionFormat {
    /// The check recovery applies to every changelog record of this
    /// partition (codec header, TTL stamps); see [`ReplayCheck`].
    pub fn replay_check(&self) -> ReplayCheck {
        ReplayCheck::new(self.codec, self.ttl.clone()).located_at(self.path.clone())
    }
}

/// Checks that the partition at `path` holds a store of `format`, and
/// records kind and codec on first use (in one batch, after every check
/// passed). On any error nothing is written.
///
/// * Another recorded kind: [`Error::WrongStoreKind`].
/// * Another recorded codec: [`Error::CodecMismatch`]. A partition with
///   data but no recorded codec (written by quixstreams, or before codecs
///   were recorded) is sampled: values that all look like JSON opened with
///   MessagePack, or all MessagePack opened with JSON, are
///   [`Error::CodecUnrecorded`]; otherwise the requested codec is recorded.
/// * A partition in per-write TTL mode opened without
///   [`TtlSupport::Enabled`], or as a windowed/timestamped store:
///   [`Error::TtlModeMismatch`].
/// * quixstreams TTL migration states we do not take over:
///   [`Error::TtlLegacyState`]. A replay that did not finish is not refused
///   here but reported in [`PartitionFormat::replay_pending`].
///
/// Partitions written by quixstreams carry no kind or codec record; they
/// are adopted as `format` if their contents allow it.
pub fn check_store_format(
    partition: &dyn StorePartition,
    format: &StoreFormat,
    path: &Path,
) -> Result<PartitionFormat> {
    let recorded_kind = partition.get(cf::METADATA, cf::STORE_KIND_KEY)?;
    if let Some(found) = &recorded_kind {
        if found != format.kind.as_str().as_bytes() {
            return Err(Error::WrongStoreKind {
                path: path.to_owned(),
                found: String::from_utf8_lossy(found).into_owned(),
                wanted: format.kind,
            });
        }
    }
    if let Some(situation) = legacy_ttl_situation(partition)? {
        return Err(Error::TtlLegacyState {
            path: path.to_owned(),
            situation,
        });
    }
    let ttl_enabled = partition
        .get(cf::METADATA, cf::TTL_ENABLED_KEY)?
        .is_some_and(|v| !v.is_empty());
    let ttl_options = match (&format.ttl, format.kind) {
        (TtlSupport::Enabled(options), StoreKind::KeyValue) => Some(options.clone()),
        (TtlSupport::Enabled(_), kind) => {
            return Err(Error::TtlUnsupportedKind { kind });
        }
        (TtlSupport::Disabled, _) => None,
    };
    if ttl_enabled && ttl_options.is_none() {
        return Err(Error::TtlModeMismatch {
            path: path.to_owned(),
            kind: format.kind,
        });
    }
    let recorded_codec = partition.get(cf::METADATA, cf::VALUE_CODEC_KEY)?;
    match &recorded_codec {
        Some(name) if name.as_slice() == format.codec.name().as_bytes() => {}
        Some(name) => {
            return Err(Error::CodecMismatch {
                path: path.to_owned(),
                recorded: String::from_utf8_lossy(name).into_owned(),
                requested: format.codec.name(),
            });
        }
        None => {
            if let Some(looks_like) = sniff_codec(partition, format.codec, ttl_enabled)? {
                return Err(Error::CodecUnrecorded {
                    path: path.to_owned(),
                    requested: format.codec.name(),
                    looks_like,
                });
            }
        }
    }
    let mut batch = WriteBatch::new();
    if recorded_kind.is_none() {
        batch.put(cf::METADATA, cf::STORE_KIND_KEY, format.kind.as_str().as_bytes());
    }
    if recorded_codec.is_none() {
        batch.put(cf::METADATA, cf::VALUE_CODEC_KEY, format.codec.name().as_bytes());
    }
    if !batch.is_empty() {
        partition.write(&batch)?;
    }
    let ttl = match ttl_options {
        Some(options) => Some(Arc::new(TtlState::load(partition, options)?)),
        None => None,
    };
    let replay_pending = ttl.is_some() && non_empty(partition, cf::TTL_BACKFILL_PENDING)?;
    Ok(PartitionFormat {
        path: path.to_owned(),
        codec: format.codec,
        ttl,
        replay_pending,
    })
}

/// Records `codec` as the partition's codec, replacing any record: the way
/// to declare the codec of a partition [`check_store_format`] could not
/// decide on its own. Nothing checks the values.
pub fn record_codec(partition: &dyn StorePartition, codec: Codec) -> Result<()> {
    partition.put(cf::METADATA, cf::VALUE_CODEC_KEY, codec.name().as_bytes())
}

/// The codec recorded in the partition, if any: `Ok(None)` when none is,
/// `Err` with the recorded bytes (lossy UTF-8) when they name no codec.
pub fn recorded_codec(partition: &dyn StorePartition) -> Result<Option<std::result::Result<Codec, String>>> {
    Ok(partition.get(cf::METADATA, cf::VALUE_CODEC_KEY)?.map(|name| {
        let text = String::from_utf8_lossy(&name).into_owned();
        Codec::from_name(&text).ok_or(text)
    }))
}

fn non_empty(partition: &dyn StorePartition, cf_name: &str) -> Result<bool> {
    Ok(partition
        .iter_range(cf_name, b"", None, Direction::Forward)?
        .next()
        .transpose()?
        .is_some())
}

/// The quixstreams TTL migration state of `partition` that we refuse, if
/// any.
pub fn legacy_ttl_situation(partition: &dyn StorePartition) -> Result<Option<LegacyTtl>> {
    let meta = |key| partition.get(cf::METADATA, key);
    let enabled = meta(cf::TTL_ENABLED_KEY)?.is_some_and(|v| !v.is_empty());
    let done = partition.get(cf::TTL_SYSTEM, cf::TTL_MIGRATION_DONE_KEY)?.is_some();
    if meta(cf::TTL_ADOPT_PENDING_KEY)?.is_some() || non_empty(partition, cf::TTL_ADOPT_BACKUP)? {
        return Ok(Some(LegacyTtl::ProvisionalAdoption));
    }
    if meta(cf::TTL_BACKFILL_IN_PROGRESS_KEY)?.is_some() || (!done && non_empty(partition, cf::TTL_BACKFILL_STAMPED)?) {
        return Ok(Some(LegacyTtl::InterruptedBackfill));
    }
    if let Some(v) = meta(cf::TTL_FORMAT_VERSION_KEY)? {
        if keys::decode_u64(&v).ok() != Some(cf::TTL_FORMAT_VERSION) {
            let recorded = match keys::decode_u64(&v) {
                Ok(n) => n.to_string(),
                Err(_) => format!("0x{}", v.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            };
            return Ok(Some(LegacyTtl::UnsupportedFormatVersion { recorded }));
        }
    }
    if !enabled {
        let found = if meta(cf::TTL_FORMAT_VERSION_KEY)?.is_some() {
            Some("__ttl_format_version__")
        } else if meta(cf::TTL_HIGH_WATER_KEY)?.is_some() {
            Some("__ttl_high_water_ms__")
        } else if non_empty(partition, cf::TTL_INDEX)? {
            Some("__ttl_index__")
        } else if done {
            Some("the __ttl_system__ migration-done marker")
        } else {
            None
        };
        if let Some(found) = found {
            return Ok(Some(LegacyTtl::UnflaggedTtlArtifacts { found }));
        }
    }
    Ok(None)
}

/// How many `default` values [`check_store_format`] samples to guess the
/// codec of a partition without a record.
const CODEC_SAMPLE: usize = 64;

/// For a partition with no recorded codec: the codec its values look like,
/// when that contradicts `requested`; `None` when the sample is empty or
/// does not contradict it.
fn sniff_codec(partition: &dyn StorePartition, requested: Codec, ttl_enabled: bool) -> Result<Option<&'static str>> {
    if requested == Codec::Raw {
        return Ok(None);
    }
    let (mut n, mut json, mut msgpack) = (0usize, 0usize, 0usize);
    for item in partition
        .iter_range(cf::DEFAULT, b"", None, Direction::Forward)?
        .take(CODEC_SAMPLE)
    {
        let (_, value) = item?;
        let payload = if ttl_enabled {
            match ttl::read_stamped(&value, None) {
                StampedRead::Live(p) | StampedRead::Unstamped(p) => p.to_vec(),
                StampedRead::Expired => continue,
            }
        } else {
            value
        };
        n += 1;
        if Codec::Json.decode::<serde::de::IgnoredAny>(&payload).is_ok() {
            json += 1;
        }
        if Codec::MsgPack.decode::<serde::de::IgnoredAny>(&payload).is_ok() {
            msgpack += 1;
        }
    }
    if n == 0 {
        return Ok(None);
    }
    Ok(match requested {
        Codec::MsgPack if json == n => Some(Codec::Json.name()),
        Codec::Json if json == 0 && msgpack == n => Some(Codec::MsgPack.name()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryPartition;

    fn path() -> &'static Path {
        Path::new("/state/0")
    }

    /// Every key of every column family, to show a refused open wrote
    /// nothing.
    fn snapshot(p: &MemoryPartition) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for name in p.column_families().unwrap() {
            for item in p.iter_range(&name, b"", None, Direction::Forward).unwrap() {
                let (k, v) = item.unwrap();
                out.push((name.clone(), k, v));
            }
        }
        out
    }

    #[test]
    fn first_open_records_kind_and_codec_and_later_opens_check_them() {
        let p = MemoryPartition::new();
        let f = check_store_format(&p, &StoreFormat::key_value(Codec::Json), path()).unwrap();
        assert_eq!(f.codec, Codec::Json);
        assert!(f.ttl.is_none());
        assert_eq!(
            p.get(cf::METADATA, cf::VALUE_CODEC_KEY).unwrap().as_deref(),
            Some(&b"json"[..])
        );
        assert_eq!(
            p.get(cf::METADATA, cf::STORE_KIND_KEY).unwrap().as_deref(),
            Some(&b"key-value"[..])
        );
        check_store_format(&p, &StoreFormat::key_value(Codec::Json), path()).unwrap();
        let before = snapshot(&p);
        let err = check_store_format(&p, &StoreFormat::key_value(Codec::MsgPack), path()).unwrap_err();
        assert!(
            matches!(&err, Error::CodecMismatch { recorded, requested: "msgpack", .. } if recorded == "json"),
            "{err}"
        );
        assert!(err.to_string().contains("open it with the json codec"), "{err}");
        let err = check_store_format(&p, &StoreFormat::new(StoreKind::Windowed, Codec::Json), path()).unwrap_err();
        assert!(matches!(err, Error::WrongStoreKind { .. }), "{err}");
        assert_eq!(snapshot(&p), before, "refused opens write nothing");
    }

    #[test]
    fn a_quixstreams_json_store_opened_with_msgpack_is_refused() {
        // quixstreams writes `7` as JSON: MessagePack would read 55.
        let p = MemoryPartition::new();
        p.put(cf::DEFAULT, b"user|\"count\"", b"7").unwrap();
        p.put(cf::DEFAULT, b"user|\"name\"", b"\"alice\"").unwrap();
        let before = snapshot(&p);
        let err = check_store_format(&p, &StoreFormat::key_value(Codec::MsgPack), path()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::CodecUnrecorded {
                    requested: "msgpack",
                    looks_like: "json",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(snapshot(&p), before, "nothing written");
        check_store_format(&p, &StoreFormat::key_value(Codec::Json), path()).unwrap();
        assert_eq!(recorded_codec(&p).unwrap(), Some(Ok(Codec::Json)));
    }

    #[test]
    fn a_msgpack_store_without_record_opened_with_json_is_refused() {
        let p = MemoryPartition::new();
        p.put(cf::DEFAULT, b"k", &Codec::MsgPack.encode(&("a", 1)).unwrap())
            .unwrap();
        let err = check_store_format(&p, &StoreFormat::key_value(Codec::Json), path()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::CodecUnrecorded {
                    looks_like: "msgpack",
                    ..
                }
            ),
            "{err}"
        );
        record_codec(&p, Codec::MsgPack).unwrap();
        check_store_format(&p, &StoreFormat::key_value(Codec::MsgPack), path()).unwrap();
    }

    fn ttl_mode(p: &MemoryPartition) {
        p.put(cf::METADATA, cf::TTL_ENABLED_KEY, b"\x01").unwrap();
        p.put(cf::METADATA, cf::TTL_FORMAT_VERSION_KEY, &2u64.to_be_bytes())
            .unwrap();
        p.put(cf::DEFAULT, b"p|\"k\"", &ttl::stamp_value(ttl::NEVER, b"7"))
            .unwrap();
    }

    #[test]
    fn a_ttl_mode_store_opened_as_plain_is_refused() {
        let p = MemoryPartition::new();
        ttl_mode(&p);
        let before = snapshot(&p);
        let err = check_store_format(&p, &StoreFormat::key_value(Codec::Json), path()).unwrap_err();
        assert!(matches!(err, Error::TtlModeMismatch { .. }), "{err}");
        assert!(err.to_string().contains("TtlSupport::Enabled"), "{err}");
        let err = check_store_format(&p, &StoreFormat::new(StoreKind::Windowed, Codec::Json), path()).unwrap_err();
        assert!(matches!(err, Error::TtlModeMismatch { .. }), "{err}");
        assert_eq!(snapshot(&p), before, "nothing written");
        let f = check_store_format(
            &p,
            &StoreFormat::key_value(Codec::Json).with_ttl(TtlOptions::default()),
            path(),
        )
        .unwrap();
        assert!(f.ttl.as_ref().is_some_and(|t| t.is_enabled()));
    }

    #[test]
    fn ttl_support_is_for_key_value_stores_only() {
        let p = MemoryPartition::new();
        let format = StoreFormat::new(StoreKind::Windowed, Codec::Json).with_ttl(TtlOptions::default());
        let err = check_store_format(&p, &format, path()).unwrap_err();
        assert!(matches!(err, Error::TtlUnsupportedKind { .. }), "{err}");
        assert!(snapshot(&p).is_empty(), "nothing written");
    }

    #[test]
    fn each_refused_quixstreams_migration_state_writes_nothing() {
        type Setup = fn(&MemoryPartition);
        type Expect = fn(&LegacyTtl) -> bool;
        let cases: Vec<(&str, Setup, Expect)> = vec![
            (
                "interrupted backfill",
                |p| {
                    p.put(cf::DEFAULT, b"k", b"1").unwrap();
                    p.put(cf::METADATA, cf::TTL_BACKFILL_IN_PROGRESS_KEY, b"\x01").unwrap();
                },
                |s| matches!(s, LegacyTtl::InterruptedBackfill),
            ),
            (
                "ledger without done-marker",
                |p| {
                    p.put(cf::TTL_BACKFILL_STAMPED, b"k", b"").unwrap();
                },
                |s| matches!(s, LegacyTtl::InterruptedBackfill),
            ),
            (
                "provisional adoption",
                |p| {
                    ttl_mode(p);
                    p.put(cf::METADATA, cf::TTL_ADOPT_PENDING_KEY, &1u64.to_be_bytes())
                        .unwrap();
                },
                |s| matches!(s, LegacyTtl::ProvisionalAdoption),
            ),
            (
                "adoption backup",
                |p| {
                    p.put(cf::TTL_ADOPT_BACKUP, b"k", b"x").unwrap();
                },
                |s| matches!(s, LegacyTtl::ProvisionalAdoption),
            ),
            (
                "unflagged index",
                |p| {
                    p.put(cf::TTL_INDEX, &ttl::index_key(5, b"k"), b"").unwrap();
                },
                |s| matches!(s, LegacyTtl::UnflaggedTtlArtifacts { found: "__ttl_index__" }),
            ),
            (
                "unflagged marker",
                |p| {
                    p.put(cf::TTL_SYSTEM, cf::TTL_MIGRATION_DONE_KEY, &2u64.to_be_bytes())
                        .unwrap();
                },
                |s| matches!(s, LegacyTtl::UnflaggedTtlArtifacts { .. }),
            ),
            (
                "format version 1",
                |p| {
                    ttl_mode(p);
                    p.put(cf::METADATA, cf::TTL_FORMAT_VERSION_KEY, &1u64.to_be_bytes())
                        .unwrap();
                },
                |s| matches!(s, LegacyTtl::UnsupportedFormatVersion { recorded } if recorded == "1"),
            ),
        ];
        for (name, setup, expected) in cases {
            let p = MemoryPartition::new();
            setup(&p);
            let before = snapshot(&p);
            let format = StoreFormat::key_value(Codec::Json).with_ttl(TtlOptions::default());
            let err = check_store_format(&p, &format, path()).unwrap_err();
            match &err {
                Error::TtlLegacyState { situation, .. } => assert!(expected(situation), "{name}: {err}"),
                other => panic!("{name}: {other}"),
            }
            assert!(err.to_string().contains("quixstreams"), "{name}: {err}");
            assert_eq!(snapshot(&p), before, "{name}: nothing written");
        }
    }

    #[test]
    fn an_unfinished_replay_opens_and_asks_for_recovery() {
        let p = MemoryPartition::new();
        ttl_mode(&p);
        p.put(cf::TTL_BACKFILL_PENDING, b"a", b"").unwrap();
        let format = StoreFormat::key_value(Codec::Json).with_ttl(TtlOptions::default());
        let f = check_store_format(&p, &format, path()).unwrap();
        assert!(f.replay_pending, "recovery must run and finish before processing");
        let p = MemoryPartition::new();
        let f = check_store_format(&p, &format, path()).unwrap();
        assert!(!f.replay_pending);
    }

    #[test]
    fn a_completed_quixstreams_backfill_opens() {
        // After a live backfill quixstreams leaves its ledger and progress key
        // until its next open; with the done-marker they are harmless.
        let p = MemoryPartition::new();
        ttl_mode(&p);
        p.put(cf::TTL_SYSTEM, cf::TTL_MIGRATION_DONE_KEY, &2u64.to_be_bytes())
            .unwrap();
        p.put(cf::TTL_BACKFILL_STAMPED, b"p|\"k\"", b"").unwrap();
        p.put(cf::METADATA, cf::TTL_BACKFILL_PROGRESS_KEY, &1u64.to_be_bytes())
            .unwrap();
        let f = check_store_format(
            &p,
            &StoreFormat::key_value(Codec::Json).with_ttl(TtlOptions::default()),
            path(),
        )
        .unwrap();
        let ttl = f.ttl.unwrap();
        assert!(ttl.is_enabled() && ttl.migration_done());
    }
}
