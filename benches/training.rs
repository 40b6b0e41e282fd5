//! Each training stage at 10k, 100k and 1M rows on the CPU, to show how it grows with the data:
//! validation (schema check and profile), feature engineering, preprocessing (fit + transform),
//! PCA, KMeans (k = 3, n_init = 4), the clustering metrics (silhouette on a 10k sample,
//! Davies–Bouldin), and the two classifiers with the default settings.
//! Run: `cargo bench --bench training`; `CATEGORIZER_BENCH_ROWS=10000,100000` picks the sizes.

use burn::prelude::Device;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use categorizer::config::Settings;
use categorizer::dates::ReferenceDate;
use categorizer::features::engineer;
use categorizer::ingest::synthetic;
use categorizer::preprocess::Preprocessor;
use categorizer::train::classifier::{ModelConfig, gbdt, mlp};
use categorizer::train::kmeans::{self, KMeansParams};
use categorizer::train::{metrics, pca::Pca, tensor};
use categorizer::validate;

fn sizes() -> Vec<usize> {
    std::env::var("CATEGORIZER_BENCH_ROWS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

fn bench(c: &mut Criterion) {
    let settings = Settings::load(None).unwrap();
    let config = ModelConfig::load_with_env(None, Vec::new()).unwrap();
    let device = Device::flex();
    let mut group = c.benchmark_group("training");
    group.sample_size(10);
    for rows in sizes() {
        let raw = synthetic::generate(rows, 42);
        let table = engineer(&raw, ReferenceDate::default()).unwrap();
        let pre = Preprocessor::fit(&table.matrix);
        let x = pre.transform(&table.matrix);
        let xt = tensor::upload(&x, &device);
        let pca = Pca::fit(&xt, 2);
        let emb_t = pca.transform(&xt);
        let emb = tensor::download(emb_t.clone());
        let params = KMeansParams {
            k: 3,
            n_init: settings.segmentation.n_init,
            max_iter: settings.segmentation.max_iter,
            tolerance: settings.segmentation.tolerance,
            seed: 42,
        };
        let (km, a) = kmeans::fit(&emb_t, &params, |_| Ok(())).unwrap();
        group.throughput(Throughput::Elements(rows as u64));
        let id = |stage: &str| BenchmarkId::new(stage, rows);
        group.bench_function(id("validate"), |b| {
            b.iter(|| {
                validate::validate("bench", &raw, None, &settings.validation).unwrap();
                validate::Profile::of("bench", &raw, &settings.validation).unwrap()
            })
        });
        group.bench_function(id("features"), |b| {
            b.iter(|| engineer(&raw, ReferenceDate::default()).unwrap())
        });
        group.bench_function(id("preprocess"), |b| {
            b.iter(|| Preprocessor::fit(&table.matrix).transform(&table.matrix))
        });
        group.bench_function(id("pca"), |b| {
            b.iter(|| {
                let p = Pca::fit(&xt, 2);
                tensor::download(p.transform(&xt))
            })
        });
        group.bench_function(id("kmeans"), |b| {
            b.iter(|| kmeans::fit(&emb_t, &params, |_| Ok(())).unwrap())
        });
        group.bench_function(id("metrics"), |b| {
            b.iter(|| {
                let sample = settings.segmentation.silhouette_sample;
                metrics::evaluate(&emb, 2, &a.labels, &a.sq_dist, &km.centres, 3, sample, 42)
            })
        });
        group.bench_function(id("gbdt"), |b| {
            b.iter(|| gbdt::fit(&x, &a.labels, 3, &config.gbdt, 42, &device, |_| Ok(())).unwrap())
        });
        group.bench_function(id("mlp"), |b| {
            b.iter(|| mlp::fit(&x, &a.labels, 3, &config.mlp, 42, &device, |_| Ok(())).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
