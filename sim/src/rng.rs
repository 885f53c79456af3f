//! The harness's own deterministic random numbers, for drawing a scenario and its fault timings
//! from a seed.
//!
//! turmoil's RNG (seeded with the same seed) drives the simulated network; the harness must not
//! draw from it, or choosing a scenario would shift every latency the network draws. So the
//! harness uses SplitMix64 on separate *streams* of the seed: the scenario's parameters come from
//! one stream and the choice of scenario from another, so that `--scenario NAME` with a seed
//! gives the same parameters as the sweep that picked NAME for that seed.

use std::ops::RangeInclusive;
use std::time::Duration;

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and good enough to spread fault timings.
#[derive(Clone, Debug)]
pub struct SeedRng {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The stream a scenario's parameters are drawn from.
pub const STREAM_PARAMETERS: u64 = 1;
/// The stream the sweep picks a scenario for a seed from.
pub const STREAM_SCENARIO: u64 = 2;
/// The stream the slow checkpoint store draws each write's delay from.
pub const STREAM_STORE_DELAYS: u64 = 3;
/// The stream the TaskManagers' late acknowledgements draw their delays from.
pub const STREAM_ACK_DELAYS: u64 = 4;

impl SeedRng {
    /// The generator of `stream` for `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut mixer = SeedRng { state: seed };
        let start = mixer.next_u64() ^ stream.wrapping_mul(GOLDEN_GAMMA);
        SeedRng { state: start }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; the modulo bias (at most n / 2⁶⁴) does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value to return");
        self.next_u64() % n
    }

    /// A duration between the bounds, in whole milliseconds.
    pub fn millis(&mut self, range: RangeInclusive<u64>) -> Duration {
        let (low, high) = range.into_inner();
        assert!(low <= high, "an empty range {low}..={high} ms");
        Duration::from_millis(low + self.below(high - low + 1))
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        assert!(numerator <= denominator);
        self.below(denominator) < numerator
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_of_one_seed_differ_and_replay() {
        let draw = |seed, stream| {
            let mut rng = SeedRng::new(seed, stream);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, STREAM_PARAMETERS), draw(7, STREAM_PARAMETERS));
        assert_ne!(draw(7, STREAM_PARAMETERS), draw(7, STREAM_SCENARIO));
        assert_ne!(draw(7, STREAM_PARAMETERS), draw(8, STREAM_PARAMETERS));
    }

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut rng = SeedRng::new(1, STREAM_PARAMETERS);
        for _ in 0..1000 {
            let d = rng.millis(200..=300);
            assert!((200..=300).contains(&(d.as_millis() as u64)));
            assert!(rng.below(3) < 3);
        }
        assert!(!rng.chance(0, 5));
        assert!(rng.chance(5, 5));
    }
}
