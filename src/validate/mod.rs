//! Data validation before training: a schema check of the raw records, and drift detection
//! against a reference profile (the current model's training data, kept in its manifest).
//!
//! Drift, per column, with Evidently's defaults (all thresholds in `validation.*`):
//! - reference of at most `small_reference_rows` rows: numeric columns with more than
//!   `max_categorical_unique` distinct values → two-sample Kolmogorov–Smirnov test;
//!   categorical and low-cardinality columns → chi-square goodness of fit, or the two-proportion
//!   Z-test when there are two categories; drift at p < `p_value`;
//! - larger references: numeric → Wasserstein distance divided by the reference's standard
//!   deviation (at least 0.001), drift at ≥ `wasserstein`; categorical → Jensen–Shannon
//!   distance (natural log), drift at ≥ `jensen_shannon`;
//! - the data set has drifted when at least `dataset_drift_share` of the columns drifted.
//!
//! The reference profile keeps, per numeric column, its values when it has at most
//! [`EXACT_VALUES`] of them and otherwise [`QUANTILES`] + 1 evenly spaced quantiles (enough for
//! the Wasserstein distance to within a fraction of a percent); per categorical column, counts.

mod drift;
mod profile;
mod schema_check;
mod stats;
mod stream;
mod tally;

pub use drift::{ColumnDrift, DriftReport};
pub use profile::{ColumnKind, ColumnProfile, EXACT_VALUES, PUBLIC_QUANTILES, Profile, QUANTILES};
pub use stats::{jensen_shannon, ks_statistic, wasserstein};
pub use stream::{QUANTILE_RANK_ERROR, StreamingValidation, validate_source};
pub use tally::Tally;

/// One numeric column's profile from its sorted values, as validation profiles a column.
pub(crate) fn profile_column(
    name: &str,
    sorted: Vec<f64>,
    missing: usize,
    settings: &crate::config::ValidationSettings,
) -> ColumnProfile {
    Profile::column(name, profile::Values::Numbers(sorted), missing, settings)
}

/// The reference a served model's customers are compared with: the profile of the 21
/// features of its training split (`train_raw`, NaN for a missing value), each column as
/// validation profiles a column (exact up to 1000 values, else 1001 quantiles; categorical
/// when it has at most `max_categorical_unique` distinct values).
pub fn feature_profile(
    train_raw: &crate::matrix::Matrix,
    settings: &crate::config::ValidationSettings,
) -> Profile {
    let columns = (0..crate::schema::N_FEATURES.min(train_raw.cols()))
        .map(|j| {
            let mut tally_values: Vec<f64> = Vec::with_capacity(train_raw.rows());
            let mut missing = 0usize;
            for v in train_raw.column(j) {
                if v.is_finite() {
                    tally_values.push(f64::from(v));
                } else {
                    missing += 1;
                }
            }
            crate::sort::sort_f64(&mut tally_values);
            profile_column(
                crate::schema::FEATURES[j].key,
                tally_values,
                missing,
                settings,
            )
        })
        .collect();
    Profile {
        source: "the training split's features".into(),
        rows: train_raw.rows(),
        columns,
    }
}

/// A categorical column's profile from its counts.
pub(crate) fn categorical_profile(
    name: &str,
    counts: std::collections::BTreeMap<String, u64>,
) -> ColumnProfile {
    profile::categorical(name, counts, 0)
}

/// A tally's drift against its reference column, by validation's test for that column.
pub(crate) fn tally_drift(
    reference: &ColumnProfile,
    tally: &Tally,
    small: bool,
    settings: &crate::config::ValidationSettings,
) -> ColumnDrift {
    drift::column_drift(reference, &tally.current(reference), small, settings)
}

/// The data set's verdict from its columns' drift (`validation.dataset_drift_share`).
pub(crate) fn drift_verdict(
    columns: Vec<ColumnDrift>,
    settings: &crate::config::ValidationSettings,
) -> DriftReport {
    drift::drift_report(columns, settings)
}

pub(crate) use drift::{categorical_drift, format_short};

/// The two-sample KS test's p-value of two sorted samples.
#[cfg(test)]
pub(crate) fn ks_p_value_of(reference: &[f64], current: &[f64]) -> f64 {
    stats::ks_p_value(reference, current, true)
}

#[allow(unused_imports)]
use drift::*;
#[allow(unused_imports)]
use profile::*;
#[allow(unused_imports)]
use schema_check::*;
#[allow(unused_imports)]
use stats::*;

use rayon::prelude::*;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ValidationSettings;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub column: String,
    pub check: String,
    pub severity: Severity,
    /// The share of rows at fault.
    pub share: f64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaCheck {
    pub passed: bool,
    pub issues: Vec<Issue>,
}

/// The validation report: JSON in the run directory and `GET /api/v1/validation`, HTML at
/// `GET /validation`. Training stops with it as its error when the schema check fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub reference: Option<String>,
    pub current: String,
    pub reference_rows: usize,
    pub current_rows: usize,
    pub schema: SchemaCheck,
    /// None without a reference (the first model).
    pub drift: Option<DriftReport>,
}

impl Report {
    /// One line for logs and the CLI.
    pub fn summary(&self) -> String {
        let fails = self
            .schema
            .issues
            .iter()
            .filter(|i| i.severity == Severity::Fail)
            .map(|i| format!("{}: {}", i.column, i.message))
            .collect::<Vec<_>>();
        let schema = if self.schema.passed {
            format!("schema passed ({} warnings)", self.schema.issues.len())
        } else {
            format!("schema FAILED: {}", fails.join("; "))
        };
        let drift = match &self.drift {
            None => "no reference, drift not measured".to_string(),
            Some(d) => {
                let names: Vec<&str> = d
                    .columns
                    .iter()
                    .filter(|c| c.drifted)
                    .map(|c| c.column.as_str())
                    .collect();
                format!(
                    "{} of {} columns drifted{}; data set {}",
                    d.drifted_columns,
                    d.columns.len(),
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", names.join(", "))
                    },
                    if d.dataset_drift {
                        "DRIFTED"
                    } else {
                        "not drifted"
                    }
                )
            }
        };
        format!("{schema}; {drift}")
    }
}

/// Checks `df` against the schema and, given a reference, for drift.
pub fn validate(
    current_name: &str,
    df: &DataFrame,
    reference: Option<&Profile>,
    settings: &ValidationSettings,
) -> Result<Report> {
    Ok(validate_and_profile(current_name, df, reference, settings)?.0)
}

/// [`validate`] and [`Profile::of`] together: each column is read and sorted once for both.
pub fn validate_and_profile(
    current_name: &str,
    df: &DataFrame,
    reference: Option<&Profile>,
    settings: &ValidationSettings,
) -> Result<(Report, Profile)> {
    let schema = check_schema(df, reference, settings)?;
    let (profile, drift) = profile_and_drift(current_name, df, reference, settings)?;
    let report = Report {
        reference: reference.map(|r| r.source.clone()),
        current: current_name.to_string(),
        reference_rows: reference.map_or(0, |r| r.rows),
        current_rows: df.height(),
        schema,
        drift,
    };
    Ok((report, profile))
}

/// The profile of `df` and, against a reference, its drift: one column at a time on the
/// threads, each read and sorted once for both and dropped before the next.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl std::error::Error for Report {}

fn profile_and_drift(
    source: &str,
    df: &DataFrame,
    reference: Option<&Profile>,
    settings: &ValidationSettings,
) -> Result<(Profile, Option<DriftReport>)> {
    let small = reference.is_some_and(|r| r.rows <= settings.small_reference_rows);
    let columns: Vec<&crate::schema::RawColumn> = drift_columns().collect();
    let per_column = columns
        .par_iter()
        .map(|col| {
            let (values, missing) = read_column(df, col)?;
            let drift = reference
                .and_then(|r| r.columns.iter().find(|p| p.name == col.name))
                .map(|r| column_drift(r, &values, small, settings));
            Ok((Profile::column(&col.name, values, missing, settings), drift))
        })
        .collect::<Result<Vec<_>>>()?;
    let (columns, drift): (Vec<ColumnProfile>, Vec<Option<ColumnDrift>>) =
        per_column.into_iter().unzip();
    let profile = Profile {
        source: source.to_string(),
        rows: df.height(),
        columns,
    };
    let drift = reference.map(|_| drift_report(drift.into_iter().flatten().collect(), settings));
    Ok((profile, drift))
}

/// One column's schema findings: (check, count, share limit, message).
type Finding = (&'static str, usize, f64, String);

// ---- statistics ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::profile::quantile;
    use super::*;
    use statrs::function::erf::erfc;
    use statrs::function::gamma::ln_gamma;

    #[test]
    fn statistics_match_known_values() {
        // scipy.stats.chi2.sf(3.84, 1) = 0.0500; chi2.sf(10, 4) = 0.04043
        assert!((upper_gamma_regularized(0.5, 3.84 / 2.0) - 0.0500).abs() < 2e-4);
        assert!((upper_gamma_regularized(2.0, 5.0) - 0.040_428).abs() < 1e-5);
        // 2 * norm.sf(1.96) = 0.05
        assert!((erfc(1.96 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-4);
        // Kolmogorov: Q(1.36) ≈ 0.0495
        assert!((kolmogorov_q(1.36) - 0.0495).abs() < 1e-3);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-10);
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [3.0, 4.0, 5.0, 6.0];
        assert!((ks_statistic(&a, &b) - 0.5).abs() < 1e-12);
        // scipy.stats.wasserstein_distance([1,2,3,4],[3,4,5,6]) = 2.0
        assert!((wasserstein(&a, true, &b) - 2.0).abs() < 1e-12);
        assert_eq!(jensen_shannon(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        // scipy.spatial.distance.jensenshannon([1,0],[0,1]) = sqrt(ln 2)
        assert!((jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]) - 2f64.ln().sqrt()).abs() < 1e-12);
    }

    #[test]
    fn quantile_profile_gives_the_exact_wasserstein_distance_closely() {
        let a: Vec<f64> = (0..5000)
            .map(|i| (i as f64 * 0.37).sin() * 10.0 + i as f64 * 0.01)
            .collect();
        let mut a_sorted = a.clone();
        a_sorted.sort_by(f64::total_cmp);
        let b: Vec<f64> = a_sorted.iter().map(|x| x * 1.5 + 3.0).collect();
        let exact = wasserstein(&a_sorted, true, &b);
        let q: Vec<f64> = (0..=QUANTILES)
            .map(|i| quantile(&a_sorted, i as f64 / QUANTILES as f64))
            .collect();
        let approx = wasserstein(&q, false, &b);
        assert!((exact - approx).abs() / exact < 0.01, "{exact} vs {approx}");
    }

    fn settings() -> ValidationSettings {
        crate::config::Settings::load_with_env(None, Vec::new())
            .unwrap()
            .validation
    }

    /// `df` with Income × 1.5 and Recency + 30 days.
    fn shifted(df: &DataFrame) -> DataFrame {
        let mut out = df.clone();
        let income = df.column("Income").unwrap().f64().unwrap() * 1.5;
        let recency = df.column("Recency").unwrap().f64().unwrap() + 30.0;
        out.with_column(
            income
                .into_series()
                .with_name("Income".into())
                .into_column(),
        )
        .unwrap();
        out.with_column(
            recency
                .into_series()
                .with_name("Recency".into())
                .into_column(),
        )
        .unwrap();
        out
    }

    fn drifted(r: &Report) -> Vec<&str> {
        let d = r.drift.as_ref().unwrap();
        d.columns
            .iter()
            .filter(|c| c.drifted)
            .map(|c| c.column.as_str())
            .collect()
    }

    #[test]
    fn drift_is_found_where_the_data_moved_and_nowhere_else() {
        let s = settings();
        for (rows, test) in [(3000, "wasserstein"), (800, "ks")] {
            let reference = crate::ingest::synthetic::generate(rows, 1);
            let profile = Profile::of("reference", &reference, &s).unwrap();
            // Another sample of the same population: no drift by distance; by tests at
            // p < 0.05 over 28 columns a chance finding or two, never the data set.
            let same = crate::ingest::synthetic::generate(rows, 2);
            let r = validate("same", &same, Some(&profile), &s).unwrap();
            assert!(r.schema.passed, "{:?}", r.schema.issues);
            let chance = drifted(&r);
            if test == "wasserstein" {
                assert_eq!(chance, Vec::<&str>::new(), "{rows} rows");
            }
            assert!(
                chance.len() <= 3 && !r.drift.as_ref().unwrap().dataset_drift,
                "{chance:?}"
            );
            // Income and Recency moved: those two drift, the data set as a whole does not.
            let r = validate("shifted", &shifted(&same), Some(&profile), &s).unwrap();
            let found = drifted(&r);
            assert!(
                found.contains(&"Income") && found.contains(&"Recency"),
                "{found:?}"
            );
            let others: Vec<&&str> = found
                .iter()
                .filter(|c| !["Income", "Recency"].contains(c))
                .collect();
            assert_eq!(
                others,
                chance.iter().collect::<Vec<_>>(),
                "only the moved columns are new"
            );
            let d = r.drift.as_ref().unwrap();
            assert!(!d.dataset_drift);
            let income = d.columns.iter().find(|c| c.column == "Income").unwrap();
            assert_eq!(income.test, test);
            let education = d.columns.iter().find(|c| c.column == "Education").unwrap();
            assert_eq!(education.kind, ColumnKind::Categorical);
        }
    }

    #[test]
    fn a_column_mostly_missing_or_out_of_range_fails_the_schema_check() {
        let s = settings();
        let mut df = crate::ingest::synthetic::generate(200, 3);
        let n = df.height();
        let income: Vec<Option<f64>> = (0..n).map(|i| (i % 2 == 0).then_some(50_000.0)).collect();
        df.with_column(Column::new("Income".into(), income))
            .unwrap();
        let recency: Vec<f64> = (0..n)
            .map(|i| if i % 5 == 0 { -3.0 } else { 10.0 })
            .collect();
        df.with_column(Column::new("Recency".into(), recency))
            .unwrap();
        let r = validate("bad", &df, None, &s).unwrap();
        assert!(!r.schema.passed);
        let fails: Vec<(&str, &str)> = r
            .schema
            .issues
            .iter()
            .filter(|i| i.severity == Severity::Fail)
            .map(|i| (i.column.as_str(), i.check.as_str()))
            .collect();
        assert_eq!(fails, [("Income", "missing"), ("Recency", "range")]);
        assert!(r.summary().contains("Income") && r.summary().contains("Recency"));
        assert!(r.drift.is_none());
    }

    #[test]
    fn validation_passes_exactly_the_dates_feature_engineering_reads() {
        // Before: validation read dd-mm-yyyy or yyyy-mm-dd whatever the schema said, and any
        // day up to 31 in any month, so it passed rows that feature engineering set aside.
        let s = settings();
        let mut df = crate::ingest::synthetic::generate(50, 4);
        let n = df.height();
        let bad = [
            "2012-09-04",
            "31-02-2014",
            "29-02-2013",
            "04-09-2012 00:00",
            "4/9/2012",
        ];
        let dates: Vec<String> = df
            .column("Dt_Customer")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, v)| bad.get(i).map_or(v.unwrap().to_string(), |b| b.to_string()))
            .collect();
        df.with_column(Column::new("Dt_Customer".into(), dates))
            .unwrap();
        let r = validate("dates", &df, None, &s).unwrap();
        let not_dates: Vec<usize> = r
            .schema
            .issues
            .iter()
            .filter(|i| i.column == "Dt_Customer" && i.check == "type")
            .map(|i| (i.share * n as f64).round() as usize)
            .collect();
        assert_eq!(not_dates, [bad.len()]);
        let table = crate::features::engineer(&df, crate::dates::ReferenceDate::default()).unwrap();
        assert_eq!(table.report.rows_kept, n - bad.len());
        let profile = Profile::of("dates", &df, &s).unwrap();
        let column = profile
            .columns
            .iter()
            .find(|c| c.name == "Dt_Customer")
            .unwrap();
        assert_eq!(column.missing, bad.len());
    }
}
