//! Bulk scoring: `categorizer predict --model DIR --input FILE --output FILE|URI`.
//!
//! The input is read in pieces of `chunk_rows` rows, so memory stays flat however large the
//! file: CSV is cut at record boundaries (a quoted field may span lines), Parquet read by row
//! slices, Arrow IPC files by record batches ([`read`]). A piece is either raw 29-column records
//! (features computed by the same code as training, with the model's reference date) or the 21
//! features by their keys. One thread cuts the pieces, `workers` threads parse and score them
//! (each with its own ONNX Runtime session), and the calling thread writes them in input order
//! ([`write`]): the output is the same whatever the number of workers or the piece size. Every
//! input row comes out, in order, with its columns kept and `segment`, `segment_name`,
//! `probability_<id>`, `atypical` (and with `explain`, `runner_up` and `top_feature_1..3`)
//! added; a row that cannot be scored gets empty predictions and the reason in `error`, so
//! nothing is dropped silently. A CSV written with the input's separator keeps each record's
//! text as it was and appends the predictions; a MongoDB output gets one document per `ID`.

//!
//! The module's rooms: [`pipeline`] (the threads and the order they keep), [`piece`] (one
//! piece from its rows to its scored output), [`output`] (the output's shape: column names,
//! a frame, documents), [`read`] and [`write`] (files in and out). A row's answer is
//! [`crate::answer`]'s, shared with the service, so a customer scored here and over HTTP gets
//! the same fields.

mod output;
mod piece;
mod pipeline;
pub(crate) mod write;

pub use crate::answer::OutputColumns;
pub use crate::ingest::chunk::{Records, read_records};
pub use write::Target;

use std::path::PathBuf;
use std::time::Instant;

use polars::prelude::*;

use crate::answer::table::BadText;
use crate::error::{Error, Result};
use crate::inference::{OnnxModel, SessionOptions};
use crate::ingest;
use crate::ingest::chunk::ChunkReader;
use crate::registry::ServedModel;
use crate::schema::{FEATURES, RawSchema};
use piece::Piecework;

#[derive(Debug, Clone)]
pub struct PredictRequest {
    pub model: PathBuf,
    pub input: PathBuf,
    pub output: PathBuf,
    pub chunk_rows: usize,
    pub progress: bool,
    pub options: SessionOptions,
    /// `--on-error keep`: a malformed CSV record (a stray quote, a wrong number of fields) or a
    /// cell of a number column that is not a number becomes its row's `error`, instead of
    /// failing the command naming the line, or the row and column.
    pub keep_malformed: bool,
    /// Add `runner_up` and `top_feature_1..3`: why each row is in its segment.
    pub explain: bool,
    /// Threads that parse and score pieces (each with its own ONNX Runtime session).
    pub workers: usize,
}

/// Which columns the input carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// The 29 raw columns of the marketing-campaign schema.
    RawRecords,
    /// The 21 model features, named by their keys.
    Features,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PredictSummary {
    pub model_version: String,
    pub input_kind: InputKind,
    pub rows: usize,
    pub predicted: usize,
    /// Rows not predicted, each with its `error` (the malformed records among them).
    pub set_aside: usize,
    /// Records that could not be read as CSV, kept as rows with their error.
    pub malformed: usize,
    pub seconds: f64,
    pub workers: usize,
    /// Where the time went, in seconds of each thread summed (the workers overlap).
    pub phases: Phases,
    /// The monitoring profile of what was scored (as `serve` keeps it), and where it went.
    #[serde(skip)]
    pub profile: Option<crate::monitor::Bucket>,
    pub profile_path: Option<String>,
}

/// Seconds spent per step, summed over the threads that ran it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Phases {
    /// Cutting the input into pieces (the reader thread).
    pub read: f64,
    /// Parsing a piece's text or decoding its batches.
    pub parse: f64,
    /// Checking the values and computing the 21 features.
    pub features: f64,
    /// The ONNX Runtime session.
    pub inference: f64,
    /// The monitoring profile of the piece (features, segments, atypical, errors).
    pub profile: f64,
    /// The prediction columns and the piece's output (CSV text, a frame, documents).
    pub format: f64,
    /// Writing the pieces, in order (the calling thread).
    pub write: f64,
}

impl Phases {
    pub(super) fn add(&mut self, o: &Phases) {
        self.read += o.read;
        self.parse += o.parse;
        self.features += o.features;
        self.inference += o.inference;
        self.profile += o.profile;
        self.format += o.format;
        self.write += o.write;
    }
}

/// Decides the input kind from the column names; the error lists what is missing.
pub fn input_kind(source: &str, columns: &[String]) -> Result<InputKind> {
    let has = |c: &str| columns.iter().any(|x| x == c);
    let raw_missing: Vec<&str> = RawSchema::get().names().filter(|c| !has(c)).collect();
    if raw_missing.is_empty() {
        return Ok(InputKind::RawRecords);
    }
    let feat_missing: Vec<&str> = FEATURES.iter().map(|f| f.key).filter(|c| !has(c)).collect();
    if feat_missing.is_empty() {
        return Ok(InputKind::Features);
    }
    let (closer, missing) = if feat_missing.len() < raw_missing.len() {
        ("the 21 features", feat_missing)
    } else {
        ("the 29 raw columns", raw_missing)
    };
    Err(Error::MissingColumn {
        source_name: source.into(),
        column: missing.join(", "),
        found: format!(
            "{} (closest to {closer})",
            columns
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Scores `req.input` into `req.output`.
pub fn run(req: &PredictRequest) -> Result<PredictSummary> {
    let start = Instant::now();
    let model = open_model(req)?;
    let source = req.input.display().to_string();
    let reader = ChunkReader::open(&req.input, req.keep_malformed)?;
    let kind = input_kind(&source, reader.columns())?;
    let target = Target::parse(&req.output.display().to_string(), reader.parse.separator)?;
    check_target(&source, &reader, &target)?;
    let workers = req.workers.max(1);
    let work = Piecework::new(req, &model, &reader, kind, target.clone())?;
    let version = model.manifest.version.clone();
    let sessions = sessions(model, workers, &req.options)?;
    let bar = crate::train::progress::Progress::new(req.progress, None)
        .plain_bar(reader.len(), "Scoring");
    let mut summary = PredictSummary {
        model_version: version,
        input_kind: kind,
        rows: 0,
        predicted: 0,
        set_aside: 0,
        malformed: 0,
        seconds: 0.0,
        workers,
        phases: Phases::default(),
        profile: None,
        profile_path: None,
    };
    let chunk_rows = req.chunk_rows.max(1);
    let sink = pipeline::score_in_order(
        reader,
        (&work, sessions),
        chunk_rows,
        (&req.output, &target),
        &mut summary,
        &bar,
    )?;
    match sink {
        Some(sink) => sink.finish()?,
        None => {
            return Err(Error::NoRows {
                source_name: source,
            });
        }
    }
    bar.finish(format!("Scored {} rows", summary.rows));
    summary.profile_path = write_profile(req, &target, &summary)?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// The run's monitoring profile: beside a file output as `<output>.monitoring.json`; for a
/// MongoDB output, into the model's store (when the model came from one) under
/// `monitoring/<version>/bulk-<unix ms>/`, where `categorizer monitor` merges it with the
/// replicas'.
fn write_profile(
    req: &PredictRequest,
    target: &Target,
    summary: &PredictSummary,
) -> Result<Option<String>> {
    let Some(profile) = &summary.profile else {
        return Ok(None);
    };
    let now = crate::monitor::now_ms();
    let mut profile = profile.clone();
    (profile.start_ms, profile.end_ms) = (now, now);
    let text = serde_json::to_string(&profile)?;
    if matches!(target, Target::Mongo(_)) {
        let dir = &req.model;
        let store_dir = if dir.join(crate::registry::store::MODEL_FILE).is_file() {
            dir.parent().map(std::path::Path::to_path_buf)
        } else {
            Some(dir.clone())
        };
        let Some(store_dir) = store_dir else {
            return Ok(None);
        };
        let store = crate::registry::store::LocalStore::new(&store_dir);
        let name = crate::monitor::bucket_name(&summary.model_version, &format!("bulk-{now}"), now);
        use crate::registry::store::ModelStore as _;
        store.write_pointer(&name, &text)?;
        return Ok(Some(format!("{}/{name}", store_dir.display())));
    }
    let path = PathBuf::from(format!("{}.monitoring.json", req.output.display()));
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(Some(path.display().to_string()))
}

/// The model, refused for `--explain` when it was published before explanations existed.
fn open_model(req: &PredictRequest) -> Result<ServedModel> {
    let model = ServedModel::open(&req.model, &req.options)?;
    let segments = model.manifest.explainer();
    if req.explain && (segments.space.is_none() || !model.onnx.explains()) {
        return Err(Error::Model(format!(
            "model {} was published before explanations existed; retrain it to use --explain",
            model.manifest.version
        )));
    }
    Ok(model)
}

/// A MongoDB output is one document per customer `ID`: the input must have one.
fn check_target(source: &str, reader: &ChunkReader, target: &Target) -> Result<()> {
    if matches!(target, Target::Mongo(_)) && !reader.columns().iter().any(|c| c == "ID") {
        return Err(Error::MissingColumn {
            source_name: source.into(),
            column: "ID".into(),
            found: "no ID column: a MongoDB output is one document per customer ID".into(),
        });
    }
    Ok(())
}

/// One ONNX Runtime session per worker (the model's own is the last).
fn sessions(
    model: ServedModel,
    workers: usize,
    options: &SessionOptions,
) -> Result<Vec<OnnxModel>> {
    let mut sessions = Vec::with_capacity(workers);
    for _ in 1..workers {
        sessions.push(model.session(options)?);
    }
    sessions.push(model.onnx);
    Ok(sessions)
}

/// The rule for a text cell that is not a number, from `--on-error`.
fn bad_text(req: &PredictRequest) -> BadText {
    if req.keep_malformed {
        BadText::RowError
    } else {
        BadText::Fail
    }
}

/// Which columns a CSV piece is parsed for, by type, when the input's text is not written out
/// as it was: the model's (raw records or features), and `ID` for a MongoDB output.
fn typed_columns(kind: InputKind, mongo: bool) -> Schema {
    let mut schema = match kind {
        InputKind::RawRecords => ingest::read_schema(),
        InputKind::Features => FEATURES
            .iter()
            .map(|f| Field::new(f.key.into(), DataType::Float64))
            .collect(),
    };
    if mongo && schema.get("ID").is_none() {
        schema.insert("ID".into(), DataType::Float64);
    }
    schema
}

/// The 21 features of every record of a raw-record file, as bulk scoring computes them
/// (the same reader, the same rule for a bad cell, the same row errors): `row` (1-based), the
/// features by key (null for a row set aside) and `error` (why it was). With `keep_malformed`
/// a malformed record or a cell that is not a number is its row's error, else it fails the
/// read naming the line, or the row and column.
pub fn features_of_file(
    path: &std::path::Path,
    reference: crate::dates::ReferenceDate,
    keep_malformed: bool,
) -> Result<DataFrame> {
    let source = path.display().to_string();
    let mut reader = ChunkReader::open(path, keep_malformed)?;
    if input_kind(&source, reader.columns())? != InputKind::RawRecords {
        return Err(Error::MissingColumn {
            source_name: source,
            column: RawSchema::get().names().collect::<Vec<_>>().join(", "),
            found: "the 21 features: they are already computed".into(),
        });
    }
    let bad = if keep_malformed {
        BadText::RowError
    } else {
        BadText::Fail
    };
    let mut values: Vec<Vec<Option<f32>>> = vec![Vec::new(); FEATURES.len()];
    let mut errors: Vec<Option<String>> = Vec::new();
    while let Some(piece) = reader.next(1 << 16)? {
        let offset = errors.len();
        let df = piece.frame(&reader.parse, None)?;
        let n = df.height();
        let (conformed, unreadable) =
            ingest::conform_rows(&source, df, bad).map_err(|e| piece::shift_row(e, offset))?;
        let t = crate::features::engineer(&conformed, reference)?;
        // The order of bulk scoring's rule: an unreadable cell wins over what its missing
        // value made of the row, a malformed record over everything.
        let mut error: Vec<Option<String>> = vec![None; n];
        let malformed = piece.malformed().iter().map(|(i, why)| (*i, why.clone()));
        for (i, e) in t
            .rejected_rows
            .into_iter()
            .chain(unreadable)
            .map(|(i, e)| (i, e.message))
            .chain(malformed)
        {
            error[i as usize] = Some(e);
        }
        let mut kept = t.source_rows.iter().zip(0..).peekable();
        for (i, e) in error.into_iter().enumerate() {
            let scored = match kept.peek() {
                Some((row, _)) if **row as usize == i => kept.next().map(|(_, r)| r),
                _ => None,
            };
            for (j, column) in values.iter_mut().enumerate() {
                column.push(match (&e, scored) {
                    (None, Some(r)) => Some(t.matrix.row(r)[j]),
                    _ => None,
                });
            }
            errors.push(e);
        }
    }
    if errors.is_empty() {
        return Err(Error::NoRows {
            source_name: source,
        });
    }
    let mut columns = vec![Column::new(
        "row".into(),
        (1..=errors.len() as u32).collect::<Vec<u32>>(),
    )];
    for (f, v) in FEATURES.iter().zip(values) {
        columns.push(Column::new(f.key.into(), v));
    }
    columns.push(Column::new("error".into(), errors));
    Ok(DataFrame::new_infer_height(columns)?)
}
