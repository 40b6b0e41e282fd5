//! The 21 features of a table, row by row: an Arrow or CSV request body, or a piece of a bulk
//! file of features. One loop for both, so a customer gets the same row (or the same row
//! error) through either door.
//!
//! Each feature's column is numbers (any numeric type, read as f64), text (a CSV column with a
//! value that is not a number: each value read by [`text_number`]), or absent (a nullable
//! feature only: all missing). Every value is checked as the f64 it was sent as by
//! [`check_feature`] and kept as an f32.

use polars::prelude::{DataFrame, DataType, PolarsError, StringChunked};

use super::{Row, RowError, text_number};
use crate::schema::{FEATURES, N_FEATURES, check_feature};

/// What a text cell that is not a number does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadText {
    /// It is its row's error (the request bodies; bulk scoring with `--on-error keep`).
    RowError,
    /// It stops the read, naming the row and the column (bulk scoring's default).
    Fail,
}

/// Why a table's feature columns cannot be read at all.
#[derive(Debug, Clone, PartialEq)]
pub enum TableError {
    /// A feature's column is absent (the table's columns are listed).
    MissingColumn { column: String, found: String },
    /// A column whose type cannot be read as numbers.
    NotNumbers { column: String, why: String },
    /// With [`BadText::Fail`]: the first text cell that is not a number (row 1-based).
    BadText {
        column: String,
        row: usize,
        value: String,
    },
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableError::MissingColumn { column, found } => {
                write!(f, "column '{column}' is missing (the table has: {found})")
            }
            TableError::NotNumbers { column, why } => {
                write!(f, "column '{column}' is not a number column: {why}")
            }
            TableError::BadText { column, row, value } => {
                write!(f, "column '{column}', row {row}: '{value}' is not a number")
            }
        }
    }
}

/// A feature's column, read out once.
enum Cells {
    Absent,
    /// A null as NaN: `ChunkedArray::get` per value cost more than the checks.
    Numbers(Vec<f64>),
    Text(StringChunked),
}

/// The rows of `df`'s 21 feature columns (found by key; other columns are ignored), each
/// value checked by the rules of a JSON customer, a bad one becoming its row's error.
pub fn feature_rows(df: &DataFrame, bad_text: BadText) -> Result<Vec<Row>, TableError> {
    let mut rows = Vec::with_capacity(df.height());
    for_each_row(df, bad_text, |_, r| rows.push(Row(r.copied())))?;
    Ok(rows)
}

/// [`feature_rows`] without the vector: `f(i, row i)` in order (bulk scoring copies the valid
/// rows straight into its matrix).
pub fn for_each_row(
    df: &DataFrame,
    bad_text: BadText,
    mut f: impl FnMut(usize, Result<&[f32; N_FEATURES], RowError>),
) -> Result<(), TableError> {
    let columns = feature_cells(df)?;
    for i in 0..df.height() {
        match row_of(&columns, i, bad_text)? {
            Ok(row) => f(i, Ok(&row)),
            Err(e) => f(i, Err(e)),
        }
    }
    Ok(())
}

/// Each feature's column, or the reason the table has none usable.
fn feature_cells(df: &DataFrame) -> Result<Vec<Cells>, TableError> {
    let mut columns = Vec::with_capacity(N_FEATURES);
    for f in &FEATURES {
        let Ok(c) = df.column(f.key) else {
            if f.nullable() {
                columns.push(Cells::Absent);
                continue;
            }
            return Err(TableError::MissingColumn {
                column: f.key.into(),
                found: df
                    .get_column_names()
                    .iter()
                    .take(40)
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let bad = |e: PolarsError| TableError::NotNumbers {
            column: f.key.into(),
            why: e.to_string(),
        };
        columns.push(match c.dtype() {
            DataType::String => Cells::Text(c.str().map_err(bad)?.clone()),
            _ => {
                let cast = c.cast(&DataType::Float64).map_err(bad)?;
                let ca = cast.as_materialized_series().f64().map_err(bad)?;
                let mut values = Vec::with_capacity(ca.len());
                for chunk in ca.downcast_iter() {
                    if chunk.validity().is_none_or(|v| v.unset_bits() == 0) {
                        values.extend_from_slice(chunk.values());
                    } else {
                        values.extend(chunk.iter().map(|v| v.copied().unwrap_or(f64::NAN)));
                    }
                }
                Cells::Numbers(values)
            }
        });
    }
    Ok(columns)
}

/// Row `i`: its features, or its error. A cell that cannot be read as a number comes first
/// (as a JSON customer's wrong type does), then the first value, in feature order, that
/// [`check_feature`] refuses (a missing value is NaN, which only a nullable feature accepts).
fn row_of(
    columns: &[Cells],
    i: usize,
    bad_text: BadText,
) -> Result<Result<[f32; N_FEATURES], RowError>, TableError> {
    let mut values = [f64::NAN; N_FEATURES];
    for (j, c) in columns.iter().enumerate() {
        values[j] = match c {
            Cells::Absent => f64::NAN,
            Cells::Numbers(c) => c[i],
            Cells::Text(c) => match text_number(c.get(i)) {
                Some(v) => v,
                None => {
                    let (key, text) = (FEATURES[j].key, c.get(i).unwrap_or_default());
                    return match bad_text {
                        BadText::RowError => Ok(Err(RowError::not_a_number(key, text.trim()))),
                        BadText::Fail => Err(TableError::BadText {
                            column: key.into(),
                            row: i + 1,
                            value: super::shown_text(text),
                        }),
                    };
                }
            },
        };
    }
    let mut row = [f32::NAN; N_FEATURES];
    for (j, &v) in values.iter().enumerate() {
        match check_feature(j, v) {
            Ok(()) => row[j] = v as f32,
            Err(e) => return Ok(Err(e.into())),
        }
    }
    Ok(Ok(row))
}

/// `text` as one CSV field: quoted (its quotes doubled) when it holds the separator, a quote
/// or a line end.
pub fn csv_field(out: &mut Vec<u8>, text: &[u8], separator: u8) {
    let needs = text
        .iter()
        .any(|&b| b == separator || b == b'"' || b == b'\n' || b == b'\r');
    if !needs {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    for &b in text {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::Column;

    /// A table of `rows` customers at every feature's minimum, as text where `text` says.
    fn table(cells: &[(&str, usize, &str)], rows: usize) -> DataFrame {
        let columns: Vec<Column> = FEATURES
            .iter()
            .map(|f| {
                let edits: Vec<_> = cells.iter().filter(|(k, _, _)| *k == f.key).collect();
                if edits.is_empty() {
                    return Column::new(f.key.into(), vec![f.min; rows]);
                }
                let mut v: Vec<String> = vec![f.min.to_string(); rows];
                for (_, at, text) in edits {
                    v[*at] = text.to_string();
                }
                Column::new(f.key.into(), v)
            })
            .collect();
        DataFrame::new(rows, columns).unwrap()
    }

    #[test]
    fn a_text_cell_is_its_rows_error_or_stops_the_read_naming_row_and_column() {
        let df = table(&[("Income", 1, "lots"), ("Age", 2, " 45 ")], 4);
        let rows = feature_rows(&df, BadText::RowError).unwrap();
        assert!(rows[0].0.is_ok());
        let e = rows[1].0.clone().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("Income"));
        assert_eq!(e.message, "Income: 'lots' is not a number");
        assert_eq!(
            rows[2].0.clone().unwrap()[0],
            45.0,
            "spaces around a number"
        );
        assert_eq!(
            feature_rows(&df, BadText::Fail).unwrap_err(),
            TableError::BadText {
                column: "Income".into(),
                row: 2,
                value: "lots".into()
            }
        );
    }

    #[test]
    fn a_cell_that_cannot_be_read_comes_before_a_value_out_of_range() {
        let df = table(&[("Age", 0, "131"), ("Fruits", 0, "1\r\nx")], 1);
        let rows = feature_rows(&df, BadText::RowError).unwrap();
        assert_eq!(
            rows[0].0.clone().unwrap_err().field.as_deref(),
            Some("Fruits")
        );
        assert!(matches!(
            feature_rows(&df, BadText::Fail),
            Err(TableError::BadText { column, row: 1, .. }) if column == "Fruits"
        ));
    }

    #[test]
    fn a_missing_feature_column_is_named_and_income_may_be_absent() {
        let df = table(&[], 2).drop("Income").unwrap();
        let rows = feature_rows(&df, BadText::Fail).unwrap();
        let income = crate::schema::feature_index("Income").unwrap();
        assert!(rows[0].0.clone().unwrap()[income].is_nan());
        let df = df.drop("Recency").unwrap();
        assert!(matches!(
            feature_rows(&df, BadText::Fail),
            Err(TableError::MissingColumn { column, .. }) if column == "Recency"
        ));
    }
}
