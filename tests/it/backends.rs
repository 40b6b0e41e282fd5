//! The same training code on burn's CPU backend and on wgpu (Vulkan) gives the same answer.
//!
//! Needs a Vulkan adapter: a GPU, or Mesa's lavapipe (`apt-get install mesa-vulkan-drivers
//! libvulkan1`, which `.ci/run` installs). Without one the tests say so and pass, unless
//! CATEGORIZER_REQUIRE_GPU_TEST=1 (set by `.ci/run`), where they fail.

use burn::prelude::*;
use categorizer::config::DeviceChoice;
use categorizer::ingest::DataSource;
use categorizer::matrix::Matrix;
use categorizer::train::classifier::{gbdt, mlp};
use categorizer::train::{self, TrainRequest, device, kmeans, pca::Pca, tensor::upload_vec};

fn gpu_or_skip() -> Option<Device> {
    match device::gpu() {
        Ok(d) => Some(d.device),
        Err(e) if std::env::var("CATEGORIZER_REQUIRE_GPU_TEST").is_ok_and(|v| v == "1") => {
            panic!("CATEGORIZER_REQUIRE_GPU_TEST=1 but no wgpu device: {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

fn blobs() -> Vec<f32> {
    let mut out = Vec::new();
    for (cx, cy) in [(0.0f32, 0.0f32), (6.0, 1.0), (2.0, 7.0)] {
        for i in 0..40 {
            let t = i as f32 * 0.7;
            out.extend_from_slice(&[cx + 0.8 * t.sin(), cy + 0.8 * (1.3 * t).cos()]);
        }
    }
    out
}

#[test]
fn kmeans_and_pca_agree_on_cpu_and_wgpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let cpu = Device::flex();
    let params = kmeans::KMeansParams {
        k: 3,
        n_init: 2,
        max_iter: 50,
        tolerance: 1e-4,
        seed: 3,
    };
    let run = |dev: &Device| {
        let x = upload_vec(blobs(), 120, 2, dev);
        let pca = Pca::fit(&x, 2);
        let emb = pca.transform(&x);
        let (model, assignment) = kmeans::fit(&emb, &params, |_| Ok(())).unwrap();
        let labels = assignment.labels;
        (pca, model, labels)
    };
    let (pca_c, km_c, labels_c) = run(&cpu);
    let (pca_g, km_g, labels_g) = run(&gpu);
    assert_eq!(labels_c, labels_g);
    for (a, b) in pca_c
        .components
        .iter()
        .flatten()
        .zip(pca_g.components.iter().flatten())
    {
        assert!((a - b).abs() < 1e-3, "PCA loadings differ: {a} vs {b}");
    }
    for (a, b) in km_c.centres.iter().zip(&km_g.centres) {
        assert!((a - b).abs() < 1e-3, "centres differ: {a} vs {b}");
    }
}

#[test]
fn the_pipeline_gives_the_same_segments_on_cpu_and_wgpu() {
    if gpu_or_skip().is_none() {
        return;
    }
    let run = |device: DeviceChoice| {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = crate::support::settings();
        settings.segmentation.n_init = 2;
        let source = DataSource::Synthetic {
            rows: 400,
            seed: 21,
        };
        let req = TrainRequest::new(
            source,
            settings,
            crate::support::tiny_model_config(),
            dir.path(),
        )
        .with_device(device);
        train::run(&req).unwrap()
    };
    let cpu = run(DeviceChoice::Cpu);
    let gpu = run(DeviceChoice::Gpu);
    assert_eq!(gpu.metrics.device.kind, "gpu");
    let agree = cpu
        .train_labels
        .iter()
        .zip(&gpu.train_labels)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        agree as f64 >= 0.999 * cpu.train_labels.len() as f64,
        "{agree} of {} agree",
        cpu.train_labels.len()
    );
    assert_eq!(cpu.test_labels, gpu.test_labels);
    let sizes = |o: &train::TrainOutcome| {
        o.metrics
            .segments
            .iter()
            .map(|s| s.size)
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(&cpu), sizes(&gpu));
}

#[test]
fn classifiers_predict_the_same_on_cpu_and_wgpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let cpu = Device::flex();
    // Three noisy groups in 4 features.
    let n = 240;
    let mut data = Vec::with_capacity(n * 4);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 3) as f32;
        let t = i as f32 * 0.37;
        data.extend_from_slice(&[
            c + 0.4 * t.sin(),
            -c + 0.4 * (1.7 * t).cos(),
            (2.3 * t).sin(),
            0.5 * c + 0.3 * (0.9 * t).cos(),
        ]);
        y.push((i % 3) as u32);
    }
    let x = Matrix::new(n, 4, data);
    let config = crate::support::tiny_model_config();
    let g_cpu = gbdt::fit(&x, &y, 3, &config.gbdt, 1, &cpu, |_| Ok(())).unwrap();
    let g_gpu = gbdt::fit(&x, &y, 3, &config.gbdt, 1, &gpu, |_| Ok(())).unwrap();
    let labels = |p: Vec<f32>| {
        p.chunks(3)
            .map(|r| (0..3).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        labels(g_cpu.predict_proba(&x)),
        labels(g_gpu.predict_proba(&x)),
        "GBDT"
    );
    let m_cpu = mlp::fit(&x, &y, 3, &config.mlp, 1, &cpu, |_| Ok(())).unwrap();
    let m_gpu = mlp::fit(&x, &y, 3, &config.mlp, 1, &gpu, |_| Ok(())).unwrap();
    let (a, b) = (
        labels(m_cpu.predict_proba(&x)),
        labels(m_gpu.predict_proba(&x)),
    );
    let agree = a.iter().zip(&b).filter(|(p, q)| p == q).count();
    assert!(
        agree as f64 >= 0.999 * n as f64,
        "MLP: {agree} of {n} agree"
    );
}
