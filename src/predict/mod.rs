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

mod read;
mod write;

pub use read::{Records, read_records};
pub use write::{OutputColumns, Target};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongodb::bson::{Bson, Document};
use polars::prelude::*;

use crate::dates::ReferenceDate;
use crate::error::{Error, Result};
use crate::features;
use crate::inference::{OnnxModel, Predictions, SessionOptions};
use crate::ingest;
use crate::matrix::Matrix;
use crate::registry::ServedModel;
use crate::schema::RawSchema;
use crate::schema::{FEATURES, N_FEATURES, check_feature};
use read::{Body, ChunkReader, CsvParse};
use write::{Out, Sink};

#[derive(Debug, Clone)]
pub struct PredictRequest {
    pub model: PathBuf,
    pub input: PathBuf,
    pub output: PathBuf,
    pub chunk_rows: usize,
    pub progress: bool,
    pub options: SessionOptions,
    /// A malformed CSV record (a stray quote, a wrong number of fields) becomes an output row
    /// with only its `error` set, instead of failing the command (`--on-error keep`).
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
    /// The prediction columns and the piece's output (CSV text, a frame, documents).
    pub format: f64,
    /// Writing the pieces, in order (the calling thread).
    pub write: f64,
}

impl Phases {
    fn add(&mut self, o: &Phases) {
        self.read += o.read;
        self.parse += o.parse;
        self.features += o.features;
        self.inference += o.inference;
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
    let model = ServedModel::open(&req.model, &req.options)?;
    let reference = ReferenceDate::parse(&model.manifest.reference_date)
        .map_err(|m| Error::Model(format!("manifest reference_date: {m}")))?;
    let segments = model.manifest.explainer();
    if req.explain && (segments.space.is_none() || !model.onnx.explains()) {
        return Err(Error::Model(format!(
            "model {} was published before explanations existed; retrain it to use --explain",
            model.manifest.version
        )));
    }
    let source = req.input.display().to_string();
    let reader = ChunkReader::open(&req.input, req.keep_malformed)?;
    let kind = input_kind(&source, reader.columns())?;
    let separator = reader.parse.separator;
    let target = Target::parse(&req.output.display().to_string(), separator)?;
    let mongo = matches!(target, Target::Mongo(_));
    if mongo && !reader.columns().iter().any(|c| c == "ID") {
        return Err(Error::MissingColumn {
            source_name: source,
            column: "ID".into(),
            found: "no ID column: a MongoDB output is one document per customer ID".into(),
        });
    }
    // A CSV written with the input's separator keeps each record's text and appends the
    // predictions; then (and for MongoDB) the input is parsed only for what the model reads.
    let passthrough =
        reader.is_csv() && matches!(target, Target::Csv { separator: s } if s == separator);
    let typed = (reader.is_csv() && (passthrough || mongo)).then(|| {
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
    });
    let workers = req.workers.max(1);
    let explains = model.onnx.explains();
    let mut sessions = Vec::with_capacity(workers);
    for _ in 1..workers {
        sessions.push(model.session(&req.options)?);
    }
    let ServedModel { manifest, onnx, .. } = model;
    sessions.push(onnx);
    let work = Piecework {
        source: source.clone(),
        kind,
        reference,
        segments,
        explain: req.explain && explains,
        passthrough,
        target: target.clone(),
        typed,
        parse: reader.parse.clone(),
        model_version: manifest.version.clone(),
    };
    let bar = crate::train::progress::Progress::new(req.progress, None)
        .plain_bar(reader.len(), "Scoring");
    let mut summary = PredictSummary {
        model_version: manifest.version.clone(),
        input_kind: kind,
        rows: 0,
        predicted: 0,
        set_aside: 0,
        malformed: 0,
        seconds: 0.0,
        workers,
        phases: Phases::default(),
    };

    // Bounded: at most `in_flight` pieces between the reader and the writer.
    let in_flight = workers + 1;
    let (job_tx, job_rx) = sync_channel::<Job>(workers);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = sync_channel::<(usize, Result<Scored>)>(workers);
    let (ticket_tx, ticket_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        ticket_tx
            .send(())
            .expect("the ticket channel holds in_flight tickets");
    }
    let stop = AtomicBool::new(false);
    let sink = std::thread::scope(|scope| {
        let (stop, work, chunk_rows) = (&stop, &work, req.chunk_rows.max(1));
        let reading = scope.spawn(move || read_pieces(reader, chunk_rows, job_tx, ticket_rx, stop));
        for session in sessions {
            let (jobs, done) = (job_rx.clone(), done_tx.clone());
            scope.spawn(move || score_pieces(work, session, jobs, done));
        }
        drop((job_rx, done_tx));
        let written = write_in_order(
            done_rx,
            ticket_tx,
            (&req.output, &target),
            &mut summary,
            &bar,
        );
        if written.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        summary.phases.read = reading
            .join()
            .map_err(|_| Error::Model("the input reader stopped".into()))?
            .as_secs_f64();
        written
    })?;
    match sink {
        Some(sink) => sink.finish()?,
        None => {
            return Err(Error::NoRows {
                source_name: source,
            });
        }
    }
    bar.finish(format!("Scored {} rows", summary.rows));
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// A piece on its way from the reader to a worker.
struct Job {
    seq: usize,
    /// Rows before it in the input.
    offset: usize,
    /// The reader's position after it (progress).
    position: u64,
    body: Result<Body>,
}

/// A scored piece on its way to the writer.
struct Scored {
    rows: usize,
    predicted: usize,
    set_aside: usize,
    malformed: usize,
    position: u64,
    out: Out,
    phases: Phases,
}

/// The reader thread: cuts pieces while there are tickets (pieces in flight), and returns the
/// time it spent reading. An error goes to the workers as the piece it stopped at.
fn read_pieces(
    mut reader: ChunkReader,
    rows: usize,
    jobs: SyncSender<Job>,
    tickets: Receiver<()>,
    stop: &AtomicBool,
) -> Duration {
    let mut busy = Duration::ZERO;
    let mut offset = 0;
    for seq in 0.. {
        if tickets.recv().is_err() || stop.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        let next = reader.next(rows);
        busy += t.elapsed();
        let (body, last) = match next {
            Ok(Some(body)) => (Ok(body), false),
            Ok(None) => break,
            Err(e) => (Err(e), true),
        };
        let n = body.as_ref().map_or(0, Body::rows);
        let job = Job {
            seq,
            offset,
            position: reader.position(),
            body,
        };
        if jobs.send(job).is_err() || last {
            break;
        }
        offset += n;
    }
    busy
}

/// A worker thread: scores pieces with its own session until the reader is done.
fn score_pieces(
    work: &Piecework,
    mut session: OnnxModel,
    jobs: Arc<Mutex<Receiver<Job>>>,
    done: SyncSender<(usize, Result<Scored>)>,
) {
    let mut pred = Predictions {
        want_preprocessed: work.explain,
        ..Default::default()
    };
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(Job {
            seq,
            offset,
            position,
            body,
        }) = job
        else {
            break;
        };
        // A panic in a parser (hostile bytes) is this piece's error, not the process's.
        let scored = body.and_then(|body| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work.score(&body, offset, position, &mut session, &mut pred)
            }))
            .unwrap_or_else(|_| {
                Err(Error::Model(format!(
                    "scoring rows {}-{} failed unexpectedly",
                    offset + 1,
                    offset + body.rows()
                )))
            })
        });
        if done.send((seq, scored)).is_err() {
            break;
        }
    }
}

/// The calling thread: writes the scored pieces in input order (the first error, in input
/// order, stops the run), giving a ticket back for each.
fn write_in_order(
    done: Receiver<(usize, Result<Scored>)>,
    tickets: SyncSender<()>,
    (path, target): (&PathBuf, &Target),
    summary: &mut PredictSummary,
    bar: &crate::train::progress::Step,
) -> Result<Option<Sink>> {
    let mut pending: BTreeMap<usize, Result<Scored>> = BTreeMap::new();
    let mut next = 0;
    let mut sink: Option<Sink> = None;
    for (seq, scored) in done.iter() {
        pending.insert(seq, scored);
        while let Some(scored) = pending.remove(&next) {
            let s = scored?;
            let t = Instant::now();
            let out = match sink.as_mut() {
                Some(out) => out,
                None => sink.insert(Sink::create(path, target, &s.out)?),
            };
            out.write(s.out)?;
            summary.phases.add(&s.phases);
            summary.phases.write += t.elapsed().as_secs_f64();
            summary.rows += s.rows;
            summary.predicted += s.predicted;
            summary.set_aside += s.set_aside;
            summary.malformed += s.malformed;
            bar.set_position(s.position)?;
            next += 1;
            let _ = tickets.send(());
        }
    }
    if !pending.is_empty() {
        return Err(Error::Model(format!(
            "a scoring worker stopped before piece {next}"
        )));
    }
    Ok(sink)
}

/// What every worker needs to score a piece.
struct Piecework {
    source: String,
    kind: InputKind,
    reference: ReferenceDate,
    segments: crate::explain::Segments,
    explain: bool,
    /// CSV out with the input's separator: the records' text is kept as it was.
    passthrough: bool,
    target: Target,
    /// Parse only these columns, by these types (when the input's text is not written out).
    typed: Option<Schema>,
    parse: CsvParse,
    model_version: String,
}

impl Piecework {
    fn score(
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
        let (matrix, kept, mut errors) = match self.kind {
            InputKind::RawRecords => {
                let conformed =
                    ingest::conform(&self.source, df.clone()).map_err(|e| shift_row(e, offset))?;
                let t = features::engineer(&conformed, self.reference)?;
                (t.matrix, t.source_rows, t.rejected_rows)
            }
            InputKind::Features => features_of(&self.source, &df, offset)?,
        };
        // A malformed record's row (empty fields) was set aside for missing values: its error
        // is what was wrong with the record.
        let malformed = body.malformed();
        if !malformed.is_empty() {
            errors.retain(|(i, _)| !malformed.iter().any(|(m, _)| m == i));
            errors.extend(malformed.iter().cloned());
        }
        lap(&mut phases.features);
        session.predict_into(matrix.as_slice(), matrix.rows(), pred)?;
        lap(&mut phases.inference);
        let scored = ScoredRows {
            pred,
            kept: &kept,
            segments: &self.segments,
            explain: self.explain,
        };
        let columns = prediction_columns(n, &scored, &errors);
        let out = match (&self.target, body) {
            (Target::Csv { separator }, Body::Csv(text)) if self.passthrough => {
                let header = header_line(
                    &output_names(&self.parse.columns, &columns.names()),
                    *separator,
                );
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
            (Target::Mongo(_), _) => {
                Out::Docs(documents(&df, &columns, &self.model_version, offset)?)
            }
            (Target::Parquet | Target::Arrow, _) => Out::Frame(with_predictions(df, columns)?),
        };
        lap(&mut phases.format);
        Ok(Scored {
            rows: n,
            predicted: kept.len(),
            set_aside: errors.len(),
            malformed: malformed.len(),
            position,
            out,
            phases,
        })
    }
}

/// A CSV header line.
fn header_line(names: &[String], separator: u8) -> Vec<u8> {
    let mut line = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            line.push(separator);
        }
        write::csv_field(&mut line, name.as_bytes(), separator);
    }
    line.push(b'\n');
    line
}

/// The output's column names: the input's, where one is also a prediction column's (a scored
/// file scored again) renamed `input_<name>`, then the predictions'.
fn output_names(input: &[String], predictions: &[String]) -> Vec<String> {
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
fn documents(
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

/// A bad-value error inside a chunk names the row of the whole file.
fn shift_row(e: Error, offset: usize) -> Error {
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

/// The 21 feature columns of a chunk as a matrix of the valid rows.
fn features_of(
    source: &str,
    df: &DataFrame,
    offset: usize,
) -> Result<(Matrix, Vec<u32>, Vec<(u32, String)>)> {
    let n = df.height();
    // Read as f64 and checked as such (a fraction in a whole-number column is not rounded away
    // by an f32 first), then kept as f32: the rules of `schema::check_feature`, as over HTTP.
    let mut cols: Vec<Float64Chunked> = Vec::with_capacity(N_FEATURES);
    for f in &FEATURES {
        let c = df.column(f.key)?;
        let cast = match c.dtype() {
            DataType::String => ingest::cast_text_numbers(source, c, &DataType::Float64)
                .map_err(|e| shift_row(e, offset))?,
            _ => c
                .cast(&DataType::Float64)
                .map_err(|_| Error::BadColumnType {
                    source_name: source.into(),
                    column: f.key.into(),
                    found: c.dtype().to_string(),
                    expected: "number",
                })?,
        };
        cols.push(cast.as_materialized_series().f64()?.clone());
    }
    let mut data = Vec::with_capacity(n * N_FEATURES);
    let mut kept = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut row = [0f64; N_FEATURES];
    for i in 0..n {
        for (j, c) in cols.iter().enumerate() {
            row[j] = c.get(i).unwrap_or(f64::NAN);
        }
        match row
            .iter()
            .enumerate()
            .try_for_each(|(j, &v)| check_feature(j, v))
        {
            Ok(()) => {
                data.extend(row.iter().map(|&v| v as f32));
                kept.push(i as u32);
            }
            Err(e) => errors.push((i as u32, e.to_string())),
        }
    }
    Ok((Matrix::new(kept.len(), N_FEATURES, data), kept, errors))
}

/// A chunk's predictions: the model's outputs for its `kept` rows.
struct ScoredRows<'a> {
    pred: &'a Predictions,
    kept: &'a [u32],
    segments: &'a crate::explain::Segments,
    explain: bool,
}

/// The prediction columns of a piece of `n` rows: `segment`, `segment_name`,
/// `probability_<id>`, `atypical`, the explanation columns when asked, and `error`.
fn prediction_columns<'a>(
    n: usize,
    scored: &ScoredRows<'a>,
    errors: &'a [(u32, String)],
) -> OutputColumns<'a> {
    let ScoredRows {
        pred,
        kept,
        segments,
        explain,
    } = *scored;
    let names = &segments.names;
    let k = pred.k.max(names.len());
    let mut segment: Vec<Option<i64>> = vec![None; n];
    let mut probs: Vec<Vec<Option<f32>>> = vec![vec![None; n]; k];
    let mut atypical: Vec<Option<bool>> = vec![None; n];
    let mut runner_up: Vec<Option<i64>> = vec![None; if explain { n } else { 0 }];
    let mut top: Vec<Vec<Option<&str>>> = vec![
        vec![None; n];
        if explain {
            crate::explain::TOP_FEATURES
        } else {
            0
        }
    ];
    for (r, &i) in kept.iter().enumerate() {
        let i = i as usize;
        let s = pred.segment[r];
        segment[i] = Some(s);
        for (j, p) in probs.iter_mut().enumerate() {
            p[i] = Some(pred.probabilities[r * pred.k + j]);
        }
        let d = &pred.distances[r * pred.k..(r + 1) * pred.k];
        atypical[i] = Some(
            segments
                .space
                .as_ref()
                .is_some_and(|sp| sp.atypical(d, s as usize)),
        );
        if let (true, Some(space)) = (explain, &segments.space) {
            let x = &pred.preprocessed[r * N_FEATURES..(r + 1) * N_FEATURES];
            let e = space.explain(x, d, s as usize);
            runner_up[i] = Some(e.runner_up as i64);
            for (slot, (j, _)) in top.iter_mut().zip(e.top(crate::explain::TOP_FEATURES)) {
                slot[i] = Some(FEATURES[j].key);
            }
        }
    }
    let name: Vec<Option<&str>> = segment
        .iter()
        .map(|s| s.and_then(|s| names.get(s as usize).map(String::as_str)))
        .collect();
    let mut error: Vec<Option<&str>> = vec![None; n];
    for (i, reason) in errors {
        error[*i as usize] = Some(reason.as_str());
    }
    OutputColumns {
        segment,
        name,
        probabilities: probs,
        atypical,
        explained: explain.then_some((runner_up, top)),
        error,
    }
}

/// A piece with its prediction columns added (see [`output_names`]).
fn with_predictions(mut df: DataFrame, columns: OutputColumns) -> Result<DataFrame> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let (x, kept, errors) = features_of("test", &df, 0).unwrap();
        assert_eq!(kept, vec![0]);
        assert_eq!(x.rows(), 1);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].0, 1);
        assert!(errors[0].1.starts_with("Children:"), "{}", errors[0].1);
        assert!(errors[0].1.contains("whole"), "{}", errors[0].1);
        assert_eq!(errors[1].0, 2);
        assert!(errors[1].1.starts_with("Age:"), "{}", errors[1].1);
    }
}
