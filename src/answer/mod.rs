//! One answer per customer, whatever the door: a JSON body, an Arrow or CSV body, the web
//! form, or a bulk file (CSV, Parquet, Arrow, MongoDB documents).
//!
//! Every door reads its customers into [`Row`]s (the 21 features, or a [`RowError`]), the
//! model scores the valid ones, and [`Scores::answer`] turns a scored row into its
//! [`RowAnswer`]: the one place that decides the segment name, `atypical` and the
//! explanation. [`OutputColumns::push`] writes an answer (or an error) as a row of the
//! prediction columns, for the table answers and the bulk files alike; the JSON answer
//! serialises the same [`RowAnswer`]. The rules, as docs/bulk-scoring.md's output table states them:
//!
//! - **Segment name**: the model's name for the segment, or null when the model has none.
//! - **Explanation**: computed when asked for and the model can give it; none (null columns,
//!   no `explanation` object) when the model has fewer than two segments or the margin or a
//!   contribution is not finite (a value far outside anything seen can overflow the float32
//!   graph).
//! - **Atypical**: farther from the segment's centre than its training customers' 99th
//!   percentile; false for a model that does not carry the percentiles.
//! - **Row error**: its message starts with the field at fault, `"<field>: ..."`: the feature
//!   for a range, fraction, missing or unreadable value of a feature, the raw column for a
//!   category, a date or an unreadable value of a raw record.

mod columns;
pub mod table;

pub use columns::OutputColumns;

use crate::explain::{Explanation, Segments};
use crate::schema::{FEATURES, FieldError, N_FEATURES};

/// One customer: its 21 features, or why they cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Result<[f32; N_FEATURES], RowError>);

/// A row's problem: the field at fault (when there is one) and a message that starts with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub field: Option<String>,
    pub message: String,
}

impl RowError {
    /// An error of `field`: the message is `"<field>: <what>"`.
    pub fn of(field: &str, what: impl std::fmt::Display) -> Self {
        Self {
            field: Some(field.to_string()),
            message: format!("{field}: {what}"),
        }
    }

    /// A cell that is not a number: `'lots' is not a number` (the text cut short).
    pub fn not_a_number(field: &str, text: &str) -> Self {
        Self::of(field, format!("'{}' is not a number", shown_text(text)))
    }

    /// A problem of the whole record (a malformed CSV record), no field at fault.
    pub fn record(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }
}

impl From<FieldError> for RowError {
    fn from(e: FieldError) -> Self {
        Self {
            field: Some(e.field.into()),
            message: e.to_string(),
        }
    }
}

/// Longest piece of a client's text quoted back in a message.
pub(crate) const MAX_TEXT_SHOWN: usize = 64;

/// `text`, cut to [`MAX_TEXT_SHOWN`] characters (an attacker's 20 MB cell is not echoed back).
pub fn shown_text(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A text cell read as a number, the one rule of every table door: blank (empty or white
/// space) is missing (NaN), anything else is trimmed and must be a number in Rust's `f64`
/// syntax ("NaN" too reads as missing, as a float column's NaN does). None: not a number.
pub fn text_number(text: Option<&str>) -> Option<f64> {
    match text.map(str::trim) {
        None | Some("") => Some(f64::NAN),
        Some(t) => t.parse::<f64>().ok(),
    }
}

/// The model's outputs for the scored rows of a request or a piece: row `r` of them is the
/// `r`-th valid customer.
#[derive(Clone, Copy)]
pub struct Scores<'a> {
    pub k: usize,
    pub segment: &'a [i64],
    pub probabilities: &'a [f32],
    pub distances: &'a [f32],
    /// The preprocessed features `[rows, 21]`; empty unless explanations were asked for.
    pub preprocessed: &'a [f32],
    pub segments: &'a Segments,
}

/// A scored customer's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RowAnswer<'a> {
    pub segment: i64,
    /// Null when the model has no name for the segment.
    pub segment_name: Option<&'a str>,
    pub probabilities: &'a [f32],
    /// Farther from its segment's centre than 99% of the segment's training customers.
    pub atypical: bool,
    /// Why this segment rather than the runner-up, when asked for and computable.
    pub explanation: Option<Explanation>,
}

/// A customer's outcome: its answer, or its row error.
pub type Outcome<'a> = Result<RowAnswer<'a>, &'a RowError>;

impl<'a> Scores<'a> {
    /// Scored row `r`'s answer; with `explain`, its explanation where one can be computed.
    pub fn answer(&self, r: usize, explain: bool) -> RowAnswer<'a> {
        let k = self.k;
        let segment = self.segment[r];
        let distances = &self.distances[r * k..(r + 1) * k];
        RowAnswer {
            segment,
            segment_name: self.segments.name_of(segment as usize),
            probabilities: &self.probabilities[r * k..(r + 1) * k],
            atypical: self.segments.atypical(distances, segment as usize),
            explanation: if explain { self.explain(r) } else { None },
        }
    }

    /// Row `r`'s explanation, when the model can give it and it is finite.
    fn explain(&self, r: usize) -> Option<Explanation> {
        let space = self.segments.space.as_ref()?;
        let x = self
            .preprocessed
            .get(r * N_FEATURES..(r + 1) * N_FEATURES)?;
        if self.k < 2 {
            return None;
        }
        let d = &self.distances[r * self.k..(r + 1) * self.k];
        // A value far outside anything seen can overflow the float32 graph: no explanation
        // then, rather than NaNs that JSON cannot carry.
        Some(space.explain(x, d, self.segment[r] as usize))
            .filter(|e| e.margin.is_finite() && e.contributions.iter().all(|c| c.is_finite()))
    }
}

/// The key of each of the explanation's top features, largest contribution first.
pub fn top_keys(e: &Explanation) -> impl Iterator<Item = &'static str> {
    e.top(crate::explain::TOP_FEATURES)
        .into_iter()
        .map(|(j, _)| FEATURES[j].key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::SegmentSpace;

    /// Three segments on feature 4 and 7, centres at (±2, 0) and (0, 6); two named.
    fn segments() -> Segments {
        let mut w0 = vec![0f32; N_FEATURES];
        let mut w1 = vec![0f32; N_FEATURES];
        w0[4] = 1.0;
        w1[7] = 1.0;
        Segments {
            names: vec!["High".into(), "Low".into()],
            means: Vec::new(),
            space: Some(SegmentSpace {
                pca_mean: vec![0.0; N_FEATURES],
                components: vec![w0, w1],
                centres: vec![vec![2.0, 0.0], vec![-2.0, 0.0], vec![0.0, 6.0]],
                distance_p99: vec![1.5, 1.5, 1.5],
            }),
        }
    }

    #[test]
    fn one_rule_for_the_name_the_explanation_and_atypical() {
        let segments = segments();
        // Row 0: segment 0, near its centre; row 1: segment 2 (no name), far from it; row
        // 2: a distance that overflowed the float32 graph.
        let mut x = vec![0f32; 3 * N_FEATURES];
        x[4] = 2.0;
        x[N_FEATURES + 7] = 1.0;
        x[2 * N_FEATURES + 4] = f32::INFINITY;
        let scores = Scores {
            k: 3,
            segment: &[0, 2, 1],
            probabilities: &[0.8, 0.1, 0.1, 0.2, 0.2, 0.6, 0.1, 0.8, 0.1],
            distances: &[
                0.0,
                4.0,
                6.3,
                2.2,
                2.2,
                5.0,
                f32::INFINITY,
                f32::INFINITY,
                7.0,
            ],
            preprocessed: &x,
            segments: &segments,
        };
        let a = scores.answer(0, true);
        assert_eq!(a.segment_name, Some("High"));
        assert!(!a.atypical);
        assert_eq!(a.probabilities, &[0.8, 0.1, 0.1]);
        assert_eq!(a.explanation.as_ref().map(|e| e.runner_up), Some(1));
        assert_eq!(scores.answer(0, false).explanation, None, "only when asked");
        let b = scores.answer(1, true);
        assert_eq!(
            b.segment_name, None,
            "a segment without a name is null, not \"\""
        );
        assert!(b.atypical, "5.0 is beyond the p99 of 1.5");
        let c = scores.answer(2, true);
        assert_eq!(
            c.explanation, None,
            "a margin that is not finite explains nothing"
        );
        // A model without the space: not atypical, never explained.
        let plain = Segments {
            space: None,
            ..segments.clone()
        };
        let d = Scores {
            segments: &plain,
            ..scores
        }
        .answer(1, true);
        assert!(!d.atypical);
        assert_eq!(d.explanation, None);
    }

    #[test]
    fn a_model_of_one_segment_gives_no_explanation() {
        let mut one = segments();
        if let Some(space) = &mut one.space {
            space.centres.truncate(1);
            space.distance_p99.truncate(1);
        }
        let x = vec![0f32; N_FEATURES];
        let scores = Scores {
            k: 1,
            segment: &[0],
            probabilities: &[1.0],
            distances: &[0.5],
            preprocessed: &x,
            segments: &one,
        };
        assert_eq!(scores.answer(0, true).explanation, None);
    }

    #[test]
    fn an_answer_and_an_error_fill_the_same_columns() {
        let segments = segments();
        let x = vec![0f32; N_FEATURES];
        let scores = Scores {
            k: 3,
            segment: &[1],
            probabilities: &[0.1, 0.7, 0.2],
            distances: &[4.0, 0.5, 6.0],
            preprocessed: &x,
            segments: &segments,
        };
        let error = RowError::of("Age", "131 is outside [0, 130]");
        let mut columns = OutputColumns::with_capacity(2, 3, true);
        columns.push(&Err(&error));
        columns.push(&Ok(scores.answer(0, true)));
        assert_eq!(columns.segment, [None, Some(1)]);
        assert_eq!(columns.name, [None, Some("Low")]);
        assert_eq!(columns.atypical, [None, Some(false)]);
        assert_eq!(columns.error, [Some("Age: 131 is outside [0, 130]"), None]);
        let (runner_up, top) = columns.explained.as_ref().unwrap();
        assert_eq!(runner_up, &[None, Some(0)]);
        assert_eq!(top.len(), 3);
        assert!(top.iter().all(|t| t[0].is_none() && t[1].is_some()));
        assert_eq!(columns.names().len(), 2 + 3 + 1 + 4 + 1);
    }
}
