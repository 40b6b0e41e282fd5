//! `categorizer models`: list the versions of a model store, make one current, or roll back to the previous one.

use std::process::ExitCode;

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
    }
    Ok(ExitCode::SUCCESS)
}
