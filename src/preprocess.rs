//! Preprocessing fitted on the training split only: median imputation, then per column either
//! standardisation, or (for the skewed columns) a Yeo-Johnson power transform with the
//! maximum-likelihood lambda followed by standardisation. This is scikit-learn's
//! `SimpleImputer(strategy="median")` → `StandardScaler` / `PowerTransformer("yeo-johnson")`,
//! reproduced to the same numbers (see the tests for reference values).
//!
//! Fitting works on the value histogram of a column (distinct value → count), which is exact
//! and, for the integer-valued money and age columns, makes each likelihood evaluation cost the
//! number of distinct values rather than the number of rows.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;
use crate::schema::{FEATURES, N_FEATURES};

/// The fitted transform of one feature column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnTransform {
    pub key: String,
    /// Replaces a missing value (median of the training values).
    pub median: f64,
    /// Yeo-Johnson lambda for skewed columns, `None` for plain ones.
    pub lambda: Option<f64>,
    /// Standardisation after the optional power transform: (v - mean) / scale.
    pub mean: f64,
    pub scale: f64,
}

/// The fitted preprocessing of all 21 features, in feature order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub columns: Vec<ColumnTransform>,
}

/// Yeo-Johnson transform of one value (scikit-learn's definition).
pub fn yeo_johnson(x: f64, lambda: f64) -> f64 {
    const EPS: f64 = f64::EPSILON;
    if x >= 0.0 {
        if lambda.abs() < EPS {
            x.ln_1p()
        } else {
            ((x + 1.0).powf(lambda) - 1.0) / lambda
        }
    } else if (lambda - 2.0).abs() > EPS {
        -((-x + 1.0).powf(2.0 - lambda) - 1.0) / (2.0 - lambda)
    } else {
        -(-x).ln_1p()
    }
}

/// Distinct values of a column with their counts, from its (already imputed) values.
fn histogram(values: &[f32]) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    crate::sort::sort_f32(&mut sorted);
    let mut out: Vec<(f64, f64)> = Vec::new();
    for v in sorted {
        match out.last_mut() {
            Some((last, count)) if *last == v as f64 => *count += 1.0,
            _ => out.push((v as f64, 1.0)),
        }
    }
    out
}

/// Negative Yeo-Johnson log-likelihood of `lambda` over a weighted histogram.
fn neg_log_likelihood(hist: &[(f64, f64)], log_term: f64, n: f64, lambda: f64) -> f64 {
    let (mut s, mut s2) = (0.0, 0.0);
    let shift = yeo_johnson(hist[0].0, lambda);
    for &(x, w) in hist {
        let y = yeo_johnson(x, lambda) - shift; // shifted for a stable variance
        s += w * y;
        s2 += w * y * y;
    }
    let mean = s / n;
    let var = (s2 / n - mean * mean).max(0.0);
    if var < f64::MIN_POSITIVE {
        return f64::INFINITY;
    }
    -(-n / 2.0 * var.ln() + (lambda - 1.0) * log_term)
}

/// Maximum-likelihood Yeo-Johnson lambda, as scikit-learn finds it: Brent's method started from
/// the bracket (-2, 2).
pub fn yeo_johnson_lambda(hist: &[(f64, f64)]) -> f64 {
    let n: f64 = hist.iter().map(|(_, w)| w).sum();
    let log_term: f64 = hist
        .iter()
        .map(|&(x, w)| w * x.signum() * x.abs().ln_1p())
        .sum();
    let f = |l: f64| neg_log_likelihood(hist, log_term, n, l);
    brent_minimize(f, -2.0, 2.0)
}

/// scipy.optimize.brent: bracket a minimum by golden expansion from (a, b), then Brent's
/// parabolic/golden-section search to a relative tolerance of 1.48e-8.
#[allow(unused_assignments)] // a line-by-line port of scipy; some stores are dead on some paths
fn brent_minimize(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    const GOLD: f64 = 1.618_034;
    const GLIMIT: f64 = 110.0;
    const TINY: f64 = 1e-21;
    // scipy.optimize.bracket
    let (mut xa, mut xb) = (a, b);
    let (mut fa, mut fb) = (f(xa), f(xb));
    if fa < fb {
        std::mem::swap(&mut xa, &mut xb);
        std::mem::swap(&mut fa, &mut fb);
    }
    let mut xc = xb + GOLD * (xb - xa);
    let mut fc = f(xc);
    let mut iter = 0;
    while fc < fb && iter < 1000 {
        iter += 1;
        let tmp1 = (xb - xa) * (fb - fc);
        let tmp2 = (xb - xc) * (fb - fa);
        let val = tmp2 - tmp1;
        let denom = if val.abs() < TINY {
            2.0 * TINY
        } else {
            2.0 * val
        };
        let mut w = xb - ((xb - xc) * tmp2 - (xb - xa) * tmp1) / denom;
        let wlim = xb + GLIMIT * (xc - xb);
        let mut fw;
        if (w - xc) * (xb - w) > 0.0 {
            fw = f(w);
            if fw < fc {
                xa = xb;
                xb = w;
                fa = fb;
                fb = fw;
                break;
            } else if fw > fb {
                xc = w;
                fc = fw;
                break;
            }
            w = xc + GOLD * (xc - xb);
            fw = f(w);
        } else if (w - wlim) * (wlim - xc) >= 0.0 {
            w = wlim;
            fw = f(w);
        } else if (w - wlim) * (xc - w) > 0.0 {
            fw = f(w);
            if fw < fc {
                xb = xc;
                xc = w;
                w = xc + GOLD * (xc - xb);
                fb = fc;
                fc = fw;
                fw = f(w);
            }
        } else {
            w = xc + GOLD * (xc - xb);
            fw = f(w);
        }
        xa = xb;
        xb = xc;
        xc = w;
        fa = fb;
        fb = fc;
        fc = fw;
    }
    let _ = (fa, fc);
    // Brent's method on the bracket (xa, xb, xc), as scipy's Brent.optimize.
    const TOL: f64 = 1.48e-8;
    const CG: f64 = 0.381_966_0;
    const MINTOL: f64 = 1.0e-11;
    let (mut lo, mut hi) = if xa < xc { (xa, xc) } else { (xc, xa) };
    let (mut x, mut w, mut v) = (xb, xb, xb);
    let (mut fx, mut fw, mut fv) = (f(x), f(x), f(x));
    let mut deltax: f64 = 0.0;
    let mut rat: f64 = 0.0;
    for _ in 0..500 {
        let tol1 = TOL * x.abs() + MINTOL;
        let tol2 = 2.0 * tol1;
        let xmid = 0.5 * (lo + hi);
        if (x - xmid).abs() < tol2 - 0.5 * (hi - lo) {
            break;
        }
        if deltax.abs() <= tol1 {
            deltax = if x >= xmid { lo - x } else { hi - x };
            rat = CG * deltax;
        } else {
            let tmp1 = (x - w) * (fx - fv);
            let mut tmp2 = (x - v) * (fx - fw);
            let mut p = (x - v) * tmp2 - (x - w) * tmp1;
            tmp2 = 2.0 * (tmp2 - tmp1);
            if tmp2 > 0.0 {
                p = -p;
            }
            tmp2 = tmp2.abs();
            let dx_temp = deltax;
            deltax = rat;
            if p > tmp2 * (lo - x) && p < tmp2 * (hi - x) && p.abs() < (0.5 * tmp2 * dx_temp).abs()
            {
                rat = p / tmp2;
                let u = x + rat;
                if (u - lo) < tol2 || (hi - u) < tol2 {
                    rat = if xmid - x >= 0.0 { tol1 } else { -tol1 };
                }
            } else {
                deltax = if x >= xmid { lo - x } else { hi - x };
                rat = CG * deltax;
            }
        }
        let u = if rat.abs() < tol1 {
            if rat >= 0.0 { x + tol1 } else { x - tol1 }
        } else {
            x + rat
        };
        let fu = f(u);
        if fu > fx {
            if u < x {
                lo = u
            } else {
                hi = u
            }
            if fu <= fw || w == x {
                v = w;
                w = u;
                fv = fw;
                fw = fu;
            } else if fu <= fv || v == x || v == w {
                v = u;
                fv = fu;
            }
        } else {
            if u >= x {
                lo = x
            } else {
                hi = x
            }
            v = w;
            w = x;
            x = u;
            fv = fw;
            fw = fx;
            fx = fu;
        }
    }
    x
}

fn median_of(values: &mut [f32]) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let (_, mid, _) = values.select_nth_unstable_by(n / 2, f32::total_cmp);
    let upper = *mid as f64;
    if n % 2 == 1 {
        return upper;
    }
    let lower = values[..n / 2]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max) as f64;
    (lower + upper) / 2.0
}

/// Mean and population standard deviation (scikit-learn's StandardScaler), with a zero spread
/// mapped to a scale of 1 so constant columns pass through centred.
fn mean_scale(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut n, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        n += 1.0;
        let d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
    }
    let std = if n > 0.0 { (m2 / n).sqrt() } else { 0.0 };
    (mean, scale_of(std, mean))
}

/// StandardScaler's scale: the standard deviation, or 1 where the spread is zero to rounding.
fn scale_of(std: f64, mean: f64) -> f64 {
    if std < 10.0 * f64::EPSILON * mean.abs().max(1.0) {
        1.0
    } else {
        std
    }
}

fn columns_of(x: &Matrix) -> Vec<Vec<f32>> {
    let mut cols: Vec<Vec<f32>> = (0..x.cols())
        .map(|_| Vec::with_capacity(x.rows()))
        .collect();
    for row in x.as_slice().chunks_exact(x.cols()) {
        for (col, v) in cols.iter_mut().zip(row) {
            col.push(*v);
        }
    }
    cols
}

impl Preprocessor {
    /// Fits on the training rows (n x 21, NaN for missing values).
    pub fn fit(train: &Matrix) -> Self {
        assert_eq!(
            train.cols(),
            N_FEATURES,
            "preprocessing expects the 21 features"
        );
        let columns = columns_of(train)
            .into_par_iter()
            .zip(FEATURES.par_iter())
            .map(|(mut values, feat)| {
                let mut present: Vec<f32> =
                    values.iter().copied().filter(|v| !v.is_nan()).collect();
                let median = median_of(&mut present);
                for v in values.iter_mut().filter(|v| v.is_nan()) {
                    *v = median as f32;
                }
                if feat.skewed {
                    let hist = histogram(&values);
                    let lambda = yeo_johnson_lambda(&hist);
                    let (mean, scale) = weighted_mean_scale(&hist, lambda);
                    ColumnTransform {
                        key: feat.key.into(),
                        median,
                        lambda: Some(lambda),
                        mean,
                        scale,
                    }
                } else {
                    let (mean, scale) = mean_scale(values.iter().map(|&v| v as f64));
                    ColumnTransform {
                        key: feat.key.into(),
                        median,
                        lambda: None,
                        mean,
                        scale,
                    }
                }
            })
            .collect();
        Preprocessor { columns }
    }

    /// Transforms one row of 21 raw feature values into `out`.
    #[inline]
    pub fn transform_row(&self, row: &[f32], out: &mut [f32]) {
        for ((c, &v), o) in self.columns.iter().zip(row).zip(out.iter_mut()) {
            let v = if v.is_nan() { c.median } else { v as f64 };
            let v = match c.lambda {
                Some(l) => yeo_johnson(v, l),
                None => v,
            };
            *o = ((v - c.mean) / c.scale) as f32;
        }
    }

    /// Transforms every row, in parallel chunks.
    pub fn transform(&self, x: &Matrix) -> Matrix {
        let cols = x.cols();
        let mut out = Matrix::zeros(x.rows(), cols);
        out.as_mut_slice()
            .par_chunks_mut(cols * 4096)
            .zip(x.as_slice().par_chunks(cols * 4096))
            .for_each(|(o, i)| {
                for (orow, irow) in o.chunks_exact_mut(cols).zip(i.chunks_exact(cols)) {
                    self.transform_row(irow, orow);
                }
            });
        out
    }
}

fn weighted_mean_scale(hist: &[(f64, f64)], lambda: f64) -> (f64, f64) {
    let n: f64 = hist.iter().map(|(_, w)| w).sum();
    let mean = hist
        .iter()
        .map(|&(x, w)| w * yeo_johnson(x, lambda))
        .sum::<f64>()
        / n;
    let var = hist
        .iter()
        .map(|&(x, w)| w * (yeo_johnson(x, lambda) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, scale_of(var.sqrt(), mean))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from scikit-learn 1.9.1 / scipy 1.17.1 (Python 3.11.7), computed with:
    //   from sklearn.preprocessing import PowerTransformer
    //   x = np.array([[0.],[1.],[1.],[2.],[5.],[9.],[20.],[150.],[600.],[1500.]])
    //   pt = PowerTransformer(method="yeo-johnson", standardize=True).fit(x)
    //   pt.lambdas_, pt.transform(x).ravel()
    //   x2 = np.array([[-3.],[-1.],[0.],[0.5],[2.],[2.5],[4.],[8.]])   # mixed signs
    //   PowerTransformer(method="yeo-johnson", standardize=False).fit(x2).lambdas_
    const SKEWED: [f32; 10] = [0.0, 1.0, 1.0, 2.0, 5.0, 9.0, 20.0, 150.0, 600.0, 1500.0];
    const SKLEARN_LAMBDA: f64 = -0.20365634181288078;
    const SKLEARN_OUT: [f64; 10] = [
        -1.4629974755428274,
        -0.9492138994296291,
        -0.9492138994296291,
        -0.6806258374795124,
        -0.2698437969324191,
        -0.00214268967783878,
        0.34027840418201094,
        1.0348512568225503,
        1.3792983042098015,
        1.559609633277494,
    ];
    const MIXED: [f64; 8] = [-3.0, -1.0, 0.0, 0.5, 2.0, 2.5, 4.0, 8.0];
    const SKLEARN_MIXED_LAMBDA: f64 = 0.783182232484874;

    #[test]
    fn yeo_johnson_lambda_matches_scikit_learn() {
        let hist = histogram(&SKEWED);
        let lambda = yeo_johnson_lambda(&hist);
        assert!(
            (lambda - SKLEARN_LAMBDA).abs() < 1e-6,
            "lambda {lambda} vs {SKLEARN_LAMBDA}"
        );
        let hist: Vec<(f64, f64)> = MIXED.iter().map(|&x| (x, 1.0)).collect();
        let lambda = yeo_johnson_lambda(&hist);
        assert!(
            (lambda - SKLEARN_MIXED_LAMBDA).abs() < 1e-6,
            "lambda {lambda} vs {SKLEARN_MIXED_LAMBDA}"
        );
    }

    #[test]
    fn power_transform_then_standardise_matches_scikit_learn() {
        let hist = histogram(&SKEWED);
        let lambda = yeo_johnson_lambda(&hist);
        let (mean, scale) = weighted_mean_scale(&hist, lambda);
        for (x, want) in SKEWED.iter().zip(SKLEARN_OUT) {
            let got = (yeo_johnson(*x as f64, lambda) - mean) / scale;
            assert!((got - want).abs() < 1e-5, "x={x}: {got} vs {want}");
        }
    }

    #[test]
    fn yeo_johnson_special_cases() {
        assert_eq!(yeo_johnson(3.0, 0.0), 4f64.ln());
        assert!((yeo_johnson(3.0, 1.0) - 3.0).abs() < 1e-12);
        assert!((yeo_johnson(-3.0, 2.0) + 4f64.ln()).abs() < 1e-12);
        assert!((yeo_johnson(-3.0, 1.0) + 3.0).abs() < 1e-12);
    }

    #[test]
    fn median_imputation_and_scaling_match_scikit_learn() {
        // SimpleImputer(strategy="median") then StandardScaler on [1, NaN, 3, 10]:
        // median of [1, 3, 10] = 3 -> [1, 3, 3, 10]; mean 4.25, population std sqrt(11.6875) = 3.4186985...
        let mut m = Matrix::zeros(4, N_FEATURES);
        let income = crate::schema::feature_index("Income").unwrap();
        for (i, v) in [1.0, f32::NAN, 3.0, 10.0].into_iter().enumerate() {
            m.as_mut_slice()[i * N_FEATURES + income] = v;
        }
        let p = Preprocessor::fit(&m);
        let c = &p.columns[income];
        assert_eq!(c.median, 3.0);
        assert!((c.mean - 4.25).abs() < 1e-12);
        assert!((c.scale - 11.6875f64.sqrt()).abs() < 1e-9);
        let out = p.transform(&m);
        assert!((out.get(1, income) as f64 - (3.0 - 4.25) / c.scale).abs() < 1e-6);
        // A constant column is centred and left unscaled.
        assert_eq!(p.columns[0].scale, 1.0);
        assert_eq!(median_of(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
