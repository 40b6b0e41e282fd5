//! A stored model's manifest (what it is, how it was made, how good it is) and
//! [`ServedModel`]: a manifest with its ONNX Runtime session, loaded and checked.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::{MANIFEST_FILE, MODEL_FILE, ModelStore};
use crate::error::{Error, Result};
use crate::inference::{OnnxModel, SessionOptions};
pub use crate::schema::{FeatureSpec, feature_specs};
use crate::train::segments::SegmentProfile;
use crate::train::{DataFingerprint, TrainMetrics};

impl<'a> From<&'a Manifest> for crate::sql::Model<'a> {
    fn from(m: &'a Manifest) -> Self {
        Self {
            version: &m.version,
            reference_date: &m.reference_date,
            features: &m.features,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parity {
    pub rows: usize,
    pub segments_agree: usize,
    pub max_probability_diff: f64,
    pub max_embedding_diff: f64,
    pub tolerance: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub rule: String,
    pub promoted: bool,
    pub weighted_f1: f64,
    pub previous_version: Option<String>,
    pub previous_weighted_f1: Option<f64>,
    /// What decided: `weighted_f1` (the same k: the current model scored on this model's
    /// labels) or `silhouette` (a different k, where label-based F1 means nothing: each
    /// model's assignment of the same held-out customers, in one standardised feature space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criterion: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silhouette: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_silhouette: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: String,
    pub created_at: String,
    pub project_version: String,
    pub onnxruntime_version: String,
    pub onnx: OnnxInfo,
    pub data: DataFingerprint,
    pub reference_date: String,
    pub features: Vec<FeatureSpec>,
    pub k: usize,
    pub segments: Vec<SegmentProfile>,
    pub classifier: String,
    pub device: crate::train::ComputeDeviceInfo,
    pub parity: Parity,
    pub promotion: Promotion,
    pub metrics: TrainMetrics,
    /// What the service draws the segments with (absent from models published before it).
    #[serde(default)]
    pub embedding: EmbeddingMap,
    /// The training records' profile: the reference the next training run's data is checked
    /// for drift against (absent from models published before validation existed).
    #[serde(default)]
    pub data_profile: Option<crate::validate::Profile>,
    /// The profile of the 21 features of the training split: the reference that live
    /// monitoring compares the customers the model scores with. None: published before
    /// monitoring existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_profile: Option<crate::validate::Profile>,
    /// The validation report of the run that trained this model.
    #[serde(default)]
    pub validation: Option<crate::validate::Report>,
    /// How k was chosen, and the space explanations and the atypical flag are computed in
    /// (absent from models published before them).
    #[serde(default)]
    pub segmentation: Option<crate::train::SegmentationInfo>,
    /// How this model's segments relate to the model that was current when it was trained
    /// (absent for the first model of a store).
    #[serde(default)]
    pub lineage: Option<crate::train::lineage::Lineage>,
    /// The version this one was made from by renaming a segment (same ONNX model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// The 21 features as SQL, one file per dialect, stored beside the model (absent from
    /// models published before the export existed: `categorizer export sql` writes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sql: Vec<SqlFile>,
}

/// One stored SQL file of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlFile {
    pub dialect: String,
    pub file: String,
    pub sha256: String,
}

impl Manifest {
    /// The segments' names, means and explanation space, as answers are told with them.
    pub fn explainer(&self) -> crate::explain::Segments {
        crate::explain::Segments {
            names: self.segments.iter().map(|s| s.name.clone()).collect(),
            means: self
                .segments
                .iter()
                .map(|s| crate::train::lineage::means_vector(&s.means))
                .collect(),
            space: self
                .segmentation
                .as_ref()
                .map(|s| s.space.clone())
                .filter(|s| s.k() == self.k),
        }
    }

    /// Refuses a model the service cannot serve in place of the one it serves: another
    /// feature schema (the form, the API and the ONNX input are all built on it).
    pub fn check_compatible(&self) -> Result<()> {
        let want = feature_specs();
        if self.features.len() != want.len()
            || self.features.iter().zip(&want).any(|(a, b)| a.key != b.key)
        {
            let got: Vec<&str> = self.features.iter().map(|f| f.key.as_str()).collect();
            return Err(Error::Model(format!(
                "model {} expects the features [{}], this service serves [{}]",
                self.version,
                got.join(", "),
                want.iter()
                    .map(|f| f.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }
}

/// What a new training run takes from the store's current model: its training-data profile
/// (the drift reference) and its segments (the new ones are matched to them). Nones (with a
/// warning) when there is no current model or it cannot be read.
pub fn current_reference(
    store: &dyn ModelStore,
) -> (
    Option<crate::validate::Profile>,
    Option<crate::train::Previous>,
) {
    let read = || -> Result<Option<Manifest>> {
        let Some(version) = store.current()? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(
            &store.get(&version, MANIFEST_FILE)?,
        )?))
    };
    match read() {
        Ok(Some(m)) => {
            if m.data_profile.is_none() {
                tracing::warn!(
                    "model {} has no data profile: drift is not measured",
                    m.version
                );
            }
            let previous = crate::train::Previous {
                version: m.version,
                segments: m.segments,
            };
            (m.data_profile, Some(previous))
        }
        Ok(None) => (None, None),
        Err(e) => {
            tracing::warn!(
                "the current model's manifest could not be read ({e}): drift is not measured \
                 and segments are not matched to it"
            );
            (None, None)
        }
    }
}

/// The segments in the 2-D embedding: the KMeans centres and a sample of held-out customers
/// with their segments, for the pictures on the result and model pages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingMap {
    /// `[x, y]` of each segment's centre, in segment order.
    pub centres: Vec<[f32; 2]>,
    /// `[x, y, segment]` of up to [`EMBEDDING_SAMPLE`] held-out customers.
    pub sample: Vec<[f32; 3]>,
}

/// Held-out customers kept in the manifest's [`EmbeddingMap`].
pub const EMBEDDING_SAMPLE: usize = 400;

impl EmbeddingMap {
    pub(super) fn of(centres: &[f32], dims: usize, embedding: &[f32], segments: &[i64]) -> Self {
        if dims < 2 {
            return Self::default();
        }
        let n = segments.len();
        let stride = n.div_ceil(EMBEDDING_SAMPLE).max(1);
        Self {
            centres: centres.chunks_exact(dims).map(|c| [c[0], c[1]]).collect(),
            sample: (0..n)
                .step_by(stride)
                .map(|i| {
                    let e = &embedding[i * dims..];
                    [e[0], e[1], segments[i] as f32]
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnnxInfo {
    pub file: String,
    pub sha256: String,
    pub bytes: usize,
    pub ir_version: i64,
    pub opsets: Vec<(String, i64)>,
    pub input: String,
    pub outputs: Vec<String>,
}

/// A model loaded for serving.
#[derive(Debug)]
pub struct ServedModel {
    pub manifest: Manifest,
    pub onnx: OnnxModel,
    /// The model file, for more sessions over it.
    bytes: std::sync::Arc<[u8]>,
}

impl ServedModel {
    /// Loads a model directory, or the current model of a store directory.
    pub fn open(dir: &Path, options: &SessionOptions) -> Result<Self> {
        // Nothing can be served without the runtime: say so before looking at the model.
        crate::inference::runtime(options.library.as_deref())?;
        let dir = if dir.join(MODEL_FILE).is_file() {
            dir.to_path_buf()
        } else {
            let store = super::store::LocalStore::new(dir);
            match store.current()? {
                Some(v) => store.version_dir(&v),
                None => {
                    return Err(Error::Model(format!(
                        "{}: no {MODEL_FILE} here and no current model in it as a store \
                         (run `categorizer train` first)",
                        dir.display()
                    )));
                }
            }
        };
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|e| Error::io(&path, e))
        };
        Self::from_files(
            &read(MANIFEST_FILE)?,
            &read(MODEL_FILE)?,
            &dir.display().to_string(),
            options,
        )
    }

    /// Loads one version from a store.
    pub fn from_store(
        store: &dyn ModelStore,
        version: &str,
        options: &SessionOptions,
    ) -> Result<Self> {
        Self::from_files(
            &store.get(version, MANIFEST_FILE)?,
            &store.get(version, MODEL_FILE)?,
            version,
            options,
        )
    }

    /// A manifest and its model, both read; errors name `<label>/<file>`.
    pub fn from_files(
        manifest: &[u8],
        model: &[u8],
        label: &str,
        options: &SessionOptions,
    ) -> Result<Self> {
        let manifest: Manifest = serde_json::from_slice(manifest)
            .map_err(|e| Error::Model(format!("{label}/{MANIFEST_FILE}: {e}")))?;
        // The model file is the one the manifest describes: not truncated, not swapped.
        let sha = hex::encode(Sha256::digest(model));
        if !sha.eq_ignore_ascii_case(&manifest.onnx.sha256) {
            return Err(Error::Model(format!(
                "{label}/{MODEL_FILE}: its SHA-256 is {sha}, the manifest says {}; \
                 the file is damaged or not this manifest's model",
                manifest.onnx.sha256
            )));
        }
        let onnx = OnnxModel::from_bytes(model, options).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{label}/{MODEL_FILE}: {m}")),
            other => other,
        })?;
        manifest.check_compatible()?;
        if onnx.k() != manifest.k {
            return Err(Error::Model(format!(
                "{label}: the model has {} segments, its manifest {}",
                onnx.k(),
                manifest.k
            )));
        }
        Ok(Self {
            manifest,
            onnx,
            bytes: model.into(),
        })
    }

    /// Another session over the same model (one per thread that scores in parallel).
    pub fn session(&self, options: &SessionOptions) -> Result<OnnxModel> {
        OnnxModel::from_bytes(&self.bytes, options)
    }
}
