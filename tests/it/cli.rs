//! The `categorizer` binary, as a user runs it.

use std::process::Command;

/// Runs `cmd`, asserting it succeeded (its stderr is the failure message); returns its stdout.
fn succeed(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn categorizer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_categorizer"));
    c.env("RUST_LOG", "warn");
    c
}

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
    assert_eq!(text.lines().next().unwrap().split('\t').count(), 29);

    let train = |run: &str| {
        succeed(
            categorizer()
                .args([
                    "train", "--device", "cpu", "--seed", "42", "--quiet", "--data",
                ])
                .arg(&data)
                .arg("--out")
                .arg(dir.path().join(run))
                .env("CATEGORIZER__SEGMENTATION__N_INIT", "3"),
        )
    };
    let summary = train("a");
    assert!(
        summary.contains("silhouette") && summary.contains("Run directory"),
        "{summary}"
    );
    train("b");
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
