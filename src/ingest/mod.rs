//! Ingest: raw customer records from a data source into a polars `DataFrame` holding the 29
//! schema columns, typed (numbers as Float64, categories and dates as strings).
//!
//! Sources: a CSV file (tab, comma or semicolon separated, detected from the header line), a
//! Parquet file, a MongoDB collection ([`mongo`]: `mongodb://HOST:PORT/DB?collection=NAME`),
//! or the seeded synthetic generator (`synthetic:rows=N,seed=S`). A bad file is
//! an error that names the column and, where one value is at fault, the row.

pub mod chunk;
mod csv_piece;
pub mod dataset;
mod files;
mod load;
pub mod mongo;
pub mod s3;
mod source;
pub mod stream;
pub mod synthetic;

pub use files::*;
pub use source::DataSource;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_detected_from_the_header() {
        assert_eq!(sniff_separator("ID\tYear_Birth\tEducation"), b'\t');
        assert_eq!(sniff_separator("ID,Year_Birth,Education"), b',');
        assert_eq!(sniff_separator("ID;Year_Birth;Education"), b';');
    }

    #[test]
    fn sources_parse_by_extension_and_scheme() {
        assert_eq!(
            DataSource::parse("a/b.CSV").unwrap(),
            DataSource::Csv("a/b.CSV".into())
        );
        assert_eq!(
            DataSource::parse("x.parquet").unwrap(),
            DataSource::Parquet("x.parquet".into())
        );
        assert_eq!(
            DataSource::parse("synthetic:rows=10,seed=7").unwrap(),
            DataSource::Synthetic { rows: 10, seed: 7 }
        );
        assert!(DataSource::parse("data.xlsx").is_err());
        assert!(
            DataSource::parse("synthetic:rows=ten")
                .unwrap_err()
                .to_string()
                .contains("rows")
        );
    }
}
