//! Gradient-boosted trees for k classes with a softmax objective, the histogram method of
//! XGBoost's `hist`: the booster, with early stopping on held-out rows.
//!
//! Features are cut into at most `max_bins` quantile bins once, on the host ([`binning`]).
//! Each round then grows one tree per class on the gradients and hessians of the softmax: on
//! the CPU by the host trainer ([`host`]: plain Rust on `u8` bins and row partitions), on a GPU
//! by the tensor trainer ([`tensor`]: burn tensor code, with custom histogram [`kernels`] on
//! the wgpu backend). Both turn each level's best splits into the fitted form ([`trees`]): per
//! round and class a tree of node arrays with "left when x <= threshold", which is what
//! ONNX-ML's TreeEnsembleClassifier (BRANCH_LEQ) takes. Predictions and early stopping score
//! the trees on bins of their own thresholds ([`scoring`]).
//!
//! Every random choice is seeded from the training seed with a salt of its own, so a seed
//! gives the same trees whatever the number of threads.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::GbdtParams;
use crate::error::Result;
use crate::matrix::Matrix;
use crate::train::device::is_cpu;
use burn::prelude::Device;

mod binning;
mod host;
mod host_ops;
mod kernels;
mod scoring;
mod tensor;
mod trees;

pub use binning::Binner;
pub use trees::{Tree, TreeNode};

use scoring::{BinnedTree, bin_block, walk_trees};
use tensor::{HIST_BLOCK_ROWS, HIST_SUB_BLOCK_ROWS, fit_in_blocks};

/// XORed into the seed for the rounds' row samples (both trainers draw the same ones).
const ROUND_SEED_SALT: u64 = 0x6bd7_0000;
/// XORed into the seed for the rows early stopping holds out.
const VALIDATION_SEED_SALT: u64 = 0x6bd7_e570;

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
    let (fit_rows, val_rows) = hold_out(n, params.validation_fraction, seed);
    let fit_x = x.gather_rows(&fit_rows);
    let fit_y: Vec<u32> = fit_rows.iter().map(|&i| y[i]).collect();
    let mut held = HeldOut::new(
        x.gather_rows(&val_rows),
        val_rows.iter().map(|&i| y[i]).collect(),
        k,
    );
    let mut model = boost(&fit_x, &fit_y, &mut |round, trees, binner| {
        held.add_round(round, trees, binner);
        on_round(round)?;
        Ok(round - held.best_round < patience)
    })?;
    model.trees.truncate(held.best_round * k);
    model.early_stopping = Some(held.record());
    Ok(model)
}

/// A seeded `fraction` of `n` rows held out (at least one, and one left to fit): the rows to
/// fit and the held-out ones, each in row order (the fitting rows keep the data's order, as
/// without a hold-out).
fn hold_out(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    rand::seq::SliceRandom::shuffle(
        &mut order[..],
        &mut ChaCha8Rng::seed_from_u64(seed ^ VALIDATION_SEED_SALT),
    );
    let n_val = ((n as f64 * fraction).ceil() as usize).clamp(1, n - 1);
    let (val_rows, fit_rows) = order.split_at(n_val);
    let (mut val_rows, mut fit_rows) = (val_rows.to_vec(), fit_rows.to_vec());
    val_rows.sort_unstable();
    fit_rows.sort_unstable();
    (fit_rows, val_rows)
}

/// Held-out rows in blocks of this many: binned once, scored block by block on the threads.
const VAL_BLOCK: usize = 4096;

/// Early stopping's held-out rows: their margins after each round, and the best round so far.
struct HeldOut {
    x: Matrix,
    y: Vec<u32>,
    k: usize,
    /// Per block, the rows' bins feature-major (once the binner is known).
    columns: Vec<Vec<Vec<u8>>>,
    margin: Vec<f32>,
    rounds_run: usize,
    best_round: usize,
    best_loss: f64,
    best_errors: usize,
}

impl HeldOut {
    fn new(x: Matrix, y: Vec<u32>, k: usize) -> Self {
        let n = y.len();
        Self {
            x,
            y,
            k,
            columns: Vec::new(),
            margin: vec![0f32; n * k],
            rounds_run: 0,
            best_round: 0,
            best_loss: f64::INFINITY,
            best_errors: 0,
        }
    }

    /// Adds a round's new trees to the margins and keeps the round if its loss is the lowest.
    fn add_round(&mut self, round: usize, trees: &[Tree], binner: &Binner) {
        self.rounds_run = round;
        let (loss, errors) = self.score(trees, binner);
        let loss = loss / self.y.len() as f64;
        if loss < self.best_loss {
            (self.best_round, self.best_loss, self.best_errors) = (round, loss, errors);
        }
    }

    /// The new trees into the held-out margins, then their summed cross-entropy (smooth,
    /// where the error count moves in steps of one row and stalls while the margins still
    /// improve) and error count; per-block sums added in block order.
    fn score(&mut self, trees: &[Tree], binner: &Binner) -> (f64, usize) {
        let (k, x) = (self.k, &self.x);
        let cols = x.cols().max(1);
        if self.columns.is_empty() {
            self.columns = x
                .as_slice()
                .par_chunks(cols * VAL_BLOCK)
                .map(|rows| bin_block(rows, &binner.cuts))
                .collect();
        }
        let binned: Option<Vec<BinnedTree>> = trees
            .iter()
            .map(|t| BinnedTree::new(t, &binner.cuts))
            .collect();
        let parts: Vec<(f64, usize)> = self
            .margin
            .par_chunks_mut(k * VAL_BLOCK)
            .zip(self.columns.par_iter())
            .zip(x.as_slice().par_chunks(cols * VAL_BLOCK))
            .zip(self.y.par_chunks(VAL_BLOCK))
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
        parts
            .iter()
            .fold((0.0, 0), |(l, e), &(pl, pe)| (l + pl, e + pe))
    }

    fn record(&self) -> EarlyStopping {
        let n = self.y.len();
        EarlyStopping {
            rounds_run: self.rounds_run,
            best_round: self.best_round,
            validation_rows: n,
            validation_error: self.best_errors as f64 / n as f64,
            validation_loss: self.best_loss,
        }
    }
}

/// A round's row sample: 1 for the rows the trees of this round grow on, 0 for the others;
/// None when every row takes part. Both trainers draw it, from `seed ^ ROUND_SEED_SALT`.
fn subsample_mask(rng: &mut ChaCha8Rng, n: usize, subsample: f64) -> Option<Vec<f32>> {
    (subsample < 1.0).then(|| {
        (0..n)
            .map(|_| f32::from(u8::from(rng.random::<f64>() < subsample)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::scoring::binned_trees;
    use super::trees::{Level, build_tree};
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
