//! The statistics of the drift tests: the two-sample Kolmogorov–Smirnov test (its
//! distribution is not in statrs), the Wasserstein and Jensen–Shannon distances, the
//! chi-square and two-proportion Z tests (their special functions from statrs).

use statrs::function::erf::erfc;
use statrs::function::gamma::gamma_ur;

use super::profile::quantile;

/// The two-sample Kolmogorov–Smirnov statistic of two sorted samples.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// Two-sided p-value of the two-sample KS test (the asymptotic Kolmogorov distribution with
/// Stephens' small-sample correction). A reference kept as quantiles counts as
/// [`QUANTILES`] + 1 values.
pub(crate) fn ks_p_value(reference: &[f64], current: &[f64], _exact: bool) -> f64 {
    let d = ks_statistic(reference, current);
    let (n, m) = (reference.len() as f64, current.len() as f64);
    let en = (n * m / (n + m)).sqrt();
    kolmogorov_q((en + 0.12 + 0.11 / en) * d)
}

/// Q_KS(λ) = 2 Σ (-1)^(k-1) exp(-2 k² λ²).
pub(crate) fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=200 {
        let term = sign * (-2.0 * (k as f64).powi(2) * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// W1 between the reference (values, or evenly spaced quantiles) and a sorted sample:
/// the mean absolute difference of their quantile functions.
pub fn wasserstein(reference: &[f64], exact: bool, current: &[f64]) -> f64 {
    if exact {
        // Both empirical: integrate |F_a - F_b| over the merged support.
        let (a, b) = (reference, current);
        let (n, m) = (a.len() as f64, b.len() as f64);
        let (mut i, mut j, mut total) = (0, 0, 0.0);
        let mut last = a[0].min(b[0]);
        while i < a.len() || j < b.len() {
            let x = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) => x.min(y),
                (Some(&x), None) => x,
                (None, Some(&y)) => y,
                (None, None) => break,
            };
            total += (i as f64 / n - j as f64 / m).abs() * (x - last);
            last = x;
            while i < a.len() && a[i] <= x {
                i += 1;
            }
            while j < b.len() && b[j] <= x {
                j += 1;
            }
        }
        return total;
    }
    const STEPS: usize = 4000;
    (0..STEPS)
        .map(|i| {
            let q = (i as f64 + 0.5) / STEPS as f64;
            (quantile(reference, q) - quantile(current, q)).abs()
        })
        .sum::<f64>()
        / STEPS as f64
}

/// Jensen–Shannon distance (the square root of the divergence, natural log) of two
/// distributions over the same categories.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter()
            .zip(m)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| x * (x / y).ln())
            .sum()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| 0.5 * (a + b)).collect();
    (0.5 * kl(p, &m) + 0.5 * kl(q, &m)).max(0.0).sqrt()
}

/// p-value of the chi-square goodness of fit of the current counts to the reference shares.
pub(crate) fn chi_square_p_value(reference_shares: &[f64], current: &[f64], n: f64) -> f64 {
    let mut stat = 0.0;
    let mut categories = 0;
    for (&share, &observed) in reference_shares.iter().zip(current) {
        let expected = share * n;
        if expected == 0.0 {
            if observed > 0.0 {
                return 0.0; // a category the reference never had
            }
            continue;
        }
        categories += 1;
        stat += (observed - expected).powi(2) / expected;
    }
    if categories < 2 {
        return 1.0;
    }
    upper_gamma_regularized((categories - 1) as f64 / 2.0, stat / 2.0)
}

/// Two-sided p-value of the pooled two-proportion Z-test.
pub(crate) fn z_test(x1: f64, n1: f64, x2: f64, n2: f64) -> f64 {
    let (p1, p2) = (x1 / n1, x2 / n2);
    let p = (x1 + x2) / (n1 + n2);
    let se = (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return if p1 == p2 { 1.0 } else { 0.0 };
    }
    erfc(((p1 - p2) / se).abs() / std::f64::consts::SQRT_2)
}

/// Q(a, x) = Γ(a, x) / Γ(a): the chi-square survival function is Q(df/2, stat/2).
pub(crate) fn upper_gamma_regularized(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    gamma_ur(a, x).clamp(0.0, 1.0)
}
