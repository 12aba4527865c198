//! [`Few`]: a list that keeps its first items inside its owner. The window
//! index holds one per prefix (and a windowed transaction a copy for each
//! prefix it reads), and a lookup that finds the prefix then finds its
//! windows without another cache miss (and a new list costs no
//! allocation).

/// The capacity a list gets when it outgrows its inline items.
const SPILL_CAPACITY: usize = 16;

/// A few items, the first two inline: most prefixes have one or two
/// windows, and a transaction keeps these for every prefix it touches.
#[derive(Clone, Debug, Default)]
pub(crate) struct Few<T> {
    inline: [T; 2],
    len: u8,
    /// All of them once there are more than two.
    spilled: Vec<T>,
}

impl<T: Copy + Default> Few<T> {
    pub(crate) fn from_slice(items: &[T]) -> Self {
        let mut out = Few::default();
        if items.len() > out.inline.len() {
            out.spilled = items.to_vec();
        } else {
            out.inline[..items.len()].copy_from_slice(items);
            out.len = items.len() as u8;
        }
        out
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        if self.spilled.is_empty() {
            &self.inline[..usize::from(self.len)]
        } else {
            &self.spilled
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        if !self.spilled.is_empty() {
            self.spilled.push(item);
        } else if usize::from(self.len) < self.inline.len() {
            self.inline[usize::from(self.len)] = item;
            self.len += 1;
        } else {
            // Room for a hopping key's windows at once: a list that spills
            // usually keeps growing (a prefix's windows, loaded in order).
            let mut spilled = Vec::with_capacity(SPILL_CAPACITY);
            spilled.extend_from_slice(&self.inline);
            spilled.push(item);
            self.spilled = spilled;
        }
    }

    /// Bytes the list holds on the heap (none while inline).
    pub(crate) fn heap_bytes(&self) -> usize {
        if self.spilled.capacity() == 0 {
            0
        } else {
            self.spilled.capacity() * std::mem::size_of::<T>() + 16
        }
    }

    /// Number of items.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Inserts `item` at `at` (at most `len`), shifting the rest.
    pub(crate) fn insert(&mut self, at: usize, item: T) {
        if !self.spilled.is_empty() {
            self.spilled.insert(at, item);
            return;
        }
        let mut all = self.as_slice().to_vec();
        all.insert(at, item);
        if all.len() <= self.inline.len() {
            *self = Few::from_slice(&all);
        } else {
            self.spilled = all;
        }
    }

    /// Removes the item at `at`.
    pub(crate) fn remove(&mut self, at: usize) {
        if self.spilled.is_empty() {
            let n = usize::from(self.len);
            self.inline.copy_within(at + 1..n, at);
            self.len -= 1;
        } else {
            self.spilled.remove(at);
            if self.spilled.len() <= self.inline.len() {
                *self = Few::from_slice(&std::mem::take(&mut self.spilled));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_items_stay_inline_until_they_do_not() {
        let mut f: Few<u32> = Few::default();
        f.push(3);
        f.insert(0, 1);
        assert_eq!(f.as_slice(), &[1, 3]);
        f.insert(1, 2);
        assert_eq!(f.as_slice(), &[1, 2, 3]);
        f.insert(3, 4);
        assert_eq!(f.as_slice(), &[1, 2, 3, 4]);
        f.remove(0);
        f.remove(2);
        assert_eq!(f.as_slice(), &[2, 3]);
        assert!(f.spilled.is_empty(), "back inline");
        f.remove(1);
        assert_eq!(f.as_slice(), &[2]);
        assert_eq!(f.len(), 1);
        assert_eq!(Few::from_slice(&[1, 2, 3, 4, 5]).len(), 5);
    }
}
