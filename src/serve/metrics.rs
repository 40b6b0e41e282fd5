//! Prometheus metrics: every route has a slot of atomic counters and histogram buckets,
//! labelled by the route template axum matched (`MatchedPath`), so a new route is counted
//! under its own name with nothing to list. Recording a request takes a shared read lock on
//! the slot table (a write lock only the first time a route is seen) and a handful of relaxed
//! atomic adds.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// The label of requests that matched no route (the fallback's 404s).
pub const OTHER: &str = "other";

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BOUNDS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds of the formed-batch-size buckets, in rows.
const BATCH_BOUNDS: [f64; 15] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0,
    262144.0,
];

/// A Prometheus histogram with fixed bounds (`+Inf` implied).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), the last one `+Inf`.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum of observations in millionths.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6).round() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or("+Inf".to_string(), |v| v.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {}", self.count());
    }
}

/// Status classes counted per route.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug)]
struct RouteMetrics {
    by_class: [AtomicU64; 5],
    latency: Histogram,
}

impl Default for RouteMetrics {
    fn default() -> Self {
        Self {
            by_class: Default::default(),
            latency: Histogram::new(&LATENCY_BOUNDS),
        }
    }
}

/// Everything `/metrics` reports that is counted as it happens.
#[derive(Debug)]
pub struct Metrics {
    /// Route template → its counters. Bounded: the router's templates and [`OTHER`].
    routes: RwLock<BTreeMap<String, RouteMetrics>>,
    /// Rows per batch the inference worker ran.
    pub batch_rows: Histogram,
    /// Where a prediction request's time goes, by [`Stage`].
    pub stages: [Histogram; Stage::ALL.len()],
    /// Requests the batcher refused because its queue was full.
    pub rejected_busy: AtomicU64,
    /// Requests whose deadline passed while they waited, or whose client had gone.
    pub expired: AtomicU64,
    /// Models switched to because the store's current pointer moved.
    pub model_switches: AtomicU64,
    /// New current models of the store refused (unreadable, corrupt or incompatible).
    pub model_refusals: AtomicU64,
    /// Batches whose inference panicked (their requests got an error; the worker went on).
    pub inference_panics: AtomicU64,
    /// Customers predicted, by segment.
    pub predictions: SegmentCounters,
    /// Of them, the atypical ones (beyond their segment's 99th percentile distance).
    pub atypical: SegmentCounters,
}

pub use crate::config::MAX_SEGMENTS;

/// One counter per segment id.
#[derive(Debug)]
pub struct SegmentCounters([AtomicU64; MAX_SEGMENTS]);

impl Default for SegmentCounters {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl SegmentCounters {
    pub fn add(&self, segment: usize, n: u64) {
        if let Some(c) = self.0.get(segment) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self, segment: usize) -> u64 {
        self.0.get(segment).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            routes: Default::default(),
            batch_rows: Histogram::new(&BATCH_BOUNDS),
            stages: std::array::from_fn(|_| Histogram::new(&LATENCY_BOUNDS)),
            rejected_busy: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            model_switches: AtomicU64::new(0),
            model_refusals: AtomicU64::new(0),
            inference_panics: AtomicU64::new(0),
            predictions: SegmentCounters::default(),
            atypical: SegmentCounters::default(),
        }
    }
}

/// The steps of a prediction, timed in `categorizer_predict_stage_seconds{stage}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Parsing and checking the body into the feature matrix (per request).
    Read,
    /// Waiting in the batcher's queue and being scored (per request).
    Batcher,
    /// One ONNX Runtime run of a formed batch (per batch).
    Inference,
    /// Writing the answer (per request).
    Encode,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Read, Stage::Batcher, Stage::Inference, Stage::Encode];

    fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Batcher => "batcher",
            Stage::Inference => "inference",
            Stage::Encode => "encode",
        }
    }
}

/// Point-in-time values `/metrics` adds to the counters.
pub struct Gauges<'a> {
    pub queue_depth: usize,
    pub model_version: &'a str,
    pub model_classifier: &'a str,
    pub jobs_queued: usize,
    pub jobs_running: usize,
    /// The monitor's last periodic report, and its counters (dropped rows, buckets written,
    /// writes failed).
    pub monitoring: Option<std::sync::Arc<crate::monitor::Report>>,
    pub monitoring_counters: (u64, u64, u64),
}

impl Metrics {
    /// Times one step of a prediction.
    pub fn stage(&self, stage: Stage, since: Instant) {
        self.stages[stage as usize].observe(since.elapsed().as_secs_f64());
    }

    /// Counts a request answered on `route` (a route template, or [`OTHER`]).
    pub fn record(&self, route: &str, status: u16, seconds: f64) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        let add = |r: &RouteMetrics| {
            r.by_class[class].fetch_add(1, Ordering::Relaxed);
            r.latency.observe(seconds);
        };
        if let Some(r) = self.read_routes().get(route) {
            return add(r);
        }
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        add(routes.entry(route.to_string()).or_default());
    }

    fn read_routes(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, RouteMetrics>> {
        self.routes.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests answered on `route` with a status of `class` (1..=5).
    pub fn requests(&self, route: &str, class: usize) -> u64 {
        self.read_routes()
            .get(route)
            .map_or(0, |r| r.by_class[class - 1].load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition format.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_http(&mut out);
        self.render_prediction(&mut out);
        self.render_service(&mut out, g);
        self.render_segments(&mut out);
        render_monitoring(&mut out, g);
        out
    }

    /// Requests and their latency, by route.
    fn render_http(&self, out: &mut String) {
        family(
            out,
            "categorizer_http_requests_total",
            COUNTER,
            "HTTP requests answered, by route and status class.",
        );
        let routes = self.read_routes();
        for (route, m) in routes.iter() {
            for (class, c) in CLASSES.iter().zip(&m.by_class) {
                let c = c.load(Ordering::Relaxed);
                if c > 0 {
                    let _ = writeln!(
                        out,
                        "categorizer_http_requests_total{{route=\"{route}\",status=\"{class}\"}} {c}"
                    );
                }
            }
        }
        family(
            out,
            "categorizer_http_request_duration_seconds",
            HISTOGRAM,
            "Time from request to response head, by route.",
        );
        for (route, m) in routes.iter() {
            if m.latency.count() > 0 {
                m.latency.write(
                    out,
                    "categorizer_http_request_duration_seconds",
                    &format!("route=\"{route}\""),
                );
            }
        }
    }

    /// The batches the inference worker formed, and where prediction time goes.
    fn render_prediction(&self, out: &mut String) {
        family(
            out,
            "categorizer_batch_rows",
            HISTOGRAM,
            "Rows in each batch the inference worker ran.",
        );
        self.batch_rows.write(out, "categorizer_batch_rows", "");
        family(
            out,
            "categorizer_predict_stage_seconds",
            HISTOGRAM,
            "Where prediction time goes: read (parse and check a request), batcher (queue and scoring, per request), inference (one ONNX Runtime run, per batch), encode (the answer).",
        );
        for (stage, h) in Stage::ALL.iter().zip(&self.stages) {
            h.write(
                out,
                "categorizer_predict_stage_seconds",
                &format!("stage=\"{}\"", stage.name()),
            );
        }
    }

    /// The batcher's refusals and queue, the served model, the training jobs.
    fn render_service(&self, out: &mut String, g: &Gauges) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        family(
            out,
            "categorizer_batcher_rejected_total",
            COUNTER,
            "Prediction requests refused with 503, by reason.",
        );
        let _ = writeln!(
            out,
            "categorizer_batcher_rejected_total{{reason=\"queue_full\"}} {}\n\
             categorizer_batcher_rejected_total{{reason=\"deadline\"}} {}",
            load(&self.rejected_busy),
            load(&self.expired),
        );
        let help = "Prediction requests waiting for the inference worker.";
        single(
            out,
            "categorizer_batcher_queue_depth",
            GAUGE,
            help,
            g.queue_depth,
        );
        family(
            out,
            "categorizer_model_info",
            GAUGE,
            "The model being served (value 1).",
        );
        let _ = writeln!(
            out,
            "categorizer_model_info{{version=\"{}\",classifier=\"{}\"}} 1",
            escape(g.model_version),
            escape(g.model_classifier),
        );
        family(
            out,
            "categorizer_training_jobs",
            GAUGE,
            "Training jobs by state.",
        );
        let _ = writeln!(
            out,
            "categorizer_training_jobs{{state=\"queued\"}} {}\n\
             categorizer_training_jobs{{state=\"running\"}} {}",
            g.jobs_queued, g.jobs_running,
        );
        let help = "Switches to the store's new current model.";
        let switches = load(&self.model_switches);
        single(
            out,
            "categorizer_model_switches_total",
            COUNTER,
            help,
            switches,
        );
        let help = "New current models refused (corrupt or incompatible).";
        let refusals = load(&self.model_refusals);
        single(
            out,
            "categorizer_model_refusals_total",
            COUNTER,
            help,
            refusals,
        );
        let help = "Inference batches that panicked; the worker recovered.";
        let panics = load(&self.inference_panics);
        single(
            out,
            "categorizer_inference_panics_total",
            COUNTER,
            help,
            panics,
        );
    }

    /// Customers predicted and atypical ones, by segment (the segments seen so far).
    fn render_segments(&self, out: &mut String) {
        family(
            out,
            "categorizer_predictions_total",
            COUNTER,
            "Customers predicted, by segment.",
        );
        let seen: Vec<usize> = (0..MAX_SEGMENTS)
            .filter(|&s| self.predictions.get(s) > 0)
            .collect();
        for &s in &seen {
            let _ = writeln!(
                out,
                "categorizer_predictions_total{{segment=\"{s}\"}} {}",
                self.predictions.get(s)
            );
        }
        family(
            out,
            "categorizer_atypical_total",
            COUNTER,
            "Customers predicted whose distance to their segment's \
             centre is beyond its training 99th percentile, by segment.",
        );
        for &s in &seen {
            let _ = writeln!(
                out,
                "categorizer_atypical_total{{segment=\"{s}\"}} {}",
                self.atypical.get(s)
            );
        }
    }
}

/// Prometheus metric types, as `# TYPE` names them.
const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";
const HISTOGRAM: &str = "histogram";

/// A metric family's `# HELP` and `# TYPE` lines; its samples follow.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric family of one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The monitor's gauges: its last report of the window (refreshed every
/// `monitoring.interval_ms`), and its counters.
fn render_monitoring(out: &mut String, g: &Gauges) {
    let (dropped, written, failed) = g.monitoring_counters;
    let name = "categorizer_monitoring_dropped_rows_total";
    let help = "Scored customers the monitor could not keep up with.";
    single(out, name, COUNTER, help, dropped);
    let name = "categorizer_monitoring_buckets_written_total";
    let help = "Closed monitoring buckets written to the model store.";
    single(out, name, COUNTER, help, written);
    let name = "categorizer_monitoring_bucket_write_failures_total";
    single(
        out,
        name,
        COUNTER,
        "Monitoring buckets the store refused.",
        failed,
    );
    let Some(r) = &g.monitoring else { return };
    render_window(out, r);
    render_features(out, r);
    render_shares(out, r);
}

/// The monitoring window's size and verdict.
fn render_window(out: &mut String, r: &crate::monitor::Report) {
    let flag = |b: bool| u8::from(b);
    let name = "categorizer_monitoring_window_rows";
    single(
        out,
        name,
        GAUGE,
        "Customers scored in the monitoring window.",
        r.rows,
    );
    let name = "categorizer_monitoring_window_error_rows";
    let help = "Customers refused with a row error in the window.";
    single(out, name, GAUGE, help, r.error_rows);
    let name = "categorizer_monitoring_enough_data";
    let help = "1 when the window has monitoring.min_rows customers.";
    single(out, name, GAUGE, help, flag(r.dataset_drift.is_some()));
    let name = "categorizer_monitoring_dataset_drift";
    let help =
        "1 when the window drifted from the model's training data (validation's dataset rule).";
    single(out, name, GAUGE, help, flag(r.dataset_drift == Some(true)));
    let name = "categorizer_monitoring_drifted_features";
    single(
        out,
        name,
        GAUGE,
        "Features drifted in the window.",
        r.drifted_features,
    );
}

/// Each feature's drift score and verdict in the window.
fn render_features(out: &mut String, r: &crate::monitor::Report) {
    family(
        out,
        "categorizer_monitoring_feature_drift_score",
        GAUGE,
        "A feature's drift score in the window (validation's test: p-value or distance).",
    );
    for f in &r.features {
        if f.score.is_finite() {
            let _ = writeln!(
                out,
                "categorizer_monitoring_feature_drift_score{{feature=\"{}\",test=\"{}\"}} {}",
                escape(&f.feature),
                escape(&f.test),
                f.score
            );
        }
    }
    family(
        out,
        "categorizer_monitoring_feature_drifted",
        GAUGE,
        "1 when a feature drifted in the window.",
    );
    for f in &r.features {
        let _ = writeln!(
            out,
            "categorizer_monitoring_feature_drifted{{feature=\"{}\"}} {}",
            escape(&f.feature),
            u8::from(f.drifted)
        );
    }
}

/// The segments' shares of the window and of the training split, and the atypical share.
fn render_shares(out: &mut String, r: &crate::monitor::Report) {
    family(
        out,
        "categorizer_monitoring_segment_share",
        GAUGE,
        "A segment's share of the window's predictions.",
    );
    family(
        out,
        "categorizer_monitoring_segment_reference_share",
        GAUGE,
        "A segment's share of the training split.",
    );
    for s in &r.segments {
        let _ = writeln!(
            out,
            "categorizer_monitoring_segment_share{{segment=\"{}\"}} {}\n\
             categorizer_monitoring_segment_reference_share{{segment=\"{}\"}} {}",
            s.segment, s.share, s.segment, s.reference_share
        );
    }
    if let Some(a) = &r.atypical {
        let name = "categorizer_monitoring_atypical_share";
        let help = "The atypical customers' share of the window (expected 0.01).";
        single(out, name, GAUGE, help, a.share);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: counts every request and times it to its response head.
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    metrics.record(
        route.as_ref().map_or(OTHER, MatchedPath::as_str),
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_under_the_route_template_axum_matched() {
        use axum::routing::get;
        let metrics = std::sync::Arc::new(Metrics::default());
        let app = axum::Router::new()
            .route("/api/v1/predict", get(|| async { "p" }))
            .route("/api/v1/jobs/{id}", get(|| async { "j" }))
            .route("/static/{file}", get(|| async { "s" }))
            .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
            .layer(axum::middleware::from_fn_with_state(metrics.clone(), track));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        for path in [
            "/api/v1/predict",
            "/api/v1/jobs/17",
            "/api/v1/jobs/17/x",
            "/static/style.css",
            "/nope",
        ] {
            let r = client.get(format!("http://{addr}{path}")).send().await;
            r.unwrap().bytes().await.unwrap();
        }
        assert_eq!(metrics.requests("/api/v1/predict", 2), 1);
        assert_eq!(metrics.requests("/api/v1/jobs/{id}", 2), 1);
        assert_eq!(metrics.requests("/static/{file}", 2), 1);
        assert_eq!(metrics.requests(OTHER, 4), 2);
        assert_eq!(metrics.requests("/nope", 4), 0);
    }

    #[test]
    fn histograms_are_cumulative_in_the_exposition() {
        let m = Metrics::default();
        m.batch_rows.observe(1.0);
        m.batch_rows.observe(3.0);
        m.batch_rows.observe(1e9);
        let text = m.render(&Gauges {
            queue_depth: 2,
            model_version: "v\"1",
            model_classifier: "mlp",
            jobs_queued: 0,
            jobs_running: 1,
            monitoring: None,
            monitoring_counters: (0, 0, 0),
        });
        assert!(
            text.contains("categorizer_batch_rows_bucket{le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("categorizer_batch_rows_bucket{le=\"4\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("categorizer_batch_rows_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("categorizer_batch_rows_count 3\n"), "{text}");
        assert!(text.contains("version=\"v\\\"1\""), "{text}");
        assert!(
            text.contains("categorizer_batcher_queue_depth 2\n"),
            "{text}"
        );
    }
}
