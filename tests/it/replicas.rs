//! Many replicas, one store: promotions from several processes at once are all kept (the
//! compare-and-swap of `HISTORY`), on a local store and on a real S3 API server (moto, which
//! honours `If-Match` / `If-None-Match` on PutObject: checked when this was written).

use categorizer::registry::store::s3::S3Store;
use categorizer::registry::store::{LocalStore, MODEL_FILE, ModelStore};

/// Two processes at a time, each promoting its own versions one `categorizer models
/// promote` after another: every promotion ends in `HISTORY`, and the current version is
/// its last line.
fn promote_from_two_processes(store: &dyn ModelStore, spec: &str, env: &[(&str, String)]) {
    let names: Vec<String> = (0..2)
        .flat_map(|p| (0..12).map(move |i| format!("20261203T0000{i:02}Z-p{p}000000")))
        .collect();
    for v in &names {
        store.put(v, &[(MODEL_FILE, b"m")]).unwrap();
    }
    std::thread::scope(|s| {
        for p in 0..2 {
            let names = &names;
            s.spawn(move || {
                for v in names.iter().filter(|v| v.ends_with(&format!("p{p}000000"))) {
                    let mut c = crate::support::categorizer();
                    c.args(["models", "--models", spec, "promote", v]);
                    for (k, val) in env {
                        c.env(k, val);
                    }
                    crate::support::succeed(&mut c);
                }
            });
        }
    });
    let history = store.history().unwrap();
    let mut sorted = history.clone();
    sorted.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(sorted, want, "a promotion was lost: {history:?}");
    assert_eq!(store.current().unwrap().as_ref(), history.last());
}

#[test]
fn promotions_from_two_processes_at_once_are_never_lost_on_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("models");
    let store = LocalStore::new(&spec);
    promote_from_two_processes(&store, &spec.display().to_string(), &[]);
}

#[test]
fn promotions_from_two_processes_at_once_are_never_lost_on_s3() {
    let Some(endpoint) = crate::support::service("CATEGORIZER_TEST_S3") else {
        return;
    };
    let uri = format!("s3://categorizer-test/{}", crate::support::unique("cas"));
    let mut settings = crate::support::settings().models.s3;
    settings.endpoint = Some(endpoint.clone());
    settings.force_path_style = true;
    let store = S3Store::connect(&uri, &settings).unwrap();
    store.ensure_bucket().unwrap();
    promote_from_two_processes(
        &store,
        &uri,
        &[
            ("CATEGORIZER__MODELS__S3__ENDPOINT", endpoint),
            ("CATEGORIZER__MODELS__S3__FORCE_PATH_STYLE", "true".into()),
        ],
    );
}

/// Two replicas on one store: a job started on one is seen, to its end, through the other;
/// job ids differ between replicas; a job cancelled through the other replica stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_started_on_one_replica_is_seen_and_cancelled_through_another() {
    use crate::support::{json_body, start_with, stored_model, training};
    use serde_json::Value;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let model = stored_model(dir.path(), 1);
    let settings = crate::support::settings();
    let (a, _) = start_with(&model, settings.clone(), Some(training(&store, None))).await;
    let (b, _) = start_with(&model, settings, Some(training(&store, None))).await;
    let client = reqwest::Client::new();
    let start = |url: String, body: &'static str| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{url}/api/v1/train"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let v: Value = json_body(r).await;
            v["id"].as_str().unwrap().to_string()
        }
    };
    let get = |url: String, id: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("{url}/api/v1/jobs/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{id} through {url}");
            {
                let v: Value = json_body(r).await;
                v
            }
        }
    };
    // A long job on B, cancelled through A at once: B reads the request within a second.
    let on_b = start(
        b.clone(),
        r#"{"source": "synthetic:rows=400000,seed=9", "device": "cpu"}"#,
    )
    .await;
    let r = client
        .delete(format!("{a}/api/v1/jobs/{on_b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = json_body(r).await;
    assert_eq!(v["cancel_requested"], true, "{v}");
    let mut polls = 0;
    let end = loop {
        let v = get(b.clone(), on_b.clone()).await;
        if v["state"] != "queued" && v["state"] != "running" {
            break v;
        }
        polls += 1;
        assert!(polls < 1200, "job {on_b} was not cancelled: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(end["state"], "cancelled", "{end}");
    assert_eq!(end["cancel_requested"], true, "{end}");
    assert_eq!(
        end,
        get(a.clone(), on_b.clone()).await,
        "both replicas tell the same"
    );

    // A job on A, seen through B to its end.
    let on_a = start(
        a.clone(),
        r#"{"source": "synthetic:rows=1500,seed=9", "device": "cpu"}"#,
    )
    .await;
    assert_ne!(on_a, on_b, "job ids are unique across replicas");
    let mut seen = Vec::new();
    let done = loop {
        let v = get(b.clone(), on_a.clone()).await;
        let state = v["state"].as_str().unwrap().to_string();
        seen.push(state.clone());
        if ["succeeded", "failed", "cancelled"].contains(&state.as_str()) {
            break v;
        }
        assert!(seen.len() < 1200, "job {on_a} did not end: {seen:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["result"]["model_version"].is_string(), "{done}");
    assert_eq!(
        done,
        get(a.clone(), on_a.clone()).await,
        "both replicas tell the same"
    );
    // An id no replica handed out.
    let r = client
        .get(format!("{a}/api/v1/jobs/00000000-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
