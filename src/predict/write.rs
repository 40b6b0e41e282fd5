//! Writing scored pieces to their sink, chosen by the output's name: CSV (comma for `.csv`,
//! tab for `.tsv`, the input's separator otherwise), Parquet, Arrow IPC files, or a MongoDB
//! collection upserted by `ID`. The prediction columns themselves are
//! [`crate::answer::OutputColumns`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::ingest::DataSource;
use crate::ingest::mongo::{MongoSource, ScoreWriter};

/// Where the scored rows go, from the output's name.
#[derive(Debug, Clone)]
pub enum Target {
    Csv { separator: u8 },
    Parquet,
    Arrow,
    Mongo(MongoSource),
}

impl Target {
    /// A `.csv` (comma), `.tsv` (tab) or `.txt` (the input's separator) file, `.parquet`,
    /// `.arrow`/`.ipc`/`.feather`, or `mongodb://HOST:PORT/DB?collection=NAME`.
    pub fn parse(output: &str, input_separator: u8) -> Result<Self> {
        Ok(match DataSource::parse(output)? {
            DataSource::Parquet(_) => Target::Parquet,
            DataSource::Arrow(_) => Target::Arrow,
            DataSource::Mongo(m) => Target::Mongo(m),
            DataSource::Csv(p) => Target::Csv {
                separator: crate::ingest::output_separator(&p, input_separator),
            },
            DataSource::Synthetic { .. } | DataSource::Dataset { .. } | DataSource::S3 { .. } => {
                return Err(Error::UnsupportedSource(output.to_string()));
            }
        })
    }
}

/// A scored piece, ready for its sink.
pub enum Out {
    /// CSV lines (no header) and the header line they go under.
    Csv {
        header: Vec<u8>,
        body: Vec<u8>,
    },
    Frame(DataFrame),
    /// Documents for the collection, one per row with an `ID`.
    Docs(Vec<mongodb::bson::Document>),
}

/// An open output.
pub enum Sink {
    Csv {
        writer: BufWriter<File>,
        header: bool,
    },
    Parquet(polars::io::parquet::write::BatchedWriter<BufWriter<File>>),
    Arrow(polars_arrow::io::ipc::write::FileWriter<BufWriter<File>>),
    Mongo(ScoreWriter),
}

fn create_file(path: &Path) -> Result<BufWriter<File>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

impl Sink {
    /// Opens the output for pieces like `first` (its schema, for Parquet and Arrow).
    pub fn create(path: &Path, target: &Target, first: &Out) -> Result<Self> {
        Ok(match (target, first) {
            (Target::Mongo(m), _) => Sink::Mongo(ScoreWriter::connect(m)?),
            (Target::Parquet, Out::Frame(df)) => {
                // Snappy, as pyarrow and Spark write by default: zstd (polars' default) cost
                // the writer thread more than all the scoring of a piece.
                Sink::Parquet(
                    ParquetWriter::new(create_file(path)?)
                        .with_compression(ParquetCompression::Snappy)
                        .batched(df.schema())?,
                )
            }
            (Target::Arrow, Out::Frame(df)) => {
                let schema = df.schema().to_arrow(CompatLevel::newest());
                Sink::Arrow(polars_arrow::io::ipc::write::FileWriter::try_new(
                    create_file(path)?,
                    Arc::new(schema),
                    None,
                    Default::default(),
                )?)
            }
            _ => Sink::Csv {
                writer: create_file(path)?,
                header: true,
            },
        })
    }

    /// Writes a piece.
    pub fn write(&mut self, out: Out) -> Result<()> {
        match (self, out) {
            (Sink::Csv { writer, header }, Out::Csv { header: h, body }) => {
                let io = |e| Error::io("output", e);
                if *header {
                    writer.write_all(&h).map_err(io)?;
                    *header = false;
                }
                writer.write_all(&body).map_err(io)
            }
            // A record batch needs every column cut into the same chunks.
            (Sink::Parquet(w), Out::Frame(mut df)) => Ok(w.write_batch(df.align_chunks_par())?),
            (Sink::Arrow(w), Out::Frame(mut df)) => {
                df.align_chunks_par();
                for batch in df.iter_chunks(CompatLevel::newest(), false) {
                    w.write(&batch, None)?;
                }
                Ok(())
            }
            (Sink::Mongo(w), Out::Docs(docs)) => w.write(docs),
            _ => Err(Error::Model(
                "a scored piece does not fit its output".into(),
            )),
        }
    }

    pub fn finish(self) -> Result<()> {
        match self {
            Sink::Csv { mut writer, .. } => writer.flush().map_err(|e| Error::io("output", e)),
            Sink::Parquet(w) => {
                w.finish()?;
                Ok(())
            }
            Sink::Arrow(mut w) => {
                w.finish()?;
                let mut inner = w.into_inner();
                inner.flush().map_err(|e| Error::io("output", e))
            }
            Sink::Mongo(w) => w.finish(),
        }
    }
}
