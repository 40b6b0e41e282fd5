//! `categorizer predict`: score a CSV or Parquet file (raw 29-column records or the 21 features) with a model.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use categorizer::inference::SessionOptions;
use categorizer::predict::{self, PredictRequest};

use super::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    Fail,
    Keep,
}

#[derive(clap::Args)]
pub struct Args {
    /// A model directory (model.onnx + manifest.json), or a store whose current model is used.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Input file: .csv/.tsv/.txt or .parquet.
    #[arg(long)]
    pub input: PathBuf,
    /// Output file: .csv/.tsv or .parquet; the input's columns plus the predictions.
    #[arg(long)]
    pub output: PathBuf,
    /// Rows per chunk (default: inference.chunk_rows).
    #[arg(long)]
    pub chunk_rows: Option<usize>,
    /// A malformed CSV record (stray quote, wrong field count): `fail` the command naming
    /// its line, or `keep` it as an output row whose `error` says what was wrong.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    pub on_error: OnError,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Add `runner_up` and `top_feature_1..3`: why each row is in its segment.
    #[arg(long)]
    pub explain: bool,
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let Args {
        model,
        input,
        output,
        chunk_rows,
        on_error,
        quiet,
        explain,
    } = args;
    let Context { settings, .. } = ctx;
    let req = PredictRequest {
        model: model.unwrap_or(settings.models.dir.clone()),
        input,
        output,
        chunk_rows: chunk_rows.unwrap_or(settings.inference.chunk_rows).max(1),
        progress: !quiet && std::io::stderr().is_terminal(),
        options: SessionOptions::from_settings(&settings.inference),
        keep_malformed: on_error == OnError::Keep,
        explain,
    };
    let s = predict::run(&req)?;
    println!(
        "scored {} rows ({} predicted, {} set aside of which {} malformed, input: {}) with model {} in {:.2} s ({:.0} rows/s) -> {}",
        s.rows,
        s.predicted,
        s.set_aside,
        s.malformed,
        match s.input_kind {
            predict::InputKind::RawRecords => "raw records",
            predict::InputKind::Features => "features",
        },
        s.model_version,
        s.seconds,
        s.rows as f64 / s.seconds.max(1e-9),
        req.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
