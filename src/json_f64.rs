//! f64 fields of JSON files that may hold NaN or an infinity.
//!
//! JSON has no such numbers: serde_json writes them as `null`, and reading `null` back into an
//! f64 fails, so one segment without any Income made the whole manifest unreadable. Fields
//! marked `#[serde(with = "crate::json_f64")]` (or `::vec`, `::map`) write them as the strings
//! `"NaN"`, `"Infinity"` and `"-Infinity"` (as Python's and JavaScript's JSON tools name them)
//! and read those, numbers, and `null` (as NaN: files written before).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// One value, serialised as a number when finite and as a name otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct F64(pub f64);

impl Serialize for F64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }
}

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = F64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a number, null, "NaN", "Infinity" or "-Infinity""#)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<F64, E> {
                Ok(F64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<F64, E> {
                Ok(F64(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<F64, E> {
                Ok(F64(v as f64))
            }
            fn visit_unit<E: de::Error>(self) -> Result<F64, E> {
                Ok(F64(f64::NAN))
            }
            fn visit_none<E: de::Error>(self) -> Result<F64, E> {
                Ok(F64(f64::NAN))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<F64, E> {
                match v {
                    "NaN" => Ok(F64(f64::NAN)),
                    "Infinity" => Ok(F64(f64::INFINITY)),
                    "-Infinity" => Ok(F64(f64::NEG_INFINITY)),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    F64(*v).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    F64::deserialize(d).map(|v| v.0)
}

/// A list of such values.
pub mod vec {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for x in v {
            seq.serialize_element(&F64(*x))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<F64>::deserialize(d).map(|v| v.into_iter().map(|x| x.0).collect())
    }
}

/// A map of names to such values.
pub mod map {
    use super::*;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(k, &F64(*v))?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        BTreeMap::<String, F64>::deserialize(d)
            .map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        one: f64,
        #[serde(with = "super::vec")]
        list: Vec<f64>,
        #[serde(with = "super::map")]
        named: BTreeMap<String, f64>,
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn nan_and_infinities_round_trip_and_null_reads_as_nan() {
        let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5, -0.0, 1e300];
        for &v in &values {
            let h = Holder {
                one: v,
                list: values.to_vec(),
                named: BTreeMap::from([("Income".to_string(), v)]),
            };
            let text = serde_json::to_string(&h).unwrap();
            let back: Holder = serde_json::from_str(&text).unwrap();
            assert!(same(back.one, v), "{text}");
            assert!(
                back.list.iter().zip(&values).all(|(a, b)| same(*a, *b)),
                "{text}"
            );
            assert!(same(back.named["Income"], v), "{text}");
        }
        let old: Holder =
            serde_json::from_str(r#"{"one": null, "list": [null, 2], "named": {"a": null}}"#)
                .unwrap();
        assert!(old.one.is_nan() && old.list[0].is_nan() && old.named["a"].is_nan());
        assert_eq!(old.list[1], 2.0);
        assert!(
            serde_json::from_str::<Holder>(r#"{"one": "lots", "list": [], "named": {}}"#).is_err()
        );
    }
}
