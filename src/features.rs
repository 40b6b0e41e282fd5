//! Feature engineering: the 29 raw columns become the 21 model features, as one vectorised
//! polars query, then one pass that lays them out row-major and sets aside rows that cannot be
//! used. A row with an unknown category, a missing or unparseable date, a missing required
//! value or a feature outside its allowed range is never silently kept nor silently dropped:
//! it is counted under its reason, with the first row numbers and values, in a [`RowReport`].
//! A missing Income is kept (it is imputed by preprocessing) and counted as missing.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dates::{self, ReferenceDate};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::schema::{self, FEATURES, N_FEATURES};

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
    /// Every set-aside row (0-based input index) with its reason, in input order.
    pub rejected_rows: Vec<(u32, String)>,
    pub report: RowReport,
}

const SAMPLE_ROWS: usize = 5;

// Bits of the per-row problem mask computed by the query.
const EDUCATION_MISSING: i32 = 1;
const EDUCATION_UNKNOWN: i32 = 2;
const MARITAL_MISSING: i32 = 4;
const MARITAL_UNKNOWN: i32 = 8;
const DATE_MISSING: i32 = 16;
const DATE_BAD: i32 = 32;
const PROBLEMS: [(i32, &str, Option<&str>); 6] = [
    (EDUCATION_MISSING, "missing value in Education", None),
    (
        EDUCATION_UNKNOWN,
        "unknown category in Education",
        Some("Education"),
    ),
    (MARITAL_MISSING, "missing value in Marital_Status", None),
    (
        MARITAL_UNKNOWN,
        "unknown category in Marital_Status",
        Some("Marital_Status"),
    ),
    (DATE_MISSING, "missing value in Dt_Customer", None),
    (
        DATE_BAD,
        "unparseable date in Dt_Customer",
        Some("Dt_Customer"),
    ),
];
const MASK: &str = "__problems";

/// Maps a category column through `table` (value → code); anything else becomes null.
fn coded(column: &str, table: &[(&str, f32)]) -> Expr {
    table.iter().rev().fold(
        lit(NULL).cast(DataType::Float32),
        |otherwise, (value, code)| {
            when(col(column).eq(lit(*value)))
                .then(lit(*code))
                .otherwise(otherwise)
        },
    )
}

fn sum_of(columns: &[&str]) -> Expr {
    columns
        .iter()
        .skip(1)
        .fold(col(columns[0]), |acc, c| acc + col(*c))
}

fn f(e: Expr) -> Expr {
    e.cast(DataType::Float32)
}

/// The polars expressions for the 21 features (in order) and the problem mask.
pub fn feature_exprs(reference: ReferenceDate) -> Vec<Expr> {
    let raw = schema::RawSchema::get();
    let education: Vec<(&str, f32)> = schema::EDUCATION_LEVELS
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, i as f32))
        .collect();
    let marital: Vec<(&str, f32)> = raw
        .column("Marital_Status")
        .expect("schema has Marital_Status")
        .values
        .iter()
        .map(|v| {
            (
                v.as_str(),
                if schema::PARTNERED.contains(&v.as_str()) {
                    1.0
                } else {
                    0.0
                },
            )
        })
        .collect();
    let date_format = raw
        .column("Dt_Customer")
        .and_then(|c| c.format.clone())
        .unwrap_or(dates::DEFAULT_FORMAT.into());
    let date = dates::parse_expr(col("Dt_Customer"), &date_format).cast(DataType::Int32);
    let children = col("Kidhome") + col("Teenhome");
    let edu = coded("Education", &education);
    let mar = coded("Marital_Status", &marital);

    let features: [Expr; N_FEATURES] = [
        f(lit(reference.year as f64) - col("Year_Birth")),
        edu.clone(),
        mar.clone(),
        f(children.clone().gt(lit(0.0))),
        f(children),
        f(col("Income")),
        f(sum_of(&schema::SPEND_COLUMNS)),
        f(lit(reference.days_since_epoch() as f64) - date.clone().cast(DataType::Float64)),
        f(col("Recency")),
        f(col("MntWines")),
        f(col("MntFruits")),
        f(col("MntMeatProducts")),
        f(col("MntFishProducts")),
        f(col("MntSweetProducts")),
        f(col("MntGoldProds")),
        f(col("NumWebPurchases")),
        f(col("NumCatalogPurchases")),
        f(col("NumStorePurchases")),
        f(col("NumDealsPurchases")),
        f(sum_of(&schema::CAMPAIGN_COLUMNS)),
        f(col("NumWebVisitsMonth")),
    ];
    let flag = |cond: Expr, bit: i32| cond.cast(DataType::Int32) * lit(bit);
    let mask = flag(col("Education").is_null(), EDUCATION_MISSING)
        + flag(
            col("Education").is_not_null().and(edu.is_null()),
            EDUCATION_UNKNOWN,
        )
        + flag(col("Marital_Status").is_null(), MARITAL_MISSING)
        + flag(
            col("Marital_Status").is_not_null().and(mar.is_null()),
            MARITAL_UNKNOWN,
        )
        + flag(col("Dt_Customer").is_null(), DATE_MISSING)
        + flag(
            col("Dt_Customer").is_not_null().and(date.is_null()),
            DATE_BAD,
        );

    let mut exprs: Vec<Expr> = features
        .into_iter()
        .zip(FEATURES.iter())
        .map(|(e, feat)| e.fill_null(lit(f32::NAN)).alias(feat.key))
        .collect();
    exprs.push(mask.alias(MASK));
    exprs
}

/// Computes the 21 features of every usable row of `raw` (a frame with the schema's columns).
pub fn engineer(raw: &DataFrame, reference: ReferenceDate) -> Result<FeatureTable> {
    let computed = raw
        .clone()
        .lazy()
        .select(feature_exprs(reference))
        .collect()?;
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

    let mut rejected_rows: Vec<(u32, String)> = Vec::new();
    let mut reject =
        |report: &mut RowReport, reason: String, row: usize, column: Option<&'static str>| {
            rejected_rows.push((row as u32, reason.clone()));
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
            let (_, reason, column) = PROBLEMS
                .iter()
                .find(|(bit, _, _)| mask[i] & bit != 0)
                .expect("a bit is set");
            reject(&mut report, reason.to_string(), i, *column);
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
