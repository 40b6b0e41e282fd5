//! Property tests of the three ways customers come in from outside: the JSON body of
//! `POST /api/v1/predict`, the urlencoded body of the web form, and a CSV file given to bulk
//! scoring. Each is driven by generated hostile input (proptest) and checked against a model
//! of the rules written here from the schema's ranges, not with the code under test:
//! - nothing panics, whatever the bytes;
//! - a well-formed body gives exactly one slot per customer, and a slot is an error exactly
//!   when the customer breaks a rule (a missing, unknown or repeated field, a string, a
//!   number beyond f64, a fraction in a whole-number field, a value out of range), naming a
//!   field at fault;
//! - a CSV file scored in chunks of 1, 3 or all rows gives the same output, with one row per
//!   record, or the command fails naming where.

use std::path::{Path, PathBuf};

use categorizer::schema::{FEATURES, FeatureKind, N_FEATURES};
use categorizer::serve::routes::web::parse_form;
use categorizer::serve::rows::{BodyError, parse_predict_body};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

// ---------------------------------------------------------------------------------------------
// The rules, written from the schema's table.

/// Whether `v` is an acceptable value of feature `j` (a missing Income is NaN and acceptable).
fn acceptable(j: usize, v: f64) -> bool {
    let f = &FEATURES[j];
    if v.is_nan() {
        return f.key == "Income";
    }
    v.is_finite()
        && v >= f.min
        && v <= f.max
        && (matches!(f.kind, FeatureKind::Real) || v == v.trunc())
}

/// An acceptable number for feature `j`, as a client may write it.
fn good_number_text(j: usize) -> BoxedStrategy<String> {
    let (min, max) = (FEATURES[j].min, FEATURES[j].max);
    let span = (max - min).min(1e7);
    let real = matches!(FEATURES[j].kind, FeatureKind::Real);
    prop_oneof![
        4 => (0.0..=1.0f64).prop_map(move |u| format!("{}", (min + u * span).round())),
        3 => (0.0..=1.0f64).prop_map(move |u| {
            let v = min + u * span;
            if real { format!("{v}") } else { format!("{:.1}", v.round()) }
        }),
        1 => Just(format!("{min}")),
        1 => Just(format!("{max}")),
    ]
    .boxed()
}

/// A number as a client may write it for feature `j`: in range or not, whole or not, in plain
/// or exponent form, or beyond f64. Every string here is a JSON number and a Rust `f64`.
fn number_text(j: usize) -> BoxedStrategy<String> {
    let (min, max) = (FEATURES[j].min, FEATURES[j].max);
    let span = (max - min).min(1e7);
    prop_oneof![
        4 => (0.0..=1.0f64).prop_map(move |u| format!("{}", (min + u * span).round())),
        2 => (0.0..=1.0f64).prop_map(move |u| format!("{}", min + u * span)),
        1 => Just(format!("{min}")),
        1 => Just(format!("{max}")),
        1 => Just(format!("{}", max + 1.0)),
        1 => Just(format!("{}", min - 1.0)),
        1 => (0.0..=1.0f64).prop_map(move |u| format!("{}.000000001", (min + u * span).round())),
        1 => (1u32..9).prop_map(|d| format!("{d}.5e1")),
        1 => prop::sample::select(vec!["1e400", "-1e400", "1e308", "-0", "0.0"]).prop_map(str::to_string),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// POST /api/v1/predict

/// One value in a customer object: its JSON text and what it means.
#[derive(Debug, Clone)]
enum Value {
    /// A JSON number; `f64` is what it denotes (infinite beyond f64's range).
    Number(String),
    Null,
    /// A string, a boolean, a list or an object: not a number.
    Other(String),
}

/// A value for feature `j`: in a clean customer an acceptable number, in a hostile one
/// anything.
fn value(j: usize, hostile: bool) -> BoxedStrategy<Value> {
    if !hostile {
        return good_number_text(j).prop_map(Value::Number).boxed();
    }
    prop_oneof![
        12 => number_text(j).prop_map(Value::Number),
        1 => Just(Value::Null),
        2 => prop::sample::select(vec![r#""45""#, r#""NaN""#, "true", "[1,2]", r#"{"a":1}"#, r#""""#])
            .prop_map(|s| Value::Other(s.to_string())),
    ]
    .boxed()
}

/// A key as written in the body: plain, or with some letters as \u escapes (the same key).
fn written_key(key: String) -> impl Strategy<Value = String> {
    let n = key.chars().count();
    prop::collection::vec(any::<bool>(), n).prop_map(move |escape| {
        key.chars()
            .zip(escape)
            .map(|(c, e)| {
                if c == '"' || c == '\\' || (c as u32) < 0x20 || (e && c.is_ascii_alphabetic()) {
                    format!("\\u{:04x}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Customer {
    /// The entries in the order written: key and value.
    Object(Vec<(String, String, Value)>),
    /// Not an object: its JSON text.
    NotAnObject(String),
}

fn customer() -> impl Strategy<Value = Customer> {
    prop::bool::weighted(0.5).prop_flat_map(customer_of)
}

/// A customer: in a clean one every field is present once with an acceptable number (the keys
/// in any order, some escaped); a hostile one may break any rule.
fn customer_of(hostile: bool) -> BoxedStrategy<Customer> {
    let present = || match hostile {
        true => prop::bool::weighted(0.95).boxed(),
        false => Just(true).boxed(),
    };
    let entries = (0..N_FEATURES)
        .map(|j| (present(), value(j, hostile)))
        .collect::<Vec<_>>();
    let (extra_key, repeat) = match hostile {
        true => (
            prop::option::weighted(0.1, "[A-Za-z_\"\\\\ é]{1,90}").boxed(),
            prop::option::weighted(0.1, 0..N_FEATURES).boxed(),
        ),
        false => (Just(None).boxed(), Just(None).boxed()),
    };
    let object = (entries, extra_key, repeat, any::<u64>())
        .prop_flat_map(|(entries, extra, repeat, order)| {
            let mut list: Vec<(String, Value)> = entries
                .into_iter()
                .enumerate()
                .filter(|(_, (present, _))| *present)
                .map(|(j, (_, v))| (FEATURES[j].key.to_string(), v))
                .collect();
            if let Some(k) = extra {
                list.push((k, Value::Number("1".into())));
            }
            if let Some(j) = repeat {
                list.push((FEATURES[j].key.to_string(), Value::Number("1".into())));
            }
            // A fixed shuffle from the seed drawn above (keys in any order).
            let mut keyed: Vec<(u64, (String, Value))> = list
                .into_iter()
                .enumerate()
                .map(|(i, e)| ((i as u64 + 1).wrapping_mul(order | 1).rotate_left(17), e))
                .collect();
            keyed.sort_by_key(|(k, _)| *k);
            let list: Vec<(String, Value)> = keyed.into_iter().map(|(_, e)| e).collect();
            let written: Vec<_> = list.iter().map(|(k, _)| written_key(k.clone())).collect();
            (Just(list), written)
        })
        .prop_map(|(list, written)| {
            Customer::Object(
                list.into_iter()
                    .zip(written)
                    .map(|((k, v), w)| (k, w, v))
                    .collect(),
            )
        });
    if !hostile {
        return object.boxed();
    }
    prop_oneof![
        20 => object,
        1 => prop::sample::select(vec!["1", r#""x""#, "null", "[]", "true"])
            .prop_map(|s| Customer::NotAnObject(s.to_string())),
    ]
    .boxed()
}

fn body_text(customers: &[Customer], spaces: bool) -> String {
    let sp = if spaces { " \n\t" } else { "" };
    let items: Vec<String> = customers
        .iter()
        .map(|c| match c {
            Customer::NotAnObject(t) => t.clone(),
            Customer::Object(entries) => {
                let fields: Vec<String> = entries
                    .iter()
                    .map(|(_, w, v)| {
                        let text = match v {
                            Value::Number(t) | Value::Other(t) => t.as_str(),
                            Value::Null => "null",
                        };
                        format!("\"{w}\"{sp}:{sp}{text}")
                    })
                    .collect();
                format!("{{{}}}", fields.join(&format!(",{sp}")))
            }
        })
        .collect();
    format!("{sp}{{\"customers\":{sp}[{}]}}{sp}", items.join(","))
}

/// What the rules say of one customer: its features, or the keys that could be named.
fn expected_row(c: &Customer) -> Result<[f32; N_FEATURES], Option<Vec<String>>> {
    let Customer::Object(entries) = c else {
        return Err(None);
    };
    let mut at_fault = Vec::new();
    let mut values = [f64::NAN; N_FEATURES];
    let mut seen = [false; N_FEATURES];
    for (key, _, v) in entries {
        let Some(j) = FEATURES.iter().position(|f| f.key == key) else {
            at_fault.push(key.clone());
            continue;
        };
        if std::mem::replace(&mut seen[j], true) {
            at_fault.push(key.clone());
            continue;
        }
        match v {
            Value::Number(t) => {
                values[j] = t.parse::<f64>().unwrap();
                if !acceptable(j, values[j]) {
                    at_fault.push(key.clone());
                }
            }
            Value::Null if FEATURES[j].key == "Income" => {}
            Value::Null | Value::Other(_) => at_fault.push(key.clone()),
        }
    }
    for j in 0..N_FEATURES {
        if !seen[j] && FEATURES[j].key != "Income" {
            at_fault.push(FEATURES[j].key.to_string());
        }
    }
    if at_fault.is_empty() {
        Ok(values.map(|v| v as f32))
    } else {
        Err(Some(at_fault))
    }
}

/// A named key as the reader may show it: the key, or its first 64 characters and "…".
fn names(shown: &str, key: &str) -> bool {
    shown == key
        || shown
            .strip_suffix('…')
            .is_some_and(|cut| key.starts_with(cut) && cut.chars().count() == 64)
}

fn check_body(customers: &[Customer], spaces: bool, max: usize) -> Result<(), TestCaseError> {
    let body = body_text(customers, spaces);
    let parsed = parse_predict_body(body.as_bytes(), max);
    if customers.len() > max {
        prop_assert_eq!(
            parsed.unwrap_err(),
            BodyError::TooManyCustomers { limit: max }
        );
        return Ok(());
    }
    let rows = match parsed {
        Ok(b) => b.customers,
        Err(e) => return Err(TestCaseError::fail(format!("{e:?} for {body}"))),
    };
    prop_assert_eq!(rows.len(), customers.len());
    for (i, (row, c)) in rows.iter().zip(customers).enumerate() {
        match (&row.0, expected_row(c)) {
            (Ok(got), Ok(want)) => {
                for j in 0..N_FEATURES {
                    prop_assert!(
                        got[j] == want[j] || (got[j].is_nan() && want[j].is_nan()),
                        "row {}, {}: {} != {}",
                        i,
                        FEATURES[j].key,
                        got[j],
                        want[j]
                    );
                }
            }
            (Err(e), Err(None)) => prop_assert!(e.field.is_none(), "row {i}: {e:?}"),
            (Err(e), Err(Some(keys))) => {
                let field = e.field.clone().unwrap_or_default();
                prop_assert!(
                    keys.iter().any(|k| names(&field, k)),
                    "row {}: names {:?}, the keys at fault are {:?} ({})",
                    i,
                    field,
                    keys,
                    e.message
                );
                prop_assert!(e.message.chars().count() < 300, "{}", e.message);
            }
            (got, want) => {
                return Err(TestCaseError::fail(format!(
                    "row {i}: read {got:?}, the rules say {want:?}"
                )));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config::with_cases(256))]

    #[test]
    fn a_predict_body_gives_one_slot_per_customer_with_the_rules_errors(
        customers in prop::collection::vec(customer(), 0..8),
        spaces in any::<bool>(),
        max in 1usize..10,
    ) {
        check_body(&customers, spaces, max)?;
    }

    #[test]
    fn a_damaged_predict_body_never_panics(
        customers in prop::collection::vec(customer(), 1..4),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut body = body_text(&customers, false).into_bytes();
        for (at, byte, how) in cuts {
            let i = at.index(body.len() + 1);
            match how {
                0 => body.insert(i, byte),
                1 if i < body.len() => { body.remove(i); }
                _ => body.truncate(i),
            }
        }
        if let Ok(b) = parse_predict_body(&body, 5) {
            prop_assert!(b.customers.len() <= 5);
        }
    }

    #[test]
    fn any_bytes_as_a_predict_body_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_predict_body(&bytes, 3);
    }
}

// ---------------------------------------------------------------------------------------------
// POST / (the web form)

/// Percent-encodes every byte but ASCII letters and digits (space as '+').
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form_value(j: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => number_text(j),
        1 => number_text(j).prop_map(|t| format!("  {t} ")),
        1 => prop::sample::select(vec!["", " ", "NaN", "inf", "-infinity", "lots", "4 5", "١٢", "1,5"])
            .prop_map(str::to_string),
        1 => "[^\u{0}]{0,12}",
    ]
}

proptest! {
    #![proptest_config(Config::with_cases(256))]

    #[test]
    fn a_form_body_gives_each_field_its_value_or_its_error(
        fields in (0..N_FEATURES)
            .map(|j| prop::option::weighted(0.95, prop::collection::vec(form_value(j), 1..3)))
            .collect::<Vec<_>>(),
        unknown in prop::option::weighted(0.2, ("[a-z_]{1,20}", "[^\u{0}]{0,20}")),
    ) {
        let mut pairs = Vec::new();
        for (j, values) in fields.iter().enumerate() {
            for v in values.iter().flatten() {
                pairs.push(format!("{}={}", FEATURES[j].key, urlencode(v)));
            }
        }
        if let Some((k, v)) = &unknown {
            pairs.insert(0, format!("{}={}", urlencode(k), urlencode(v)));
        }
        let body = pairs.join("&");
        let (typed, values, errors) = parse_form(body.as_bytes());
        for j in 0..N_FEATURES {
            // The last value given for a key counts, as typed (trimmed).
            let given = fields[j].as_ref().and_then(|v| v.last()).map(|v| v.trim().to_string());
            prop_assert_eq!(&typed[j], &given.clone().unwrap_or_default(), "{}", FEATURES[j].key);
            let want = match given.as_deref() {
                None | Some("") => (FEATURES[j].key == "Income").then_some(f64::NAN),
                Some(t) => t.parse::<f64>().ok().filter(|v| !v.is_nan() && acceptable(j, *v)),
            };
            match want {
                Some(v) => {
                    prop_assert!(errors[j].is_none(), "{}: {:?} for {:?}", FEATURES[j].key, errors[j], given);
                    prop_assert!(
                        values[j] == v as f32 || (v.is_nan() && values[j].is_nan()),
                        "{}: {} for {:?}", FEATURES[j].key, values[j], given
                    );
                }
                None => prop_assert!(errors[j].is_some(), "{}: no error for {:?}", FEATURES[j].key, given),
            }
        }
    }

    #[test]
    fn any_bytes_as_a_form_body_are_read_without_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let (_, values, errors) = parse_form(&bytes);
        for j in 0..N_FEATURES {
            prop_assert!(errors[j].is_some() || acceptable(j, f64::from(values[j])) || values[j].is_nan());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// categorizer predict: a CSV file

/// A cell of the features file: its text as written, and whether the rules accept it (`None`:
/// not a number at all, which fails the command).
#[derive(Debug, Clone)]
struct Cell {
    text: String,
    acceptable: Option<bool>,
}

/// A cell of feature `j`: in a clean record an acceptable number, in a hostile one any number,
/// quoted or not, or a blank.
fn cell(j: usize, hostile: bool) -> BoxedStrategy<Cell> {
    let good = good_number_text(j).prop_map(|t| Cell {
        text: t,
        acceptable: Some(true),
    });
    if !hostile {
        return good.boxed();
    }
    let number = number_text(j).prop_map(move |t| {
        let ok = acceptable(j, t.parse::<f64>().unwrap());
        (t, ok)
    });
    prop_oneof![
        12 => number.clone().prop_map(|(t, ok)| Cell { text: t, acceptable: Some(ok) }),
        2 => number.prop_map(|(t, ok)| Cell { text: format!("\"{t}\""), acceptable: Some(ok) }),
        1 => good_number_text(j).prop_map(|t| Cell { text: format!(" {t}  "), acceptable: Some(true) }),
        1 => Just(Cell { text: "\"7\r\n\"".into(), acceptable: Some(acceptable(j, 7.0)) }),
        1 => prop::sample::select(vec!["", "\"\"", " "]).prop_map(move |t| Cell {
            text: t.to_string(),
            acceptable: Some(FEATURES[j].key == "Income"),
        }),
    ]
    .boxed()
}

/// Text where a number belongs: the command fails naming it.
fn text_cell() -> impl Strategy<Value = Cell> {
    prop::sample::select(vec!["\"4\n5\"", "\"a,\"\"b\"\"\"", "lots", "\"1\r\nx\""]).prop_map(|t| {
        Cell {
            text: t.to_string(),
            acceptable: None,
        }
    })
}

/// A record of the file: its cells, or a malformed line.
#[derive(Debug, Clone)]
enum Record {
    Cells(Vec<Cell>),
    /// A stray quote inside a field, or one field too few.
    Malformed(Vec<Cell>, bool),
}

fn record() -> impl Strategy<Value = Record> {
    let cells = |hostile| {
        (0..N_FEATURES)
            .map(move |j| cell(j, hostile))
            .collect::<Vec<_>>()
    };
    prop_oneof![
        15 => cells(false).prop_map(Record::Cells),
        15 => cells(true).prop_map(Record::Cells),
        1 => (cells(true), any::<bool>()).prop_map(|(c, quote)| Record::Malformed(c, quote)),
    ]
}

#[derive(Debug, Clone)]
struct CsvFile {
    records: Vec<Record>,
    /// Blank lines before a record (no record of their own).
    blanks: Vec<bool>,
    separator: char,
    crlf: bool,
    bom: bool,
    /// The order of the columns in the file.
    order: Vec<usize>,
    keep: bool,
}

fn csv_file() -> impl Strategy<Value = CsvFile> {
    (1usize..24).prop_flat_map(|n| {
        (
            prop::collection::vec(record(), n),
            prop::collection::vec(prop::bool::weighted(0.1), n),
            prop::sample::select(vec![',', '\t']),
            any::<bool>(),
            prop::bool::weighted(0.2),
            Just((0..N_FEATURES).collect::<Vec<_>>()).prop_shuffle(),
            any::<bool>(),
            prop::option::weighted(
                0.15,
                (any::<prop::sample::Index>(), 0..N_FEATURES, text_cell()),
            ),
        )
            .prop_map(
                move |(mut records, blanks, separator, crlf, bom, order, keep, text)| {
                    if let Some((at, j, cell)) = text
                        && let Record::Cells(cells) = &mut records[at.index(n)]
                    {
                        cells[j] = cell;
                    }
                    CsvFile {
                        records,
                        blanks,
                        separator,
                        crlf,
                        bom,
                        order,
                        keep,
                    }
                },
            )
    })
}

impl CsvFile {
    fn text(&self) -> String {
        let (sep, eol) = (
            self.separator.to_string(),
            if self.crlf { "\r\n" } else { "\n" },
        );
        let mut out = String::new();
        if self.bom {
            out.push('\u{feff}');
        }
        let header: Vec<&str> = self.order.iter().map(|&j| FEATURES[j].key).collect();
        out.push_str(&header.join(&sep));
        out.push_str(eol);
        for (r, blank) in self.records.iter().zip(&self.blanks) {
            if *blank {
                out.push_str(eol);
            }
            let (cells, damage) = match r {
                Record::Cells(c) => (c, None),
                Record::Malformed(c, quote) => (c, Some(*quote)),
            };
            // After a stray quote the reader cannot know where the record ends: a damaged
            // record holds no quoted line breaks, so it is one line.
            let mut texts: Vec<String> = self
                .order
                .iter()
                .map(|&j| match damage {
                    Some(_) if cells[j].text.contains('\n') => "1".to_string(),
                    _ => cells[j].text.replace(',', &sep),
                })
                .collect();
            match damage {
                Some(true) => texts[0] = format!("4\"{}", texts[0].replace('"', "")),
                Some(false) => {
                    texts.pop();
                }
                None => {}
            }
            out.push_str(&texts.join(&sep));
            out.push_str(eol);
        }
        out
    }

    /// Whether some record holds text where a number belongs (the command then fails, or
    /// with `--on-error keep` that record is its row's error).
    fn has_text(&self) -> bool {
        self.records.iter().any(|r| match r {
            Record::Cells(c) => c.iter().any(|c| c.acceptable.is_none()),
            Record::Malformed(..) => false,
        })
    }
}

/// The model every CSV case scores with, trained once on generated customers.
fn trained_model(dir: &Path) -> PathBuf {
    let data = dir.join("customers.csv");
    crate::support::succeed(
        crate::support::categorizer()
            .args(["generate", "--rows", "800", "--out"])
            .arg(&data),
    );
    let models = dir.join("models");
    crate::support::succeed(
        crate::support::categorizer()
            .args([
                "train",
                "--quiet",
                "--device",
                "cpu",
                "--classifier",
                "gbdt",
                "--data",
            ])
            .arg(&data)
            .arg("--out")
            .arg(dir.join("run"))
            .arg("--models")
            .arg(&models)
            .env("CATEGORIZER__SEGMENTATION__N_INIT", "2"),
    );
    models
}

#[test]
fn a_csv_file_scored_in_any_chunks_gives_one_row_per_record_or_fails_naming_where() {
    use categorizer::predict::{PredictRequest, run};
    let dir = tempfile::tempdir().unwrap();
    let models = trained_model(dir.path());
    let input = dir.path().join("in.csv");
    let mut runner = TestRunner::new(Config {
        cases: 64,
        max_shrink_iters: 2000,
        ..Config::default()
    });
    runner
        .run(&csv_file(), |file| {
            std::fs::write(&input, file.text()).unwrap();
            let score = |chunk_rows: usize| {
                let output = dir.path().join(format!("out-{chunk_rows}.csv"));
                let summary = run(&PredictRequest {
                    model: models.clone(),
                    input: input.clone(),
                    output: output.clone(),
                    chunk_rows,
                    progress: false,
                    options: Default::default(),
                    keep_malformed: file.keep,
                    explain: true,
                    // One worker or several: the same file.
                    workers: 1 + chunk_rows % 3,
                });
                summary.map(|s| (s, std::fs::read(&output).unwrap()))
            };
            let whole = score(100_000);
            let malformed = file
                .records
                .iter()
                .any(|r| matches!(r, Record::Malformed(..)));
            match &whole {
                Err(e) => {
                    let message = e.to_string();
                    // Text in a number column or a malformed record stops the command,
                    // unless `--on-error keep` makes it the row's error.
                    prop_assert!(
                        (file.has_text() || malformed) && !file.keep,
                        "failed without a cause: {message} in {:?}",
                        file.text()
                    );
                    prop_assert!(
                        message.contains("line ") || message.contains("row "),
                        "the error names no line or row: {message}"
                    );
                }
                Ok((summary, bytes)) => {
                    prop_assert!(
                        !(file.has_text() || malformed) || file.keep,
                        "scored a file the rules refuse: {:?}",
                        file.text()
                    );
                    prop_assert_eq!(summary.rows, file.records.len());
                    let out = String::from_utf8(bytes.clone()).unwrap();
                    let errors = error_column(&out);
                    prop_assert_eq!(errors.len(), file.records.len(), "{}", out);
                    for (i, (r, e)) in file.records.iter().zip(&errors).enumerate() {
                        let expected = match r {
                            Record::Cells(c) => !c.iter().all(|c| c.acceptable == Some(true)),
                            Record::Malformed(..) => true,
                        };
                        prop_assert_eq!(e.is_some(), expected, "record {}: {:?}", i, e);
                    }
                }
            }
            for chunk_rows in [1, 3] {
                match (&whole, score(chunk_rows)) {
                    (Ok((_, a)), Ok((_, b))) => {
                        prop_assert!(*a == b, "chunks of {} rows wrote another file", chunk_rows)
                    }
                    (Err(_), Err(_)) => {}
                    (a, b) => {
                        return Err(TestCaseError::fail(format!(
                            "whole: {:?}, chunks of {chunk_rows}: {:?}",
                            a.as_ref().map(|_| ()),
                            b.map(|_| ())
                        )));
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

/// The `error` column of a scored CSV file, one entry per row (None where empty).
fn error_column(out: &str) -> Vec<Option<String>> {
    let df = crate::support::csv_as_text(out.as_bytes());
    df.column("error")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.filter(|s| !s.is_empty()).map(str::to_string))
        .collect()
}
