//! What a [`WindowedTransaction`](super::WindowedTransaction) knows per
//! prefix it touched: the index slots it read or wrote, the windows it
//! set or deleted, and the prefix's committed state taken from the shared
//! [`WindowIndex`](super::WindowIndex).

use std::cell::Cell;

use state_core::mem::{hash_bytes, Arena, ByteMap};

use super::layout::Index;
use crate::few::Few;
use crate::transaction::Recycled;

/// The buffers a windowed transaction leaves to the next one on its
/// partition (kept by the partition's [`WindowIndex`](super::WindowIndex)).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(super) prefixes: PrefixMap,
    pub(super) base: Recycled,
}

/// The prefixes a transaction touched, keyed by their bytes. Prefix bytes
/// live back to back in one buffer (no allocation per prefix), and the
/// last prefix found is remembered: a record's calls all name the same
/// prefix, so most lookups are one comparison.
#[derive(Debug, Default)]
pub(super) struct PrefixMap {
    prefixes: ByteMap<Arena, PrefixTxn>,
    last: Cell<Option<u32>>,
}

impl PrefixMap {
    fn position(&self, prefix: &[u8]) -> Option<u32> {
        if let Some(i) = self.last.get() {
            if self.prefixes.key(i) == prefix {
                return Some(i);
            }
        }
        let found = self.prefixes.find(hash_bytes(prefix), prefix);
        if found.is_some() {
            self.last.set(found);
        }
        found
    }

    /// What the transaction knows of `prefix`, if it touched it.
    pub(super) fn get(&self, prefix: &[u8]) -> Option<&PrefixTxn> {
        self.position(prefix).map(|i| self.prefixes.get(i))
    }

    /// Forgets every prefix, keeping the buffers.
    pub(super) fn clear(&mut self) {
        self.prefixes.clear();
        self.last.set(None);
    }

    /// Every prefix with what the transaction knows of it.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], &PrefixTxn)> {
        self.prefixes.iter().map(|(_, prefix, p)| (prefix, p))
    }

    /// The entry of `prefix`, made empty if missing.
    pub(super) fn entry(&mut self, prefix: &[u8]) -> &mut PrefixTxn {
        let i = match self.position(prefix) {
            Some(i) => i,
            None => {
                let i = self.prefixes.insert(hash_bytes(prefix), prefix, PrefixTxn::default());
                self.last.set(Some(i));
                i
            }
        };
        self.prefixes.get_mut(i)
    }
}

/// What one transaction knows about one prefix.
#[derive(Debug, Default)]
pub(super) struct PrefixTxn {
    /// Index values read or written, per [`Index`] slot.
    pub(super) slots: Slots,
    /// Slots this transaction wrote (bit per [`Index::slot`]).
    pub(super) written: u8,
    /// Windows this transaction set (`true`) or deleted (`false`) through
    /// the windowed API, with the last thing done to each.
    pub(super) touched: Few<(u64, u64, bool)>,
    /// The prefix's committed state from the shared index, taken on first
    /// use (`None`: not taken yet).
    pub(super) shared: Option<SharedSnapshot>,
}

impl PrefixTxn {
    /// The value this transaction wrote to slot `index`, if it wrote one.
    pub(super) fn written_value(&self, index: Index) -> Option<i64> {
        (self.written & (1 << index.slot()) != 0)
            .then(|| self.slots.get(index))
            .flatten()
            .flatten()
    }
}

/// Index values known to a transaction, per [`Index`] slot: compact,
/// because a transaction keeps them for every prefix it touches.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Slots {
    values: [i64; Index::COUNT],
    /// Bit per slot: the value is known (else `get` says `None`).
    known: u8,
    /// Bit per slot: the stored value exists (else it is absent).
    present: u8,
}

impl Slots {
    /// `None`: not known; `Some(None)`: known absent.
    pub(super) fn get(&self, index: Index) -> Option<Option<i64>> {
        let bit = 1 << index.slot();
        (self.known & bit != 0).then(|| (self.present & bit != 0).then_some(self.values[index.slot()]))
    }

    pub(super) fn set(&mut self, index: Index, value: Option<i64>) {
        let bit = 1 << index.slot();
        self.known |= bit;
        match value {
            Some(v) => {
                self.present |= bit;
                self.values[index.slot()] = v;
            }
            None => self.present &= !bit,
        }
    }
}

/// A prefix's committed state, as the shared index has it.
#[derive(Debug)]
pub(super) struct SharedSnapshot {
    /// Stored windows, sorted; `None`: not indexed.
    pub(super) windows: Option<Few<(u64, u64)>>,
    pub(super) latest: Option<i64>,
    pub(super) expired: Option<i64>,
    /// Where the index held the prefix (a hint: entries move).
    pub(super) position: u32,
}
