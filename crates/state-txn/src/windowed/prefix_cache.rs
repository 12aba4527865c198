//! What a [`WindowedTransaction`](super::WindowedTransaction) knows per
//! prefix it touched: the index slots it read or wrote, the windows it
//! set or deleted (in [`TouchedWindows`]), and the prefix's committed state
//! taken from the shared [`WindowIndex`](super::WindowIndex).

use std::cell::Cell;

use state_core::mem::{bytes_eq, hash_bytes, Arena, ByteMap};

use super::index::IndexedValue;
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
            if bytes_eq(self.prefixes.key(i), prefix) {
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
        self.touched.values.clear();
    }

    /// Records that window `(start, end)` of `prefix` was set to `value`
    /// (`Some`) or deleted: the last thing done to each window counts.
    pub(super) fn touch(&mut self, prefix: &[u8], start: u64, end: u64, value: Option<&[u8]>) {
        let mut chain = self.entry(prefix).touched;
        self.touched.touch(&mut chain, start, end, value);
        self.entry(prefix).touched = chain;
    }

    /// The windows `p` (an entry of this map) set or deleted, in the order
    /// first touched.
    pub(super) fn touched<'a>(&'a self, p: &PrefixTxn) -> TouchedIter<'a> {
        TouchedIter {
            items: &self.touched.items,
            values: &self.touched.values,
            next: p.touched.head,
        }
    }

    /// True if this transaction set or deleted window `(start, end)` of
    /// `prefix`.
    pub(super) fn touched_window(&self, prefix: &[u8], start: u64, end: u64) -> bool {
        let Some(p) = self.get(prefix) else { return false };
        p.touched.seen & Chain::bit(start, end) != 0 && self.touched(p).any(|w| (w.0, w.1) == (start, end))
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
    /// The stored values of `windows` the index knows, position for
    /// position (empty: none known).
    pub(super) values: Vec<IndexedValue>,
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
    /// The values set, back to back (for the shared index, which keeps
    /// them for expiry to read).
    values: Vec<u8>,
}

/// One window set (`present`) or deleted, and the next of its prefix.
#[derive(Clone, Copy, Debug)]
struct TouchedWindow {
    start: u64,
    end: u64,
    /// Position of the prefix's next window, plus one (0: the last).
    next: u32,
    present: bool,
    /// Where the value set is in [`TouchedWindows::values`].
    value_at: u32,
    value_len: u32,
}

/// Where a prefix's windows are in [`TouchedWindows`]: positions plus one
/// (0: none yet).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Chain {
    head: u32,
    tail: u32,
    /// A bit per window in the chain, by [`Chain::bit`]: a window whose
    /// bit is clear is not in the chain, without walking it (a hopping
    /// record adds twenty windows to its prefix's chain).
    seen: u64,
}

impl Chain {
    fn bit(start: u64, end: u64) -> u64 {
        let h = (start ^ end.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        1 << (h >> 58)
    }
}

impl TouchedWindows {
    /// Appends `value` to the values; its position and length.
    fn keep_value(&mut self, value: Option<&[u8]>) -> (u32, u32) {
        let Some(v) = value else { return (0, 0) };
        // Values beyond u32::MAX bytes in one transaction cannot be held
        // in memory anyway.
        let at = self.values.len() as u32;
        self.values.extend_from_slice(v);
        (at, v.len() as u32)
    }

    fn touch(&mut self, chain: &mut Chain, start: u64, end: u64, value: Option<&[u8]>) {
        let bit = Chain::bit(start, end);
        let mut at = if chain.seen & bit != 0 { chain.head } else { 0 };
        while at != 0 {
            let i = at as usize - 1;
            let w = self.items[i];
            if (w.start, w.end) == (start, end) {
                let (value_at, value_len) = match value {
                    // A value no longer than the one it replaces takes its
                    // place: a window updated by every record of a long
                    // transaction does not grow the list.
                    Some(v) if w.present && v.len() <= w.value_len as usize => {
                        let at = w.value_at as usize;
                        self.values[at..at + v.len()].copy_from_slice(v);
                        (w.value_at, v.len() as u32)
                    }
                    _ => self.keep_value(value),
                };
                let w = &mut self.items[i];
                w.present = value.is_some();
                w.value_at = value_at;
                w.value_len = value_len;
                return;
            }
            at = w.next;
        }
        chain.seen |= bit;
        let (value_at, value_len) = self.keep_value(value);
        self.items.push(TouchedWindow {
            start,
            end,
            next: 0,
            present: value.is_some(),
            value_at,
            value_len,
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
/// value)` (`None`: deleted), in the order first touched.
#[derive(Clone, Debug)]
pub(crate) struct TouchedIter<'a> {
    items: &'a [TouchedWindow],
    values: &'a [u8],
    next: u32,
}

impl<'a> Iterator for TouchedIter<'a> {
    type Item = (u64, u64, Option<&'a [u8]>);

    fn next(&mut self) -> Option<(u64, u64, Option<&'a [u8]>)> {
        let w = self.items.get((self.next as usize).checked_sub(1)?)?;
        self.next = w.next;
        let value = w.present.then(|| {
            let at = w.value_at as usize;
            &self.values[at..at + w.value_len as usize]
        });
        Some((w.start, w.end, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_windows_keep_each_prefix_in_order_with_its_last_state() {
        let mut map = PrefixMap::default();
        map.touch(b"a", 0, 10, Some(b"x"));
        map.touch(b"b", 5, 15, Some(b"y"));
        map.touch(b"a", 1, 11, Some(b"z"));
        map.touch(b"a", 0, 10, None);
        map.touch(b"b", 6, 16, None);
        map.touch(b"a", 1, 11, Some(b"zz"));
        let of = |map: &PrefixMap, prefix: &[u8]| -> Vec<(u64, u64, Option<Vec<u8>>)> {
            map.get(prefix)
                .map(|p| map.touched(p).map(|(s, e, v)| (s, e, v.map(<[u8]>::to_vec))).collect())
                .unwrap_or_default()
        };
        assert_eq!(of(&map, b"a"), vec![(0, 10, None), (1, 11, Some(b"zz".to_vec()))]);
        assert_eq!(of(&map, b"b"), vec![(5, 15, Some(b"y".to_vec())), (6, 16, None)]);
        let kept = map.touched.values.len();
        map.touch(b"a", 1, 11, Some(b"q"));
        assert_eq!(
            map.touched.values.len(),
            kept,
            "a shorter value takes the old one's place"
        );
        assert_eq!(of(&map, b"a"), vec![(0, 10, None), (1, 11, Some(b"q".to_vec()))]);
        // Many windows: the bits that skip the walk never hide one.
        for i in 0..500u64 {
            map.touch(b"c", i, i + 10, Some(b"v"));
        }
        for i in (0..500u64).step_by(3) {
            map.touch(b"c", i, i + 10, None);
        }
        let c = of(&map, b"c");
        assert_eq!(c.len(), 500);
        assert!(c.iter().enumerate().all(|(i, w)| w.2.is_some() == (i % 3 != 0)));
        map.clear();
        map.touch(b"b", 7, 17, Some(b"w"));
        assert_eq!(of(&map, b"b"), vec![(7, 17, Some(b"w".to_vec()))]);
        assert!(of(&map, b"a").is_empty());
    }
}
