//! Clustering quality in the embedding space: silhouette, Davies–Bouldin and WCSS (inertia),
//! with scikit-learn's definitions, in plain Rust on the rayon threads: the embedding has two
//! dimensions, so the work is memory-light and the host beats any device round trip.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterMetrics {
    pub silhouette: f64,
    pub davies_bouldin: f64,
    pub wcss: f64,
    pub rows: usize,
    /// Rows the silhouette was computed on (all, or a seeded sample of big data).
    pub silhouette_rows: usize,
}

/// Rows per silhouette task, and points per inner block: a block's distances are summed in
/// f32 (vectorised), blocks into f64.
const SIL_ROWS: usize = 256;
const SIL_BLOCK: usize = 256;

/// Mean silhouette coefficient of `x` [n, d] (rows `points`, row-major) under `labels`.
/// O(n²) distances in plain Rust on the rayon threads: each cluster's points are stored a
/// coordinate at a time, so the distance loop runs over contiguous arrays and vectorises.
pub fn silhouette(points: &[f32], dims: usize, labels: &[u32], k: usize) -> f64 {
    let n = labels.len();
    let mut counts = vec![0usize; k];
    for &l in labels {
        counts[l as usize] += 1;
    }
    // coords[c][d] = the d-th coordinate of every point of cluster c.
    let mut coords: Vec<Vec<Vec<f32>>> = counts
        .iter()
        .map(|&m| (0..dims).map(|_| Vec::with_capacity(m)).collect())
        .collect();
    for (p, &l) in points.chunks_exact(dims).zip(labels) {
        for (d, &v) in p.iter().enumerate() {
            coords[l as usize][d].push(v);
        }
    }
    let per_chunk: Vec<f64> = (0..n.div_ceil(SIL_ROWS))
        .into_par_iter()
        .map(|chunk| {
            let mut total = 0.0f64;
            let mut sums = vec![0f64; k];
            let mut dist = [0f32; SIL_BLOCK];
            for i in chunk * SIL_ROWS..((chunk + 1) * SIL_ROWS).min(n) {
                let p = &points[i * dims..(i + 1) * dims];
                for (c, cluster) in coords.iter().enumerate() {
                    let m = counts[c];
                    let mut sum = 0f64;
                    for at in (0..m).step_by(SIL_BLOCK) {
                        let len = SIL_BLOCK.min(m - at);
                        let dist = &mut dist[..len];
                        dist.fill(0.0);
                        for (d, coord) in cluster.iter().enumerate() {
                            for (acc, &v) in dist.iter_mut().zip(&coord[at..at + len]) {
                                let delta = v - p[d];
                                *acc += delta * delta;
                            }
                        }
                        sum += f64::from(dist.iter().map(|v| v.sqrt()).sum::<f32>());
                    }
                    sums[c] = sum;
                }
                let own = labels[i] as usize;
                if counts[own] <= 1 {
                    continue; // scikit-learn: a singleton's silhouette is 0
                }
                let a = sums[own] / (counts[own] - 1) as f64;
                let b = (0..k)
                    .filter(|&c| c != own && counts[c] > 0)
                    .map(|c| sums[c] / counts[c] as f64)
                    .fold(f64::INFINITY, f64::min);
                if b.is_finite() {
                    let m = a.max(b);
                    total += if m > 0.0 { (b - a) / m } else { 0.0 };
                }
            }
            total
        })
        .collect();
    per_chunk.iter().sum::<f64>() / n.max(1) as f64
}

/// Davies–Bouldin index of `x` under `labels` with the given centres (k x dims, row-major).
pub fn davies_bouldin(
    points: &[f32],
    dims: usize,
    labels: &[u32],
    centres: &[f32],
    k: usize,
) -> f64 {
    // Each cluster's summed distance to its centre and its size, per chunk, added in order.
    let parts: Vec<(Vec<f64>, Vec<usize>)> = points
        .par_chunks(dims * 65_536)
        .zip(labels.par_chunks(65_536))
        .map(|(points, labels)| {
            let (mut spread, mut counts) = (vec![0f64; k], vec![0usize; k]);
            for (p, &l) in points.chunks_exact(dims).zip(labels) {
                let c = &centres[l as usize * dims..(l as usize + 1) * dims];
                let d2: f64 = p
                    .iter()
                    .zip(c)
                    .map(|(&a, &b)| f64::from(a - b).powi(2))
                    .sum();
                spread[l as usize] += d2.sqrt();
                counts[l as usize] += 1;
            }
            (spread, counts)
        })
        .collect();
    let (mut spread, mut counts) = (vec![0f64; k], vec![0usize; k]);
    for (s, c) in parts {
        spread.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
        counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
    }
    let spread: Vec<f64> = (0..k)
        .map(|i| {
            if counts[i] > 0 {
                spread[i] / counts[i] as f64
            } else {
                0.0
            }
        })
        .collect();
    let centre_dist = |i: usize, j: usize| {
        (0..dims)
            .map(|t| ((centres[i * dims + t] - centres[j * dims + t]) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut total = 0.0;
    for i in 0..k {
        let worst = (0..k)
            .filter(|&j| j != i)
            .map(|j| {
                let d = centre_dist(i, j);
                if d > 0.0 {
                    (spread[i] + spread[j]) / d
                } else {
                    0.0
                }
            })
            .fold(0.0f64, f64::max);
        total += worst;
    }
    total / k as f64
}

/// All three metrics. Silhouette is O(n^2): above `silhouette_sample` rows it uses a seeded sample.
pub fn evaluate(
    points: &[f32],
    dims: usize,
    labels: &[u32],
    sq_dist: &[f32],
    centres: &[f32],
    k: usize,
    silhouette_sample: usize,
    seed: u64,
) -> ClusterMetrics {
    let n = labels.len();
    let (sil_points, sil_labels) = if n > silhouette_sample {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5111_0e77e);
        let mut idx = sample(&mut rng, n, silhouette_sample).into_vec();
        idx.sort_unstable();
        let p: Vec<f32> = idx
            .iter()
            .flat_map(|&i| points[i * dims..(i + 1) * dims].iter().copied())
            .collect();
        let l: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();
        (p, l)
    } else {
        (points.to_vec(), labels.to_vec())
    };
    ClusterMetrics {
        silhouette: silhouette(&sil_points, dims, &sil_labels, k),
        davies_bouldin: davies_bouldin(points, dims, labels, centres, k),
        wcss: sq_dist.iter().map(|&d| d as f64).sum(),
        rows: n,
        silhouette_rows: sil_labels.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // scikit-learn 1.9.1: silhouette_score(X, labels) and davies_bouldin_score(X, labels) for
    //   X = [[0,0],[0,1],[1,0],[5,5],[5,6],[6,5],[9,0]], labels = [0,0,0,1,1,1,2]
    // give 0.7124387250580051 and 0.15701145925595564 (centres are the cluster means).
    #[test]
    fn metrics_match_scikit_learn() {
        let points = [0., 0., 0., 1., 1., 0., 5., 5., 5., 6., 6., 5., 9., 0.];
        let labels = [0, 0, 0, 1, 1, 1, 2];
        let centres = [1. / 3., 1. / 3., 16. / 3., 16. / 3., 9., 0.];
        let s = silhouette(&points, 2, &labels, 3);
        let db = davies_bouldin(&points, 2, &labels, &centres, 3);
        assert!((s - 0.7124387250580051).abs() < 1e-5, "silhouette {s}");
        assert!(
            (db - 0.15701145925595564).abs() < 1e-5,
            "davies-bouldin {db}"
        );
    }
}
