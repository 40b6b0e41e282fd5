//! One answer per customer, whatever the door: the same customers (their 21 features, hostile
//! ones among them) sent as JSON, CSV and Arrow bodies and scored by `predict` into CSV,
//! Parquet and Arrow files give the same fields, row by row.

use std::io::Cursor;

use categorizer::ingest::synthetic;
use categorizer::predict::{PredictRequest, run};
use categorizer::schema::FEATURES;
use polars::prelude::*;
use serde_json::Value;

use crate::support::{settings, start, stored_model};

const ARROW: &str = "application/vnd.apache.arrow.stream";

/// A customer's answer as every door can say it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    segment: Option<i64>,
    name: Option<String>,
    probabilities: Vec<Option<f32>>,
    atypical: Option<bool>,
    runner_up: Option<i64>,
    top: Vec<Option<String>>,
    error: Option<String>,
}

/// The customers as text cells, one `Vec` per row in feature order: realistic ones from the
/// synthetic generator, then one per hostile case, with what its error must name.
fn customers() -> (Vec<Vec<String>>, Vec<(usize, &'static str)>) {
    let raw = synthetic::generate_records(120, 23);
    let table = categorizer::features::engineer(&raw, settings().reference_date()).unwrap();
    let mut rows: Vec<Vec<String>> = (0..table.matrix.rows())
        .map(|i| {
            table
                .matrix
                .row(i)
                .iter()
                .map(|v| {
                    if v.is_nan() {
                        String::new()
                    } else {
                        v.to_string()
                    }
                })
                .collect()
        })
        .collect();
    let base = rows[0].clone();
    let at = |key: &str| FEATURES.iter().position(|f| f.key == key).unwrap();
    let mut hostile = Vec::new();
    for (key, text, names) in [
        ("Income", "", ""),               // missing Income: imputed, scored
        ("Age", "131", "Age"),            // one past the bound
        ("Age", "-1", "Age"),             // one below it
        ("Income", "10000001", "Income"), // one past the bound
        ("Children", "1.5", "Children"),  // a fraction in a whole-number feature
        ("Income", "lots", "Income"),     // text in a number column
        ("Recency", "", "Recency"),       // a missing required value
        ("Income", "1e400", "Income"),    // beyond f64
        ("Education", "5", "Education"),  // an unknown code
        ("Days_as_Customer", "-5", "Days_as_Customer"),
        ("Age", "NaN", "Age"),  // NaN: missing
        ("Wines", " 300 ", ""), // spaces around a number: read
    ] {
        let mut row = base.clone();
        row[at(key)] = text.to_string();
        hostile.push((rows.len(), names));
        rows.push(row);
    }
    (rows, hostile)
}

/// The customers as a JSON body: a number as the number's text, an empty cell left out, text
/// that is not a number as a JSON string, NaN as null.
fn json_body(rows: &[Vec<String>]) -> String {
    let customers: Vec<String> = rows
        .iter()
        .map(|row| {
            let fields: Vec<String> = row
                .iter()
                .zip(&FEATURES)
                .filter(|(t, _)| !t.is_empty())
                .map(|(t, f)| {
                    let t = t.trim();
                    let value = match t.parse::<f64>() {
                        Ok(v) if v.is_nan() => "null".to_string(),
                        Ok(_) => t.to_string(),
                        Err(_) => format!("\"{t}\""),
                    };
                    format!("\"{}\":{value}", f.key)
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    format!("{{\"customers\":[{}]}}", customers.join(","))
}

/// The customers as a frame: an `ID`, then each feature as numbers (null where empty) or, where
/// a cell is not a number, as text.
fn frame(rows: &[Vec<String>]) -> DataFrame {
    let mut columns = vec![Column::new(
        "ID".into(),
        (0..rows.len() as i64).collect::<Vec<_>>(),
    )];
    for (j, f) in FEATURES.iter().enumerate() {
        let cells: Vec<&str> = rows.iter().map(|r| r[j].as_str()).collect();
        let numbers: Option<Vec<Option<f64>>> = cells
            .iter()
            .map(|t| match t.trim() {
                "" => Some(None),
                t => t.parse::<f64>().ok().map(Some),
            })
            .collect();
        columns.push(match numbers {
            Some(v) => Column::new(f.key.into(), v),
            None => Column::new(f.key.into(), cells),
        });
    }
    DataFrame::new(rows.len(), columns).unwrap()
}

fn csv_text(rows: &[Vec<String>]) -> String {
    let mut out = String::from("ID");
    for f in &FEATURES {
        out.push(',');
        out.push_str(f.key);
    }
    out.push('\n');
    for (i, r) in rows.iter().enumerate() {
        out.push_str(&i.to_string());
        for t in r {
            out.push(',');
            out.push_str(t);
        }
        out.push('\n');
    }
    out
}

/// Reads the answers of a JSON response.
fn seen_in_json(v: &Value, k: usize) -> Vec<Seen> {
    v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            if let Some(e) = p.get("error") {
                let message = e["message"].as_str().unwrap().to_string();
                if let Some(field) = e["field"].as_str() {
                    assert!(message.starts_with(&format!("{field}: ")), "{e}");
                }
                return Seen {
                    segment: None,
                    name: None,
                    probabilities: vec![None; k],
                    atypical: None,
                    runner_up: None,
                    top: vec![None; 3],
                    error: Some(message),
                };
            }
            let explanation = p.get("explanation");
            let mut top: Vec<Option<String>> = explanation
                .map(|e| {
                    e["top_features"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| Some(t["feature"].as_str().unwrap().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            top.resize(3, None);
            Seen {
                segment: p["segment"].as_i64(),
                name: p["segment_name"].as_str().map(str::to_string),
                probabilities: p["probabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| Some(x.as_f64().unwrap() as f32))
                    .collect(),
                atypical: p["atypical"].as_bool(),
                runner_up: explanation.map(|e| e["runner_up"].as_i64().unwrap()),
                top,
                error: None,
            }
        })
        .collect()
}

/// A column's values as text (None: null), whatever its type; floats as f32 values.
fn column_text(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    let c = df.column(name).unwrap();
    let c = match c.dtype() {
        DataType::String => c.clone(),
        _ => c.cast(&DataType::String).unwrap(),
    };
    c.str()
        .unwrap()
        .iter()
        .map(|v| v.filter(|t| !t.is_empty()).map(str::to_string))
        .collect()
}

fn column_f32(df: &DataFrame, name: &str) -> Vec<Option<f32>> {
    let c = df.column(name).unwrap();
    match c.dtype() {
        DataType::Float32 => c.f32().unwrap().iter().collect(),
        _ => column_text(df, name)
            .into_iter()
            .map(|t| t.map(|t| t.parse::<f32>().unwrap()))
            .collect(),
    }
}

/// Reads the answers of a table (a table answer, or a scored file with the input's columns).
fn seen_in_table(df: &DataFrame, k: usize) -> Vec<Seen> {
    let n = df.height();
    let segment = column_text(df, "segment");
    let name = column_text(df, "segment_name");
    let probabilities: Vec<Vec<Option<f32>>> = (0..k)
        .map(|j| column_f32(df, &format!("probability_{j}")))
        .collect();
    let atypical = column_text(df, "atypical");
    let runner_up = column_text(df, "runner_up");
    let top: Vec<Vec<Option<String>>> = (1..=3)
        .map(|j| column_text(df, &format!("top_feature_{j}")))
        .collect();
    let error = column_text(df, "error");
    (0..n)
        .map(|i| Seen {
            segment: segment[i].as_ref().map(|s| s.parse().unwrap()),
            name: name[i].clone(),
            probabilities: probabilities.iter().map(|p| p[i]).collect(),
            atypical: atypical[i].as_ref().map(|a| a == "true"),
            runner_up: runner_up[i].as_ref().map(|s| s.parse().unwrap()),
            top: top.iter().map(|t| t[i].clone()).collect(),
            error: error[i].clone(),
        })
        .collect()
}

fn read_csv(bytes: &[u8]) -> DataFrame {
    crate::support::csv_as_text(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_customers_get_the_same_answers_through_every_door() {
    let dir = tempfile::tempdir().unwrap();
    let model = stored_model(dir.path(), 1);
    let (url, state) = start(&model, settings()).await;
    let k = state.manifest().segments.len();
    let (rows, hostile) = customers();
    let client = reqwest::Client::new();
    let post = |content_type: &'static str, accept: &'static str, body: Vec<u8>| {
        client
            .post(format!("{url}/api/v1/predict?explain=true"))
            .header("content-type", content_type)
            .header("accept", accept)
            .body(body)
            .send()
    };

    // JSON in, JSON out: the reference.
    let r = post(
        "application/json",
        "application/json",
        json_body(&rows).into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let json: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let reference = seen_in_json(&json, k);
    assert_eq!(reference.len(), rows.len());

    // The hostile rows: an error naming the field, or (empty Income, padded number) an answer.
    for &(i, names) in &hostile {
        match (&reference[i].error, names) {
            (None, "") => assert!(reference[i].segment.is_some()),
            (Some(e), field) if !field.is_empty() => {
                assert!(e.starts_with(&format!("{field}: ")), "row {i}: {e}");
                assert_eq!(json["predictions"][i]["error"]["field"], field, "row {i}");
            }
            (got, want) => panic!("row {i}: {got:?}, expected an error naming '{want}'"),
        }
    }
    assert!(reference.iter().filter(|s| s.error.is_none()).count() > 100);
    assert!(
        reference.iter().any(|s| s.runner_up.is_some()),
        "explanations were given"
    );

    // Tables in, tables out.
    let mut df = frame(&rows);
    let mut arrow = Vec::new();
    IpcStreamWriter::new(&mut arrow).finish(&mut df).unwrap();
    let csv = csv_text(&rows).into_bytes();
    let answers = [
        ("Arrow → Arrow", ARROW, ARROW, arrow.clone()),
        ("CSV → CSV", "text/csv", "text/csv", csv.clone()),
        ("Arrow → CSV", ARROW, "text/csv", arrow.clone()),
        ("CSV → JSON", "text/csv", "application/json", csv.clone()),
    ];
    for (door, content_type, accept, body) in answers {
        let r = post(content_type, accept, body).await.unwrap();
        assert_eq!(r.status(), 200, "{door}");
        let bytes = r.bytes().await.unwrap().to_vec();
        let seen = match accept {
            ARROW => seen_in_table(
                &IpcStreamReader::new(Cursor::new(bytes)).finish().unwrap(),
                k,
            ),
            "text/csv" => seen_in_table(&read_csv(&bytes), k),
            _ => seen_in_json(&serde_json::from_slice(&bytes).unwrap(), k),
        };
        same(door, &seen, &reference);
    }

    // Bulk files: the same customers as a file of features, scored with --on-error keep.
    let input = dir.path().join("customers.csv");
    std::fs::write(&input, csv_text(&rows)).unwrap();
    for output in ["scored.csv", "scored.parquet", "scored.arrow"] {
        let path = dir.path().join(output);
        let model = model.clone();
        let input = input.clone();
        let out = path.clone();
        let summary = tokio::task::spawn_blocking(move || {
            run(&PredictRequest {
                model,
                input,
                output: out,
                chunk_rows: 37,
                progress: false,
                options: Default::default(),
                keep_malformed: true,
                explain: true,
                workers: 2,
            })
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(summary.rows, rows.len(), "{output}");
        let df = match output {
            "scored.csv" => read_csv(&std::fs::read(&path).unwrap()),
            "scored.parquet" => ParquetReader::new(std::fs::File::open(&path).unwrap())
                .finish()
                .unwrap(),
            _ => crate::support::arrow_file(&path),
        };
        same(output, &seen_in_table(&df, k), &reference);
    }
}

/// `seen` equals `reference`, row by row and field by field.
fn same(door: &str, seen: &[Seen], reference: &[Seen]) {
    assert_eq!(seen.len(), reference.len(), "{door}");
    for (i, (a, b)) in seen.iter().zip(reference).enumerate() {
        assert_eq!(a, b, "{door}, row {i}");
    }
}
