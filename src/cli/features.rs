//! `categorizer features`: compute the 21 model features of raw records (as training does) and write them with their row numbers.

use std::path::PathBuf;
use std::process::ExitCode;

use categorizer::ingest::{self, DataSource};

use super::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Raw records: .csv/.tsv/.txt, .parquet, or synthetic:rows=N,seed=S.
    #[arg(long)]
    pub input: String,
    /// Output file: .csv (comma-separated), .tsv or .txt (tab-separated), or .parquet.
    #[arg(long)]
    pub output: PathBuf,
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let Args { input, output } = args;
    let Context { settings, .. } = ctx;
    let raw = DataSource::parse(&input)?.load()?;
    let table = categorizer::features::engineer(&raw, settings.reference_date())?;
    let mut df = categorizer::features::to_frame(&table)?;
    ingest::write_records(&mut df, &output)?;
    println!(
        "wrote the features of {} rows ({} set aside) to {}",
        table.matrix.rows(),
        table.report.rows_rejected(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}
