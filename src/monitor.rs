//! What a model is asked about once it serves: profiles of the customers it scores, kept in
//! time buckets, and their drift against the model's training reference.
//!
//! A [`Bucket`] holds, for one model version and one span of time, per feature a mergeable
//! [`Tally`] (count, missing values, mean and deviation, a t-digest of [`DIGEST_CENTROIDS`]
//! centroids, the rows per distinct value up to [`DISTINCT_CAP`]), the predictions per
//! segment, the atypical customers and the row errors per field. Buckets merge: counts add
//! exactly, quantiles stay within the digest's error, so the buckets of several replicas (or
//! of several days) merge into the profile of everything they saw.
//!
//! [`report`] measures a window's drift with validation's own tests: the reference is the
//! profile of the 21 features of the model's training split (`validate::feature_profile` in the
//! manifest), the per-feature test and threshold are validation's (statistical tests for a
//! reference of at most `validation.small_reference_rows` rows, distances above), the
//! dataset rule is `validation.dataset_drift_share`, the segment shares are tested as a
//! categorical column against the training shares, and the atypical share against the
//! expected 1 % (each segment's 99th-percentile distance).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{MonitoringSettings, ValidationSettings};
use crate::registry::Manifest;
use crate::schema::{FEATURES, N_FEATURES};
use crate::validate::{ColumnDrift, Tally};

/// Centroids of each feature's digest in a bucket: the quantiles' rank error stays within
/// about 1 % (far less in the tails) and a full bucket is about 70 KB.
pub const DIGEST_CENTROIDS: usize = 200;

/// Distinct values a feature counts per bucket before it keeps only its digest; above
/// `validation.max_categorical_unique`, so a feature the reference counted as categories is
/// compared as categories.
pub const DISTINCT_CAP: usize = 64;

/// The share of atypical customers on the training data: beyond each segment's 99th
/// percentile distance.
pub const EXPECTED_ATYPICAL: f64 = 0.01;

/// What one replica scored with one model version in one span of time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bucket {
    pub version: String,
    /// Unix milliseconds, `[start_ms, end_ms)`.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Customers scored.
    pub rows: u64,
    /// Per feature, in the model's feature order.
    pub features: Vec<Tally>,
    /// Predictions per segment id.
    pub segments: Vec<u64>,
    pub atypical: u64,
    /// Customers refused with a row error, per feature named (`other` where the error named
    /// none, or a field that is not a feature: the keys stay bounded whatever clients send).
    pub errors: BTreeMap<String, u64>,
    /// Rows counted but not yet in the tallies: features are added [`SETTLE_ROWS`] at a
    /// time (a sort and a digest merge per feature), not per request. Call
    /// [`Bucket::settle`] before reading or writing the tallies.
    #[serde(skip)]
    pending: Vec<f32>,
}

/// Rows a bucket collects before it adds them to its tallies.
pub const SETTLE_ROWS: usize = 4096;

impl Bucket {
    pub fn new(version: &str, start_ms: u64, end_ms: u64) -> Self {
        Self {
            version: version.to_string(),
            start_ms,
            end_ms,
            rows: 0,
            features: (0..N_FEATURES)
                .map(|_| Tally::numbers(DIGEST_CENTROIDS, DISTINCT_CAP))
                .collect(),
            segments: Vec::new(),
            atypical: 0,
            errors: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// Adds the pending rows to the tallies.
    pub fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.pending);
        for (j, tally) in self.features.iter_mut().enumerate() {
            tally.add_numbers(
                rows.chunks_exact(N_FEATURES)
                    .map(|r| f64::from(r[j]))
                    .collect(),
            );
        }
        self.pending = rows;
        self.pending.clear();
    }

    /// Adds scored customers: `rows` row-major, 21 features each (NaN: missing), with each
    /// one's segment and whether it was atypical.
    pub fn add(&mut self, rows: &[f32], segments: &[i64], atypical: &[bool]) {
        let n = rows.len() / N_FEATURES;
        if n == 0 {
            return;
        }
        self.pending.extend_from_slice(&rows[..n * N_FEATURES]);
        if self.pending.len() >= SETTLE_ROWS * N_FEATURES {
            self.settle();
        }
        for &s in segments {
            let s = s.max(0) as usize;
            if self.segments.len() <= s {
                self.segments.resize(s + 1, 0);
            }
            self.segments[s] += 1;
        }
        self.atypical += atypical.iter().filter(|&&a| a).count() as u64;
        self.rows += n as u64;
    }

    /// Counts a refused customer's row error under its field.
    pub fn add_error(&mut self, field: Option<&str>, n: u64) {
        let key = field
            .and_then(|f| FEATURES.iter().find(|x| x.key == f))
            .map_or("other", |x| x.key);
        *self.errors.entry(key.to_string()).or_insert(0) += n;
    }

    /// Adds another bucket (another replica's, or the next span of time): the result covers
    /// both spans.
    pub fn merge(&mut self, other: &Bucket) {
        self.start_ms = self.start_ms.min(other.start_ms);
        self.end_ms = self.end_ms.max(other.end_ms);
        self.rows += other.rows;
        for (a, b) in self.features.iter_mut().zip(&other.features) {
            a.merge(b);
        }
        self.pending.extend_from_slice(&other.pending);
        self.settle();
        if self.segments.len() < other.segments.len() {
            self.segments.resize(other.segments.len(), 0);
        }
        for (a, b) in self.segments.iter_mut().zip(&other.segments) {
            *a += b;
        }
        self.atypical += other.atypical;
        for (f, n) in &other.errors {
            *self.errors.entry(f.clone()).or_insert(0) += n;
        }
    }

    /// Checks what a bucket read from a store claims: 21 features, a span that is one.
    pub fn check(&self) -> Result<(), String> {
        if self.features.len() != N_FEATURES {
            return Err(format!(
                "{} features, not {N_FEATURES}",
                self.features.len()
            ));
        }
        if self.end_ms < self.start_ms {
            return Err("ends before it starts".into());
        }
        if self.segments.len() > crate::config::MAX_SEGMENTS {
            return Err(format!("{} segments", self.segments.len()));
        }
        Ok(())
    }
}

/// Merges buckets of one model version into one (None when there are none).
pub fn merge_all<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Option<Bucket> {
    let mut it = buckets.into_iter();
    let mut merged = it.next()?.clone();
    for b in it {
        merged.merge(b);
    }
    merged.settle();
    Some(merged)
}

/// One feature's drift in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeatureDrift {
    pub feature: String,
    /// `ks`, `chi_square`, `z`, `wasserstein` or `jensen_shannon` (validation's choice).
    pub test: String,
    /// The p-value (tests) or the distance.
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
    /// Values in the window, and missing ones.
    pub count: u64,
    pub missing: u64,
    /// The chart: bars' labels, the reference's and the window's shares.
    pub labels: Vec<String>,
    pub reference_shares: Vec<f64>,
    pub current_shares: Vec<f64>,
}

/// One segment's share of the window's predictions against its training share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SegmentShare {
    pub segment: usize,
    pub name: String,
    pub count: u64,
    pub share: f64,
    pub reference_share: f64,
}

/// A test of the window against an expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    pub test: String,
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
}

/// The atypical customers' share against the expected one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AtypicalShare {
    pub count: u64,
    pub share: f64,
    pub expected: f64,
    /// Drift when the share is at least `monitoring.atypical_ratio` times the expected one
    /// and a one-sided Z test against the expected share gives p < `validation.p_value`.
    pub ratio_threshold: f64,
    pub p_value: f64,
    pub drifted: bool,
}

/// The monitoring report of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub model_version: String,
    /// `drift` (the data set by validation's rule, the segment shares or the atypical share),
    /// `feature_drift` (some features drifted, fewer than the data set's rule needs),
    /// `no_drift`, `not_enough_data` (fewer than `monitoring.min_rows` customers) or
    /// `no_reference` (a model trained before monitoring existed: retrain it).
    pub status: String,
    /// Null unless the window has enough customers and the model a reference.
    pub dataset_drift: Option<bool>,
    /// Unix milliseconds: the window's bounds (the buckets it merged).
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    /// Customers scored in the window, and refused with a row error.
    pub rows: u64,
    pub min_rows: u64,
    pub error_rows: u64,
    pub errors: BTreeMap<String, u64>,
    pub drifted_features: usize,
    pub drift_share: f64,
    pub drift_share_threshold: f64,
    pub features: Vec<FeatureDrift>,
    pub segments: Vec<SegmentShare>,
    /// The segment shares against the training shares (a categorical column's test).
    pub segment_shift: Option<TestResult>,
    pub atypical: Option<AtypicalShare>,
    /// Replicas (or bulk runs) whose buckets were merged, when read from a store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// The drift of `window` (the merged buckets of `manifest`'s version) against the model's
/// reference.
pub fn report(
    window: Option<&Bucket>,
    manifest: &Manifest,
    monitoring: &MonitoringSettings,
    settings: &ValidationSettings,
) -> Report {
    let window = settled(window, &manifest.version);
    let w: &Bucket = &window;
    let rows = w.rows;
    let enough = rows >= monitoring.min_rows;
    let reference = manifest.feature_profile.as_ref();
    let drift = reference.map_or_else(FeaturesDrift::default, |r| {
        features_drift(w, r, enough, settings)
    });
    let (segments, segment_shift) = segment_shares(w, manifest, enough, settings);
    let atypical = enough.then(|| atypical_share(w, monitoring, settings));
    let status = if reference.is_none() {
        "no_reference"
    } else if !enough {
        "not_enough_data"
    } else if drift.dataset_drift == Some(true)
        || segment_shift.as_ref().is_some_and(|t| t.drifted)
        || atypical.as_ref().is_some_and(|a| a.drifted)
    {
        "drift"
    } else if drift.drifted_features > 0 {
        "feature_drift"
    } else {
        "no_drift"
    };
    Report {
        model_version: manifest.version.clone(),
        status: status.into(),
        dataset_drift: drift.dataset_drift,
        window_start_ms: w.start_ms,
        window_end_ms: w.end_ms,
        rows,
        min_rows: monitoring.min_rows,
        error_rows: w.errors.values().sum(),
        errors: w.errors.clone(),
        drifted_features: drift.drifted_features,
        drift_share: drift.drift_share,
        drift_share_threshold: settings.dataset_drift_share,
        features: drift.features,
        segments,
        segment_shift,
        atypical,
        sources: Vec::new(),
    }
}

/// The window with its pending rows settled (a copy only when some are pending); an empty
/// bucket of `version` when there is no window.
fn settled<'a>(window: Option<&'a Bucket>, version: &str) -> Cow<'a, Bucket> {
    match window {
        Some(w) if !w.pending.is_empty() => {
            let mut b = w.clone();
            b.settle();
            Cow::Owned(b)
        }
        Some(w) => Cow::Borrowed(w),
        None => Cow::Owned(Bucket::new(version, 0, 0)),
    }
}

/// The features' drift against the training reference, and validation's verdict on the data
/// set (nothing drifted and no verdict without enough rows).
#[derive(Default)]
struct FeaturesDrift {
    features: Vec<FeatureDrift>,
    drifted_features: usize,
    drift_share: f64,
    dataset_drift: Option<bool>,
}

/// Each feature of the window tested against its column of the reference `r`, with
/// validation's tests and thresholds (`small`: the statistical tests of a small reference).
fn features_drift(
    w: &Bucket,
    r: &crate::validate::Profile,
    enough: bool,
    settings: &ValidationSettings,
) -> FeaturesDrift {
    let small = r.rows <= settings.small_reference_rows;
    let columns: Vec<(ColumnDrift, &Tally)> = w
        .features
        .iter()
        .zip(FEATURES.iter())
        .filter_map(|(tally, f)| {
            let rc = r.columns.iter().find(|c| c.name == f.key)?;
            let d = crate::validate::tally_drift(rc, tally, small, settings);
            Some((d, tally))
        })
        .collect();
    let features = columns
        .iter()
        .map(|(d, t)| FeatureDrift {
            feature: d.column.clone(),
            test: d.test.clone(),
            score: d.score,
            threshold: d.threshold,
            drifted: enough && d.drifted,
            count: t.count() as u64,
            missing: t.missing() as u64,
            labels: d.labels.clone(),
            reference_shares: d.reference_shares.clone(),
            current_shares: d.current_shares.clone(),
        })
        .collect();
    let verdict =
        crate::validate::drift_verdict(columns.into_iter().map(|(d, _)| d).collect(), settings);
    FeaturesDrift {
        features,
        drifted_features: if enough { verdict.drifted_columns } else { 0 },
        drift_share: if enough { verdict.share } else { 0.0 },
        dataset_drift: enough.then_some(verdict.dataset_drift),
    }
}

/// The segment shares of the window's predictions, against the training split's, and their
/// test as a categorical column (none without enough rows or a training count).
fn segment_shares(
    w: &Bucket,
    manifest: &Manifest,
    enough: bool,
    settings: &ValidationSettings,
) -> (Vec<SegmentShare>, Option<TestResult>) {
    let rows = w.rows;
    let reference_counts: BTreeMap<String, u64> = manifest
        .segments
        .iter()
        .map(|s| (s.id.to_string(), s.size as u64))
        .collect();
    let current_counts: BTreeMap<String, u64> = (0..manifest.k)
        .map(|s| (s.to_string(), w.segments.get(s).copied().unwrap_or(0)))
        .collect();
    let reference_rows: u64 = reference_counts.values().sum();
    let segments = manifest
        .segments
        .iter()
        .map(|s| {
            let count = w.segments.get(s.id).copied().unwrap_or(0);
            SegmentShare {
                segment: s.id,
                name: s.name.clone(),
                count,
                share: if rows == 0 {
                    0.0
                } else {
                    count as f64 / rows as f64
                },
                reference_share: s.size as f64 / reference_rows.max(1) as f64,
            }
        })
        .collect();
    let segment_reference = crate::validate::categorical_profile("segment", reference_counts);
    let segment_shift = (enough && reference_rows > 0).then(|| {
        let d = crate::validate::categorical_drift(
            &segment_reference,
            &current_counts,
            reference_rows as usize <= settings.small_reference_rows,
            settings,
        );
        TestResult {
            test: d.test,
            score: d.score,
            threshold: d.threshold,
            drifted: d.drifted,
        }
    });
    (segments, segment_shift)
}

/// The atypical customers' share against the expected one: a one-sided Z test, and the
/// ratio `monitoring.atypical_ratio`.
fn atypical_share(
    w: &Bucket,
    monitoring: &MonitoringSettings,
    settings: &ValidationSettings,
) -> AtypicalShare {
    let rows = w.rows;
    let share = w.atypical as f64 / rows as f64;
    let p0 = EXPECTED_ATYPICAL;
    let z = (share - p0) / (p0 * (1.0 - p0) / rows as f64).sqrt();
    let p_value = 0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2);
    AtypicalShare {
        count: w.atypical,
        share,
        expected: p0,
        ratio_threshold: monitoring.atypical_ratio,
        p_value,
        drifted: share >= monitoring.atypical_ratio * p0 && p_value < settings.p_value,
    }
}

impl Report {
    /// The features that drifted, by name.
    pub fn drifted(&self) -> Vec<&str> {
        self.features
            .iter()
            .filter(|f| f.drifted)
            .map(|f| f.feature.as_str())
            .collect()
    }

    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "model {}: {} ({} customers from {} to {}; {} refused)\n",
            self.model_version,
            self.status,
            self.rows,
            format_ms(self.window_start_ms),
            format_ms(self.window_end_ms),
            self.error_rows
        );
        if !self.features.is_empty() {
            out += &format!(
                "  features drifted: {} of {} (dataset drift at {:.0} %){}\n",
                self.drifted_features,
                self.features.len(),
                self.drift_share_threshold * 100.0,
                if self.drifted().is_empty() {
                    String::new()
                } else {
                    format!(": {}", self.drifted().join(", "))
                }
            );
        }
        for f in &self.features {
            out += &format!(
                "    {:<20} {:<15} {:>9.4} (threshold {}){}\n",
                f.feature,
                f.test,
                f.score,
                f.threshold,
                if f.drifted { "  DRIFT" } else { "" }
            );
        }
        for s in &self.segments {
            out += &format!(
                "  segment {} {:<32} {:>6.1} % (training {:.1} %)\n",
                s.segment,
                s.name,
                s.share * 100.0,
                s.reference_share * 100.0
            );
        }
        if let Some(t) = &self.segment_shift {
            out += &format!(
                "  segment shares: {} {:.4} (threshold {}){}\n",
                t.test,
                t.score,
                t.threshold,
                if t.drifted { "  DRIFT" } else { "" }
            );
        }
        if let Some(a) = &self.atypical {
            out += &format!(
                "  atypical: {:.2} % (expected {:.0} %, p = {:.3}){}\n",
                a.share * 100.0,
                a.expected * 100.0,
                a.p_value,
                if a.drifted { "  DRIFT" } else { "" }
            );
        }
        if !self.errors.is_empty() {
            let e: Vec<String> = self
                .errors
                .iter()
                .map(|(f, n)| format!("{f} {n}"))
                .collect();
            out += &format!("  row errors: {}\n", e.join(", "));
        }
        out
    }
}

/// Unix milliseconds as an RFC 3339 UTC time.
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (d, m, y) = crate::dates::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Milliseconds since the Unix epoch, now (bucket times).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A bucket's start: `now_ms` rounded down to a multiple of `bucket_ms`.
pub fn bucket_start(now_ms: u64, bucket_ms: u64) -> u64 {
    now_ms - now_ms % bucket_ms.max(1)
}

/// Where a replica's closed bucket is kept in a model store, outside the version folders.
pub fn bucket_name(version: &str, source: &str, start_ms: u64) -> String {
    format!("monitoring/{version}/{source}/{start_ms}.json")
}

/// Every bucket of `version` in `store` (all replicas', and bulk runs') that ends after
/// `since_ms`, merged; with the sources (replicas) they came from. A bucket that cannot be
/// read or parsed is an error naming it: a report must not quietly leave data out.
pub fn read_store(
    store: &dyn crate::registry::store::ModelStore,
    version: &str,
    since_ms: u64,
) -> crate::error::Result<(Option<Bucket>, Vec<String>)> {
    crate::registry::store::check_version(version)?;
    let mut merged: Option<Bucket> = None;
    let mut sources = std::collections::BTreeSet::new();
    for name in store.list_pointers(&format!("monitoring/{version}/"))? {
        let Some((source, file)) = name
            .strip_prefix(&format!("monitoring/{version}/"))
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let Some(start) = file
            .strip_suffix(".json")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let Some(text) = store.read_pointer(&name)? else {
            continue;
        };
        let bucket: Bucket = serde_json::from_str(&text).map_err(|e| {
            crate::error::Error::Store(format!("{}: {name}: {e}", store.describe()))
        })?;
        bucket.check().map_err(|e| {
            crate::error::Error::Store(format!("{}: {name}: {e}", store.describe()))
        })?;
        if bucket.end_ms <= since_ms || bucket.version != version || bucket.start_ms != start {
            continue;
        }
        sources.insert(source.to_string());
        match &mut merged {
            Some(m) => m.merge(&bucket),
            None => merged = Some(bucket),
        }
    }
    Ok((merged, sources.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32) / (1u64 << 31) as f32
        };
        (0..n * N_FEATURES)
            .map(|i| {
                let j = i % N_FEATURES;
                if j == 1 {
                    (next() * 3.0).floor()
                } else {
                    next() * 100.0 * scale
                }
            })
            .collect()
    }

    #[test]
    fn two_replicas_merged_equal_one_that_saw_both_streams() {
        let (a, b) = (rows(3000, 1, 1.0), rows(2000, 2, 1.0));
        let seg = |n: usize| (0..n as i64).map(|i| i % 3).collect::<Vec<_>>();
        let aty = |n: usize| (0..n).map(|i| i % 50 == 0).collect::<Vec<_>>();
        let mut one = Bucket::new("v", 0, 60_000);
        one.add(&a, &seg(3000), &aty(3000));
        one.add(&b, &seg(2000), &aty(2000));
        one.add_error(Some("Income"), 2);
        one.add_error(Some("Favourite colour"), 1);
        let mut r1 = Bucket::new("v", 0, 60_000);
        r1.add(&a, &seg(3000), &aty(3000));
        r1.add_error(Some("Income"), 2);
        let mut r2 = Bucket::new("v", 0, 60_000);
        r2.add(&b, &seg(2000), &aty(2000));
        r2.add_error(Some("Favourite colour"), 1);
        one.settle();
        // Through JSON, as the store keeps them (settled first, as the monitor writes them).
        let back = |b: &Bucket| -> Bucket {
            let mut b = b.clone();
            b.settle();
            serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap()
        };
        let merged = merge_all([&back(&r1), &back(&r2)]).unwrap();
        assert_eq!(merged.rows, one.rows);
        assert_eq!(merged.segments, one.segments);
        assert_eq!(merged.atypical, one.atypical);
        assert_eq!(merged.errors, one.errors);
        assert_eq!(one.errors.keys().collect::<Vec<_>>(), ["Income", "other"]);
        let s = ValidationSettings {
            max_categorical_unique: 5,
            ..crate::config::Settings::load_with_env(None, Vec::new())
                .unwrap()
                .validation
        };
        for (j, (m, o)) in merged.features.iter().zip(&one.features).enumerate() {
            assert_eq!(m.count(), o.count(), "feature {j}");
            assert_eq!(m.missing(), o.missing(), "feature {j}");
            let (pm, po) = (m.profile("f", &s), o.profile("f", &s));
            assert!(
                (pm.mean - po.mean).abs() < 1e-9 * po.mean.abs().max(1.0),
                "feature {j}"
            );
            assert!(
                (pm.std - po.std).abs() < 1e-6 * po.std.max(1.0),
                "feature {j}"
            );
            assert_eq!(pm.counts, po.counts, "feature {j}");
            // Quantiles within the digest's error: 1 % of the rank, here of a uniform 0-100.
            for (qm, qo) in pm.values.iter().zip(&po.values) {
                assert!((qm - qo).abs() <= 1.5, "feature {j}: {qm} vs {qo}");
            }
        }
    }

    /// Tied whole numbers (a count like Web) and many distinct ones (like Income): the
    /// window's sketch gives the KS test what the exact values give, within a few hundredths.
    #[test]
    fn a_sketch_tests_like_the_exact_values() {
        let s = crate::config::Settings::load_with_env(None, Vec::new())
            .unwrap()
            .validation;
        for (levels, centroids) in [(16.0, DIGEST_CENTROIDS), (100_000.0, DIGEST_CENTROIDS)] {
            for seed in 0..4u64 {
                let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(7);
                let mut next = || {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (((state >> 11) as f64) / (1u64 << 53) as f64 * levels).floor()
                };
                let mut reference: Vec<f64> = (0..960).map(|_| next()).collect();
                crate::sort::sort_f64(&mut reference);
                let rc = crate::validate::profile_column("x", reference.clone(), 0, &s);
                let current: Vec<f64> = (0..1000).map(|_| next()).collect();
                let mut t = Tally::numbers(centroids, DISTINCT_CAP);
                for c in current.chunks(100) {
                    t.add_numbers(c.to_vec());
                }
                let sketched = crate::validate::tally_drift(&rc, &t, true, &s).score;
                let mut exact = current;
                crate::sort::sort_f64(&mut exact);
                let p = crate::validate::ks_p_value_of(&reference, &exact);
                assert!(
                    (sketched - p).abs() < 0.08,
                    "{levels} levels, seed {seed}: sketch p = {sketched}, exact p = {p}"
                );
            }
        }
    }

    #[test]
    fn a_bucket_from_a_store_is_checked() {
        let mut b = Bucket::new("v", 10, 20);
        assert!(b.check().is_ok());
        b.features.pop();
        assert!(b.check().unwrap_err().contains("20 features"));
        let text = r#"{"kind":"numbers","missing":0,"n":1,"mean":1.0,"m2":0.0,"centroids":[[1.0,-1.0]],"sum":1.0,"min":1.0,"max":1.0,"max_size":10,"distinct":null,"cap":5}"#;
        assert!(serde_json::from_str::<Tally>(text).is_err());
    }

    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(1_796_300_000_000), "2026-12-03T12:13:20Z");
        assert_eq!(bucket_start(125_000, 60_000), 120_000);
    }
}
