//! `statectl dump`: every key and value of a partition as JSON lines.

use std::io::Write;

use serde_json::{json, Value};
use state_core::ttl;
use state_core::{cf, keys, Codec, Direction};

use crate::error::{CliError, Result};
use crate::partition_dir::PartitionDir;
use crate::value_codec;

/// What to dump and how to decode values.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// Only this column family (default: all, sorted by name).
    pub cf: Option<String>,
    /// How the store encoded its values. `None`: the codec the partition
    /// records, else the one its values decode with (refused when they
    /// decode with both JSON and MessagePack, or not all with either). A
    /// codec given must be the recorded one ([`CliError::CodecMismatch`]
    /// otherwise) or, without a record, one the values are in
    /// ([`CliError::CodecUnrecorded`]); `Raw` is always allowed.
    pub codec: Option<Codec>,
}

/// Writes one JSON object per key to `out`, sorted by column family then
/// key: `{"cf", "key_hex", "key", "value", "value_hex"}`. `key` is the key
/// as text when it is printable UTF-8 (else null); `value` is the value
/// decoded with the codec (null when it does not decode). Returns the number
/// of lines written.
///
/// In a partition in quixstreams' per-write TTL mode (`__ttl_enabled__`),
/// `default` lines show the payload without its 8-byte stamp (`value`,
/// `value_hex`) and add `expires_at` (epoch ms, `"never"`, or null for a
/// value without a valid stamp) and `expired` (whether the partition's
/// stored high-water has reached it, so quixstreams reads it as absent).
/// Metadata values that are big-endian integers are shown as numbers.
///
/// RocksDB partitions open read-only, next to a running application; fjall
/// has no read-only mode, so a fjall partition must not be open elsewhere
/// (its lock is taken, [`state_core::Error::PartitionLocked`] otherwise).
/// A damaged block is [`state_core::Error::PartitionCorrupt`] when it is
/// reached, after the lines before it were written.
pub fn dump(dir: &PartitionDir, options: &DumpOptions, out: &mut dyn Write) -> Result<u64> {
    write_lines(dir, options, out).map_err(|e| e.corrupt_at(&dir.path))
}

fn write_lines(dir: &PartitionDir, options: &DumpOptions, out: &mut dyn Write) -> Result<u64> {
    let opened = dir.open_for_reading()?;
    let partition = opened.partition();
    let ttl_mode = partition
        .get(cf::METADATA, cf::TTL_ENABLED_KEY)?
        .is_some_and(|v| !v.is_empty());
    let codec = value_codec::choose(partition, &dir.path, options.codec, ttl_mode)?;
    let high_water = partition
        .get(cf::METADATA, cf::TTL_HIGH_WATER_KEY)?
        .and_then(|v| keys::decode_u64(&v).ok());
    let mut names = partition.column_families()?;
    names.sort();
    if let Some(wanted) = &options.cf {
        if !names.contains(wanted) {
            return Err(CliError::UnknownColumnFamily {
                path: dir.path.clone(),
                cf: wanted.clone(),
                known: names.join(", "),
            });
        }
        names.retain(|n| n == wanted);
    }
    let io = |source| CliError::Io {
        what: "standard output".into(),
        source,
    };
    let mut lines = 0;
    for name in &names {
        for item in partition.iter_range(name, b"", None, Direction::Forward)? {
            let (key, value) = item?;
            let line = if ttl_mode && name == cf::DEFAULT {
                stamped_line(codec, &key, &value, high_water)
            } else {
                json!({
                    "cf": name,
                    "key_hex": hex(&key),
                    "key": printable(&key),
                    "value": decode_value(codec, name, &key, &value),
                    "value_hex": hex(&value),
                })
            };
            serde_json::to_writer(&mut *out, &line).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
            lines += 1;
        }
    }
    out.flush().map_err(io)?;
    Ok(lines)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The key as text if it is UTF-8 without control characters.
fn printable(key: &[u8]) -> Value {
    match std::str::from_utf8(key) {
        Ok(s) if !s.chars().any(char::is_control) => Value::String(s.to_owned()),
        _ => Value::Null,
    }
}

/// A `default` line of a partition in TTL mode: the payload and its expiry.
fn stamped_line(codec: Codec, key: &[u8], value: &[u8], high_water: Option<u64>) -> Value {
    let (payload, expires_at, expired) = match ttl::decode_stamped(value) {
        // Not a valid stamp: quixstreams reads it as it is, never expiring.
        None => (value, Value::Null, false),
        Some((stamp, payload)) if stamp == ttl::NEVER => (payload, Value::from("never"), false),
        Some((stamp, payload)) => (payload, Value::from(stamp), high_water.is_some_and(|hw| stamp <= hw)),
    };
    json!({
        "cf": cf::DEFAULT,
        "key_hex": hex(key),
        "key": printable(key),
        "value": codec.decode_to_json(payload).unwrap_or(Value::Null),
        "value_hex": hex(payload),
        "expires_at": expires_at,
        "expired": expired,
    })
}

/// `__metadata__` keys whose values are big-endian u64.
const U64_METADATA: &[&[u8]] = &[
    cf::CHANGELOG_OFFSET_KEY,
    cf::TTL_FORMAT_VERSION_KEY,
    cf::TTL_HIGH_WATER_KEY,
    cf::TTL_ADOPT_PENDING_KEY,
    cf::TTL_BACKFILL_PROGRESS_KEY,
];

fn decode_value(codec: Codec, cf_name: &str, key: &[u8], value: &[u8]) -> Value {
    // Bookkeeping values are big-endian integers or text, not codec values.
    let u64_value = match cf_name {
        cf::METADATA => U64_METADATA.contains(&key),
        cf::TTL_SYSTEM | cf::MIN_ELIGIBLE_TIMESTAMPS => true,
        _ => false,
    };
    if u64_value {
        return keys::decode_u64(value).map_or(Value::Null, Value::from);
    }
    if cf_name == cf::METADATA && (key == cf::VALUE_CODEC_KEY || key == cf::STORE_KIND_KEY) {
        return std::str::from_utf8(value).map_or(Value::Null, Value::from);
    }
    codec.decode_to_json(value).unwrap_or(Value::Null)
}
