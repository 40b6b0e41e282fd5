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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ValidationSettings;
use crate::dates;
use crate::error::Result;
use crate::schema::{RawSchema, RawType};

/// Numeric columns with at most this many values are profiled exactly.
pub const EXACT_VALUES: usize = 1000;
/// Otherwise by this many quantile steps.
pub const QUANTILES: usize = 1000;
/// Bars in a numeric column's chart.
const CHART_BINS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Numeric,
    Categorical,
}

/// What drift detection needs to know about one column of a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub kind: ColumnKind,
    pub missing: usize,
    pub unique: usize,
    #[serde(with = "crate::json_f64")]
    pub mean: f64,
    #[serde(with = "crate::json_f64")]
    pub std: f64,
    /// Numeric: the sorted values (`exact`) or evenly spaced quantiles.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::json_f64::vec"
    )]
    pub values: Vec<f64>,
    #[serde(default)]
    pub exact: bool,
    /// Categorical: rows per category.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
}

/// A data set's profile: the reference a later data set is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub source: String,
    pub rows: usize,
    pub columns: Vec<ColumnProfile>,
}

/// Quantiles a public profile shows per numeric column: every 5%.
pub const PUBLIC_QUANTILES: usize = 20;

impl Profile {
    /// The profile as shown to anyone (`GET /api/v1/model` needs no token): each numeric
    /// column as [`PUBLIC_QUANTILES`] + 1 evenly spaced quantiles, never the training
    /// records' own values that an exact profile keeps for the drift tests.
    pub fn public(&self) -> Profile {
        let mut p = self.clone();
        for c in &mut p.columns {
            if c.kind == ColumnKind::Numeric && !c.values.is_empty() {
                c.values = (0..=PUBLIC_QUANTILES)
                    .map(|i| quantile(&c.values, i as f64 / PUBLIC_QUANTILES as f64))
                    .collect();
                c.exact = false;
            }
        }
        p
    }
}

/// One column's values, read out of a frame of raw records.
enum Values {
    /// Sorted, without missing values.
    Numbers(Vec<f64>),
    Categories(BTreeMap<String, u64>),
}

/// The columns drift is measured on: every raw column but the record id.
fn drift_columns() -> impl Iterator<Item = &'static crate::schema::RawColumn> {
    RawSchema::get().columns.iter().filter(|c| c.name != "ID")
}

/// A date column's format: the schema's, or the default.
fn date_format(column: &crate::schema::RawColumn) -> &str {
    column.format.as_deref().unwrap_or(dates::DEFAULT_FORMAT)
}

/// Reads a column as numbers (dates, in the schema's format, as day numbers: a text that is
/// not a date counts as missing) or as category counts; also returns the number of missing
/// values. Numbers come back sorted.
fn read_column(df: &DataFrame, column: &crate::schema::RawColumn) -> Result<(Values, usize)> {
    let (name, kind) = (column.name.as_str(), column.kind);
    let col = df.column(name)?;
    let mut missing = 0;
    let mut values: Vec<f64> = Vec::with_capacity(col.len());
    let mut keep = |v: Option<f64>| match v {
        Some(x) => values.push(x),
        None => missing += 1,
    };
    match kind {
        RawType::Category => {
            // Counted by borrowed text; one owned key per category, not per row.
            let mut by_text = HashMap::<&str, u64>::new();
            for v in col.str()?.iter() {
                match v.map(str::trim).filter(|v| !v.is_empty()) {
                    Some(v) => *by_text.entry(v).or_insert(0) += 1,
                    None => missing += 1,
                }
            }
            let counts = by_text
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect();
            return Ok((Values::Categories(counts), missing));
        }
        RawType::Date => dates::parse_column(col, date_format(column))?
            .into_iter()
            .for_each(|v| keep(v.map(f64::from))),
        RawType::Integer | RawType::Number => col
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .for_each(|v| keep(v.filter(|x| x.is_finite()))),
    }
    crate::sort::sort_f64(&mut values);
    Ok((Values::Numbers(values), missing))
}

/// Rows per distinct number of sorted values, keyed as the number is written: one count per
/// run of equal values.
fn sorted_number_counts(sorted: &[f64]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for run in sorted.chunk_by(|a, b| a == b) {
        *counts.entry(format_number(run[0])).or_insert(0) += run.len() as u64;
    }
    counts
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn distinct(sorted: &[f64]) -> usize {
    sorted.windows(2).filter(|w| w[0] != w[1]).count() + usize::from(!sorted.is_empty())
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The value at quantile `q` (linear interpolation, as numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Profile {
    /// Profiles raw records (a frame as [`crate::ingest`] reads them).
    pub fn of(source: &str, df: &DataFrame, settings: &ValidationSettings) -> Result<Self> {
        Ok(profile_and_drift(source, df, None, settings)?.0)
    }

    fn column(
        name: &str,
        values: Values,
        missing: usize,
        settings: &ValidationSettings,
    ) -> ColumnProfile {
        match values {
            Values::Categories(counts) => categorical(name, counts, missing),
            Values::Numbers(v) if distinct(&v) <= settings.max_categorical_unique => {
                categorical(name, sorted_number_counts(&v), missing)
            }
            Values::Numbers(v) => {
                let (mean, std) = mean_std(&v);
                let exact = v.len() <= EXACT_VALUES;
                ColumnProfile {
                    name: name.to_string(),
                    kind: ColumnKind::Numeric,
                    missing,
                    unique: distinct(&v),
                    mean,
                    std,
                    values: if exact {
                        v
                    } else {
                        (0..=QUANTILES)
                            .map(|i| quantile(&v, i as f64 / QUANTILES as f64))
                            .collect()
                    },
                    exact,
                    counts: BTreeMap::new(),
                }
            }
        }
    }
}

fn categorical(name: &str, counts: BTreeMap<String, u64>, missing: usize) -> ColumnProfile {
    ColumnProfile {
        name: name.to_string(),
        kind: ColumnKind::Categorical,
        missing,
        unique: counts.len(),
        mean: 0.0,
        std: 0.0,
        values: Vec::new(),
        exact: false,
        counts,
    }
}

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    pub column: String,
    pub kind: ColumnKind,
    /// `ks`, `chi_square`, `z`, `wasserstein` or `jensen_shannon`.
    pub test: String,
    /// The p-value (tests) or the distance.
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
    /// Chart: the bars' labels and the reference and current shares.
    pub labels: Vec<String>,
    pub reference_shares: Vec<f64>,
    pub current_shares: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub columns: Vec<ColumnDrift>,
    pub drifted_columns: usize,
    pub share: f64,
    pub threshold: f64,
    pub dataset_drift: bool,
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

fn check_schema(
    df: &DataFrame,
    reference: Option<&Profile>,
    s: &ValidationSettings,
) -> Result<SchemaCheck> {
    let rows = df.height();
    let mut issues = Vec::new();
    let mut add = |column: &str, check: &str, count: usize, limit: f64, message: String| {
        if count == 0 {
            return;
        }
        let share = count as f64 / rows.max(1) as f64;
        issues.push(Issue {
            column: column.to_string(),
            check: check.to_string(),
            severity: if share > limit {
                Severity::Fail
            } else {
                Severity::Warn
            },
            share,
            message: format!("{message} ({count} of {rows} rows, {:.1}%)", 100.0 * share),
        });
    };
    if rows == 0 {
        add("*", "rows", 1, 0.0, "no rows".into());
    }
    // Each column's findings on the threads, added in the schema's column order.
    let findings = RawSchema::get()
        .columns
        .par_iter()
        .map(|col| column_findings(df, col, reference, s))
        .collect::<Result<Vec<_>>>()?;
    for (col, found) in RawSchema::get().columns.iter().zip(findings) {
        for (check, count, limit, message) in found {
            add(&col.name, check, count, limit, message);
        }
    }
    let passed = !issues.iter().any(|i| i.severity == Severity::Fail);
    Ok(SchemaCheck { passed, issues })
}

/// One column's schema findings: (check, count, share limit, message).
type Finding = (&'static str, usize, f64, String);

fn column_findings(
    df: &DataFrame,
    col: &crate::schema::RawColumn,
    reference: Option<&Profile>,
    s: &ValidationSettings,
) -> Result<Vec<Finding>> {
    let c = df.column(&col.name)?;
    let mut found = Vec::new();
    let mut add = |check: &'static str, count: usize, limit: f64, message: String| {
        found.push((check, count, limit, message));
    };
    match col.kind {
        RawType::Category => {
            let known: BTreeSet<&str> = col.values.iter().map(String::as_str).collect();
            let seen: Option<&BTreeMap<String, u64>> = reference
                .and_then(|r| r.columns.iter().find(|p| p.name == col.name))
                .map(|p| &p.counts);
            let mut unknown = BTreeMap::<&str, usize>::new();
            let mut missing = 0;
            for v in c.str()?.iter() {
                match v.map(str::trim).filter(|v| !v.is_empty()) {
                    None => missing += 1,
                    Some(v) => {
                        let in_schema = known.is_empty() || known.contains(v);
                        let in_reference = seen.is_none_or(|s| s.contains_key(v));
                        if !in_schema || !in_reference {
                            *unknown.entry(v).or_insert(0) += 1;
                        }
                    }
                }
            }
            add(
                "missing",
                missing,
                s.max_missing_share,
                "missing values".into(),
            );
            let n: usize = unknown.values().sum();
            let names: Vec<String> = unknown.keys().take(10).map(|k| format!("'{k}'")).collect();
            add(
                "unknown_categories",
                n,
                s.max_invalid_share,
                format!("unknown categories {}", names.join(", ")),
            );
        }
        RawType::Date => {
            // Read as feature engineering reads them: a date it would set aside is not a date.
            let days = dates::parse_column(c, date_format(col))?;
            let mut missing = 0;
            let mut bad = 0;
            for (v, day) in c.str()?.iter().zip(days) {
                match v.map(str::trim).filter(|v| !v.is_empty()) {
                    None => missing += 1,
                    Some(_) if day.is_none() => bad += 1,
                    Some(_) => {}
                }
            }
            add(
                "missing",
                missing,
                s.max_missing_share,
                "missing values".into(),
            );
            add("type", bad, s.max_invalid_share, "not dates".into());
        }
        RawType::Integer | RawType::Number => {
            let f = c.cast(&DataType::Float64)?;
            let mut missing = 0;
            let mut outside = 0;
            let mut fractional = 0;
            for v in f.f64()?.iter() {
                match v.filter(|x| !x.is_nan()) {
                    None => missing += 1,
                    Some(x) => {
                        if col.min.is_some_and(|m| x < m)
                            || col.max.is_some_and(|m| x > m)
                            || !x.is_finite()
                        {
                            outside += 1;
                        } else if col.kind == RawType::Integer && x.fract() != 0.0 {
                            fractional += 1;
                        }
                    }
                }
            }
            add(
                "missing",
                missing,
                s.max_missing_share,
                "missing values".into(),
            );
            let range = match (col.min, col.max) {
                (Some(a), Some(b)) => format!("[{a}, {b}]"),
                (Some(a), None) => format!(">= {a}"),
                (None, Some(b)) => format!("<= {b}"),
                (None, None) => "finite".into(),
            };
            add(
                "range",
                outside,
                s.max_invalid_share,
                format!("values outside {range}"),
            );
            add(
                "type",
                fractional,
                s.max_invalid_share,
                "values that are not whole numbers".into(),
            );
        }
    }
    Ok(found)
}

/// One column's drift against its reference profile; `values` as [`read_column`] gives them.
fn column_drift(
    r: &ColumnProfile,
    values: &Values,
    small: bool,
    s: &ValidationSettings,
) -> ColumnDrift {
    match (r.kind, values) {
        (ColumnKind::Numeric, Values::Numbers(cur)) => numeric_drift(r, cur, small, s),
        (ColumnKind::Categorical, Values::Categories(cur)) => categorical_drift(r, cur, small, s),
        // A numeric column the reference counted as categories (few distinct values).
        (ColumnKind::Categorical, Values::Numbers(cur)) => {
            categorical_drift(r, &sorted_number_counts(cur), small, s)
        }
        // Text read as numbers in the reference (a hand-made profile): compared as categories.
        (ColumnKind::Numeric, Values::Categories(cur)) => categorical_drift(r, cur, small, s),
    }
}

/// The data set's drift from its columns'.
fn drift_report(columns: Vec<ColumnDrift>, s: &ValidationSettings) -> DriftReport {
    let drifted_columns = columns.iter().filter(|c| c.drifted).count();
    let share = drifted_columns as f64 / columns.len().max(1) as f64;
    DriftReport {
        columns,
        drifted_columns,
        share,
        threshold: s.dataset_drift_share,
        dataset_drift: share >= s.dataset_drift_share,
    }
}

fn numeric_drift(
    r: &ColumnProfile,
    cur: &[f64],
    small: bool,
    s: &ValidationSettings,
) -> ColumnDrift {
    let (test, score, threshold, drifted) = if cur.is_empty() || r.values.is_empty() {
        ("ks", 0.0, s.p_value, true)
    } else if small {
        let p = ks_p_value(&r.values, cur, r.exact);
        ("ks", p, s.p_value, p < s.p_value)
    } else {
        let w = wasserstein(&r.values, r.exact, cur) / r.std.max(0.001);
        ("wasserstein", w, s.wasserstein, w >= s.wasserstein)
    };
    // The chart: both distributions over the union of their 1st–99th percentile ranges (a
    // far outlier would squeeze every bar into one); values beyond fall into the end bars.
    let q = |v: &[f64], p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            quantile(v, p)
        }
    };
    let lo = q(&r.values, 0.01).min(q(cur, 0.01));
    let lo = if lo.is_finite() { lo } else { 0.0 };
    let hi = q(&r.values, 0.99).max(q(cur, 0.99));
    let hi = if hi.is_finite() && hi > lo {
        hi
    } else {
        lo + 1.0
    };
    let width = (hi - lo) / CHART_BINS as f64;
    let hist = |values: &[f64]| {
        let mut bins = [0.0; CHART_BINS];
        for &v in values {
            let b = (((v - lo) / width).max(0.0) as usize).min(CHART_BINS - 1);
            bins[b] += 1.0;
        }
        let n = values.len().max(1) as f64;
        bins.iter().map(|c| c / n).collect::<Vec<f64>>()
    };
    ColumnDrift {
        column: r.name.clone(),
        kind: ColumnKind::Numeric,
        test: test.into(),
        score,
        threshold,
        drifted,
        labels: (0..CHART_BINS)
            .map(|i| format_short(lo + width * i as f64))
            .collect(),
        reference_shares: hist(&r.values),
        current_shares: hist(cur),
    }
}

fn format_short(x: f64) -> String {
    if x.abs() >= 1000.0 || x.fract().abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn categorical_drift(
    r: &ColumnProfile,
    cur: &BTreeMap<String, u64>,
    small: bool,
    s: &ValidationSettings,
) -> ColumnDrift {
    let labels: Vec<String> = r
        .counts
        .keys()
        .chain(cur.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let counts = |m: &BTreeMap<String, u64>| -> Vec<f64> {
        labels
            .iter()
            .map(|l| *m.get(l).unwrap_or(&0) as f64)
            .collect()
    };
    let (rc, cc) = (counts(&r.counts), counts(cur));
    let (rn, cn) = (rc.iter().sum::<f64>(), cc.iter().sum::<f64>());
    let shares = |c: &[f64], n: f64| c.iter().map(|x| x / n.max(1.0)).collect::<Vec<f64>>();
    let (rs, cs) = (shares(&rc, rn), shares(&cc, cn));
    let (test, score, threshold, drifted) = if rn == 0.0 || cn == 0.0 {
        ("chi_square", 0.0, s.p_value, rn != cn)
    } else if small && labels.len() <= 2 {
        let p = z_test(rc[0], rn, cc[0], cn);
        ("z", p, s.p_value, p < s.p_value)
    } else if small {
        let p = chi_square_p_value(&rs, &cc, cn);
        ("chi_square", p, s.p_value, p < s.p_value)
    } else {
        let d = jensen_shannon(&rs, &cs);
        ("jensen_shannon", d, s.jensen_shannon, d >= s.jensen_shannon)
    };
    ColumnDrift {
        column: r.name.clone(),
        kind: ColumnKind::Categorical,
        test: test.into(),
        score,
        threshold,
        drifted,
        labels,
        reference_shares: rs,
        current_shares: cs,
    }
}

// ---- statistics ---------------------------------------------------------------------------

/// The two-sample Kolmogorov–Smirnov statistic of two sorted samples.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// Two-sided p-value of the two-sample KS test (the asymptotic Kolmogorov distribution with
/// Stephens' small-sample correction). A reference kept as quantiles counts as
/// [`QUANTILES`] + 1 values.
fn ks_p_value(reference: &[f64], current: &[f64], _exact: bool) -> f64 {
    let d = ks_statistic(reference, current);
    let (n, m) = (reference.len() as f64, current.len() as f64);
    let en = (n * m / (n + m)).sqrt();
    kolmogorov_q((en + 0.12 + 0.11 / en) * d)
}

/// Q_KS(λ) = 2 Σ (-1)^(k-1) exp(-2 k² λ²).
fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=200 {
        let term = sign * (-2.0 * (k as f64).powi(2) * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// W1 between the reference (values, or evenly spaced quantiles) and a sorted sample:
/// the mean absolute difference of their quantile functions.
pub fn wasserstein(reference: &[f64], exact: bool, current: &[f64]) -> f64 {
    if exact {
        // Both empirical: integrate |F_a - F_b| over the merged support.
        let (a, b) = (reference, current);
        let (n, m) = (a.len() as f64, b.len() as f64);
        let (mut i, mut j, mut total) = (0, 0, 0.0);
        let mut last = a[0].min(b[0]);
        while i < a.len() || j < b.len() {
            let x = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) => x.min(y),
                (Some(&x), None) => x,
                (None, Some(&y)) => y,
                (None, None) => break,
            };
            total += (i as f64 / n - j as f64 / m).abs() * (x - last);
            last = x;
            while i < a.len() && a[i] <= x {
                i += 1;
            }
            while j < b.len() && b[j] <= x {
                j += 1;
            }
        }
        return total;
    }
    const STEPS: usize = 4000;
    (0..STEPS)
        .map(|i| {
            let q = (i as f64 + 0.5) / STEPS as f64;
            (quantile(reference, q) - quantile(current, q)).abs()
        })
        .sum::<f64>()
        / STEPS as f64
}

/// Jensen–Shannon distance (the square root of the divergence, natural log) of two
/// distributions over the same categories.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter()
            .zip(m)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| x * (x / y).ln())
            .sum()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| 0.5 * (a + b)).collect();
    (0.5 * kl(p, &m) + 0.5 * kl(q, &m)).max(0.0).sqrt()
}

/// p-value of the chi-square goodness of fit of the current counts to the reference shares.
fn chi_square_p_value(reference_shares: &[f64], current: &[f64], n: f64) -> f64 {
    let mut stat = 0.0;
    let mut categories = 0;
    for (&share, &observed) in reference_shares.iter().zip(current) {
        let expected = share * n;
        if expected == 0.0 {
            if observed > 0.0 {
                return 0.0; // a category the reference never had
            }
            continue;
        }
        categories += 1;
        stat += (observed - expected).powi(2) / expected;
    }
    if categories < 2 {
        return 1.0;
    }
    upper_gamma_regularized((categories - 1) as f64 / 2.0, stat / 2.0)
}

/// Two-sided p-value of the pooled two-proportion Z-test.
fn z_test(x1: f64, n1: f64, x2: f64, n2: f64) -> f64 {
    let (p1, p2) = (x1 / n1, x2 / n2);
    let p = (x1 + x2) / (n1 + n2);
    let se = (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return if p1 == p2 { 1.0 } else { 0.0 };
    }
    erfc(((p1 - p2) / se).abs() / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' erfcc; relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9).
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Q(a, x) = Γ(a, x) / Γ(a): the chi-square survival function is Q(df/2, stat/2).
fn upper_gamma_regularized(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_front = -x + a * x.ln() - ln_gamma(a);
    if x < a + 1.0 {
        // Series for P(a, x).
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * ln_front.exp()).clamp(0.0, 1.0)
    } else {
        // Continued fraction for Q(a, x) (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (ln_front.exp() * h).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
