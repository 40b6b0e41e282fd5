//! Customer Categorizer: learns retail customer segments and serves them fast.
//!
//! The modules follow the data's path, in layers: a module uses its own layer and those
//! above it in this list, never one below (`scripts/architecture.py` checks it).
//!
//! - helpers that know nothing of customers: [`error`], [`json_f64`], [`sort`], [`matrix`],
//!   [`dates`], [`rt`] (the small runtime the network clients run on)
//! - [`schema`]: the one definition of a customer (29 raw columns, 21 model features);
//!   [`config`]: the typed, layered settings; [`s3`]: the S3 client both stores and readers use
//! - [`explain`]: why a customer is in its segment; [`answer`]: the shapes of an answer and of
//!   a table of features; [`features`]: raw records → the 21 features, with every set-aside
//!   row accounted for; [`preprocess`]: median imputation, scaling, Yeo-Johnson
//! - [`ingest`]: raw records from CSV, Parquet, Arrow, a data set of files, S3, MongoDB or the
//!   seeded generator; [`validate`]: the schema check, column profiles and drift
//! - [`inference`]: ONNX Runtime sessions over exported models (they know the tensor names of
//!   [`onnx::names`], not the exporter); [`sql`]: the features as Spark SQL and DuckDB SQL
//! - [`train`]: PCA + KMeans segmentation and the segment classifier, as burn tensor code on
//!   the GPU (wgpu) or the CPU; [`onnx`]: the fitted pipeline exported as one ONNX model
//! - [`registry`]: model + manifest, the parity check and promotion gate, segment lineage
//!   across retrains, the stores (a local directory or an S3 bucket), following a store
//! - [`predict`]: streaming bulk scoring; [`monitor`]: what a served model sees, against its
//!   training data
//! - [`workflow`]: training then publishing, as the CLI, the jobs and the server run it
//! - [`serve`]: the HTTP service (axum) with the dynamic batcher in front of ONNX Runtime

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
