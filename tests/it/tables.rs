//! `POST /api/v1/predict` with tables: Arrow IPC streams and CSV in and out, the same row
//! rules as JSON, and docs/api.md's Python client snippet run as written.

use std::io::Cursor;
use std::path::PathBuf;

use categorizer::schema::FEATURES;
use polars::prelude::{
    Column, CsvWriter, DataFrame, IpcStreamReader, IpcStreamWriter, SerReader, SerWriter,
};
use serde_json::Value;

use crate::support::{customer, json_body, settings, start, stored_model, succeed};

const ARROW: &str = "application/vnd.apache.arrow.stream";

/// `rows` customers as a table of the 21 feature columns (and an ID); row 1 has an Age out of
/// range, so its answer must be an error.
fn table(rows: usize) -> DataFrame {
    let mut columns = vec![Column::new(
        "ID".into(),
        (0..rows as i64).collect::<Vec<_>>(),
    )];
    for f in &FEATURES {
        let values: Vec<f64> = (0..rows)
            .map(|i| {
                let c = customer(25 + (i % 40) as i64);
                if f.key == "Age" && i == 1 {
                    -3.0
                } else {
                    c[f.key].as_f64().unwrap()
                }
            })
            .collect();
        columns.push(Column::new(f.key.into(), values));
    }
    DataFrame::new(rows, columns).unwrap()
}

fn arrow(df: &mut DataFrame) -> Vec<u8> {
    let mut out = Vec::new();
    IpcStreamWriter::new(&mut out).finish(df).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_and_csv_bodies_are_answered_as_tables_with_the_json_row_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = start(&stored_model(dir.path(), 1), settings()).await;
    let client = reqwest::Client::new();
    let post = |content_type: &str, accept: &str, body: Vec<u8>| {
        client
            .post(format!("{url}/api/v1/predict"))
            .header("content-type", content_type)
            .header("accept", accept)
            .body(body)
            .send()
    };
    let mut df = table(50);

    // Arrow in, Arrow out.
    let r = post(ARROW, ARROW, arrow(&mut df)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], ARROW);
    let version = r.headers()["x-model-version"].to_str().unwrap().to_string();
    let answer = IpcStreamReader::new(Cursor::new(r.bytes().await.unwrap().to_vec()))
        .finish()
        .unwrap();
    assert_eq!(answer.height(), 50);
    let names: Vec<&str> = answer
        .get_column_names()
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "segment",
            "segment_name",
            "probability_0",
            "probability_1",
            "probability_2",
            "atypical",
            "error"
        ]
    );
    let segment = answer.column("segment").unwrap().i64().unwrap().clone();
    let error = answer.column("error").unwrap().str().unwrap().clone();
    assert_eq!(segment.get(1), None, "the bad row has no segment");
    assert!(error.get(1).unwrap().contains("Age"), "{:?}", error.get(1));
    assert_eq!(segment.null_count(), 1);
    assert_eq!(error.null_count(), 49);

    // The same customers as JSON give the same segments.
    let customers: Vec<Value> = (0..50)
        .map(|i| {
            let mut c = customer(25 + (i % 40) as i64);
            if i == 1 {
                c["Age"] = Value::from(-3);
            }
            c
        })
        .collect();
    let json: Value = json_body(
        client
            .post(format!("{url}/api/v1/predict"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "customers": customers }).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(json["model_version"], version.as_str());
    for (i, p) in json["predictions"].as_array().unwrap().iter().enumerate() {
        assert_eq!(p["segment"].as_i64(), segment.get(i), "row {i}");
    }

    // CSV in, CSV out; and CSV in, JSON out (no Accept for a table).
    let mut csv = Vec::new();
    CsvWriter::new(&mut csv).finish(&mut df).unwrap();
    let r = post("text/csv", "text/csv", csv.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 51);
    assert!(lines[0].starts_with("segment,segment_name,probability_0"));
    let r = post("text/csv", "application/json", csv).await.unwrap();
    let v: Value = json_body(r).await;
    assert_eq!(v["predictions"][1]["error"]["field"], "Age");
    assert_eq!(v["predictions"][0]["segment"].as_i64(), segment.get(0));

    // A text value in one row is that row's error; a missing column, the request's.
    let bad = "Age,Education,Marital_Status,Parental_Status,Children,Income,Total_Spending,\
        Days_as_Customer,Recency,Wines,Fruits,Meat,Fish,Sweets,Gold,Web,Catalog,Store,\
        Discount_Purchases,Total_Promo,NumWebVisitsMonth\n\
        40,2,1,1,1,52000,600,500,30,300,20,150,30,20,80,4,2,6,2,0,5\n\
        forty,2,1,1,1,,600,500,30,300,20,150,30,20,80,4,2,6,2,0,5\n";
    let v: Value = json_body(
        post("text/csv", "application/json", bad.into())
            .await
            .unwrap(),
    )
    .await;
    assert!(v["predictions"][0]["segment"].is_i64(), "{v}");
    assert_eq!(v["predictions"][1]["error"]["field"], "Age", "{v}");
    let r = post(
        "text/csv",
        "application/json",
        b"Age,Income\n40,1\n".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = json_body(r).await;
    assert_eq!(e["error"]["code"], "bad_table");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Education'"),
        "{e}"
    );
    for garbage in [
        b"\xff\xff\xff\xff\x10\x00\x00\x00garbage".to_vec(),
        Vec::new(),
    ] {
        let r = post(ARROW, ARROW, garbage).await.unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = json_body(r).await;
        assert_eq!(e["error"]["code"], "bad_table");
    }
}

/// docs/api.md's five lines, with only the service's address changed, against a running
/// service: the answer is a table with a row per customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_python_snippet_works_as_written() {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let usable = std::process::Command::new(&python)
        .args(["-c", "import pyarrow, requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var_os("CATEGORIZER_REQUIRE_PYTHON_TEST").is_none(),
            "{} cannot import pyarrow and requests (run scripts/setup.sh test)",
            python.display()
        );
        eprintln!("skipped: no .venv with pyarrow and requests");
        return;
    }
    let readme = include_str!("../../docs/api.md");
    let (start_mark, end_mark) = (
        "<!-- arrow-snippet -->\n```python\n",
        "```\n<!-- /arrow-snippet -->",
    );
    let from = readme
        .find(start_mark)
        .expect("docs/api.md marks its snippet")
        + start_mark.len();
    let snippet = &readme[from..from + readme[from..].find(end_mark).unwrap()];
    assert_eq!(snippet.lines().count(), 5, "five lines:\n{snippet}");

    let dir = tempfile::tempdir().unwrap();
    let (url, _) = start(&stored_model(dir.path(), 1), settings()).await;
    let work = tempfile::tempdir().unwrap();
    let mut df = table(120);
    let mut file = std::fs::File::create(work.path().join("customers.csv")).unwrap();
    CsvWriter::new(&mut file).finish(&mut df).unwrap();
    let script = format!(
        "{}\nprint(segments.num_rows, segments.column_names, segments.column('error').null_count)\n",
        snippet.replace("http://localhost:5000", &url)
    );
    let out = tokio::task::spawn_blocking(move || {
        succeed(
            std::process::Command::new(&python)
                .arg("-c")
                .arg(&script)
                .current_dir(work.path()),
        )
    })
    .await
    .unwrap();
    assert!(
        out.starts_with(
            "120 ['segment', 'segment_name', 'probability_0', 'probability_1', \
             'probability_2', 'atypical', 'error'] 119"
        ),
        "{out}"
    );
    eprintln!("the snippet printed: {out}");
}
