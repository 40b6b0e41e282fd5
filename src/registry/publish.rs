//! Publishing a trained model: export to ONNX, the parity check against the in-process model
//! through ONNX Runtime, the evaluation gate against the store's current model, and the
//! store write (the current pointer moves only for a promoted model).

use sha2::{Digest, Sha256};

use super::manifest::{
    EmbeddingMap, Manifest, OnnxInfo, Parity, Promotion, ServedModel, feature_specs,
};
use super::store::{MANIFEST_FILE, MODEL_FILE, ModelStore};
use crate::dates::{compact, rfc3339};
use crate::error::{Error, Result};
use crate::inference::{OnnxModel, SessionOptions};
use crate::matrix::Matrix;
use crate::onnx::export;
use crate::schema::FEATURES;
use crate::train::classifier::evaluate;
use crate::train::{SegmentationModel, TrainOutcome, lineage};

/// Largest allowed |p_onnx - p_in_process| at export.
pub const PARITY_TOLERANCE: f64 = 1e-5;
/// The promotion rule, stated in every manifest.
pub const PROMOTION_RULE: &str = "promoted when the store has no current model, or when this \
     model's weighted F1 on this run's test split is strictly higher than the current model's \
     on the same rows (the current model is run through ONNX Runtime on them); when the two \
     differ in k, labels cannot be compared, and the model promoted is the one whose \
     segments of those rows (each model's own ONNX prediction) have the strictly higher mean \
     silhouette in one common space: the 21 raw features standardised over those rows \
     (missing values at the mean), on a seeded sample of at most 5000 rows";

/// Rows the different-k gate's silhouettes are measured on at most (O(n²)).
const FAIR_GATE_ROWS: usize = 5000;

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
    let bytes = export::export(model, metadata(outcome, &created_at));
    let sha = hex::encode(Sha256::digest(&bytes));
    let version = new_version(store, created, &sha)?;

    // Parity: ONNX Runtime vs the in-process pipeline on the held-out rows.
    let (got, parity) = check_parity(outcome, &bytes, options)?;
    let test = &outcome.test_raw;
    let k = model.kmeans.k;

    let lineage = outcome
        .matching
        .as_ref()
        .map(|(previous, m)| lineage(outcome, store, previous, m, &bytes, options));

    // The evaluation gate.
    let served: Vec<u32> = got.segment.iter().map(|&s| s as u32).collect();
    let f1 = evaluate(&outcome.test_labels, &served, k).f1;
    let mut promotion = gate(store, &outcome.test_labels, &served, test, k, f1, options);
    block_on_drift(outcome, &mut promotion);

    let onnx = onnx_info(model, sha, bytes.len());
    let checks = Checks {
        parity,
        promotion,
        lineage,
    };
    let mut manifest = manifest(
        outcome,
        version.clone(),
        created_at,
        onnx,
        &got,
        checks,
        options,
    )?;
    store_version(store, &version, &mut manifest, &bytes)?;
    if manifest.promotion.promoted {
        promote(store, &version, &mut manifest.promotion, || {
            gate(store, &outcome.test_labels, &served, test, k, f1, options)
        })?;
    }
    Ok(Published {
        location: format!("{}/{version}", store.describe()),
        version,
        manifest,
    })
}

/// The ONNX file's metadata: when it was made, its classifier, its data and its features.
fn metadata(outcome: &TrainOutcome, created_at: &str) -> Vec<(String, String)> {
    vec![
        ("created_at".to_string(), created_at.to_string()),
        (
            "classifier".to_string(),
            outcome.model.classifier.kind().to_string(),
        ),
        ("data_sha256".to_string(), outcome.data.sha256.clone()),
        (
            "features".to_string(),
            FEATURES.iter().map(|f| f.key).collect::<Vec<_>>().join(","),
        ),
    ]
}

/// A gate's promotion withheld when the training data drifted and `validation.on_drift` is
/// `block`.
fn block_on_drift(outcome: &TrainOutcome, promotion: &mut Promotion) {
    if outcome.drift_blocks_promotion && promotion.promoted {
        promotion.promoted = false;
        promotion.note = format!(
            "not promoted: the training data drifted from the current model's ({}); \
             validation.on_drift is block",
            outcome.validation.summary()
        );
    }
}

/// The manifest's description of the ONNX file: its checksum, size, opsets and signature.
fn onnx_info(model: &SegmentationModel, sha: String, bytes: usize) -> OnnxInfo {
    let k = model.kmeans.k;
    OnnxInfo {
        file: MODEL_FILE.into(),
        sha256: sha,
        bytes,
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
            format!(
                "{}: float32[N, {}]",
                export::OUT_PREPROCESSED,
                FEATURES.len()
            ),
        ],
    }
}

/// What publishing checked: parity with the in-process model, the gate's decision, and the
/// lineage to the previous model's segments.
struct Checks {
    parity: Parity,
    promotion: Promotion,
    lineage: Option<lineage::Lineage>,
}

/// The version's manifest (its SQL files not yet listed): the model, its data, the checks,
/// and the held-out rows' embedding map (`got`: ONNX Runtime's answer on them).
fn manifest(
    outcome: &TrainOutcome,
    version: String,
    created_at: String,
    onnx: OnnxInfo,
    got: &crate::inference::Predictions,
    checks: Checks,
    options: &SessionOptions,
) -> Result<Manifest> {
    let model = &outcome.model;
    Ok(Manifest {
        version,
        created_at,
        project_version: env!("CARGO_PKG_VERSION").into(),
        onnxruntime_version: crate::inference::runtime(options.library.as_deref())?
            .version
            .clone(),
        onnx,
        data: outcome.data.clone(),
        reference_date: {
            let r = &model.reference_date;
            format!("{:04}-{:02}-{:02}", r.year, r.month, r.day)
        },
        features: feature_specs(),
        k: model.kmeans.k,
        segments: model.segments.clone(),
        classifier: model.classifier.kind().into(),
        device: outcome.metrics.device.clone(),
        parity: checks.parity,
        promotion: checks.promotion,
        metrics: outcome.metrics.clone(),
        embedding: EmbeddingMap::of(
            &model.kmeans.centres,
            model.kmeans.dims,
            &got.embedding,
            &got.segment,
        ),
        data_profile: Some(outcome.profile.clone()),
        feature_profile: Some(outcome.feature_profile.clone()),
        validation: Some(outcome.validation.clone()),
        segmentation: Some(outcome.segmentation.clone()),
        lineage: checks.lineage,
        renamed_from: None,
        sql: Vec::new(),
    })
}

/// Writes the version to the store: the ONNX model, the manifest (listing the SQL files) and
/// the features as SQL, one file per dialect.
fn store_version(
    store: &dyn ModelStore,
    version: &str,
    manifest: &mut Manifest,
    bytes: &[u8],
) -> Result<()> {
    let sql = with_sql(manifest)?;
    let json = serde_json::to_vec_pretty(&*manifest)?;
    let mut files: Vec<(&str, &[u8])> = vec![(MODEL_FILE, bytes), (MANIFEST_FILE, &json)];
    files.extend(
        sql.iter()
            .map(|(name, text)| (name.as_str(), text.as_bytes())),
    );
    store.put(version, &files)
}

/// The lineage of a model whose segments were matched to `previous`'s: the matching, and the
/// training customers as both models score them (no table when `previous` cannot be scored).
fn lineage(
    outcome: &TrainOutcome,
    store: &dyn ModelStore,
    previous: &str,
    m: &lineage::Matching,
    bytes: &[u8],
    options: &SessionOptions,
) -> lineage::Lineage {
    let compared = ServedModel::from_store(store, previous, options).and_then(|mut old| {
        let mut new = OnnxModel::from_bytes(bytes, options)?;
        migration_between(&mut old.onnx, &mut new, &outcome.train_raw)
    });
    let (migration, ari) = match compared {
        Ok((table, ari)) => (table, Some(ari)),
        Err(e) => {
            tracing::warn!("the previous model {previous} could not score the training rows: {e}");
            (Vec::new(), None)
        }
    };
    lineage::Lineage {
        previous_version: previous.into(),
        rule: lineage::MATCH_RULE.into(),
        matched: lineage::by_id(&m.old),
        match_distance: lineage::by_id(&m.distance),
        match_threshold: m.threshold,
        migration,
        adjusted_rand_index: ari,
        rows: outcome.train_raw.rows(),
    }
}

/// Rows per inference call when two models score a whole data set.
const COMPARE_CHUNK_ROWS: usize = 65_536;

/// Scores `raw` with both models: `table[a's segment][b's segment]` and the adjusted Rand index.
pub fn migration_between(
    a: &mut OnnxModel,
    b: &mut OnnxModel,
    raw: &Matrix,
) -> Result<(Vec<Vec<usize>>, f64)> {
    let mut table = vec![vec![0usize; b.k()]; a.k()];
    let (mut pa, mut pb) = Default::default();
    for chunk in raw.as_slice().chunks(COMPARE_CHUNK_ROWS * FEATURES.len()) {
        let rows = chunk.len() / FEATURES.len();
        a.predict_into(chunk, rows, &mut pa)?;
        b.predict_into(chunk, rows, &mut pb)?;
        let t: &crate::inference::Predictions = &pa;
        for (&x, &y) in t.segment.iter().zip(&pb.segment) {
            table[x as usize][y as usize] += 1;
        }
    }
    let ari = lineage::adjusted_rand_index(&table);
    Ok((table, ari))
}

/// A new version id: the creation time and the model's checksum; the same model trained twice
/// within a second would get the same id, so repeats are numbered.
pub(super) fn new_version(store: &dyn ModelStore, created: u64, sha: &str) -> Result<String> {
    let base = format!("{}-{}", compact(created), &sha[..8]);
    let existing = store.versions()?;
    Ok((0..)
        .map(|i| {
            if i == 0 {
                base.clone()
            } else {
                format!("{base}-{i}")
            }
        })
        .find(|v| !existing.contains(v))
        .expect("an unused version id"))
}

/// Runs the exported model through ONNX Runtime on the held-out rows and compares it with the
/// in-process pipeline: every segment the same, probabilities within [`PARITY_TOLERANCE`].
/// ONNX Runtime's answer and the comparison; an error when they disagree.
fn check_parity(
    outcome: &TrainOutcome,
    bytes: &[u8],
    options: &SessionOptions,
) -> Result<(crate::inference::Predictions, Parity)> {
    let model = &outcome.model;
    let mut onnx = OnnxModel::from_bytes(bytes, options)?;
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

    Ok((got, parity))
}

/// The 21 raw features of `test` standardised over its rows (each feature to mean 0 and
/// standard deviation 1; a missing value at 0, the mean; a constant feature at 0), on a
/// seeded sample of at most [`FAIR_GATE_ROWS`] rows: the space both models' segments are
/// judged in when they differ in k. Returns the points and the sampled row indices.
fn common_space(test: &Matrix) -> (Vec<f32>, Vec<usize>) {
    use rand::SeedableRng;
    let (n, d) = (test.rows(), test.cols());
    let mut rows: Vec<usize> = if n > FAIR_GATE_ROWS {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xfa12_6a7e);
        rand::seq::index::sample(&mut rng, n, FAIR_GATE_ROWS).into_vec()
    } else {
        (0..n).collect()
    };
    rows.sort_unstable();
    let mut points = vec![0f32; rows.len() * d];
    for j in 0..d {
        let col: Vec<f64> = rows
            .iter()
            .map(|&i| f64::from(test.get(i, j)))
            .filter(|v| v.is_finite())
            .collect();
        let m = col.iter().sum::<f64>() / col.len().max(1) as f64;
        let sd =
            (col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / col.len().max(1) as f64).sqrt();
        for (r, &i) in rows.iter().enumerate() {
            let v = f64::from(test.get(i, j));
            points[r * d + j] = if v.is_finite() && sd > 0.0 {
                ((v - m) / sd) as f32
            } else {
                0.0
            };
        }
    }
    (points, rows)
}

/// The mean silhouette of `labels` (one per row of `test`) in [`common_space`].
fn common_silhouette(space: &(Vec<f32>, Vec<usize>), dims: usize, labels: &[u32], k: usize) -> f64 {
    let sampled: Vec<u32> = space.1.iter().map(|&i| labels[i]).collect();
    crate::train::metrics::silhouette(&space.0, dims, &sampled, k)
}

fn gate(
    store: &dyn ModelStore,
    truth: &[u32],
    served: &[u32],
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
        criterion: None,
        silhouette: None,
        previous_silhouette: None,
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
    // The current model's own segments of the held-out rows, through ONNX Runtime.
    let scored = ServedModel::from_store(store, &current, options).and_then(|mut m| {
        let pred = m.onnx.predict(test.as_slice(), test.rows())?;
        let seg: Vec<u32> = pred.segment.iter().map(|&s| s as u32).collect();
        Ok((m.manifest.k, seg))
    });
    match scored {
        Ok((prev_k, seg)) if prev_k == k => {
            let prev = evaluate(truth, &seg, k).f1;
            p.criterion = Some("weighted_f1".into());
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
        Ok((prev_k, seg)) => {
            // Different k: the current model's F1 on this model's labels means nothing.
            let space = common_space(test);
            let ours = common_silhouette(&space, test.cols(), served, k);
            let theirs = common_silhouette(&space, test.cols(), &seg, prev_k);
            p.criterion = Some("silhouette".into());
            p.silhouette = Some(ours);
            p.previous_silhouette = Some(theirs);
            p.promoted = ours > theirs;
            p.note = format!(
                "k = {k} against the current model's k = {prev_k}: silhouette {ours:.4} in the \
                 common standardised space {} the current model's {theirs:.4} on the same {} \
                 held-out customers{}",
                if p.promoted { "beats" } else { "does not beat" },
                space.1.len(),
                if p.promoted {
                    ""
                } else {
                    "; kept as a candidate"
                }
            );
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

/// The version's features as SQL, one file per dialect: recorded in the manifest (name and
/// SHA-256) and returned as (file, text) to be stored beside the model.
pub(crate) fn with_sql(manifest: &mut Manifest) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for dialect in crate::sql::Dialect::ALL {
        let text =
            crate::sql::features_sql((&*manifest).into(), dialect, crate::sql::DEFAULT_TABLE)?;
        entries.push(super::manifest::SqlFile {
            dialect: dialect.name().into(),
            file: dialect.file(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
        });
        files.push((dialect.file(), text));
    }
    manifest.sql = entries;
    Ok(files)
}

/// Makes `version` current if the model the gate compared it with is still current (a
/// compare-and-swap of the store's `HISTORY`). When another promotion came first, the gate
/// runs again against the model that is current now, and this one is promoted or stays a
/// candidate; `promotion` (what the job reports) says which. The stored manifest keeps the
/// first decision. No promotion is lost either way: each is a line of `HISTORY`.
fn promote(
    store: &dyn ModelStore,
    version: &str,
    promotion: &mut Promotion,
    mut regate: impl FnMut() -> Promotion,
) -> Result<()> {
    loop {
        let expected = promotion.previous_version.clone();
        match store.promote(version, Some(expected.as_deref()))? {
            Ok(()) => return Ok(()),
            Err(actual) => {
                let again = regate();
                let actual = actual.unwrap_or_else(|| "none".into());
                tracing::info!(
                    "{version}: {actual} became current while this model was gated; gated again: {}",
                    if again.promoted {
                        "promoted"
                    } else {
                        "stays a candidate"
                    }
                );
                let note = if again.promoted {
                    format!(
                        "promoted after a concurrent promotion of {actual}, gated again: {}",
                        again.note
                    )
                } else {
                    format!(
                        "not promoted: {actual} became current while this model was gated, \
                         and gated again against it: {}",
                        again.note
                    )
                };
                *promotion = Promotion { note, ..again };
                if !promotion.promoted {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::store::LocalStore;

    fn gated(previous: Option<&str>, promoted: bool) -> Promotion {
        Promotion {
            rule: PROMOTION_RULE.into(),
            promoted,
            weighted_f1: 0.9,
            previous_version: previous.map(String::from),
            previous_weighted_f1: previous.map(|_| 0.8),
            criterion: None,
            silhouette: None,
            previous_silhouette: None,
            note: if promoted { "better" } else { "worse" }.into(),
        }
    }

    #[test]
    fn a_promotion_that_loses_the_race_is_gated_again_against_the_new_current_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        for v in ["v1", "v2", "v3", "v4"] {
            store.put(v, &[(MODEL_FILE, b"m")]).unwrap();
        }
        store.set_current("v1").unwrap();
        // v3 was gated against v1; v2 was promoted meanwhile. Gated again: better than v2.
        store.set_current("v2").unwrap();
        let mut p = gated(Some("v1"), true);
        let mut regates = 0;
        promote(&store, "v3", &mut p, || {
            regates += 1;
            gated(store.current().unwrap().as_deref(), true)
        })
        .unwrap();
        assert_eq!(regates, 1);
        assert!(p.promoted);
        assert_eq!(p.previous_version.as_deref(), Some("v2"));
        assert!(p.note.contains("concurrent promotion of v2"), "{}", p.note);
        assert_eq!(store.current().unwrap().as_deref(), Some("v3"));
        // v4 was gated against v2, v3 is current now, and v4 is not better than v3: it stays
        // a candidate, and nothing is lost from the history.
        let mut p = gated(Some("v2"), true);
        promote(&store, "v4", &mut p, || {
            gated(store.current().unwrap().as_deref(), false)
        })
        .unwrap();
        assert!(!p.promoted);
        assert!(
            p.note.starts_with("not promoted: v3 became current"),
            "{}",
            p.note
        );
        assert_eq!(store.current().unwrap().as_deref(), Some("v3"));
        assert_eq!(store.history().unwrap(), ["v1", "v2", "v3"]);
    }
}
