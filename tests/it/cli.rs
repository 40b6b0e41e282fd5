//! The `categorizer` binary, as a user runs it.

use crate::support::{categorizer, succeed};

#[test]
fn generate_then_train_writes_a_reproducible_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("customers.csv");
    succeed(
        categorizer()
            .args(["generate", "--rows", "2000", "--seed", "4", "--out"])
            .arg(&data),
    );
    let text = std::fs::read_to_string(&data).unwrap();
    assert_eq!(text.lines().count(), 2001);
    // `.csv` is comma-separated (the extension decides; `.tsv` would be tabs).
    assert_eq!(text.lines().next().unwrap().split(',').count(), 29);

    let train = |run: &str| {
        succeed(
            categorizer()
                .args([
                    "train", "--device", "cpu", "--seed", "42", "--quiet", "--data",
                ])
                .arg(&data)
                .arg("--out")
                .arg(dir.path().join(run))
                .arg("--models")
                .arg(dir.path().join("models"))
                .env("CATEGORIZER__SEGMENTATION__N_INIT", "3"),
        )
    };
    let summary = train("a");
    assert!(
        summary.contains("silhouette") && summary.contains("Run directory"),
        "{summary}"
    );
    assert!(
        summary.contains("promoted to current: first model in the store"),
        "{summary}"
    );
    let again = train("b");
    assert!(
        again.contains("not promoted") && again.contains("does not beat"),
        "the same model again does not replace the current one: {again}"
    );
    for file in ["model.json", "assignments.csv"] {
        let a = std::fs::read(dir.path().join("a").join(file)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(file)).unwrap();
        assert!(
            a == b,
            "{file} differs between two runs with the same data and seed"
        );
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a/metrics.json")).unwrap()).unwrap();
    assert_eq!(
        metrics["kmeans"]["n_init"], 3,
        "settings come from the environment"
    );
}

#[test]
fn a_bad_file_fails_with_a_message_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("empty.csv");
    std::fs::write(&data, "").unwrap();
    let out = categorizer()
        .args(["train", "--quiet", "--device", "cpu", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error:") && err.contains("empty") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn validate_exits_1_when_the_data_fails_and_0_when_it_passes_with_its_report_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    succeed(
        categorizer()
            .args(["generate", "--rows", "500", "--seed", "2", "--out"])
            .arg(&good),
    );
    // Every Recency out of range: the schema check fails.
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let sep = if header.contains('\t') { '\t' } else { ',' };
    let recency = header.split(sep).position(|h| h == "Recency").unwrap();
    let mut bad_text = format!("{header}\n");
    for line in lines {
        let mut cells: Vec<&str> = line.split(sep).collect();
        cells[recency] = "-5";
        bad_text.push_str(&cells.join(&sep.to_string()));
        bad_text.push('\n');
    }
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, bad_text).unwrap();

    let run = |current: &std::path::Path, json: &str| {
        let out = dir.path().join(json);
        let status = categorizer()
            .args(["validate", "--reference"])
            .arg(&good)
            .arg("--current")
            .arg(current)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        (status.status.code(), report)
    };
    let (code, report) = run(&good, "good.json");
    assert_eq!(code, Some(0));
    assert_eq!(report["schema"]["passed"], true);
    let (code, report) = run(&bad, "bad.json");
    assert_eq!(code, Some(1), "a failing check is exit code 1");
    assert_eq!(report["schema"]["passed"], false);
    assert!(report["schema"]["issues"].to_string().contains("Recency"));
}
