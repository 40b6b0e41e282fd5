//! The HTTP service on a real socket, through a real HTTP client.

use std::path::{Path, PathBuf};

use categorizer::config::{DeviceChoice, Settings};
use categorizer::inference::SessionOptions;
use categorizer::ingest::DataSource;
use categorizer::model::{self, ServedModel};
use categorizer::serve::{AppState, router};
use categorizer::store::LocalStore;
use categorizer::train::classifier::ClassifierChoice;
use categorizer::train::{self, TrainRequest};
use serde_json::{Value, json};

/// Trains a small model with `seed` and stores it; returns the model's directory.
fn stored_model(dir: &Path, seed: u64) -> PathBuf {
    let mut config = crate::model_config();
    config.classifier = ClassifierChoice::Mlp;
    let mut settings = crate::settings();
    settings.segmentation.n_init = 2;
    settings.split.seed = seed;
    let outcome = train::run(&TrainRequest {
        source: DataSource::Synthetic { rows: 1200, seed },
        device: DeviceChoice::Cpu,
        settings,
        model_config: config,
        out_dir: dir.join(format!("run{seed}")),
        progress: false,
    })
    .unwrap();
    let store = LocalStore::new(dir.join(format!("models{seed}")));
    let p = model::publish(&outcome, &store, &SessionOptions::default()).unwrap();
    store.version_dir(&p.version)
}

/// Starts the service on a free loopback port; returns its base URL and state.
async fn start(model_dir: &Path, settings: Settings) -> (String, AppState) {
    let model = ServedModel::open(model_dir, &SessionOptions::default()).unwrap();
    let state = AppState::new(model, &settings);
    let app = router(state.clone(), &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

fn customer(age: i64) -> Value {
    json!({
        "Age": age, "Education": 2, "Marital_Status": 1, "Parental_Status": 1, "Children": 1,
        "Income": 52000.0, "Total_Spending": 600.0, "Days_as_Customer": 500, "Recency": 30,
        "Wines": 300.0, "Fruits": 20.0, "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0,
        "Gold": 80.0, "Web": 4, "Catalog": 2, "Store": 6, "Discount_Purchases": 2,
        "Total_Promo": 0, "NumWebVisitsMonth": 5
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_row_predicts_the_others_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = start(&stored_model(dir.path(), 1), crate::settings()).await;
    let mut bad = customer(40);
    bad["Income"] = json!("a lot");
    let body = json!({"customers": [customer(30), bad, customer(-5), customer(60)]});
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/predict"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let p = v["predictions"].as_array().unwrap();
    assert_eq!(p.len(), 4);
    for i in [0, 3] {
        assert!(p[i]["segment"].as_i64().unwrap() < 3, "{v}");
        let sum: f64 = p[i]["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-4);
        assert!(!p[i]["segment_name"].as_str().unwrap().is_empty());
    }
    assert_eq!(p[1]["error"]["field"], "Income", "{v}");
    assert_eq!(p[1]["error"]["row"], 1);
    assert_eq!(p[2]["error"]["field"], "Age", "{v}");
    assert!(v["model_version"].as_str().unwrap().len() > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_batches_are_413_and_malformed_json_is_400() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::settings();
    settings.server.max_body_bytes = 64 * 1024;
    settings.server.max_customers = 10;
    let (url, _) = start(&stored_model(dir.path(), 1), settings).await;
    let client = reqwest::Client::new();
    let post = |body: String| {
        client
            .post(format!("{url}/api/v1/predict"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let huge = format!("{{\"customers\": [{}]}}", "0,".repeat(40_000) + "0");
    let r = post(huge).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "body_too_large");

    let many = json!({"customers": vec![customer(30); 11]}).to_string();
    let r = post(many).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "too_many_customers");

    let r = post("{\"customers\": [".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "malformed_json");

    let r = client.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_switch_during_a_stream_of_requests_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (stored_model(dir.path(), 1), stored_model(dir.path(), 2));
    let (url, state) = start(&first, crate::settings()).await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..40 {
                let body = json!({"customers": [customer(25 + (t * 40 + i) % 50)]});
                let r = client
                    .post(format!("{url}/api/v1/predict"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                assert!(v["predictions"][0]["segment"].is_i64(), "{v}");
                versions.push(v["model_version"].as_str().unwrap().to_string());
            }
            versions
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let next = ServedModel::open(&second, &SessionOptions::default()).unwrap();
    let next_version = next.manifest.version.clone();
    state.swap(next).await.unwrap();
    let mut answered = 0;
    for t in tasks {
        answered += t.await.unwrap().len();
    }
    assert_eq!(answered, 8 * 40, "every request was answered");
    let r: Value = client
        .post(format!("{url}/api/v1/predict"))
        .header("content-type", "application/json")
        .body(json!({"customers": [customer(30)]}).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(r["model_version"], next_version.as_str());
}
