//! ONNX Runtime inference of the exported model (one intra-op thread, as the server runs it)
//! at 1, 64, 1024 and 65536 rows for each classifier kind, and bulk scoring of a CSV file
//! end to end (read, features, inference, write) in rows/s.
//! Run: `cargo bench --bench inference` (needs ONNX Runtime: `scripts/setup.sh run`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use categorizer::config::{DeviceChoice, Settings};
use categorizer::features::engineer;
use categorizer::inference::{OnnxModel, Predictions, SessionOptions};
use categorizer::ingest::{self, DataSource, synthetic};
use categorizer::predict::{self, PredictRequest};
use categorizer::registry::store::LocalStore;
use categorizer::train::TrainRequest;
use categorizer::train::classifier::{ClassifierChoice, ModelConfig};

/// Trains one model of `kind` on 20k synthetic rows and publishes it into `dir`.
fn publish(kind: ClassifierChoice, dir: &std::path::Path) -> std::path::PathBuf {
    let mut model_config = ModelConfig::load_with_env(None, Vec::new()).unwrap();
    model_config.classifier = kind;
    let settings = Settings::load_with_env(None, Vec::new()).unwrap();
    let source = DataSource::Synthetic {
        rows: 20_000,
        seed: 42,
    };
    let req = TrainRequest::new(source, settings, model_config, dir.join("run"))
        .with_device(DeviceChoice::Cpu);
    let store = LocalStore::new(dir.join("models"));
    let trained =
        categorizer::workflow::train_and_publish(req, Some(&store), &SessionOptions::default())
            .unwrap();
    store.version_dir(&trained.published.unwrap().version)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::load_with_env(None, Vec::new()).unwrap();
    let rows = engineer(&synthetic::generate(70_000, 7), settings.reference_date())
        .unwrap()
        .matrix;
    let mut group = c.benchmark_group("ort");
    for (name, kind) in [
        ("mlp", ClassifierChoice::Mlp),
        ("gbdt", ClassifierChoice::Gbdt),
    ] {
        let model_dir = publish(kind, &dir.path().join(name));
        let mut m =
            OnnxModel::load(&model_dir.join("model.onnx"), &SessionOptions::default()).unwrap();
        let mut out = Predictions::default();
        for n in [1usize, 64, 1024, 65536] {
            let x = &rows.as_slice()[..n * 21];
            group.throughput(Throughput::Elements(n as u64));
            if n >= 1024 {
                group.sample_size(20);
            }
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter(|| m.predict_into(x, n, &mut out).unwrap())
            });
        }
    }
    group.finish();

    // Bulk scoring: a 200k-row CSV of raw records through `categorizer predict`'s code path.
    let n = 200_000;
    let input = dir.path().join("customers.csv");
    let mut df = synthetic::generate_records(n, 11);
    ingest::write_records(&mut df, &input).unwrap();
    let model_dir = dir.path().join("mlp/models");
    let mut group = c.benchmark_group("bulk_scoring");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("csv_200k_raw_records", |b| {
        b.iter(|| {
            predict::run(&PredictRequest {
                model: model_dir.clone(),
                input: input.clone(),
                output: dir.path().join("scored.csv"),
                chunk_rows: 65536,
                progress: false,
                options: SessionOptions::default(),
                keep_malformed: false,
                explain: false,
                workers: 2,
            })
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
