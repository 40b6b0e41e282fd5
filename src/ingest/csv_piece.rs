//! A CSV file cut into pieces at record boundaries (RFC 4180: a quoted field may span lines;
//! a malformed record fails the read naming its line, or is kept as a row of empty fields),
//! and a cut piece parsed by a worker. The reader thread only cuts, line by line, without
//! parsing; [`CsvText::parse`] parses.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::ingest;

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

/// A CSV file being cut: where the reader is, and the lines to read again.
pub(crate) struct CsvInput {
    reader: BufReader<File>,
    header: Vec<u8>,
    pub len: u64,
    pub position: u64,
    line: Vec<u8>,
    /// Lines read so far, the header included (line numbers for errors).
    line_no: u64,
    /// Malformed records become rows of empty fields instead of an error.
    keep: bool,
    /// Lines to read again before the file's next ones (after a stray quote, with `keep`).
    pending: VecDeque<Vec<u8>>,
}

/// What a stray quote's record is told.
const NEVER_CLOSED: &str = "a quoted field opened here is never closed (a stray '\"'?)";

impl CsvInput {
    /// Opens `path` and reads its header line: the columns, the separator it uses, and the
    /// reader past the header.
    pub fn open(path: &Path, keep: bool) -> Result<(CsvParse, CsvInput)> {
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
        let parse = CsvParse {
            path: path.into(),
            columns,
            separator,
        };
        let input = CsvInput {
            reader,
            header,
            len,
            position,
            line: Vec::new(),
            line_no: 1,
            keep,
            pending: Default::default(),
        };
        Ok((parse, input))
    }

    /// The next piece: exactly `rows` records, or fewer at the end of the file.
    pub fn next(&mut self, how: &CsvParse, rows: usize) -> Result<Option<CsvText>> {
        let mut cut = CsvCut {
            how,
            keep: self.keep,
            buf: self.header.clone(),
            starts: Vec::new(),
            malformed: Vec::new(),
            scan: RecordScan::default(),
            record_line: self.line_no + 1,
            record_start: 0,
        };
        cut.record_start = cut.buf.len();
        let first_line = cut.record_line;
        while cut.starts.len() < rows {
            let at_end = self.read_line(&how.path)?;
            // A quoted field still open at the end of the file, or over
            // MAX_RECORD_LINES lines (memory stays bounded): a stray quote.
            if cut.scan.in_quotes
                && (at_end || self.line_no + 1 - cut.record_line >= MAX_RECORD_LINES)
            {
                self.stray_quote(&mut cut, at_end)?;
                continue;
            }
            if at_end {
                break;
            }
            self.line_no += 1;
            cut.add_line(&self.line, self.line_no)?;
        }
        if cut.starts.is_empty() {
            return Ok(None);
        }
        Ok(Some(CsvText {
            text: cut.buf,
            starts: cut.starts,
            malformed: cut.malformed,
            lines: (first_line, self.line_no),
            position: self.position,
        }))
    }

    /// Reads the next line into `line`: a line to read again first, else the file's next.
    /// True at the end of the file.
    #[inline]
    fn read_line(&mut self, path: &Path) -> Result<bool> {
        self.line.clear();
        Ok(match self.pending.pop_front() {
            Some(again) => {
                self.line.extend_from_slice(&again);
                false
            }
            None => {
                let got = self
                    .reader
                    .read_until(b'\n', &mut self.line)
                    .map_err(|e| Error::io(path, e))?;
                self.position += got as u64;
                got == 0
            }
        })
    }

    /// The record being read has a stray quote: it is malformed. Kept, its first line stands
    /// in for the record; the lines after it are read again as records of their own.
    fn stray_quote(&mut self, cut: &mut CsvCut<'_>, at_end: bool) -> Result<()> {
        if self.keep {
            if !at_end {
                self.pending.push_front(self.line.clone());
            }
            let rest: Vec<Vec<u8>> = cut.buf[cut.record_start..]
                .split_inclusive(|&b| b == b'\n')
                .skip(1)
                .map(<[u8]>::to_vec)
                .collect();
            for again in rest.into_iter().rev() {
                self.pending.push_front(again);
            }
        }
        cut.malformed_record(cut.record_line, NEVER_CLOSED.into())?;
        self.line_no = cut.record_line;
        cut.scan = RecordScan::default();
        cut.end_record();
        Ok(())
    }
}

/// A CSV piece being cut: its text so far (the header line, then each record ending in
/// `\n`), where each record begins, the malformed ones, and the record being read.
struct CsvCut<'p> {
    how: &'p CsvParse,
    keep: bool,
    buf: Vec<u8>,
    starts: Vec<usize>,
    malformed: Vec<(u32, String)>,
    scan: RecordScan,
    /// The file line the record being read begins on, and where it begins in `buf`.
    record_line: u64,
    record_start: usize,
}

impl CsvCut<'_> {
    /// Adds the file's line `line_no`: a new record unless a quoted field is open (a blank
    /// line between records is none); a record that ends with it is counted.
    #[inline]
    fn add_line(&mut self, line: &[u8], line_no: u64) -> Result<()> {
        let separator = self.how.separator;
        let starts_record = !self.scan.in_quotes;
        if starts_record {
            self.record_line = line_no;
            // A blank line (a line of separators is a record of empty fields).
            if line
                .iter()
                .all(|&b| matches!(b, b'\r' | b'\n' | b' ') && b != separator)
            {
                return Ok(());
            }
            self.scan = RecordScan::default();
            self.record_start = self.buf.len();
        }
        if let Err(message) = self.scan.line(line, separator) {
            // Kept, the record is taken to end with this line.
            self.malformed_record(line_no, message)?;
            self.scan = RecordScan::default();
            self.end_record();
            return Ok(());
        }
        self.buf.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            self.buf.push(b'\n');
        }
        if !self.scan.in_quotes {
            let columns = self.how.columns.len();
            if self.scan.fields != columns {
                let message = format!(
                    "{} fields where the header has {}",
                    self.scan.fields, columns
                );
                self.malformed_record(self.record_line, message)?;
            }
            self.end_record();
        }
        Ok(())
    }

    /// A malformed record fails the read naming its line; with `keep` it is replaced in the
    /// piece (from where it begins) by a record of empty fields, and its row's error says
    /// what was wrong.
    fn malformed_record(&mut self, line: u64, message: String) -> Result<()> {
        if !self.keep {
            return Err(Error::MalformedCsv {
                path: self.how.path.clone(),
                line,
                message,
            });
        }
        self.buf.truncate(self.record_start);
        self.buf.extend(std::iter::repeat_n(
            self.how.separator,
            self.how.columns.len().saturating_sub(1),
        ));
        self.buf.push(b'\n');
        let row = self.starts.len() as u32;
        self.malformed
            .push((row, format!("line {line}: {message}")));
        Ok(())
    }

    /// The record being read is complete: it is a row of the piece.
    #[inline]
    fn end_record(&mut self) {
        self.starts.push(self.record_start);
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
