//! Metrics of multi-label predictions, where an image has any number of labels and each label
//! is its own yes/no question: per-label average precision and its mean (mAP), which need no
//! threshold, and at per-label thresholds precision, recall, F1, subset accuracy and Hamming
//! loss. Definitions are scikit-learn's (`average_precision_score`, `hamming_loss`,
//! `accuracy_score` on indicator matrices, `zero_division=0`), so the numbers can be checked there.

use ndarray::{ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// The threshold of a label that has no positive example to tune it on.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// One label's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMetrics {
    /// The label.
    pub name: String,
    /// Images that have it.
    pub support: usize,
    /// Average precision of its scores; `None` when no image has the label (undefined).
    pub average_precision: Option<f64>,
    /// A score at or above this counts as the label.
    pub threshold: f32,
    /// Share of the images given the label that have it; 0 when it is never given.
    pub precision: f64,
    /// Share of the images that have it that were given it; 0 when none has it.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
}

/// Everything [`evaluate`] measures on one multi-label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelEvaluation {
    /// Images evaluated.
    pub n: usize,
    /// Mean of the labels' average precision, over labels that occur (scikit-learn's macro
    /// average leaves the others out too, with a warning).
    pub mean_average_precision: f64,
    /// Share of images whose predicted label set is exactly right.
    pub subset_accuracy: f64,
    /// Share of (image, label) decisions that are wrong.
    pub hamming_loss: f64,
    /// F1 over all (image, label) decisions pooled.
    pub micro_f1: f64,
    /// Unweighted mean of the labels' F1.
    pub macro_f1: f64,
    /// One entry per label, in label order.
    pub per_label: Vec<LabelMetrics>,
}

/// One point of a label's precision-recall curve: the label given to every image scored at or
/// above `threshold`, which is one of the distinct scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The score taken as the threshold.
    pub threshold: f32,
    /// Images given the label that have it.
    pub true_positives: usize,
    /// Images given the label.
    pub taken: usize,
}

/// A label's precision-recall curve as scikit-learn's `precision_recall_curve` builds it: one
/// point per distinct score from the highest down, images with equal scores taken together.
/// Returns the number of images that have the label and the points; `None` when none has it.
pub fn precision_recall_curve(scores: ArrayView1<f32>, truth: ArrayView1<f32>) -> Option<(usize, Vec<CurvePoint>)> {
    let positives = truth.iter().filter(|&&t| t > 0.5).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = Vec::new();
    let (mut true_positives, mut taken) = (0, 0);
    let mut i = 0;
    while i < order.len() {
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]] == threshold {
            true_positives += usize::from(truth[order[i]] > 0.5);
            taken += 1;
            i += 1;
        }
        points.push(CurvePoint {
            threshold,
            true_positives,
            taken,
        });
    }
    Some((positives, points))
}

/// Average precision of `scores` against 0/1 `truth`: `Σ_n (R_n - R_{n-1}) P_n` over the points
/// of [`precision_recall_curve`], as scikit-learn computes it. `None` when `truth` has no
/// positive.
pub fn average_precision(scores: ArrayView1<f32>, truth: ArrayView1<f32>) -> Option<f64> {
    let (positives, points) = precision_recall_curve(scores, truth)?;
    let (mut ap, mut last_recall) = (0.0, 0.0);
    for p in points {
        let recall = p.true_positives as f64 / positives as f64;
        ap += (recall - last_recall) * (p.true_positives as f64 / p.taken as f64);
        last_recall = recall;
    }
    Some(ap)
}

/// Per label, the threshold that maximises its F1 on this set (usually validation): the
/// midpoint between the lowest score taken and the highest left out, so a new image exactly
/// between them is not decided by rounding. Among equal F1s the highest threshold wins (fewer
/// false alarms). A label with no positive keeps [`DEFAULT_THRESHOLD`].
pub fn tune_thresholds(probs: ArrayView2<f32>, truth: ArrayView2<f32>) -> Vec<f32> {
    probs
        .axis_iter(Axis(1))
        .zip(truth.axis_iter(Axis(1)))
        .map(|(scores, truth)| best_threshold(scores, truth))
        .collect()
}

fn best_threshold(scores: ArrayView1<f32>, truth: ArrayView1<f32>) -> f32 {
    let Some((positives, points)) = precision_recall_curve(scores, truth) else {
        return DEFAULT_THRESHOLD;
    };
    let (mut best_f1, mut best) = (-1.0f64, DEFAULT_THRESHOLD);
    for (i, p) in points.iter().enumerate() {
        let f1 = 2.0 * p.true_positives as f64 / (p.taken + positives) as f64;
        if f1 > best_f1 {
            best_f1 = f1;
            best = match points.get(i + 1) {
                Some(next) => (p.threshold + next.threshold) / 2.0,
                None => p.threshold,
            };
        }
    }
    best
}

/// Evaluates scores `probs` (`[images, labels]`, each in [0, 1]) against the 0/1 matrix
/// `truth`, deciding each label at `thresholds` (score ≥ threshold).
///
/// # Panics
/// If the shapes of `probs`, `truth`, `thresholds` and `names` disagree: a programming error.
pub fn evaluate(
    probs: ArrayView2<f32>,
    truth: ArrayView2<f32>,
    thresholds: &[f32],
    names: &[String],
) -> MultiLabelEvaluation {
    assert_eq!(probs.dim(), truth.dim(), "scores and truth must have one shape");
    assert_eq!(probs.ncols(), thresholds.len(), "one threshold per label");
    assert_eq!(probs.ncols(), names.len(), "one name per label");
    let (n, labels) = probs.dim();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let f1 = |p: f64, r: f64| if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
    let mut per_label = Vec::with_capacity(labels);
    let (mut all_tp, mut all_fp, mut all_fn) = (0, 0, 0);
    let mut exact = vec![true; n];
    for (l, name) in names.iter().enumerate() {
        let (scores, truth) = (probs.column(l), truth.column(l));
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        for (i, (&s, &t)) in scores.iter().zip(truth).enumerate() {
            let (predicted, actual) = (s >= thresholds[l], t > 0.5);
            match (predicted, actual) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => {}
            }
            exact[i] &= predicted == actual;
        }
        let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        per_label.push(LabelMetrics {
            name: name.clone(),
            support: tp + fn_,
            average_precision: average_precision(scores, truth),
            threshold: thresholds[l],
            precision,
            recall,
            f1: f1(precision, recall),
        });
        (all_tp, all_fp, all_fn) = (all_tp + tp, all_fp + fp, all_fn + fn_);
    }
    let aps: Vec<f64> = per_label.iter().filter_map(|l| l.average_precision).collect();
    MultiLabelEvaluation {
        n,
        mean_average_precision: if aps.is_empty() {
            0.0
        } else {
            aps.iter().sum::<f64>() / aps.len() as f64
        },
        subset_accuracy: ratio(exact.iter().filter(|&&e| e).count(), n),
        hamming_loss: ratio(all_fp + all_fn, n * labels),
        micro_f1: f1(ratio(all_tp, all_tp + all_fp), ratio(all_tp, all_tp + all_fn)),
        macro_f1: if labels == 0 {
            0.0
        } else {
            per_label.iter().map(|l| l.f1).sum::<f64>() / labels as f64
        },
        per_label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    /// Golden values from scikit-learn 1.9.1:
    /// ```python
    /// y = np.array([[1,0,1],[0,1,1],[1,1,0],[0,0,1],[1,0,0],[0,1,0]])
    /// p = np.array([[0.9,0.2,0.6],[0.3,0.8,0.6],[0.6,0.4,0.2],[0.6,0.1,0.7],[0.4,0.3,0.1],[0.2,0.9,0.5]])
    /// average_precision_score(y, p, average=None)  # [0.80556, 1.0, 1.0], macro 0.93519
    /// yp = (p >= 0.5).astype(int)
    /// hamming_loss(y, yp), accuracy_score(y, yp)   # 0.22222, 0.33333
    /// precision_score / recall_score / f1_score(y, yp, average=None, zero_division=0)
    /// # [0.6667, 1.0, 0.75] / [0.6667, 0.6667, 1.0] / [0.6667, 0.8, 0.85714]
    /// f1_score(y, yp, average="micro"), f1_score(y, yp, average="macro")  # 0.77778, 0.77460
    /// ```
    #[test]
    fn metrics_match_scikit_learn() {
        let truth = array![
            [1., 0., 1.],
            [0., 1., 1.],
            [1., 1., 0.],
            [0., 0., 1.],
            [1., 0., 0.],
            [0., 1., 0.]
        ];
        let probs = array![
            [0.9f32, 0.2, 0.6],
            [0.3, 0.8, 0.6],
            [0.6, 0.4, 0.2],
            [0.6, 0.1, 0.7],
            [0.4, 0.3, 0.1],
            [0.2, 0.9, 0.5]
        ];
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let e = evaluate(probs.view(), truth.view(), &[0.5; 3], &names);
        let ap: Vec<f64> = e.per_label.iter().map(|l| l.average_precision.unwrap()).collect();
        for (got, want) in ap.iter().zip([0.805_555_555_6, 1.0, 1.0]) {
            assert_abs_diff_eq!(*got, want, epsilon = 1e-9);
        }
        assert_abs_diff_eq!(e.mean_average_precision, 0.935_185_185_2, epsilon = 1e-9);
        assert_abs_diff_eq!(e.hamming_loss, 0.222_222_222_2, epsilon = 1e-9);
        assert_abs_diff_eq!(e.subset_accuracy, 1.0 / 3.0, epsilon = 1e-12);
        for (l, (p, r, f)) in e.per_label.iter().zip([
            (2. / 3., 2. / 3., 2. / 3.),
            (1.0, 2. / 3., 0.8),
            (0.75, 1.0, 0.857_142_857_1),
        ]) {
            assert_abs_diff_eq!(l.precision, p, epsilon = 1e-9);
            assert_abs_diff_eq!(l.recall, r, epsilon = 1e-9);
            assert_abs_diff_eq!(l.f1, f, epsilon = 1e-9);
        }
        assert_abs_diff_eq!(e.micro_f1, 0.777_777_777_8, epsilon = 1e-9);
        assert_abs_diff_eq!(e.macro_f1, 0.774_603_174_6, epsilon = 1e-9);
        assert_eq!(e.per_label.iter().map(|l| l.support).collect::<Vec<_>>(), [3, 3, 3]);
    }

    /// Golden values from scikit-learn 1.9.1, read from the highest threshold down:
    /// ```python
    /// precision_recall_curve([1,0,1,0,1,0], [0.9,0.3,0.6,0.6,0.4,0.2])
    /// # precision [0.5, 0.6, 0.75, 0.66667, 1.0, 1.0], recall [1, 1, 1, 0.66667, 0.33333, 0]
    /// # thresholds [0.2, 0.3, 0.4, 0.6, 0.9]
    /// ```
    #[test]
    fn the_precision_recall_curve_matches_scikit_learn() {
        let scores = array![0.9f32, 0.3, 0.6, 0.6, 0.4, 0.2];
        let truth = array![1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0];
        let (positives, points) = precision_recall_curve(scores.view(), truth.view()).unwrap();
        assert_eq!(positives, 3);
        let thresholds: Vec<f32> = points.iter().map(|p| p.threshold).collect();
        assert_eq!(thresholds, [0.9, 0.6, 0.4, 0.3, 0.2]);
        let precision: Vec<f64> = points
            .iter()
            .map(|p| p.true_positives as f64 / p.taken as f64)
            .collect();
        let recall: Vec<f64> = points.iter().map(|p| p.true_positives as f64 / 3.0).collect();
        for (got, want) in precision.iter().zip([1.0, 0.666_666_67, 0.75, 0.6, 0.5]) {
            assert_abs_diff_eq!(*got, want, epsilon = 1e-8);
        }
        for (got, want) in recall.iter().zip([0.333_333_33, 0.666_666_67, 1.0, 1.0, 1.0]) {
            assert_abs_diff_eq!(*got, want, epsilon = 1e-8);
        }
        assert!(precision_recall_curve(scores.view(), (&truth * 0.0).view()).is_none());
    }

    #[test]
    fn a_label_nobody_has_has_no_average_precision_and_is_left_out_of_the_mean() {
        let truth = array![[1., 0.], [0., 0.]];
        let probs = array![[0.8f32, 0.3], [0.1, 0.9]];
        let e = evaluate(probs.view(), truth.view(), &[0.5, 0.5], &["x".into(), "y".into()]);
        assert_eq!(e.per_label[1].average_precision, None);
        assert_abs_diff_eq!(e.mean_average_precision, 1.0);
        assert_eq!(e.per_label[1].precision, 0.0);
        assert_eq!(tune_thresholds(probs.view(), truth.view())[1], DEFAULT_THRESHOLD);
    }

    #[test]
    fn tuned_thresholds_maximise_each_labels_f1_between_scores() {
        // Label 0: the best cut takes 0.9 and 0.7 (F1 = 1), so it lies between 0.7 and 0.4.
        // Label 1: positives at 0.6, 0.3 and 0.2 around a negative 0.5: taking down to 0.2
        // (F1 6/7) beats stopping at 0.6 (1/2) or 0.3 (2/3), so the cut lies between 0.2 and 0.1.
        let truth = array![[1., 1.], [1., 0.], [0., 1.], [0., 1.], [0., 0.]];
        let probs = array![[0.9f32, 0.6], [0.7, 0.5], [0.4, 0.3], [0.3, 0.2], [0.1, 0.1]];
        let t = tune_thresholds(probs.view(), truth.view());
        assert_abs_diff_eq!(t[0], 0.55, epsilon = 1e-6);
        assert_abs_diff_eq!(t[1], 0.15, epsilon = 1e-6);
        let e = evaluate(probs.view(), truth.view(), &t, &["a".into(), "b".into()]);
        assert_eq!(e.per_label[0].f1, 1.0);
        assert_abs_diff_eq!(e.per_label[1].f1, 6.0 / 7.0, epsilon = 1e-9);
    }
}
