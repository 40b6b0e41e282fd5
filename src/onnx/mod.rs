//! The exported model: ONNX protobuf writing and the graph of the fitted pipeline.

pub mod export;
pub mod names;
pub mod proto;
