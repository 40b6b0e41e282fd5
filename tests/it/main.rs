//! Integration tests: one binary (every test binary links the whole stack, so one is cheaper).

mod backends;
mod bad_input;
mod browser;
mod cli;
mod hostile;
mod mongo;
mod onnx;
mod pipeline;
mod properties;
mod s3;
mod serve;

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
        let ok = crate::categorizer()
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
