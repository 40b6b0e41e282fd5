//! Customers from a JSON body, straight into feature rows.
//!
//! `{"customers": [{"Age": 45, ...}, ...]}` is deserialised without building a JSON tree: each
//! customer object is read field by field into a `[f32; 21]`. A problem in one customer (a
//! missing or unknown field, a string for a number, a value out of range) becomes that row's
//! error and the rest of the body is still read, so the valid rows can be predicted. Arrow and
//! CSV bodies are read by [`crate::answer::table`] into the same [`Row`]s, by the same rules;
//! which reader a request gets is [`super::negotiate`]'s choice.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::negotiate::Format;
use crate::answer::table::{self, BadText, TableError};
pub use crate::answer::{Row, RowError};
use crate::schema::{FEATURES, N_FEATURES, check_feature, feature_index_after};

#[derive(Debug)]
pub struct PredictBody {
    pub customers: Vec<Row>,
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// More customers than the limit: found while reading, before the rest is parsed.
    TooManyCustomers { limit: usize },
    /// Not a prediction request (broken JSON, no `customers`, another key).
    Malformed(String),
    /// An Arrow or CSV body that is not a table of the feature columns.
    BadTable(String),
}

/// The customers of an Arrow IPC stream or CSV body: one row per record, read by
/// [`table::feature_rows`] (a text cell that is not a number is its row's error).
pub fn parse_table(
    body: &[u8],
    format: Format,
    max_customers: usize,
) -> Result<PredictBody, BodyError> {
    use polars::prelude::{CsvReadOptions, DataFrame, IpcStreamReader, PolarsResult, SerReader};
    // A CSV's column types are inferred from its first rows; a text cell further down fails
    // that read, and the body is read again with every column as text, so the cell is its
    // row's error (as in a bulk file), not the whole body's.
    let csv = |infer: Option<usize>| {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(infer)
            .into_reader_with_file_handle(std::io::Cursor::new(body))
            .finish()
    };
    let read = || -> PolarsResult<DataFrame> {
        match format {
            Format::Arrow => IpcStreamReader::new(std::io::Cursor::new(body)).finish(),
            _ => csv(Some(100)).or_else(|_| csv(Some(0))),
        }
    };
    let what = if format == Format::Arrow {
        "Arrow IPC stream"
    } else {
        "CSV"
    };
    // A reader of hostile bytes may panic: that is this body's error, not the server's.
    let df = std::panic::catch_unwind(read)
        .map_err(|_| BodyError::BadTable(format!("the body is not a readable {what}")))?
        .map_err(|e| BodyError::BadTable(format!("the body is not a readable {what}: {e}")))?;
    if df.height() > max_customers {
        return Err(BodyError::TooManyCustomers {
            limit: max_customers,
        });
    }
    let customers = table::feature_rows(&df, BadText::RowError).map_err(|e| match e {
        TableError::MissingColumn { .. } | TableError::NotNumbers { .. } => {
            BodyError::BadTable(e.to_string())
        }
        TableError::BadText { .. } => unreachable!("a text cell is its row's error here"),
    })?;
    Ok(PredictBody { customers })
}

/// `key`, cut to [`crate::answer::MAX_TEXT_SHOWN`] characters (an attacker's 20 MB key is not echoed back).
fn shown_key(key: &str) -> String {
    crate::answer::shown_text(key)
}

/// Reads `{"customers": [...]}`, at most `max_customers` of them: the reading stops at the
/// next one, so the cost of an oversized request is bounded by the limit, not by the body.
pub fn parse_predict_body(body: &[u8], max_customers: usize) -> Result<PredictBody, BodyError> {
    let too_many = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de::DeserializeSeed::deserialize(
        BodySeed {
            max: max_customers,
            too_many: &too_many,
        },
        &mut de,
    )
    .and_then(|b| de.end().map(|()| b));
    match parsed {
        Ok(b) => Ok(b),
        Err(_) if too_many.get() => Err(BodyError::TooManyCustomers {
            limit: max_customers,
        }),
        // serde_json refuses a number beyond f64 (1e400) as a syntax error of the whole body.
        // It is well-formed JSON and one customer's bad value: mark every such number and read
        // the body again, so it becomes that customer's error (rare: paid only on this path).
        Err(e) if e.to_string().starts_with("number out of range") => {
            match mark_out_of_range(body) {
                Some(marked) => parse_predict_body(&marked, max_customers),
                None => Err(BodyError::Malformed(e.to_string())),
            }
        }
        Err(e) => Err(BodyError::Malformed(e.to_string())),
    }
}

/// What a number beyond f64 becomes in the re-read body: a string no client sends by accident
/// (JSON needs the escape for the NUL).
const OUT_OF_RANGE: &str = "\\u0000out of range";

/// `body` with every number outside strings that overflows f64 replaced by the
/// [`OUT_OF_RANGE`] string; `None` when there is none (the error was something else).
fn mark_out_of_range(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let (mut i, mut in_string, mut marked) = (0, false, false);
    while i < body.len() {
        let c = body[i];
        if in_string {
            match c {
                b'\\' => {
                    out.extend_from_slice(&body[i..(i + 2).min(body.len())]);
                    i += 2;
                    continue;
                }
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'-' || c.is_ascii_digit() {
            let end = body[i..]
                .iter()
                .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .map_or(body.len(), |n| i + n);
            let token = &body[i..end];
            let overflows = std::str::from_utf8(token)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_infinite);
            if overflows {
                out.push(b'"');
                out.extend_from_slice(OUT_OF_RANGE.as_bytes());
                out.push(b'"');
                marked = true;
            } else {
                out.extend_from_slice(token);
            }
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    marked.then_some(out)
}

struct BodySeed<'a> {
    max: usize,
    too_many: &'a std::cell::Cell<bool>,
}

impl<'de> de::DeserializeSeed<'de> for BodySeed<'_> {
    type Value = PredictBody;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PredictBody, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = PredictBody;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an object {"customers": [...]}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PredictBody, A::Error> {
        let mut customers = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "customers" {
                return Err(de::Error::custom(format!(
                    "unknown field `{}`, expected `customers`",
                    shown_key(&key)
                )));
            }
            if customers.is_some() {
                return Err(de::Error::duplicate_field("customers"));
            }
            customers = Some(map.next_value_seed(CustomersSeed {
                max: self.max,
                too_many: self.too_many,
            })?);
        }
        let customers = customers.ok_or_else(|| de::Error::missing_field("customers"))?;
        Ok(PredictBody { customers })
    }
}

struct CustomersSeed<'a> {
    max: usize,
    too_many: &'a std::cell::Cell<bool>,
}

impl<'de> de::DeserializeSeed<'de> for CustomersSeed<'_> {
    type Value = Vec<Row>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Row>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CustomersSeed<'_> {
    type Value = Vec<Row>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of customers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Row>, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(4096));
        while let Some(row) = seq.next_element::<Row>()? {
            if rows.len() == self.max {
                self.too_many.set(true);
                return Err(de::Error::custom("too many customers"));
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RowVisitor)
    }
}

struct RowVisitor;

fn not_an_object<E>(what: &str) -> Result<Row, E> {
    Ok(Row(Err(RowError {
        field: None,
        message: format!("a customer must be an object of the 21 fields, got {what}"),
    })))
}

impl<'de> Visitor<'de> for RowVisitor {
    type Value = Row;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with the 21 customer fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        // Kept as the f64 the client sent until every check passed.
        let mut values = [f64::NAN; N_FEATURES];
        let mut seen = [false; N_FEATURES];
        let mut error: Option<RowError> = None;
        let mut next = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(j) = feature_index_after(&key, next) else {
                map.next_value::<IgnoredAny>()?;
                error.get_or_insert(RowError {
                    field: Some(shown_key(&key)),
                    message: "unknown field".into(),
                });
                continue;
            };
            next = j + 1;
            if std::mem::replace(&mut seen[j], true) {
                map.next_value::<IgnoredAny>()?;
                error.get_or_insert(RowError {
                    field: Some(FEATURES[j].key.into()),
                    message: format!("{}: given more than once", FEATURES[j].key),
                });
                continue;
            }
            match map.next_value::<Number>()? {
                Number::Value(v) => values[j] = v,
                Number::Null => values[j] = f64::NAN,
                // Checked below as what a table's "1e400" reads as: too large.
                Number::OutOfRange => values[j] = f64::INFINITY,
                // A table's cell with the same text reads the same: a number in text is
                // still refused (JSON numbers are numbers), with the message of a table's
                // unreadable cell when it is not one.
                Number::Text(text) => {
                    let key = FEATURES[j].key;
                    error.get_or_insert(match crate::answer::text_number(Some(&text)) {
                        None => RowError::not_a_number(key, text.trim()),
                        Some(_) => RowError::of(
                            key,
                            format!("must be a number, not the text '{}'", shown_key(&text)),
                        ),
                    });
                }
                Number::Not(what) => {
                    error.get_or_insert(RowError {
                        field: Some(FEATURES[j].key.into()),
                        message: format!("{}: must be a number, got {what}", FEATURES[j].key),
                    });
                }
            }
        }
        if let Some(e) = error {
            return Ok(Row(Err(e)));
        }
        for (j, v) in values.iter().enumerate() {
            if !seen[j] && !FEATURES[j].nullable() {
                return Ok(Row(Err(RowError {
                    field: Some(FEATURES[j].key.into()),
                    message: format!("{}: is missing", FEATURES[j].key),
                })));
            }
            if let Err(e) = check_feature(j, *v) {
                return Ok(Row(Err(e.into())));
            }
        }
        Ok(Row(Ok(values.map(|v| v as f32))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        not_an_object("a list")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Row, E> {
        not_an_object("a string")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Row, E> {
        not_an_object("a number")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Row, E> {
        not_an_object("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Row, E> {
        not_an_object("a number")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Row, E> {
        not_an_object("a boolean")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Row, E> {
        not_an_object("null")
    }
}

/// A field's value: a number, null (missing), or something else (named for the message).
enum Number {
    Value(f64),
    Null,
    Not(&'static str),
    /// A string (cut short: only a message quotes it).
    Text(String),
    /// Beyond f64 (1e400): marked by [`mark_out_of_range`].
    OutOfRange,
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor)
    }
}

struct NumberVisitor;

impl<'de> Visitor<'de> for NumberVisitor {
    type Value = Number;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
        Ok(Number::Value(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
        Ok(Number::Value(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
        Ok(Number::Value(v as f64))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Number, E> {
        Ok(Number::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Number, E> {
        Ok(Number::Null)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
        if v == "\0out of range" {
            return Ok(Number::OutOfRange);
        }
        Ok(Number::Text(crate::answer::shown_text(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Number, E> {
        Ok(Number::Not("a boolean"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Number, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Number::Not("a list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Number, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Number::Not("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::feature_index;

    fn customer() -> serde_json::Map<String, serde_json::Value> {
        let v = serde_json::json!({
            "Age": 45, "Education": 2, "Marital_Status": 1, "Parental_Status": 1,
            "Children": 1, "Income": 52000.0, "Total_Spending": 600.0,
            "Days_as_Customer": 500, "Recency": 30, "Wines": 300.0, "Fruits": 20.0,
            "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0, "Gold": 80.0, "Web": 4,
            "Catalog": 2, "Store": 6, "Discount_Purchases": 2, "Total_Promo": 0,
            "NumWebVisitsMonth": 5
        });
        v.as_object().unwrap().clone()
    }

    #[test]
    fn bad_rows_get_their_own_errors_and_good_rows_parse() {
        let good = customer();
        let mut text = good.clone();
        text.insert("Income".into(), "lots".into());
        let mut negative = good.clone();
        negative.insert("Age".into(), (-3).into());
        let mut missing = good.clone();
        missing.remove("Recency");
        let mut no_income = good.clone();
        no_income.remove("Income");
        let body = serde_json::json!({"customers": [good, text, negative, missing, 7, no_income]});
        let parsed = parse_predict_body(body.to_string().as_bytes(), 100).unwrap();
        let r = &parsed.customers;
        assert_eq!(r.len(), 6);
        assert!(r[0].0.is_ok(), "{:?}", r[0]);
        let field = |i: usize| r[i].0.clone().unwrap_err();
        assert_eq!(field(1).field.as_deref(), Some("Income"));
        assert_eq!(field(1).message, "Income: 'lots' is not a number");
        assert_eq!(field(2).field.as_deref(), Some("Age"));
        assert_eq!(field(3).field.as_deref(), Some("Recency"));
        assert!(field(3).message.contains("missing"));
        assert!(field(4).message.contains("must be an object"));
        assert!(
            r[5].0.as_ref().unwrap()[feature_index("Income").unwrap()].is_nan(),
            "Income may be left out: it is imputed"
        );
    }

    #[test]
    fn fields_in_any_order_give_the_same_row() {
        let good = customer();
        let fields: Vec<(String, serde_json::Value)> = good.clone().into_iter().collect();
        let reversed: serde_json::Map<_, _> = fields.iter().rev().cloned().collect();
        let mut rotated: Vec<_> = fields.clone();
        rotated.rotate_left(7);
        let rotated: serde_json::Map<_, _> = rotated.into_iter().collect();
        let body = serde_json::json!({"customers": [good, reversed, rotated]});
        let parsed = parse_predict_body(body.to_string().as_bytes(), 10).unwrap();
        let rows: Vec<[f32; N_FEATURES]> = parsed
            .customers
            .iter()
            .map(|r| r.0.clone().unwrap())
            .collect();
        assert_eq!(rows[0][feature_index("Recency").unwrap()], 30.0);
        assert_eq!(rows[0], rows[1]);
        assert_eq!(rows[0], rows[2]);
    }

    fn body(customers: &[serde_json::Value]) -> Vec<u8> {
        serde_json::json!({ "customers": customers })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn reading_stops_at_the_customer_over_the_limit() {
        let good = serde_json::Value::Object(customer());
        assert_eq!(
            parse_predict_body(&body(&vec![good.clone(); 3]), 3)
                .unwrap()
                .customers
                .len(),
            3
        );
        assert_eq!(
            parse_predict_body(&body(&vec![good; 4]), 3).unwrap_err(),
            BodyError::TooManyCustomers { limit: 3 }
        );
        // Junk rows count too: a million `1`s is refused at the fourth.
        let ones = format!("{{\"customers\":[{}1]}}", "1,".repeat(1_000_000));
        assert_eq!(
            parse_predict_body(ones.as_bytes(), 3).unwrap_err(),
            BodyError::TooManyCustomers { limit: 3 }
        );
        for bad in [
            &b"{}"[..],
            b"[]",
            b"{\"customers\": []} x",
            b"{\"customers\":[], \"other\": 1}",
        ] {
            assert!(
                matches!(parse_predict_body(bad, 3), Err(BodyError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn values_are_checked_as_sent_and_keys_once() {
        let row = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
            let mut c = customer();
            edit(&mut c);
            let b = body(&[serde_json::Value::Object(c)]);
            parse_predict_body(&b, 10).unwrap().customers[0].0.clone()
        };
        for (field, value) in [
            ("Age", serde_json::json!(45.000000001)),
            ("Children", serde_json::json!(2.00000001)),
            ("Income", serde_json::json!(10000000.4)),
        ] {
            let e = row(&|c| {
                c.insert(field.into(), value.clone());
            })
            .unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{value}: {e:?}");
        }
        // A duplicated key is the row's error, not the last value silently.
        let mut text = String::from_utf8(body(&[serde_json::Value::Object(customer())])).unwrap();
        text = text.replacen("\"Age\":45", "\"Age\":45,\"Age\":46", 1);
        let e = parse_predict_body(text.as_bytes(), 10).unwrap().customers[0]
            .0
            .clone()
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("Age"));
        assert!(e.message.contains("more than once"), "{}", e.message);
        // An unknown key is named once, and cut short.
        let long = "k".repeat(100_000);
        let e = row(&|c| {
            c.insert(long.clone(), 1.into());
        })
        .unwrap_err();
        let shown = e.field.unwrap();
        assert!(
            shown.chars().count() <= crate::answer::MAX_TEXT_SHOWN + 1,
            "{}",
            shown.len()
        );
        assert!(!e.message.contains("kkk"));
    }

    /// A valid body with random damage: bytes flipped, cut short, inserted or duplicated.
    fn mutated(rng: &mut rand_chacha::ChaCha8Rng, base: &[u8]) -> Vec<u8> {
        use rand::Rng;
        let mut b = base.to_vec();
        for _ in 0..rng.random_range(1..6) {
            if b.is_empty() {
                break;
            }
            let at = rng.random_range(0..b.len());
            match rng.random_range(0..5) {
                0 => b[at] = rng.random(),
                1 => b.truncate(at),
                2 => {
                    let junk: &[u8] = [
                        &b"\""[..],
                        b"1e400",
                        b"NaN",
                        b"-",
                        b"{",
                        b"]",
                        b",",
                        b"\\u00",
                    ][rng.random_range(0..8)];
                    b.splice(at..at, junk.iter().copied());
                }
                3 => {
                    let end = (at + rng.random_range(1..40)).min(b.len());
                    let piece = b[at..end].to_vec();
                    b.splice(at..at, piece);
                }
                _ => b[at] = b"0123456789.e-+"[rng.random_range(0..14)],
            }
        }
        b
    }

    #[test]
    fn a_number_beyond_f64_is_its_customers_error() {
        let good = String::from_utf8(body(&[serde_json::Value::Object(customer())])).unwrap();
        let one = good
            .trim_start_matches("{\"customers\":[")
            .trim_end_matches("]}");
        assert!(one.contains("\"Income\":"), "{one}");
        for big in ["1e400", "-1e400", "1.5E+309"] {
            let bad = regex_free_replace(one, "Income", big);
            // A string holding the same digits, and a key, stay as they are.
            let text = format!("{{\"customers\":[{bad},{one},{{\"1e400\":\"1e400\"}}]}}");
            let rows = parse_predict_body(text.as_bytes(), 10).unwrap().customers;
            assert_eq!(rows.len(), 3, "{big}");
            let e = rows[0].0.clone().unwrap_err();
            assert_eq!(e.field.as_deref(), Some("Income"), "{big}: {e:?}");
            assert!(e.message.contains("too large"), "{}", e.message);
            assert!(rows[1].0.is_ok(), "{big}");
            assert_eq!(
                rows[2].0.clone().unwrap_err().field.as_deref(),
                Some("1e400")
            );
        }
        // Broken JSON with a huge number is still broken JSON.
        assert!(matches!(
            parse_predict_body(b"{\"customers\":[{\"Income\":1e400}", 10),
            Err(BodyError::Malformed(_))
        ));
    }

    /// `one` with the value of `field` replaced by `value` (the value is a plain number).
    fn regex_free_replace(one: &str, field: &str, value: &str) -> String {
        let key = format!("\"{field}\":");
        let at = one.find(&key).unwrap() + key.len();
        let end = at + one[at..].find([',', '}']).unwrap();
        format!("{}{value}{}", &one[..at], &one[end..])
    }

    #[test]
    fn damaged_bodies_never_panic_and_every_customer_gets_an_answer_or_an_error() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
        let good = serde_json::Value::Object(customer());
        let base = body(&vec![good; 3]);
        let (mut whole, mut malformed, mut too_many) = (0, 0, 0);
        for _ in 0..20_000 {
            let b = mutated(&mut rng, &base);
            match parse_predict_body(&b, 3) {
                Ok(parsed) => {
                    whole += 1;
                    assert!(parsed.customers.len() <= 3);
                    for row in &parsed.customers {
                        match &row.0 {
                            // A customer that passed holds only values its checks allow.
                            Ok(values) => {
                                crate::schema::check_feature_row(values).unwrap();
                            }
                            Err(e) => assert!(!e.message.is_empty()),
                        }
                    }
                }
                Err(BodyError::Malformed(m)) => {
                    malformed += 1;
                    assert!(!m.is_empty());
                }
                Err(BodyError::BadTable(_)) => unreachable!("a JSON body is not read as a table"),
                Err(BodyError::TooManyCustomers { .. }) => too_many += 1,
            }
        }
        // The damage reached every outcome.
        assert!(
            whole > 100 && malformed > 100 && too_many > 0,
            "{whole} {malformed} {too_many}"
        );
    }

    #[test]
    fn damaged_tables_are_errors_or_rows_never_a_panic() {
        use polars::prelude::{Column, DataFrame, IpcStreamWriter, SerWriter};
        use rand::{Rng, SeedableRng};
        let c = customer();
        let columns: Vec<Column> = FEATURES
            .iter()
            .map(|f| Column::new(f.key.into(), vec![c[f.key].as_f64().unwrap(); 3]))
            .collect();
        let mut df = DataFrame::new(3, columns).unwrap();
        let mut arrow = Vec::new();
        IpcStreamWriter::new(&mut arrow).finish(&mut df).unwrap();
        let good = parse_table(&arrow, Format::Arrow, 10).unwrap();
        assert!(good.customers.iter().all(|r| r.0.is_ok()));
        assert_eq!(
            parse_table(&arrow, Format::Arrow, 2).unwrap_err(),
            BodyError::TooManyCustomers { limit: 2 }
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let (mut read, mut refused) = (0, 0);
        for _ in 0..3_000 {
            let mut b = arrow.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..b.len());
                b[at] = rng.random();
            }
            b.truncate(rng.random_range(b.len() / 2..=b.len()));
            match parse_table(&b, Format::Arrow, 10) {
                Ok(parsed) => {
                    read += 1;
                    for row in &parsed.customers {
                        if let Ok(values) = &row.0 {
                            crate::schema::check_feature_row(values).unwrap();
                        }
                    }
                }
                Err(BodyError::BadTable(m)) => {
                    refused += 1;
                    assert!(!m.is_empty());
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(refused > 0, "{read} read, {refused} refused");
    }
}
