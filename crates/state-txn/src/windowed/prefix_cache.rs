//! What a [`WindowedTransaction`](super::WindowedTransaction) knows per
//! prefix it touched: the index slots it read or wrote, the windows it
//! set or deleted (in [`TouchedWindows`]), and the prefix's committed state
//! taken from the shared [`WindowIndex`](super::WindowIndex).

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
    touched: TouchedWindows,
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
        self.touched.items.clear();
    }

    /// Records that window `(start, end)` of `prefix` was set (`present`)
    /// or deleted: the last thing done to each window counts.
    pub(super) fn touch(&mut self, prefix: &[u8], start: u64, end: u64, present: bool) {
        let mut chain = self.entry(prefix).touched;
        self.touched.touch(&mut chain, start, end, present);
        self.entry(prefix).touched = chain;
    }

    /// The windows `p` (an entry of this map) set or deleted, in the order
    /// first touched.
    pub(super) fn touched<'a>(&'a self, p: &PrefixTxn) -> TouchedIter<'a> {
        TouchedIter {
            items: &self.touched.items,
            next: p.touched.head,
        }
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
    /// Windows this transaction set or deleted through the windowed API:
    /// its chain in the map's [`TouchedWindows`].
    pub(super) touched: Chain,
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

/// The windows a transaction set or deleted, of every prefix, in one list
/// that only grows (until the transaction ends), each prefix's chained
/// from its first. A list per prefix spilled to a heap block of its own for
/// every hopping prefix (ten windows set and ten deleted per record), and
/// writing into those fresh blocks missed the cache (`Few::push` was ~11%
/// of the hopping benchmark); appending here writes memory just written.
#[derive(Debug, Default)]
pub(super) struct TouchedWindows {
    items: Vec<TouchedWindow>,
}

/// One window set (`present`) or deleted, and the next of its prefix.
#[derive(Clone, Copy, Debug)]
struct TouchedWindow {
    start: u64,
    end: u64,
    /// Position of the prefix's next window, plus one (0: the last).
    next: u32,
    present: bool,
}

/// Where a prefix's windows are in [`TouchedWindows`]: positions plus one
/// (0: none yet).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Chain {
    head: u32,
    tail: u32,
}

impl TouchedWindows {
    fn touch(&mut self, chain: &mut Chain, start: u64, end: u64, present: bool) {
        let mut at = chain.head;
        while at != 0 {
            let w = &mut self.items[at as usize - 1];
            if (w.start, w.end) == (start, end) {
                w.present = present;
                return;
            }
            at = w.next;
        }
        self.items.push(TouchedWindow {
            start,
            end,
            next: 0,
            present,
        });
        // More than u32::MAX windows in one transaction cannot be held in
        // memory anyway.
        let pos = self.items.len() as u32;
        if chain.tail == 0 {
            chain.head = pos;
        } else {
            self.items[chain.tail as usize - 1].next = pos;
        }
        chain.tail = pos;
    }
}

/// The windows of one prefix in [`TouchedWindows`]: `(start, end,
/// present)`, in the order first touched.
#[derive(Clone, Debug)]
pub(crate) struct TouchedIter<'a> {
    items: &'a [TouchedWindow],
    next: u32,
}

impl Iterator for TouchedIter<'_> {
    type Item = (u64, u64, bool);

    fn next(&mut self) -> Option<(u64, u64, bool)> {
        let w = self.items.get((self.next as usize).checked_sub(1)?)?;
        self.next = w.next;
        Some((w.start, w.end, w.present))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_windows_keep_each_prefix_in_order_with_its_last_state() {
        let mut map = PrefixMap::default();
        map.touch(b"a", 0, 10, true);
        map.touch(b"b", 5, 15, true);
        map.touch(b"a", 1, 11, true);
        map.touch(b"a", 0, 10, false);
        map.touch(b"b", 6, 16, false);
        let of = |map: &PrefixMap, prefix: &[u8]| -> Vec<(u64, u64, bool)> {
            map.get(prefix).map(|p| map.touched(p).collect()).unwrap_or_default()
        };
        assert_eq!(of(&map, b"a"), vec![(0, 10, false), (1, 11, true)]);
        assert_eq!(of(&map, b"b"), vec![(5, 15, true), (6, 16, false)]);
        map.clear();
        map.touch(b"b", 7, 17, true);
        assert_eq!(of(&map, b"b"), vec![(7, 17, true)]);
        assert!(of(&map, b"a").is_empty());
    }
}
