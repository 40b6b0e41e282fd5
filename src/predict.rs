//! Bulk scoring: `categorizer predict --model DIR --input FILE --output FILE`.
//!
//! The input is streamed in chunks of `chunk_rows` rows, so memory stays flat however large the
//! file: CSV is cut at line boundaries (a quoted field may span lines) and each chunk parsed by
//! polars; Parquet is read slice by slice. A chunk is either raw 29-column records (features
//! computed by the same code as training, with the model's reference date) or the 21 features
//! by their keys. Every input row comes out, in order, with its columns kept and `segment`,
//! `segment_name`, `probability_<id>`, `atypical` (and with `explain`, `runner_up` and
//! `top_feature_1..3`) added; a row that cannot be scored gets empty predictions and the
//! reason in `error`, so nothing is dropped silently.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Cursor};
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;

use crate::dates::ReferenceDate;
use crate::error::{Error, Result};
use crate::features;
use crate::inference::{Predictions, SessionOptions};
use crate::ingest::{self, DataSource};
use crate::matrix::Matrix;
use crate::registry::ServedModel;
use crate::schema::RawSchema;
use crate::schema::{FEATURES, N_FEATURES, check_feature};

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
    let mut model = ServedModel::open(&req.model, &req.options)?;
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
    let mut reader = ChunkReader::open(&req.input, req.keep_malformed)?;
    let kind = input_kind(&source, reader.columns())?;
    let bar = crate::train::progress::Progress::new(req.progress, None)
        .plain_bar(reader.len(), "Scoring");
    let mut writer: Option<ChunkWriter> = None;
    let mut summary = PredictSummary {
        model_version: model.manifest.version.clone(),
        input_kind: kind,
        rows: 0,
        predicted: 0,
        set_aside: 0,
        malformed: 0,
        seconds: 0.0,
    };
    let mut pred = Predictions {
        want_preprocessed: req.explain,
        ..Default::default()
    };
    while let Some(chunk) = reader.next(req.chunk_rows)? {
        let offset = summary.rows;
        let n = chunk.height();
        let malformed = reader.take_malformed();
        let (matrix, kept, mut errors) = match kind {
            InputKind::RawRecords => {
                let conformed =
                    ingest::conform(&source, chunk.clone()).map_err(|e| shift_row(e, offset))?;
                let t = features::engineer(&conformed, reference)?;
                (t.matrix, t.source_rows, t.rejected_rows)
            }
            InputKind::Features => features_of(&source, &chunk, offset)?,
        };
        // A malformed record's row (empty fields) was set aside for missing values: its error
        // is what was wrong with the record.
        if !malformed.is_empty() {
            errors.retain(|(i, _)| !malformed.iter().any(|(m, _)| m == i));
            errors.extend(malformed.iter().cloned());
            summary.malformed += malformed.len();
        }
        model
            .onnx
            .predict_into(matrix.as_slice(), matrix.rows(), &mut pred)?;
        let scored = Scored {
            pred: &pred,
            kept: &kept,
            segments: &segments,
            explain: req.explain,
        };
        let out = with_predictions(chunk, &scored, &errors)?;
        let w = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(ChunkWriter::create(
                &req.output,
                out.schema(),
                reader.separator(),
            )?),
        };
        w.write(out)?;
        summary.rows += n;
        summary.predicted += kept.len();
        summary.set_aside += errors.len();
        bar.set_position(reader.position())?;
    }
    match writer {
        Some(w) => w.finish()?,
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

/// The prediction columns of a scored table, one value per input row (None: the row was not
/// predicted): what bulk scoring appends to a file and the prediction route answers as a table.
pub struct OutputColumns<'a> {
    pub segment: Vec<Option<i64>>,
    pub name: Vec<Option<&'a str>>,
    /// One column per segment.
    pub probabilities: Vec<Vec<Option<f32>>>,
    pub atypical: Vec<Option<bool>>,
    /// With explanations: `runner_up` and the `top_feature_<n>` columns.
    pub explained: Option<(Vec<Option<i64>>, Vec<Vec<Option<&'a str>>>)>,
    pub error: Vec<Option<&'a str>>,
}

impl OutputColumns<'_> {
    /// `segment`, `segment_name`, `probability_<id>`, `atypical`, (`runner_up`,
    /// `top_feature_1..`), `error`, in that order.
    pub fn into_columns(self) -> Vec<Column> {
        let mut columns = vec![
            Column::new("segment".into(), self.segment),
            Column::new("segment_name".into(), self.name),
        ];
        for (j, p) in self.probabilities.into_iter().enumerate() {
            columns.push(Column::new(format!("probability_{j}").into(), p));
        }
        columns.push(Column::new("atypical".into(), self.atypical));
        if let Some((runner_up, top)) = self.explained {
            columns.push(Column::new("runner_up".into(), runner_up));
            for (j, t) in top.into_iter().enumerate() {
                columns.push(Column::new(format!("top_feature_{}", j + 1).into(), t));
            }
        }
        columns.push(Column::new("error".into(), self.error));
        columns
    }
}

/// A chunk's predictions: the model's outputs for its `kept` rows.
struct Scored<'a> {
    pred: &'a Predictions,
    kept: &'a [u32],
    segments: &'a crate::explain::Segments,
    explain: bool,
}

/// Adds `segment`, `segment_name`, `probability_<id>`, `atypical`, the explanation columns
/// when asked, and `error` to a chunk.
fn with_predictions(
    mut df: DataFrame,
    scored: &Scored,
    errors: &[(u32, String)],
) -> Result<DataFrame> {
    let Scored {
        pred,
        kept,
        segments,
        explain,
    } = *scored;
    let names = &segments.names;
    let n = df.height();
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
    let columns = OutputColumns {
        segment,
        name,
        probabilities: probs,
        atypical,
        explained: explain.then_some((runner_up, top)),
        error,
    }
    .into_columns();
    // An input that already has these columns (a scored file scored again) keeps them as input_*.
    for c in &columns {
        let mut name = c.name().to_string();
        if df.get_column_index(&name).is_none() {
            continue;
        }
        let old = name.clone();
        while df.get_column_index(&name).is_some() {
            name = format!("input_{name}");
        }
        df.rename(&old, name.into())?;
    }
    df.hstack_mut(&columns)?;
    Ok(df)
}

/// The records of an input file as bulk scoring reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    pub columns: Vec<String>,
    /// Each record's cells as text (None: an empty field); a malformed record kept with
    /// `keep_malformed` is a row of empty cells.
    pub rows: Vec<Vec<Option<String>>>,
    /// The kept malformed records: row (0-based) and what was wrong.
    pub malformed: Vec<(usize, String)>,
}

/// Every record of `path`, read `chunk_rows` at a time exactly as [`run`] reads it (so the
/// result is the same for any `chunk_rows`; the property and fuzz tests hold it to that).
pub fn read_records(path: &Path, chunk_rows: usize, keep_malformed: bool) -> Result<Records> {
    let mut reader = ChunkReader::open(path, keep_malformed)?;
    let mut out = Records {
        columns: reader.columns().to_vec(),
        rows: Vec::new(),
        malformed: Vec::new(),
    };
    while let Some(df) = reader.next(chunk_rows.max(1))? {
        let offset = out.rows.len();
        out.malformed.extend(
            reader
                .take_malformed()
                .into_iter()
                .map(|(row, why)| (offset + row as usize, why)),
        );
        let columns = df
            .columns()
            .iter()
            .map(|c| {
                let c = c.cast(&DataType::String)?;
                Ok(c.str()?.iter().map(|v| v.map(str::to_string)).collect())
            })
            .collect::<Result<Vec<Vec<Option<String>>>>>()?;
        out.rows
            .extend((0..df.height()).map(|i| columns.iter().map(|c| c[i].clone()).collect()));
    }
    Ok(out)
}

/// Reads an input file chunk by chunk.
enum ChunkReader {
    Csv {
        path: PathBuf,
        reader: BufReader<File>,
        header: Vec<u8>,
        columns: Vec<String>,
        separator: u8,
        len: u64,
        position: u64,
        line: Vec<u8>,
        /// Lines read so far, the header included (line numbers for errors).
        line_no: u64,
        /// Malformed records become rows of empty fields instead of an error.
        keep: bool,
        /// The last chunk's malformed records: row in the chunk, and what was wrong.
        malformed: Vec<(u32, String)>,
        /// Lines to read again before the file's next ones (after a stray quote, with `keep`).
        pending: std::collections::VecDeque<Vec<u8>>,
    },
    Parquet {
        path: PathBuf,
        columns: Vec<String>,
        rows: usize,
        offset: usize,
    },
}

impl ChunkReader {
    fn open(path: &Path, keep: bool) -> Result<Self> {
        match DataSource::parse(&path.display().to_string())? {
            DataSource::Parquet(_) => {
                let file = ingest::open_non_empty(path)?;
                let mut r = ParquetReader::new(file);
                let schema = r.schema()?;
                let columns = schema.iter_names().map(|s| s.to_string()).collect();
                let rows = r.num_rows()?;
                Ok(ChunkReader::Parquet {
                    path: path.into(),
                    columns,
                    rows,
                    offset: 0,
                })
            }
            DataSource::Csv(_) => {
                let file = ingest::open_non_empty(path)?;
                let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
                let mut reader = BufReader::with_capacity(1 << 20, file);
                let mut header = Vec::new();
                reader
                    .read_until(b'\n', &mut header)
                    .map_err(|e| Error::io(path, e))?;
                let text = String::from_utf8_lossy(&header)
                    .trim_end_matches(['\r', '\n'])
                    .trim_start_matches('\u{feff}')
                    .to_string();
                if text.trim().is_empty() {
                    return Err(Error::EmptyFile { path: path.into() });
                }
                if !header.ends_with(b"\n") {
                    header.push(b'\n');
                }
                let separator = ingest::sniff_separator(&text);
                let columns = text
                    .split(separator as char)
                    .map(|h| h.trim().trim_matches('"').to_string())
                    .collect();
                let position = header.len() as u64;
                Ok(ChunkReader::Csv {
                    path: path.into(),
                    reader,
                    header,
                    columns,
                    separator,
                    len,
                    position,
                    line: Vec::new(),
                    line_no: 1,
                    keep,
                    malformed: Vec::new(),
                    pending: Default::default(),
                })
            }
            DataSource::Synthetic { .. } | DataSource::Mongo(_) => {
                Err(Error::UnsupportedSource(path.display().to_string()))
            }
        }
    }

    /// The malformed records of the chunk last read (with `keep`).
    fn take_malformed(&mut self) -> Vec<(u32, String)> {
        match self {
            ChunkReader::Csv { malformed, .. } => std::mem::take(malformed),
            ChunkReader::Parquet { .. } => Vec::new(),
        }
    }

    fn columns(&self) -> &[String] {
        match self {
            ChunkReader::Csv { columns, .. } | ChunkReader::Parquet { columns, .. } => columns,
        }
    }

    fn separator(&self) -> u8 {
        match self {
            ChunkReader::Csv { separator, .. } => *separator,
            ChunkReader::Parquet { .. } => b',',
        }
    }

    /// Progress units: bytes for CSV, rows for Parquet.
    fn len(&self) -> u64 {
        match self {
            ChunkReader::Csv { len, .. } => *len,
            ChunkReader::Parquet { rows, .. } => *rows as u64,
        }
    }

    fn position(&self) -> u64 {
        match self {
            ChunkReader::Csv { position, .. } => *position,
            ChunkReader::Parquet { offset, .. } => *offset as u64,
        }
    }

    fn next(&mut self, rows: usize) -> Result<Option<DataFrame>> {
        match self {
            ChunkReader::Parquet {
                path,
                rows: total,
                offset,
                ..
            } => {
                if *offset >= *total {
                    return Ok(None);
                }
                let len = rows.min(*total - *offset);
                let file = File::open(&*path).map_err(|e| Error::io(&*path, e))?;
                let df = ParquetReader::new(file)
                    .with_slice(Some((*offset, len)))
                    .finish()?;
                *offset += len;
                Ok(Some(df))
            }
            ChunkReader::Csv {
                path,
                reader,
                header,
                columns,
                separator,
                position,
                line,
                line_no,
                keep,
                malformed,
                pending,
                ..
            } => {
                let mut buf = header.clone();
                let mut count = 0;
                let mut scan = RecordScan::default();
                let mut record_line = *line_no + 1;
                let mut record_start = buf.len();
                let first_line = record_line;
                malformed.clear();
                // A malformed record fails the read naming its line; with `keep` it is replaced
                // in the chunk (from `at`) by a record of empty fields, and its row's error
                // says what was wrong.
                let mut malformed_record = |buf: &mut Vec<u8>,
                                            at: usize,
                                            count: usize,
                                            line: u64,
                                            message: String|
                 -> Result<()> {
                    if !*keep {
                        return Err(Error::MalformedCsv {
                            path: path.clone(),
                            line,
                            message,
                        });
                    }
                    buf.truncate(at);
                    buf.extend(std::iter::repeat_n(
                        *separator,
                        columns.len().saturating_sub(1),
                    ));
                    buf.push(b'\n');
                    malformed.push((count as u32, format!("line {line}: {message}")));
                    Ok(())
                };
                let never_closed = "a quoted field opened here is never closed (a stray '\"'?)";
                while count < rows {
                    line.clear();
                    let at_end = match pending.pop_front() {
                        Some(again) => {
                            line.extend_from_slice(&again);
                            false
                        }
                        None => {
                            let got = reader
                                .read_until(b'\n', line)
                                .map_err(|e| Error::io(&*path, e))?;
                            *position += got as u64;
                            got == 0
                        }
                    };
                    // A quoted field still open at the end of the file, or over
                    // MAX_RECORD_LINES lines (memory stays bounded): a stray quote.
                    if scan.in_quotes && (at_end || *line_no + 1 - record_line >= MAX_RECORD_LINES)
                    {
                        // Kept, its first line stands in for the record; the lines after it
                        // are read again as records of their own.
                        if *keep {
                            if !at_end {
                                pending.push_front(line.clone());
                            }
                            let rest: Vec<Vec<u8>> = buf[record_start..]
                                .split_inclusive(|&b| b == b'\n')
                                .skip(1)
                                .map(<[u8]>::to_vec)
                                .collect();
                            for again in rest.into_iter().rev() {
                                pending.push_front(again);
                            }
                        }
                        malformed_record(
                            &mut buf,
                            record_start,
                            count,
                            record_line,
                            never_closed.into(),
                        )?;
                        *line_no = record_line;
                        scan = RecordScan::default();
                        count += 1;
                        continue;
                    }
                    if at_end {
                        break;
                    }
                    *line_no += 1;
                    let starts_record = !scan.in_quotes;
                    if starts_record {
                        record_line = *line_no;
                        // A blank line (a line of separators is a record of empty fields).
                        if line
                            .iter()
                            .all(|&b| matches!(b, b'\r' | b'\n' | b' ') && b != *separator)
                        {
                            continue;
                        }
                        scan = RecordScan::default();
                        record_start = buf.len();
                    }
                    if let Err(message) = scan.line(line, *separator) {
                        // Kept, the record is taken to end with this line.
                        malformed_record(&mut buf, record_start, count, *line_no, message)?;
                        scan = RecordScan::default();
                        count += 1;
                        continue;
                    }
                    buf.extend_from_slice(line);
                    if !line.ends_with(b"\n") {
                        buf.push(b'\n');
                    }
                    if !scan.in_quotes {
                        if scan.fields != columns.len() {
                            let message = format!(
                                "{} fields where the header has {}",
                                scan.fields,
                                columns.len()
                            );
                            malformed_record(&mut buf, record_start, count, record_line, message)?;
                        }
                        count += 1;
                    }
                }
                if count == 0 {
                    return Ok(None);
                }
                let df = parse_csv_chunk(buf, columns, *separator).map_err(|e| match e {
                    Error::Polars(p) => Error::Polars(p.context(
                        format!("{}: reading rows near byte {}", path.display(), position).into(),
                    )),
                    other => other,
                })?;
                // Every record counted above is a row of the chunk, or nothing is written.
                if df.height() != count {
                    return Err(Error::MalformedCsv {
                        path: path.clone(),
                        line: first_line,
                        message: format!(
                            "{count} records in lines {first_line}-{line_no} were read as {} rows",
                            df.height()
                        ),
                    });
                }
                Ok(Some(df))
            }
        }
    }
}

/// Most lines one CSV record may span (inside a quoted field) before its opening quote is
/// taken for a stray one: reading stays bounded in memory.
const MAX_RECORD_LINES: u64 = 1000;

/// A CSV record being read line by line (RFC 4180): the fields so far and where the last
/// line left off. A quote opens a field only at its start; inside a quoted field `""` is a
/// quote; after the closing quote only a separator or the line's end may follow.
#[derive(Default)]
struct RecordScan {
    fields: usize,
    in_quotes: bool,
    after_quote: bool,
    /// Inside an unquoted field with something in it already.
    in_field: bool,
}

impl RecordScan {
    /// Reads one line of the record (its `\n` included); an error says what is wrong.
    fn line(&mut self, line: &[u8], separator: u8) -> std::result::Result<(), String> {
        if self.fields == 0 && !self.in_quotes {
            self.fields = 1;
        }
        let mut bytes = line.iter().copied().peekable();
        while let Some(b) = bytes.next() {
            if self.in_quotes {
                if b == b'"' {
                    if bytes.peek() == Some(&b'"') {
                        bytes.next();
                    } else {
                        self.in_quotes = false;
                        self.after_quote = true;
                    }
                }
                continue;
            }
            match b {
                b'\r' | b'\n' => {}
                _ if b == separator => {
                    self.fields += 1;
                    self.after_quote = false;
                    self.in_field = false;
                }
                _ if self.after_quote => {
                    return Err(format!(
                        "'{}' after the closing quote of field {} (a stray '\"'?)",
                        char::from(b).escape_default(),
                        self.fields
                    ));
                }
                b'"' if !self.in_field => self.in_quotes = true,
                b'"' => {
                    return Err(format!(
                        "a quote inside unquoted field {} (a stray '\"'?)",
                        self.fields
                    ));
                }
                _ => self.in_field = true,
            }
        }
        Ok(())
    }
}

/// Every column is read as text: the output keeps the input's values exactly as written, and
/// the typed columns are cast by the same conform step as training (which names a bad value).
fn parse_csv_chunk(buf: Vec<u8>, columns: &[String], separator: u8) -> Result<DataFrame> {
    let text: Schema = columns
        .iter()
        .map(|c| Field::new(c.as_str().into(), DataType::String))
        .collect();
    Ok(CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_schema(Some(Arc::new(text)))
        .with_parse_options(CsvParseOptions::default().with_separator(separator))
        .into_reader_with_file_handle(Cursor::new(&buf))
        .finish()?)
}

/// Writes scored chunks as CSV (the input's separator) or Parquet, by the output's extension.
enum ChunkWriter {
    Csv {
        writer: BufWriter<File>,
        separator: u8,
        header: bool,
    },
    Parquet(polars::io::parquet::write::BatchedWriter<BufWriter<File>>),
}

impl ChunkWriter {
    fn create(path: &Path, schema: &Schema, separator: u8) -> Result<Self> {
        let kind = DataSource::parse(&path.display().to_string())?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let w = BufWriter::with_capacity(1 << 20, file);
        Ok(match kind {
            DataSource::Parquet(_) => ChunkWriter::Parquet(ParquetWriter::new(w).batched(schema)?),
            _ => ChunkWriter::Csv {
                writer: w,
                separator: if path.extension().is_some_and(|e| e == "tsv") {
                    b'\t'
                } else {
                    separator
                },
                header: true,
            },
        })
    }

    fn write(&mut self, mut df: DataFrame) -> Result<()> {
        match self {
            ChunkWriter::Csv {
                writer,
                separator,
                header,
            } => {
                CsvWriter::new(&mut *writer)
                    .include_header(*header)
                    .with_separator(*separator)
                    .finish(&mut df)?;
                *header = false;
            }
            // A record batch needs every column cut into the same chunks.
            ChunkWriter::Parquet(w) => w.write_batch(df.align_chunks_par())?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            ChunkWriter::Csv { mut writer, .. } => {
                std::io::Write::flush(&mut writer).map_err(|e| Error::io("output", e))
            }
            ChunkWriter::Parquet(w) => {
                w.finish()?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("input.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read_all(path: &Path, rows: usize) -> Result<Vec<Vec<Option<String>>>> {
        read_records(path, rows, false).map(|r| r.rows)
    }

    fn line_of(e: Error) -> u64 {
        match e {
            Error::MalformedCsv { line, .. } => line,
            other => panic!("expected a malformed-CSV error, got {other}"),
        }
    }

    #[test]
    fn a_stray_quote_or_a_wrong_column_count_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut good = String::from("a,b,c\n");
        for i in 0..200 {
            good.push_str(&format!("{i},x{i},y\n"));
        }
        assert_eq!(read_all(&write(dir.path(), &good), 64).unwrap().len(), 200);
        // Line 52 is record 51: a quote in the middle of a field, one at the start never closed,
        // a character after a closing quote, and one field too few or too many.
        for (bad, line) in [
            ("50,x\"50,y", 52),
            ("50,\"x50,y", 52),
            ("50,\"x50\"z,y", 52),
            ("50,x50", 52),
            ("50,x50,y,extra", 52),
        ] {
            let text = good.replacen("50,x50,y", bad, 1);
            let e = read_all(&write(dir.path(), &text), 64).unwrap_err();
            let message = e.to_string();
            assert_eq!(line_of(e), line, "{bad}: {message}");
            // Kept: every record is a row, the bad one empty, and its error names the line.
            let mut reader = ChunkReader::open(&write(dir.path(), &text), true).unwrap();
            let (mut rows, mut malformed) = (0, Vec::new());
            while let Some(df) = reader.next(64).unwrap() {
                malformed.extend(
                    reader
                        .take_malformed()
                        .into_iter()
                        .map(|(i, m)| (i as usize + rows, m)),
                );
                rows += df.height();
            }
            assert_eq!(rows, 200, "{bad}");
            assert_eq!(malformed.len(), 1, "{bad}: {malformed:?}");
            assert_eq!(malformed[0].0, 50, "{bad}");
            assert!(
                malformed[0].1.starts_with("line 52:"),
                "{bad}: {}",
                malformed[0].1
            );
        }
    }

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

    #[test]
    fn chunked_and_whole_reads_give_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for case in 0..40 {
            let sep = if case % 2 == 0 { ',' } else { '\t' };
            let eol = if case % 3 == 0 { "\r\n" } else { "\n" };
            let mut text = String::new();
            if case % 5 == 0 {
                text.push('\u{feff}');
            }
            text.push_str(&["a", "b", "c"].join(&sep.to_string()));
            text.push_str(eol);
            let records = rng.random_range(1..60);
            let mut expected = Vec::new();
            for r in 0..records {
                if rng.random_bool(0.1) {
                    text.push_str(eol); // a blank line is no record
                }
                let mut cells = Vec::new();
                let mut values = Vec::new();
                for c in 0..3 {
                    let value = match rng.random_range(0..4) {
                        0 => format!("{r}{c}"),
                        1 => format!("q{sep}\"uoted\" {r}"),
                        2 => format!("two\nlines {r}"),
                        _ => format!("v{r}"),
                    };
                    let plain = !value.contains(['"', '\n', sep]);
                    cells.push(if plain {
                        value.clone()
                    } else {
                        format!("\"{}\"", value.replace('"', "\"\""))
                    });
                    values.push(Some(value));
                }
                text.push_str(&cells.join(&sep.to_string()));
                text.push_str(eol);
                expected.push(values);
            }
            let path = write(dir.path(), &text);
            let whole = read_all(&path, 1_000_000).unwrap();
            assert_eq!(whole.len(), records, "case {case}");
            for rows in [1, 2, 7] {
                assert_eq!(
                    read_all(&path, rows).unwrap(),
                    whole,
                    "case {case}, {rows} rows"
                );
            }
            // The text of each cell as written (polars keeps the \r of a quoted CRLF; compare
            // without line ends).
            let strip = |v: &Option<String>| v.as_ref().map(|s| s.replace('\r', ""));
            for (got, want) in whole.iter().zip(&expected) {
                let got: Vec<_> = got.iter().map(strip).collect();
                let want: Vec<_> = want.iter().map(strip).collect();
                assert_eq!(got, want, "case {case}");
            }
        }
    }
}
