//! Small tensor helpers shared by the training stages: moving host matrices to a device and
//! back, and squared Euclidean distances, the kernel of PCA projection, KMeans and metrics.

use burn::prelude::*;

use crate::matrix::Matrix;

/// Uploads a row-major host matrix.
pub fn upload(m: &Matrix, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(m.as_slice().to_vec(), [m.rows(), m.cols()]),
        device,
    )
}

/// Uploads `rows x cols` values.
pub fn upload_vec(data: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(data, [rows, cols]), device)
}

/// Downloads a float tensor as a flat row-major vector.
pub fn download<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor reads back as f32")
}

/// Downloads an int tensor as i64 values.
pub fn download_int<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("int tensor reads back as i64")
}

/// Squared Euclidean distances between the rows of `x` [n, d] and of `c` [m, d]: [n, m].
/// Uses |x|^2 - 2 x.c + |c|^2 (one matmul), clamped at 0 against rounding.
pub fn sq_distances(x: &Tensor<2>, x_sq: &Tensor<2>, c: &Tensor<2>) -> Tensor<2> {
    let c_sq = c.clone().square().sum_dim(1).transpose(); // [1, m]
    let cross = x.clone().matmul(c.clone().transpose()); // [n, m]
    (x_sq.clone() - cross.mul_scalar(2.0) + c_sq).clamp_min(0.0)
}

/// Row norms squared, [n, 1]: computed once per data set and reused by every distance call.
pub fn row_sq_norms(x: &Tensor<2>) -> Tensor<2> {
    x.clone().square().sum_dim(1)
}
