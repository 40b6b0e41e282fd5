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
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::tensor::{download, download_int, row_sq_norms, sq_distances, upload_vec};
use crate::error::{Error, Result};
use crate::train::device::is_cpu;

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
        if is_cpu(&x.device()) {
            return self.assign_points(&download(x.clone()));
        }
        let c = self.centres_tensor(&x.device());
        let d2 = sq_distances(x, &row_sq_norms(x), &c);
        let (min, idx) = d2.min_dim_with_indices(1);
        Assignment {
            labels: download_int(idx).into_iter().map(|l| l as u32).collect(),
            sq_dist: download(min),
        }
    }

    /// Assigns each point (`dims` coordinates each, row-major) to its nearest centre, on the host.
    pub fn assign_points(&self, points: &[f32]) -> Assignment {
        let (labels, sq_dist) = points
            .par_chunks(self.dims * CHUNK_ROWS)
            .map(|chunk| {
                chunk
                    .chunks_exact(self.dims)
                    .map(|p| {
                        let (c, d) = nearest(p, &self.centres, self.k);
                        (c as u32, d)
                    })
                    .collect::<Vec<_>>()
            })
            .flatten_iter()
            .unzip();
        Assignment { labels, sq_dist }
    }

    /// The restart with the lowest inertia (the first on a tie), from every restart's centres
    /// (`all`, restart-major) and iteration counts; its own inertia is filled in by the caller's
    /// final assignment.
    fn lowest_inertia(
        all: &[f32],
        inertia: &[f64],
        iterations: &[usize],
        k: usize,
        d: usize,
    ) -> Self {
        let best = (0..inertia.len())
            .min_by(|&a, &b| inertia[a].total_cmp(&inertia[b]))
            .unwrap_or(0);
        KMeansModel {
            centres: all[best * k * d..(best + 1) * k * d].to_vec(),
            k,
            dims: d,
            inertia: 0.0,
            n_iter: iterations[best],
            best_restart: best,
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
/// the inertia comes). `on_iter(i)` is called after each Lloyd iteration. On a CPU backend the
/// host implementation ([`fit_points`]) runs; on other devices the tensor one.
pub fn fit(
    x: &Tensor<2>,
    params: &KMeansParams,
    on_iter: impl FnMut(usize) -> Result<()>,
) -> Result<(KMeansModel, Assignment)> {
    if is_cpu(&x.device()) {
        let [_, d] = x.dims();
        return fit_points(&download(x.clone()), d, params, on_iter);
    }
    fit_tensor(x, params, on_iter)
}

/// The tensor implementation: the reference for [`fit_points`], and the GPU's path.
pub fn fit_tensor(
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
    let inertia: Vec<f64> = download(d2.min_dim(2).reshape([n, r]).sum_dim(0))
        .into_iter()
        .map(f64::from)
        .collect();
    let mut model = KMeansModel::lowest_inertia(&all, &inertia, &iterations, k, d);
    let assignment = model.assign(x);
    model.inertia = assignment.inertia();
    Ok((model, assignment))
}

/// Rows per host task; partial sums are added in chunk order, so the result does not depend on
/// the number of threads.
const CHUNK_ROWS: usize = 16_384;

/// The nearest of `k` centres to `p` (the first on a tie) and its squared distance.
#[inline]
fn nearest(p: &[f32], centres: &[f32], k: usize) -> (usize, f32) {
    let d = p.len();
    let mut best = (0, f32::INFINITY);
    for c in 0..k {
        let dist = sq_dist(p, &centres[c * d..(c + 1) * d]);
        if dist < best.1 {
            best = (c, dist);
        }
    }
    best
}

#[inline]
fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Sums `f(chunk)` over fixed chunks of rows, in chunk order.
fn sum_chunks(
    n: usize,
    len: usize,
    f: impl Fn(std::ops::Range<usize>) -> Vec<f64> + Sync,
) -> Vec<f64> {
    let parts: Vec<Vec<f64>> = (0..n.div_ceil(CHUNK_ROWS))
        .into_par_iter()
        .map(|c| f(c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(n)))
        .collect();
    let mut total = vec![0f64; len];
    for p in parts {
        total.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    total
}

/// From this many rows up, [`fit_points`] runs its restarts on an evenly spaced sample of this
/// many rows and refines the winner on all of them.
pub const RESTART_SAMPLE_ROWS: usize = 131_072;

/// KMeans on the host: the same algorithm as [`fit_tensor`] (greedy k-means++ with the same
/// draws, Lloyd iterations to the same tolerance, restarts leaving when they converge, the
/// lowest inertia winning), with exact squared distances and sums in f64 over fixed chunks.
///
/// Above [`RESTART_SAMPLE_ROWS`] rows with more than one restart, the restarts (seeding and
/// Lloyd) run on an evenly spaced sample of that many rows, and Lloyd iterations on all rows
/// start from the winner's centres (the tolerance from all rows): the restarts only choose a
/// basin, which a sample of that size shows as well as all rows, and the final centres are
/// those of all rows. `n_iter` counts the iterations on all rows.
pub fn fit_points(
    points: &[f32],
    d: usize,
    params: &KMeansParams,
    mut on_iter: impl FnMut(usize) -> Result<()>,
) -> Result<(KMeansModel, Assignment)> {
    let n = points.len() / d.max(1);
    let mut model = if n <= RESTART_SAMPLE_ROWS || params.n_init <= 1 {
        restarts(points, d, params, on_iter)?
    } else {
        let sample: Vec<f32> = (0..RESTART_SAMPLE_ROWS)
            .flat_map(|q| {
                let i = q * n / RESTART_SAMPLE_ROWS;
                points[i * d..(i + 1) * d].iter().copied()
            })
            .collect();
        let chosen = restarts(&sample, d, params, |_| Ok(()))?;
        let tol = params.tolerance * mean_variance(points, d);
        let (centres, iterations) = lloyd(
            points,
            d,
            params.k,
            chosen.centres,
            1,
            tol,
            params.max_iter,
            &mut on_iter,
        )?;
        KMeansModel {
            centres,
            n_iter: iterations[0],
            ..chosen
        }
    };
    let assignment = model.assign_points(points);
    model.inertia = assignment.inertia();
    Ok((model, assignment))
}

/// Mean per-column variance of row-major `points` (unbiased, as burn's `var`): what the
/// tolerance is scaled by.
fn mean_variance(points: &[f32], d: usize) -> f64 {
    let n = points.len() / d.max(1);
    let point = |i: usize| &points[i * d..(i + 1) * d];
    let sums = sum_chunks(n, 2 * d, |rows| {
        let mut s = vec![0f64; 2 * d];
        for i in rows {
            for (t, &v) in point(i).iter().enumerate() {
                s[t] += f64::from(v);
                s[d + t] += f64::from(v) * f64::from(v);
            }
        }
        s
    });
    (0..d)
        .map(|t| {
            let mean = sums[t] / n as f64;
            (sums[d + t] - n as f64 * mean * mean) / (n as f64 - 1.0).max(1.0)
        })
        .sum::<f64>()
        / d as f64
}

/// Every restart on all of `points`: seeding, Lloyd, the lowest inertia (the model's own
/// inertia is left to the caller's final assignment).
fn restarts(
    points: &[f32],
    d: usize,
    params: &KMeansParams,
    mut on_iter: impl FnMut(usize) -> Result<()>,
) -> Result<KMeansModel> {
    let n = points.len() / d.max(1);
    let (k, r) = (params.k, params.n_init);
    if n < k {
        return Err(Error::Training(format!(
            "KMeans needs at least k = {k} rows, got {n}"
        )));
    }
    let point = |i: usize| &points[i * d..(i + 1) * d];
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mean_var = mean_variance(points, d);
    let tol = params.tolerance * mean_var;

    // Greedy k-means++ for every restart, with the tensor version's draws.
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut chosen: Vec<Vec<usize>> = (0..r).map(|_| vec![rng.random_range(0..n)]).collect();
    // closest[ri][i]: squared distance of row i to restart ri's nearest chosen centre.
    let mut closest: Vec<Vec<f32>> = chosen
        .iter()
        .map(|c| {
            let first = point(c[0]);
            (0..n)
                .into_par_iter()
                .map(|i| sq_dist(point(i), first))
                .collect()
        })
        .collect();
    for _ in 1..k {
        for ri in 0..r {
            let mut acc = 0.0f64;
            let cumulative: Vec<f64> = closest[ri]
                .iter()
                .map(|&w| {
                    acc += f64::from(w);
                    acc
                })
                .collect();
            let candidates: Vec<usize> = (0..trials)
                .map(|_| sample_weighted(&mut rng, &cumulative))
                .collect();
            let near = &closest[ri];
            let potential = sum_chunks(n, trials, |rows| {
                let mut s = vec![0f64; trials];
                for i in rows {
                    for (t, &c) in candidates.iter().enumerate() {
                        s[t] += f64::from(sq_dist(point(i), point(c)).min(near[i]));
                    }
                }
                s
            });
            let best = (0..trials)
                .min_by(|&a, &b| potential[a].total_cmp(&potential[b]))
                .unwrap_or(0);
            let pick = point(candidates[best]);
            chosen[ri].push(candidates[best]);
            closest[ri]
                .par_iter_mut()
                .enumerate()
                .for_each(|(i, c)| *c = c.min(sq_dist(point(i), pick)));
        }
    }
    drop(closest);

    let all: Vec<f32> = chosen
        .iter()
        .flatten()
        .flat_map(|&i| point(i).to_vec())
        .collect();
    let (all, iterations) = lloyd(points, d, k, all, r, tol, params.max_iter, &mut on_iter)?;

    // Every restart's inertia; the lowest wins (ties: first).
    let inertia = sum_chunks(n, r, |rows| {
        let mut s = vec![0f64; r];
        for i in rows {
            for (ri, v) in s.iter_mut().enumerate() {
                *v += f64::from(nearest(point(i), &all[ri * k * d..(ri + 1) * k * d], k).1);
            }
        }
        s
    });
    Ok(KMeansModel::lowest_inertia(
        &all,
        &inertia,
        &iterations,
        k,
        d,
    ))
}

/// Lloyd iterations of `r` restarts from their centres (`all`, restart-major, k x d each) to
/// the tolerance `tol` (squared centre shift), each restart leaving when it converges:
/// the centres and each restart's iteration count.
#[allow(clippy::too_many_arguments)]
fn lloyd(
    points: &[f32],
    d: usize,
    k: usize,
    mut all: Vec<f32>,
    r: usize,
    tol: f64,
    max_iter: usize,
    on_iter: &mut impl FnMut(usize) -> Result<()>,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let n = points.len() / d.max(1);
    let point = |i: usize| &points[i * d..(i + 1) * d];
    let mut active: Vec<usize> = (0..r).collect();
    let mut iterations = vec![0usize; r];
    for it in 0..max_iter {
        let a = active.len();
        let block: Vec<f32> = active
            .iter()
            .flat_map(|&ri| all[ri * k * d..(ri + 1) * k * d].iter().copied())
            .collect();
        // Per active restart and centre: the coordinate sums, then the count.
        let width = a * k * (d + 1);
        let sums = sum_chunks(n, width, |rows| {
            let mut s = vec![0f64; width];
            for i in rows {
                let p = point(i);
                for slot in 0..a {
                    let (c, _) = nearest(p, &block[slot * k * d..(slot + 1) * k * d], k);
                    let at = (slot * k + c) * (d + 1);
                    for (t, &v) in p.iter().enumerate() {
                        s[at + t] += f64::from(v);
                    }
                    s[at + d] += 1.0;
                }
            }
            s
        });
        let mut still = Vec::with_capacity(a);
        for (slot, &ri) in active.iter().enumerate() {
            let mut shift = 0.0f64;
            for c in 0..k {
                let at = (slot * k + c) * (d + 1);
                let count = sums[at + d];
                for t in 0..d {
                    let old = block[(slot * k + c) * d + t];
                    // An empty cluster keeps its centre.
                    let new = if count > 0.0 {
                        (sums[at + t] / count) as f32
                    } else {
                        old
                    };
                    shift += f64::from(new - old).powi(2);
                    all[(ri * k + c) * d + t] = new;
                }
            }
            iterations[ri] = it + 1;
            if shift > tol {
                still.push(ri);
            }
        }
        active = still;
        on_iter(it + 1)?;
        if active.is_empty() {
            break;
        }
    }

    Ok((all, iterations))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn host_and_tensor_kmeans_agree() {
        let truth = [[0.0f32, 0.0], [6.0, 1.0], [1.0, 7.0], [8.0, 8.0]];
        let points = blobs(&truth, 5000, 1.2, 3);
        let params = KMeansParams {
            k: 4,
            n_init: 3,
            max_iter: 100,
            tolerance: 1e-4,
            seed: 11,
        };
        let x = upload_vec(points.clone(), 20_000, 2, &Device::flex());
        let (host, ha) = fit_points(&points, 2, &params, |_| Ok(())).unwrap();
        let (tensor, ta) = fit_tensor(&x, &params, |_| Ok(())).unwrap();
        // Restarts that reach the same solution tie up to rounding, and may number the
        // clusters differently: compare each row's centre, not the restart or the label.
        let centre =
            |m: &KMeansModel, l: u32| m.centres[l as usize * 2..l as usize * 2 + 2].to_vec();
        let differ = ha
            .labels
            .iter()
            .zip(&ta.labels)
            .filter(|&(&a, &b)| {
                let (u, v) = (centre(&host, a), centre(&tensor, b));
                (u[0] - v[0]).abs() > 1e-3 || (u[1] - v[1]).abs() > 1e-3
            })
            .count();
        assert!(
            differ <= 2,
            "{differ} rows differ: {:?} vs {:?}",
            host.centres,
            tensor.centres
        );
        assert!((host.inertia - tensor.inertia).abs() / tensor.inertia < 1e-4);
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit_points(&points, 2, &params, |_| Ok(())).unwrap().0)
        };
        assert_eq!(
            on(1),
            on(2),
            "the same model whatever the number of threads"
        );
    }

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
    fn restarts_on_a_sample_end_where_restarts_on_all_rows_do() {
        // Four overlapping blobs, more rows than the restart sample.
        let truth = [[0.0f32, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]];
        let per = RESTART_SAMPLE_ROWS / 3;
        let points = blobs(&truth, per, 2.0, 3);
        let params = KMeansParams {
            k: 4,
            n_init: 4,
            max_iter: 300,
            tolerance: 1e-6,
            seed: 5,
        };
        let (sampled, a) = fit_points(&points, 2, &params, |_| Ok(())).unwrap();
        let mut all = restarts(&points, 2, &params, |_| Ok(())).unwrap();
        let b = all.assign_points(&points);
        all.inertia = b.inertia();
        // The same centres, in the order their seeding gave them.
        let perm: Vec<usize> = sampled
            .centres
            .chunks(2)
            .map(|c| {
                let (j, dist) = nearest(c, &all.centres, 4);
                assert!(dist < 1e-4, "{:?} vs {:?}", sampled.centres, all.centres);
                j
            })
            .collect();
        assert!((sampled.inertia - all.inertia).abs() <= 1e-4 * all.inertia);
        let same = a
            .labels
            .iter()
            .zip(&b.labels)
            .filter(|&(&x, &y)| perm[x as usize] == y as usize)
            .count();
        assert!(same as f64 >= 0.999 * a.labels.len() as f64, "{same}");
        let (again, _) = fit_points(&points, 2, &params, |_| Ok(())).unwrap();
        assert_eq!(sampled, again, "same seed, same model");
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
