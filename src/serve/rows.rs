//! Customers from a JSON body, straight into feature rows.
//!
//! `{"customers": [{"Age": 45, ...}, ...]}` is deserialised without building a JSON tree: each
//! customer object is read field by field into a `[f32; 21]`. A problem in one customer (a
//! missing or unknown field, a string for a number, a value out of range) becomes that row's
//! error and the rest of the body is still read, so the valid rows can be predicted.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::schema::{FEATURES, FieldError, N_FEATURES, check_feature, feature_index};

/// One customer: its features, or why they cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Result<[f32; N_FEATURES], RowError>);

/// A row's problem: the field at fault (when there is one) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub field: Option<String>,
    pub message: String,
}

impl From<FieldError> for RowError {
    fn from(e: FieldError) -> Self {
        Self {
            field: Some(e.field.into()),
            message: e.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictBody {
    pub customers: Vec<Row>,
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
        let mut values = [f32::NAN; N_FEATURES];
        let mut seen = [false; N_FEATURES];
        let mut error: Option<RowError> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(j) = feature_index(&key) else {
                map.next_value::<IgnoredAny>()?;
                error.get_or_insert(RowError {
                    field: Some(key.to_string()),
                    message: format!("{key}: unknown field"),
                });
                continue;
            };
            seen[j] = true;
            match map.next_value::<Number>()? {
                Number::Value(v) => values[j] = v as f32,
                Number::Null => values[j] = f32::NAN,
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
            if !seen[j] && FEATURES[j].key != "Income" {
                return Ok(Row(Err(RowError {
                    field: Some(FEATURES[j].key.into()),
                    message: format!("{}: is missing", FEATURES[j].key),
                })));
            }
            if let Err(e) = check_feature(j, *v) {
                return Ok(Row(Err(e.into())));
            }
        }
        Ok(Row(Ok(values)))
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
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Number, E> {
        Ok(Number::Not("a string"))
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
        let parsed: PredictBody = serde_json::from_value(body).unwrap();
        let r = &parsed.customers;
        assert_eq!(r.len(), 6);
        assert!(r[0].0.is_ok(), "{:?}", r[0]);
        let field = |i: usize| r[i].0.clone().unwrap_err();
        assert_eq!(field(1).field.as_deref(), Some("Income"));
        assert!(field(1).message.contains("must be a number, got a string"));
        assert_eq!(field(2).field.as_deref(), Some("Age"));
        assert_eq!(field(3).field.as_deref(), Some("Recency"));
        assert!(field(3).message.contains("missing"));
        assert!(field(4).message.contains("must be an object"));
        assert!(
            r[5].0.as_ref().unwrap()[feature_index("Income").unwrap()].is_nan(),
            "Income may be left out: it is imputed"
        );
    }
}
