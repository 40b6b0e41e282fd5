//! Segments a marketing team can trust: k chosen by the sweep, identities and names kept
//! across retrains (lineage), renames, explanations and the atypical flag, end to end.

use categorizer::config::{DeviceChoice, KSetting};
use categorizer::inference::SessionOptions;
use categorizer::ingest::DataSource;
use categorizer::registry::store::{LocalStore, ModelStore};
use categorizer::registry::{self, Manifest};
use categorizer::schema::FEATURES;
use categorizer::train::TrainRequest;
use categorizer::train::classifier::ClassifierChoice;
use serde_json::{Value, json};

use crate::support::{
    categorizer, customer, get_json, get_text, json_body, model_config, settings, start_with,
    stored_model, succeed, training,
};

/// Trains on `source` and publishes into `store` (matched to its current model, if any).
fn train_into(store: &LocalStore, source: DataSource, k: KSetting) -> Manifest {
    let mut s = settings();
    s.segmentation.n_init = 2;
    s.segmentation.k = k;
    s.segmentation.k_range = [2, 5];
    s.segmentation.sweep_sample = 1_000;
    let mut config = model_config();
    config.classifier = ClassifierChoice::Mlp;
    let run = tempfile::tempdir().unwrap();
    let req = TrainRequest::new(source, s, config, run.path()).with_device(DeviceChoice::Cpu);
    categorizer::workflow::train_and_publish(req, Some(store), &SessionOptions::default())
        .unwrap()
        .published
        .unwrap()
        .manifest
}

#[test]
fn a_retrain_keeps_matched_ids_and_names_and_records_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let first = train_into(
        &store,
        DataSource::Synthetic {
            rows: 1500,
            seed: 1,
        },
        KSetting::Fixed(3),
    );
    assert!(
        first.lineage.is_none(),
        "the first model has nothing to match"
    );
    let seg = first.segmentation.as_ref().unwrap();
    assert!(seg.k_sweep.is_empty() && seg.k_rule.starts_with("fixed"));
    assert_eq!(seg.space.distance_p99.len(), 3);
    // A name the user chose: a new current version with the same model file.
    let renamed = registry::rename(&store, &first.version, 1, "  Loyal families ").unwrap();
    assert!(renamed.current);
    assert_eq!(
        store.current().unwrap().as_deref(),
        Some(renamed.version.as_str())
    );
    assert_eq!(renamed.manifest.segments[1].name, "Loyal families");
    assert_eq!(
        renamed.manifest.renamed_from.as_deref(),
        Some(first.version.as_str())
    );
    assert_eq!(renamed.manifest.onnx.sha256, first.onnx.sha256);
    assert!(registry::rename(&store, &first.version, 3, "x").is_err());
    assert!(registry::rename(&store, &first.version, 0, "\t").is_err());

    // Another sample of the same population: the segments are the same three.
    let second = train_into(
        &store,
        DataSource::Synthetic {
            rows: 1500,
            seed: 2,
        },
        KSetting::Fixed(3),
    );
    let lineage = second
        .lineage
        .as_ref()
        .expect("matched to the current model");
    assert_eq!(lineage.previous_version, renamed.version);
    for id in 0..3 {
        assert_eq!(
            lineage.matched[&id.to_string()],
            Some(id),
            "segment {id} keeps its id: {lineage:?}"
        );
        assert_eq!(second.segments[id].name, renamed.manifest.segments[id].name);
    }
    assert_eq!(second.segments[1].name, "Loyal families");
    // Every training customer is counted once, and most stay where they were.
    let total: usize = lineage.migration.iter().flatten().sum();
    assert_eq!(total, lineage.rows);
    assert_eq!(total, second.metrics.data.train_rows);
    let stayed: usize = (0..3).map(|i| lineage.migration[i][i]).sum();
    assert!(stayed * 10 > total * 8, "{:?}", lineage.migration);
    let ari = lineage.adjusted_rand_index.unwrap();
    assert!(ari > 0.6 && ari <= 1.0, "{ari}");
}

#[test]
fn k_auto_sweeps_the_range_and_records_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let m = train_into(
        &store,
        DataSource::Synthetic {
            rows: 1500,
            seed: 3,
        },
        KSetting::Word(categorizer::config::Auto::Auto),
    );
    let seg = m.segmentation.unwrap();
    let ks: Vec<usize> = seg.k_sweep.iter().map(|s| s.k).collect();
    assert_eq!(ks, vec![2, 3, 4, 5]);
    assert_eq!(seg.k_rule, categorizer::train::sweep::K_RULE);
    assert_eq!(seg.sweep_rows, 1_000);
    assert_eq!(m.k, categorizer::train::sweep::choose(&seg.k_sweep));
    assert_eq!(m.segments.len(), m.k);
    assert_eq!(seg.space.centres.len(), m.k);
}

/// A customer at the far end of every range.
fn outlier() -> Value {
    let mut c = customer(30);
    for f in FEATURES.iter().filter(|f| f.choices.is_empty()) {
        c[f.key] = json!(f.max.min(1e6));
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_say_why_and_flag_atypical_customers() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = start_with(&stored_model(dir.path(), 1), settings(), None).await;
    let client = reqwest::Client::new();
    let body = json!({"customers": [customer(30), customer(62), outlier()]}).to_string();
    let post = |query: &'static str| {
        client
            .post(format!("{url}/api/v1/predict{query}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let plain: Value = json_body(post("").await.unwrap()).await;
    for p in plain["predictions"].as_array().unwrap() {
        assert!(p["atypical"].is_boolean(), "{p}");
        assert!(p.get("explanation").is_none(), "only when asked: {p}");
    }
    assert_eq!(plain["predictions"][2]["atypical"], true, "{plain}");

    let r = post("?explain=true").await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = json_body(r).await;
    for p in v["predictions"].as_array().unwrap() {
        let e = &p["explanation"];
        let (segment, runner_up) = (
            p["segment"].as_u64().unwrap(),
            e["runner_up"].as_u64().unwrap(),
        );
        assert_ne!(segment, runner_up, "{p}");
        assert_eq!(e["nearest"], e["margin"].as_f64().unwrap() >= 0.0);
        let top = e["top_features"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let contributions: Vec<f64> = top
            .iter()
            .map(|t| t["contribution"].as_f64().unwrap())
            .collect();
        assert!(
            contributions.windows(2).all(|w| w[0] >= w[1]),
            "{contributions:?}"
        );
        for t in top {
            assert!(FEATURES.iter().any(|f| f.key == t["feature"]), "{t}");
        }
        let text = e["text"].as_str().unwrap();
        assert!(
            text.starts_with("Closer to ") || text.starts_with("Placed in "),
            "{text}"
        );
    }
    // The values are the customer's own, in the user's units.
    let first = &v["predictions"][0]["explanation"]["top_features"][0];
    let key = first["feature"].as_str().unwrap();
    assert_eq!(first["value"].as_f64(), customer(30)[key].as_f64());

    let r = post("?explain=perhaps").await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = json_body(r).await;
    assert_eq!(e["error"]["code"], "invalid_query");
    assert_eq!(e["error"]["field"], "explain");

    let metrics = get_text(&client, format!("{url}/metrics")).await;
    let atypical: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("categorizer_atypical_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let flagged = [&plain, &v]
        .iter()
        .flat_map(|r| r["predictions"].as_array().unwrap())
        .filter(|p| p["atypical"] == true)
        .count() as u64;
    assert!(flagged >= 2, "the outlier, twice");
    assert_eq!(atypical, flagged, "{metrics}");
    let predicted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("categorizer_predictions_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(predicted, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_renamed_over_http_is_served_under_its_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let model = stored_model(&store_dir, 1);
    let store_path = model.parent().unwrap().to_path_buf();
    let store = LocalStore::new(&store_path);
    let version = model.file_name().unwrap().to_str().unwrap().to_string();
    store.set_current(&version).unwrap();
    let (url, _) = start_with(&model, settings(), Some(training(&store_path, None))).await;
    let client = reqwest::Client::new();
    let put = |id: &str, body: &str| {
        client
            .put(format!("{url}/api/v1/model/segments/{id}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let r = put("2", r#"{"name": "Loyal families"}"#).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = json_body(r).await;
    assert_eq!(
        (v["current"].clone(), v["renamed_from"].clone()),
        (json!(true), json!(version))
    );
    let new = v["version"].as_str().unwrap().to_string();
    assert_eq!(store.current().unwrap().as_deref(), Some(new.as_str()));
    let served = get_json(&client, format!("{url}/api/v1/model")).await;
    assert_eq!(served["version"], new.as_str());
    assert_eq!(served["segments"][2]["name"], "Loyal families");
    let p: Value = json_body(
        client
            .post(format!("{url}/api/v1/predict"))
            .header("content-type", "application/json")
            .body(json!({"customers": [customer(30)]}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(p["model_version"], new.as_str());

    for (id, body, status, code) in [
        ("9", r#"{"name": "x"}"#, 404, "segment_not_found"),
        ("two", r#"{"name": "x"}"#, 404, "segment_not_found"),
        ("1", r#"{"name": "   "}"#, 422, "invalid_name"),
        ("1", r#"{"name": 5}"#, 400, "malformed_json"),
        ("1", r#"{"name": "a", "extra": 1}"#, 400, "malformed_json"),
    ] {
        let r = put(id, body).await.unwrap();
        assert_eq!(r.status(), status, "{id} {body}");
        let e: Value = json_body(r).await;
        assert_eq!(e["error"]["code"], code, "{id} {body}");
    }
    assert_eq!(
        store.current().unwrap().as_deref(),
        Some(new.as_str()),
        "no change"
    );
}

#[test]
fn the_cli_renames_and_diffs_stored_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let store = LocalStore::new(&store_path);
    let first = train_into(
        &store,
        DataSource::Synthetic {
            rows: 1200,
            seed: 4,
        },
        KSetting::Fixed(3),
    );
    let out = succeed(categorizer().args([
        "models",
        "--models",
        store_path.to_str().unwrap(),
        "rename",
        &first.version,
        "0",
        "Big spenders",
    ]));
    assert!(
        out.contains("\"Big spenders\"") && out.contains("(current)"),
        "{out}"
    );
    let renamed = store.current().unwrap().unwrap();
    let out = succeed(categorizer().args([
        "models",
        "--models",
        store_path.to_str().unwrap(),
        "diff",
        &first.version,
        &renamed,
        "--data",
        "synthetic:rows=700,seed=5",
    ]));
    // The same model under two names: everyone stays, the index is 1.
    assert!(out.contains("adjusted Rand index 1.0000"), "{out}");
    assert!(
        out.contains(" customers of synthetic:rows=700,seed=5"),
        "{out}"
    );
    assert!(out.contains("B 0 \"Big spenders\" = A 0"), "{out}");
    assert!(!out.contains("moved"), "{out}");
}

/// The gate across different k: label-based F1 means nothing there, so each model's own
/// segments of the same held-out customers are judged by their silhouette in one common,
/// standardised feature space. A worse k loses, a better k wins, the same k is judged by F1.
#[test]
fn the_gate_judges_a_different_k_by_silhouette_in_a_common_space() {
    let data = |seed| DataSource::Synthetic { rows: 1500, seed };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        LocalStore::new(dir.path().join("a")),
        LocalStore::new(dir.path().join("b")),
    );

    let two = train_into(&a, data(11), KSetting::Fixed(2));
    let six = train_into(&a, data(12), KSetting::Fixed(6));
    let p = &six.promotion;
    assert_eq!(p.criterion.as_deref(), Some("silhouette"), "{p:?}");
    let (ours, theirs) = (p.silhouette.unwrap(), p.previous_silhouette.unwrap());
    assert!(ours < theirs && !p.promoted, "k = 6 after k = 2: {p:?}");
    assert!(
        p.note.contains("kept as a candidate") && p.rule.contains("silhouette"),
        "{p:?}"
    );
    assert_eq!(a.current().unwrap().as_deref(), Some(two.version.as_str()));

    // The other way round, the better k wins.
    train_into(&b, data(12), KSetting::Fixed(6));
    let better = train_into(&b, data(11), KSetting::Fixed(2));
    let p = &better.promotion;
    assert_eq!(p.criterion.as_deref(), Some("silhouette"), "{p:?}");
    assert!(
        p.promoted && p.silhouette > p.previous_silhouette,
        "k = 2 after k = 6: {p:?}"
    );
    assert_eq!(
        b.current().unwrap().as_deref(),
        Some(better.version.as_str())
    );

    // The same k: weighted F1 of both on this run's labels, as before.
    let same = train_into(&a, data(13), KSetting::Fixed(2));
    let p = &same.promotion;
    assert_eq!(p.criterion.as_deref(), Some("weighted_f1"), "{p:?}");
    assert!(
        p.previous_weighted_f1.is_some() && p.silhouette.is_none(),
        "{p:?}"
    );
    assert_eq!(p.promoted, p.weighted_f1 > p.previous_weighted_f1.unwrap());
}
