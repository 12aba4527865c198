//! Which codec `dump` decodes a partition's values with: the one the
//! partition records, else the one its values show, never a guess that
//! misreads them (the byte `0x37` is JSON `7` and MessagePack `55`).

use std::path::Path;

use state_core::ttl::{self, StampedRead};
use state_core::{cf, Codec, Direction, StorePartition};

use crate::error::{CliError, Result};

/// How many `default` values are read to find the codec of a partition
/// that records none.
const SAMPLE: usize = 1000;

/// What the sampled values of a partition decode as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Values read.
    pub values: usize,
    /// Of those, how many decode as JSON.
    pub json: usize,
    /// Of those, how many decode as MessagePack.
    pub msgpack: usize,
}

impl Sample {
    /// Reads up to [`SAMPLE`] values of `default` (without their TTL
    /// stamps in quixstreams' per-write TTL mode).
    pub fn of(partition: &dyn StorePartition, ttl_mode: bool) -> Result<Sample> {
        let mut sample = Sample::default();
        for item in partition
            .iter_range(cf::DEFAULT, b"", None, Direction::Forward)?
            .take(SAMPLE)
        {
            let (_, value) = item?;
            let payload = if ttl_mode {
                match ttl::read_stamped(&value, None) {
                    StampedRead::Live(p) | StampedRead::Unstamped(p) => p.to_vec(),
                    StampedRead::Expired => continue,
                }
            } else {
                value
            };
            sample.add(&payload);
        }
        Ok(sample)
    }

    fn add(&mut self, value: &[u8]) {
        self.values += 1;
        self.json += usize::from(Codec::Json.decode_to_json(value).is_ok());
        self.msgpack += usize::from(Codec::MsgPack.decode_to_json(value).is_ok());
    }

    /// How many values decode with `codec`.
    fn decoded(&self, codec: Codec) -> usize {
        match codec {
            Codec::Json => self.json,
            Codec::MsgPack => self.msgpack,
            Codec::Raw => self.values,
        }
    }
}

/// The codec to decode the values of `partition` (at `path`) with, given
/// the one `--codec` asked for:
///
/// * A recorded codec is used; asking for another is
///   [`CliError::CodecMismatch`] (`raw`, which shows bytes as they are,
///   is always allowed). A recorded name this version does not know is
///   [`CliError::UnknownCodec`].
/// * Without a record (quixstreams, older versions), the values decide:
///   the codec all of them decode with, if only one does; both or neither
///   is [`CliError::CodecUndecided`] unless `--codec` chooses. An asked-for
///   codec that fails on values which all decode with the other is
///   [`CliError::CodecUnrecorded`].
pub(crate) fn choose(
    partition: &dyn StorePartition,
    path: &Path,
    asked: Option<Codec>,
    ttl_mode: bool,
) -> Result<Codec> {
    if asked == Some(Codec::Raw) {
        return Ok(Codec::Raw);
    }
    match state_core::recorded_codec(partition)? {
        Some(Ok(recorded)) => match asked {
            Some(asked) if asked != recorded => Err(CliError::CodecMismatch {
                path: path.to_owned(),
                recorded,
                asked,
            }),
            _ => Ok(recorded),
        },
        Some(Err(recorded)) => Err(CliError::UnknownCodec {
            path: path.to_owned(),
            recorded,
        }),
        None => decide(Sample::of(partition, ttl_mode)?, path, asked),
    }
}

/// The codec of a partition without a record, from its sampled values.
fn decide(sample: Sample, path: &Path, asked: Option<Codec>) -> Result<Codec> {
    let all = |codec| sample.decoded(codec) == sample.values;
    let other = |codec| match codec {
        Codec::Json => Codec::MsgPack,
        _ => Codec::Json,
    };
    if sample.values == 0 {
        // Nothing to decode: the codec cannot matter.
        return Ok(asked.unwrap_or(Codec::MsgPack));
    }
    if let Some(asked) = asked {
        let looks_like = other(asked);
        if !all(asked) && all(looks_like) {
            return Err(CliError::CodecUnrecorded {
                path: path.to_owned(),
                asked,
                looks_like,
                failed: sample.values - sample.decoded(asked),
                sampled: sample.values,
            });
        }
        return Ok(asked);
    }
    match (all(Codec::Json), all(Codec::MsgPack)) {
        (true, false) => Ok(found(Codec::Json, path, sample)),
        (false, true) => Ok(found(Codec::MsgPack, path, sample)),
        _ => Err(CliError::CodecUndecided {
            path: path.to_owned(),
            sampled: sample.values,
            json: sample.json,
            msgpack: sample.msgpack,
        }),
    }
}

fn found(codec: Codec, path: &Path, sample: Sample) -> Codec {
    tracing::info!(
        partition = %path.display(),
        codec = codec.name(),
        sampled = sample.values,
        "the partition records no value codec; its values decode as {codec} (pass --codec to choose)"
    );
    codec
}

#[cfg(test)]
mod tests {
    use state_core::MemoryPartition;

    use super::*;

    fn partition(values: &[&[u8]]) -> MemoryPartition {
        let p = MemoryPartition::new();
        for (i, v) in values.iter().enumerate() {
            p.put(cf::DEFAULT, format!("k{i}").as_bytes(), v).unwrap();
        }
        p
    }

    fn choose_for(p: &MemoryPartition, asked: Option<Codec>) -> Result<Codec> {
        choose(p, Path::new("/p"), asked, false)
    }

    #[test]
    fn a_recorded_codec_is_used_and_another_one_refused() {
        let p = partition(&[b"7"]);
        state_core::record_codec(&p, Codec::Json).unwrap();
        assert_eq!(choose_for(&p, None).unwrap(), Codec::Json);
        assert_eq!(choose_for(&p, Some(Codec::Json)).unwrap(), Codec::Json);
        assert_eq!(choose_for(&p, Some(Codec::Raw)).unwrap(), Codec::Raw);
        let err = choose_for(&p, Some(Codec::MsgPack)).unwrap_err();
        assert!(matches!(err, CliError::CodecMismatch { .. }), "{err}");
        assert!(err.to_string().contains("records value codec json"), "{err}");
    }

    #[test]
    fn without_a_record_the_values_decide_or_the_operator_must() {
        // quixstreams' JSON: "x" is no MessagePack value (trailing bytes).
        let json = partition(&[b"\"x\"", b"2", b"7"]);
        assert_eq!(choose_for(&json, None).unwrap(), Codec::Json);
        let err = choose_for(&json, Some(Codec::MsgPack)).unwrap_err();
        assert!(matches!(err, CliError::CodecUnrecorded { .. }), "{err}");
        assert!(err.to_string().contains("--codec json"), "{err}");

        let msgpack = partition(&[&[0x07], &[0xa3, b'A', b'd', b'a']]);
        assert_eq!(choose_for(&msgpack, None).unwrap(), Codec::MsgPack);

        // Single digits read both ways: 0x37 is JSON 7 and MessagePack 55.
        let both = partition(&[b"7", b"2"]);
        let err = choose_for(&both, None).unwrap_err();
        assert!(
            matches!(
                err,
                CliError::CodecUndecided {
                    json: 2,
                    msgpack: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--codec json"), "{err}");
        assert_eq!(choose_for(&both, Some(Codec::MsgPack)).unwrap(), Codec::MsgPack);

        let neither = partition(&[&[0xc1], b"\"x\""]);
        let err = choose_for(&neither, None).unwrap_err();
        assert!(
            matches!(
                err,
                CliError::CodecUndecided {
                    json: 1,
                    msgpack: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--codec raw"), "{err}");

        let empty = MemoryPartition::new();
        assert_eq!(choose_for(&empty, None).unwrap(), Codec::MsgPack);
    }
}
