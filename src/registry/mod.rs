//! The registry stage: what happens to a trained model. Its manifest, publishing it (export,
//! parity, the promotion gate, the store write), the stores (a local directory, S3), and
//! following the store from a running service. Training and then publishing is
//! [`crate::workflow`]'s: the registry takes a trained model, it never trains one.

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
