//! RocksDB under a process-wide memory budget, and the options hook: the
//! hook's settings reach RocksDB (the `OPTIONS` file shows them), a hook
//! that breaks what the library relies on is refused, and partitions of
//! several stores share the budget's one cache and write buffer manager.

use std::path::Path;
use std::sync::{Arc, Mutex};

use state_core::{cf, BudgetPool, Error, MemoryBudget, Store, StoreLocation, StorePartition, WriteBatch};
use state_rocksdb::{RocksDbBackend, RocksDbOptions, RocksDbPartition};

/// The newest `OPTIONS` file of the database at `dir`.
fn options_file(dir: &Path) -> String {
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let n: u64 = name.strip_prefix("OPTIONS-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .expect("RocksDB writes an OPTIONS file");
    std::fs::read_to_string(newest.1).unwrap()
}

/// The value of `name` in section `section` (`DBOptions`, `CFOptions "default"`, ...).
fn option(text: &str, section: &str, name: &str) -> Option<String> {
    let header = format!("[{section}]");
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == name {
                    return Some(v.trim().to_owned());
                }
            }
        }
    }
    None
}

/// The store and partition a hook was called for.
type HookCall = (Option<String>, Option<u32>);

#[test]
fn the_hook_sees_each_partition_and_its_settings_reach_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Arc<Mutex<Vec<HookCall>>> = Arc::default();
    let log = seen.clone();
    let options = RocksDbOptions::default().with_options_hook(move |target, db, cf| {
        log.lock()
            .unwrap()
            .push((target.store().map(str::to_owned), target.partition()));
        assert!(target.block_cache().is_some(), "the backend's cache is offered");
        db.set_max_background_jobs(5);
        cf.set_max_write_buffer_number(7);
    });
    let mut store = Store::new(
        RocksDbBackend::shared(options),
        StoreLocation::new("counts", dir.path().join("counts")),
    );
    let p = store.assign_partition(3).unwrap();
    p.put(cf::DEFAULT, b"k", b"v").unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![(Some("counts".to_owned()), Some(3))]);
    let text = options_file(&dir.path().join("counts/3"));
    assert_eq!(option(&text, "DBOptions", "max_background_jobs").as_deref(), Some("5"));
    assert_eq!(option(&text, "DBOptions", "atomic_flush").as_deref(), Some("true"));
    assert_eq!(
        option(&text, "CFOptions \"default\"", "max_write_buffer_number").as_deref(),
        Some("7"),
        "the column family options apply to data column families"
    );
    assert_eq!(
        option(&text, "CFOptions \"__metadata__\"", "max_write_buffer_number").as_deref(),
        Some("3"),
        "the metadata column family keeps the library's options"
    );
}

#[test]
fn a_hook_that_turns_atomic_flush_off_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0");
    let options = RocksDbOptions::default().with_options_hook(|_, db, _| db.set_atomic_flush(false));
    let err = RocksDbPartition::open(&path, &options).unwrap_err();
    match &err {
        Error::OptionsRefused {
            required,
            found,
            path: p,
            ..
        } => {
            assert_eq!((required.option, required.value), ("atomic_flush", "true"));
            assert_eq!(found, "false");
            assert_eq!(p, &path);
        }
        other => panic!("expected OptionsRefused, got {other}"),
    }
    assert!(err.to_string().contains("remove that setting from the hook"), "{err}");
    // Closed again: the partition opens without the hook.
    let p = RocksDbPartition::open(&path, &RocksDbOptions::default()).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), None);
}

#[test]
fn partitions_of_several_stores_share_the_budgets_cache_and_write_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let budget = MemoryBudget::new(64 << 20);
    let options = RocksDbOptions {
        memory_budget: Some(budget.clone()),
        ..RocksDbOptions::default()
    };
    let backends: Vec<Arc<RocksDbBackend>> = (0..3).map(|_| Arc::new(RocksDbBackend::new(options.clone()))).collect();
    assert_eq!(
        budget.stats().engine.reserved,
        budget.engine_bytes(),
        "one cache of the engine share, reserved once for every backend"
    );
    let mut partitions = Vec::new();
    for (s, backend) in backends.iter().enumerate() {
        let location = StoreLocation::new(format!("store-{s}"), dir.path().join(format!("store-{s}")));
        for n in 0..4 {
            partitions.push(backend.open(&location, n).unwrap());
        }
    }
    for (i, p) in partitions.iter().enumerate() {
        let mut b = WriteBatch::new();
        for k in 0..2000u32 {
            b.put(cf::DEFAULT, format!("key-{i}-{k}").as_bytes(), &[1; 100]);
        }
        b.set_changelog_offset(1);
        p.write(&b).unwrap();
    }
    let memtables = backends[0].memtable_usage().unwrap();
    assert!(memtables > 0);
    assert!(
        memtables <= budget.engine_bytes() / 2,
        "{memtables} > the write buffer manager's limit"
    );
    for b in &backends[1..] {
        assert_eq!(b.memtable_usage(), Some(memtables), "one write buffer manager");
    }
    let cache = backends[0].block_cache_usage().unwrap();
    assert!(
        cache >= memtables,
        "memtables are charged to the cache: {cache} < {memtables}"
    );
    assert!(cache <= budget.engine_bytes(), "{cache}");
    let text = options_file(&dir.path().join("store-1/2"));
    assert_eq!(
        option(&text, "CFOptions \"default\"", "arena_block_size").as_deref(),
        Some("16384")
    );
    assert_eq!(
        option(
            &text,
            "TableOptions/BlockBasedTable \"default\"",
            "cache_index_and_filter_blocks"
        )
        .as_deref(),
        Some("true")
    );
    // The cache share is the caches' pool, untouched by RocksDB.
    assert_eq!(budget.stats().caches.reserved, 0);
    let _ = budget.reserve(BudgetPool::Caches);
}

#[test]
fn a_value_cache_on_a_budget_draws_from_its_cache_share() {
    let dir = tempfile::tempdir().unwrap();
    let budget = MemoryBudget::new(64 << 20);
    let options = RocksDbOptions {
        memory_budget: Some(budget.clone()),
        value_cache_bytes: 1 << 20,
        ..RocksDbOptions::default()
    };
    let p = RocksDbPartition::open(dir.path().join("0"), &options).unwrap();
    p.put(cf::DEFAULT, b"k", b"v").unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    let reserved = budget.stats().caches.reserved;
    assert!(reserved > 0 && reserved <= 1 << 20, "{reserved}");
}
