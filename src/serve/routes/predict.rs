//! `POST /api/v1/predict`: JSON batches of customers through the dynamic batcher.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::explain::{Explanation, TOP_FEATURES};
use crate::schema::{FEATURES, N_FEATURES};
use crate::serve::AppState;
use crate::serve::batcher::Answer;
use crate::serve::error::{ApiError, Code};
use crate::serve::metrics::Stage;
use crate::serve::rows::{self, BodyError, Format};

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

/// A prediction request (documentation only: the body is read by [`rows::parse_predict_body`]).
#[derive(ToSchema)]
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
        segment_name: &'a str,
        probabilities: &'a [f32],
        /// Farther from the segment's centre than 99% of its training customers.
        atypical: bool,
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

fn explanation_out<'a>(a: &'a Answer, e: &Explanation, raw: &[f32]) -> ExplanationOut<'a> {
    let finite = |v: f64| v.is_finite().then_some(v);
    ExplanationOut {
        runner_up: e.runner_up,
        runner_up_name: a.segments.name(e.runner_up),
        margin: e.margin,
        nearest: e.nearest(),
        top_features: e
            .top(TOP_FEATURES)
            .into_iter()
            .map(|(j, contribution)| TopFeature {
                feature: FEATURES[j].key,
                value: finite(f64::from(raw[j])),
                segment_mean: finite(a.segments.mean(e.segment, j)),
                contribution,
            })
            .collect(),
        text: a.segments.sentence(e, raw),
    }
}

/// The answer as a table (Arrow IPC stream or CSV), a row per customer in input order:
/// `segment`, `segment_name`, `probability_<id>`, `atypical` (with `explain`: `runner_up` and
/// `top_feature_1..3`) and `error` (the row's problem; the other columns empty then).
fn encode_table(
    parsed: &rows::PredictBody,
    answer: Option<&Answer>,
    format: Format,
) -> Result<Vec<u8>, ApiError> {
    use polars::prelude::{CsvWriter, DataFrame, IpcStreamWriter, SerWriter};
    let n = parsed.customers.len();
    let k = answer.map_or(0, |a| a.k);
    let explain = answer.is_some_and(|a| !a.preprocessed.is_empty());
    let mut segment: Vec<Option<i64>> = vec![None; n];
    let mut name: Vec<Option<&str>> = vec![None; n];
    let mut probs: Vec<Vec<Option<f32>>> = vec![vec![None; n]; k];
    let mut atypical: Vec<Option<bool>> = vec![None; n];
    let mut error: Vec<Option<&str>> = vec![None; n];
    let mut runner_up: Vec<Option<i64>> = vec![None; if explain { n } else { 0 }];
    let mut top: Vec<Vec<Option<&str>>> =
        vec![vec![None; n]; if explain { TOP_FEATURES } else { 0 }];
    let mut at = 0usize;
    for (i, r) in parsed.customers.iter().enumerate() {
        match (&r.0, answer) {
            (Ok(_), Some(a)) => {
                let s = a.segment[at];
                segment[i] = Some(s);
                name[i] = Some(a.segments.name(s as usize));
                for (j, p) in probs.iter_mut().enumerate() {
                    p[i] = Some(a.probabilities[at * k + j]);
                }
                atypical[i] = a.atypical.get(at).copied();
                if let Some(e) = a.explain(at) {
                    runner_up[i] = Some(e.runner_up as i64);
                    for (slot, (j, _)) in top.iter_mut().zip(e.top(TOP_FEATURES)) {
                        slot[i] = Some(FEATURES[j].key);
                    }
                }
                at += 1;
            }
            (Err(e), _) => error[i] = Some(&e.message),
            (Ok(_), None) => unreachable!("a valid row always has an answer"),
        }
    }
    let columns = crate::predict::OutputColumns {
        segment,
        name,
        probabilities: probs,
        atypical,
        explained: explain.then_some((runner_up, top)),
        error,
    }
    .into_columns();
    let encoding = |e: polars::prelude::PolarsError| ApiError::new(Code::Encoding, e.to_string());
    let mut df = DataFrame::new(n, columns).map_err(encoding)?;
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
    let mut out = Vec::with_capacity(parsed.customers.len());
    let mut at = 0usize;
    for (i, r) in parsed.customers.iter().enumerate() {
        match (&r.0, answer) {
            (Ok(raw), Some(a)) => {
                let seg = a.segment[at];
                out.push(PredictionOut::Ok {
                    segment: seg,
                    segment_name: a.segments.name(seg as usize),
                    probabilities: &a.probabilities[at * a.k..(at + 1) * a.k],
                    atypical: a.atypical.get(at).copied().unwrap_or(false),
                    explanation: a.explain(at).map(|e| explanation_out(a, &e, raw)),
                });
                at += 1;
            }
            (Err(e), _) => out.push(PredictionOut::Err {
                error: RowErrorOut {
                    code: Code::InvalidValue.name(),
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
    .map_err(|e| ApiError::new(Code::Encoding, e.to_string()))
}
