//! Nearest class mean ("prototype") with cosine similarity: each class is summarised by the
//! mean direction of its training embeddings, and an image scores each class by how closely
//! it points that way.
//!
//! Like [`crate::knn`] it needs no iterative training and has little to tune, but it keeps one
//! row per class instead of the whole training set, so it is small, fast and less swayed by a
//! single mislabelled image; it is the classic few-shot baseline. It cannot be exported as one
//! ONNX graph with the backbone ([`Classifier::dense_chain`] is `None`, and `headstart export`
//! refuses it): its input must first be scaled to unit length, which a
//! [`DenseChain`] cannot express.
//!
//! # What it computes
//!
//! - Every training row is L2-normalised (a zero row stays zero), so that each image counts
//!   by its direction only, as in the cosine it is scored with.
//! - The prototype of class `c` is `(1 - s) * mean_c + s * mean_all`: the mean of its
//!   normalised rows, pulled by the shrinkage `s` towards the mean of all normalised rows.
//!   A class with few images has a noisy mean; shrinking it towards the global mean (as in
//!   shrunken-centroid classifiers) trades that noise for a little bias. Then each prototype is
//!   L2-normalised again.
//! - `predict_proba` is the softmax over classes of [`SCALE`]` * cos(x, prototype_c)`. A
//!   temperature is needed because cosines lie in [-1, 1]: a plain softmax of them would be
//!   nearly uniform (at most e² ≈ 7.4 between the likeliest and the least likely class), so
//!   the probabilities would say little and the log loss would be poor however good the
//!   ranking. 10 is a common choice in cosine and prototype classifiers. It only changes the
//!   probabilities, never which class is likeliest, but the log loss depends on it.
//! - A class absent from the training labels has no prototype (its stored row is zero) and
//!   gets probability exactly 0, as the baseline gives its unseen classes. A query holding NaN
//!   or infinity gets NaN probabilities.

use ndarray::{Array1, Array2, ArrayView2, Zip};
use serde::{Deserialize, Serialize};

use crate::classifier::{check_set, Classifier, DenseChain, SetError, Tensor};
use crate::cosine::{check_unit_rows, normalise_rows, whole, TensorReader};

/// The format marker of prototype files (see [`crate::artifact`]).
pub const FORMAT_VALUE: &str = "prototype-cosine/1";

/// The fixed temperature: class scores are `SCALE * cos(x, prototype)`; see the
/// [module documentation](self) for why.
pub const SCALE: f32 = 10.0;

/// Hyper-parameters of the nearest class mean; checked by [`fit`](Self::fit). Serialisable so
/// a saved model can record how it was fitted; missing fields deserialise to their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrototypeParams {
    /// How far each class mean is pulled towards the mean of all rows, from 0 (not at all,
    /// the default) to 1 (every prototype the same, so every class equally likely).
    pub shrinkage: f32,
}

impl Default for PrototypeParams {
    fn default() -> Self {
        Self { shrinkage: 0.0 }
    }
}

/// Why the nearest class mean could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum PrototypeError {
    /// `shrinkage` is outside [0, 1] or NaN.
    #[error("`shrinkage` must be between 0 and 1, got {0}: 0 keeps the class means, 1 replaces them all by the overall mean")]
    InvalidShrinkage(f32),
    /// No training rows were given.
    #[error("the training set is empty: pass at least one embedding row")]
    EmptyTrainingSet,
    /// The embeddings or labels are unusable (shape, non-finite values, label range).
    #[error(transparent)]
    Set(#[from] SetError),
}

impl PrototypeError {
    /// The [`PrototypeParams`] field this error is about, as its message names it in
    /// backticks; `None` for errors about the data.
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            PrototypeError::InvalidShrinkage(_) => Some("shrinkage"),
            _ => None,
        }
    }
}

impl PrototypeParams {
    /// Fits one prototype per class on `x`/`y` (class indices in `0..n_classes`).
    pub fn fit(&self, x: ArrayView2<f32>, y: &[usize], n_classes: usize) -> Result<Prototype, PrototypeError> {
        let s = self.shrinkage;
        if !(0.0..=1.0).contains(&s) {
            return Err(PrototypeError::InvalidShrinkage(s));
        }
        check_set("training", x, y, n_classes)?;
        if x.nrows() == 0 {
            return Err(PrototypeError::EmptyTrainingSet);
        }
        let (rows, _) = normalise_rows(x);
        // Sums in f64: a class of many thousand rows would otherwise lose digits.
        let mut sums = Array2::<f64>::zeros((n_classes, x.ncols()));
        let mut counts = vec![0usize; n_classes];
        for (row, &label) in rows.rows().into_iter().zip(y) {
            counts[label] += 1;
            Zip::from(sums.row_mut(label))
                .and(&row)
                .for_each(|sum, &v| *sum += f64::from(v));
        }
        let overall = sums.sum_axis(ndarray::Axis(0)) / x.nrows() as f64;
        let mut prototypes = Array2::<f32>::zeros((n_classes, x.ncols()));
        for ((mut prototype, sum), &count) in prototypes.rows_mut().into_iter().zip(sums.rows()).zip(&counts) {
            if count == 0 {
                continue;
            }
            let (keep, pull) = (1.0 - f64::from(s), f64::from(s));
            let mean: Array1<f64> = Zip::from(&sum)
                .and(&overall)
                .map_collect(|&total, &all| keep * total / count as f64 + pull * all);
            let norm = mean.dot(&mean).sqrt();
            if norm > 0.0 {
                Zip::from(&mut prototype)
                    .and(&mean)
                    .for_each(|p, &m| *p = (m / norm) as f32);
            }
        }
        Ok(Prototype {
            prototypes,
            counts: Array1::from_iter(counts.iter().map(|&c| c as f32)),
        })
    }
}

/// A fitted nearest class mean: one unit-length prototype per class. See the
/// [module documentation](self) for what it computes.
#[derive(Clone, Debug, PartialEq)]
pub struct Prototype {
    /// `[n_classes, features]`; zero for a class absent from training.
    prototypes: Array2<f32>,
    /// Training rows per class, as f32 as saved; 0 marks an absent class.
    counts: Array1<f32>,
}

impl Prototype {
    /// The prototypes, `[n_classes, features]`, each of unit length (zero for a class absent
    /// from training, or whose normalised rows cancel out).
    pub fn prototypes(&self) -> ArrayView2<'_, f32> {
        self.prototypes.view()
    }

    /// Rebuilds it from its tensors (`prototypes` `[n_classes, features]`, `counts`
    /// `[n_classes]`); the error says what is wrong with them.
    pub fn from_tensors(tensors: Vec<Tensor>) -> Result<Prototype, String> {
        let mut read = TensorReader::new(tensors);
        let prototypes = read.matrix("prototypes")?;
        let counts = read.vector("counts", Some(prototypes.nrows()))?;
        read.finish()?;
        if let Some(c) = counts.iter().find(|&&c| whole(c, usize::MAX).is_none()) {
            return Err(format!("tensor \"counts\" holds {c}, expected whole numbers >= 0"));
        }
        if counts.iter().all(|&c| c == 0.0) {
            return Err("tensor \"counts\" is all zero: no class was trained".to_owned());
        }
        check_unit_rows("prototypes", prototypes.view())?;
        if let Some(class) =
            (0..counts.len()).find(|&c| counts[c] == 0.0 && prototypes.row(c).iter().any(|&v| v != 0.0))
        {
            return Err(format!("class {class} has no training rows but a non-zero prototype"));
        }
        Ok(Prototype { prototypes, counts })
    }
}

impl Classifier for Prototype {
    fn n_features(&self) -> usize {
        self.prototypes.ncols()
    }

    fn on_features(&self) -> &dyn Classifier {
        self
    }

    fn n_classes(&self) -> usize {
        self.prototypes.nrows()
    }

    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.prototypes.ncols(),
            "prototype expects {} features per embedding, got {}",
            self.prototypes.ncols(),
            x.ncols()
        );
        let (queries, finite) = normalise_rows(x);
        let mut probs = queries.dot(&self.prototypes.t());
        for (mut row, ok) in probs.rows_mut().into_iter().zip(finite) {
            if !ok {
                row.fill(f32::NAN);
                continue;
            }
            // Logits are at most SCALE, so exp cannot overflow; subtracting the largest keeps
            // the softmax exact to f32 rounding anyway.
            let max = Zip::from(&row)
                .and(&self.counts)
                .fold(
                    f32::NEG_INFINITY,
                    |m, &cos, &count| if count > 0.0 { m.max(SCALE * cos) } else { m },
                );
            Zip::from(&mut row).and(&self.counts).for_each(|p, &count| {
                *p = if count > 0.0 { (SCALE * *p - max).exp() } else { 0.0 };
            });
            let total = row.sum();
            row /= total;
        }
        probs
    }

    /// `None`: the input must be scaled to unit length first, which a [`DenseChain`] cannot
    /// express.
    fn dense_chain(&self) -> Option<DenseChain> {
        None
    }

    fn format(&self) -> Option<&'static str> {
        Some(FORMAT_VALUE)
    }

    fn tensors(&self) -> Vec<Tensor> {
        vec![
            (
                "prototypes".to_owned(),
                self.prototypes.shape().to_vec(),
                self.prototypes.iter().copied().collect(),
            ),
            ("counts".to_owned(), vec![self.counts.len()], self.counts.to_vec()),
        ]
    }
}

#[cfg(test)]
#[path = "prototype_tests.rs"]
mod tests;
