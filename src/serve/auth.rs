//! Who may use the training routes: with an admin token configured, `Authorization: Bearer
//! <token>`; without one, loopback clients only.

use std::net::SocketAddr;

use axum::extract::FromRequestParts;
use axum::extract::connect_info::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::AppState;
use super::error::{ApiError, Code};

/// Taken by the training handlers: with an admin token configured, the request carries
/// `Authorization: Bearer <token>`; without one, it comes from a loopback client. Extracted
/// before anything else the handler takes, so a refused request is refused first.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        // As axum's ConnectInfo extractor does: the socket's peer, else a MockConnectInfo layer's.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| {
                parts
                    .extensions
                    .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                    .map(|c| c.0)
            });
        authorize(&parts.headers, peer, s.admin_token()).map(|()| Admin)
    }
}

/// The training endpoints' access rule (see [`Admin`]).
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
