//! Ingest: raw customer records from a data source into a polars `DataFrame` holding the 29
//! schema columns, typed (numbers as Float64, categories and dates as strings).
//!
//! Sources: a CSV file (tab, comma or semicolon separated, detected from the header line), a
//! Parquet file, a MongoDB collection ([`mongo`]: `mongodb://HOST:PORT/DB?collection=NAME`),
//! or the seeded synthetic generator (`synthetic:rows=N,seed=S`). A bad file is
//! an error that names the column and, where one value is at fault, the row.

pub mod mongo;
pub mod s3;
pub mod stream;
pub mod synthetic;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;

use crate::answer::RowError;
use crate::answer::table::BadText;
use crate::error::{Error, Result};
use crate::schema::{RawSchema, RawType};

/// Where raw records come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    Csv(PathBuf),
    Parquet(PathBuf),
    /// An Arrow IPC file (`.arrow`, `.ipc`, `.feather` v2).
    Arrow(PathBuf),
    Mongo(mongo::MongoSource),
    /// Parquet or CSV files read as one data set, in name order: a directory's, or those a
    /// glob matches (`data/customers/part-*.parquet`).
    Dataset {
        spec: String,
        files: Vec<PathBuf>,
    },
    /// Parquet or CSV objects in S3 (`s3://bucket/prefix/` or `s3://bucket/key.parquet`),
    /// reached with the model store's settings (`models.s3`: endpoint, region, timeouts).
    S3 {
        uri: String,
        settings: Box<crate::config::S3Settings>,
    },
    Synthetic {
        rows: usize,
        seed: u64,
    },
}

impl DataSource {
    /// Parses a `--data` argument: a file path (by extension) or `synthetic:rows=N,seed=S`.
    pub fn parse(spec: &str) -> Result<Self> {
        if spec.starts_with("mongodb://") || spec.starts_with("mongodb+srv://") {
            return Ok(DataSource::Mongo(mongo::MongoSource::parse(spec)?));
        }
        if spec.starts_with("s3://") {
            crate::config::parse_s3_uri(spec)?;
            let settings = crate::config::Settings::load_with_env(None, Vec::new())?;
            return Ok(DataSource::S3 {
                uri: spec.to_string(),
                settings: Box::new(settings.models.s3),
            });
        }
        if let Some(params) = spec.strip_prefix("synthetic:") {
            let (mut rows, mut seed) = (2240usize, 42u64);
            for part in params.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| Error::UnsupportedSource(spec.into()))?;
                let bad = || {
                    Error::config(
                        format!("data.source ({k})"),
                        format!("'{v}' is not a whole number"),
                    )
                };
                match k.trim() {
                    "rows" => rows = v.trim().parse().map_err(|_| bad())?,
                    "seed" => seed = v.trim().parse().map_err(|_| bad())?,
                    _ => return Err(Error::UnsupportedSource(spec.into())),
                }
            }
            return Ok(DataSource::Synthetic { rows, seed });
        }
        let path = PathBuf::from(spec);
        if path.is_dir() || spec.contains(['*', '?']) {
            return Ok(DataSource::Dataset {
                spec: spec.to_string(),
                files: stream::dataset_files(spec)?,
            });
        }
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv" | "tsv" | "txt") => Ok(DataSource::Csv(path)),
            Some("parquet" | "pq") => Ok(DataSource::Parquet(path)),
            Some("arrow" | "ipc" | "feather") => Ok(DataSource::Arrow(path)),
            _ => Err(Error::UnsupportedSource(spec.into())),
        }
    }

    /// A short human name, used in messages and reports.
    pub fn name(&self) -> String {
        match self {
            DataSource::Csv(p) | DataSource::Parquet(p) | DataSource::Arrow(p) => {
                p.display().to_string()
            }
            DataSource::Mongo(m) => m.name(),
            DataSource::Dataset { spec, .. } => spec.clone(),
            DataSource::S3 { uri, .. } => uri.clone(),
            DataSource::Synthetic { rows, seed } => format!("synthetic:rows={rows},seed={seed}"),
        }
    }

    /// The source with `s3` as its object store settings (an `s3://` source; others as they
    /// are): the run's `models.s3`, rather than the built-in ones it was parsed with.
    pub fn with_s3_settings(mut self, s3: &crate::config::S3Settings) -> Self {
        if let DataSource::S3 { settings, .. } = &mut self {
            **settings = s3.clone();
        }
        self
    }

    /// Reads every record of the source.
    pub fn load(&self) -> Result<DataFrame> {
        self.load_reported(&mut |_, _| Ok(())).map(|(df, _)| df)
    }

    /// Reads every record, with the per-field report of a document source (empty for files,
    /// whose bad values are errors naming row and column). `progress(done, total)` is called
    /// as a streamed source is read; its error stops the read.
    pub fn load_reported(
        &self,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<(DataFrame, mongo::SourceReport)> {
        let df = match self {
            DataSource::Csv(path) => read_csv(path)?,
            DataSource::Parquet(path) => read_parquet(path)?,
            DataSource::Arrow(path) => read_arrow(path)?,
            DataSource::Mongo(m) => return mongo::load(m, progress),
            DataSource::Dataset { .. } | DataSource::S3 { .. } => {
                let mut stream = stream::RecordStream::open(self, 1 << 18)?;
                let mut all: Option<DataFrame> = None;
                while let Some(batch) = stream.next_batch()? {
                    let (done, total) = stream.progress();
                    progress(done, total)?;
                    match &mut all {
                        None => all = Some(batch.records),
                        Some(df) => {
                            df.vstack_mut_owned(batch.records)?;
                        }
                    }
                }
                let mut df = all.ok_or_else(|| Error::NoRows {
                    source_name: self.name(),
                })?;
                df.rechunk_mut();
                df
            }
            DataSource::Synthetic { rows, seed } => synthetic::generate(*rows, *seed),
        };
        Ok((df, Default::default()))
    }
}

/// The polars type a raw column is read as.
fn polars_type(kind: RawType) -> DataType {
    match kind {
        // Numbers are read as Float64 so "58138" and "58138.0" both parse; whole-number checks
        // belong to validation, not to the reader.
        RawType::Integer | RawType::Number => DataType::Float64,
        RawType::Category | RawType::Date => DataType::String,
    }
}

/// The schema columns with the types they are read as.
pub fn read_schema() -> Schema {
    RawSchema::get()
        .columns
        .iter()
        .map(|c| Field::new(c.name.as_str().into(), polars_type(c.kind)))
        .collect()
}

/// Detects the separator from the header line: whichever of tab, comma, semicolon is most common.
pub fn sniff_separator(header: &str) -> u8 {
    [b'\t', b',', b';']
        .into_iter()
        .max_by_key(|&sep| header.bytes().filter(|&b| b == sep).count())
        .unwrap_or(b',')
}

/// Opens a data file, refusing an empty one with an error that says so.
pub fn open_non_empty(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().map_err(|e| Error::io(path, e))?.len() == 0 {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

fn header_line(path: &Path) -> Result<String> {
    let file = open_non_empty(path)?;
    let mut line = String::new();
    BufReader::new(file)
        .read_line(&mut line)
        .map_err(|e| Error::io(path, e))?;
    let line = line
        .trim_end_matches(['\r', '\n'])
        .trim_start_matches('\u{feff}')
        .to_string();
    if line.trim().is_empty() {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(line)
}

fn check_columns<'a>(
    source_name: &str,
    found: impl Iterator<Item = &'a str> + Clone,
) -> Result<()> {
    for column in RawSchema::get().names() {
        if !found.clone().any(|f| f == column) {
            let mut listed: Vec<&str> = found.clone().collect();
            listed.truncate(40);
            return Err(Error::MissingColumn {
                source_name: source_name.to_string(),
                column: column.to_string(),
                found: listed.join(", "),
            });
        }
    }
    Ok(())
}

/// Reads a CSV file of raw records. Only the schema's columns are read; extra columns are ignored.
pub fn read_csv(path: &Path) -> Result<DataFrame> {
    let source_name = path.display().to_string();
    let header = header_line(path)?;
    let separator = sniff_separator(&header);
    let names: Vec<String> = header
        .split(separator as char)
        .map(|h| h.trim().trim_matches('"').to_string())
        .collect();
    check_columns(&source_name, names.iter().map(String::as_str))?;

    let columns: Arc<[PlSmallStr]> = RawSchema::get().names().map(PlSmallStr::from).collect();
    let read = CsvReadOptions::default()
        .with_has_header(true)
        .with_columns(Some(columns))
        .with_schema_overwrite(Some(Arc::new(read_schema())))
        .with_parse_options(CsvParseOptions::default().with_separator(separator))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish());
    let df = match read {
        Ok(df) => df,
        // The fast typed read failed: find the value at fault so the message names column and row.
        Err(err) => return Err(diagnose_csv(path, separator).unwrap_or(Error::Polars(err))),
    };
    if df.height() == 0 {
        return Err(Error::NoRows { source_name });
    }
    Ok(df)
}

/// Re-reads the file with every column as text and finds the first numeric value that does not
/// parse. Runs only after a typed read has failed, so its cost never lands on a good file.
fn diagnose_csv(path: &Path, separator: u8) -> Option<Error> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_parse_options(CsvParseOptions::default().with_separator(separator))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .ok()?;
    first_bad_number(&path.display().to_string(), &df)
}

fn first_bad_number(source_name: &str, df: &DataFrame) -> Option<Error> {
    RawSchema::get()
        .columns
        .iter()
        .filter(|col| matches!(col.kind, RawType::Integer | RawType::Number))
        .find_map(|col| {
            let c = df.column(&col.name).ok()?;
            let whole = col.kind == RawType::Integer;
            text_numbers(source_name, c, whole).err()
        })
}

/// A text column read as numbers by the one rule of every text source: a blank value (empty or
/// whitespace, quoted or not) is missing, any other is trimmed and must be a number in Rust's
/// `f64` syntax, and a whole one where `whole`. The first value that breaks it is an error
/// naming column, row (1-based) and value.
fn text_numbers(source_name: &str, c: &Column, whole: bool) -> Result<Float64Chunked> {
    let values = c.str()?;
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let t = v.map_or("", str::trim);
        if t.is_empty() {
            out.push(None);
            continue;
        }
        match t.parse::<f64>() {
            Ok(x) if !whole || (x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15) => {
                out.push(Some(x))
            }
            _ => {
                return Err(Error::BadValue {
                    source_name: source_name.to_string(),
                    column: c.name().to_string(),
                    row: i + 1,
                    value: v.unwrap_or_default().to_string(),
                    expected: if whole { "whole number" } else { "number" },
                });
            }
        }
    }
    Ok(Float64Chunked::from_iter_options(
        c.name().clone(),
        out.into_iter(),
    ))
}

/// A text column cast to the numeric type `want`: polars' cast, and where that refuses a value
/// (a blank, spaces around a number, a fraction in a whole-number column, a word), the rule of
/// [`text_numbers`], which either reads it or names the value at fault.
pub fn cast_text_numbers(source_name: &str, c: &Column, want: &DataType) -> Result<Column> {
    if let Ok(cast) = c.strict_cast(want) {
        return Ok(cast);
    }
    let numbers = text_numbers(source_name, c, want.is_integer())?;
    Ok(numbers.into_series().cast(want)?.into_column())
}

/// The footer of an Arrow IPC file: its schema and record batches (an error names the file).
pub fn arrow_metadata(
    path: &Path,
    file: &mut (impl std::io::Read + std::io::Seek),
) -> Result<polars_arrow::io::ipc::read::FileMetadata> {
    polars_arrow::io::ipc::read::read_file_metadata(file).map_err(|e| {
        Error::Polars(e.context(format!("{}: not an Arrow IPC file", path.display()).into()))
    })
}

/// Reads an Arrow IPC file of raw records, casting its columns to the schema's types.
pub fn read_arrow(path: &Path) -> Result<DataFrame> {
    let source_name = path.display().to_string();
    let mut file = std::io::BufReader::new(open_non_empty(path)?);
    let metadata = arrow_metadata(path, &mut file)?;
    let mut frames =
        polars_arrow::io::ipc::read::FileReader::new(file, metadata, None, None).map(|b| {
            b.map(DataFrame::from)
                .map_err(|e| Error::Polars(e.context(source_name.clone().into())))
        });
    let mut df = match frames.next() {
        Some(first) => first?,
        None => return Err(Error::NoRows { source_name }),
    };
    for f in frames {
        df.vstack_mut_owned(f?)?;
    }
    records_of(source_name, df)
}

/// A file's frame as raw records: the schema's columns, cast to their types, at least one row.
fn records_of(source_name: String, df: DataFrame) -> Result<DataFrame> {
    check_columns(
        &source_name,
        df.get_column_names().into_iter().map(|s| s.as_str()),
    )?;
    let df = conform(&source_name, df)?;
    if df.height() == 0 {
        return Err(Error::NoRows { source_name });
    }
    Ok(df)
}

/// Reads a Parquet file of raw records, casting its columns to the schema's types.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let source_name = path.display().to_string();
    let file = open_non_empty(path)?;
    let df = ParquetReader::new(file).finish()?;
    records_of(source_name, df)
}

/// Selects the schema columns from a frame of any provenance and casts them to the read types.
/// A column that cannot be cast is an error naming the column (and the row, for text numbers).
pub fn conform(source_name: &str, df: DataFrame) -> Result<DataFrame> {
    conform_rows(source_name, df, BadText::Fail).map(|(df, _)| df)
}

/// [`conform`], where with [`BadText::RowError`] a text cell of a number column that is not a
/// number is left missing and returned as its row's error (0-based row, naming the row's first
/// such column), in row order, instead of failing the whole frame.
pub fn conform_rows(
    source_name: &str,
    df: DataFrame,
    bad_text: BadText,
) -> Result<(DataFrame, Vec<(u32, RowError)>)> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(29);
    for col in &RawSchema::get().columns {
        let c = df.column(&col.name)?;
        let want = polars_type(col.kind);
        let cast = match (col.kind, c.dtype()) {
            (_, dt) if *dt == want => c.clone(),
            (RawType::Integer | RawType::Number, dt)
                if dt.is_primitive_numeric() || dt.is_bool() =>
            {
                c.cast(&want)?
            }
            (RawType::Integer | RawType::Number, DataType::String) => match bad_text {
                BadText::Fail => cast_text_numbers(source_name, c, &want)?,
                BadText::RowError => text_numbers_or_row_errors(c, &mut errors)?,
            },
            // A typed date (Parquet) is written back in the schema's text format, so one
            // parser (and one set of error reports) serves every source.
            (RawType::Date, DataType::Date) => {
                let format = col
                    .format
                    .as_deref()
                    .unwrap_or(crate::dates::DEFAULT_FORMAT);
                c.as_materialized_series()
                    .date()?
                    .to_string(format)?
                    .with_name(c.name().clone())
                    .into_column()
            }
            (RawType::Category | RawType::Date, dt) if dt.is_primitive_numeric() => {
                c.cast(&DataType::String)?
            }
            (_, dt) => {
                return Err(Error::BadColumnType {
                    source_name: source_name.into(),
                    column: col.name.clone(),
                    found: dt.to_string(),
                    expected: if want == DataType::String {
                        "text"
                    } else {
                        "number"
                    },
                });
            }
        };
        out.push(cast);
    }
    // One error per row: its first unreadable column (the sort is stable).
    errors.sort_by_key(|(i, _)| *i);
    errors.dedup_by_key(|(i, _)| *i);
    Ok((DataFrame::new_infer_height(out)?, errors))
}

/// A text column as numbers by [`crate::answer::text_number`]'s rule; a cell that is not one
/// is missing, and its row's error.
fn text_numbers_or_row_errors(c: &Column, errors: &mut Vec<(u32, RowError)>) -> Result<Column> {
    let values = c.str()?;
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        match crate::answer::text_number(v) {
            Some(x) if x.is_nan() && v.is_none_or(|t| t.trim().is_empty()) => out.push(None),
            Some(x) => out.push(Some(x)),
            None => {
                out.push(None);
                errors.push((
                    i as u32,
                    RowError::not_a_number(c.name(), v.unwrap_or_default().trim()),
                ));
            }
        }
    }
    Ok(
        Float64Chunked::from_iter_options(c.name().clone(), out.into_iter())
            .into_series()
            .into_column(),
    )
}

/// The separator a text table written to `path` gets, by its extension: `.csv` comma,
/// `.tsv` tab, and anything else (`.txt`) `otherwise`.
pub fn output_separator(path: &Path, otherwise: u8) -> u8 {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => b',',
        Some("tsv") => b'\t',
        _ => otherwise,
    }
}

/// Writes a table to Parquet, or to text separated as [`output_separator`] says (tab for a
/// name that says neither, as the original data), by extension.
pub fn write_records(df: &mut DataFrame, path: &Path) -> Result<()> {
    write_record_batches(std::iter::once(df.clone()), path).map(|_| ())
}

/// Writes frames of one schema one after another into one file, as [`write_records`] would
/// write them joined (a Parquet row group, or CSV lines under one header, per frame), holding
/// one frame at a time. The file is written under a `.partial` name and renamed when
/// complete, so a failed run leaves no half-written file under `path`. Returns the rows
/// written.
pub fn write_record_batches(
    batches: impl IntoIterator<Item = DataFrame>,
    path: &Path,
) -> Result<usize> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = write_batches_to(batches, path, &partial);
    match written {
        Ok(rows) => {
            std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))?;
            Ok(rows)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn write_batches_to(
    batches: impl IntoIterator<Item = DataFrame>,
    path: &Path,
    partial: &Path,
) -> Result<usize> {
    let file = File::create(partial).map_err(|e| Error::io(partial, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let parquet = matches!(
        DataSource::parse(&path.display().to_string())?,
        DataSource::Parquet(_)
    );
    let mut rows = 0usize;
    let mut batches = batches
        .into_iter()
        .inspect(|df| rows += df.height())
        .peekable();
    if parquet {
        let Some(first) = batches.peek() else {
            return Ok(0);
        };
        let mut w = ParquetWriter::new(&mut out).batched(first.schema())?;
        for df in batches {
            w.write_batch(&df)?;
        }
        w.finish()?;
    } else {
        let separator = output_separator(path, b'\t');
        for (i, mut df) in batches.enumerate() {
            CsvWriter::new(&mut out)
                .include_header(i == 0)
                .with_separator(separator)
                .finish(&mut df)?;
        }
    }
    use std::io::Write;
    out.flush().map_err(|e| Error::io(partial, e))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_detected_from_the_header() {
        assert_eq!(sniff_separator("ID\tYear_Birth\tEducation"), b'\t');
        assert_eq!(sniff_separator("ID,Year_Birth,Education"), b',');
        assert_eq!(sniff_separator("ID;Year_Birth;Education"), b';');
    }

    #[test]
    fn sources_parse_by_extension_and_scheme() {
        assert_eq!(
            DataSource::parse("a/b.CSV").unwrap(),
            DataSource::Csv("a/b.CSV".into())
        );
        assert_eq!(
            DataSource::parse("x.parquet").unwrap(),
            DataSource::Parquet("x.parquet".into())
        );
        assert_eq!(
            DataSource::parse("synthetic:rows=10,seed=7").unwrap(),
            DataSource::Synthetic { rows: 10, seed: 7 }
        );
        assert!(DataSource::parse("data.xlsx").is_err());
        assert!(
            DataSource::parse("synthetic:rows=ten")
                .unwrap_err()
                .to_string()
                .contains("rows")
        );
    }
}
