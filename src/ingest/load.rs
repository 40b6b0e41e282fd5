//! A source read whole into one `DataFrame` (training below its sample bound, validation).

use polars::prelude::*;

use super::files::{read_arrow, read_csv, read_parquet};
use super::{DataSource, mongo, stream, synthetic};
use crate::error::{Error, Result};

impl DataSource {
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
