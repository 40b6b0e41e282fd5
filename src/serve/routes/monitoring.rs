//! Monitoring: the drift of the customers this replica scored against the served model's
//! training data, as JSON.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::monitor::Report;
use crate::serve::AppState;
use crate::serve::error::{ApiError, Code};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(monitoring))
}

/// The drift of the last `monitoring.window_ms` of customers this replica scored with the
/// served model, against the profile of the model's training split, computed now: per
/// feature validation's test and threshold (statistical tests for a reference of at most
/// `validation.small_reference_rows` rows, distances above), the dataset rule
/// (`validation.dataset_drift_share` of the features), the segment shares against the
/// training shares, and the atypical share against the expected 1 %. `status` is `drift` (the
/// data set, the segment shares or the atypical share), `feature_drift` (some features, fewer
/// than the data set's rule needs), `no_drift`, `not_enough_data` (fewer than `monitoring.min_rows` customers: then
/// `dataset_drift` is null and no feature is marked drifted), `no_reference` (a model
/// published before monitoring: retrain it) or `disabled`. One replica's view: `categorizer
/// monitor --models STORE` merges every replica's buckets from the store.
#[utoipa::path(get, path = "/api/v1/monitoring", tag = "model",
    responses((status = 200, description = "the monitoring report of the last window", body = Report)))]
async fn monitoring(State(s): State<AppState>) -> Result<Json<Report>, ApiError> {
    let manifest = s.manifest();
    let monitor = s.monitor().clone();
    // Merging the window's digests is CPU work: off the async workers.
    let mut report = tokio::task::spawn_blocking(move || monitor.report(&manifest))
        .await
        .map_err(|e| ApiError::new(Code::Internal, format!("the monitoring report failed: {e}")))?;
    if !s.monitor().enabled() {
        report.status = "disabled".into();
    }
    Ok(Json(report))
}
