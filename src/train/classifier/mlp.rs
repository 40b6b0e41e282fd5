//! A multi-layer perceptron in burn with autodiff: 21 inputs → hidden layers (ReLU) → k
//! logits, trained with Adam on cross-entropy in shuffled mini-batches, with early stopping on
//! a held-out part of the training split (the best epoch is kept).
//!
//! Initial weights come from a seeded ChaCha RNG on the host (uniform ±sqrt(1/fan_in), as
//! burn's Linear default), so a seed gives the same model on every backend. The fitted form is
//! explicit weight matrices, which is what ONNX's Gemm/Relu/Softmax take.

use burn::module::Param;
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::MlpParams;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::train::tensor::{download, upload_vec};

mod host;

#[derive(Module, Debug)]
struct Net {
    layers: Vec<Linear>,
}

impl Net {
    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}

/// One dense layer: `y = x W + b`, W is `inputs x outputs` row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The fitted MLP: dense layers with ReLU between them; softmax of the last gives probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpModel {
    pub layers: Vec<Dense>,
    pub epochs: usize,
    pub best_epoch: usize,
    pub best_validation_loss: f64,
}

impl MlpModel {
    /// Class probabilities of every row, row-major n x k.
    pub fn predict_proba(&self, x: &Matrix) -> Vec<f32> {
        let k = self.layers.last().map_or(0, |l| l.outputs);
        let mut out = Vec::with_capacity(x.rows() * k);
        let mut a: Vec<f32> = Vec::new();
        let mut z: Vec<f32> = Vec::new();
        for row in x.as_slice().chunks_exact(x.cols()) {
            a.clear();
            a.extend_from_slice(row);
            for (li, l) in self.layers.iter().enumerate() {
                z.clear();
                z.extend_from_slice(&l.bias);
                for (i, &v) in a.iter().enumerate() {
                    let w = &l.weight[i * l.outputs..(i + 1) * l.outputs];
                    for (zo, wo) in z.iter_mut().zip(w) {
                        *zo += v * wo;
                    }
                }
                if li + 1 < self.layers.len() {
                    z.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                std::mem::swap(&mut a, &mut z);
            }
            super::softmax_into(&a, &mut out);
        }
        out
    }
}

/// Initial layers: uniform ±sqrt(1/fan_in) for weights and biases (burn's Linear default),
/// drawn from the seeded RNG, so a seed gives the same start on every device.
fn init_layers(sizes: &[usize], rng: &mut ChaCha8Rng) -> Vec<Dense> {
    sizes
        .windows(2)
        .map(|w| {
            let (inputs, outputs) = (w[0], w[1]);
            let bound = (1.0 / inputs as f32).sqrt();
            let mut draw = |len: usize| {
                (0..len)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect::<Vec<f32>>()
            };
            let weight = draw(inputs * outputs);
            let bias = draw(outputs);
            Dense {
                inputs,
                outputs,
                weight,
                bias,
            }
        })
        .collect()
}

/// A batch's features and one-hot targets, row-major.
struct Batch {
    x: Vec<f32>,
    y: Vec<f32>,
    rows: usize,
}

impl Batch {
    fn gather(x: &Matrix, onehot: &[f32], k: usize, rows: &[usize]) -> Self {
        let f = x.cols();
        let mut xs = Vec::with_capacity(rows.len() * f);
        let mut ys = Vec::with_capacity(rows.len() * k);
        for &r in rows {
            xs.extend_from_slice(x.row(r));
            ys.extend_from_slice(&onehot[r * k..(r + 1) * k]);
        }
        Batch {
            x: xs,
            y: ys,
            rows: rows.len(),
        }
    }
}

/// The two operations the training loop needs from a device: one Adam step on a batch, and
/// the mean cross-entropy of the held-out rows. The CPU runs them in plain Rust
/// ([`host::HostTrainer`]); other devices with burn's autodiff ([`BurnTrainer`]).
trait Trainer {
    fn step(&mut self, batch: &Batch, learning_rate: f64);
    fn validation_loss(&self) -> f64;
    fn layers(&self) -> Vec<Dense>;
}

/// burn autodiff on the training device, Adam with burn's defaults.
struct BurnTrainer {
    net: Net,
    optim: burn::optim::ModuleOptimizer,
    train_device: Device,
    device: Device,
    val_x: Tensor<2>,
    val_y: Tensor<2>,
}

impl BurnTrainer {
    fn new(layers: &[Dense], val: &Batch, device: &Device) -> Self {
        let train_device = device.clone().autodiff();
        let (f, k) = (layers[0].inputs, layers[layers.len() - 1].outputs);
        BurnTrainer {
            net: Net {
                layers: layers
                    .iter()
                    .map(|d| dense_to_linear(d, &train_device))
                    .collect(),
            },
            optim: AdamConfig::new().init(),
            train_device,
            device: device.clone(),
            val_x: upload_vec(val.x.clone(), val.rows, f, device),
            val_y: upload_vec(val.y.clone(), val.rows, k, device),
        }
    }
}

impl Trainer for BurnTrainer {
    fn step(&mut self, batch: &Batch, learning_rate: f64) {
        let (f, k) = (batch.x.len() / batch.rows, batch.y.len() / batch.rows);
        let bx = upload_vec(batch.x.clone(), batch.rows, f, &self.train_device);
        let by = upload_vec(batch.y.clone(), batch.rows, k, &self.train_device);
        let loss = cross_entropy(self.net.forward(bx), by);
        let grads = GradientsParams::from_grads(loss.backward(), &self.net);
        let net = std::mem::replace(&mut self.net, Net { layers: Vec::new() });
        self.net = self.optim.step(learning_rate, net, grads);
    }

    fn validation_loss(&self) -> f64 {
        // On the plain device: no graph is recorded.
        let inference = Net {
            layers: self
                .layers()
                .iter()
                .map(|d| dense_to_linear(d, &self.device))
                .collect(),
        };
        download(cross_entropy(
            inference.forward(self.val_x.clone()),
            self.val_y.clone(),
        ))[0] as f64
    }

    fn layers(&self) -> Vec<Dense> {
        explicit(&self.net)
    }
}

fn explicit(net: &Net) -> Vec<Dense> {
    net.layers
        .iter()
        .map(|l| {
            let [inputs, outputs] = l.weight.val().dims();
            Dense {
                inputs,
                outputs,
                weight: download(l.weight.val()),
                bias: l
                    .bias
                    .as_ref()
                    .map(|b| download(b.val()))
                    .unwrap_or_else(|| vec![0.0; outputs]),
            }
        })
        .collect()
}

fn cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let n = logits.dims()[0] as f32;
    (log_softmax(logits, 1) * targets).sum().neg().div_scalar(n)
}

/// Fits the MLP on `x` (preprocessed features) and `y` (labels below `k`).
pub fn fit(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &MlpParams,
    seed: u64,
    device: &Device,
    on_epoch: impl FnMut(usize) -> Result<()>,
) -> Result<MlpModel> {
    let host = crate::train::device::is_cpu(device);
    fit_with(x, y, k, params, seed, on_epoch, |layers, val| {
        if host {
            Box::new(host::HostTrainer::new(layers, val)) as Box<dyn Trainer>
        } else {
            Box::new(BurnTrainer::new(layers, val, device))
        }
    })
}

/// [`fit`] with burn's autodiff on any device: the reference for the host operations.
pub fn fit_burn(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &MlpParams,
    seed: u64,
    device: &Device,
    on_epoch: impl FnMut(usize) -> Result<()>,
) -> Result<MlpModel> {
    fit_with(x, y, k, params, seed, on_epoch, |layers, val| {
        Box::new(BurnTrainer::new(layers, val, device)) as Box<dyn Trainer>
    })
}

fn fit_with(
    x: &Matrix,
    y: &[u32],
    k: usize,
    params: &MlpParams,
    seed: u64,
    mut on_epoch: impl FnMut(usize) -> Result<()>,
    trainer: impl FnOnce(&[Dense], &Batch) -> Box<dyn Trainer>,
) -> Result<MlpModel> {
    let n = x.rows();
    if n < 10 || y.len() != n {
        return Err(Error::Training(format!(
            "the MLP needs at least 10 labelled rows, got {n}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4d4c_5000);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let n_val = ((n as f64 * params.validation_fraction).ceil() as usize)
        .min(params.max_validation_rows)
        .clamp(1, n - 1);
    let (val_rows, fit_rows) = order.split_at(n_val);
    let mut fit_rows = fit_rows.to_vec();
    let mut onehot = vec![0f32; n * k];
    for (i, &l) in y.iter().enumerate() {
        onehot[i * k + l as usize] = 1.0;
    }
    let val = Batch::gather(x, &onehot, k, val_rows);

    let mut sizes = vec![x.cols()];
    sizes.extend_from_slice(&params.hidden);
    sizes.push(k);
    let initial = init_layers(&sizes, &mut rng);
    let mut trainer = trainer(&initial, &val);
    let (mut best, mut best_loss, mut best_epoch, mut since_best) = (initial, f64::INFINITY, 0, 0);
    // The held-out loss is checked every `check_rows` training rows: once an epoch on small
    // data, several times an epoch on big data, where one pass already moves the model far.
    let check_rows = params.check_every_rows.clamp(1, fit_rows.len());
    let (mut epochs, mut seen) = (0, 0);
    'epochs: for epoch in 1..=params.max_epochs {
        epochs = epoch;
        fit_rows.shuffle(&mut rng);
        for rows in fit_rows.chunks(params.batch_size) {
            trainer.step(&Batch::gather(x, &onehot, k, rows), params.learning_rate);
            seen += rows.len();
            if seen < check_rows {
                continue;
            }
            seen = 0;
            let val_loss = trainer.validation_loss();
            if val_loss < best_loss - 1e-6 {
                (best, best_loss, best_epoch, since_best) = (trainer.layers(), val_loss, epoch, 0);
            } else {
                since_best += 1;
            }
            if since_best >= params.patience {
                on_epoch(epoch)?;
                break 'epochs;
            }
        }
        on_epoch(epoch)?;
    }
    Ok(MlpModel {
        layers: best,
        epochs,
        best_epoch,
        best_validation_loss: best_loss,
    })
}

fn dense_to_linear(d: &Dense, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(upload_vec(d.weight.clone(), d.inputs, d.outputs, device)),
        bias: Some(Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(d.bias.clone(), [d.outputs]),
            device,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_blobs_and_is_reproducible() {
        let centres = [[-3.0f32, 0.0], [3.0, 0.0], [0.0, 4.0]];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut data = Vec::new();
        let mut y = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for _ in 0..100 {
                data.extend_from_slice(&[
                    centre[0] + rng.random_range(-1.0..1.0),
                    centre[1] + rng.random_range(-1.0..1.0),
                ]);
                y.push(c as u32);
            }
        }
        let x = Matrix::new(300, 2, data);
        let params = MlpParams {
            hidden: vec![8],
            learning_rate: 0.02,
            batch_size: 32,
            max_epochs: 60,
            patience: 10,
            validation_fraction: 0.1,
            max_validation_rows: 1_000_000,
            check_every_rows: 1_000_000,
        };
        let model = fit(&x, &y, 3, &params, 3, &Device::flex(), |_| Ok(())).unwrap();
        let proba = model.predict_proba(&x);
        let correct = (0..300)
            .filter(|&i| {
                let row = &proba[i * 3..i * 3 + 3];
                let arg = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
                arg as u32 == y[i]
            })
            .count();
        assert!(correct >= 297, "{correct} of 300");
        let again = fit(&x, &y, 3, &params, 3, &Device::flex(), |_| Ok(())).unwrap();
        assert_eq!(model, again, "same seed, same model");
    }
}
