//! `config/model.yaml`: which classifier, and the hyper-parameters of each, validated at load.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{check, load_layered};
use crate::error::Result;

pub const MODEL_YAML: &str = include_str!("../../../config/model.yaml");
const ENV_PREFIX: &str = "CATEGORIZER_MODEL__";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierChoice {
    Gbdt,
    Mlp,
    Best,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GbdtParams {
    pub rounds: usize,
    pub max_depth: usize,
    pub learning_rate: f64,
    pub l2: f64,
    pub min_child_weight: f64,
    pub subsample: f64,
    /// On the CPU, from more training rows than this, each round's trees grow on a seeded
    /// sample of about this many rows (0: every row).
    pub max_rows_per_tree: usize,
    pub max_bins: usize,
    /// Stop when the held-out rows' log loss has not fallen for this many rounds (0: never).
    pub early_stopping_rounds: usize,
    /// Share of the training rows held out for early stopping.
    pub validation_fraction: f64,
    /// Early stopping holds rows out only from this many rows up.
    pub early_stopping_min_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpParams {
    pub hidden: Vec<usize>,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    pub patience: usize,
    pub validation_fraction: f64,
    /// At most this many rows are held out: enough for a steady loss, and each check stays cheap.
    pub max_validation_rows: usize,
    /// Training rows between two checks of the held-out loss (at most one epoch).
    pub check_every_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub classifier: ClassifierChoice,
    pub gbdt: GbdtParams,
    pub mlp: MlpParams,
}

impl ModelConfig {
    pub fn load(file: Option<&Path>) -> Result<Self> {
        Self::load_with_env(file, std::env::vars())
    }

    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let config: ModelConfig = load_layered(MODEL_YAML, file, env, ENV_PREFIX)?;
        config.validate()?;
        Ok(config)
    }

    /// Every value a type cannot express; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let g = &self.gbdt;
        check(
            g.rounds >= 1 && g.rounds <= 100_000,
            "gbdt.rounds",
            "must be between 1 and 100000",
        )?;
        check(
            (1..=10).contains(&g.max_depth),
            "gbdt.max_depth",
            "must be between 1 and 10",
        )?;
        check(
            g.learning_rate > 0.0 && g.learning_rate <= 1.0,
            "gbdt.learning_rate",
            "must be in (0, 1]",
        )?;
        check(
            g.l2 >= 0.0 && g.l2.is_finite(),
            "gbdt.l2",
            "must be a finite number >= 0",
        )?;
        check(
            g.min_child_weight >= 0.0 && g.min_child_weight.is_finite(),
            "gbdt.min_child_weight",
            "must be a finite number >= 0",
        )?;
        check(
            g.subsample > 0.0 && g.subsample <= 1.0,
            "gbdt.subsample",
            "must be in (0, 1]",
        )?;
        check(
            (2..=256).contains(&g.max_bins),
            "gbdt.max_bins",
            "must be between 2 and 256",
        )?;
        check(
            g.validation_fraction > 0.0 && g.validation_fraction < 0.5,
            "gbdt.validation_fraction",
            "must be in (0, 0.5)",
        )?;
        let m = &self.mlp;
        check(
            !m.hidden.is_empty() && m.hidden.iter().all(|&h| (1..=4096).contains(&h)),
            "mlp.hidden",
            "must list 1 to 4096 units per layer, at least one layer",
        )?;
        check(
            m.learning_rate > 0.0 && m.learning_rate < 1.0,
            "mlp.learning_rate",
            "must be in (0, 1)",
        )?;
        check(m.batch_size >= 1, "mlp.batch_size", "must be at least 1")?;
        check(m.max_epochs >= 1, "mlp.max_epochs", "must be at least 1")?;
        check(m.patience >= 1, "mlp.patience", "must be at least 1")?;
        check(
            m.check_every_rows >= 1,
            "mlp.check_every_rows",
            "must be at least 1",
        )?;
        check(
            m.validation_fraction > 0.0 && m.validation_fraction < 0.5,
            "mlp.validation_fraction",
            "must be in (0, 0.5)",
        )?;
        check(
            m.max_validation_rows >= 1,
            "mlp.max_validation_rows",
            "must be at least 1",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let c = ModelConfig::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.classifier, ClassifierChoice::Best);
        assert_eq!((c.gbdt.rounds, c.gbdt.max_depth), (100, 4));
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (var, value, key) in [
            ("CATEGORIZER_MODEL__GBDT__MAX_DEPTH", "0", "gbdt.max_depth"),
            (
                "CATEGORIZER_MODEL__GBDT__LEARNING_RATE",
                "-1",
                "gbdt.learning_rate",
            ),
            ("CATEGORIZER_MODEL__GBDT__ROUNDS", "many", "rounds"),
            ("CATEGORIZER_MODEL__MLP__HIDDEN", "[]", "mlp.hidden"),
            ("CATEGORIZER_MODEL__CLASSIFIER", "forest", "classifier"),
        ] {
            let err = ModelConfig::load_with_env(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{var}={value}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.yaml");
        std::fs::write(&file, "gbdt:\n  depth: 3\n").unwrap();
        let err = ModelConfig::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("depth"), "{err}");
    }
}
