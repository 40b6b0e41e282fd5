//! Integration tests: one binary (every test binary links the whole stack, so one is cheaper).

mod backends;
mod bad_input;
mod browser;
mod bulk;
mod cli;
mod docs;
mod doors;
mod hostile;
mod mongo;
mod monitoring;
mod onnx;
mod pipeline;
mod properties;
mod replicas;
mod s3;
mod segments;
mod serve;
mod spark;
mod streaming;
mod support;
mod tables;
