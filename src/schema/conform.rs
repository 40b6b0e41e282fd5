//! Whether a table's data matches a schema's columns: each column present, each value of its
//! type, within its range, a known category, a date in its format. Reads a frame of text
//! columns (as a CSV is read with no type inference), so every value is judged by the one
//! rule, whatever the file format.

use polars::prelude::*;

use super::RawType;
use super::file::CustomerSchema;
use crate::dates::DateFormat;

/// The values of one column that do not match the schema, counted, with the first of them.
#[derive(Debug, Clone, PartialEq)]
pub struct DataProblem {
    pub column: String,
    pub message: String,
    /// Rows with this problem (0 for a missing column).
    pub rows: usize,
    /// 1-based data row of the first, and its value.
    pub first: Option<(usize, String)>,
}

impl std::fmt::Display for DataProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column '{}': {}", self.column, self.message)?;
        if let Some((row, value)) = &self.first {
            let more = self.rows.saturating_sub(1);
            write!(f, " (row {row}: '{}'", value.escape_debug())?;
            if more > 0 {
                write!(
                    f,
                    ", and {more} more row{}",
                    if more == 1 { "" } else { "s" }
                )?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Every way `df` (text columns) does not match the schema's columns, in the schema's order.
pub fn data_problems(schema: &CustomerSchema, df: &DataFrame) -> Vec<DataProblem> {
    let mut out = Vec::new();
    for c in &schema.columns {
        let Ok(column) = df.column(c.name.as_str()) else {
            let found: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
            out.push(DataProblem {
                column: c.name.clone(),
                message: format!("missing (columns found: {})", found.join(", ")),
                rows: 0,
                first: None,
            });
            continue;
        };
        let Ok(text) = column.str() else {
            continue;
        };
        let mut tally = Tally::default();
        let date = c.format.as_deref().and_then(DateFormat::fixed);
        for (row, value) in text.iter().enumerate() {
            let value = value.map(str::trim).unwrap_or("");
            if value.is_empty() {
                if !c.nullable {
                    tally.add("missing value", row, value);
                }
                continue;
            }
            if let Some(why) = judge(c, date.as_ref(), value) {
                tally.add(why, row, value);
            }
        }
        out.extend(tally.problems(&c.name));
    }
    out
}

/// Why one non-empty value does not fit its column, or None when it does.
fn judge(c: &super::RawColumn, date: Option<&DateFormat>, value: &str) -> Option<&'static str> {
    match c.kind {
        RawType::Category => (!c.values.iter().any(|v| v == value)).then_some("unknown category"),
        RawType::Date => match date {
            Some(d) if d.days(value).is_some() => None,
            _ => Some("not a date in the column's format"),
        },
        RawType::Integer | RawType::Number => {
            let Ok(v) = value.parse::<f64>() else {
                return Some("not a number");
            };
            if !v.is_finite() {
                return Some("not a finite number");
            }
            if c.kind == RawType::Integer && v.fract() != 0.0 {
                return Some("not a whole number");
            }
            let below = c.min.is_some_and(|m| v < m);
            let above = c.max.is_some_and(|m| v > m);
            (below || above).then_some("outside the column's min/max")
        }
    }
}

/// Problems of one column by kind: how many rows, and the first.
#[derive(Default)]
struct Tally {
    kinds: Vec<(&'static str, usize, usize, String)>,
}

impl Tally {
    fn add(&mut self, why: &'static str, row: usize, value: &str) {
        match self.kinds.iter_mut().find(|k| k.0 == why) {
            Some(k) => k.1 += 1,
            None => self.kinds.push((why, 1, row + 1, value.to_string())),
        }
    }

    fn problems(self, column: &str) -> impl Iterator<Item = DataProblem> {
        self.kinds
            .into_iter()
            .map(move |(why, rows, row, value)| DataProblem {
                column: column.to_string(),
                message: why.to_string(),
                rows,
                first: Some((row, value)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::file::SchemaFile;

    fn schema() -> CustomerSchema {
        let text = r#"
columns:
  - { name: id, type: integer, min: 0 }
  - { name: joined, type: date, format: "%Y-%m-%d" }
  - { name: spend, type: number, nullable: true, min: 0 }
  - { name: tier, type: category, values: [none, gold] }
features:
  - { name: Spend, column: spend }
"#;
        SchemaFile::parse(text, "t")
            .unwrap()
            .resolve(text, "t")
            .unwrap()
    }

    fn frame(columns: &[(&str, &[&str])]) -> DataFrame {
        let cols = columns
            .iter()
            .map(|(name, values)| Column::new((*name).into(), values.to_vec()))
            .collect();
        DataFrame::new_infer_height(cols).unwrap()
    }

    #[test]
    fn a_matching_frame_has_no_problems() {
        let df = frame(&[
            ("id", &["1", "2"]),
            ("joined", &["2021-03-04", "2024-02-29"]),
            ("spend", &["10.5", ""]),
            ("tier", &["none", "gold"]),
        ]);
        assert_eq!(data_problems(&schema(), &df), vec![]);
    }

    #[test]
    fn a_missing_column_and_an_unknown_category_are_named() {
        let df = frame(&[
            ("id", &["1", "2.5", "x"]),
            ("joined", &["2021-03-04", "2021-02-30", "04-03-2021"]),
            ("tier", &["none", "platinum", "diamond"]),
        ]);
        let got: Vec<String> = data_problems(&schema(), &df)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "column 'id': not a whole number (row 2: '2.5')",
                "column 'id': not a number (row 3: 'x')",
                "column 'joined': not a date in the column's format (row 2: '2021-02-30', and 1 more row)",
                "column 'spend': missing (columns found: id, joined, tier)",
                "column 'tier': unknown category (row 2: 'platinum', and 1 more row)",
            ]
        );
    }
}
