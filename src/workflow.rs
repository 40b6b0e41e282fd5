//! Training, then publishing: the one path from data to a stored model, and the start of a
//! service whose store is empty. The CLI's `train`, the server's training jobs, retraining
//! on drift and `serve` all run it; the training stage ([`crate::train`]) and the registry
//! ([`crate::registry`]) know nothing of each other's work.

use std::sync::Arc;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::inference::SessionOptions;
use crate::registry::follow::fetch_model;
use crate::registry::store::{self, LocalStore, ModelStore};
use crate::registry::{Published, ServedModel, current_reference, publish};
use crate::train::progress::Stage;
use crate::train::{TrainOutcome, TrainRequest};

/// What [`train_and_publish`] did.
#[derive(Debug)]
pub struct Trained {
    pub outcome: TrainOutcome,
    /// The stored model; None when no store was given.
    pub published: Option<Published>,
}

/// The one path from data to a stored model. With a store, the data is checked for drift
/// against the store's current model (unless the request names a reference), and the trained
/// model is published there; without one (`--no-export`, tests that only train) it is only
/// trained.
pub fn train_and_publish(
    request: TrainRequest,
    store: Option<&dyn ModelStore>,
    options: &SessionOptions,
) -> Result<Trained> {
    let request = match store {
        Some(store) => {
            let (reference, previous) = current_reference(store);
            let reference = request.reference.clone().or(reference);
            let previous = request.previous.clone().or(previous);
            request.with_reference(reference).with_previous(previous)
        }
        None => request,
    };
    let outcome = crate::train::run(&request)?;
    let Some(store) = store else {
        return Ok(Trained {
            outcome,
            published: None,
        });
    };
    if let Some(m) = &request.monitor {
        m.check()?;
        m.set_stage(Stage::Publish, "Publishing the model");
    }
    let published = publish(&outcome, store, options)?;
    Ok(Trained {
        outcome,
        published: Some(published),
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
    let trained = train_and_publish(request, Some(store), options);
    let _ = std::fs::remove_dir_all(&out_dir);
    let version = trained?.published.expect("a store was given").version;
    tracing::info!("trained and stored model {version}");
    Ok(version)
}
