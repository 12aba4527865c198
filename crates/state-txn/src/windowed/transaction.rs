//! [`WindowedTransaction`]: the transaction type, its constructors and the
//! buffers it hands to the next transaction on its partition.

use std::cell::RefCell;
use std::sync::Arc;

use state_core::{ChangelogSink, Codec, StorePartition};

use super::index::WindowIndex;
use super::prefix_cache::{PrefixMap, Scratch};
use crate::error::Result;
use crate::status::TxnStatus;
use crate::transaction::PartitionTransaction;

/// A transaction over a windowed store partition.
///
/// Windows are `[start, end)` in milliseconds; negative times and windows
/// with `end <= start` are refused with a typed error.
pub struct WindowedTransaction<P: StorePartition + ?Sized = dyn StorePartition> {
    pub(super) base: PartitionTransaction<P>,
    /// What this transaction knows per prefix. Keyed by prefix alone so a
    /// lookup needs no allocation; in a cell so reads (`&self`) can take a
    /// prefix's snapshot from the shared index.
    pub(super) prefixes: RefCell<PrefixMap>,
    /// The collection counter, once read or advanced.
    pub(super) counter: Option<u64>,
    /// The partition's shared index, if the owner made one.
    pub(super) shared: Option<Arc<WindowIndex>>,
    /// [`base_mut`](Self::base_mut) was used: windows may have changed
    /// behind the back of `prefixes`, so ranges read the change set.
    pub(super) untracked: bool,
    /// Reused buffers for keys and values written.
    pub(super) key_buf: Vec<u8>,
    pub(super) value_buf: Vec<u8>,
}

impl<P: StorePartition + ?Sized> Drop for WindowedTransaction<P> {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            let mut prefixes = std::mem::take(self.prefixes.get_mut());
            prefixes.clear();
            shared.put_scratch(Scratch {
                prefixes,
                base: self.base.recycle(),
            });
        }
    }
}

impl<P: StorePartition + ?Sized> std::fmt::Debug for WindowedTransaction<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedTransaction").field("base", &self.base).finish()
    }
}

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    /// Starts a windowed transaction on `partition`.
    pub fn new(partition: Arc<P>, codec: Codec, sink: Option<Arc<dyn ChangelogSink>>) -> Self {
        WindowedTransaction {
            base: PartitionTransaction::new(partition, codec, sink),
            prefixes: RefCell::new(PrefixMap::default()),
            counter: None,
            shared: None,
            untracked: false,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Starts a windowed transaction on `partition` that reads per-prefix
    /// metadata (latest timestamp, last expired start, which windows exist)
    /// from `index`, the partition's shared [`WindowIndex`], and updates it
    /// after a successful flush. Reads and writes give exactly what
    /// [`new`](Self::new) gives; `get_window` of a missing window and
    /// `expire_windows` with nothing to expire read nothing from the
    /// partition, and created windows are flushed as
    /// [`state_core::WriteBatch::put_new`]. See [`WindowIndex`] for the
    /// owner's side of the contract.
    pub fn with_index(
        partition: Arc<P>,
        codec: Codec,
        sink: Option<Arc<dyn ChangelogSink>>,
        index: Arc<WindowIndex>,
    ) -> Self {
        // The buffers the partition's previous transaction left behind.
        let scratch = index.take_scratch();
        WindowedTransaction {
            base: PartitionTransaction::with_recycled(partition, codec, sink, scratch.base),
            prefixes: RefCell::new(scratch.prefixes),
            counter: None,
            shared: Some(index),
            untracked: false,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// The shared index this transaction uses, if any.
    pub fn index(&self) -> Option<&Arc<WindowIndex>> {
        self.shared.as_ref()
    }

    /// The underlying key-value transaction (for plain `get`/`set`).
    pub fn base(&self) -> &PartitionTransaction<P> {
        &self.base
    }

    /// Mutable access to the underlying key-value transaction. Windows
    /// written through it are seen by every windowed read (range reads of
    /// this transaction then merge its whole change set).
    pub fn base_mut(&mut self) -> &mut PartitionTransaction<P> {
        self.untracked = true;
        &mut self.base
    }

    /// The transaction status.
    pub fn status(&self) -> TxnStatus {
        self.base.status()
    }

    pub(crate) fn codec(&self) -> Codec {
        self.base.codec()
    }

    /// `res`, after marking the transaction failed if it is an error.
    pub(super) fn fail_on_err<T>(&mut self, res: Result<T>) -> Result<T> {
        if res.is_err() && self.base.status() == TxnStatus::Started {
            // Reads of corrupt indexes must not leave half-done work behind.
            self.base.mark_failed();
        }
        res
    }

    /// Runs `op`, marking the transaction failed if it fails.
    pub(super) fn guarded<T>(&mut self, op: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let res = op(self);
        self.fail_on_err(res)
    }
}
