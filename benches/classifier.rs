//! One GBDT boosting round (binning included), ten rounds, and one MLP epoch at 100k rows on
//! the CPU backend (Flex).
//! Run: `cargo bench --bench classifier`.

use burn::prelude::Device;
use criterion::{Criterion, criterion_group, criterion_main};

use categorizer::dates::ReferenceDate;
use categorizer::features::engineer;
use categorizer::ingest::synthetic;
use categorizer::preprocess::Preprocessor;
use categorizer::train::classifier::{ModelConfig, gbdt, mlp};

fn bench(c: &mut Criterion) {
    let rows = 100_000;
    let table = engineer(&synthetic::generate(rows, 42), ReferenceDate::default()).unwrap();
    let x = Preprocessor::fit(&table.matrix).transform(&table.matrix);
    // Labels: the spending tier, a stand-in for segments with the same class balance problem.
    let spend = categorizer::schema::feature_index("Total_Spending").unwrap();
    let y: Vec<u32> = (0..x.rows())
        .map(|i| match x.get(i, spend) {
            v if v > 0.7 => 0,
            v if v > -0.5 => 1,
            _ => 2,
        })
        .collect();
    let config = ModelConfig::load_with_env(None, Vec::new()).unwrap();
    let device = Device::flex();
    let mut group = c.benchmark_group("classifier_100k");
    group.sample_size(10);
    let mut one_round = config.gbdt.clone();
    one_round.rounds = 1;
    group.bench_function("gbdt_round", |b| {
        b.iter(|| gbdt::fit(&x, &y, 3, &one_round, 42, &device, |_| Ok(())).unwrap())
    });
    // Ten rounds: with the one above, separates a round's cost from the binning and setup.
    let mut ten_rounds = config.gbdt.clone();
    ten_rounds.rounds = 10;
    group.bench_function("gbdt_10_rounds", |b| {
        b.iter(|| gbdt::fit(&x, &y, 3, &ten_rounds, 42, &device, |_| Ok(())).unwrap())
    });
    let mut one_epoch = config.mlp.clone();
    one_epoch.max_epochs = 1;
    group.bench_function("mlp_epoch", |b| {
        b.iter(|| mlp::fit(&x, &y, 3, &one_epoch, 42, &device, |_| Ok(())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
