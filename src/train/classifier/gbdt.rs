//! Gradient-boosted trees for k classes with a softmax objective, the histogram method of
//! XGBoost's `hist`, as burn tensor code.
//!
//! Features are cut into at most `max_bins` quantile bins once, on the host. Each round then
//! runs on the training device: softmax gradients and hessians; for each depth level one
//! scatter-add builds the (gradient, hessian) histograms of every node of all k class trees at
//! once; a cumulative sum over bins gives every candidate split's left/right sums; the gain
//! (XGBoost's, with L2 `l2` and `min_child_weight`) is maximised per node; rows are routed to
//! children by a gather of their bin. Only the best split of each node (a few numbers) crosses
//! to the host. Leaves get -G / (H + l2) times the learning rate.
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
use crate::train::tensor::download;

/// Quantile cut points per feature: bin(x) = number of cuts below x.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binner {
    pub cuts: Vec<Vec<f32>>,
}

impl Binner {
    pub fn fit(x: &Matrix, max_bins: usize) -> Self {
        let cuts = (0..x.cols())
            .into_par_iter()
            .map(|j| {
                let mut col = x.column(j);
                col.sort_unstable_by(f32::total_cmp);
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

/// A fitted boosted ensemble: margins are sums of tree values per class, probabilities their softmax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtModel {
    pub k: usize,
    pub n_features: usize,
    pub trees: Vec<Tree>,
}

impl GbdtModel {
    /// Class probabilities of every row, row-major n x k.
    pub fn predict_proba(&self, x: &Matrix) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.rows() * self.k);
        let mut margin = vec![0f32; self.k];
        for row in x.as_slice().chunks_exact(x.cols()) {
            margin.iter_mut().for_each(|m| *m = 0.0);
            for t in &self.trees {
                margin[t.class] += t.predict(row);
            }
            super::softmax_into(&margin, &mut out);
        }
        out
    }
}

/// Rows per histogram block on the CPU backends.
const HIST_BLOCK_ROWS: usize = 65_536;

/// The best split of every node at one level, for all classes: index `node * k + class`.
struct Level {
    split: Vec<bool>,
    feature: Vec<i64>,
    bin: Vec<i64>,
}

/// Fits the ensemble on `x` (preprocessed features) and `y` (labels below `k`).
pub fn fit(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &GbdtParams,
    seed: u64,
    device: &Device,
    on_round: impl FnMut(usize) -> Result<()>,
) -> Result<GbdtModel> {
    let cpu = matches!(
        device.as_dispatch(),
        burn::backend::DispatchDevice::Flex(_) | burn::backend::DispatchDevice::NdArray(_)
    );
    // On a CPU backend flex's scatter-add is a sequential loop, so blocks of a fixed size run
    // on the rayon threads (fixed, not one per thread, so the trees do not depend on the
    // machine's core count); a GPU takes all rows in one kernel.
    let block = if cpu { HIST_BLOCK_ROWS } else { x.rows() };
    fit_in_blocks(x, y, k, params, seed, device, block, on_round)
}

/// [`fit`] with histograms built over row blocks of `block` rows, summed in block order.
#[allow(clippy::too_many_arguments)]
fn fit_in_blocks(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &GbdtParams,
    seed: u64,
    device: &Device,
    block: usize,
    mut on_round: impl FnMut(usize) -> Result<()>,
) -> Result<GbdtModel> {
    let (n, f, b) = (x.rows(), x.cols(), params.max_bins);
    if n == 0 || y.len() != n {
        return Err(Error::Training(format!(
            "GBDT needs one label per row ({n} rows, {} labels)",
            y.len()
        )));
    }
    let binner = Binner::fit(x, b);
    let bins = Tensor::<2, Int>::from_data(TensorData::new(binner.bin_matrix(x), [n, f]), device);
    let feature_offset = Tensor::<1, Int>::arange(0..f as i64, device)
        .mul_scalar(b as i64)
        .reshape([1, f]);
    let base = (bins.clone() + feature_offset).reshape([n, 1, f]); // f * B + bin
    let mut onehot = vec![0f32; n * k];
    for (i, &l) in y.iter().enumerate() {
        onehot[i * k + l as usize] = 1.0;
    }
    let y_onehot = Tensor::<2>::from_data(TensorData::new(onehot, [n, k]), device);
    let class_index = Tensor::<1, Int>::arange(0..k as i64, device);
    let fb = (f * b) as i64;
    // Histogram slot of (row, class, feature) is ((node * k + class) * F + feature) * B + bin:
    // a [n, k, 1] node-and-class term plus the level-independent [n, 1, f] `base`, broadcast
    // per block (storing the [n, k, f] sum would be k times the bytes to stream every level).
    let class_slot = class_index.clone().mul_scalar(fb).reshape([1, k]);
    let (lambda, mcw, eta) = (
        params.l2 as f32,
        params.min_child_weight as f32,
        params.learning_rate as f32,
    );
    let depth = params.max_depth;
    let block = block.max(1);
    let blocks: Vec<(usize, usize)> = (0..n.div_ceil(block))
        .map(|i| (i * block, block.min(n - i * block)))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6bd7_0000);
    let mut margin = Tensor::<2>::zeros([n, k], device);
    let mut trees = Vec::with_capacity(params.rounds * k);

    for round in 0..params.rounds {
        let p = softmax(margin.clone(), 1);
        let mut g = p.clone() - y_onehot.clone();
        let mut h = (p.clone() * (p.neg().add_scalar(1.0)))
            .mul_scalar(2.0)
            .clamp_min(1e-16);
        if params.subsample < 1.0 {
            let mask: Vec<f32> = (0..n)
                .map(|_| f32::from(u8::from(rng.random::<f64>() < params.subsample)))
                .collect();
            let mask = Tensor::<2>::from_data(TensorData::new(mask, [n, 1]), device);
            g = g * mask.clone();
            h = h * mask;
        }
        let gh = Tensor::cat(vec![g.reshape([n, k, 1]), h.reshape([n, k, 1])], 2); // [n, k, 2]
        let gh4 = gh.clone().reshape([n, k, 1, 2]);
        let mut node = Tensor::<2, Int>::zeros([n, k], device);
        let mut levels: Vec<Level> = Vec::with_capacity(depth);

        for level in 0..depth {
            let nodes = 1usize << level;
            let kl = k * nodes;
            // Each block of rows adds its (g, h) pairs into their slots (one index per pair);
            // on the CPU the blocks run on separate threads and their histograms are summed.
            let block_hist = |(start, len): (usize, usize)| {
                let slot = (node.clone().narrow(0, start, len).mul_scalar(k as i64 * fb)
                    + class_slot.clone())
                .reshape([len, k, 1])
                    + base.clone().narrow(0, start, len);
                Tensor::<2>::zeros([kl * f * b, 2], device).select_assign(
                    0,
                    slot.reshape([len * k * f]),
                    // Every (row, class) pair's (g, h), once per feature, built per block
                    // (a block's worth is cache-sized; all rows' would be 8·n·k·f bytes).
                    gh4.clone()
                        .narrow(0, start, len)
                        .repeat_dim(2, f)
                        .reshape([len * k * f, 2]),
                    IndexingUpdateOp::Add,
                )
            };
            // Summed in block order: the same trees whatever the number of threads.
            let partial: Vec<Tensor<2>> = blocks.par_iter().copied().map(block_hist).collect();
            let hist = partial
                .into_iter()
                .reduce(|a, b| a + b)
                .expect("at least one block");
            let cum = hist.reshape([kl, f, b, 2]).cumsum(2);
            let total = cum.clone().narrow(2, b - 1, 1);
            let (gl, hl) = (cum.clone().narrow(3, 0, 1), cum.narrow(3, 1, 1));
            let (gt, ht) = (total.clone().narrow(3, 0, 1), total.narrow(3, 1, 1));
            let (gr, hr) = (gt.clone() - gl.clone(), ht.clone() - hl.clone());
            let score =
                |g: Tensor<4>, h: Tensor<4>| g.square() / h.add_scalar(lambda).clamp_min(1e-12);
            let gain = score(gl, hl.clone()) + score(gr, hr.clone()) - score(gt, ht);
            let floor = mcw.max(1e-12);
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
            // Route rows: right when their bin of the split feature is above the split bin.
            let at = (node.clone().mul_scalar(k as i64) + class_index.clone().reshape([1, k]))
                .reshape([n * k]);
            let split_feature =
                Tensor::<1, Int>::from_data(TensorData::new(lv.feature.clone(), [kl]), device);
            let split_bin =
                Tensor::<1, Int>::from_data(TensorData::new(lv.bin.clone(), [kl]), device);
            let feature_of_row = split_feature.select(0, at.clone()).reshape([n, k]);
            let bin_of_split = split_bin.select(0, at).reshape([n, k]);
            let value = bins.clone().gather(1, feature_of_row);
            node = node.mul_scalar(2) + value.greater(bin_of_split).int();
            levels.push(lv);
        }

        // Leaf weights from the (G, H) sums of the rows in each leaf.
        let leaves = 1usize << depth;
        let at = (node.mul_scalar(k as i64) + class_index.clone().reshape([1, k])).reshape([n * k]);
        let sums = Tensor::<2>::zeros([k * leaves, 2], device).select_assign(
            0,
            at.clone(),
            gh.reshape([n * k, 2]),
            IndexingUpdateOp::Add,
        );
        let sums = download(sums);
        let weights: Vec<f32> = sums
            .chunks_exact(2)
            .map(|gh| {
                if gh[1] > 0.0 {
                    -eta * gh[0] / (gh[1] + lambda)
                } else {
                    0.0
                }
            })
            .collect();
        let w = Tensor::<1>::from_data(TensorData::new(weights.clone(), [k * leaves]), device);
        margin = margin + w.select(0, at).reshape([n, k]);
        for class in 0..k {
            trees.push(build_tree(class, k, &levels, &weights, depth, &binner));
        }
        on_round(round + 1)?;
    }
    Ok(GbdtModel {
        k,
        n_features: f,
        trees,
    })
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
            max_bins: 16,
        }
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
        let whole = fit_in_blocks(&x, &y, 3, &p, 1, &Device::flex(), n, |_| Ok(())).unwrap();
        let blocks = fit_in_blocks(&x, &y, 3, &p, 1, &Device::flex(), 96, |_| Ok(())).unwrap();
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
}
