//! Content negotiation of the prediction route: which reader a body gets (`Content-Type`)
//! and which encoder its answer (`Accept`): JSON, an Arrow IPC stream, or CSV.

/// The media type of Arrow's IPC stream format.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// A body format of the prediction route: what it reads (`Content-Type`) and answers
/// (`Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// Arrow IPC stream: columns named by the feature keys.
    Arrow,
    /// CSV with a header row of feature keys.
    Csv,
}

impl Format {
    /// The format a `Content-Type` names; JSON when it names neither table format (as the
    /// route read every body before the table formats existed).
    pub fn of_content_type(value: Option<&str>) -> Self {
        let v = value.unwrap_or("").trim().to_ascii_lowercase();
        if v.starts_with(ARROW_STREAM) {
            Format::Arrow
        } else if v.starts_with("text/csv") {
            Format::Csv
        } else {
            Format::Json
        }
    }

    /// The answer format an `Accept` header asks for: Arrow or CSV when it lists one (the
    /// first listed wins), JSON otherwise.
    pub fn of_accept(value: Option<&str>) -> Self {
        for part in value.unwrap_or("").split(',') {
            let t = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if t == ARROW_STREAM {
                return Format::Arrow;
            }
            if t == "text/csv" {
                return Format::Csv;
            }
        }
        Format::Json
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Arrow => ARROW_STREAM,
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}
