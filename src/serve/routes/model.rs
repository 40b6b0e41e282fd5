//! The served model's manifest, the latest validation report and the OpenAPI document.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::serve::error::{ApiError, Code};
use crate::serve::{AppState, openapi};

crate::errors!(ValidationErrors: NoValidation);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(model_manifest))
        .routes(routes!(validation_report))
        .routes(routes!(openapi_document))
}

/// The served model's manifest: version, metrics, feature schema, segments.
///
/// Its training-data profile is shown as quantiles only (the route is open).
#[utoipa::path(get, path = "/api/v1/model", tag = "model",
    responses((status = 200, description = "the manifest", body = Object)))]
async fn model_manifest(State(s): State<AppState>) -> Response {
    let mut shown = (*s.manifest()).clone();
    shown.data_profile = shown.data_profile.map(|p| p.public());
    axum::Json(shown).into_response()
}

/// The latest training run's data validation report.
///
/// Schema check and drift per column (HTML at /validation); before this service trains, the
/// report of the run that trained its model.
#[utoipa::path(get, path = "/api/v1/validation", tag = "model",
    responses((status = 200, description = "the report", body = Object), ValidationErrors))]
async fn validation_report(State(s): State<AppState>) -> Response {
    match s.validation() {
        Some(r) => axum::Json(&*r).into_response(),
        None => ApiError::new(
            Code::NoValidation,
            "no training run of this service, nor the one that trained the served model, left a validation report",
        )
        .into_response(),
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
async fn openapi_document() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        openapi::json(),
    )
        .into_response()
}
