//! The routes, by resource: each module has its own `router()`, merged in [`all`].

pub mod jobs;
pub mod model;
pub mod ops;
pub mod predict;
pub mod web;

use axum::Router;

use super::AppState;

/// Every route of the service.
pub fn all(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(web::router())
        .merge(predict::router())
        .merge(model::router())
        .merge(ops::router())
        .merge(jobs::router(state))
}
