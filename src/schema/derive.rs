//! A feature's derivation resolved against the raw columns: which of the six it is (`column`,
//! `sum`, `flag`, `years_since`, `days_since`, `code`), the kind of value it makes, its
//! choices, and the bounds its columns imply.

use std::collections::{BTreeMap, BTreeSet};

use super::file::{FeatureDef, FeatureDefinition};
use super::{DerivedFrom, FeatureKind, RawColumn, RawType};

/// The derivation keys, in the order the docs list them.
pub const DERIVATIONS: [&str; 6] = ["column", "sum", "flag", "years_since", "days_since", "code"];

/// The feature's one derivation as data, with its kind, choices and bounds; or why not.
pub(super) fn resolve_feature(
    f: &FeatureDef,
    columns: &BTreeMap<&str, &RawColumn>,
) -> std::result::Result<FeatureDefinition, String> {
    let (derived_from, shape) = derivation(f, columns)?;
    // A bound neither written nor implied by the columns: none (the largest finite value,
    // which JSON, SQL and the form all carry).
    let min = f.min.or(shape.min).unwrap_or(-f64::MAX);
    let max = f.max.or(shape.max).unwrap_or(f64::MAX);
    if !(min.is_finite() && max.is_finite()) || min > max {
        return Err(format!("min {min} and max {max} are not a range"));
    }
    Ok(FeatureDefinition {
        key: f.name.clone(),
        label: f.label.clone().unwrap_or_else(|| f.name.replace('_', " ")),
        unit: f.unit.clone().unwrap_or_default(),
        kind: shape.kind,
        choices: shape.choices,
        min,
        max,
        skewed: f.skewed,
        derived_from,
    })
}

/// What a derivation makes: its kind, its choices (coded features) and the bounds its raw
/// columns imply.
struct Shape {
    kind: FeatureKind,
    choices: Vec<String>,
    min: Option<f64>,
    max: Option<f64>,
}

/// The feature's one derivation key, checked against the columns it reads.
fn derivation(
    f: &FeatureDef,
    columns: &BTreeMap<&str, &RawColumn>,
) -> std::result::Result<(DerivedFrom, Shape), String> {
    only_one_derivation(f)?;
    let column = |name: &str| -> std::result::Result<&RawColumn, String> {
        columns
            .get(name)
            .copied()
            .ok_or_else(|| format!("reads column '{name}', which is not one of the columns"))
    };
    if let Some(c) = &f.column {
        return raw_value(column(c)?);
    }
    if let Some(cs) = &f.sum {
        return sum_of(cs, &column);
    }
    if let Some(cs) = &f.flag {
        return flag_of(cs, f.labels.as_deref(), &column);
    }
    if let Some(c) = &f.years_since {
        return years_since(column(c)?);
    }
    if let Some(c) = &f.days_since {
        return days_since(column(c)?);
    }
    let c = column(f.code.as_deref().expect("one derivation is given"))?;
    code(c, f.groups.as_deref(), f.labels.as_deref())
}

/// Exactly one derivation key, and `groups` / `labels` only beside the ones they go with.
fn only_one_derivation(f: &FeatureDef) -> std::result::Result<(), String> {
    let given: Vec<&str> = [
        f.column.is_some(),
        f.sum.is_some(),
        f.flag.is_some(),
        f.years_since.is_some(),
        f.days_since.is_some(),
        f.code.is_some(),
    ]
    .iter()
    .zip(DERIVATIONS)
    .filter_map(|(&on, name)| on.then_some(name))
    .collect();
    match given.as_slice() {
        [] => {
            return Err(format!(
                "no derivation: give one of {}",
                DERIVATIONS.join(", ")
            ));
        }
        [_] => {}
        many => {
            return Err(format!(
                "{} derivations ({}): a feature has exactly one",
                many.len(),
                many.join(", ")
            ));
        }
    }
    if f.groups.is_some() && f.code.is_none() {
        return Err("`groups` goes with `code`".into());
    }
    if f.labels.is_some() && f.code.is_none() && f.flag.is_none() {
        return Err("`labels` goes with `code` or `flag`".into());
    }
    Ok(())
}

/// `column`: an integer or number column's value as it is.
fn raw_value(c: &RawColumn) -> std::result::Result<(DerivedFrom, Shape), String> {
    let kind = numeric_kind(c, "column")?;
    Ok((
        DerivedFrom::Column {
            column: c.name.clone(),
        },
        Shape {
            kind,
            choices: vec![],
            min: c.min,
            max: c.max,
        },
    ))
}

/// `flag`: 1 when the sum of the columns is above 0.
fn flag_of<'a>(
    names: &[String],
    given_labels: Option<&[String]>,
    column: &dyn Fn(&str) -> std::result::Result<&'a RawColumn, String>,
) -> std::result::Result<(DerivedFrom, Shape), String> {
    let (from, _) = sum_of(names, column)?;
    let DerivedFrom::Sum { columns } = from else {
        unreachable!("sum_of makes a sum")
    };
    let choices = labels(given_labels, &[vec!["No".into()], vec!["Yes".into()]])?;
    Ok((
        DerivedFrom::Flag { columns },
        Shape {
            kind: FeatureKind::Coded,
            choices,
            min: Some(0.0),
            max: Some(1.0),
        },
    ))
}

/// `years_since`: the reference year minus an integer (year) column.
fn years_since(c: &RawColumn) -> std::result::Result<(DerivedFrom, Shape), String> {
    if c.kind != RawType::Integer {
        return Err(format!(
            "years_since reads a year: '{}' is a {} column, not an integer one",
            c.name,
            type_name(c.kind)
        ));
    }
    let from = DerivedFrom::YearsSince {
        column: c.name.clone(),
    };
    Ok((from, counted(MAX_YEARS)))
}

/// `days_since`: days from a date column to the reference date.
fn days_since(c: &RawColumn) -> std::result::Result<(DerivedFrom, Shape), String> {
    if c.kind != RawType::Date {
        return Err(format!(
            "days_since reads a date: '{}' is a {} column",
            c.name,
            type_name(c.kind)
        ));
    }
    let from = DerivedFrom::DaysSince {
        column: c.name.clone(),
    };
    Ok((from, counted(MAX_DAYS)))
}

/// The upper bound of a `years_since` feature unless the file gives one.
pub const MAX_YEARS: f64 = 150.0;
/// The upper bound of a `days_since` feature unless the file gives one: a century.
pub const MAX_DAYS: f64 = 36_500.0;

/// A whole number counted from 0 (days, years): a date after the reference date is a row
/// error, not a negative count.
fn counted(max: f64) -> Shape {
    Shape {
        kind: FeatureKind::Integer,
        choices: vec![],
        min: Some(0.0),
        max: Some(max),
    }
}

fn type_name(t: RawType) -> &'static str {
    match t {
        RawType::Integer => "integer",
        RawType::Number => "number",
        RawType::Category => "category",
        RawType::Date => "date",
    }
}

/// The feature kind of a number column; a category or date column is refused, naming the
/// derivation that reads it.
fn numeric_kind(c: &RawColumn, how: &str) -> std::result::Result<FeatureKind, String> {
    match c.kind {
        RawType::Integer => Ok(FeatureKind::Integer),
        RawType::Number => Ok(FeatureKind::Real),
        RawType::Category => Err(format!(
            "{how} reads numbers: '{}' is a category column (use `code` with `groups`)",
            c.name
        )),
        RawType::Date => Err(format!(
            "{how} reads numbers: '{}' is a date column (use `days_since`)",
            c.name
        )),
    }
}

fn sum_of<'a>(
    names: &[String],
    column: &dyn Fn(&str) -> std::result::Result<&'a RawColumn, String>,
) -> std::result::Result<(DerivedFrom, Shape), String> {
    if names.is_empty() {
        return Err("sums no columns".into());
    }
    let mut kind = FeatureKind::Integer;
    let (mut min, mut max) = (Some(0.0), Some(0.0));
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(format!("reads column '{name}' twice"));
        }
        let c = column(name)?;
        if numeric_kind(c, "a sum")? == FeatureKind::Real {
            kind = FeatureKind::Real;
        }
        min = min.zip(c.min).map(|(a, b)| a + b);
        max = max.zip(c.max).map(|(a, b)| a + b);
    }
    Ok((
        DerivedFrom::Sum {
            columns: names.to_vec(),
        },
        Shape {
            kind,
            choices: vec![],
            min,
            max,
        },
    ))
}

/// A coded category: the index of the group holding the value.
fn code(
    c: &RawColumn,
    groups: Option<&[Vec<String>]>,
    given_labels: Option<&[String]>,
) -> std::result::Result<(DerivedFrom, Shape), String> {
    if c.kind != RawType::Category {
        return Err(format!(
            "code reads a category: '{}' is a {} column",
            c.name,
            type_name(c.kind)
        ));
    }
    // Without groups, each value is its own code, in the column's order.
    let groups: Vec<Vec<String>> = match groups {
        Some(g) => g.to_vec(),
        None => c.values.iter().map(|v| vec![v.clone()]).collect(),
    };
    if groups.len() < 2 {
        return Err(format!(
            "{} code{}: a coded feature needs at least 2 groups",
            groups.len(),
            if groups.len() == 1 { "" } else { "s" }
        ));
    }
    let mut placed = BTreeMap::new();
    for (i, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(format!("group {i} is empty"));
        }
        for v in group {
            if !c.values.contains(v) {
                return Err(format!(
                    "group {i} names '{v}', which is not one of {}'s values ({})",
                    c.name,
                    c.values.join(", ")
                ));
            }
            if let Some(first) = placed.insert(v.as_str(), i) {
                return Err(format!("'{v}' is in group {first} and in group {i}"));
            }
        }
    }
    let choices = labels(given_labels, &groups)?;
    let max = (groups.len() - 1) as f64;
    Ok((
        DerivedFrom::Code {
            column: c.name.clone(),
            codes: groups,
        },
        Shape {
            kind: FeatureKind::Coded,
            choices,
            min: Some(0.0),
            max: Some(max),
        },
    ))
}

/// A label per code: the given ones (as many as the groups), or each group's values joined.
fn labels(
    given: Option<&[String]>,
    groups: &[Vec<String>],
) -> std::result::Result<Vec<String>, String> {
    match given {
        Some(l) if l.len() != groups.len() => {
            Err(format!("{} labels for {} codes", l.len(), groups.len()))
        }
        Some(l) => Ok(l.to_vec()),
        None => Ok(groups.iter().map(|g| g.join("/")).collect()),
    }
}
