//! The 21 features as SQL: one `SELECT` over a table of the 29 raw columns, for Spark or
//! DuckDB, generated from a model's manifest (its features' derivations as data, its
//! reference date) and the raw schema, so the model can be scored where the data lives.
//!
//! The query returns `ID`, a row number, the 21 features under their keys (float32, as the
//! ONNX model reads them; null where missing or where the row has a problem) and `problem`:
//! what sets the row aside or makes it a row error in `categorizer predict --on-error keep`,
//! named as the Rust error names it, by the same precedence:
//! 1. a cell of a number column that is not a number (the raw schema's first such column):
//!    `MntWines: 'lots' is not a number`;
//! 2. a missing or unknown category, a missing or unparseable date (the features' order):
//!    `Education: unknown category 'PhD2'`, `Dt_Customer: unparseable date '31-02-2014'`;
//! 3. the first feature, in model order, that is missing (and may not be), too large for a
//!    float32, out of its range, or a fraction where it counts things. These are checked on
//!    the float32 value, as [`crate::schema::check_feature`] checks the model's input:
//!    `Age: -0.5 is outside [0, 130]`, `Children: 0.5 is not a whole number`.
//!
//! A date column may be text in the schema's format or a typed DATE or TIMESTAMP column (as
//! DuckDB's `read_csv` or a warehouse types it): a typed one is written in the schema's
//! format first, so one rule reads every date.
//!
//! The numbers of rule 3's messages are the engine's own text for a fraction (a whole
//! number is written as Rust writes it). Everything else is the same text.
//!
//! Every rule is spelled out in plain SQL (CASE, comparisons, a regular expression per text
//! rule, integer calendar arithmetic), nothing engine-specific but a handful of spellings
//! ([`Dialect`]). A text is a number by Rust's `f64` grammar after trimming; a date by the
//! fixed-width [`DateFormat`] rule. A column the engine already holds as numbers skips the
//! text rule (the engines fold `typeof(column)`).

use std::fmt::Write as _;

use crate::dates::{DateFormat, ReferenceDate};
use crate::error::{Error, Result};
use crate::schema::FeatureSpec;
use crate::schema::{DerivedFrom, FEATURES, FeatureKind, RawColumn, RawSchema, RawType};

mod dialect;

pub use dialect::Dialect;
#[cfg(test)]
use dialect::java_pattern;

/// The table name the SQL reads when none is given.
pub const DEFAULT_TABLE: &str = "customers";

/// The column of the row number.
pub const ROW_COLUMN: &str = "row";
/// The column of a row's problem.
pub const PROBLEM_COLUMN: &str = "problem";

/// The largest finite float32, and the least double that rounds to float32 infinity.
const F32_MAX: &str = "3.4028234663852886e38";
const F32_INFINITE: &str = "3.4028235677973366e38";

/// A text that Rust's `str::trim` then `f64::from_str` read as a number (or blank: missing).
const NUMBER_RE: &str = r"^\s*([+-]?([iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN]|([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?))?\s*$";

/// Where a message's number goes.
const VALUE: &str = "{value}";

/// The cut [`crate::answer::shown_text`] makes of a value shown in a message.
const SHOWN: usize = 64;

/// A double literal, exactly.
fn double(v: f64) -> String {
    format!("CAST({v:?} AS DOUBLE)")
}

/// A feature of the model, with its derivation as data.
struct Feature<'a> {
    spec: &'a FeatureSpec,
    from: DerivedFrom,
}

/// The model's features with their derivations: the manifest's data, or, for a manifest
/// published before it recorded them, this build's where the manifest's words are this
/// build's words for the same feature (the same codes, then).
fn features<'a>(model: &Model<'a>) -> Result<Vec<Feature<'a>>> {
    model
        .features
        .iter()
        .map(|spec| {
            let from = match &spec.derived_from {
                Some(d) => d.clone(),
                None => FEATURES
                    .get(spec.index)
                    .filter(|f| f.key == spec.key && f.derivation.describe() == spec.derivation)
                    .map(|f| (&f.derivation).into())
                    .ok_or_else(|| {
                        Error::Model(format!(
                            "model {}: feature {} was recorded before derivations were data \
                             and is not this build's ('{}'); export its SQL with the build \
                             that trained it",
                            model.version, spec.key, spec.derivation
                        ))
                    })?,
            };
            Ok(Feature { spec, from })
        })
        .collect()
}

/// Internal column names.
fn n(c: &str) -> String {
    format!("__n_{c}")
}
fn t(c: &str) -> String {
    format!("__t_{c}")
}
fn s(c: &str) -> String {
    format!("__s_{c}")
}
fn v(key: &str) -> String {
    format!("__v_{key}")
}
fn f(key: &str) -> String {
    format!("__f_{key}")
}

/// What the SQL is generated from: a model's version, reference date and features.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    pub version: &'a str,
    pub reference_date: &'a str,
    pub features: &'a [FeatureSpec],
}

/// The SQL of the model's 21 features over `table`, for `dialect`.
pub fn features_sql(model: Model<'_>, dialect: Dialect, table: &str) -> Result<String> {
    let d = dialect;
    let features = features(&model)?;
    let reference = ReferenceDate::parse(model.reference_date)
        .map_err(|m| Error::Model(format!("manifest reference_date: {m}")))?;
    let raw = RawSchema::get();
    for feat in &features {
        for c in derived_columns(&feat.from) {
            raw_column(raw, c)?;
        }
    }
    let numbers: Vec<&str> = raw
        .columns
        .iter()
        .filter(|c| matches!(c.kind, RawType::Integer | RawType::Number))
        .map(|c| c.name.as_str())
        .collect();
    let (texts, dates) = text_columns(raw, &features)?;

    let levels: [(&str, Vec<String>); 7] = [
        ("__raw", raw_level(d, &numbers, &texts, &dates)),
        ("__parts", date_parts(d, &dates)),
        ("__days", date_days(d, &dates)),
        ("__values", feature_values(d, &features, &reference)),
        ("__floats", feature_floats(&features)),
        (
            "__rules",
            vec![bad_column(d, &numbers), feature_rules(d, &features)],
        ),
        ("__checked", vec![problem(d, &numbers, &features)]),
    ];

    // The query, level by level.
    let mut out = header(model, d, table, raw, &dates, &features);
    let mut from = table.to_string();
    for (alias, columns) in levels {
        let mut level = String::from("SELECT *");
        for c in &columns {
            let _ = write!(level, ",\n    {c}");
        }
        let _ = write!(level, "\n  FROM {from}");
        from = format!("(\n{}\n) AS {alias}", indent(&level));
    }
    let select = outer_select(d, &features);
    let _ = write!(out, "SELECT\n  {}\nFROM {from}\n", select.join(",\n  "));
    Ok(out)
}

/// The raw column `name`, which the model reads and the schema must have.
fn raw_column<'r>(raw: &'r RawSchema, name: &str) -> Result<&'r RawColumn> {
    raw.column(name).ok_or_else(|| {
        Error::Model(format!(
            "the model reads a raw column '{name}' the schema lacks"
        ))
    })
}

/// The columns the features read as text: each category and date column once, in the
/// features' order; and the dates with their fixed-width formats.
fn text_columns<'f>(
    raw: &RawSchema,
    features: &'f [Feature<'_>],
) -> Result<(Vec<&'f str>, Vec<(&'f str, DateFormat)>)> {
    let mut texts: Vec<&str> = Vec::new();
    let mut dates: Vec<(&str, DateFormat)> = Vec::new();
    for feat in features {
        match &feat.from {
            DerivedFrom::Code { column: c, .. } if !texts.contains(&c.as_str()) => texts.push(c),
            DerivedFrom::DaysSince { column: c } if !texts.contains(&c.as_str()) => {
                texts.push(c);
                let format = raw_column(raw, c)?
                    .format
                    .clone()
                    .unwrap_or(crate::dates::DEFAULT_FORMAT.into());
                let fixed = DateFormat::fixed(&format).ok_or_else(|| {
                    Error::Model(format!(
                        "date column {c}: the format '{format}' is not of fixed width \
                         (%Y, %m, %d and literals); it cannot be exported as SQL"
                    ))
                })?;
                dates.push((c, fixed));
            }
            _ => {}
        }
    }
    Ok((texts, dates))
}

/// Level 1, over the table: the row key; each number column as a double and as text; the
/// text of each category and date column.
fn raw_level(
    d: Dialect,
    numbers: &[&str],
    texts: &[&str],
    dates: &[(&str, DateFormat)],
) -> Vec<String> {
    let mut raw_level = vec![format!("{} AS __row", d.row_number())];
    for c in numbers {
        let q = d.quote(c);
        raw_level.push(format!("TRY_CAST({q} AS DOUBLE) AS {}", n(c)));
        raw_level.push(format!(
            "CASE WHEN {} THEN {} END AS {}",
            d.is_text(&q),
            d.text(&q),
            t(c)
        ));
    }
    for c in texts {
        let q = d.quote(c);
        let text = match dates.iter().find(|(name, _)| name == c) {
            // A date column may be typed (a DATE or TIMESTAMP column, as DuckDB's read_csv or
            // a warehouse types it) or text in the schema's format.
            Some((_, format)) => format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                d.is_date(&q),
                d.date_text(&q, format),
                d.text(&q)
            ),
            None => d.text(&q),
        };
        raw_level.push(format!("{text} AS {}", s(c)));
    }
    raw_level
}

/// Level 2: a date's fields, where its text has the format's shape.
fn date_parts(d: Dialect, dates: &[(&str, DateFormat)]) -> Vec<String> {
    let mut parts = Vec::new();
    for (c, fmt) in dates {
        let shape = format!(
            "{} IS NOT NULL AND {}",
            s(c),
            d.matches(&s(c), &date_re(fmt))
        );
        for (name, at, width) in [("y", fmt.year, 4), ("m", fmt.month, 2), ("d", fmt.day, 2)] {
            parts.push(format!(
                "CASE WHEN {shape} THEN CAST(substr({}, {}, {width}) AS INT) END AS __{name}_{c}",
                s(c),
                at + 1
            ));
        }
    }
    parts
}

/// Level 3: the date as days since 1970-01-01, where it names a calendar day.
fn date_days(d: Dialect, dates: &[(&str, DateFormat)]) -> Vec<String> {
    let mut days = Vec::new();
    for (c, _) in dates {
        let (y, m, dd) = (format!("__y_{c}"), format!("__m_{c}"), format!("__d_{c}"));
        let leap = format!("(({y} % 4 = 0 AND {y} % 100 <> 0) OR {y} % 400 = 0)");
        let month_days = format!(
            "CASE WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END \
             WHEN {m} IN (4, 6, 9, 11) THEN 30 ELSE 31 END"
        );
        // Days from civil (H. Hinnant), years shifted by one 400-year era so every integer
        // division is of a non-negative number.
        let yy = format!("({y} - CASE WHEN {m} <= 2 THEN 1 ELSE 0 END + 400)");
        let mp = format!("(({m} + 9) % 12)");
        let formula = format!(
            "365 * {yy} + {} - {} + {} + {} + {dd} - 1 - 719468 - 146097",
            d.div(&yy, 4),
            d.div(&yy, 100),
            d.div(&yy, 400),
            d.div(&format!("(153 * {mp} + 2)"), 5)
        );
        days.push(format!(
            "CASE WHEN {m} BETWEEN 1 AND 12 AND {dd} BETWEEN 1 AND {month_days} \
             THEN {formula} END AS __days_{c}"
        ));
    }
    days
}

/// Level 4: each feature as a double, as polars computes it.
fn feature_values(d: Dialect, features: &[Feature<'_>], reference: &ReferenceDate) -> Vec<String> {
    features
        .iter()
        .map(|feat| {
            let sum = |cs: &[String]| cs.iter().map(|c| n(c)).collect::<Vec<_>>().join(" + ");
            let e = match &feat.from {
                DerivedFrom::Column { column } => n(column),
                DerivedFrom::Sum { columns } => format!("({})", sum(columns)),
                DerivedFrom::Flag { columns } => format!(
                    "CASE WHEN {0} > 0 THEN {1} WHEN {0} <= 0 THEN {2} END",
                    format!("({})", sum(columns)),
                    double(1.0),
                    double(0.0)
                ),
                DerivedFrom::YearsSince { column } => {
                    format!("{} - {}", double(f64::from(reference.year)), n(column))
                }
                DerivedFrom::DaysSince { column } => format!(
                    "{} - CAST(__days_{column} AS DOUBLE)",
                    double(reference.days_since_epoch() as f64)
                ),
                DerivedFrom::Code { column, codes } => code_value(d, column, codes),
            };
            format!("{e} AS {}", v(&feat.spec.key))
        })
        .collect()
}

/// A category column's code as a double: the code whose values hold the text.
fn code_value(d: Dialect, column: &str, codes: &[Vec<String>]) -> String {
    let mut e = String::from("CASE");
    for (code, values) in codes.iter().enumerate() {
        let list: Vec<String> = values.iter().map(|x| d.lit(x)).collect();
        let _ = write!(
            e,
            " WHEN {} IN ({}) THEN {}",
            s(column),
            list.join(", "),
            double(code as f64)
        );
    }
    e + " END"
}

/// Level 5: each feature as the float32 the model reads (null where missing); a double
/// beyond float32 is clamped for the cast (DuckDB refuses to round it to infinity), the
/// checks below tell it apart.
fn feature_floats(features: &[Feature<'_>]) -> Vec<String> {
    features
        .iter()
        .map(|feat| {
            let x = v(&feat.spec.key);
            format!(
                "CASE WHEN {x} IS NULL OR isnan({x}) THEN NULL \
                 WHEN {x} > {F32_MAX} THEN CAST({F32_MAX} AS FLOAT) \
                 WHEN {x} < -{F32_MAX} THEN CAST(-{F32_MAX} AS FLOAT) \
                 ELSE CAST({x} AS FLOAT) END AS {}",
                f(&feat.spec.key)
            )
        })
        .collect()
}

/// Level 6, with [`feature_rules`]: the first unreadable number column (by the raw schema's
/// order) and the first feature that breaks a rule (by the model's), as a message with a
/// `{value}` hole where the value goes. The conditions and the constant messages are kept
/// apart from the text building of level 7 ([`problem`]), so Spark's generated code stays
/// small.
fn bad_column(d: Dialect, numbers: &[&str]) -> String {
    let mut bad = String::from("CASE");
    for c in numbers {
        let _ = write!(
            bad,
            "\n      WHEN {} IS NOT NULL AND NOT ({}) THEN {}",
            t(c),
            d.matches(&t(c), NUMBER_RE),
            d.lit(c)
        );
    }
    bad.push_str("\n    END AS __bad_column");
    bad
}

/// Level 6: the message of the first feature, by the model's order, that breaks a rule.
fn feature_rules(d: Dialect, features: &[Feature<'_>]) -> String {
    let mut rule = String::from("CASE");
    for feat in features {
        let spec = feat.spec;
        let key = &spec.key;
        let (x, y) = (v(key), f(key));
        if !spec.nullable {
            let _ = write!(
                rule,
                "\n      WHEN {x} IS NULL OR isnan({x}) THEN {}",
                d.lit(&format!("{key}: is missing"))
            );
        }
        let present = format!("{x} IS NOT NULL AND NOT isnan({x})");
        let _ = write!(
            rule,
            "\n      WHEN {present} AND abs({x}) >= {F32_INFINITE} THEN {}",
            d.lit(&format!(
                "{key}: the number is too large (beyond a 64-bit float)"
            ))
        );
        let _ = write!(
            rule,
            "\n      WHEN {present} AND ({y} < {} OR {y} > {}) THEN {}",
            double(spec.min),
            double(spec.max),
            d.lit(&format!(
                "{key}: {VALUE} is outside [{}, {}]",
                spec.min, spec.max
            ))
        );
        if matches!(spec.kind, FeatureKind::Integer | FeatureKind::Coded) {
            let _ = write!(
                rule,
                "\n      WHEN {present} AND {y} <> floor({y}) THEN {}",
                d.lit(&format!("{key}: {VALUE} is not a whole number"))
            );
        }
    }
    rule.push_str("\n    END AS __rule");
    rule
}

/// Level 7: the row's problem, the first by the Rust precedence: an unreadable cell, a
/// category or a date, a feature's rule.
fn problem(d: Dialect, numbers: &[&str], features: &[Feature<'_>]) -> String {
    let mut whens = vec![bad_cell_problem(d, numbers)];
    whens.extend(text_problems(d, features));
    whens.push(rule_problem(d, features));
    whens.push(("__rule IS NOT NULL".into(), "__rule".into()));
    let mut problem = String::from("CASE");
    for (when, then) in &whens {
        let _ = write!(problem, "\n      WHEN {when}\n        THEN {then}");
    }
    problem.push_str("\n    END AS __problem");
    problem
}

/// A value shown in a message, cut as [`crate::answer::shown_text`] cuts it.
fn shown(d: Dialect, e: &str) -> String {
    format!(
        "CASE WHEN length({e}) > {SHOWN} THEN concat(substr({e}, 1, {SHOWN}), {}) ELSE {e} END",
        d.lit("…")
    )
}

/// The problem of an unreadable number cell: its column and its text.
fn bad_cell_problem(d: Dialect, numbers: &[&str]) -> (String, String) {
    let mut bad_text = String::from("CASE __bad_column");
    for c in numbers {
        let _ = write!(bad_text, " WHEN {} THEN {}", d.lit(c), t(c));
    }
    bad_text.push_str(" END");
    (
        "__bad_column IS NOT NULL".into(),
        format!(
            "concat(__bad_column, {}, {}, {})",
            d.lit(": '"),
            shown(d, &format!("trim({bad_text})")),
            d.lit("' is not a number")
        ),
    )
}

/// The problems of the category and date columns, in the features' order: missing, or
/// unknown or unparseable.
fn text_problems(d: Dialect, features: &[Feature<'_>]) -> Vec<(String, String)> {
    let mut whens = Vec::new();
    for feat in features {
        let (c, what) = match &feat.from {
            DerivedFrom::Code { column, .. } => (column, "unknown category"),
            DerivedFrom::DaysSince { column } => (column, "unparseable date"),
            _ => continue,
        };
        let x = v(&feat.spec.key);
        whens.push((
            format!("{} IS NULL", s(c)),
            d.lit(&format!("{c}: is missing")),
        ));
        whens.push((
            format!("{x} IS NULL"),
            format!(
                "concat({}, {}, {})",
                d.lit(&format!("{c}: {what} '")),
                shown(d, &format!("trim({})", s(c))),
                d.lit("'")
            ),
        ));
    }
    whens
}

/// The problem of a feature's rule whose message has a `{value}` hole: the hole filled
/// with the broken feature's float32 value.
fn rule_problem(d: Dialect, features: &[Feature<'_>]) -> (String, String) {
    let mut value = String::from("CASE");
    for feat in features {
        let key = &feat.spec.key;
        let _ = write!(
            value,
            " WHEN __rule LIKE {} THEN {}",
            d.lit(&format!("{key}: %")),
            f(key)
        );
    }
    value.push_str(" END");
    (
        format!("__rule LIKE {}", d.lit(&format!("%{VALUE}%"))),
        format!(
            "replace(__rule, {}, {})",
            d.lit(VALUE),
            shown_number(d, &value)
        ),
    )
}

/// The comment lines that head the query: what it is, and what it was generated from.
fn header(
    model: Model<'_>,
    d: Dialect,
    table: &str,
    raw: &RawSchema,
    dates: &[(&str, DateFormat)],
    features: &[Feature<'_>],
) -> String {
    let mut out = String::new();
    let names: Vec<&str> = raw.names().collect();
    let _ = writeln!(
        out,
        "-- The 21 model features of Customer Categorizer model {}, for {}.",
        model.version,
        d.name()
    );
    let _ = writeln!(
        out,
        "-- Generated by `categorizer export sql` {} from its manifest (reference date {}); do not edit.",
        env!("CARGO_PKG_VERSION"),
        model.reference_date
    );
    let _ = writeln!(out, "-- dialect: {}", d.name());
    let _ = writeln!(out, "-- model: {}", model.version);
    let _ = writeln!(out, "-- table: {table}");
    let _ = writeln!(out, "-- columns: {}", names.join(", "));
    let _ = writeln!(
        out,
        "-- dates: {}",
        dates
            .iter()
            .map(|(c, fmt)| format!("{c}={}", fmt.text))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "-- returns: ID, {ROW_COLUMN}, {}, {PROBLEM_COLUMN}",
        features
            .iter()
            .map(|f| f.spec.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "-- A row with a problem has null features and the reason in `{PROBLEM_COLUMN}`, \
         named as `categorizer predict` names it."
    );
    out
}

/// The outer query's columns: `ID`, the row, each feature (null where the row has a
/// problem) and the problem.
fn outer_select(d: Dialect, features: &[Feature<'_>]) -> Vec<String> {
    let mut select = vec![
        format!("{} AS {}", d.quote("ID"), d.quote("ID")),
        format!("__row AS {}", d.quote(ROW_COLUMN)),
    ];
    for feat in features {
        let key = &feat.spec.key;
        select.push(format!(
            "CASE WHEN __problem IS NULL THEN {} END AS {}",
            f(key),
            d.quote(key)
        ));
    }
    select.push(format!("__problem AS {}", d.quote(PROBLEM_COLUMN)));
    select
}

/// A float32 value in a message: a whole number as Rust writes it, otherwise the engine's
/// text of the double.
fn shown_number(d: Dialect, y: &str) -> String {
    let double = d.text(&format!("CAST({y} AS DOUBLE)"));
    format!(
        "CASE WHEN abs({y}) >= 1e15 THEN {double} WHEN {y} = floor({y}) THEN {} ELSE {double} END",
        d.text(&format!("CAST({y} AS BIGINT)")),
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The raw columns a derivation reads.
fn derived_columns(d: &DerivedFrom) -> Vec<&str> {
    match d {
        DerivedFrom::Column { column }
        | DerivedFrom::YearsSince { column }
        | DerivedFrom::DaysSince { column }
        | DerivedFrom::Code { column, .. } => vec![column.as_str()],
        DerivedFrom::Sum { columns } | DerivedFrom::Flag { columns } => {
            columns.iter().map(String::as_str).collect()
        }
    }
}

/// The anchored regular expression of a fixed-width date format.
fn date_re(fmt: &DateFormat) -> String {
    let mut re = String::from("^");
    let mut at = 0;
    while at < fmt.len {
        if at == fmt.year {
            re.push_str("[0-9]{4}");
            at += 4;
        } else if at == fmt.month || at == fmt.day {
            re.push_str("[0-9]{2}");
            at += 2;
        } else {
            let b = fmt
                .literals
                .iter()
                .find(|(i, _)| *i == at)
                .map_or(b'?', |(_, b)| *b);
            if b.is_ascii_alphanumeric() {
                re.push(b as char);
            } else {
                let _ = write!(re, "\\x{b:02X}");
            }
            at += 1;
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::feature_specs;

    fn model(features: &[FeatureSpec]) -> Model<'_> {
        Model {
            version: "20261203T000000Z-00000000",
            reference_date: "2014-12-31",
            features,
        }
    }

    #[test]
    fn a_date_format_becomes_an_anchored_pattern() {
        let fmt = DateFormat::fixed("%d-%m-%Y").unwrap();
        assert_eq!(date_re(&fmt), r"^[0-9]{2}\x2D[0-9]{2}\x2D[0-9]{4}$");
        let iso = DateFormat::fixed("%Y/%m/%d").unwrap();
        assert_eq!(date_re(&iso), r"^[0-9]{4}\x2F[0-9]{2}\x2F[0-9]{2}$");
    }

    #[test]
    fn literals_are_escaped_for_each_engine() {
        assert_eq!(Dialect::Spark.lit(r"a'b\s"), r"'a\'b\\s'");
        assert_eq!(Dialect::Duckdb.lit(r"a'b\s"), r"'a''b\s'");
        assert_eq!(Dialect::Spark.quote("ID"), "`ID`");
        assert_eq!(Dialect::Duckdb.quote("ID"), "\"ID\"");
        assert_eq!(Dialect::parse("DuckDB").unwrap(), Dialect::Duckdb);
        assert!(Dialect::parse("bigquery").is_err());
    }

    #[test]
    fn every_feature_and_every_raw_column_is_in_the_sql() {
        let specs = feature_specs();
        for d in Dialect::ALL {
            let sql = features_sql(model(&specs), d, "customers").unwrap();
            for feat in &FEATURES {
                assert!(
                    sql.contains(&format!("AS {}", d.quote(feat.key))),
                    "{}",
                    feat.key
                );
            }
            for c in RawSchema::get().names() {
                assert!(sql.contains(&d.quote(c)), "{c}");
            }
            assert!(sql.contains(&format!("'{}: is missing'", "Dt_Customer")));
        }
    }

    #[test]
    fn an_old_manifest_exports_only_when_its_words_are_this_builds() {
        let now = feature_specs();
        let mut old = feature_specs();
        for f in &mut old {
            f.derived_from = None;
        }
        assert_eq!(
            features_sql(model(&old), Dialect::Duckdb, "t").unwrap(),
            features_sql(model(&now), Dialect::Duckdb, "t").unwrap()
        );
        old[1].derivation = "code of Education (0: Basic)".into();
        let e = features_sql(model(&old), Dialect::Duckdb, "t").unwrap_err();
        assert!(e.to_string().contains("Education"), "{e}");
    }

    #[test]
    fn a_date_format_becomes_the_java_pattern_of_the_same_text() {
        assert_eq!(java_pattern("%d-%m-%Y"), "dd-MM-yyyy");
        assert_eq!(java_pattern("%Y/%m/%d"), "yyyy/MM/dd");
        assert_eq!(java_pattern("%YT%m'%d"), "yyyy'T'MM''dd");
    }
}
