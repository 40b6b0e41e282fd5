//! `categorizer monitor`: the drift of the customers a model scored, from every replica's
//! monitoring buckets in the model store (and those bulk `predict` runs wrote), merged.

use std::process::ExitCode;

use anyhow::Context as _;
use categorizer::monitor;
use categorizer::registry::manifest::Manifest;
use categorizer::registry::store::{self, MANIFEST_FILE};

use super::Context;

#[derive(clap::Args)]
pub struct Args {
    /// A directory or s3://bucket/prefix (default: models.s3.uri, else models.dir).
    #[arg(long)]
    models: Option<String>,
    /// The model version (default: the store's current one).
    #[arg(long)]
    version: Option<String>,
    /// Only buckets that end after this: a span back from now (`90s`, `30m`, `6h`, `7d`) or
    /// a Unix time in milliseconds (default: all of them).
    #[arg(long)]
    since: Option<String>,
    /// The report as JSON (as GET /api/v1/monitoring gives it).
    #[arg(long)]
    json: bool,
    /// Exit 1 when the report says drift.
    #[arg(long)]
    fail_on_drift: bool,
    /// Report this profile instead of the store's buckets: the `<output>.monitoring.json`
    /// that `categorizer predict` writes beside its output (its model read from the store).
    #[arg(long, conflicts_with = "since")]
    profile: Option<std::path::PathBuf>,
}

/// `--since`: milliseconds since the Unix epoch.
fn since_ms(text: &str, now_ms: u64) -> anyhow::Result<u64> {
    let text = text.trim();
    let unit = |u: &str| -> Option<u64> {
        Some(match u {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        })
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let n: u64 = number
        .parse()
        .with_context(|| format!("--since {text:?}: a span (30m, 6h, 7d) or Unix milliseconds"))?;
    if suffix.is_empty() {
        return Ok(n);
    }
    let ms = unit(suffix)
        .and_then(|u| n.checked_mul(u))
        .with_context(|| format!("--since {text:?}: the unit is one of ms, s, m, h, d"))?;
    Ok(now_ms.saturating_sub(ms))
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let settings = ctx.settings;
    let spec = args
        .models
        .unwrap_or_else(|| store::default_spec(&settings.models));
    let store = store::open(&spec, &settings.models)?;
    let profile: Option<monitor::Bucket> = match &args.profile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let b: monitor::Bucket = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a monitoring profile", path.display()))?;
            b.check()
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(b)
        }
        None => None,
    };
    let version = match (args.version, &profile) {
        (Some(v), _) => v,
        (None, Some(p)) => p.version.clone(),
        (None, None) => store
            .current()?
            .with_context(|| format!("{}: no current model", store.describe()))?,
    };
    let manifest: Manifest = serde_json::from_slice(&store.get(&version, MANIFEST_FILE)?)
        .with_context(|| format!("{}/{version}/{MANIFEST_FILE}", store.describe()))?;
    let now = monitor::now_ms();
    let since = args
        .since
        .as_deref()
        .map(|s| since_ms(s, now))
        .transpose()?;
    let (window, sources) = match profile {
        Some(p) => (
            Some(p),
            vec![args.profile.unwrap_or_default().display().to_string()],
        ),
        None => monitor::read_store(store.as_ref(), &version, since.unwrap_or(0))?,
    };
    let mut report = monitor::report(
        window.as_ref(),
        &manifest,
        &settings.monitoring,
        &settings.validation,
    );
    report.sources = sources;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.summary());
        println!(
            "  from {} source(s): {}",
            report.sources.len(),
            report.sources.join(", ")
        );
    }
    Ok(if args.fail_on_drift && report.status == "drift" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_span_or_milliseconds() {
        assert_eq!(since_ms("30m", 10_000_000).unwrap(), 10_000_000 - 1_800_000);
        assert_eq!(since_ms("1700000000000", 5).unwrap(), 1_700_000_000_000);
        assert!(since_ms("5y", 0).unwrap_err().to_string().contains("unit"));
        assert!(since_ms("soon", 0).is_err());
    }
}
