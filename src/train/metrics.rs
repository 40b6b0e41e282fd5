//! Clustering quality in the embedding space: silhouette, Davies–Bouldin and WCSS (inertia),
//! with scikit-learn's definitions. The pairwise work runs as tensor code in row blocks.

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::tensor::{download, row_sq_norms, sq_distances, upload_vec};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterMetrics {
    pub silhouette: f64,
    pub davies_bouldin: f64,
    pub wcss: f64,
    pub rows: usize,
    /// Rows the silhouette was computed on (all, or a seeded sample of big data).
    pub silhouette_rows: usize,
}

fn one_hot(labels: &[u32], k: usize, device: &Device) -> Tensor<2> {
    let mut data = vec![0f32; labels.len() * k];
    for (i, &l) in labels.iter().enumerate() {
        data[i * k + l as usize] = 1.0;
    }
    upload_vec(data, labels.len(), k, device)
}

/// Mean silhouette coefficient of `x` [n, d] (rows `points`, row-major) under `labels`.
pub fn silhouette(points: &[f32], dims: usize, labels: &[u32], k: usize, device: &Device) -> f64 {
    let n = labels.len();
    let x = upload_vec(points.to_vec(), n, dims, device);
    let x_sq = row_sq_norms(&x);
    let onehot = one_hot(labels, k, device);
    let mut counts = vec![0usize; k];
    for &l in labels {
        counts[l as usize] += 1;
    }
    const BLOCK: usize = 2048;
    let mut total = 0.0f64;
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let block = x.clone().narrow(0, start, len);
        let block_sq = x_sq.clone().narrow(0, start, len);
        let dist = sq_distances(&block, &block_sq, &x).sqrt(); // [len, n]
        let per_cluster = download(dist.matmul(onehot.clone())); // [len, k] sums of distances
        for i in 0..len {
            let own = labels[start + i] as usize;
            if counts[own] <= 1 {
                continue; // scikit-learn: a singleton's silhouette is 0
            }
            let row = &per_cluster[i * k..(i + 1) * k];
            let a = row[own] as f64 / (counts[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own && counts[c] > 0)
                .map(|c| row[c] as f64 / counts[c] as f64)
                .fold(f64::INFINITY, f64::min);
            if b.is_finite() {
                let m = a.max(b);
                total += if m > 0.0 { (b - a) / m } else { 0.0 };
            }
        }
    }
    total / n as f64
}

/// Davies–Bouldin index of `x` under `labels` with the given centres (k x dims, row-major).
pub fn davies_bouldin(
    points: &[f32],
    dims: usize,
    labels: &[u32],
    centres: &[f32],
    k: usize,
    device: &Device,
) -> f64 {
    let n = labels.len();
    let x = upload_vec(points.to_vec(), n, dims, device);
    let c = upload_vec(centres.to_vec(), k, dims, device);
    let onehot = one_hot(labels, k, device);
    let dist = sq_distances(&x, &row_sq_norms(&x), &c).sqrt(); // [n, k]
    let own = (dist * onehot.clone()).sum_dim(1); // [n, 1] distance to own centre
    let spread_sum = download(onehot.clone().transpose().matmul(own)); // [k, 1]
    let counts = download(onehot.sum_dim(0));
    let spread: Vec<f64> = (0..k)
        .map(|i| {
            if counts[i] > 0.0 {
                spread_sum[i] as f64 / counts[i] as f64
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
    device: &Device,
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
        silhouette: silhouette(&sil_points, dims, &sil_labels, k, device),
        davies_bouldin: davies_bouldin(points, dims, labels, centres, k, device),
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
        let device = Device::flex();
        let points = [0., 0., 0., 1., 1., 0., 5., 5., 5., 6., 6., 5., 9., 0.];
        let labels = [0, 0, 0, 1, 1, 1, 2];
        let centres = [1. / 3., 1. / 3., 16. / 3., 16. / 3., 9., 0.];
        let s = silhouette(&points, 2, &labels, 3, &device);
        let db = davies_bouldin(&points, 2, &labels, &centres, 3, &device);
        assert!((s - 0.7124387250580051).abs() < 1e-5, "silhouette {s}");
        assert!(
            (db - 0.15701145925595564).abs() < 1e-5,
            "davies-bouldin {db}"
        );
    }
}
