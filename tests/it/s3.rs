//! The S3 model store against a real S3 API server (moto's, started by scripts/services.sh),
//! and the server following the store's current pointer.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use categorizer::config::S3Settings;
use categorizer::inference::SessionOptions;
use categorizer::registry::follow::{fetch_model, watch_store};
use categorizer::registry::store::s3::S3Store;
use categorizer::registry::store::{LocalStore, MANIFEST_FILE, MODEL_FILE, ModelStore};
use serde_json::json;

use crate::support::{customer, get_json, get_text, json_body, start_model, stored_model};

const BUCKET: &str = "categorizer-test";

fn s3_settings(endpoint: &str) -> S3Settings {
    let mut s = crate::support::settings().models.s3;
    s.endpoint = Some(endpoint.to_string());
    s.force_path_style = true;
    s
}

/// A store under a fresh prefix of the test bucket.
fn s3_store(endpoint: &str, name: &str) -> (String, S3Store) {
    let uri = format!("s3://{BUCKET}/{}", crate::support::unique(name));
    let store = S3Store::connect(&uri, &s3_settings(endpoint)).unwrap();
    store.ensure_bucket().unwrap();
    (uri, store)
}

/// Copies the model version in `version_dir` (a local store's) into `store`; returns its id.
fn push(store: &dyn ModelStore, version_dir: &Path) -> String {
    let version = version_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let model = std::fs::read(version_dir.join(MODEL_FILE)).unwrap();
    let manifest = std::fs::read(version_dir.join(MANIFEST_FILE)).unwrap();
    store
        .put(
            &version,
            &[(MODEL_FILE, &model), (MANIFEST_FILE, &manifest)],
        )
        .unwrap();
    version
}

/// Writes one object the way an upload cut off half way would leave it.
fn put_raw(endpoint: &str, key: String, bytes: &[u8]) {
    let endpoint = endpoint.to_string();
    let bytes = bytes.to_vec();
    categorizer::rt::block_on(async move {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn push_list_promote_and_roll_back_on_s3() {
    let Some(endpoint) = crate::support::service("CATEGORIZER_TEST_S3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (uri, store) = s3_store(&endpoint, "registry");
    assert_eq!(store.versions().unwrap(), Vec::<String>::new());
    assert_eq!(store.current().unwrap(), None);

    let a_dir = stored_model(dir.path(), 1);
    let b_dir = stored_model(dir.path(), 2);
    let a = push(&store, &a_dir);
    let b = push(&store, &b_dir);
    assert!(
        store.put(&a, &[(MODEL_FILE, b"x")]).is_err(),
        "versions are immutable"
    );
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(store.versions().unwrap(), both);
    assert_eq!(
        store.get(&b, MODEL_FILE).unwrap(),
        std::fs::read(b_dir.join(MODEL_FILE)).unwrap(),
        "the model comes back byte for byte"
    );

    // An upload that stopped before its marker is neither listed nor promotable.
    let prefix = uri.trim_start_matches(&format!("s3://{BUCKET}/"));
    put_raw(
        &endpoint,
        format!("{prefix}/versions/half-written/{MODEL_FILE}"),
        b"partial",
    );
    assert_eq!(store.versions().unwrap(), both);
    assert!(store.set_current("half-written").is_err());

    store.set_current(&a).unwrap();
    store.set_current(&b).unwrap();
    assert_eq!(store.current().unwrap().as_deref(), Some(b.as_str()));
    assert_eq!(store.rollback().unwrap(), a);
    assert_eq!(store.current().unwrap().as_deref(), Some(a.as_str()));
    assert!(
        store.rollback().is_err(),
        "nothing was current before the first"
    );

    // The command line on the same bucket.
    let cli = |args: &[&str]| {
        let mut c = crate::support::categorizer();
        c.args(args)
            .args(["--models", &uri])
            .env("CATEGORIZER__MODELS__S3__ENDPOINT", &endpoint)
            .env("CATEGORIZER__MODELS__S3__FORCE_PATH_STYLE", "true");
        crate::support::succeed(&mut c)
    };
    let listed = cli(&["models", "list"]);
    assert!(listed.contains(&format!("* {a}")), "{listed}");
    assert!(listed.contains(&format!("  {b}")), "{listed}");
    cli(&["models", "promote", &b]);
    assert_eq!(store.current().unwrap().as_deref(), Some(b.as_str()));
    let out = cli(&["models", "rollback"]);
    assert!(out.contains(&format!("to {a}")), "{out}");
    assert_eq!(store.current().unwrap().as_deref(), Some(a.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_switches_to_the_new_current_model_while_answering() {
    let Some(endpoint) = crate::support::service("CATEGORIZER_TEST_S3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = s3_store(&endpoint, "follow");
    let store: Arc<dyn ModelStore> = Arc::new(store);
    let (a, b) = {
        let (store, d) = (store.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || {
            let a = push(store.as_ref(), &stored_model(&d, 3));
            let b = push(store.as_ref(), &stored_model(&d, 4));
            store.set_current(&a).unwrap();
            (a, b)
        })
        .await
        .unwrap()
    };
    let options = SessionOptions::default();
    let cache = LocalStore::new(dir.path().join("cache"));
    let model = {
        let (s, a, c, o) = (store.clone(), a.clone(), cache.clone(), options.clone());
        tokio::task::spawn_blocking(move || fetch_model(s.as_ref(), &a, Some(&c), &o).unwrap())
            .await
            .unwrap()
    };
    assert_eq!(
        cache.current().unwrap().as_deref(),
        Some(a.as_str()),
        "the served model is cached"
    );
    let (url, state) = start_model(model, crate::support::settings(), None).await;
    watch_store(
        state,
        store.clone(),
        Some(cache.clone()),
        options,
        Duration::from_millis(100),
    );

    // Clients predicting all along; every answer is checked.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, seen, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            seen.clone(),
            url.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let body = json!({"customers": [customer(41)]}).to_string();
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(format!("{url}/api/v1/predict"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v = json_body(r).await;
                        if v["predictions"][0]["segment"].is_i64() {
                            ok.fetch_add(1, Ordering::Relaxed);
                            seen.lock()
                                .unwrap()
                                .insert(v["model_version"].as_str().unwrap().to_string());
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let (s, b) = (store.clone(), b.clone());
        tokio::task::spawn_blocking(move || s.set_current(&b).unwrap())
            .await
            .unwrap();
    }
    let waited = Instant::now();
    loop {
        let v = get_json(&http, format!("{url}/api/v1/model")).await;
        if v["version"] == b.as_str() {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the server never switched to {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a request failed during the switch"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&a) && seen.contains(&b),
        "answers came from {seen:?}"
    );
    assert_eq!(cache.current().unwrap().as_deref(), Some(b.as_str()));

    // A corrupt model made current is refused; the served one stays.
    {
        let (s, b) = (store.clone(), b.clone());
        tokio::task::spawn_blocking(move || {
            let manifest = s.get(&b, MANIFEST_FILE).unwrap();
            s.put(
                "corrupt-1",
                &[
                    (MODEL_FILE, b"not an onnx model"),
                    (MANIFEST_FILE, &manifest),
                ],
            )
            .unwrap();
            s.set_current("corrupt-1").unwrap();
        })
        .await
        .unwrap();
    }
    let waited = Instant::now();
    loop {
        let text = get_text(&http, format!("{url}/metrics")).await;
        if text.contains("categorizer_model_refusals_total 1") {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the corrupt model was never looked at"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get_json(&http, format!("{url}/api/v1/model")).await["version"],
        b.as_str()
    );
    let r = http
        .post(format!("{url}/api/v1/predict"))
        .header("content-type", "application/json")
        .body(json!({"customers": [customer(41)]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json_body(r).await["model_version"], b.as_str());
}

#[test]
fn with_s3_unreachable_the_server_serves_its_cached_model_or_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let serve = |cache: &Path, port: u16| {
        let mut c = crate::support::categorizer();
        c.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--models", "s3://categorizer-offline/models"])
            .env(
                "CATEGORIZER__MODELS__S3__ENDPOINT",
                format!("http://127.0.0.1:{closed}"),
            )
            .env("CATEGORIZER__MODELS__S3__FORCE_PATH_STYLE", "true")
            .env("CATEGORIZER__MODELS__S3__CACHE_DIR", cache)
            .env("CATEGORIZER__MODELS__S3__TIMEOUT_MS", "2000")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c
    };

    // No cache: a clear failure.
    let out = serve(&dir.path().join("empty-cache"), 1).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be reached") && err.contains("no model is cached"),
        "{err}"
    );

    // A cached model: served, and said so.
    let version_dir = stored_model(dir.path(), 5);
    let cache = LocalStore::new(dir.path().join("cache"));
    let version = push(&cache, &version_dir);
    cache.set_current(&version).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = serve(cache.dir(), port).spawn().unwrap();
    let ready = crate::support::wait_ready(&mut child, port);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(ready, "the server did not start on its cached model: {err}");
    assert!(
        err.contains(&format!("serving the cached model {version}")),
        "{err}"
    );
}

/// Trains on `source` with a sample of 1000 (so 2400 records stream), S3 at `endpoint`.
fn train_streamed(source: &str, endpoint: &str, out: &Path) -> categorizer::Result<()> {
    let mut settings = crate::support::settings();
    settings.training.sample_rows = 1000;
    settings.training.batch_rows = 512;
    settings.segmentation.n_init = 2;
    settings.models.s3 = s3_settings(endpoint);
    let source =
        categorizer::ingest::DataSource::parse(source)?.with_s3_settings(&settings.models.s3);
    let req = categorizer::train::TrainRequest::new(
        source,
        settings,
        crate::support::model_config(),
        out,
    )
    .with_device(categorizer::config::DeviceChoice::Cpu);
    categorizer::train::run(&req).map(|_| ())
}

#[test]
fn a_dataset_in_s3_trains_as_the_same_files_on_disk() {
    let Some(endpoint) = crate::support::service("CATEGORIZER_TEST_S3") else {
        return;
    };
    s3_store(&endpoint, "bucket");
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let df = categorizer::ingest::synthetic::generate_records(2400, 31);
    let prefix = crate::support::unique("customers");
    for (name, start, len) in [
        ("part-0.parquet", 0, 1000),
        ("part-1.csv", 1000, 700),
        ("part-2.parquet", 1700, 700),
    ] {
        let path = parts.join(name);
        categorizer::ingest::write_records(&mut df.slice(start, len), &path).unwrap();
        put_raw(
            &endpoint,
            format!("{prefix}/{name}"),
            &std::fs::read(&path).unwrap(),
        );
    }
    put_raw(&endpoint, format!("{prefix}/README.md"), b"not data");

    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    train_streamed(parts.to_str().unwrap(), &endpoint, &local).unwrap();
    train_streamed(&format!("s3://{BUCKET}/{prefix}/"), &endpoint, &remote).unwrap();
    assert!(
        std::fs::read(local.join("model.json")).unwrap()
            == std::fs::read(remote.join("model.json")).unwrap(),
        "the same model from S3 as from the same files on disk"
    );
    let read = |p: &Path| {
        use polars::prelude::*;
        ParquetReader::new(std::fs::File::open(p).unwrap())
            .finish()
            .unwrap()
    };
    assert!(
        read(&local.join("assignments.parquet")).equals(&read(&remote.join("assignments.parquet")))
    );

    // One object by its key.
    let one =
        categorizer::ingest::DataSource::parse(&format!("s3://{BUCKET}/{prefix}/part-0.parquet"))
            .unwrap()
            .with_s3_settings(&s3_settings(&endpoint));
    let mut stream = categorizer::ingest::stream::RecordStream::open(&one, 300).unwrap();
    while stream.next_batch().unwrap().is_some() {}
    assert_eq!(stream.rows(), 1000);

    // Bad sources: each error names the object, the prefix or the endpoint.
    put_raw(
        &endpoint,
        format!("{prefix}-bad/part-0.parquet"),
        &std::fs::read(parts.join("part-0.parquet")).unwrap(),
    );
    put_raw(
        &endpoint,
        format!("{prefix}-bad/part-1.parquet"),
        b"PAR1 not parquet PAR1",
    );
    let cases = [
        (
            format!("s3://{BUCKET}/{prefix}-bad/"),
            endpoint.clone(),
            format!("s3://{BUCKET}/{prefix}-bad/part-1.parquet"),
        ),
        (
            format!("s3://{BUCKET}/{prefix}-none/"),
            endpoint.clone(),
            format!("s3://{BUCKET}/{prefix}-none/: no Parquet or CSV objects"),
        ),
        (
            format!("s3://{BUCKET}/{prefix}/"),
            "http://127.0.0.1:9".to_string(),
            "http://127.0.0.1:9".to_string(),
        ),
    ];
    for (i, (source, at, says)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("bad{i}"));
        let err = train_streamed(source, at, &out).unwrap_err().to_string();
        assert!(err.contains(says.as_str()), "{source}: {err}");
        assert!(!out.join("model.json").exists() && !out.join("assignments.parquet").exists());
    }
}
