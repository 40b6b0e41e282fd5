//! The HTTP service on a real socket, through a real HTTP client.

use categorizer::inference::SessionOptions;
use categorizer::registry::ServedModel;
use categorizer::serve::{AppState, router};
use categorizer::train::classifier::ClassifierChoice;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_row_predicts_the_others_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = start(&stored_model(dir.path(), 1), crate::support::settings()).await;
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
    let v: Value = json_body(r).await;
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
    let mut settings = crate::support::settings();
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
    // The unread body leaves the connection unusable: the client is told not to reuse it.
    assert_eq!(r.headers()["connection"], "close");
    let v: Value = json_body(r).await;
    assert_eq!(v["error"]["code"], "body_too_large");

    let many = json!({"customers": vec![customer(30); 11]}).to_string();
    let r = post(many).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = json_body(r).await;
    assert_eq!(v["error"]["code"], "too_many_customers");

    let r = post("{\"customers\": [".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = json_body(r).await;
    assert_eq!(v["error"]["code"], "malformed_json");

    let r = client.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = json_body(r).await;
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_switch_during_a_stream_of_requests_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (stored_model(dir.path(), 1), stored_model(dir.path(), 2));
    let (url, state) = start(&first, crate::support::settings()).await;
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
                let v: Value = json_body(r).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_answers_a_cluster_and_keeps_the_input_of_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = start(&stored_model(dir.path(), 1), crate::support::settings()).await;
    let client = reqwest::Client::new();
    let page = client.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for f in categorizer::schema::FEATURES {
        assert!(
            html.contains(&format!("name=\"{}\"", f.key)),
            "{} not in the form",
            f.key
        );
    }
    assert!(html.contains("<select id=\"Education\""));
    assert!(html.contains("/static/style.css"));

    let post = |body: String| {
        client
            .post(format!("{url}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let r = post(form_body("30")).await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Cluster <span id=\"segment\">"), "{html}");
    assert!(html.contains("<svg"), "the result has its picture");
    assert!(html.contains("this customer"));

    let r = post(form_body("-4")).await.unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"Age-error\""), "{html}");
    assert!(html.contains("-4 is outside [0, 130]"), "{html}");
    assert!(html.contains("value=\"-4\""), "the bad input is kept");
    assert!(
        html.contains("value=\"52000.0\""),
        "the other inputs are kept"
    );
    assert!(!html.contains("Cluster <span"));

    let css = client
        .get(format!("{url}/static/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let model = client.get(format!("{url}/model")).send().await.unwrap();
    assert_eq!(model.status(), 200);
    let html = model.text().await.unwrap();
    assert!(
        html.contains("<svg") && html.contains("Weighted F1"),
        "{html}"
    );
}

async fn job(client: &reqwest::Client, url: &str, id: &str) -> Value {
    let r = client
        .get(format!("{url}/api/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json_body(r).await
}

async fn wait_until_ended(client: &reqwest::Client, url: &str, id: &str) -> (Value, Vec<Value>) {
    let mut seen = Vec::new();
    for _ in 0..6000 {
        let v = job(client, url, id).await;
        if ["succeeded", "failed", "cancelled"].contains(&v["state"].as_str().unwrap()) {
            return (v, seen);
        }
        seen.push(v);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("job {id} did not end in 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_job_runs_publishes_and_its_promoted_model_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (url, _) = start_with(
        &stored_model(dir.path(), 1),
        crate::support::settings(),
        Some(training(&store, None)),
    )
    .await;
    let client = reqwest::Client::new();
    let before: Value = get_json(&client, format!("{url}/api/v1/model")).await;
    let r = client
        .post(format!("{url}/api/v1/train"))
        .header("content-type", "application/json")
        .body(r#"{"source": "synthetic:rows=1500,seed=9", "classifier": "mlp", "device": "cpu"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = json_body(r).await;
    assert_eq!(v["state"], "queued");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/jobs/{id}"));

    let (done, seen) = wait_until_ended(&client, &url, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let running: Vec<&Value> = seen.iter().filter(|v| v["state"] == "running").collect();
    assert!(!running.is_empty(), "the job was seen running");
    assert!(
        running
            .iter()
            .all(|v| !v["stage"].as_str().unwrap().is_empty())
    );
    let progress: Vec<f64> = running
        .iter()
        .map(|v| v["progress"].as_f64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(done["progress"], 1.0);

    // The job's store was empty: its model is promoted and served from then on.
    let result = &done["result"];
    assert_eq!(result["promoted"], true, "{done}");
    assert_eq!(result["serving"], true);
    assert!(result["weighted_f1"].as_f64().unwrap() > 0.5);
    let version = result["model_version"].as_str().unwrap();
    assert_ne!(before["version"].as_str().unwrap(), version);
    assert!(store.join(version).join("model.onnx").is_file());
    let after: Value = get_json(&client, format!("{url}/api/v1/model")).await;
    assert_eq!(after["version"], version);
    // The open route shows the training data as quantiles only; the stored manifest keeps
    // what the drift tests need.
    let stored: Value =
        serde_json::from_slice(&std::fs::read(store.join(version).join("manifest.json")).unwrap())
            .unwrap();
    let numeric = |m: &Value| -> Vec<Value> {
        m["data_profile"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "numeric")
            .cloned()
            .collect()
    };
    let (shown, kept) = (numeric(&after), numeric(&stored));
    assert!(!shown.is_empty() && shown.len() == kept.len());
    for (s, k) in shown.iter().zip(&kept) {
        assert_eq!(s["exact"], false, "{}", s["name"]);
        assert_eq!(s["values"].as_array().unwrap().len(), 21, "{}", s["name"]);
        assert!(k["values"].as_array().unwrap().len() > 21, "{}", k["name"]);
    }
    let r = client
        .post(format!("{url}/api/v1/predict"))
        .header("content-type", "application/json")
        .body(json!({"customers": [customer(30)]}).to_string())
        .send()
        .await
        .unwrap();
    let v: Value = json_body(r).await;
    assert_eq!(v["model_version"], version);

    let list: Value = get_json(&client, format!("{url}/api/v1/jobs")).await;
    assert_eq!(list["jobs"][0]["id"], id.as_str());
    let metrics = get_text(&client, format!("{url}/metrics")).await;
    assert!(
        metrics.contains(&format!("categorizer_model_info{{version=\"{version}\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "categorizer_http_requests_total{route=\"/api/v1/jobs/{id}\",status=\"2xx\"}"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_on_a_silent_mongodb_server_is_cancelled_not_failed() {
    // A server that accepts connections and never answers: the driver waits for its
    // handshake until the server selection timeout, and the job would then fail. Cancelled
    // while it waits, the job must end as cancelled, which it can only do by noticing the
    // cancellation during the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut setup = training(&store, None);
    setup.settings.jobs.mongodb_hosts = vec!["127.0.0.1".into()];
    let (url, _) = start_with(
        &stored_model(dir.path(), 1),
        crate::support::settings(),
        Some(setup),
    )
    .await;
    let client = reqwest::Client::new();
    // The connection string asks for a day of patience: the project's caps apply.
    let source = format!(
        "mongodb://127.0.0.1:{port}/shop?collection=customers&serverSelectionTimeoutMS=86400000&connectTimeoutMS=86400000"
    );
    let r = client
        .post(format!("{url}/api/v1/train"))
        .header("content-type", "application/json")
        .body(json!({"source": source, "device": "cpu"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = json_body(r).await["id"].as_str().unwrap().to_string();
    for _ in 0..500 {
        if job(&client, &url, &id).await["state"] == "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = client
        .delete(format!("{url}/api/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (done, _) = wait_until_ended(&client, &url, &id).await;
    assert_eq!(done["state"], "cancelled", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_jobs_can_be_cancelled_queued_or_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut setup = training(&store, None);
    setup.model_config.classifier = ClassifierChoice::Gbdt;
    setup.model_config.gbdt.rounds = 100_000;
    let (url, _) = start_with(
        &stored_model(dir.path(), 1),
        crate::support::settings(),
        Some(setup),
    )
    .await;
    let client = reqwest::Client::new();
    let submit = || async {
        let r = client.get(format!("{url}/train")).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let v: Value = json_body(r).await;
        v["id"].as_str().unwrap().to_string()
    };
    let (long, queued) = (submit().await, submit().await);

    // The second waits behind the first: cancelling it ends it at once.
    let r = client
        .delete(format!("{url}/api/v1/jobs/{queued}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = json_body(r).await;
    assert_eq!(v["state"], "cancelled", "{v}");
    assert!(v["started_at"].is_null());

    // The first is cancelled while it boosts.
    for _ in 0..3000 {
        let v = job(&client, &url, &long).await;
        if v["stage"] == "GBDT" && v["stage_done"].as_u64().unwrap() > 0 {
            break;
        }
        assert_eq!(
            v["state"].as_str().map(|s| s == "queued" || s == "running"),
            Some(true),
            "{v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = client
        .delete(format!("{url}/api/v1/jobs/{long}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (done, _) = wait_until_ended(&client, &url, &long).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(done["stage"], "GBDT");
    assert!(done["result"].is_null());
    // No model was stored (the jobs' records are, for the other replicas).
    assert!(
        !store.exists()
            || std::fs::read_dir(&store)
                .unwrap()
                .all(|e| e.unwrap().file_name() == "jobs"),
        "nothing was stored"
    );

    let r = client
        .delete(format!("{url}/api/v1/jobs/{long}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = client
        .get(format!("{url}/api/v1/jobs/12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = json_body(r).await;
    assert_eq!(v["error"]["code"], "job_not_found");
    let r = client
        .post(format!("{url}/api/v1/train"))
        .body(r#"{"source": "nowhere.xlsx"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = json_body(r).await;
    assert_eq!(v["error"]["field"], "source", "{v}");
    // A job reads only under jobs.data_dir: a file elsewhere is refused without a word of it,
    // and a password in a MongoDB source is never shown.
    let secret = dir.path().join("secret.csv");
    std::fs::write(&secret, "TOPSECRET-LINE\n1,2,3\n").unwrap();
    for source in [
        secret.display().to_string(),
        "synthetic:rows=3000000000".into(),
        "mongodb://admin:hunter2@db.example:27017/shop?collection=c".into(),
    ] {
        let r = client
            .post(format!("{url}/api/v1/train"))
            .body(json!({ "source": source }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{source}");
        let text = r.text().await.unwrap();
        assert!(text.contains("\"field\":\"source\""), "{text}");
        assert!(
            !text.contains("TOPSECRET") && !text.contains("hunter2"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_endpoints_refuse_other_hosts_without_the_token() {
    use axum::extract::connect_info::MockConnectInfo;
    let dir = tempfile::tempdir().unwrap();
    let model_dir = stored_model(dir.path(), 1);
    let settings = crate::support::settings();
    // A real socket on loopback, with the peer address the router sees set to another host
    // (no traffic leaves this machine).
    let serve_as = |token: Option<&str>, peer: [u8; 4]| {
        let model = ServedModel::open(&model_dir, &SessionOptions::default()).unwrap();
        let state = AppState::new(
            model,
            &settings,
            Some(training(&dir.path().join("s"), token)),
        );
        let app = router(state, &settings)
            .layer(MockConnectInfo(std::net::SocketAddr::from((peer, 40000))));
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}")
        }
    };
    let client = reqwest::Client::new();
    let remote = serve_as(None, [10, 1, 2, 3]).await;
    for (method, path) in [
        ("POST", "/api/v1/train"),
        ("GET", "/train"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/1"),
        ("DELETE", "/api/v1/jobs/1"),
    ] {
        let r = client
            .request(method.parse().unwrap(), format!("{remote}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
        let v: Value = json_body(r).await;
        assert_eq!(v["error"]["code"], "forbidden");
    }
    // Predictions stay open to everyone.
    let r = client
        .post(format!("{remote}/api/v1/predict"))
        .body(json!({"customers": [customer(30)]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let with_token = serve_as(Some("s3cret"), [10, 1, 2, 3]).await;
    let jobs = |auth: Option<&'static str>| {
        let mut rq = client.get(format!("{with_token}/api/v1/jobs"));
        if let Some(a) = auth {
            rq = rq.header("authorization", a);
        }
        rq.send()
    };
    assert_eq!(jobs(None).await.unwrap().status(), 401);
    assert_eq!(jobs(Some("Bearer wrong")).await.unwrap().status(), 401);
    assert_eq!(jobs(Some("s3cret")).await.unwrap().status(), 401);
    assert_eq!(jobs(Some("Bearer s3cret")).await.unwrap().status(), 200);

    let local = serve_as(None, [127, 0, 0, 1]).await;
    let r = client
        .get(format!("{local}/api/v1/jobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_endpoints_metrics_openapi_and_json_errors_from_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = start(&stored_model(dir.path(), 1), crate::support::settings()).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .post(format!("{url}/api/v1/predict"))
            .body(json!({"customers": [customer(30), customer(50)]}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let m = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = m.text().await.unwrap();
    assert!(
        m.contains("categorizer_http_requests_total{route=\"/api/v1/predict\",status=\"2xx\"} 3\n"),
        "{m}"
    );
    assert!(
        m.contains(
            "categorizer_http_request_duration_seconds_count{route=\"/api/v1/predict\"} 3\n"
        ),
        "{m}"
    );
    assert!(m.contains("categorizer_batch_rows_sum 6\n"), "{m}");
    assert!(m.contains("categorizer_batcher_queue_depth 0\n"), "{m}");

    let doc: Value = get_json(&client, format!("{url}/api/openapi.json")).await;
    assert_eq!(doc["openapi"], "3.1.0");
    // Every documented route is served: it answers, with anything but the router's 404 or
    // 405 (a job id that does not exist is the job's own 404, `job_not_found`).
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 12);
    assert!(paths.contains_key("/api/v1/monitoring"));
    // The rename's rule as the schema says it, the same as the server's.
    let name = &doc["components"]["schemas"]["RenameRequest"]["properties"]["name"];
    assert_eq!(
        name["pattern"],
        categorizer::registry::rename::NAME_PATTERN,
        "{name}"
    );
    assert_eq!(
        (name["minLength"].as_u64(), name["maxLength"].as_u64()),
        (Some(1), Some(80))
    );
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let url = format!("{url}{}", path.replace("{id}", "no-such-job"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = client.request(method.clone(), &url).send().await.unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            let code = serde_json::from_str::<Value>(&text)
                .ok()
                .map(|v| v["error"]["code"].clone());
            assert!(
                status != 405 && code != Some(Value::from("not_found")),
                "{method} {path}: {status} {text}"
            );
        }
    }

    // Compression for clients that ask for it.
    let r = client
        .get(format!("{url}/api/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");

    // axum's 405 comes out in the JSON error shape.
    let r = client
        .get(format!("{url}/api/v1/predict"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = json_body(r).await;
    assert_eq!(v["error"]["code"], "method_not_allowed");

    // Without training set up, the training endpoints say so (loopback passes the guard).
    let r = client
        .get(format!("{url}/api/v1/jobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = json_body(r).await;
    assert_eq!(v["error"]["code"], "training_disabled");
}
