//! `categorizer import`: load raw records from a file into a MongoDB collection (records whose ID is already

use std::process::ExitCode;
use std::time::Instant;

use categorizer::ingest::{self, DataSource};

use super::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Raw records: .csv/.tsv/.txt, .parquet, or synthetic:rows=N,seed=S.
    #[arg(long)]
    pub data: String,
    /// mongodb://HOST:PORT/DB?collection=NAME
    #[arg(long)]
    pub to: String,
}

pub fn run(args: Args, _: Context) -> anyhow::Result<ExitCode> {
    let Args { data, to } = args;
    let start = Instant::now();
    let source = DataSource::parse(&data)?;
    let target = ingest::mongo::MongoSource::parse(&to)?;
    let df = source.load()?;
    let s = ingest::mongo::import(&df, &target)?;
    println!(
        "{} records read from {}: {} inserted into {}, {} already there, {} without an ID skipped ({:.2} s)",
        s.read,
        source.name(),
        s.inserted,
        target.name(),
        s.already_present,
        s.without_id,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
