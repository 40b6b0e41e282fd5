//! The GBDT's per-level operations (the histograms, and routing rows to children) as custom
//! burn operations (burn's backend extension), with a CubeCL kernel each for the cubecl
//! backend (wgpu on a GPU).
//!
//! The generic tensor code in `Block::root_hist` / `Block::left_hist` builds a level's
//! histograms from several burn operations: for the children, an `argwhere` of the left-child
//! rows, a `select` of their bins and (g, h), a product that copies (g, h) once per feature,
//! then a `scatter` add. On a GPU each of those is a launch and a buffer. Here each histogram
//! is one launch: one unit per (row, feature) reads the row's node and (g, h) and adds them
//! into its bin with atomic float adds. Routing, two gathers and a comparison as tensor code,
//! is one unit per (row, class tree) reading its split. The generic code stays the implementation for every
//! other device, for a device without atomic f32 adds, and the reference in the tests.
//!
//! The CPU's own implementation of the same operations is the plain-Rust grower of
//! `gbdt::host` (row partitions per node, per-thread `u8`-bin histograms), which the CPU
//! backend runs instead of this tensor code.
//!
//! Atomic adds land in no fixed order, so a GPU histogram's rounding can differ from one run
//! to the next (by a few ulps of each sum); the CPU paths are deterministic.

use burn::backend::{
    Backend, Dispatch, DispatchDevice, backend_extension,
    tensor::{FloatTensor, IntTensor},
};
use burn::prelude::*;
use burn::tensor::{DType, Shape};
use burn_cubecl::{
    CubeBackend, CubeDevice,
    kernel::{cast, into_contiguous},
    ops::numeric::zeros,
    tensor::CubeTensor,
};

/// Launch-side kernels; their own module because cubecl's prelude also names `Tensor`, `Int`.
mod cube {
    use cubecl::prelude::*;

    /// The root histograms [f * B, 2k]: `bins` [n, f] holds feature j's bin offset by j * B,
    /// `gh` [n, 2k] each row's (g, h) of all classes; one unit per (row, feature).
    #[cube(launch)]
    pub fn root_hist(
        bins: &Tensor<i32>,
        gh: &Tensor<f32>,
        hist: &mut Tensor<Atomic<f32>>,
        units: usize,
        f: usize,
        two_k: usize,
    ) {
        if ABSOLUTE_POS >= units {
            terminate!();
        }
        let row = ABSOLUTE_POS / f;
        let slot = usize::cast_from(bins[ABSOLUTE_POS]) * two_k;
        for t in 0..two_k {
            hist[slot + t].fetch_add(gh[row * two_k + t]);
        }
    }

    /// The left children's histograms [parents * k * B, 2f], row (parent * k + class) * B +
    /// bin, column 2 * feature (+1 for h): a row whose class-c node is even (a left child)
    /// adds its class-c (g, h) under parent node / 2. One unit per (row, feature).
    #[cube(launch)]
    pub fn left_hist(
        bins: &Tensor<i32>,
        node: &Tensor<i32>,
        gh: &Tensor<f32>,
        hist: &mut Tensor<Atomic<f32>>,
        units: usize,
        f: usize,
        k: usize,
        b: usize,
    ) {
        if ABSOLUTE_POS >= units {
            terminate!();
        }
        let row = ABSOLUTE_POS / f;
        let j = ABSOLUTE_POS % f;
        let bin = usize::cast_from(bins[ABSOLUTE_POS]) - j * b;
        for c in 0..k {
            let nd = usize::cast_from(node[row * k + c]);
            if nd % 2 == 0 {
                let at = (((nd / 2) * k + c) * b + bin) * 2 * f + 2 * j;
                hist[at].fetch_add(gh[row * 2 * k + 2 * c]);
                hist[at + 1].fetch_add(gh[row * 2 * k + 2 * c + 1]);
            }
        }
    }

    /// Routes each row of each class tree to a child: `node` [n, k]; `split_feature` and
    /// `split_bin` (offset by feature * B) by slot `node * k + class`; right when the row's
    /// offset bin of the split feature is above the split's. One unit per (row, class).
    #[cube(launch)]
    pub fn route_rows(
        bins: &Tensor<i32>,
        node: &Tensor<i32>,
        split_feature: &Tensor<i32>,
        split_bin: &Tensor<i32>,
        out: &mut Tensor<i32>,
        units: usize,
        f: usize,
        k: usize,
    ) {
        if ABSOLUTE_POS >= units {
            terminate!();
        }
        let row = ABSOLUTE_POS / k;
        let c = ABSOLUTE_POS % k;
        let nd = node[ABSOLUTE_POS];
        let slot = usize::cast_from(nd) * k + c;
        let feature = usize::cast_from(split_feature[slot]);
        let mut child = nd * 2;
        if bins[row * f + feature] > split_bin[slot] {
            child += 1;
        }
        out[ABSOLUTE_POS] = child;
    }
}

fn root_shape(bins: &Shape, gh: &Shape, b: &usize) -> Shape {
    Shape::new([bins[1] * b, gh[1]])
}

fn left_shape(bins: &Shape, node: &Shape, parents: &usize, b: &usize) -> Shape {
    Shape::new([parents * node[1] * b, 2 * bins[1]])
}

/// The operations of one boosting level, as a backend extension.
#[backend_extension(Cube, Fusion)]
pub trait LevelOps: Backend {
    /// `bins` [n, f] (offset by feature * B), `gh` [n, 2k] -> [f * B, 2k].
    #[fusion(dtype = gh, shape = root_shape(bins, gh, b))]
    fn root_histograms(bins: IntTensor<Self>, gh: FloatTensor<Self>, b: usize)
    -> FloatTensor<Self>;

    /// `bins` [n, f] (offset), `node` [n, k], `gh` [n, 2k] -> [parents * k * B, 2f].
    #[fusion(dtype = gh, shape = left_shape(bins, node, parents, b))]
    fn left_histograms(
        bins: IntTensor<Self>,
        node: IntTensor<Self>,
        gh: FloatTensor<Self>,
        parents: usize,
        b: usize,
    ) -> FloatTensor<Self>;

    /// `bins` [n, f] (offset), `node` [n, k], `split_feature` / `split_bin` by slot
    /// `node * k + class` -> each row's child node [n, k].
    #[fusion(dtype = node, shape = node)]
    fn route_rows(
        bins: IntTensor<Self>,
        node: IntTensor<Self>,
        split_feature: IntTensor<Self>,
        split_bin: IntTensor<Self>,
    ) -> IntTensor<Self>;
}

fn contiguous(t: CubeTensor, dtype: DType) -> CubeTensor {
    into_contiguous(if t.dtype == dtype { t } else { cast(t, dtype) })
}

/// The cube size and count for one unit per element of `units`.
fn grid(client: &cubecl::client::Client, units: usize) -> (cubecl::CubeCount, cubecl::CubeDim) {
    let dim = cubecl::CubeDim::new(client, units);
    (
        cubecl::calculate_cube_count_elemwise(client, units, dim),
        dim,
    )
}

impl LevelOps for CubeBackend {
    fn root_histograms(
        bins: IntTensor<Self>,
        gh: FloatTensor<Self>,
        b: usize,
    ) -> FloatTensor<Self> {
        let (bins, gh) = (contiguous(bins, DType::I32), contiguous(gh, DType::F32));
        let (n, f, two_k) = (
            bins.meta.shape()[0],
            bins.meta.shape()[1],
            gh.meta.shape()[1],
        );
        let client = gh.client.clone();
        let hist = zeros(gh.device.clone(), Shape::new([f * b, two_k]), DType::F32);
        let units = n * f;
        if units > 0 {
            let (count, dim) = grid(&client, units);
            cube::root_hist::launch(
                &client,
                count,
                dim,
                bins.into_tensor_arg(),
                gh.into_tensor_arg(),
                hist.clone().into_tensor_arg(),
                units,
                f,
                two_k,
            );
        }
        hist
    }

    fn left_histograms(
        bins: IntTensor<Self>,
        node: IntTensor<Self>,
        gh: FloatTensor<Self>,
        parents: usize,
        b: usize,
    ) -> FloatTensor<Self> {
        let (bins, node) = (contiguous(bins, DType::I32), contiguous(node, DType::I32));
        let gh = contiguous(gh, DType::F32);
        let (n, f, k) = (
            bins.meta.shape()[0],
            bins.meta.shape()[1],
            node.meta.shape()[1],
        );
        let client = gh.client.clone();
        let hist = zeros(
            gh.device.clone(),
            Shape::new([parents * k * b, 2 * f]),
            DType::F32,
        );
        let units = n * f;
        if units > 0 {
            let (count, dim) = grid(&client, units);
            cube::left_hist::launch(
                &client,
                count,
                dim,
                bins.into_tensor_arg(),
                node.into_tensor_arg(),
                gh.into_tensor_arg(),
                hist.clone().into_tensor_arg(),
                units,
                f,
                k,
                b,
            );
        }
        hist
    }

    fn route_rows(
        bins: IntTensor<Self>,
        node: IntTensor<Self>,
        split_feature: IntTensor<Self>,
        split_bin: IntTensor<Self>,
    ) -> IntTensor<Self> {
        let (bins, node) = (contiguous(bins, DType::I32), contiguous(node, DType::I32));
        let split_feature = contiguous(split_feature, DType::I32);
        let split_bin = contiguous(split_bin, DType::I32);
        let (n, f, k) = (
            bins.meta.shape()[0],
            bins.meta.shape()[1],
            node.meta.shape()[1],
        );
        let client = node.client.clone();
        let out = zeros(node.device.clone(), Shape::new([n, k]), DType::I32);
        let units = n * k;
        if units > 0 {
            let (count, dim) = grid(&client, units);
            cube::route_rows::launch(
                &client,
                count,
                dim,
                bins.into_tensor_arg(),
                node.into_tensor_arg(),
                split_feature.into_tensor_arg(),
                split_bin.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                units,
                f,
                k,
            );
        }
        out
    }
}

/// Each row's child node on a device that [`runs_kernels`].
pub fn route_rows(
    bins: &Tensor<2, Int>,
    node: &Tensor<2, Int>,
    split_feature: &Tensor<1, Int>,
    split_bin: &Tensor<1, Int>,
) -> Tensor<2, Int> {
    Tensor::from_dispatch(<Dispatch as LevelOps>::route_rows(
        bins.clone().into_dispatch(),
        node.clone().into_dispatch(),
        split_feature.clone().into_dispatch(),
        split_bin.clone().into_dispatch(),
    ))
}

/// Whether `device` runs the kernels: a cubecl device whose runtime adds f32 atomically.
pub fn runs_kernels(device: &Device) -> bool {
    let DispatchDevice::Cube(cube) = device.as_dispatch().clone().inner() else {
        return false;
    };
    if !matches!(cube, CubeDevice::Wgpu(_)) {
        return false;
    }
    cube.client()
        .properties()
        .atomic_type_usage(cubecl::ir::Type::atomic(cubecl::ir::ElemType::Float(
            cubecl::ir::FloatKind::F32,
        )))
        .contains(cubecl::features::AtomicUsage::Add)
}

/// The root histograms on a device that [`runs_kernels`].
pub fn root_histograms(bins: &Tensor<2, Int>, gh: &Tensor<2>, b: usize) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as LevelOps>::root_histograms(
        bins.clone().into_dispatch(),
        gh.clone().into_dispatch(),
        b,
    ))
}

/// The left children's histograms on a device that [`runs_kernels`].
pub fn left_histograms(
    bins: &Tensor<2, Int>,
    node: &Tensor<2, Int>,
    gh: &Tensor<2>,
    parents: usize,
    b: usize,
) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as LevelOps>::left_histograms(
        bins.clone().into_dispatch(),
        node.clone().into_dispatch(),
        gh.clone().into_dispatch(),
        parents,
        b,
    ))
}

#[cfg(test)]
mod tests {
    //! The kernels against the generic tensor code on random inputs. They need a Vulkan
    //! adapter (Mesa's lavapipe in CI); without one they say so and pass, unless
    //! CATEGORIZER_REQUIRE_GPU_TEST=1.
    use super::super::tensor::{Block, HistShape};
    use burn::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn gpu_or_skip() -> Option<Device> {
        match crate::train::device::gpu() {
            Ok(d) if super::runs_kernels(&d.device) => Some(d.device),
            Ok(d) if std::env::var("CATEGORIZER_REQUIRE_GPU_TEST").is_ok_and(|v| v == "1") => {
                panic!("CATEGORIZER_REQUIRE_GPU_TEST=1 but {d} has no atomic f32 add")
            }
            Err(e) if std::env::var("CATEGORIZER_REQUIRE_GPU_TEST").is_ok_and(|v| v == "1") => {
                panic!("CATEGORIZER_REQUIRE_GPU_TEST=1 but no wgpu device: {e}")
            }
            other => {
                eprintln!(
                    "skipped: no wgpu device with atomic f32 adds ({:?})",
                    other.err()
                );
                None
            }
        }
    }

    struct Case {
        n: usize,
        f: usize,
        k: usize,
        b: usize,
        parents: usize,
        /// Every value in bin 0.
        one_bin: bool,
        seed: u64,
    }

    /// The same block on `device`, with random margins (so random g, h) and random nodes at
    /// the level below `parents` nodes; class 0's rows are all right children (its left
    /// children are empty) when there is more than one class.
    fn block(c: &Case, device: &Device, kernels: bool) -> Block {
        let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
        let bins: Vec<i64> = (0..c.n * c.f)
            .map(|_| {
                if c.one_bin {
                    0
                } else {
                    rng.random_range(0..c.b as i64)
                }
            })
            .collect();
        let y: Vec<u32> = (0..c.n).map(|_| rng.random_range(0..c.k as u32)).collect();
        let shape = HistShape {
            k: c.k,
            f: c.f,
            b: c.b,
            sub_block: 7,
        };
        let mut blk = Block::new(&bins, &y, shape, device, kernels);
        let margin: Vec<f32> = (0..c.n * c.k)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        blk.margin = Tensor::from_data(TensorData::new(margin, [c.n, c.k]), device);
        blk.start_round(c.k, None);
        let node: Vec<i64> = (0..c.n * c.k)
            .map(|i| {
                let nd = rng.random_range(0..2 * c.parents as i64);
                if c.k > 1 && i % c.k == 0 { nd | 1 } else { nd }
            })
            .collect();
        blk.node = Tensor::from_data(TensorData::new(node, [c.n, c.k]), device);
        blk
    }

    fn close(what: &str, got: Vec<f32>, want: Vec<f32>) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{what}: cell {i}: kernel {g}, generic {w}"
            );
        }
    }

    #[test]
    fn kernels_match_the_generic_tensor_histograms_and_routing() {
        let Some(gpu) = gpu_or_skip() else { return };
        let cpu = Device::flex();
        let cases = [
            Case {
                n: 300,
                f: 5,
                k: 3,
                b: 16,
                parents: 4,
                one_bin: false,
                seed: 1,
            },
            Case {
                n: 1,
                f: 3,
                k: 2,
                b: 8,
                parents: 1,
                one_bin: false,
                seed: 2,
            },
            Case {
                n: 200,
                f: 4,
                k: 3,
                b: 2,
                parents: 2,
                one_bin: false,
                seed: 3,
            },
            Case {
                n: 500,
                f: 2,
                k: 3,
                b: 256,
                parents: 8,
                one_bin: false,
                seed: 4,
            },
            Case {
                n: 120,
                f: 3,
                k: 1,
                b: 10,
                parents: 2,
                one_bin: true,
                seed: 5,
            },
            // More nodes than rows: most nodes are empty.
            Case {
                n: 5,
                f: 3,
                k: 3,
                b: 4,
                parents: 16,
                one_bin: false,
                seed: 6,
            },
        ];
        for c in &cases {
            let shape = HistShape {
                k: c.k,
                f: c.f,
                b: c.b,
                sub_block: 7,
            };
            let (on_gpu, reference) = (block(c, &gpu, true), block(c, &cpu, false));
            let what = format!(
                "n {} f {} k {} b {} parents {}",
                c.n, c.f, c.k, c.b, c.parents
            );
            close(
                &format!("root, {what}"),
                crate::train::tensor::download(on_gpu.root_hist(shape)),
                crate::train::tensor::download(reference.root_hist(shape)),
            );
            let pick: Vec<f32> = (0..2)
                .flat_map(|r| (0..2 * c.f).map(move |col| f32::from(u8::from(col % 2 == r))))
                .collect();
            let pick =
                |d: &Device| Tensor::<2>::from_data(TensorData::new(pick.clone(), [2, 2 * c.f]), d);
            close(
                &format!("left, {what}"),
                crate::train::tensor::download(on_gpu.left_hist(shape, c.parents, &pick(&gpu))),
                crate::train::tensor::download(reference.left_hist(shape, c.parents, &pick(&cpu))),
            );
            // Routing: random splits (and no split: feature 0, the last bin) for every slot
            // of the level; the same children, exactly.
            let slots = 2 * c.parents * c.k;
            let mut rng = ChaCha8Rng::seed_from_u64(c.seed + 100);
            let feature: Vec<i64> = (0..slots)
                .map(|_| rng.random_range(0..c.f as i64))
                .collect();
            let split: Vec<i64> = feature
                .iter()
                .map(|&j| {
                    let bin = if rng.random_bool(0.2) {
                        c.b as i64 - 1
                    } else {
                        rng.random_range(0..c.b as i64)
                    };
                    j * c.b as i64 + bin
                })
                .collect();
            let class_index =
                |d: &Device| Tensor::<1, Int>::arange(0..c.k as i64, d).reshape([1, c.k]);
            let ints = |v: &Vec<i64>, d: &Device| {
                Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [slots]), d)
            };
            let (mut on_gpu, mut reference) = (on_gpu, reference);
            on_gpu.route(
                c.k,
                &class_index(&gpu),
                &ints(&feature, &gpu),
                &ints(&split, &gpu),
            );
            reference.route(
                c.k,
                &class_index(&cpu),
                &ints(&feature, &cpu),
                &ints(&split, &cpu),
            );
            assert_eq!(
                crate::train::tensor::download_int(on_gpu.node.reshape([c.n * c.k])),
                crate::train::tensor::download_int(reference.node.reshape([c.n * c.k])),
                "route, {what}"
            );
        }
    }
}
