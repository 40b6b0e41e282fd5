//! `categorizer export sql`: a model's 21 features as one SQL `SELECT` for Spark or DuckDB, so
//! the model can be scored where the data lives (see `integrations/spark/`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use categorizer::registry::manifest::Manifest;
use categorizer::registry::store::{self, MANIFEST_FILE, MODEL_FILE};
use categorizer::sql::{self, Dialect};

use super::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DialectArg {
    Spark,
    Duckdb,
}

#[derive(clap::Subcommand)]
pub enum ExportWhat {
    /// The features as SQL over a table of the 29 raw columns: ID, row, the 21 features and
    /// `problem` (why `categorizer predict` would set the row aside).
    Sql {
        /// A model directory (manifest.json + model.onnx), or a store (a directory or
        /// s3://bucket/prefix) whose current model is used (default: the configured store).
        #[arg(long)]
        model: Option<String>,
        #[arg(long, value_enum)]
        dialect: DialectArg,
        /// The table (or view) the SQL reads.
        #[arg(long, default_value = sql::DEFAULT_TABLE)]
        table: String,
        /// Write the SQL here instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: ExportWhat,
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let Context { settings, .. } = ctx;
    let ExportWhat::Sql {
        model,
        dialect,
        table,
        out,
    } = args.what;
    let dialect = match dialect {
        DialectArg::Spark => Dialect::Spark,
        DialectArg::Duckdb => Dialect::Duckdb,
    };
    if table.trim().is_empty() {
        anyhow::bail!("--table: give a table name");
    }
    let spec = model.unwrap_or_else(|| store::default_spec(&settings.models));
    let manifest = manifest(&spec, &settings.models)?;
    let text = sql::features_sql((&manifest).into(), dialect, &table)?;
    match out {
        Some(path) => {
            std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote the {} SQL of model {} to {}",
                dialect.name(),
                manifest.version,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The manifest of a model directory, or of the current model of a store.
fn manifest(
    spec: &str,
    settings: &categorizer::config::ModelStoreSettings,
) -> anyhow::Result<Manifest> {
    let dir = Path::new(spec);
    let bytes = if !spec.starts_with("s3://") && dir.join(MODEL_FILE).is_file() {
        let path = dir.join(MANIFEST_FILE);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
    } else {
        let store = store::open(spec, settings)?;
        let version = store.current()?.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no current model (run `categorizer train` first)",
                store.describe()
            )
        })?;
        store.get(&version, MANIFEST_FILE)?
    };
    serde_json::from_slice(&bytes).with_context(|| format!("{spec}: reading {MANIFEST_FILE}"))
}
