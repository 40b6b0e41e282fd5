//! Drift per column against the reference profile, and the data set's verdict.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::profile::quantile;
use super::*;
use crate::config::ValidationSettings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    pub column: String,
    pub kind: ColumnKind,
    /// `ks`, `chi_square`, `z`, `wasserstein` or `jensen_shannon`.
    pub test: String,
    /// The p-value (tests) or the distance.
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
    /// Chart: the bars' labels and the reference and current shares.
    pub labels: Vec<String>,
    pub reference_shares: Vec<f64>,
    pub current_shares: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub columns: Vec<ColumnDrift>,
    pub drifted_columns: usize,
    pub share: f64,
    pub threshold: f64,
    pub dataset_drift: bool,
}

/// One column's drift against its reference profile; `values` as [`read_column`] gives them.
pub(crate) fn column_drift(
    r: &ColumnProfile,
    values: &Values,
    small: bool,
    s: &ValidationSettings,
) -> ColumnDrift {
    match (r.kind, values) {
        (ColumnKind::Numeric, Values::Numbers(cur)) => numeric_drift(r, cur, small, s),
        (ColumnKind::Categorical, Values::Categories(cur)) => categorical_drift(r, cur, small, s),
        // A numeric column the reference counted as categories (few distinct values).
        (ColumnKind::Categorical, Values::Numbers(cur)) => {
            categorical_drift(r, &sorted_number_counts(cur), small, s)
        }
        // Text read as numbers in the reference (a hand-made profile): compared as categories.
        (ColumnKind::Numeric, Values::Categories(cur)) => categorical_drift(r, cur, small, s),
    }
}

/// The data set's drift from its columns'.
pub(crate) fn drift_report(columns: Vec<ColumnDrift>, s: &ValidationSettings) -> DriftReport {
    let drifted_columns = columns.iter().filter(|c| c.drifted).count();
    let share = drifted_columns as f64 / columns.len().max(1) as f64;
    DriftReport {
        columns,
        drifted_columns,
        share,
        threshold: s.dataset_drift_share,
        dataset_drift: share >= s.dataset_drift_share,
    }
}

pub(crate) fn numeric_drift(
    r: &ColumnProfile,
    cur: &[f64],
    small: bool,
    s: &ValidationSettings,
) -> ColumnDrift {
    let (test, score, threshold, drifted) = if cur.is_empty() || r.values.is_empty() {
        ("ks", 0.0, s.p_value, true)
    } else if small {
        let p = ks_p_value(&r.values, cur, r.exact);
        ("ks", p, s.p_value, p < s.p_value)
    } else {
        let w = wasserstein(&r.values, r.exact, cur) / r.std.max(0.001);
        ("wasserstein", w, s.wasserstein, w >= s.wasserstein)
    };
    // The chart: both distributions over the union of their 1st–99th percentile ranges (a
    // far outlier would squeeze every bar into one); values beyond fall into the end bars.
    let q = |v: &[f64], p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            quantile(v, p)
        }
    };
    let lo = q(&r.values, 0.01).min(q(cur, 0.01));
    let lo = if lo.is_finite() { lo } else { 0.0 };
    let hi = q(&r.values, 0.99).max(q(cur, 0.99));
    let hi = if hi.is_finite() && hi > lo {
        hi
    } else {
        lo + 1.0
    };
    let width = (hi - lo) / CHART_BINS as f64;
    let hist = |values: &[f64]| {
        let mut bins = [0.0; CHART_BINS];
        for &v in values {
            let b = (((v - lo) / width).max(0.0) as usize).min(CHART_BINS - 1);
            bins[b] += 1.0;
        }
        let n = values.len().max(1) as f64;
        bins.iter().map(|c| c / n).collect::<Vec<f64>>()
    };
    ColumnDrift {
        column: r.name.clone(),
        kind: ColumnKind::Numeric,
        test: test.into(),
        score,
        threshold,
        drifted,
        labels: (0..CHART_BINS)
            .map(|i| format_short(lo + width * i as f64))
            .collect(),
        reference_shares: hist(&r.values),
        current_shares: hist(cur),
    }
}

pub(crate) fn format_short(x: f64) -> String {
    if x.abs() >= 1000.0 || x.fract().abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

pub(crate) fn categorical_drift(
    r: &ColumnProfile,
    cur: &BTreeMap<String, u64>,
    small: bool,
    s: &ValidationSettings,
) -> ColumnDrift {
    let labels: Vec<String> = r
        .counts
        .keys()
        .chain(cur.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let counts = |m: &BTreeMap<String, u64>| -> Vec<f64> {
        labels
            .iter()
            .map(|l| *m.get(l).unwrap_or(&0) as f64)
            .collect()
    };
    let (rc, cc) = (counts(&r.counts), counts(cur));
    let (rn, cn) = (rc.iter().sum::<f64>(), cc.iter().sum::<f64>());
    let shares = |c: &[f64], n: f64| c.iter().map(|x| x / n.max(1.0)).collect::<Vec<f64>>();
    let (rs, cs) = (shares(&rc, rn), shares(&cc, cn));
    let (test, score, threshold, drifted) = if rn == 0.0 || cn == 0.0 {
        ("chi_square", 0.0, s.p_value, rn != cn)
    } else if small && labels.len() <= 2 {
        let p = z_test(rc[0], rn, cc[0], cn);
        ("z", p, s.p_value, p < s.p_value)
    } else if small {
        let p = chi_square_p_value(&rs, &cc, cn);
        ("chi_square", p, s.p_value, p < s.p_value)
    } else {
        let d = jensen_shannon(&rs, &cs);
        ("jensen_shannon", d, s.jensen_shannon, d >= s.jensen_shannon)
    };
    ColumnDrift {
        column: r.name.clone(),
        kind: ColumnKind::Categorical,
        test: test.into(),
        score,
        threshold,
        drifted,
        labels,
        reference_shares: rs,
        current_shares: cs,
    }
}
