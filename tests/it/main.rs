//! Integration tests: one binary (every test binary links the whole stack, so one is cheaper).

mod backends;
mod bad_input;
mod browser;
mod cli;
mod onnx;
mod pipeline;
mod serve;

use std::path::PathBuf;
use std::process::Command;

/// The real marketing-campaign data, when this checkout has `../shared/data` beside it.
pub fn real_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/marketing_campaign.csv");
    p.exists().then_some(p)
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
