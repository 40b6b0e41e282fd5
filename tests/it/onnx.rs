//! The exported ONNX model through real ONNX Runtime: round trips for both classifier kinds,
//! refusal of broken models, the missing-runtime message, bulk scoring, and the check by
//! Python's onnx.checker and onnxruntime.

use std::path::{Path, PathBuf};

use categorizer::Error;
use categorizer::config::DeviceChoice;
use categorizer::inference::{OnnxModel, SessionOptions};
use categorizer::ingest::DataSource;
use categorizer::onnx::proto::{DataType, Dim, Encode, Graph, Model, Node, ValueInfo};
use categorizer::registry::store::{LocalStore, MODEL_FILE, ModelStore};
use categorizer::registry::{self as model, ServedModel};
use categorizer::train::classifier::ClassifierChoice;
use categorizer::train::{TrainOutcome, TrainRequest};

use crate::support::{categorizer, succeed};

/// A scored CSV file as text cells (a quoted field, such as a segment name with a comma,
/// read whole): the header and the rows, an empty cell as "".
fn csv_cells(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let df = crate::support::csv_as_text(&std::fs::read(path).unwrap());
    let header: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let columns: Vec<Vec<String>> = df
        .columns()
        .iter()
        .map(|c| {
            c.str()
                .unwrap()
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect()
        })
        .collect();
    let rows = (0..df.height())
        .map(|i| columns.iter().map(|c| c[i].clone()).collect())
        .collect();
    (header, rows)
}

fn trained(kind: ClassifierChoice, dir: &Path) -> TrainOutcome {
    let mut config = crate::support::model_config();
    config.classifier = kind;
    let mut settings = crate::support::settings();
    settings.segmentation.n_init = 2;
    let source = DataSource::Synthetic {
        rows: 1500,
        seed: 3,
    };
    let req =
        TrainRequest::new(source, settings, config, dir.join("run")).with_device(DeviceChoice::Cpu);
    categorizer::workflow::train_and_publish(req, None, &SessionOptions::default())
        .unwrap()
        .outcome
}

#[test]
fn export_load_predict_round_trip_for_each_classifier_kind() {
    for kind in [ClassifierChoice::Gbdt, ClassifierChoice::Mlp] {
        let dir = tempfile::tempdir().unwrap();
        let outcome = trained(kind, dir.path());
        let store = LocalStore::new(dir.path().join("models"));
        let published = model::publish(&outcome, &store, &SessionOptions::default()).unwrap();
        let m = &published.manifest;
        assert_eq!(m.classifier, outcome.model.classifier.kind());
        assert_eq!(m.parity.segments_agree, m.parity.rows);
        assert!(m.parity.max_probability_diff <= model::PARITY_TOLERANCE);
        assert!(m.promotion.promoted, "the first model becomes current");
        assert_eq!(
            store.current().unwrap().as_deref(),
            Some(published.version.as_str())
        );
        assert_eq!(m.features.len(), 21);
        assert_eq!(m.data.rows, outcome.metrics.rows);

        // Loaded back from the store directory (its current model), on rows it never saw.
        let mut served = ServedModel::open(store.dir(), &SessionOptions::default()).unwrap();
        assert_eq!(served.manifest.version, published.version);
        let fresh = categorizer::features::engineer(
            &categorizer::ingest::synthetic::generate(400, 77),
            crate::support::settings().reference_date(),
        )
        .unwrap()
        .matrix;
        let got = served.onnx.predict(fresh.as_slice(), fresh.rows()).unwrap();
        let x = outcome.model.preprocessor.transform(&fresh);
        let want = outcome.model.classifier.predict(&x);
        let agree = got
            .segment
            .iter()
            .zip(&want)
            .filter(|(a, b)| **a == **b as i64)
            .count();
        assert_eq!(
            agree,
            fresh.rows(),
            "{kind:?}: ONNX Runtime and in-process segments differ"
        );
        let (_, sq) = outcome.model.assign(&fresh, &burn::prelude::Device::flex());
        for (i, d2) in sq.sq_dist.iter().enumerate() {
            let nearest = got.distances[i * 3..i * 3 + 3]
                .iter()
                .fold(f32::INFINITY, |a, &b| a.min(b));
            assert!(
                (nearest * nearest - d2).abs() <= 1e-3 * d2.max(1.0),
                "row {i}: distance to the nearest centre {nearest}^2 vs {d2}"
            );
        }
        assert_eq!(got.embedding.len(), fresh.rows() * 2);
    }
}

#[test]
fn corrupted_and_truncated_models_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = trained(ClassifierChoice::Mlp, dir.path());
    let store = LocalStore::new(dir.path().join("models"));
    let p = model::publish(&outcome, &store, &SessionOptions::default()).unwrap();
    let good = store.get(&p.version, MODEL_FILE).unwrap();

    let cases: [(&str, Vec<u8>); 3] = [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"this is not an ONNX model at all".repeat(10)),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&path, &bytes).unwrap();
        match OnnxModel::load(&path, &SessionOptions::default()) {
            Err(Error::Model(m)) => assert!(
                m.contains(&path.display().to_string()) && m.contains("not a loadable ONNX model"),
                "{name}: {m}"
            ),
            other => panic!("{name}: expected a model error, got {other:?}"),
        }
    }
}

#[test]
fn a_model_whose_input_width_is_not_the_schemas_is_refused() {
    // A well-formed model with a 20-wide input: customers -> Identity -> segment.
    let model = Model {
        ir_version: 8,
        opsets: vec![(String::new(), 17)],
        producer_name: "test".into(),
        producer_version: "0".into(),
        doc: String::new(),
        graph: Graph {
            name: "narrow".into(),
            nodes: vec![Node {
                op: "Identity".into(),
                domain: String::new(),
                name: "id".into(),
                inputs: vec!["customers".into()],
                outputs: vec!["segment".into()],
                attributes: vec![],
            }],
            inputs: vec![ValueInfo {
                name: "customers".into(),
                elem_type: DataType::Float,
                dims: vec![Dim::Named("N".into()), Dim::Fixed(20)],
                doc: String::new(),
            }],
            outputs: vec![ValueInfo {
                name: "segment".into(),
                elem_type: DataType::Float,
                dims: vec![Dim::Named("N".into()), Dim::Fixed(20)],
                doc: String::new(),
            }],
            ..Default::default()
        },
        metadata: vec![],
    };
    let err = OnnxModel::from_bytes(&model.encode(), &SessionOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("has 20 features per row; the schema has 21"),
        "{err}"
    );
}

#[test]
fn a_missing_runtime_library_is_an_install_message_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_library = dir.path().join("libonnxruntime.so");
    std::fs::write(&not_a_library, "not a shared library").unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n1\n").unwrap();
    for (lib, says) in [
        (
            dir.path().join("nowhere/libonnxruntime.so"),
            "which is not a file",
        ),
        (not_a_library, "could not be loaded as ONNX Runtime"),
    ] {
        // A model directory is needed first: give it a manifest and model that exist, so the
        // runtime is what fails.
        let model_dir = dir.path().join("model");
        std::fs::create_dir_all(&model_dir).unwrap();
        std::fs::write(model_dir.join("model.onnx"), b"x").unwrap();
        std::fs::write(model_dir.join("manifest.json"), b"{}").unwrap();
        let out = categorizer()
            .args(["predict", "--quiet", "--model"])
            .arg(&model_dir)
            .arg("--input")
            .arg(&input)
            .args(["--output", "/dev/null"])
            .env("CATEGORIZER_ONNXRUNTIME", &lib)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(says) && err.contains("scripts/setup.sh run") && !err.contains("panicked"),
            "{err}"
        );
    }
}

/// Trains on the real data (or generated records where this checkout has none) and scores it.
fn train_and_score(dir: &Path, classifier: &str) -> (PathBuf, PathBuf, PathBuf) {
    let data = crate::support::real_data().unwrap_or_else(|| {
        let p = dir.join("customers.csv");
        succeed(
            categorizer()
                .args(["generate", "--rows", "2240", "--out"])
                .arg(&p),
        );
        p
    });
    let models = dir.join("models");
    succeed(
        categorizer()
            .args([
                "train",
                "--quiet",
                "--device",
                "cpu",
                "--classifier",
                classifier,
            ])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(dir.join("run"))
            .arg("--models")
            .arg(&models),
    );
    let predictions = dir.join("predictions.csv");
    let summary = succeed(
        categorizer()
            .args(["predict", "--quiet", "--chunk-rows", "500", "--model"])
            .arg(&models)
            .arg("--input")
            .arg(&data)
            .arg("--output")
            .arg(&predictions),
    );
    assert!(
        summary.contains("scored 2240 rows (2240 predicted"),
        "{summary}"
    );
    let features = dir.join("features.csv");
    succeed(
        categorizer()
            .args(["features", "--input"])
            .arg(&data)
            .arg("--output")
            .arg(&features),
    );
    let current = std::fs::read_to_string(models.join("CURRENT")).unwrap();
    (
        models.join(current.trim()).join(MODEL_FILE),
        features,
        predictions,
    )
}

#[test]
fn predict_keeps_every_input_row_and_column_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, predictions) = train_and_score(dir.path(), "best");
    // A `.csv` output is comma-separated whatever the input's separator.
    let text = std::fs::read_to_string(&predictions).unwrap();
    assert!(text.starts_with("ID,Year_Birth,"), "{}", &text[..40]);
    let (header, rows) = csv_cells(&predictions);
    assert_eq!(&header[..2], ["ID", "Year_Birth"]);
    assert_eq!(
        &header[29..],
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
    assert_eq!(rows.len(), 2240);
    let input = std::fs::read_to_string(
        crate::support::real_data().unwrap_or_else(|| dir.path().join("customers.csv")),
    )
    .unwrap();
    let in_sep = if input.lines().next().unwrap().contains('\t') {
        '\t'
    } else {
        ','
    };
    for (line, row) in input.lines().skip(1).zip(&rows) {
        let first = line.split(in_sep).next().unwrap();
        assert_eq!(row[0], first, "input values are kept as written, in order");
        let p: f32 = (31..34).map(|j| row[j].parse::<f32>().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-4);
        assert!(row[30].len() > 3, "segment_name is filled");
        assert!(
            ["true", "false"].contains(&row[34].as_str()),
            "atypical: {}",
            row[34]
        );
    }
}

#[test]
fn python_onnx_checker_and_onnxruntime_agree_with_categorizer_predict() {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let usable = std::process::Command::new(&python)
        .args(["-c", "import onnx, onnxruntime"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var_os("CATEGORIZER_REQUIRE_PYTHON_TEST").is_none(),
            "{} cannot import onnx and onnxruntime (run scripts/setup.sh test)",
            python.display()
        );
        eprintln!("skipped: no .venv with onnx and onnxruntime (scripts/setup.sh test makes one)");
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_onnx.py");
    for classifier in ["gbdt", "mlp"] {
        let dir = tempfile::tempdir().unwrap();
        let (model, features, predictions) = train_and_score(dir.path(), classifier);
        let out = succeed(
            std::process::Command::new(&python)
                .arg(&script)
                .arg(&model)
                .arg(&features)
                .arg(&predictions),
        );
        assert!(
            out.contains("2240/2240 segments agree"),
            "{classifier}: {out}"
        );
        eprintln!("{classifier}: {}", out.trim());
    }
}

#[test]
fn predict_reads_parquet_and_the_21_features_and_names_a_bad_value_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = d.join("raw.parquet");
    succeed(
        categorizer()
            .args(["generate", "--rows", "3000", "--seed", "8", "--out"])
            .arg(&raw),
    );
    succeed(
        categorizer()
            .args([
                "train",
                "--quiet",
                "--device",
                "cpu",
                "--classifier",
                "mlp",
                "--data",
            ])
            .arg(&raw)
            .arg("--out")
            .arg(d.join("run"))
            .arg("--models")
            .arg(d.join("models")),
    );
    let predict = |input: &Path, output: &Path| {
        succeed(
            categorizer()
                .args(["predict", "--quiet", "--chunk-rows", "700", "--model"])
                .arg(d.join("models"))
                .arg("--input")
                .arg(input)
                .arg("--output")
                .arg(output),
        )
    };
    let out = predict(&raw, &d.join("scored.parquet"));
    assert!(
        out.contains("scored 3000 rows (3000 predicted") && out.contains("raw records"),
        "{out}"
    );
    let scored = {
        use polars::prelude::SerReader;
        let file = std::fs::File::open(d.join("scored.parquet")).unwrap();
        polars::prelude::ParquetReader::new(file).finish().unwrap()
    };
    assert_eq!(scored.height(), 3000);
    assert_eq!(scored.width(), 29 + 7);

    // The same customers as their 21 features give the same segments.
    let features = d.join("features.csv");
    succeed(
        categorizer()
            .args(["features", "--input"])
            .arg(&raw)
            .arg("--output")
            .arg(&features),
    );
    let out = predict(&features, &d.join("scored_features.csv"));
    assert!(
        out.contains("3000 predicted") && out.contains("input: features"),
        "{out}"
    );
    let text = std::fs::read_to_string(d.join("scored_features.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "segment").unwrap();
    let from_features: Vec<i64> = csv_cells(&d.join("scored_features.csv"))
        .1
        .iter()
        .map(|row| row[col].parse().unwrap())
        .collect();
    let from_raw: Vec<i64> = scored
        .column("segment")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(from_features, from_raw);

    // A text value in a number column deep in the file: the error names the column and the row
    // of the whole file, not of its chunk.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let income = header.iter().position(|h| *h == "Income").unwrap();
    let mut cells: Vec<String> = lines[1500].split(',').map(str::to_string).collect();
    cells[income] = "lots".into();
    lines[1500] = cells.join(",");
    let bad = d.join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let out = categorizer()
        .args(["predict", "--quiet", "--chunk-rows", "700", "--model"])
        .arg(d.join("models"))
        .arg("--input")
        .arg(&bad)
        .arg("--output")
        .arg(d.join("never.csv"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("'Income', row 1500: 'lots' is not a valid number")
            && !err.contains("panicked"),
        "{err}"
    );
    // With --on-error keep the same cell is that row's error, naming the column, as over
    // HTTP; every other row is scored.
    let kept = categorizer()
        .args([
            "predict",
            "--quiet",
            "--chunk-rows",
            "700",
            "--on-error",
            "keep",
            "--model",
        ])
        .arg(d.join("models"))
        .arg("--input")
        .arg(&bad)
        .arg("--output")
        .arg(d.join("kept_text.csv"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&kept.stdout);
    assert!(
        kept.status.success(),
        "{}",
        String::from_utf8_lossy(&kept.stderr)
    );
    assert!(
        said.contains("scored 3000 rows (2999 predicted, 1 set aside"),
        "{said}"
    );
    let (out_header, out_rows) = csv_cells(&d.join("kept_text.csv"));
    let (seg, error) = (
        out_header.iter().position(|h| *h == "segment").unwrap(),
        out_header.iter().position(|h| *h == "error").unwrap(),
    );
    assert_eq!(out_rows.len(), 3000);
    for (i, cells) in out_rows.iter().enumerate() {
        if i == 1499 {
            assert_eq!(cells[seg], "", "row {i}");
            assert_eq!(cells[error], "Income: 'lots' is not a number");
        } else {
            assert_eq!(
                cells[seg].parse::<i64>().unwrap(),
                from_features[i],
                "row {i}"
            );
        }
    }

    // A stray quote on line 800 and a missing field on line 1900: the command fails naming
    // the line, or with --on-error keep writes every record, those two with their error.
    let input = std::fs::read_to_string(&features).unwrap();
    let sep = if input.lines().next().unwrap().contains('\t') {
        '\t'
    } else {
        ','
    };
    let mut lines: Vec<String> = input.lines().map(str::to_string).collect();
    lines[799] = lines[799].replacen(sep, &format!("4\"5{sep}"), 1);
    let cut = lines[1899].rfind(sep).unwrap();
    lines[1899].truncate(cut);
    let damaged = d.join("damaged.csv");
    std::fs::write(&damaged, lines.join("\n") + "\n").unwrap();
    let run = |extra: &[&str], output: &str| {
        categorizer()
            .args(["predict", "--quiet", "--chunk-rows", "700", "--model"])
            .arg(d.join("models"))
            .args(extra)
            .arg("--input")
            .arg(&damaged)
            .arg("--output")
            .arg(d.join(output))
            .output()
            .unwrap()
    };
    let out = run(&[], "failed.csv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 800"), "{err}");
    let out = run(&["--on-error", "keep"], "kept.csv");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("scored 3000 rows (2998 predicted, 2 set aside of which 2 malformed"),
        "{said}"
    );
    let (header, rows) = csv_cells(&d.join("kept.csv"));
    let (seg, error) = (
        header.iter().position(|h| *h == "segment").unwrap(),
        header.iter().position(|h| *h == "error").unwrap(),
    );
    assert_eq!(rows.len(), 3000);
    for (i, row) in rows.iter().enumerate() {
        match i {
            798 | 1898 => {
                assert_eq!(row[seg], "", "row {i}");
                let line = if i == 798 { "line 800" } else { "line 1900" };
                assert!(row[error].contains(line), "row {i}: {}", row[error]);
            }
            _ => assert_eq!(
                row[seg].parse::<i64>().unwrap(),
                from_features[i],
                "row {i}"
            ),
        }
    }
}

#[test]
fn the_same_model_published_twice_in_one_second_gets_two_versions() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = trained(ClassifierChoice::Mlp, dir.path());
    let store = LocalStore::new(dir.path().join("models"));
    let options = SessionOptions::default();
    let a = model::publish(&outcome, &store, &options).unwrap();
    let b = model::publish(&outcome, &store, &options).unwrap();
    let c = model::publish(&outcome, &store, &options).unwrap();
    assert_ne!(a.version, b.version);
    assert_ne!(b.version, c.version);
    assert_eq!(store.versions().unwrap().len(), 3);
    assert!(
        !b.manifest.promotion.promoted,
        "an equal model does not replace the current one"
    );
    assert_eq!(
        store.current().unwrap().as_deref(),
        Some(a.version.as_str())
    );
}
