//! `POST /api/v1/predict`: batches of customers through the dynamic batcher. A body is JSON,
//! an Arrow IPC stream or CSV, and so is the answer ([`negotiate`](crate::serve::negotiate)
//! chooses); every customer's answer or row error is [`crate::answer`]'s, whatever the format.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::answer::{Outcome, OutputColumns, RowAnswer, Scores};
use crate::explain::{Explanation, Segments, TOP_FEATURES};
use crate::schema::{FEATURES, N_FEATURES};
use crate::serve::AppState;
use crate::serve::batcher::Answer;
use crate::serve::error::{ApiError, Code};
use crate::serve::metrics::Stage;
use crate::serve::negotiate::Format;
use crate::serve::rows::{self, BodyError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(predict))
}

crate::errors!(
    PredictErrors: MalformedJson, BadTable, BadBody, InvalidQuery, BodyTooLarge, TooManyCustomers,
    NoExplanations, Overloaded, DeadlineExceeded
);

/// The query of `POST /api/v1/predict`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PredictQuery {
    /// Add an `explanation` to each prediction: the runner-up segment, the margin, and the
    /// three features that place the customer in its segment rather than the runner-up.
    #[serde(default)]
    explain: bool,
}

/// A prediction request (documentation only: the body is read by [`rows::parse_predict_body`],
/// which refuses a key other than `customers`, as the schema says).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PredictRequest {
    /// Up to `server.max_customers` customers.
    customers: Vec<crate::serve::openapi::Customer>,
}

#[derive(Serialize, ToSchema)]
struct PredictResponse<'a> {
    model_version: &'a str,
    predictions: Vec<PredictionOut<'a>>,
}

/// A customer's segment, or the error of a customer with a bad value.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum PredictionOut<'a> {
    Ok {
        segment: i64,
        /// Null when the model has no name for the segment.
        segment_name: Option<&'a str>,
        probabilities: &'a [f32],
        /// Farther from the segment's centre than 99% of its training customers (false for a
        /// model that does not carry that spread).
        atypical: bool,
        /// With `explain=true`: left out where it cannot be computed (a model of one segment,
        /// or a margin that is not finite).
        #[serde(skip_serializing_if = "Option::is_none")]
        explanation: Option<ExplanationOut<'a>>,
    },
    Err {
        error: RowErrorOut<'a>,
    },
}

/// Why this segment rather than the runner-up (with `explain=true`).
#[derive(Serialize, ToSchema)]
struct ExplanationOut<'a> {
    /// The nearest segment centre other than the served segment's.
    runner_up: usize,
    runner_up_name: &'a str,
    /// Distance to the runner-up's centre minus distance to the served segment's, in the PCA
    /// space KMeans used; negative when the classifier's answer is not the nearest centre.
    margin: f64,
    /// Whether the served segment's centre is the nearest one.
    nearest: bool,
    /// The three features that add most to the margin.
    top_features: Vec<TopFeature>,
    /// The explanation in one sentence, as the web page says it.
    text: String,
}

#[derive(Serialize, ToSchema)]
struct TopFeature {
    feature: &'static str,
    /// The customer's value (null: not given).
    value: Option<f64>,
    /// The segment's average over its training customers.
    segment_mean: Option<f64>,
    /// This feature's share of the margin (all 21 add up to it).
    contribution: f64,
}

#[derive(Serialize, ToSchema)]
struct RowErrorOut<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    row: usize,
}

/// Segments of up to `server.max_customers` customers, in input order.
///
/// Concurrent requests are merged by the dynamic batcher. A customer with a bad value
/// (missing or unknown field, a string for a number, NaN, out of range) does not fail the
/// request: its slot in `predictions` holds `{"error": {"code": "invalid_value", "message",
/// "field", "row"}}` and every other customer is predicted.
///
/// Batch clients can send a table instead: `Content-Type: application/vnd.apache.arrow.stream`
/// (an Arrow IPC stream) or `text/csv` (a header row), the columns named by the feature keys
/// (Income may be left out; other columns are ignored), and ask for the answer as a table with
/// `Accept: application/vnd.apache.arrow.stream` or `text/csv` (JSON otherwise): one row per
/// customer in input order with `segment`, `segment_name`, `probability_<id>`, `atypical`
/// (`runner_up`, `top_feature_1..3` with `explain=true`) and `error` (a bad row's message, its
/// other columns empty). The model version is in the `X-Model-Version` header. From Python:
///
/// ```python
/// import pyarrow as pa, pyarrow.csv, requests
/// customers = pa.csv.read_csv("customers.csv")  # the 21 feature columns, named by key
/// sink = pa.BufferOutputStream(); w = pa.ipc.new_stream(sink, customers.schema); w.write_table(customers); w.close()
/// r = requests.post("http://localhost:5000/api/v1/predict", data=sink.getvalue().to_pybytes(), headers={"Content-Type": "application/vnd.apache.arrow.stream", "Accept": "application/vnd.apache.arrow.stream"})
/// segments = pa.ipc.open_stream(r.content).read_all()  # segment, segment_name, probability_<id>, atypical, error
/// ```
#[utoipa::path(post, path = "/api/v1/predict", tag = "prediction",
    request_body = PredictRequest,
    params(PredictQuery),
    responses(
        (status = 200, description = "one prediction or row error per customer", body = PredictResponse),
        PredictErrors
    ))]
async fn predict(
    State(s): State<AppState>,
    query: std::result::Result<
        axum::extract::Query<PredictQuery>,
        axum::extract::rejection::QueryRejection,
    >,
    headers: HeaderMap,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let (input, output) = (
        Format::of_content_type(header(header::CONTENT_TYPE)),
        Format::of_accept(header(header::ACCEPT)),
    );
    let explain = query
        .map_err(|r| {
            ApiError::new(
                Code::InvalidQuery,
                format!("{}; `explain` takes true or false", r.body_text()),
            )
            .with_field("explain")
        })?
        .explain;
    if explain && s.manifest().segmentation.is_none() {
        return Err(ApiError::new(
            Code::NoExplanations,
            format!(
                "the served model {} was published before explanations existed; retrain it",
                s.manifest().version
            ),
        ));
    }
    let body = body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                Code::BodyTooLarge,
                "the request body is over the size limit",
            )
        } else {
            ApiError::new(Code::BadBody, r.body_text()).with_status(status)
        }
    })?;
    // A big body is parsed (and its answer encoded) on the blocking pool: the async workers
    // stay free for the small requests that arrive meanwhile.
    let big = body.len() > OFF_WORKER_BYTES;
    let max_customers = s.max_customers();
    let started = Instant::now();
    let (parsed, rows, valid) =
        off_worker(big, move || read_predict_body(&body, max_customers, input)).await?;
    s.metrics().stage(Stage::Read, started);
    if valid < parsed.customers.len() && s.monitor().enabled() {
        let fields = parsed
            .customers
            .iter()
            .filter_map(|r| r.0.as_ref().err().map(|e| e.field.clone()))
            .collect();
        s.monitor()
            .refused(s.manifest().version.as_str().into(), fields);
    }
    let started = Instant::now();
    let answer = if valid > 0 {
        Some(s.predict_rows(rows, valid, explain).await?)
    } else {
        None
    };
    s.metrics().stage(Stage::Batcher, started);
    let version = match &answer {
        Some(a) => a.model_version.to_string(),
        None => s.manifest().version.clone(),
    };
    let version_header = HeaderValue::from_str(&version).ok();
    let started = Instant::now();
    let body = off_worker(big, move || match output {
        Format::Json => encode_predictions(&parsed, answer.as_ref(), &version),
        table => encode_table(&parsed, answer.as_ref(), table),
    })
    .await?;
    s.metrics().stage(Stage::Encode, started);
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(output.media_type()),
        )],
        body,
    )
        .into_response();
    if let Some(v) = version_header {
        response.headers_mut().insert("x-model-version", v);
    }
    Ok(response)
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
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(Code::Internal, format!("reading the request failed: {e}")))?
}

/// The customers of a prediction body, and the feature rows of the valid ones.
fn read_predict_body(
    body: &[u8],
    max_customers: usize,
    format: Format,
) -> Result<(rows::PredictBody, Vec<f32>, usize), ApiError> {
    let parsed = match format {
        Format::Json => rows::parse_predict_body(body, max_customers),
        table => rows::parse_table(body, table, max_customers),
    };
    let parsed = parsed.map_err(|e| match e {
        BodyError::TooManyCustomers { limit } => ApiError::new(
            Code::TooManyCustomers,
            format!("more than {limit} customers in one request; the limit is {limit}"),
        ),
        BodyError::Malformed(e) => ApiError::new(
            Code::MalformedJson,
            format!("the body is not a valid prediction request: {e}"),
        ),
        BodyError::BadTable(e) => ApiError::new(Code::BadTable, e),
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

/// The answers' outcomes in input order.
fn outcomes<'a>(
    parsed: &'a rows::PredictBody,
    scores: Option<&'a Scores<'a>>,
    explain: bool,
) -> impl Iterator<Item = Outcome<'a>> + 'a {
    let mut at = 0usize;
    parsed.customers.iter().map(move |r| match (&r.0, scores) {
        (Ok(_), Some(s)) => {
            at += 1;
            Ok(s.answer(at - 1, explain))
        }
        (Err(e), _) => Err(e),
        (Ok(_), None) => unreachable!("a valid row always has an answer"),
    })
}

fn explanation_out<'a>(segments: &'a Segments, e: &Explanation, raw: &[f32]) -> ExplanationOut<'a> {
    let finite = |v: f64| v.is_finite().then_some(v);
    ExplanationOut {
        runner_up: e.runner_up,
        runner_up_name: segments.name(e.runner_up),
        margin: e.margin,
        nearest: e.nearest(),
        top_features: e
            .top(TOP_FEATURES)
            .into_iter()
            .map(|(j, contribution)| TopFeature {
                feature: FEATURES[j].key,
                value: finite(f64::from(raw[j])),
                segment_mean: finite(segments.mean(e.segment, j)),
                contribution,
            })
            .collect(),
        text: segments.sentence(e, raw),
    }
}

/// The answer as a table (Arrow IPC stream or CSV), a row per customer in input order:
/// [`OutputColumns`], as bulk scoring writes them.
fn encode_table(
    parsed: &rows::PredictBody,
    answer: Option<&Answer>,
    format: Format,
) -> Result<Vec<u8>, ApiError> {
    use polars::prelude::{CsvWriter, DataFrame, IpcStreamWriter, SerWriter};
    let n = parsed.customers.len();
    let k = answer.map_or(0, |a| a.k);
    let explain = answer.is_some_and(|a| a.explained());
    let scores = answer.map(Answer::scores);
    let mut columns = OutputColumns::with_capacity(n, k, explain);
    for outcome in outcomes(parsed, scores.as_ref(), explain) {
        columns.push(&outcome);
    }
    let encoding = |e: polars::prelude::PolarsError| ApiError::new(Code::Encoding, e.to_string());
    let mut df = DataFrame::new(n, columns.into_columns()).map_err(encoding)?;
    let mut out = Vec::with_capacity(n * (16 + 8 * k));
    match format {
        Format::Arrow => IpcStreamWriter::new(&mut out).finish(&mut df),
        _ => CsvWriter::new(&mut out)
            .include_header(true)
            .finish(&mut df),
    }
    .map_err(encoding)?;
    Ok(out)
}

/// The JSON answer: each customer's prediction or error, in input order.
fn encode_predictions(
    parsed: &rows::PredictBody,
    answer: Option<&Answer>,
    version: &str,
) -> Result<Vec<u8>, ApiError> {
    let explain = answer.is_some_and(|a| a.explained());
    let scores = answer.map(Answer::scores);
    let out: Vec<PredictionOut> = outcomes(parsed, scores.as_ref(), explain)
        .zip(&parsed.customers)
        .enumerate()
        .map(|(i, (outcome, r))| match (outcome, &r.0) {
            (Ok(a), Ok(raw)) => prediction_out(a, raw, answer.map(|a| &*a.segments)),
            (Err(e), _) => PredictionOut::Err {
                error: RowErrorOut {
                    code: Code::InvalidValue.name(),
                    message: &e.message,
                    field: e.field.as_deref(),
                    row: i,
                },
            },
            (Ok(_), Err(_)) => unreachable!("an answer is for a valid row"),
        })
        .collect();
    serde_json::to_vec(&PredictResponse {
        model_version: version,
        predictions: out,
    })
    .map_err(|e| ApiError::new(Code::Encoding, e.to_string()))
}

/// A customer's answer as JSON (its explanation told with its raw features).
fn prediction_out<'a>(
    a: RowAnswer<'a>,
    raw: &[f32],
    segments: Option<&'a Segments>,
) -> PredictionOut<'a> {
    let explanation = match (&a.explanation, segments) {
        (Some(e), Some(s)) => Some(explanation_out(s, e, raw)),
        _ => None,
    };
    PredictionOut::Ok {
        segment: a.segment,
        segment_name: a.segment_name,
        probabilities: a.probabilities,
        atypical: a.atypical,
        explanation,
    }
}
