//! Training: from a data source to a fitted segmentation and a run directory.
//!
//! ingest → features → seeded 80/20 split (scikit-learn's, row for row) → preprocessing fitted on the training rows →
//! PCA(2) and KMeans on the training device → canonical segment ids → metrics. The test split
//! is assigned by the fitted model, never re-clustered. The run directory holds the fitted
//! parameters (`model.json`), `metrics.json` and every row's segment (`assignments.csv`).

pub mod classifier;
pub mod device;
pub mod kmeans;
pub mod lineage;
pub mod metrics;
pub mod pca;
pub mod progress;
pub mod sample;
pub mod segments;
pub mod split;
mod stream;
pub mod sweep;
pub mod tensor;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{DeviceChoice, Settings};
use crate::dates::ReferenceDate;
use crate::error::{Error, Result};
use crate::features::{self, RowReport};
use crate::ingest::DataSource;
use crate::matrix::Matrix;
use crate::preprocess::Preprocessor;
use classifier::{Classifier, ClassifierReport, ModelConfig};
use device::ComputeDevice;
use kmeans::{Assignment, KMeansModel, KMeansParams};
use metrics::ClusterMetrics;
use pca::Pca;
use progress::Progress;
pub use progress::Stage;
use segments::SegmentProfile;
pub use split::split_indices;

/// Everything fitted: enough to place any customer in a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentationModel {
    pub reference_date: ReferenceDate,
    pub preprocessor: Preprocessor,
    pub pca: Pca,
    /// Centres in canonical order (segment 0 = highest mean Total_Spending).
    pub kmeans: KMeansModel,
    pub segments: Vec<SegmentProfile>,
    /// Predicts the segment from the preprocessed features (trained on the KMeans labels).
    pub classifier: Classifier,
}

impl SegmentationModel {
    /// Preprocesses raw feature rows and projects them into the embedding: [n, components].
    pub fn embed(&self, raw: &Matrix, device: &Device) -> Tensor<2> {
        let x = self.preprocessor.transform(raw);
        self.pca.transform(&tensor::upload(&x, device))
    }

    /// Segments of raw feature rows, with their embedding coordinates (row-major).
    pub fn assign(&self, raw: &Matrix, device: &Device) -> (Vec<f32>, Assignment) {
        let emb = self.embed(raw, device);
        let a = self.kmeans.assign(&emb);
        (tensor::download(emb), a)
    }
}

/// What `categorizer train` was asked to do.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub source: DataSource,
    pub device: DeviceChoice,
    pub settings: Settings,
    pub model_config: ModelConfig,
    /// The run directory to write; created if missing.
    pub out_dir: PathBuf,
    pub progress: bool,
    /// Watches the run's stage and progress and can cancel it (the service's training jobs).
    pub monitor: Option<std::sync::Arc<progress::Monitor>>,
    /// The current model's training-data profile: the data is checked for drift against it.
    pub reference: Option<crate::validate::Profile>,
    /// The current model's segments: the new ones are matched to them and keep their ids
    /// and names.
    pub previous: Option<Previous>,
}

/// The segments a new model's are matched to: the store's current model's.
#[derive(Debug, Clone)]
pub struct Previous {
    pub version: String,
    pub segments: Vec<SegmentProfile>,
}

impl TrainRequest {
    /// A quiet run on `source` into `out_dir`: on the device the settings choose, without
    /// progress bars, monitor or drift reference (the `with_*` methods add them).
    pub fn new(
        source: DataSource,
        settings: Settings,
        model_config: ModelConfig,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            source,
            device: settings.device,
            settings,
            model_config,
            out_dir: out_dir.into(),
            progress: false,
            monitor: None,
            reference: None,
            previous: None,
        }
    }

    pub fn with_device(mut self, device: DeviceChoice) -> Self {
        self.device = device;
        self
    }

    /// Progress bars on standard error.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    pub fn with_monitor(mut self, monitor: std::sync::Arc<progress::Monitor>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Checks the data for drift against this profile (the current model's training data).
    pub fn with_reference(mut self, reference: Option<crate::validate::Profile>) -> Self {
        self.reference = reference;
        self
    }

    /// Matches the new segments to these (the current model's).
    pub fn with_previous(mut self, previous: Option<Previous>) -> Self {
        self.previous = previous;
        self
    }
}

/// How the segments were found: the k sweep (with `segmentation.k: auto`) and the space the
/// explanations and the atypical flag are computed in. The manifest's `segmentation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentationInfo {
    /// How k was chosen: the sweep's rule, or the fixed setting.
    pub k_rule: String,
    /// Every k the sweep tried, scored on its sample (empty when k was fixed).
    pub k_sweep: Vec<sweep::KScore>,
    /// Rows of the seeded sample the sweep ran on (0 when k was fixed).
    pub sweep_rows: usize,
    /// Wall-clock seconds of the sweep (the final fit is in the KMeans stage's time).
    #[serde(default)]
    pub sweep_seconds: f64,
    pub space: crate::explain::SegmentSpace,
}

/// What the model learned from: usable rows and a SHA-256 of their 21 feature values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFingerprint {
    pub source: String,
    pub rows: usize,
    pub sha256: String,
}

impl DataFingerprint {
    pub fn of(source: &str, features: &Matrix) -> Self {
        // The values' little-endian bytes, fed in blocks (one update per value cost more
        // than the hash itself).
        let mut h = Sha256::new();
        let mut bytes = Vec::with_capacity(16_384 * 4);
        for block in features.as_slice().chunks(16_384) {
            bytes.clear();
            bytes.extend(block.iter().flat_map(|v| v.to_le_bytes()));
            h.update(&bytes);
        }
        Self {
            source: source.into(),
            rows: features.rows(),
            sha256: hex::encode(h.finalize()),
        }
    }
}

/// Rows at each step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataSummary {
    pub source: String,
    pub rows_read: usize,
    pub rejected: std::collections::BTreeMap<String, features::Rejection>,
    pub missing: std::collections::BTreeMap<String, usize>,
    pub train_rows: usize,
    pub test_rows: usize,
    /// A document source's fields that were missing or mistyped, per field.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source_issues: crate::ingest::mongo::SourceReport,
    /// The validation stage's verdict in one line (the report is `validation.json`).
    #[serde(default)]
    pub validation: String,
}

/// The content of `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainMetrics {
    /// Clustering quality on the training split, in the PCA embedding.
    pub silhouette: f64,
    pub davies_bouldin: f64,
    pub wcss: f64,
    /// The same on the held-out split, assigned by the fitted model.
    pub test: ClusterMetrics,
    pub train: ClusterMetrics,
    pub segments: Vec<SegmentProfile>,
    pub device: ComputeDeviceInfo,
    /// Usable rows (train + test).
    pub rows: usize,
    pub data: DataSummary,
    pub seed: u64,
    pub k: usize,
    pub kmeans: KMeansSummary,
    pub pca_explained_variance_ratio: Vec<f64>,
    /// The classifiers trained on the segments, their test-split scores, and the one kept.
    pub classifier: ClassifierReport,
    /// Wall-clock seconds per stage, in pipeline order, and their total.
    pub seconds: serde_json::Map<String, serde_json::Value>,
    /// A source above `training.sample_rows` records: its two passes and the whole-data
    /// figures (absent when the model was fitted on every usable row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamed: Option<stream::Streamed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComputeDeviceInfo {
    pub requested: DeviceChoice,
    pub kind: String,
    pub backend: String,
    pub adapter: Option<String>,
}

impl From<&ComputeDevice> for ComputeDeviceInfo {
    fn from(d: &ComputeDevice) -> Self {
        Self {
            requested: d.requested,
            kind: d.kind.into(),
            backend: d.backend.into(),
            adapter: d.adapter.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KMeansSummary {
    pub n_init: usize,
    pub n_iter: usize,
    pub best_restart: usize,
    pub inertia: f64,
}

/// The outcome of a training run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub model: SegmentationModel,
    pub metrics: TrainMetrics,
    pub run_dir: PathBuf,
    pub train_labels: Vec<u32>,
    pub test_labels: Vec<u32>,
    /// The held-out rows' raw features (for the export's parity check and promotion gate).
    pub test_raw: Matrix,
    /// The training rows' raw features (the lineage's migration table scores them).
    pub train_raw: Matrix,
    pub segmentation: SegmentationInfo,
    /// The new segments matched to the request's previous ones, by new id.
    pub matching: Option<(String, lineage::Matching)>,
    /// The usable rows the model learned from.
    pub data: DataFingerprint,
    /// The validation stage's report, and the profile of this run's records (the next
    /// run's drift reference).
    pub validation: crate::validate::Report,
    pub profile: crate::validate::Profile,
    /// The profile of the training split's 21 features: live monitoring's reference.
    pub feature_profile: crate::validate::Profile,
    /// The data drifted and `validation.on_drift` is `block`: the model must not be promoted.
    pub drift_blocks_promotion: bool,
}

/// Times stages and keeps them in order.
struct Stopwatch {
    start: Instant,
    last: Instant,
    stages: serde_json::Map<String, serde_json::Value>,
}

impl Stopwatch {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            last: now,
            stages: Default::default(),
        }
    }
    fn lap(&mut self, stage: Stage) -> f64 {
        self.lap_named(stage.key())
    }
    /// A lap that is not one stage (a streamed source's pass, which holds several).
    fn lap_named(&mut self, key: &str) -> f64 {
        let now = Instant::now();
        let secs = (now - self.last).as_secs_f64();
        self.last = now;
        self.stages.insert(key.into(), round6(secs).into());
        secs
    }
    fn finish(mut self) -> serde_json::Map<String, serde_json::Value> {
        self.stages.insert(
            "total".into(),
            round6(self.start.elapsed().as_secs_f64()).into(),
        );
        self.stages
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Runs the whole training pipeline and writes the run directory.
pub fn run(req: &TrainRequest) -> Result<TrainOutcome> {
    let progress = Progress::new(req.progress, req.monitor.clone());
    let mut watch = Stopwatch::new();
    if stream::streams(req)? {
        return stream::run(req, &progress, watch);
    }

    let (raw, source_issues) = read(req, &progress)?;
    watch.lap(Stage::Ingest);
    let checked = validate(req, &progress, &raw)?;
    watch.lap(Stage::Validate);
    let table = engineer(req, &progress, raw)?;
    watch.lap(Stage::Features);

    let Fitted {
        outcome,
        train_idx,
        test_idx,
    } = fit(req, &progress, &mut watch, &table, checked, source_issues)?;
    write_json(&req.out_dir.join("model.json"), &outcome.model)?;
    write_assignments(
        &req.out_dir.join("assignments.csv"),
        &table.source_rows,
        (&train_idx, &outcome.train_labels),
        (&test_idx, &outcome.test_labels),
    )?;
    watch.lap(Stage::Write);
    let mut outcome = outcome;
    outcome.metrics.seconds = watch.finish();
    write_json(&req.out_dir.join("metrics.json"), &outcome.metrics)?;
    Ok(outcome)
}

/// A fitted model, its figures, and which usable rows were its training and test splits.
struct Fitted {
    outcome: TrainOutcome,
    train_idx: Vec<usize>,
    test_idx: Vec<usize>,
}

/// Everything after the features: the seeded split, preprocessing, PCA, KMeans, the
/// segments, the metrics and the classifiers, on `table`'s rows (every usable row, or a
/// streamed source's sample). Creates the run directory; writes nothing else.
fn fit(
    req: &TrainRequest,
    progress: &Progress,
    watch: &mut Stopwatch,
    table: &features::FeatureTable,
    checked: Checked,
    source_issues: crate::ingest::mongo::SourceReport,
) -> Result<Fitted> {
    let s = &req.settings;
    let (train_idx, test_idx) =
        split_indices(table.matrix.rows(), s.split.test_fraction, s.split.seed);
    let train_raw = table.matrix.gather_rows(&train_idx);
    let test_raw = table.matrix.gather_rows(&test_idx);
    watch.lap(Stage::Split);

    let step = progress.step(Stage::Preprocess, "Fitting preprocessing")?;
    let preprocessor = Preprocessor::fit(&train_raw);
    let train_x = preprocessor.transform(&train_raw);
    let test_x = preprocessor.transform(&test_raw);
    step.finish("Preprocessing fitted on the training split");
    watch.lap(Stage::Preprocess);

    let step = progress.step(Stage::Device, "Starting the compute device")?;
    let compute = device::select(req.device)?;
    let dev = compute.device.clone();
    step.finish(format!("Device: {compute}"));
    watch.lap(Stage::Device);

    let seg = segment(
        s,
        progress,
        watch,
        (&train_raw, &train_x),
        &dev,
        req.previous.as_ref(),
    )?;
    let k = seg.kmeans.k;
    let step = progress.step(Stage::Metrics, "Evaluating")?;
    let (emb_test, test_assign) = seg.embed_and_assign(&test_x, &dev);
    let evaluate = |emb: &[f32], a: &Assignment| {
        metrics::evaluate(
            emb,
            seg.pca.components.len(),
            &a.labels,
            &a.sq_dist,
            &seg.kmeans.centres,
            k,
            s.segmentation.silhouette_sample,
            s.split.seed,
        )
    };
    let (train_m, test_m) = (
        evaluate(&seg.emb_train, &seg.train_assign),
        evaluate(&emb_test, &test_assign),
    );
    let mut segment_profiles = segments::profiles(&train_raw, &seg.train_assign.labels, k);
    if let (Some(m), Some(p)) = (&seg.matching, &req.previous) {
        let names: Vec<Option<String>> = m
            .old
            .iter()
            .map(|o| o.and_then(|o| p.segments.get(o)).map(|s| s.name.clone()))
            .collect();
        segments::adopt_names(&mut segment_profiles, &names);
    }
    step.finish("Evaluated");
    watch.lap(Stage::Metrics);

    let bar = progress.bar(Stage::Classifier, 1, "Classifier")?;
    let (classifier, classifier_report) = classifier::train(
        &req.model_config,
        &train_x,
        &seg.train_assign.labels,
        &test_x,
        &test_assign.labels,
        k,
        s.split.seed,
        &dev,
        |name, i, total| {
            bar.set_length(total as u64);
            bar.set_message(name.to_string());
            bar.set_position(i as u64)
        },
    )?;
    bar.finish(format!("Classifier: {} chosen", classifier_report.chosen));
    watch.lap(Stage::Classifier);

    let Segmentation {
        pca,
        kmeans,
        train_assign,
        n_init,
        sweep,
        matching,
        ..
    } = seg;
    let segmentation = SegmentationInfo {
        k_rule: match &sweep {
            Some(_) => sweep::K_RULE.into(),
            None => format!("fixed: segmentation.k = {k}"),
        },
        sweep_rows: sweep.as_ref().map_or(0, |s| s.rows),
        sweep_seconds: sweep.as_ref().map_or(0.0, |s| round6(s.seconds)),
        k_sweep: sweep.map(|s| s.scores).unwrap_or_default(),
        space: crate::explain::SegmentSpace {
            pca_mean: pca.mean.clone(),
            components: pca.components.clone(),
            centres: kmeans
                .centres
                .chunks_exact(kmeans.dims)
                .map(<[f32]>::to_vec)
                .collect(),
            distance_p99: crate::explain::distance_p99(
                &train_assign.labels,
                train_assign.sq_dist.iter().map(|&d| f64::from(d).sqrt()),
                k,
            ),
        },
    };
    let model = SegmentationModel {
        reference_date: s.reference_date(),
        preprocessor,
        pca,
        kmeans,
        segments: segment_profiles,
        classifier,
    };
    let metrics = TrainMetrics {
        silhouette: train_m.silhouette,
        davies_bouldin: train_m.davies_bouldin,
        wcss: train_m.wcss,
        test: test_m,
        train: train_m,
        segments: model.segments.clone(),
        device: (&compute).into(),
        rows: table.matrix.rows(),
        data: DataSummary {
            source: req.source.name(),
            rows_read: table.report.rows_read,
            rejected: table.report.rejected.clone(),
            missing: table.report.missing.clone(),
            train_rows: train_idx.len(),
            test_rows: test_idx.len(),
            source_issues,
            validation: checked.report.summary(),
        },
        seed: s.split.seed,
        k,
        kmeans: KMeansSummary {
            n_init,
            n_iter: model.kmeans.n_iter,
            best_restart: model.kmeans.best_restart,
            inertia: model.kmeans.inertia,
        },
        pca_explained_variance_ratio: model.pca.explained_variance_ratio.clone(),
        classifier: classifier_report,
        seconds: Default::default(),
        streamed: None,
    };

    progress.check()?;
    std::fs::create_dir_all(&req.out_dir).map_err(|e| Error::io(&req.out_dir, e))?;
    let feature_profile = crate::validate::feature_profile(&train_raw, &s.validation);
    let outcome = TrainOutcome {
        model,
        metrics,
        run_dir: req.out_dir.clone(),
        train_labels: train_assign.labels,
        test_labels: test_assign.labels,
        test_raw,
        train_raw,
        segmentation,
        matching: matching
            .zip(req.previous.as_ref())
            .map(|(m, p)| (p.version.clone(), m)),
        data: DataFingerprint::of(&req.source.name(), &table.matrix),
        validation: checked.report,
        profile: checked.profile,
        feature_profile,
        drift_blocks_promotion: checked.drift_blocks_promotion,
    };
    Ok(Fitted {
        outcome,
        train_idx,
        test_idx,
    })
}

/// The ingest stage: the records of the request's source, and what the source reported.
fn read(
    req: &TrainRequest,
    progress: &Progress,
) -> Result<(
    polars::prelude::DataFrame,
    crate::ingest::mongo::SourceReport,
)> {
    let bar = progress.bar(Stage::Ingest, 0, format!("Reading {}", req.source.name()))?;
    let (raw, source_issues) = req.source.load_reported(&mut |done, total| {
        bar.set_length(total);
        bar.set_position(done)
    })?;
    bar.finish(format!("Read {} records", raw.height()));
    for line in crate::ingest::mongo::report_lines(&source_issues) {
        tracing::warn!("{}: {line}", req.source.name());
    }
    Ok((raw, source_issues))
}

/// What the validation stage found.
struct Checked {
    report: crate::validate::Report,
    profile: crate::validate::Profile,
    /// The data set drifted and `validation.on_drift` is `block`.
    drift_blocks_promotion: bool,
}

/// The validation stage: the report is written to the run directory and handed to the
/// monitor whatever it says; a failed schema check stops the run with it as the error.
fn validate(
    req: &TrainRequest,
    progress: &Progress,
    raw: &polars::prelude::DataFrame,
) -> Result<Checked> {
    let s = &req.settings;
    let step = progress.step(Stage::Validate, "Validating")?;
    let (report, profile) = crate::validate::validate_and_profile(
        &req.source.name(),
        raw,
        req.reference.as_ref(),
        &s.validation,
    )?;
    let checked = checked(req, report, profile)?;
    step.finish(format!("Validation: {}", checked.report.summary()));
    Ok(checked)
}

/// What a validation report means for the run: it is written to the run directory and handed
/// to the monitor whatever it says; a failed schema check stops the run with it as the error;
/// drift is logged, and blocks promotion when `validation.on_drift` says so.
fn checked(
    req: &TrainRequest,
    report: crate::validate::Report,
    profile: crate::validate::Profile,
) -> Result<Checked> {
    std::fs::create_dir_all(&req.out_dir).map_err(|e| Error::io(&req.out_dir, e))?;
    write_json(&req.out_dir.join("validation.json"), &report)?;
    if let Some(m) = &req.monitor {
        m.validated(&report);
    }
    if !report.schema.passed {
        return Err(Error::rejected("data validation", report));
    }
    let drift_blocks_promotion = req.settings.validation.on_drift
        == crate::config::DriftAction::Block
        && report.drift.as_ref().is_some_and(|d| d.dataset_drift);
    if report.drift.as_ref().is_some_and(|d| d.drifted_columns > 0) {
        tracing::warn!("{}", report.summary());
    }
    Ok(Checked {
        report,
        profile,
        drift_blocks_promotion,
    })
}

/// The features stage: the 21 features of the usable rows; too few of them stops the run.
fn engineer(
    req: &TrainRequest,
    progress: &Progress,
    raw: polars::prelude::DataFrame,
) -> Result<features::FeatureTable> {
    let step = progress.step(Stage::Features, "Engineering features")?;
    let table = features::engineer(&raw, req.settings.reference_date())?;
    drop(raw);
    step.finish(format!(
        "{} rows usable, {} set aside",
        table.report.rows_kept,
        table.report.rows_rejected()
    ));
    for line in table.report.summary_lines() {
        tracing::warn!("set aside: {line}");
    }
    if table.matrix.rows() < 2 * req.settings.segmentation.max_k() + 2 {
        return Err(Error::NoUsableRows(describe(&table.report)));
    }
    Ok(table)
}

/// The segments found on the training split: PCA, KMeans with segments in canonical order,
/// and the training rows' embedding and assignment.
struct Segmentation {
    pca: Pca,
    kmeans: KMeansModel,
    emb_train: Vec<f32>,
    train_assign: Assignment,
    n_init: usize,
    sweep: Option<sweep::Sweep>,
    /// The segments matched to the previous model's, by (final) id.
    matching: Option<lineage::Matching>,
}

impl Segmentation {
    /// The embedding and the nearest segment of preprocessed rows.
    fn embed_and_assign(&self, x: &Matrix, dev: &Device) -> (Vec<f32>, Assignment) {
        let emb = self.pca.transform(&tensor::upload(x, dev));
        let assignment = self.kmeans.assign(&emb);
        (tensor::download(emb), assignment)
    }
}

/// The PCA and KMeans stages on the preprocessed training rows: k chosen by the sweep when
/// `segmentation.k` is `auto`, ids in canonical (spending) order, or matched to the previous
/// model's segments when there is one.
fn segment(
    s: &Settings,
    progress: &Progress,
    watch: &mut Stopwatch,
    (train_raw, train_x): (&Matrix, &Matrix),
    dev: &Device,
    previous: Option<&Previous>,
) -> Result<Segmentation> {
    let step = progress.step(Stage::Pca, "PCA")?;
    let x = tensor::upload(train_x, dev);
    let pca = Pca::fit(&x, s.segmentation.pca_components);
    let emb_train_t = pca.transform(&x);
    drop(x);
    let emb_train = tensor::download(emb_train_t.clone());
    step.finish(format!("PCA: {} components", pca.components.len()));
    watch.lap(Stage::Pca);

    let mut params = KMeansParams {
        k: s.segmentation.fixed_k().unwrap_or(0),
        n_init: s.segmentation.n_init,
        max_iter: s.segmentation.max_iter,
        tolerance: s.segmentation.tolerance,
        seed: s.split.seed,
    };
    let sweep = match s.segmentation.fixed_k() {
        Some(_) => None,
        None => {
            let [low, high] = s.segmentation.k_range;
            let step = progress.step(Stage::KMeans, format!("Choosing k in {low}..={high}"))?;
            let started = Instant::now();
            let mut found = sweep::sweep(
                &emb_train,
                pca.components.len(),
                s.segmentation.k_range,
                &params,
                s.segmentation.sweep_sample,
                |_| progress.check(),
            )?;
            found.seconds = started.elapsed().as_secs_f64();
            params.k = found.chosen;
            step.finish(format!(
                "k = {} chosen in {low}..={high} on {} rows",
                found.chosen, found.rows
            ));
            Some(found)
        }
    };
    let k = params.k;
    let bar = progress.bar(Stage::KMeans, params.max_iter as u64, "KMeans")?;
    let (mut km, mut train_assign) =
        kmeans::fit(&emb_train_t, &params, |i| bar.set_position(i as u64))?;
    bar.finish(format!(
        "KMeans: k = {k}, {} restarts, {} iterations",
        params.n_init, km.n_iter
    ));
    let order = segments::canonical_order(train_raw, &train_assign.labels, k);
    km.reorder(&order);
    segments::relabel(&mut train_assign.labels, &order);
    let matching = previous.map(|p| {
        let old: Vec<Vec<f64>> = p
            .segments
            .iter()
            .map(|s| lineage::means_vector(&s.means))
            .collect();
        let new = segments::means(train_raw, &train_assign.labels, k);
        let m = lineage::match_segments(&old, &new, &lineage::feature_scale(train_raw));
        // ids[canonical] = final id; order[final id] = canonical.
        let ids = lineage::plan_ids(&m.old);
        let mut order = vec![0; k];
        for (c, &id) in ids.iter().enumerate() {
            order[id] = c;
        }
        km.reorder(&order);
        segments::relabel(&mut train_assign.labels, &order);
        lineage::Matching {
            old: order.iter().map(|&c| m.old[c]).collect(),
            distance: order.iter().map(|&c| m.distance[c]).collect(),
            threshold: m.threshold,
        }
    });
    watch.lap(Stage::KMeans);
    Ok(Segmentation {
        pca,
        kmeans: km,
        emb_train,
        train_assign,
        n_init: params.n_init,
        sweep,
        matching,
    })
}

fn describe(report: &RowReport) -> String {
    let mut text = format!(
        "{} rows read, {} usable",
        report.rows_read, report.rows_kept
    );
    for line in report.summary_lines() {
        text.push_str("; ");
        text.push_str(&line);
    }
    text
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// `row,split,segment` for every usable input row (row = 1-based record number in the input).
fn write_assignments(
    path: &Path,
    source_rows: &[u32],
    train: (&[usize], &[u32]),
    test: (&[usize], &[u32]),
) -> Result<()> {
    let mut rows: Vec<(u32, &str, u32)> = Vec::with_capacity(source_rows.len());
    for (split, (idx, labels)) in [("train", train), ("test", test)] {
        rows.extend(
            idx.iter()
                .zip(labels)
                .map(|(&i, &l)| (source_rows[i] + 1, split, l)),
        );
    }
    rows.sort_unstable_by_key(|r| r.0);
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let io = |e| Error::io(path, e);
    writeln!(w, "row,split,segment").map_err(io)?;
    for (row, split, seg) in rows {
        writeln!(w, "{row},{split},{seg}").map_err(io)?;
    }
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_hashes_every_value_s_bytes_in_order() {
        // 40,000 values: more than one block.
        let values: Vec<f32> = (0..40_000).map(|i| i as f32 * 0.37 - 5.0).collect();
        let x = Matrix::new(2_000, 20, values.clone());
        let mut h = Sha256::new();
        for v in &values {
            h.update(v.to_le_bytes());
        }
        let fp = DataFingerprint::of("s", &x);
        assert_eq!(fp.sha256, hex::encode(h.finalize()));
        assert_eq!((fp.source.as_str(), fp.rows), ("s", 2_000));
        let mut other = values;
        other.swap(0, 39_999);
        assert_ne!(
            DataFingerprint::of("s", &Matrix::new(2_000, 20, other)).sha256,
            fp.sha256
        );
    }
}
