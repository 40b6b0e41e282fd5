//! Validation of a source read batch by batch: the schema check's counts are summed over the
//! batches, and each column's profile is kept in bounded memory (exact counts, missing values,
//! mean and standard deviation, min and max; quantiles from a t-digest), so a source of any
//! size is checked and profiled in one pass.
//!
//! The quantiles' error is the t-digest's: with [`DIGEST_CENTROIDS`] centroids, a quantile's
//! rank is within [`QUANTILE_RANK_ERROR`] of the true rank (far less in the tails, where the
//! digest keeps single values). Numeric columns count their distinct values up to
//! [`DISTINCT_CAP`]; a profile's `unique` stops there.

use std::collections::BTreeMap;

use polars::prelude::*;
use rayon::prelude::*;

use super::*;
use crate::config::ValidationSettings;

/// Centroids of each column's t-digest.
pub const DIGEST_CENTROIDS: usize = 2000;

/// The stated rank error of a streamed profile's quantiles (as a share of the rows).
pub const QUANTILE_RANK_ERROR: f64 = 0.005;

/// Distinct values a numeric column counts before it stops.
pub const DISTINCT_CAP: usize = 100_000;

/// The schema check and profile of a source read in batches.
pub struct StreamingValidation<'a> {
    reference: Option<&'a Profile>,
    settings: &'a ValidationSettings,
    rows: usize,
    /// Per schema column: its checks' summed counts, with the first batch's message.
    findings: Vec<BTreeMap<&'static str, (usize, f64, String)>>,
    tallies: Vec<(&'static crate::schema::RawColumn, Tally)>,
}

impl<'a> StreamingValidation<'a> {
    pub fn new(reference: Option<&'a Profile>, settings: &'a ValidationSettings) -> Self {
        let tallies = drift_columns()
            .map(|c| {
                let t = match c.kind {
                    crate::schema::RawType::Category => Tally::Categories {
                        counts: BTreeMap::new(),
                        missing: 0,
                    },
                    _ => Tally::numbers(DIGEST_CENTROIDS, DISTINCT_CAP),
                };
                (c, t)
            })
            .collect();
        Self {
            reference,
            settings,
            rows: 0,
            findings: vec![BTreeMap::new(); crate::schema::RawSchema::get().columns.len()],
            tallies,
        }
    }

    /// Checks and profiles one batch of raw records (a frame as [`crate::ingest`] reads them).
    pub fn add(&mut self, df: &DataFrame) -> Result<()> {
        let (reference, settings) = (self.reference, self.settings);
        let found = crate::schema::RawSchema::get()
            .columns
            .par_iter()
            .map(|col| column_findings(df, col, reference, settings))
            .collect::<Result<Vec<_>>>()?;
        for (merged, found) in self.findings.iter_mut().zip(found) {
            for (check, count, limit, message) in found {
                merged.entry(check).or_insert((0, limit, message)).0 += count;
            }
        }
        let read = self
            .tallies
            .par_iter()
            .map(|(col, _)| read_column(df, col))
            .collect::<Result<Vec<_>>>()?;
        for ((_, tally), (values, missing)) in self.tallies.iter_mut().zip(read) {
            tally.add(values, missing);
        }
        self.rows += df.height();
        Ok(())
    }

    /// The report and the profile of every record added.
    pub fn finish(self, source: &str) -> (Report, Profile) {
        let rows = self.rows;
        let mut issues = Vec::new();
        let mut add = |column: &str, check: &str, count: usize, limit: f64, message: String| {
            issues.extend(issue(column, check, (count, rows), limit, &message));
        };
        if rows == 0 {
            add("*", "rows", 1, 0.0, "no rows".into());
        }
        for (col, found) in crate::schema::RawSchema::get()
            .columns
            .iter()
            .zip(&self.findings)
        {
            for (check, (count, limit, message)) in found {
                add(&col.name, check, *count, *limit, message.clone());
            }
        }
        let passed = !issues.iter().any(|i| i.severity == Severity::Fail);
        let settings = self.settings;
        let small = self
            .reference
            .is_some_and(|r| r.rows <= settings.small_reference_rows);
        let drift = self.reference.map(|r| {
            let columns = self
                .tallies
                .iter()
                .filter_map(|(col, tally)| {
                    let rc = r.columns.iter().find(|p| p.name == col.name)?;
                    Some(column_drift(rc, &tally.current(rc), small, settings))
                })
                .collect();
            drift_report(columns, settings)
        });
        let profile = Profile {
            source: source.to_string(),
            rows,
            columns: self
                .tallies
                .iter()
                .map(|(col, t)| t.profile(&col.name, settings))
                .collect(),
        };
        let report = Report {
            reference: self.reference.map(|r| r.source.clone()),
            current: source.to_string(),
            reference_rows: self.reference.map_or(0, |r| r.rows),
            current_rows: rows,
            schema: SchemaCheck { passed, issues },
            drift,
        };
        (report, profile)
    }
}

/// The report and profile of a whole source: read whole up to `training.sample_rows` records
/// (exact quantiles), streamed batch by batch above it (as training streams it).
pub fn validate_source(
    source: &crate::ingest::DataSource,
    reference: Option<&Profile>,
    settings: &crate::config::Settings,
) -> Result<(Report, Profile)> {
    let big = source.more_records_than(settings.training.sample_rows as u64)? == Some(true);
    if !big {
        return validate_and_profile(
            &source.name(),
            &source.load()?,
            reference,
            &settings.validation,
        );
    }
    let mut stream =
        crate::ingest::stream::RecordStream::open(source, settings.training.batch_rows)?;
    let mut checks = StreamingValidation::new(reference, &settings.validation);
    while let Some(batch) = stream.next_batch()? {
        checks.add(&batch.records)?;
    }
    Ok(checks.finish(&source.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn records(rows: usize, seed: u64) -> DataFrame {
        crate::ingest::synthetic::generate(rows, seed)
    }

    #[test]
    fn batches_give_the_counts_of_the_whole_and_quantiles_within_the_stated_error() {
        let settings = Settings::load_with_env(None, Vec::new())
            .unwrap()
            .validation;
        let df = records(60_000, 3);
        let (whole_report, whole) = validate_and_profile("whole", &df, None, &settings).unwrap();
        let mut s = StreamingValidation::new(None, &settings);
        for start in (0..df.height()).step_by(7_000) {
            s.add(&df.slice(start as i64, 7_000)).unwrap();
        }
        let (report, streamed) = s.finish("streamed");
        assert_eq!(report.schema.passed, whole_report.schema.passed);
        assert_eq!(streamed.rows, whole.rows);
        for (a, b) in streamed.columns.iter().zip(&whole.columns) {
            assert_eq!(
                (a.name.as_str(), a.kind, a.missing),
                (b.name.as_str(), b.kind, b.missing)
            );
            match a.kind {
                ColumnKind::Categorical => assert_eq!(a.counts, b.counts, "{}", a.name),
                ColumnKind::Numeric => {
                    assert!(
                        (a.mean - b.mean).abs() <= 1e-9 * b.mean.abs().max(1.0),
                        "{}",
                        a.name
                    );
                    assert!((a.std - b.std).abs() <= 1e-9 * b.std.max(1.0), "{}", a.name);
                    assert_eq!(a.unique, b.unique, "{}", a.name);
                    // Each streamed quantile's rank among the exact values is within the
                    // stated error of the rank it stands for.
                    let (_, missing) = (0, b.missing);
                    let exact = crate::validate::profile::read_column(
                        &df,
                        drift_columns().find(|c| c.name == a.name).unwrap(),
                    )
                    .unwrap();
                    let Values::Numbers(sorted) = exact.0 else {
                        panic!()
                    };
                    assert_eq!(exact.1, missing);
                    let n = sorted.len() as f64;
                    for (i, &q) in a.values.iter().enumerate() {
                        let want = i as f64 / QUANTILES as f64;
                        let below = sorted.partition_point(|&x| x < q) as f64 / n;
                        let at_most = sorted.partition_point(|&x| x <= q) as f64 / n;
                        let off = if want < below {
                            below - want
                        } else if want > at_most {
                            want - at_most
                        } else {
                            0.0
                        };
                        assert!(
                            off <= QUANTILE_RANK_ERROR,
                            "{} q{want}: {q} off by {off}",
                            a.name
                        );
                    }
                    assert_eq!(a.values[0], sorted[0]);
                    assert_eq!(*a.values.last().unwrap(), *sorted.last().unwrap());
                }
            }
        }
    }

    #[test]
    fn bad_values_are_counted_over_every_batch() {
        let settings = Settings::load_with_env(None, Vec::new())
            .unwrap()
            .validation;
        let mut df = records(1_000, 4);
        let kid: Vec<Option<f64>> = (0..1_000)
            .map(|i| Some(if i % 100 == 0 { 0.5 } else { 1.0 }))
            .collect();
        df.replace("Kidhome", Column::new("Kidhome".into(), kid))
            .unwrap();
        let mut s = StreamingValidation::new(None, &settings);
        for start in (0..1_000).step_by(300) {
            s.add(&df.slice(start, 300)).unwrap();
        }
        let (report, _) = s.finish("x");
        let issue = report
            .schema
            .issues
            .iter()
            .find(|i| i.column == "Kidhome" && i.check == "type")
            .expect("the fractions are found");
        assert!(
            issue.message.contains("(10 of 1000 rows"),
            "{}",
            issue.message
        );
    }
}
