//! [`RocksDbOptionsHook`]: the user's say on RocksDB's options, and the
//! check that it left what the library relies on.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use state_core::{Error, RequiredOption};

type HookFn = dyn Fn(&HookTarget<'_>, &mut rocksdb::Options, &mut rocksdb::Options) + Send + Sync;

/// A closure that tunes RocksDB's options for every partition: it gets the
/// partition it is called for ([`HookTarget`]), the database options and
/// the options of the partition's column families, after the library set
/// its own and before the partition is opened. Every knob RocksDB has
/// (compaction style, rate limiter, statistics, table format, ...) is then
/// one closure away instead of a new release.
///
/// ```
/// use state_rocksdb::RocksDbOptions;
/// let options = RocksDbOptions::default().with_options_hook(|target, db, cf| {
///     if target.store() == Some("page-views") {
///         cf.set_level_compaction_dynamic_level_bytes(true);
///     }
///     db.set_max_background_jobs(4);
/// });
/// # let _ = options;
/// ```
///
/// # What the library relies on
/// * `atomic_flush = true`: bulk loads (recovery) skip the write-ahead log,
///   and flushing every column family at once keeps the stored changelog
///   offset from reaching disk before the data it covers. Checked after
///   the partition opens (in the `OPTIONS` file RocksDB writes): a hook
///   that turns it off gets [`Error::OptionsRefused`] and the partition is
///   closed again before anything is read or written.
/// * The `__metadata__` column family, which holds the changelog offset
///   and the store's format: it is always opened with the library's own
///   options, never the hook's column family options.
/// * `create_if_missing` and `create_missing_column_families`: without
///   them new partitions and column families fail to open.
/// * Under a memory budget, the block cache and write buffer manager the
///   library set: a hook that installs its own block-based table factory
///   should give it [`HookTarget::block_cache`], and one that installs
///   another write buffer manager takes the partition out of the budget.
#[derive(Clone)]
pub struct RocksDbOptionsHook(Arc<HookFn>);

impl RocksDbOptionsHook {
    /// A hook running `f`.
    pub fn new(
        f: impl Fn(&HookTarget<'_>, &mut rocksdb::Options, &mut rocksdb::Options) + Send + Sync + 'static,
    ) -> Self {
        RocksDbOptionsHook(Arc::new(f))
    }

    pub(crate) fn apply(&self, target: &HookTarget<'_>, db: &mut rocksdb::Options, cf: &mut rocksdb::Options) {
        (self.0)(target, db, cf)
    }
}

impl fmt::Debug for RocksDbOptionsHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RocksDbOptionsHook(..)")
    }
}

/// The partition a [`RocksDbOptionsHook`] is called for.
#[derive(Clone, Copy)]
pub struct HookTarget<'a> {
    pub(crate) store: Option<&'a str>,
    pub(crate) partition: Option<u32>,
    pub(crate) path: &'a Path,
    pub(crate) block_cache: Option<&'a rocksdb::Cache>,
}

impl fmt::Debug for HookTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookTarget")
            .field("store", &self.store)
            .field("partition", &self.partition)
            .field("path", &self.path)
            .field("block_cache", &self.block_cache.is_some())
            .finish()
    }
}

impl<'a> HookTarget<'a> {
    /// The store's name, when opened through a backend (`None` when a
    /// partition is opened by its path alone, as `statectl` does).
    pub fn store(&self) -> Option<&'a str> {
        self.store
    }

    /// The partition number, when opened through a backend.
    pub fn partition(&self) -> Option<u32> {
        self.partition
    }

    /// The partition's directory.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The block cache the library gave the partition (the memory
    /// budget's, or the backend's), for a table factory of the hook's own.
    pub fn block_cache(&self) -> Option<&'a rocksdb::Cache> {
        self.block_cache
    }
}

/// The database options the library needs, as RocksDB writes them in
/// `OPTIONS`.
static REQUIRED: [RequiredOption; 1] = [RequiredOption {
    backend: "rocksdb",
    option: "atomic_flush",
    value: "true",
    why: "recovery writes skip the write-ahead log, and only an atomic flush keeps the stored changelog \
          offset from reaching disk before the data it covers",
}];

/// Checks, in the newest `OPTIONS` file of the database at `path`, that
/// every option the library needs kept its value.
pub(crate) fn check_required(path: &Path) -> Result<(), Error> {
    let text = newest_options_file(path);
    for required in &REQUIRED {
        let found = text
            .as_deref()
            .and_then(|t| db_option(t, required.option))
            .unwrap_or("unknown (no OPTIONS file says)");
        if found != required.value {
            return Err(Error::OptionsRefused {
                path: path.to_owned(),
                required,
                found: found.to_owned(),
            });
        }
    }
    Ok(())
}

/// The text of `OPTIONS-<n>` with the largest `n` in `dir`.
fn newest_options_file(dir: &Path) -> Option<String> {
    let newest = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u64 = name.strip_prefix("OPTIONS-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)?;
    std::fs::read_to_string(newest.1).ok()
}

/// The value of `name` in the `[DBOptions]` section of an `OPTIONS` file.
fn db_option<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let mut in_db = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_db = line == "[DBOptions]";
        } else if in_db {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == name {
                    return Some(v.trim());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_from_the_db_section_only() {
        let text = "[Version]\n  rocksdb_version=10.4.2\n[DBOptions]\n  atomic_flush=false\n  \
                    create_if_missing=true\n[CFOptions \"default\"]\n  atomic_flush=true\n";
        assert_eq!(db_option(text, "atomic_flush"), Some("false"));
        assert_eq!(db_option(text, "create_if_missing"), Some("true"));
        assert_eq!(db_option(text, "absent"), None);
    }
}
