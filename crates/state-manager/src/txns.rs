//! The open transactions of the current checkpoint, one map per store kind,
//! so a typed handle finds its transaction without a runtime kind check.

use std::collections::BTreeMap;

use state_txn::{PartitionTransaction, StateTransaction, TimestampedTransaction, WindowedTransaction};

/// Open transactions of one kind, by (store id, partition).
#[doc(hidden)]
pub type TxnMap<T> = BTreeMap<(usize, u32), T>;

/// The open transactions of the current checkpoint. Started by
/// [`crate::StateStoreManager::txn`], taken by the checkpoint that commits
/// them, dropped with their partition on revocation.
#[doc(hidden)]
#[derive(Default)]
pub struct OpenTxns {
    key_value: TxnMap<PartitionTransaction>,
    windowed: TxnMap<WindowedTransaction>,
    timestamped: TxnMap<TimestampedTransaction>,
}

impl OpenTxns {
    /// The key-value stores' transactions.
    pub(crate) fn key_value(&mut self) -> &mut TxnMap<PartitionTransaction> {
        &mut self.key_value
    }

    /// The windowed stores' transactions.
    pub(crate) fn windowed(&mut self) -> &mut TxnMap<WindowedTransaction> {
        &mut self.windowed
    }

    /// The timestamped stores' transactions.
    pub(crate) fn timestamped(&mut self) -> &mut TxnMap<TimestampedTransaction> {
        &mut self.timestamped
    }

    /// True if no transaction is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.key_value.is_empty() && self.windowed.is_empty() && self.timestamped.is_empty()
    }

    /// Every open transaction with its (store id, partition), key-value
    /// stores first, then windowed, then timestamped.
    pub(crate) fn all_mut(&mut self) -> impl Iterator<Item = ((usize, u32), &mut dyn StateTransaction)> + '_ {
        fn erase<T: StateTransaction>(
            m: &mut TxnMap<T>,
        ) -> impl Iterator<Item = ((usize, u32), &mut dyn StateTransaction)> + '_ {
            m.iter_mut().map(|(k, t)| (*k, t as &mut dyn StateTransaction))
        }
        erase(&mut self.key_value)
            .chain(erase(&mut self.windowed))
            .chain(erase(&mut self.timestamped))
    }

    /// Drops the transactions of partition `partition` of the given stores.
    pub(crate) fn drop_partition(&mut self, stores: &[usize], partition: u32) {
        let keep = |(id, p): &(usize, u32)| !(*p == partition && stores.contains(id));
        self.key_value.retain(|k, _| keep(k));
        self.windowed.retain(|k, _| keep(k));
        self.timestamped.retain(|k, _| keep(k));
    }
}
