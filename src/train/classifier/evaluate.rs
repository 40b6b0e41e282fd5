//! Classification quality on held-out rows, with scikit-learn's definitions: accuracy, and
//! precision, recall and F1 per class averaged with class-support weights ("weighted").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// confusion[true][predicted]
    pub confusion: Vec<Vec<usize>>,
    pub rows: usize,
}

/// Scores `predicted` against `truth` over `k` classes. A class with no predicted rows has
/// precision 0 (scikit-learn's zero_division=0).
pub fn evaluate(truth: &[u32], predicted: &[u32], k: usize) -> Evaluation {
    assert_eq!(truth.len(), predicted.len());
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t as usize][p as usize] += 1;
    }
    let n = truth.len();
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let (mut precision, mut recall, mut f1) = (0.0, 0.0, 0.0);
    for c in 0..k {
        let support: usize = confusion[c].iter().sum();
        let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
        let tp = confusion[c][c] as f64;
        let p = if predicted_c > 0 {
            tp / predicted_c as f64
        } else {
            0.0
        };
        let r = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        let w = support as f64 / n.max(1) as f64;
        precision += w * p;
        recall += w * r;
        f1 += w * f;
    }
    Evaluation {
        accuracy: correct as f64 / n.max(1) as f64,
        precision,
        recall,
        f1,
        confusion,
        rows: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // scikit-learn 1.9.1, y_true = [0,0,0,1,1,2,2,2,2], y_pred = [0,0,1,1,1,2,2,0,2]:
    // accuracy_score 0.7777777777777778; precision/recall/f1_score(average="weighted")
    // 0.8148148148148148, 0.7777777777777778, 0.780952380952381.
    #[test]
    fn weighted_scores_match_scikit_learn() {
        let e = evaluate(
            &[0, 0, 0, 1, 1, 2, 2, 2, 2],
            &[0, 0, 1, 1, 1, 2, 2, 0, 2],
            3,
        );
        assert!((e.accuracy - 0.7777777777777778).abs() < 1e-12);
        assert!(
            (e.precision - 0.8148148148148148).abs() < 1e-12,
            "{}",
            e.precision
        );
        assert!((e.recall - 0.7777777777777778).abs() < 1e-12);
        assert!((e.f1 - 0.780952380952381).abs() < 1e-12, "{}", e.f1);
        assert_eq!(
            e.confusion,
            vec![vec![2, 1, 0], vec![0, 2, 0], vec![1, 0, 3]]
        );
    }
}
