//! What every kind of classifier offers the commands that use one: `eval`, `predict` and
//! `export` take a `Box<dyn Classifier>` from [`crate::artifact::load`] and never need to know
//! whether it is the MLP head, the linear baseline or a later kind. Also the checks and helpers
//! that every kind's training shares.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// A named f32 tensor as a classifier file stores it: name, shape, row-major values.
pub type Tensor = (String, Vec<usize>, Vec<f32>);

/// A trained classifier: embeddings in, class probabilities out.
pub trait Classifier: std::fmt::Debug + Send + Sync {
    /// Features per embedding it takes.
    fn n_features(&self) -> usize;

    /// Classes it tells apart, in the order of its card's class list.
    fn n_classes(&self) -> usize;

    /// Class probabilities, `[rows, n_classes]`, for each row of `x`.
    ///
    /// # Panics
    /// If `x` does not have [`n_features`](Self::n_features) columns.
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32>;

    /// The classifier as plain ONNX operators, for `export` to append to the backbone; `None`
    /// for a kind that cannot be one ONNX graph.
    fn dense_chain(&self) -> Option<DenseChain>;

    /// The format marker of its files (see [`crate::artifact`]); `None` for the head, whose
    /// files predate the marker.
    fn format(&self) -> Option<&'static str>;

    /// Its weights, as saved.
    fn tensors(&self) -> Vec<Tensor>;

    /// What its tensors alone do not say about it, saved in its file's metadata under the key
    /// given; `None` for most kinds.
    fn structure(&self) -> Option<(&'static str, String)> {
        None
    }

    /// For a classifier that takes the feature map at a cut inside the backbone rather than the
    /// backbone's features (a fine-tuned top, [`crate::finetune`]): the cut's tensor name and
    /// the map's size. Its rows are then cached maps, NCHW.
    fn cut(&self) -> Option<(&str, crate::finetune::Geometry)> {
        None
    }

    /// The classifier to apply to the features of the backbone with
    /// [`backbone_weights`](Self::backbone_weights) put in: itself, but for a fine-tuned top,
    /// whose head then takes over.
    fn on_features(&self) -> &dyn Classifier;

    /// Backbone weights that training changed, by initializer name, for `export` and
    /// `predict` to put in the backbone in place of the originals.
    fn backbone_weights(&self) -> Vec<(String, Vec<f32>)> {
        Vec::new()
    }
}

/// A classifier in inference mode as a chain of Dense layers and a final activation, each
/// layer's output the next one's input.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseChain {
    /// At least one layer.
    pub layers: Vec<DenseLayer>,
    /// Turns the last layer's output into probabilities.
    pub activation: Activation,
}

/// How the last layer's outputs become probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// One class per image: the probabilities sum to 1.
    Softmax,
    /// Any number of labels per image: each output is its own probability.
    Sigmoid,
}

/// One Dense layer of a [`DenseChain`]: `y = x · weight + bias`, then ReLU if `relu`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseLayer {
    /// `[in, out]`; ONNX `Gemm` takes it as B with `transB = 0`.
    pub weight: Array2<f32>,
    /// `[out]`.
    pub bias: Array1<f32>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// What is wrong with a set of embeddings and labels handed to a classifier's training.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// Rows and labels do not pair up.
    #[error("the {set} set has {rows} embeddings but {labels} labels: they must pair up one to one")]
    LabelCount {
        /// `training` or `validation`.
        set: &'static str,
        /// Embedding rows.
        rows: usize,
        /// Labels given.
        labels: usize,
    },
    /// A label is not a class index.
    #[error("label {label} at row {row} of the {set} set is out of range: there are {n_classes} classes, labelled 0 to {}", n_classes.saturating_sub(1))]
    LabelOutOfRange {
        /// `training` or `validation`.
        set: &'static str,
        /// The row of the label.
        row: usize,
        /// The label.
        label: usize,
        /// The number of classes.
        n_classes: usize,
    },
    /// A multi-label target matrix is not one row per embedding and one column per label.
    #[error("the {set} set's label matrix is {rows} x {cols}, but there are {expected_rows} embeddings and {expected_cols} labels")]
    TargetShape {
        /// `training` or `validation`.
        set: &'static str,
        /// Rows of the matrix.
        rows: usize,
        /// Columns of the matrix.
        cols: usize,
        /// Embeddings in the set.
        expected_rows: usize,
        /// Labels.
        expected_cols: usize,
    },
    /// A multi-label target is not 0 or 1.
    #[error("the {set} set's label matrix holds {value} at row {row}, column {col}: each entry must be 0 or 1")]
    TargetValue {
        /// `training` or `validation`.
        set: &'static str,
        /// The row.
        row: usize,
        /// The column.
        col: usize,
        /// The value.
        value: f32,
    },
    /// An embedding holds NaN or infinity.
    #[error("the {set} set holds a NaN or infinite value at row {row}, column {col}: re-extract the embeddings")]
    NonFinite {
        /// `training` or `validation`.
        set: &'static str,
        /// The row.
        row: usize,
        /// The column.
        col: usize,
    },
}

/// The labels of a set: one class per row, or a 0/1 matrix with one column per label.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Each row's class index.
    Classes(&'a [usize]),
    /// `[rows, labels]`, 1 where the row has the label.
    Sets(ArrayView2<'a, f32>),
}

impl Targets<'_> {
    /// Whether these are multi-label targets.
    pub fn is_multi_label(&self) -> bool {
        matches!(self, Targets::Sets(_))
    }
}

/// Checks one data set: one label per row, labels in `0..n_classes`, finite values.
pub fn check_set(set: &'static str, x: ArrayView2<f32>, y: &[usize], n_classes: usize) -> Result<(), SetError> {
    check_targets(set, x, Targets::Classes(y), n_classes)
}

/// [`check_set`] for either kind of targets: a multi-label matrix must be `[rows, n_classes]`
/// of 0s and 1s.
pub fn check_targets(set: &'static str, x: ArrayView2<f32>, y: Targets, n_classes: usize) -> Result<(), SetError> {
    match y {
        Targets::Classes(y) => {
            if x.nrows() != y.len() {
                return Err(SetError::LabelCount {
                    set,
                    rows: x.nrows(),
                    labels: y.len(),
                });
            }
            if let Some((row, &label)) = y.iter().enumerate().find(|(_, &l)| l >= n_classes) {
                return Err(SetError::LabelOutOfRange {
                    set,
                    row,
                    label,
                    n_classes,
                });
            }
        }
        Targets::Sets(t) => {
            if t.dim() != (x.nrows(), n_classes) {
                return Err(SetError::TargetShape {
                    set,
                    rows: t.nrows(),
                    cols: t.ncols(),
                    expected_rows: x.nrows(),
                    expected_cols: n_classes,
                });
            }
            if let Some(((row, col), &value)) = t.indexed_iter().find(|(_, &v)| v != 0.0 && v != 1.0) {
                return Err(SetError::TargetValue { set, row, col, value });
            }
        }
    }
    // A branch-free pass over the values first: it vectorises, where looking for the first bad
    // index does not (14 ms -> ~2 ms on 3888 x 1280), and almost every set is all finite.
    let all_finite = match x.as_slice_memory_order() {
        Some(values) => values.iter().fold(true, |ok, v| ok & v.is_finite()),
        None => x.iter().all(|v| v.is_finite()),
    };
    if !all_finite {
        let ((row, col), _) = x
            .indexed_iter()
            .find(|(_, v)| !v.is_finite())
            .expect("some value is not finite");
        return Err(SetError::NonFinite { set, row, col });
    }
    Ok(())
}

/// Index of the first largest value; NaN is never chosen (an all-NaN row gives 0).
pub fn argmax(row: ArrayView1<f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_largest_and_skips_nan() {
        assert_eq!(argmax(ndarray::aview1(&[0.1, 0.7, 0.7, 0.2])), 1);
        assert_eq!(argmax(ndarray::aview1(&[f32::NAN, 0.3, 0.5])), 2);
        assert_eq!(argmax(ndarray::aview1(&[f32::NAN, f32::NAN])), 0);
    }
}
