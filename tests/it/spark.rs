//! The model where the data lives: the exported SQL in DuckDB, the Spark package
//! (`integrations/spark/`) in PySpark `local[2]`, and docs/spark-and-sql.md's Python-only snippet, each
//! against `categorizer predict` and `categorizer features` on every row of real-shaped and
//! hostile records (`tests/python/spark_parity.py` does the comparing).

use std::path::{Path, PathBuf};
use std::process::Command;

use categorizer::registry::store::s3::S3Store;
use categorizer::registry::store::{MANIFEST_FILE, MODEL_FILE, ModelStore};

use crate::support::{real_data, stored_model, succeed};

/// Runs a script; its stdout, or a failure showing both streams.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The project's venv python when it has PySpark, DuckDB and ONNX Runtime and a Java runtime
/// is on the path; None (the test skips) otherwise, unless CATEGORIZER_REQUIRE_PYTHON_TEST is
/// set (CI), which makes their absence a failure.
fn spark_python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let modules = Command::new(&python)
        .args(["-c", "import pyspark, duckdb, onnxruntime, pyarrow, pandas"])
        .status()
        .is_ok_and(|s| s.success());
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if modules && java {
        return Some(python);
    }
    assert!(
        std::env::var_os("CATEGORIZER_REQUIRE_PYTHON_TEST").is_none(),
        "{} cannot import pyspark and duckdb, or no java on the path (run scripts/setup.sh test)",
        python.display()
    );
    eprintln!("skipped: no .venv with pyspark and duckdb, or no java");
    None
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// The store a stored model's version directory is in.
fn store_of(version_dir: &Path) -> &Path {
    version_dir.parent().expect("a version lies in its store")
}

#[test]
fn spark_duckdb_and_the_docs_snippet_give_the_binarys_answers_on_every_row() {
    let Some(python) = spark_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let version = stored_model(dir.path(), 1);
    for file in ["features.spark.sql", "features.duckdb.sql"] {
        assert!(version.join(file).is_file(), "the version stores {file}");
    }
    let real = real_data()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let out = run(Command::new(&python)
        .arg(script("spark_parity.py"))
        .arg(env!("CARGO_BIN_EXE_categorizer"))
        .arg(store_of(&version))
        .arg(dir.path().join("work"))
        .arg(&real)
        .arg("3000"));
    eprintln!("{out}");
    assert!(out.contains("every row agrees"), "{out}");
    // The hostile rows were there, and refused for the reasons they were made with.
    for want in [
        "Education: unknown category 'PhD2'",
        "Dt_Customer: unparseable date '31-02-2014'",
        "MntWines: 'lots' is not a number",
        "Children: 0.5 is not a whole number",
        "Age: 164 is outside [0, 130]",
    ] {
        assert!(out.contains(want), "no row said {want:?}:\n{out}");
    }
}

#[test]
fn the_spark_package_refuses_what_it_cannot_score_naming_it() {
    let Some(python) = spark_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let version = stored_model(dir.path(), 1);
    let out = run(Command::new(&python)
        .arg(script("spark_bad_input.py"))
        .arg(store_of(&version))
        .arg(dir.path().join("work")));
    eprintln!("{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok   ")).count(),
        5,
        "{out}"
    );
}

#[test]
fn the_spark_package_loads_the_current_model_of_an_s3_store() {
    let Some(endpoint) = crate::support::service("CATEGORIZER_TEST_S3") else {
        return;
    };
    let Some(python) = spark_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let version_dir = stored_model(dir.path(), 1);
    let uri = format!(
        "s3://categorizer-test/{}",
        crate::support::unique("spark-load")
    );
    let mut settings = crate::support::settings().models.s3;
    settings.endpoint = Some(endpoint.clone());
    settings.force_path_style = true;
    let store = S3Store::connect(&uri, &settings).unwrap();
    store.ensure_bucket().unwrap();
    let version = version_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let names = [
        MODEL_FILE,
        MANIFEST_FILE,
        "features.spark.sql",
        "features.duckdb.sql",
    ];
    let bytes: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(version_dir.join(n)).unwrap())
        .collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&bytes)
        .map(|(n, b)| (*n, b.as_slice()))
        .collect();
    store.put(&version, &files).unwrap();
    store.set_current(&version).unwrap();
    let code = format!(
        "import sys; sys.path.insert(0, {:?})\n\
         from categorizer_spark import load_model\n\
         m = load_model({uri:?}, s3_endpoint={endpoint:?})\n\
         print(m.version, m.location, len(m.onnx), 'FROM customers' in m.sql)\n",
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("integrations/spark")
            .display()
            .to_string()
    );
    let out = succeed(Command::new(&python).arg("-c").arg(&code));
    assert_eq!(
        out.trim(),
        format!("{version} {uri}/versions/{version} {} True", bytes[0].len()),
        "{out}"
    );
}

/// `categorizer export sql` writes what a version stores, also for a version whose manifest
/// predates the derivations as data and the stored SQL.
#[test]
fn export_sql_writes_the_stored_sql_also_for_a_model_published_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let version = stored_model(dir.path(), 1);
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version.join(MANIFEST_FILE)).unwrap()).unwrap();
    manifest.as_object_mut().unwrap().remove("sql");
    for f in manifest["features"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("derived_from");
    }
    std::fs::write(old.join(MANIFEST_FILE), manifest.to_string()).unwrap();
    std::fs::copy(version.join(MODEL_FILE), old.join(MODEL_FILE)).unwrap();
    for (dialect, model) in [("duckdb", &version), ("spark", &old)] {
        let out = dir.path().join(format!("{dialect}.sql"));
        crate::support::succeed(
            crate::support::categorizer()
                .args(["export", "sql", "--dialect", dialect, "--model"])
                .arg(model)
                .arg("--out")
                .arg(&out),
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(version.join(format!("features.{dialect}.sql"))).unwrap(),
            "{dialect}"
        );
    }
    // Through the store's CURRENT, to standard output, with another table name.
    let text = crate::support::succeed(
        crate::support::categorizer()
            .args([
                "export",
                "sql",
                "--dialect",
                "spark",
                "--table",
                "lake.customers",
                "--model",
            ])
            .arg(store_of(&version)),
    );
    assert!(text.contains("-- table: lake.customers"), "{text}");
    assert!(text.contains("FROM lake.customers\n"), "{text}");
    // A version whose features are not this build's cannot be exported, and says why.
    manifest["features"][1]["derivation"] = "code of Education (0: Basic)".into();
    std::fs::write(old.join(MANIFEST_FILE), manifest.to_string()).unwrap();
    let out = crate::support::categorizer()
        .args(["export", "sql", "--dialect", "duckdb", "--model"])
        .arg(&old)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Education") && err.contains("build that trained it"),
        "{err}"
    );
}
