//! Classification metrics computed from predicted probabilities, shared by the
//! head and the linear baseline so both are judged by exactly the same code.
//!
//! Every number is defined for every input, so a report never shows NaN:
//! - a class that is never predicted has precision 0 (scikit-learn's
//!   `zero_division=0`): claiming nothing earns no credit;
//! - a class absent from `y` has recall 0 and is left out of
//!   [`Evaluation::mean_class_recall`], which averages over classes that occur;
//! - F1 is 0 when precision and recall are both 0;
//! - an empty evaluation set gives 0 for every rate.

use ndarray::{ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

pub mod multilabel;

/// How many classes top-k accuracy considers; only reported when there are
/// more classes than this, since otherwise it is trivially 100%.
pub const TOP_K: usize = 5;

/// Per-class precision, recall and F1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class name.
    pub name: String,
    /// Number of samples whose true class is this one.
    pub support: usize,
    /// Share, in [0, 1], of the samples predicted as this class that are of it; 0 if it is never predicted.
    pub precision: f64,
    /// Share, in [0, 1], of this class's samples predicted as it; 0 if it has none.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
}

/// A misclassified sample, for inspecting what the model gets wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mistake {
    /// Row of the sample in the evaluated set.
    pub index: usize,
    /// Index of the sample's true class.
    pub true_class: usize,
    /// Index of the class the model chose (the most probable).
    pub predicted_class: usize,
    /// Probability given to the predicted class.
    pub confidence: f32,
}

/// Everything [`evaluate`] measures on one set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of evaluated samples.
    pub n: usize,
    /// Share, in [0, 1], of samples whose most probable class is the true one; 0 for an empty set.
    pub accuracy: f64,
    /// Share of samples whose true class is among the [`TOP_K`] most probable;
    /// `None` unless there are more than [`TOP_K`] classes.
    pub top5_accuracy: Option<f64>,
    /// Unweighted mean of per-class recall over classes present in `y`
    /// ("balanced accuracy"), which a model cannot inflate by favouring the
    /// largest classes.
    pub mean_class_recall: f64,
    /// Mean cross-entropy of the true class, see [`log_loss`]; absent (0) in reports written
    /// before it was measured.
    #[serde(default)]
    pub log_loss: f64,
    /// One entry per class, in class-index order.
    pub per_class: Vec<ClassMetrics>,
    /// Counts indexed `[true class][predicted class]`.
    pub confusion: Vec<Vec<usize>>,
    /// Every misclassified sample, most confident first, since confident
    /// mistakes are the ones most likely to be label errors or systematic
    /// confusions worth looking at.
    pub mistakes: Vec<Mistake>,
}

/// Evaluates probabilities `probs` (`[samples, classes]`) against true class
/// indices `y`.
///
/// The prediction is the most probable class; on an exact tie the lowest
/// index wins, and NaN entries are never chosen (a row that is all NaN counts
/// as predicting class 0 with confidence 0). For top-5, a true class tied with
/// the 5th most probable one counts as a hit.
///
/// # Panics
/// If `probs` has a different number of rows than `y` or of columns than
/// `class_names`, or a label is not a valid class index: these are
/// programming errors, not data problems.
pub fn evaluate(probs: ArrayView2<f32>, y: &[usize], class_names: &[String]) -> Evaluation {
    let n_classes = class_names.len();
    assert_eq!(
        probs.nrows(),
        y.len(),
        "evaluate: {} probability rows but {} labels",
        probs.nrows(),
        y.len()
    );
    assert_eq!(
        probs.ncols(),
        n_classes,
        "evaluate: {} probability columns but {} class names",
        probs.ncols(),
        n_classes
    );
    if let Some(&label) = y.iter().find(|&&label| label >= n_classes) {
        panic!("evaluate: label {label} is not below the number of classes ({n_classes})");
    }

    let mut confusion = vec![vec![0usize; n_classes]; n_classes];
    let mut mistakes = Vec::new();
    let mut top_k_hits = 0usize;
    for (index, (row, &true_class)) in probs.rows().into_iter().zip(y).enumerate() {
        let (predicted_class, confidence) = most_probable(row);
        confusion[true_class][predicted_class] += 1;
        if predicted_class != true_class {
            mistakes.push(Mistake {
                index,
                true_class,
                predicted_class,
                confidence,
            });
        }
        let p_true = row[true_class];
        let ranked_above = row.iter().filter(|&&p| p > p_true).count();
        if !p_true.is_nan() && ranked_above < TOP_K {
            top_k_hits += 1;
        }
    }
    mistakes.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));

    let n = y.len();
    let correct: usize = (0..n_classes).map(|c| confusion[c][c]).sum();
    let per_class: Vec<ClassMetrics> = class_names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let hits = confusion[c][c];
            let precision = ratio(hits, predicted);
            let recall = ratio(hits, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                name: name.clone(),
                support,
                precision,
                recall,
                f1,
            }
        })
        .collect();
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|m| m.support > 0).collect();
    let mean_class_recall = if present.is_empty() {
        0.0
    } else {
        present.iter().map(|m| m.recall).sum::<f64>() / present.len() as f64
    };

    Evaluation {
        n,
        accuracy: ratio(correct, n),
        top5_accuracy: (n_classes > TOP_K).then(|| ratio(top_k_hits, n)),
        mean_class_recall,
        log_loss: log_loss(probs, y),
        per_class,
        confusion,
        mistakes,
    }
}

/// Probabilities below this count as it in [`log_loss`]: one confident miss then costs
/// -ln(1e-15) = 34.5 instead of infinity (scikit-learn clips likewise, at its float's epsilon).
pub const LOG_LOSS_FLOOR: f64 = 1e-15;

/// Mean negative log probability of the true class (cross-entropy), each probability clamped
/// to [`LOG_LOSS_FLOOR`, 1] (NaN counts as the floor, so the result is always finite); 0 for an
/// empty set.
///
/// # Panics
/// If `probs` has a different number of rows than `y` or a label is not a column of it.
pub fn log_loss(probs: ArrayView2<f32>, y: &[usize]) -> f64 {
    assert_eq!(
        probs.nrows(),
        y.len(),
        "log_loss: {} rows but {} labels",
        probs.nrows(),
        y.len()
    );
    if y.is_empty() {
        return 0.0;
    }
    let total: f64 = y
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let p = f64::from(probs[[i, label]]);
            -(if p.is_nan() {
                LOG_LOSS_FLOOR
            } else {
                p.clamp(LOG_LOSS_FLOOR, 1.0)
            })
            .ln()
        })
        .sum();
    total / y.len() as f64
}

/// The class [`evaluate`] predicts from a row of probabilities, and its probability: the most
/// probable, the lowest index on a tie, never a NaN (class 0 with 0 when all are NaN).
pub fn most_probable(row: ArrayView1<f32>) -> (usize, f32) {
    let mut best: Option<(usize, f32)> = None;
    for (i, &p) in row.iter().enumerate() {
        if !p.is_nan() && best.is_none_or(|(_, b)| p > b) {
            best = Some((i, p));
        }
    }
    best.unwrap_or((0, 0.0))
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::{array, Array2};

    /// By hand: the true classes get .7, .8 and 0, which the floor turns into 1e-15, so the
    /// mean is (-ln .7 - ln .8 - ln 1e-15) / 3 = (0.35667 + 0.22314 + 34.53878) / 3 = 11.70620.
    /// (scikit-learn's `log_loss` clips at its float's epsilon instead, so it differs there.)
    #[test]
    fn log_loss_is_the_mean_cross_entropy_with_a_floor() {
        let probs = array![[0.7f32, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.0, 0.5]];
        let expected = (-(0.7f64.ln()) - 0.8f64.ln() - 1e-15f64.ln()) / 3.0;
        assert_abs_diff_eq!(log_loss(probs.view(), &[0, 2, 1]), expected, epsilon = 1e-6);
        assert_abs_diff_eq!(expected, 11.70620, epsilon = 1e-5);
        let nan = array![[f32::NAN, 0.5]];
        assert_abs_diff_eq!(log_loss(nan.view(), &[0]), -(1e-15f64.ln()), epsilon = 1e-9);
        assert_eq!(log_loss(Array2::<f32>::zeros((0, 3)).view(), &[]), 0.0);
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    /// Worked by hand. Labels and predictions of the 8 samples:
    ///
    /// ```text
    /// sample     0  1  2  3  4  5  6  7
    /// true       0  0  0  1  1  2  2  2
    /// predicted  0  0  1  1  2  2  2  1
    ///
    /// confusion [true][pred]   pred 0  1  2   support
    ///                 true 0      2  1  0      3
    ///                 true 1      0  1  1      2
    ///                 true 2      0  1  2      3
    ///           predicted count   2  3  3
    ///
    /// class 0: P = 2/2 = 1,   R = 2/3, F1 = 2*1*(2/3) / (1+2/3)     = 0.8
    /// class 1: P = 1/3,       R = 1/2, F1 = 2*(1/3)*(1/2) / (5/6)   = 0.4
    /// class 2: P = 2/3,       R = 2/3, F1 = 2/3
    /// accuracy = (2+1+2)/8 = 0.625
    /// mean class recall = (2/3 + 1/2 + 2/3) / 3 = 11/18
    /// mistakes by confidence: sample 7 (0.9), 2 (0.6), 4 (0.5)
    /// ```
    #[test]
    fn hand_computed_three_class_example() {
        let probs = array![
            [0.7, 0.2, 0.1],
            [0.5, 0.3, 0.2],
            [0.3, 0.6, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.3, 0.5],
            [0.1, 0.1, 0.8],
            [0.2, 0.2, 0.6],
            [0.05, 0.9, 0.05f32],
        ];
        let e = evaluate(probs.view(), &[0, 0, 0, 1, 1, 2, 2, 2], &names(3));
        assert_eq!(e.n, 8);
        assert_eq!(e.confusion, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 1, 2]]);
        assert_abs_diff_eq!(e.accuracy, 0.625);
        assert_eq!(e.top5_accuracy, None);
        assert_abs_diff_eq!(e.mean_class_recall, 11.0 / 18.0, epsilon = 1e-12);
        let expected = [
            (3, 1.0, 2.0 / 3.0, 0.8),
            (2, 1.0 / 3.0, 0.5, 0.4),
            (3, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0),
        ];
        for (m, (support, precision, recall, f1)) in e.per_class.iter().zip(expected) {
            assert_eq!(m.support, support, "{m:?}");
            assert_abs_diff_eq!(m.precision, precision, epsilon = 1e-12);
            assert_abs_diff_eq!(m.recall, recall, epsilon = 1e-12);
            assert_abs_diff_eq!(m.f1, f1, epsilon = 1e-12);
        }
        assert_eq!(e.per_class[1].name, "c1");
        let order: Vec<(usize, usize, usize)> = e
            .mistakes
            .iter()
            .map(|m| (m.index, m.true_class, m.predicted_class))
            .collect();
        assert_eq!(order, vec![(7, 2, 1), (2, 0, 1), (4, 1, 2)]);
        assert_eq!(e.mistakes[0].confidence, 0.9);
    }

    #[test]
    fn never_predicted_and_absent_classes_score_zero_without_nan() {
        // Class 2 is predicted once but never occurs; class 3 never appears
        // at all. Recall is averaged over classes 0 and 1 only: (1/2 + 1) / 2.
        let probs = array![[0.9, 0.0, 0.1, 0.0], [0.1, 0.0, 0.9, 0.0], [0.0, 1.0, 0.0, 0.0f32]];
        let e = evaluate(probs.view(), &[0, 0, 1], &names(4));
        assert_abs_diff_eq!(e.mean_class_recall, 0.75);
        let class2 = &e.per_class[2];
        assert_eq!(
            (class2.support, class2.precision, class2.recall, class2.f1),
            (0, 0.0, 0.0, 0.0)
        );
        let class3 = &e.per_class[3];
        assert_eq!(
            (class3.support, class3.precision, class3.recall, class3.f1),
            (0, 0.0, 0.0, 0.0)
        );
        assert_abs_diff_eq!(e.per_class[0].precision, 1.0);
        assert_abs_diff_eq!(e.per_class[0].recall, 0.5);
    }

    #[test]
    fn top5_counts_the_true_class_among_the_five_most_probable() {
        // True class ranked 5th (hit), 6th (miss), and tied with the 5th (hit).
        let probs = array![
            [0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.05],
            [0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.05],
            [0.30, 0.20, 0.15, 0.11, 0.08, 0.08, 0.08f32]
        ];
        let e = evaluate(probs.view(), &[4, 5, 6], &names(7));
        assert_abs_diff_eq!(e.top5_accuracy.unwrap(), 2.0 / 3.0);
        assert_eq!(e.accuracy, 0.0);
    }

    #[test]
    fn degenerate_inputs_give_finite_numbers_that_survive_json() {
        let empty = evaluate(Array2::<f32>::zeros((0, 7)).view(), &[], &names(7));
        assert_eq!((empty.n, empty.accuracy, empty.top5_accuracy), (0, 0.0, Some(0.0)));
        assert_eq!(empty.mean_class_recall, 0.0);

        let nan = array![[f32::NAN, f32::NAN], [f32::NAN, 0.4]];
        let e = evaluate(nan.view(), &[1, 1], &names(2));
        assert_eq!(e.confusion, vec![vec![0, 0], vec![1, 1]]);
        assert_eq!(e.mistakes[0].confidence, 0.0);

        for evaluation in [empty, e] {
            let json = serde_json::to_string(&evaluation).unwrap();
            assert_eq!(serde_json::from_str::<Evaluation>(&json).unwrap(), evaluation);
        }
    }

    #[test]
    #[should_panic(expected = "2 probability rows but 3 labels")]
    fn mismatched_lengths_panic_with_both_sizes() {
        evaluate(Array2::<f32>::zeros((2, 2)).view(), &[0, 1, 1], &names(2));
    }

    #[test]
    #[should_panic(expected = "label 2 is not below the number of classes (2)")]
    fn out_of_range_labels_panic() {
        evaluate(Array2::<f32>::zeros((1, 2)).view(), &[2], &names(2));
    }
}
