//! `categorizer generate`: write seeded synthetic customer records with the 29-column schema.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use categorizer::ingest;

use super::Context;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 2240)]
    pub rows: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file: .csv (comma-separated), .tsv or .txt (tab-separated), or .parquet.
    #[arg(long)]
    pub out: PathBuf,
}

/// Rows generated and written at a time (a Parquet row group).
const BATCH_ROWS: usize = 1 << 18;

pub fn run(args: Args, _: Context) -> anyhow::Result<ExitCode> {
    let Args { rows, seed, out } = args;
    let start = Instant::now();
    // Written a batch at a time: memory holds one batch whatever `rows` is, and the records
    // are those of `generate_records(rows, seed)`, in the same order.
    let batches = ingest::synthetic::record_batches(rows, seed, BATCH_ROWS);
    ingest::write_record_batches(batches, &out)?;
    println!(
        "wrote {rows} records (seed {seed}) to {} in {:.2} s",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
