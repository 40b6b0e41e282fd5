//! The schema check of raw records: columns present, typed, in range and known.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use super::*;
use crate::config::ValidationSettings;
use crate::dates;
use crate::error::Result;
use crate::schema::{RawSchema, RawType};

pub(crate) fn check_schema(
    df: &DataFrame,
    reference: Option<&Profile>,
    s: &ValidationSettings,
) -> Result<SchemaCheck> {
    let rows = df.height();
    let mut issues = Vec::new();
    let mut add = |column: &str, check: &str, count: usize, limit: f64, message: String| {
        issues.extend(issue(column, check, (count, rows), limit, &message));
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

/// A check's finding as an issue (none when it counted no rows): a failure when its share of
/// the rows is above `limit`, else a warning.
pub(crate) fn issue(
    column: &str,
    check: &str,
    (count, rows): (usize, usize),
    limit: f64,
    message: &str,
) -> Option<Issue> {
    if count == 0 {
        return None;
    }
    let share = count as f64 / rows.max(1) as f64;
    Some(Issue {
        column: column.to_string(),
        check: check.to_string(),
        severity: if share > limit {
            Severity::Fail
        } else {
            Severity::Warn
        },
        share,
        message: format!("{message} ({count} of {rows} rows, {:.1}%)", 100.0 * share),
    })
}

/// A column's findings, in the order its checks run: missing values, then what its type
/// checks (unknown categories; dates; range and whole numbers).
pub(crate) fn column_findings(
    df: &DataFrame,
    col: &crate::schema::RawColumn,
    reference: Option<&Profile>,
    s: &ValidationSettings,
) -> Result<Vec<Finding>> {
    let c = df.column(&col.name)?;
    let mut found = Vec::new();
    match col.kind {
        RawType::Category => category_findings(c, col, reference, s, &mut found)?,
        RawType::Date => date_findings(c, col, s, &mut found)?,
        RawType::Integer | RawType::Number => number_findings(c, col, s, &mut found)?,
    }
    Ok(found)
}

/// A category column: missing values, and values the schema or the reference does not know.
fn category_findings(
    c: &Column,
    col: &crate::schema::RawColumn,
    reference: Option<&Profile>,
    s: &ValidationSettings,
    found: &mut Vec<Finding>,
) -> Result<()> {
    let known: BTreeSet<&str> = col.values.iter().map(String::as_str).collect();
    let seen: Option<&BTreeMap<String, u64>> = reference
        .and_then(|r| r.columns.iter().find(|p| p.name == col.name))
        .map(|p| &p.counts);
    let mut unknown = BTreeMap::<&str, usize>::new();
    let mut missing = 0;
    for chunk in c.str()?.downcast_iter() {
        for v in chunk.iter() {
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
    }
    found.push((
        "missing",
        missing,
        s.max_missing_share,
        "missing values".into(),
    ));
    let n: usize = unknown.values().sum();
    let names: Vec<String> = unknown.keys().take(10).map(|k| format!("'{k}'")).collect();
    found.push((
        "unknown_categories",
        n,
        s.max_invalid_share,
        format!("unknown categories {}", names.join(", ")),
    ));
    Ok(())
}

/// A date column: missing values, and texts that are not dates.
fn date_findings(
    c: &Column,
    col: &crate::schema::RawColumn,
    s: &ValidationSettings,
    found: &mut Vec<Finding>,
) -> Result<()> {
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
    found.push((
        "missing",
        missing,
        s.max_missing_share,
        "missing values".into(),
    ));
    found.push(("type", bad, s.max_invalid_share, "not dates".into()));
    Ok(())
}

/// A number column: missing values, values outside the column's range, and fractions in
/// an integer column.
fn number_findings(
    c: &Column,
    col: &crate::schema::RawColumn,
    s: &ValidationSettings,
    found: &mut Vec<Finding>,
) -> Result<()> {
    let f = c.cast(&DataType::Float64)?;
    let mut missing = 0;
    let mut outside = 0;
    let mut fractional = 0;
    // Chunk by chunk: a chunked array's own iterator is a flatten over its chunks, whose
    // per-value step LLVM does not always inline (measured: 6% of a validation run).
    for chunk in f.f64()?.downcast_iter() {
        for v in chunk.iter() {
            match v.copied().filter(|x| !x.is_nan()) {
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
    }
    found.push((
        "missing",
        missing,
        s.max_missing_share,
        "missing values".into(),
    ));
    let range = match (col.min, col.max) {
        (Some(a), Some(b)) => format!("[{a}, {b}]"),
        (Some(a), None) => format!(">= {a}"),
        (None, Some(b)) => format!("<= {b}"),
        (None, None) => "finite".into(),
    };
    found.push((
        "range",
        outside,
        s.max_invalid_share,
        format!("values outside {range}"),
    ));
    found.push((
        "type",
        fractional,
        s.max_invalid_share,
        "values that are not whole numbers".into(),
    ));
    Ok(())
}
