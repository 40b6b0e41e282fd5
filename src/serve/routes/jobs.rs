//! The training routes: queue a job, list, follow and cancel jobs. Each handler takes
//! [`Admin`] first.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::serve::auth::Admin;
use crate::serve::error::{ApiError, Code};
use crate::serve::jobs::{self, JobOptions, Jobs};
use crate::serve::{AppState, SMALL_BODY_BYTES};

crate::errors!(
    /// The errors every training route may answer.
    JobErrors: Unauthorized, Forbidden, TrainingDisabled
);
crate::errors!(StartErrors: Unauthorized, Forbidden, TrainingDisabled, TrainingQueueFull);
crate::errors!(
    StartWithOptionsErrors: Unauthorized, Forbidden, TrainingDisabled, TrainingQueueFull,
    MalformedJson, InvalidOption, BodyTooLarge
);
crate::errors!(OneJobErrors: Unauthorized, Forbidden, TrainingDisabled, JobNotFound);
crate::errors!(CancelErrors: Unauthorized, Forbidden, TrainingDisabled, JobNotFound, JobEnded);

/// Every job the service remembers, newest first.
#[derive(Serialize, ToSchema)]
struct JobList {
    jobs: Vec<jobs::JobView>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_job))
        .routes(routes!(start_default_job))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job, cancel_job))
        // A training request is a few settings: kilobytes, not the prediction body's limit.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            SMALL_BODY_BYTES,
        ))
}

pub(super) fn jobs(s: &AppState) -> Result<&Jobs, ApiError> {
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

/// Queue a training job; one job runs at a time.
///
/// `{"source"?, "device"?, "classifier"?}`; an empty body, or `null`, takes the defaults.
#[utoipa::path(
    post, path = "/api/v1/train", tag = "training",
    request_body(content = Option<JobOptions>, content_type = "application/json"),
    security(("bearer" = []), ()),
    responses((status = 202, description = "the job was queued", body = jobs::JobView), StartWithOptionsErrors)
)]
async fn start_job(_: Admin, State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let options: JobOptions = if body.iter().all(u8::is_ascii_whitespace) {
        JobOptions::default()
    } else {
        serde_json::from_slice::<Option<JobOptions>>(&body)
            .map_err(|e| {
                ApiError::new(
                    Code::MalformedJson,
                    format!("the body is not valid training options: {e}"),
                )
            })?
            .unwrap_or_default()
    };
    Ok(accepted(jobs(&s)?.submit(options)?))
}

/// Queue a training job with the default options (the original app's route).
#[utoipa::path(
    get, path = "/train", tag = "training",
    security(("bearer" = []), ()),
    responses((status = 202, description = "the job was queued", body = jobs::JobView), StartErrors)
)]
async fn start_default_job(_: Admin, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(accepted(jobs(&s)?.submit(JobOptions::default())?))
}

/// Every job the service remembers, newest first.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "training",
    security(("bearer" = []), ()),
    responses((status = 200, description = "the jobs", body = JobList), JobErrors)
)]
async fn list_jobs(_: Admin, State(s): State<AppState>) -> Result<Response, ApiError> {
    let jobs = jobs(&s)?.list();
    Ok(axum::Json(JobList { jobs }).into_response())
}

/// A job's state, stage and progress, and its result when it succeeded.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "training",
    params(("id" = String, Path, description = "the job's id")),
    security(("bearer" = []), ()),
    responses((status = 200, description = "the job", body = jobs::JobView), OneJobErrors)
)]
async fn get_job(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Another replica's job is read from the store: off the async threads.
    let jobs = jobs(&s)?.clone();
    let view = tokio::task::spawn_blocking(move || jobs.get(&id))
        .await
        .map_err(|e| ApiError::new(Code::Internal, e.to_string()))??;
    Ok(axum::Json(view).into_response())
}

/// Cancel a job: at once when queued, at its next stage or iteration when running.
#[utoipa::path(
    delete, path = "/api/v1/jobs/{id}", tag = "training",
    params(("id" = String, Path, description = "the job's id")),
    security(("bearer" = []), ()),
    responses(
        (status = 202, description = "cancelled, or cancellation requested", body = jobs::JobView),
        CancelErrors
    )
)]
async fn cancel_job(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let jobs = jobs(&s)?.clone();
    let view = tokio::task::spawn_blocking(move || jobs.cancel(&id))
        .await
        .map_err(|e| ApiError::new(Code::Internal, e.to_string()))??;
    Ok((StatusCode::ACCEPTED, axum::Json(view)).into_response())
}
