//! [`Quarantine`]: the folder damaged partition directories are moved to
//! (`<state_dir>/<group_id>/.quarantine/`), and its bounds.
//!
//! A moved directory keeps everything that was in it: an operator may want
//! to inspect it (`statectl inspect`) or recover from it by hand. Entries
//! are named `<unix millis>--<store>--<stream>--<partition>`, so a listing
//! sorts by age and says what each was.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::QuarantineLimits;
use crate::error::{ManagerError, Result};

/// The name of the quarantine folder inside the group directory.
const QUARANTINE_DIR: &str = ".quarantine";

/// Where damaged partition directories go, and how many stay.
#[derive(Clone, Debug)]
pub(crate) struct Quarantine {
    dir: PathBuf,
    limits: QuarantineLimits,
}

/// What identifies a moved-aside partition in its entry's name.
pub(crate) struct Origin<'a> {
    pub(crate) store: &'a str,
    pub(crate) stream: &'a str,
    pub(crate) partition: u32,
}

impl Quarantine {
    /// The quarantine folder of group directory `group_dir`, bounded by
    /// `limits`.
    pub(crate) fn new(group_dir: &Path, limits: QuarantineLimits) -> Self {
        Quarantine {
            dir: group_dir.join(QUARANTINE_DIR),
            limits,
        }
    }

    /// The quarantine folder.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves `partition_dir` into the quarantine folder (a rename: the
    /// folder is on the same filesystem as the state) and returns where it
    /// went; `None` if there was nothing to move. Then prunes the folder.
    pub(crate) fn move_aside(&self, partition_dir: &Path, origin: &Origin<'_>) -> Result<Option<PathBuf>> {
        if std::fs::symlink_metadata(partition_dir).is_err() {
            return Ok(None);
        }
        state_core::create_private_dir(&self.dir)?;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let base = format!(
            "{millis:020}--{}--{}--{}",
            origin.store, origin.stream, origin.partition
        );
        // Two moves of one partition within a millisecond get a suffix.
        let mut target = self.dir.join(&base);
        let mut n = 1;
        while target.exists() {
            target = self.dir.join(format!("{base}-{n}"));
            n += 1;
        }
        std::fs::rename(partition_dir, &target).map_err(|source| ManagerError::Io {
            path: partition_dir.to_owned(),
            source,
        })?;
        self.prune(SystemTime::now());
        Ok(Some(target))
    }

    /// Removes the entries beyond [`QuarantineLimits::max_entries`] (oldest
    /// first) and those older than [`QuarantineLimits::max_age`] at `now`.
    /// Failures are logged: pruning never stops a rebuild.
    pub(crate) fn prune(&self, now: SystemTime) {
        let mut entries = match self.entries() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the quarantine folder");
                return;
            }
        };
        // Newest first: the first `max_entries` young enough stay.
        entries.sort_by_key(|e| std::cmp::Reverse(e.1));
        for (i, (path, moved_at)) in entries.iter().enumerate() {
            let too_many = i >= self.limits.max_entries;
            let too_old = self
                .limits
                .max_age
                .is_some_and(|max| now.duration_since(*moved_at).unwrap_or(Duration::ZERO) > max);
            if !(too_many || too_old) {
                continue;
            }
            match std::fs::remove_dir_all(path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), too_many, too_old, "removed a quarantined partition directory");
                    crate::metrics::quarantine_removed();
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a quarantined partition directory")
                }
            }
        }
    }

    /// Every entry with the time it was moved (from its name, else its
    /// modification time).
    fn entries(&self) -> std::io::Result<Vec<(PathBuf, SystemTime)>> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in read {
            let entry = entry?;
            let name = entry.file_name();
            let from_name = name
                .to_str()
                .and_then(|n| n.split("--").next())
                .and_then(|m| m.parse::<u64>().ok())
                .map(|m| UNIX_EPOCH + Duration::from_millis(m));
            let moved_at = match from_name {
                Some(t) => t,
                None => entry.metadata()?.modified()?,
            };
            out.push((entry.path(), moved_at));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(partition: u32) -> Origin<'static> {
        Origin {
            store: "counts",
            stream: "input",
            partition,
        }
    }

    fn names(q: &Quarantine) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(q.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn moves_keep_the_files_and_say_what_they_were() {
        let tmp = tempfile::tempdir().unwrap();
        let part = tmp.path().join("counts/input/3");
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join("CURRENT"), b"x").unwrap();
        let q = Quarantine::new(tmp.path(), QuarantineLimits::default());
        let moved = q.move_aside(&part, &origin(3)).unwrap().unwrap();
        assert!(!part.exists());
        assert_eq!(std::fs::read(moved.join("CURRENT")).unwrap(), b"x");
        assert!(names(&q)[0].ends_with("--counts--input--3"), "{:?}", names(&q));
        assert!(
            q.move_aside(&part, &origin(3)).unwrap().is_none(),
            "nothing left to move"
        );
    }

    #[test]
    fn the_oldest_beyond_the_count_and_the_too_old_go() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = QuarantineLimits {
            max_entries: 2,
            max_age: Some(Duration::from_secs(3600)),
        };
        let q = Quarantine::new(tmp.path(), limits);
        for p in 0..4 {
            let part = tmp.path().join(format!("s/t/{p}"));
            std::fs::create_dir_all(&part).unwrap();
            q.move_aside(&part, &origin(p)).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
        let left = names(&q);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left[0].ends_with("--2") && left[1].ends_with("--3"), "{left:?}");
        q.prune(SystemTime::now() + Duration::from_secs(7200));
        assert!(names(&q).is_empty(), "entries older than max_age go");
    }
}
