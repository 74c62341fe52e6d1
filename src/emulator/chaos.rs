//! The seeded draws behind [`Chaos`] and the order of `$batch` answers:
//! SplitMix64, written out here so that a seed gives the same faults and
//! the same orders on every platform and with every dependency version
//! (general-purpose RNG crates do not promise that).

use super::options::{Chaos, DEFAULT_CHAOS_STATUSES};

#[derive(Clone, Debug)]
pub struct ChaosRng {
    state: u64,
}

impl ChaosRng {
    pub fn new(seed: u64) -> Self {
        ChaosRng { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A permutation of `0..n` (Fisher-Yates): the order a `$batch` answer
    /// lists its items in. Draws `n - 1` numbers, so the sequence of orders
    /// depends only on the seed and the batch sizes.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let bound = u64::try_from(i + 1).unwrap_or(u64::MAX);
            let j = usize::try_from(self.next_u64() % bound).unwrap_or(i);
            order.swap(i, j);
        }
        order
    }

    /// One request's draw: the status to fail it with, if any. Every draw
    /// consumes the same amount of the sequence, faulted or not, so the Nth
    /// request's fate depends only on the seed and N.
    pub fn draw(&mut self, chaos: &Chaos) -> Option<u16> {
        let roll = self.next_u64();
        let pick = self.next_u64();
        // 53 random bits as a fraction in [0, 1), then as a percentage.
        let percentile = (roll >> 11) as f64 / (1_u64 << 53) as f64 * 100.0;
        let hit = percentile < chaos.percent;
        if !hit {
            return None;
        }
        let statuses: &[u16] = if chaos.statuses.is_empty() {
            &DEFAULT_CHAOS_STATUSES
        } else {
            &chaos.statuses
        };
        let len = u64::try_from(statuses.len()).ok()?;
        let index = usize::try_from(pick % len).ok()?;
        statuses.get(index).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 1234567 from the reference implementation.
        let mut rng = ChaosRng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn permutations_are_permutations_and_follow_the_seed() {
        let mut one = ChaosRng::new(5);
        let mut two = ChaosRng::new(5);
        for n in [0, 1, 2, 20] {
            let order = one.permutation(n);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            assert_eq!(order, two.permutation(n), "same seed, same order");
        }
        assert_ne!(
            ChaosRng::new(5).permutation(20),
            ChaosRng::new(6).permutation(20)
        );
    }

    #[test]
    fn percent_bounds_and_statuses() {
        let mut rng = ChaosRng::new(9);
        let never = Chaos::new(9, 0.0);
        let always = Chaos::new(9, 100.0).with_statuses([503]);
        let nan = Chaos::new(9, f64::NAN);
        for _ in 0..1000 {
            assert_eq!(rng.draw(&never), None);
            assert_eq!(rng.draw(&always), Some(503));
            assert_eq!(rng.draw(&nan), None);
        }
        let empty = Chaos::new(9, 100.0).with_statuses([]);
        let status = rng.draw(&empty).expect("faults");
        assert!(DEFAULT_CHAOS_STATUSES.contains(&status));
    }
}
