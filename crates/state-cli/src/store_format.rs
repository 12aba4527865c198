//! What a partition records about its store — kind and value codec, which
//! the manager writes when it first opens a partition — and the replay
//! rules that follow from them (`state_core::ReplayCheck`), applied to
//! `restore` and `verify` as the manager applies them to its own restores.

use std::path::Path;

use state_core::ttl::TtlOptions;
use state_core::{cf, check_store_format, HeaderlessRecords, ReplayCheck, StoreFormat, StoreKind, StorePartition};

use crate::error::{CliError, Result};

/// The store a partition records: its kind and value codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedStore {
    /// The store kind (`__store_kind__`).
    pub kind: StoreKind,
    /// The value codec (`__value_codec__`).
    pub codec: state_core::Codec,
}

impl RecordedStore {
    /// What `partition` (at `path`, for messages) records; `None` unless it
    /// records both kind and codec (partitions written by quixstreams, or
    /// by versions of this library before they were recorded). A recorded
    /// name this version does not know is an error.
    pub fn read(partition: &dyn StorePartition, path: &Path) -> Result<Option<RecordedStore>> {
        let Some(kind) = partition.get(cf::METADATA, cf::STORE_KIND_KEY)? else {
            return Ok(None);
        };
        let kind = String::from_utf8_lossy(&kind);
        let kind = kind.parse::<StoreKind>().map_err(|_| CliError::UnknownStoreKind {
            path: path.to_owned(),
            recorded: kind.clone().into_owned(),
        })?;
        let codec = match state_core::recorded_codec(partition)? {
            None => return Ok(None),
            Some(Ok(codec)) => codec,
            Some(Err(recorded)) => {
                return Err(CliError::UnknownCodec {
                    path: path.to_owned(),
                    recorded,
                })
            }
        };
        Ok(Some(RecordedStore { kind, codec }))
    }

    /// The format a store of this kind and codec opens its partitions
    /// with. Key-value stores accept quixstreams' per-write TTL: statectl
    /// does not know whether the application's store has TTL support, so
    /// the changelog decides (a TTL-stamped record switches the partition
    /// into TTL mode, as quixstreams' recovery does).
    fn format(&self) -> StoreFormat {
        let format = StoreFormat::new(self.kind, self.codec);
        match self.kind {
            StoreKind::KeyValue => format.with_ttl(TtlOptions::default()),
            StoreKind::Windowed | StoreKind::Timestamped => format,
        }
    }

    /// Checks that `target` (at `path`) can hold this store, recording kind
    /// and codec in it if it has none yet (`state_core::check_store_format`:
    /// it refuses another kind or codec, and quixstreams TTL states the
    /// manager refuses too), and returns the check every changelog record
    /// replayed into `target` must pass. Records without a codec header
    /// are read with the store's codec, as the manager reads them.
    pub fn replay_check(&self, target: &dyn StorePartition, path: &Path) -> Result<ReplayCheck> {
        let format = check_store_format(target, &self.format(), path)?;
        Ok(format.replay_check().headerless(HeaderlessRecords::StoreCodec))
    }

    /// `{"store_kind", "codec"}` of `recorded`, nulls for `None`.
    pub(crate) fn json_fields(recorded: Option<RecordedStore>) -> (serde_json::Value, serde_json::Value) {
        match recorded {
            Some(r) => (r.kind.as_str().into(), r.codec.name().into()),
            None => (serde_json::Value::Null, serde_json::Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state_core::{Codec, MemoryPartition};

    #[test]
    fn both_kind_and_codec_must_be_recorded() {
        let path = Path::new("/p");
        let p = MemoryPartition::new();
        assert_eq!(RecordedStore::read(&p, path).unwrap(), None);
        p.put(cf::METADATA, cf::VALUE_CODEC_KEY, b"json").unwrap();
        assert_eq!(RecordedStore::read(&p, path).unwrap(), None, "codec only");
        p.put(cf::METADATA, cf::STORE_KIND_KEY, b"windowed").unwrap();
        assert_eq!(
            RecordedStore::read(&p, path).unwrap(),
            Some(RecordedStore {
                kind: StoreKind::Windowed,
                codec: Codec::Json
            })
        );
        p.put(cf::METADATA, cf::STORE_KIND_KEY, b"graph").unwrap();
        let err = RecordedStore::read(&p, path).unwrap_err();
        assert!(matches!(err, CliError::UnknownStoreKind { .. }), "{err}");
        p.put(cf::METADATA, cf::STORE_KIND_KEY, b"key-value").unwrap();
        p.put(cf::METADATA, cf::VALUE_CODEC_KEY, b"avro").unwrap();
        let err = RecordedStore::read(&p, path).unwrap_err();
        assert!(matches!(err, CliError::UnknownCodec { .. }), "{err}");
    }

    #[test]
    fn the_check_follows_the_recorded_codec() {
        let path = Path::new("/p");
        let recorded = RecordedStore {
            kind: StoreKind::KeyValue,
            codec: Codec::Json,
        };
        let target = MemoryPartition::new();
        let check = recorded.replay_check(&target, path).unwrap();
        assert_eq!(check.codec(), Codec::Json);
        assert_eq!(
            RecordedStore::read(&target, path).unwrap(),
            Some(recorded),
            "kind and codec recorded in the target"
        );
        let windowed = RecordedStore {
            kind: StoreKind::Windowed,
            codec: Codec::Json,
        };
        let err = windowed.replay_check(&target, path).unwrap_err();
        assert!(
            matches!(err, CliError::Store(state_core::Error::WrongStoreKind { .. })),
            "{err}"
        );
    }
}
