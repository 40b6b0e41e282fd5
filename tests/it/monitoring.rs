//! Live monitoring: what a replica scores is profiled in time buckets and tested for drift
//! against the served model's training split; closed buckets go to the store, where
//! `categorizer monitor` merges every replica's.

use std::time::Duration;

use categorizer::features::engineer;
use categorizer::ingest::synthetic;
use categorizer::registry::store::{LocalStore, ModelStore};
use categorizer::schema::{FEATURES, N_FEATURES};
use serde_json::{Value, json};

use crate::support;

/// Customers from the generator (a seed the model was not trained on), as JSON rows; with
/// `f`, each row changed first.
fn customers(n: usize, seed: u64, f: impl Fn(&mut [f32])) -> Vec<Value> {
    let settings = support::settings();
    let raw = synthetic::generate(n, seed);
    let table = engineer(&raw, settings.reference_date()).unwrap();
    (0..table.matrix.rows())
        .map(|i| {
            let mut row = table.matrix.row(i).to_vec();
            f(&mut row);
            let mut c = serde_json::Map::new();
            for (j, v) in row.iter().enumerate().take(N_FEATURES) {
                let value = if v.is_finite() { json!(v) } else { Value::Null };
                c.insert(FEATURES[j].key.to_string(), value);
            }
            Value::Object(c)
        })
        .collect()
}

fn monitoring_settings() -> categorizer::config::Settings {
    let mut s = support::settings();
    s.monitoring.bucket_ms = 500;
    s.monitoring.window_ms = 60_000;
    s.monitoring.retention_ms = 60_000;
    s.monitoring.interval_ms = 200;
    s.monitoring.min_rows = 300;
    s
}

/// Stores the version in `model` (a version directory) into the store at `store` too.
fn put_model(model: &std::path::Path, store: &std::path::Path) {
    let version = model.file_name().unwrap().to_string_lossy().into_owned();
    let files: Vec<(String, Vec<u8>)> = ["manifest.json", "model.onnx"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(model.join(f)).unwrap()))
        .collect();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(f, b)| (f.as_str(), b.as_slice()))
        .collect();
    LocalStore::new(store).put(&version, &files).unwrap();
}

async fn send(client: &reqwest::Client, base: &str, customers: &[Value]) {
    for chunk in customers.chunks(100) {
        let r = client
            .post(format!("{base}/api/v1/predict"))
            .json(&json!({ "customers": chunk }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// The report once the monitor has taken `rows` customers and `errors` row errors in.
async fn report_with(client: &reqwest::Client, base: &str, rows: u64, errors: u64) -> Value {
    for _ in 0..100 {
        let r = support::get_json(client, format!("{base}/api/v1/monitoring")).await;
        if r["rows"] == rows && r["error_rows"] == errors {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the monitor did not take {rows} customers and {errors} errors in");
}

fn drifted(r: &Value) -> Vec<String> {
    r["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["drifted"] == true)
        .map(|f| f["feature"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_finds_drift_where_the_customers_moved_and_says_when_it_cannot_tell() {
    let dir = tempfile::tempdir().unwrap();
    let model = support::stored_model(dir.path(), 31);
    let client = reqwest::Client::new();

    // Customers like the training data: counted, tested, no dataset drift.
    let (base, _state) = support::start(&model, monitoring_settings()).await;
    let before = report_with(&client, &base, 0, 0).await;
    assert_eq!(before["status"], "not_enough_data");
    assert_eq!(before["dataset_drift"], Value::Null);
    // The training population itself (the generator's seed; other seeds draw other mixtures,
    // which the KS tests of a small reference tell apart).
    let steady = customers(1200, 31, |_| {})[..1000].to_vec();
    send(&client, &base, &steady[..200]).await;
    let r = report_with(&client, &base, 200, 0).await;
    assert_eq!(r["status"], "not_enough_data", "{r}");
    assert!(drifted(&r).is_empty(), "too few customers to say: {r}");
    send(&client, &base, &steady[200..]).await;
    // One refused customer, counted under its field.
    let mut bad = steady[0].clone();
    bad["Age"] = json!("old");
    let answer = client
        .post(format!("{base}/api/v1/predict"))
        .json(&json!({ "customers": [bad] }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let r = report_with(&client, &base, 1000, 1).await;
    assert_eq!(r["errors"]["Age"], 1, "{r}");
    assert_eq!(r["dataset_drift"], false, "{r}");
    assert!(drifted(&r).len() <= 3, "{:?}", drifted(&r));
    let shares: f64 = r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["share"].as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-9, "{r}");
    assert_eq!(r["features"].as_array().unwrap().len(), N_FEATURES);

    // Income in cents (a data bug): Income drifts, the data set may not.
    let (base, state) = support::start(&model, monitoring_settings()).await;
    let income = FEATURES.iter().position(|f| f.key == "Income").unwrap();
    send(
        &client,
        &base,
        &customers(1200, 31, |r| r[income] *= 3.0)[..1000],
    )
    .await;
    let r = report_with(&client, &base, 1000, 0).await;
    assert!(drifted(&r).contains(&"Income".to_string()), "{r}");
    assert_eq!(r["status"], "drift", "{r}");
    // The gauges and the page say the same.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = support::get_text(&client, format!("{base}/metrics")).await;
        if metrics.contains("categorizer_monitoring_window_rows 1000") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("categorizer_monitoring_feature_drifted{feature=\"Income\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("categorizer_monitoring_segment_share{segment=\"0\"}"),
        "{metrics}"
    );
    let page = support::get_text(&client, format!("{base}/monitoring")).await;
    assert!(
        page.contains("id=\"monitoring-status\" class=\"status-drift\""),
        "{page}"
    );
    assert!(page.contains("<strong>Income</strong>"), "{page}");
    drop(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_buckets_merged_from_the_store_equal_one_replica_that_saw_both() {
    let dir = tempfile::tempdir().unwrap();
    let model = support::stored_model(dir.path(), 32);
    let version = model.file_name().unwrap().to_string_lossy().into_owned();
    let (pair, single) = (dir.path().join("pair"), dir.path().join("single"));
    // Both stores hold the model (the CLI reads its manifest from the store).
    for store in [&pair, &single] {
        put_model(&model, store);
    }
    let client = reqwest::Client::new();
    let (a, b) = (
        customers(700, 81, |_| {}),
        customers(500, 82, |r| r[5] *= 1.5),
    );
    let mut states = Vec::new();
    for (store, streams) in [
        (&pair, vec![&a]),
        (&pair, vec![&b]),
        (&single, vec![&a, &b]),
    ] {
        let (base, state) = support::start_with(
            &model,
            monitoring_settings(),
            Some(support::training(store, None)),
        )
        .await;
        for s in &streams {
            send(&client, &base, s).await;
        }
        let n: usize = streams.iter().map(|s| s.len()).sum();
        report_with(&client, &base, n as u64, 0).await;
        let monitor = state.monitor().clone();
        tokio::task::spawn_blocking(move || monitor.flush(Duration::from_secs(10)))
            .await
            .unwrap();
        states.push(state);
    }
    let read = |store: &std::path::Path| {
        categorizer::monitor::read_store(&LocalStore::new(store), &version, 0).unwrap()
    };
    let ((merged, sources), (one, one_source)) = (read(&pair), read(&single));
    assert_eq!((sources.len(), one_source.len()), (2, 1));
    let (merged, one) = (merged.unwrap(), one.unwrap());
    assert_eq!(merged.rows, 1200);
    assert_eq!(
        (merged.rows, &merged.segments, merged.atypical),
        (one.rows, &one.segments, one.atypical)
    );
    let v = support::settings().validation;
    for (j, (m, o)) in merged.features.iter().zip(&one.features).enumerate() {
        assert_eq!(
            (m.count(), m.missing()),
            (o.count(), o.missing()),
            "{}",
            FEATURES[j].key
        );
        let (pm, po) = (m.profile("f", &v), o.profile("f", &v));
        assert_eq!(pm.counts, po.counts, "{}", FEATURES[j].key);
        assert!(
            (pm.mean - po.mean).abs() <= 1e-9 * po.mean.abs().max(1.0),
            "{}",
            FEATURES[j].key
        );
        // Quantiles within the sketch's error: 2 % of the feature's spread.
        let spread = (po.values.last().unwrap_or(&0.0) - po.values.first().unwrap_or(&0.0)).abs();
        for (x, y) in pm.values.iter().zip(&po.values) {
            assert!(
                (x - y).abs() <= 0.02 * spread + 1e-9,
                "{}: {x} vs {y}",
                FEATURES[j].key
            );
        }
    }
    // `categorizer monitor` prints the merged report of every replica.
    let out = support::succeed(support::categorizer().args([
        "monitor",
        "--models",
        &pair.display().to_string(),
        "--version",
        &version,
        "--json",
    ]));
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["rows"], 1200, "{r}");
    assert_eq!(r["sources"].as_array().unwrap().len(), 2, "{r}");
    drop(states);
    let stored = LocalStore::new(&pair).list_pointers("monitoring/").unwrap();
    assert!(
        stored
            .iter()
            .all(|n| n.starts_with(&format!("monitoring/{version}/"))),
        "{stored:?}"
    );
}

/// With `monitoring.retrain_on_drift`, a drift that lasts starts one training job on the
/// configured source, never two across the replicas of a store; the job says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_drift_starts_one_training_job_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let model = support::stored_model(dir.path(), 33);
    let version = model.file_name().unwrap().to_string_lossy().into_owned();
    let store = dir.path().join("shared");
    put_model(&model, &store);
    let mut settings = monitoring_settings();
    settings.monitoring.retrain_on_drift = true;
    settings.monitoring.retrain_source = Some("synthetic:rows=1500,seed=9".into());
    settings.monitoring.retrain_after = 2;
    let client = reqwest::Client::new();
    let income = FEATURES.iter().position(|f| f.key == "Income").unwrap();
    let drifted = customers(1200, 33, |r| r[income] *= 3.0)[..1000].to_vec();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let (base, state) = support::start_with(
            &model,
            settings.clone(),
            Some(support::training(&store, None)),
        )
        .await;
        send(&client, &base, &drifted).await;
        replicas.push((base, state));
    }
    // Each replica reports every 200 ms: within a few seconds both have seen the drift last.
    let mut jobs = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        jobs.clear();
        for (base, _) in &replicas {
            let listed = support::get_json(&client, format!("{base}/api/v1/jobs")).await;
            jobs.extend(listed["jobs"].as_array().cloned().unwrap_or_default());
        }
        if !jobs.is_empty() {
            // Give the other replica time to decide too.
            tokio::time::sleep(Duration::from_millis(800)).await;
            jobs.clear();
            for (base, _) in &replicas {
                let listed = support::get_json(&client, format!("{base}/api/v1/jobs")).await;
                jobs.extend(listed["jobs"].as_array().cloned().unwrap_or_default());
            }
            break;
        }
    }
    assert_eq!(jobs.len(), 1, "one job across both replicas: {jobs:?}");
    let trigger = jobs[0]["trigger"].as_str().unwrap_or_default();
    assert!(
        trigger.contains("Income") && trigger.contains(&version),
        "{trigger}"
    );
    assert_eq!(jobs[0]["options"]["source"], "synthetic:rows=1500,seed=9");
    let claim = LocalStore::new(&store)
        .read_pointer(&format!("monitoring/{version}/retrain.json"))
        .unwrap()
        .unwrap();
    assert!(claim.contains("Income"), "{claim}");
}
