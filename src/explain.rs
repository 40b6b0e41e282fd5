//! Why a customer is in its segment, and whether it resembles anyone there: computed from the
//! ONNX model's outputs (the preprocessed features, the distances to the centres) and the
//! manifest's [`SegmentSpace`], so the service and bulk scoring give the same answer.
//!
//! The served segment `s` is the classifier's answer; the runner-up `r` is the nearest centre
//! other than `s`, in the PCA space KMeans used. The margin is `d_r - d_s`: positive when `s`
//! is the nearest centre, negative when the classifier placed the customer elsewhere. It
//! splits exactly into one term per feature: with `z = W (x - μ)` the embedding of the
//! preprocessed features `x`, `δ = c_s - c_r` and `m = (c_s + c_r) / 2`,
//! `d_r² - d_s² = 2 (z - m) · δ = Σ_j 2 (x_j - x̂_j) (Wᵀδ)_j` where `x̂ = μ + Wᵀm` is the point
//! halfway between the two centres mapped back to features (`W`'s rows are orthonormal).
//! Dividing by `d_r + d_s` gives contributions that add up to the margin: a feature
//! contributes much when the customer sits far from the halfway point along a direction that
//! separates the two segments.

use serde::{Deserialize, Serialize};

use crate::schema::{FEATURES, N_FEATURES};

/// The space KMeans clustered in, and each segment's spread there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSpace {
    /// The mean the PCA subtracts from the preprocessed features (21 values).
    pub pca_mean: Vec<f32>,
    /// The PCA components: one row of 21 weights per embedding dimension.
    pub components: Vec<Vec<f32>>,
    /// Each segment's centre in the embedding.
    pub centres: Vec<Vec<f32>>,
    /// Each segment's 99th percentile (nearest rank) of its training customers' distance to
    /// its centre: a customer farther than that is atypical.
    pub distance_p99: Vec<f64>,
}

/// The nearest-rank 99th percentile of each segment's distances (`distance[i]` of a row in
/// segment `labels[i]`); a segment without rows gets the largest finite value.
pub fn distance_p99(labels: &[u32], distance: impl Iterator<Item = f64>, k: usize) -> Vec<f64> {
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); k];
    for (&l, d) in labels.iter().zip(distance) {
        per[l as usize].push(d);
    }
    per.into_iter()
        .map(|mut v| {
            if v.is_empty() {
                return f64::MAX;
            }
            v.sort_by(f64::total_cmp);
            let rank = (0.99 * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        })
        .collect()
}

impl SegmentSpace {
    pub fn k(&self) -> usize {
        self.centres.len()
    }

    /// Whether a customer with these `distances` (one per segment) served `segment` lies
    /// beyond that segment's 99th percentile.
    pub fn atypical(&self, distances: &[f32], segment: usize) -> bool {
        match (distances.get(segment), self.distance_p99.get(segment)) {
            (Some(&d), Some(&p99)) => f64::from(d) > p99,
            _ => false,
        }
    }

    /// The explanation of `segment` for one customer: its preprocessed features (the ONNX
    /// `preprocessed` output) and its distances to every centre.
    pub fn explain(&self, preprocessed: &[f32], distances: &[f32], segment: usize) -> Explanation {
        let k = self.k();
        let runner_up = (0..k)
            .filter(|&c| c != segment)
            .min_by(|&a, &b| distances[a].total_cmp(&distances[b]).then(a.cmp(&b)))
            .expect("at least two segments");
        let (d_s, d_r) = (
            f64::from(distances[segment]),
            f64::from(distances[runner_up]),
        );
        let (cs, cr) = (&self.centres[segment], &self.centres[runner_up]);
        let denominator = d_s + d_r;
        let mut contributions = vec![0f64; N_FEATURES];
        for (j, c) in contributions.iter_mut().enumerate() {
            // g_j = 2 (Wᵀδ)_j and x̂_j = μ_j + (Wᵀm)_j.
            let (mut g, mut back) = (0.0, 0.0);
            for (t, w) in self.components.iter().enumerate() {
                let (a, b) = (f64::from(cs[t]), f64::from(cr[t]));
                g += 2.0 * f64::from(w[j]) * (a - b);
                back += f64::from(w[j]) * (a + b) / 2.0;
            }
            let halfway = f64::from(self.pca_mean[j]) + back;
            if denominator > 0.0 {
                *c = g * (f64::from(preprocessed[j]) - halfway) / denominator;
            }
        }
        Explanation {
            segment,
            runner_up,
            margin: d_r - d_s,
            contributions,
        }
    }
}

/// What a served model's answers are told with: its segments' names and mean raw features,
/// and the space of its explanations (None for models published before it was recorded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segments {
    pub names: Vec<String>,
    /// `means[segment][feature]` in the user's units (NaN: no customer of the segment had one).
    pub means: Vec<Vec<f64>>,
    pub space: Option<SegmentSpace>,
}

impl Segments {
    pub fn name(&self, segment: usize) -> &str {
        self.name_of(segment).unwrap_or("")
    }

    /// The segment's name; None when the model has none for it.
    pub fn name_of(&self, segment: usize) -> Option<&str> {
        self.names.get(segment).map(String::as_str)
    }

    /// Whether a customer served `segment`, with these distances to every centre, lies beyond
    /// the segment's 99th percentile; false for a model that does not carry the percentiles.
    /// Each row's atypical flag: `segment` one per row, `distances` `k` per row.
    pub fn atypical_flags(&self, segment: &[i64], distances: &[f32], k: usize) -> Vec<bool> {
        segment
            .iter()
            .zip(distances.chunks_exact(k.max(1)))
            .map(|(&s, d)| self.atypical(d, s as usize))
            .collect()
    }

    pub fn atypical(&self, distances: &[f32], segment: usize) -> bool {
        self.space
            .as_ref()
            .is_some_and(|sp| sp.atypical(distances, segment))
    }

    /// The explanation in one sentence, for a customer whose raw features are `raw`.
    pub fn sentence(&self, e: &Explanation, raw: &[f32]) -> String {
        sentence(
            e,
            &self.names,
            |j| raw.get(j).map_or(f64::NAN, |&v| f64::from(v)),
            |j| self.mean(e.segment, j),
        )
    }

    pub fn mean(&self, segment: usize, feature: usize) -> f64 {
        self.means
            .get(segment)
            .and_then(|m| m.get(feature))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

/// Why one customer is in its segment rather than the runner-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub segment: usize,
    pub runner_up: usize,
    /// Distance to the runner-up's centre minus distance to the segment's centre.
    pub margin: f64,
    /// Each feature's share of the margin (they add up to it), in [`FEATURES`] order.
    pub contributions: Vec<f64>,
}

impl Explanation {
    /// Whether the served segment's centre is the nearest (the margin is not negative).
    pub fn nearest(&self) -> bool {
        self.margin >= 0.0
    }

    /// The `n` features that pull most towards the served segment, largest first.
    pub fn top(&self, n: usize) -> Vec<(usize, f64)> {
        let mut idx: Vec<usize> = (0..self.contributions.len()).collect();
        idx.sort_by(|&a, &b| {
            self.contributions[b]
                .total_cmp(&self.contributions[a])
                .then(a.cmp(&b))
        });
        idx.into_iter()
            .take(n)
            .map(|j| (j, self.contributions[j]))
            .collect()
    }
}

/// Features named in an explanation's top list.
pub const TOP_FEATURES: usize = 3;

/// The explanation in one sentence: "Closer to High spenders than to Mid spenders mainly
/// because of spent on meat (546 vs a segment average of 430), then …". `value(j)` is the
/// customer's value of feature `j` in the user's units, `mean(j)` the segment's average.
pub fn sentence(
    e: &Explanation,
    names: &[String],
    value: impl Fn(usize) -> f64,
    mean: impl Fn(usize) -> f64,
) -> String {
    let name = |i: usize| {
        names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("segment {i}"))
    };
    let top: Vec<usize> = e
        .top(TOP_FEATURES)
        .into_iter()
        .filter(|(_, c)| *c > 0.0)
        .map(|(j, _)| j)
        .collect();
    let mut because = String::new();
    if let Some(&j) = top.first() {
        let f = &FEATURES[j];
        because = format!(
            " mainly because of {} ({} vs a segment average of {})",
            f.phrase(),
            f.show_value(value(j)).to_lowercase(),
            f.show_mean(mean(j))
        );
        let rest: Vec<String> = top[1..].iter().map(|&j| FEATURES[j].phrase()).collect();
        if !rest.is_empty() {
            because.push_str(&format!(", then {}", rest.join(" and ")));
        }
    }
    if e.nearest() {
        format!(
            "Closer to {} than to {}{because}.",
            name(e.segment),
            name(e.runner_up)
        )
    } else {
        format!(
            "Placed in {} by the classifier although the centre of {} is nearer{because}.",
            name(e.segment),
            name(e.runner_up)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two features only matter: the embedding is (x_0, x_1) - μ; centres at (±2, 0).
    fn space() -> SegmentSpace {
        let mut w0 = vec![0f32; N_FEATURES];
        let mut w1 = vec![0f32; N_FEATURES];
        w0[4] = 1.0;
        w1[7] = 1.0;
        SegmentSpace {
            pca_mean: vec![0.5; N_FEATURES],
            components: vec![w0, w1],
            centres: vec![vec![2.0, 0.0], vec![-2.0, 0.0], vec![0.0, 6.0]],
            distance_p99: vec![1.5, 1.5, 1.5],
        }
    }

    fn distances(s: &SegmentSpace, x: &[f32]) -> Vec<f32> {
        let z: Vec<f32> = s
            .components
            .iter()
            .map(|w| {
                w.iter()
                    .zip(x)
                    .zip(&s.pca_mean)
                    .map(|((w, x), m)| w * (x - m))
                    .sum()
            })
            .collect();
        s.centres
            .iter()
            .map(|c| {
                c.iter()
                    .zip(&z)
                    .map(|(c, z)| (c - z).powi(2))
                    .sum::<f32>()
                    .sqrt()
            })
            .collect()
    }

    #[test]
    fn the_feature_that_separates_the_segments_is_the_top_one() {
        let s = space();
        let mut x = vec![0.5f32; N_FEATURES];
        x[4] = 3.0; // embedding (2.5, 0): segment 0's side of feature 4
        x[7] = 0.6; // a little towards segment 2, which is not the runner-up
        let d = distances(&s, &x);
        let e = s.explain(&x, &d, 0);
        assert_eq!(e.runner_up, 1);
        assert!(e.nearest());
        assert_eq!(e.top(1)[0].0, 4);
        let sum: f64 = e.contributions.iter().sum();
        assert!((sum - e.margin).abs() < 1e-5, "{sum} vs {}", e.margin);
        assert!((e.margin - (f64::from(d[1]) - f64::from(d[0]))).abs() < 1e-12);
        let names = vec!["High".to_string(), "Low".to_string(), "Odd".to_string()];
        assert_eq!(
            sentence(&e, &names, |_| 3.0, |_| 1.5),
            "Closer to High than to Low mainly because of children at home (3 vs a segment \
             average of 1.5)."
        );
        // Features the components ignore contribute nothing.
        assert!(
            e.contributions
                .iter()
                .enumerate()
                .all(|(j, c)| [4, 7].contains(&j) || *c == 0.0)
        );
    }

    #[test]
    fn a_classifier_answer_that_is_not_the_nearest_centre_has_a_negative_margin() {
        let s = space();
        let mut x = vec![0.5f32; N_FEATURES];
        x[4] = 2.0;
        let d = distances(&s, &x);
        let e = s.explain(&x, &d, 1);
        assert_eq!(e.runner_up, 0);
        assert!(e.margin < 0.0 && !e.nearest());
        let names = vec!["High".to_string(), "Low".to_string(), "Odd".to_string()];
        let text = sentence(&e, &names, |_| 1.0, |_| 2.0);
        assert!(
            text.starts_with("Placed in Low by the classifier although the centre of High"),
            "{text}"
        );
    }

    #[test]
    fn an_outlier_is_atypical_and_a_typical_customer_is_not() {
        let s = space();
        let mut x = vec![0.5f32; N_FEATURES];
        x[4] = 2.5 + 1.0; // (3, 0): 1 from segment 0's centre
        assert!(!s.atypical(&distances(&s, &x), 0));
        x[7] = 0.5 + 4.0; // (3, 4): 4.1 from it
        assert!(s.atypical(&distances(&s, &x), 0));
        let p = distance_p99(&[0, 0, 1], (1..=3).map(f64::from), 3);
        assert_eq!(p, vec![2.0, 3.0, f64::MAX]);
        let hundred: Vec<u32> = vec![0; 200];
        let p = distance_p99(&hundred, (1..=200).map(f64::from), 1);
        assert_eq!(p, vec![198.0]);
    }
}
