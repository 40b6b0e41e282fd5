//! The data validation page (`GET /validation`), also written as a standalone file by
//! `categorizer validate --html`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{STYLE_CSS, html, message};
use crate::serve::{AppState, svg};

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
        &format!("<style>{STYLE_CSS}</style>"),
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
