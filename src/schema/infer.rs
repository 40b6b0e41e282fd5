//! A first draft of a schema file from a table's data (`categorizer schema infer`): each
//! column's type, range, categories or date format from its values, a guess at the id column,
//! and a feature for each usable column, with comments where a person must decide.
//!
//! The draft is a starting point, written to pass `schema check` as it is: ranges are rounded
//! out from what was seen, a column with too many distinct texts is left out (with a comment
//! saying why), and nothing is decided from the clock.

use std::collections::BTreeMap;
use std::fmt::Write;

use polars::prelude::*;

use super::file::MAX_NAME_CHARS;
use crate::dates::DateFormat;

/// The most distinct values a text column may have to be drafted as a category.
pub const MAX_CATEGORIES: usize = 50;

/// The date formats tried, most common first; the first that reads every value wins.
pub const DATE_FORMATS: [&str; 6] = [
    "%Y-%m-%d", "%d-%m-%Y", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y",
];

/// What a column's values look like.
#[derive(Debug, Clone, PartialEq)]
enum Guess {
    Integer {
        min: f64,
        max: f64,
        distinct: bool,
    },
    Number {
        min: f64,
        max: f64,
    },
    /// Formats that read every value (more than one: ambiguous, such as 01/02/2020).
    Date(Vec<&'static str>),
    /// Values by count, most common first.
    Category(Vec<(String, usize)>),
    /// Too many distinct texts, or no values at all.
    Unusable(String),
}

struct ColumnGuess {
    name: String,
    nullable: bool,
    guess: Guess,
}

/// The draft schema file's text for `df` (text columns, as a CSV is read without inference).
pub fn draft(df: &DataFrame, origin: &str) -> String {
    let columns: Vec<ColumnGuess> = df
        .columns()
        .iter()
        .map(|c| ColumnGuess {
            name: c.name().to_string(),
            nullable: c
                .str()
                .is_ok_and(|t| t.iter().any(|v| v.is_none_or(|v| v.trim().is_empty()))),
            guess: c
                .str()
                .map_or(Guess::Unusable("not text".into()), |t| guess(t)),
        })
        .collect();
    let id = id_guess(&columns);
    let mut out = String::new();
    header(&mut out, origin, df.height(), id);
    for c in &columns {
        column_line(&mut out, c);
    }
    out.push_str("\n# One feature per usable column, in the table's order; remove what the model should not see.\nfeatures:\n");
    let mut names = BTreeMap::new();
    for c in columns.iter().filter(|c| Some(c.name.as_str()) != id) {
        feature_line(&mut out, c, &mut names);
    }
    out
}

fn header(out: &mut String, origin: &str, rows: usize, id: Option<&str>) {
    let _ = writeln!(
        out,
        "# A draft schema inferred from {origin} ({rows} rows read). Check each line marked DECIDE,\n\
         # then `categorizer schema check` this file. Format: docs/schema.md."
    );
    match id {
        Some(id) => {
            let _ = writeln!(
                out,
                "# DECIDE: the id column is a guess (distinct whole numbers).\nid: {}",
                quote(id)
            );
        }
        None => out.push_str(
            "# No column looks like an id (distinct whole numbers); add `id: NAME` if one is.\n",
        ),
    }
    out.push_str(
        "# days_since / years_since count to the latest date seen at training; or write a date.\n\
         reference_date: latest\ncolumns:\n",
    );
}

/// The column most likely to be the key: distinct whole numbers, preferring a name that
/// says so (`id`, `*_id`, `*ID`).
fn id_guess(columns: &[ColumnGuess]) -> Option<&str> {
    let distinct = |c: &&ColumnGuess| matches!(c.guess, Guess::Integer { distinct: true, .. });
    let named = |c: &&ColumnGuess| {
        let n = c.name.to_ascii_lowercase();
        n == "id" || n.ends_with("_id") || n.ends_with("id") && c.name.ends_with("ID")
    };
    columns
        .iter()
        .filter(distinct)
        .find(named)
        .or_else(|| columns.iter().filter(distinct).find(|c| !c.nullable))
        .map(|c| c.name.as_str())
}

fn guess(values: &StringChunked) -> Guess {
    let present: Vec<&str> = values
        .iter()
        .flatten()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if present.is_empty() {
        return Guess::Unusable("no values".into());
    }
    if let Some(g) = numbers(&present) {
        return g;
    }
    let formats: Vec<&'static str> = DATE_FORMATS
        .iter()
        .copied()
        .filter(|f| {
            let d = DateFormat::fixed(f).expect("a fixed format");
            present.iter().all(|v| d.days(v).is_some())
        })
        .collect();
    if !formats.is_empty() {
        return Guess::Date(formats);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &present {
        *counts.entry(v).or_default() += 1;
        if counts.len() > MAX_CATEGORIES {
            return Guess::Unusable(format!(
                "more than {MAX_CATEGORIES} distinct texts: not a category a model can code"
            ));
        }
    }
    let mut by_count: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(v, n)| (v.to_string(), n))
        .collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Guess::Category(by_count)
}

/// Integer or number, when every value reads as a finite number.
fn numbers(present: &[&str]) -> Option<Guess> {
    let mut parsed = Vec::with_capacity(present.len());
    for v in present {
        let x: f64 = v.parse().ok()?;
        if !x.is_finite() {
            return None;
        }
        parsed.push(x);
    }
    let min = parsed.iter().copied().fold(f64::INFINITY, f64::min);
    let max = parsed.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if parsed.iter().all(|x| x.fract() == 0.0) {
        let mut sorted = parsed.clone();
        sorted.sort_by(f64::total_cmp);
        let distinct = sorted.windows(2).all(|w| w[0] != w[1]);
        Some(Guess::Integer { min, max, distinct })
    } else {
        Some(Guess::Number { min, max })
    }
}

/// A bound rounded outward to two significant digits (0 stays 0; a non-negative minimum
/// becomes 0, the natural floor of counts and amounts).
fn round_out(v: f64, up: bool) -> f64 {
    if v == 0.0 || (!up && v > 0.0) {
        return 0.0;
    }
    let magnitude = 10f64.powf(v.abs().log10().floor() - 1.0).max(1.0);
    let scaled = v / magnitude;
    (if up { scaled.ceil() } else { scaled.floor() }) * magnitude
}

fn column_line(out: &mut String, c: &ColumnGuess) {
    let name = quote(&c.name);
    let nullable = if c.nullable { ", nullable: true" } else { "" };
    let _ = match &c.guess {
        Guess::Integer { min, max, .. } => writeln!(
            out,
            "  - {{ name: {name}, type: integer{nullable}, min: {}, max: {} }}",
            round_out(*min, false),
            round_out(*max, true)
        ),
        Guess::Number { min, max } => writeln!(
            out,
            "  - {{ name: {name}, type: number{nullable}, min: {}, max: {} }}",
            round_out(*min, false),
            round_out(*max, true)
        ),
        Guess::Date(formats) => {
            if formats.len() > 1 {
                let _ = writeln!(
                    out,
                    "  # DECIDE: every value reads as {}: keep the one the data uses.",
                    formats.join(" and as ")
                );
            }
            writeln!(
                out,
                "  - {{ name: {name}, type: date{nullable}, format: {} }}",
                quote(formats[0])
            )
        }
        Guess::Category(values) => {
            let list: Vec<String> = values.iter().map(|(v, _)| quote(v)).collect();
            writeln!(
                out,
                "  - {{ name: {name}, type: category{nullable}, values: [{}] }}",
                list.join(", ")
            )
        }
        Guess::Unusable(why) => writeln!(out, "  # left out: {name}: {why}"),
    };
    if c.nullable && !matches!(c.guess, Guess::Unusable(_)) {
        let _ = writeln!(
            out,
            "  # DECIDE: {name} has empty values; a feature reading only it is imputed, others set the row aside."
        );
    }
}

fn feature_line(out: &mut String, c: &ColumnGuess, names: &mut BTreeMap<String, usize>) {
    let column = quote(&c.name);
    let name = feature_name(&c.name, names);
    let _ = match &c.guess {
        Guess::Integer { min, max, .. } if looks_like_years(&c.name, *min, *max) => writeln!(
            out,
            "  # DECIDE: {column} looks like a year; the feature is the years since it.\n  \
             - {{ name: {name}, years_since: {column} }}"
        ),
        Guess::Integer { .. } | Guess::Number { .. } => {
            writeln!(out, "  - {{ name: {name}, column: {column} }}")
        }
        Guess::Date(_) => writeln!(out, "  - {{ name: {name}, days_since: {column} }}"),
        Guess::Category(values) => writeln!(
            out,
            "  # DECIDE: each of the {} values is its own code; group those that mean the same: \
             groups: [[a], [b, c]].\n  - {{ name: {name}, code: {column} }}",
            values.len()
        ),
        Guess::Unusable(_) => Ok(()),
    };
}

fn looks_like_years(name: &str, min: f64, max: f64) -> bool {
    let n = name.to_ascii_lowercase();
    (n.contains("year") || n.contains("birth")) && min >= 1800.0 && max <= 2200.0
}

/// A feature name from a column name: an identifier (letters, digits, `_`), unique.
fn feature_name(column: &str, taken: &mut BTreeMap<String, usize>) -> String {
    let mut name: String = column
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(MAX_NAME_CHARS - 4)
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    let n = taken.entry(name.clone()).or_default();
    *n += 1;
    if *n > 1 {
        name = format!("{name}_{n}");
    }
    name
}

/// A YAML double-quoted scalar: every character as itself, whatever YAML would make of it bare.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::file::SchemaFile;

    fn frame(columns: &[(&str, Vec<&str>)]) -> DataFrame {
        let cols = columns
            .iter()
            .map(|(name, values)| {
                let values: Vec<Option<&str>> = values
                    .iter()
                    .map(|v| (!v.is_empty()).then_some(*v))
                    .collect();
                Column::new((*name).into(), values)
            })
            .collect();
        DataFrame::new_infer_height(cols).unwrap()
    }

    #[test]
    fn a_draft_passes_the_check_as_it_is() {
        let df = frame(&[
            ("customer_id", vec!["1", "2", "3", "4"]),
            (
                "signup date",
                vec!["2021-03-04", "2023-12-31", "2020-01-01", "2024-02-29"],
            ),
            ("birth_year", vec!["1960", "1999", "1987", "2001"]),
            ("revenue", vec!["10.5", "", "187.25", "3"]),
            ("tier", vec!["gold", "none", "none", "true"]),
            ("note", (0..4).map(|_| "").collect()),
        ]);
        let text = draft(&df, "shop.csv");
        let file = SchemaFile::parse(&text, "draft").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let schema = file
            .resolve(&text, "draft")
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(schema.id.as_deref(), Some("customer_id"), "{text}");
        let keys: Vec<&str> = schema.features.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            ["signup_date", "birth_year", "revenue", "tier"],
            "{text}"
        );
        assert!(text.contains("years_since: \"birth_year\""), "{text}");
        assert!(
            text.contains("type: number, nullable: true, min: 0, max: 190"),
            "{text}"
        );
        // "true" stays the text it was, not a YAML boolean.
        let tier = schema.columns.iter().find(|c| c.name == "tier").unwrap();
        assert_eq!(tier.values, ["none", "gold", "true"]);
        assert!(text.contains("# left out: \"note\": no values"), "{text}");
    }

    #[test]
    fn ambiguous_dates_and_many_texts_are_left_to_a_person() {
        let many: Vec<String> = (0..=MAX_CATEGORIES).map(|i| format!("v{i}")).collect();
        let df = frame(&[
            ("d", vec!["01/02/2020"; MAX_CATEGORIES + 1]),
            ("t", many.iter().map(String::as_str).collect()),
        ]);
        let text = draft(&df, "x.csv");
        assert!(
            text.contains("DECIDE: every value reads as %m/%d/%Y and as %d/%m/%Y"),
            "{text}"
        );
        assert!(
            text.contains("left out: \"t\": more than 50 distinct texts"),
            "{text}"
        );
    }

    #[test]
    fn bounds_round_outward() {
        assert_eq!(round_out(187.0, true), 190.0);
        assert_eq!(round_out(3.0, false), 0.0);
        assert_eq!(round_out(-187.0, false), -190.0);
        assert_eq!(round_out(1.0, true), 1.0);
        assert_eq!(round_out(99_999.0, true), 100_000.0);
    }
}
