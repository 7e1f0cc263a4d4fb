//! Seeds and random draws. Every random choice of a run descends from one master seed; each
//! component gets its own sub-seed, so drawing more numbers in one component (say, a new
//! network feature) never reshuffles the choices of another (the disk, the workload, a node).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The seed of component `label` number `index`, derived from `master` with SplitMix64.
#[must_use]
pub fn sub_seed(master: u64, label: &str, index: u64) -> u64 {
    let mut state = splitmix64(master ^ 0x9E37_79B9_7F4A_7C15);
    for byte in label.bytes() {
        state = splitmix64(state ^ u64::from(byte));
    }
    splitmix64(state ^ index)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded generator with the few draws the simulator needs.
#[derive(Clone, Debug)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    #[must_use]
    pub fn new(seed: u64) -> SimRng {
        SimRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in `0..n`; 0 when `n` is 0. The modulo bias is negligible for the small ranges
    /// used here and, unlike rejection sampling, costs one draw, which keeps traces short.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.0.next_u64() % n
        }
    }

    /// Uniform in `min..=max` (`min` when the range is empty).
    pub fn between(&mut self, min: u64, max: u64) -> u64 {
        if max <= min {
            min
        } else {
            min + self.below(max - min + 1)
        }
    }

    /// True with probability `p`; never draws when `p <= 0`, so a fault that is switched off
    /// does not consume randomness.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits give a uniform float in [0, 1).
        let unit = (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    /// One element of `items`, or `None` when it is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let index = usize::try_from(self.below(items.len() as u64)).ok()?;
        items.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_seeds_differ_by_label_and_index() {
        let a = sub_seed(7, "network", 0);
        assert_ne!(a, sub_seed(7, "disk", 0));
        assert_ne!(a, sub_seed(7, "network", 1));
        assert_ne!(a, sub_seed(8, "network", 0));
        assert_eq!(a, sub_seed(7, "network", 0));
    }

    #[test]
    fn draws_stay_in_range() {
        let mut rng = SimRng::new(1);
        for _ in 0..1000 {
            let x = rng.between(3, 5);
            assert!((3..=5).contains(&x));
        }
        assert!(!rng.chance(0.0));
        assert!(rng.chance(1.0));
        assert_eq!(rng.between(4, 2), 4);
    }
}
