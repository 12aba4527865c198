//! The state directory layout.

use std::path::{Path, PathBuf};

use crate::error::ManagerError;

fn check(what: &'static str, value: &str) -> Result<(), ManagerError> {
    if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\\']) {
        return Err(ManagerError::InvalidName {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// The state directory layout: `<state_dir>/<group_id>/<store>/<stream_id>/<partition>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
    group_id: String,
}

impl StateDir {
    /// The layout for consumer group `group_id` under `root`.
    pub fn new(root: impl Into<PathBuf>, group_id: &str) -> Result<Self, ManagerError> {
        check("group id", group_id)?;
        Ok(StateDir {
            root: root.into(),
            group_id: group_id.to_owned(),
        })
    }

    /// `<state_dir>/<group_id>`: everything this group keeps locally.
    pub fn group_dir(&self) -> PathBuf {
        self.root.join(&self.group_id)
    }

    /// `<state_dir>/<group_id>/<store>/<stream_id>`: the base directory of a
    /// store's partitions.
    pub fn store_dir(&self, store: &str, stream_id: &str) -> Result<PathBuf, ManagerError> {
        check("store name", store)?;
        check("stream id", stream_id)?;
        Ok(self.group_dir().join(store).join(stream_id))
    }

    /// `<state_dir>/<group_id>/<store>/<stream_id>/<partition>`.
    pub fn partition_dir(&self, store: &str, stream_id: &str, partition: u32) -> Result<PathBuf, ManagerError> {
        Ok(self.store_dir(store, stream_id)?.join(partition.to_string()))
    }

    /// The root state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the root state directory and `<state_dir>/<group_id>` if
    /// missing, owner-only (`0700` on Unix; see
    /// [`state_core::create_private_dir`]), and warns about either one if it
    /// already exists with wider permissions. Store and partition
    /// directories below are created the same way by the backends.
    pub fn create_dirs(&self) -> Result<PathBuf, ManagerError> {
        state_core::create_private_dir(&self.root)?;
        let group = self.group_dir();
        state_core::create_private_dir(&group)?;
        Ok(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let d = StateDir::new("/state", "group").unwrap();
        assert_eq!(
            d.partition_dir("counts", "clicks", 3).unwrap(),
            PathBuf::from("/state/group/counts/clicks/3")
        );
    }

    #[cfg(unix)]
    #[test]
    fn state_and_group_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let d = StateDir::new(tmp.path().join("state"), "group").unwrap();
        let group = d.create_dirs().unwrap();
        for p in [d.root().to_owned(), group] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", p.display());
        }
    }

    #[test]
    fn names_cannot_escape() {
        assert!(StateDir::new("/s", "..").is_err());
        let d = StateDir::new("/s", "g").unwrap();
        assert!(d.store_dir("a/b", "x").is_err());
        assert!(d.store_dir("a", "").is_err());
    }
}
