//! The PCA and KMeans stages on the preprocessed training rows: k chosen by the sweep when
//! `segmentation.k` is `auto`, segment ids in canonical (spending) order, or matched to the
//! previous model's segments when there is one.

use std::time::Instant;

use burn::prelude::*;

use super::kmeans::{self, Assignment, KMeansModel, KMeansParams};
use super::pca::Pca;
use super::progress::{Progress, Stage};
use super::stopwatch::Stopwatch;
use super::{Previous, lineage, segments, sweep, tensor};
use crate::config::Settings;
use crate::error::Result;
use crate::matrix::Matrix;

/// The segments found on the training split: PCA, KMeans with segments in canonical order,
/// and the training rows' embedding and assignment.
pub(super) struct Segmentation {
    pub(super) pca: Pca,
    pub(super) kmeans: KMeansModel,
    pub(super) emb_train: Vec<f32>,
    pub(super) train_assign: Assignment,
    pub(super) n_init: usize,
    pub(super) sweep: Option<sweep::Sweep>,
    /// The segments matched to the previous model's, by (final) id.
    pub(super) matching: Option<lineage::Matching>,
}

impl Segmentation {
    /// The embedding and the nearest segment of preprocessed rows.
    pub(super) fn embed_and_assign(&self, x: &Matrix, dev: &Device) -> (Vec<f32>, Assignment) {
        let emb = self.pca.transform(&tensor::upload(x, dev));
        let assignment = self.kmeans.assign(&emb);
        (tensor::download(emb), assignment)
    }
}

/// The PCA and KMeans stages on the preprocessed training rows: k chosen by the sweep when
/// `segmentation.k` is `auto`, ids in canonical (spending) order, or matched to the previous
/// model's segments when there is one.
pub(super) fn segment(
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
        None => Some(choose_k(
            s,
            progress,
            &emb_train,
            pca.components.len(),
            &params,
        )?),
    };
    if let Some(found) = &sweep {
        params.k = found.chosen;
    }
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
    let matching = previous.map(|p| match_previous(p, train_raw, k, &mut km, &mut train_assign));
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

/// The k sweep (`segmentation.k: auto`) on the training embedding, timed; `params.k` is not
/// read.
fn choose_k(
    s: &Settings,
    progress: &Progress,
    emb_train: &[f32],
    dims: usize,
    params: &KMeansParams,
) -> Result<sweep::Sweep> {
    let [low, high] = s.segmentation.k_range;
    let step = progress.step(Stage::KMeans, format!("Choosing k in {low}..={high}"))?;
    let started = Instant::now();
    let mut found = sweep::sweep(
        emb_train,
        dims,
        s.segmentation.k_range,
        params,
        s.segmentation.sweep_sample,
        |_| progress.check(),
    )?;
    found.seconds = started.elapsed().as_secs_f64();
    step.finish(format!(
        "k = {} chosen in {low}..={high} on {} rows",
        found.chosen, found.rows
    ));
    Ok(found)
}

/// Matches the canonical segments to the previous model's and renumbers the model and the
/// training labels so each matched segment keeps its old id.
fn match_previous(
    p: &Previous,
    train_raw: &Matrix,
    k: usize,
    km: &mut KMeansModel,
    train_assign: &mut Assignment,
) -> lineage::Matching {
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
}
