//! The GBDT's custom operations in plain Rust for the CPU: XGBoost's `hist` algorithm on `u8`
//! bins, with row partitions per node, per-chunk local histograms on the rayon threads and
//! the smaller child built from its rows (the larger one is its parent minus it).
//!
//! The operations (`root_histogram`, `node_histogram`, `best_split`, `partition`) are the
//! same steps the tensor trainer in [`super::tensor`] runs as burn tensor code on the wgpu
//! backend; the tests hold each to that generic version and the whole fit to the plain
//! reference. Histograms are summed in `f64`, chunk by chunk in a fixed order, so a seed gives
//! the same trees whatever the number of threads.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::ops::Range;

use super::trees::{Level, build_tree};
use super::{Binner, GbdtModel, ROUND_SEED_SALT, subsample_mask};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::train::classifier::config::GbdtParams;

/// Rows per histogram task: a task's local histogram stays in the core's cache, and the chunks
/// (not the threads) fix the order in which partial sums are added.
pub(super) const CHUNK_ROWS: usize = 16_384;

/// One feature's (gradient, hessian) sums per bin; bins are `u8`, so indexing needs no check.
pub(super) type FeatureHist = [[f64; 2]; 256];

/// The histogram of one node of one class tree: a [`FeatureHist`] per feature.
pub(super) type Hist = Vec<FeatureHist>;

fn empty_hist(f: usize) -> Hist {
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
fn subtract(parent: &mut [FeatureHist], child: &[FeatureHist]) {
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
