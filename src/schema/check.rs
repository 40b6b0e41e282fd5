//! A schema file checked whole: every mistake named with its key and line
//! ([`SchemaFile::problems`]), and the checked file resolved into a [`CustomerSchema`].

use std::collections::{BTreeMap, BTreeSet};

use super::RawColumn;
use super::RawType;
use super::derive::resolve_feature;
use super::file::{
    CustomerSchema, MAX_FEATURES, MAX_NAME_CHARS, Problem, ReferenceRule, SchemaFile,
};
use crate::dates::{DateFormat, ReferenceDate};
use crate::error::{Error, Result};

impl SchemaFile {
    /// Reads and checks a schema file.
    pub fn load(path: &std::path::Path) -> Result<CustomerSchema> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        Self::parse(&text, &origin)?.resolve(&text, &origin)
    }

    /// Every mistake of the file, in the order of the text's keys; `text` is the file the
    /// schema was parsed from (for line numbers).
    pub fn problems(&self, text: &str) -> Vec<Problem> {
        let lines = Lines::new(text);
        let mut out = Vec::new();
        self.check_top(&lines, &mut out);
        let columns = self.check_columns(&lines, &mut out);
        self.check_features(&columns, &lines, &mut out);
        out
    }

    /// The checked schema, or an error listing every mistake.
    pub fn resolve(&self, text: &str, origin: &str) -> Result<CustomerSchema> {
        let problems = self.problems(text);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            return Err(Error::Schema(format!(
                "schema {origin}: {} mistake{}:\n{}",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                list.join("\n")
            )));
        }
        let columns: BTreeMap<&str, &RawColumn> =
            self.columns.iter().map(|c| (c.name.as_str(), c)).collect();
        let features = self
            .features
            .iter()
            .map(|f| resolve_feature(f, &columns).expect("checked above"))
            .collect();
        Ok(CustomerSchema {
            id: self.id.clone(),
            reference_date: match self.reference_date.as_deref() {
                None => ReferenceRule::Setting,
                Some("latest") => ReferenceRule::Latest,
                Some(d) => ReferenceRule::Fixed(ReferenceDate::parse(d).expect("checked above")),
            },
            columns: self.columns.clone(),
            features,
        })
    }

    fn check_top(&self, lines: &Lines, out: &mut Vec<Problem>) {
        if let Some(id) = &self.id
            && !self.columns.iter().any(|c| &c.name == id)
        {
            out.push(lines.problem("id", format!("'{id}' is not one of the columns"), "id:"));
        }
        if let Some(d) = &self.reference_date
            && d != "latest"
            && let Err(m) = ReferenceDate::parse(d)
        {
            let m = format!("{m}; write `latest` or a date as YYYY-MM-DD");
            out.push(lines.problem("reference_date", m, "reference_date:"));
        }
        if self.columns.is_empty() {
            out.push(lines.problem("columns", "no columns".into(), "columns:"));
        }
        if self.features.is_empty() {
            let m = "no features: a model needs at least one".to_string();
            out.push(lines.problem("features", m, "features:"));
        }
        if self.features.len() > MAX_FEATURES {
            let m = format!("{} features; at most {MAX_FEATURES}", self.features.len());
            out.push(lines.problem("features", m, "features:"));
        }
    }

    /// Checks each column alone and returns them by name (the first of a duplicated name).
    fn check_columns<'a>(
        &'a self,
        lines: &Lines,
        out: &mut Vec<Problem>,
    ) -> BTreeMap<&'a str, &'a RawColumn> {
        let mut by_name = BTreeMap::new();
        let mut at = lines.key("columns:").unwrap_or(0);
        for (i, c) in self.columns.iter().enumerate() {
            let key = format!("columns[{i}] ({})", c.name);
            let line = lines.named(&c.name, at);
            at = line.unwrap_or(at);
            let mut say = |m: String| {
                out.push(Problem {
                    key: key.clone(),
                    message: m,
                    line,
                })
            };
            if let Some(m) = column_name_problem(&c.name) {
                say(m);
            }
            if by_name.insert(c.name.as_str(), c).is_some() {
                say("a second column of this name".into());
            }
            match c.kind {
                RawType::Date => match &c.format {
                    None => say("a date column needs a `format`, such as \"%Y-%m-%d\"".into()),
                    Some(f) if DateFormat::fixed(f).is_none() => say(format!(
                        "format \"{f}\" is not a date format this program reads: %Y, %m and %d \
                         once each, with ASCII between them (\"%Y-%m-%d\", \"%d-%m-%Y\")"
                    )),
                    Some(_) => {}
                },
                _ if c.format.is_some() => say("`format` is for date columns".into()),
                _ => {}
            }
            if c.kind == RawType::Category {
                let mut seen = BTreeSet::new();
                for v in &c.values {
                    if !seen.insert(v) {
                        say(format!("value '{v}' is listed twice"));
                    }
                }
            } else if !c.values.is_empty() {
                say("`values` is for category columns".into());
            }
            if let (Some(lo), Some(hi)) = (c.min, c.max)
                && lo > hi
            {
                say(format!("min {lo} is above max {hi}"));
            }
            if matches!(c.kind, RawType::Category | RawType::Date)
                && (c.min.is_some() || c.max.is_some())
            {
                say("`min` and `max` are for integer and number columns".into());
            }
        }
        by_name
    }

    fn check_features(
        &self,
        columns: &BTreeMap<&str, &RawColumn>,
        lines: &Lines,
        out: &mut Vec<Problem>,
    ) {
        let mut names = BTreeSet::new();
        let mut at = lines.key("features:").unwrap_or(0);
        for (i, f) in self.features.iter().enumerate() {
            let key = format!("features[{i}] ({})", f.name);
            let line = lines.named(&f.name, at);
            at = line.unwrap_or(at);
            if let Some(m) = feature_name_problem(&f.name) {
                out.push(Problem {
                    key: key.clone(),
                    message: m,
                    line,
                });
            }
            if !names.insert(f.name.as_str()) {
                out.push(Problem {
                    key: key.clone(),
                    message: "a second feature of this name".into(),
                    line,
                });
            }
            if let Err(m) = resolve_feature(f, columns) {
                out.push(Problem {
                    key,
                    message: m,
                    line,
                });
            }
        }
    }
}

/// Why a feature's name cannot be one: it is a JSON key, a form field, an SQL identifier and an
/// ONNX-side column name, so it is an ASCII identifier.
fn feature_name_problem(name: &str) -> Option<String> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let ok_rest = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_start || !ok_rest {
        return Some(format!(
            "'{name}' cannot be a feature name: it is a JSON key, a form field and an SQL \
             identifier, so it is a letter or _ followed by letters, digits or _"
        ));
    }
    (name.len() > MAX_NAME_CHARS).then(|| {
        format!(
            "a name of {} characters; at most {MAX_NAME_CHARS}",
            name.len()
        )
    })
}

/// Why a raw column's name cannot be read: it is the table's own, so anything printable goes,
/// but not quotes (it is quoted as an SQL identifier) or control characters.
fn column_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an empty column name".into());
    }
    if name.chars().any(|c| c.is_control() || c == '"' || c == '`') {
        return Some(format!(
            "'{}' cannot be a column name: no quotes or control characters",
            name.escape_debug()
        ));
    }
    (name.chars().count() > 2 * MAX_NAME_CHARS).then(|| {
        format!(
            "a name of {} characters; at most {}",
            name.len(),
            2 * MAX_NAME_CHARS
        )
    })
}

/// Line numbers of a schema's text, found by what the line holds: YAML's parser does not keep
/// where each value was once it is read.
struct Lines<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
        }
    }

    /// The first line that starts a key (`id:`), ignoring indentation and comments.
    fn key(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| l.trim_start().starts_with(key))
            .map(|i| i + 1)
    }

    /// The first line after line `after` that names `name` (`name: x`, in block or flow
    /// style): the entries of a list are in the text's order.
    fn named(&self, name: &str, after: usize) -> Option<usize> {
        let plain = format!("name: {name}");
        let quoted = format!("name: \"{name}\"");
        let single = format!("name: '{name}'");
        self.lines
            .iter()
            .skip(after)
            .position(|l| {
                let l = l.split(" #").next().unwrap_or("");
                [&plain, &quoted, &single].iter().any(|p| {
                    l.find(p.as_str()).is_some_and(|at| {
                        let rest = &l[at + p.len()..];
                        rest.is_empty() || rest.starts_with([',', ' ', '}'])
                    })
                })
            })
            .map(|i| after + i + 1)
    }

    fn problem(&self, key: &str, message: String, starts: &str) -> Problem {
        Problem {
            key: key.into(),
            message,
            line: self.key(starts),
        }
    }
}
