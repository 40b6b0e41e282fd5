//! PCA: the covariance of the preprocessed features is computed as tensor code on the training
//! device (the pass over all rows); its 21 x 21 eigen-decomposition is done on the host in f64
//! with cyclic Jacobi rotations, which is exact to rounding and takes microseconds.
//! Component signs follow scikit-learn's `svd_flip`: the largest-magnitude loading is positive.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::tensor::{download, upload_vec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Per-feature mean of the training data.
    pub mean: Vec<f32>,
    /// Components, one row of `n_features` loadings each, by decreasing variance.
    pub components: Vec<Vec<f32>>,
    pub explained_variance: Vec<f64>,
    pub explained_variance_ratio: Vec<f64>,
}

impl Pca {
    /// Fits `n_components` principal components of `x` [n, d].
    pub fn fit(x: &Tensor<2>, n_components: usize) -> Pca {
        let [n, d] = x.dims();
        let mean = x.clone().mean_dim(0); // [1, d]
        let centred = x.clone() - mean.clone();
        let cov = centred
            .clone()
            .transpose()
            .matmul(centred)
            .div_scalar((n.max(2) - 1) as f32);
        let cov: Vec<f64> = download(cov).into_iter().map(f64::from).collect();
        let (values, vectors) = jacobi_eigen(cov, d);
        let total: f64 = values.iter().sum();
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let mut components = Vec::with_capacity(n_components);
        let mut explained_variance = Vec::with_capacity(n_components);
        for &i in order.iter().take(n_components) {
            let mut v: Vec<f64> = (0..d).map(|r| vectors[r * d + i]).collect();
            let max = v
                .iter()
                .copied()
                .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            if max < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            components.push(v.into_iter().map(|x| x as f32).collect());
            explained_variance.push(values[i]);
        }
        let explained_variance_ratio = explained_variance
            .iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect();
        Pca {
            mean: download(mean),
            components,
            explained_variance,
            explained_variance_ratio,
        }
    }

    /// Projects `x` [n, d] onto the components: [n, n_components].
    pub fn transform(&self, x: &Tensor<2>) -> Tensor<2> {
        let device = x.device();
        let d = self.mean.len();
        let c = self.components.len();
        let mean = upload_vec(self.mean.clone(), 1, d, &device);
        let mut w = vec![0f32; d * c];
        for (j, comp) in self.components.iter().enumerate() {
            for (i, v) in comp.iter().enumerate() {
                w[i * c + j] = *v;
            }
        }
        let w = upload_vec(w, d, c, &device);
        (x.clone() - mean).matmul(w)
    }
}

/// Eigen-decomposition of a symmetric `d x d` matrix (row-major). Returns the eigenvalues and
/// the eigenvectors as the columns of a row-major `d x d` matrix.
pub fn jacobi_eigen(mut a: Vec<f64>, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        let scale: f64 = (0..d)
            .map(|i| a[i * d + i].powi(2))
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        if off <= 1e-30 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let akp = a[k * d + p];
                    let akq = a[k * d + q];
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let apk = a[p * d + k];
                    let aqk = a[q * d + k];
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let vkp = v[k * d + p];
                    let vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_known_eigenpairs() {
        // [[2, 1], [1, 2]] has eigenvalues 3 (along [1, 1]) and 1 (along [1, -1]).
        let (values, vectors) = jacobi_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
        let mut pairs: Vec<(f64, [f64; 2])> = (0..2)
            .map(|i| (values[i], [vectors[i], vectors[2 + i]]))
            .collect();
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert!((pairs[0].0 - 3.0).abs() < 1e-12 && (pairs[1].0 - 1.0).abs() < 1e-12);
        assert!((pairs[0].1[0].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert!((pairs[0].1[0] - pairs[0].1[1]).abs() < 1e-12);
    }

    #[test]
    fn pca_recovers_the_main_axis() {
        let device = Device::flex();
        // Points along y = 2x with a little orthogonal noise.
        let mut data = Vec::new();
        for i in 0..200 {
            let t = i as f32 / 20.0 - 5.0;
            let e = if i % 2 == 0 { 0.05 } else { -0.05 };
            data.extend_from_slice(&[t - 2.0 * e, 2.0 * t + e]);
        }
        let x = upload_vec(data, 200, 2, &device);
        let pca = Pca::fit(&x, 1);
        let c = &pca.components[0];
        let norm = 5f32.sqrt();
        assert!(
            (c[0] - 1.0 / norm).abs() < 1e-3 && (c[1] - 2.0 / norm).abs() < 1e-3,
            "{c:?}"
        );
        assert!(pca.explained_variance_ratio[0] > 0.99);
        assert_eq!(pca.transform(&x).dims(), [200, 1]);
    }

    // scikit-learn 1.9.1: p = PCA(2).fit(X) for the 8 x 3 X below;
    // p.components_, p.explained_variance_, p.transform(X)[:2].
    #[test]
    fn pca_matches_scikit_learn() {
        let x: Vec<f32> = vec![
            2.5, 2.4, 0.5, 0.5, 0.7, 1.5, 2.2, 2.9, 0.1, 1.9, 2.2, 0.3, 3.1, 3.0, 0.9, 2.3, 2.7,
            1.1, 2.0, 1.6, 0.2, 1.0, 1.1, 1.7,
        ];
        let components = [
            [0.6559439272881596, 0.6759620685546687, -0.33587623632683433],
            [0.2135945463959324, 0.2605653318366089, 0.9415323030012269],
        ];
        let variance = [1.5053594797350678, 0.22556177855602816];
        let projected = [
            [0.6852205493238221, -0.06585987191824305],
            [-2.1116790581222684, 0.005522274168884067],
        ];
        let device = Device::flex();
        let t = upload_vec(x, 8, 3, &device);
        let pca = Pca::fit(&t, 2);
        for (got, want) in pca.components.iter().zip(components) {
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (*g as f64 - w).abs() < 1e-5,
                    "component {got:?} vs {want:?}"
                );
            }
        }
        for (g, w) in pca.explained_variance.iter().zip(variance) {
            assert!((g - w).abs() < 1e-5, "variance {g} vs {w}");
        }
        let emb = download(pca.transform(&t));
        for (i, row) in projected.iter().enumerate() {
            for (j, w) in row.iter().enumerate() {
                assert!(
                    (emb[i * 2 + j] as f64 - w).abs() < 1e-5,
                    "projection {i},{j}: {} vs {w}",
                    emb[i * 2 + j]
                );
            }
        }
    }
}
