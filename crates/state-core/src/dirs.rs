//! Private state directories: state can hold personal data, so every
//! directory the library creates for it is readable by its owner only.

use std::path::Path;

use crate::error::{Error, Result};

/// The mode of every directory the library creates for state: owner only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `path` (and any missing parents) as a private directory.
///
/// * On Unix, every directory this call creates gets mode `0700` (the
///   process umask can only narrow it further), so no other user can list
///   or read the state inside.
/// * A directory that already exists is left as it is — the library never
///   changes the permissions of a directory it did not create — but if it
///   is accessible to the group or to others a `tracing` warning names it
///   and its mode, so the operator can `chmod 700` it. Only `path` itself
///   is checked, not its parents (`/home/app` is usually `0755`).
/// * On other platforms the directory is created with the platform's
///   defaults.
///
/// Every backend calls this for its partition directories, and the
/// manager for the state and group directories.
pub fn create_private_dir(path: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            warn_if_shared(path, &meta);
            Ok(())
        }
        // A file where the directory should be: let the create call fail
        // with the platform's own error.
        Ok(_) => create(path).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path).map_err(io),
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn create(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // `recursive` applies the mode to every directory it creates, parents
    // included, and succeeds if another thread created it meanwhile.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)
}

#[cfg(not(unix))]
fn create(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:04o}"),
            "state directory {} is accessible to other users (mode {mode:04o}); \
             state may hold personal data: restrict it with `chmod 700 {}`",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _meta: &std::fs::Metadata) {}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_and_their_new_parents_are_0700() {
        let root = tempfile::tempdir().unwrap();
        let leaf = root.path().join("a").join("b").join("c");
        create_private_dir(&leaf).unwrap();
        for p in [root.path().join("a"), root.path().join("a/b"), leaf.clone()] {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
        }
        // Existing: left alone, no error.
        create_private_dir(&leaf).unwrap();
        assert_eq!(mode(&leaf), 0o700);
    }

    #[test]
    fn an_existing_wider_directory_is_kept_as_it_is() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let logs = capture_warnings(|| create_private_dir(&dir).unwrap());
        assert_eq!(mode(&dir), 0o755, "never changed behind the operator's back");
        assert!(logs.contains("WARN"), "{logs}");
        assert!(
            logs.contains(&*dir.to_string_lossy()),
            "the warning names the path: {logs}"
        );
        assert!(logs.contains("0755"), "{logs}");
        // A private one: no warning.
        let private = root.path().join("private");
        let logs = capture_warnings(|| create_private_dir(&private).unwrap());
        assert!(!logs.contains("WARN"), "{logs}");
    }

    /// Runs `f` with a subscriber that writes warnings into a string.
    fn capture_warnings(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_file_in_the_way_is_an_io_error_naming_the_path() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = create_private_dir(&file).unwrap_err();
        assert!(err.to_string().contains(&*file.to_string_lossy()), "{err}");
    }
}
