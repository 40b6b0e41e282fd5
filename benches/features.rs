//! Feature engineering + preprocessing, the path every record takes, at 10k and 1M rows.
//! Input: raw records already in memory (as after ingest). Run: `cargo bench --bench features`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use categorizer::dates::ReferenceDate;
use categorizer::features::engineer;
use categorizer::ingest::synthetic;
use categorizer::preprocess::Preprocessor;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("features_preprocess");
    group.sample_size(10);
    for rows in [10_000usize, 1_000_000] {
        let raw = synthetic::generate(rows, 42);
        let table = engineer(&raw, ReferenceDate::default()).unwrap();
        let fitted = Preprocessor::fit(&table.matrix);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::new("engineer", rows), &raw, |b, raw| {
            b.iter(|| engineer(raw, ReferenceDate::default()).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("fit", rows), &table.matrix, |b, m| {
            b.iter(|| Preprocessor::fit(m))
        });
        group.bench_with_input(
            BenchmarkId::new("transform", rows),
            &table.matrix,
            |b, m| b.iter(|| fitted.transform(m)),
        );
        group.bench_with_input(BenchmarkId::new("all", rows), &raw, |b, raw| {
            b.iter(|| {
                let t = engineer(raw, ReferenceDate::default()).unwrap();
                let p = Preprocessor::fit(&t.matrix);
                p.transform(&t.matrix)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
