//! KMeans as burn tensor code: greedy k-means++ seeding and Lloyd iterations to tolerance,
//! with all restarts run side by side. The `n_init` restarts share every pass over the data:
//! their `n_init * k` centres are one matrix, so one matmul gives every restart's distances,
//! and one more gives every restart's new centres. A restart that has converged leaves the
//! batch, so later passes cost only the restarts still moving.
//! The restart with the lowest inertia wins. Randomness comes only from a seeded ChaCha RNG
//! on the host, so a seed gives the same centres on every backend.

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::tensor::{download, download_int, row_sq_norms, sq_distances, upload_vec};
use crate::error::{Error, Result};

/// Validated KMeans parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KMeansParams {
    pub k: usize,
    pub n_init: usize,
    pub max_iter: usize,
    /// Relative tolerance: scaled by the mean per-column variance of the data (as scikit-learn).
    pub tolerance: f64,
    pub seed: u64,
}

/// A fitted KMeans model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansModel {
    /// k centres of `dims` coordinates, row-major.
    pub centres: Vec<f32>,
    pub k: usize,
    pub dims: usize,
    /// Sum of squared distances of the fitting rows to their centres.
    pub inertia: f64,
    /// Lloyd iterations the winning restart ran.
    pub n_iter: usize,
    /// Which restart won.
    pub best_restart: usize,
}

/// Labels and squared distances of rows to their nearest centre.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub labels: Vec<u32>,
    pub sq_dist: Vec<f32>,
}

impl Assignment {
    pub fn inertia(&self) -> f64 {
        self.sq_dist.iter().map(|&d| d as f64).sum()
    }
}

impl KMeansModel {
    pub fn centres_tensor(&self, device: &Device) -> Tensor<2> {
        upload_vec(self.centres.clone(), self.k, self.dims, device)
    }

    /// Assigns each row of `x` [n, dims] to its nearest centre.
    pub fn assign(&self, x: &Tensor<2>) -> Assignment {
        let c = self.centres_tensor(&x.device());
        let d2 = sq_distances(x, &row_sq_norms(x), &c);
        let (min, idx) = d2.min_dim_with_indices(1);
        Assignment {
            labels: download_int(idx).into_iter().map(|l| l as u32).collect(),
            sq_dist: download(min),
        }
    }

    /// Reorders the centres: new centre `i` is old centre `order[i]`.
    pub fn reorder(&mut self, order: &[usize]) {
        let mut centres = Vec::with_capacity(self.centres.len());
        for &o in order {
            centres.extend_from_slice(&self.centres[o * self.dims..(o + 1) * self.dims]);
        }
        self.centres = centres;
    }
}

/// Draws an index with probability proportional to `weights` (all zero: uniform).
fn sample_weighted(rng: &mut ChaCha8Rng, cumulative: &[f64]) -> usize {
    let total = *cumulative.last().unwrap_or(&0.0);
    if total <= 0.0 {
        return rng.random_range(0..cumulative.len());
    }
    let u = rng.random::<f64>() * total;
    cumulative
        .partition_point(|&c| c <= u)
        .min(cumulative.len() - 1)
}

/// Greedy k-means++ for `r` restarts at once: returns the chosen row indices, [r][k].
fn kmeans_plus_plus(
    x: &Tensor<2>,
    x_sq: &Tensor<2>,
    k: usize,
    r: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let [n, _] = x.dims();
    let device = x.device();
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut chosen: Vec<Vec<usize>> = (0..r).map(|_| vec![rng.random_range(0..n)]).collect();
    let first: Vec<i64> = chosen.iter().map(|c| c[0] as i64).collect();
    let first = x.clone().select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(first, [r]), &device),
    );
    let mut closest = sq_distances(x, x_sq, &first); // [n, r]
    for _ in 1..k {
        // Sample `trials` candidates per restart, proportional to the current squared distance.
        let weights = download(closest.clone());
        let mut candidates = Vec::with_capacity(r * trials);
        for (ri, _) in chosen.iter().enumerate() {
            let mut acc = 0.0f64;
            let cumulative: Vec<f64> = (0..n)
                .map(|i| {
                    acc += weights[i * r + ri] as f64;
                    acc
                })
                .collect();
            for _ in 0..trials {
                candidates.push(sample_weighted(rng, &cumulative) as i64);
            }
        }
        let cand_rows = x.clone().select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(candidates.clone(), [r * trials]), &device),
        );
        let d_cand = sq_distances(x, x_sq, &cand_rows).reshape([n, r, trials]);
        let merged = d_cand.min_pair(closest.clone().reshape([n, r, 1]).repeat_dim(2, trials)); // [n, r, t]
        let potential = download(merged.clone().sum_dim(0)); // [1, r, t]
        let mut pick = vec![0f32; r * trials];
        for ri in 0..r {
            let row = &potential[ri * trials..(ri + 1) * trials];
            let best = (0..trials)
                .min_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            pick[ri * trials + best] = 1.0;
            chosen[ri].push(candidates[ri * trials + best] as usize);
        }
        let pick = Tensor::<3>::from_data(TensorData::new(pick, [1, r, trials]), &device);
        closest = (merged * pick).sum_dim(2).reshape([n, r]);
    }
    chosen
}

/// Fits KMeans on `x` [n, d], returning the model and the rows' final assignment (from which
/// the inertia comes). `on_iter(i)` is called after each Lloyd iteration.
pub fn fit(
    x: &Tensor<2>,
    params: &KMeansParams,
    mut on_iter: impl FnMut(usize) -> Result<()>,
) -> Result<(KMeansModel, Assignment)> {
    let [n, d] = x.dims();
    let (k, r) = (params.k, params.n_init);
    if n < k {
        return Err(Error::Training(format!(
            "KMeans needs at least k = {k} rows, got {n}"
        )));
    }
    let device = x.device();
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let x_sq = row_sq_norms(x);
    let mean_var = download(x.clone().var(0).mean())[0] as f64;
    let tol = params.tolerance * mean_var;

    let seeds = kmeans_plus_plus(x, &x_sq, k, r, &mut rng);
    let idx: Vec<i64> = seeds.iter().flatten().map(|&i| i as i64).collect();
    let seeded = x.clone().select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(idx, [r * k]), &device),
    );
    // Every restart's centres, on the host (r*k*d numbers); only the active ones go to the device.
    let mut all = download(seeded);
    let mut active: Vec<usize> = (0..r).collect();
    let mut iterations = vec![0usize; r];

    for it in 0..params.max_iter {
        let a = active.len();
        let block: Vec<f32> = active
            .iter()
            .flat_map(|&ri| all[ri * k * d..(ri + 1) * k * d].iter().copied())
            .collect();
        let centres = upload_vec(block.clone(), a * k, d, &device);
        // Nearest centre of each row within each active restart, as one-hot blocks side by side: [n, a*k].
        let d2 = sq_distances(x, &x_sq, &centres).reshape([n * a, k]);
        let local: Tensor<2> = d2
            .argmin(1)
            .reshape([n * a])
            .one_hot::<2>(k)
            .reshape([n, a * k])
            .float();
        let sums = download(local.clone().transpose().matmul(x.clone())); // [a*k, d]
        let counts = download(local.sum_dim(0)); // [1, a*k]
        let mut still = Vec::with_capacity(a);
        for (slot, &ri) in active.iter().enumerate() {
            let mut shift = 0.0f64;
            for c in 0..k {
                let count = counts[slot * k + c];
                for t in 0..d {
                    let old = block[(slot * k + c) * d + t];
                    // An empty cluster keeps its centre.
                    let new = if count > 0.0 {
                        sums[(slot * k + c) * d + t] / count
                    } else {
                        old
                    };
                    shift += ((new - old) as f64).powi(2);
                    all[(ri * k + c) * d + t] = new;
                }
            }
            iterations[ri] = it + 1;
            if shift > tol {
                still.push(ri);
            }
        }
        // A converged restart leaves the batch: later passes cost only the restarts still moving.
        active = still;
        on_iter(it + 1)?;
        if active.is_empty() {
            break;
        }
    }

    // Final assignment and inertia of every restart; the lowest wins (ties: first).
    let centres = upload_vec(all.clone(), r * k, d, &device);
    let d2 = sq_distances(x, &x_sq, &centres).reshape([n, r, k]);
    let inertia = download(d2.min_dim(2).reshape([n, r]).sum_dim(0));
    let best = (0..r)
        .min_by(|&a, &b| inertia[a].total_cmp(&inertia[b]))
        .unwrap_or(0);
    let mut model = KMeansModel {
        centres: all[best * k * d..(best + 1) * k * d].to_vec(),
        k,
        dims: d,
        inertia: 0.0,
        n_iter: iterations[best],
        best_restart: best,
    };
    let assignment = model.assign(x);
    model.inertia = assignment.inertia();
    Ok((model, assignment))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded Gaussian blobs around `centres`, `per` points each.
    pub fn blobs(centres: &[[f32; 2]], per: usize, spread: f32, seed: u64) -> Vec<f32> {
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for c in centres {
            for _ in 0..per {
                let dx: f32 = StandardNormal.sample(&mut rng);
                let dy: f32 = StandardNormal.sample(&mut rng);
                out.extend_from_slice(&[c[0] + spread * dx, c[1] + spread * dy]);
            }
        }
        out
    }

    #[test]
    fn recovers_known_centres_on_seeded_blobs() {
        let truth = [[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let device = Device::flex();
        let x = upload_vec(blobs(&truth, 200, 0.5, 1), 600, 2, &device);
        let params = KMeansParams {
            k: 3,
            n_init: 4,
            max_iter: 100,
            tolerance: 1e-4,
            seed: 7,
        };
        let (model, a) = fit(&x, &params, |_| Ok(())).unwrap();
        for t in truth {
            let nearest = model
                .centres
                .chunks(2)
                .map(|c| ((c[0] - t[0]).powi(2) + (c[1] - t[1]).powi(2)).sqrt())
                .fold(f32::INFINITY, f32::min);
            assert!(nearest < 0.15, "no centre near {t:?}: {:?}", model.centres);
        }
        assert_eq!(a.labels, model.assign(&x).labels);
        for blob in 0..3 {
            let l = a.labels[blob * 200];
            assert!(
                a.labels[blob * 200..(blob + 1) * 200]
                    .iter()
                    .all(|&x| x == l)
            );
        }
        let (again, _) = fit(&x, &params, |_| Ok(())).unwrap();
        assert_eq!(model, again, "same seed, same model");
    }

    #[test]
    fn too_few_rows_is_an_error() {
        let device = Device::flex();
        let x = upload_vec(vec![0.0, 1.0], 1, 2, &device);
        let params = KMeansParams {
            k: 3,
            n_init: 1,
            max_iter: 10,
            tolerance: 1e-4,
            seed: 0,
        };
        assert!(
            fit(&x, &params, |_| Ok(()))
                .unwrap_err()
                .to_string()
                .contains("at least k = 3")
        );
    }
}
