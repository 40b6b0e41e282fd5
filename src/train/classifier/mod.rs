//! Classifiers that predict the segment of a customer from the 21 preprocessed features, with
//! the KMeans segments as labels: gradient-boosted trees and an MLP, both burn tensor code on
//! the training device, both kept in an explicit fitted form (tree node arrays; weight
//! matrices) for export. `best` trains both and keeps the higher weighted F1 on the held-out
//! split (a tie goes to the trees).

pub mod config;
pub mod evaluate;
pub mod gbdt;
pub mod mlp;

use std::time::Instant;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::matrix::Matrix;
pub use config::{ClassifierChoice, ModelConfig};
pub use evaluate::{Evaluation, evaluate};

/// A fitted classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Classifier {
    Gbdt(gbdt::GbdtModel),
    Mlp(mlp::MlpModel),
}

impl Classifier {
    pub fn kind(&self) -> &'static str {
        match self {
            Classifier::Gbdt(_) => "gbdt",
            Classifier::Mlp(_) => "mlp",
        }
    }

    /// Class probabilities, row-major n x k.
    pub fn predict_proba(&self, x: &Matrix) -> Vec<f32> {
        match self {
            Classifier::Gbdt(m) => m.predict_proba(x),
            Classifier::Mlp(m) => m.predict_proba(x),
        }
    }

    /// The most probable class of every row.
    pub fn predict(&self, x: &Matrix) -> Vec<u32> {
        let proba = self.predict_proba(x);
        let k = proba.len() / x.rows().max(1);
        proba.chunks_exact(k.max(1)).map(argmax).collect()
    }
}

/// Index of the largest value (the first on a tie): the class of one probability row.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Appends the softmax of `margin` to `out`.
pub(crate) fn softmax_into(margin: &[f32], out: &mut Vec<f32>) {
    let max = margin.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let start = out.len();
    let mut sum = 0.0;
    for &m in margin {
        let e = (m - max).exp();
        sum += e;
        out.push(e);
    }
    out[start..].iter_mut().for_each(|v| *v /= sum);
}

/// How one classifier did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateReport {
    pub kind: String,
    pub test: Evaluation,
    pub seconds: f64,
    /// Boosting rounds kept, or MLP epochs run (best epoch in `best_epoch`).
    pub iterations: usize,
    pub best_epoch: Option<usize>,
}

/// The `classifier` section of metrics.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierReport {
    pub chosen: String,
    pub rule: String,
    pub candidates: Vec<CandidateReport>,
}

/// Training rows up to which `best` trains its two candidates side by side.
const SIDE_BY_SIDE_ROWS: usize = 100_000;

/// Trains what `config.classifier` asks for, evaluates on the test split, picks one.
#[allow(clippy::too_many_arguments)]
pub fn train(
    config: &ModelConfig,
    train_x: &Matrix,
    train_y: &[u32],
    test_x: &Matrix,
    test_y: &[u32],
    k: usize,
    seed: u64,
    device: &Device,
    mut progress: impl FnMut(&str, usize, usize) -> Result<()> + Send,
) -> Result<(Classifier, ClassifierReport)> {
    // Scores a fitted candidate on the test split and times it from `start`.
    let score = |c: Classifier, start: Instant, iterations: usize, best_epoch: Option<usize>| {
        let report = CandidateReport {
            kind: c.kind().into(),
            test: evaluate(test_y, &c.predict(test_x), k),
            seconds: start.elapsed().as_secs_f64(),
            iterations,
            best_epoch,
        };
        (c, report)
    };
    // With `best` on small data the two candidates train side by side, since neither keeps
    // the cores busy there (real data, 1792 rows: 0.25 s one after the other, 0.11-0.15 s
    // side by side). Each is deterministic on its own, so this changes no model; the progress
    // reports of the two interleave. On large data each fills the cores alone, and one after
    // the other keeps each candidate's seconds its own and the peak memory lower.
    let progress = std::sync::Mutex::new(&mut progress);
    let report = |stage: &str, done: usize, total: usize| {
        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
        (*p)(stage, done, total)
    };
    let gbdt = || -> Result<Option<(Classifier, CandidateReport)>> {
        if !matches!(
            config.classifier,
            ClassifierChoice::Gbdt | ClassifierChoice::Best
        ) {
            return Ok(None);
        }
        let start = Instant::now();
        let rounds = config.gbdt.rounds;
        let model = gbdt::fit(train_x, train_y, k, &config.gbdt, seed, device, |r| {
            report("GBDT", r, rounds)
        })?;
        // The rounds kept (early stopping may keep fewer than it ran; `early_stopping` in
        // the model says how many ran).
        let kept = model.trees.len() / k.max(1);
        Ok(Some(score(Classifier::Gbdt(model), start, kept, None)))
    };
    let mlp = || -> Result<Option<(Classifier, CandidateReport)>> {
        if !matches!(
            config.classifier,
            ClassifierChoice::Mlp | ClassifierChoice::Best
        ) {
            return Ok(None);
        }
        let start = Instant::now();
        let epochs = config.mlp.max_epochs;
        let model = mlp::fit(train_x, train_y, k, &config.mlp, seed, device, |e| {
            report("MLP", e, epochs)
        })?;
        let (iterations, best_epoch) = (model.epochs, model.best_epoch);
        Ok(Some(score(
            Classifier::Mlp(model),
            start,
            iterations,
            Some(best_epoch),
        )))
    };
    let (gbdt, mlp) = if train_x.rows() <= SIDE_BY_SIDE_ROWS {
        rayon::join(gbdt, mlp)
    } else {
        (gbdt(), mlp())
    };
    let fitted: Vec<(Classifier, CandidateReport)> = gbdt?.into_iter().chain(mlp?).collect();
    // Highest weighted F1; the earlier candidate (gbdt) wins a tie.
    let best = (0..fitted.len())
        .reduce(|a, b| {
            if fitted[b].1.test.f1 > fitted[a].1.test.f1 + 1e-9 {
                b
            } else {
                a
            }
        })
        .expect("at least one classifier is trained");
    let chosen = fitted[best].0.clone();
    let report = ClassifierReport {
        chosen: chosen.kind().into(),
        rule: "highest weighted F1 on the test split; a tie (1e-9) goes to gbdt".into(),
        candidates: fitted.into_iter().map(|(_, r)| r).collect(),
    };
    Ok((chosen, report))
}
