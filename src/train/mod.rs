//! Training: from a data source to a fitted segmentation and a run directory.
//!
//! ingest → features → seeded 80/20 split (scikit-learn's, row for row) → preprocessing fitted on the training rows →
//! PCA(2) and KMeans on the training device → canonical segment ids → metrics. The test split
//! is assigned by the fitted model, never re-clustered. The run directory holds the fitted
//! parameters (`model.json`), `metrics.json` and every row's segment (`assignments.csv`).

pub mod classifier;
mod clustering;
pub mod device;
mod fitting;
pub mod kmeans;
pub mod lineage;
pub mod metrics;
pub mod pca;
mod prepare;
pub mod progress;
pub mod sample;
pub mod segments;
pub mod split;
mod stopwatch;
mod stream;
pub mod sweep;
pub mod tensor;

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{DeviceChoice, Settings};
use crate::dates::ReferenceDate;
use crate::error::{Error, Result};
use crate::features;
use crate::ingest::DataSource;
use crate::matrix::Matrix;
use crate::preprocess::Preprocessor;
use classifier::{Classifier, ClassifierReport, ModelConfig};
use device::ComputeDevice;
use kmeans::{Assignment, KMeansModel};
use metrics::ClusterMetrics;
use pca::Pca;
use progress::Progress;
pub use progress::Stage;
use segments::SegmentProfile;
pub use split::split_indices;
// The stages, gathered here for `run` and the streamed run (`stream`).
use fitting::{Fitted, fit};
use prepare::{Checked, checked, describe, engineer, read, validate};
use stopwatch::{Stopwatch, round6};

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
