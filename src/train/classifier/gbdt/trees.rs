//! The fitted form of the trees: per round and class a tree of node arrays (feature,
//! threshold, children, leaf value) with "left when x <= threshold", which is what ONNX-ML's
//! TreeEnsembleClassifier (BRANCH_LEQ) takes; and how both trainers turn the best splits of
//! each level into one.

use serde::{Deserialize, Serialize};

use super::Binner;

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

/// The best split of every node at one level, for all classes: index `node * k + class`.
pub(super) struct Level {
    pub split: Vec<bool>,
    pub feature: Vec<i64>,
    pub bin: Vec<i64>,
}

/// Turns the level arrays of one class into an explicit tree. A node without a split sends all
/// its rows left at every level below, so it becomes a leaf holding the value they end in.
pub(super) fn build_tree(
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
