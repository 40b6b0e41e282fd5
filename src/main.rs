//! `categorizer`: the command line. Thin: parses arguments, calls the library, prints results.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use categorizer::config::Settings;

#[derive(Parser)]
#[command(
    name = "categorizer",
    version,
    about = "Learns retail customer segments and serves them fast"
)]
struct Cli {
    /// Settings file layered over the built-in defaults (environment variables CATEGORIZER__SECTION__KEY override both).
    #[arg(long, global = true, env = "CATEGORIZER_CONFIG")]
    config: Option<PathBuf>,
    /// Classifier settings layered over the built-in config/model.yaml (CATEGORIZER_MODEL__SECTION__KEY overrides both).
    #[arg(long, global = true, env = "CATEGORIZER_MODEL_CONFIG")]
    model_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write seeded synthetic customer records with the 29-column schema.
    Generate(cli::generate::Args),
    /// Learn the segments: features, preprocessing, PCA + KMeans; writes a run directory.
    Train(cli::train::Args),
    /// Compute the 21 model features of raw records (as training does) and write them with their row numbers.
    Features(cli::features::Args),
    /// Serve predictions over HTTP (default 0.0.0.0:5000) with the store's current model;
    /// trains one on the built-in data first when the store is empty.
    Serve(cli::serve::Args),
    /// Load raw records from a file into a MongoDB collection (records whose ID is already
    /// there are skipped, so importing twice is harmless).
    Import(cli::import::Args),
    /// List the versions of a model store, make one current, or roll back to the previous one.
    Models(cli::models::Args),
    /// Check records against the schema and for drift from a reference (exit 1 when the
    /// schema check fails, or with --fail-on-drift when the data set drifted).
    Validate(cli::validate::Args),
    /// Exit 0 when the service at URL answers 200 (the container images' HEALTHCHECK: the
    /// runtime image has no curl).
    Healthcheck(cli::healthcheck::Args),
    /// Score a CSV or Parquet file (raw 29-column records or the 21 features) with a model.
    Predict(cli::predict::Args),
    /// Export a model for other engines: its 21 features as SQL for Spark or DuckDB.
    Export(cli::export::Args),
    /// Check a customer schema file: the raw columns of a table and the features made from them.
    Schema(cli::schema::Args),
    /// The drift of the customers a model scored, from every replica's monitoring buckets in
    /// the store, merged (exit 1 with --fail-on-drift when it drifted).
    Monitor(cli::monitor::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wgpu=warn,cubecl=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Secrets (AWS credentials, CATEGORIZER_ADMIN_TOKEN) may come from a .env file in the
    // working directory; variables already set win.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand; a check that fails without an error (validation that does not pass,
/// an unhealthy server) returns a failure code, so destructors still run.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = cli::Context {
        settings: Settings::load(cli.config.as_deref())?,
        model_config: cli.model_config,
    };
    match cli.command {
        Command::Generate(args) => cli::generate::run(args, ctx),
        Command::Train(args) => cli::train::run(args, ctx),
        Command::Features(args) => cli::features::run(args, ctx),
        Command::Serve(args) => cli::serve::run(args, ctx),
        Command::Import(args) => cli::import::run(args, ctx),
        Command::Models(args) => cli::models::run(args, ctx),
        Command::Validate(args) => cli::validate::run(args, ctx),
        Command::Healthcheck(args) => cli::healthcheck::run(args, ctx),
        Command::Predict(args) => cli::predict::run(args, ctx),
        Command::Export(args) => cli::export::run(args, ctx),
        Command::Monitor(args) => cli::monitor::run(args, ctx),
        Command::Schema(args) => cli::schema::run(args, ctx),
    }
}
