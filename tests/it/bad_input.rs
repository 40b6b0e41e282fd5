//! Bad files give errors or reports that name the column and the row.

use std::io::Write;

use categorizer::dates::ReferenceDate;
use categorizer::features::engineer;
use categorizer::ingest::{self, DataSource};

const HEADER: &str = "ID\tYear_Birth\tEducation\tMarital_Status\tIncome\tKidhome\tTeenhome\tDt_Customer\tRecency\tMntWines\tMntFruits\tMntMeatProducts\tMntFishProducts\tMntSweetProducts\tMntGoldProds\tNumDealsPurchases\tNumWebPurchases\tNumCatalogPurchases\tNumStorePurchases\tNumWebVisitsMonth\tAcceptedCmp3\tAcceptedCmp4\tAcceptedCmp5\tAcceptedCmp1\tAcceptedCmp2\tComplain\tZ_CostContact\tZ_Revenue\tResponse";
const ROW1: &str = "5524\t1957\tGraduation\tSingle\t58138\t0\t0\t04-09-2012\t58\t635\t88\t546\t172\t88\t88\t3\t8\t10\t4\t7\t0\t0\t0\t0\t0\t0\t3\t11\t1";
const ROW2: &str = "2174\t1954\tGraduation\tSingle\t46344\t1\t1\t08-03-2014\t38\t11\t1\t6\t2\t1\t6\t2\t1\t1\t2\t5\t0\t0\t0\t0\t0\t0\t3\t11\t0";

fn file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    (dir, path)
}

#[test]
fn a_good_file_reads_tab_or_comma_separated() {
    let tsv = format!("{HEADER}\n{ROW1}\n{ROW2}\n");
    let (_d, path) = file("ok.csv", &tsv);
    let df = ingest::read_csv(&path).unwrap();
    assert_eq!(df.shape(), (2, 29));
    let csv = tsv.replace('\t', ",");
    let (_d, path) = file("ok_comma.csv", &csv);
    assert_eq!(ingest::read_csv(&path).unwrap().shape(), (2, 29));
}

#[test]
fn a_missing_column_is_named() {
    let header = HEADER.replace("\tRecency", "");
    let row = ROW1.replacen("\t58\t", "\t", 1);
    let (_d, path) = file("missing.csv", &format!("{header}\n{row}\n"));
    let err = ingest::read_csv(&path).unwrap_err().to_string();
    assert!(
        err.contains("'Recency'") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_string_for_a_number_names_column_and_row() {
    let bad = ROW2.replace("46344", "lots");
    let (_d, path) = file("bad_type.csv", &format!("{HEADER}\n{ROW1}\n{bad}\n"));
    let err = ingest::read_csv(&path).unwrap_err().to_string();
    assert!(
        err.contains("'Income'") && err.contains("row 2") && err.contains("'lots'"),
        "{err}"
    );
}

#[test]
fn empty_and_header_only_files_are_refused() {
    let (_d, path) = file("empty.csv", "");
    let err = ingest::read_csv(&path).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let (_d, path) = file("header.csv", &format!("{HEADER}\n"));
    let err = ingest::read_csv(&path).unwrap_err().to_string();
    assert!(err.contains("no data rows"), "{err}");
    let err = DataSource::parse("customers.xlsx").unwrap_err().to_string();
    assert!(err.contains("unsupported"), "{err}");
}

#[test]
fn bad_dates_unknown_categories_and_negative_ages_are_reported_by_row() {
    let bad_date = ROW2.replace("08-03-2014", "2014/03/08");
    let odd_status = ROW1.replace("Single", "Complicated");
    let unborn = ROW1.replace("\t1957\t", "\t2020\t");
    let text = format!("{HEADER}\n{ROW1}\n{bad_date}\n{odd_status}\n{ROW2}\n{unborn}\n");
    let (_d, path) = file("rows.csv", &text);
    let df = ingest::read_csv(&path).unwrap();
    let table = engineer(&df, ReferenceDate::default()).unwrap();
    let r = &table.report;
    assert_eq!((r.rows_read, r.rows_kept), (5, 2));
    let date = &r.rejected["unparseable date in Dt_Customer"];
    assert_eq!(
        (date.count, date.rows.clone(), date.values.clone()),
        (1, vec![2], vec!["2014/03/08".to_string()])
    );
    let cat = &r.rejected["unknown category in Marital_Status"];
    assert_eq!(
        (cat.rows.clone(), cat.values.clone()),
        (vec![3], vec!["Complicated".to_string()])
    );
    let age = r
        .rejected
        .iter()
        .find(|(k, _)| k.starts_with("Age out of range"))
        .expect("negative age reported");
    assert_eq!(age.1.rows, vec![5]);
    assert_eq!(table.source_rows, vec![0, 3]);
    let lines = r.summary_lines().join("\n");
    assert!(
        lines.contains("rows 2") && lines.contains("Dt_Customer"),
        "{lines}"
    );
}

#[test]
fn missing_income_is_kept_and_counted_for_imputation() {
    let no_income = ROW2.replace("46344", "");
    let (_d, path) = file("income.csv", &format!("{HEADER}\n{ROW1}\n{no_income}\n"));
    let df = ingest::read_csv(&path).unwrap();
    let table = engineer(&df, ReferenceDate::default()).unwrap();
    assert_eq!(table.report.rows_kept, 2);
    assert_eq!(table.report.missing["Income"], 1);
    let income = categorizer::schema::feature_index("Income").unwrap();
    assert!(table.matrix.get(1, income).is_nan());
}

#[test]
fn parquet_round_trips_and_wrong_types_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.parquet");
    let mut df = ingest::synthetic::generate_records(300, 3);
    ingest::write_records(&mut df, &path).unwrap();
    let back = DataSource::parse(path.to_str().unwrap())
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(back.shape(), (300, 29));
    use polars::prelude::*;
    // A Parquet file with a typed Date column reads as the same records.
    let mut typed = df.clone();
    let dates = typed
        .column("Dt_Customer")
        .unwrap()
        .as_materialized_series()
        .str()
        .unwrap()
        .as_date(Some("%d-%m-%Y"), false)
        .unwrap()
        .into_column();
    typed.with_column(dates).unwrap();
    assert_eq!(
        typed.column("Dt_Customer").unwrap().dtype(),
        &DataType::Date
    );
    let typed_path = dir.path().join("typed.parquet");
    ingest::write_records(&mut typed, &typed_path).unwrap();
    assert_eq!(ingest::read_parquet(&typed_path).unwrap(), back);
    let income = df
        .column("Income")
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap();
    assert!(back.column("Income").unwrap().equals_missing(&income));
    assert_eq!(
        back,
        ingest::synthetic::generate(300, 3),
        "a file round trip reads what was generated"
    );

    let mut bad = df.clone();
    let recency: Vec<String> = (0..300)
        .map(|i| {
            if i == 41 {
                "soon".into()
            } else {
                i.to_string()
            }
        })
        .collect();
    bad.with_column(Column::new("Recency".into(), recency))
        .unwrap();
    let bad_path = dir.path().join("bad.parquet");
    ingest::write_records(&mut bad, &bad_path).unwrap();
    let err = ingest::read_parquet(&bad_path).unwrap_err().to_string();
    assert!(
        err.contains("'Recency'") && err.contains("row 42") && err.contains("soon"),
        "{err}"
    );
}

/// The 21 features of the first two records of the real data, as the pandas original computes
/// them (reference date 2014-12-31; Education as 0..4; Marital_Status 1 for Married/Together):
///   f["Age"] = 2014 - df.Year_Birth; f["Total_Spending"] = df[mnt].sum(axis=1);
///   f["Days_as_Customer"] = (pd.Timestamp("2014-12-31") - pd.to_datetime(df.Dt_Customer, format="%d-%m-%Y")).dt.days; ...
///   f.iloc[:2].to_dict(orient="records")
#[test]
fn features_match_the_pandas_original() {
    let (_d, path) = file("two.csv", &format!("{HEADER}\n{ROW1}\n{ROW2}\n"));
    let df = ingest::read_csv(&path).unwrap();
    let table = engineer(&df, ReferenceDate::default()).unwrap();
    let want: [[f32; 21]; 2] = [
        [
            57., 2., 0., 0., 0., 58138., 1617., 848., 58., 635., 88., 546., 172., 88., 88., 8.,
            10., 4., 3., 0., 7.,
        ],
        [
            60., 2., 0., 1., 2., 46344., 27., 298., 38., 11., 1., 6., 2., 1., 6., 1., 1., 2., 2.,
            0., 5.,
        ],
    ];
    for (i, row) in want.iter().enumerate() {
        assert_eq!(table.matrix.row(i), row, "row {}", i + 1);
    }
    // Married counts as living with a partner; three accepted campaigns sum into Total_Promo.
    let married = ROW1
        .replace("Single", "Married")
        .replace("\t0\t0\t0\t0\t0\t0\t3\t11", "\t1\t0\t1\t0\t1\t0\t3\t11");
    let (_d, path) = file("married.csv", &format!("{HEADER}\n{married}\n"));
    let table = engineer(&ingest::read_csv(&path).unwrap(), ReferenceDate::default()).unwrap();
    let key = |k: &str| {
        table
            .matrix
            .get(0, categorizer::schema::feature_index(k).unwrap())
    };
    assert_eq!((key("Marital_Status"), key("Total_Promo")), (1.0, 3.0));
}
