//! A source read batch by batch, in bounded memory: a file, a dataset of files (a directory or
//! a glob, in name order, read as their concatenation), or the generator. Files are cut by the
//! same reader bulk scoring uses ([`super::chunk::ChunkReader`]); each batch is
//! conformed to the raw schema as a whole-file read is.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::chunk::ChunkReader;
use super::{DataSource, conform, open_non_empty, synthetic};
use crate::error::{Error, Result};

/// Extensions a dataset's files may have.
/// Records in a CSV file, counted by line ends (an upper bound when quoted fields hold line
/// ends) until there are more than `limit`: a read of the file at memory speed, no parsing,
/// and no further than the record past the limit.
fn csv_records(path: &Path, limit: u64) -> Result<u64> {
    use std::io::Read;
    let mut file = open_non_empty(path)?;
    // 64 KiB on the stack: a heap block above glibc's mmap threshold (128 KiB) would, once
    // freed, raise the threshold and leave the training's later allocations in the heap
    // (+40-75 MB peak RSS on a 1M-row CSV).
    let mut buf = [0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let got = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if got == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..got]).count() as u64;
        last = buf[got - 1];
        if lines > limit.saturating_add(1) {
            return Ok(lines - 1);
        }
    }
    // The header is not a record; a last line without a line end is.
    Ok((lines + u64::from(last != b'\n')).saturating_sub(1))
}

fn parquet_rows(path: &Path) -> Result<u64> {
    let file = open_non_empty(path)?;
    ParquetReader::new(file)
        .num_rows()
        .map(|n| n as u64)
        .map_err(|e| in_file(path, e.into()))
}

fn is_parquet(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("parquet" | "pq")
    )
}

/// An error of a file in a dataset, naming the file (polars' own messages do not).
fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Polars(p) => Error::Source(format!("{}: {p}", path.display())),
        other => other,
    }
}

impl DataSource {
    /// Whether the source holds more than `limit` records, where that is known without
    /// parsing it (Parquet metadata, a CSV file's line ends, counted only as far as the limit,
    /// the generator's count); None for MongoDB and Arrow. An S3 source is taken as more.
    pub fn more_records_than(&self, limit: u64) -> Result<Option<bool>> {
        let file = |p: &Path, left: u64| {
            if is_parquet(p) {
                parquet_rows(p)
            } else {
                csv_records(p, left)
            }
        };
        let files = match self {
            DataSource::Csv(p) | DataSource::Parquet(p) => std::slice::from_ref(p),
            DataSource::Dataset { files, .. } => files.as_slice(),
            DataSource::Synthetic { rows, .. } => return Ok(Some(*rows as u64 > limit)),
            // Counting would mean reading every object: an S3 source always streams.
            DataSource::S3 { .. } => return Ok(Some(true)),
            DataSource::Arrow(_) | DataSource::Mongo(_) => return Ok(None),
        };
        let mut seen = 0u64;
        for p in files {
            seen += file(p, limit - seen)?;
            if seen > limit {
                return Ok(Some(true));
            }
        }
        Ok(Some(false))
    }
}

/// One batch of raw records: their first row's number in the whole source (0-based) and the
/// records, conformed to the raw schema.
pub struct Batch {
    pub first_row: u64,
    pub records: DataFrame,
}

enum Input {
    Files {
        /// Object keys (as paths) when the files are in S3.
        remote: Option<Remote>,
        files: Vec<PathBuf>,
        next: usize,
        current: Option<(PathBuf, ChunkReader)>,
        /// The first file's columns, which every other file must have.
        columns: Option<(PathBuf, Vec<String>)>,
        /// Progress units of the files already read.
        done_before: u64,
        /// The current file's first row in the whole source.
        file_start: u64,
        /// Progress units of each file.
        units: Vec<u64>,
    },
    Synthetic(Box<dyn Iterator<Item = DataFrame> + Send>),
}

/// The objects of an S3 source, each downloaded to `local` while it is read.
struct Remote {
    s3: super::s3::S3Data,
    local: Option<PathBuf>,
}

impl Remote {
    /// Downloads the object `key` to a temporary file of the same extension.
    fn fetch(&mut self, key: &Path) -> Result<PathBuf> {
        self.discard();
        let ext = key.extension().and_then(|e| e.to_str()).unwrap_or("csv");
        let local = std::env::temp_dir().join(format!(
            "categorizer-s3-{}-{}.{ext}",
            std::process::id(),
            NEXT_DOWNLOAD.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        self.local = Some(local.clone());
        self.s3.download(&key.to_string_lossy(), &local)?;
        Ok(local)
    }

    fn discard(&mut self) {
        if let Some(p) = self.local.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.discard();
    }
}

static NEXT_DOWNLOAD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A source read batch by batch.
pub struct RecordStream {
    name: String,
    batch_rows: usize,
    input: Input,
    rows: u64,
    /// The raw schema's columns and types, as CSV pieces are parsed.
    typed: Schema,
    /// Progress: rows when every file is Parquet (or the generator), else bytes.
    in_rows: bool,
    total: u64,
}

impl RecordStream {
    /// Opens `source` to read it `batch_rows` records at a time (files, datasets and the
    /// generator; MongoDB and Arrow files are read whole).
    pub fn open(source: &DataSource, batch_rows: usize) -> Result<Self> {
        let batch_rows = batch_rows.max(1);
        if let DataSource::S3 { uri, settings } = source {
            let s3 = super::s3::S3Data::connect(uri, settings)?;
            let objects = s3.objects()?;
            return Ok(Self {
                name: source.name(),
                batch_rows,
                total: objects.iter().map(|o| o.1).sum(),
                input: Input::Files {
                    files: objects.iter().map(|o| PathBuf::from(&o.0)).collect(),
                    units: objects.iter().map(|o| o.1).collect(),
                    remote: Some(Remote { s3, local: None }),
                    next: 0,
                    current: None,
                    columns: None,
                    done_before: 0,
                    file_start: 0,
                },
                rows: 0,
                typed: super::read_schema(),
                in_rows: false,
            });
        }
        let files = match source {
            DataSource::Csv(p) | DataSource::Parquet(p) => vec![p.clone()],
            DataSource::Dataset { files, .. } => files.clone(),
            DataSource::Synthetic { rows, seed } => {
                return Ok(Self {
                    name: source.name(),
                    batch_rows,
                    input: Input::Synthetic(Box::new(synthetic::record_batches(
                        *rows, *seed, batch_rows,
                    ))),
                    rows: 0,
                    typed: super::read_schema(),
                    in_rows: true,
                    total: *rows as u64,
                });
            }
            DataSource::Arrow(_) | DataSource::Mongo(_) | DataSource::S3 { .. } => {
                return Err(Error::UnsupportedSource(format!(
                    "{}: read whole, not streamed",
                    source.name()
                )));
            }
        };
        let in_rows = files.iter().all(|f| is_parquet(f));
        let units = files
            .iter()
            .map(|f| {
                if in_rows {
                    parquet_rows(f)
                } else {
                    Ok(std::fs::metadata(f).map_err(|e| Error::io(f, e))?.len())
                }
            })
            .collect::<Result<Vec<u64>>>()?;
        Ok(Self {
            name: source.name(),
            batch_rows,
            total: units.iter().sum(),
            input: Input::Files {
                remote: None,
                files,
                next: 0,
                current: None,
                columns: None,
                done_before: 0,
                file_start: 0,
                units,
            },
            rows: 0,
            typed: super::read_schema(),
            in_rows,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Progress so far and in all, in rows (all Parquet) or bytes.
    pub fn progress(&self) -> (u64, u64) {
        let done = match &self.input {
            Input::Synthetic(_) => self.rows,
            Input::Files {
                current,
                done_before,
                units,
                next,
                ..
            } => {
                let within = current.as_ref().map_or(0, |(_, r)| {
                    if self.in_rows || r.is_csv() {
                        r.position()
                    } else {
                        // A Parquet file among CSV files: its bytes, in the share of rows read.
                        let unit = units[next - 1];
                        (unit as f64 * r.position() as f64 / r.len().max(1) as f64) as u64
                    }
                });
                done_before + within
            }
        };
        (done.min(self.total), self.total)
    }

    /// Whether progress counts rows (else bytes).
    pub fn counts_rows(&self) -> bool {
        self.in_rows
    }

    /// The next batch, or None at the end of the source.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        let first_row = self.rows;
        let typed = &self.typed;
        let records = match &mut self.input {
            Input::Synthetic(batches) => match batches.next() {
                Some(df) => conform("synthetic", df)?,
                None => return Ok(None),
            },
            Input::Files {
                remote,
                files,
                next,
                current,
                columns,
                done_before,
                file_start,
                units,
            } => loop {
                if current.is_none() {
                    let Some(path) = files.get(*next).cloned() else {
                        if let Some(r) = remote {
                            r.discard();
                        }
                        return Ok(None);
                    };
                    let (reader, path) = match remote {
                        None => (
                            ChunkReader::open(&path, false).map_err(|e| in_file(&path, e))?,
                            path,
                        ),
                        // Read from the download; named as the object.
                        Some(r) => {
                            let local = r.fetch(&path)?;
                            let name = PathBuf::from(r.s3.uri(&path.to_string_lossy()));
                            let reader = ChunkReader::open(&local, false)
                                .map_err(|e| renamed(in_file(&name, e), &local, &name))?;
                            (reader, name)
                        }
                    };
                    let have = reader.columns().to_vec();
                    match columns {
                        None => *columns = Some((path.clone(), have)),
                        Some((first, want)) => same_columns(&path, &have, first, want)?,
                    }
                    *next += 1;
                    *file_start = first_row;
                    *current = Some((path, reader));
                }
                let (path, reader) = current.as_mut().expect("a file is open");
                let local = remote.as_ref().and_then(|r| r.local.clone());
                let named = |e: Error| match &local {
                    Some(l) => renamed(in_file(path, e), l, path),
                    None => in_file(path, e),
                };
                match reader.next(self.batch_rows).map_err(named)? {
                    Some(body) => {
                        // The schema's columns parsed by their types (a cell that does not
                        // parse falls back to text, so conform names the row at fault).
                        let df = body.frame(&reader.parse, Some(typed)).map_err(named)?;
                        let name = path.display().to_string();
                        break conform(&name, df)
                            .map_err(|e| shifted(e, first_row - *file_start, &name))?;
                    }
                    None => {
                        *done_before += units[*next - 1];
                        *current = None;
                    }
                }
            },
        };
        self.rows += records.height() as u64;
        Ok(Some(Batch { first_row, records }))
    }

    /// Records read so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// An error about a downloaded object, naming the object instead of the temporary file.
fn renamed(e: Error, local: &Path, name: &Path) -> Error {
    let text = e.to_string();
    let local = local.display().to_string();
    if text.contains(&local) {
        Error::Source(text.replace(&local, &name.display().to_string()))
    } else {
        e
    }
}

/// A file whose columns are not the first file's is an error naming both.
fn same_columns(path: &Path, have: &[String], first: &Path, want: &[String]) -> Result<()> {
    let missing: Vec<&str> = want
        .iter()
        .filter(|c| !have.contains(c))
        .map(String::as_str)
        .collect();
    let extra: Vec<&str> = have
        .iter()
        .filter(|c| !want.contains(c))
        .map(String::as_str)
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!("missing {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        why.push(format!("extra {}", extra.join(", ")));
    }
    Err(Error::Source(format!(
        "{}: its columns differ from {}'s ({})",
        path.display(),
        first.display(),
        why.join("; ")
    )))
}

/// A bad value's row, counted in the batch, counted in its file instead.
fn shifted(e: Error, first_row: u64, name: &str) -> Error {
    match e {
        Error::BadValue {
            column,
            row,
            value,
            expected,
            ..
        } => Error::BadValue {
            source_name: name.to_string(),
            column,
            row: row + first_row as usize,
            value,
            expected,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_is_counted_only_as_far_as_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let body: String = (0..10).map(|i| format!("{i}\n")).collect();
        std::fs::write(&p, format!("a\n{body}")).unwrap();
        assert_eq!(csv_records(&p, 100).unwrap(), 10);
        assert_eq!(csv_records(&p, 10).unwrap(), 10);
        std::fs::write(&p, "a\n1\n2").unwrap();
        assert_eq!(
            csv_records(&p, 100).unwrap(),
            2,
            "a last line without its end counts"
        );
        // 200,000 records read in 64 KiB blocks: the count stops past the limit.
        let big: String = (0..200_000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&p, format!("a\n{big}")).unwrap();
        let n = csv_records(&p, 1_000).unwrap();
        assert!(n > 1_000 && n < 200_000, "{n}");
        let source = DataSource::Csv(p);
        assert_eq!(source.more_records_than(1_000).unwrap(), Some(true));
        assert_eq!(source.more_records_than(200_000).unwrap(), Some(false));
    }
}
