//! A served model: `model.onnx` plus `manifest.json`. [`publish`] turns a training outcome
//! into one — export, the parity check against the in-process model, the evaluation gate
//! against the store's current model — and [`ServedModel::open`] loads one back.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::inference::{OnnxModel, SessionOptions};
use crate::matrix::Matrix;
use crate::onnx::export;
use crate::schema::{FEATURES, FeatureKind};
use crate::store::{MANIFEST_FILE, MODEL_FILE, ModelStore};
use crate::train::classifier::evaluate;
use crate::train::segments::SegmentProfile;
use crate::train::{DataFingerprint, TrainMetrics, TrainOutcome};

/// Largest allowed |p_onnx - p_in_process| at export.
pub const PARITY_TOLERANCE: f64 = 1e-5;
/// The promotion rule, stated in every manifest.
pub const PROMOTION_RULE: &str = "promoted when the store has no current model, or when this \
     model's weighted F1 on this run's test split is strictly higher than the current model's \
     on the same rows (the current model is run through ONNX Runtime on them)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub index: usize,
    pub key: String,
    pub label: String,
    pub unit: String,
    pub kind: FeatureKind,
    pub choices: Vec<String>,
    pub min: f64,
    pub max: f64,
    /// May be missing (imputed); absent from manifests before it was recorded.
    #[serde(default)]
    pub nullable: bool,
    /// How the feature is made from the raw record, in words.
    #[serde(default)]
    pub derivation: String,
}

pub fn feature_specs() -> Vec<FeatureSpec> {
    FEATURES
        .iter()
        .enumerate()
        .map(|(index, f)| FeatureSpec {
            index,
            key: f.key.into(),
            label: f.label.into(),
            unit: f.unit.into(),
            kind: f.kind,
            choices: f.choices.iter().map(|c| c.to_string()).collect(),
            min: f.min,
            max: f.max,
            nullable: f.nullable(),
            derivation: f.derivation.describe(),
        })
        .collect()
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
    /// The validation report of the run that trained this model.
    #[serde(default)]
    pub validation: Option<crate::validate::Report>,
}

impl Manifest {
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

/// The training-data profile of the store's current model: the drift reference of a new
/// training run. None (with a warning) when there is no current model or it has none.
pub fn current_profile(store: &dyn ModelStore) -> Option<crate::validate::Profile> {
    let read = || -> Result<Option<crate::validate::Profile>> {
        let Some(version) = store.current()? else {
            return Ok(None);
        };
        let m: Manifest = serde_json::from_slice(&store.get(&version, MANIFEST_FILE)?)?;
        if m.data_profile.is_none() {
            tracing::warn!("model {version} has no data profile: drift is not measured");
        }
        Ok(m.data_profile)
    };
    read().unwrap_or_else(|e| {
        tracing::warn!(
            "the current model's data profile could not be read ({e}): drift is not measured"
        );
        None
    })
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
    fn of(centres: &[f32], dims: usize, embedding: &[f32], segments: &[i64]) -> Self {
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
}

impl ServedModel {
    /// Loads a model directory, or the current model of a store directory.
    pub fn open(dir: &Path, options: &SessionOptions) -> Result<Self> {
        // Nothing can be served without the runtime: say so before looking at the model.
        crate::inference::runtime(options.library.as_deref())?;
        let dir = if dir.join(MODEL_FILE).is_file() {
            dir.to_path_buf()
        } else {
            let store = crate::store::LocalStore::new(dir);
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
        Ok(Self { manifest, onnx })
    }
}

/// What [`publish`] did.
#[derive(Debug, Clone)]
pub struct Published {
    pub version: String,
    pub manifest: Manifest,
    pub location: String,
}

/// Exports `outcome`'s model, checks it through ONNX Runtime against the in-process model on
/// the held-out rows, decides promotion, and stores it.
pub fn publish(
    outcome: &TrainOutcome,
    store: &dyn ModelStore,
    options: &SessionOptions,
) -> Result<Published> {
    let model = &outcome.model;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let created_at = rfc3339(created);
    let metadata = vec![
        ("created_at".to_string(), created_at.clone()),
        (
            "classifier".to_string(),
            model.classifier.kind().to_string(),
        ),
        ("data_sha256".to_string(), outcome.data.sha256.clone()),
        (
            "features".to_string(),
            FEATURES.iter().map(|f| f.key).collect::<Vec<_>>().join(","),
        ),
    ];
    let bytes = export::export(model, metadata);
    let sha = hex::encode(Sha256::digest(&bytes));
    // The same model trained twice within a second would get the same id: number the repeats.
    let base = format!("{}-{}", compact(created), &sha[..8]);
    let existing = store.versions()?;
    let version = (0..)
        .map(|i| {
            if i == 0 {
                base.clone()
            } else {
                format!("{base}-{i}")
            }
        })
        .find(|v| !existing.contains(v))
        .expect("an unused version id");

    // Parity: ONNX Runtime vs the in-process pipeline on the held-out rows.
    let mut onnx = OnnxModel::from_bytes(&bytes, options)?;
    let test = &outcome.test_raw;
    let got = onnx.predict(test.as_slice(), test.rows())?;
    let x = model.preprocessor.transform(test);
    let want = model.classifier.predict_proba(&x);
    let k = model.kmeans.k;
    let agree = got
        .segment
        .iter()
        .zip(want.chunks_exact(k))
        .filter(|(a, p)| **a == crate::train::classifier::argmax(p) as i64)
        .count();
    let max_p = max_abs_diff(&got.probabilities, &want);
    let emb = crate::train::tensor::download(model.pca.transform(&crate::train::tensor::upload(
        &x,
        &burn::prelude::Device::flex(),
    )));
    let parity = Parity {
        rows: test.rows(),
        segments_agree: agree,
        max_probability_diff: max_p,
        max_embedding_diff: max_abs_diff(&got.embedding, &emb),
        tolerance: PARITY_TOLERANCE,
    };
    if agree != test.rows() || max_p > PARITY_TOLERANCE || got.probabilities.len() != want.len() {
        return Err(Error::Export(format!(
            "the exported model disagrees with the trained one on the held-out rows: \
             {agree}/{} segments agree, max probability difference {max_p:.3e} (allowed {:.0e})",
            test.rows(),
            PARITY_TOLERANCE
        )));
    }

    // The evaluation gate.
    let f1 = evaluate(
        &outcome.test_labels,
        &got.segment.iter().map(|&s| s as u32).collect::<Vec<_>>(),
        k,
    )
    .f1;
    let mut promotion = gate(store, &outcome.test_labels, test, k, f1, options);
    if outcome.drift_blocks_promotion && promotion.promoted {
        promotion.promoted = false;
        promotion.note = format!(
            "not promoted: the training data drifted from the current model's ({}); \
             validation.on_drift is block",
            outcome.validation.summary()
        );
    }

    let manifest = Manifest {
        version: version.clone(),
        created_at,
        project_version: env!("CARGO_PKG_VERSION").into(),
        onnxruntime_version: crate::inference::runtime(options.library.as_deref())?
            .version
            .clone(),
        onnx: OnnxInfo {
            file: MODEL_FILE.into(),
            sha256: sha,
            bytes: bytes.len(),
            ir_version: export::IR_VERSION,
            opsets: {
                let mut o = vec![(String::new(), export::OPSET)];
                if model.classifier.kind() == "gbdt" {
                    o.push(("ai.onnx.ml".into(), export::ML_OPSET));
                }
                o
            },
            input: format!("{}: float32[N, {}]", export::INPUT, FEATURES.len()),
            outputs: vec![
                format!("{}: int64[N]", export::OUT_SEGMENT),
                format!("{}: float32[N, {k}]", export::OUT_PROBABILITIES),
                format!(
                    "{}: float32[N, {}]",
                    export::OUT_EMBEDDING,
                    model.pca.components.len()
                ),
                format!("{}: float32[N, {k}]", export::OUT_DISTANCES),
            ],
        },
        data: outcome.data.clone(),
        reference_date: {
            let r = &model.reference_date;
            format!("{:04}-{:02}-{:02}", r.year, r.month, r.day)
        },
        features: feature_specs(),
        k,
        segments: model.segments.clone(),
        classifier: model.classifier.kind().into(),
        device: outcome.metrics.device.clone(),
        parity,
        promotion,
        metrics: outcome.metrics.clone(),
        embedding: EmbeddingMap::of(
            &model.kmeans.centres,
            model.kmeans.dims,
            &got.embedding,
            &got.segment,
        ),
        data_profile: Some(outcome.profile.clone()),
        validation: Some(outcome.validation.clone()),
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    store.put(&version, &[(MODEL_FILE, &bytes), (MANIFEST_FILE, &json)])?;
    if manifest.promotion.promoted {
        store.set_current(&version)?;
    }
    Ok(Published {
        location: format!("{}/{version}", store.describe()),
        version,
        manifest,
    })
}

fn gate(
    store: &dyn ModelStore,
    truth: &[u32],
    test: &Matrix,
    k: usize,
    f1: f64,
    options: &SessionOptions,
) -> Promotion {
    let mut p = Promotion {
        rule: PROMOTION_RULE.into(),
        promoted: true,
        weighted_f1: f1,
        previous_version: None,
        previous_weighted_f1: None,
        note: String::new(),
    };
    let current = match store.current() {
        Ok(Some(v)) => v,
        Ok(None) => {
            p.note = "first model in the store".into();
            return p;
        }
        Err(e) => {
            p.note = format!("the current pointer could not be read ({e}); this model replaces it");
            return p;
        }
    };
    p.previous_version = Some(current.clone());
    let scored = ServedModel::from_store(store, &current, options).and_then(|mut m| {
        if m.manifest.k != k {
            return Err(Error::Model(format!(
                "it has {} segments, not {k}",
                m.manifest.k
            )));
        }
        let pred = m.onnx.predict(test.as_slice(), test.rows())?;
        let seg: Vec<u32> = pred.segment.iter().map(|&s| s as u32).collect();
        Ok(evaluate(truth, &seg, k).f1)
    });
    match scored {
        Ok(prev) => {
            p.previous_weighted_f1 = Some(prev);
            p.promoted = f1 > prev;
            p.note = if p.promoted {
                format!("weighted F1 {f1:.4} beats the current model's {prev:.4}")
            } else {
                format!(
                    "weighted F1 {f1:.4} does not beat the current model's {prev:.4}; kept as a candidate"
                )
            };
        }
        Err(e) => {
            p.note = format!(
                "the current model {current} could not be scored ({e}); this model replaces it"
            );
        }
    }
    p
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

fn parts(secs: u64) -> (i32, u32, u32, u64, u64, u64) {
    let (d, m, y) = crate::dates::civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    (y, m, d, s / 3600, s / 60 % 60, s % 60)
}

/// `2026-11-24T10:15:00Z`.
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d, h, mi, s) = parts(secs);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20261124T101500Z`: sortable, and safe in a path or an S3 key.
fn compact(secs: u64) -> String {
    let (y, m, d, h, mi, s) = parts(secs);
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_515_300), "2026-11-24T10:15:00Z");
        assert_eq!(compact(1_795_515_300), "20261124T101500Z");
    }
}
