//! The fit: everything after the features, on `table`'s rows (every usable row, or a streamed
//! source's sample): the seeded split, preprocessing, the segments, their metrics and the
//! classifiers, assembled into the run's outcome.

use burn::prelude::*;

use super::classifier::{self, Classifier, ClassifierReport};
use super::clustering::{Segmentation, segment};
use super::device::{self, ComputeDevice};
use super::kmeans::{Assignment, KMeansModel};
use super::metrics::{self, ClusterMetrics};
use super::pca::Pca;
use super::prepare::Checked;
use super::progress::{Progress, Stage};
use super::segments::{self, SegmentProfile};
use super::stopwatch::{Stopwatch, round6};
use super::{
    DataFingerprint, DataSummary, KMeansSummary, SegmentationInfo, SegmentationModel, TrainMetrics,
    TrainOutcome, TrainRequest, split_indices, sweep,
};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::features::FeatureTable;
use crate::matrix::Matrix;
use crate::preprocess::Preprocessor;

/// A fitted model, its figures, and which usable rows were its training and test splits.
pub(super) struct Fitted {
    pub(super) outcome: TrainOutcome,
    pub(super) train_idx: Vec<usize>,
    pub(super) test_idx: Vec<usize>,
}

/// The seeded split of the usable rows: their indices and raw features.
struct Split {
    train_idx: Vec<usize>,
    test_idx: Vec<usize>,
    train_raw: Matrix,
    test_raw: Matrix,
}

/// The Metrics stage's figures: both splits' clustering quality in the embedding, the test
/// split's assignment, and the segments' profiles.
struct Evaluation {
    train: ClusterMetrics,
    test: ClusterMetrics,
    test_assign: Assignment,
    profiles: Vec<SegmentProfile>,
}

/// What the fitting stages produced, before it is assembled into the outcome.
struct Stages {
    split: Split,
    preprocessor: Preprocessor,
    compute: ComputeDevice,
    seg: Segmentation,
    evaluation: Evaluation,
    classifier: Classifier,
    classifier_report: ClassifierReport,
}

/// Everything after the features: the seeded split, preprocessing, PCA, KMeans, the
/// segments, the metrics and the classifiers, on `table`'s rows (every usable row, or a
/// streamed source's sample). Creates the run directory; writes nothing else.
pub(super) fn fit(
    req: &TrainRequest,
    progress: &Progress,
    watch: &mut Stopwatch,
    table: &FeatureTable,
    checked: Checked,
    source_issues: crate::ingest::mongo::SourceReport,
) -> Result<Fitted> {
    let s = &req.settings;
    let (train_idx, test_idx) =
        split_indices(table.matrix.rows(), s.split.test_fraction, s.split.seed);
    let split = Split {
        train_raw: table.matrix.gather_rows(&train_idx),
        test_raw: table.matrix.gather_rows(&test_idx),
        train_idx,
        test_idx,
    };
    watch.lap(Stage::Split);

    let (preprocessor, train_x, test_x) = preprocess(progress, &split)?;
    watch.lap(Stage::Preprocess);
    let compute = start_device(req, progress)?;
    let dev = compute.device.clone();
    watch.lap(Stage::Device);

    let seg = segment(
        s,
        progress,
        watch,
        (&split.train_raw, &train_x),
        &dev,
        req.previous.as_ref(),
    )?;
    let evaluation = evaluate(req, progress, &seg, (&split.train_raw, &test_x), &dev)?;
    watch.lap(Stage::Metrics);
    let (classifier, classifier_report) =
        train_classifier(req, progress, &seg, &evaluation, (&train_x, &test_x), &dev)?;
    watch.lap(Stage::Classifier);

    let stages = Stages {
        split,
        preprocessor,
        compute,
        seg,
        evaluation,
        classifier,
        classifier_report,
    };
    outcome(req, progress, table, checked, source_issues, stages)
}

/// The Preprocess stage: fitted on the training split, applied to both splits.
fn preprocess(progress: &Progress, split: &Split) -> Result<(Preprocessor, Matrix, Matrix)> {
    let step = progress.step(Stage::Preprocess, "Fitting preprocessing")?;
    let preprocessor = Preprocessor::fit(&split.train_raw);
    let train_x = preprocessor.transform(&split.train_raw);
    let test_x = preprocessor.transform(&split.test_raw);
    step.finish("Preprocessing fitted on the training split");
    Ok((preprocessor, train_x, test_x))
}

/// The Device stage: the compute device the request chose.
fn start_device(req: &TrainRequest, progress: &Progress) -> Result<ComputeDevice> {
    let step = progress.step(Stage::Device, "Starting the compute device")?;
    let compute = device::select(req.device)?;
    step.finish(format!("Device: {compute}"));
    Ok(compute)
}

/// The Metrics stage: the test split assigned by the fitted model (never re-clustered), both
/// splits' clustering quality, and the segments' profiles on the training split.
fn evaluate(
    req: &TrainRequest,
    progress: &Progress,
    seg: &Segmentation,
    (train_raw, test_x): (&Matrix, &Matrix),
    dev: &Device,
) -> Result<Evaluation> {
    let s = &req.settings;
    let k = seg.kmeans.k;
    let step = progress.step(Stage::Metrics, "Evaluating")?;
    let (emb_test, test_assign) = seg.embed_and_assign(test_x, dev);
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
    let (train, test) = (
        evaluate(&seg.emb_train, &seg.train_assign),
        evaluate(&emb_test, &test_assign),
    );
    let profiles = profiles(req, seg, train_raw);
    step.finish("Evaluated");
    Ok(Evaluation {
        train,
        test,
        test_assign,
        profiles,
    })
}

/// The segments' profiles on the training split; a segment matched to one of the previous
/// model's keeps its name.
fn profiles(req: &TrainRequest, seg: &Segmentation, train_raw: &Matrix) -> Vec<SegmentProfile> {
    let mut profiles = segments::profiles(train_raw, &seg.train_assign.labels, seg.kmeans.k);
    if let (Some(m), Some(p)) = (&seg.matching, &req.previous) {
        let names: Vec<Option<String>> = m
            .old
            .iter()
            .map(|o| o.and_then(|o| p.segments.get(o)).map(|s| s.name.clone()))
            .collect();
        segments::adopt_names(&mut profiles, &names);
    }
    profiles
}

/// The Classifier stage: the configured classifiers trained on the training split's segments
/// and scored on the test split's; one is kept.
fn train_classifier(
    req: &TrainRequest,
    progress: &Progress,
    seg: &Segmentation,
    evaluation: &Evaluation,
    (train_x, test_x): (&Matrix, &Matrix),
    dev: &Device,
) -> Result<(Classifier, ClassifierReport)> {
    let bar = progress.bar(Stage::Classifier, 1, "Classifier")?;
    let (classifier, classifier_report) = classifier::train(
        &req.model_config,
        train_x,
        &seg.train_assign.labels,
        test_x,
        &evaluation.test_assign.labels,
        seg.kmeans.k,
        req.settings.split.seed,
        dev,
        |name, i, total| {
            bar.set_length(total as u64);
            bar.set_message(name.to_string());
            bar.set_position(i as u64)
        },
    )?;
    bar.finish(format!("Classifier: {} chosen", classifier_report.chosen));
    Ok((classifier, classifier_report))
}

/// The stages' results assembled: the model, `metrics.json`'s figures (less the timings),
/// the segmentation, the lineage and the data's records. Creates the run directory.
fn outcome(
    req: &TrainRequest,
    progress: &Progress,
    table: &FeatureTable,
    checked: Checked,
    source_issues: crate::ingest::mongo::SourceReport,
    st: Stages,
) -> Result<Fitted> {
    let s = &req.settings;
    let seg = st.seg;
    let segmentation = segmentation_info(seg.sweep, &seg.pca, &seg.kmeans, &seg.train_assign);
    let data = data_summary(req, table, &st.split, source_issues, &checked);
    let model = SegmentationModel {
        reference_date: s.reference_date(),
        preprocessor: st.preprocessor,
        pca: seg.pca,
        kmeans: seg.kmeans,
        segments: st.evaluation.profiles,
        classifier: st.classifier,
    };
    let metrics = train_metrics(
        s,
        table.matrix.rows(),
        &model,
        &st.compute,
        (st.evaluation.train, st.evaluation.test),
        data,
        seg.n_init,
        st.classifier_report,
    );

    progress.check()?;
    std::fs::create_dir_all(&req.out_dir).map_err(|e| Error::io(&req.out_dir, e))?;
    let feature_profile = crate::validate::feature_profile(&st.split.train_raw, &s.validation);
    let outcome = TrainOutcome {
        model,
        metrics,
        run_dir: req.out_dir.clone(),
        train_labels: seg.train_assign.labels,
        test_labels: st.evaluation.test_assign.labels,
        test_raw: st.split.test_raw,
        train_raw: st.split.train_raw,
        segmentation,
        matching: seg
            .matching
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
        train_idx: st.split.train_idx,
        test_idx: st.split.test_idx,
    })
}

/// How the segments were found: the sweep (or the fixed k) and the space the explanations
/// and the atypical flag are computed in.
fn segmentation_info(
    sweep: Option<sweep::Sweep>,
    pca: &Pca,
    kmeans: &KMeansModel,
    train_assign: &Assignment,
) -> SegmentationInfo {
    let k = kmeans.k;
    SegmentationInfo {
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
    }
}

/// Rows at each step, the source's issues and the validation verdict.
fn data_summary(
    req: &TrainRequest,
    table: &FeatureTable,
    split: &Split,
    source_issues: crate::ingest::mongo::SourceReport,
    checked: &Checked,
) -> DataSummary {
    DataSummary {
        source: req.source.name(),
        rows_read: table.report.rows_read,
        rejected: table.report.rejected.clone(),
        missing: table.report.missing.clone(),
        train_rows: split.train_idx.len(),
        test_rows: split.test_idx.len(),
        source_issues,
        validation: checked.report.summary(),
    }
}

/// `metrics.json`'s figures, less the stage timings (added as the run directory is written).
#[allow(clippy::too_many_arguments)]
fn train_metrics(
    s: &Settings,
    rows: usize,
    model: &SegmentationModel,
    compute: &ComputeDevice,
    (train, test): (ClusterMetrics, ClusterMetrics),
    data: DataSummary,
    n_init: usize,
    classifier: ClassifierReport,
) -> TrainMetrics {
    TrainMetrics {
        silhouette: train.silhouette,
        davies_bouldin: train.davies_bouldin,
        wcss: train.wcss,
        test,
        train,
        segments: model.segments.clone(),
        device: compute.into(),
        rows,
        data,
        seed: s.split.seed,
        k: model.kmeans.k,
        kmeans: KMeansSummary {
            n_init,
            n_iter: model.kmeans.n_iter,
            best_restart: model.kmeans.best_restart,
            inertia: model.kmeans.inertia,
        },
        pca_explained_variance_ratio: model.pca.explained_variance_ratio.clone(),
        classifier,
        seconds: Default::default(),
        streamed: None,
    }
}
