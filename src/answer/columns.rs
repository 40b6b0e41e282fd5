//! The prediction columns of a scored table: what bulk scoring appends to a file and the
//! prediction route answers as an Arrow or CSV table, one row per customer, filled by
//! [`OutputColumns::push`] from each customer's [`Outcome`].

use polars::prelude::{Column, PlSmallStr};

use super::table::csv_field;
use super::{Outcome, top_keys};
use crate::explain::TOP_FEATURES;

/// The explanation columns: `runner_up`, and one column per `top_feature_<n>`.
pub type Explained<'a> = (Vec<Option<i64>>, Vec<Vec<Option<&'a str>>>);

/// The prediction columns of a scored table, one value per input row (None: the row was not
/// predicted): what bulk scoring appends to a file and the prediction route answers as a table.
pub struct OutputColumns<'a> {
    pub segment: Vec<Option<i64>>,
    pub name: Vec<Option<&'a str>>,
    /// One column per segment.
    pub probabilities: Vec<Vec<Option<f32>>>,
    pub atypical: Vec<Option<bool>>,
    /// With explanations: `runner_up` and the `top_feature_<n>` columns.
    pub explained: Option<Explained<'a>>,
    pub error: Vec<Option<&'a str>>,
}

impl<'a> OutputColumns<'a> {
    /// Empty columns for `n` rows of a model with `k` segments (with `explain`, the
    /// explanation columns too).
    pub fn with_capacity(n: usize, k: usize, explain: bool) -> Self {
        Self {
            segment: Vec::with_capacity(n),
            name: Vec::with_capacity(n),
            probabilities: (0..k).map(|_| Vec::with_capacity(n)).collect(),
            atypical: Vec::with_capacity(n),
            explained: explain.then(|| {
                (
                    Vec::with_capacity(n),
                    (0..TOP_FEATURES).map(|_| Vec::with_capacity(n)).collect(),
                )
            }),
            error: Vec::with_capacity(n),
        }
    }

    /// The next customer's row: its answer's values and an empty `error`, or its error and
    /// every other column empty.
    pub fn push(&mut self, outcome: &Outcome<'a>) {
        match outcome {
            Ok(a) => {
                self.segment.push(Some(a.segment));
                self.name.push(a.segment_name);
                for (j, p) in self.probabilities.iter_mut().enumerate() {
                    p.push(a.probabilities.get(j).copied());
                }
                self.atypical.push(Some(a.atypical));
                if let Some((runner_up, top)) = &mut self.explained {
                    let e = a.explanation.as_ref();
                    runner_up.push(e.map(|e| e.runner_up as i64));
                    let mut keys = e.into_iter().flat_map(top_keys);
                    for t in top.iter_mut() {
                        t.push(keys.next());
                    }
                }
                self.error.push(None);
            }
            Err(e) => {
                self.segment.push(None);
                self.name.push(None);
                for p in &mut self.probabilities {
                    p.push(None);
                }
                self.atypical.push(None);
                if let Some((runner_up, top)) = &mut self.explained {
                    runner_up.push(None);
                    for t in top.iter_mut() {
                        t.push(None);
                    }
                }
                self.error.push(Some(e.message.as_str()));
            }
        }
    }
}

impl OutputColumns<'_> {
    /// The columns' names: `segment`, `segment_name`, `probability_<id>`, `atypical`,
    /// (`runner_up`, `top_feature_1..`), `error`, in that order.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec!["segment".to_string(), "segment_name".to_string()];
        names.extend((0..self.probabilities.len()).map(|j| format!("probability_{j}")));
        names.push("atypical".into());
        if let Some((_, top)) = &self.explained {
            names.push("runner_up".into());
            names.extend((0..top.len()).map(|j| format!("top_feature_{}", j + 1)));
        }
        names.push("error".into());
        names
    }

    /// The columns, named as [`names`](Self::names) says.
    pub fn into_columns(self) -> Vec<Column> {
        let mut names = self.names().into_iter().map(PlSmallStr::from);
        let mut name = || names.next().expect("one name per column");
        let mut columns = vec![
            Column::new(name(), self.segment),
            Column::new(name(), self.name),
        ];
        for p in self.probabilities {
            columns.push(Column::new(name(), p));
        }
        columns.push(Column::new(name(), self.atypical));
        if let Some((runner_up, top)) = self.explained {
            columns.push(Column::new(name(), runner_up));
            for t in top {
                columns.push(Column::new(name(), t));
            }
        }
        columns.push(Column::new(name(), self.error));
        columns
    }

    /// Row `i`'s values as CSV fields, each after a `separator` (they follow the input's
    /// fields): what polars' CSV writer would write, without a frame built for it.
    pub fn write_csv_row(&self, i: usize, separator: u8, out: &mut Vec<u8>) {
        let mut int = itoa::Buffer::new();
        let mut float = ryu::Buffer::new();
        let field = |out: &mut Vec<u8>, text: Option<&[u8]>| {
            out.push(separator);
            if let Some(t) = text {
                csv_field(out, t, separator);
            }
        };
        // A number or a boolean is written as it is, unless the separator is a character
        // that one could hold.
        let plain = !(separator.is_ascii_alphanumeric() || b".-+".contains(&separator));
        let value = |out: &mut Vec<u8>, text: Option<&[u8]>| match text {
            Some(t) if plain => {
                out.push(separator);
                out.extend_from_slice(t);
            }
            _ => field(out, text),
        };
        value(out, self.segment[i].map(|s| int.format(s).as_bytes()));
        field(out, self.name[i].map(str::as_bytes));
        for p in &self.probabilities {
            value(out, p[i].map(|v| float_text(&mut float, v)));
        }
        value(
            out,
            self.atypical[i].map(|a| if a { &b"true"[..] } else { b"false" }),
        );
        if let Some((runner_up, top)) = &self.explained {
            value(out, runner_up[i].map(|s| int.format(s).as_bytes()));
            for t in top {
                field(out, t[i].map(str::as_bytes));
            }
        }
        field(out, self.error[i].map(str::as_bytes));
    }
}

/// An f32 as the shortest text that reads back as it (`1.0`, not `1`, as polars writes it).
fn float_text(buf: &mut ryu::Buffer, v: f32) -> &[u8] {
    if v.is_finite() {
        buf.format_finite(v).as_bytes()
    } else if v.is_nan() {
        b"NaN"
    } else if v > 0.0 {
        b"inf"
    } else {
        b"-inf"
    }
}
