//! The HTTP service (axum): the web form, JSON batch prediction through the dynamic batcher,
//! training jobs, the model's manifest and page, health, readiness, metrics and the OpenAPI
//! document.
//!
//! Every JSON error has one shape, `{"error": {"code", "message", "field"?, "row"?}}`, with a
//! 4xx status for the client's mistakes: 400 malformed JSON, 401/403 training without the
//! token / from another host, 404 unknown route, 405 wrong method, 408 a request over the
//! time limit, 413 a body or a batch over its limit; 503 + Retry-After when a queue is full
//! or a deadline passes. A row with a bad value does not fail its request: it gets its own
//! error in its slot.

pub mod batcher;
pub mod conn;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod rows;
pub mod svg;
pub mod web;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::Serialize;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::model::{Manifest, ServedModel};
use crate::schema::N_FEATURES;
use crate::store::{LocalStore, ModelStore};
use batcher::{Answer, BatchError, Batcher, BatcherConfig};
use jobs::{JobError, JobOptions, JobState, Jobs, TrainingSetup};
use metrics::Metrics;
use rows::BodyError;

/// Shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// What answers predictions: the batcher's worker owns the model; the manifest is kept beside
/// it for the pages. Both switch together when a model is installed.
struct Serving {
    batcher: Batcher,
    current: RwLock<Current>,
}

/// The served model's manifest and its picture, drawn once per model.
#[derive(Clone)]
struct Current {
    manifest: Arc<Manifest>,
    plot: Arc<svg::Plot>,
}

impl Current {
    fn of(model: &ServedModel) -> Self {
        Self {
            plot: Arc::new(svg::Plot::new(&model.manifest)),
            manifest: Arc::new(model.manifest.clone()),
        }
    }
}

impl Serving {
    fn set_current(&self, current: Current) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = current;
    }

    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn install_blocking(&self, model: ServedModel) -> Result<()> {
        let current = Current::of(&model);
        self.batcher
            .swap_blocking(model)
            .map_err(|e| Error::Model(e.to_string()))?;
        self.set_current(current);
        Ok(())
    }
}

/// The latest validation report, shared with the training jobs.
pub type LatestValidation = Arc<RwLock<Option<Arc<crate::validate::Report>>>>;

struct Inner {
    serving: Arc<Serving>,
    validation: LatestValidation,
    metrics: Arc<Metrics>,
    jobs: Option<Jobs>,
    admin_token: Option<String>,
    max_customers: usize,
    timeout: Duration,
}

impl AppState {
    /// Serves `model`; with `training`, the training endpoints run jobs that publish to its
    /// store and install promoted models here.
    pub fn new(model: ServedModel, settings: &Settings, training: Option<TrainingSetup>) -> Self {
        let sv = &settings.server;
        let metrics = Arc::new(Metrics::default());
        let current = Current::of(&model);
        let batcher = Batcher::start(
            model,
            BatcherConfig {
                enabled: sv.batcher.enabled,
                max_batch_rows: sv.batcher.max_batch_rows,
                max_delay: Duration::from_micros(sv.batcher.max_delay_us),
                queue_capacity: sv.batcher.queue_capacity,
            },
            metrics.clone(),
        );
        let serving = Arc::new(Serving {
            batcher,
            current: RwLock::new(current),
        });
        let admin_token = training
            .as_ref()
            .and_then(|t| t.admin_token.clone())
            .filter(|t| !t.is_empty());
        let validation = training
            .as_ref()
            .map(|t| t.validation.clone())
            .unwrap_or_default();
        if let Ok(mut v) = validation.write() {
            // Until this service trains, the latest run is the one that trained its model.
            if v.is_none() {
                *v = serving.current().manifest.validation.clone().map(Arc::new);
            }
        }
        let jobs = training.map(|setup| {
            let serving = serving.clone();
            Jobs::start(setup, Box::new(move |m| serving.install_blocking(m)))
        });
        Self {
            inner: Arc::new(Inner {
                serving,
                validation,
                metrics,
                jobs,
                admin_token,
                max_customers: sv.max_customers,
                timeout: Duration::from_millis(sv.request_timeout_ms),
            }),
        }
    }

    /// Switches to `model` without dropping a request: queued rows finish on the old one.
    pub async fn swap(&self, model: ServedModel) -> Result<()> {
        let current = Current::of(&model);
        self.inner
            .serving
            .batcher
            .swap(model)
            .await
            .map_err(|e| Error::Model(e.to_string()))?;
        self.inner.serving.set_current(current);
        Ok(())
    }

    /// The served model's manifest.
    pub fn manifest(&self) -> Arc<Manifest> {
        self.inner.serving.current().manifest
    }

    /// The served model's manifest and its picture.
    pub fn current_plot(&self) -> (Arc<Manifest>, Arc<svg::Plot>) {
        let c = self.inner.serving.current();
        (c.manifest, c.plot)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The latest validation report: of this service's last training run, else of the run
    /// that trained the served model.
    pub fn validation(&self) -> Option<Arc<crate::validate::Report>> {
        self.inner
            .validation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Predicts `n` rows of 21 features through the batcher, within the request deadline.
    pub async fn predict_rows(&self, rows: Vec<f32>, n: usize) -> Result<Answer, ApiError> {
        let deadline = Instant::now() + self.inner.timeout;
        self.inner
            .serving
            .batcher
            .predict(rows, n, deadline)
            .await
            .map_err(|e| {
                if matches!(e, BatchError::Busy) {
                    self.inner
                        .metrics
                        .rejected_busy
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                ApiError::from(e)
            })
    }
}

/// Body limit of the routes that take a few fields (the form, training jobs): a request of
/// the prediction body's size is refused before it is read.
const SMALL_BODY_BYTES: usize = 16 * 1024;

/// The router with every route and layer.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let sv = &settings.server;
    let admin = Router::new()
        .route("/api/v1/train", post(start_job))
        .route("/train", get(start_default_job))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(get_job).delete(cancel_job))
        // A training request is a few settings: kilobytes, not the prediction body's limit.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            SMALL_BODY_BYTES,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route(
            "/",
            get(web::form).post(web::submit).layer(
                // The form's 21 short fields fit in far less.
                tower_http::limit::RequestBodyLimitLayer::new(SMALL_BODY_BYTES),
            ),
        )
        .route("/model", get(web::model_page))
        .route("/validation", get(web::validation_page))
        .route("/static/{file}", get(web::static_file))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/api/openapi.json", get(openapi_document))
        .route("/api/v1/model", get(model_manifest))
        .route("/api/v1/validation", get(validation_report))
        .route("/api/v1/predict", post(predict))
        .merge(admin)
        .fallback(not_found)
        .with_state(state.clone())
        // Inner to outer: a handler's panic as a 500; the body limit (a Content-Length over it is refused before reading,
        // a streamed body is cut off at it); the overall time limit; plain-text errors of
        // those layers and of axum turned into JSON errors; compression for clients that ask;
        // tracing; metrics (which see every answer).
        .layer(middleware::from_fn(catch_panics))
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            sv.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(sv.request_timeout_ms.saturating_add(1000)),
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn_with_state(
            state.inner.metrics.clone(),
            metrics::track,
        ))
}

/// Loads the current model of the store (`models`: a directory or `s3://bucket/prefix`),
/// training one on the built-in data first when the store is empty; follows the store's
/// current pointer; serves until Ctrl-C / SIGTERM.
pub async fn serve(
    settings: Settings,
    models: String,
    model_config: crate::train::classifier::ModelConfig,
) -> Result<()> {
    let start = Instant::now();
    let options = crate::inference::SessionOptions::from_settings(&settings.inference);
    let store = {
        let (m, s) = (models.clone(), settings.models.clone());
        blocking(move || crate::store::open(&m, &s)).await?
    };
    // A remote store's served model is cached locally, for a start while it is unreachable.
    let cache = models
        .starts_with("s3://")
        .then(|| LocalStore::new(&settings.models.s3.cache_dir));
    let current = {
        let s = store.clone();
        blocking(move || s.current()).await
    };
    let model = match current {
        Ok(Some(version)) => {
            let (s, c, o) = (store.clone(), cache.clone(), options.clone());
            blocking(move || fetch_model(s.as_ref(), &version, c.as_ref(), &o)).await?
        }
        Ok(None) => {
            tracing::warn!(
                "no model in {}: training one on the built-in data ({}) first",
                store.describe(),
                settings.data.source
            );
            let (st, s, o, c) = (
                store.clone(),
                settings.clone(),
                options.clone(),
                model_config.clone(),
            );
            let version = blocking(move || train_default(st.as_ref(), s, o, c)).await?;
            let (s, c, o) = (store.clone(), cache.clone(), options.clone());
            blocking(move || fetch_model(s.as_ref(), &version, c.as_ref(), &o)).await?
        }
        Err(e) => {
            let Some(cache) = cache.clone() else {
                return Err(e);
            };
            let o = options.clone();
            let d = cache.dir().display().to_string();
            let cached = blocking(move || match cache.current()? {
                Some(v) => ServedModel::from_store(&cache, &v, &o).map(Some),
                None => Ok(None),
            })
            .await?;
            match cached {
                Some(m) => {
                    tracing::warn!(
                        "the model store {} cannot be reached ({e}): serving the cached model {} from {d}; \
                         the store is polled and its current model taken when it answers",
                        store.describe(),
                        m.manifest.version
                    );
                    m
                }
                None => {
                    return Err(Error::Store(format!(
                        "{} cannot be reached ({e}) and no model is cached in {d}: nothing to serve",
                        store.describe()
                    )));
                }
            }
        }
    };
    tracing::info!(
        "model {} ({}) loaded from {}",
        model.manifest.version,
        model.manifest.classifier,
        store.describe()
    );
    let admin_token = std::env::var("CATEGORIZER_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if admin_token.is_none() {
        tracing::info!(
            "CATEGORIZER_ADMIN_TOKEN is not set: the training endpoints accept loopback clients only"
        );
    }
    let training = TrainingSetup {
        settings: settings.clone(),
        model_config,
        store: store.clone(),
        options: options.clone(),
        admin_token,
        validation: Default::default(),
    };
    let state = AppState::new(model, &settings, Some(training));
    if settings.models.poll_interval_ms > 0 {
        watch_store(
            state.clone(),
            store,
            cache,
            options,
            Duration::from_millis(settings.models.poll_interval_ms),
        );
    }
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
    let sv = &settings.server;
    let listener = conn::GuardedListener::new(
        listener,
        sv.max_connections,
        conn::Limits {
            idle: Duration::from_millis(sv.idle_timeout_ms),
            head: Duration::from_millis(sv.header_read_timeout_ms),
        },
    )
    .tap_io(|_| {});
    // On the signal the server stops accepting and lets requests in flight finish; after the
    // grace period the process ends anyway (an open half-sent request must not hold it).
    let (stop, mut stopping) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown().await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = stop.send(true);
    });
    let grace = Duration::from_millis(sv.shutdown_grace_ms);
    let deadline = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| Error::io(format!("{addr}"), e)),
        () = deadline => {
            tracing::warn!(
                "connections still open {} ms after the shutdown signal: exiting anyway",
                grace.as_millis()
            );
            Ok(())
        }
    }
}

/// Runs blocking store or training work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Model(format!("a background task failed: {e}")))?
}

/// Loads `version` from the store and, given a cache, keeps a copy there as its current model.
pub fn fetch_model(
    store: &dyn ModelStore,
    version: &str,
    cache: Option<&LocalStore>,
    options: &crate::inference::SessionOptions,
) -> Result<ServedModel> {
    let manifest = store.get(version, crate::store::MANIFEST_FILE)?;
    let onnx = store.get(version, crate::store::MODEL_FILE)?;
    let model = ServedModel::from_files(
        &manifest,
        &onnx,
        &format!("{}/{version}", store.describe()),
        options,
    )?;
    if let Some(cache) = cache {
        let cached = if cache.versions()?.iter().any(|v| v == version) {
            Ok(())
        } else {
            cache.put(
                version,
                &[
                    (crate::store::MODEL_FILE, &onnx),
                    (crate::store::MANIFEST_FILE, &manifest),
                ],
            )
        };
        if let Err(e) = cached.and_then(|()| cache.set_current(version)) {
            tracing::warn!(
                "model {version} could not be cached in {}: {e}",
                cache.describe()
            );
        }
    }
    Ok(model)
}

/// Follows the store's current pointer: every `interval` it is read and, when it names
/// another version than the served one, that version is loaded, checked (it must load in
/// ONNX Runtime with the right signature and this service's feature schema) and switched to
/// through the batcher, between two batches, so no request is dropped. A model that fails
/// the checks is refused and logged once; the served one stays.
pub fn watch_store(
    state: AppState,
    store: Arc<dyn ModelStore>,
    cache: Option<LocalStore>,
    options: crate::inference::SessionOptions,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut refused: Option<String> = None;
        // The store version last loaded: a version directory copied under another name holds
        // a manifest with the old name, and must not be reloaded on every poll.
        let mut loaded_from: Option<String> = None;
        let mut unreachable = false;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = store.clone();
            let current = match blocking(move || s.current()).await {
                Ok(c) => {
                    if unreachable {
                        tracing::info!("the model store {} answers again", store.describe());
                        unreachable = false;
                    }
                    c
                }
                Err(e) => {
                    if !unreachable {
                        tracing::warn!("the model store's current pointer cannot be read: {e}");
                        unreachable = true;
                    }
                    continue;
                }
            };
            let served = state.manifest().version.clone();
            let Some(version) = current.filter(|v| *v != served) else {
                continue;
            };
            if refused.as_deref() == Some(version.as_str())
                || loaded_from.as_deref() == Some(version.as_str())
            {
                continue;
            }
            let (s, c, o, v) = (
                store.clone(),
                cache.clone(),
                options.clone(),
                version.clone(),
            );
            let loaded = blocking(move || fetch_model(s.as_ref(), &v, c.as_ref(), &o)).await;
            let outcome = match loaded {
                // The same model (by its checksum) under another name: nothing to switch.
                Ok(model) if model.manifest.onnx.sha256 == state.manifest().onnx.sha256 => {
                    tracing::info!(
                        "the store's current version {version} is the model already served \
                         ({served}, the same SHA-256)"
                    );
                    loaded_from = Some(version);
                    continue;
                }
                Ok(model) => state.swap(model).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    state
                        .metrics()
                        .model_switches
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(
                        "switched from model {served} to {version}, the store's new current model"
                    );
                    refused = None;
                    loaded_from = Some(version);
                }
                Err(e) => {
                    state
                        .metrics()
                        .model_refusals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(
                        "refused model {version} of {}: {e}; still serving {served}",
                        store.describe()
                    );
                    refused = Some(version);
                }
            }
        }
    })
}

fn train_default(
    store: &dyn ModelStore,
    settings: Settings,
    options: crate::inference::SessionOptions,
    model_config: crate::train::classifier::ModelConfig,
) -> Result<String> {
    let source = crate::ingest::DataSource::parse(&settings.data.source)?;
    let out_dir =
        std::env::temp_dir().join(format!("categorizer-first-run-{}", std::process::id()));
    let req = crate::train::TrainRequest::new(source, settings, model_config, out_dir);
    let outcome = crate::train::run(&req)?;
    let _ = std::fs::remove_dir_all(&req.out_dir);
    let p = crate::model::publish(&outcome, store, &options)?;
    tracing::info!("trained and stored model {}", p.version);
    Ok(p.version)
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
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
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

/// A panic in a handler becomes a 500 in the JSON error shape, logged, instead of a dropped
/// connection; the server goes on serving.
async fn catch_panics(req: Request, next: Next) -> Response {
    use futures_lite::FutureExt;
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!("{method} {path} panicked: {what}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed on this request (a bug, logged); other requests are served",
            )
            .into_response()
        }
    }
}

/// Turns the empty or plain-text error responses of the layers and of axum (405, 408, 413,
/// ...) into the JSON error shape; JSON errors and HTML pages pass untouched.
async fn json_errors(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    let typed = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || typed {
        return r;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method".to_string(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took longer than the server's time limit".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            "the request body is over the size limit".to_string(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the body's content type is not accepted here".to_string(),
        ),
        s => (
            "http_error",
            s.canonical_reason().unwrap_or("error").to_string(),
        ),
    };
    let mut json = ApiError::new(status, code, message).into_response();
    if let Some(allow) = r.headers().get(header::ALLOW) {
        json.headers_mut().insert(header::ALLOW, allow.clone());
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body was not read: the connection cannot carry another request, so tell the
        // client not to reuse it (hyper closes it after this response).
        json.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    json
}

/// Guards the training endpoints: with an admin token configured, `Authorization: Bearer
/// <token>`; without one, loopback clients only.
async fn require_admin(State(s): State<AppState>, req: Request, next: Next) -> Response {
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
    match authorize(req.headers(), peer, s.inner.admin_token.as_deref()) {
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
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "training endpoints need `Authorization: Bearer <CATEGORIZER_ADMIN_TOKEN>`",
                ))
            }
        }
        None if peer.is_some_and(|p| p.ip().is_loopback()) => Ok(()),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "training endpoints accept only loopback clients while CATEGORIZER_ADMIN_TOKEN is not set",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready while the inference worker takes requests; 503 once it has stopped.
async fn readyz(State(s): State<AppState>) -> Response {
    let version = s.manifest().version.clone();
    if !s.inner.serving.batcher.is_running() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the inference worker has stopped",
        )
        .into_response();
    }
    axum::Json(serde_json::json!({"ready": true, "model_version": version})).into_response()
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
            StatusCode::NOT_FOUND,
            "no_validation",
            "no training run of this service, nor the one that trained the served model, left a validation report",
        )
        .into_response(),
    }
}

async fn openapi_document() -> Response {
    axum::Json(openapi::document()).into_response()
}

async fn prometheus(State(s): State<AppState>) -> Response {
    let m = s.manifest();
    let (queued, running) = s.inner.jobs.as_ref().map_or((0, 0), |j| {
        (j.count(JobState::Queued), j.count(JobState::Running))
    });
    let text = s.inner.metrics.render(&metrics::Gauges {
        queue_depth: s.inner.serving.batcher.queue_depth(),
        model_version: &m.version,
        model_classifier: &m.classifier,
        jobs_queued: queued,
        jobs_running: running,
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let message = e.to_string();
        match e {
            JobError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "job_not_found", message),
            JobError::Ended(_) => ApiError::new(StatusCode::CONFLICT, "job_ended", message),
            // The client's own doing (jobs submitted faster than they run): 429, not a 5xx.
            JobError::QueueFull => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "training_queue_full",
                message,
            ),
            JobError::BadOption { field, .. } => {
                let mut a = ApiError::new(StatusCode::BAD_REQUEST, "invalid_option", message);
                a.field = Some(field.into());
                a
            }
        }
    }
}

fn jobs(s: &AppState) -> Result<&Jobs, ApiError> {
    s.inner.jobs.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "training_disabled",
            "this server was started without training",
        )
    })
}

fn accepted(view: jobs::JobView) -> Response {
    let location = format!("/api/v1/jobs/{}", view.id);
    let mut r = (StatusCode::ACCEPTED, axum::Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `POST /api/v1/train`: `{"source"?, "device"?, "classifier"?}` (an empty body: defaults).
async fn start_job(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let options: JobOptions = if body.iter().all(u8::is_ascii_whitespace) {
        JobOptions::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid training options: {e}"),
            )
        })?
    };
    Ok(accepted(jobs(&s)?.submit(options)?))
}

/// `GET /train`: the original app's route; queues a job with the default options.
async fn start_default_job(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(accepted(jobs(&s)?.submit(JobOptions::default())?))
}

async fn list_jobs(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(axum::Json(serde_json::json!({"jobs": jobs(&s)?.list()})).into_response())
}

async fn get_job(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(jobs(&s)?.get(&id)?).into_response())
}

async fn cancel_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = jobs(&s)?.cancel(&id)?;
    Ok((StatusCode::ACCEPTED, axum::Json(view)).into_response())
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
    // A big body is parsed (and its answer encoded) on the blocking pool: the async workers
    // stay free for the small requests that arrive meanwhile.
    let big = body.len() > OFF_WORKER_BYTES;
    let max_customers = s.inner.max_customers;
    let (parsed, rows, valid) =
        off_worker(big, move || read_predict_body(&body, max_customers)).await?;
    let answer = if valid > 0 {
        Some(s.predict_rows(rows, valid).await?)
    } else {
        None
    };
    let version = match &answer {
        Some(a) => a.model_version.to_string(),
        None => s.manifest().version.clone(),
    };
    let body = off_worker(big, move || {
        encode_predictions(&parsed, answer.as_ref(), &version)
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Bodies over this size are parsed and answered on the blocking pool.
const OFF_WORKER_BYTES: usize = 64 * 1024;

/// Runs `f` on the blocking pool when `big`, inline otherwise.
async fn off_worker<T: Send + 'static>(
    big: bool,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if !big {
        return f();
    }
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("reading the request failed: {e}"),
        )
    })?
}

/// The customers of a prediction body, and the feature rows of the valid ones.
fn read_predict_body(
    body: &[u8],
    max_customers: usize,
) -> Result<(rows::PredictBody, Vec<f32>, usize), ApiError> {
    let parsed = rows::parse_predict_body(body, max_customers).map_err(|e| match e {
        BodyError::TooManyCustomers { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_customers",
            format!("more than {limit} customers in one request; the limit is {limit}"),
        ),
        BodyError::Malformed(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not a valid prediction request: {e}"),
        ),
    })?;
    let mut rows = Vec::with_capacity(parsed.customers.len() * N_FEATURES);
    let mut valid = 0usize;
    for r in &parsed.customers {
        if let Ok(v) = &r.0 {
            rows.extend_from_slice(v);
            valid += 1;
        }
    }
    Ok((parsed, rows, valid))
}

/// The JSON answer: each customer's prediction or error, in input order.
fn encode_predictions(
    parsed: &rows::PredictBody,
    answer: Option<&Answer>,
    version: &str,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(parsed.customers.len());
    let mut at = 0usize;
    for (i, r) in parsed.customers.iter().enumerate() {
        match (&r.0, answer) {
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
    serde_json::to_vec(&PredictResponse {
        model_version: version,
        predictions: out,
    })
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_json_shape_and_the_server_goes_on() {
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(middleware::from_fn(catch_panics));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        for _ in 0..2 {
            let r = client
                .get(format!("http://{addr}/boom"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 500);
            let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            assert_eq!(v["error"]["code"], "internal", "{v}");
        }
        let r = client
            .get(format!("http://{addr}/fine"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "fine");
    }
}
