//! Reading and writing record files: CSV (its separator sniffed from the header), Parquet and
//! Arrow IPC, conformed to the raw schema's columns and types; a bad value is an error naming
//! its column and row.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;

use super::DataSource;
use crate::answer::RowError;
use crate::answer::table::BadText;
use crate::error::{Error, Result};
use crate::schema::{RawSchema, RawType};

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
