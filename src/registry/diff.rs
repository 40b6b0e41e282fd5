//! Two stored versions compared on one data set (`categorizer models diff A B`): how B's
//! segments match A's (the rule new models are matched by) and where the customers go.

use std::fmt;

use super::manifest::ServedModel;
use super::publish::migration_between;
use super::store::ModelStore;
use crate::dates::ReferenceDate;
use crate::error::{Error, Result};
use crate::inference::SessionOptions;
use crate::ingest::DataSource;
use crate::train::lineage::{self, Matching};

/// What [`diff`] found.
#[derive(Debug, Clone)]
pub struct Diff {
    pub a: String,
    pub b: String,
    pub source: String,
    pub names_a: Vec<String>,
    pub names_b: Vec<String>,
    /// B's segments matched to A's.
    pub matching: Matching,
    /// `migration[a's segment][b's segment]`.
    pub migration: Vec<Vec<usize>>,
    pub adjusted_rand_index: f64,
}

/// Scores `source`'s usable rows (features as of A's reference date) with versions `a` and `b`.
pub fn diff(
    store: &dyn ModelStore,
    a: &str,
    b: &str,
    source: &str,
    options: &SessionOptions,
) -> Result<Diff> {
    let mut ma = ServedModel::from_store(store, a, options)?;
    let mut mb = ServedModel::from_store(store, b, options)?;
    let reference = ReferenceDate::parse(&ma.manifest.reference_date)
        .map_err(|m| Error::Model(format!("{a}: manifest reference_date: {m}")))?;
    let records = DataSource::parse(source)?.load()?;
    let table = crate::features::engineer(&records, reference)?;
    drop(records);
    let (migration, adjusted_rand_index) =
        migration_between(&mut ma.onnx, &mut mb.onnx, &table.matrix)?;
    let means = |m: &ServedModel| -> Vec<Vec<f64>> {
        m.manifest
            .segments
            .iter()
            .map(|s| lineage::means_vector(&s.means))
            .collect()
    };
    let matching = lineage::match_segments(
        &means(&ma),
        &means(&mb),
        &lineage::feature_scale(&table.matrix),
    );
    let names = |m: &ServedModel| m.manifest.segments.iter().map(|s| s.name.clone()).collect();
    Ok(Diff {
        a: a.into(),
        b: b.into(),
        source: source.into(),
        names_a: names(&ma),
        names_b: names(&mb),
        matching,
        migration,
        adjusted_rand_index,
    })
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: usize = self.migration.iter().flatten().sum();
        writeln!(f, "A = {}", self.a)?;
        writeln!(f, "B = {}", self.b)?;
        writeln!(f, "{rows} customers of {}", self.source)?;
        writeln!(f, "adjusted Rand index {:.4}", self.adjusted_rand_index)?;
        writeln!(
            f,
            "\nB's segments matched to A's (a pair matches under distance {:.3}):",
            self.matching.threshold
        )?;
        for (n, old) in self.matching.old.iter().enumerate() {
            let d = self.matching.distance[n].map_or("-".into(), |d| format!("{d:.3}"));
            match old {
                Some(o) => writeln!(
                    f,
                    "  B {n} \"{}\" = A {o} \"{}\" (distance {d})",
                    self.names_b[n], self.names_a[*o]
                )?,
                None => writeln!(
                    f,
                    "  B {n} \"{}\" is new (closest pairing at distance {d})",
                    self.names_b[n]
                )?,
            }
        }
        writeln!(f, "\nCustomers by segment (rows: A, columns: B):")?;
        write!(f, "{:>8}", "")?;
        for n in 0..self.names_b.len() {
            write!(f, "{:>9}", format!("B {n}"))?;
        }
        writeln!(f)?;
        for (o, row) in self.migration.iter().enumerate() {
            write!(f, "{:>8}", format!("A {o}"))?;
            for c in row {
                write!(f, "{c:>9}")?;
            }
            writeln!(f)?;
        }
        let moves = lineage::moves(&self.migration, &lineage::by_id(&self.matching.old));
        if !moves.is_empty() {
            writeln!(f)?;
        }
        for line in moves {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}
