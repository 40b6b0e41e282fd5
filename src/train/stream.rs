//! Training on a source above `training.sample_rows` records, in memory that does not grow
//! with the source:
//!
//! 1. one pass over every record: the schema check, the profile (and drift) from mergeable
//!    tallies, the features, and a seeded uniform sample of `sample_rows` usable customers
//!    ([`super::sample::BottomK`]);
//! 2. the fit on the sample, exactly as an in-memory run fits on every row ([`super::fit`]);
//! 3. a second pass that assigns every usable customer through the fitted pipeline and sums
//!    the whole-data figures (WCSS, each segment's size and profile), writing
//!    `assignments.parquet` (`row,split,segment`; `split` is `train`, `test` or `unsampled`).

use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::progress::{Progress, Stage};
use super::sample::BottomK;
use super::segments::{SegmentProfile, Tally};
use super::{Checked, Fitted, SegmentationModel, Stopwatch, TrainOutcome, TrainRequest};
use super::{describe, device, fit, round6, write_json};
use crate::error::{Error, Result};
use crate::features::{self, FeatureTable, RowReport};
use crate::ingest::stream::RecordStream;
use crate::schema::N_FEATURES;

/// What `metrics.json` says of a streamed run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Streamed {
    /// Records read, and those usable (the rest were set aside, as `data.rejected` says).
    pub rows_read: usize,
    pub rows_used: usize,
    /// Usable customers the model was fitted on (`training.sample_rows`, or all of them).
    pub rows_sampled: usize,
    pub sample_rows: usize,
    pub batch_rows: usize,
    pub passes: Vec<Pass>,
    /// The whole data's within-cluster sum of squares in the embedding, and its segments'
    /// sizes and profiles (names as the model's).
    pub wcss: f64,
    pub segments: Vec<SegmentProfile>,
    /// Every usable customer's segment, in the run directory.
    pub assignments: String,
}

/// One pass over the source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pass {
    pub name: String,
    pub seconds: f64,
    pub rows_per_second: f64,
}

impl Pass {
    fn new(name: &str, rows: usize, started: Instant) -> Self {
        let seconds = started.elapsed().as_secs_f64();
        Self {
            name: name.into(),
            seconds: round6(seconds),
            rows_per_second: (rows as f64 / seconds.max(1e-9)).round(),
        }
    }
}

/// Whether `req`'s source streams: it holds more than `training.sample_rows` records (counted
/// from Parquet metadata, CSV line ends, or the generator's count). MongoDB collections and
/// Arrow files are read whole.
pub(super) fn streams(req: &TrainRequest) -> Result<bool> {
    let limit = req.settings.training.sample_rows as u64;
    Ok(req.source.more_records_than(limit)? == Some(true))
}

/// The run directory's file of every customer's segment.
const ASSIGNMENTS: &str = "assignments.parquet";

pub(super) fn run(
    req: &TrainRequest,
    progress: &Progress,
    mut watch: Stopwatch,
) -> Result<TrainOutcome> {
    let s = &req.settings;
    let started = Instant::now();
    let (table, checked) = pass_one(req, progress)?;
    let pass_one = Pass::new(
        "profile, features and sample",
        table.report.rows_read,
        started,
    );
    watch.lap_named("pass_one");

    let Fitted {
        mut outcome,
        train_idx: _,
        test_idx,
    } = fit(
        req,
        progress,
        &mut watch,
        &table,
        checked,
        Default::default(),
    )?;

    let started = Instant::now();
    let mut is_test = vec![false; table.source_rows.len()];
    for i in test_idx {
        is_test[i] = true;
    }
    let partial = req.out_dir.join(format!("{ASSIGNMENTS}.partial"));
    let whole = pass_two(
        req,
        progress,
        &outcome.model,
        &table.source_rows,
        &is_test,
        &partial,
    )
    .inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    let pass_two = Pass::new("assign every customer", table.report.rows_read, started);
    watch.lap_named("pass_two");

    write_json(&req.out_dir.join("model.json"), &outcome.model)?;
    let path = req.out_dir.join(ASSIGNMENTS);
    std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
    watch.lap(Stage::Write);
    let mut segments = whole.tally.profiles();
    for (p, m) in segments.iter_mut().zip(&outcome.model.segments) {
        p.name.clone_from(&m.name);
    }
    outcome.metrics.streamed = Some(Streamed {
        rows_read: table.report.rows_read,
        rows_used: whole.rows,
        rows_sampled: table.matrix.rows(),
        sample_rows: s.training.sample_rows,
        batch_rows: s.training.batch_rows,
        passes: vec![pass_one, pass_two],
        wcss: whole.wcss,
        segments,
        assignments: ASSIGNMENTS.into(),
    });
    outcome.metrics.seconds = watch.finish();
    write_json(&req.out_dir.join("metrics.json"), &outcome.metrics)?;
    Ok(outcome)
}

/// Pass one: every record checked and profiled, the usable ones' features derived, and the
/// sample kept. The validation report is written (and handed to the monitor) whatever it
/// says; a failed schema check stops the run with it.
fn pass_one(req: &TrainRequest, progress: &Progress) -> Result<(FeatureTable, Checked)> {
    let s = &req.settings;
    let mut stream = RecordStream::open(&req.source, s.training.batch_rows)?;
    let name = req.source.name();
    let (_, total) = stream.progress();
    let bar = progress.pass_bar(
        Stage::Ingest,
        total,
        stream.counts_rows(),
        "Pass 1 of 2: reading, checking, sampling",
    )?;
    let mut checks =
        crate::validate::StreamingValidation::new(req.reference.as_ref(), &s.validation);
    let mut report = RowReport::default();
    let mut sample = BottomK::new(s.training.sample_rows, N_FEATURES, s.split.seed);
    let reference = s.reference_date();
    while let Some(batch) = stream.next_batch()? {
        let first = row_number(batch.first_row + batch.records.height() as u64)?
            - batch.records.height() as u32;
        checks.add(&batch.records)?;
        let t = features::engineer(&batch.records, reference)?;
        drop(batch);
        report.absorb(&t.report, first as usize);
        let rows: Vec<u32> = t.source_rows.iter().map(|&r| r + first).collect();
        sample.offer(&rows, &t.matrix);
        bar.set_position(stream.progress().0)?;
    }
    bar.finish(format!(
        "Pass 1 of 2: {} records read, {} usable",
        report.rows_read, report.rows_kept
    ));
    for line in report.summary_lines() {
        tracing::warn!("set aside: {line}");
    }

    let (validation, profile) = checks.finish(&name);
    let checked = super::checked(req, validation, profile)?;

    let (source_rows, matrix) = sample.finish();
    if matrix.rows() < 2 * s.segmentation.max_k() + 2 {
        return Err(Error::NoUsableRows(describe(&report)));
    }
    let table = FeatureTable {
        matrix,
        source_rows,
        rejected_rows: Vec::new(),
        report,
    };
    Ok((table, checked))
}

/// A row number as the sample keeps it (32 bits: four billion records).
fn row_number(row: u64) -> Result<u32> {
    u32::try_from(row).map_err(|_| {
        Error::Source(format!(
            "more than {} records: split the data set",
            u32::MAX
        ))
    })
}

/// What pass two sums over every usable customer.
struct Whole {
    rows: usize,
    wcss: f64,
    tally: Tally,
}

/// Pass two: every usable customer's segment through the fitted model, written to `out`
/// (Parquet, batch by batch), with the whole-data figures.
fn pass_two(
    req: &TrainRequest,
    progress: &Progress,
    model: &SegmentationModel,
    sampled: &[u32],
    is_test: &[bool],
    out: &Path,
) -> Result<Whole> {
    let s = &req.settings;
    let compute = device::select(req.device)?;
    let mut stream = RecordStream::open(&req.source, s.training.batch_rows)?;
    let (_, total) = stream.progress();
    let bar = progress.pass_bar(
        Stage::Write,
        total,
        stream.counts_rows(),
        "Pass 2 of 2: assigning every customer",
    )?;
    let file = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let schema = Schema::from_iter([
        Field::new("row".into(), DataType::UInt64),
        Field::new("split".into(), DataType::String),
        Field::new("segment".into(), DataType::UInt32),
    ]);
    let mut writer = ParquetWriter::new(file).batched(&schema)?;
    let k = model.kmeans.k;
    let mut whole = Whole {
        rows: 0,
        wcss: 0.0,
        tally: Tally::new(k, N_FEATURES),
    };
    // The sample's rows are in order, as the batches are: one cursor walks both.
    let mut next_sampled = 0;
    let reference = s.reference_date();
    while let Some(batch) = stream.next_batch()? {
        let first = batch.first_row;
        let t = features::engineer(&batch.records, reference)?;
        drop(batch);
        let (_, a) = model.assign(&t.matrix, &compute.device);
        whole.wcss += a.sq_dist.iter().map(|&d| f64::from(d)).sum::<f64>();
        whole.tally.add(&t.matrix, &a.labels);
        whole.rows += t.matrix.rows();
        let mut rows = Vec::with_capacity(t.source_rows.len());
        let mut splits = Vec::with_capacity(t.source_rows.len());
        for &r in &t.source_rows {
            let row = first + u64::from(r);
            while next_sampled < sampled.len() && u64::from(sampled[next_sampled]) < row {
                next_sampled += 1;
            }
            let split = match sampled.get(next_sampled) {
                Some(&s) if u64::from(s) == row => {
                    if is_test[next_sampled] {
                        "test"
                    } else {
                        "train"
                    }
                }
                _ => "unsampled",
            };
            rows.push(row + 1);
            splits.push(split);
        }
        let df = DataFrame::new(
            rows.len(),
            vec![
                Column::new("row".into(), rows),
                Column::new("split".into(), splits),
                Column::new("segment".into(), a.labels),
            ],
        )?;
        writer.write_batch(&df)?;
        bar.set_position(stream.progress().0)?;
    }
    writer.finish()?;
    bar.finish(format!("Pass 2 of 2: {} customers assigned", whole.rows));
    Ok(whole)
}
