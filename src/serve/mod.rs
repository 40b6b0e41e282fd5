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

pub mod auth;
pub mod batcher;
pub mod conn;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod monitor;
pub mod negotiate;
pub mod openapi;
pub mod routes;
pub mod rows;
pub mod svg;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::serve::ListenerExt;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::registry::follow::{self, Follower, blocking};
use crate::registry::{Manifest, ServedModel};
use batcher::{Answer, BatchError, Batcher, BatcherConfig};
use error::ApiError;
use jobs::{JobOptions, Jobs, TrainingSetup};
use metrics::Metrics;

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
    /// Without a token, loopback clients may train (false behind a proxy).
    loopback_trusted: bool,
    /// SIGTERM came: `/readyz` answers 503 and every answer closes its connection, while
    /// requests are still served for `server.drain_ms`.
    draining: std::sync::atomic::AtomicBool,
    max_customers: usize,
    timeout: Duration,
    monitor: monitor::Monitor,
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
                split_rows: sv.batcher.split_rows,
                sessions: std::thread::available_parallelism().map_or(1, |n| n.get()),
                session_options: crate::inference::SessionOptions::from_settings(
                    &settings.inference,
                ),
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
        // This instance's tag: its job ids and its monitoring folder in the store carry it.
        let tag = jobs::replica_tag();
        let monitor = {
            let serving = serving.clone();
            monitor::Monitor::start(
                &settings.monitoring,
                &settings.validation,
                training.as_ref().map(|t| t.store.clone()),
                &tag,
                Box::new(move || serving.current().manifest),
            )
        };
        let jobs = training.map(|setup| {
            let serving = serving.clone();
            Jobs::start(setup, Box::new(move |m| serving.install_blocking(m)), &tag)
        });
        if let (Some(jobs), true) = (&jobs, settings.monitoring.retrain_on_drift) {
            let (jobs, source) = (jobs.clone(), settings.monitoring.retrain_source.clone());
            monitor.set_retrain(Box::new(move |reason| {
                let options = JobOptions {
                    source: source.clone(),
                    ..Default::default()
                };
                jobs.submit_with(options, Some(reason))
                    .map(|v| v.id)
                    .map_err(|e| e.to_string())
            }));
        }
        Self {
            inner: Arc::new(Inner {
                serving,
                validation,
                metrics,
                jobs,
                admin_token,
                loopback_trusted: !sv.behind_proxy,
                draining: std::sync::atomic::AtomicBool::new(false),
                max_customers: sv.max_customers,
                timeout: Duration::from_millis(sv.request_timeout_ms),
                monitor,
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

    pub fn monitor(&self) -> &monitor::Monitor {
        &self.inner.monitor
    }

    fn batcher(&self) -> &Batcher {
        &self.inner.serving.batcher
    }

    /// The training jobs; None when the server was started without training.
    fn jobs(&self) -> Option<&Jobs> {
        self.inner.jobs.as_ref()
    }

    pub(crate) fn inner_loopback_trusted(&self) -> bool {
        self.inner.loopback_trusted
    }

    /// Whether the process is draining before it stops (see [`Inner::draining`]).
    pub fn draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts the drain: readiness fails, connections close after their answer.
    pub fn start_draining(&self) {
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn admin_token(&self) -> Option<&str> {
        self.inner.admin_token.as_deref()
    }

    fn max_customers(&self) -> usize {
        self.inner.max_customers
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

    /// Predicts `n` rows of 21 features through the batcher, within the request deadline;
    /// with `explain`, the answer can explain each row.
    pub async fn predict_rows(
        &self,
        rows: Vec<f32>,
        n: usize,
        explain: bool,
    ) -> Result<Answer, ApiError> {
        let deadline = Instant::now() + self.inner.timeout;
        // The monitor gets a copy of the rows (the batcher takes them) and the answer's
        // segments; its thread does the rest.
        let kept = self.inner.monitor.enabled().then(|| rows.clone());
        let answer = self
            .inner
            .serving
            .batcher
            .predict(rows, n, deadline, explain)
            .await;
        if let (Some(rows), Ok(a)) = (kept, &answer) {
            let atypical = a.segments.atypical_flags(&a.segment, &a.distances, a.k);
            self.inner
                .monitor
                .scored(a.model_version.clone(), rows, a.segment.clone(), atypical);
        }
        answer.map_err(|e| {
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

impl Follower for AppState {
    fn served(&self) -> Arc<Manifest> {
        self.manifest()
    }

    async fn install(&self, model: ServedModel) -> Result<()> {
        self.swap(model).await
    }

    fn switched(&self) {
        self.metrics()
            .model_switches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn refused(&self) {
        self.metrics()
            .model_refusals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Body limit of the routes that take a few fields (the form, training jobs): a request of
/// the prediction body's size is refused before it is read.
pub(crate) const SMALL_BODY_BYTES: usize = 16 * 1024;

/// The router with every route and layer.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let sv = &settings.server;
    let (routes, document) = routes::all().split_for_parts();
    routes
        .layer(axum::Extension(openapi::Document::new(&document)))
        .fallback(error::not_found)
        .with_state(state.clone())
        // Inner to outer: a handler's panic as a 500; the body limit (a Content-Length over it is refused before reading,
        // a streamed body is cut off at it); the overall time limit; plain-text errors of
        // those layers and of axum turned into JSON errors; compression for clients that ask;
        // tracing; metrics (which see every answer).
        .layer(middleware::from_fn(error::catch_panics))
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            sv.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(sv.request_timeout_ms.saturating_add(1000)),
        ))
        .layer(middleware::from_fn(error::json_errors))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn_with_state(
            state.inner.metrics.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn_with_state(state, close_when_draining))
}

/// While draining, every answer says `Connection: close`: a client (or a balancer's pool) that
/// keeps connections alive opens its next one elsewhere, instead of sending a request down a
/// connection this process is about to close.
async fn close_when_draining(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if state.draining() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
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
    let crate::workflow::Start {
        model,
        store,
        cache,
    } = {
        let (m, s, o, c) = (
            models.clone(),
            settings.clone(),
            options.clone(),
            model_config.clone(),
        );
        blocking(move || crate::workflow::start(&m, &s, &o, &c)).await?
    };
    tracing::info!(
        "model {} ({}) loaded from {}",
        model.manifest.version,
        model.manifest.classifier,
        store.describe()
    );
    let training = training_setup(&settings, model_config, store.clone(), options.clone())?;
    let state = AppState::new(model, &settings, Some(training));
    if settings.models.poll_interval_ms > 0 {
        follow::watch_store(
            state.clone(),
            store,
            cache,
            options,
            Duration::from_millis(settings.models.poll_interval_ms),
        );
    }
    let app = router(state.clone(), &settings);
    let monitor = state.monitor().clone();
    let (listener, addr) = listen(&settings).await?;
    tracing::info!(
        "listening on http://{addr} (ready {:.0} ms after start)",
        start.elapsed().as_secs_f64() * 1e3
    );
    let ended = serve_until_stopped(listener, addr, app, state, &settings.server).await;
    // The open monitoring buckets go to the store, so a restart loses none of what was seen.
    let _ = tokio::task::spawn_blocking(move || monitor.flush(Duration::from_secs(2))).await;
    ended
}

/// What the training endpoints run with: the service's settings and store, and the admin
/// token from the environment.
fn training_setup(
    settings: &Settings,
    model_config: crate::train::classifier::ModelConfig,
    store: Arc<dyn crate::registry::store::ModelStore>,
    options: crate::inference::SessionOptions,
) -> Result<TrainingSetup> {
    let admin_token = auth::admin_token_from_env()?;
    if admin_token.is_none() {
        tracing::info!(
            "CATEGORIZER_ADMIN_TOKEN is not set: the training endpoints accept loopback clients only"
        );
    }
    Ok(TrainingSetup {
        settings: settings.clone(),
        model_config,
        store,
        options,
        admin_token,
        validation: Default::default(),
    })
}

/// Binds `server.host:server.port`.
async fn listen(settings: &Settings) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let addr: SocketAddr = format!("{}:{}", settings.server.host, settings.server.port)
        .parse()
        .map_err(|e| Error::config("server.host", format!("{e}")))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("{addr}"), e))?;
    Ok((listener, addr))
}

/// Serves `app` on `listener` until the shutdown signal, the drain and the requests in flight
/// are done, or the grace period after the signal has passed.
async fn serve_until_stopped(
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    app: Router,
    state: AppState,
    sv: &crate::config::ServerSettings,
) -> Result<()> {
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
    let drain = Duration::from_millis(sv.drain_ms);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        drain_after_signal(&state, drain).await;
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

/// Waits for the shutdown signal, then drains for `drain`: the balancer keeps sending for a
/// while after it is told, so the service serves on, not ready, until it has noticed. A
/// second signal ends the drain at once.
async fn drain_after_signal(state: &AppState, drain: Duration) {
    shutdown().await;
    if drain.is_zero() {
        return;
    }
    state.start_draining();
    tracing::info!(
        "draining for {} ms: /readyz answers 503, requests are still served",
        drain.as_millis()
    );
    tokio::select! {
        () = tokio::time::sleep(drain) => {}
        () = shutdown() => tracing::info!("a second signal: the drain ends now"),
    }
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
