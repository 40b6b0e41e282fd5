//! `categorizer train`: learn the segments: features, preprocessing, PCA + KMeans; writes a run directory.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use categorizer::config::DeviceChoice;
use categorizer::inference::SessionOptions;
use categorizer::ingest::DataSource;
use categorizer::registry::{Published, store};
use categorizer::train::classifier::{ClassifierChoice, ModelConfig};
use categorizer::train::{SegmentationInfo, TrainMetrics, TrainOutcome, TrainRequest};

use super::Context;
use super::validate::print_validation;

#[derive(clap::Args)]
pub struct Args {
    /// CSV/Parquet file or synthetic:rows=N,seed=S (default: the configured source).
    #[arg(long)]
    pub data: Option<String>,
    /// Compute device for training.
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// Seed for the split and KMeans (default: split.seed from the settings).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Classifier to train: gbdt, mlp, or best of both (default: config/model.yaml).
    #[arg(long, value_enum)]
    pub classifier: Option<ClassifierChoice>,
    /// Run directory to write (default: runs/run-<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Model store to export into: a directory or s3://bucket/prefix (default: models.s3.uri, else models.dir).
    #[arg(long)]
    pub models: Option<String>,
    /// Train and write the run directory only; no ONNX export.
    #[arg(long)]
    pub no_export: bool,
    /// Train only when the store has no current model yet (exit 0 otherwise): seeds a shared
    /// store once, before its replicas start (deploy/compose.yaml's `init`).
    #[arg(long, conflicts_with = "no_export")]
    pub if_store_empty: bool,
}

pub fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let Args {
        data,
        device,
        seed,
        classifier,
        out,
        quiet,
        models,
        no_export,
        if_store_empty,
    } = args;
    let Context {
        mut settings,
        model_config,
    } = ctx;
    let mut model_config = ModelConfig::load(model_config.as_deref())?;
    if let Some(c) = classifier {
        model_config.classifier = c;
    }
    if let Some(seed) = seed {
        settings.split.seed = seed;
    }
    let source = DataSource::parse(data.as_deref().unwrap_or(&settings.data.source))?
        .with_s3_settings(&settings.models.s3);
    let out_dir = out.unwrap_or_else(default_run_dir);
    let store = if no_export {
        None
    } else {
        let spec = models.unwrap_or_else(|| store::default_spec(&settings.models));
        Some(store::open(&spec, &settings.models)?)
    };
    if let (true, Some(s)) = (if_store_empty, store.as_deref()) {
        if let Some(version) = s.current()? {
            println!(
                "{}: its current model is {version}; nothing to train (--if-store-empty)",
                s.describe()
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    let device = device.unwrap_or(settings.device);
    let options = SessionOptions::from_settings(&settings.inference);
    let report_path = out_dir.join("validation.json");
    let req = TrainRequest::new(source, settings, model_config, out_dir)
        .with_device(device)
        .with_progress(!quiet && std::io::stderr().is_terminal());
    let trained = match categorizer::workflow::train_and_publish(req, store.as_deref(), &options) {
        Err(e) if e.report::<categorizer::validate::Report>().is_some() => {
            if let Some(report) = e.report::<categorizer::validate::Report>() {
                print_validation(report);
            }
            anyhow::bail!(
                "data validation failed, training stopped (report: {})",
                report_path.display()
            );
        }
        other => other?,
    };
    print_summary(&trained.outcome);
    if let Some(p) = &trained.published {
        print_published(p);
    }
    Ok(ExitCode::SUCCESS)
}

/// `runs/run-<unix time>`: the run directory when `--out` is not given.
fn default_run_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from(format!("runs/run-{secs}"))
}

/// The stored model: where it went, its parity with ONNX Runtime, its lineage, its promotion.
fn print_published(p: &Published) {
    let m = &p.manifest;
    println!(
        "Model {} ({}, {} bytes) -> {}",
        p.version, m.classifier, m.onnx.bytes, p.location
    );
    println!(
        "  parity with ONNX Runtime {}: {}/{} segments agree, max |dp| {:.2e}",
        m.onnxruntime_version,
        m.parity.segments_agree,
        m.parity.rows,
        m.parity.max_probability_diff
    );
    if let Some(l) = &m.lineage {
        let kept = l.matched.values().filter(|o| o.is_some()).count();
        println!(
            "  segments matched to {}: {kept} of {} kept their ids and names, adjusted Rand index {}",
            l.previous_version,
            m.k,
            l.adjusted_rand_index
                .map_or("not measured".into(), |a| format!("{a:.4}"))
        );
    }
    println!(
        "  {}: {}",
        if m.promotion.promoted {
            "promoted to current"
        } else {
            "not promoted"
        },
        m.promotion.note
    );
}

/// The run's summary: its data, the k sweep, the clustering quality, the segments, the
/// classifiers and the stage timings.
fn print_summary(o: &TrainOutcome) {
    let m = &o.metrics;
    println!();
    print_data(m);
    print_sweep(&o.segmentation, m.k);
    println!();
    print_quality(m);
    println!();
    print_segments(m);
    println!();
    print_classifiers(m);
    println!();
    print_seconds(m);
    println!("Run directory: {}", o.run_dir.display());
}

/// What the model learned from: the rows (and a streamed source's passes), the rows set
/// aside, and the device.
fn print_data(m: &TrainMetrics) {
    match &m.streamed {
        None => println!(
            "Segmentation of {} ({} rows usable of {} read; {} train / {} test)",
            m.data.source, m.rows, m.data.rows_read, m.data.train_rows, m.data.test_rows
        ),
        Some(s) => {
            println!(
                "Segmentation of {} ({} rows usable of {} read, streamed; fitted on a sample of {}: {} train / {} test)",
                m.data.source,
                s.rows_used,
                s.rows_read,
                s.rows_sampled,
                m.data.train_rows,
                m.data.test_rows
            );
            for p in &s.passes {
                println!(
                    "  pass \"{}\": {:.1} s, {:.0} rows/s",
                    p.name, p.seconds, p.rows_per_second
                );
            }
            println!(
                "  whole data: WCSS {:.2}; every customer's segment in {}",
                s.wcss, s.assignments
            );
        }
    }
    if !m.data.rejected.is_empty() {
        println!("Set aside:");
        for (reason, r) in &m.data.rejected {
            let rows: Vec<String> = r.rows.iter().map(|r| r.to_string()).collect();
            println!("  {reason}: {} (rows {})", r.count, rows.join(", "));
        }
    }
    println!(
        "Device: {} ({}{})",
        m.device.kind,
        m.device.backend,
        m.device
            .adapter
            .as_deref()
            .map(|a| format!(", {a}"))
            .unwrap_or_default()
    );
}

/// The k sweep's scores, the chosen `k` marked (nothing when k was fixed).
fn print_sweep(seg: &SegmentationInfo, k: usize) {
    if !seg.k_sweep.is_empty() {
        println!();
        println!(
            "k sweep on {} rows ({:.3} s): k = {} chosen",
            seg.sweep_rows, seg.sweep_seconds, k
        );
        println!("   k  silhouette  davies-bouldin          wcss");
        for s in &seg.k_sweep {
            println!(
                "  {:>2}  {:>10.4}  {:>14.4}  {:>12.2}{}",
                s.k,
                s.silhouette,
                s.davies_bouldin,
                s.wcss,
                if s.k == k { "  *" } else { "" }
            );
        }
    }
}

/// The clustering quality on both splits.
fn print_quality(m: &TrainMetrics) {
    println!("               silhouette  davies-bouldin          wcss");
    println!(
        "  train split  {:>10.4}  {:>14.4}  {:>12.2}",
        m.train.silhouette, m.train.davies_bouldin, m.train.wcss
    );
    println!(
        "  test split   {:>10.4}  {:>14.4}  {:>12.2}",
        m.test.silhouette, m.test.davies_bouldin, m.test.wcss
    );
}

/// Each segment's size, share, key means and name.
fn print_segments(m: &TrainMetrics) {
    println!("  id  size    share  income   spending  age  children  name");
    for s in &m.segments {
        println!(
            "  {:>2}  {:>6}  {:>5.1}%  {:>7.0}  {:>8.0}  {:>3.0}  {:>8.2}  {}",
            s.id,
            s.size,
            100.0 * s.share,
            s.means["Income"],
            s.means["Total_Spending"],
            s.means["Age"],
            s.means["Children"],
            s.name
        );
    }
}

/// The classifiers' test-split scores, the chosen one marked.
fn print_classifiers(m: &TrainMetrics) {
    println!("  classifier   weighted F1  precision  recall  accuracy  seconds");
    for c in &m.classifier.candidates {
        let mark = if c.kind == m.classifier.chosen {
            "*"
        } else {
            " "
        };
        println!(
            "{mark} {:<10}  {:>11.4}  {:>9.4}  {:>6.4}  {:>8.4}  {:>7.2}",
            c.kind, c.test.f1, c.test.precision, c.test.recall, c.test.accuracy, c.seconds
        );
    }
    println!(
        "  (* chosen: {}; scores on the test split)",
        m.classifier.rule
    );
}

/// Each stage's seconds, and the total.
fn print_seconds(m: &TrainMetrics) {
    let stages: Vec<String> = m
        .seconds
        .iter()
        .filter(|(k, _)| *k != "total")
        .map(|(k, v)| format!("{k} {:.3}", v.as_f64().unwrap_or(0.0)))
        .collect();
    println!(
        "Seconds: {} | total {:.3}",
        stages.join(", "),
        m.seconds
            .get("total")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    );
}
