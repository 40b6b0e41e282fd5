//! Bulk scoring (`categorizer predict`): the same rows, in the same order, with the same
//! predictions whatever the number of workers, the piece size or the file format (CSV,
//! Parquet, Arrow IPC); and a MongoDB output upserted by `ID`, against the real server.

use std::path::{Path, PathBuf};

use categorizer::ingest::{self, synthetic};
use categorizer::predict::{PredictRequest, PredictSummary, run};
use polars::prelude::*;

fn score(
    model: &Path,
    input: &Path,
    output: &str,
    chunk_rows: usize,
    workers: usize,
) -> PredictSummary {
    run(&PredictRequest {
        model: model.to_path_buf(),
        input: input.to_path_buf(),
        output: PathBuf::from(output),
        chunk_rows,
        progress: false,
        options: Default::default(),
        keep_malformed: false,
        explain: false,
        workers,
    })
    .unwrap()
}

/// A CSV file's columns, every one as text.
fn read_csv(path: &Path) -> DataFrame {
    crate::support::csv_as_text(&std::fs::read(path).unwrap())
}

/// An Arrow IPC file, every record batch.
fn read_arrow(path: &Path) -> DataFrame {
    crate::support::arrow_file(path)
}

/// A column as text, for comparing across formats.
fn text(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    let c = df.column(name).unwrap().cast(&DataType::String).unwrap();
    c.str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn any_workers_pieces_and_format_give_the_same_rows_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::support::stored_model(dir.path(), 3);
    let mut records = synthetic::generate_records(3000, 5);
    let tsv = dir.path().join("in.tsv");
    ingest::write_records(&mut records, &tsv).unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();

    // CSV in, CSV out with the input's separator: each record's text kept, predictions added.
    let one = score(&model, &tsv, &at("one.tsv"), 3000, 1);
    let many = score(&model, &tsv, &at("many.tsv"), 257, 3);
    assert_eq!((one.rows, one.predicted), (3000, many.predicted));
    assert_eq!(many.workers, 3);
    // The monitoring profile beside each output: the same counts however the run was cut.
    let profile = |p: &str| -> categorizer::monitor::Bucket {
        let text = std::fs::read_to_string(format!("{p}.monitoring.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let (p1, p3) = (profile(&at("one.tsv")), profile(&at("many.tsv")));
    assert_eq!(p1.rows as usize, one.predicted);
    assert_eq!(
        (p1.rows, &p1.segments, p1.atypical, &p1.errors),
        (p3.rows, &p3.segments, p3.atypical, &p3.errors)
    );
    for (a, b) in p1.features.iter().zip(&p3.features) {
        assert_eq!((a.count(), a.missing()), (b.count(), b.missing()));
    }
    let out = crate::support::succeed(crate::support::categorizer().args([
        "monitor",
        "--models",
        &model.parent().unwrap().display().to_string(),
        "--profile",
        &format!("{}.monitoring.json", at("many.tsv")),
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["rows"], p3.rows, "{report}");
    assert_eq!(report["features"].as_array().unwrap().len(), 21, "{report}");
    let one_bytes = std::fs::read(at("one.tsv")).unwrap();
    assert!(
        one_bytes == std::fs::read(at("many.tsv")).unwrap(),
        "3 workers in pieces of 257 wrote another file than 1 worker in one piece"
    );
    let scored = read_csv(Path::new(&at("one.tsv")));
    assert_eq!(scored.height(), 3000);
    let input_text = std::fs::read_to_string(&tsv).unwrap();
    for (line_in, line_out) in input_text
        .lines()
        .skip(1)
        .zip(String::from_utf8(one_bytes).unwrap().lines().skip(1))
    {
        assert!(line_out.starts_with(&format!("{line_in}\t")), "{line_out}");
    }
    assert_eq!(text(&scored, "ID"), text(&records, "ID"));
    let segments = text(&scored, "segment");
    assert!(segments.iter().filter(|s| s.is_some()).count() > 2900);

    // Comma-separated in, tab-separated out: the records are written again field by field.
    let csv = dir.path().join("in.csv");
    let mut file = std::fs::File::create(&csv).unwrap();
    CsvWriter::new(&mut file)
        .finish(&mut records.clone())
        .unwrap();
    score(&model, &csv, &at("from-comma.tsv"), 700, 2);
    let again = read_csv(Path::new(&at("from-comma.tsv")));
    assert_eq!(text(&again, "segment"), segments);
    assert_eq!(text(&again, "Dt_Customer"), text(&records, "Dt_Customer"));

    // Arrow IPC out, then that file in again: its prediction columns kept as input_*.
    score(&model, &tsv, &at("scored.arrow"), 700, 2);
    let arrow = read_arrow(Path::new(&at("scored.arrow")));
    assert_eq!(arrow.height(), 3000);
    assert_eq!(text(&arrow, "segment"), segments);
    assert_eq!(
        text(&arrow, "probability_0"),
        text(&scored, "probability_0")
    );
    let rescored = score(
        &model,
        Path::new(&at("scored.arrow")),
        &at("rescored.arrow"),
        1000,
        2,
    );
    assert_eq!(rescored.rows, 3000);
    let rescored = read_arrow(Path::new(&at("rescored.arrow")));
    assert_eq!(text(&rescored, "segment"), segments);
    assert_eq!(text(&rescored, "input_segment"), segments);

    // Parquet in and out.
    let parquet = dir.path().join("in.parquet");
    ingest::write_records(&mut records, &parquet).unwrap();
    score(&model, &parquet, &at("scored.parquet"), 999, 2);
    let file = std::fs::File::open(at("scored.parquet")).unwrap();
    let pq = ParquetReader::new(file).finish().unwrap();
    assert_eq!(text(&pq, "segment"), segments);
    assert_eq!(text(&pq, "ID"), text(&records, "ID"));
}

#[test]
fn scores_written_to_mongodb_are_one_document_per_customer_however_often_it_runs() {
    let Some(base) = crate::support::service("CATEGORIZER_TEST_MONGODB") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = crate::support::stored_model(dir.path(), 3);
    // 300 customers, the first ten of them twice (a file with a customer twice).
    let mut records = synthetic::generate_records(300, 9);
    let twice = records.head(Some(10));
    records.vstack_mut(&twice).unwrap();
    let input = dir.path().join("in.tsv");
    ingest::write_records(&mut records, &input).unwrap();
    let collection = crate::support::unique("scores");
    let uri = format!("{base}/categorizer_test?collection={collection}");

    let first = score(&model, &input, &uri, 128, 2);
    assert_eq!(first.rows, 310);
    score(&model, &input, &uri, 77, 3);
    let csv = dir.path().join("scored.tsv");
    score(&model, &input, &csv.display().to_string(), 1000, 1);
    let scored = read_csv(&csv);
    let expected: std::collections::BTreeMap<i64, String> = text(&scored, "ID")
        .into_iter()
        .zip(text(&scored, "segment"))
        .map(|(id, s)| (id.unwrap().parse().unwrap(), s.unwrap()))
        .collect();
    assert_eq!(expected.len(), 300);

    let docs = categorizer::rt::block_on(async move {
        use mongodb::bson::{Document, doc};
        let client = mongodb::Client::with_uri_str(&base).await.unwrap();
        let coll = client
            .database("categorizer_test")
            .collection::<Document>(&collection);
        let mut cursor = coll.find(doc! {}).await.unwrap();
        let mut docs = Vec::new();
        while cursor.advance().await.unwrap() {
            docs.push(cursor.deserialize_current().unwrap());
        }
        drop(cursor);
        client.shutdown().await;
        docs
    });
    assert_eq!(docs.len(), 300, "two runs over 310 rows of 300 customers");
    let mut seen = std::collections::BTreeSet::new();
    for d in &docs {
        let id = d.get_i64("ID").unwrap();
        assert!(seen.insert(id), "customer {id} has two documents");
        assert_eq!(
            d.get_i64("segment").unwrap().to_string(),
            expected[&id],
            "{d}"
        );
        assert_eq!(d.get_str("model_version").unwrap(), first.model_version);
        let p = d.get_array("probabilities").unwrap();
        let total: f64 = p.iter().map(|v| v.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-3, "{d}");
        assert!(d.get_str("segment_name").is_ok(), "{d}");
    }
}

#[test]
fn a_cell_that_is_not_a_number_is_its_rows_error_with_keep_and_stops_the_run_without() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::support::stored_model(dir.path(), 3);
    let mut records = synthetic::generate_records(300, 9);
    let clean = dir.path().join("clean.tsv");
    ingest::write_records(&mut records, &clean).unwrap();
    let written = std::fs::read_to_string(&clean).unwrap();
    let mut lines: Vec<String> = written.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split('\t').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (wines, cost) = (at("MntWines"), at("Z_CostContact"));
    // Row 5 (0-based) has a word in MntWines; row 9 one in Z_CostContact, which no feature
    // reads but the schema says is a number.
    // Row 5 has a second word, in MntFruits: a row's error names its first such column.
    let fruits = at("MntFruits");
    for (row, column, word) in [(5, wines, "lots"), (5, fruits, "x"), (9, cost, "n/a")] {
        let mut cells: Vec<String> = lines[row + 1].split('\t').map(str::to_string).collect();
        cells[column] = word.into();
        lines[row + 1] = cells.join("\t");
    }
    let damaged = dir.path().join("damaged.tsv");
    std::fs::write(&damaged, lines.join("\n") + "\n").unwrap();
    let score = |keep: bool, output: &str| {
        run(&PredictRequest {
            model: model.clone(),
            input: damaged.clone(),
            output: dir.path().join(output),
            chunk_rows: 64,
            progress: false,
            options: Default::default(),
            keep_malformed: keep,
            explain: false,
            workers: 2,
        })
    };
    let e = score(false, "failed.tsv").unwrap_err().to_string();
    assert!(e.contains("column 'MntWines', row 6: 'lots'"), "{e}");

    let summary = score(true, "kept.tsv").unwrap();
    assert_eq!((summary.rows, summary.set_aside), (300, 2));
    let out = read_csv(&dir.path().join("kept.tsv"));
    let error = text(&out, "error");
    let segment = text(&out, "segment");
    assert_eq!(
        error[5].as_deref(),
        Some("MntWines: 'lots' is not a number")
    );
    assert_eq!(
        error[9].as_deref(),
        Some("Z_CostContact: 'n/a' is not a number")
    );
    // The other rows are scored as in the clean file.
    score_clean(&model, &clean, &dir.path().join("clean-out.tsv"));
    let clean_segments = text(&read_csv(&dir.path().join("clean-out.tsv")), "segment");
    for i in 0..300 {
        if i == 5 || i == 9 {
            assert_eq!(segment[i], None, "row {i}");
        } else {
            assert_eq!(error[i], None, "row {i}");
            assert_eq!(segment[i], clean_segments[i], "row {i}");
        }
    }
}

fn score_clean(model: &Path, input: &Path, output: &Path) {
    score(model, input, &output.display().to_string(), 64, 1);
}
