//! `categorizer`: the command line. Thin: parses arguments, calls the library, prints results.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use categorizer::config::{DeviceChoice, Settings};
use categorizer::inference::SessionOptions;
use categorizer::ingest::{self, DataSource};
use categorizer::model;
use categorizer::predict::{self, PredictRequest};
use categorizer::store;
use categorizer::train::classifier::{ClassifierChoice, ModelConfig};
use categorizer::train::{self, TrainOutcome, TrainRequest};

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
enum ModelsAction {
    /// Every complete version, oldest first, the current one marked.
    List,
    /// Make VERSION current (a running server picks it up at its next poll).
    Promote { version: String },
    /// Make the version that was current before the current one current again.
    Rollback,
}

#[derive(Subcommand)]
enum Command {
    /// Write seeded synthetic customer records with the 29-column schema.
    Generate {
        #[arg(long, default_value_t = 2240)]
        rows: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output file: .csv/.tsv (tab-separated) or .parquet.
        #[arg(long)]
        out: PathBuf,
    },
    /// Learn the segments: features, preprocessing, PCA + KMeans; writes a run directory.
    Train {
        /// CSV/Parquet file or synthetic:rows=N,seed=S (default: the configured source).
        #[arg(long)]
        data: Option<String>,
        /// Compute device for training.
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
        /// Seed for the split and KMeans (default: split.seed from the settings).
        #[arg(long)]
        seed: Option<u64>,
        /// Classifier to train: gbdt, mlp, or best of both (default: config/model.yaml).
        #[arg(long, value_enum)]
        classifier: Option<ClassifierChoice>,
        /// Run directory to write (default: runs/run-<unix time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
        /// Model store to export into: a directory or s3://bucket/prefix (default: models.s3.uri, else models.dir).
        #[arg(long)]
        models: Option<String>,
        /// Train and write the run directory only; no ONNX export.
        #[arg(long)]
        no_export: bool,
    },
    /// Compute the 21 model features of raw records (as training does) and write them with their row numbers.
    Features {
        /// Raw records: .csv/.tsv/.txt, .parquet, or synthetic:rows=N,seed=S.
        #[arg(long)]
        input: String,
        /// Output file: .csv/.tsv or .parquet.
        #[arg(long)]
        output: PathBuf,
    },
    /// Serve predictions over HTTP (default 0.0.0.0:5000) with the store's current model;
    /// trains one on the built-in data first when the store is empty.
    Serve {
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        port: Option<u16>,
        /// Model store: a directory or s3://bucket/prefix (default: models.s3.uri, else models.dir).
        #[arg(long)]
        models: Option<String>,
    },
    /// Load raw records from a file into a MongoDB collection (records whose ID is already
    /// there are skipped, so importing twice is harmless).
    Import {
        /// Raw records: .csv/.tsv/.txt, .parquet, or synthetic:rows=N,seed=S.
        #[arg(long)]
        data: String,
        /// mongodb://HOST:PORT/DB?collection=NAME
        #[arg(long)]
        to: String,
    },
    /// List the versions of a model store, make one current, or roll back to the previous one.
    Models {
        /// A directory or s3://bucket/prefix (default: models.s3.uri, else models.dir).
        #[arg(long, global = true)]
        models: Option<String>,
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Check records against the schema and for drift from a reference (exit 1 when the
    /// schema check fails, or with --fail-on-drift when the data set drifted).
    Validate {
        /// Reference records (a data source), or a model's manifest.json (its training data's profile).
        #[arg(long)]
        reference: String,
        /// The records to check: a file, mongodb://…, or synthetic:rows=N,seed=S.
        #[arg(long)]
        current: String,
        /// Write the JSON report here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the HTML report here.
        #[arg(long)]
        html: Option<PathBuf>,
        #[arg(long)]
        fail_on_drift: bool,
    },
    /// Exit 0 when the service at URL answers 200 (the container images' HEALTHCHECK: the
    /// runtime image has no curl).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:5000/readyz")]
        url: String,
    },
    /// Score a CSV or Parquet file (raw 29-column records or the 21 features) with a model.
    Predict {
        /// A model directory (model.onnx + manifest.json), or a store whose current model is used.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Input file: .csv/.tsv/.txt or .parquet.
        #[arg(long)]
        input: PathBuf,
        /// Output file: .csv/.tsv or .parquet; the input's columns plus the predictions.
        #[arg(long)]
        output: PathBuf,
        /// Rows per chunk (default: inference.chunk_rows).
        #[arg(long)]
        chunk_rows: Option<usize>,
        /// A malformed CSV record (stray quote, wrong field count): `fail` the command naming
        /// its line, or `keep` it as an output row whose `error` says what was wrong.
        #[arg(long, value_enum, default_value_t = OnError::Fail)]
        on_error: OnError,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnError {
    Fail,
    Keep,
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
    let mut settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Generate { rows, seed, out } => {
            let start = Instant::now();
            let mut df = ingest::synthetic::generate_records(rows, seed);
            ingest::write_records(&mut df, &out)?;
            println!(
                "wrote {rows} records (seed {seed}) to {} in {:.2} s",
                out.display(),
                start.elapsed().as_secs_f64()
            );
        }
        Command::Train {
            data,
            device,
            seed,
            classifier,
            out,
            quiet,
            models,
            no_export,
        } => {
            let mut model_config = ModelConfig::load(cli.model_config.as_deref())?;
            if let Some(c) = classifier {
                model_config.classifier = c;
            }
            if let Some(seed) = seed {
                settings.split.seed = seed;
            }
            let source = DataSource::parse(data.as_deref().unwrap_or(&settings.data.source))?;
            let out_dir = out.unwrap_or_else(|| {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                PathBuf::from(format!("runs/run-{secs}"))
            });
            let store = if no_export {
                None
            } else {
                let spec = models.unwrap_or_else(|| store::default_spec(&settings.models));
                Some(store::open(&spec, &settings.models)?)
            };
            let device = device.unwrap_or(settings.device);
            let req = TrainRequest::new(source, settings, model_config, out_dir)
                .with_device(device)
                .with_progress(!quiet && std::io::stderr().is_terminal())
                .with_reference(store.as_deref().and_then(model::current_profile));
            let outcome = match train::run(&req) {
                Err(e) if e.report::<categorizer::validate::Report>().is_some() => {
                    if let Some(report) = e.report::<categorizer::validate::Report>() {
                        print_validation(report);
                    }
                    anyhow::bail!(
                        "data validation failed, training stopped (report: {})",
                        req.out_dir.join("validation.json").display()
                    );
                }
                other => other?,
            };
            print_summary(&outcome);
            if let Some(store) = store {
                let options = SessionOptions::from_settings(&req.settings.inference);
                let p = model::publish(&outcome, store.as_ref(), &options)?;
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
        }
        Command::Features { input, output } => {
            let raw = DataSource::parse(&input)?.load()?;
            let table = categorizer::features::engineer(&raw, settings.reference_date())?;
            let mut df = categorizer::features::to_frame(&table)?;
            ingest::write_records(&mut df, &output)?;
            println!(
                "wrote the features of {} rows ({} set aside) to {}",
                table.matrix.rows(),
                table.report.rows_rejected(),
                output.display()
            );
        }
        Command::Serve { host, port, models } => {
            if let Some(h) = host {
                settings.server.host = h;
            }
            if let Some(p) = port {
                settings.server.port = p;
            }
            let models = models.unwrap_or_else(|| store::default_spec(&settings.models));
            let model_config = ModelConfig::load(cli.model_config.as_deref())?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let served = rt.block_on(categorizer::serve::serve(settings, models, model_config));
            // Connections still open after the grace period are dropped, not waited for.
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
            served?;
        }
        Command::Import { data, to } => {
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
        }
        Command::Models { models, action } => {
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
                            .get(&v, categorizer::store::MANIFEST_FILE)
                            .ok()
                            .and_then(|b| serde_json::from_slice::<model::Manifest>(&b).ok())
                            .map(|m| {
                                format!(
                                    "{}  {:<4}  F1 {:.4}  {} rows",
                                    m.created_at,
                                    m.classifier,
                                    m.promotion.weighted_f1,
                                    m.data.rows
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
        }
        Command::Validate {
            reference,
            current,
            out,
            html,
            fail_on_drift,
        } => {
            let v = &settings.validation;
            let profile = if reference.ends_with(".json") {
                let bytes = std::fs::read(&reference)?;
                let m: model::Manifest = serde_json::from_slice(&bytes)?;
                m.data_profile.ok_or_else(|| {
                    anyhow::anyhow!("{reference}: the manifest has no data profile (a model published before validation existed)")
                })?
            } else {
                let src = DataSource::parse(&reference)?;
                categorizer::validate::Profile::of(&src.name(), &src.load()?, v)?
            };
            let src = DataSource::parse(&current)?;
            let report =
                categorizer::validate::validate(&src.name(), &src.load()?, Some(&profile), v)?;
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
        }
        Command::Healthcheck { url } => {
            let status = healthcheck(&url)?;
            println!("{url}: {status}");
            if status != 200 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Predict {
            model,
            input,
            output,
            chunk_rows,
            on_error,
            quiet,
        } => {
            let req = PredictRequest {
                model: model.unwrap_or(settings.models.dir.clone()),
                input,
                output,
                chunk_rows: chunk_rows.unwrap_or(settings.inference.chunk_rows).max(1),
                progress: !quiet && std::io::stderr().is_terminal(),
                options: SessionOptions::from_settings(&settings.inference),
                keep_malformed: on_error == OnError::Keep,
            };
            let s = predict::run(&req)?;
            println!(
                "scored {} rows ({} predicted, {} set aside of which {} malformed, input: {}) with model {} in {:.2} s ({:.0} rows/s) -> {}",
                s.rows,
                s.predicted,
                s.set_aside,
                s.malformed,
                match s.input_kind {
                    predict::InputKind::RawRecords => "raw records",
                    predict::InputKind::Features => "features",
                },
                s.model_version,
                s.seconds,
                s.rows as f64 / s.seconds.max(1e-9),
                req.output.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_validation(r: &categorizer::validate::Report) {
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

fn print_summary(o: &TrainOutcome) {
    let m = &o.metrics;
    println!();
    println!(
        "Segmentation of {} ({} rows usable of {} read; {} train / {} test)",
        m.data.source, m.rows, m.data.rows_read, m.data.train_rows, m.data.test_rows
    );
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
    println!();
    println!("               silhouette  davies-bouldin          wcss");
    println!(
        "  train split  {:>10.4}  {:>14.4}  {:>12.2}",
        m.train.silhouette, m.train.davies_bouldin, m.train.wcss
    );
    println!(
        "  test split   {:>10.4}  {:>14.4}  {:>12.2}",
        m.test.silhouette, m.test.davies_bouldin, m.test.wcss
    );
    println!();
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
    println!();
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
    println!();
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
    println!("Run directory: {}", o.run_dir.display());
}

/// `GET url` over plain HTTP/1.1; returns the status code.
fn healthcheck(url: &str) -> anyhow::Result<u16> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{url}: only http:// URLs are checked"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{url}: no address for {authority}"))?;
    let timeout = std::time::Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{url}: not an HTTP response: {line:?}"))
}
