//! Likely label errors, in the spirit of confident learning (Northcutt, Jiang and Chuang 2021,
//! the method of cleanlab): an image is suspect when classifiers that never saw it disagree
//! with its label.
//!
//! Two kinds of evidence, averaged class by class:
//! - **Out-of-fold probabilities.** The images are cut into [`LABEL_FOLDS`] group-aware,
//!   stratified folds (the [`crate::folds`] scheme, over every split); a linear softmax head
//!   fitted on the other folds gives the probabilities of each held-out image.
//! - **Neighbour votes.** The image's nearest other images vote for their classes, each with its
//!   cosine similarity (negative ones not at all).
//!
//! An image is reported when the averaged evidence favours another class; the list is ranked
//! by the averaged probability of the given class (its self-confidence), lowest first, and the
//! favoured class is the suggestion. A linear head and the neighbours err in different ways (the
//! head by the class boundaries, the neighbours by local clusters), so their mean ranks injected
//! label flips better than either alone (BENCHMARKS.md, "Data audit").

use ndarray::{Array2, ArrayView2};

use super::LabelIssue;
use crate::cache::Entry;
use crate::classifier::argmax;
use crate::dataset::{Sample, Split};
use crate::folds;
use crate::head::HeadParams;

/// Folds of the out-of-fold predictions.
pub const LABEL_FOLDS: usize = 5;

/// The out-of-fold head: linear softmax, a few epochs of Adam. On flowers5 more epochs fit the
/// flipped labels of the training folds too, and rank flips no better.
fn out_of_fold_head() -> HeadParams {
    HeadParams::default().hidden(Vec::new()).epochs(10).batch_size(64)
}

/// The issues found, and what could not be checked.
pub(crate) struct Found {
    pub(crate) issues: Vec<LabelIssue>,
    pub(crate) notes: Vec<String>,
}

/// Ranks the images of `entries` (rows of `x`) whose labels the evidence disagrees with.
pub(crate) fn issues(
    classes: &[String],
    entries: &[Entry],
    x: ArrayView2<f32>,
    neighbours: &[Vec<(f32, usize)>],
    folds: usize,
) -> Found {
    let mut notes = Vec::new();
    let y: Vec<usize> = entries.iter().map(|e| e.sample.class).collect();
    let mut counts = vec![0usize; classes.len()];
    for &c in &y {
        counts[c] += 1;
    }
    for (name, &count) in classes.iter().zip(&counts) {
        if count == 1 {
            notes.push(format!(
                "class `{name}` has one image: its label cannot be checked against others of its class"
            ));
        }
    }
    let checkable = counts.iter().filter(|&&c| c >= 2).count();
    if checkable < 2 {
        notes.push("label issues need at least two classes with two or more images each".to_owned());
        return Found {
            issues: Vec::new(),
            notes,
        };
    }
    let judged: Vec<bool> = y.iter().map(|&c| counts[c] >= 2).collect();
    let folded = match out_of_fold(classes, entries, x, &y, &judged, folds) {
        Ok(p) => p,
        Err(why) => {
            notes.push(format!("label issues were not looked for: {why}"));
            return Found {
                issues: Vec::new(),
                notes,
            };
        }
    };
    let votes = neighbour_votes(neighbours, &y, classes.len());

    let mut issues = Vec::new();
    for (i, entry) in entries.iter().enumerate().filter(|(i, _)| judged[*i]) {
        let combined = (&folded.row(i) + &votes.row(i)) / 2.0;
        let suggested = argmax(combined.view());
        let given = y[i];
        if suggested == given || !combined.iter().all(|p| p.is_finite()) {
            continue;
        }
        issues.push(LabelIssue {
            path: entry.sample.path.clone(),
            split: entry.sample.split,
            given: classes[given].clone(),
            suggested: classes[suggested].clone(),
            self_confidence: folded[[i, given]],
            suggested_probability: folded[[i, suggested]],
            neighbour_agreement: votes[[i, given]],
            score: combined[given],
        });
    }
    issues.sort_by(|a, b| a.score.total_cmp(&b.score).then_with(|| a.path.cmp(&b.path)));
    Found { issues, notes }
}

/// Each judged image's class probabilities from a head fitted on the folds it is not in; rows
/// of images not judged stay zero.
fn out_of_fold(
    classes: &[String],
    entries: &[Entry],
    x: ArrayView2<f32>,
    y: &[usize],
    judged: &[bool],
    k: usize,
) -> Result<Array2<f32>, String> {
    // Every split takes part: a wrong label in the test split misleads as much as one in train.
    let samples: Vec<Sample> = entries
        .iter()
        .zip(judged)
        .filter(|(_, &j)| j)
        .map(|(e, _)| Sample {
            split: Split::Train,
            ..e.sample.clone()
        })
        .collect();
    let rows: Vec<usize> = (0..entries.len()).filter(|&i| judged[i]).collect();
    let assignment = folds::assign(classes, &samples, k.min(samples.len())).map_err(|e| e.to_string())?;
    let mut probs = Array2::zeros((x.nrows(), classes.len()));
    for fold in 0..assignment.k {
        let train: Vec<usize> = assignment.training(fold).into_iter().map(|i| rows[i]).collect();
        let held: Vec<usize> = assignment.held_out(fold).into_iter().map(|i| rows[i]).collect();
        if train.is_empty() || held.is_empty() {
            continue;
        }
        let fitted = out_of_fold_head()
            .fit_rows(x, y, &train, classes.len(), None, &mut |_| {})
            .map_err(|e| e.to_string())?;
        let held_x = x.select(ndarray::Axis(0), &held);
        let p = fitted.head.predict_proba(held_x.view());
        for (row, &i) in p.rows().into_iter().zip(&held) {
            probs.row_mut(i).assign(&row);
        }
    }
    Ok(probs)
}

/// Each image's neighbours' votes as class proportions: a neighbour votes its cosine similarity
/// (clamped at 0) for its class. An image whose neighbours all vote 0 gets equal proportions.
fn neighbour_votes(neighbours: &[Vec<(f32, usize)>], y: &[usize], n_classes: usize) -> Array2<f32> {
    let mut votes = Array2::zeros((neighbours.len(), n_classes));
    for (i, list) in neighbours.iter().enumerate() {
        let mut row = votes.row_mut(i);
        for &(cos, j) in list {
            row[y[j]] += cos.max(0.0);
        }
        let total: f32 = row.sum();
        if total > 0.0 {
            row /= total;
        } else {
            row.fill(1.0 / n_classes as f32);
        }
    }
    votes
}
