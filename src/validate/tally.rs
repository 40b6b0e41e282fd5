//! A column's running profile, mergeable: [`Tally`] keeps exact counts, missing values, mean
//! and deviation, and quantiles from a t-digest (or exact rows per distinct value until
//! there are too many), so two streams' profiles merge into the profile of both. Streamed
//! validation and the service's live monitoring both keep their columns so.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tdigest::TDigest;

use super::*;
use crate::config::ValidationSettings;

/// Adds the count, mean and sum of squared deviations of other values to `(n, mean, m2)`
/// (Chan et al.'s merge): a batch's, or another tally's.
fn combine_moments(
    (n, mean, m2): (&mut usize, &mut f64, &mut f64),
    (on, omean, om2): (usize, f64, f64),
) {
    if on == 0 {
        return;
    }
    let total = *n + on;
    let delta = omean - *mean;
    *m2 += om2 + delta * delta * (*n as f64) * (on as f64) / total as f64;
    *mean += delta * on as f64 / total as f64;
    *n = total;
}

/// Hashes a distinct value's bits with one multiply (the keys are numbers, and a tally holds at
/// most its cap of them before it stops counting, so a crafted set of colliding values costs at
/// most that many probes).
#[derive(Default, Clone, Copy)]
pub struct BitsHasher(u64);

impl std::hash::Hasher for BitsHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Rows per distinct value, by the value's bits.
pub type Distinct = HashMap<u64, u64, std::hash::BuildHasherDefault<BitsHasher>>;

/// A digest of a tally's distinct values (each one a centroid of its rows).
fn digest_of(d: &Distinct, max_size: usize) -> TDigest {
    let (mut sum, mut count) = (0.0, 0.0);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    let centroids = d
        .iter()
        .map(|(&bits, &c)| {
            let v = f64::from_bits(bits);
            sum += v * c as f64;
            count += c as f64;
            min = min.min(v);
            max = max.max(v);
            tdigest::Centroid::new(v, c as f64)
        })
        .collect::<Vec<_>>();
    let some = |x: f64| x.is_finite().then_some(x);
    TDigest::new(centroids, sum, count, some(max), some(min), max_size.max(1))
}

/// Values a batch adds to a digest one by one; a larger batch adds an evenly spaced sample of
/// this many, each weighted by its share of the batch (the batch's min and max exactly):
/// sorting a whole 65,536-row piece per column cost bulk scoring a fifth of its time, and the
/// digest keeps far fewer centroids than this anyway.
pub const DIGEST_BATCH: usize = 8192;

/// `digest` with a batch of finite values added (see [`DIGEST_BATCH`]).
fn digest_add(digest: &TDigest, mut v: Vec<f64>) -> TDigest {
    if v.len() <= DIGEST_BATCH {
        if !v.is_sorted() {
            crate::sort::sort_f64(&mut v);
        }
        return digest.merge_sorted(v);
    }
    let n = v.len();
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in &v {
        min = min.min(x);
        max = max.max(x);
    }
    let sum: f64 = v.iter().sum();
    // Every step-th value: of a sorted batch, evenly spaced quantiles; of an unsorted one, a
    // systematic sample.
    let step = n.div_ceil(DIGEST_BATCH);
    let mut sample: Vec<f64> = v.iter().step_by(step).copied().collect();
    crate::sort::sort_f64(&mut sample);
    let weight = n as f64 / sample.len() as f64;
    let batch = TDigest::new(
        sample
            .into_iter()
            .map(|x| tdigest::Centroid::new(x, weight))
            .collect(),
        sum,
        n as f64,
        Some(max),
        Some(min),
        digest.max_size(),
    );
    if digest.is_empty() {
        batch
    } else {
        TDigest::merge_digests(vec![digest.clone(), batch])
    }
}

/// One column's running profile: exact counts, missing values, mean and standard deviation
/// (merged by Chan et al.'s rule), min and max, quantiles from a t-digest, and the rows per
/// distinct value until there are more than its cap. Mergeable: the profile of two streams is
/// the merge of theirs (exact for the counts, within the digest's error for the quantiles).
/// Training's streamed profile and the service's live monitoring both keep their columns so.
#[derive(Debug, Clone)]
pub enum Tally {
    Categories {
        counts: BTreeMap<String, u64>,
        missing: usize,
    },
    Numbers {
        missing: usize,
        n: usize,
        mean: f64,
        /// Sum of squared deviations from the mean (Chan et al.'s merge).
        m2: f64,
        digest: TDigest,
        /// Rows per distinct value (by bits), until there are more than `cap`. While it is
        /// kept, the digest is empty (the counts are exact, and cheaper to add to); when it
        /// overflows, the digest is made of it.
        distinct: Option<Distinct>,
        cap: usize,
        /// Every value so far is a whole number: the quantiles are too.
        whole: bool,
    },
}

impl Tally {
    /// A numeric column's empty tally: a digest of `centroids`, distinct values up to `cap`.
    pub fn numbers(centroids: usize, cap: usize) -> Self {
        Tally::Numbers {
            missing: 0,
            n: 0,
            mean: 0.0,
            m2: 0.0,
            digest: TDigest::new_with_size(centroids.max(1)),
            distinct: Some(Distinct::default()),
            cap,
            whole: true,
        }
    }

    /// Values counted (not missing).
    pub fn count(&self) -> usize {
        match self {
            Tally::Categories { counts, .. } => counts.values().sum::<u64>() as usize,
            Tally::Numbers { n, .. } => *n,
        }
    }

    pub fn missing(&self) -> usize {
        match self {
            Tally::Categories { missing, .. } | Tally::Numbers { missing, .. } => *missing,
        }
    }

    /// Adds a numeric column's values (any order; NaN counts as missing).
    pub fn add_numbers(&mut self, mut values: Vec<f64>) {
        let before = values.len();
        values.retain(|v| v.is_finite());
        let missing = before - values.len();
        self.add(Values::Numbers(values), missing);
    }

    /// Adds another tally of the same column: counts exactly, the digests by merging.
    pub fn merge(&mut self, other: &Tally) {
        match (self, other) {
            (
                Tally::Categories { counts, missing },
                Tally::Categories {
                    counts: c,
                    missing: m,
                },
            ) => {
                *missing += m;
                for (k, n) in c {
                    *counts.entry(k.clone()).or_insert(0) += n;
                }
            }
            (
                Tally::Numbers {
                    missing,
                    n,
                    mean,
                    m2,
                    digest,
                    distinct,
                    cap,
                    whole,
                },
                Tally::Numbers {
                    missing: om,
                    n: on,
                    mean: omean,
                    m2: om2,
                    digest: od,
                    distinct: odistinct,
                    whole: owhole,
                    ..
                },
            ) => {
                *missing += om;
                if *on == 0 {
                    return;
                }
                *whole &= owhole;
                combine_moments((n, mean, m2), (*on, *omean, *om2));
                let size = digest.max_size();
                match (distinct.take(), odistinct) {
                    (Some(mut d), Some(o)) => {
                        for (&k, &c) in o {
                            *d.entry(k).or_insert(0) += c;
                        }
                        if d.len() <= *cap {
                            *distinct = Some(d);
                        } else {
                            *digest = digest_of(&d, size);
                        }
                    }
                    (Some(d), None) => {
                        *digest = TDigest::merge_digests(vec![digest_of(&d, size), od.clone()]);
                    }
                    (None, Some(o)) => {
                        *digest = TDigest::merge_digests(vec![digest.clone(), digest_of(o, size)]);
                    }
                    (None, None) => {
                        *digest = TDigest::merge_digests(vec![digest.clone(), od.clone()]);
                    }
                }
            }
            // Both come from one column of one schema.
            _ => unreachable!("merging a categorical tally with a numeric one"),
        }
    }

    /// Adds a batch of a column's values read as its kind, and its missing count.
    pub(super) fn add(&mut self, values: Values, batch_missing: usize) {
        match (self, values) {
            (Tally::Categories { counts, missing }, Values::Categories(c)) => {
                *missing += batch_missing;
                for (k, n) in c {
                    *counts.entry(k).or_insert(0) += n;
                }
            }
            (
                Tally::Numbers {
                    missing,
                    n,
                    mean,
                    m2,
                    digest,
                    distinct,
                    cap,
                    whole,
                },
                Values::Numbers(mut v),
            ) => {
                *missing += batch_missing;
                if v.is_empty() {
                    return;
                }
                *whole &= v.iter().all(|x| x.fract() == 0.0);
                let (bn, (bmean, bstd)) = (v.len(), mean_std(&v));
                combine_moments((n, mean, m2), (bn, bmean, bstd * bstd * bn as f64));
                if let Some(d) = distinct.as_mut() {
                    let mut counted = 0;
                    for x in &v {
                        *d.entry(x.to_bits()).or_insert(0) += 1;
                        counted += 1;
                        if d.len() > *cap {
                            break;
                        }
                    }
                    if d.len() <= *cap {
                        return;
                    }
                    // More distinct values than the cap: from now on the digest, made of the
                    // counts so far, then the rest of this batch.
                    if let Some(d) = distinct.take() {
                        *digest = digest_of(&d, digest.max_size());
                    }
                    v.drain(..counted);
                    if v.is_empty() {
                        return;
                    }
                }
                *digest = digest_add(digest, v);
            }
            // The kind of a column comes from the schema: every batch reads it the same way.
            _ => unreachable!("a column read as numbers in one batch and categories in another"),
        }
    }

    /// What drift is measured on: category counts, or the digest's quantiles (the counts of
    /// few distinct numbers where the reference counted them as categories).
    pub(crate) fn current(&self, reference: &ColumnProfile) -> Values {
        match self {
            Tally::Categories { counts, .. } => Values::Categories(counts.clone()),
            Tally::Numbers { distinct, .. }
                if reference.kind == ColumnKind::Categorical && distinct.is_some() =>
            {
                Values::Categories(self.number_counts())
            }
            Tally::Numbers { .. } => Values::Numbers(self.quantiles()),
        }
    }

    fn number_counts(&self) -> BTreeMap<String, u64> {
        let Tally::Numbers {
            distinct: Some(d), ..
        } = self
        else {
            return BTreeMap::new();
        };
        let mut counts = BTreeMap::new();
        for (&bits, &c) in d {
            *counts
                .entry(format_number(f64::from_bits(bits)))
                .or_insert(0) += c;
        }
        counts
    }

    /// [`QUANTILES`] + 1 evenly spaced quantiles, the first and last the exact min and max.
    /// Exact (as [`quantile`] of the values) while the distinct values are counted; from the
    /// digest after, rounded to whole numbers when every value was one (an interpolation
    /// between two centroids is not a value a whole-number column can take, and the drift
    /// tests compare steps of tied values).
    fn quantiles(&self) -> Vec<f64> {
        let Tally::Numbers {
            digest,
            n,
            distinct,
            whole,
            ..
        } = self
        else {
            return Vec::new();
        };
        if *n == 0 {
            return Vec::new();
        }
        if let Some(d) = distinct {
            let mut runs: Vec<(f64, u64)> =
                d.iter().map(|(&b, &c)| (f64::from_bits(b), c)).collect();
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total: u64 = runs.iter().map(|r| r.1).sum();
            // The value at 0-based position `at` of the sorted values.
            let at = |pos: u64| -> f64 {
                let mut seen = 0u64;
                for &(v, c) in &runs {
                    seen += c;
                    if pos < seen {
                        return v;
                    }
                }
                runs.last().map_or(f64::NAN, |r| r.0)
            };
            return (0..=QUANTILES)
                .map(|i| {
                    let pos = i as f64 / QUANTILES as f64 * (total.max(1) - 1) as f64;
                    let (lo, hi) = (at(pos.floor() as u64), at(pos.ceil() as u64));
                    lo + (hi - lo) * (pos - pos.floor())
                })
                .collect();
        }
        let mut q: Vec<f64> = (0..=QUANTILES)
            .map(|i| {
                digest
                    .estimate_quantile(i as f64 / QUANTILES as f64)
                    .unwrap_or(f64::NAN)
            })
            .collect();
        if *whole {
            for v in &mut q {
                *v = v.round();
            }
        }
        q[0] = digest.min().unwrap_or(q[0]);
        q[QUANTILES] = digest.max().unwrap_or(q[QUANTILES]);
        // Interpolation between centroids is monotone; clamp anyway so the list stays sorted.
        for i in 1..q.len() {
            if q[i] < q[i - 1] {
                q[i] = q[i - 1];
            }
        }
        q
    }

    pub fn profile(&self, name: &str, settings: &ValidationSettings) -> ColumnProfile {
        match self {
            Tally::Categories { counts, missing } => categorical(name, counts.clone(), *missing),
            Tally::Numbers {
                missing,
                n,
                mean,
                m2,
                distinct,
                cap,
                ..
            } => match distinct {
                Some(d) if d.len() <= settings.max_categorical_unique => {
                    categorical(name, self.number_counts(), *missing)
                }
                _ => ColumnProfile {
                    name: name.to_string(),
                    kind: ColumnKind::Numeric,
                    missing: *missing,
                    unique: distinct.as_ref().map_or(*cap, Distinct::len),
                    mean: if *n == 0 { 0.0 } else { *mean },
                    std: if *n == 0 {
                        0.0
                    } else {
                        (m2 / *n as f64).sqrt()
                    },
                    values: self.quantiles(),
                    exact: false,
                    counts: BTreeMap::new(),
                },
            },
        }
    }
}

/// A tally as JSON: the digest as its centroids `[mean, weight]`, the distinct values as
/// `[value, rows]` pairs sorted by value.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum TallyData {
    Categories {
        counts: BTreeMap<String, u64>,
        missing: usize,
    },
    Numbers {
        missing: usize,
        n: usize,
        mean: f64,
        m2: f64,
        centroids: Vec<[f64; 2]>,
        sum: f64,
        min: Option<f64>,
        max: Option<f64>,
        max_size: usize,
        distinct: Option<Vec<[f64; 2]>>,
        cap: usize,
        #[serde(default)]
        whole: bool,
    },
}

impl Serialize for Tally {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let data = match self {
            Tally::Categories { counts, missing } => TallyData::Categories {
                counts: counts.clone(),
                missing: *missing,
            },
            Tally::Numbers {
                missing,
                n,
                mean,
                m2,
                digest,
                distinct,
                cap,
                whole,
            } => TallyData::Numbers {
                missing: *missing,
                n: *n,
                mean: *mean,
                m2: *m2,
                centroids: digest
                    .centroids()
                    .iter()
                    .map(|c| [c.mean(), c.weight()])
                    .collect(),
                sum: digest.sum(),
                min: digest.min(),
                max: digest.max(),
                max_size: digest.max_size(),
                distinct: distinct.as_ref().map(|d| {
                    let mut v: Vec<[f64; 2]> = d
                        .iter()
                        .map(|(&bits, &c)| [f64::from_bits(bits), c as f64])
                        .collect();
                    v.sort_by(|a, b| a[0].total_cmp(&b[0]));
                    v
                }),
                cap: *cap,
                whole: *whole,
            },
        };
        data.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Tally {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        Ok(match TallyData::deserialize(deserializer)? {
            TallyData::Categories { counts, missing } => Tally::Categories { counts, missing },
            TallyData::Numbers {
                missing,
                n,
                mean,
                m2,
                centroids,
                sum,
                min,
                max,
                max_size,
                distinct,
                cap,
                whole,
            } => {
                let finite = |v: f64| v.is_finite();
                if max_size == 0
                    || !centroids
                        .iter()
                        .all(|c| finite(c[0]) && finite(c[1]) && c[1] > 0.0)
                    || !min.is_none_or(finite)
                    || !max.is_none_or(finite)
                    || (!centroids.is_empty() && (min.is_none() || max.is_none()))
                {
                    return Err(D::Error::custom("a tally's digest is not a valid t-digest"));
                }
                let count = centroids.iter().map(|c| c[1]).sum();
                let digest = TDigest::new(
                    centroids
                        .into_iter()
                        .map(|c| tdigest::Centroid::new(c[0], c[1]))
                        .collect(),
                    sum,
                    count,
                    max,
                    min,
                    max_size,
                );
                Tally::Numbers {
                    missing,
                    n,
                    mean,
                    m2,
                    digest,
                    distinct: distinct.map(|d| {
                        d.into_iter()
                            .map(|[v, c]| (v.to_bits(), c as u64))
                            .collect()
                    }),
                    cap,
                    whole,
                }
            }
        })
    }
}
