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
        authorize(
            &parts.headers,
            peer,
            s.admin_token(),
            s.inner_loopback_trusted(),
        )
        .map(|()| Admin)
    }
}

/// The training endpoints' access rule (see [`Admin`]). `loopback_trusted` is false behind a
/// proxy (`server.behind_proxy`): every request arrives from the proxy, often on loopback, so
/// the loopback exception would open training to anyone who reaches the proxy.
pub fn authorize(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    token: Option<&str>,
    loopback_trusted: bool,
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
        None if !loopback_trusted => Err(ApiError::new(
            Code::Forbidden,
            "training endpoints are closed: server.behind_proxy is set and \
             CATEGORIZER_ADMIN_TOKEN is not",
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_a_proxy_training_needs_the_token_even_from_loopback() {
        let loopback: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.7:40000".parse().unwrap();
        let none = HeaderMap::new();
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        // No proxy: loopback may train without a token, a remote client may not.
        assert!(authorize(&none, Some(loopback), None, true).is_ok());
        assert!(authorize(&none, Some(remote), None, true).is_err());
        // Behind a proxy, no token: closed to everyone, whatever the headers say.
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-for", "127.0.0.1".parse().unwrap());
        for h in [&none, &forwarded, &bearer] {
            assert!(authorize(h, Some(loopback), None, false).is_err());
        }
        // A token: the bearer rule, proxy or not.
        for trusted in [true, false] {
            assert!(authorize(&bearer, Some(remote), Some("s3cret"), trusted).is_ok());
            assert!(authorize(&none, Some(loopback), Some("s3cret"), trusted).is_err());
        }
    }
}
