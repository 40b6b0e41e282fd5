//! The routes, by resource: each module has its own `router()`, merged in [`all`].

pub mod jobs;
pub mod model;
pub mod monitoring;
pub mod ops;
pub mod predict;
pub mod web;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::openapi::ApiDoc;

/// Every route of the service, with the OpenAPI document of those that are JSON API routes.
pub fn all() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(web::router())
        .merge(predict::router())
        .merge(model::router())
        .merge(ops::router())
        .merge(jobs::router())
        .merge(monitoring::router())
}
