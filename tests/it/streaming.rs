//! Training on a source above `training.sample_rows` records (two streamed passes around a fit
//! on a seeded sample), and on datasets of several files.

use std::path::Path;

use categorizer::config::DeviceChoice;
use categorizer::ingest::{self, DataSource, synthetic};
use categorizer::train::{self, TrainRequest};
use polars::prelude::*;

fn request(source: &str, out: &Path, sample_rows: usize, batch_rows: usize) -> TrainRequest {
    let mut settings = crate::support::settings();
    settings.training.sample_rows = sample_rows;
    settings.training.batch_rows = batch_rows;
    settings.segmentation.n_init = 2;
    TrainRequest::new(
        DataSource::parse(source).unwrap(),
        settings,
        crate::support::model_config(),
        out,
    )
    .with_device(DeviceChoice::Cpu)
}

fn parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn write(df: &DataFrame, path: &Path) {
    ingest::write_records(&mut df.clone(), path).unwrap();
}

/// No file of the run is half-written, and none of a finished run's is there.
fn nothing_written_but_validation(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names.iter().all(|n| n == "validation.json"),
        "left in the run directory: {names:?}"
    );
}

#[test]
fn a_large_source_streams_and_every_customer_is_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let out = train::run(&request(
        "synthetic:rows=5000,seed=3",
        dir.path(),
        1000,
        700,
    ))
    .unwrap();
    let m = &out.metrics;
    let s = m.streamed.as_ref().expect("5000 records above 1000 stream");
    assert_eq!((s.rows_read, s.rows_sampled, m.rows), (5000, 1000, 1000));
    assert_eq!(s.rows_used, m.data.rows_read - out_rejected(m));
    assert_eq!(s.passes.len(), 2);
    assert_eq!(m.data.train_rows + m.data.test_rows, 1000);

    let a = parquet(&dir.path().join("assignments.parquet"));
    assert_eq!(a.height(), s.rows_used);
    let rows: Vec<u64> = a
        .column("row")
        .unwrap()
        .u64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows[0] >= 1 && rows[rows.len() - 1] <= 5000);
    let count = |split: &str| {
        a.column("split")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .filter(|s| *s == Some(split))
            .count()
    };
    assert_eq!(count("train"), m.data.train_rows);
    assert_eq!(count("test"), m.data.test_rows);
    assert_eq!(count("unsampled"), s.rows_used - 1000);
    let mut sizes = vec![0usize; m.k];
    for seg in a
        .column("segment")
        .unwrap()
        .u32()
        .unwrap()
        .into_no_null_iter()
    {
        sizes[seg as usize] += 1;
    }
    assert_eq!(sizes, s.segments.iter().map(|p| p.size).collect::<Vec<_>>());
    // The whole data's segments are the model's, by name and by spending order.
    for (w, p) in s.segments.iter().zip(&m.segments) {
        assert_eq!((w.id, &w.name), (p.id, &p.name));
    }
    assert!(
        s.wcss > m.wcss,
        "5000 rows' WCSS {} above 800's {}",
        s.wcss,
        m.wcss
    );
    assert!(dir.path().join("model.json").is_file());
    assert!(!dir.path().join("assignments.parquet.partial").exists());
    assert!(!dir.path().join("assignments.csv").exists());
}

fn out_rejected(m: &train::TrainMetrics) -> usize {
    m.data.rejected.values().map(|r| r.count).sum()
}

#[test]
fn the_streamed_model_does_not_depend_on_the_batches_or_the_threads() {
    let run = |batch_rows: usize, threads: usize| {
        let dir = tempfile::tempdir().unwrap();
        let req = request("synthetic:rows=4000,seed=8", dir.path(), 1200, batch_rows);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| train::run(&req).unwrap());
        let model = std::fs::read(dir.path().join("model.json")).unwrap();
        (model, parquet(&dir.path().join("assignments.parquet")))
    };
    let (model, assignments) = run(700, 1);
    let (model2, assignments2) = run(2048, 2);
    assert!(
        model == model2,
        "the same model whatever the batches and threads"
    );
    assert!(assignments.equals(&assignments2));
}

#[test]
fn streaming_every_usable_row_gives_the_in_memory_model() {
    // 1300 records, every fourth of an unknown education: 975 usable, under the sample of
    // 1000, so the streamed run's sample is every usable row.
    let dir = tempfile::tempdir().unwrap();
    let mut df = synthetic::generate_records(1300, 12);
    let education: Vec<String> = df
        .column("Education")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i % 4 == 0 {
                "Unknown".into()
            } else {
                e.unwrap_or("").to_string()
            }
        })
        .collect();
    df.replace("Education", Column::new("Education".into(), education))
        .unwrap();
    let data = dir.path().join("records.csv");
    write(&df, &data);
    let (streamed, whole) = (dir.path().join("streamed"), dir.path().join("whole"));
    let mut req = request(data.to_str().unwrap(), &streamed, 1000, 300);
    // A quarter of the rows set aside is more than validation lets through by default.
    req.settings.validation.max_invalid_share = 0.5;
    let s = train::run(&req).unwrap();
    let mut req = request(data.to_str().unwrap(), &whole, 5000, 300);
    req.settings.validation.max_invalid_share = 0.5;
    let w = train::run(&req).unwrap();
    assert!(s.metrics.streamed.is_some() && w.metrics.streamed.is_none());
    assert_eq!(s.metrics.rows, 975);
    assert!(
        std::fs::read(streamed.join("model.json")).unwrap()
            == std::fs::read(whole.join("model.json")).unwrap(),
        "the same model"
    );
    assert_eq!(s.metrics.data.rejected, w.metrics.data.rejected);
    // The same row, split and segment for every usable customer.
    let csv = crate::support::csv_as_text(&std::fs::read(whole.join("assignments.csv")).unwrap());
    let pq = parquet(&streamed.join("assignments.parquet"));
    assert_eq!(csv.height(), pq.height());
    for name in ["row", "split", "segment"] {
        let a = csv.column(name).unwrap().cast(&DataType::String).unwrap();
        let b = pq.column(name).unwrap().cast(&DataType::String).unwrap();
        assert!(a.equals(&b), "{name}");
    }
}

#[test]
fn a_dataset_of_files_trains_as_their_concatenation() {
    let dir = tempfile::tempdir().unwrap();
    let df = synthetic::generate_records(2400, 21);
    let whole = dir.path().join("whole.csv");
    write(&df, &whole);
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    // Parquet and CSV mixed, cut where no batch boundary falls.
    write(&df.slice(0, 1000), &parts.join("part-0.parquet"));
    write(&df.slice(1000, 700), &parts.join("part-1.csv"));
    write(&df.slice(1700, 700), &parts.join("part-2.parquet"));
    std::fs::write(parts.join("notes.md"), "not data").unwrap();

    for (sample, file) in [(5000, "assignments.csv"), (1000, "assignments.parquet")] {
        let run = |source: &Path, out: &Path| {
            train::run(&request(source.to_str().unwrap(), out, sample, 512)).unwrap()
        };
        let (a, b) = (
            dir.path().join(format!("a{sample}")),
            dir.path().join(format!("b{sample}")),
        );
        let x = run(&whole, &a);
        let y = run(&parts, &b);
        assert_eq!(x.metrics.data.rows_read, 2400);
        assert_eq!(y.metrics.data.rows_read, 2400);
        assert!(
            std::fs::read(a.join("model.json")).unwrap()
                == std::fs::read(b.join("model.json")).unwrap(),
            "sample_rows {sample}: the same model"
        );
        // The same rows, splits and segments (a Parquet file's row groups follow the batches,
        // which end where a file does).
        let (x, y) = if sample == 1000 {
            (parquet(&a.join(file)), parquet(&b.join(file)))
        } else {
            let read = |p: &Path| crate::support::csv_as_text(&std::fs::read(p).unwrap());
            (read(&a.join(file)), read(&b.join(file)))
        };
        assert!(x.equals(&y), "{file}");
    }
    // A glob takes the files it matches, in name order.
    let DataSource::Dataset { files, .. } =
        DataSource::parse(parts.join("part-*.parquet").to_str().unwrap()).unwrap()
    else {
        panic!("a glob is a dataset")
    };
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["part-0.parquet", "part-2.parquet"]);
}

#[test]
fn a_bad_file_in_a_dataset_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let df = synthetic::generate_records(1500, 4);
    let good = dir.path().join("good.parquet");
    write(&df, &good);
    let bytes = std::fs::read(&good).unwrap();
    let headerless = {
        let mut d = df.slice(0, 200);
        d.drop_in_place("Income").unwrap();
        d
    };
    type Case = (&'static str, Box<dyn Fn(&Path)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "part-1.parquet",
            Box::new(|p: &Path| {
                std::fs::write(p, b"PAR1 this is not a parquet file PAR1").unwrap()
            }),
            "part-1.parquet",
        ),
        (
            "part-1.parquet",
            Box::new({
                let half = bytes[..bytes.len() / 2].to_vec();
                move |p: &Path| std::fs::write(p, &half).unwrap()
            }),
            "part-1.parquet",
        ),
        (
            "part-1.csv",
            Box::new(|p: &Path| std::fs::write(p, b"").unwrap()),
            "part-1.csv",
        ),
        (
            "part-1.csv",
            Box::new(move |p: &Path| write(&headerless, p)),
            "its columns differ",
        ),
    ];
    for (i, (name, make, says)) in cases.iter().enumerate() {
        for sample in [1000, 5000] {
            let data = dir.path().join(format!("case{i}-{sample}"));
            std::fs::create_dir(&data).unwrap();
            std::fs::copy(&good, data.join("part-0.parquet")).unwrap();
            make(&data.join(name));
            std::fs::copy(&good, data.join("part-2.parquet")).unwrap();
            let out = dir.path().join(format!("out{i}-{sample}"));
            let err = DataSource::parse(data.to_str().unwrap())
                .and_then(|_| train::run(&request(data.to_str().unwrap(), &out, sample, 512)))
                .expect_err(name)
                .to_string();
            assert!(
                err.contains(says),
                "case {i} ({name}, sample {sample}): {err}"
            );
            assert!(err.contains(name), "case {i}: names the file: {err}");
            nothing_written_but_validation(&out);
        }
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = DataSource::parse(empty.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no Parquet or CSV files"), "{err}");
}
