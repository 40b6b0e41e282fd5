//! The web pages: the prediction form (`GET /`, `POST /`), the model page (`GET /model`) and
//! their stylesheet. Every field of the form comes from the one feature definition
//! ([`crate::schema::FEATURES`]): its key, label, unit, kind and range. The model, validation
//! and monitoring pages are drawn in the files of `web/`; the rendering helpers are here.

mod model;
mod monitoring;
mod validation;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use crate::schema::{FEATURES, FeatureKind, N_FEATURES, check_feature};
use crate::serve::{AppState, SMALL_BODY_BYTES};
pub use model::{CandidateRow, LineageView, ModelPage, SegmentRow, model_page};
pub use monitoring::{MonitoringPage, monitoring_page};
pub use validation::{ValidationPage, validation_html, validation_page};

/// The HTML pages: served, not part of the JSON API's document.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route(
            "/",
            get(form).post(submit).layer(
                // The form's 21 short fields fit in far less.
                tower_http::limit::RequestBodyLimitLayer::new(SMALL_BODY_BYTES),
            ),
        )
        .route("/model", get(model_page))
        .route("/validation", get(validation_page))
        .route("/monitoring", get(monitoring_page))
        .route("/static/{file}", get(static_file))
}

/// The stylesheet, compiled in: the service needs no files beside its binary.
const STYLE_CSS: &str = include_str!("../../../static/style.css");

/// One `<option>` of a coded field.
pub struct Choice {
    pub code: usize,
    pub label: &'static str,
    pub selected: bool,
}

/// One field of the form, with what the user typed and its error.
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub choices: Vec<Choice>,
    pub value: String,
    pub error: Option<String>,
    pub min: String,
    pub max: String,
    pub step: &'static str,
    pub required: bool,
}

impl Field {
    pub fn is_select(&self) -> bool {
        !self.choices.is_empty()
    }
}

fn fields(values: &[String; N_FEATURES], errors: &[Option<String>; N_FEATURES]) -> Vec<Field> {
    FEATURES
        .iter()
        .enumerate()
        .map(|(j, f)| Field {
            key: f.key,
            label: f.label,
            unit: f.unit,
            choices: f
                .choices
                .iter()
                .enumerate()
                .map(|(code, label)| Choice {
                    code,
                    label,
                    selected: values[j] == code.to_string(),
                })
                .collect(),
            value: values[j].clone(),
            error: errors[j].clone(),
            min: f.min.to_string(),
            max: f.max.to_string(),
            step: match f.kind {
                FeatureKind::Real => "any",
                _ => "1",
            },
            required: !f.nullable(),
        })
        .collect()
}

/// A segment's probability, for the bars.
pub struct Probability {
    pub id: usize,
    pub name: String,
    pub percent: String,
    pub width: String,
    pub chosen: bool,
}

/// One line of the comparison between the customer and their segment.
pub struct ProfileLine {
    pub label: &'static str,
    pub unit: &'static str,
    pub customer: String,
    pub segment_mean: String,
    /// One of the features the explanation names.
    pub why: bool,
}

pub struct Outcome {
    pub segment: usize,
    pub name: String,
    pub share: String,
    pub probabilities: Vec<Probability>,
    pub profile: Vec<ProfileLine>,
    pub picture: String,
    /// Why this segment and not the runner-up, in one sentence.
    pub explanation: Option<String>,
    pub atypical: bool,
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub fields: Vec<Field>,
    pub outcome: Option<Outcome>,
    pub error_count: usize,
    pub model_version: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!("rendering a page: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html(
        status,
        &MessagePage {
            title,
            message: text,
        },
    )
}

/// `GET /`: the empty form.
pub async fn form(State(s): State<AppState>) -> Response {
    let version = s.manifest().version.clone();
    html(
        StatusCode::OK,
        &IndexPage {
            fields: fields(&Default::default(), &Default::default()),
            outcome: None,
            error_count: 0,
            model_version: version,
        },
    )
}

/// Reads the 21 form keys of an urlencoded body: the values as typed, the parsed features, and
/// an error per field that cannot be used.
pub fn parse_form(
    body: &[u8],
) -> (
    [String; N_FEATURES],
    [f32; N_FEATURES],
    [Option<String>; N_FEATURES],
) {
    let mut typed: [String; N_FEATURES] = Default::default();
    let mut seen = [false; N_FEATURES];
    // A percent sign that does not start an escape is kept as typed: the value then fails as
    // "not a number" and is shown to the user, rather than vanishing.
    for (k, v) in form_urlencoded::parse(body) {
        if let Some(j) = crate::schema::feature_index(&k) {
            typed[j] = v.trim().to_string();
            seen[j] = true;
        }
    }
    let mut values = [f32::NAN; N_FEATURES];
    let mut errors: [Option<String>; N_FEATURES] = Default::default();
    for j in 0..N_FEATURES {
        let t = &typed[j];
        if !seen[j] || t.is_empty() {
            if !FEATURES[j].nullable() {
                errors[j] = Some("is required".into());
            }
            continue;
        }
        match t.parse::<f64>() {
            Ok(v) if v.is_nan() => errors[j] = Some(format!("'{t}' is not a number")),
            Ok(v) => match check_feature(j, v) {
                Ok(()) => values[j] = v as f32,
                Err(e) => errors[j] = Some(e.message),
            },
            Err(_) => errors[j] = Some(format!("'{t}' is not a number")),
        }
    }
    (typed, values, errors)
}

/// `POST /`: predicts one customer, or re-renders the form with the errors (422).
pub async fn submit(State(s): State<AppState>, body: Bytes) -> Response {
    let (typed, values, errors) = parse_form(&body);
    let error_count = errors.iter().filter(|e| e.is_some()).count();
    if error_count > 0 {
        let version = s.manifest().version.clone();
        // One refused customer, under the first field in error (as a row error names one).
        let first = errors
            .iter()
            .position(Option::is_some)
            .map(|j| FEATURES[j].key.to_string());
        s.monitor().refused(version.as_str().into(), vec![first]);
        return html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &IndexPage {
                fields: fields(&typed, &errors),
                outcome: None,
                error_count,
                model_version: version,
            },
        );
    }
    let answer = match s.predict_rows(values.to_vec(), 1, true).await {
        Ok(a) => a,
        Err(e) => {
            let status = e.status;
            return message(status, "Prediction unavailable", &e.message);
        }
    };
    let (manifest, plot) = s.current_plot();
    let segment = answer.segment[0].max(0) as usize;
    let k = answer.k;
    let profile = manifest.segments.get(segment);
    let row = answer.scores().answer(0, true);
    let explanation = row.explanation.clone();
    let why: Vec<usize> = explanation.as_ref().map_or(Vec::new(), |e| {
        e.top(crate::explain::TOP_FEATURES)
            .into_iter()
            .filter(|(_, c)| *c > 0.0)
            .map(|(j, _)| j)
            .collect()
    });
    let outcome = Outcome {
        segment,
        name: answer.segments.name(segment).to_string(),
        explanation: explanation.map(|e| answer.segments.sentence(&e, &values)),
        atypical: row.atypical,
        share: profile.map_or(String::new(), |p| format!("{:.0}%", p.share * 100.0)),
        probabilities: answer.probabilities[..k]
            .iter()
            .enumerate()
            .map(|(i, &p)| Probability {
                id: i,
                name: answer.segments.name(i).to_string(),
                percent: format!("{:.1}%", p * 100.0),
                width: format!("{:.1}", (p * 100.0).clamp(0.0, 100.0)),
                chosen: i == segment,
            })
            .collect(),
        profile: FEATURES
            .iter()
            .enumerate()
            .map(|(j, f)| ProfileLine {
                label: f.label,
                unit: f.unit,
                customer: FEATURES[j].show_value(f64::from(values[j])),
                segment_mean: profile
                    .and_then(|p| p.means.get(f.key))
                    .map_or("–".into(), |&m| FEATURES[j].show_mean(m)),
                why: why.contains(&j),
            })
            .collect(),
        picture: plot.render(
            answer.embedding.get(..2).map(|e| [e[0], e[1]]),
            Some(segment),
        ),
    };
    html(
        StatusCode::OK,
        &IndexPage {
            fields: fields(&typed, &Default::default()),
            outcome: Some(outcome),
            error_count: 0,
            model_version: answer.model_version.to_string(),
        },
    )
}

/// `GET /static/{file}`.
pub async fn static_file(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "style.css" => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/css; charset=utf-8"),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                ),
            ],
            STYLE_CSS,
        )
            .into_response(),
        _ => message(StatusCode::NOT_FOUND, "Not found", "No such file."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_values_decode() {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(b"a=1&b=x+y%2Fz&c=&d")
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y/z".into()),
                ("c".into(), "".into()),
                ("d".into(), "".into())
            ]
        );
        // Escapes decode before the number is read; a broken one is an error on its field.
        let mut body: Vec<String> = FEATURES.iter().map(|f| format!("{}=1", f.key)).collect();
        body[0] = "Age=4%35".into();
        body[4] = "Children=50%".into();
        let (typed, values, errors) = parse_form(body.join("&").as_bytes());
        assert_eq!(
            (typed[0].as_str(), values[0], &errors[0]),
            ("45", 45.0, &None)
        );
        assert_eq!(errors[4].as_deref(), Some("'50%' is not a number"));
    }

    #[test]
    fn a_form_with_bad_values_names_each_field() {
        let mut body: Vec<String> = FEATURES.iter().map(|f| format!("{}=1", f.key)).collect();
        body[0] = "Age=-3".into();
        body[5] = "Income=lots".into();
        body[6] = "Total_Spending=".into();
        let (typed, values, errors) = parse_form(body.join("&").as_bytes());
        assert_eq!(typed[5], "lots");
        assert!(
            errors[0].as_deref().unwrap().contains("outside"),
            "{errors:?}"
        );
        assert!(errors[5].as_deref().unwrap().contains("not a number"));
        assert_eq!(errors[6].as_deref(), Some("is required"));
        assert_eq!(errors.iter().filter(|e| e.is_some()).count(), 3);
        assert_eq!(values[1], 1.0);
    }

    #[test]
    fn random_form_bodies_never_panic_and_every_field_is_a_value_or_an_error() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        let keys: Vec<&str> = FEATURES.iter().map(|f| f.key).collect();
        let pieces: [&[u8]; 12] = [
            b"=", b"&", b"%", b"%2", b"%zz", b"+", b"1e400", b"NaN", b"-3", b"45.5", b"\xff", b"",
        ];
        for _ in 0..20_000 {
            let mut body = Vec::new();
            for _ in 0..rng.random_range(0..30) {
                if rng.random_bool(0.6) {
                    body.extend_from_slice(keys[rng.random_range(0..keys.len())].as_bytes());
                }
                body.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
                body.extend_from_slice(rng.random_range(0..100_000u32).to_string().as_bytes());
            }
            let (_, values, errors) = parse_form(&body);
            for j in 0..N_FEATURES {
                match &errors[j] {
                    Some(e) => assert!(!e.is_empty()),
                    // Without an error: a checked value, or an Income left empty (imputed).
                    None if values[j].is_nan() => assert_eq!(FEATURES[j].key, "Income"),
                    None => check_feature(j, f64::from(values[j])).unwrap(),
                }
            }
        }
    }
}
