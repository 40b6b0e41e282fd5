//! The seeded 80/20 split, drawn exactly as scikit-learn's
//! `train_test_split(test_size=f, random_state=seed)` draws it: numpy's legacy
//! `RandomState(seed).permutation(n)` (MT19937 + Fisher-Yates with rejection-sampled
//! intervals), the first ceil(f * n) rows to test. Same seed, same rows as the Python original,
//! so quality figures compare like for like.

/// MT19937, as numpy's legacy `RandomState` seeds it from an integer.
struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.state[i] = v;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn next_u64(&mut self) -> u64 {
        (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())
    }

    /// A uniform integer in [0, max], numpy's legacy `random_interval`.
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        loop {
            let v = if max <= 0xffff_ffff {
                u64::from(self.next_u32()) & mask
            } else {
                self.next_u64() & mask
            };
            if v <= max {
                return v;
            }
        }
    }
}

/// numpy's `RandomState(seed).permutation(n)`.
pub fn numpy_permutation(n: usize, seed: u32) -> Vec<usize> {
    let mut rng = Mt19937::new(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.interval(i as u64) as usize;
        idx.swap(i, j);
    }
    idx
}

/// Seeded split of `n` rows: (train indices, test indices), each in permutation order as
/// scikit-learn returns them. Seeds above 2^32 - 1 are folded (numpy accepts only 32 bits).
pub fn split_indices(n: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let perm = numpy_permutation(n, (seed ^ (seed >> 32)) as u32);
    let n_test = (((n as f64) * test_fraction).ceil() as usize).min(n.saturating_sub(1));
    (perm[n_test..].to_vec(), perm[..n_test].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    // numpy 2.x: list(np.random.RandomState(42).permutation(10)) and (7).permutation(20);
    // RandomState(42).permutation(2240)[:5] and [-3:].
    #[test]
    fn permutations_match_numpy() {
        assert_eq!(numpy_permutation(10, 42), [8, 1, 5, 0, 7, 2, 9, 4, 3, 6]);
        assert_eq!(
            numpy_permutation(20, 7),
            [
                1, 17, 2, 5, 11, 0, 18, 6, 13, 19, 10, 14, 8, 16, 9, 12, 7, 3, 4, 15
            ]
        );
        let p = numpy_permutation(2240, 42);
        assert_eq!(&p[..5], &[324, 96, 2104, 1259, 1061]);
        assert_eq!(&p[2237..], &[1130, 1294, 860]);
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let (train, test) = split_indices(100, 0.2, 42);
        assert_eq!((train.clone(), test.clone()), split_indices(100, 0.2, 42));
        assert_eq!(test.len(), 20);
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_ne!(split_indices(100, 0.2, 43).1, test);
    }
}
