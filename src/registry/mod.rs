//! The registry stage: what happens to a trained model. Its manifest, publishing it (export,
//! parity, the promotion gate, the store write), the stores (a local directory, S3), and
//! following the store from a running service. The CLI, the training jobs and the server's
//! start-up all go through [`train_and_publish`] and [`follow`].

pub mod diff;
pub mod follow;
pub mod manifest;
pub mod publish;
pub mod rename;
pub mod store;

pub use diff::diff;
pub use manifest::{
    EmbeddingMap, FeatureSpec, Manifest, ServedModel, current_reference, feature_specs,
};
pub use publish::{PARITY_TOLERANCE, PROMOTION_RULE, Published, publish};
pub use rename::rename;

use crate::error::Result;
use crate::inference::SessionOptions;
use crate::train::progress::Stage;
use crate::train::{TrainOutcome, TrainRequest};
use store::ModelStore;

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
