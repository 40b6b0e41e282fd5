//! The GBDT's tensor trainer, as burn tensor code: what the wgpu backend runs (and the
//! reference the CPU's host trainer is held to; benches compare the two on the CPU).
//!
//! Each round runs on the training device: softmax gradients and hessians; for each depth
//! level the (gradient, hessian) histograms of every node of all k class trees; a cumulative
//! sum over bins gives every candidate split's left/right sums; the gain (XGBoost's, with L2
//! `l2` and `min_child_weight`) is maximised per node; rows are routed to children by a gather
//! of their bin. Only the best split of each node (a few numbers) crosses to the host. Leaves
//! get -G / (H + l2) times the learning rate.
//!
//! Histograms, as in XGBoost: the root is one node shared by the k class trees, so one
//! scatter-add index per row and feature carries all classes' (g, h). Below it only the left
//! children are built, from their rows alone (picked out with `argwhere`), and a right child
//! is its parent minus its sibling: half the rows are added per level.
//!
//! Rows are split into blocks with their own buffers (bins, margins, gradients, node ids): on
//! a CPU backend the blocks run on the rayon threads, a fixed size so that the trees do not
//! depend on the core count, and their histograms are summed in block order; on a GPU there
//! is one block.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::softmax;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::trees::{Level, build_tree};
use super::{Binner, GbdtModel, ROUND_SEED_SALT, Tree, kernels, subsample_mask};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::train::classifier::config::GbdtParams;
use crate::train::tensor::download;

/// Rows per block on the CPU backends: each block's state lives in its own buffers and its
/// work (gradients, histograms, routing) runs on a rayon thread.
pub(super) const HIST_BLOCK_ROWS: usize = 65_536;
/// Rows per scatter-add within a block on the CPU backends: its temporaries stay in cache.
pub(super) const HIST_SUB_BLOCK_ROWS: usize = 8_192;

/// Sizes of the histograms: k classes, f features, B bins; rows per scatter-add.
#[derive(Clone, Copy)]
pub(super) struct HistShape {
    pub(super) k: usize,
    pub(super) f: usize,
    pub(super) b: usize,
    pub(super) sub_block: usize,
}

/// A block of training rows and its state, in the block's own buffers (flex copies a view of
/// a bigger tensor on every use, and one block's work runs on one thread).
pub(super) struct Block {
    pub(super) len: usize,
    /// Feature j's bin offset by j * B, row-major [len, f]: routing picks a row's split feature.
    pub(super) bins: Tensor<2, Int>,
    /// The same, feature-major [f, len]: one feature's run of rows for the root histograms.
    pub(super) base: Tensor<2, Int>,
    /// The plain bins, each twice (for the g and the h column), [len, 2f]: the children's
    /// histograms.
    pub(super) pair_bins: Tensor<2, Int>,
    pub(super) y_onehot: Tensor<2>,
    pub(super) margin: Tensor<2>,
    /// This round's (g, h) of all classes of a row together, [len, 2k] (the shared root).
    pub(super) gh_rows: Tensor<2>,
    /// This round's (g, h) of each class, [len, 2] each.
    pub(super) gh: Vec<Tensor<2>>,
    /// Each class tree's node of each row, [len, k].
    pub(super) node: Tensor<2, Int>,
    /// Histograms by the custom kernels (`kernels`) instead of the generic tensor code.
    pub(super) kernels: bool,
}

impl Block {
    /// `bins` row-major [len, f], `y` the block's labels.
    pub(super) fn new(
        bins: &[i64],
        y: &[u32],
        shape: HistShape,
        device: &Device,
        kernels: bool,
    ) -> Self {
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
    pub(super) fn start_round(&mut self, k: usize, mask: Option<&[f32]>) {
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
    pub(super) fn root_hist(&self, shape: HistShape) -> Tensor<2> {
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
    pub(super) fn left_hist(
        &self,
        shape: HistShape,
        parents: usize,
        pick: &Tensor<2>,
    ) -> Tensor<2> {
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
    pub(super) fn slots(&self, k: usize, class_index: &Tensor<2, Int>) -> Tensor<1, Int> {
        (self.node.clone().mul_scalar(k as i64) + class_index.clone()).reshape([self.len * k])
    }

    /// Sends each row to a child: right when its bin of the split feature is above the split
    /// bin (both offset by feature * B). `split_feature`, `split_bin`: by `node * k + class`.
    pub(super) fn route(
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
    pub(super) fn leaf_sums(
        &self,
        k: usize,
        leaves: usize,
        class_index: &Tensor<2, Int>,
    ) -> Tensor<2> {
        Tensor::<2>::zeros([k * leaves, 2], &self.margin.device()).select_assign(
            0,
            self.slots(k, class_index),
            self.gh_rows.clone().reshape([self.len * k, 2]),
            IndexingUpdateOp::Add,
        )
    }

    /// Adds each row's leaf weight (`weights` by `node * k + class`) to its margins.
    pub(super) fn add_leaves(
        &mut self,
        k: usize,
        class_index: &Tensor<2, Int>,
        weights: &Tensor<1>,
    ) {
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

/// [`fit`] over row blocks of `block` rows, histograms added `sub_block` rows at a time and
/// summed in block order.
#[allow(clippy::too_many_arguments)]
pub(super) fn fit_in_blocks(
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
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ROUND_SEED_SALT);
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
