//! Dates, in one place: how a date column's text is read (the schema's strftime format through
//! polars' `strptime`, the same expression for feature engineering and for validation, so
//! validation passes exactly the dates that become features), the configured reference date,
//! and calendar arithmetic (chrono).

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A date column's format when the schema gives none.
pub const DEFAULT_FORMAT: &str = "%d-%m-%Y";

/// 1970-01-01, day 0.
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")
}

/// The text column `text` as dates (days since 1970-01-01 as polars' `Date`): null where the
/// text is missing or is not a calendar date in `format` (a whole-string match).
pub fn parse_expr(text: Expr, format: &str) -> Expr {
    text.str().to_date(StrptimeOptions {
        format: Some(format.into()),
        strict: false,
        exact: true,
        cache: true,
    })
}

/// Days since 1970-01-01 of each value of a text column, read as [`parse_expr`] reads it.
pub fn parse_column(column: &Column, format: &str) -> Result<Vec<Option<i32>>> {
    let name = column.name().clone();
    let frame = DataFrame::new(column.len(), vec![column.clone()])?
        .lazy()
        .select([parse_expr(col(name.clone()), format).cast(DataType::Int32)])
        .collect()?;
    Ok(frame.column(&name)?.i32()?.iter().collect())
}

/// Days since 1970-01-01 of a calendar date; `None` for a date that does not exist.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i64> {
    NaiveDate::from_ymd_opt(year, month, day).map(|d| (d - epoch()).num_days())
}

/// The calendar date (day, month, year) of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (u32, u32, i32) {
    let date = epoch() + chrono::Duration::days(days);
    (date.day(), date.month(), date.year())
}

/// The date that Age and Days_as_Customer are measured against. Configured, never today's
/// clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl ReferenceDate {
    /// Parses a calendar date written `YYYY-MM-DD` (years 1000 to 9999).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let bad = || format!("'{text}' is not a date in YYYY-MM-DD form");
        let text = text.trim();
        // chrono's %Y takes any number of digits and %m/%d one or two: the form is checked here.
        let shaped = text.len() == 10
            && text.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .filter(|d| shaped && (1000..=9999).contains(&d.year()))
            .ok_or_else(bad)?;
        Ok(Self {
            year: date.year(),
            month: date.month(),
            day: date.day(),
        })
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day).expect("parsed as a calendar date")
    }
}

impl Default for ReferenceDate {
    fn default() -> Self {
        Self {
            year: 2014,
            month: 12,
            day: 31,
        }
    }
}

fn parts(secs: u64) -> (i32, u32, u32, u64, u64, u64) {
    let (d, m, y) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    (y, m, d, s / 3600, s / 60 % 60, s % 60)
}

/// `2026-11-24T10:15:00Z`.
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d, h, mi, s) = parts(secs);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20261124T101500Z`: sortable, and safe in a path or an S3 key.
pub fn compact(secs: u64) -> String {
    let (y, m, d, h, mi, s) = parts(secs);
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_dates_are_calendar_dates_in_iso_form() {
        let d = ReferenceDate::parse("2014-12-31").unwrap();
        assert_eq!((d.year, d.month, d.day), (2014, 12, 31));
        assert_eq!(d.days_since_epoch(), 16_435);
        for bad in [
            "31-12-2014",
            "2014-13-01",
            "2014-02-30",
            "2014-1-01",
            "14-01-01",
            "",
            "x",
        ] {
            assert!(ReferenceDate::parse(bad).is_err(), "{bad}");
        }
        assert!(ReferenceDate::parse("2016-02-29").is_ok(), "a leap day");
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_515_300), "2026-11-24T10:15:00Z");
        assert_eq!(compact(1_795_515_300), "20261124T101500Z");
    }

    #[test]
    fn day_numbers_go_both_ways() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2012, 9, 4), Some(15_587));
        assert_eq!(days_from_civil(2014, 2, 29), None);
        for days in [-800_000, -1, 0, 59, 15_587, 16_435, 2_932_896] {
            let (d, m, y) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
        assert_eq!(civil_from_days(0), (1, 1, 1970));
    }

    #[test]
    fn a_date_column_is_read_in_the_schema_format_only() {
        let column = Column::new(
            "Dt_Customer".into(),
            [
                Some("04-09-2012"),
                Some("2012-09-04"),
                Some("31-02-2014"),
                Some("4-9-2012x"),
                None,
                Some("29-02-2012"),
            ],
        );
        let days = parse_column(&column, DEFAULT_FORMAT).unwrap();
        assert_eq!(days, [Some(15_587), None, None, None, None, Some(15_399)]);
        let iso = parse_column(&column, "%Y-%m-%d").unwrap();
        assert_eq!(iso[1], Some(15_587));
        assert_eq!(iso[0], None);
    }
}
