//! Writing scored pieces: the prediction columns ([`OutputColumns`]), and the sinks, CSV
//! (the input's separator, or tab for `.tsv`), Parquet, Arrow IPC files, or a MongoDB
//! collection upserted by `ID`, chosen by the output's name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::ingest::DataSource;
use crate::ingest::mongo::{MongoSource, ScoreWriter};

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
    /// The columns' names: `segment`, `segment_name`, `probability_<id>`, `atypical`,
    /// (`runner_up`, `top_feature_1..`), `error`, in that order.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec!["segment".to_string(), "segment_name".to_string()];
        names.extend((0..self.probabilities.len()).map(|j| format!("probability_{j}")));
        names.push("atypical".into());
        if let Some((_, top)) = &self.explained {
            names.push("runner_up".into());
            names.extend((0..top.len()).map(|j| format!("top_feature_{}", j + 1)));
        }
        names.push("error".into());
        names
    }

    /// The columns, named as [`names`](Self::names) says.
    pub fn into_columns(self) -> Vec<Column> {
        let mut names = self.names().into_iter().map(PlSmallStr::from);
        let mut name = || names.next().expect("one name per column");
        let mut columns = vec![
            Column::new(name(), self.segment),
            Column::new(name(), self.name),
        ];
        for p in self.probabilities {
            columns.push(Column::new(name(), p));
        }
        columns.push(Column::new(name(), self.atypical));
        if let Some((runner_up, top)) = self.explained {
            columns.push(Column::new(name(), runner_up));
            for t in top {
                columns.push(Column::new(name(), t));
            }
        }
        columns.push(Column::new(name(), self.error));
        columns
    }

    /// Row `i`'s values as CSV fields, each after a `separator` (they follow the input's
    /// fields): what polars' CSV writer would write, without a frame built for it.
    pub fn write_csv_row(&self, i: usize, separator: u8, out: &mut Vec<u8>) {
        let mut int = itoa::Buffer::new();
        let mut float = ryu::Buffer::new();
        let field = |out: &mut Vec<u8>, text: Option<&[u8]>| {
            out.push(separator);
            if let Some(t) = text {
                csv_field(out, t, separator);
            }
        };
        // A number or a boolean is written as it is, unless the separator is a character
        // that one could hold.
        let plain = !(separator.is_ascii_alphanumeric() || b".-+".contains(&separator));
        let value = |out: &mut Vec<u8>, text: Option<&[u8]>| match text {
            Some(t) if plain => {
                out.push(separator);
                out.extend_from_slice(t);
            }
            _ => field(out, text),
        };
        value(out, self.segment[i].map(|s| int.format(s).as_bytes()));
        field(out, self.name[i].map(str::as_bytes));
        for p in &self.probabilities {
            value(out, p[i].map(|v| float_text(&mut float, v)));
        }
        value(
            out,
            self.atypical[i].map(|a| if a { &b"true"[..] } else { b"false" }),
        );
        if let Some((runner_up, top)) = &self.explained {
            value(out, runner_up[i].map(|s| int.format(s).as_bytes()));
            for t in top {
                field(out, t[i].map(str::as_bytes));
            }
        }
        field(out, self.error[i].map(str::as_bytes));
    }
}

/// An f32 as the shortest text that reads back as it (`1.0`, not `1`, as polars writes it).
fn float_text(buf: &mut ryu::Buffer, v: f32) -> &[u8] {
    if v.is_finite() {
        buf.format_finite(v).as_bytes()
    } else if v.is_nan() {
        b"NaN"
    } else if v > 0.0 {
        b"inf"
    } else {
        b"-inf"
    }
}

/// `text` as one CSV field: quoted (its quotes doubled) when it holds the separator, a quote
/// or a line end.
pub fn csv_field(out: &mut Vec<u8>, text: &[u8], separator: u8) {
    let needs = text
        .iter()
        .any(|&b| b == separator || b == b'"' || b == b'\n' || b == b'\r');
    if !needs {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    for &b in text {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Where the scored rows go, from the output's name.
#[derive(Debug, Clone)]
pub enum Target {
    Csv { separator: u8 },
    Parquet,
    Arrow,
    Mongo(MongoSource),
}

impl Target {
    /// A `.csv`/`.tsv`/`.txt` file (the input's separator, tab for `.tsv`), `.parquet`,
    /// `.arrow`/`.ipc`/`.feather`, or `mongodb://HOST:PORT/DB?collection=NAME`.
    pub fn parse(output: &str, input_separator: u8) -> Result<Self> {
        Ok(match DataSource::parse(output)? {
            DataSource::Parquet(_) => Target::Parquet,
            DataSource::Arrow(_) => Target::Arrow,
            DataSource::Mongo(m) => Target::Mongo(m),
            DataSource::Csv(p) => Target::Csv {
                separator: if p.extension().is_some_and(|e| e == "tsv") {
                    b'\t'
                } else {
                    input_separator
                },
            },
            DataSource::Synthetic { .. } => {
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
