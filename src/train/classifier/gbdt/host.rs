//! The GBDT's custom operations in plain Rust for the CPU: XGBoost's `hist` algorithm on `u8`
//! bins, with row partitions per node, per-chunk local histograms on the rayon threads and
//! the smaller child built from its rows (the larger one is its parent minus it).
//!
//! The operations (`root_histogram`, `node_histogram`, `best_split`, `partition`, in
//! [`super::host_ops`]) are the same steps the tensor trainer in [`super::tensor`] runs as burn
//! tensor code on the wgpu backend; the tests hold each to that generic version and the whole
//! fit to the plain reference. Histograms are summed in `f64`, chunk by chunk in a fixed order,
//! so a seed gives the same trees whatever the number of threads.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::ops::Range;

use super::host_ops::{
    Hist, best_split, empty_hist, node_histogram, partition, root_histogram, subtract,
};
use super::trees::{Level, build_tree};
use super::{Binner, GbdtModel, ROUND_SEED_SALT, subsample_mask};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::train::classifier::config::GbdtParams;

/// Softmax gradients and hessians of the margins (class-major, `margin[c][i]`), times the row
/// mask when rows are subsampled, into `gh[c][i]` (class-major: a class tree's histograms
/// read 8 bytes a row).
fn gradients(margin: &[Vec<f32>], y: &[u32], mask: Option<&[f32]>, gh: &mut [Vec<[f32; 2]>]) {
    const ROWS: usize = 4096;
    let k = margin.len();
    // Task t gets rows t*ROWS.. of every class.
    let mut tasks: Vec<Vec<&mut [[f32; 2]]>> = Vec::new();
    for g in gh.iter_mut() {
        for (t, chunk) in g.chunks_mut(ROWS).enumerate() {
            if tasks.len() <= t {
                tasks.push(Vec::with_capacity(k));
            }
            tasks[t].push(chunk);
        }
    }
    tasks.into_par_iter().enumerate().for_each(|(t, mut out)| {
        let mut p = vec![0f32; k];
        for r in 0..out[0].len() {
            let i = t * ROWS + r;
            let max = (0..k)
                .map(|c| margin[c][i])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for (c, pc) in p.iter_mut().enumerate() {
                *pc = (margin[c][i] - max).exp();
                sum += *pc;
            }
            let m = mask.map_or(1.0, |m| m[i]);
            for (c, &pc) in p.iter().enumerate() {
                let pc = pc / sum;
                let target = if y[i] as usize == c { 1.0 } else { 0.0 };
                out[c][r] = [(pc - target) * m, (2.0 * pc * (1.0 - pc)).max(1e-16) * m];
            }
        }
    });
}

/// One class tree's rows, grouped by node: node `j` of the current level holds
/// `rows[start[j]..start[j + 1]]`, each node's rows in increasing order.
struct Partition {
    rows: Vec<u32>,
    start: Vec<usize>,
}

/// The rows a round's tree is grown on when the data has more than `max_rows` rows: each row
/// in with probability `max_rows / n`, decided by a hash of (seed, round, row), so the sample
/// does not depend on the thread count. Increasing row order.
fn sample_rows(n: usize, max_rows: usize, seed: u64, round: usize) -> Vec<u32> {
    const ROWS: usize = 65_536;
    let threshold = ((max_rows as f64 / n as f64) * u64::MAX as f64) as u64;
    let key = seed ^ (round as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let parts: Vec<Vec<u32>> = (0..n.div_ceil(ROWS))
        .into_par_iter()
        .map(|t| {
            (t * ROWS..((t + 1) * ROWS).min(n))
                .filter(|&i| splitmix64(key ^ i as u64) < threshold)
                .map(|i| i as u32)
                .collect()
        })
        .collect();
    parts.concat()
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `rows` of a row-major [n, f] `bins`.
fn gather(bins: &[u8], f: usize, rows: &[u32]) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() * f];
    out.par_chunks_mut(f * 4096)
        .zip(rows.par_chunks(4096))
        .for_each(|(out, rows)| {
            for (o, &i) in out.chunks_exact_mut(f).zip(rows) {
                o.copy_from_slice(&bins[i as usize * f..(i as usize + 1) * f]);
            }
        });
    out
}

/// Fits the ensemble with the host operations; the same trees as the tensor implementation.
/// With `max_rows_per_tree` set and more rows than that, each round's trees are grown on a
/// seeded sample of about that many rows (stochastic gradient boosting: splits and leaf weights
/// from the sample), and every row's margin follows the trees.
pub(super) fn fit(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &GbdtParams,
    seed: u64,
    mut on_round: impl FnMut(usize, &[super::Tree], &Binner) -> Result<bool>,
) -> Result<GbdtModel> {
    let (n, f) = (x.rows(), x.cols());
    if n == 0 || y.len() != n || n > u32::MAX as usize {
        return Err(Error::Training(format!(
            "GBDT needs one label per row ({n} rows, {} labels)",
            y.len()
        )));
    }
    let binner = Binner::fit(x, params.max_bins);
    let bins = binner.bin_matrix_u8(x);
    let sampled = params.max_rows_per_tree > 0 && n > params.max_rows_per_tree;
    // Feature-major copy when trees grow on samples: routing every row down a round's trees
    // reads one feature of a block of rows from one column.
    let columns: Vec<Vec<u8>> = if sampled {
        (0..f)
            .into_par_iter()
            .map(|j| bins.iter().skip(j).step_by(f).copied().collect())
            .collect()
    } else {
        Vec::new()
    };
    let grower = Grower {
        f,
        k,
        bins_used: binner.cuts.iter().map(|c| c.len() + 1).collect(),
        params,
    };
    let depth = params.max_depth;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ROUND_SEED_SALT);
    let mut margin = vec![vec![0f32; n]; k];
    let mut gh = vec![vec![[0f32; 2]; if sampled { 0 } else { n }]; k];
    let mut trees = Vec::with_capacity(params.rounds * k);

    for round in 0..params.rounds {
        let mask = subsample_mask(&mut rng, n, params.subsample);
        let (levels, weights) = if sampled {
            let rows = sample_rows(n, params.max_rows_per_tree, seed, round);
            let sample = Sample {
                bins: &bins,
                columns: &columns,
                y,
                rows: &rows,
            };
            grow_on_sample(&grower, sample, mask.as_deref(), &mut margin)
        } else {
            grow_on_all(&grower, &bins, y, mask.as_deref(), &mut gh, &mut margin)
        };
        let flat = class_interleaved(&weights, k, 1usize << depth);
        for class in 0..k {
            trees.push(build_tree(class, k, &levels, &flat, depth, &binner));
        }
        if !on_round(round + 1, &trees[trees.len() - k..], &binner)? {
            break;
        }
    }
    Ok(GbdtModel {
        k,
        n_features: f,
        trees,
        early_stopping: None,
    })
}

/// A round's row sample, with what its trees grow on: the bins row-major (`bins`) and
/// feature-major (`columns`, for routing every row), and the labels.
struct Sample<'a> {
    bins: &'a [u8],
    columns: &'a [Vec<u8>],
    y: &'a [u32],
    rows: &'a [u32],
}

/// One round on a sample of the rows: gradients, splits and leaf weights from the sample;
/// then every row routed down the new trees into its margin.
fn grow_on_sample(
    grower: &Grower,
    sample: Sample,
    mask: Option<&[f32]>,
    margin: &mut [Vec<f32>],
) -> (Vec<Level>, Vec<Vec<f32>>) {
    let Sample {
        bins,
        columns,
        y,
        rows,
    } = sample;
    let (f, k) = (grower.f, grower.k);
    let sbins = gather(bins, f, rows);
    let pick = |v: &[f32]| -> Vec<f32> { rows.iter().map(|&i| v[i as usize]).collect() };
    let smargin: Vec<Vec<f32>> = margin.iter().map(|m| pick(m)).collect();
    let smask = mask.map(pick);
    let sy: Vec<u32> = rows.iter().map(|&i| y[i as usize]).collect();
    let mut sgh = vec![vec![[0f32; 2]; rows.len()]; k];
    gradients(&smargin, &sy, smask.as_deref(), &mut sgh);
    let (levels, _, weights) = grower.grow(&sbins, &sgh);
    route_and_add(columns, &levels, k, &weights, margin);
    (levels, weights)
}

/// One round on every row: gradients, the trees, and each leaf's weight added to the margins
/// of the rows its partition holds.
fn grow_on_all(
    grower: &Grower,
    bins: &[u8],
    y: &[u32],
    mask: Option<&[f32]>,
    gh: &mut [Vec<[f32; 2]>],
    margin: &mut [Vec<f32>],
) -> (Vec<Level>, Vec<Vec<f32>>) {
    gradients(margin, y, mask, gh);
    let (levels, parts, weights) = grower.grow(bins, gh);
    margin
        .par_iter_mut()
        .zip(parts.par_iter())
        .zip(weights.par_iter())
        .for_each(|((margin, part), w)| {
            for (j, &v) in w.iter().enumerate() {
                for &i in &part.rows[part.start[j]..part.start[j + 1]] {
                    margin[i as usize] += v;
                }
            }
        });
    (levels, weights)
}

/// Per-class leaf weights (`weights[class][leaf]`) as one array indexed `leaf * k + class`,
/// the layout [`build_tree`] reads.
fn class_interleaved(weights: &[Vec<f32>], k: usize, leaves: usize) -> Vec<f32> {
    let mut flat = vec![0f32; k * leaves];
    for (c, w) in weights.iter().enumerate() {
        for (j, &v) in w.iter().enumerate() {
            flat[j * k + c] = v;
        }
    }
    flat
}

/// Adds each row's leaf weight of every class tree to its margin, routing the rows down the
/// levels by their bins (`columns[feature][row]`); a node without a split sends all rows left.
/// A block of rows goes down one level at a time, so the rows' lookups are independent.
fn route_and_add(
    columns: &[Vec<u8>],
    levels: &[Level],
    k: usize,
    weights: &[Vec<f32>],
    margin: &mut [Vec<f32>],
) {
    const ROWS: usize = 8192;
    for (c, (margin, w)) in margin.iter_mut().zip(weights).enumerate() {
        // Per level, each node's (split feature, bin); bin 255 sends every row left.
        let table: Vec<Vec<(usize, u8)>> = levels
            .iter()
            .map(|lv| {
                (0..lv.split.len() / k)
                    .map(|j| {
                        let s = j * k + c;
                        if lv.split[s] {
                            (lv.feature[s] as usize, lv.bin[s] as u8)
                        } else {
                            (0, u8::MAX)
                        }
                    })
                    .collect()
            })
            .collect();
        margin
            .par_chunks_mut(ROWS)
            .enumerate()
            .for_each(|(t, chunk)| {
                let rows = t * ROWS..t * ROWS + chunk.len();
                let node = leaves_of_block(&table, columns, rows);
                for (m, &j) in chunk.iter_mut().zip(&node) {
                    *m += w[usize::from(j)];
                }
            });
    }
}

/// Levels whose nodes [`leaves_of_block`] takes in whole-block passes: at most 16 nodes, so a
/// node index fits a `u8` lane.
const MASKED_LEVELS: usize = 5;

/// The leaf (node index at the last level) each row of `rows` ends in, down the levels of one
/// class tree (`table[level][node]`: split feature and bin; bin 255 sends every row left).
/// The top levels go node by node over the whole block, comparing `u8` lanes the compiler
/// vectorises (a row's node is a mask, not an index); deeper levels look their node up row
/// by row.
pub(super) fn leaves_of_block(
    table: &[Vec<(usize, u8)>],
    columns: &[Vec<u8>],
    rows: Range<usize>,
) -> Vec<u16> {
    let len = rows.len();
    let mut node = vec![0u8; len];
    let mut right = vec![0u8; len];
    for level in table.iter().take(MASKED_LEVELS) {
        for (j, &(feature, bin)) in level.iter().enumerate() {
            let column = &columns[feature][rows.clone()];
            let j = j as u8;
            for ((r, &n), &c) in right.iter_mut().zip(&node).zip(column) {
                *r |= u8::from(n == j) & u8::from(c > bin);
            }
        }
        for (n, r) in node.iter_mut().zip(right.iter_mut()) {
            *n = 2 * *n + *r;
            *r = 0;
        }
    }
    let mut node: Vec<u16> = node.into_iter().map(u16::from).collect();
    for level in table.iter().skip(MASKED_LEVELS) {
        // Each node's split column over this block's rows.
        let split: Vec<(&[u8], u8)> = level
            .iter()
            .map(|&(feature, bin)| (&columns[feature][rows.clone()], bin))
            .collect();
        for (r, j) in node.iter_mut().enumerate() {
            let (column, bin) = split[usize::from(*j)];
            *j = 2 * *j + u16::from(column[r] > bin);
        }
    }
    node
}

/// Grows one round's class trees on a set of rows.
struct Grower<'a> {
    f: usize,
    k: usize,
    bins_used: Vec<usize>,
    params: &'a GbdtParams,
}

impl Grower<'_> {
    /// The class trees of one round on the rows of `bins` (row-major), with
    /// `gh[c][i]` row i's (g, h) for class c: every level's splits, the rows of each leaf, and
    /// each class's leaf weights (learning rate applied).
    fn grow(
        &self,
        bins: &[u8],
        gh: &[Vec<[f32; 2]>],
    ) -> (Vec<Level>, Vec<Partition>, Vec<Vec<f32>>) {
        let (f, k) = (self.f, self.k);
        let n = gh[0].len();
        let depth = self.params.max_depth;
        let mut parts: Vec<Partition> = (0..k)
            .map(|_| Partition {
                rows: (0..n as u32).collect(),
                start: vec![0, n],
            })
            .collect();
        // This level's histograms, by class then node.
        let mut hists: Vec<Vec<Hist>> = root_histogram(bins, gh, f)
            .into_iter()
            .map(|h| vec![h])
            .collect();
        let mut levels: Vec<Level> = Vec::with_capacity(depth);
        for level in 0..depth {
            let nodes = 1usize << level;
            let (lv, splits) = self.level_splits(&hists, nodes);
            self.partition_level(bins, &splits, nodes, &mut parts);
            levels.push(lv);
            if level + 1 < depth {
                hists = self.children_histograms(bins, gh, hists, &parts, nodes);
            }
        }
        let weights = self.leaf_weights(gh, &parts);
        (levels, parts, weights)
    }

    /// The best split of each (class, node) of a level with `nodes` nodes: as a [`Level`]
    /// (a node without one keeps the last bin) and as the partition step reads them.
    fn level_splits(
        &self,
        hists: &[Vec<Hist>],
        nodes: usize,
    ) -> (Level, Vec<Option<(usize, usize)>>) {
        let k = self.k;
        let kl = k * nodes;
        let (lambda, mcw) = (self.params.l2, self.params.min_child_weight);
        let splits: Vec<Option<(usize, usize)>> = (0..kl)
            .into_par_iter()
            .map(|s| best_split(&hists[s % k][s / k], &self.bins_used, lambda, mcw))
            .collect();
        let mut lv = Level {
            split: vec![false; kl],
            feature: vec![0; kl],
            bin: vec![self.params.max_bins as i64 - 1; kl],
        };
        for (s, split) in splits.iter().enumerate() {
            if let Some((feature, bin)) = *split {
                lv.split[s] = true;
                lv.feature[s] = feature as i64;
                lv.bin[s] = bin as i64;
            }
        }
        (lv, splits)
    }

    /// Each class tree's rows of every node split into its two children, in place.
    fn partition_level(
        &self,
        bins: &[u8],
        splits: &[Option<(usize, usize)>],
        nodes: usize,
        parts: &mut [Partition],
    ) {
        let (f, k) = (self.f, self.k);
        parts.par_iter_mut().enumerate().for_each(|(c, part)| {
            let n = part.rows.len();
            let mut start = Vec::with_capacity(2 * nodes + 1);
            for j in 0..nodes {
                let (lo, hi) = (part.start[j], part.start[j + 1]);
                let left = match splits[j * k + c] {
                    Some((feature, bin)) => {
                        partition(&bins[feature..], f, &mut part.rows[lo..hi], bin as u8)
                    }
                    // No split: every row goes left.
                    None => hi - lo,
                };
                start.extend([lo, lo + left]);
            }
            start.push(n);
            part.start = start;
        });
    }

    /// The children's histograms: the smaller child from its rows, the larger as the parent
    /// minus it; every (class, node) on the threads (deep nodes are smaller than one
    /// histogram chunk, so one node alone would keep one thread busy).
    fn children_histograms(
        &self,
        bins: &[u8],
        gh: &[Vec<[f32; 2]>],
        hists: Vec<Vec<Hist>>,
        parts: &[Partition],
        nodes: usize,
    ) -> Vec<Vec<Hist>> {
        let f = self.f;
        let parents: Vec<(usize, usize, Hist)> = hists
            .into_iter()
            .enumerate()
            .flat_map(|(c, parents)| {
                parents
                    .into_iter()
                    .enumerate()
                    .map(move |(j, parent)| (c, j, parent))
            })
            .collect();
        let children: Vec<[Hist; 2]> = parents
            .into_par_iter()
            .map(|(c, j, mut parent)| {
                let part = &parts[c];
                let range = |node: usize| part.start[node]..part.start[node + 1];
                let (left, right) = (range(2 * j), range(2 * j + 1));
                let left_smaller = left.len() <= right.len();
                let small_rows = if left_smaller { left } else { right };
                let small = if small_rows.is_empty() {
                    empty_hist(f)
                } else {
                    node_histogram(bins, &gh[c], f, &part.rows[small_rows])
                };
                subtract(&mut parent, &small);
                if left_smaller {
                    [small, parent]
                } else {
                    [parent, small]
                }
            })
            .collect();
        let mut children = children.into_iter();
        (0..self.k)
            .map(|_| children.by_ref().take(nodes).flatten().collect())
            .collect()
    }

    /// Leaf weights from the (G, H) sums of each leaf's rows, in row order:
    /// `-eta G / (H + l2)`, 0 for a leaf without weight.
    fn leaf_weights(&self, gh: &[Vec<[f32; 2]>], parts: &[Partition]) -> Vec<Vec<f32>> {
        let (lambda, eta) = (self.params.l2, self.params.learning_rate);
        let leaves = 1usize << self.params.max_depth;
        parts
            .par_iter()
            .enumerate()
            .map(|(c, part)| {
                (0..leaves)
                    .map(|j| {
                        let (g, h) = part.rows[part.start[j]..part.start[j + 1]].iter().fold(
                            (0.0f64, 0.0f64),
                            |(g, h), &i| {
                                let [gi, hi] = gh[c][i as usize];
                                (g + f64::from(gi), h + f64::from(hi))
                            },
                        );
                        if h > 0.0 {
                            (-eta * g / (h + lambda)) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn data(n: usize, f: usize, seed: u64) -> (Matrix, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Matrix::new(n, f, (0..n * f).map(|_| rng.random::<f32>()).collect());
        let y = (0..n)
            .map(|i| {
                let v = x.get(i, 0) + 0.5 * x.get(i, 2) + 0.1 * rng.random::<f32>();
                u32::from(v > 0.55) + u32::from(v > 1.0)
            })
            .collect();
        (x, y)
    }

    fn params(rounds: usize, depth: usize, bins: usize) -> GbdtParams {
        GbdtParams {
            rounds,
            max_depth: depth,
            learning_rate: 0.3,
            l2: 1.0,
            min_child_weight: 0.5,
            subsample: 1.0,
            max_rows_per_tree: 0,
            max_bins: bins,
            early_stopping_rounds: 0,
            validation_fraction: 0.1,
            early_stopping_min_rows: 0,
        }
    }

    fn same_trees(a: &GbdtModel, b: &GbdtModel, tolerance: f32) {
        assert_eq!(a.trees.len(), b.trees.len());
        for (t, (a, b)) in a.trees.iter().zip(&b.trees).enumerate() {
            assert_eq!(a.nodes.len(), b.nodes.len(), "tree {t}");
            for (u, v) in a.nodes.iter().zip(&b.nodes) {
                assert_eq!(
                    (u.feature, u.threshold),
                    (v.feature, v.threshold),
                    "tree {t}"
                );
                assert!(
                    (u.value - v.value).abs() <= tolerance,
                    "tree {t}: {} vs {}",
                    u.value,
                    v.value
                );
            }
        }
    }

    #[test]
    fn host_fit_gives_the_tensor_implementations_trees() {
        // More rows than a chunk, so that partial histograms are summed; subsampled rows too.
        let (x, y) = data(40_000, 4, 3);
        let mut p = params(3, 3, 64);
        p.subsample = 0.8;
        let host = fit(&x, &y, 3, &p, 5, |_, _, _| Ok(true)).unwrap();
        let tensor =
            super::super::fit_tensor(&x, &y, 3, &p, 5, &Device::flex(), |_| Ok(())).unwrap();
        same_trees(&host, &tensor, 1e-4);
    }

    #[test]
    fn the_same_seed_gives_the_same_model_on_one_thread_and_on_two() {
        let (x, y) = data(50_000, 5, 8);
        let p = params(4, 4, 256);
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit(&x, &y, 3, &p, 1, |_, _, _| Ok(true)).unwrap())
        };
        let one = on(1);
        assert_eq!(one, on(2), "bit for bit");
        assert_eq!(one, on(3));
    }

    #[test]
    fn routing_rows_down_the_levels_lands_them_where_the_partition_put_them() {
        // Depth 4 routes every level in whole-block passes, depth 7 also row by row.
        for depth in [4, 7] {
            routing_lands_rows_where_the_partition_put_them(depth);
        }
    }

    fn routing_lands_rows_where_the_partition_put_them(depth: usize) {
        let (x, y) = data(30_000, 6, 11);
        let p = params(1, depth, 64);
        let binner = Binner::fit(&x, p.max_bins);
        let bins = binner.bin_matrix_u8(&x);
        let f = x.cols();
        let columns: Vec<Vec<u8>> = (0..f)
            .map(|j| bins.iter().skip(j).step_by(f).copied().collect())
            .collect();
        let grower = Grower {
            f,
            k: 3,
            bins_used: binner.cuts.iter().map(|c| c.len() + 1).collect(),
            params: &p,
        };
        let margin = vec![vec![0f32; x.rows()]; 3];
        let mut gh = vec![vec![[0f32; 2]; x.rows()]; 3];
        gradients(&margin, &y, None, &mut gh);
        let (levels, parts, weights) = grower.grow(&bins, &gh);
        let mut routed = margin.clone();
        route_and_add(&columns, &levels, 3, &weights, &mut routed);
        for (c, part) in parts.iter().enumerate() {
            for leaf in 0..part.start.len() - 1 {
                for &i in &part.rows[part.start[leaf]..part.start[leaf + 1]] {
                    assert_eq!(routed[c][i as usize], weights[c][leaf], "class {c} row {i}");
                }
            }
        }
    }

    #[test]
    fn sampled_rounds_are_the_same_on_one_thread_and_on_two_and_still_learn() {
        let (x, y) = data(40_000, 5, 9);
        let full = params(15, 4, 256);
        let mut sampled = full.clone();
        sampled.max_rows_per_tree = 8_000;
        let on = |threads: usize, p: &GbdtParams| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit(&x, &y, 3, p, 1, |_, _, _| Ok(true)).unwrap())
        };
        let one = on(1, &sampled);
        assert_eq!(one, on(2, &sampled), "bit for bit");
        let accuracy = |m: &GbdtModel| {
            let p = m.predict_proba(&x);
            let right = p
                .chunks_exact(3)
                .zip(&y)
                .filter(|(p, y)| super::super::super::argmax(p) == **y)
                .count();
            right as f64 / y.len() as f64
        };
        let all_rows = on(2, &full);
        assert_ne!(one, all_rows, "the sample changes the trees");
        assert!(
            accuracy(&one) > accuracy(&all_rows) - 0.01,
            "{} vs {}",
            accuracy(&one),
            accuracy(&all_rows)
        );
    }
}
