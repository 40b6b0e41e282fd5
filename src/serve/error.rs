//! The API's errors: one table of codes (code → HTTP status, type, what it means) that the
//! handlers answer with, the OpenAPI document lists and the README's table is checked against;
//! the one JSON shape `{"error": {"code", "message", "field"?, "row"?}}`; and the two
//! middlewares that keep every error in that shape (a handler's panic, the plain-text errors
//! of axum and of the tower layers).

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::batcher::BatchError;
use super::jobs::JobError;

/// What kind of failure a code is: whose doing it is and what a client can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The request is wrong: fix it before sending it again.
    InvalidRequest,
    /// The caller may not do this.
    Auth,
    /// The service is busy or not ready: retry later.
    Unavailable,
    /// The service failed (a bug, logged).
    Internal,
}

impl ErrorType {
    pub fn name(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Auth => "auth",
            ErrorType::Unavailable => "unavailable",
            ErrorType::Internal => "internal",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $status:ident, $kind:ident, $what:literal;)+) => {
        /// Every error code the service answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant,)+
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            /// The stable snake_case name clients match on.
            pub fn name(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)+
                }
            }

            /// The HTTP status answered with this code.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)+
                }
            }

            pub fn kind(self) -> ErrorType {
                match self {
                    $(Code::$variant => ErrorType::$kind,)+
                }
            }

            /// When the code is answered.
            pub fn description(self) -> &'static str {
                match self {
                    $(Code::$variant => $what,)+
                }
            }
        }
    };
}

codes! {
    MalformedJson = "malformed_json", BAD_REQUEST, InvalidRequest,
        "the body is not JSON of the route's shape";
    BadTable = "bad_table", BAD_REQUEST, InvalidRequest,
        "an Arrow IPC or CSV body is not a readable table, lacks a feature column (named), or has a column that is not numbers";
    BadBody = "bad_body", BAD_REQUEST, InvalidRequest,
        "the body could not be read (the connection failed or the client stopped sending)";
    InvalidOption = "invalid_option", BAD_REQUEST, InvalidRequest,
        "a training option is not allowed (`field` names it)";
    InvalidQuery = "invalid_query", BAD_REQUEST, InvalidRequest,
        "a query parameter has a value the route does not take (`field` names it)";
    InvalidName = "invalid_name", UNPROCESSABLE_ENTITY, InvalidRequest,
        "a segment name is empty, over 80 characters or holds control characters";
    InvalidValue = "invalid_value", UNPROCESSABLE_ENTITY, InvalidRequest,
        "a customer's value is missing, unknown, not a number or out of range: in the customer's slot of `predictions` (with `field` and `row`), the request itself succeeds";
    Unauthorized = "unauthorized", UNAUTHORIZED, Auth,
        "a training route without `Authorization: Bearer <CATEGORIZER_ADMIN_TOKEN>` while that token is set";
    Forbidden = "forbidden", FORBIDDEN, Auth,
        "a training route from a non-loopback client while no admin token is set";
    NotFound = "not_found", NOT_FOUND, InvalidRequest, "no such route";
    JobNotFound = "job_not_found", NOT_FOUND, InvalidRequest, "no job with this id";
    SegmentNotFound = "segment_not_found", NOT_FOUND, InvalidRequest,
        "the served model has no segment with this id";
    NoValidation = "no_validation", NOT_FOUND, InvalidRequest,
        "no training run has left a validation report yet";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, InvalidRequest,
        "the route does not take this method (`Allow` lists those it takes)";
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, InvalidRequest,
        "the request took longer than `server.request_timeout_ms` plus one second";
    JobEnded = "job_ended", CONFLICT, InvalidRequest, "the job has already ended and cannot be cancelled";
    NoExplanations = "no_explanations", CONFLICT, InvalidRequest,
        "`explain=true` while the served model was published before explanations existed (retrain it)";
    BodyTooLarge = "body_too_large", PAYLOAD_TOO_LARGE, InvalidRequest,
        "the body is over `server.max_body_bytes` (16 KiB on the form and training routes); a larger Content-Length is refused before the body is read";
    TooManyCustomers = "too_many_customers", PAYLOAD_TOO_LARGE, InvalidRequest,
        "more than `server.max_customers` customers in one request, refused before the rest is parsed";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, InvalidRequest,
        "the body's content type is not accepted here";
    TrainingQueueFull = "training_queue_full", TOO_MANY_REQUESTS, Unavailable,
        "the training queue is full; `Retry-After` says when to retry";
    HttpError = "http_error", BAD_REQUEST, InvalidRequest,
        "any other error of the HTTP layer, with its own status";
    Internal = "internal", INTERNAL_SERVER_ERROR, Internal,
        "the server failed on this request (a bug, logged); other requests are served";
    InferenceFailed = "inference_failed", INTERNAL_SERVER_ERROR, Internal,
        "ONNX Runtime failed on the batch";
    Encoding = "encoding", INTERNAL_SERVER_ERROR, Internal, "the answer could not be encoded";
    Overloaded = "overloaded", SERVICE_UNAVAILABLE, Unavailable,
        "the prediction queue is full; `Retry-After` says when to retry";
    DeadlineExceeded = "deadline_exceeded", SERVICE_UNAVAILABLE, Unavailable,
        "the request waited longer than `server.request_timeout_ms` for the inference worker";
    Unavailable = "unavailable", SERVICE_UNAVAILABLE, Unavailable, "the inference worker is not running";
    NotReady = "not_ready", SERVICE_UNAVAILABLE, Unavailable, "the inference worker has stopped (`/readyz`)";
    TrainingDisabled = "training_disabled", SERVICE_UNAVAILABLE, Unavailable,
        "the server was started without training";
}

impl Code {
    /// The OpenAPI error responses of an operation that may answer `codes`: one response per
    /// status, described from the table.
    pub fn responses(
        codes: &[Code],
    ) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        let mut by_status: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
        for c in codes {
            by_status
                .entry(c.status().as_u16())
                .or_default()
                .push(format!("`{}`: {}", c.name(), c.description()));
        }
        by_status
            .into_iter()
            .map(|(status, lines)| {
                let response = serde_json::json!({
                    "description": lines.join("; "),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                });
                let response: utoipa::openapi::Response =
                    serde_json::from_value(response).expect("a well-formed response object");
                (status.to_string(), response.into())
            })
            .collect()
    }

    /// The README's table of codes (a test checks the README holds exactly this).
    pub fn markdown_table() -> String {
        let mut out = String::from("| code | status | type | when |\n| --- | --- | --- | --- |\n");
        for c in Code::ALL {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                c.name(),
                c.status().as_u16(),
                c.kind().name(),
                c.description()
            ));
        }
        out
    }
}

/// Declares a set of error codes as an OpenAPI responses type for `#[utoipa::path]`:
/// `errors!(PredictErrors: MalformedJson, BadBody)`.
#[macro_export]
macro_rules! errors {
    ($(#[$doc:meta])* $name:ident: $($code:ident),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                $crate::serve::error::Code::responses(&[$($crate::serve::error::Code::$code),+])
            }
        }
    };
}

/// The JSON error shape, for the OpenAPI document.
pub struct ErrorSchema;

impl utoipa::PartialSchema for ErrorSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let codes: Vec<&str> = Code::ALL.iter().map(|c| c.name()).collect();
        let schema = serde_json::json!({
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string", "enum": codes},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the field at fault"},
                "row": {"type": "integer", "description": "0-based index of the customer at fault"}}}}
        });
        utoipa::openapi::RefOr::T(serde_json::from_value(schema).expect("a well-formed schema"))
    }
}

impl utoipa::ToSchema for ErrorSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }
}

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub field: Option<String>,
    pub row: Option<usize>,
}

impl ApiError {
    /// An error with its code's status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code,
            message: message.into(),
            field: None,
            row: None,
        }
    }

    /// Names the field (or parameter) the error is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// An error whose status is not its code's (the HTTP layer's `http_error`).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
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
                code: self.code.name(),
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
                Code::Overloaded,
                "the prediction queue is full; retry shortly",
            ),
            BatchError::Expired => ApiError::new(
                Code::DeadlineExceeded,
                "the request waited longer than its deadline",
            ),
            BatchError::Stopped => {
                ApiError::new(Code::Unavailable, "the inference worker is not running")
            }
            BatchError::Inference(m) => ApiError::new(Code::InferenceFailed, m),
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let message = e.to_string();
        match e {
            JobError::NotFound(_) => ApiError::new(Code::JobNotFound, message),
            JobError::Ended(_) => ApiError::new(Code::JobEnded, message),
            // The client's own doing (jobs submitted faster than they run): 429, not a 5xx.
            JobError::QueueFull => ApiError::new(Code::TrainingQueueFull, message),
            JobError::BadOption { field, .. } => {
                let mut a = ApiError::new(Code::InvalidOption, message);
                a.field = Some(field.into());
                a
            }
        }
    }
}

/// The router's fallback.
pub async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such route")
}

/// A panic in a handler becomes a 500 in the JSON error shape, logged, instead of a dropped
/// connection; the server goes on serving.
pub async fn catch_panics(req: Request, next: Next) -> Response {
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
            ApiError::new(Code::Internal, Code::Internal.description()).into_response()
        }
    }
}

/// Turns the empty or plain-text error responses of the layers and of axum (405, 408, 413,
/// ...) into the JSON error shape; JSON errors and HTML pages pass untouched.
pub async fn json_errors(req: Request, next: Next) -> Response {
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
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            Code::MethodNotAllowed,
            "this route does not take that method",
        ),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            Code::RequestTimeout,
            "the request took longer than the server's time limit",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            Code::BodyTooLarge,
            "the request body is over the size limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            Code::UnsupportedMediaType,
            "the body's content type is not accepted here",
        ),
        s => ApiError::new(Code::HttpError, s.canonical_reason().unwrap_or("error")).with_status(s),
    };
    let mut json = error.into_response();
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::middleware;
    use axum::routing::get;

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

    #[test]
    fn codes_are_unique_snake_case_and_errors_of_the_client_are_4xx() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.name()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            match c.kind() {
                ErrorType::InvalidRequest | ErrorType::Auth => {
                    assert!(c.status().is_client_error(), "{c:?}")
                }
                ErrorType::Internal => assert!(c.status().is_server_error(), "{c:?}"),
                ErrorType::Unavailable => assert!(
                    [
                        StatusCode::SERVICE_UNAVAILABLE,
                        StatusCode::TOO_MANY_REQUESTS
                    ]
                    .contains(&c.status()),
                    "{c:?}"
                ),
            }
        }
    }

    #[test]
    fn the_api_page_lists_exactly_the_codes_of_the_table() {
        let readme = include_str!("../../docs/api.md");
        let (start, end) = ("<!-- error-codes -->\n", "<!-- /error-codes -->");
        let from = readme
            .find(start)
            .expect("docs/api.md marks its table of codes")
            + start.len();
        let to = from + readme[from..].find(end).expect("the table's end marker");
        assert_eq!(
            &readme[from..to],
            Code::markdown_table(),
            "the README's table of error codes is stale; put this there:\n{}",
            Code::markdown_table()
        );
    }
}
