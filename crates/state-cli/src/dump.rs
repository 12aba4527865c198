//! `statectl dump`: every key and value of a partition as JSON lines.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use state_core::{cf, keys, Codec, Direction, StorePartition};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};

use crate::error::{CliError, Result};

/// What to dump and how to decode values.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// Only this column family (default: all, sorted by name).
    pub cf: Option<String>,
    /// How the store encoded its values.
    pub codec: Codec,
}

/// Writes one JSON object per key to `out`, sorted by column family then
/// key: `{"cf", "key_hex", "key", "value", "value_hex"}`. `key` is the key
/// as text when it is printable UTF-8 (else null); `value` is the value
/// decoded with the codec (null when it does not decode). Returns the number
/// of lines written.
pub fn dump(dir: &Path, options: &DumpOptions, out: &mut dyn Write) -> Result<u64> {
    let partition = RocksDbPartition::open_read_only(dir, &RocksDbOptions::default())?;
    let mut names = partition.column_families()?;
    names.sort();
    if let Some(wanted) = &options.cf {
        if !names.contains(wanted) {
            return Err(CliError::UnknownColumnFamily {
                path: dir.to_owned(),
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
            let line = json!({
                "cf": name,
                "key_hex": hex(&key),
                "key": printable(&key),
                "value": decode_value(options.codec, name, &key, &value),
                "value_hex": hex(&value),
            });
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

fn decode_value(codec: Codec, cf_name: &str, key: &[u8], value: &[u8]) -> Value {
    // The stored changelog offset is a big-endian u64, not a codec value.
    if cf_name == cf::METADATA && key == cf::CHANGELOG_OFFSET_KEY {
        return keys::decode_u64(value).map_or(Value::Null, Value::from);
    }
    codec.decode_to_json(value).unwrap_or(Value::Null)
}
