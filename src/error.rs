//! The crate's error type. Every variant that comes from bad input names the file, column or
//! row it is about, so a user can find and fix the value.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: the file is empty")]
    EmptyFile { path: PathBuf },

    #[error("{path}, line {line}: {message}")]
    MalformedCsv {
        path: PathBuf,
        line: u64,
        message: String,
    },

    #[error("{source_name}: no data rows (only a header, or nothing)")]
    NoRows { source_name: String },

    #[error("{source_name}: required column '{column}' is missing (columns found: {found})")]
    MissingColumn {
        source_name: String,
        column: String,
        found: String,
    },

    #[error("{source_name}: column '{column}', row {row}: '{value}' is not a valid {expected}")]
    BadValue {
        source_name: String,
        column: String,
        row: usize,
        value: String,
        expected: &'static str,
    },

    #[error("{source_name}: column '{column}' has type {found}, expected {expected}")]
    BadColumnType {
        source_name: String,
        column: String,
        found: String,
        expected: &'static str,
    },

    #[error(
        "{0}: unsupported data source (expected a .csv, .tsv, .txt or .parquet file, mongodb://HOST:PORT/DB?collection=NAME, or synthetic:rows=N,seed=S)"
    )]
    UnsupportedSource(String),

    #[error("no usable rows left after dropping rejected records: {0}")]
    NoUsableRows(String),

    /// A schema file's mistakes, the file and each key named.
    #[error("{0}")]
    Schema(String),

    #[error("configuration key '{key}': {message}")]
    Config { key: String, message: String },

    #[error("device: {0}")]
    Device(String),

    #[error("training: {0}")]
    Training(String),

    #[error("cancelled")]
    Cancelled,

    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    #[error("model: {0}")]
    Model(String),

    #[error("export: {0}")]
    Export(String),

    #[error("data source: {0}")]
    Source(String),

    /// A stage refused its input and says why in its own report (for example validation's
    /// [`crate::validate::Report`]); [`Error::report`] gets it back. The crate error does not
    /// know the stages' types.
    #[error("{stage} failed: {report}")]
    Rejected {
        stage: &'static str,
        report: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("model store: {0}")]
    Store(String),

    #[error(transparent)]
    Polars(#[from] polars::error::PolarsError),

    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    /// `stage` refused its input; `report` says why.
    pub fn rejected(
        stage: &'static str,
        report: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Rejected {
            stage,
            report: Box::new(report),
        }
    }

    /// The report of type `T` a stage refused its input with, when this is that error.
    pub fn report<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match self {
            Error::Rejected { report, .. } => report.downcast_ref::<T>(),
            _ => None,
        }
    }
}
