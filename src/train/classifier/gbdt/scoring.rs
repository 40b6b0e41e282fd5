//! Scoring on bins: a fitted ensemble's trees on `u8` bins of their own thresholds, each tree
//! taking a block of rows level by level (the host's router), for predictions and for early
//! stopping's held-out rows; trees that cannot be binned are walked.

use rayon::prelude::*;

use super::{GbdtModel, Tree, host};
use crate::matrix::Matrix;

/// A [`Tree`] on `u8` bins, for scoring blocks of rows level by level with the host's router
/// ([`host::leaves_of_block`]): the tree as a complete tree in heap order (a leaf above the
/// last level fills all the leaves below it, and the nodes below it send every row left),
/// each threshold as its index among the feature's cut points. A row binned by [`bin_u8`]
/// with those cuts ends in the leaf [`Tree::predict`] gives it.
pub(super) struct BinnedTree {
    class: usize,
    /// Per level, per node: split feature and bin (255: every row left).
    table: Vec<Vec<(usize, u8)>>,
    /// One value per last-level leaf.
    leaves: Vec<f32>,
}

impl BinnedTree {
    /// `None` when a threshold is not among `cuts` (a tree not grown on them).
    pub fn new(tree: &Tree, cuts: &[Vec<f32>]) -> Option<Self> {
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
    pub fn add(&self, columns: &[Vec<u8>], k: usize, margin: &mut [f32]) {
        let node = host::leaves_of_block(&self.table, columns, 0..margin.len() / k);
        for (m, &j) in margin.chunks_exact_mut(k).zip(&node) {
            m[self.class] += self.leaves[usize::from(j)];
        }
    }
}

/// Adds every tree's value to `margin[r * k + class]` of each row-major row of `rows` (`cols`
/// values each) by walking the trees: where [`BinnedTree`] cannot score them.
pub(super) fn walk_trees(trees: &[Tree], rows: &[f32], cols: usize, k: usize, margin: &mut [f32]) {
    for (m, row) in margin.chunks_exact_mut(k).zip(rows.chunks_exact(cols)) {
        for t in trees {
            m[t.class] += t.predict(row);
        }
    }
}

/// A value's bin among sorted `cuts` (at most 255): the number of cuts below it, and 255 for
/// NaN, which goes right at every split as in [`Tree::predict`]. (Training's
/// [`super::Binner::bin`] puts NaN in the last bin instead; training data has no NaN.)
fn bin_u8(cuts: &[f32], x: f32) -> u8 {
    if x.is_nan() {
        u8::MAX
    } else {
        cuts.partition_point(|&c| c < x) as u8
    }
}

/// Row-major `rows` (`cuts.len()` values each) binned, feature-major.
pub(super) fn bin_block(rows: &[f32], cuts: &[Vec<f32>]) -> Vec<Vec<u8>> {
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
pub(super) fn binned_trees(
    trees: &[Tree],
    features: usize,
) -> Option<(Vec<Vec<f32>>, Vec<BinnedTree>)> {
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
                    super::super::softmax_into(m, &mut out);
                }
                out
            })
            .collect();
        parts.concat()
    }
}
