//! Typed settings, layered: the built-in `config/default.yaml` (embedded) → an optional file →
//! environment variables `CATEGORIZER__SECTION__KEY`. Every layer overrides key by key; the
//! result is deserialised once and validated, so a bad value is an error naming its key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::dates::ReferenceDate;
use crate::error::{Error, Result};

pub const DEFAULT_YAML: &str = include_str!("../config/default.yaml");

/// The most segments a model may have (`segmentation.k`): the serving counters keep this many
/// segment ids apart, and monitoring refuses a bucket with more.
pub const MAX_SEGMENTS: usize = 64;
const ENV_PREFIX: &str = "CATEGORIZER__";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data: DataSettings,
    pub features: FeatureSettings,
    pub split: SplitSettings,
    pub segmentation: SegmentationSettings,
    pub device: DeviceChoice,
    pub models: ModelStoreSettings,
    pub inference: InferenceSettings,
    pub server: ServerSettings,
    pub validation: ValidationSettings,
    pub jobs: JobsSettings,
    pub training: TrainingSettings,
    pub monitoring: MonitoringSettings,
}

/// Live monitoring: each replica profiles the customers it scores in time buckets and
/// measures their drift against the served model's training reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    pub enabled: bool,
    /// One bucket per this span; buckets are merged into windows and written to the store.
    pub bucket_ms: u64,
    /// Buckets kept in memory this long.
    pub retention_ms: u64,
    /// Drift is measured on the buckets of this last span.
    pub window_ms: u64,
    /// The report (and its /metrics gauges) is recomputed this often; also on demand.
    pub interval_ms: u64,
    /// A window with fewer customers says "not enough data".
    pub min_rows: u64,
    /// The atypical share drifts when it is at least this many times the expected 1 % (and
    /// not by chance).
    pub atypical_ratio: f64,
    /// Closed buckets go to the model store under `monitoring/<version>/<replica>/`.
    pub write_to_store: bool,
    /// Drift in this many consecutive reports starts one training job (off by default).
    pub retrain_on_drift: bool,
    pub retrain_source: Option<String>,
    pub retrain_after: u32,
}

/// How training reads a source too large to hold: above `sample_rows` records it streams the
/// source twice (profile, features and a seeded sample; then every customer's segment) and
/// fits on the sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSettings {
    /// Customers the model is fitted on when the source has more records than this.
    pub sample_rows: usize,
    /// Records per batch when training streams (memory per batch, not per source).
    pub batch_rows: usize,
}

/// What a training job started over HTTP may read (the CLI may read anything it is given).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    /// Files only under this directory (relative to the working directory), checked after
    /// links are resolved.
    pub data_dir: PathBuf,
    /// MongoDB only on these hosts (`host` or `host:port`); empty: none.
    pub mongodb_hosts: Vec<String>,
    /// Largest `synthetic:rows=N`.
    pub max_synthetic_rows: usize,
    /// `s3://` sources only in these buckets; empty: none.
    #[serde(default)]
    pub s3_buckets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest request body in bytes; larger is 413.
    pub max_body_bytes: usize,
    /// Most customers in one JSON prediction request; more is 413.
    pub max_customers: usize,
    /// A request not answered within this many milliseconds gets 503.
    pub request_timeout_ms: u64,
    /// A connection that moves no byte either way for this long is closed: a half-sent request
    /// head, an idle keep-alive. Longer than `request_timeout_ms`.
    pub idle_timeout_ms: u64,
    /// A request head must be complete within this many milliseconds of its first byte (a
    /// client trickling it a byte at a time is closed).
    pub header_read_timeout_ms: u64,
    /// Open connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// On SIGTERM / Ctrl-C, requests are still served this long while `/readyz` answers 503
    /// (the balancer notices and stops sending); 0: stop accepting at once.
    pub drain_ms: u64,
    /// Then requests in flight get this long to finish before the process exits anyway. The
    /// drain and the grace together fit the 10 s a container runtime waits before it kills.
    pub shutdown_grace_ms: u64,
    /// A proxy or balancer is in front: every request arrives from it (often on loopback), so
    /// without CATEGORIZER_ADMIN_TOKEN the training routes are closed to everyone instead of
    /// open to loopback clients.
    pub behind_proxy: bool,
    pub batcher: BatcherSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatcherSettings {
    /// false: every request runs alone through the session (for comparison).
    pub enabled: bool,
    /// Most rows in one ONNX Runtime run.
    pub max_batch_rows: usize,
    /// Under load, how long a forming batch may wait for more rows (microseconds). A lone
    /// request never waits.
    pub max_delay_us: u64,
    /// Requests waiting for the session; beyond this the server answers 503 with Retry-After.
    pub queue_capacity: usize,
    /// A batch of at least this many rows runs split across one ONNX Runtime session per
    /// core (at most 4), the parts at once (0: every batch in one session).
    pub split_rows: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelStoreSettings {
    /// The local model store: one directory per model version plus a `CURRENT` pointer.
    pub dir: std::path::PathBuf,
    /// The S3 store, used instead of `dir` when `s3.uri` is set.
    pub s3: S3Settings,
    /// How often the server reads the store's current pointer and switches to a new current
    /// model (milliseconds; 0: never).
    pub poll_interval_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `s3://bucket/prefix`; null: the local store `models.dir`.
    pub uri: Option<String>,
    /// An S3-compatible endpoint (`http://host:port`); null: AWS for `region`.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need.
    pub force_path_style: bool,
    pub connect_timeout_ms: u64,
    /// Longest one call (with its retry) may take.
    pub timeout_ms: u64,
    /// The server keeps the model it serves here, and serves it from here when S3 cannot be
    /// reached at start.
    pub cache_dir: std::path::PathBuf,
}

/// What training does when the data has drifted from the current model's training data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    /// Report it; promotion is decided as usual.
    Warn,
    /// Report it, and do not promote the new model.
    Block,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSettings {
    /// A column whose share of missing values is above this fails the schema check.
    pub max_missing_share: f64,
    /// A column whose share of out-of-range values or unknown categories is above this fails.
    pub max_invalid_share: f64,
    /// References with at most this many rows are tested statistically (KS, chi-square,
    /// Z); larger ones by distance (Wasserstein, Jensen–Shannon).
    pub small_reference_rows: usize,
    /// Numeric columns with at most this many distinct reference values count as categorical.
    pub max_categorical_unique: usize,
    /// A statistical test's p-value below this is drift.
    pub p_value: f64,
    /// A normalised Wasserstein distance at or above this is drift.
    pub wasserstein: f64,
    /// A Jensen–Shannon distance at or above this is drift.
    pub jensen_shannon: f64,
    /// The data set has drifted when at least this share of its columns drifted.
    pub dataset_drift_share: f64,
    pub on_drift: DriftAction,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceSettings {
    /// The ONNX Runtime shared library; empty: CATEGORIZER_ONNXRUNTIME, then known places.
    pub onnxruntime: Option<std::path::PathBuf>,
    /// Threads inside one ONNX Runtime run.
    pub intra_threads: usize,
    /// Rows per chunk when `categorizer predict` streams a file.
    pub chunk_rows: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSettings {
    pub reference_date: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSettings {
    pub test_fraction: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentationSettings {
    /// A number of segments, or `auto`: the sweep over `k_range` chooses it.
    pub k: KSetting,
    /// The smallest and largest k the `auto` sweep tries.
    #[serde(default = "default_k_range")]
    pub k_range: [usize; 2],
    /// Rows of the seeded sample the `auto` sweep fits and scores every k on.
    #[serde(default = "default_sweep_sample")]
    pub sweep_sample: usize,
    pub pca_components: usize,
    pub n_init: usize,
    pub max_iter: usize,
    pub tolerance: f64,
    pub silhouette_sample: usize,
}

fn default_k_range() -> [usize; 2] {
    [2, 8]
}

fn default_sweep_sample() -> usize {
    4_000
}

/// `segmentation.k`: a fixed number of segments, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KSetting {
    Fixed(usize),
    Word(Auto),
}

/// The word `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auto {
    Auto,
}

impl SegmentationSettings {
    /// The fixed k, or None for `auto`.
    pub fn fixed_k(&self) -> Option<usize> {
        match self.k {
            KSetting::Fixed(k) => Some(k),
            KSetting::Word(Auto::Auto) => None,
        }
    }

    /// The largest k training may fit.
    pub fn max_k(&self) -> usize {
        self.fixed_k().unwrap_or(self.k_range[1])
    }
}

/// Which compute device numeric training runs on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A GPU through wgpu when one is found, else the CPU backend.
    Auto,
    /// wgpu (Vulkan); any adapter, including a software one.
    Gpu,
    /// burn's CPU backend.
    Cpu,
}

impl Settings {
    /// Built-in defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        Self::load_with_env(file, std::env::vars())
    }

    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let settings: Settings = load_layered(DEFAULT_YAML, file, env, ENV_PREFIX)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value a type cannot express; the error names the key.
    pub fn validate(&self) -> Result<()> {
        self.validate_training()?;
        self.validate_segmentation()?;
        self.validate_inference()?;
        self.validate_server()?;
        self.validate_model_store()?;
        self.validate_monitoring()?;
        self.validate_validation()?;
        ReferenceDate::parse(&self.features.reference_date)
            .map_err(|m| Error::config("features.reference_date", m))?;
        Ok(())
    }

    /// The training sample, its batches and the test split.
    fn validate_training(&self) -> Result<()> {
        check(
            self.training.sample_rows >= 1000,
            "training.sample_rows",
            "must be at least 1000",
        )?;
        check(
            (1..=(1 << 24)).contains(&self.training.batch_rows),
            "training.batch_rows",
            "must be between 1 and 16777216",
        )?;
        check(
            self.split.test_fraction > 0.0 && self.split.test_fraction < 1.0,
            "split.test_fraction",
            "must be between 0 and 1 (exclusive)",
        )?;
        Ok(())
    }

    /// The segmentation: k, its sweep, PCA and k-means.
    fn validate_segmentation(&self) -> Result<()> {
        let s = &self.segmentation;
        check(
            s.fixed_k().is_none_or(|k| (2..=MAX_SEGMENTS).contains(&k)),
            "segmentation.k",
            "must be `auto` or between 2 and 64",
        )?;
        check(
            s.sweep_sample >= 100,
            "segmentation.sweep_sample",
            "must be at least 100",
        )?;
        check(
            2 <= s.k_range[0] && s.k_range[0] <= s.k_range[1] && s.k_range[1] <= 20,
            "segmentation.k_range",
            "must be [low, high] with 2 <= low <= high <= 20",
        )?;
        check(
            (1..=crate::schema::N_FEATURES).contains(&s.pca_components),
            "segmentation.pca_components",
            "must be between 1 and 21",
        )?;
        check(s.n_init >= 1, "segmentation.n_init", "must be at least 1")?;
        check(
            s.max_iter >= 1,
            "segmentation.max_iter",
            "must be at least 1",
        )?;
        check(
            s.tolerance >= 0.0 && s.tolerance.is_finite(),
            "segmentation.tolerance",
            "must be a finite number >= 0",
        )?;
        check(
            s.silhouette_sample >= 2,
            "segmentation.silhouette_sample",
            "must be at least 2",
        )?;
        Ok(())
    }

    /// Bulk scoring: threads and chunk size.
    fn validate_inference(&self) -> Result<()> {
        check(
            (1..=256).contains(&self.inference.intra_threads),
            "inference.intra_threads",
            "must be between 1 and 256",
        )?;
        check(
            (1..=10_000_000).contains(&self.inference.chunk_rows),
            "inference.chunk_rows",
            "must be between 1 and 10000000",
        )?;
        Ok(())
    }

    /// The server's limits, timeouts and batcher.
    fn validate_server(&self) -> Result<()> {
        let sv = &self.server;
        check(
            sv.max_body_bytes >= 1024,
            "server.max_body_bytes",
            "must be at least 1024",
        )?;
        check(
            sv.max_customers >= 1,
            "server.max_customers",
            "must be at least 1",
        )?;
        check(
            sv.request_timeout_ms >= 1,
            "server.request_timeout_ms",
            "must be at least 1",
        )?;
        check(
            sv.idle_timeout_ms > sv.request_timeout_ms,
            "server.idle_timeout_ms",
            "must be longer than server.request_timeout_ms",
        )?;
        check(
            sv.header_read_timeout_ms >= 1,
            "server.header_read_timeout_ms",
            "must be at least 1",
        )?;
        check(
            sv.max_connections >= 1,
            "server.max_connections",
            "must be at least 1",
        )?;
        check(
            sv.batcher.max_batch_rows >= 1,
            "server.batcher.max_batch_rows",
            "must be at least 1",
        )?;
        check(
            sv.batcher.queue_capacity >= 1,
            "server.batcher.queue_capacity",
            "must be at least 1",
        )?;
        Ok(())
    }

    /// The model store: S3 timeouts and address.
    fn validate_model_store(&self) -> Result<()> {
        let m = &self.models;
        check(
            m.s3.connect_timeout_ms >= 1 && m.s3.timeout_ms >= 1,
            "models.s3.timeout_ms",
            "timeouts must be at least 1 ms",
        )?;
        if let Some(uri) = m.s3.uri.as_deref().filter(|u| !u.is_empty()) {
            parse_s3_uri(uri).map_err(|e| Error::config("models.s3.uri", e.to_string()))?;
        }
        Ok(())
    }

    /// Monitoring's buckets, window, retention and retraining.
    fn validate_monitoring(&self) -> Result<()> {
        let mo = &self.monitoring;
        check(
            mo.bucket_ms >= 100 && mo.bucket_ms <= 86_400_000,
            "monitoring.bucket_ms",
            "must be between 100 and 86400000",
        )?;
        check(
            mo.window_ms >= mo.bucket_ms && mo.retention_ms >= mo.window_ms,
            "monitoring.window_ms",
            "must be at least monitoring.bucket_ms and at most monitoring.retention_ms",
        )?;
        check(
            mo.retention_ms / mo.bucket_ms <= 10_000,
            "monitoring.retention_ms",
            "keeps at most 10000 buckets (retention_ms / bucket_ms)",
        )?;
        check(
            mo.interval_ms >= 100,
            "monitoring.interval_ms",
            "must be at least 100",
        )?;
        check(
            mo.atypical_ratio.is_finite() && mo.atypical_ratio >= 1.0,
            "monitoring.atypical_ratio",
            "must be a finite number >= 1",
        )?;
        check(
            !mo.retrain_on_drift || mo.retrain_source.as_deref().is_some_and(|s| !s.is_empty()),
            "monitoring.retrain_source",
            "must be set when monitoring.retrain_on_drift is true",
        )?;
        check(
            mo.retrain_after >= 1,
            "monitoring.retrain_after",
            "must be at least 1",
        )?;
        Ok(())
    }

    /// Validation's shares and drift thresholds.
    fn validate_validation(&self) -> Result<()> {
        let v = &self.validation;
        for (key, share) in [
            ("validation.max_missing_share", v.max_missing_share),
            ("validation.max_invalid_share", v.max_invalid_share),
            ("validation.p_value", v.p_value),
            ("validation.dataset_drift_share", v.dataset_drift_share),
        ] {
            check((0.0..=1.0).contains(&share), key, "must be between 0 and 1")?;
        }
        for (key, d) in [
            ("validation.wasserstein", v.wasserstein),
            ("validation.jensen_shannon", v.jensen_shannon),
        ] {
            check(
                d >= 0.0 && d.is_finite(),
                key,
                "must be a finite number >= 0",
            )?;
        }
        Ok(())
    }

    pub fn reference_date(&self) -> ReferenceDate {
        ReferenceDate::parse(&self.features.reference_date).expect("validated at load")
    }
}

/// Deserialises `default_yaml`, overlaid by `file` and by environment variables
/// `PREFIXSECTION__KEY`. Errors name the key at fault.
pub fn load_layered<T: serde::de::DeserializeOwned>(
    default_yaml: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
) -> Result<T> {
    let mut tree: Value = serde_yaml::from_str(default_yaml)
        .map_err(|e| Error::config("<built-in>", e.to_string()))?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let layer: Value = serde_yaml::from_str(&text)
            .map_err(|e| Error::config(path.display().to_string(), e.to_string()))?;
        merge(&mut tree, layer);
    }
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(prefix) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        let value: Value = serde_yaml::from_str(&raw).unwrap_or(Value::String(raw));
        set_path(&mut tree, &keys, value);
    }
    // serde_path_to_error names the path of the key at fault.
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." {
            "<settings>".to_string()
        } else {
            key
        };
        Error::config(key.clone(), format!("{key}: {}", e.into_inner()))
    })
}

/// `Ok` when `ok`, else a configuration error naming `key`: the one shape of every range check.
pub fn check(ok: bool, key: &str, message: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(key, message))
    }
}

fn merge(base: &mut Value, layer: Value) {
    match (base, layer) {
        (Value::Mapping(base), Value::Mapping(layer)) => {
            for (k, v) in layer {
                match base.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn set_path(tree: &mut Value, keys: &[String], value: Value) {
    let Some((first, rest)) = keys.split_first() else {
        *tree = value;
        return;
    };
    if !tree.is_mapping() {
        *tree = Value::Mapping(Default::default());
    }
    let map = tree.as_mapping_mut().expect("just made a mapping");
    let slot = map
        .entry(Value::String(first.clone()))
        .or_insert(Value::Null);
    set_path(slot, rest, value);
}

/// Splits `s3://bucket/some/prefix` into the bucket and `"some/prefix/"`.
pub fn parse_s3_uri(uri: &str) -> Result<(String, String)> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| Error::Store(format!("{uri}: not an s3://bucket/prefix URI")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if !valid_bucket {
        return Err(Error::Store(format!(
            "{uri}: '{bucket}' is not a valid bucket name"
        )));
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
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
    fn defaults_load_and_validate() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(s.segmentation.k, KSetting::Fixed(3));
        assert_eq!(s.split.seed, 42);
        assert_eq!(s.device, DeviceChoice::Auto);
    }

    #[test]
    fn environment_overrides_one_key() {
        let s =
            Settings::load_with_env(None, env(&[("CATEGORIZER__SEGMENTATION__K", "4")])).unwrap();
        assert_eq!(s.segmentation.k, KSetting::Fixed(4));
        assert_eq!(s.segmentation.n_init, 4);
        let s = Settings::load_with_env(None, env(&[("CATEGORIZER__SEGMENTATION__K", "auto")]))
            .unwrap();
        assert_eq!(
            (s.segmentation.fixed_k(), s.segmentation.max_k()),
            (None, 8)
        );
        let err = Settings::load_with_env(None, env(&[("CATEGORIZER__SEGMENTATION__K", "many")]))
            .unwrap_err();
        assert!(err.to_string().contains("segmentation.k"), "{err}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let err = Settings::load_with_env(None, env(&[("CATEGORIZER__SEGMENTATION__K", "1")]))
            .unwrap_err();
        assert!(err.to_string().contains("segmentation.k"), "{err}");
        let err =
            Settings::load_with_env(None, env(&[("CATEGORIZER__SPLIT__TEST_FRACTION", "abc")]))
                .unwrap_err();
        assert!(err.to_string().contains("test_fraction"), "{err}");
        let err = Settings::load_with_env(
            None,
            env(&[("CATEGORIZER__FEATURES__REFERENCE_DATE", "31-12-2014")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("features.reference_date"), "{err}");
    }
}
