//! Guarding a partition against being opened as another kind of store.

use std::path::Path;

use crate::cf;
use crate::error::{Error, Result};
use crate::ids::StoreKind;
use crate::partition::StorePartition;

/// Checks that the partition at `path` holds a store of `kind`, recording
/// `kind` on first use. A partition recorded as another kind is
/// [`Error::WrongStoreKind`] and is left untouched. Partitions written by
/// quixstreams carry no record and are adopted as `kind`.
pub fn check_store_kind(partition: &dyn StorePartition, kind: StoreKind, path: &Path) -> Result<()> {
    let name = kind.as_str().as_bytes();
    match partition.get(cf::METADATA, cf::STORE_KIND_KEY)? {
        Some(found) if found == name => Ok(()),
        Some(found) => Err(Error::WrongStoreKind {
            path: path.to_owned(),
            found: String::from_utf8_lossy(&found).into_owned(),
            wanted: kind,
        }),
        None => partition.put(cf::METADATA, cf::STORE_KIND_KEY, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryPartition;

    #[test]
    fn the_first_kind_sticks() {
        let p = MemoryPartition::new();
        let path = Path::new("/state/0");
        check_store_kind(&p, StoreKind::Windowed, path).unwrap();
        check_store_kind(&p, StoreKind::Windowed, path).unwrap();
        let err = check_store_kind(&p, StoreKind::KeyValue, path).unwrap_err();
        assert!(
            matches!(&err, Error::WrongStoreKind { found, wanted: StoreKind::KeyValue, .. } if found == "windowed"),
            "{err}"
        );
        assert_eq!(
            p.get(cf::METADATA, cf::STORE_KIND_KEY).unwrap().as_deref(),
            Some(&b"windowed"[..])
        );
    }
}
