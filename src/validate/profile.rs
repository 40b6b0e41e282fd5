//! A data set's profile: per column, its values or quantiles (numeric) or counts
//! (categorical); the reference that later data is checked for drift against.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::config::ValidationSettings;
use crate::dates;
use crate::error::Result;
use crate::schema::{RawSchema, RawType};

/// Numeric columns with at most this many values are profiled exactly.
pub const EXACT_VALUES: usize = 1000;

/// Otherwise by this many quantile steps.
pub const QUANTILES: usize = 1000;

/// Bars in a numeric column's chart.
pub(crate) const CHART_BINS: usize = 20;

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
pub(crate) enum Values {
    /// Sorted, without missing values.
    Numbers(Vec<f64>),
    Categories(BTreeMap<String, u64>),
}

/// The columns drift is measured on: every raw column but the record id.
pub(crate) fn drift_columns() -> impl Iterator<Item = &'static crate::schema::RawColumn> {
    RawSchema::get().columns.iter().filter(|c| c.name != "ID")
}

/// A date column's format: the schema's, or the default.
pub(crate) fn date_format(column: &crate::schema::RawColumn) -> &str {
    column.format.as_deref().unwrap_or(dates::DEFAULT_FORMAT)
}

/// Reads a column as numbers (dates, in the schema's format, as day numbers: a text that is
/// not a date counts as missing) or as category counts; also returns the number of missing
/// values. Numbers come back sorted.
pub(crate) fn read_column(
    df: &DataFrame,
    column: &crate::schema::RawColumn,
) -> Result<(Values, usize)> {
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
pub(crate) fn sorted_number_counts(sorted: &[f64]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for run in sorted.chunk_by(|a, b| a == b) {
        *counts.entry(format_number(run[0])).or_insert(0) += run.len() as u64;
    }
    counts
}

pub(crate) fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

pub(crate) fn distinct(sorted: &[f64]) -> usize {
    sorted.windows(2).filter(|w| w[0] != w[1]).count() + usize::from(!sorted.is_empty())
}

pub(crate) fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The value at quantile `q` (linear interpolation, as numpy's default).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
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

    pub(crate) fn column(
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

pub(crate) fn categorical(
    name: &str,
    counts: BTreeMap<String, u64>,
    missing: usize,
) -> ColumnProfile {
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
