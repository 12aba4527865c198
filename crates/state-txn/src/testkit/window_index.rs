//! Windowed cases with and without a shared [`WindowIndex`]: every
//! windowed transaction the kit makes comes from [`windowed_txn`], which
//! gives it its partition's index inside [`with_window_index`].

use std::sync::Arc;

use state_core::{ChangelogSink, Codec, StorePartition};

use crate::windowed::{WindowIndex, WindowedTransaction};

/// A partition (weakly) and its shared window index.
type PartitionIndex = (std::sync::Weak<dyn StorePartition>, Arc<WindowIndex>);

thread_local! {
    /// Set while a case runs under [`with_window_index`].
    static WINDOW_INDEX: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// One shared index per partition, for [`windowed_txn`].
    static INDEXES: std::cell::RefCell<Vec<PartitionIndex>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` (a windowed case) with every windowed transaction the kit
/// makes sharing its partition's [`WindowIndex`], as an owner that
/// keeps one per partition does. The indexes are tiny (4 prefixes), so
/// cases with many keys also exercise eviction.
pub fn with_window_index<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            WINDOW_INDEX.with(|w| w.set(false));
            INDEXES.with(|i| i.borrow_mut().clear());
        }
    }
    WINDOW_INDEX.with(|w| w.set(true));
    let _reset = Reset;
    f()
}

/// A windowed transaction on `p`: with the partition's shared index inside
/// [`with_window_index`], without one otherwise.
pub fn windowed_txn(
    p: &Arc<dyn StorePartition>,
    codec: Codec,
    sink: Option<Arc<dyn ChangelogSink>>,
) -> WindowedTransaction {
    if !WINDOW_INDEX.with(std::cell::Cell::get) {
        return WindowedTransaction::new(p.clone(), codec, sink);
    }
    let weak = Arc::downgrade(p);
    let index = INDEXES.with(|i| {
        let mut i = i.borrow_mut();
        // A weak pointer keeps its partition's allocation (not the
        // partition) alive, so an address match is always the same one.
        i.retain(|(w, _)| w.strong_count() > 0);
        match i.iter().find(|(w, _)| w.ptr_eq(&weak)) {
            Some((_, index)) => index.clone(),
            None => {
                let index = Arc::new(WindowIndex::new(4));
                i.push((weak, index.clone()));
                index
            }
        }
    });
    WindowedTransaction::with_index(p.clone(), codec, sink, index)
}
