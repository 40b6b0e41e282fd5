//! Reading an input file piece by piece: CSV cut at record boundaries (a quoted field may
//! span lines; a malformed record fails the read naming its line, or is kept as a row of empty
//! fields), Parquet by row slices, Arrow IPC files by record batches. The reader thread only
//! cuts; the workers parse ([`CsvText::parse`], [`Body::frame`]).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::csv_piece::CsvInput;
pub(crate) use super::csv_piece::{CsvParse, CsvText};
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
    Csv(CsvInput),
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
                let (parse, input) = CsvInput::open(path, keep)?;
                Ok(ChunkReader {
                    parse,
                    input: Input::Csv(input),
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
        matches!(self.input, Input::Csv(_))
    }

    /// Progress units: bytes for CSV, rows for Parquet, record batches for Arrow.
    pub fn len(&self) -> u64 {
        match &self.input {
            Input::Csv(csv) => csv.len,
            Input::Parquet { rows, .. } => *rows as u64,
            Input::Arrow { batches, .. } => *batches as u64,
        }
    }

    pub fn position(&self) -> u64 {
        match &self.input {
            Input::Csv(csv) => csv.position,
            Input::Parquet { offset, .. } => *offset as u64,
            Input::Arrow { done, .. } => *done as u64,
        }
    }

    /// The next piece of about `rows` rows (a CSV piece exactly `rows` records, or fewer at
    /// the end; an Arrow piece whole record batches up to `rows`, one batch at least).
    pub fn next(&mut self, rows: usize) -> Result<Option<Body>> {
        let ChunkReader { parse, input } = self;
        match input {
            Input::Parquet {
                path,
                rows: total,
                offset,
            } => Ok(next_parquet_slice(path, *total, offset, rows)),
            Input::Arrow {
                reader,
                done,
                carry,
                ..
            } => next_arrow_frame(reader, (done, carry), &parse.path, rows),
            Input::Csv(csv) => Ok(csv.next(parse, rows)?.map(Body::Csv)),
        }
    }
}

/// The next slice of a Parquet file's `total` rows from `offset`, of `rows` rows at most.
fn next_parquet_slice(path: &Path, total: usize, offset: &mut usize, rows: usize) -> Option<Body> {
    if *offset >= total {
        return None;
    }
    let len = rows.min(total - *offset);
    let body = Body::ParquetSlice {
        path: path.into(),
        offset: *offset,
        len,
    };
    *offset += len;
    Some(body)
}

/// The next piece of an Arrow IPC file: the rows carried from the last piece, then whole
/// record batches (counted in `done`) up to `rows`.
fn next_arrow_frame(
    reader: &mut polars_arrow::io::ipc::read::FileReader<BufReader<File>>,
    (done, carry): (&mut usize, &mut Option<DataFrame>),
    path: &Path,
    rows: usize,
) -> Result<Option<Body>> {
    let mut frames: Vec<DataFrame> = carry.take().into_iter().collect();
    let mut have: usize = frames.iter().map(DataFrame::height).sum();
    while have < rows {
        let Some(batch) = reader.next() else { break };
        let df = DataFrame::from(batch.map_err(|e| {
            Error::Polars(e.context(format!("{}: a record batch", path.display()).into()))
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
