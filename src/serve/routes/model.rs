//! The served model's manifest, the latest validation report and the OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::serve::error::{ApiError, Code};
use crate::serve::{AppState, openapi};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/model", get(model_manifest))
        .route("/api/v1/validation", get(validation_report))
        .route("/api/openapi.json", get(openapi_document))
}

/// The served model's manifest, its data profile as quantiles only (the route is open).
async fn model_manifest(State(s): State<AppState>) -> Response {
    let mut shown = (*s.manifest()).clone();
    shown.data_profile = shown.data_profile.map(|p| p.public());
    axum::Json(shown).into_response()
}

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

async fn openapi_document() -> Response {
    axum::Json(openapi::document()).into_response()
}
