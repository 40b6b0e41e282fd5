//! `categorizer serve`: serve predictions over HTTP (default 0.0.0.0:5000) with the store's current model;

use std::process::ExitCode;

use categorizer::registry::store;
use categorizer::train::classifier::ModelConfig;

use super::Context;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    /// Model store: a directory or s3://bucket/prefix (default: models.s3.uri, else models.dir).
    #[arg(long)]
    pub models: Option<String>,
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let Args { host, port, models } = args;
    let Context {
        mut settings,
        model_config,
    } = ctx;
    if let Some(h) = host {
        settings.server.host = h;
    }
    if let Some(p) = port {
        settings.server.port = p;
    }
    let models = models.unwrap_or_else(|| store::default_spec(&settings.models));
    let model_config = ModelConfig::load(model_config.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = rt.block_on(categorizer::serve::serve(settings, models, model_config));
    // Connections still open after the grace period are dropped, not waited for.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    served?;
    Ok(ExitCode::SUCCESS)
}
