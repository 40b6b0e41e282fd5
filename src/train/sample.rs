//! A seeded uniform sample of a stream of rows: the rows whose keys are the smallest, where a
//! row's key is a hash of the seed and its row number (a bottom-k sample). The keys depend on
//! nothing but the seed and the row numbers, so the same seed and rows give the same sample
//! whatever the batches the rows came in and whatever the number of threads; each set of k
//! rows is equally likely to be the one kept.

use crate::matrix::Matrix;

/// Mixes the seed apart from the other seeded draws (split, KMeans, boosting).
const SAMPLE_SEED_SALT: u64 = 0x5a4d_504c_455f_726f;

/// SplitMix64's finaliser: a bijection of u64 whose outputs pass as independent uniforms.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Keeps the `k` rows of smallest key among those offered, with their feature values.
#[derive(Debug)]
pub struct BottomK {
    k: usize,
    dims: usize,
    seed: u64,
    /// (key, row) of the candidates; `values` holds their features in the same order.
    keys: Vec<(u64, u32)>,
    values: Vec<f32>,
    /// Once `k` rows are kept, a row whose key is not below this can never be in the sample.
    bound: Option<(u64, u32)>,
    offered: u64,
}

impl BottomK {
    pub fn new(k: usize, dims: usize, seed: u64) -> Self {
        Self {
            k,
            dims,
            seed: mix(seed ^ SAMPLE_SEED_SALT),
            keys: Vec::new(),
            values: Vec::new(),
            bound: None,
            offered: 0,
        }
    }

    fn key(&self, row: u32) -> (u64, u32) {
        (mix(self.seed ^ mix(u64::from(row))), row)
    }

    /// Offers rows `rows[i]` (row numbers in the whole source) with features `x.row(i)`.
    pub fn offer(&mut self, rows: &[u32], x: &Matrix) {
        debug_assert_eq!(rows.len(), x.rows());
        for (i, &row) in rows.iter().enumerate() {
            self.offered += 1;
            let key = self.key(row);
            if self.bound.is_some_and(|b| key >= b) {
                continue;
            }
            self.keys.push(key);
            self.values.extend_from_slice(x.row(i));
            // Memory stays within twice the sample: trimmed back to k when it doubles.
            if self.keys.len() >= 2 * self.k.max(1) {
                self.trim();
            }
        }
    }

    /// Keeps only the k smallest keys (and their values).
    fn trim(&mut self) {
        if self.keys.len() <= self.k {
            return;
        }
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.select_nth_unstable_by_key(self.k - 1, |&i| self.keys[i]);
        order.truncate(self.k);
        order.sort_unstable();
        let mut keys = Vec::with_capacity(2 * self.k);
        let mut values = Vec::with_capacity(2 * self.k * self.dims);
        for &i in &order {
            keys.push(self.keys[i]);
            values.extend_from_slice(&self.values[i * self.dims..(i + 1) * self.dims]);
        }
        self.bound = keys.iter().max().copied();
        self.keys = keys;
        self.values = values;
    }

    /// Rows offered so far.
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// The sample in row order: its row numbers and features. All the rows offered when
    /// there were at most k.
    pub fn finish(mut self) -> (Vec<u32>, Matrix) {
        self.trim();
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.sort_unstable_by_key(|&i| self.keys[i].1);
        let rows = order.iter().map(|&i| self.keys[i].1).collect();
        let mut values = Vec::with_capacity(order.len() * self.dims);
        for &i in &order {
            values.extend_from_slice(&self.values[i * self.dims..(i + 1) * self.dims]);
        }
        (rows, Matrix::new(order.len(), self.dims, values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_of(n: u32) -> (Vec<u32>, Matrix) {
        let rows: Vec<u32> = (0..n).collect();
        let values = rows.iter().flat_map(|&r| [r as f32, -(r as f32)]).collect();
        (rows, Matrix::new(n as usize, 2, values))
    }

    fn sample(n: u32, k: usize, seed: u64, batch: usize) -> (Vec<u32>, Matrix) {
        let (rows, x) = rows_of(n);
        let mut s = BottomK::new(k, 2, seed);
        for (start, chunk) in (0..rows.len())
            .step_by(batch)
            .map(|s| (s, &rows[s..(s + batch).min(rows.len())]))
        {
            let idx: Vec<usize> = (start..start + chunk.len()).collect();
            s.offer(chunk, &x.gather_rows(&idx));
        }
        s.finish()
    }

    #[test]
    fn the_sample_has_k_distinct_rows_in_order_with_their_own_features() {
        let (rows, x) = sample(50_000, 1_000, 7, 4_096);
        assert_eq!(rows.len(), 1_000);
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        for (i, &r) in rows.iter().enumerate() {
            assert_eq!(x.row(i), &[r as f32, -(r as f32)]);
        }
    }

    #[test]
    fn at_most_k_rows_are_all_kept_in_order() {
        let (rows, x) = sample(700, 1_000, 7, 64);
        assert_eq!(rows, (0..700).collect::<Vec<u32>>());
        assert_eq!(x.rows(), 700);
    }

    #[test]
    fn the_sample_depends_on_the_seed_not_on_the_batches() {
        let a = sample(30_000, 2_000, 11, 30_000);
        for batch in [1, 97, 2_048] {
            assert_eq!(sample(30_000, 2_000, 11, batch).0, a.0, "batch {batch}");
        }
        assert_ne!(sample(30_000, 2_000, 12, 97).0, a.0);
    }

    #[test]
    fn every_position_is_equally_likely_to_be_sampled() {
        // 200,000 rows in 50 blocks of positions; 20 seeds of 5,000 rows: 100,000 draws,
        // 2,000 expected per block. Chi-square with 49 degrees of freedom: its 99.9th
        // percentile is 85.4, so a uniform sampler fails this one time in a thousand.
        let (n, k, blocks) = (200_000u32, 5_000usize, 50usize);
        let mut counts = vec![0f64; blocks];
        for seed in 0..20 {
            for r in sample(n, k, seed, 65_536).0 {
                counts[r as usize * blocks / n as usize] += 1.0;
            }
        }
        let expected = counts.iter().sum::<f64>() / blocks as f64;
        let chi2: f64 = counts
            .iter()
            .map(|c| (c - expected) * (c - expected) / expected)
            .sum();
        assert!(
            chi2 < 85.4,
            "chi-square {chi2:.1} over {blocks} blocks: {counts:?}"
        );
    }
}
