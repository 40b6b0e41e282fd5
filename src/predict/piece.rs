//! One piece of the input, from its rows to its scored output: parse, the 21 features of
//! each row (or its error), the ONNX Runtime session, the prediction columns, the output.

use std::time::Instant;

use polars::prelude::*;

use super::output;
use super::write::{Out, Target};
use super::{InputKind, Phases, PredictRequest, bad_text, typed_columns};
use crate::answer::table::{self, BadText, TableError};
use crate::answer::{RowError, Scores};
use crate::dates::ReferenceDate;
use crate::error::{Error, Result};
use crate::explain::Segments;
use crate::features;
use crate::inference::{OnnxModel, Predictions};
use crate::ingest;
use crate::ingest::chunk::{Body, ChunkReader, CsvParse};
use crate::matrix::Matrix;
use crate::registry::ServedModel;
use crate::schema::N_FEATURES;

/// A scored piece on its way to the writer.
pub(super) struct Scored {
    pub rows: usize,
    pub predicted: usize,
    pub set_aside: usize,
    pub malformed: usize,
    pub position: u64,
    pub out: Out,
    pub phases: Phases,
    /// The piece's monitoring profile (merged in input order into the run's).
    pub profile: crate::monitor::Bucket,
}

/// What every worker needs to score a piece.
pub(super) struct Piecework {
    source: String,
    kind: InputKind,
    reference: ReferenceDate,
    segments: Segments,
    pub explain: bool,
    bad_text: BadText,
    /// CSV out with the input's separator: the records' text is kept as it was.
    passthrough: bool,
    target: Target,
    /// Parse only these columns, by these types (when the input's text is not written out).
    typed: Option<Schema>,
    parse: CsvParse,
    model_version: String,
}

/// A piece's rows: the valid ones' features, which rows they are, and the others' errors.
struct PieceRows {
    matrix: Matrix,
    kept: Vec<u32>,
    errors: Vec<(u32, RowError)>,
}

impl Piecework {
    pub fn new(
        req: &PredictRequest,
        model: &ServedModel,
        reader: &ChunkReader,
        kind: InputKind,
        target: Target,
    ) -> Result<Self> {
        let reference = ReferenceDate::parse(&model.manifest.reference_date)
            .map_err(|m| Error::Model(format!("manifest reference_date: {m}")))?;
        let separator = reader.parse.separator;
        let mongo = matches!(target, Target::Mongo(_));
        // A CSV written with the input's separator keeps each record's text and appends the
        // predictions; then (and for MongoDB) the input is parsed only for what the model
        // reads.
        let passthrough =
            reader.is_csv() && matches!(target, Target::Csv { separator: s } if s == separator);
        let typed = (reader.is_csv() && (passthrough || mongo)).then(|| typed_columns(kind, mongo));
        Ok(Self {
            source: req.input.display().to_string(),
            kind,
            reference,
            segments: model.manifest.explainer(),
            explain: req.explain && model.onnx.explains(),
            bad_text: bad_text(req),
            passthrough,
            target,
            typed,
            parse: reader.parse.clone(),
            model_version: model.manifest.version.clone(),
        })
    }

    /// Scores one piece of `body`, the input's rows after `offset`.
    pub fn score(
        &self,
        body: &Body,
        offset: usize,
        position: u64,
        session: &mut OnnxModel,
        pred: &mut Predictions,
    ) -> Result<Scored> {
        let mut phases = Phases::default();
        let mut clock = Instant::now();
        let mut lap = |phase: &mut f64| {
            let now = Instant::now();
            *phase += (now - clock).as_secs_f64();
            clock = now;
        };
        let df = body.frame(&self.parse, self.typed.as_ref())?;
        lap(&mut phases.parse);
        let n = df.height();
        let mut rows = self.rows(&df, offset)?;
        // A malformed record's row (empty fields) is set aside whatever else it shows: its
        // error is what was wrong with the record (it comes last, so it wins).
        let malformed = body.malformed();
        rows.errors.extend(
            malformed
                .iter()
                .map(|(i, why)| (*i, RowError::record(why.clone()))),
        );
        lap(&mut phases.features);
        session.predict_into(rows.matrix.as_slice(), rows.matrix.rows(), pred)?;
        lap(&mut phases.inference);
        let scores = Scores {
            k: pred.k,
            segment: &pred.segment,
            probabilities: &pred.probabilities,
            distances: &pred.distances,
            preprocessed: &pred.preprocessed,
            segments: &self.segments,
        };
        // The piece's monitoring profile: what `serve` keeps of the customers it scores.
        let mut profile = crate::monitor::Bucket::new(&self.model_version, 0, 0);
        let atypical = self
            .segments
            .atypical_flags(&pred.segment, &pred.distances, pred.k);
        profile.add(rows.matrix.as_slice(), &pred.segment, &atypical);
        for (_, e) in &rows.errors {
            profile.add_error(e.field.as_deref(), 1);
        }
        profile.settle();
        lap(&mut phases.profile);
        let columns = output::columns(n, &scores, &rows.kept, &rows.errors, self.explain);
        let set_aside = columns.error.iter().filter(|e| e.is_some()).count();
        let out = output::piece_out(
            (&self.target, self.passthrough),
            (body, df, &self.parse),
            columns,
            (&self.model_version, offset),
        )?;
        lap(&mut phases.format);
        Ok(Scored {
            rows: n,
            predicted: n - set_aside,
            set_aside,
            malformed: malformed.len(),
            position,
            out,
            phases,
            profile,
        })
    }

    /// The piece's rows as the model reads them: raw records through the features training
    /// computes (with the model's reference date), or the 21 features checked as over HTTP.
    fn rows(&self, df: &DataFrame, offset: usize) -> Result<PieceRows> {
        match self.kind {
            InputKind::RawRecords => {
                let (conformed, unreadable) =
                    ingest::conform_rows(&self.source, df.clone(), self.bad_text)
                        .map_err(|e| shift_row(e, offset))?;
                let t = features::engineer(&conformed, self.reference)?;
                // An unreadable cell's error comes after (and so wins over) what the missing
                // value it left made of the row.
                let mut errors = t.rejected_rows;
                errors.extend(unreadable);
                Ok(PieceRows {
                    matrix: t.matrix,
                    kept: t.source_rows,
                    errors,
                })
            }
            InputKind::Features => features_of(&self.source, df, offset, self.bad_text),
        }
    }
}

/// A bad-value error inside a chunk names the row of the whole file.
pub(super) fn shift_row(e: Error, offset: usize) -> Error {
    match e {
        Error::BadValue {
            source_name,
            column,
            row,
            value,
            expected,
        } => Error::BadValue {
            source_name,
            column,
            row: row + offset,
            value,
            expected,
        },
        other => other,
    }
}

/// The 21 feature columns of a piece as a matrix of the valid rows, by the rules of a table
/// sent to the service ([`table::for_each_row`]): read as f64 and checked as such (a fraction
/// in a whole-number column is not rounded away by an f32 first), then kept as f32.
fn features_of(source: &str, df: &DataFrame, offset: usize, bad: BadText) -> Result<PieceRows> {
    let n = df.height();
    let mut data = Vec::with_capacity(n * N_FEATURES);
    let mut kept = Vec::with_capacity(n);
    let mut errors = Vec::new();
    table::for_each_row(df, bad, |i, row| match row {
        Ok(values) => {
            data.extend_from_slice(values);
            kept.push(i as u32);
        }
        Err(e) => errors.push((i as u32, e)),
    })
    .map_err(|e| match e {
        TableError::BadText { column, row, value } => Error::BadValue {
            source_name: source.into(),
            column,
            row: row + offset,
            value,
            expected: "number",
        },
        TableError::MissingColumn { column, found } => Error::MissingColumn {
            source_name: source.into(),
            column,
            found,
        },
        TableError::NotNumbers { column, why } => Error::BadColumnType {
            source_name: source.into(),
            column,
            found: why,
            expected: "number",
        },
    })?;
    Ok(PieceRows {
        matrix: Matrix::new(kept.len(), N_FEATURES, data),
        kept,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FEATURES;

    #[test]
    fn feature_files_are_checked_as_f64_by_the_service_rules() {
        // Three rows at every feature's minimum; row 1 has a fraction too small for an f32
        // to keep in a whole-number feature, row 2 a value out of range.
        let children = crate::schema::feature_index("Children").unwrap();
        let columns: Vec<Column> = FEATURES
            .iter()
            .enumerate()
            .map(|(j, f)| {
                let mut v = vec![f.min; 3];
                if j == children {
                    v[1] = 2.000_000_01;
                }
                if f.key == "Age" {
                    v[2] = f.max + 1.0;
                }
                Column::new(f.key.into(), v)
            })
            .collect();
        let df = DataFrame::new(3, columns).unwrap();
        let PieceRows {
            matrix: x,
            kept,
            errors,
        } = features_of("test", &df, 0, BadText::Fail).unwrap();
        assert_eq!(kept, vec![0]);
        assert_eq!(x.rows(), 1);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].0, 1);
        assert_eq!(errors[0].1.field.as_deref(), Some("Children"));
        assert!(
            errors[0].1.message.starts_with("Children:"),
            "{:?}",
            errors[0].1
        );
        assert!(errors[0].1.message.contains("whole"), "{:?}", errors[0].1);
        assert_eq!(errors[1].0, 2);
        assert!(errors[1].1.message.starts_with("Age:"), "{:?}", errors[1].1);
    }
}
