//! Integration tests: one binary (every test binary links the whole stack, so one is cheaper).

mod backends;
mod bad_input;
mod cli;
mod pipeline;

use std::path::PathBuf;

/// The real marketing-campaign data, when this checkout has `../shared/data` beside it.
pub fn real_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/marketing_campaign.csv");
    p.exists().then_some(p)
}

/// Settings with the built-in defaults, for tests (environment ignored).
pub fn settings() -> categorizer::config::Settings {
    categorizer::config::Settings::load_with_env(None, Vec::new()).unwrap()
}
