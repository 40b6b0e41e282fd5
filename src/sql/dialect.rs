//! What differs between the engines the SQL is written for: quoting, literals, types,
//! regular expressions, integer division, row numbers and typed dates.

use crate::dates::DateFormat;
use crate::error::{Error, Result};

/// An engine the SQL is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Spark,
    Duckdb,
}

impl Dialect {
    pub const ALL: [Dialect; 2] = [Dialect::Spark, Dialect::Duckdb];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Spark => "spark",
            Dialect::Duckdb => "duckdb",
        }
    }

    /// The file a version stores this dialect's SQL in.
    pub fn file(self) -> String {
        format!("features.{}.sql", self.name())
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::Model(format!("no SQL dialect '{name}' (spark or duckdb)")))
    }

    pub(super) fn quote(self, id: &str) -> String {
        match self {
            Dialect::Spark => format!("`{}`", id.replace('`', "``")),
            Dialect::Duckdb => format!("\"{}\"", id.replace('"', "\"\"")),
        }
    }

    /// A string literal. Spark reads backslash escapes in literals; DuckDB does not.
    pub(super) fn lit(self, s: &str) -> String {
        match self {
            Dialect::Spark => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            Dialect::Duckdb => format!("'{}'", s.replace('\'', "''")),
        }
    }

    pub(super) fn text_type(self) -> &'static str {
        match self {
            Dialect::Spark => "STRING",
            Dialect::Duckdb => "VARCHAR",
        }
    }

    /// True when `column` is held as text (a constant the engines fold).
    pub(super) fn is_text(self, column: &str) -> String {
        let name = match self {
            Dialect::Spark => "string",
            Dialect::Duckdb => "VARCHAR",
        };
        format!("typeof({column}) = '{name}'")
    }

    /// `text` matches the (anchored) regular expression.
    pub(super) fn matches(self, text: &str, re: &str) -> String {
        match self {
            Dialect::Spark => format!("{text} RLIKE {}", self.lit(re)),
            Dialect::Duckdb => format!("regexp_matches({text}, {})", self.lit(re)),
        }
    }

    /// Integer division of non-negative integers.
    pub(super) fn div(self, a: &str, b: u32) -> String {
        match self {
            Dialect::Spark => format!("({a} DIV {b})"),
            Dialect::Duckdb => format!("({a} // {b})"),
        }
    }

    /// A key per row: Spark's is unique and increasing, not consecutive (a consecutive
    /// number would need one partition); DuckDB's numbers the rows in the order it reads them.
    pub(super) fn row_number(self) -> &'static str {
        match self {
            Dialect::Spark => "monotonically_increasing_id()",
            Dialect::Duckdb => "row_number() OVER ()",
        }
    }

    pub(super) fn text(self, e: &str) -> String {
        format!("CAST({e} AS {})", self.text_type())
    }

    /// True when `column` is held as a date or a timestamp (a constant the engines fold).
    pub(super) fn is_date(self, column: &str) -> String {
        match self {
            Dialect::Spark => {
                format!("typeof({column}) IN ('date', 'timestamp', 'timestamp_ntz')")
            }
            Dialect::Duckdb => format!(
                "typeof({column}) IN ('DATE', 'TIMESTAMP', 'TIMESTAMP WITH TIME ZONE', \
                 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS')"
            ),
        }
    }

    /// A date or timestamp `column` as text in the schema's `format`, so a typed date is
    /// read by the one rule text dates are (a timestamp counts as its day).
    pub(super) fn date_text(self, column: &str, format: &DateFormat) -> String {
        match self {
            Dialect::Spark => format!(
                "date_format(CAST({column} AS DATE), {})",
                self.lit(&java_pattern(&format.text))
            ),
            Dialect::Duckdb => format!(
                "strftime(TRY_CAST({column} AS DATE), {})",
                self.lit(&format.text)
            ),
        }
    }
}

/// A fixed-width strftime format (`%Y`, `%m`, `%d` and literals) as a Java date pattern:
/// letters and quotes between the fields are quoted.
pub(super) fn java_pattern(format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push_str(match chars.next() {
                Some('Y') => "yyyy",
                Some('m') => "MM",
                _ => "dd",
            }),
            '\'' => out.push_str("''"),
            c if c.is_ascii_alphabetic() => {
                out.push('\'');
                out.push(c);
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    out
}
