//! Canonical segments: cluster ids ordered by mean Total_Spending, highest first (0 = highest
//! value), so the same data and seed always give the same ids whatever order KMeans found the
//! clusters in; and a profile and a short generated name for each.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;
use crate::schema::{FEATURES, feature_index};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentProfile {
    pub id: usize,
    pub name: String,
    pub size: usize,
    pub share: f64,
    /// Mean raw value of each feature over the segment's training rows (NaN where none of
    /// them has one: a segment of customers without Income).
    #[serde(with = "crate::json_f64::map")]
    pub means: BTreeMap<String, f64>,
}

/// Per-segment sums of every raw feature (NaN values skipped) and sizes, added to batch by
/// batch: the whole-data profiles of a streamed training run come from one of these.
#[derive(Debug, Clone)]
pub struct Tally {
    sums: Vec<Vec<f64>>,
    counts: Vec<Vec<usize>>,
    sizes: Vec<usize>,
}

impl Tally {
    pub fn new(k: usize, dims: usize) -> Self {
        Self {
            sums: vec![vec![0.0; dims]; k],
            counts: vec![vec![0; dims]; k],
            sizes: vec![0; k],
        }
    }

    /// Adds rows of raw features and their segments.
    pub fn add(&mut self, raw: &Matrix, labels: &[u32]) {
        for (i, &l) in labels.iter().enumerate() {
            let l = l as usize;
            self.sizes[l] += 1;
            for (j, &v) in raw.row(i).iter().enumerate() {
                if !v.is_nan() {
                    self.sums[l][j] += v as f64;
                    self.counts[l][j] += 1;
                }
            }
        }
    }

    /// Each segment's means (NaN where none of its rows has a value) and size.
    pub fn means_and_sizes(&self) -> (Vec<Vec<f64>>, Vec<usize>) {
        let means = self
            .sums
            .iter()
            .zip(&self.counts)
            .map(|(s, c)| {
                s.iter()
                    .zip(c)
                    .map(|(&s, &c)| if c > 0 { s / c as f64 } else { f64::NAN })
                    .collect()
            })
            .collect();
        (means, self.sizes.clone())
    }

    /// The segments' profiles, named as [`profiles`] names them.
    pub fn profiles(&self) -> Vec<SegmentProfile> {
        let (means, sizes) = self.means_and_sizes();
        profiles_of(&means, &sizes)
    }
}

/// Per-cluster means of every raw feature (NaN values skipped) and sizes.
fn cluster_means(raw: &Matrix, labels: &[u32], k: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut t = Tally::new(k, raw.cols());
    t.add(raw, labels);
    t.means_and_sizes()
}

/// Each cluster's mean raw features (NaN where none of its rows has a value).
pub fn means(raw: &Matrix, labels: &[u32], k: usize) -> Vec<Vec<f64>> {
    cluster_means(raw, labels, k).0
}

/// Gives matched segments their previous names (`names[id]`); a generated name that one of
/// them now holds is told apart by its id.
pub fn adopt_names(profiles: &mut [SegmentProfile], names: &[Option<String>]) {
    for (p, name) in profiles.iter_mut().zip(names) {
        if let Some(name) = name {
            p.name = name.clone();
        }
    }
    let kept: std::collections::HashSet<String> = names.iter().flatten().cloned().collect();
    for (p, name) in profiles.iter_mut().zip(names) {
        if name.is_none() && kept.contains(&p.name) {
            p.name = format!("{} ({})", p.name, p.id);
        }
    }
}

/// The order that makes ids canonical: `order[new_id] = old_id`, by mean Total_Spending
/// descending (ties: lower old id first).
pub fn canonical_order(raw: &Matrix, labels: &[u32], k: usize) -> Vec<usize> {
    let spend = feature_index("Total_Spending").expect("Total_Spending is a feature");
    let (means, _) = cluster_means(raw, labels, k);
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| means[b][spend].total_cmp(&means[a][spend]).then(a.cmp(&b)));
    order
}

/// Maps labels through `order` (`order[new] = old`).
pub fn relabel(labels: &mut [u32], order: &[usize]) {
    let mut new_of_old = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_of_old[old] = new as u32;
    }
    for l in labels {
        *l = new_of_old[*l as usize];
    }
}

fn tier(rank: usize, k: usize) -> String {
    match (rank, k) {
        (0, _) => "High spenders".into(),
        (r, k) if r + 1 == k => "Low spenders".into(),
        (1, 3) => "Mid spenders".into(),
        (r, _) => format!("Tier-{} spenders", r + 1),
    }
}

/// Profiles of the segments; names follow each segment's rank by mean Total_Spending (which
/// is its id unless ids were kept from a previous model).
pub fn profiles(raw: &Matrix, labels: &[u32], k: usize) -> Vec<SegmentProfile> {
    let (means, sizes) = cluster_means(raw, labels, k);
    profiles_of(&means, &sizes)
}

fn profiles_of(means: &[Vec<f64>], sizes: &[usize]) -> Vec<SegmentProfile> {
    let k = sizes.len();
    let spend = feature_index("Total_Spending").expect("Total_Spending is a feature");
    let mut by_spending: Vec<usize> = (0..k).collect();
    by_spending.sort_by(|&a, &b| means[b][spend].total_cmp(&means[a][spend]).then(a.cmp(&b)));
    let mut rank = vec![0; k];
    for (r, &id) in by_spending.iter().enumerate() {
        rank[id] = r;
    }
    let n = sizes.iter().sum::<usize>().max(1);
    let parental = feature_index("Parental_Status").expect("feature");
    let deals = feature_index("Discount_Purchases").expect("feature");
    let max_deals = means
        .iter()
        .map(|m| m[deals])
        .fold(f64::NEG_INFINITY, f64::max);
    let mut seen = std::collections::HashSet::new();
    (0..k)
        .map(|id| {
            let m = &means[id];
            let household = if m[parental] >= 0.5 {
                "mostly parents"
            } else {
                "mostly without children"
            };
            let mut name = format!("{}, {household}", tier(rank[id], k));
            if k > 2 && m[deals] == max_deals {
                name.push_str(", deal seekers");
            }
            if !seen.insert(name.clone()) {
                name = format!("{name} ({id})");
            }
            SegmentProfile {
                id,
                name,
                size: sizes[id],
                share: sizes[id] as f64 / n as f64,
                means: FEATURES
                    .iter()
                    .zip(m)
                    .map(|(f, v)| (f.key.to_string(), *v))
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::N_FEATURES;

    #[test]
    fn a_segment_without_any_income_round_trips_through_json() {
        let p = SegmentProfile {
            id: 0,
            name: "High spenders".into(),
            size: 3,
            share: 1.0,
            means: BTreeMap::from([("Income".to_string(), f64::NAN), ("Age".to_string(), 40.0)]),
        };
        let text = serde_json::to_string(&p).unwrap();
        let back: SegmentProfile = serde_json::from_str(&text).expect(&text);
        assert!(back.means["Income"].is_nan());
        assert_eq!(back.means["Age"], 40.0);
    }

    #[test]
    fn ids_are_ordered_by_spending_highest_first() {
        let spend = feature_index("Total_Spending").unwrap();
        let mut raw = Matrix::zeros(6, N_FEATURES);
        let values = [10.0, 11.0, 900.0, 950.0, 300.0, 310.0];
        for (i, v) in values.iter().enumerate() {
            raw.as_mut_slice()[i * N_FEATURES + spend] = *v;
        }
        let mut labels = vec![0, 0, 1, 1, 2, 2];
        let order = canonical_order(&raw, &labels, 3);
        assert_eq!(order, vec![1, 2, 0]);
        relabel(&mut labels, &order);
        assert_eq!(labels, vec![2, 2, 0, 0, 1, 1]);
        let p = profiles(&raw, &labels, 3);
        assert_eq!(p[0].means["Total_Spending"], 925.0);
        assert!(p[0].name.starts_with("High spenders"));
        assert!(p[2].name.starts_with("Low spenders"));
        assert_eq!(p.iter().map(|s| s.size).sum::<usize>(), 6);
    }
}
