//! Who may use the training routes: with an admin token configured, `Authorization: Bearer
//! <token>`; without one, loopback clients only.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, Code};

/// Guards the training endpoints: with an admin token configured, `Authorization: Bearer
/// <token>`; without one, loopback clients only.
pub async fn require_admin(State(s): State<AppState>, req: Request, next: Next) -> Response {
    // As axum's ConnectInfo extractor does: the socket's peer, else a MockConnectInfo layer's.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| {
            req.extensions()
                .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        });
    match authorize(req.headers(), peer, s.admin_token()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The training endpoints' access rule (see [`require_admin`]).
pub fn authorize(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    token: Option<&str>,
) -> Result<(), ApiError> {
    match token {
        Some(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                Ok(())
            } else {
                Err(ApiError::new(
                    Code::Unauthorized,
                    "training endpoints need `Authorization: Bearer <CATEGORIZER_ADMIN_TOKEN>`",
                ))
            }
        }
        None if peer.is_some_and(|p| p.ip().is_loopback()) => Ok(()),
        None => Err(ApiError::new(
            Code::Forbidden,
            "training endpoints accept only loopback clients while CATEGORIZER_ADMIN_TOKEN is not set",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
