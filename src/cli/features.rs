//! `categorizer features`: compute the 21 model features of raw records (as training does) and write them with their row numbers.

use std::path::PathBuf;
use std::process::ExitCode;

use categorizer::ingest::{self, DataSource};

use super::Context;
use super::predict::OnError;

#[derive(clap::Args)]
pub struct Args {
    /// Raw records: .csv/.tsv/.txt, .parquet, or synthetic:rows=N,seed=S.
    #[arg(long)]
    pub input: String,
    /// Output file: .csv (comma-separated), .tsv or .txt (tab-separated), or .parquet.
    #[arg(long)]
    pub output: PathBuf,
    /// `fail` (default): read as training reads, write the rows training keeps. `keep`: read
    /// a file as `categorizer predict --on-error keep` reads it and write every row, a row
    /// that would be set aside with empty features and its `error`.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    pub on_error: OnError,
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let Args {
        input,
        output,
        on_error,
    } = args;
    let Context { settings, .. } = ctx;
    if on_error == OnError::Keep {
        let mut df = categorizer::predict::features_of_file(
            std::path::Path::new(&input),
            settings.reference_date(),
            true,
        )?;
        let set_aside = df.column("error")?.is_not_null().sum().unwrap_or(0);
        ingest::write_records(&mut df, &output)?;
        println!(
            "wrote the features of {} rows ({set_aside} set aside, with their error) to {}",
            df.height(),
            output.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
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
