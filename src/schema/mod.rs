//! The one definition of what a customer is: the 29 raw columns (from `config/schema.yaml`,
//! embedded at build time) and the 21 model features (defined here, in code, and written in
//! the same file as [`file::SchemaFile`] features: a test holds the two equal).
//!
//! Everything else derives from these two tables: the readers, the feature expressions, the
//! preprocessing, and later the web form, the JSON API, the ONNX input and validation.

mod check;
pub mod conform;
pub mod derive;
pub mod file;
pub mod infer;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The raw schema file, embedded so the binary runs with nothing beside it.
pub const RAW_SCHEMA_YAML: &str = include_str!("../../config/schema.yaml");

/// The kind of value a raw column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawType {
    Integer,
    Number,
    Category,
    Date,
}

/// One raw column of the marketing-campaign record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: RawType,
    #[serde(default)]
    pub nullable: bool,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub format: Option<String>,
}

/// The raw record schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchema {
    pub columns: Vec<RawColumn>,
}

impl RawSchema {
    /// The embedded schema, parsed once.
    pub fn get() -> &'static RawSchema {
        static SCHEMA: OnceLock<RawSchema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let file = file::SchemaFile::parse(RAW_SCHEMA_YAML, "config/schema.yaml")
                .expect("config/schema.yaml is embedded at build time and must parse");
            assert_eq!(file.columns.len(), 29, "the raw schema has 29 columns");
            RawSchema {
                columns: file.columns,
            }
        })
    }

    pub fn column(&self, name: &str) -> Option<&RawColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }
}

/// How a feature's value is typed in and interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A whole number (counts, years, days).
    Integer,
    /// A real number (money).
    Real,
    /// A coded choice: the value is the index into `choices`.
    Coded,
}

/// How a feature is made from the raw record: the polars expressions, the row checks of
/// feature engineering, nullability and the manifest's description all come from this value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Derivation {
    /// The raw column's value as it is.
    Column(&'static str),
    /// The sum of raw columns.
    Sum(&'static [&'static str]),
    /// 1 when the sum of the raw columns is above 0, else 0.
    Flag(&'static [&'static str]),
    /// The reference date's year minus the raw (year) column.
    YearsSince(&'static str),
    /// Days from the raw date column (in the raw schema's format) to the reference date.
    DaysSince(&'static str),
    /// The index of the group that holds the raw category; a value in no group is an unknown
    /// category, and the row is set aside.
    Code(&'static str, &'static [&'static [&'static str]]),
}

impl Derivation {
    /// The raw columns read.
    pub fn columns(&self) -> &[&'static str] {
        match self {
            Derivation::Column(c)
            | Derivation::YearsSince(c)
            | Derivation::DaysSince(c)
            | Derivation::Code(c, _) => std::slice::from_ref(c),
            Derivation::Sum(cs) | Derivation::Flag(cs) => cs,
        }
    }

    /// In words, for the manifest and the docs.
    pub fn describe(&self) -> String {
        match self {
            Derivation::Column(c) => (*c).to_string(),
            Derivation::Sum(cs) => cs.join(" + "),
            Derivation::Flag(cs) => format!("1 when {} > 0, else 0", cs.join(" + ")),
            Derivation::YearsSince(c) => format!("reference year - {c}"),
            Derivation::DaysSince(c) => format!("days from {c} to the reference date"),
            Derivation::Code(c, groups) => {
                let groups: Vec<String> = groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| format!("{i}: {}", g.join("/")))
                    .collect();
                format!("code of {c} ({})", groups.join(", "))
            }
        }
    }
}

/// A [`Derivation`] as owned data, as a manifest records it: a model version carries the rules
/// its exported SQL is generated from (the category codes among them), whatever later builds
/// of this program define.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DerivedFrom {
    Column {
        column: String,
    },
    Sum {
        columns: Vec<String>,
    },
    Flag {
        columns: Vec<String>,
    },
    YearsSince {
        column: String,
    },
    DaysSince {
        column: String,
    },
    Code {
        column: String,
        codes: Vec<Vec<String>>,
    },
}

impl From<&Derivation> for DerivedFrom {
    fn from(d: &Derivation) -> Self {
        let owned = |cs: &[&str]| cs.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        match *d {
            Derivation::Column(c) => DerivedFrom::Column { column: c.into() },
            Derivation::Sum(cs) => DerivedFrom::Sum { columns: owned(cs) },
            Derivation::Flag(cs) => DerivedFrom::Flag { columns: owned(cs) },
            Derivation::YearsSince(c) => DerivedFrom::YearsSince { column: c.into() },
            Derivation::DaysSince(c) => DerivedFrom::DaysSince { column: c.into() },
            Derivation::Code(c, groups) => DerivedFrom::Code {
                column: c.into(),
                codes: groups.iter().map(|g| owned(g)).collect(),
            },
        }
    }
}

/// One of the 21 model features.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Feature {
    /// Form field, JSON key, ONNX feature name and column name: one identifier everywhere.
    pub key: &'static str,
    /// What a person reads next to the field.
    pub label: &'static str,
    /// Unit of the value, empty when it has none.
    pub unit: &'static str,
    pub kind: FeatureKind,
    /// Labels of the codes 0, 1, ... for coded features; empty otherwise.
    pub choices: &'static [&'static str],
    /// Allowed range, inclusive.
    pub min: f64,
    pub max: f64,
    /// Heavily skewed: Yeo-Johnson transformed before scaling.
    pub skewed: bool,
    /// How the feature is made from the raw record.
    pub derivation: Derivation,
}

impl Feature {
    /// A customer's value as the pages show it: a category's name, whole dollars.
    pub fn show_value(&self, v: f64) -> String {
        if v.is_nan() {
            return "not given".into();
        }
        if !self.choices.is_empty() {
            return self
                .choices
                .get(v as usize)
                .copied()
                .unwrap_or("?")
                .to_string();
        }
        match self.kind {
            FeatureKind::Real => format!("{v:.0}"),
            _ => format!("{v}"),
        }
    }

    /// A segment's average as the pages show it: a yes/no feature as the share of yes, an
    /// ordinal code with the levels it falls between.
    pub fn show_mean(&self, m: f64) -> String {
        if self.choices.len() == 2 {
            return format!("{:.0}% {}", m * 100.0, self.choices[1].to_lowercase());
        }
        if !self.choices.is_empty() && m.is_finite() {
            let level = |c: f64| self.choices[(c.max(0.0) as usize).min(self.choices.len() - 1)];
            let (lo, hi) = (level(m.floor()), level(m.ceil()));
            return if lo == hi {
                format!("{m:.1} ({lo})")
            } else {
                format!("{m:.1} ({lo}–{hi})")
            };
        }
        if m.abs() >= 100.0 {
            format!("{m:.0}")
        } else {
            format!("{m:.1}")
        }
    }

    /// The label inside a sentence: lower case, without a trailing "(…)" qualifier.
    pub fn phrase(&self) -> String {
        let label = self
            .label
            .split_once(" (")
            .map_or(self.label, |(head, _)| head);
        let mut c = label.chars();
        match c.next() {
            Some(first) => first.to_lowercase().chain(c).collect(),
            None => String::new(),
        }
    }
    /// A missing value is allowed (the preprocessing imputes it): true of the features read
    /// straight from a raw column that `config/schema.yaml` marks `nullable`. The one place
    /// that says which features may be missing.
    pub fn nullable(&self) -> bool {
        match self.derivation {
            Derivation::Column(c) => RawSchema::get().column(c).is_some_and(|c| c.nullable),
            _ => false,
        }
    }

    const fn skewed(self) -> Self {
        Feature {
            skewed: true,
            ..self
        }
    }
}

const fn number(
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    kind: FeatureKind,
    max: f64,
    derivation: Derivation,
) -> Feature {
    Feature {
        key,
        label,
        unit,
        kind,
        choices: &[],
        min: 0.0,
        max,
        skewed: false,
        derivation,
    }
}

/// A whole-number feature in [0, max].
const fn int(
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    max: f64,
    derivation: Derivation,
) -> Feature {
    number(key, label, unit, FeatureKind::Integer, max, derivation)
}

/// An amount of money in [0, max] dollars.
const fn money(
    key: &'static str,
    label: &'static str,
    max: f64,
    derivation: Derivation,
) -> Feature {
    number(key, label, "$", FeatureKind::Real, max, derivation)
}

/// A coded feature: 0 ..= choices.len() - 1.
const fn coded(
    key: &'static str,
    label: &'static str,
    choices: &'static [&'static str],
    derivation: Derivation,
) -> Feature {
    Feature {
        key,
        label,
        unit: "",
        kind: FeatureKind::Coded,
        choices,
        min: 0.0,
        max: (choices.len() - 1) as f64,
        skewed: false,
        derivation,
    }
}

use Derivation::{Code, Column, DaysSince, Flag, Sum, YearsSince};

/// Education levels in ordinal order: the code is the index.
pub const EDUCATION_LEVELS: &[&str] = &["Basic", "2n Cycle", "Graduation", "Master", "PhD"];
const EDUCATION_CODES: &[&[&str]] = &[
    &["Basic"],
    &["2n Cycle"],
    &["Graduation"],
    &["Master"],
    &["PhD"],
];
/// Marital statuses that count as living with a partner (Marital_Status = 1).
pub const PARTNERED: &[&str] = &["Married", "Together"];
const MARITAL_CODES: &[&[&str]] = &[
    &["Single", "Divorced", "Widow", "Alone", "Absurd", "YOLO"],
    PARTNERED,
];
const NO_YES: &[&str] = &["No", "Yes"];
/// The six spending columns summed into Total_Spending.
pub const SPEND_COLUMNS: [&str; 6] = [
    "MntWines",
    "MntFruits",
    "MntMeatProducts",
    "MntFishProducts",
    "MntSweetProducts",
    "MntGoldProds",
];
/// The five campaign columns summed into Total_Promo.
pub const CAMPAIGN_COLUMNS: [&str; 5] = [
    "AcceptedCmp1",
    "AcceptedCmp2",
    "AcceptedCmp3",
    "AcceptedCmp4",
    "AcceptedCmp5",
];
const CHILDREN: &[&str] = &["Kidhome", "Teenhome"];
const MONEY: f64 = 1_000_000.0;
const COUNT: f64 = 10_000.0;
const DAYS: f64 = 36_500.0;

/// Number of model features.
pub const N_FEATURES: usize = 21;

/// The 21 model features, in model input order: the one place a feature is defined.
#[rustfmt::skip]
pub const FEATURES: [Feature; N_FEATURES] = [
    int("Age", "Age", "years", 130.0, YearsSince("Year_Birth")).skewed(),
    coded("Education", "Education", EDUCATION_LEVELS, Code("Education", EDUCATION_CODES)),
    coded("Marital_Status", "Lives with a partner", NO_YES, Code("Marital_Status", MARITAL_CODES)),
    coded("Parental_Status", "Has children at home", NO_YES, Flag(CHILDREN)),
    int("Children", "Children at home", "", 20.0, Sum(CHILDREN)),
    money("Income", "Yearly household income", 10_000_000.0, Column("Income")),
    money("Total_Spending", "Total spending (2 years)", MONEY, Sum(&SPEND_COLUMNS)).skewed(),
    int("Days_as_Customer", "Days as customer", "days", DAYS, DaysSince("Dt_Customer")),
    int("Recency", "Days since last purchase", "days", DAYS, Column("Recency")),
    money("Wines", "Spent on wine", MONEY, Column("MntWines")).skewed(),
    money("Fruits", "Spent on fruits", MONEY, Column("MntFruits")).skewed(),
    money("Meat", "Spent on meat", MONEY, Column("MntMeatProducts")).skewed(),
    money("Fish", "Spent on fish", MONEY, Column("MntFishProducts")).skewed(),
    money("Sweets", "Spent on sweets", MONEY, Column("MntSweetProducts")).skewed(),
    money("Gold", "Spent on gold", MONEY, Column("MntGoldProds")).skewed(),
    int("Web", "Web purchases", "purchases", COUNT, Column("NumWebPurchases")),
    int("Catalog", "Catalog purchases", "purchases", COUNT, Column("NumCatalogPurchases")),
    int("Store", "Store purchases", "purchases", COUNT, Column("NumStorePurchases")),
    int("Discount_Purchases", "Purchases with a discount", "purchases", COUNT, Column("NumDealsPurchases")),
    int("Total_Promo", "Campaign offers accepted", "of 5", 5.0, Sum(&CAMPAIGN_COLUMNS)),
    int("NumWebVisitsMonth", "Web visits last month", "visits", COUNT, Column("NumWebVisitsMonth")),
];

/// Position of a feature in model input order.
pub fn feature_index(key: &str) -> Option<usize> {
    FEATURES.iter().position(|f| f.key == key)
}

/// [`feature_index`], trying `next` first: clients send a customer's fields in one order, most
/// often the features' own, so a row's next key is most often the one after the last.
pub fn feature_index_after(key: &str, next: usize) -> Option<usize> {
    match FEATURES.get(next) {
        Some(f) if f.key == key => Some(next),
        _ => feature_index(key),
    }
}

/// The feature keys in model input order.
pub fn feature_keys() -> impl Iterator<Item = &'static str> {
    FEATURES.iter().map(|f| f.key)
}

/// A model's feature as its manifest records it: the feature table's row, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub index: usize,
    pub key: String,
    pub label: String,
    pub unit: String,
    pub kind: FeatureKind,
    pub choices: Vec<String>,
    pub min: f64,
    pub max: f64,
    /// May be missing (imputed); absent from manifests before it was recorded.
    #[serde(default)]
    pub nullable: bool,
    /// How the feature is made from the raw record, in words.
    #[serde(default)]
    pub derivation: String,
    /// The same as data: what the exported SQL is generated from (absent from manifests
    /// published before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<DerivedFrom>,
}

pub fn feature_specs() -> Vec<FeatureSpec> {
    FEATURES
        .iter()
        .enumerate()
        .map(|(index, f)| FeatureSpec {
            index,
            key: f.key.into(),
            label: f.label.into(),
            unit: f.unit.into(),
            kind: f.kind,
            choices: f.choices.iter().map(|c| c.to_string()).collect(),
            min: f.min,
            max: f.max,
            nullable: f.nullable(),
            derivation: f.derivation.describe(),
            derived_from: Some((&f.derivation).into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_ranges_are_finite_and_within_2_pow_53() {
        for f in &FEATURES {
            assert!(f.min <= f.max, "{}", f.key);
            assert!(f.min.abs() <= 9.0e15 && f.max.abs() <= 9.0e15, "{}", f.key);
        }
        let children = feature_index("Children").unwrap();
        assert!(check_feature(children, 2.0).is_ok());
        assert!(check_feature(children, 2.5).is_err());
        assert!(check_feature(children, 2.000_000_01).is_err());
    }

    #[test]
    fn raw_schema_has_the_29_columns_once_each() {
        let schema = RawSchema::get();
        let mut names: Vec<&str> = schema.names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 29);
        for col in SPEND_COLUMNS.iter().chain(CAMPAIGN_COLUMNS.iter()) {
            assert!(
                schema.column(col).is_some(),
                "{col} missing from schema.yaml"
            );
        }
    }

    #[test]
    fn only_income_may_be_missing_as_the_raw_schema_says() {
        let nullable: Vec<&str> = FEATURES
            .iter()
            .filter(|f| f.nullable())
            .map(|f| f.key)
            .collect();
        assert_eq!(nullable, ["Income"]);
    }

    #[test]
    fn features_are_the_21_form_keys_in_order() {
        let keys: Vec<&str> = feature_keys().collect();
        assert_eq!(
            keys,
            [
                "Age",
                "Education",
                "Marital_Status",
                "Parental_Status",
                "Children",
                "Income",
                "Total_Spending",
                "Days_as_Customer",
                "Recency",
                "Wines",
                "Fruits",
                "Meat",
                "Fish",
                "Sweets",
                "Gold",
                "Web",
                "Catalog",
                "Store",
                "Discount_Purchases",
                "Total_Promo",
                "NumWebVisitsMonth"
            ]
        );
        let skewed: Vec<&str> = FEATURES
            .iter()
            .filter(|f| f.skewed)
            .map(|f| f.key)
            .collect();
        assert_eq!(
            skewed,
            [
                "Age",
                "Total_Spending",
                "Wines",
                "Fruits",
                "Meat",
                "Fish",
                "Sweets",
                "Gold"
            ]
        );
        assert_eq!(FEATURES[1].max, 4.0);
    }

    #[test]
    fn every_derivation_reads_raw_columns_of_the_right_type() {
        let raw = RawSchema::get();
        for f in &FEATURES {
            for c in f.derivation.columns() {
                let col = raw
                    .column(c)
                    .unwrap_or_else(|| panic!("{}: no raw column {c}", f.key));
                let want: &[RawType] = match f.derivation {
                    Derivation::Code(..) => &[RawType::Category],
                    Derivation::DaysSince(_) => &[RawType::Date],
                    _ => &[RawType::Integer, RawType::Number],
                };
                assert!(want.contains(&col.kind), "{}: {c} is {:?}", f.key, col.kind);
            }
        }
    }

    #[test]
    fn every_category_of_the_raw_schema_has_exactly_one_code() {
        let raw = RawSchema::get();
        for f in &FEATURES {
            let Derivation::Code(c, groups) = f.derivation else {
                continue;
            };
            assert_eq!(groups.len(), f.choices.len(), "{}: a label per code", f.key);
            let values = &raw.column(c).unwrap().values;
            for v in values {
                let n = groups.iter().filter(|g| g.contains(&v.as_str())).count();
                assert_eq!(n, 1, "{}: {v:?} is in {n} groups", f.key);
            }
            for g in groups.iter().flat_map(|g| g.iter()) {
                assert!(
                    values.iter().any(|v| v == g),
                    "{}: {g:?} not in schema.yaml",
                    f.key
                );
            }
        }
    }
}

/// Why one value of a feature row is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
    /// Which rule the value broke.
    pub rule: FieldRule,
}

/// The rules of [`check_feature`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRule {
    Missing,
    NotFinite,
    OutOfRange,
    NotWhole,
}

impl FieldError {
    /// The rule broken, without the value: one reason for every row that broke it (training's
    /// report of set-aside rows groups by it).
    pub fn reason(&self) -> String {
        let feat = &FEATURES[feature_index(self.field).expect("a feature's error")];
        match self.rule {
            FieldRule::Missing => format!("missing value in {}", feat.key),
            FieldRule::NotFinite => format!("{} not a finite number", feat.key),
            FieldRule::OutOfRange => {
                format!("{} out of range [{}, {}]", feat.key, feat.min, feat.max)
            }
            FieldRule::NotWhole => format!("{} not a whole number", feat.key),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Checks one value against its feature: a number in range, whole where the feature counts
/// things, a valid code for coded features. NaN (missing) is allowed only for Income, which
/// preprocessing imputes.
pub fn check_feature(j: usize, v: f64) -> Result<(), FieldError> {
    let feat = &FEATURES[j];
    let err = |rule: FieldRule, message: String| {
        Err(FieldError {
            field: feat.key,
            message,
            rule,
        })
    };
    if v.is_nan() {
        return if feat.nullable() {
            Ok(())
        } else {
            err(FieldRule::Missing, "is missing".into())
        };
    }
    if v.is_infinite() {
        // JSON's 1e400 and a table's "1e400" or "inf" alike.
        return err(
            FieldRule::NotFinite,
            "the number is too large (beyond a 64-bit float)".into(),
        );
    }
    // Checked as the f64 the client sent: 45.000000001 is not a whole number even though it
    // rounds to 45 as an f32.
    let x = v;
    if x < feat.min || x > feat.max {
        return err(
            FieldRule::OutOfRange,
            format!("{} is outside [{}, {}]", shown(v), feat.min, feat.max),
        );
    }
    // x is inside [min, max], which lies within ±2^53 (a test holds the table to it), so the
    // cast is exact for a whole number; `fract` is a libm call that showed in profiles.
    if matches!(feat.kind, FeatureKind::Integer | FeatureKind::Coded) && (x as i64) as f64 != x {
        return err(
            FieldRule::NotWhole,
            format!("{} is not a whole number", shown(v)),
        );
    }
    Ok(())
}

/// A value in a message: 1e308 is written so, not as 309 digits.
fn shown(v: f64) -> String {
    if v != 0.0 && !(1e-6..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// The first unusable value of a row of 21 features, if any.
pub fn check_feature_row(row: &[f32]) -> Result<(), FieldError> {
    row.iter()
        .enumerate()
        .try_for_each(|(j, &v)| check_feature(j, f64::from(v)))
}
