//! The training routes: queue a job, list, follow and cancel jobs. Behind [`require_admin`].

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::serve::auth::require_admin;
use crate::serve::error::{ApiError, Code};
use crate::serve::jobs::{self, JobOptions, Jobs};
use crate::serve::{AppState, SMALL_BODY_BYTES};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/train", post(start_job))
        .route("/train", get(start_default_job))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(get_job).delete(cancel_job))
        // A training request is a few settings: kilobytes, not the prediction body's limit.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            SMALL_BODY_BYTES,
        ))
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}

fn jobs(s: &AppState) -> Result<&Jobs, ApiError> {
    s.jobs().ok_or_else(|| {
        ApiError::new(
            Code::TrainingDisabled,
            "this server was started without training",
        )
    })
}

fn accepted(view: jobs::JobView) -> Response {
    let location = format!("/api/v1/jobs/{}", view.id);
    let mut r = (StatusCode::ACCEPTED, axum::Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `POST /api/v1/train`: `{"source"?, "device"?, "classifier"?}` (an empty body: defaults).
async fn start_job(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let options: JobOptions = if body.iter().all(u8::is_ascii_whitespace) {
        JobOptions::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                Code::MalformedJson,
                format!("the body is not valid training options: {e}"),
            )
        })?
    };
    Ok(accepted(jobs(&s)?.submit(options)?))
}

/// `GET /train`: the original app's route; queues a job with the default options.
async fn start_default_job(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(accepted(jobs(&s)?.submit(JobOptions::default())?))
}

async fn list_jobs(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(axum::Json(serde_json::json!({"jobs": jobs(&s)?.list()})).into_response())
}

async fn get_job(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(jobs(&s)?.get(&id)?).into_response())
}

async fn cancel_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = jobs(&s)?.cancel(&id)?;
    Ok((StatusCode::ACCEPTED, axum::Json(view)).into_response())
}
