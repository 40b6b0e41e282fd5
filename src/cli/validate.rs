//! `categorizer validate`: check records against the schema and for drift from a reference (exit 1 when the

use std::path::PathBuf;
use std::process::ExitCode;

use categorizer::ingest::DataSource;
use categorizer::registry as model;
use categorizer::train;

use super::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Reference records (a data source), or a model's manifest.json (its training data's profile).
    #[arg(long)]
    pub reference: String,
    /// The records to check: a file, a directory or glob of Parquet/CSV files, mongodb://…,
    /// or synthetic:rows=N,seed=S (above training.sample_rows records, read in batches).
    #[arg(long)]
    pub current: String,
    /// Write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[arg(long)]
    pub fail_on_drift: bool,
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let Args {
        reference,
        current,
        out,
        html,
        fail_on_drift,
    } = args;
    let Context { settings, .. } = ctx;
    let profile = if reference.ends_with(".json") {
        let bytes = std::fs::read(&reference)?;
        let m: model::Manifest = serde_json::from_slice(&bytes)?;
        m.data_profile.ok_or_else(|| {
            anyhow::anyhow!("{reference}: the manifest has no data profile (a model published before validation existed)")
        })?
    } else {
        let src = DataSource::parse(&reference)?.with_s3_settings(&settings.models.s3);
        categorizer::validate::validate_source(&src, None, &settings)?.1
    };
    let src = DataSource::parse(&current)?.with_s3_settings(&settings.models.s3);
    let (report, _) = categorizer::validate::validate_source(&src, Some(&profile), &settings)?;
    print_validation(&report);
    if let Some(path) = out {
        train::write_json(&path, &report)?;
        println!("JSON report: {}", path.display());
    }
    if let Some(path) = html {
        std::fs::write(
            &path,
            categorizer::serve::routes::web::validation_html(&report)?,
        )?;
        println!("HTML report: {}", path.display());
    }
    let drifted = report.drift.as_ref().is_some_and(|d| d.dataset_drift);
    if !report.schema.passed || (fail_on_drift && drifted) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_validation(r: &categorizer::validate::Report) {
    println!("Validation of {} ({} records)", r.current, r.current_rows);
    for i in &r.schema.issues {
        println!("  {:?} {} {}: {}", i.severity, i.column, i.check, i.message);
    }
    if let Some(d) = &r.drift {
        println!(
            "  drift against {} ({} records):",
            r.reference.as_deref().unwrap_or("?"),
            r.reference_rows
        );
        println!("    column                test             score  threshold  drift");
        for c in &d.columns {
            println!(
                "    {:<20}  {:<14}  {:>8.4}  {:>9}  {}",
                c.column,
                c.test,
                c.score,
                c.threshold,
                if c.drifted { "DRIFT" } else { "-" }
            );
        }
    }
    println!("  {}", r.summary());
}
