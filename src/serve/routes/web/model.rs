//! The model page (`GET /model`): what the served model is, how good it is, and how its
//! segments relate to the previous model's.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::html;
use crate::registry::Manifest;
use crate::schema::FEATURES;
use crate::serve::{AppState, svg};

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
