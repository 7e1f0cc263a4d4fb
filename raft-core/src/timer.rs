//! Randomized election timeouts from a seeded RNG (Raft §5.2).

use core::hash::{Hash, Hasher};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

#[derive(Clone, Debug)]
pub(crate) struct ElectionTimer {
    rng: ChaCha8Rng,
    min_ticks: u32,
    max_ticks: u32,
    pub(crate) elapsed_ticks: u32,
    pub(crate) timeout_ticks: u32,
}

impl ElectionTimer {
    pub(crate) fn new(rng_seed: u64, min_ticks: u32, max_ticks: u32) -> ElectionTimer {
        let mut timer = ElectionTimer {
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            min_ticks,
            max_ticks,
            elapsed_ticks: 0,
            timeout_ticks: min_ticks,
        };
        timer.reset();
        timer
    }

    /// Starts a new timeout drawn uniformly from `min..=max`.
    pub(crate) fn reset(&mut self) {
        let span = u64::from(self.max_ticks - self.min_ticks) + 1;
        let offset = self.rng.next_u64() % span;
        // `offset < span <= u32::MAX + 1`, and `min + offset <= max`, so this cannot overflow.
        self.timeout_ticks = self.min_ticks + u32::try_from(offset).unwrap_or(0);
        self.elapsed_ticks = 0;
    }

    /// Counts one tick; true once the timeout has elapsed.
    pub(crate) fn tick(&mut self) -> bool {
        self.elapsed_ticks = self.elapsed_ticks.saturating_add(1);
        self.elapsed_ticks >= self.timeout_ticks
    }

    /// Whether the RNG can change what this timer does: with `min == max` every draw gives
    /// `min`, so how far the RNG has run never shows.
    fn draws_matter(&self) -> bool {
        self.min_ticks < self.max_ticks
    }
}

/// Timers are equal when they behave the same from now on: same range, same progress, and the
/// same future draws (the RNG's seed, stream and position), the latter only when the range
/// lets draws differ.
impl PartialEq for ElectionTimer {
    fn eq(&self, other: &ElectionTimer) -> bool {
        (
            self.min_ticks,
            self.max_ticks,
            self.elapsed_ticks,
            self.timeout_ticks,
        ) == (
            other.min_ticks,
            other.max_ticks,
            other.elapsed_ticks,
            other.timeout_ticks,
        ) && (!self.draws_matter() || self.rng == other.rng)
    }
}

impl Eq for ElectionTimer {}

impl Hash for ElectionTimer {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (
            self.min_ticks,
            self.max_ticks,
            self.elapsed_ticks,
            self.timeout_ticks,
        )
            .hash(state);
        if self.draws_matter() {
            self.rng.get_seed().hash(state);
            self.rng.get_stream().hash(state);
            self.rng.get_word_pos().hash(state);
        }
    }
}
