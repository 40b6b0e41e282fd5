//! Following the store: loading a version (and keeping a local copy of a remote store's served
//! model), the start-up choice of what to serve (the store's current model; else the cached
//! copy while the store is unreachable; else a model trained on the built-in data first), and
//! the watch that switches to the store's new current model.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::manifest::{Manifest, ServedModel};
use super::store::{self, LocalStore, ModelStore};
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
