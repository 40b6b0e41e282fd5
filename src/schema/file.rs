//! A customer schema as a person writes it: the raw columns of their table and the model
//! features derived from them, one YAML file (`config/schema.yaml` is the built-in one).
//!
//! ```yaml
//! id: customer_id              # optional: the key column, carried to every output
//! reference_date: latest       # or a date (YYYY-MM-DD): what days_since / years_since count to
//! columns:
//!   - { name: customer_id, type: integer, min: 0 }
//!   - { name: signup_date, type: date, format: "%Y-%m-%d" }
//!   - { name: loyalty_tier, type: category, values: [none, silver, gold, platinum] }
//! features:                    # model input order; each has a name and exactly one derivation
//!   - { name: Tenure_Days, days_since: signup_date }
//!   - { name: Tier, code: loyalty_tier, groups: [[none], [silver], [gold, platinum]] }
//! ```
//!
//! [`SchemaFile::parse`] reads the text and [`SchemaFile::resolve`] checks it whole and turns it
//! into a [`CustomerSchema`]: every feature with its kind, bounds, choices and derivation
//! decided. Each mistake is an error naming the key at fault and, where the text shows it, the
//! line; [`SchemaFile::problems`] lists them all (`categorizer schema check`).

use serde::{Deserialize, Serialize};

use super::{DerivedFrom, FeatureKind, RawColumn};
use crate::dates::ReferenceDate;
use crate::error::{Error, Result};

/// The most features a schema may define: every door sizes a row by them, and a model of more
/// is beyond what the form, the explanations and the segment profiles are built to show.
pub const MAX_FEATURES: usize = 256;

/// The longest feature or column name.
pub const MAX_NAME_CHARS: usize = 64;

/// A schema file as written: what serde reads, before any check across keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    /// The key column, carried to every output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `latest` or a date (YYYY-MM-DD); absent: the `features.reference_date` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_date: Option<String>,
    pub columns: Vec<RawColumn>,
    #[serde(default)]
    pub features: Vec<FeatureDef>,
}

/// One feature as written: a name, optional presentation and bounds, and exactly one
/// derivation key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Yeo-Johnson transformed before scaling; absent: decided from the training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skewed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// With `code`: the values of each code, code 0 first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Vec<String>>>,
    /// With `code` (or `flag`): a label per code; absent: a group's values joined by "/"
    /// (`No`/`Yes` for a flag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// What `days_since` and `years_since` count to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceRule {
    /// The latest date seen at training in the columns they read.
    Latest,
    /// A fixed date.
    Fixed(ReferenceDate),
    /// Not in the file: the `features.reference_date` setting.
    Setting,
}

/// A feature with everything decided: what the model, the doors and the SQL are built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDefinition {
    pub key: String,
    pub label: String,
    pub unit: String,
    pub kind: FeatureKind,
    pub choices: Vec<String>,
    pub min: f64,
    pub max: f64,
    /// None: decided from the training split.
    pub skewed: Option<bool>,
    pub derived_from: DerivedFrom,
}

/// A checked schema: the raw columns and the features, in model input order.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSchema {
    pub id: Option<String>,
    pub reference_date: ReferenceRule,
    pub columns: Vec<RawColumn>,
    pub features: Vec<FeatureDefinition>,
}

/// One mistake in a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault, as a path: `features[3] (Tier).groups`.
    pub key: String,
    pub message: String,
    /// 1-based, where the text shows it.
    pub line: Option<usize>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl SchemaFile {
    /// Reads a schema file's text; `origin` names it in errors. A YAML mistake, an unknown
    /// key or a value of the wrong type is an error naming the line.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        serde_yaml::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                .unwrap_or_default();
            Error::Schema(format!("schema {origin}: {e}{at}"))
        })
    }
}

#[cfg(test)]
mod tests;
