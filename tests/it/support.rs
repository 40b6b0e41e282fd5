//! What the integration tests share: the settings and classifier settings for tests, the real
//! data and the test servers when present, one trained model per seed for the whole binary,
//! a service on a loopback port, and the request and response helpers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use categorizer::config::{DeviceChoice, Settings};
use categorizer::inference::SessionOptions;
use categorizer::ingest::DataSource;
use categorizer::registry::store::LocalStore;
use categorizer::registry::{self, ServedModel};
use categorizer::serve::jobs::TrainingSetup;
use categorizer::serve::{AppState, router};
use categorizer::train::classifier::ClassifierChoice;
use categorizer::train::{TrainOutcome, TrainRequest};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The real marketing-campaign data, when this checkout has `../shared/data` beside it.
pub fn real_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/marketing_campaign.csv");
    p.exists().then_some(p)
}

/// The address of a real test server that `scripts/services.sh start` exported in `var`.
/// None (the test skips) when it is not set, unless CATEGORIZER_REQUIRE_SERVICES_TEST=1 (CI
/// sets it), which makes a missing server a failure.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("CATEGORIZER_REQUIRE_SERVICES_TEST").as_deref() != Ok("1"),
                "CATEGORIZER_REQUIRE_SERVICES_TEST=1 but {var} is not set: run the tests through \
                 scripts/test.sh, which starts the MongoDB and S3 servers"
            );
            eprintln!("skipped: {var} is not set (scripts/test.sh starts the servers)");
            None
        }
    }
}

/// A name no other test run uses (collections, bucket prefixes).
pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Settings with the built-in defaults, for tests (environment ignored).
pub fn settings() -> categorizer::config::Settings {
    categorizer::config::Settings::load_with_env(None, Vec::new()).unwrap()
}

/// Classifier settings for tests: the built-in ones, lighter so suites stay quick.
pub fn model_config() -> categorizer::train::classifier::ModelConfig {
    let mut c =
        categorizer::train::classifier::ModelConfig::load_with_env(None, Vec::new()).unwrap();
    c.gbdt.rounds = 20;
    c.mlp.max_epochs = 40;
    c
}

/// A few rounds and epochs only: for the software Vulkan driver, where every kernel is slow.
pub fn tiny_model_config() -> categorizer::train::classifier::ModelConfig {
    let mut c = model_config();
    c.gbdt.rounds = 3;
    c.gbdt.max_depth = 2;
    c.mlp.max_epochs = 3;
    c
}

/// Runs `cmd`, asserting it succeeded (its stderr is the failure message); returns its stdout.
pub fn succeed(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn categorizer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_categorizer"));
    c.env("RUST_LOG", "warn");
    c
}

/// Polls `categorizer healthcheck` until the server answers or exits.
pub fn wait_ready(child: &mut std::process::Child, port: u16) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let ok = categorizer()
            .args([
                "healthcheck",
                "--url",
                &format!("http://127.0.0.1:{port}/readyz"),
            ])
            .output()
            .unwrap()
            .status
            .success();
        if ok {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Trains a small model with `seed` and stores it; returns the model's directory. Each seed
/// trains once for the whole test binary (training is the slow part; twenty tests store
/// one of a handful of models), and every call publishes into its own store under `dir`.
pub fn stored_model(dir: &Path, seed: u64) -> PathBuf {
    let outcome = trained_outcome(seed);
    let store = LocalStore::new(dir.join(format!("models{seed}")));
    let p = registry::publish(&outcome, &store, &SessionOptions::default()).unwrap();
    store.version_dir(&p.version)
}

/// The small model of `seed`, trained on first use; a second caller waits for the first.
fn trained_outcome(seed: u64) -> Arc<TrainOutcome> {
    static BY_SEED: Mutex<BTreeMap<u64, Arc<OnceLock<Arc<TrainOutcome>>>>> =
        Mutex::new(BTreeMap::new());
    let cell = BY_SEED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(seed)
        .or_default()
        .clone();
    cell.get_or_init(|| {
        let mut config = model_config();
        config.classifier = ClassifierChoice::Mlp;
        let mut settings = settings();
        settings.segmentation.n_init = 2;
        settings.split.seed = seed;
        let source = DataSource::Synthetic { rows: 1200, seed };
        // Publishing needs only the outcome: the run directory goes with this scope.
        let run_dir = tempfile::tempdir().unwrap();
        let req = TrainRequest::new(source, settings, config, run_dir.path())
            .with_device(DeviceChoice::Cpu);
        let trained =
            categorizer::workflow::train_and_publish(req, None, &SessionOptions::default());
        Arc::new(trained.unwrap().outcome)
    })
    .clone()
}

/// Starts the service on a free loopback port; returns its base URL and state.
pub async fn start(model_dir: &Path, settings: Settings) -> (String, AppState) {
    start_with(model_dir, settings, None).await
}

/// Starts the service with training jobs publishing to `training`'s store.
pub async fn start_with(
    model_dir: &Path,
    settings: Settings,
    training: Option<TrainingSetup>,
) -> (String, AppState) {
    let model = ServedModel::open(model_dir, &SessionOptions::default()).unwrap();
    start_model(model, settings, training).await
}

/// Starts the service with `model` on a free loopback port.
pub async fn start_model(
    model: ServedModel,
    settings: Settings,
    training: Option<TrainingSetup>,
) -> (String, AppState) {
    let state = AppState::new(model, &settings, training);
    let app = router(state.clone(), &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (format!("http://{addr}"), state)
}

/// What training jobs need: small, quick runs that publish to `store`.
pub fn training(store: &Path, token: Option<&str>) -> TrainingSetup {
    let mut settings = settings();
    settings.segmentation.n_init = 2;
    settings.data.source = "synthetic:rows=1500,seed=7".into();
    settings.device = DeviceChoice::Cpu;
    let mut model_config = model_config();
    model_config.classifier = ClassifierChoice::Mlp;
    TrainingSetup {
        settings,
        model_config,
        store: std::sync::Arc::new(LocalStore::new(store)),
        options: SessionOptions::default(),
        admin_token: token.map(str::to_string),
        validation: Default::default(),
    }
}

pub fn customer(age: i64) -> Value {
    json!({
        "Age": age, "Education": 2, "Marital_Status": 1, "Parental_Status": 1, "Children": 1,
        "Income": 52000.0, "Total_Spending": 600.0, "Days_as_Customer": 500, "Recency": 30,
        "Wines": 300.0, "Fruits": 20.0, "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0,
        "Gold": 80.0, "Web": 4, "Catalog": 2, "Store": 6, "Discount_Purchases": 2,
        "Total_Promo": 0, "NumWebVisitsMonth": 5
    })
}

/// A response's JSON body.
pub async fn json_body(r: reqwest::Response) -> Value {
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

/// `GET url` → its JSON body.
pub async fn get_json(client: &reqwest::Client, url: String) -> Value {
    json_body(client.get(url).send().await.unwrap()).await
}

/// The body of a GET as text (the Prometheus page).
pub async fn get_text(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The 21 form keys as a browser posts them.
pub fn form_body(age: &str) -> String {
    let c = customer(30);
    c.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = if k == "Age" {
                age.to_string()
            } else {
                v.to_string()
            };
            format!("{k}={}", v.replace('-', "%2D"))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A CSV text (tab- or comma-separated, by its header) with every column read as text.
pub fn csv_as_text(bytes: &[u8]) -> polars::prelude::DataFrame {
    use polars::prelude::*;
    let header = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let separator = if header.contains(&b'\t') { b'\t' } else { b',' };
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_parse_options(CsvParseOptions::default().with_separator(separator))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes.to_vec()))
        .finish()
        .unwrap()
}

/// An Arrow IPC file, every record batch.
pub fn arrow_file(path: &Path) -> polars::prelude::DataFrame {
    use polars::prelude::DataFrame;
    let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let metadata = polars_arrow::io::ipc::read::read_file_metadata(&mut file).unwrap();
    let mut frames = polars_arrow::io::ipc::read::FileReader::new(file, metadata, None, None)
        .map(|b| DataFrame::from(b.unwrap()));
    let mut df = frames.next().unwrap();
    for f in frames {
        df.vstack_mut_owned(f).unwrap();
    }
    df
}
