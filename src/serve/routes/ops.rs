//! Operations: liveness, readiness and the Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::serve::AppState;
use crate::serve::error::{ApiError, Code};
use crate::serve::jobs::JobState;
use crate::serve::metrics;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready while the inference worker takes requests; 503 once it has stopped.
async fn readyz(State(s): State<AppState>) -> Response {
    let version = s.manifest().version.clone();
    if !s.batcher().is_running() {
        return ApiError::new(Code::NotReady, "the inference worker has stopped").into_response();
    }
    axum::Json(serde_json::json!({"ready": true, "model_version": version})).into_response()
}

async fn prometheus(State(s): State<AppState>) -> Response {
    let m = s.manifest();
    let (queued, running) = s.jobs().map_or((0, 0), |j| {
        (j.count(JobState::Queued), j.count(JobState::Running))
    });
    let text = s.metrics().render(&metrics::Gauges {
        queue_depth: s.batcher().queue_depth(),
        model_version: &m.version,
        model_classifier: &m.classifier,
        jobs_queued: queued,
        jobs_running: running,
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
