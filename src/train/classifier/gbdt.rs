//! Gradient-boosted trees for k classes with a softmax objective, the histogram method of
//! XGBoost's `hist`, as burn tensor code.
//!
//! Features are cut into at most `max_bins` quantile bins once, on the host. Each round then
//! runs on the training device: softmax gradients and hessians; for each depth level the
//! (gradient, hessian) histograms of every node of all k class trees; a cumulative sum over
//! bins gives every candidate split's left/right sums; the gain (XGBoost's, with L2 `l2` and
//! `min_child_weight`) is maximised per node; rows are routed to children by a gather of their
//! bin. Only the best split of each node (a few numbers) crosses to the host. Leaves get
//! -G / (H + l2) times the learning rate.
//!
//! Histograms, as in XGBoost: the root is one node shared by the k class trees, so one
//! scatter-add index per row and feature carries all classes' (g, h). Below it only the left
//! children are built, from their rows alone (picked out with `argwhere`), and a right child is
//! its parent minus its sibling: half the rows are added per level.
//!
//! Rows are split into blocks with their own buffers (bins, margins, gradients, node ids):
//! on a CPU backend the blocks run on the rayon threads, a fixed size so that the trees do not
//! depend on the core count, and their histograms are summed in block order; on a GPU there
//! is one block.
//!
//! The fitted form is explicit: per round and class a tree of node arrays (feature, threshold,
//! children, leaf value) with "left when x <= threshold", which is what ONNX-ML's
//! TreeEnsembleClassifier (BRANCH_LEQ) takes.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::softmax;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::GbdtParams;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::train::device::is_cpu;
use crate::train::tensor::download;

mod host;
mod kernels;

/// Quantile cut points per feature: bin(x) = number of cuts below x.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binner {
    pub cuts: Vec<Vec<f32>>,
}

impl Binner {
    pub fn fit(x: &Matrix, max_bins: usize) -> Self {
        // Quantiles of big data from an evenly spaced sample of its rows (as LightGBM's
        // 200,000-row bin sample): the cuts barely move, and sorting stays cheap.
        let n = x.rows();
        let sample: Option<Vec<usize>> = (n > BINNER_SAMPLE_ROWS).then(|| {
            (0..BINNER_SAMPLE_ROWS)
                .map(|q| q * n / BINNER_SAMPLE_ROWS)
                .collect()
        });
        let cuts = (0..x.cols())
            .into_par_iter()
            .map(|j| {
                let mut col = match &sample {
                    Some(rows) => rows.iter().map(|&i| x.get(i, j)).collect(),
                    None => x.column(j),
                };
                crate::sort::sort_f32(&mut col);
                let mut uniq = col.clone();
                uniq.dedup();
                if uniq.len() <= max_bins {
                    uniq.pop(); // every distinct value its own bin: cut below the largest
                    return uniq;
                }
                let n = col.len();
                let mut cuts: Vec<f32> = (1..max_bins).map(|q| col[q * n / max_bins]).collect();
                cuts.dedup();
                let max = *col.last().expect("column has values");
                cuts.retain(|&c| c < max);
                cuts
            })
            .collect();
        Binner { cuts }
    }

    #[inline]
    pub fn bin(&self, feature: usize, value: f32) -> usize {
        self.cuts[feature].partition_point(|&c| c < value)
    }

    /// Bins of every value as bytes, row-major (at most 256 bins).
    pub fn bin_matrix_u8(&self, x: &Matrix) -> Vec<u8> {
        let cols = x.cols();
        let mut out = vec![0u8; x.as_slice().len()];
        out.par_chunks_mut(cols * 4096)
            .zip(x.as_slice().par_chunks(cols * 4096))
            .for_each(|(out, rows)| {
                for (o, row) in out.chunks_exact_mut(cols).zip(rows.chunks_exact(cols)) {
                    for (j, (o, &v)) in o.iter_mut().zip(row).enumerate() {
                        *o = self.bin(j, v) as u8;
                    }
                }
            });
        out
    }

    /// Bins of every value, row-major.
    pub fn bin_matrix(&self, x: &Matrix) -> Vec<i64> {
        let cols = x.cols();
        x.as_slice()
            .par_chunks(cols * 4096)
            .flat_map_iter(|rows| {
                rows.chunks_exact(cols).flat_map(move |row| {
                    row.iter()
                        .enumerate()
                        .map(move |(j, &v)| self.bin(j, v) as i64)
                })
            })
            .collect()
    }
}

/// One node of a tree: a split (`feature >= 0`) or a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// Feature index, or -1 for a leaf.
    pub feature: i32,
    /// Rows with `x[feature] <= threshold` go left.
    pub threshold: f32,
    pub left: u32,
    pub right: u32,
    /// Leaf value (added to the class margin).
    pub value: f32,
}

/// One regression tree, adding to the margin of `class`. Node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub class: usize,
    pub nodes: Vec<TreeNode>,
}

impl Tree {
    #[inline]
    pub fn predict(&self, x: &[f32]) -> f32 {
        let mut i = 0usize;
        loop {
            let n = &self.nodes[i];
            if n.feature < 0 {
                return n.value;
            }
            i = if x[n.feature as usize] <= n.threshold {
                n.left
            } else {
                n.right
            } as usize;
        }
    }
}

/// A [`Tree`] on `u8` bins, for scoring blocks of rows level by level with the host's router
/// ([`host::leaves_of_block`]): the tree as a complete tree in heap order (a leaf above the
/// last level fills all the leaves below it, and the nodes below it send every row left),
/// each threshold as its index among the feature's cut points. A row binned by [`bin_u8`]
/// with those cuts ends in the leaf [`Tree::predict`] gives it.
struct BinnedTree {
    class: usize,
    /// Per level, per node: split feature and bin (255: every row left).
    table: Vec<Vec<(usize, u8)>>,
    /// One value per last-level leaf.
    leaves: Vec<f32>,
}

impl BinnedTree {
    /// `None` when a threshold is not among `cuts` (a tree not grown on them).
    fn new(tree: &Tree, cuts: &[Vec<f32>]) -> Option<Self> {
        fn depth_of(t: &Tree, id: usize) -> usize {
            let n = &t.nodes[id];
            if n.feature < 0 {
                0
            } else {
                1 + depth_of(t, n.left as usize).max(depth_of(t, n.right as usize))
            }
        }
        fn fill(
            t: &Tree,
            cuts: &[Vec<f32>],
            id: usize,
            level: usize,
            j: usize,
            out: &mut BinnedTree,
        ) -> Option<()> {
            let n = &t.nodes[id];
            if n.feature < 0 {
                let below = out.table.len() - level;
                out.leaves[j << below..(j + 1) << below].fill(n.value);
                return Some(());
            }
            let feature = n.feature as usize;
            let bin = cuts
                .get(feature)?
                .binary_search_by(|c| c.total_cmp(&n.threshold))
                .ok()
                .filter(|&b| b < 255)?;
            out.table[level][j] = (feature, bin as u8);
            fill(t, cuts, n.left as usize, level + 1, 2 * j, out)?;
            fill(t, cuts, n.right as usize, level + 1, 2 * j + 1, out)
        }
        let depth = depth_of(tree, 0);
        let mut out = BinnedTree {
            class: tree.class,
            table: (0..depth).map(|l| vec![(0, u8::MAX); 1 << l]).collect(),
            leaves: vec![0.0; 1 << depth],
        };
        fill(tree, cuts, 0, 0, 0, &mut out)?;
        Some(out)
    }

    /// Adds the tree's value to `margin[r * k + class]` of each row r of a block whose bins
    /// are `columns[feature][r]`.
    fn add(&self, columns: &[Vec<u8>], k: usize, margin: &mut [f32]) {
        let node = host::leaves_of_block(&self.table, columns, 0..margin.len() / k);
        for (m, &j) in margin.chunks_exact_mut(k).zip(&node) {
            m[self.class] += self.leaves[usize::from(j)];
        }
    }
}

/// Adds every tree's value to `margin[r * k + class]` of each row-major row of `rows` (`cols`
/// values each) by walking the trees: where [`BinnedTree`] cannot score them.
fn walk_trees(trees: &[Tree], rows: &[f32], cols: usize, k: usize, margin: &mut [f32]) {
    for (m, row) in margin.chunks_exact_mut(k).zip(rows.chunks_exact(cols)) {
        for t in trees {
            m[t.class] += t.predict(row);
        }
    }
}

/// A value's bin among sorted `cuts` (at most 255): the number of cuts below it, and 255 for
/// NaN, which goes right at every split as in [`Tree::predict`].
fn bin_u8(cuts: &[f32], x: f32) -> u8 {
    if x.is_nan() {
        u8::MAX
    } else {
        cuts.partition_point(|&c| c < x) as u8
    }
}

/// Row-major `rows` (`cuts.len()` values each) binned, feature-major.
fn bin_block(rows: &[f32], cuts: &[Vec<f32>]) -> Vec<Vec<u8>> {
    let cols = cuts.len().max(1);
    cuts.iter()
        .enumerate()
        .map(|(j, cuts)| {
            rows.iter()
                .skip(j)
                .step_by(cols)
                .map(|&x| bin_u8(cuts, x))
                .collect()
        })
        .collect()
}

/// The trees on `u8` bins of their own thresholds, when no feature has more than 255 distinct
/// ones (true of every tree grown here: they split on at most 255 cuts per feature).
fn binned_trees(trees: &[Tree], features: usize) -> Option<(Vec<Vec<f32>>, Vec<BinnedTree>)> {
    let mut cuts = vec![Vec::new(); features];
    for node in trees.iter().flat_map(|t| &t.nodes) {
        if node.feature >= 0 {
            cuts.get_mut(node.feature as usize)?.push(node.threshold);
        }
    }
    for c in &mut cuts {
        c.sort_by(f32::total_cmp);
        c.dedup_by(|a, b| a.total_cmp(b).is_eq());
        if c.len() > 255 {
            return None;
        }
    }
    let trees = trees
        .iter()
        .map(|t| BinnedTree::new(t, &cuts))
        .collect::<Option<Vec<_>>>()?;
    Some((cuts, trees))
}

/// A fitted boosted ensemble: margins are sums of tree values per class, probabilities their softmax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtModel {
    pub k: usize,
    pub n_features: usize,
    pub trees: Vec<Tree>,
    /// How early stopping went, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
}

/// Early stopping's record: boosting ran `rounds_run` rounds and kept the first `best_round`
/// (the lowest log loss on the held-out rows, XGBoost's `mlogloss`; an earlier round wins a
/// tie).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub rounds_run: usize,
    pub best_round: usize,
    pub validation_rows: usize,
    /// Misclassified share of the held-out rows at the best round.
    pub validation_error: f64,
    /// Mean cross-entropy of the held-out rows at the best round.
    #[serde(default)]
    pub validation_loss: f64,
}

impl GbdtModel {
    /// Class probabilities of every row, row-major n x k.
    pub fn predict_proba(&self, x: &Matrix) -> Vec<f32> {
        // Rows are independent: blocks of them on the threads, put back in order. Within a
        // block each tree takes every row in turn, level by level on the rows' bins (see
        // [`BinnedTree`]); a row still adds its trees' values in tree order.
        let cols = x.cols().max(1);
        let binned = binned_trees(&self.trees, x.cols());
        let parts: Vec<Vec<f32>> = x
            .as_slice()
            .par_chunks(cols * 1024)
            .map(|rows| {
                let mut margin = vec![0f32; rows.len() / cols * self.k];
                match &binned {
                    Some((cuts, trees)) => {
                        let columns = bin_block(rows, cuts);
                        for t in trees {
                            t.add(&columns, self.k, &mut margin);
                        }
                    }
                    None => walk_trees(&self.trees, rows, cols, self.k, &mut margin),
                }
                let mut out = Vec::with_capacity(margin.len());
                for m in margin.chunks_exact(self.k) {
                    super::softmax_into(m, &mut out);
                }
                out
            })
            .collect();
        parts.concat()
    }
}

/// Above this many rows the bin cuts come from a sample of this many.
const BINNER_SAMPLE_ROWS: usize = 1 << 18;

/// Rows per block on the CPU backends: each block's state lives in its own buffers and its
/// work (gradients, histograms, routing) runs on a rayon thread.
const HIST_BLOCK_ROWS: usize = 65_536;
/// Rows per scatter-add within a block on the CPU backends: its temporaries stay in cache.
const HIST_SUB_BLOCK_ROWS: usize = 8_192;

/// The best split of every node at one level, for all classes: index `node * k + class`.
struct Level {
    split: Vec<bool>,
    feature: Vec<i64>,
    bin: Vec<i64>,
}

/// Sizes of the histograms: k classes, f features, B bins; rows per scatter-add.
#[derive(Clone, Copy)]
struct HistShape {
    k: usize,
    f: usize,
    b: usize,
    sub_block: usize,
}

/// A block of training rows and its state, in the block's own buffers (flex copies a view of
/// a bigger tensor on every use, and one block's work runs on one thread).
struct Block {
    len: usize,
    /// Feature j's bin offset by j * B, row-major [len, f]: routing picks a row's split feature.
    bins: Tensor<2, Int>,
    /// The same, feature-major [f, len]: one feature's run of rows for the root histograms.
    base: Tensor<2, Int>,
    /// The plain bins, each twice (for the g and the h column), [len, 2f]: the children's
    /// histograms.
    pair_bins: Tensor<2, Int>,
    y_onehot: Tensor<2>,
    margin: Tensor<2>,
    /// This round's (g, h) of all classes of a row together, [len, 2k] (the shared root).
    gh_rows: Tensor<2>,
    /// This round's (g, h) of each class, [len, 2] each.
    gh: Vec<Tensor<2>>,
    /// Each class tree's node of each row, [len, k].
    node: Tensor<2, Int>,
    /// Histograms by the custom kernels (`kernels`) instead of the generic tensor code.
    kernels: bool,
}

impl Block {
    /// `bins` row-major [len, f], `y` the block's labels.
    fn new(bins: &[i64], y: &[u32], shape: HistShape, device: &Device, kernels: bool) -> Self {
        let HistShape { k, f, b, .. } = shape;
        let len = y.len();
        let pair_bins: Vec<i64> = bins.iter().flat_map(|&bin| [bin, bin]).collect();
        let mut offset = vec![0i64; len * f];
        let mut feature_major = vec![0i64; len * f];
        for (i, row) in bins.chunks_exact(f).enumerate() {
            for (j, &bin) in row.iter().enumerate() {
                let at = (j * b) as i64 + bin;
                offset[i * f + j] = at;
                feature_major[j * len + i] = at;
            }
        }
        let mut onehot = vec![0f32; len * k];
        for (i, &l) in y.iter().enumerate() {
            onehot[i * k + l as usize] = 1.0;
        }
        let int = |v: Vec<i64>, shape: [usize; 2]| {
            Tensor::<2, Int>::from_data(TensorData::new(v, shape), device)
        };
        Block {
            len,
            bins: int(offset, [len, f]),
            base: int(feature_major, [f, len]),
            pair_bins: int(pair_bins, [len, 2 * f]),
            y_onehot: Tensor::from_data(TensorData::new(onehot, [len, k]), device),
            margin: Tensor::zeros([len, k], device),
            gh_rows: Tensor::zeros([len, 2 * k], device),
            gh: Vec::new(),
            node: Tensor::zeros([len, k], device),
            kernels,
        }
    }

    /// Softmax gradients and hessians of the current margins (times the row mask when rows
    /// are subsampled); every row back at the root.
    fn start_round(&mut self, k: usize, mask: Option<&[f32]>) {
        let len = self.len;
        let device = self.margin.device();
        let p = softmax(self.margin.clone(), 1);
        let mut g = p.clone() - self.y_onehot.clone();
        let mut h = (p.clone() * (p.neg().add_scalar(1.0)))
            .mul_scalar(2.0)
            .clamp_min(1e-16);
        if let Some(mask) = mask {
            let mask = Tensor::<2>::from_data(TensorData::new(mask.to_vec(), [len, 1]), &device);
            g = g * mask.clone();
            h = h * mask;
        }
        self.gh_rows = Tensor::cat(
            vec![
                g.clone().reshape([len, k, 1]),
                h.clone().reshape([len, k, 1]),
            ],
            2,
        )
        .reshape([len, 2 * k]);
        self.gh = (0..k)
            .map(|c| {
                Tensor::cat(
                    vec![g.clone().narrow(1, c, 1), h.clone().narrow(1, c, 1)],
                    1,
                )
            })
            .collect();
        self.node = Tensor::zeros([len, k], &device);
    }

    /// The root histograms, [f * B, 2k]: the root is the same node in every class tree, so
    /// one index per row and feature (its offset bin) adds the (g, h) of all classes. Added a
    /// sub-block and a feature at a time into one histogram updated in place.
    fn root_hist(&self, shape: HistShape) -> Tensor<2> {
        let HistShape { k, f, b, sub_block } = shape;
        if self.kernels {
            return kernels::root_histograms(&self.bins, &self.gh_rows, b);
        }
        let mut hist = Tensor::<2>::zeros([f * b, 2 * k], &self.margin.device());
        let mut at = 0;
        while at < self.len {
            let len = sub_block.min(self.len - at);
            // A fresh buffer: a view would be copied by every scatter below.
            let values = self.gh_rows.clone().narrow(0, at, len).mul_scalar(1.0);
            for j in 0..f {
                let slot = self.base.clone().narrow(0, j, 1).narrow(1, at, len);
                hist = hist.select_assign(
                    0,
                    slot.reshape([len]),
                    values.clone(),
                    IndexingUpdateOp::Add,
                );
            }
            at += len;
        }
        hist
    }

    /// The histograms of the left children of `parents` nodes, [parents * k * B, 2f], row
    /// (parent * k + class) * B + bin, column 2 * feature (+1 for h). Each class's left-child
    /// rows are picked out first (`argwhere`), so half the rows are added and the other half
    /// never touched (a right child is its parent minus its sibling); then one scatter-add
    /// per sub-block takes every feature of those rows at once.
    fn left_hist(&self, shape: HistShape, parents: usize, pick: &Tensor<2>) -> Tensor<2> {
        let HistShape { k, f, b, sub_block } = shape;
        if self.kernels {
            return kernels::left_histograms(&self.bins, &self.node, &self.gh_rows, parents, b);
        }
        let mut hist = Tensor::<2>::zeros([parents * k * b, 2 * f], &self.margin.device());
        for c in 0..k {
            let class_node = self.node.clone().narrow(1, c, 1).reshape([self.len]);
            let rows = class_node
                .clone()
                .remainder_scalar(2)
                .equal_elem(0)
                .argwhere();
            let m = rows.dims()[0];
            if m == 0 {
                continue;
            }
            let rows = rows.reshape([m]);
            let parent_slot = class_node
                .select(0, rows.clone())
                .div_scalar(2)
                .mul_scalar((k * b) as i64)
                .add_scalar((c * b) as i64)
                .reshape([m, 1]);
            let mut at = 0;
            while at < m {
                let len = sub_block.min(m - at);
                let rows = rows.clone().narrow(0, at, len);
                let slots = parent_slot.clone().narrow(0, at, len)
                    + self.pair_bins.clone().select(0, rows.clone()); // [len, 2f]
                // (g, h) once per feature, [len, 2f]: a product with the 0/1 `pick` [2, 2f]
                // (an exact copy) writes it in one pass, where an expand copies 8 bytes at a
                // time.
                let values = self.gh[c].clone().select(0, rows).matmul(pick.clone());
                hist = hist.scatter(0, slots, values, IndexingUpdateOp::Add);
                at += len;
            }
        }
        hist
    }

    /// Each row's slot `node * k + class`, flat [len * k].
    fn slots(&self, k: usize, class_index: &Tensor<2, Int>) -> Tensor<1, Int> {
        (self.node.clone().mul_scalar(k as i64) + class_index.clone()).reshape([self.len * k])
    }

    /// Sends each row to a child: right when its bin of the split feature is above the split
    /// bin (both offset by feature * B). `split_feature`, `split_bin`: by `node * k + class`.
    fn route(
        &mut self,
        k: usize,
        class_index: &Tensor<2, Int>,
        split_feature: &Tensor<1, Int>,
        split_bin: &Tensor<1, Int>,
    ) {
        if self.kernels {
            self.node = kernels::route_rows(&self.bins, &self.node, split_feature, split_bin);
            return;
        }
        let len = self.len;
        let at = self.slots(k, class_index);
        let feature_of_row = split_feature
            .clone()
            .select(0, at.clone())
            .reshape([len, k]);
        let bin_of_split = split_bin.clone().select(0, at).reshape([len, k]);
        let value = self.bins.clone().gather(1, feature_of_row);
        self.node = self.node.clone().mul_scalar(2) + value.greater(bin_of_split).int();
    }

    /// The (G, H) sums of the block's rows in each leaf, [k * leaves, 2].
    fn leaf_sums(&self, k: usize, leaves: usize, class_index: &Tensor<2, Int>) -> Tensor<2> {
        Tensor::<2>::zeros([k * leaves, 2], &self.margin.device()).select_assign(
            0,
            self.slots(k, class_index),
            self.gh_rows.clone().reshape([self.len * k, 2]),
            IndexingUpdateOp::Add,
        )
    }

    /// Adds each row's leaf weight (`weights` by `node * k + class`) to its margins.
    fn add_leaves(&mut self, k: usize, class_index: &Tensor<2, Int>, weights: &Tensor<1>) {
        let at = self.slots(k, class_index);
        self.margin = self.margin.clone() + weights.clone().select(0, at).reshape([self.len, k]);
    }
}

/// Sums per-block tensors in block order: the same trees whatever the number of threads.
fn sum_in_order(partial: Vec<Tensor<2>>) -> Tensor<2> {
    partial
        .into_iter()
        .reduce(|a, b| a + b)
        .expect("at least one block")
}

/// Fits the ensemble on `x` (preprocessed features) and `y` (labels below `k`). The CPU runs
/// the host operations ([`host`]), other devices the tensor implementation. With
/// `early_stopping_rounds` set and at least `early_stopping_min_rows` rows, a seeded
/// `validation_fraction` of the rows is held out, and boosting stops once their loss has not
/// fallen for that many rounds; the trees up to the best round are kept.
pub fn fit(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &GbdtParams,
    seed: u64,
    device: &Device,
    on_round: impl FnMut(usize) -> Result<()>,
) -> Result<GbdtModel> {
    let cpu = is_cpu(device);
    with_early_stopping(x, y, k, params, seed, on_round, |x, y, on_round| {
        if cpu {
            // The CPU runs the host operations: plain Rust on u8 bins and row partitions.
            host::fit(x, y, k, params, seed, on_round)
        } else {
            // A GPU takes all rows in one block.
            fit_in_blocks(x, y, k, params, seed, device, x.rows(), x.rows(), on_round)
        }
    })
}

/// The tensor implementation on any device: on a CPU backend blocks of a fixed size run on the
/// rayon threads (fixed, not one per thread, so the trees do not depend on the core count).
/// The reference for the host operations, and the CPU's path before them (benches compare).
pub fn fit_tensor(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &GbdtParams,
    seed: u64,
    device: &Device,
    on_round: impl FnMut(usize) -> Result<()>,
) -> Result<GbdtModel> {
    let (block, sub) = if is_cpu(device) {
        (HIST_BLOCK_ROWS, HIST_SUB_BLOCK_ROWS)
    } else {
        (x.rows(), x.rows())
    };
    with_early_stopping(x, y, k, params, seed, on_round, |x, y, on_round| {
        fit_in_blocks(x, y, k, params, seed, device, block, sub, on_round)
    })
}

/// Runs `boost` on all rows, or, when early stopping applies, on all but a held-out share
/// whose margins follow each round's trees; stops when their log loss has not fallen for
/// `early_stopping_rounds` rounds and keeps the trees up to the best round.
fn with_early_stopping(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &GbdtParams,
    seed: u64,
    mut on_round: impl FnMut(usize) -> Result<()>,
    boost: impl FnOnce(
        &Matrix,
        &[u32],
        &mut dyn FnMut(usize, &[Tree], &Binner) -> Result<bool>,
    ) -> Result<GbdtModel>,
) -> Result<GbdtModel> {
    let n = x.rows();
    let patience = params.early_stopping_rounds;
    if patience == 0 || n < params.early_stopping_min_rows.max(2) {
        return boost(x, y, &mut |round, _, _| on_round(round).map(|()| true));
    }
    let mut order: Vec<usize> = (0..n).collect();
    rand::seq::SliceRandom::shuffle(
        &mut order[..],
        &mut ChaCha8Rng::seed_from_u64(seed ^ 0x6bd7_e570),
    );
    let n_val = ((n as f64 * params.validation_fraction).ceil() as usize).clamp(1, n - 1);
    let (val_rows, fit_rows) = order.split_at(n_val);
    let (mut val_rows, mut fit_rows) = (val_rows.to_vec(), fit_rows.to_vec());
    // In row order: the fitting rows keep the order of the data, as without a hold-out.
    val_rows.sort_unstable();
    fit_rows.sort_unstable();
    let fit_x = x.gather_rows(&fit_rows);
    let fit_y: Vec<u32> = fit_rows.iter().map(|&i| y[i]).collect();
    let val_x = x.gather_rows(&val_rows);
    let val_y: Vec<u32> = val_rows.iter().map(|&i| y[i]).collect();
    // Held-out rows in blocks, binned (feature-major) once the binner is known.
    const VAL_BLOCK: usize = 4096;
    let mut val_columns: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut margin = vec![0f32; n_val * k];
    let (mut best_round, mut best_loss, mut best_errors, mut rounds_run) = (0, f64::INFINITY, 0, 0);
    let mut model = boost(&fit_x, &fit_y, &mut |round, trees, binner| {
        rounds_run = round;
        // The new trees into the held-out margins, then their mean cross-entropy (smooth,
        // where the error count moves in steps of one row and stalls while the margins still
        // improve) and error count; per-chunk sums added in chunk order.
        let cols = val_x.cols().max(1);
        if val_columns.is_empty() {
            val_columns = val_x
                .as_slice()
                .par_chunks(cols * VAL_BLOCK)
                .map(|rows| bin_block(rows, &binner.cuts))
                .collect();
        }
        let binned: Option<Vec<BinnedTree>> = trees
            .iter()
            .map(|t| BinnedTree::new(t, &binner.cuts))
            .collect();
        let parts: Vec<(f64, usize)> = margin
            .par_chunks_mut(k * VAL_BLOCK)
            .zip(val_columns.par_iter())
            .zip(val_x.as_slice().par_chunks(cols * VAL_BLOCK))
            .zip(val_y.par_chunks(VAL_BLOCK))
            .map(|(((margin, columns), rows), ys)| {
                match &binned {
                    Some(binned) => binned.iter().for_each(|t| t.add(columns, k, margin)),
                    None => walk_trees(trees, rows, cols, k, margin),
                }
                let (mut loss, mut errors) = (0.0f64, 0usize);
                for (m, &y) in margin.chunks_exact(k).zip(ys) {
                    let max = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = m.iter().map(|v| (v - max).exp()).sum();
                    loss += f64::from(sum.ln() - (m[y as usize] - max));
                    errors += usize::from(super::argmax(m) != y);
                }
                (loss, errors)
            })
            .collect();
        let (loss, errors) = parts
            .iter()
            .fold((0.0, 0), |(l, e), &(pl, pe)| (l + pl, e + pe));
        let loss = loss / n_val as f64;
        if loss < best_loss {
            (best_round, best_loss, best_errors) = (round, loss, errors);
        }
        on_round(round)?;
        Ok(round - best_round < patience)
    })?;
    model.trees.truncate(best_round * k);
    model.early_stopping = Some(EarlyStopping {
        rounds_run,
        best_round,
        validation_rows: n_val,
        validation_error: best_errors as f64 / n_val as f64,
        validation_loss: best_loss,
    });
    Ok(model)
}

/// [`fit`] over row blocks of `block` rows, histograms added `sub_block` rows at a time and
/// summed in block order.
#[allow(clippy::too_many_arguments)]
fn fit_in_blocks(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &GbdtParams,
    seed: u64,
    device: &Device,
    block: usize,
    sub_block: usize,
    mut on_round: impl FnMut(usize, &[Tree], &Binner) -> Result<bool>,
) -> Result<GbdtModel> {
    let (n, f, b) = (x.rows(), x.cols(), params.max_bins);
    if n == 0 || y.len() != n {
        return Err(Error::Training(format!(
            "GBDT needs one label per row ({n} rows, {} labels)",
            y.len()
        )));
    }
    let shape = HistShape {
        k,
        f,
        b,
        sub_block: sub_block.max(1),
    };
    let binner = Binner::fit(x, b);
    let block = block.max(1);
    let use_kernels = kernels::runs_kernels(device);
    let mut blocks: Vec<Block> = {
        let bins = binner.bin_matrix(x);
        bins.par_chunks(block * f)
            .zip(y.par_chunks(block))
            .map(|(bins, y)| Block::new(bins, y, shape, device, use_kernels))
            .collect()
    };
    let grower = TensorGrower::new(k, shape, params, device);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6bd7_0000);
    let mut trees = Vec::with_capacity(params.rounds * k);
    for round in 0..params.rounds {
        let mask = subsample_mask(&mut rng, n, params.subsample);
        blocks.par_iter_mut().enumerate().for_each(|(i, blk)| {
            let mask = mask.as_ref().map(|m| &m[i * block..i * block + blk.len]);
            blk.start_round(k, mask);
        });
        let levels = grower.grow_levels(&mut blocks);
        let weights = grower.leaf_weights(&mut blocks);
        for class in 0..k {
            trees.push(build_tree(
                class,
                k,
                &levels,
                &weights,
                params.max_depth,
                &binner,
            ));
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

/// A round's row sample: 1 for the rows the trees of this round grow on, 0 for the others;
/// None when every row takes part.
fn subsample_mask(rng: &mut ChaCha8Rng, n: usize, subsample: f64) -> Option<Vec<f32>> {
    (subsample < 1.0).then(|| {
        (0..n)
            .map(|_| f32::from(u8::from(rng.random::<f64>() < subsample)))
            .collect()
    })
}

/// What one round of tensor growth needs besides the blocks: the histogram shape, the class
/// index and column picker tensors, and the regularisation.
struct TensorGrower {
    k: usize,
    shape: HistShape,
    depth: usize,
    class_index: Tensor<2, Int>,
    /// [2, 2f]: row r picks the gradient (r = 0) or hessian (r = 1) columns.
    pick: Tensor<2>,
    lambda: f32,
    min_child_weight: f32,
    eta: f32,
    device: Device,
}

impl TensorGrower {
    fn new(k: usize, shape: HistShape, params: &GbdtParams, device: &Device) -> Self {
        let f = shape.f;
        let pick: Vec<f32> = (0..2)
            .flat_map(|r| (0..2 * f).map(move |col| f32::from(u8::from(col % 2 == r))))
            .collect();
        Self {
            k,
            shape,
            depth: params.max_depth,
            class_index: Tensor::<1, Int>::arange(0..k as i64, device).reshape([1, k]),
            pick: Tensor::<2>::from_data(TensorData::new(pick, [2, 2 * f]), device),
            lambda: params.l2 as f32,
            min_child_weight: params.min_child_weight as f32,
            eta: params.learning_rate as f32,
            device: device.clone(),
        }
    }

    /// Grows every class's tree of this round level by level: histograms, best splits, and
    /// the rows routed to the children. The level arrays of the round's trees.
    fn grow_levels(&self, blocks: &mut [Block]) -> Vec<Level> {
        let mut levels: Vec<Level> = Vec::with_capacity(self.depth);
        let mut parent: Option<Tensor<4>> = None;
        for level in 0..self.depth {
            let hist = self.histograms(blocks, level, parent.take());
            let lv = self.best_splits(hist.clone(), level);
            self.route(blocks, &lv, level);
            levels.push(lv);
            if level + 1 < self.depth {
                parent = Some(hist);
            }
        }
        levels
    }

    /// The (G, H) histograms of a level's nodes, [k << level, f, B, 2]: summed over the rows
    /// at the root; below it, the left children summed and the right ones as parent - left.
    fn histograms(&self, blocks: &[Block], level: usize, parent: Option<Tensor<4>>) -> Tensor<4> {
        let HistShape { k, f, b, .. } = self.shape;
        match parent {
            // [f * B, k, 2] -> [k, f, B, 2]
            None => sum_in_order(
                blocks
                    .par_iter()
                    .map(|blk| blk.root_hist(self.shape))
                    .collect(),
            )
            .reshape([f * b, k, 2])
            .swap_dims(0, 1)
            .reshape([k, f, b, 2]),
            Some(parent) => {
                let parents = 1usize << (level - 1);
                let left = sum_in_order(
                    blocks
                        .par_iter()
                        .map(|blk| blk.left_hist(self.shape, parents, &self.pick))
                        .collect(),
                )
                // [parents * k * B, f * 2] -> [parents, 1, k * f * B * 2]
                .reshape([parents * k, b, f, 2])
                .swap_dims(1, 2)
                .reshape([parents, 1, k * f * b * 2]);
                let right = parent.reshape([parents, 1, k * f * b * 2]) - left.clone();
                // Children 2p and 2p + 1 of parent p: node * k + class order.
                Tensor::cat(vec![left, right], 1).reshape([k << level, f, b, 2])
            }
        }
    }

    /// The best split of each node of a level from its histogram: the largest gain over
    /// every (feature, bin), where both children keep `min_child_weight`; none below 1e-6.
    fn best_splits(&self, hist: Tensor<4>, level: usize) -> Level {
        let HistShape { f, b, .. } = self.shape;
        let kl = self.k << level;
        let lambda = self.lambda;
        let cum = hist.cumsum(2);
        let total = cum.clone().narrow(2, b - 1, 1);
        let (gl, hl) = (cum.clone().narrow(3, 0, 1), cum.narrow(3, 1, 1));
        let (gt, ht) = (total.clone().narrow(3, 0, 1), total.narrow(3, 1, 1));
        let (gr, hr) = (gt.clone() - gl.clone(), ht.clone() - hl.clone());
        let score = |g: Tensor<4>, h: Tensor<4>| g.square() / h.add_scalar(lambda).clamp_min(1e-12);
        let gain = score(gl, hl.clone()) + score(gr, hr.clone()) - score(gt, ht);
        let floor = self.min_child_weight.max(1e-12);
        let invalid = hl.lower_elem(floor).bool_or(hr.lower_elem(floor));
        let gain = gain
            .mask_fill(invalid, f32::NEG_INFINITY)
            .reshape([kl, f * b]);
        let (best, arg) = gain.max_dim_with_indices(1);
        let best = download(best);
        let arg = crate::train::tensor::download_int(arg);
        let mut lv = Level {
            split: vec![false; kl],
            feature: vec![0; kl],
            bin: vec![b as i64 - 1; kl],
        };
        for s in 0..kl {
            if best[s].is_finite() && best[s] > 1e-6 {
                lv.split[s] = true;
                lv.feature[s] = arg[s] / b as i64;
                lv.bin[s] = arg[s] % b as i64;
            }
        }
        lv
    }

    /// Sends every row of every block to its child under the level's splits.
    fn route(&self, blocks: &mut [Block], lv: &Level, level: usize) {
        let b = self.shape.b as i64;
        let kl = self.k << level;
        let split_feature =
            Tensor::<1, Int>::from_data(TensorData::new(lv.feature.clone(), [kl]), &self.device);
        let split_bin: Vec<i64> = (0..kl).map(|s| lv.feature[s] * b + lv.bin[s]).collect();
        let split_bin = Tensor::<1, Int>::from_data(TensorData::new(split_bin, [kl]), &self.device);
        blocks
            .par_iter_mut()
            .for_each(|blk| blk.route(self.k, &self.class_index, &split_feature, &split_bin));
    }

    /// Leaf weights from the (G, H) sums of the rows in each leaf, [k * leaves] in node * k +
    /// class order, added to every row's score.
    fn leaf_weights(&self, blocks: &mut [Block]) -> Vec<f32> {
        let (k, leaves) = (self.k, 1usize << self.depth);
        let sums = sum_in_order(
            blocks
                .par_iter()
                .map(|blk| blk.leaf_sums(k, leaves, &self.class_index))
                .collect(),
        );
        let weights: Vec<f32> = download(sums)
            .chunks_exact(2)
            .map(|gh| {
                if gh[1] > 0.0 {
                    -self.eta * gh[0] / (gh[1] + self.lambda)
                } else {
                    0.0
                }
            })
            .collect();
        let w =
            Tensor::<1>::from_data(TensorData::new(weights.clone(), [k * leaves]), &self.device);
        blocks
            .par_iter_mut()
            .for_each(|blk| blk.add_leaves(k, &self.class_index, &w));
        weights
    }
}

/// Turns the level arrays of one class into an explicit tree. A node without a split sends all
/// its rows left at every level below, so it becomes a leaf holding the value they end in.
fn build_tree(
    class: usize,
    k: usize,
    levels: &[Level],
    weights: &[f32],
    depth: usize,
    binner: &Binner,
) -> Tree {
    fn grow(
        t: &mut Vec<TreeNode>,
        class: usize,
        k: usize,
        level: usize,
        j: usize,
        levels: &[Level],
        weights: &[f32],
        depth: usize,
        binner: &Binner,
    ) -> u32 {
        let id = t.len() as u32;
        let s = j * k + class;
        if level == depth || !levels[level].split[s] {
            let value = weights[(j << (depth - level)) * k + class];
            t.push(TreeNode {
                feature: -1,
                threshold: 0.0,
                left: 0,
                right: 0,
                value,
            });
            return id;
        }
        let feature = levels[level].feature[s] as usize;
        let threshold = binner.cuts[feature][levels[level].bin[s] as usize];
        t.push(TreeNode {
            feature: feature as i32,
            threshold,
            left: 0,
            right: 0,
            value: 0.0,
        });
        let left = grow(
            t,
            class,
            k,
            level + 1,
            2 * j,
            levels,
            weights,
            depth,
            binner,
        );
        let right = grow(
            t,
            class,
            k,
            level + 1,
            2 * j + 1,
            levels,
            weights,
            depth,
            binner,
        );
        t[id as usize].left = left;
        t[id as usize].right = right;
        id
    }
    let mut nodes = Vec::new();
    grow(&mut nodes, class, k, 0, 0, levels, weights, depth, binner);
    Tree { class, nodes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(rounds: usize, depth: usize) -> GbdtParams {
        GbdtParams {
            rounds,
            max_depth: depth,
            learning_rate: 0.3,
            l2: 1.0,
            min_child_weight: 1.0,
            subsample: 1.0,
            max_rows_per_tree: 0,
            max_bins: 16,
            early_stopping_rounds: 0,
            validation_fraction: 0.1,
            early_stopping_min_rows: 0,
        }
    }

    /// Every row's class margins as [`Tree::predict`] walks the trees, in tree order.
    fn walked_margins(model: &GbdtModel, x: &Matrix) -> Vec<f32> {
        let mut margin = vec![0f32; x.rows() * model.k];
        for (i, m) in margin.chunks_exact_mut(model.k).enumerate() {
            for t in &model.trees {
                m[t.class] += t.predict(x.row(i));
            }
        }
        let mut out = Vec::new();
        for m in margin.chunks_exact(model.k) {
            super::super::softmax_into(m, &mut out);
        }
        out
    }

    #[test]
    fn scoring_on_bins_gives_the_probabilities_of_walking_the_trees() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (n, f) = (3000, 4);
        let x = Matrix::new(n, f, (0..n * f).map(|_| rng.random::<f32>()).collect());
        let y: Vec<u32> = (0..n)
            .map(|i| u32::from(x.get(i, 0) > 0.4) + u32::from(x.get(i, 1) > 0.7))
            .collect();
        // Depth 7 with 256 bins: trees with leaves above the last level, levels scored in
        // whole-block passes and row by row.
        let mut p = params(4, 7);
        p.max_bins = 256;
        let model = fit(&x, &y, 3, &p, 1, &Device::flex(), |_| Ok(())).unwrap();
        assert!(binned_trees(&model.trees, f).is_some());
        // Rows on cut points, outside the range, infinite and NaN, and 1025 rows (two blocks).
        let mut probe: Vec<f32> = (0..1025 * f).map(|_| rng.random_range(-0.2..1.2)).collect();
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, 1.0];
        for (r, v) in probe.chunks_exact_mut(f).zip(specials.iter().cycle()) {
            r[(v.to_bits() as usize) % f] = *v;
        }
        for t in &model.trees {
            for (r, node) in probe.chunks_exact_mut(f).zip(t.nodes.iter().cycle()) {
                if node.feature >= 0 {
                    r[node.feature as usize] = node.threshold;
                }
            }
        }
        let probe = Matrix::new(1025, f, probe);
        let want = walked_margins(&model, &probe);
        assert_eq!(model.predict_proba(&probe), want);
        assert_eq!(model.predict_proba(&x), walked_margins(&model, &x));

        // More than 255 distinct thresholds on a feature: scored by walking the trees.
        let mut many = model.clone();
        many.trees = (0..300)
            .map(|i| Tree {
                class: i % 3,
                nodes: vec![
                    TreeNode {
                        feature: 0,
                        threshold: i as f32 / 300.0,
                        left: 1,
                        right: 2,
                        value: 0.0,
                    },
                    TreeNode {
                        feature: -1,
                        threshold: 0.0,
                        left: 0,
                        right: 0,
                        value: -0.01,
                    },
                    TreeNode {
                        feature: -1,
                        threshold: 0.0,
                        left: 0,
                        right: 0,
                        value: 0.02,
                    },
                ],
            })
            .collect();
        assert!(binned_trees(&many.trees, f).is_none());
        assert_eq!(many.predict_proba(&probe), walked_margins(&many, &probe));
    }

    #[test]
    fn learns_a_single_threshold_as_one_split() {
        // Class 1 exactly when feature 1 > 0.5; feature 0 is noise.
        let n = 200;
        let mut data = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let v = i as f32 / n as f32;
            data.extend_from_slice(&[((i * 7919) % 97) as f32 / 97.0, v]);
            y.push(u32::from(v > 0.5));
        }
        let x = Matrix::new(n, 2, data);
        let model = fit(&x, &y, 2, &params(3, 1), 1, &Device::flex(), |_| Ok(())).unwrap();
        assert_eq!(model.trees.len(), 6);
        for t in &model.trees {
            assert_eq!(
                t.nodes.len(),
                3,
                "a depth-1 tree is one split and two leaves"
            );
            let root = t.nodes[0];
            assert_eq!(root.feature, 1, "the split is on the informative feature");
            assert!(
                (root.threshold - 0.5).abs() < 0.04,
                "threshold {}",
                root.threshold
            );
            let (l, r) = (
                t.nodes[root.left as usize].value,
                t.nodes[root.right as usize].value,
            );
            if t.class == 1 {
                assert!(l < 0.0 && r > 0.0)
            } else {
                assert!(l > 0.0 && r < 0.0)
            }
        }
        let proba = model.predict_proba(&x);
        let correct = (0..n)
            .filter(|&i| (proba[i * 2 + 1] > 0.5) == (y[i] == 1))
            .count();
        assert!(correct >= n - 4, "{correct} of {n}");
    }

    #[test]
    fn histograms_built_in_row_blocks_give_the_same_trees() {
        let n = 1000;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let data: Vec<f32> = (0..n * 3).map(|_| rng.random::<f32>()).collect();
        let x = Matrix::new(n, 3, data);
        let y: Vec<u32> = (0..n)
            .map(|i| ((x.get(i, 1) * 2.0 + x.get(i, 2)) * 0.999) as u32)
            .collect();
        let p = params(4, 3);
        let whole =
            fit_in_blocks(&x, &y, 3, &p, 1, &Device::flex(), n, n, |_, _, _| Ok(true)).unwrap();
        let blocks = fit_in_blocks(&x, &y, 3, &p, 1, &Device::flex(), 96, 40, |_, _, _| {
            Ok(true)
        })
        .unwrap();
        assert_eq!(whole.trees.len(), blocks.trees.len());
        for (a, b) in whole.trees.iter().zip(&blocks.trees) {
            assert_eq!(a.nodes.len(), b.nodes.len());
            for (u, v) in a.nodes.iter().zip(&b.nodes) {
                assert_eq!((u.feature, u.threshold), (v.feature, v.threshold));
                assert!(
                    (u.value - v.value).abs() < 1e-5,
                    "{} vs {}",
                    u.value,
                    v.value
                );
            }
        }
    }

    #[test]
    fn same_seed_same_trees_and_subsampling_is_seeded() {
        let n = 300;
        let data: Vec<f32> = (0..n * 3)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 1000.0)
            .collect();
        let x = Matrix::new(n, 3, data);
        let y: Vec<u32> = (0..n)
            .map(|i| ((x.get(i, 0) + x.get(i, 2)) * 1.5) as u32 % 3)
            .collect();
        let mut p = params(5, 3);
        p.subsample = 0.7;
        let a = fit(&x, &y, 3, &p, 9, &Device::flex(), |_| Ok(())).unwrap();
        let b = fit(&x, &y, 3, &p, 9, &Device::flex(), |_| Ok(())).unwrap();
        assert_eq!(a, b);
        let c = fit(&x, &y, 3, &p, 10, &Device::flex(), |_| Ok(())).unwrap();
        assert_ne!(a, c);
    }
    /// XGBoost's hist algorithm written plainly on the host: every node's histogram built
    /// from its own rows, in f64, with no shared root, no sibling subtraction and no blocks.
    fn reference_fit(x: &Matrix, y: &[u32], k: usize, p: &GbdtParams) -> GbdtModel {
        let (n, f, b) = (x.rows(), x.cols(), p.max_bins);
        let binner = Binner::fit(x, b);
        let bins = binner.bin_matrix(x);
        let (lambda, mcw) = (p.l2, p.min_child_weight.max(1e-12));
        let mut margin = vec![0f32; n * k];
        let mut trees = Vec::new();
        for _ in 0..p.rounds {
            let mut grad = Vec::with_capacity(n * k);
            for i in 0..n {
                let mut prob = Vec::new();
                super::super::softmax_into(&margin[i * k..(i + 1) * k], &mut prob);
                for (c, &pc) in prob.iter().enumerate() {
                    let g = pc - f32::from(u8::from(y[i] as usize == c));
                    grad.push((f64::from(g), f64::from((2.0 * pc * (1.0 - pc)).max(1e-16))));
                }
            }
            let mut levels: Vec<Level> = Vec::new();
            let mut node = vec![0usize; n * k];
            for level in 0..p.max_depth {
                let kl = k << level;
                let mut lv = Level {
                    split: vec![false; kl],
                    feature: vec![0; kl],
                    bin: vec![b as i64 - 1; kl],
                };
                for s in 0..kl {
                    let (j, c) = (s / k, s % k);
                    let rows: Vec<usize> = (0..n).filter(|&i| node[i * k + c] == j).collect();
                    let score = |g: f64, h: f64| g * g / (h + lambda);
                    let (gt, ht) = rows.iter().fold((0.0, 0.0), |a, &i| {
                        (a.0 + grad[i * k + c].0, a.1 + grad[i * k + c].1)
                    });
                    let mut best = (1e-6, None);
                    for feat in 0..f {
                        let mut hist = vec![(0.0, 0.0); b];
                        for &i in &rows {
                            let e = &mut hist[bins[i * f + feat] as usize];
                            e.0 += grad[i * k + c].0;
                            e.1 += grad[i * k + c].1;
                        }
                        let (mut gl, mut hl) = (0.0, 0.0);
                        for (bin, &(g, h)) in hist.iter().enumerate() {
                            gl += g;
                            hl += h;
                            let (gr, hr) = (gt - gl, ht - hl);
                            let gain = score(gl, hl) + score(gr, hr) - score(gt, ht);
                            if hl >= mcw && hr >= mcw && gain > best.0 {
                                best = (gain, Some((feat, bin)));
                            }
                        }
                    }
                    if let Some((feat, bin)) = best.1 {
                        lv.split[s] = true;
                        lv.feature[s] = feat as i64;
                        lv.bin[s] = bin as i64;
                    }
                }
                for i in 0..n {
                    for c in 0..k {
                        let s = node[i * k + c] * k + c;
                        let right = bins[i * f + lv.feature[s] as usize] > lv.bin[s];
                        node[i * k + c] = node[i * k + c] * 2 + usize::from(right);
                    }
                }
                levels.push(lv);
            }
            let leaves = 1 << p.max_depth;
            let mut sums = vec![(0.0, 0.0); k * leaves];
            for i in 0..n {
                for c in 0..k {
                    let e = &mut sums[node[i * k + c] * k + c];
                    e.0 += grad[i * k + c].0;
                    e.1 += grad[i * k + c].1;
                }
            }
            let weights: Vec<f32> = sums
                .iter()
                .map(|&(g, h)| (-p.learning_rate * g / (h + lambda)) as f32)
                .collect();
            for i in 0..n {
                for c in 0..k {
                    margin[i * k + c] += weights[node[i * k + c] * k + c];
                }
            }
            for class in 0..k {
                trees.push(build_tree(
                    class,
                    k,
                    &levels,
                    &weights,
                    p.max_depth,
                    &binner,
                ));
            }
        }
        GbdtModel {
            k,
            n_features: f,
            trees,
            early_stopping: None,
        }
    }

    #[test]
    fn host_operations_match_the_plain_reference() {
        // Rows over several histogram chunks, depth 4, max_bins 2 and 256.
        let n = 40_000;
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let data: Vec<f32> = (0..n * 4).map(|_| rng.random::<f32>()).collect();
        let x = Matrix::new(n, 4, data);
        let y: Vec<u32> = (0..n)
            .map(|i| u32::from(x.get(i, 1) + 0.3 * x.get(i, 3) > 0.7) * 2)
            .collect();
        for bins in [2, 256] {
            let mut p = params(3, 4);
            p.max_bins = bins;
            let expected = reference_fit(&x, &y, 3, &p);
            let got = host::fit(&x, &y, 3, &p, 1, |_, _, _| Ok(true)).unwrap();
            assert_eq!(expected.trees.len(), got.trees.len());
            for (t, (a, b)) in expected.trees.iter().zip(&got.trees).enumerate() {
                assert_eq!(a.nodes.len(), b.nodes.len(), "{bins} bins, tree {t}");
                for (u, v) in a.nodes.iter().zip(&b.nodes) {
                    assert_eq!((u.feature, u.threshold), (v.feature, v.threshold));
                    assert!(
                        (u.value - v.value).abs() < 1e-5,
                        "{} vs {}",
                        u.value,
                        v.value
                    );
                }
            }
        }
    }

    #[test]
    fn tensor_histograms_match_a_plain_host_implementation() {
        // Three classes from two of four features, the others noise; blocks and sub-blocks
        // smaller than the data so the shared root, the sibling subtraction and the block sums
        // all take part.
        let n = 600;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let data: Vec<f32> = (0..n * 4).map(|_| rng.random::<f32>()).collect();
        let x = Matrix::new(n, 4, data);
        let y: Vec<u32> = (0..n)
            .map(|i| {
                let v = x.get(i, 0) + 0.5 * x.get(i, 2) + 0.1 * rng.random::<f32>();
                u32::from(v > 0.55) + u32::from(v > 1.0)
            })
            .collect();
        let mut p = params(4, 3);
        p.min_child_weight = 0.5;
        let expected = reference_fit(&x, &y, 3, &p);
        let got = fit_in_blocks(&x, &y, 3, &p, 1, &Device::flex(), 128, 48, |_, _, _| {
            Ok(true)
        })
        .unwrap();
        assert_eq!(expected.trees.len(), got.trees.len());
        for (t, (a, b)) in expected.trees.iter().zip(&got.trees).enumerate() {
            assert_eq!(a.nodes.len(), b.nodes.len(), "tree {t}");
            for (u, v) in a.nodes.iter().zip(&b.nodes) {
                assert_eq!(
                    (u.feature, u.threshold),
                    (v.feature, v.threshold),
                    "tree {t}"
                );
                assert!(
                    (u.value - v.value).abs() < 1e-4,
                    "tree {t}: {} vs {}",
                    u.value,
                    v.value
                );
            }
        }
    }
}
