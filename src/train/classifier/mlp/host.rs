//! The MLP's training step in plain Rust for the CPU: forward, backward and Adam on the host,
//! the batch cut into fixed chunks of rows whose gradients are computed on the rayon threads
//! and added in chunk order, so a seed gives the same model whatever the number of threads.
//! Adam is burn's (the same moments, bias corrections and epsilon), so the host and the burn
//! version take the same steps (the tests hold them to each other).

use rayon::prelude::*;

use super::{Batch, Dense, Trainer};

/// Rows per gradient task: a chunk's activations stay in cache.
const CHUNK_ROWS: usize = 256;
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// Gradients of every layer: (weights, biases).
type Grads = Vec<(Vec<f32>, Vec<f32>)>;

pub(super) struct HostTrainer {
    layers: Vec<Dense>,
    /// Adam's first and second moments, shaped as the gradients.
    moment_1: Grads,
    moment_2: Grads,
    time: i32,
    val: Batch,
}

fn zeros_like(layers: &[Dense]) -> Grads {
    layers
        .iter()
        .map(|l| (vec![0.0; l.weight.len()], vec![0.0; l.bias.len()]))
        .collect()
}

impl HostTrainer {
    pub(super) fn new(layers: &[Dense], val: &Batch) -> Self {
        HostTrainer {
            layers: layers.to_vec(),
            moment_1: zeros_like(layers),
            moment_2: zeros_like(layers),
            time: 0,
            val: Batch {
                x: val.x.clone(),
                y: val.y.clone(),
                rows: val.rows,
            },
        }
    }
}

/// Output columns in a register block: 16 floats (two AVX registers, four SSE ones).
const COLS: usize = 16;
/// Rows in a register block.
const ROWS: usize = 4;

/// `out[r, :] = init + x[r, :] · w` for `rows` rows of `x` (`rows × k`), `w` being `k × n`
/// row-major. Each output is summed over `k` in order, starting from `init`, with separate
/// multiplies and adds: the same value whether it falls in a full register block (4 rows × 16
/// columns held in registers while `k` runs) or in an edge, and whatever the vector width.
#[inline(always)]
fn gemm_rows(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize, init: &[f32], out: &mut [f32]) {
    debug_assert!(x.len() >= rows * k && w.len() == k * n && init.len() == n);
    let mut r = 0;
    while r < rows {
        let rb = ROWS.min(rows - r);
        let mut c = 0;
        while c < n {
            let cb = COLS.min(n - c);
            if rb == ROWS && cb == COLS {
                let xs: [&[f32]; ROWS] = std::array::from_fn(|i| &x[(r + i) * k..(r + i + 1) * k]);
                let mut acc = [[0f32; COLS]; ROWS];
                for a in acc.iter_mut() {
                    a.copy_from_slice(&init[c..c + COLS]);
                }
                for j in 0..k {
                    let wj: &[f32; COLS] = w[j * n + c..j * n + c + COLS].try_into().unwrap();
                    for (a, xr) in acc.iter_mut().zip(&xs) {
                        let v = xr[j];
                        for (a, w) in a.iter_mut().zip(wj) {
                            *a += v * w;
                        }
                    }
                }
                for (i, a) in acc.iter().enumerate() {
                    out[(r + i) * n + c..(r + i) * n + c + COLS].copy_from_slice(a);
                }
            } else {
                for i in r..r + rb {
                    let o = &mut out[i * n + c..i * n + c + cb];
                    o.copy_from_slice(&init[c..c + cb]);
                    for j in 0..k {
                        let v = x[i * k + j];
                        o.iter_mut()
                            .zip(&w[j * n + c..j * n + c + cb])
                            .for_each(|(o, w)| *o += v * w);
                    }
                }
            }
            c += cb;
        }
        r += rb;
    }
}

/// `g += a^T · d` for `rows` rows of `a` (`rows × k`) and `d` (`rows × n`), `g` being `k × n`:
/// each element summed over the rows in order, in register blocks of 4 × 16 as [`gemm_rows`].
#[inline(always)]
fn add_outer_products(a: &[f32], d: &[f32], rows: usize, k: usize, n: usize, g: &mut [f32]) {
    let mut j = 0;
    while j < k {
        let jb = ROWS.min(k - j);
        let mut c = 0;
        while c < n {
            let cb = COLS.min(n - c);
            if jb == ROWS && cb == COLS {
                let mut acc = [[0f32; COLS]; ROWS];
                for (i, acc) in acc.iter_mut().enumerate() {
                    acc.copy_from_slice(&g[(j + i) * n + c..(j + i) * n + c + COLS]);
                }
                for r in 0..rows {
                    let dr: &[f32; COLS] = d[r * n + c..r * n + c + COLS].try_into().unwrap();
                    let ar: &[f32; ROWS] = a[r * k + j..r * k + j + ROWS].try_into().unwrap();
                    for (acc, &v) in acc.iter_mut().zip(ar) {
                        for (s, d) in acc.iter_mut().zip(dr) {
                            *s += v * d;
                        }
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    g[(j + i) * n + c..(j + i) * n + c + COLS].copy_from_slice(acc);
                }
            } else {
                for jj in j..j + jb {
                    let gj = &mut g[jj * n + c..jj * n + c + cb];
                    for r in 0..rows {
                        let v = a[r * k + jj];
                        gj.iter_mut()
                            .zip(&d[r * n + c..r * n + c + cb])
                            .for_each(|(s, d)| *s += v * d);
                    }
                }
            }
            c += cb;
        }
        j += jb;
    }
}

/// The activations of every layer for `rows` rows of `x`: [input, hidden..., logits].
#[inline(always)]
fn forward(layers: &[Dense], x: &[f32], rows: usize) -> Vec<Vec<f32>> {
    let mut acts = vec![x[..rows * layers[0].inputs].to_vec()];
    for (li, l) in layers.iter().enumerate() {
        let mut out = vec![0f32; rows * l.outputs];
        gemm_rows(
            &acts[li], rows, l.inputs, &l.weight, l.outputs, &l.bias, &mut out,
        );
        if li + 1 < layers.len() {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        acts.push(out);
    }
    acts
}

/// Softmax of `logits` in place; returns the summed cross-entropy against `onehot`.
fn softmax_rows(logits: &mut [f32], onehot: &[f32], k: usize) -> f64 {
    let mut loss = 0.0;
    for (z, t) in logits.chunks_exact_mut(k).zip(onehot.chunks_exact(k)) {
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        z.iter_mut().for_each(|v| *v -= max);
        let sum: f32 = z.iter().map(|v| v.exp()).sum();
        let log_sum = sum.ln();
        for (v, &target) in z.iter_mut().zip(t) {
            // log p = (z - max) - log sum; p itself stays in place for the backward pass.
            if target != 0.0 {
                loss -= f64::from(target * (*v - log_sum));
            }
            *v = v.exp() / sum;
        }
    }
    loss
}

/// The gradients of the mean cross-entropy over a batch of `total` rows, from one chunk. Where
/// the CPU has AVX2 the same code is compiled for it ([`chunk_grads_avx2`]): eight lanes
/// instead of four in the per-output loops, and no fused multiply-add, so every value is the
/// same bit for bit (sums stay in order: floats are not reassociated).
fn chunk_grads(layers: &[Dense], x: &[f32], y: &[f32], rows: usize, total: usize) -> Grads {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { chunk_grads_avx2(layers, x, y, rows, total) };
    }
    chunk_grads_portable(layers, x, y, rows, total)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_grads_avx2(
    layers: &[Dense],
    x: &[f32],
    y: &[f32],
    rows: usize,
    total: usize,
) -> Grads {
    chunk_grads_portable(layers, x, y, rows, total)
}

/// The logits of `rows` rows of `x`, as [`chunk_grads`] dispatched on the CPU's features.
fn logits(layers: &[Dense], x: &[f32], rows: usize) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { logits_avx2(layers, x, rows) };
    }
    forward(layers, x, rows).pop().expect("logits")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn logits_avx2(layers: &[Dense], x: &[f32], rows: usize) -> Vec<f32> {
    forward(layers, x, rows).pop().expect("logits")
}

#[inline(always)]
fn chunk_grads_portable(
    layers: &[Dense],
    x: &[f32],
    y: &[f32],
    rows: usize,
    total: usize,
) -> Grads {
    let k = layers[layers.len() - 1].outputs;
    let mut acts = forward(layers, x, rows);
    let mut delta = acts.pop().expect("logits");
    softmax_rows(&mut delta, y, k);
    let scale = 1.0 / total as f32;
    delta
        .iter_mut()
        .zip(y)
        .for_each(|(p, &t)| *p = (*p - t) * scale);
    let mut grads: Grads = zeros_like(layers);
    for (li, l) in layers.iter().enumerate().rev() {
        let input = &acts[li];
        let (dw, db) = &mut grads[li];
        for d in delta.chunks_exact(l.outputs) {
            db.iter_mut().zip(d).for_each(|(b, d)| *b += d);
        }
        add_outer_products(input, &delta, rows, l.inputs, l.outputs, dw);
        if li == 0 {
            break;
        }
        // Back through the weights (transposed, so the inputs lie side by side) and the ReLU
        // of the layer below (its output is `input`).
        let mut transposed = vec![0f32; l.weight.len()];
        for (i, row) in l.weight.chunks_exact(l.outputs).enumerate() {
            for (o, &w) in row.iter().enumerate() {
                transposed[o * l.inputs + i] = w;
            }
        }
        let mut below = vec![0f32; rows * l.inputs];
        let zeros = vec![0f32; l.inputs];
        gemm_rows(
            &delta,
            rows,
            l.outputs,
            &transposed,
            l.inputs,
            &zeros,
            &mut below,
        );
        below
            .iter_mut()
            .zip(input)
            .for_each(|(b, &a)| *b = if a > 0.0 { *b } else { 0.0 });
        delta = below;
    }
    grads
}

fn add_into(total: &mut Grads, part: &Grads) {
    for ((tw, tb), (pw, pb)) in total.iter_mut().zip(part) {
        tw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        tb.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
}

/// One of burn's Adam updates of `param` by `grad`.
#[allow(clippy::too_many_arguments)]
fn adam(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    factor: f32,
    eps: f32,
) {
    for (((p, &g), m), v) in param
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        *m = BETA_1 * *m + (1.0 - BETA_1) * g;
        *v = BETA_2 * *v + (1.0 - BETA_2) * g * g;
        *p -= lr * (*m * factor) / (v.sqrt() + eps);
    }
}

impl Trainer for HostTrainer {
    fn step(&mut self, batch: &Batch, learning_rate: f64) {
        let (f, k) = (
            self.layers[0].inputs,
            self.layers[self.layers.len() - 1].outputs,
        );
        let layers = &self.layers;
        let parts: Vec<Grads> = batch
            .x
            .par_chunks(CHUNK_ROWS * f)
            .zip(batch.y.par_chunks(CHUNK_ROWS * k))
            .map(|(x, y)| chunk_grads(layers, x, y, x.len() / f, batch.rows))
            .collect();
        let mut parts = parts.into_iter();
        let mut grads = parts.next().expect("a batch has rows");
        parts.for_each(|p| add_into(&mut grads, &p));

        self.time += 1;
        let bias_correction_2 = (1.0 - BETA_2.powi(self.time)).sqrt();
        let factor = bias_correction_2 / (1.0 - BETA_1.powi(self.time));
        let eps = EPSILON * bias_correction_2;
        let lr = learning_rate as f32;
        for (li, layer) in self.layers.iter_mut().enumerate() {
            let (gw, gb) = &grads[li];
            let (m1w, m1b) = &mut self.moment_1[li];
            let (m2w, m2b) = &mut self.moment_2[li];
            adam(&mut layer.weight, gw, m1w, m2w, lr, factor, eps);
            adam(&mut layer.bias, gb, m1b, m2b, lr, factor, eps);
        }
    }

    fn validation_loss(&self) -> f64 {
        let (f, k) = (
            self.layers[0].inputs,
            self.layers[self.layers.len() - 1].outputs,
        );
        let parts: Vec<f64> = self
            .val
            .x
            .par_chunks(CHUNK_ROWS * 16 * f)
            .zip(self.val.y.par_chunks(CHUNK_ROWS * 16 * k))
            .map(|(x, y)| {
                let mut logits = logits(&self.layers, x, x.len() / f);
                softmax_rows(&mut logits, y, k)
            })
            .collect();
        parts.iter().sum::<f64>() / self.val.rows.max(1) as f64
    }

    fn layers(&self) -> Vec<Dense> {
        self.layers.clone()
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::Device;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::{MlpParams, fit, fit_burn};
    use crate::matrix::Matrix;

    fn data(n: usize, seed: u64) -> (Matrix, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Matrix::new(
            n,
            5,
            (0..n * 5).map(|_| rng.random_range(-2.0..2.0)).collect(),
        );
        let y = (0..n)
            .map(|i| {
                let v = x.get(i, 0) - 0.5 * x.get(i, 3);
                u32::from(v > -0.5) + u32::from(v > 0.8)
            })
            .collect();
        (x, y)
    }

    fn params() -> MlpParams {
        MlpParams {
            hidden: vec![16, 8],
            learning_rate: 0.01,
            batch_size: 700,
            max_epochs: 4,
            patience: 10,
            validation_fraction: 0.1,
            max_validation_rows: 1_000_000,
            check_every_rows: 1000,
        }
    }

    #[test]
    fn host_steps_follow_burns_autodiff_and_adam() {
        // Batches over several chunks, a last batch shorter than the others.
        let (x, y) = data(3000, 1);
        let p = params();
        let host = fit(&x, &y, 3, &p, 4, &Device::flex(), |_| Ok(())).unwrap();
        let burn = fit_burn(&x, &y, 3, &p, 4, &Device::flex(), |_| Ok(())).unwrap();
        assert_eq!(host.epochs, burn.epochs);
        assert_eq!(host.best_epoch, burn.best_epoch);
        assert!((host.best_validation_loss - burn.best_validation_loss).abs() < 1e-4);
        for (a, b) in host.layers.iter().zip(&burn.layers) {
            for (u, v) in a
                .weight
                .iter()
                .chain(&a.bias)
                .zip(b.weight.iter().chain(&b.bias))
            {
                assert!((u - v).abs() < 1e-3, "{u} vs {v}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_mlp_on_one_thread_and_on_two() {
        let (x, y) = data(5000, 2);
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit(&x, &y, 3, &params(), 4, &Device::flex(), |_| Ok(())).unwrap())
        };
        assert_eq!(on(1), on(2), "bit for bit");
    }

    #[test]
    fn the_cpu_specific_build_computes_the_portable_gradients_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let sizes = [21, 32, 16, 3];
        let layers: Vec<super::Dense> = sizes
            .windows(2)
            .map(|w| super::Dense {
                inputs: w[0],
                outputs: w[1],
                weight: (0..w[0] * w[1])
                    .map(|_| rng.random_range(-0.5..0.5))
                    .collect(),
                bias: (0..w[1]).map(|_| rng.random_range(-0.1..0.1)).collect(),
            })
            .collect();
        let rows = 300;
        let x: Vec<f32> = (0..rows * 21)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let mut y = vec![0f32; rows * 3];
        for r in 0..rows {
            y[r * 3 + rng.random_range(0..3)] = 1.0;
        }
        let bits = |g: super::Grads| -> Vec<u32> {
            g.iter()
                .flat_map(|(w, b)| w.iter().chain(b).map(|v| v.to_bits()))
                .collect()
        };
        assert_eq!(
            bits(super::chunk_grads(&layers, &x, &y, rows, 1000)),
            bits(super::chunk_grads_portable(&layers, &x, &y, rows, 1000))
        );
        assert_eq!(
            super::logits(&layers, &x, rows),
            super::forward(&layers, &x, rows).pop().unwrap()
        );
    }
}
