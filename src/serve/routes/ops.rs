//! Operations: liveness, readiness and the Prometheus metrics.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::serve::AppState;
use crate::serve::error::{ApiError, Code};
use crate::serve::jobs::JobState;
use crate::serve::metrics;

crate::errors!(ReadyErrors: NotReady);

/// `/readyz`'s answer.
#[derive(Serialize, ToSchema)]
struct Ready {
    ready: bool,
    model_version: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        // The Prometheus text format: not part of the JSON API's document.
        .route("/metrics", get(prometheus))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "the process is up", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: ready while the inference worker takes requests; 503 once it has stopped, and
/// from the shutdown signal on (while the drain still serves requests).
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready", body = Ready), ReadyErrors))]
async fn readyz(State(s): State<AppState>) -> Response {
    let model_version = s.manifest().version.clone();
    if s.draining() {
        return ApiError::new(Code::NotReady, "draining: this instance is shutting down")
            .into_response();
    }
    if !s.batcher().is_running() {
        return ApiError::new(Code::NotReady, "the inference worker has stopped").into_response();
    }
    axum::Json(Ready {
        ready: true,
        model_version,
    })
    .into_response()
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
        monitoring: s.monitor().last_report(),
        monitoring_counters: s.monitor().counters(),
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
