//! Replay protection for keyed peer datagrams: what a receiver remembers of each sender.
//!
//! Every keyed datagram carries its sender's epoch (a number that grows with every start of the
//! sender) and a counter that grows with every datagram the sender sends to this receiver. The
//! receiver keeps, per sender, the highest epoch seen and a window of the last
//! [`WINDOW_COUNTERS`] counters of that epoch (as IPsec and WireGuard do): a datagram of an older
//! epoch, older than the window, or already seen is a replay. A higher epoch is a restarted
//! sender and starts a fresh window, so a restart never locks the sender out. The window is
//! updated only for datagrams that passed every other check.

/// Counters remembered below the highest one seen. Reordering deeper than this drops the
/// older datagrams, which Raft retries like any loss.
pub const WINDOW_COUNTERS: u64 = 1024;
const WORDS: usize = (WINDOW_COUNTERS / 64) as usize;

/// One sender's epoch and seen counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    epoch: u64,
    highest: u64,
    /// Bit `c % WINDOW_COUNTERS` is set once counter `c` (within the window) was seen.
    seen: [u64; WORDS],
}

impl ReplayWindow {
    /// Whether (`epoch`, `counter`) is new; if so it is recorded, and the same pair is refused
    /// from then on.
    pub fn accept(&mut self, epoch: u64, counter: u64) -> bool {
        if epoch < self.epoch {
            return false;
        }
        if epoch > self.epoch {
            *self = ReplayWindow {
                epoch,
                highest: counter,
                seen: [0; WORDS],
            };
            self.set(counter);
            return true;
        }
        if counter > self.highest {
            // Forget the counters that fall out of the window; their bits are reused.
            let cleared = (counter - self.highest).min(WINDOW_COUNTERS);
            for older in counter - cleared + 1..=counter {
                self.clear(older);
            }
            self.highest = counter;
            self.set(counter);
            return true;
        }
        if self.highest - counter >= WINDOW_COUNTERS || self.is_set(counter) {
            return false;
        }
        self.set(counter);
        true
    }

    fn slot(counter: u64) -> (usize, u64) {
        let bit = counter % WINDOW_COUNTERS;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn set(&mut self, counter: u64) {
        let (word, mask) = Self::slot(counter);
        self.seen[word] |= mask;
    }

    fn clear(&mut self, counter: u64) {
        let (word, mask) = Self::slot(counter);
        self.seen[word] &= !mask;
    }

    fn is_set(&self, counter: u64) -> bool {
        let (word, mask) = Self::slot(counter);
        self.seen[word] & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_is_accepted_once() {
        let mut window = ReplayWindow::default();
        assert!(window.accept(5, 1));
        assert!(!window.accept(5, 1));
        assert!(window.accept(5, 2));
        for _ in 0..1000 {
            assert!(!window.accept(5, 2));
            assert!(!window.accept(5, 1));
        }
    }

    #[test]
    fn reordered_datagrams_within_the_window_are_accepted_once() {
        let mut window = ReplayWindow::default();
        assert!(window.accept(1, 100));
        assert!(window.accept(1, 98));
        assert!(window.accept(1, 99));
        assert!(!window.accept(1, 98));
        assert!(window.accept(1, 100 + WINDOW_COUNTERS - 1));
        // 100 is now the oldest counter the window still holds; 99 fell out of it.
        assert!(!window.accept(1, 100));
        assert!(!window.accept(1, 99));
        assert!(window.accept(1, 101));
        // A jump far ahead forgets everything before.
        assert!(window.accept(1, 10 * WINDOW_COUNTERS));
        assert!(!window.accept(1, 101 + WINDOW_COUNTERS));
        assert!(window.accept(1, 10 * WINDOW_COUNTERS - 1));
    }

    #[test]
    fn a_restarted_sender_is_not_locked_out_and_its_old_epoch_is() {
        let mut window = ReplayWindow::default();
        assert!(window.accept(10, 5_000));
        // Restarted: a higher epoch, counters from 1 again.
        assert!(window.accept(11, 1));
        assert!(window.accept(11, 2));
        // What the previous incarnation sent is refused from now on, counter or not.
        assert!(!window.accept(10, 5_001));
        assert!(!window.accept(10, 1));
    }

    /// Every counter of a long run in shuffled order within the window: each accepted exactly
    /// once, as a set of seen counters would.
    #[test]
    fn matches_a_set_of_seen_counters() {
        let mut window = ReplayWindow::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut highest = 0u64;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let counter = (highest + 8)
                .saturating_sub(state % (WINDOW_COUNTERS + 64))
                .max(1);
            let fresh = counter + WINDOW_COUNTERS > highest && !seen.contains(&counter);
            assert_eq!(window.accept(3, counter), fresh, "counter {counter}");
            if fresh {
                seen.insert(counter);
                highest = highest.max(counter);
            }
        }
    }
}
