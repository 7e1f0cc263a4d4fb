//! Randomized election timeouts from a seeded RNG (Raft §5.2).

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
}
