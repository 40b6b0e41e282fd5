//! `categorizer models`: list the versions of a model store, make one current, roll back to
//! the previous one, rename a segment, or compare two versions' segments on a data set.

use std::process::ExitCode;

use categorizer::inference::SessionOptions;
use categorizer::registry as model;
use categorizer::registry::store;

use super::Context;

#[derive(clap::Subcommand)]
pub enum ModelsAction {
    /// Every complete version, oldest first, the current one marked.
    List,
    /// Make VERSION current (a running server picks it up at its next poll).
    Promote { version: String },
    /// Make the version that was current before the current one current again.
    Rollback,
    /// Name a segment: stores a new version (same model, new manifest), current when VERSION was.
    Rename {
        version: String,
        segment: usize,
        name: String,
    },
    /// Compare two versions on a data set: how their segments match, and where its customers
    /// go from A's segments to B's.
    Diff {
        a: String,
        b: String,
        /// CSV/Parquet file or synthetic:rows=N,seed=S (default: the configured source).
        #[arg(long)]
        data: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct Args {
    /// A directory or s3://bucket/prefix (default: models.s3.uri, else models.dir).
    #[arg(long, global = true)]
    pub models: Option<String>,
    #[command(subcommand)]
    pub action: ModelsAction,
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let Args { models, action } = args;
    let Context { settings, .. } = ctx;
    let spec = models.unwrap_or_else(|| store::default_spec(&settings.models));
    let store = store::open(&spec, &settings.models)?;
    match action {
        ModelsAction::List => {
            let current = store.current()?;
            let versions = store.versions()?;
            println!("{} ({} versions)", store.describe(), versions.len());
            for v in versions {
                let mark = if current.as_deref() == Some(v.as_str()) {
                    "*"
                } else {
                    " "
                };
                let about = store
                    .get(&v, categorizer::registry::store::MANIFEST_FILE)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<model::Manifest>(&b).ok())
                    .map(|m| {
                        format!(
                            "{}  {:<4}  F1 {:.4}  {} rows",
                            m.created_at, m.classifier, m.promotion.weighted_f1, m.data.rows
                        )
                    })
                    .unwrap_or_else(|| "(manifest unreadable)".into());
                println!("{mark} {v}  {about}");
            }
        }
        ModelsAction::Promote { version } => {
            store.set_current(&version)?;
            println!("{version} is now current in {}", store.describe());
        }
        ModelsAction::Rollback => {
            let from = store.current()?.unwrap_or_default();
            let to = store.rollback()?;
            println!("rolled back {} from {from} to {to}", store.describe());
        }
        ModelsAction::Rename {
            version,
            segment,
            name,
        } => {
            let r = model::rename(store.as_ref(), &version, segment, &name)?;
            println!(
                "{}: segment {segment} of {version} is now \"{}\"{}",
                r.version,
                r.manifest.segments[segment].name,
                if r.current { " (current)" } else { "" }
            );
        }
        ModelsAction::Diff { a, b, data } => {
            let source = data.unwrap_or_else(|| settings.data.source.clone());
            let options = SessionOptions::from_settings(&settings.inference);
            let d = model::diff(store.as_ref(), &a, &b, &source, &options)?;
            print!("{d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
