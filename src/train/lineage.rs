//! Segment identity across retrains: a new model's segments are matched to the current
//! model's (Hungarian method on the distance between segment means), matched segments keep
//! their ids and names, and the two models are compared on the same customers (migration
//! table, adjusted Rand index).
//!
//! The distance between two segments is the root mean square, over the features both have,
//! of the difference of their mean raw values, each divided by that feature's standard
//! deviation over the training rows: dollars, counts and flags weigh alike. A pair matches
//! only when its distance is under half the distance between the two closest old segments:
//! then no new segment can be within reach of two old ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;
use crate::schema::FEATURES;

/// The rule, stated in the manifest.
pub const MATCH_RULE: &str = "new and old segments are paired by the Hungarian method on the \
     distance between their mean raw features (root mean square over features of the difference \
     in training standard deviations); a pair whose distance is not under half the distance \
     between the two closest old segments does not match";

/// The minimum-cost assignment of rows to distinct columns (rows <= columns), by the
/// Hungarian method with potentials: `result[row] = column`. O(rows² · columns).
pub fn hungarian(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    if n == 0 {
        return Vec::new();
    }
    let m = cost[0].len();
    assert!(n <= m, "more rows than columns");
    // 1-based arrays as in the classic formulation; column 0 is the virtual start.
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; m + 1]);
    let mut row_of = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0usize;
        let mut min_v = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0usize);
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let c = cost[i0 - 1][j - 1] - u[i0] - v[j];
                if c < min_v[j] {
                    min_v[j] = c;
                    way[j] = j0;
                }
                if min_v[j] < delta {
                    delta = min_v[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_v[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut result = vec![0usize; n];
    for j in 1..=m {
        if row_of[j] > 0 {
            result[row_of[j] - 1] = j - 1;
        }
    }
    result
}

/// Each feature's standard deviation over `raw`'s rows (NaN values skipped; 1 where it is 0
/// or undefined, so a constant feature does not divide by zero).
pub fn feature_scale(raw: &Matrix) -> Vec<f64> {
    let d = raw.cols();
    let (mut n, mut sum, mut sq) = (vec![0f64; d], vec![0f64; d], vec![0f64; d]);
    for i in 0..raw.rows() {
        for (j, &v) in raw.row(i).iter().enumerate() {
            if !v.is_nan() {
                let v = f64::from(v);
                n[j] += 1.0;
                sum[j] += v;
                sq[j] += v * v;
            }
        }
    }
    (0..d)
        .map(|j| {
            let var = if n[j] > 1.0 {
                (sq[j] - sum[j] * sum[j] / n[j]) / (n[j] - 1.0)
            } else {
                0.0
            };
            if var > 0.0 { var.sqrt() } else { 1.0 }
        })
        .collect()
}

/// A segment's mean raw features in [`FEATURES`] order, from a profile's key → mean map
/// (a missing key is NaN).
pub fn means_vector(means: &BTreeMap<String, f64>) -> Vec<f64> {
    FEATURES
        .iter()
        .map(|f| means.get(f.key).copied().unwrap_or(f64::NAN))
        .collect()
}

/// The distance between two segments' mean vectors (see the module documentation).
pub fn distance(a: &[f64], b: &[f64], scale: &[f64]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for ((x, y), s) in a.iter().zip(b).zip(scale) {
        if x.is_finite() && y.is_finite() {
            sum += ((x - y) / s).powi(2);
            n += 1;
        }
    }
    if n == 0 {
        f64::INFINITY
    } else {
        (sum / n as f64).sqrt()
    }
}

/// How new segments pair with old ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// `old[new] = Some(old segment)` for a matched new segment.
    pub old: Vec<Option<usize>>,
    /// Each new segment's distance to the old segment it was paired with (matched or not).
    pub distance: Vec<Option<f64>>,
    /// Pairs at or beyond this distance do not match.
    pub threshold: f64,
}

/// Matches new segments (their mean vectors) to old ones by the Hungarian method.
pub fn match_segments(old: &[Vec<f64>], new: &[Vec<f64>], scale: &[f64]) -> Matching {
    let cost: Vec<Vec<f64>> = new
        .iter()
        .map(|n| old.iter().map(|o| distance(n, o, scale)).collect())
        .collect();
    let mut closest_old = f64::INFINITY;
    for (i, a) in old.iter().enumerate() {
        for b in &old[i + 1..] {
            closest_old = closest_old.min(distance(a, b, scale));
        }
    }
    let threshold = if closest_old.is_finite() {
        closest_old / 2.0
    } else {
        f64::INFINITY
    };
    // The assignment needs finite costs and rows <= columns.
    let finite = |c: f64| if c.is_finite() { c } else { 1e12 };
    let pairs: Vec<Option<usize>> = if new.len() <= old.len() {
        let c: Vec<Vec<f64>> = cost
            .iter()
            .map(|r| r.iter().map(|&c| finite(c)).collect())
            .collect();
        hungarian(&c).into_iter().map(Some).collect()
    } else {
        let transposed: Vec<Vec<f64>> = (0..old.len())
            .map(|o| cost.iter().map(|r| finite(r[o])).collect())
            .collect();
        let mut p = vec![None; new.len()];
        for (o, n) in hungarian(&transposed).into_iter().enumerate() {
            p[n] = Some(o);
        }
        p
    };
    let distance: Vec<Option<f64>> = pairs
        .iter()
        .enumerate()
        .map(|(n, o)| o.map(|o| cost[n][o]))
        .collect();
    Matching {
        old: pairs
            .iter()
            .zip(&distance)
            .map(|(o, d)| o.filter(|_| d.is_some_and(|d| d < threshold)))
            .collect(),
        distance,
        threshold,
    }
}

/// The final id of each new segment (given in spending order, highest first): a matched
/// segment keeps its old id when that id exists among the new ones; the others take the
/// free ids in ascending order, in spending order.
pub fn plan_ids(matched: &[Option<usize>]) -> Vec<usize> {
    let k = matched.len();
    let mut id = vec![usize::MAX; k];
    let mut taken = vec![false; k];
    for (n, o) in matched.iter().enumerate() {
        if let Some(o) = *o
            && o < k
        {
            id[n] = o;
            taken[o] = true;
        }
    }
    let mut free = (0..k).filter(|&i| !taken[i]);
    for slot in id.iter_mut().filter(|i| **i == usize::MAX) {
        *slot = free.next().expect("as many free ids as unplaced segments");
    }
    id
}

/// `table[old][new]`: customers in old segment `old` and new segment `new`.
pub fn migration(old: &[i64], new: &[i64], k_old: usize, k_new: usize) -> Vec<Vec<usize>> {
    let mut table = vec![vec![0usize; k_new]; k_old];
    for (&o, &n) in old.iter().zip(new) {
        table[o as usize][n as usize] += 1;
    }
    table
}

/// The adjusted Rand index of two labellings given as their contingency table (Hubert and
/// Arabie; scikit-learn's `adjusted_rand_score`).
pub fn adjusted_rand_index(table: &[Vec<usize>]) -> f64 {
    let pairs = |x: f64| x * (x - 1.0) / 2.0;
    let n: usize = table.iter().flatten().sum();
    let sum_cells: f64 = table.iter().flatten().map(|&c| pairs(c as f64)).sum();
    let sum_rows: f64 = table
        .iter()
        .map(|r| pairs(r.iter().sum::<usize>() as f64))
        .sum();
    let cols = table.first().map_or(0, Vec::len);
    let sum_cols: f64 = (0..cols)
        .map(|j| pairs(table.iter().map(|r| r[j]).sum::<usize>() as f64))
        .sum();
    let expected = sum_rows * sum_cols / pairs(n as f64).max(1.0);
    let max = (sum_rows + sum_cols) / 2.0;
    if max == expected {
        1.0 // both labellings put everyone together (or apart): identical
    } else {
        (sum_cells - expected) / (max - expected)
    }
}

/// The manifest's `lineage`: how this model's segments relate to the model it was matched
/// against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The store's current model when this one was trained.
    pub previous_version: String,
    pub rule: String,
    /// `new id → old id` (null: a new segment).
    pub matched: BTreeMap<String, Option<usize>>,
    /// `new id → distance` to the old segment it was paired with.
    pub match_distance: BTreeMap<String, Option<f64>>,
    pub match_threshold: f64,
    /// `migration[old][new]`: training customers in each pair of segments, as the two models
    /// score them.
    pub migration: Vec<Vec<usize>>,
    /// Of the two models' segments on those customers (null when the previous model could
    /// not score them).
    pub adjusted_rand_index: Option<f64>,
    /// Customers scored by both models.
    pub rows: usize,
}

/// The manifest's map form of `matched` / `distance`: keys are the new ids.
pub fn by_id<T: Clone>(values: &[T]) -> BTreeMap<String, T> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i.to_string(), v.clone()))
        .collect()
}

/// "412 customers moved from 1 to 2" lines of a migration table, largest first (the
/// customers who stayed are not listed).
pub fn moves(table: &[Vec<usize>], matched: &BTreeMap<String, Option<usize>>) -> Vec<String> {
    let mut cells: Vec<(usize, usize, usize)> = Vec::new();
    for (o, row) in table.iter().enumerate() {
        for (n, &c) in row.iter().enumerate() {
            let stayed = matched.get(&n.to_string()).copied().flatten() == Some(o);
            if c > 0 && !stayed {
                cells.push((c, o, n));
            }
        }
    }
    cells.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    cells
        .into_iter()
        .map(|(c, o, n)| {
            format!(
                "{c} customer{} moved from {o} to {n}",
                if c == 1 { "" } else { "s" }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_finds_the_cheapest_assignment() {
        let cost = vec![
            vec![4.0, 1.0, 3.0],
            vec![2.0, 0.0, 5.0],
            vec![3.0, 2.0, 2.0],
        ];
        // Brute force over the 6 permutations.
        let perms = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let total = |p: &[usize]| p.iter().enumerate().map(|(r, &c)| cost[r][c]).sum::<f64>();
        let best = perms.iter().map(|p| total(p)).fold(f64::INFINITY, f64::min);
        let got = hungarian(&cost);
        assert_eq!(total(&got), best);
        assert_eq!(got, vec![1, 0, 2]);
        // Rectangular: two rows, three columns.
        assert_eq!(
            hungarian(&[vec![5.0, 1.0, 9.0], vec![1.0, 2.0, 9.0]]),
            vec![1, 0]
        );
    }

    /// Segment means around known centres, shuffled; the matching must undo the shuffle.
    fn means(centres: &[[f64; 2]], jitter: f64) -> Vec<Vec<f64>> {
        centres
            .iter()
            .enumerate()
            .map(|(i, c)| vec![c[0] + jitter * i as f64, c[1] - jitter])
            .collect()
    }

    #[test]
    fn matching_recovers_a_known_correspondence() {
        let truth = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let old = means(&truth, 0.0);
        // New segments in another order: new 0 = old 2, new 1 = old 0, new 2 = old 1.
        let new = means(&[truth[2], truth[0], truth[1]], 0.3);
        let m = match_segments(&old, &new, &[1.0, 1.0]);
        assert_eq!(m.old, vec![Some(2), Some(0), Some(1)]);
        assert!((m.threshold - 50f64.sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(plan_ids(&m.old), vec![2, 0, 1]);
    }

    #[test]
    fn a_fourth_segment_is_new_and_numbered_after_the_matched_ones() {
        let truth = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let old = means(&truth, 0.0);
        let new = means(&[[10.0, 10.0], truth[1], truth[2], truth[0]], 0.2);
        let m = match_segments(&old, &new, &[1.0, 1.0]);
        assert_eq!(m.old, vec![None, Some(1), Some(2), Some(0)]);
        assert_eq!(plan_ids(&m.old), vec![3, 1, 2, 0]);
        // 4 → 3: the old segment 3 (here the one at (10, 10)) has no id left.
        let old4 = means(&[truth[0], truth[1], truth[2], [10.0, 10.0]], 0.0);
        let new3 = means(&[[10.0, 10.0], truth[0], truth[1]], 0.1);
        let m = match_segments(&old4, &new3, &[1.0, 1.0]);
        assert_eq!(m.old, vec![Some(3), Some(0), Some(1)]);
        assert_eq!(plan_ids(&m.old), vec![2, 0, 1]);
    }

    /// KMeans on seeded blobs, then on a second sample with a fourth blob added: each new
    /// cluster is matched to the old cluster around the same true centre, and the fourth is new.
    #[test]
    fn clusters_of_seeded_blobs_are_matched_to_the_same_blob_when_k_goes_from_3_to_4() {
        use crate::train::kmeans::{KMeansParams, fit_points, tests::blobs};
        let truth = [[0.0f32, 0.0], [12.0, 0.0], [0.0, 12.0], [12.0, 12.0]];
        let fit = |centres: &[[f32; 2]], seed: u64| {
            let points = blobs(centres, 200, 1.0, seed);
            let params = KMeansParams {
                k: centres.len(),
                n_init: 3,
                max_iter: 100,
                tolerance: 1e-4,
                seed,
            };
            let (_, a) = fit_points(&points, 2, &params, |_| Ok(())).unwrap();
            let raw = Matrix::new(points.len() / 2, 2, points);
            let means = crate::train::segments::means(&raw, &a.labels, centres.len());
            // Which true blob each cluster sits on.
            let blob: Vec<usize> = means
                .iter()
                .map(|m| {
                    (0..truth.len())
                        .min_by(|&a, &b| {
                            let d = |t: [f32; 2]| {
                                (m[0] - t[0] as f64).powi(2) + (m[1] - t[1] as f64).powi(2)
                            };
                            d(truth[a]).total_cmp(&d(truth[b]))
                        })
                        .unwrap()
                })
                .collect();
            (means, blob, raw)
        };
        let (old, old_blob, _) = fit(&truth[..3], 1);
        let (new, new_blob, raw) = fit(&truth, 2);
        let m = match_segments(&old, &new, &feature_scale(&raw));
        for (n, o) in m.old.iter().enumerate() {
            match o {
                Some(o) => assert_eq!(old_blob[*o], new_blob[n], "{m:?}"),
                None => assert_eq!(new_blob[n], 3, "only the fourth blob is new: {m:?}"),
            }
        }
        assert_eq!(m.old.iter().flatten().count(), 3);
        let ids = plan_ids(&m.old);
        let fourth = new_blob.iter().position(|&b| b == 3).unwrap();
        assert_eq!(
            ids[fourth], 3,
            "the new segment is numbered after the kept ones"
        );
    }

    #[test]
    fn a_far_segment_does_not_match() {
        let old = means(&[[0.0, 0.0], [10.0, 0.0]], 0.0);
        let new = means(&[[0.0, 0.0], [10.0, 6.0]], 0.0);
        let m = match_segments(&old, &new, &[1.0, 1.0]);
        assert_eq!(m.old, vec![Some(0), None]);
        assert_eq!(m.distance[1], Some(distance(&new[1], &old[1], &[1.0, 1.0])));
    }

    #[test]
    fn migration_counts_every_pair_and_the_ari_matches_scikit_learn() {
        let old = [0, 0, 1, 1, 2, 2, 2, 0];
        let new = [0, 0, 1, 2, 2, 2, 1, 0];
        let t = migration(&old, &new, 3, 3);
        for (o, row) in t.iter().enumerate() {
            for (n, &c) in row.iter().enumerate() {
                let direct = old
                    .iter()
                    .zip(&new)
                    .filter(|&(&a, &b)| a == o as i64 && b == n as i64)
                    .count();
                assert_eq!(c, direct);
            }
        }
        // sklearn.metrics.adjusted_rand_score([0,0,1,1,2,2,2,0], [0,0,1,2,2,2,1,0])
        // = 0.42857142857142855
        assert!((adjusted_rand_index(&t) - 0.42857142857142855).abs() < 1e-12);
        assert_eq!(adjusted_rand_index(&migration(&old, &old, 3, 3)), 1.0);
        let matched = by_id(&[Some(0), Some(1), Some(2)]);
        assert_eq!(
            moves(&t, &matched),
            vec![
                "1 customer moved from 1 to 2",
                "1 customer moved from 2 to 1"
            ]
        );
    }
}
