//! Dates, in one place: how a date column's text is read (the schema's strftime format as a
//! fixed-width [`DateFormat`], the same expression for feature engineering and for validation
//! and the rule the exported SQL spells out, so
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

/// A date format of fixed-width fields (`%Y` four digits, `%m` and `%d` two, anything else a
/// literal byte): the one rule a date's text is read by, here and in the exported SQL. A text
/// is a date when it has exactly the format's length, digits where the fields are, the
/// literals where they are, and names a calendar day. `"4-9-2012"`, `" 04-09-2012"` and
/// `"04-09-12"` are not dates in `%d-%m-%Y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    /// The format as written.
    pub text: String,
    /// The length of a date in bytes.
    pub len: usize,
    /// Byte offsets of the year (4 digits), month and day (2 digits each).
    pub year: usize,
    pub month: usize,
    pub day: usize,
    /// Every other byte: (offset, byte).
    pub literals: Vec<(usize, u8)>,
}

impl DateFormat {
    /// The fixed-width reading of a strftime format; None when it uses anything but `%Y`,
    /// `%m`, `%d` (each exactly once) and literal ASCII.
    pub fn fixed(format: &str) -> Option<Self> {
        let (mut year, mut month, mut day) = (None, None, None);
        let mut literals = Vec::new();
        let mut at = 0;
        let mut bytes = format.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let (slot, width) = match bytes.next()? {
                    b'Y' => (&mut year, 4),
                    b'm' => (&mut month, 2),
                    b'd' => (&mut day, 2),
                    _ => return None,
                };
                if slot.replace(at).is_some() {
                    return None;
                }
                at += width;
            } else if b.is_ascii() {
                literals.push((at, b));
                at += 1;
            } else {
                return None;
            }
        }
        Some(Self {
            text: format.to_string(),
            len: at,
            year: year?,
            month: month?,
            day: day?,
            literals,
        })
    }

    /// Days since 1970-01-01 of `text`, or None when it is not a date in this format.
    pub fn days(&self, text: &str) -> Option<i32> {
        let b = text.as_bytes();
        if b.len() != self.len || self.literals.iter().any(|&(i, l)| b[i] != l) {
            return None;
        }
        let number = |at: usize, width: usize| {
            b[at..at + width].iter().try_fold(0u32, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })
        };
        let (y, m, d) = (
            number(self.year, 4)?,
            number(self.month, 2)?,
            number(self.day, 2)?,
        );
        days_from_civil(y as i32, m, d).map(|days| days as i32)
    }
}

/// The text column `text` as dates (days since 1970-01-01 as polars' `Date`): null where the
/// text is missing or is not a calendar date in `format` ([`DateFormat`]'s rule; a format
/// that is not of fixed width is read by polars' `strptime`, whole-string).
pub fn parse_expr(text: Expr, format: &str) -> Expr {
    let Some(fixed) = DateFormat::fixed(format) else {
        return text.str().to_date(StrptimeOptions {
            format: Some(format.into()),
            strict: false,
            exact: true,
            cache: true,
        });
    };
    text.map(
        move |c: Column| {
            let days: Int32Chunked = c
                .str()?
                .iter()
                .map(|t| t.and_then(|t| fixed.days(t)))
                .collect();
            Ok(days
                .with_name(c.name().clone())
                .into_date()
                .into_series()
                .into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::Date)),
    )
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
        // Fixed width: what chrono's lenient reading would take is not a date.
        let loose = Column::new(
            "Dt_Customer".into(),
            [
                "4-9-2012",
                " 04-09-2012",
                "04-09-12",
                "04-09-+201",
                "04-09-2012 ",
                "00-09-2012",
            ],
        );
        let days = parse_column(&loose, DEFAULT_FORMAT).unwrap();
        assert_eq!(days, [None; 6]);
        let format = DateFormat::fixed(DEFAULT_FORMAT).unwrap();
        assert_eq!(
            (format.len, format.day, format.month, format.year),
            (10, 0, 3, 6)
        );
        assert_eq!(format.days("29-02-2000"), Some(11_016));
        assert_eq!(format.days("29-02-1900"), None);
        assert_eq!(
            format.days("01-01-0000"),
            days_from_civil(0, 1, 1).map(|d| d as i32)
        );
        assert!(DateFormat::fixed("%d %b %Y").is_none());
        assert!(DateFormat::fixed("%Y-%m").is_none());
        let iso = parse_column(&column, "%Y-%m-%d").unwrap();
        assert_eq!(iso[1], Some(15_587));
        assert_eq!(iso[0], None);
    }
}
