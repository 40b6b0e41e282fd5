//! Customer Categorizer: learns retail customer segments and serves them fast.
//!
//! The modules follow the data's path:
//!
//! - [`schema`]: the one definition of a customer (29 raw columns, 21 model features)
//! - [`ingest`]: raw records from CSV, Parquet or the seeded synthetic generator
//! - [`features`]: raw records → the 21 features, with every set-aside row accounted for
//! - [`preprocess`]: median imputation, scaling, Yeo-Johnson (fitted on training rows only)
//! - [`train`]: PCA + KMeans segmentation as burn tensor code on the GPU (wgpu) or the CPU
//!
//! [`config`] holds the typed, layered settings and [`error`] the error type.

pub mod config;
pub mod error;
pub mod features;
pub mod ingest;
pub mod matrix;
pub mod preprocess;
pub mod schema;
pub mod train;

pub use error::{Error, Result};
