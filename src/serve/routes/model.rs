//! The served model's manifest, the latest validation report and the OpenAPI document.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::registry::ServedModel;
use crate::registry::follow::blocking;
use crate::registry::rename::{check_name, rename};
use crate::serve::auth::Admin;
use crate::serve::error::{ApiError, Code};
use crate::serve::{AppState, openapi};

crate::errors!(ValidationErrors: NoValidation);
crate::errors!(
    RenameErrors: MalformedJson, Unauthorized, Forbidden, SegmentNotFound, BodyTooLarge,
    InvalidName, TrainingDisabled
);

pub fn router() -> OpenApiRouter<AppState> {
    // A name is a few bytes: the small body limit, not the prediction body's.
    let rename = OpenApiRouter::new().routes(routes!(rename_segment)).layer(
        tower_http::limit::RequestBodyLimitLayer::new(crate::serve::SMALL_BODY_BYTES),
    );
    OpenApiRouter::new()
        .merge(rename)
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
    shown.feature_profile = shown.feature_profile.map(|p| p.public());
    axum::Json(shown).into_response()
}

/// A segment's new name.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RenameRequest {
    /// 1 to 80 characters as sent, no control characters, not only whitespace; stored with
    /// leading and trailing whitespace trimmed.
    /// (The pattern is `rename::NAME_PATTERN`, which a test holds this literal to.)
    #[schema(
        min_length = 1,
        max_length = 80,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\u0000-\\u001F\\u007F-\\u009F\\u0020\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    name: String,
}

#[derive(Serialize, ToSchema)]
struct Renamed {
    /// The new version: the same ONNX model, the manifest with the new name.
    version: String,
    renamed_from: String,
    segment: usize,
    name: String,
    /// The new version is current (the renamed one was) and is served from now on.
    current: bool,
}

/// Names a segment of the served model.
///
/// Stores a new version (same `model.onnx`, the manifest with the new name), makes it current
/// when the served version was, and serves it. Later models whose segment is matched to this
/// one keep the name. Protected like the training endpoints.
#[utoipa::path(put, path = "/api/v1/model/segments/{id}", tag = "model",
    params(("id" = usize, Path, description = "the segment id")),
    request_body = RenameRequest,
    responses((status = 200, description = "the new version", body = Renamed), RenameErrors))]
async fn rename_segment(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let jobs = super::jobs::jobs(&s)?;
    let served = s.manifest();
    let segment = id
        .parse::<usize>()
        .ok()
        .filter(|&i| i < served.k)
        .ok_or_else(|| {
            ApiError::new(
                Code::SegmentNotFound,
                format!(
                    "model {} has segments 0..{}, not '{id}'",
                    served.version,
                    served.k - 1
                ),
            )
        })?;
    let request: RenameRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::MalformedJson,
            format!("the body must be {{\"name\": \"...\"}}: {e}"),
        )
    })?;
    let name = check_name(&request.name)
        .map_err(|m| ApiError::new(Code::InvalidName, m).with_field("name"))?;
    let (store, options) = (jobs.store.clone(), jobs.options.clone());
    let version = served.version.clone();
    let (renamed, model) = blocking(move || {
        let r = rename(store.as_ref(), &version, segment, &name)?;
        let model = if r.current {
            Some(ServedModel::from_store(
                store.as_ref(),
                &r.version,
                &options,
            )?)
        } else {
            None
        };
        Ok((r, model))
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
    if let Some(model) = model {
        s.swap(model)
            .await
            .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
    }
    Ok(axum::Json(Renamed {
        version: renamed.version,
        renamed_from: served.version.clone(),
        segment,
        name: renamed.manifest.segments[segment].name.clone(),
        current: renamed.current,
    })
    .into_response())
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
async fn openapi_document(
    axum::Extension(document): axum::Extension<openapi::Document>,
) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        axum::body::Bytes::from_owner(document.0),
    )
        .into_response()
}
