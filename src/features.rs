//! Feature engineering: the 29 raw columns become the 21 model features, as one vectorised
//! polars query, then one pass that lays them out row-major and sets aside rows that cannot be
//! used. A row with an unknown category, a missing or unparseable date, a missing required
//! value or a feature outside its allowed range is never silently kept nor silently dropped:
//! it is counted under its reason, with the first row numbers and values, in a [`RowReport`].
//! A missing Income is kept (it is imputed by preprocessing) and counted as missing.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::answer::RowError;
use crate::dates::{self, ReferenceDate};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::schema::{self, Derivation, FEATURES, N_FEATURES};

/// Why a row was set aside, with how many and which.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub count: usize,
    /// 1-based record numbers (the header is not counted) of the first few rows.
    pub rows: Vec<usize>,
    /// The offending values of those rows, where there is one.
    pub values: Vec<String>,
}

/// What feature engineering did with each row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowReport {
    pub rows_read: usize,
    pub rows_kept: usize,
    /// Reason → rows. A row is counted once, under the first reason found.
    pub rejected: BTreeMap<String, Rejection>,
    /// Feature → number of kept rows where it was missing (and will be imputed).
    pub missing: BTreeMap<String, usize>,
}

impl RowReport {
    /// Adds the report of a batch whose first row is row `offset` of the whole source: counts
    /// summed, the first few rows (renumbered) and values kept.
    pub fn absorb(&mut self, batch: &RowReport, offset: usize) {
        self.rows_read += batch.rows_read;
        self.rows_kept += batch.rows_kept;
        for (reason, r) in &batch.rejected {
            let entry = self.rejected.entry(reason.clone()).or_default();
            entry.count += r.count;
            let room = SAMPLE_ROWS.saturating_sub(entry.rows.len());
            entry
                .rows
                .extend(r.rows.iter().take(room).map(|row| row + offset));
            let room = SAMPLE_ROWS.saturating_sub(entry.values.len());
            entry.values.extend(r.values.iter().take(room).cloned());
        }
        for (feature, n) in &batch.missing {
            *self.missing.entry(feature.clone()).or_insert(0) += n;
        }
    }

    pub fn rows_rejected(&self) -> usize {
        self.rejected.values().map(|r| r.count).sum()
    }

    /// One line per reason, e.g. `unknown category in Marital_Status: 2 rows (rows 5, 9: "Other", "?")`.
    pub fn summary_lines(&self) -> Vec<String> {
        self.rejected
            .iter()
            .map(|(reason, r)| {
                let rows: Vec<String> = r.rows.iter().map(usize::to_string).collect();
                let values = if r.values.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        r.values
                            .iter()
                            .map(|v| format!("{v:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                format!(
                    "{reason}: {} rows (rows {}{values})",
                    r.count,
                    rows.join(", ")
                )
            })
            .collect()
    }
}

/// The 21 features of the kept rows, and where each came from.
#[derive(Debug, Clone)]
pub struct FeatureTable {
    /// n x 21, in [`FEATURES`] order; NaN where a value is missing (Income).
    pub matrix: Matrix,
    /// For each kept row, its 0-based row index in the input.
    pub source_rows: Vec<u32>,
    /// Every set-aside row (0-based input index) with its error, in input order: the message
    /// names the raw column for a category or date, the feature for a range or fraction.
    pub rejected_rows: Vec<(u32, RowError)>,
    pub report: RowReport,
}

const SAMPLE_ROWS: usize = 5;
const MASK: &str = "__problems";

/// A reason to set a row aside that only the raw text shows (a category or a date), found by
/// the query; the range rules run afterwards on the feature values.
struct Problem {
    /// True where the row has this problem.
    test: Expr,
    reason: String,
    /// The raw column whose text is shown as the offending value.
    shows: Option<&'static str>,
    /// The raw column at fault, and what is wrong with it (a row's error message).
    column: &'static str,
    what: &'static str,
}

/// The problems of a derivation's raw text, in the order they are reported.
fn problems(d: &Derivation, value: &Expr) -> Vec<Problem> {
    // The test reuses the very expression the feature is computed from (the code chain, the
    // parsed date without the reference's literal), so the query's common-subexpression
    // elimination evaluates it once.
    let (column, unusable, parsed) = match d {
        Derivation::Code(c, _) => (*c, "unknown category", value.clone()),
        Derivation::DaysSince(c) => (*c, "unparseable date", days(c)),
        _ => return Vec::new(),
    };
    vec![
        Problem {
            test: col(column).is_null(),
            reason: format!("missing value in {column}"),
            shows: None,
            column,
            what: "is missing",
        },
        Problem {
            test: col(column).is_not_null().and(parsed.is_null()),
            reason: format!("{unusable} in {column}"),
            shows: Some(column),
            column,
            what: unusable,
        },
    ]
}

fn sum_of(columns: &[&str]) -> Expr {
    columns
        .iter()
        .skip(1)
        .fold(col(columns[0]), |acc, c| acc + col(*c))
}

/// A date column as days since 1970-01-01, read in the raw schema's format; null where the
/// text is not a date in it.
fn days(column: &str) -> Expr {
    let format = schema::RawSchema::get()
        .column(column)
        .and_then(|c| c.format.clone())
        .unwrap_or(dates::DEFAULT_FORMAT.into());
    dates::parse_expr(col(column), &format).cast(DataType::Int32)
}

/// The polars expression of one derivation (before the cast to f32).
fn derive(d: &Derivation, reference: ReferenceDate) -> Expr {
    match *d {
        Derivation::Column(c) => col(c),
        Derivation::Sum(cs) => sum_of(cs),
        Derivation::Flag(cs) => sum_of(cs).gt(lit(0.0)),
        Derivation::YearsSince(c) => lit(reference.year as f64) - col(c),
        Derivation::DaysSince(c) => {
            lit(reference.days_since_epoch() as f64) - days(c).cast(DataType::Float64)
        }
        // value → code; anything else is null.
        Derivation::Code(c, groups) => groups.iter().enumerate().rev().fold(
            lit(NULL).cast(DataType::Float32),
            |otherwise, (code, values)| {
                let is_one = values
                    .iter()
                    .map(|v| col(c).eq(lit(*v)))
                    .reduce(|a, b| a.or(b))
                    .expect("a code has values");
                when(is_one).then(lit(code as f32)).otherwise(otherwise)
            },
        ),
    }
}

/// The polars expressions for the 21 features (each named by its key) and the problem mask,
/// with the reasons its bits stand for, all generated from [`FEATURES`].
fn feature_query(reference: ReferenceDate) -> (Vec<Expr>, Vec<Problem>) {
    let mut exprs = Vec::with_capacity(N_FEATURES + 1);
    let mut found = Vec::new();
    for feat in &FEATURES {
        let value = derive(&feat.derivation, reference);
        found.extend(problems(&feat.derivation, &value));
        exprs.push(
            value
                .cast(DataType::Float32)
                .fill_null(lit(f32::NAN))
                .alias(feat.key),
        );
    }
    assert!(found.len() < 31, "the problem mask is an i32");
    let mask = found
        .iter()
        .enumerate()
        .map(|(bit, p)| p.test.clone().cast(DataType::Int32) * lit(1i32 << bit))
        .reduce(|a, b| a + b)
        .unwrap_or(lit(0i32));
    exprs.push(mask.alias(MASK));
    (exprs, found)
}

impl Problem {
    /// Row `i`'s error: `"Education: unknown category 'PhD2'"`, `"Dt_Customer: is missing"`.
    fn row_error(&self, raw: &DataFrame, i: usize) -> RowError {
        if self.shows.is_none() {
            return RowError::of(self.column, self.what);
        }
        let text = raw
            .column(self.column)
            .ok()
            .and_then(|c| c.str().ok().and_then(|c| c.get(i).map(str::to_string)));
        let text = text.unwrap_or_default();
        RowError::of(
            self.column,
            format!("{} '{}'", self.what, crate::answer::shown_text(text.trim())),
        )
    }
}

/// Computes the 21 features of every usable row of `raw` (a frame with the schema's columns).
pub fn engineer(raw: &DataFrame, reference: ReferenceDate) -> Result<FeatureTable> {
    let (exprs, problems) = feature_query(reference);
    let computed = raw.clone().lazy().select(exprs).collect()?;
    let columns: Vec<Float32Chunked> = FEATURES
        .iter()
        .map(|feat| Ok(computed.column(feat.key)?.f32()?.rechunk().into_owned()))
        .collect::<Result<_>>()?;
    let slices: Vec<&[f32]> = columns
        .iter()
        .map(|c| c.cont_slice().expect("nulls were filled, chunks joined"))
        .collect();
    let mask_col = computed.column(MASK)?.i32()?.rechunk().into_owned();
    let mask = mask_col
        .cont_slice()
        .map_err(|_| Error::Training("problem mask has nulls".into()))?;

    let n = raw.height();
    let mut report = RowReport {
        rows_read: n,
        ..Default::default()
    };
    let mut data = Vec::with_capacity(n * N_FEATURES);
    let mut source_rows = Vec::with_capacity(n);
    let mut missing = [0usize; N_FEATURES];
    let mut samples: Vec<(String, usize, Option<&str>)> = Vec::new();

    let mut rejected_rows: Vec<(u32, RowError)> = Vec::new();
    let mut reject =
        |report: &mut RowReport, reason: String, row: usize, column: Option<&'static str>| {
            let entry = report.rejected.entry(reason.clone()).or_default();
            entry.count += 1;
            if entry.rows.len() < SAMPLE_ROWS {
                entry.rows.push(row + 1);
                samples.push((reason, row, column));
            }
        };

    let mut row_values = [0f32; N_FEATURES];
    for i in 0..n {
        if mask[i] != 0 {
            let first = mask[i].trailing_zeros() as usize;
            let problem = &problems[first];
            rejected_rows.push((i as u32, problem.row_error(raw, i)));
            reject(&mut report, problem.reason.clone(), i, problem.shows);
            continue;
        }
        // The same rules as a customer sent to the service (`schema::check_feature`).
        let mut problem: Option<(String, Option<&'static str>)> = None;
        for (j, feat) in FEATURES.iter().enumerate() {
            let v = slices[j][i];
            row_values[j] = v;
            if let Err(e) = schema::check_feature(j, f64::from(v)) {
                let column = (e.rule != schema::FieldRule::Missing).then_some(feat.key);
                problem = Some((e.reason(), column));
                rejected_rows.push((i as u32, e.into()));
                break;
            }
        }
        if let Some((reason, column)) = problem {
            reject(&mut report, reason, i, column);
            continue;
        }
        for (j, v) in row_values.iter().enumerate() {
            missing[j] += usize::from(v.is_nan());
        }
        data.extend_from_slice(&row_values);
        source_rows.push(i as u32);
    }

    // Attach the offending values: raw text for categories and dates, the feature value otherwise.
    for (reason, row, column) in samples {
        let Some(column) = column else { continue };
        let value = match raw.column(column) {
            Ok(c) => c.get(row).map(|v| v.to_string()).unwrap_or_default(),
            Err(_) => computed
                .column(column)
                .ok()
                .and_then(|c| c.get(row).ok())
                .map(|v| v.to_string())
                .unwrap_or_default(),
        };
        if let Some(entry) = report.rejected.get_mut(&reason) {
            entry.values.push(value.trim_matches('"').to_string());
        }
    }
    report.rows_kept = source_rows.len();
    report.missing = FEATURES
        .iter()
        .zip(missing)
        .filter(|(_, m)| *m > 0)
        .map(|(feat, m)| (feat.key.to_string(), m))
        .collect();
    let kept = source_rows.len();
    Ok(FeatureTable {
        matrix: Matrix::new(kept, N_FEATURES, data),
        source_rows,
        rejected_rows,
        report,
    })
}

/// The kept rows as a frame: `row` (1-based record number) and the 21 features by key.
pub fn to_frame(table: &FeatureTable) -> Result<DataFrame> {
    let m = &table.matrix;
    let mut columns = vec![Column::new(
        "row".into(),
        table
            .source_rows
            .iter()
            .map(|r| r + 1)
            .collect::<Vec<u32>>(),
    )];
    for (j, feat) in FEATURES.iter().enumerate() {
        columns.push(Column::new(feat.key.into(), m.column(j)));
    }
    Ok(DataFrame::new_infer_height(columns)?)
}
