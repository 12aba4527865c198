//! The in-memory backend's snapshot: every column family serialized into
//! one file (`memory.dump`), read back by
//! [`MemoryBackend::restore_snapshot`](crate::Backend::restore_snapshot).
//!
//! Layout (all integers big-endian): the magic `KSMEMDUMP1\n`; per column
//! family `u64 name length, name, u64 entry count`, then per entry `u64 key
//! length, key, u64 value length, value`; at the end the marker
//! `u64::MAX`. A file cut short or with trailing bytes is refused.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Name of the dump file inside a snapshot directory.
pub(crate) const FILE: &str = "memory.dump";
/// The layout name recorded in manifests.
pub(crate) const LAYOUT: &str = "memory-dump";
const MAGIC: &[u8] = b"KSMEMDUMP1\n";
const END: u64 = u64::MAX;
/// Longest name, key or value the reader accepts (a guard against
/// allocating from a damaged length).
const MAX_LEN: u64 = 1 << 32;

type ColumnFamilies = HashMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Writes `cfs` to `dir/memory.dump` and syncs it.
pub(crate) fn write(cfs: &ColumnFamilies, dir: &Path) -> Result<()> {
    let path = dir.join(FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::create(&path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut names: Vec<&String> = cfs.keys().collect();
    names.sort();
    let mut put = |bytes: &[u8]| out.write_all(bytes);
    put(MAGIC).map_err(io)?;
    for name in names {
        let map = &cfs[name];
        put(&(name.len() as u64).to_be_bytes()).map_err(io)?;
        put(name.as_bytes()).map_err(io)?;
        put(&(map.len() as u64).to_be_bytes()).map_err(io)?;
        for (k, v) in map {
            put(&(k.len() as u64).to_be_bytes()).map_err(io)?;
            put(k).map_err(io)?;
            put(&(v.len() as u64).to_be_bytes()).map_err(io)?;
            put(v).map_err(io)?;
        }
    }
    put(&END.to_be_bytes()).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}

/// Reads `dir/memory.dump`.
pub(crate) fn read(dir: &Path) -> Result<ColumnFamilies> {
    let path = dir.join(FILE);
    let corrupt = |reason: String| Error::PartitionCorrupt {
        backend: "memory",
        path: path.clone(),
        reason,
    };
    let file = std::fs::File::open(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::PartitionNotFound { path: dir.to_owned() },
        _ => Error::Io {
            path: path.clone(),
            source,
        },
    })?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|e| corrupt(format!("no dump header: {e}")))?;
    if magic != MAGIC {
        return Err(corrupt("not a memory-backend dump (wrong magic bytes)".into()));
    }
    let mut cfs = ColumnFamilies::new();
    loop {
        let len = read_u64(&mut input).map_err(|e| corrupt(format!("cut short: {e}")))?;
        if len == END {
            break;
        }
        let name = read_bytes(&mut input, len).map_err(|e| corrupt(format!("cut short in a name: {e}")))?;
        let name = String::from_utf8(name).map_err(|_| corrupt("a column family name is not UTF-8".into()))?;
        let count = read_u64(&mut input).map_err(|e| corrupt(format!("cut short: {e}")))?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let klen = read_u64(&mut input).map_err(|e| corrupt(format!("cut short: {e}")))?;
            let key = read_bytes(&mut input, klen).map_err(|e| corrupt(format!("cut short in a key: {e}")))?;
            let vlen = read_u64(&mut input).map_err(|e| corrupt(format!("cut short: {e}")))?;
            let value = read_bytes(&mut input, vlen).map_err(|e| corrupt(format!("cut short in a value: {e}")))?;
            map.insert(key, value);
        }
        cfs.insert(name, map);
    }
    let mut rest = [0u8; 1];
    match input.read(&mut rest) {
        Ok(0) => Ok(cfs),
        Ok(_) => Err(corrupt("bytes after the end marker".into())),
        Err(source) => Err(Error::Io { path, source }),
    }
}

fn read_u64(input: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn read_bytes(input: &mut impl Read, len: u64) -> std::io::Result<Vec<u8>> {
    if len > MAX_LEN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a length of {len} bytes"),
        ));
    }
    let mut buf = Vec::new();
    input.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_reads_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfs = ColumnFamilies::new();
        cfs.entry("default".into())
            .or_default()
            .insert(b"".to_vec(), b"empty key".to_vec());
        cfs.entry("default".into())
            .or_default()
            .insert(b"k".to_vec(), b"".to_vec());
        cfs.insert("__metadata__".into(), BTreeMap::new());
        write(&cfs, dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), cfs);

        let path = dir.path().join(FILE);
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 5, MAGIC.len() + 3, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = read(dir.path()).unwrap_err();
            assert!(matches!(err, Error::PartitionCorrupt { .. }), "cut at {cut}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(matches!(read(dir.path()).unwrap_err(), Error::PartitionCorrupt { .. }));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(read(dir.path()).unwrap_err(), Error::PartitionNotFound { .. }));
    }
}
