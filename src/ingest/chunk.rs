//! Reading an input file piece by piece: CSV cut at record boundaries (a quoted field may
//! span lines; a malformed record fails the read naming its line, or is kept as a row of empty
//! fields), Parquet by row slices, Arrow IPC files by record batches. The reader thread only
//! cuts; the workers parse ([`CsvText::parse`], [`Body::frame`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::ingest::{self, DataSource};

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

/// Every record of `path`, read `chunk_rows` at a time exactly as [`super::run`] reads it (so the
/// result is the same for any `chunk_rows`; the property and fuzz tests hold it to that).
pub fn read_records(path: &Path, chunk_rows: usize, keep_malformed: bool) -> Result<Records> {
    let mut reader = ChunkReader::open(path, keep_malformed)?;
    let mut out = Records {
        columns: reader.columns().to_vec(),
        rows: Vec::new(),
        malformed: Vec::new(),
    };
    while let Some(piece) = reader.next(chunk_rows.max(1))? {
        let offset = out.rows.len();
        out.malformed.extend(
            piece
                .malformed()
                .iter()
                .map(|(row, why)| (offset + *row as usize, why.clone())),
        );
        let df = piece.frame(&reader.parse, None)?;
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

/// A piece of the input as the reader cut it, not yet parsed.
pub(crate) enum Body {
    Csv(CsvText),
    /// Rows `offset..offset + len` of a Parquet file, decoded by the worker.
    ParquetSlice {
        path: PathBuf,
        offset: usize,
        len: usize,
    },
    /// Record batches of an Arrow IPC file.
    Frame(DataFrame),
}

/// What a worker needs to parse a CSV piece: the file's name, columns and separator.
#[derive(Debug, Clone)]
pub(crate) struct CsvParse {
    pub path: PathBuf,
    pub columns: Vec<String>,
    pub separator: u8,
}

/// CSV records cut from the file: the header line, then each record ending in `\n`.
pub(crate) struct CsvText {
    pub text: Vec<u8>,
    /// Where each record begins in `text`.
    pub starts: Vec<usize>,
    /// Malformed records (kept as rows of empty fields): row in the piece, and what was wrong.
    pub malformed: Vec<(u32, String)>,
    /// The file lines the records came from, and the byte offset after them (for messages).
    pub lines: (u64, u64),
    pub position: u64,
}

impl CsvText {
    /// Record `i` as written, without its line end.
    pub fn record(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).map_or(self.text.len(), |&e| e);
        let r = &self.text[self.starts[i]..end];
        let r = r.strip_suffix(b"\n").unwrap_or(r);
        r.strip_suffix(b"\r").unwrap_or(r)
    }

    /// Parses the records: every column as text, or with `typed` the named columns by their
    /// types (the others as text) and only `typed`'s columns kept. A typed parse that fails
    /// falls back to text, so the checks after it (which name the row at fault) see the value.
    pub fn parse(&self, how: &CsvParse, typed: Option<&Schema>) -> Result<DataFrame> {
        let count = self.starts.len();
        let df = match typed.and_then(|t| parse_csv_typed(&self.text, how, t).ok()) {
            Some(df) => df,
            None => {
                parse_csv_chunk(&self.text, &how.columns, how.separator).map_err(|e| match e {
                    Error::Polars(p) => Error::Polars(
                        p.context(
                            format!(
                                "{}: reading rows near byte {}",
                                how.path.display(),
                                self.position
                            )
                            .into(),
                        ),
                    ),
                    other => other,
                })?
            }
        };
        // Every record counted by the reader is a row of the piece, or nothing is written.
        if df.height() != count {
            let (first, last) = self.lines;
            return Err(Error::MalformedCsv {
                path: how.path.clone(),
                line: first,
                message: format!(
                    "{count} records in lines {first}-{last} were read as {} rows",
                    df.height()
                ),
            });
        }
        Ok(df)
    }
}

impl Body {
    pub fn rows(&self) -> usize {
        match self {
            Body::Csv(t) => t.starts.len(),
            Body::ParquetSlice { len, .. } => *len,
            Body::Frame(df) => df.height(),
        }
    }

    pub fn malformed(&self) -> &[(u32, String)] {
        match self {
            Body::Csv(t) => &t.malformed,
            _ => &[],
        }
    }

    /// The piece as a frame (a CSV piece parsed as [`CsvText::parse`] does).
    pub fn frame(&self, how: &CsvParse, typed: Option<&Schema>) -> Result<DataFrame> {
        match self {
            Body::Csv(t) => t.parse(how, typed),
            Body::ParquetSlice { path, offset, len } => {
                let file = File::open(path).map_err(|e| Error::io(path, e))?;
                Ok(ParquetReader::new(file)
                    .with_slice(Some((*offset, *len)))
                    .finish()?)
            }
            Body::Frame(df) => Ok(df.clone()),
        }
    }
}

/// Reads an input file piece by piece.
pub(crate) struct ChunkReader {
    pub parse: CsvParse,
    input: Input,
}

enum Input {
    Csv {
        reader: BufReader<File>,
        header: Vec<u8>,
        len: u64,
        position: u64,
        line: Vec<u8>,
        /// Lines read so far, the header included (line numbers for errors).
        line_no: u64,
        /// Malformed records become rows of empty fields instead of an error.
        keep: bool,
        /// Lines to read again before the file's next ones (after a stray quote, with `keep`).
        pending: std::collections::VecDeque<Vec<u8>>,
    },
    Parquet {
        path: PathBuf,
        rows: usize,
        offset: usize,
    },
    Arrow {
        reader: Box<polars_arrow::io::ipc::read::FileReader<BufReader<File>>>,
        batches: usize,
        done: usize,
        /// The rows of a record batch past the last piece's end.
        carry: Option<DataFrame>,
    },
}

impl ChunkReader {
    pub fn open(path: &Path, keep: bool) -> Result<Self> {
        let parse = |columns: Vec<String>, separator: u8| CsvParse {
            path: path.into(),
            columns,
            separator,
        };
        match DataSource::parse(&path.display().to_string())? {
            DataSource::Parquet(_) => {
                let file = ingest::open_non_empty(path)?;
                let mut r = ParquetReader::new(file);
                let schema = r.schema()?;
                let columns = schema.iter_names().map(|s| s.to_string()).collect();
                let rows = r.num_rows()?;
                Ok(ChunkReader {
                    parse: parse(columns, b','),
                    input: Input::Parquet {
                        path: path.into(),
                        rows,
                        offset: 0,
                    },
                })
            }
            DataSource::Arrow(_) => {
                let mut file = BufReader::new(ingest::open_non_empty(path)?);
                let metadata = ingest::arrow_metadata(path, &mut file)?;
                let columns = metadata
                    .schema
                    .iter_names()
                    .map(|s| s.to_string())
                    .collect();
                let rows = metadata.blocks.len();
                let reader =
                    polars_arrow::io::ipc::read::FileReader::new(file, metadata, None, None);
                Ok(ChunkReader {
                    parse: parse(columns, b','),
                    input: Input::Arrow {
                        reader: Box::new(reader),
                        batches: rows,
                        done: 0,
                        carry: None,
                    },
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
                Ok(ChunkReader {
                    parse: parse(columns, separator),
                    input: Input::Csv {
                        reader,
                        header,
                        len,
                        position,
                        line: Vec::new(),
                        line_no: 1,
                        keep,
                        pending: Default::default(),
                    },
                })
            }
            DataSource::Synthetic { .. }
            | DataSource::Mongo(_)
            | DataSource::Dataset { .. }
            | DataSource::S3 { .. } => Err(Error::UnsupportedSource(path.display().to_string())),
        }
    }

    pub fn columns(&self) -> &[String] {
        &self.parse.columns
    }

    pub fn is_csv(&self) -> bool {
        matches!(self.input, Input::Csv { .. })
    }

    /// Progress units: bytes for CSV, rows for Parquet, record batches for Arrow.
    pub fn len(&self) -> u64 {
        match &self.input {
            Input::Csv { len, .. } => *len,
            Input::Parquet { rows, .. } => *rows as u64,
            Input::Arrow { batches, .. } => *batches as u64,
        }
    }

    pub fn position(&self) -> u64 {
        match &self.input {
            Input::Csv { position, .. } => *position,
            Input::Parquet { offset, .. } => *offset as u64,
            Input::Arrow { done, .. } => *done as u64,
        }
    }

    /// The next piece of about `rows` rows (a CSV piece exactly `rows` records, or fewer at
    /// the end; an Arrow piece whole record batches up to `rows`, one batch at least).
    pub fn next(&mut self, rows: usize) -> Result<Option<Body>> {
        let ChunkReader { parse, input } = self;
        let CsvParse {
            path,
            columns,
            separator,
        } = parse;
        match input {
            Input::Parquet {
                path,
                rows: total,
                offset,
            } => {
                if *offset >= *total {
                    return Ok(None);
                }
                let len = rows.min(*total - *offset);
                let body = Body::ParquetSlice {
                    path: path.clone(),
                    offset: *offset,
                    len,
                };
                *offset += len;
                Ok(Some(body))
            }
            Input::Arrow {
                reader,
                done,
                carry,
                ..
            } => {
                let mut frames: Vec<DataFrame> = carry.take().into_iter().collect();
                let mut have: usize = frames.iter().map(DataFrame::height).sum();
                while have < rows {
                    let Some(batch) = reader.next() else { break };
                    let df = DataFrame::from(batch.map_err(|e| {
                        Error::Polars(
                            e.context(format!("{}: a record batch", path.display()).into()),
                        )
                    })?);
                    *done += 1;
                    have += df.height();
                    frames.push(df);
                }
                let mut frames = frames.into_iter();
                let Some(mut df) = frames.next() else {
                    return Ok(None);
                };
                for f in frames {
                    df.vstack_mut_owned(f)?;
                }
                // What goes past `rows` (a batch cut in two) starts the next piece.
                if df.height() > rows {
                    let (head, tail) = df.split_at(rows as i64);
                    *carry = Some(tail);
                    df = head;
                }
                if df.height() == 0 {
                    return Ok(None);
                }
                Ok(Some(Body::Frame(df)))
            }
            Input::Csv {
                reader,
                header,
                position,
                line,
                line_no,
                keep,
                pending,
                ..
            } => {
                let mut buf = header.clone();
                let mut count = 0;
                let mut scan = RecordScan::default();
                let mut record_line = *line_no + 1;
                let mut record_start = buf.len();
                let first_line = record_line;
                let mut malformed = Vec::new();
                let mut starts: Vec<usize> = Vec::new();
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
                        starts.push(record_start);
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
                        starts.push(record_start);
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
                        starts.push(record_start);
                        count += 1;
                    }
                }
                if count == 0 {
                    return Ok(None);
                }
                Ok(Some(Body::Csv(CsvText {
                    text: buf,
                    starts,
                    malformed,
                    lines: (first_line, *line_no),
                    position: *position,
                })))
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
        // The common line: no quote in it and none open; its fields are its separators + 1.
        if !self.in_quotes && !self.after_quote && memchr::memchr(b'"', line).is_none() {
            self.fields += line.iter().filter(|&&b| b == separator).count();
            self.in_field = false;
            return Ok(());
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
fn parse_csv_chunk(buf: &[u8], columns: &[String], separator: u8) -> Result<DataFrame> {
    let text: Schema = columns
        .iter()
        .map(|c| Field::new(c.as_str().into(), DataType::String))
        .collect();
    Ok(CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_schema(Some(Arc::new(text)))
        .with_parse_options(CsvParseOptions::default().with_separator(separator))
        .into_reader_with_file_handle(Cursor::new(buf))
        .finish()?)
}

/// The columns of `typed` parsed by their types, the file's other columns skipped.
fn parse_csv_typed(buf: &[u8], how: &CsvParse, typed: &Schema) -> Result<DataFrame> {
    let schema: Schema = how
        .columns
        .iter()
        .map(|c| {
            let dtype = typed.get(c.as_str()).cloned().unwrap_or(DataType::String);
            Field::new(c.as_str().into(), dtype)
        })
        .collect();
    let keep: Vec<PlSmallStr> = typed.iter_names().cloned().collect();
    Ok(CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_schema(Some(Arc::new(schema)))
        .with_columns(Some(keep.into()))
        .with_parse_options(CsvParseOptions::default().with_separator(how.separator))
        .into_reader_with_file_handle(Cursor::new(buf))
        .finish()?)
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
            while let Some(piece) = reader.next(64).unwrap() {
                malformed.extend(
                    piece
                        .malformed()
                        .iter()
                        .map(|(i, m)| (*i as usize + rows, m.clone())),
                );
                rows += piece.frame(&reader.parse, None).unwrap().height();
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
