//! The exported model's tensor names: the contract between the exporter, which writes them,
//! and everything that runs the model (ONNX Runtime here, the Spark package, the SQL docs).
//! Kept apart so a reader of models depends on these names, not on the exporter.

/// The input: float32[N, features], the model's features in its order.
pub const INPUT: &str = "customers";
/// int64[N]: the segment id.
pub const OUT_SEGMENT: &str = "segment";
/// float32[N, k]: the classifier's probability of each segment.
pub const OUT_PROBABILITIES: &str = "probabilities";
/// float32[N, components]: the PCA embedding the segments were found in.
pub const OUT_EMBEDDING: &str = "embedding";
/// float32[N, k]: the distance to each segment's centre in the embedding.
pub const OUT_DISTANCES: &str = "distances";
/// The preprocessed features the classifier and the PCA read: explanations start from them.
pub const OUT_PREPROCESSED: &str = "preprocessed";
