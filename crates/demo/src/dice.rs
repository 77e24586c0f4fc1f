//! Random choices over ChaCha8. Ranges and picks are computed here from `next_u64` rather than
//! with `rand`'s distributions: ChaCha8's stream is fixed by its spec, whereas a sampling
//! algorithm may change between releases, and same seed must mean byte-identical output.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::ids::hash128;

pub(crate) struct Dice(ChaCha8Rng);

impl Dice {
    /// A stream per (seed, label): each patient draws from its own stream, so patient `i` does
    /// not change when the generator is asked for more or fewer patients.
    pub(crate) fn new(seed: u64, label: &str) -> Self {
        let h = hash128(&[&seed.to_le_bytes(), label.as_bytes()]);
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&h.to_le_bytes());
        key[16..].copy_from_slice(&hash128(&[&h.to_le_bytes()]).to_le_bytes());
        Dice(ChaCha8Rng::from_seed(key))
    }

    /// Uniform in `0..n` (0 when `n` is 0), by rejection so there is no modulo bias.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.0.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = hi.abs_diff(lo).saturating_add(1);
        lo.saturating_add_unsigned(self.below(span))
    }

    pub(crate) fn count(&mut self, lo: usize, hi: usize) -> usize {
        usize::try_from(self.range(lo as i64, hi as i64)).unwrap_or(lo)
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        &items[i.min(items.len().saturating_sub(1))]
    }

    /// `k` distinct indexes of `0..n`, in ascending order.
    pub(crate) fn distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut pool: Vec<usize> = (0..n).collect();
        let k = k.min(n);
        for i in 0..k {
            let j = i + usize::try_from(self.below((n - i) as u64)).unwrap_or(0);
            pool.swap(i, j);
        }
        let mut chosen = pool[..k].to_vec();
        chosen.sort_unstable();
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_label_same_stream() {
        let a: Vec<u64> = (0..10)
            .map({
                let mut d = Dice::new(7, "p");
                move |_| d.below(1000)
            })
            .collect();
        let b: Vec<u64> = (0..10)
            .map({
                let mut d = Dice::new(7, "p");
                move |_| d.below(1000)
            })
            .collect();
        assert_eq!(a, b);
        let mut other = Dice::new(7, "q");
        assert_ne!(a, (0..10).map(|_| other.below(1000)).collect::<Vec<_>>());
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut d = Dice::new(1, "r");
        for _ in 0..10_000 {
            let x = d.range(-3, 5);
            assert!((-3..=5).contains(&x));
        }
        assert_eq!(d.range(4, 4), 4);
        assert_eq!(d.below(0), 0);
        let picks = d.distinct(10, 4);
        assert_eq!(picks.len(), 4);
        assert!(picks.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(d.distinct(3, 9).len(), 3);
    }
}
