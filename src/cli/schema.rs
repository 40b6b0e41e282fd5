//! `categorizer schema`: check a customer schema file (docs/schema.md), or draft one from data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use polars::prelude::*;

use categorizer::schema::conform::data_problems;
use categorizer::schema::file::{CustomerSchema, SchemaFile};

use super::Context;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Say what is wrong with a schema file (every mistake, naming its key and line); exit 1
    /// when anything is.
    Check {
        /// The schema file (YAML).
        file: PathBuf,
        /// A data file (CSV/TSV with a header, or Parquet) to check against the schema's
        /// columns: each present, each value of its type, range, categories and date format.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Rows of the data file read (from its start): the check's cost is bounded.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
    },
    /// Draft a schema file from a data file: types, ranges, categories, date formats, an id
    /// guess and a feature per usable column, with DECIDE comments where a person must choose.
    Infer {
        /// A data file: CSV/TSV with a header, or Parquet.
        #[arg(long)]
        data: PathBuf,
        /// Write the draft here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Rows of the data file read (from its start).
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
    },
}

pub fn run(args: Args, _ctx: Context) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Check { file, data, rows } => check(&file, data.as_deref(), rows),
        Command::Infer { data, out, rows } => {
            let df = read_text(&data, rows)?;
            let text = categorizer::schema::infer::draft(&df, &data.display().to_string());
            match out {
                Some(path) => {
                    std::fs::write(&path, &text)?;
                    eprintln!("draft schema written to {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(path: &Path, data: Option<&Path>, rows: usize) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let origin = path.display().to_string();
    let file = match SchemaFile::parse(&text, &origin) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let problems = file.problems(&text);
    if !problems.is_empty() {
        eprintln!(
            "{origin}: {} mistake{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            eprintln!("  - {p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let schema = file.resolve(&text, &origin)?;
    print_summary(&origin, &schema);
    let Some(data) = data else {
        return Ok(ExitCode::SUCCESS);
    };
    let df = read_text(data, rows)?;
    let problems = data_problems(&schema, &df);
    if problems.is_empty() {
        println!(
            "{}: the first {} rows match the schema",
            data.display(),
            df.height()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{} does not match {origin} (first {} rows read):",
        data.display(),
        df.height()
    );
    for p in &problems {
        eprintln!("  - {p}");
    }
    Ok(ExitCode::FAILURE)
}

/// The first `rows` rows of a CSV or Parquet file, every column as text.
fn read_text(path: &Path, rows: usize) -> anyhow::Result<DataFrame> {
    let parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    let df = if parquet {
        let file = categorizer::ingest::open_non_empty(path)?;
        let df = ParquetReader::new(file)
            .with_slice(Some((0, rows)))
            .finish()?;
        let text: Vec<Column> = df
            .columns()
            .iter()
            .map(|c| c.cast(&DataType::String))
            .collect::<PolarsResult<_>>()?;
        DataFrame::new_infer_height(text)?
    } else {
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(categorizer::ingest::open_non_empty(path)?),
            &mut first,
        )?;
        let separator = categorizer::ingest::sniff_separator(&first);
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_n_rows(Some(rows))
            .with_parse_options(CsvParseOptions::default().with_separator(separator))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))?
            .finish()?
    };
    Ok(df)
}

fn print_summary(origin: &str, s: &CustomerSchema) {
    println!(
        "{origin}: {} columns, {} features; no mistakes",
        s.columns.len(),
        s.features.len()
    );
    for f in &s.features {
        let bound = |v: f64| {
            if v.abs() == f64::MAX {
                "none".to_string()
            } else {
                v.to_string()
            }
        };
        println!(
            "  {:<24} {:?} [{}, {}]{}",
            f.key,
            f.kind,
            bound(f.min),
            bound(f.max),
            match f.skewed {
                Some(true) => ", skewed",
                Some(false) => "",
                None => ", skewed decided at training",
            }
        );
    }
}
