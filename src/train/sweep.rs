//! Choosing k (`segmentation.k: auto`): KMeans for every k of `segmentation.k_range` on one
//! seeded sample of the embedding, each scored by silhouette, Davies–Bouldin and WCSS, and
//! [`K_RULE`] picks one. The final fit with the chosen k runs on all training rows.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::kmeans::{self, KMeansParams};
use super::metrics;
use crate::error::{Error, Result};

/// Silhouette differences smaller than this are not a reason to take more segments: across
/// seeds of a 4,000-row sample the silhouette of one k moves by about 0.005.
pub const SILHOUETTE_SLACK: f64 = 0.02;

/// The rule, stated in the manifest.
pub const K_RULE: &str = "the smallest k whose silhouette on the sweep sample is within 0.02 of \
     the highest: silhouette is scale-free and comparable across k (WCSS always falls as k grows, \
     and Davies–Bouldin is reported beside it), and of two near-equal partitions the one with \
     fewer segments is the easier one to act on";

/// One k of the sweep, scored on the sweep sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KScore {
    pub k: usize,
    pub silhouette: f64,
    pub davies_bouldin: f64,
    pub wcss: f64,
}

/// What the sweep found.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub scores: Vec<KScore>,
    /// Rows of the seeded sample the sweep ran on.
    pub rows: usize,
    pub chosen: usize,
    /// Wall-clock seconds (set by the caller that timed it; 0 otherwise).
    pub seconds: f64,
}

/// The k [`K_RULE`] picks from `scores` (in ascending k).
pub fn choose(scores: &[KScore]) -> usize {
    let best = scores
        .iter()
        .map(|s| s.silhouette)
        .fold(f64::NEG_INFINITY, f64::max);
    scores
        .iter()
        .find(|s| s.silhouette >= best - SILHOUETTE_SLACK)
        .map(|s| s.k)
        .expect("a sweep scores at least one k")
}

/// Fits and scores every k in `range` (inclusive) on a seeded sample of at most `sample_rows`
/// of `points` (row-major, `dims` columns); `template` gives the restarts, iterations,
/// tolerance and seed. `on_k(k)` is called before each fit.
pub fn sweep(
    points: &[f32],
    dims: usize,
    range: [usize; 2],
    template: &KMeansParams,
    sample_rows: usize,
    mut on_k: impl FnMut(usize) -> Result<()>,
) -> Result<Sweep> {
    let n = points.len() / dims.max(1);
    let rows = n.min(sample_rows);
    let picked: Vec<f32> = if rows < n {
        let mut rng = ChaCha8Rng::seed_from_u64(template.seed ^ 0x05ee_b00c);
        let mut idx = sample(&mut rng, n, rows).into_vec();
        idx.sort_unstable();
        idx.iter()
            .flat_map(|&i| points[i * dims..(i + 1) * dims].iter().copied())
            .collect()
    } else {
        points.to_vec()
    };
    let high = range[1].min(rows.saturating_sub(1));
    if high < range[0] {
        return Err(Error::Training(format!(
            "choosing k in {}..={} needs more than {} rows, got {rows}",
            range[0], range[1], range[1]
        )));
    }
    let mut scores = Vec::with_capacity(high + 1 - range[0]);
    for k in range[0]..=high {
        on_k(k)?;
        let params = KMeansParams { k, ..*template };
        let (model, a) = kmeans::fit_points(&picked, dims, &params, |_| Ok(()))?;
        scores.push(KScore {
            k,
            silhouette: metrics::silhouette(&picked, dims, &a.labels, k),
            davies_bouldin: metrics::davies_bouldin(&picked, dims, &a.labels, &model.centres, k),
            wcss: a.sq_dist.iter().map(|&d| f64::from(d)).sum(),
        });
    }
    Ok(Sweep {
        chosen: choose(&scores),
        scores,
        rows,
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::kmeans::tests::blobs;

    fn params() -> KMeansParams {
        KMeansParams {
            k: 0,
            n_init: 3,
            max_iter: 100,
            tolerance: 1e-4,
            seed: 7,
        }
    }

    #[test]
    fn auto_recovers_k_on_well_separated_blobs() {
        // Centres on a circle of radius 12, spread 1: well separated for every k here.
        for true_k in 2..=6 {
            let centres: Vec<[f32; 2]> = (0..true_k)
                .map(|i| {
                    let a = i as f32 * std::f32::consts::TAU / true_k as f32;
                    [12.0 * a.cos(), 12.0 * a.sin()]
                })
                .collect();
            let points = blobs(&centres, 150, 1.0, true_k as u64);
            let s = sweep(&points, 2, [2, 8], &params(), 10_000, |_| Ok(())).unwrap();
            assert_eq!(s.chosen, true_k, "{:?}", s.scores);
            assert_eq!(s.scores.len(), 7);
            assert!(s.scores.windows(2).all(|w| w[1].wcss <= w[0].wcss * 1.001));
        }
    }

    #[test]
    fn the_sweep_samples_big_data_and_is_reproducible() {
        let points = blobs(&[[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]], 2_000, 1.0, 3);
        let a = sweep(&points, 2, [2, 4], &params(), 1_000, |_| Ok(())).unwrap();
        let b = sweep(&points, 2, [2, 4], &params(), 1_000, |_| Ok(())).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.rows, a.chosen), (1_000, 3));
    }

    #[test]
    fn the_rule_prefers_fewer_segments_within_the_slack() {
        let score = |k, silhouette| KScore {
            k,
            silhouette,
            davies_bouldin: 0.5,
            wcss: 1.0,
        };
        assert_eq!(choose(&[score(2, 0.50), score(3, 0.51), score(4, 0.40)]), 2);
        assert_eq!(choose(&[score(2, 0.40), score(3, 0.51), score(4, 0.50)]), 3);
    }
}
