//! Where raw records come from: a file, a data set of files, an S3 prefix, a MongoDB collection or
//! the seeded synthetic generator, parsed from the one string the CLI, the settings and the jobs
//! take, and loaded whole (streaming is [`super::stream`]).

use std::path::PathBuf;

use super::{dataset, mongo};
use crate::error::{Error, Result};

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
                files: dataset::dataset_files(spec)?,
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
}
