//! [`Clock`]: second-chance eviction over numbered slots.

/// The hand of a second-chance ("clock") eviction, an O(1) approximation of
/// least-recently-used: every use of an entry sets its reference bit; the
/// hand sweeps the slots in order, clears the bits it passes, and picks the
/// first evictable slot whose bit was already clear. An entry used since
/// the hand last passed it survives one more round.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    hand: usize,
}

impl Clock {
    /// A hand at slot 0.
    pub fn new() -> Self {
        Clock::default()
    }

    /// Moves the hand over `slots` until it finds a victim, and returns its
    /// position; `None` if there is none after two rounds (every slot
    /// unevictable). `reference_bit` gives a slot's reference bit, or
    /// `None` for a slot that may not be evicted (free, or pinned by its
    /// owner). The hand stays after the victim, for the next call.
    pub fn next_victim<T>(
        &mut self,
        slots: &mut [T],
        mut reference_bit: impl FnMut(&mut T) -> Option<&mut bool>,
    ) -> Option<usize> {
        let n = slots.len();
        if n == 0 {
            return None;
        }
        // Two rounds: the first may only clear bits, the second then finds
        // every evictable slot clear.
        for _ in 0..2 * n + 1 {
            let i = self.hand % n;
            self.hand = (self.hand + 1) % n;
            match reference_bit(&mut slots[i]) {
                None => {}
                Some(bit) if *bit => *bit = false,
                Some(_) => return Some(i),
            }
        }
        None
    }

    /// Puts the hand back at slot 0 (after the slots were cleared).
    pub fn reset(&mut self) {
        self.hand = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_slots_get_a_second_chance_and_pinned_ones_none() {
        // (referenced, pinned)
        let mut slots = [(true, false), (false, true), (false, false), (true, false)];
        let mut clock = Clock::new();
        fn bit(s: &mut (bool, bool)) -> Option<&mut bool> {
            if s.1 {
                None
            } else {
                Some(&mut s.0)
            }
        }
        assert_eq!(clock.next_victim(&mut slots, bit), Some(2));
        assert!(!slots[0].0, "passed over: bit cleared");
        // Slot 3 loses its bit, slot 0 is taken on the second round.
        assert_eq!(clock.next_victim(&mut slots, bit), Some(0));
        assert_eq!(clock.next_victim(&mut slots, bit), Some(2));
        let mut pinned = [(false, true), (true, true)];
        assert_eq!(clock.next_victim(&mut pinned, bit), None);
        assert_eq!(clock.next_victim(&mut [] as &mut [(bool, bool)], bit), None);
    }
}
