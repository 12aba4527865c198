//! [`Manifest`]: what one snapshot is (docs/formats.md, "Snapshot
//! manifest"): the partition it copies, how to open it, the changelog
//! offset its data holds, and every file with its checksum.

use serde::{Deserialize, Serialize};

use crate::checksum::Checksum;

/// The manifest format this version writes and reads. A manifest of
/// another version is refused ([`crate::SnapshotError::BadManifest`]), so
/// an older reader never half-understands a newer snapshot.
pub const FORMAT_VERSION: u32 = 1;

/// One snapshot: written (as JSON) only after every file it lists is in
/// the store, so a manifest that exists names a complete snapshot, unless
/// the store lost or damaged files since (download and verify check).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The snapshot's id: `<changelog offset + 1, 20 digits>-<unix ms, 13
    /// digits>` (offset part 0 when no offset was stored), so ids sort by
    /// changelog offset, then by time.
    pub id: String,
    /// The store's name (the scope's, see [`crate::SnapshotScope`]).
    pub store: String,
    /// The store partition (= the changelog partition).
    pub partition: u32,
    /// Backend that took it and opens it (`rocksdb`, `fjall`, `memory`).
    pub backend: String,
    /// How its files are laid out (`rocksdb-checkpoint`, `fjall-export`,
    /// `memory-dump`).
    pub layout: String,
    /// The value codec the partition records (`msgpack`, `json`, `raw`),
    /// if it records one.
    pub codec: Option<String>,
    /// The store kind (`key-value`, `windowed`, `timestamped`), if the
    /// taker said.
    pub kind: Option<String>,
    /// Offset of the last changelog record the data includes: a restore
    /// replays the changelog from the next offset on. `None`: the
    /// partition had stored no offset.
    pub changelog_offset: Option<u64>,
    /// When the snapshot was taken, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Every file, with its path inside the snapshot directory.
    pub files: Vec<ManifestFile>,
}

/// One file of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the snapshot directory, `/`-separated, relative,
    /// without `.` or `..` components.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// XXH3-128 of the bytes, 32 lowercase hex digits.
    pub xxh3_128: String,
}

impl ManifestFile {
    /// The file's checksum (`None` if `xxh3_128` is not 32 hex digits).
    pub fn checksum(&self) -> Option<Checksum> {
        Checksum::parse_hex(&self.xxh3_128, self.size)
    }
}

impl Manifest {
    /// The id of a snapshot with `changelog_offset`, taken at `unix_ms`.
    pub fn make_id(changelog_offset: Option<u64>, unix_ms: u64) -> String {
        let seq = changelog_offset.map_or(0, |o| o.saturating_add(1));
        format!("{seq:020}-{unix_ms:013}")
    }

    /// Total bytes of its files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Parses and checks a manifest: the format version, the id it must
    /// have (`expected_id`, from its object name), every file's path and
    /// checksum. `Err` says what is wrong, for
    /// [`crate::SnapshotError::BadManifest`].
    pub fn parse(bytes: &[u8], expected_id: &str) -> Result<Manifest, String> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let version: Version = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if version.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {} (this version reads {FORMAT_VERSION})",
                version.format_version
            ));
        }
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if manifest.id != expected_id {
            return Err(format!("it names itself {:?}", manifest.id));
        }
        let mut seen = std::collections::HashSet::new();
        for file in &manifest.files {
            if !is_safe_relative_path(&file.path) {
                return Err(format!("file path {:?} is not a plain relative path", file.path));
            }
            if !seen.insert(file.path.as_str()) {
                return Err(format!("file {:?} is listed twice", file.path));
            }
            if file.checksum().is_none() {
                return Err(format!("file {:?} has no valid checksum", file.path));
            }
        }
        Ok(manifest)
    }

    /// The manifest as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and vectors always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// True for `a/b/c`: relative, no empty, `.` or `..` components, no
/// backslashes (a downloaded file lands inside its directory, whatever a
/// damaged manifest says).
pub(crate) fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            id: Manifest::make_id(Some(41), 1_700_000_000_000),
            store: "counts".into(),
            partition: 3,
            backend: "rocksdb".into(),
            layout: "rocksdb-checkpoint".into(),
            codec: Some("msgpack".into()),
            kind: Some("key-value".into()),
            changelog_offset: Some(41),
            created_unix_ms: 1_700_000_000_000,
            files: vec![ManifestFile {
                path: "000012.sst".into(),
                size: 10,
                xxh3_128: format!("{:032x}", 7u128),
            }],
        }
    }

    #[test]
    fn ids_sort_by_offset_then_time() {
        assert_eq!(Manifest::make_id(Some(41), 5), "00000000000000000042-0000000000005");
        assert!(Manifest::make_id(None, 9) < Manifest::make_id(Some(0), 1));
        assert!(Manifest::make_id(Some(9), 9) < Manifest::make_id(Some(10), 1));
        assert!(Manifest::make_id(Some(9), 1) < Manifest::make_id(Some(9), 2));
    }

    #[test]
    fn a_manifest_round_trips_and_bad_ones_are_refused() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_json(), &m.id), Ok(m.clone()));
        assert!(Manifest::parse(b"{", &m.id).is_err());
        assert!(Manifest::parse(&m.to_json(), "other")
            .unwrap_err()
            .contains("names itself"));
        let mut newer = m.clone();
        newer.format_version = 2;
        assert!(Manifest::parse(&newer.to_json(), &m.id)
            .unwrap_err()
            .contains("format version 2"));
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a\\b"] {
            let mut evil = m.clone();
            evil.files[0].path = bad.into();
            assert!(Manifest::parse(&evil.to_json(), &m.id).is_err(), "{bad:?} accepted");
        }
        let mut twice = m.clone();
        twice.files.push(twice.files[0].clone());
        assert!(Manifest::parse(&twice.to_json(), &m.id).is_err());
        let mut no_sum = m;
        no_sum.files[0].xxh3_128 = "zz".into();
        assert!(Manifest::parse(&no_sum.to_json(), &no_sum.id).is_err());
    }

    #[test]
    fn safe_paths() {
        assert!(is_safe_relative_path("a/b/c.sst"));
        assert!(is_safe_relative_path("CURRENT"));
        assert!(!is_safe_relative_path("a/../b"));
    }
}
