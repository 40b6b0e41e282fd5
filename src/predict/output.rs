//! The shape of a scored piece: each row's outcome as the prediction columns, and the
//! columns put beside the input's (a CSV's text as it was, a frame, or MongoDB documents).

use mongodb::bson::{Bson, Document};
use polars::prelude::*;

use super::write::{Out, Target};
use crate::answer::table::csv_field;
use crate::answer::{OutputColumns, RowError, Scores};
use crate::error::{Error, Result};
use crate::ingest::chunk::{Body, CsvParse};

/// The prediction columns of a piece of `n` rows: row `i` is its error where `errors` has
/// one (a later entry for a row wins), else the next scored row's answer (`kept` lists the
/// rows that were scored, in order; a scored row with an error is not answered).
pub(super) fn columns<'a>(
    n: usize,
    scores: &Scores<'a>,
    kept: &[u32],
    errors: &'a [(u32, RowError)],
    explain: bool,
) -> OutputColumns<'a> {
    let mut error_of: Vec<Option<&'a RowError>> = vec![None; n];
    for (i, e) in errors {
        error_of[*i as usize] = Some(e);
    }
    let mut columns = OutputColumns::with_capacity(n, scores.k, explain);
    let mut at = 0usize;
    for (i, error) in error_of.into_iter().enumerate() {
        let scored = kept.get(at) == Some(&(i as u32));
        let outcome = match error {
            Some(e) => Err(e),
            None if scored => Ok(scores.answer(at, explain)),
            None => unreachable!("row {i} was neither scored nor set aside"),
        };
        at += usize::from(scored);
        columns.push(&outcome);
    }
    columns
}

/// A scored piece in its sink's form: CSV text (the records as they were, with the input's
/// separator, or the parsed frame written again), a frame (Parquet, Arrow), or documents.
pub(super) fn piece_out(
    (target, passthrough): (&Target, bool),
    (body, df, parse): (&Body, DataFrame, &CsvParse),
    columns: OutputColumns,
    (model_version, offset): (&str, usize),
) -> Result<Out> {
    let n = df.height();
    Ok(match (target, body) {
        (Target::Csv { separator }, Body::Csv(text)) if passthrough => {
            let header = header_line(&output_names(&parse.columns, &columns.names()), *separator);
            let mut lines = Vec::with_capacity(text.text.len() + n * 64);
            for i in 0..n {
                lines.extend_from_slice(text.record(i));
                columns.write_csv_row(i, *separator, &mut lines);
                lines.push(b'\n');
            }
            Out::Csv {
                header,
                body: lines,
            }
        }
        (Target::Csv { separator }, _) => {
            let mut df = with_predictions(df, columns)?;
            let names: Vec<String> = df
                .get_column_names()
                .iter()
                .map(|c| c.to_string())
                .collect();
            let mut lines = Vec::new();
            CsvWriter::new(&mut lines)
                .include_header(false)
                .with_separator(*separator)
                .finish(&mut df)?;
            Out::Csv {
                header: header_line(&names, *separator),
                body: lines,
            }
        }
        (Target::Mongo(_), _) => Out::Docs(documents(&df, &columns, model_version, offset)?),
        (Target::Parquet | Target::Arrow, _) => Out::Frame(with_predictions(df, columns)?),
    })
}

/// A CSV header line.
pub(super) fn header_line(names: &[String], separator: u8) -> Vec<u8> {
    let mut line = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            line.push(separator);
        }
        csv_field(&mut line, name.as_bytes(), separator);
    }
    line.push(b'\n');
    line
}

/// The output's column names: the input's, where one is also a prediction column's (a scored
/// file scored again) renamed `input_<name>`, then the predictions'.
pub(super) fn output_names(input: &[String], predictions: &[String]) -> Vec<String> {
    let mut names: Vec<String> = input
        .iter()
        .map(|c| {
            let mut name = c.clone();
            while predictions.contains(&name) || (name != *c && input.contains(&name)) {
                name = format!("input_{name}");
            }
            name
        })
        .collect();
    names.extend(predictions.iter().cloned());
    names
}

/// One MongoDB document per row: `ID`, the predictions, `model_version` (and `error`).
pub(super) fn documents(
    df: &DataFrame,
    c: &OutputColumns,
    model_version: &str,
    offset: usize,
) -> Result<Vec<Document>> {
    let ids = df.column("ID")?.cast(&DataType::Float64)?;
    let ids = ids.f64()?;
    let mut docs = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let id = match ids.get(i) {
            Some(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 => v as i64,
            other => {
                return Err(Error::BadValue {
                    source_name: "ID".into(),
                    column: "ID".into(),
                    row: offset + i + 1,
                    value: other.map(|v| v.to_string()).unwrap_or_default(),
                    expected: "whole number (the MongoDB output is one document per ID)",
                });
            }
        };
        let mut d = Document::new();
        d.insert("ID", id);
        d.insert("segment", c.segment[i]);
        d.insert("segment_name", c.name[i]);
        d.insert(
            "probabilities",
            match c.segment[i] {
                Some(_) => Bson::Array(
                    c.probabilities
                        .iter()
                        .map(|p| Bson::Double(f64::from(p[i].unwrap_or(f32::NAN))))
                        .collect(),
                ),
                None => Bson::Null,
            },
        );
        d.insert("atypical", c.atypical[i]);
        if let Some((runner_up, top)) = &c.explained {
            d.insert("runner_up", runner_up[i]);
            d.insert(
                "top_features",
                top.iter()
                    .filter_map(|t| t[i].map(|k| Bson::String(k.into())))
                    .collect::<Vec<_>>(),
            );
        }
        d.insert("model_version", model_version);
        if let Some(e) = c.error[i] {
            d.insert("error", e);
        }
        docs.push(d);
    }
    Ok(docs)
}

/// A piece with its prediction columns added (see [`output_names`]).
pub(super) fn with_predictions(mut df: DataFrame, columns: OutputColumns) -> Result<DataFrame> {
    let input: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let names = output_names(&input, &columns.names());
    df.set_column_names(&names[..input.len()])?;
    df.hstack_mut(&columns.into_columns())?;
    Ok(df)
}
