//! The monitoring page (`GET /monitoring`): the last window's report of the customers this
//! replica scored, in sentences and charts.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{html, message};
use crate::monitor::{Report, format_ms};
use crate::serve::{AppState, svg};

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
    r: Report,
    history: &[(u64, u64, Vec<u64>, u64)],
    bucket_ms: u64,
    manifest: &crate::registry::Manifest,
) -> MonitoringPage {
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
        window: window_line(&r),
        status_line: status_line(&r),
        segment_line: segment_line(&r),
        atypical_line: atypical_line(&r),
        charts: drift_charts(&r),
        r,
    }
}

/// The window's span, or that nothing was seen yet.
fn window_line(r: &Report) -> String {
    if r.rows == 0 && r.error_rows == 0 {
        "no customers scored yet".to_string()
    } else {
        format!(
            "{} to {}",
            format_ms(r.window_start_ms),
            format_ms(r.window_end_ms)
        )
    }
}

/// The report's status in a sentence.
fn status_line(r: &Report) -> String {
    match r.status.as_str() {
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
    }
}

/// The segment shares' test and verdict.
fn segment_line(r: &Report) -> String {
    r.segment_shift
        .as_ref()
        .map_or("not tested".to_string(), |t| {
            format!(
                "{} {:.4} (threshold {}): {}",
                t.test,
                t.score,
                t.threshold,
                if t.drifted { "shifted" } else { "steady" }
            )
        })
}

/// The atypical share against the expected one, and its verdict.
fn atypical_line(r: &Report) -> String {
    r.atypical.as_ref().map_or("not tested".to_string(), |a| {
        format!(
            "{:.2} % (expected {:.0} %; drift from {:.0}× and p < threshold, p = {:.3}): {}",
            100.0 * a.share,
            100.0 * a.expected,
            a.ratio_threshold,
            a.p_value,
            if a.drifted { "drifted" } else { "as expected" }
        )
    })
}

/// The drifted features: name, test and score, and validation's chart of the two shares.
fn drift_charts(r: &Report) -> Vec<(String, String, String)> {
    r.features
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
        .collect()
}
