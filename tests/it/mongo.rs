//! The MongoDB source and import against a real MongoDB wire-protocol server (SecantusDB,
//! started by scripts/services.sh).

use categorizer::config::DeviceChoice;
use categorizer::ingest::mongo::{self, MongoSource};
use categorizer::ingest::{self, DataSource};
use categorizer::train::classifier::ClassifierChoice;
use categorizer::train::{self, TrainOutcome, TrainRequest};
use mongodb::bson::{Bson, Document, doc};

fn collection(base: &str, name: &str) -> String {
    format!(
        "{base}/categorizer_test?collection={}",
        crate::support::unique(name)
    )
}

/// The real data when present, else a generated file of the same schema.
fn records(dir: &std::path::Path, rows: usize) -> String {
    if let Some(p) = crate::support::real_data() {
        return p.display().to_string();
    }
    let path = dir.join("records.csv");
    let mut df = ingest::synthetic::generate_records(rows, 11);
    ingest::write_records(&mut df, &path).unwrap();
    path.display().to_string()
}

fn train_from(source: &str, out: &std::path::Path) -> TrainOutcome {
    let mut settings = crate::support::settings();
    settings.segmentation.n_init = 2;
    let mut model_config = crate::support::model_config();
    model_config.classifier = ClassifierChoice::Mlp;
    let source = DataSource::parse(source).unwrap();
    train::run(
        &TrainRequest::new(source, settings, model_config, out).with_device(DeviceChoice::Cpu),
    )
    .unwrap()
}

#[test]
fn import_is_idempotent_and_training_from_mongodb_matches_the_file() {
    let Some(base) = crate::support::service("CATEGORIZER_TEST_MONGODB") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = records(dir.path(), 1500);
    let uri = collection(&base, "customers");
    let target = MongoSource::parse(&uri).unwrap();
    let df = DataSource::parse(&file).unwrap().load().unwrap();

    let first = mongo::import(&df, &target).unwrap();
    assert_eq!(first.read, df.height());
    assert_eq!(first.inserted + first.without_id, df.height());
    assert_eq!(first.already_present, 0);
    let again = mongo::import(&df, &target).unwrap();
    assert_eq!(
        again.inserted, 0,
        "a second import must not duplicate records"
    );
    assert_eq!(again.already_present, first.inserted);

    let from_file = train_from(&file, &dir.path().join("file"));
    let from_mongo = train_from(&uri, &dir.path().join("mongo"));
    // The same rows, feature for feature (a hash of every usable row's 21 values) …
    assert_eq!(from_mongo.data.rows, from_file.data.rows);
    assert_eq!(from_mongo.data.sha256, from_file.data.sha256);
    // … hence the same segments, assignments and scores.
    assert_eq!(
        from_mongo.model.kmeans.centres,
        from_file.model.kmeans.centres
    );
    assert_eq!(from_mongo.train_labels, from_file.train_labels);
    assert_eq!(from_mongo.test_labels, from_file.test_labels);
    let f1 = |o: &TrainOutcome| -> Vec<f64> {
        o.metrics
            .classifier
            .candidates
            .iter()
            .map(|c| c.test.f1)
            .collect()
    };
    assert_eq!(f1(&from_mongo), f1(&from_file));
    assert_eq!(from_mongo.metrics.silhouette, from_file.metrics.silhouette);
    assert!(from_mongo.metrics.data.source.starts_with("mongodb://"));
}

#[test]
fn documents_with_missing_or_mistyped_fields_are_counted_per_field() {
    let Some(base) = crate::support::service("CATEGORIZER_TEST_MONGODB") else {
        return;
    };
    let uri = collection(&base, "partial");
    let target = MongoSource::parse(&uri).unwrap();
    let mut df = ingest::synthetic::generate_records(60, 5);
    // Every record with an income, so the counts below are only the two documents added.
    let incomes = df
        .column("Income")
        .unwrap()
        .cast(&polars::prelude::DataType::Float64)
        .unwrap();
    let incomes = incomes.f64().unwrap().clone();
    let filled: Vec<f64> = incomes.iter().map(|v| v.unwrap_or(40_000.0)).collect();
    df.with_column(polars::prelude::Column::new("Income".into(), filled))
        .unwrap();
    assert_eq!(mongo::import(&df, &target).unwrap().inserted, 60);

    // Two more documents, written the way another application might: one without Income,
    // one with text in Recency.
    let (db, coll) = (target.db.clone(), target.collection.clone());
    let server = base.clone();
    categorizer::rt::block_on(async move {
        let client = mongodb::Client::with_uri_str(&server).await.unwrap();
        let c = client.database(&db).collection::<Document>(&coll);
        let mut model = c.find_one(doc! {}).await.unwrap().unwrap();
        model.remove("_id");
        let mut no_income = model.clone();
        no_income.insert("ID", Bson::Int64(900_001));
        no_income.remove("Income");
        let mut text_recency = model;
        text_recency.insert("ID", Bson::Int64(900_002));
        text_recency.insert("Recency", "last week");
        c.insert_many([no_income, text_recency]).await.unwrap();
        client.shutdown().await;
    });

    let (frame, report) = DataSource::parse(&uri)
        .unwrap()
        .load_reported(&mut |_, _| Ok(()))
        .unwrap();
    assert_eq!(frame.height(), 62, "no document is dropped by the reader");
    assert_eq!(report["Income"].missing, 1, "{report:?}");
    assert_eq!(report["Income"].mistyped, 0);
    assert_eq!(report["Recency"].mistyped, 1, "{report:?}");
    assert_eq!(report["Recency"].documents, [62]);
    assert_eq!(
        report.len(),
        2,
        "only the two bad fields are reported: {report:?}"
    );
    // From here the file source's rules apply: the missing income is imputed, the row
    // without a usable Recency is set aside with its reason.
    let table =
        categorizer::features::engineer(&frame, crate::support::settings().reference_date())
            .unwrap();
    assert_eq!(table.matrix.rows(), 61);
    assert!(
        table.report.rejected.keys().any(|k| k.contains("Recency")),
        "{:?}",
        table.report.rejected
    );
}

#[test]
fn an_unreachable_server_is_an_error_naming_the_host() {
    // A loopback port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let uri = format!("mongodb://127.0.0.1:{port}/shop?collection=customers");
    let err = DataSource::parse(&uri)
        .unwrap()
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("cannot reach MongoDB"), "{err}");
}
