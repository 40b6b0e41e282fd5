//! Who may use the training routes: with an admin token configured, `Authorization: Bearer
//! <token>`; without one, loopback clients only.

use std::net::SocketAddr;

use axum::extract::FromRequestParts;
use axum::extract::connect_info::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::AppState;
use super::error::{ApiError, Code};

/// The admin token: `CATEGORIZER_ADMIN_TOKEN`, else the contents of the file that
/// `CATEGORIZER_ADMIN_TOKEN_FILE` names (a Docker or Kubernetes secret mounted as a file; one
/// trailing newline dropped). A file that is named but cannot be read, or is empty, stops the
/// service: a configured secret that went missing must not quietly open the training routes
/// to loopback clients.
pub fn admin_token_from_env() -> crate::error::Result<Option<String>> {
    admin_token_from(
        std::env::var("CATEGORIZER_ADMIN_TOKEN").ok(),
        std::env::var_os("CATEGORIZER_ADMIN_TOKEN_FILE"),
    )
}

fn admin_token_from(
    token: Option<String>,
    file: Option<std::ffi::OsString>,
) -> crate::error::Result<Option<String>> {
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        return Ok(Some(t));
    }
    let Some(path) = file.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| crate::error::Error::io(std::path::PathBuf::from(&path), e))?;
    let token = text.strip_suffix('\n').unwrap_or(&text);
    let token = token.strip_suffix('\r').unwrap_or(token);
    if token.is_empty() {
        return Err(crate::error::Error::config(
            "CATEGORIZER_ADMIN_TOKEN_FILE",
            format!("{} is empty", path.to_string_lossy()),
        ));
    }
    Ok(Some(token.to_owned()))
}

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
    fn the_token_comes_from_the_variable_else_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin_token");
        std::fs::write(&file, "from-file\n").unwrap();
        let named = Some(file.clone().into_os_string());
        assert_eq!(admin_token_from(None, None).unwrap(), None);
        assert_eq!(
            admin_token_from(Some("direct".into()), named.clone()).unwrap(),
            Some("direct".into())
        );
        assert_eq!(
            admin_token_from(Some(String::new()), named.clone()).unwrap(),
            Some("from-file".into())
        );
        // A secret that is named but missing or empty stops the service.
        std::fs::write(&file, "\n").unwrap();
        let e = admin_token_from(None, named).unwrap_err().to_string();
        assert!(e.contains("CATEGORIZER_ADMIN_TOKEN_FILE"), "{e}");
        let gone = Some(dir.path().join("absent").into_os_string());
        let e = admin_token_from(None, gone).unwrap_err().to_string();
        assert!(e.contains("absent"), "{e}");
    }

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
