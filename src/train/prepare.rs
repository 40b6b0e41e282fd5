//! The stages before the fit: ingest (the source's records), validation (the report, and
//! what it means for the run) and features (the usable rows' 21 features).

use super::progress::{Progress, Stage};
use super::{TrainRequest, write_json};
use crate::error::{Error, Result};
use crate::features::{self, RowReport};

/// The ingest stage: the records of the request's source, and what the source reported.
pub(super) fn read(
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
pub(super) struct Checked {
    pub(super) report: crate::validate::Report,
    pub(super) profile: crate::validate::Profile,
    /// The data set drifted and `validation.on_drift` is `block`.
    pub(super) drift_blocks_promotion: bool,
}

/// The validation stage: the report is written to the run directory and handed to the
/// monitor whatever it says; a failed schema check stops the run with it as the error.
pub(super) fn validate(
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
pub(super) fn checked(
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
pub(super) fn engineer(
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

/// The row report in one line: why there are too few usable rows.
pub(super) fn describe(report: &RowReport) -> String {
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
