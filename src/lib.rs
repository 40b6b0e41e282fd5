//! Customer Categorizer: learns retail customer segments and serves them fast.
//!
//! The modules follow the data's path:
//!
//! - [`schema`]: the one definition of a customer (29 raw columns, 21 model features)
//! - [`ingest`]: raw records from CSV, Parquet, MongoDB or the seeded synthetic generator
//! - [`validate`]: the schema check and drift detection before training
//! - [`features`]: raw records → the 21 features, with every set-aside row accounted for
//! - [`preprocess`]: median imputation, scaling, Yeo-Johnson (fitted on training rows only)
//! - [`train`]: PCA + KMeans segmentation and the segment classifier, as burn tensor code on
//!   the GPU (wgpu) or the CPU
//! - [`onnx`]: the fitted pipeline exported as one ONNX model
//! - [`inference`]: ONNX Runtime sessions over exported models
//! - [`registry`]: model + manifest, the parity check and promotion gate, segment lineage
//!   across retrains, the store (a local directory or an S3 bucket)
//! - [`explain`]: why a customer is in its segment, and whether it is atypical there
//! - [`predict`]: streaming bulk scoring of CSV and Parquet files
//! - [`serve`]: the HTTP service (axum) with the dynamic batcher in front of ONNX Runtime
//!
//! [`config`] holds the typed, layered settings, [`rt`] the small runtime the network clients run on, and
//! [`error`] the error type.

pub mod answer;
pub mod config;
pub mod dates;
pub mod error;
pub mod explain;
pub mod features;
pub mod inference;
pub mod ingest;
pub mod json_f64;
pub mod matrix;
pub mod monitor;
pub mod onnx;
pub mod predict;
pub mod preprocess;
pub mod registry;
pub mod rt;
pub mod s3;
pub mod schema;
pub mod serve;
pub mod sort;
pub mod sql;
pub mod train;
pub mod validate;
pub mod workflow;

pub use error::{Error, Result};
