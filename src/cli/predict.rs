//! `categorizer predict`: score a CSV, Parquet or Arrow IPC file (raw 29-column records or the
//! 21 features) with a model, into a file or a MongoDB collection.

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
    /// Input file: .csv/.tsv/.txt, .parquet, or an Arrow IPC file (.arrow/.ipc/.feather).
    #[arg(long)]
    pub input: PathBuf,
    /// Output: a .csv (comma-separated), .tsv (tab-separated), .txt (the input's separator),
    /// .parquet or .arrow file (the input's columns plus the predictions), or mongodb://HOST:PORT/DB?collection=NAME (one document per customer
    /// `ID`, replaced on each run: {ID, segment, segment_name, probabilities, atypical,
    /// model_version}).
    #[arg(long)]
    pub output: PathBuf,
    /// Rows per chunk (default: inference.chunk_rows).
    #[arg(long)]
    pub chunk_rows: Option<usize>,
    /// A malformed CSV record (stray quote, wrong field count) or a cell of a number column
    /// that is not a number: `fail` the command naming the line, or the row and column; or
    /// `keep` it as an output row whose `error` says what was wrong (naming the column).
    /// Other bad values (an unknown category, a bad date, a fraction or a value out of
    /// range) are that row's `error` either way.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    pub on_error: OnError,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Add `runner_up` and `top_feature_1..3`: why each row is in its segment.
    #[arg(long)]
    pub explain: bool,
    /// Threads that parse and score (default: the machine's cores). The output is the same
    /// for any number.
    #[arg(long)]
    pub workers: Option<usize>,
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
        workers,
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
        workers: workers
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
            .clamp(1, 64),
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
    let p = &s.phases;
    println!(
        "time per step, summed over {} worker(s): read {:.2} s, parse {:.2} s, features {:.2} s, inference {:.2} s, profile {:.2} s, format {:.2} s, write {:.2} s",
        s.workers, p.read, p.parse, p.features, p.inference, p.profile, p.format, p.write
    );
    match &s.profile_path {
        Some(path) if path.ends_with(".monitoring.json") => println!(
            "monitoring profile -> {path} (its drift from the model's training data: \
             categorizer monitor --profile {path})"
        ),
        Some(path) => println!(
            "monitoring profile -> {path} (merged with the replicas' by categorizer monitor)"
        ),
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}
