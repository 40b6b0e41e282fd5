//! The host trainer's operations on `u8` bins ([`super::host`]): the root's and a node's
//! histograms (per-chunk local histograms on the rayon threads), the best split of a node, and
//! the stable partition of a node's rows. They are the same steps the tensor trainer in
//! [`super::tensor`] runs as burn tensor code; the tests hold each to that generic version.
//! Histograms are summed in `f64`, chunk by chunk in a fixed order, so the sums (and the
//! trees) do not depend on the number of threads.

use rayon::prelude::*;

/// Rows per histogram task: a task's local histogram stays in the core's cache, and the chunks
/// (not the threads) fix the order in which partial sums are added.
pub(super) const CHUNK_ROWS: usize = 16_384;

/// One feature's (gradient, hessian) sums per bin; bins are `u8`, so indexing needs no check.
pub(super) type FeatureHist = [[f64; 2]; 256];

/// The histogram of one node of one class tree: a [`FeatureHist`] per feature.
pub(super) type Hist = Vec<FeatureHist>;

/// A histogram of `f` features with every sum 0.
pub(super) fn empty_hist(f: usize) -> Hist {
    vec![[[0.0; 2]; 256]; f]
}

/// Adds `src` into `dst`.
fn add_into(dst: &mut [FeatureHist], src: &[FeatureHist]) {
    for (d, s) in dst.iter_mut().zip(src) {
        for (a, b) in d.iter_mut().zip(s) {
            a[0] += b[0];
            a[1] += b[1];
        }
    }
}

/// Sums per-chunk histograms in chunk order (the order, not the thread count, fixes the sum).
fn sum_in_order(parts: Vec<Hist>, f: usize) -> Hist {
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_else(|| empty_hist(f));
    for p in parts {
        add_into(&mut total, &p);
    }
    total
}

/// The root's histograms of all `k` class trees in one pass over the rows: the root is the
/// same node in every class tree, so each (row, feature) adds the row's (g, h) of every class.
/// `bins` row-major [n, f]; `gh[c][i]` the (g, h) of row i for class c. Returns one [`Hist`]
/// per class. Up to 8 classes the (g, h) of a bin sit side by side in one fixed-size slot;
/// more classes take one pass per class.
pub(super) fn root_histogram(bins: &[u8], gh: &[Vec<[f32; 2]>], f: usize) -> Vec<Hist> {
    let k = gh.len();
    match 2 * k {
        2 => shared_root::<2>(bins, gh, f),
        4 => shared_root::<4>(bins, gh, f),
        6 => shared_root::<6>(bins, gh, f),
        8 => shared_root::<8>(bins, gh, f),
        10 => shared_root::<10>(bins, gh, f),
        12 => shared_root::<12>(bins, gh, f),
        14 => shared_root::<14>(bins, gh, f),
        16 => shared_root::<16>(bins, gh, f),
        _ => {
            let all: Vec<u32> = (0..gh[0].len() as u32).collect();
            gh.iter()
                .map(|g| node_histogram(bins, g, f, &all))
                .collect()
        }
    }
}

/// [`root_histogram`] for `S = 2k` values per row: one slot of S sums per (feature, bin).
fn shared_root<const S: usize>(bins: &[u8], gh: &[Vec<[f32; 2]>], f: usize) -> Vec<Hist> {
    let n = gh[0].len();
    let parts: Vec<Vec<[[f64; S]; 256]>> = (0..n.div_ceil(CHUNK_ROWS))
        .into_par_iter()
        .map(|chunk| {
            let mut hist = vec![[[0f64; S]; 256]; f];
            for i in chunk * CHUNK_ROWS..((chunk + 1) * CHUNK_ROWS).min(n) {
                let mut values = [0f64; S];
                for (c, g) in gh.iter().enumerate() {
                    values[2 * c] = f64::from(g[i][0]);
                    values[2 * c + 1] = f64::from(g[i][1]);
                }
                for (feature, &bin) in hist.iter_mut().zip(&bins[i * f..(i + 1) * f]) {
                    let slot = &mut feature[bin as usize];
                    for t in 0..S {
                        slot[t] += values[t];
                    }
                }
            }
            hist
        })
        .collect();
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![[[0f64; S]; 256]; f]);
    for p in parts {
        for (a, b) in total.iter_mut().zip(&p) {
            for (a, b) in a.iter_mut().zip(b) {
                for t in 0..S {
                    a[t] += b[t];
                }
            }
        }
    }
    (0..S / 2)
        .map(|c| {
            total
                .iter()
                .map(|feature| {
                    let mut out = [[0.0; 2]; 256];
                    for (o, slot) in out.iter_mut().zip(feature) {
                        *o = [slot[2 * c], slot[2 * c + 1]];
                    }
                    out
                })
                .collect()
        })
        .collect()
}

/// The histogram of the rows `rows` of one class tree: `gh[i]` is row i's (g, h) for the class.
/// Chunks of [`CHUNK_ROWS`] rows run on the rayon threads and are summed in order.
pub(super) fn node_histogram(bins: &[u8], gh: &[[f32; 2]], f: usize, rows: &[u32]) -> Hist {
    let parts = rows
        .par_chunks(CHUNK_ROWS)
        .map(|rows| chunk_histogram(bins, gh, f, rows))
        .collect();
    sum_in_order(parts, f)
}

fn chunk_histogram(bins: &[u8], gh: &[[f32; 2]], f: usize, rows: &[u32]) -> Hist {
    let mut hist = empty_hist(f);
    for &i in rows {
        let i = i as usize;
        let row_bins = &bins[i * f..(i + 1) * f];
        let (g, h) = (f64::from(gh[i][0]), f64::from(gh[i][1]));
        for (feature, &bin) in hist.iter_mut().zip(row_bins) {
            let slot = &mut feature[bin as usize];
            slot[0] += g;
            slot[1] += h;
        }
    }
    hist
}

/// `parent - child`, in place in `parent`: the sibling's histogram.
pub(super) fn subtract(parent: &mut [FeatureHist], child: &[FeatureHist]) {
    for (p, c) in parent.iter_mut().zip(child) {
        for (a, b) in p.iter_mut().zip(c) {
            a[0] -= b[0];
            a[1] -= b[1];
        }
    }
}

/// A node's best split: XGBoost's gain with L2 `lambda`, both children's hessian sums at least
/// `min_child_weight`, above 1e-6; the first (feature, bin) on a tie. `bins_used[j]` is the
/// number of bins feature j has. `None` when no split gains.
pub(super) fn best_split(
    hist: &[FeatureHist],
    bins_used: &[usize],
    lambda: f64,
    min_child_weight: f64,
) -> Option<(usize, usize)> {
    let mcw = min_child_weight.max(1e-12);
    let (gt, ht) = hist
        .first()
        .map(|feature| {
            feature
                .iter()
                .fold((0.0, 0.0), |(g, h), s| (g + s[0], h + s[1]))
        })
        .unwrap_or((0.0, 0.0));
    let score = |g: f64, h: f64| g * g / (h + lambda).max(1e-12);
    let parent = score(gt, ht);
    let mut best = (1e-6, None);
    for (j, feature) in hist.iter().enumerate() {
        let (mut gl, mut hl) = (0.0, 0.0);
        for (bin, s) in feature[..bins_used[j]].iter().enumerate() {
            // An empty bin repeats the previous bin's sums: its gain cannot be a first maximum.
            if s[1] == 0.0 && s[0] == 0.0 {
                continue;
            }
            gl += s[0];
            hl += s[1];
            let hr = ht - hl;
            if hl < mcw || hr < mcw {
                continue;
            }
            let gain = score(gl, hl) + score(gt - gl, hr) - parent;
            if gain > best.0 {
                best = (gain, Some((j, bin)));
            }
        }
    }
    best.1
}

/// Rows per partition task.
const PARTITION_ROWS: usize = 65_536;

/// Splits the rows of one node in place, stably: rows whose bin (row i's is `column[i *
/// stride]`: the split feature's column, or a row-major matrix from the feature on) is at
/// most `bin` first, the rest after. Returns the number that went left. Big nodes are split in
/// chunks on the threads, then put back together in order.
pub(super) fn partition(column: &[u8], stride: usize, rows: &mut [u32], bin: u8) -> usize {
    if rows.len() <= PARTITION_ROWS {
        let mut right = vec![0u32; rows.len()];
        let (left, r) = partition_chunk(column, stride, rows, bin, &mut right);
        rows[left..].copy_from_slice(&right[..r]);
        return left;
    }
    let parts: Vec<(Vec<u32>, usize)> = rows
        .par_chunks_mut(PARTITION_ROWS)
        .map(|chunk| {
            let mut right = vec![0u32; chunk.len()];
            let (left, r) = partition_chunk(column, stride, chunk, bin, &mut right);
            right.truncate(r);
            (right, left)
        })
        .collect();
    // Each chunk holds its left rows at its front: gather them, then every chunk's right rows.
    let mut left = 0;
    for (c, (_, l)) in parts.iter().enumerate() {
        rows.copy_within(c * PARTITION_ROWS..c * PARTITION_ROWS + l, left);
        left += l;
    }
    let mut at = left;
    for (right, _) in &parts {
        rows[at..at + right.len()].copy_from_slice(right);
        at += right.len();
    }
    left
}

/// Moves the left rows of `rows` to its front (in order) and writes the right ones to `right`;
/// returns both counts. Branch-free: a row is written to both places and only one cursor moves.
fn partition_chunk(
    column: &[u8],
    stride: usize,
    rows: &mut [u32],
    bin: u8,
    right: &mut [u32],
) -> (usize, usize) {
    let (mut l, mut r) = (0, 0);
    for read in 0..rows.len() {
        let i = rows[read];
        let goes_right = usize::from(column[i as usize * stride] > bin);
        rows[l] = i;
        right[r] = i;
        l += 1 - goes_right;
        r += goes_right;
    }
    (l, r)
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::IndexingUpdateOp;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::train::tensor::{download, download_int};

    /// Random bins below `b` (or all in bin `same` when given) and random (g, h) of `k` classes.
    fn inputs(
        n: usize,
        f: usize,
        k: usize,
        b: usize,
        same: Option<u8>,
        seed: u64,
    ) -> (Vec<u8>, Vec<Vec<[f32; 2]>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bins = (0..n * f)
            .map(|_| same.unwrap_or_else(|| rng.random_range(0..b) as u8))
            .collect();
        let gh = (0..k)
            .map(|_| {
                (0..n)
                    .map(|_| [rng.random_range(-1.0..1.0), rng.random_range(0.0..0.5)])
                    .collect()
            })
            .collect();
        (bins, gh)
    }

    /// The generic tensor version of a node histogram: one scatter-add of every (row, feature)
    /// of the node's rows into [f * 256, 2] (what the tensor implementation's levels do).
    fn tensor_histogram(bins: &[u8], gh: &[[f32; 2]], f: usize, rows: &[u32]) -> Vec<f32> {
        let device = Device::flex();
        let hist = Tensor::<2>::zeros([f * 256, 2], &device);
        if rows.is_empty() {
            return download(hist);
        }
        let m = rows.len();
        let slots: Vec<i64> = rows
            .iter()
            .flat_map(|&i| {
                (0..f).map(move |j| (j * 256) as i64 + i64::from(bins[i as usize * f + j]))
            })
            .collect();
        let values: Vec<f32> = rows
            .iter()
            .flat_map(|&i| (0..f).flat_map(move |_| gh[i as usize]))
            .collect();
        let slots = Tensor::<1, Int>::from_data(TensorData::new(slots, [m * f]), &device);
        let values = Tensor::<2>::from_data(TensorData::new(values, [m * f, 2]), &device);
        download(hist.select_assign(0, slots, values, IndexingUpdateOp::Add))
    }

    fn flat(hist: &[FeatureHist]) -> Vec<f64> {
        hist.iter()
            .flat_map(|f| f.iter().flatten().copied())
            .collect()
    }

    fn close(a: &[f64], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (t, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - f64::from(*y)).abs() < 1e-4,
                "{what} at {t}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn histograms_match_the_tensor_scatter_add() {
        let f = 5;
        // (rows, bins, all rows in one bin, classes): many rows, one row, max_bins 2 and 256,
        // one bin; 1 and 3 classes share a root slot, 9 take one pass per class.
        for (n, b, same, k) in [
            (3000, 256, None, 3),
            (1, 256, None, 3),
            (500, 2, None, 3),
            (40_000, 256, None, 3),
            (700, 256, Some(7), 3),
            (900, 256, None, 1),
            (900, 256, None, 9),
        ] {
            let (bins, gh) = inputs(n, f, k, b, same, n as u64);
            let roots = root_histogram(&bins, &gh, f);
            let all: Vec<u32> = (0..n as u32).collect();
            // Every third row: a node whose rows are not contiguous.
            let some: Vec<u32> = (0..n as u32).step_by(3).collect();
            for c in 0..k {
                let expected = tensor_histogram(&bins, &gh[c], f, &all);
                close(&flat(&roots[c]), &expected, "root");
                close(
                    &flat(&node_histogram(&bins, &gh[c], f, &all)),
                    &expected,
                    "node, all rows",
                );
                let expected = tensor_histogram(&bins, &gh[c], f, &some);
                close(
                    &flat(&node_histogram(&bins, &gh[c], f, &some)),
                    &expected,
                    "node, every third row",
                );
            }
            // An empty node.
            let empty = node_histogram(&bins, &gh[0], f, &[]);
            assert!(flat(&empty).iter().all(|&v| v == 0.0));
        }
    }

    /// The generic tensor version of the split search: cumulative sums over bins, the gain of
    /// every (feature, bin) with invalid children masked, the first maximum (as the tensor
    /// implementation's levels).
    fn tensor_split(
        hist: &[FeatureHist],
        b: usize,
        lambda: f32,
        mcw: f32,
    ) -> Option<(usize, usize)> {
        let device = Device::flex();
        let f = hist.len();
        let data: Vec<f32> = hist
            .iter()
            .flat_map(|feature| feature[..b].iter().flat_map(|s| [s[0] as f32, s[1] as f32]))
            .collect();
        let hist = Tensor::<4>::from_data(TensorData::new(data, [1, f, b, 2]), &device);
        let cum = hist.cumsum(2);
        let total = cum.clone().narrow(2, b - 1, 1);
        let (gl, hl) = (cum.clone().narrow(3, 0, 1), cum.narrow(3, 1, 1));
        let (gt, ht) = (total.clone().narrow(3, 0, 1), total.narrow(3, 1, 1));
        let (gr, hr) = (gt.clone() - gl.clone(), ht.clone() - hl.clone());
        let score = |g: Tensor<4>, h: Tensor<4>| g.square() / h.add_scalar(lambda).clamp_min(1e-12);
        let gain = score(gl, hl.clone()) + score(gr, hr.clone()) - score(gt, ht);
        let floor = mcw.max(1e-12);
        let invalid = hl.lower_elem(floor).bool_or(hr.lower_elem(floor));
        let gain = gain
            .mask_fill(invalid, f32::NEG_INFINITY)
            .reshape([1, f * b]);
        let (best, arg) = gain.max_dim_with_indices(1);
        let (best, arg) = (download(best)[0], download_int(arg)[0] as usize);
        (best.is_finite() && best > 1e-6).then_some((arg / b, arg % b))
    }

    #[test]
    fn best_splits_match_the_tensor_gain_search() {
        let (f, k) = (4, 2);
        let mut found = 0;
        for (n, b, same, seed) in [
            (2000, 256, None, 1),
            (300, 2, None, 2),
            (1, 256, None, 3),
            (400, 256, Some(3), 4),
            (0, 16, None, 5),
            (5000, 32, None, 6),
        ] {
            let (bins, mut gh) = inputs(n, f, k, b, same, seed);
            // Give class 0 a signal on feature 2 so that real splits exist.
            for i in 0..n {
                gh[0][i][0] += if bins[i * f + 2] as usize * 2 >= b {
                    0.75
                } else {
                    -0.75
                };
            }
            let rows: Vec<u32> = (0..n as u32).collect();
            let hist = node_histogram(&bins, &gh[0], f, &rows);
            let used = vec![b; f];
            let host = best_split(&hist, &used, 1.0, 1.0);
            assert_eq!(host, tensor_split(&hist, b, 1.0, 1.0), "{n} rows, {b} bins");
            found += usize::from(host.is_some());
        }
        assert!(found >= 3, "the inputs must produce real splits ({found})");
    }

    #[test]
    fn partition_matches_routing_by_gathered_bins() {
        let f = 3;
        for (n, b, same) in [
            (1000, 256, None),
            (1, 256, None),
            (200, 2, None),
            (300, 256, Some(5)),
            (0, 4, None),
            (200_000, 64, None),
        ] {
            let (bins, _) = inputs(n, f, 1, b, same, 9);
            let mut rows: Vec<u32> = (0..n as u32).filter(|i| i % 5 != 0).collect();
            let before = rows.clone();
            let (feature, bin) = (1, (b / 2) as u8);
            let column: Vec<u8> = (0..n).map(|i| bins[i * f + feature]).collect();
            let left = partition(&column, 1, &mut rows, bin);
            if n > 0 {
                let mut strided = before.clone();
                assert_eq!(partition(&bins[feature..], f, &mut strided, bin), left);
                assert_eq!(strided, rows, "row-major bins partition as their column");
            }
            // The tensor routing: a row goes right when its gathered bin is above the split bin.
            let device = Device::flex();
            let right: Vec<bool> = if before.is_empty() {
                Vec::new()
            } else {
                let gathered: Vec<i64> = before
                    .iter()
                    .map(|&i| i64::from(bins[i as usize * f + feature]))
                    .collect();
                let t =
                    Tensor::<1, Int>::from_data(TensorData::new(gathered, [before.len()]), &device);
                t.greater_elem(i64::from(bin))
                    .into_data()
                    .try_to_vec::<bool>()
                    .unwrap()
            };
            let expected_left: Vec<u32> = before
                .iter()
                .zip(&right)
                .filter(|(_, r)| !**r)
                .map(|(i, _)| *i)
                .collect();
            let expected_right: Vec<u32> = before
                .iter()
                .zip(&right)
                .filter(|(_, r)| **r)
                .map(|(i, _)| *i)
                .collect();
            assert_eq!(left, expected_left.len());
            assert_eq!(
                &rows[..left],
                &expected_left[..],
                "left rows keep their order"
            );
            assert_eq!(
                &rows[left..],
                &expected_right[..],
                "right rows keep their order"
            );
        }
    }
}
