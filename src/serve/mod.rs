//! The HTTP service (axum): JSON batch prediction through the dynamic batcher, the model's
//! manifest, health and readiness.
//!
//! Every JSON error has one shape, `{"error": {"code", "message", "field"?, "row"?}}`, with a
//! 4xx status for the client's mistakes: 400 malformed JSON, 404 unknown route, 413 a body or a
//! batch over its limit; 503 + Retry-After when the prediction queue is full or a deadline
//! passes. A row with a bad value does not fail its request: it gets its own error in its slot.

pub mod batcher;
pub mod rows;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::RwLock;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::model::{Manifest, ServedModel};
use crate::schema::N_FEATURES;
use batcher::{BatchError, Batcher, BatcherConfig};
use rows::PredictBody;

/// Shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    batcher: Batcher,
    manifest: RwLock<Arc<Manifest>>,
    max_customers: usize,
    timeout: Duration,
}

impl AppState {
    pub fn new(model: ServedModel, settings: &Settings) -> Self {
        let sv = &settings.server;
        let manifest = Arc::new(model.manifest.clone());
        let batcher = Batcher::start(
            model,
            BatcherConfig {
                enabled: sv.batcher.enabled,
                max_batch_rows: sv.batcher.max_batch_rows,
                max_delay: Duration::from_micros(sv.batcher.max_delay_us),
                queue_capacity: sv.batcher.queue_capacity,
            },
        );
        Self {
            inner: Arc::new(Inner {
                batcher,
                manifest: RwLock::new(manifest),
                max_customers: sv.max_customers,
                timeout: Duration::from_millis(sv.request_timeout_ms),
            }),
        }
    }

    /// Switches to `model` without dropping a request: queued rows finish on the old one.
    pub async fn swap(&self, model: ServedModel) -> Result<()> {
        let manifest = Arc::new(model.manifest.clone());
        self.inner
            .batcher
            .swap(model)
            .await
            .map_err(|e| Error::Model(e.to_string()))?;
        *self.inner.manifest.write().await = manifest;
        Ok(())
    }
}

/// The router with every route and layer.
pub fn router(state: AppState, settings: &Settings) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/model", get(model_manifest))
        .route("/api/v1/predict", post(predict))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(settings.server.max_body_bytes))
        .with_state(state)
}

/// Loads the current model of the store, training one on the built-in data first when the
/// store is empty, and serves until Ctrl-C / SIGTERM.
pub async fn serve(settings: Settings, models: std::path::PathBuf) -> Result<()> {
    let start = Instant::now();
    let options = crate::inference::SessionOptions::from_settings(&settings.inference);
    let store = crate::store::LocalStore::new(&models);
    if crate::store::ModelStore::current(&store)?.is_none() {
        tracing::warn!(
            "no model in {}: training one on the built-in data ({}) first",
            models.display(),
            settings.data.source
        );
        let s = settings.clone();
        let m = models.clone();
        let o = options.clone();
        tokio::task::spawn_blocking(move || train_default(s, m, o))
            .await
            .map_err(|e| Error::Training(e.to_string()))??;
    }
    let model = ServedModel::open(&models, &options)?;
    tracing::info!(
        "model {} ({}) loaded from {}",
        model.manifest.version,
        model.manifest.classifier,
        models.display()
    );
    let state = AppState::new(model, &settings);
    let app = router(state, &settings);
    let addr: SocketAddr = format!("{}:{}", settings.server.host, settings.server.port)
        .parse()
        .map_err(|e| Error::config("server.host", format!("{e}")))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("{addr}"), e))?;
    tracing::info!(
        "listening on http://{addr} (ready {:.0} ms after start)",
        start.elapsed().as_secs_f64() * 1e3
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .map_err(|e| Error::io(format!("{addr}"), e))
}

fn train_default(
    settings: Settings,
    models: std::path::PathBuf,
    options: crate::inference::SessionOptions,
) -> Result<()> {
    let source = crate::ingest::DataSource::parse(&settings.data.source)?;
    let req = crate::train::TrainRequest {
        source,
        device: settings.device,
        model_config: crate::train::classifier::ModelConfig::load(None)?,
        out_dir: std::env::temp_dir().join(format!("categorizer-first-run-{}", std::process::id())),
        settings,
        progress: false,
    };
    let outcome = crate::train::run(&req)?;
    let p = crate::model::publish(&outcome, &crate::store::LocalStore::new(models), &options)?;
    tracing::info!("trained and stored model {}", p.version);
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub row: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            row: None,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<usize>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                row: self.row,
            },
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the prediction queue is full; retry shortly",
            ),
            BatchError::Expired => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "deadline_exceeded",
                "the request waited longer than its deadline",
            ),
            BatchError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the inference worker is not running",
            ),
            BatchError::Inference(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "inference_failed", m)
            }
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<AppState>) -> Response {
    let version = s.inner.manifest.read().await.version.clone();
    axum::Json(serde_json::json!({"ready": true, "model_version": version})).into_response()
}

async fn model_manifest(State(s): State<AppState>) -> Response {
    let m = s.inner.manifest.read().await.clone();
    axum::Json(&*m).into_response()
}

#[derive(Serialize)]
struct PredictResponse<'a> {
    model_version: &'a str,
    predictions: Vec<PredictionOut<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PredictionOut<'a> {
    Ok {
        segment: i64,
        segment_name: &'a str,
        probabilities: &'a [f32],
    },
    Err {
        error: RowErrorOut<'a>,
    },
}

#[derive(Serialize)]
struct RowErrorOut<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    row: usize,
}

/// `POST /api/v1/predict`: `{"customers": [{...21 fields...}, ...]}` → predictions in input
/// order; a row with a bad value gets `{"error": {...}}` in its slot and the others are
/// predicted.
async fn predict(
    State(s): State<AppState>,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let deadline = Instant::now() + s.inner.timeout;
    let body = body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                "the request body is over the size limit",
            )
        } else {
            ApiError::new(status, "bad_body", r.body_text())
        }
    })?;
    let parsed: PredictBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not a valid prediction request: {e}"),
        )
    })?;
    let n = parsed.customers.len();
    if n > s.inner.max_customers {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_customers",
            format!(
                "{n} customers in one request; the limit is {}",
                s.inner.max_customers
            ),
        ));
    }
    let mut rows = Vec::with_capacity(n * N_FEATURES);
    let mut valid = 0usize;
    for r in &parsed.customers {
        if let Ok(v) = &r.0 {
            rows.extend_from_slice(v);
            valid += 1;
        }
    }
    let answer = if valid > 0 {
        Some(s.inner.batcher.predict(rows, valid, deadline).await?)
    } else {
        None
    };
    let version = match &answer {
        Some(a) => a.model_version.to_string(),
        None => s.inner.manifest.read().await.version.clone(),
    };
    let mut out = Vec::with_capacity(n);
    let mut at = 0usize;
    for (i, r) in parsed.customers.iter().enumerate() {
        match (&r.0, &answer) {
            (Ok(_), Some(a)) => {
                let seg = a.segment[at];
                out.push(PredictionOut::Ok {
                    segment: seg,
                    segment_name: a
                        .segment_names
                        .get(seg as usize)
                        .map(String::as_str)
                        .unwrap_or(""),
                    probabilities: &a.probabilities[at * a.k..(at + 1) * a.k],
                });
                at += 1;
            }
            (Err(e), _) => out.push(PredictionOut::Err {
                error: RowErrorOut {
                    code: "invalid_value",
                    message: &e.message,
                    field: e.field.as_deref(),
                    row: i,
                },
            }),
            (Ok(_), None) => unreachable!("a valid row always has an answer"),
        }
    }
    let body = serde_json::to_vec(&PredictResponse {
        model_version: &version,
        predictions: out,
    })
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding", e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}
