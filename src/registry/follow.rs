//! Following the store: loading a version (and keeping a local copy of a remote store's served
//! model), the start-up choice of what to serve (the store's current model; else the cached
//! copy while the store is unreachable; else a model trained on the built-in data first), and
//! the watch that switches to the store's new current model.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::manifest::{Manifest, ServedModel};
use super::store::{self, LocalStore, ModelStore};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::inference::SessionOptions;

/// What follows the store: the service's serving state.
pub trait Follower: Send + Sync + 'static {
    /// The manifest of the model served now.
    fn served(&self) -> Arc<Manifest>;
    /// Switches to `model` without dropping a request.
    fn install(&self, model: ServedModel) -> impl Future<Output = Result<()>> + Send;
    /// Counts a switch to the store's new current model.
    fn switched(&self) {}
    /// Counts a new current model refused.
    fn refused(&self) {}
}

/// Runs blocking store or training work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Model(format!("a background task failed: {e}")))?
}

/// Loads `version` from the store and, given a cache, keeps a copy there as its current model.
pub fn fetch_model(
    store: &dyn ModelStore,
    version: &str,
    cache: Option<&LocalStore>,
    options: &SessionOptions,
) -> Result<ServedModel> {
    let manifest = store.get(version, store::MANIFEST_FILE)?;
    let onnx = store.get(version, store::MODEL_FILE)?;
    let model = ServedModel::from_files(
        &manifest,
        &onnx,
        &format!("{}/{version}", store.describe()),
        options,
    )?;
    if let Some(cache) = cache {
        let cached = if cache.versions()?.iter().any(|v| v == version) {
            Ok(())
        } else {
            cache.put(
                version,
                &[
                    (store::MODEL_FILE, &onnx),
                    (store::MANIFEST_FILE, &manifest),
                ],
            )
        };
        if let Err(e) = cached.and_then(|()| cache.set_current(version)) {
            tracing::warn!(
                "model {version} could not be cached in {}: {e}",
                cache.describe()
            );
        }
    }
    Ok(model)
}

/// Follows the store's current pointer: every `interval` it is read and, when it names
/// another version than the served one, that version is loaded, checked (it must load in
/// ONNX Runtime with the right signature and this service's feature schema) and switched to
/// through the batcher, between two batches, so no request is dropped. A model that fails
/// the checks is refused and logged once; the served one stays.
pub fn watch_store<F: Follower>(
    state: F,
    store: Arc<dyn ModelStore>,
    cache: Option<LocalStore>,
    options: SessionOptions,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut refused: Option<String> = None;
        // The store version last loaded: a version directory copied under another name holds
        // a manifest with the old name, and must not be reloaded on every poll.
        let mut loaded_from: Option<String> = None;
        let mut unreachable = false;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = store.clone();
            let current = match blocking(move || s.current()).await {
                Ok(c) => {
                    if unreachable {
                        tracing::info!("the model store {} answers again", store.describe());
                        unreachable = false;
                    }
                    c
                }
                Err(e) => {
                    if !unreachable {
                        tracing::warn!("the model store's current pointer cannot be read: {e}");
                        unreachable = true;
                    }
                    continue;
                }
            };
            let served = state.served().version.clone();
            let Some(version) = current.filter(|v| *v != served) else {
                continue;
            };
            if refused.as_deref() == Some(version.as_str())
                || loaded_from.as_deref() == Some(version.as_str())
            {
                continue;
            }
            let (s, c, o, v) = (
                store.clone(),
                cache.clone(),
                options.clone(),
                version.clone(),
            );
            let loaded = blocking(move || fetch_model(s.as_ref(), &v, c.as_ref(), &o)).await;
            let outcome = match loaded {
                // The same model (by its checksum) under another name: nothing to switch.
                Ok(model) if model.manifest.onnx.sha256 == state.served().onnx.sha256 => {
                    tracing::info!(
                        "the store's current version {version} is the model already served \
                         ({served}, the same SHA-256)"
                    );
                    loaded_from = Some(version);
                    continue;
                }
                Ok(model) => state.install(model).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    state.switched();
                    tracing::info!(
                        "switched from model {served} to {version}, the store's new current model"
                    );
                    refused = None;
                    loaded_from = Some(version);
                }
                Err(e) => {
                    state.refused();
                    tracing::error!(
                        "refused model {version} of {}: {e}; still serving {served}",
                        store.describe()
                    );
                    refused = Some(version);
                }
            }
        }
    })
}

/// What a starting service serves, and the store it follows.
pub struct Start {
    pub model: ServedModel,
    pub store: Arc<dyn ModelStore>,
    /// The local copy of a remote store's served model.
    pub cache: Option<LocalStore>,
}

/// Chooses what a starting service serves from the store `models` (a directory or
/// `s3://bucket/prefix`): its current model; when the store is empty, a model trained on the
/// built-in data first; when a remote store cannot be reached, the cached copy of the model
/// it served last. Blocking: run it off the async workers.
pub fn start(
    models: &str,
    settings: &Settings,
    options: &SessionOptions,
    model_config: &crate::train::classifier::ModelConfig,
) -> Result<Start> {
    let store = store::open(models, &settings.models)?;
    let cache = models
        .starts_with("s3://")
        .then(|| LocalStore::new(&settings.models.s3.cache_dir));
    let model = match store.current() {
        Ok(Some(version)) => fetch_model(store.as_ref(), &version, cache.as_ref(), options)?,
        Ok(None) => {
            tracing::warn!(
                "no model in {}: training one on the built-in data ({}) first",
                store.describe(),
                settings.data.source
            );
            let version = train_first(store.as_ref(), settings, options, model_config)?;
            fetch_model(store.as_ref(), &version, cache.as_ref(), options)?
        }
        Err(e) => {
            let Some(cache) = &cache else {
                return Err(e);
            };
            let d = cache.dir().display().to_string();
            let cached = match cache.current()? {
                Some(v) => ServedModel::from_store(cache, &v, options)?,
                None => {
                    return Err(Error::Store(format!(
                        "{} cannot be reached ({e}) and no model is cached in {d}: nothing to serve",
                        store.describe()
                    )));
                }
            };
            tracing::warn!(
                "the model store {} cannot be reached ({e}): serving the cached model {} from {d}; \
                 the store is polled and its current model taken when it answers",
                store.describe(),
                cached.manifest.version
            );
            cached
        }
    };
    Ok(Start {
        model,
        store,
        cache,
    })
}

/// Trains on the settings' data source and publishes to `store`: the first run's model.
fn train_first(
    store: &dyn ModelStore,
    settings: &Settings,
    options: &SessionOptions,
    model_config: &crate::train::classifier::ModelConfig,
) -> Result<String> {
    let source = crate::ingest::DataSource::parse(&settings.data.source)?;
    let out_dir =
        std::env::temp_dir().join(format!("categorizer-first-run-{}", std::process::id()));
    let request =
        crate::train::TrainRequest::new(source, settings.clone(), model_config.clone(), &out_dir);
    let trained = super::train_and_publish(request, Some(store), options);
    let _ = std::fs::remove_dir_all(&out_dir);
    let version = trained?.published.expect("a store was given").version;
    tracing::info!("trained and stored model {version}");
    Ok(version)
}
