//! A seeded generator of raw records with the 29-column schema, so the project trains, tests
//! and benchmarks with no outside data.
//!
//! Each customer has a hidden affluence score; income, spending, purchases, children and
//! campaign responses follow from it with noise, giving the skewed spends and the loose
//! groups of the real data. About 1% of incomes are missing, a few records carry the odd
//! marital statuses of the original data (Alone, Absurd, YOLO), birth years before 1901 and an
//! outlying income. Same rows and seed, same records: chunk `i` is generated from its own
//! ChaCha stream, so parallel generation stays deterministic.

use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

const CHUNK: usize = 16_384;
const EDUCATION: [(&str, f64); 5] = [
    ("Basic", 0.024),
    ("2n Cycle", 0.091),
    ("Graduation", 0.503),
    ("Master", 0.165),
    ("PhD", 0.217),
];
const MARITAL: [(&str, f64); 8] = [
    ("Married", 0.386),
    ("Together", 0.259),
    ("Single", 0.214),
    ("Divorced", 0.104),
    ("Widow", 0.034),
    ("Alone", 0.0013),
    ("Absurd", 0.0009),
    ("YOLO", 0.0009),
];
/// First and last enrolment dates of the original data, as days since 1970-01-01.
const FIRST_DAY: i64 = 15_551; // 2012-07-30
const LAST_DAY: i64 = 16_250; // 2014-06-29

#[derive(Default)]
struct Columns {
    id: Vec<i64>,
    year_birth: Vec<i64>,
    education: Vec<&'static str>,
    marital: Vec<&'static str>,
    income: Vec<Option<i64>>,
    kidhome: Vec<i64>,
    teenhome: Vec<i64>,
    dt_customer: Vec<String>,
    recency: Vec<i64>,
    mnt: [Vec<i64>; 6],
    deals: Vec<i64>,
    web: Vec<i64>,
    catalog: Vec<i64>,
    store: Vec<i64>,
    visits: Vec<i64>,
    cmp: [Vec<i64>; 5],
    complain: Vec<i64>,
    response: Vec<i64>,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, f64)]) -> T {
    let total: f64 = table.iter().map(|(_, w)| w).sum();
    let mut u = rng.random::<f64>() * total;
    for &(v, w) in table {
        if u < w {
            return v;
        }
        u -= w;
    }
    table[table.len() - 1].0
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

fn count(x: f64, max: i64) -> i64 {
    (x.round() as i64).clamp(0, max)
}

fn generate_chunk(start: usize, len: usize, seed: u64, chunk_index: u64) -> Columns {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(chunk_index);
    let mut c = Columns::default();
    for i in start..start + len {
        let a: f64 = normal(&mut rng); // affluence
        let id = i as i64;
        let mut year = (1969.0 - 4.0 * a + 11.0 * normal(&mut rng))
            .round()
            .clamp(1940.0, 1996.0) as i64;
        if rng.random::<f64>() < 0.0015 {
            year = rng.random_range(1893..=1900);
        }
        let age = 2014 - year;
        let mut education = pick(&mut rng, &EDUCATION);
        if a < -1.3 && rng.random::<f64>() < 0.25 {
            education = "Basic";
        }
        let marital = pick(&mut rng, &MARITAL);
        let income_val = (10.75 + 0.42 * a + 0.12 * normal(&mut rng))
            .exp()
            .clamp(1730.0, 162_000.0);
        let income = if rng.random::<f64>() < 0.011 {
            None
        } else if rng.random::<f64>() < 0.0005 {
            Some(666_666)
        } else {
            Some(income_val.round() as i64)
        };
        let p_kid = 1.0 / (1.0 + (1.6 * a + 0.2).exp());
        let kidhome =
            i64::from(rng.random::<f64>() < p_kid) + i64::from(rng.random::<f64>() < p_kid * 0.1);
        let p_teen = (0.15 + (age as f64 - 35.0) / 50.0).clamp(0.05, 0.75)
            * (1.0 - 0.3 * a.max(0.0)).max(0.2);
        let teenhome =
            i64::from(rng.random::<f64>() < p_teen) + i64::from(rng.random::<f64>() < 0.03);
        let children = (kidhome + teenhome) as f64;
        let day = rng.random_range(FIRST_DAY..=LAST_DAY);
        let (d, m, y) = crate::dates::civil_from_days(day);
        let tenure = (LAST_DAY - day) as f64 / (LAST_DAY - FIRST_DAY) as f64;

        // Total spend: strongly skewed, driven by affluence, damped by children, grows with tenure.
        let spend = (5.3 + 1.45 * a - 0.35 * children + 0.6 * tenure + 0.45 * normal(&mut rng))
            .exp()
            .clamp(5.0, 2600.0);
        let shares = [0.46, 0.05, 0.27, 0.07, 0.05, 0.10];
        let mut mnt = [0i64; 6];
        for (k, share) in shares.iter().enumerate() {
            let noise = (0.5 * normal(&mut rng)).exp();
            mnt[k] = (spend * share * noise).round().max(0.0) as i64;
        }
        let deals = count(
            1.0 + 1.2 * children + 0.4 * a.abs() + 1.2 * normal(&mut rng),
            15,
        );
        let web = count(1.0 + spend / 280.0 + 1.6 * normal(&mut rng).abs(), 27);
        let catalog = count(spend / 330.0 + 0.8 * normal(&mut rng), 28);
        let store = count(2.5 + spend / 230.0 + 1.5 * normal(&mut rng), 13);
        let visits = count(5.8 - 1.9 * a + 0.6 * children + 1.6 * normal(&mut rng), 20);
        let p_cmp = (0.045 + 0.06 * a).clamp(0.003, 0.35);
        let mut cmp = [0i64; 5];
        for (k, v) in cmp.iter_mut().enumerate() {
            let boost = if k == 1 { 0.3 } else { 1.0 };
            *v = i64::from(rng.random::<f64>() < p_cmp * boost);
        }
        let response = i64::from(
            rng.random::<f64>()
                < (0.1 + 0.08 * a + 0.1 * cmp.iter().sum::<i64>() as f64).clamp(0.02, 0.8),
        );

        c.id.push(id);
        c.year_birth.push(year);
        c.education.push(education);
        c.marital.push(marital);
        c.income.push(income);
        c.kidhome.push(kidhome);
        c.teenhome.push(teenhome);
        c.dt_customer.push(format!("{d:02}-{m:02}-{y:04}"));
        c.recency.push(rng.random_range(0..100));
        for k in 0..6 {
            c.mnt[k].push(mnt[k]);
        }
        c.deals.push(deals);
        c.web.push(web);
        c.catalog.push(catalog);
        c.store.push(store);
        c.visits.push(visits);
        for k in 0..5 {
            c.cmp[k].push(cmp[k]);
        }
        c.complain.push(i64::from(rng.random::<f64>() < 0.009));
        c.response.push(response);
    }
    c
}

fn concat<T: Clone>(parts: &[Columns], f: impl Fn(&Columns) -> &Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| f(p).len()).sum());
    for p in parts {
        out.extend_from_slice(f(p));
    }
    out
}

/// Generates `rows` raw records, typed as they are read (numbers as Float64), ready to train on.
pub fn generate(rows: usize, seed: u64) -> DataFrame {
    super::conform("synthetic", generate_records(rows, seed))
        .expect("generated columns conform to the schema")
}

/// Generates `rows` raw records as a file holds them: the original data's column order, whole
/// numbers as integers, a missing Income as null.
pub fn generate_records(rows: usize, seed: u64) -> DataFrame {
    records_of_chunks(rows, seed, 0..rows.div_ceil(CHUNK))
}

/// The same records as [`generate_records`], in the same order, as frames of about
/// `batch_rows` rows each (whole chunks of [`CHUNK`] rows, each generated from its own seeded
/// stream): memory holds one batch, whatever `rows` is.
pub fn record_batches(
    rows: usize,
    seed: u64,
    batch_rows: usize,
) -> impl Iterator<Item = DataFrame> {
    let chunks = rows.div_ceil(CHUNK);
    let per_batch = batch_rows.div_ceil(CHUNK).max(1);
    // No rows: one empty frame, so the file still gets its header (or schema).
    (0..chunks.max(1))
        .step_by(per_batch)
        .map(move |first| records_of_chunks(rows, seed, first..(first + per_batch).min(chunks)))
}

/// The records of chunks `chunks` of a `rows`-row data set.
fn records_of_chunks(rows: usize, seed: u64, chunks: std::ops::Range<usize>) -> DataFrame {
    let parts: Vec<Columns> = chunks
        .into_par_iter()
        .map(|chunk| {
            let start = chunk * CHUNK;
            generate_chunk(start, CHUNK.min(rows - start), seed, chunk as u64)
        })
        .collect();
    let int =
        |name: &str, f: &dyn Fn(&Columns) -> &Vec<i64>| Column::new(name.into(), concat(&parts, f));
    let n = parts.iter().map(|p| p.id.len()).sum::<usize>();
    let columns = vec![
        int("ID", &|c| &c.id),
        int("Year_Birth", &|c| &c.year_birth),
        Column::new("Education".into(), concat(&parts, |c| &c.education)),
        Column::new("Marital_Status".into(), concat(&parts, |c| &c.marital)),
        Column::new("Income".into(), concat(&parts, |c| &c.income)),
        int("Kidhome", &|c| &c.kidhome),
        int("Teenhome", &|c| &c.teenhome),
        Column::new("Dt_Customer".into(), concat(&parts, |c| &c.dt_customer)),
        int("Recency", &|c| &c.recency),
        int("MntWines", &|c| &c.mnt[0]),
        int("MntFruits", &|c| &c.mnt[1]),
        int("MntMeatProducts", &|c| &c.mnt[2]),
        int("MntFishProducts", &|c| &c.mnt[3]),
        int("MntSweetProducts", &|c| &c.mnt[4]),
        int("MntGoldProds", &|c| &c.mnt[5]),
        int("NumDealsPurchases", &|c| &c.deals),
        int("NumWebPurchases", &|c| &c.web),
        int("NumCatalogPurchases", &|c| &c.catalog),
        int("NumStorePurchases", &|c| &c.store),
        int("NumWebVisitsMonth", &|c| &c.visits),
        int("AcceptedCmp3", &|c| &c.cmp[2]),
        int("AcceptedCmp4", &|c| &c.cmp[3]),
        int("AcceptedCmp5", &|c| &c.cmp[4]),
        int("AcceptedCmp1", &|c| &c.cmp[0]),
        int("AcceptedCmp2", &|c| &c.cmp[1]),
        int("Complain", &|c| &c.complain),
        Column::new("Z_CostContact".into(), vec![3i64; n]),
        Column::new("Z_Revenue".into(), vec![11i64; n]),
        int("Response", &|c| &c.response),
    ];
    DataFrame::new_infer_height(columns).expect("generated columns have equal lengths")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(crate::dates::civil_from_days(0), (1, 1, 1970));
        assert_eq!(crate::dates::civil_from_days(FIRST_DAY), (30, 7, 2012));
        assert_eq!(crate::dates::civil_from_days(LAST_DAY), (29, 6, 2014));
    }

    #[test]
    fn batches_are_the_same_records_in_the_same_order() {
        let rows = 3 * CHUNK + 17;
        let whole = generate_records(rows, 5);
        for batch_rows in [1, CHUNK, 2 * CHUNK + 1, 10 * CHUNK] {
            let batches: Vec<DataFrame> = record_batches(rows, 5, batch_rows).collect();
            assert!(
                batches
                    .iter()
                    .all(|b| b.height() <= batch_rows.div_ceil(CHUNK) * CHUNK)
            );
            let mut joined = batches[0].clone();
            for b in &batches[1..] {
                joined.vstack_mut(b).unwrap();
            }
            assert!(joined.equals_missing(&whole), "batches of {batch_rows}");
        }
    }

    #[test]
    fn batches_written_one_by_one_are_the_file_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let rows = 2 * CHUNK + 5;
        for name in ["x.csv", "x.tsv", "x.parquet"] {
            let (whole, streamed) = (dir.path().join(format!("w-{name}")), dir.path().join(name));
            super::super::write_records(&mut generate_records(rows, 3), &whole).unwrap();
            let n = super::super::write_record_batches(record_batches(rows, 3, CHUNK), &streamed)
                .unwrap();
            assert_eq!(n, rows);
            if name.ends_with("parquet") {
                let read = |p: &std::path::Path| {
                    ParquetReader::new(std::fs::File::open(p).unwrap())
                        .finish()
                        .unwrap()
                };
                assert!(read(&whole).equals_missing(&read(&streamed)), "{name}");
            } else {
                let (a, b) = (
                    std::fs::read(&whole).unwrap(),
                    std::fs::read(&streamed).unwrap(),
                );
                assert!(a == b, "{name}: the same bytes");
            }
        }
        // A failed write leaves neither the file nor its partial copy.
        let bad = dir.path().join("missing-dir").join("x.csv");
        assert!(super::super::write_record_batches(record_batches(10, 3, CHUNK), &bad).is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn same_seed_same_records_other_seed_other_records() {
        let a = generate(1000, 7);
        let b = generate(1000, 7);
        let c = generate(1000, 8);
        assert_eq!(a.shape(), (1000, 29));
        assert!(a.equals_missing(&b));
        assert!(!a.equals_missing(&c));
        let missing = a.column("Income").unwrap().null_count();
        assert!(
            missing > 0 && missing < 50,
            "about 1% missing incomes, got {missing}"
        );
    }
}
