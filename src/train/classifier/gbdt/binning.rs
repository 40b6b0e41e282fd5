//! The GBDT's bins: quantile cut points per feature, fitted once on the host, and every
//! value's bin (the number of cuts below it).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;

/// Above this many rows the bin cuts come from a sample of this many.
const BINNER_SAMPLE_ROWS: usize = 1 << 18;

/// Quantile cut points per feature: bin(x) = number of cuts below x.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binner {
    pub cuts: Vec<Vec<f32>>,
}

impl Binner {
    pub fn fit(x: &Matrix, max_bins: usize) -> Self {
        // Quantiles of big data from an evenly spaced sample of its rows (as LightGBM's
        // 200,000-row bin sample): the cuts barely move, and sorting stays cheap.
        let n = x.rows();
        let sample: Option<Vec<usize>> = (n > BINNER_SAMPLE_ROWS).then(|| {
            (0..BINNER_SAMPLE_ROWS)
                .map(|q| q * n / BINNER_SAMPLE_ROWS)
                .collect()
        });
        let cuts = (0..x.cols())
            .into_par_iter()
            .map(|j| {
                let mut col = match &sample {
                    Some(rows) => rows.iter().map(|&i| x.get(i, j)).collect(),
                    None => x.column(j),
                };
                crate::sort::sort_f32(&mut col);
                let mut uniq = col.clone();
                uniq.dedup();
                if uniq.len() <= max_bins {
                    uniq.pop(); // every distinct value its own bin: cut below the largest
                    return uniq;
                }
                let n = col.len();
                let mut cuts: Vec<f32> = (1..max_bins).map(|q| col[q * n / max_bins]).collect();
                cuts.dedup();
                let max = *col.last().expect("column has values");
                cuts.retain(|&c| c < max);
                cuts
            })
            .collect();
        Binner { cuts }
    }

    /// The bin of `value`: the number of cuts below it. NaN is below no cut's `<`, so it
    /// lands in the last bin here; scoring on bins ([`super::scoring`]) gives NaN bin 255
    /// instead, which goes right at every split as [`super::Tree::predict`] sends it. The
    /// trainers never see NaN (preprocessing imputes it), so the two never meet.
    #[inline]
    pub fn bin(&self, feature: usize, value: f32) -> usize {
        self.cuts[feature].partition_point(|&c| c < value)
    }

    /// Bins of every value as bytes, row-major (at most 256 bins).
    pub fn bin_matrix_u8(&self, x: &Matrix) -> Vec<u8> {
        let cols = x.cols();
        let mut out = vec![0u8; x.as_slice().len()];
        out.par_chunks_mut(cols * 4096)
            .zip(x.as_slice().par_chunks(cols * 4096))
            .for_each(|(out, rows)| {
                for (o, row) in out.chunks_exact_mut(cols).zip(rows.chunks_exact(cols)) {
                    for (j, (o, &v)) in o.iter_mut().zip(row).enumerate() {
                        *o = self.bin(j, v) as u8;
                    }
                }
            });
        out
    }

    /// Bins of every value, row-major.
    pub fn bin_matrix(&self, x: &Matrix) -> Vec<i64> {
        let cols = x.cols();
        x.as_slice()
            .par_chunks(cols * 4096)
            .flat_map_iter(|rows| {
                rows.chunks_exact(cols).flat_map(move |row| {
                    row.iter()
                        .enumerate()
                        .map(move |(j, &v)| self.bin(j, v) as i64)
                })
            })
            .collect()
    }
}
