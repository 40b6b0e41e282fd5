//! The one definition of what a customer is: the 29 raw columns (from `config/schema.yaml`,
//! embedded at build time) and the 21 model features (defined here, in code).
//!
//! Everything else derives from these two tables: the readers, the feature expressions, the
//! preprocessing, and later the web form, the JSON API, the ONNX input and validation.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The raw schema file, embedded so the binary runs with nothing beside it.
pub const RAW_SCHEMA_YAML: &str = include_str!("../config/schema.yaml");

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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
            let schema: RawSchema = serde_yaml::from_str(RAW_SCHEMA_YAML)
                .expect("config/schema.yaml is embedded at build time and must parse");
            assert_eq!(schema.columns.len(), 29, "the raw schema has 29 columns");
            schema
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A whole number (counts, years, days).
    Integer,
    /// A real number (money).
    Real,
    /// A coded choice: the value is the index into `choices`.
    Coded,
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
    pub derivation: &'static str,
}

impl Feature {
    /// A missing value is allowed (the preprocessing imputes it): true of the features read
    /// straight from a raw column that `config/schema.yaml` marks `nullable`. The one place
    /// that says which features may be missing.
    pub fn nullable(&self) -> bool {
        static NULLABLE: OnceLock<Vec<&'static str>> = OnceLock::new();
        NULLABLE
            .get_or_init(|| {
                FEATURES
                    .iter()
                    .filter(|f| {
                        RawSchema::get()
                            .columns
                            .iter()
                            .any(|c| c.nullable && c.name == f.derivation)
                    })
                    .map(|f| f.key)
                    .collect()
            })
            .contains(&self.key)
    }
}

const fn feature(
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    kind: FeatureKind,
    min: f64,
    max: f64,
    skewed: bool,
    derivation: &'static str,
) -> Feature {
    Feature {
        key,
        label,
        unit,
        kind,
        choices: &[],
        min,
        max,
        skewed,
        derivation,
    }
}

const fn coded(
    key: &'static str,
    label: &'static str,
    choices: &'static [&'static str],
    derivation: &'static str,
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

use FeatureKind::{Integer, Real};

/// Education levels in ordinal order: the code is the index.
pub const EDUCATION_LEVELS: &[&str] = &["Basic", "2n Cycle", "Graduation", "Master", "PhD"];
/// Marital statuses that count as living with a partner (Marital_Status = 1).
pub const PARTNERED: &[&str] = &["Married", "Together"];
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

/// Number of model features.
pub const N_FEATURES: usize = 21;

/// The 21 model features, in model input order.
pub const FEATURES: [Feature; N_FEATURES] = [
    feature(
        "Age",
        "Age",
        "years",
        Integer,
        0.0,
        130.0,
        true,
        "reference year - Year_Birth",
    ),
    coded(
        "Education",
        "Education",
        EDUCATION_LEVELS,
        "ordinal code of Education",
    ),
    coded(
        "Marital_Status",
        "Lives with a partner",
        &["No", "Yes"],
        "1 for Married/Together, else 0",
    ),
    coded(
        "Parental_Status",
        "Has children at home",
        &["No", "Yes"],
        "1 when Children > 0",
    ),
    feature(
        "Children",
        "Children at home",
        "",
        Integer,
        0.0,
        20.0,
        false,
        "Kidhome + Teenhome",
    ),
    feature(
        "Income",
        "Yearly household income",
        "$",
        Real,
        0.0,
        10_000_000.0,
        false,
        "Income",
    ),
    feature(
        "Total_Spending",
        "Total spending (2 years)",
        "$",
        Real,
        0.0,
        1_000_000.0,
        true,
        "sum of the six Mnt columns",
    ),
    feature(
        "Days_as_Customer",
        "Days as customer",
        "days",
        Integer,
        0.0,
        36_500.0,
        false,
        "reference date - Dt_Customer",
    ),
    feature(
        "Recency",
        "Days since last purchase",
        "days",
        Integer,
        0.0,
        36_500.0,
        false,
        "Recency",
    ),
    feature(
        "Wines",
        "Spent on wine",
        "$",
        Real,
        0.0,
        1_000_000.0,
        true,
        "MntWines",
    ),
    feature(
        "Fruits",
        "Spent on fruits",
        "$",
        Real,
        0.0,
        1_000_000.0,
        true,
        "MntFruits",
    ),
    feature(
        "Meat",
        "Spent on meat",
        "$",
        Real,
        0.0,
        1_000_000.0,
        true,
        "MntMeatProducts",
    ),
    feature(
        "Fish",
        "Spent on fish",
        "$",
        Real,
        0.0,
        1_000_000.0,
        true,
        "MntFishProducts",
    ),
    feature(
        "Sweets",
        "Spent on sweets",
        "$",
        Real,
        0.0,
        1_000_000.0,
        true,
        "MntSweetProducts",
    ),
    feature(
        "Gold",
        "Spent on gold",
        "$",
        Real,
        0.0,
        1_000_000.0,
        true,
        "MntGoldProds",
    ),
    feature(
        "Web",
        "Web purchases",
        "purchases",
        Integer,
        0.0,
        10_000.0,
        false,
        "NumWebPurchases",
    ),
    feature(
        "Catalog",
        "Catalog purchases",
        "purchases",
        Integer,
        0.0,
        10_000.0,
        false,
        "NumCatalogPurchases",
    ),
    feature(
        "Store",
        "Store purchases",
        "purchases",
        Integer,
        0.0,
        10_000.0,
        false,
        "NumStorePurchases",
    ),
    feature(
        "Discount_Purchases",
        "Purchases with a discount",
        "purchases",
        Integer,
        0.0,
        10_000.0,
        false,
        "NumDealsPurchases",
    ),
    feature(
        "Total_Promo",
        "Campaign offers accepted",
        "of 5",
        Integer,
        0.0,
        5.0,
        false,
        "AcceptedCmp1 + ... + AcceptedCmp5",
    ),
    feature(
        "NumWebVisitsMonth",
        "Web visits last month",
        "visits",
        Integer,
        0.0,
        10_000.0,
        false,
        "NumWebVisitsMonth",
    ),
];

/// Position of a feature in model input order.
pub fn feature_index(key: &str) -> Option<usize> {
    FEATURES.iter().position(|f| f.key == key)
}

/// The feature keys in model input order.
pub fn feature_keys() -> impl Iterator<Item = &'static str> {
    FEATURES.iter().map(|f| f.key)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        return err(FieldRule::NotFinite, "must be a finite number".into());
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
    if matches!(feat.kind, FeatureKind::Integer | FeatureKind::Coded) && x.fract() != 0.0 {
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
