//! The web pages: the prediction form (`GET /`, `POST /`), the model page (`GET /model`) and
//! their stylesheet. Every field of the form comes from the one feature definition
//! ([`crate::schema::FEATURES`]): its key, label, unit, kind and range.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use crate::registry::Manifest;
use crate::schema::{FEATURES, FeatureKind, N_FEATURES, check_feature};
use crate::serve::{AppState, SMALL_BODY_BYTES, svg};

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
#[template(path = "model.html")]
pub struct ModelPage<'a> {
    pub m: &'a Manifest,
    pub picture: String,
    pub segments: Vec<SegmentRow>,
    pub candidates: Vec<CandidateRow>,
    pub columns: Vec<&'static str>,
    /// The k sweep's chart and rule (None when k was fixed or the model predates it).
    pub sweep: Option<(String, String)>,
    pub lineage: Option<LineageView>,
}

/// The model page's account of how its segments relate to the previous model's.
pub struct LineageView {
    pub previous: String,
    pub ari: String,
    /// One line per segment: "0 High spenders = 0 in the previous model" or "… is new".
    pub matched: Vec<String>,
    /// The migration table: the previous model's segments as rows, this model's as columns;
    /// a cell is marked when its pair is matched.
    pub header: Vec<usize>,
    pub rows: Vec<(usize, Vec<(usize, bool)>)>,
    pub moves: Vec<String>,
}

impl LineageView {
    fn of(m: &Manifest) -> Option<Self> {
        let l = m.lineage.as_ref()?;
        let matched_to = |n: usize| l.matched.get(&n.to_string()).copied().flatten();
        Some(Self {
            previous: l.previous_version.clone(),
            ari: l
                .adjusted_rand_index
                .map_or("not measured".into(), |a| format!("{a:.3}")),
            matched: m
                .segments
                .iter()
                .map(|s| match matched_to(s.id) {
                    Some(o) => format!("{} {} = segment {o} of the previous model", s.id, s.name),
                    None => format!("{} {} is new", s.id, s.name),
                })
                .collect(),
            header: (0..m.k).collect(),
            rows: l
                .migration
                .iter()
                .enumerate()
                .map(|(o, row)| {
                    (
                        o,
                        row.iter()
                            .enumerate()
                            .map(|(n, &c)| (c, matched_to(n) == Some(o)))
                            .collect(),
                    )
                })
                .collect(),
            moves: crate::train::lineage::moves(&l.migration, &l.matched)
                .into_iter()
                .take(8)
                .collect(),
        })
    }
}

pub struct SegmentRow {
    pub id: usize,
    pub name: String,
    pub size: usize,
    pub share: String,
    pub means: Vec<String>,
}

pub struct CandidateRow {
    pub kind: String,
    pub f1: String,
    pub accuracy: String,
    pub seconds: String,
    pub chosen: bool,
}

#[derive(Template)]
#[template(path = "validation.html")]
pub struct ValidationPage<'a> {
    pub r: &'a crate::validate::Report,
    pub drift_line: String,
    /// Drifted columns: name, test and score, the chart.
    pub charts: Vec<(String, String, String)>,
    pub columns: Vec<crate::validate::ColumnDrift>,
}

/// `GET /validation`: the latest training run's validation report.
pub async fn validation_page(State(s): State<AppState>) -> Response {
    let Some(r) = s.validation() else {
        return message(
            StatusCode::NOT_FOUND,
            "Data validation",
            "No validation report yet: neither this service's training runs nor the run that trained the served model left one.",
        );
    };
    html(StatusCode::OK, &validation_view(&r))
}

/// The validation report as a standalone HTML page (`categorizer validate --html`).
pub fn validation_html(r: &crate::validate::Report) -> crate::Result<String> {
    let page = validation_view(r)
        .render()
        .map_err(|e| crate::Error::Model(format!("rendering the report: {e}")))?;
    // A file has no server beside it: carry the style sheet inside.
    Ok(page.replace(
        r#"<link rel="stylesheet" href="/static/style.css">"#,
        &format!(
            "<style>{}</style>",
            include_str!("../../../static/style.css")
        ),
    ))
}

fn validation_view(r: &crate::validate::Report) -> ValidationPage<'_> {
    let (drift_line, charts, columns) = match &r.drift {
        None => (
            "not measured (no reference)".to_string(),
            Vec::new(),
            Vec::new(),
        ),
        Some(d) => (
            format!(
                "{} of {} columns drifted ({:.0}%; the data set counts as drifted from {:.0}%): {}",
                d.drifted_columns,
                d.columns.len(),
                100.0 * d.share,
                100.0 * d.threshold,
                if d.dataset_drift {
                    "drifted"
                } else {
                    "not drifted"
                }
            ),
            d.columns
                .iter()
                .filter(|c| c.drifted)
                .map(|c| {
                    (
                        c.column.clone(),
                        format!("{} {:.4} (threshold {})", c.test, c.score, c.threshold),
                        svg::drift_chart(c),
                    )
                })
                .collect(),
            d.columns.clone(),
        ),
    };
    ValidationPage {
        r,
        drift_line,
        charts,
        columns,
    }
}

#[derive(Template)]
#[template(path = "monitoring.html")]
pub struct MonitoringPage {
    pub r: crate::monitor::Report,
    pub window: String,
    pub status_line: String,
    pub segment_line: String,
    pub atypical_line: String,
    /// Drifted features: name, test and score, the chart.
    pub charts: Vec<(String, String, String)>,
    pub share_chart: String,
    pub buckets: usize,
    pub bucket_minutes: String,
}

/// `GET /monitoring`: the monitoring report of the last window, with charts.
pub async fn monitoring_page(State(s): State<AppState>) -> Response {
    let manifest = s.manifest();
    let monitor = s.monitor().clone();
    let m = manifest.clone();
    let Ok((mut r, history)) =
        tokio::task::spawn_blocking(move || (monitor.report(&m), monitor.history(&m.version)))
            .await
    else {
        return message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Monitoring",
            "The monitoring report failed (logged).",
        );
    };
    if !s.monitor().enabled() {
        r.status = "disabled".into();
    }
    html(
        StatusCode::OK,
        &monitoring_view(r, &history, s.monitor().settings().bucket_ms, &manifest),
    )
}

fn monitoring_view(
    r: crate::monitor::Report,
    history: &[(u64, u64, Vec<u64>, u64)],
    bucket_ms: u64,
    manifest: &crate::registry::Manifest,
) -> MonitoringPage {
    use crate::monitor::format_ms;
    let window = if r.rows == 0 && r.error_rows == 0 {
        "no customers scored yet".to_string()
    } else {
        format!(
            "{} to {}",
            format_ms(r.window_start_ms),
            format_ms(r.window_end_ms)
        )
    };
    let status_line = match r.status.as_str() {
        "drift" => format!(
            "drift: {} of {} features drifted ({:.0} %; the data set counts as drifted from {:.0} %){}",
            r.drifted_features,
            r.features.len(),
            100.0 * r.drift_share,
            100.0 * r.drift_share_threshold,
            if r.drifted().is_empty() {
                String::new()
            } else {
                format!(": {}", r.drifted().join(", "))
            }
        ),
        "feature_drift" => format!(
            "some features drifted, not the data set: {} of {} ({:.0} %; the data set counts as drifted from {:.0} %): {}",
            r.drifted_features,
            r.features.len(),
            100.0 * r.drift_share,
            100.0 * r.drift_share_threshold,
            r.drifted().join(", ")
        ),
        "no_drift" => format!(
            "no drift: {} of {} features drifted (the data set counts as drifted from {:.0} %)",
            r.drifted_features,
            r.features.len(),
            100.0 * r.drift_share_threshold
        ),
        "not_enough_data" => format!(
            "not enough data: {} customers in the window, {} needed",
            r.rows, r.min_rows
        ),
        "no_reference" => {
            "no reference: the model was published before monitoring; retrain it".to_string()
        }
        other => other.to_string(),
    };
    let segment_line = r
        .segment_shift
        .as_ref()
        .map_or("not tested".to_string(), |t| {
            format!(
                "{} {:.4} (threshold {}): {}",
                t.test,
                t.score,
                t.threshold,
                if t.drifted { "shifted" } else { "steady" }
            )
        });
    let atypical_line = r.atypical.as_ref().map_or("not tested".to_string(), |a| {
        format!(
            "{:.2} % (expected {:.0} %; drift from {:.0}× and p < threshold, p = {:.3}): {}",
            100.0 * a.share,
            100.0 * a.expected,
            a.ratio_threshold,
            a.p_value,
            if a.drifted { "drifted" } else { "as expected" }
        )
    });
    let charts = r
        .features
        .iter()
        .filter(|f| f.drifted)
        .map(|f| {
            let c = crate::validate::ColumnDrift {
                column: f.feature.clone(),
                kind: crate::validate::ColumnKind::Numeric,
                test: f.test.clone(),
                score: f.score,
                threshold: f.threshold,
                drifted: f.drifted,
                labels: f.labels.clone(),
                reference_shares: f.reference_shares.clone(),
                current_shares: f.current_shares.clone(),
            };
            (
                f.feature.clone(),
                format!("{} {:.4} (threshold {})", f.test, f.score, f.threshold),
                svg::drift_chart(&c),
            )
        })
        .collect();
    let names: Vec<String> = (0..manifest.k)
        .map(|s| {
            manifest
                .segments
                .iter()
                .find(|p| p.id == s)
                .map_or(format!("segment {s}"), |p| p.name.clone())
        })
        .collect();
    let reference: Vec<f64> = (0..manifest.k)
        .map(|s| {
            r.segments
                .iter()
                .find(|x| x.segment == s)
                .map_or(0.0, |x| x.reference_share)
        })
        .collect();
    MonitoringPage {
        share_chart: svg::share_chart(history, &reference, &names),
        buckets: history.len(),
        bucket_minutes: crate::validate::format_short(bucket_ms as f64 / 60_000.0),
        window,
        status_line,
        segment_line,
        atypical_line,
        charts,
        r,
    }
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

/// Columns of the model page's segment table.
const PROFILE_COLUMNS: [&str; 6] = [
    "Age",
    "Income",
    "Total_Spending",
    "Children",
    "Discount_Purchases",
    "NumWebVisitsMonth",
];

/// `GET /model`: what the served model is and how good it is.
pub async fn model_page(State(s): State<AppState>) -> Response {
    let (m, plot) = s.current_plot();
    let idx: Vec<usize> = PROFILE_COLUMNS
        .iter()
        .filter_map(|k| crate::schema::feature_index(k))
        .collect();
    let page = ModelPage {
        picture: plot.render(None, None),
        segments: m
            .segments
            .iter()
            .map(|p| SegmentRow {
                id: p.id,
                name: p.name.clone(),
                size: p.size,
                share: format!("{:.1}%", p.share * 100.0),
                means: idx
                    .iter()
                    .map(|&j| {
                        p.means
                            .get(FEATURES[j].key)
                            .map_or("–".into(), |&v| FEATURES[j].show_mean(v))
                    })
                    .collect(),
            })
            .collect(),
        candidates: m
            .metrics
            .classifier
            .candidates
            .iter()
            .map(|c| CandidateRow {
                kind: c.kind.clone(),
                f1: format!("{:.4}", c.test.f1),
                accuracy: format!("{:.4}", c.test.accuracy),
                seconds: format!("{:.2}", c.seconds),
                chosen: c.kind == m.metrics.classifier.chosen,
            })
            .collect(),
        columns: idx.iter().map(|&j| FEATURES[j].label).collect(),
        sweep: m
            .segmentation
            .as_ref()
            .filter(|s| !s.k_sweep.is_empty())
            .map(|s| (svg::k_sweep(&s.k_sweep, m.k), s.k_rule.clone())),
        lineage: LineageView::of(&m),
        m: &m,
    };
    html(StatusCode::OK, &page)
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
