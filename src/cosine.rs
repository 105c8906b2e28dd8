//! What the two cosine classifiers, [`crate::knn`] and [`crate::prototype`], share: scaling
//! embeddings to unit length, and reading their tensors back from a file.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Zip};

use crate::classifier::Tensor;

/// How far from 1 the length of a stored unit row may be before a file is refused: f32
/// rounding of a normalised 1280-d row stays below 1e-6, so this only catches rows that were
/// never normalised.
const UNIT_TOLERANCE: f64 = 1e-3;

/// `x` with each row scaled to unit L2 length, and whether each row was finite.
///
/// A zero row stays zero (it has no direction; its cosine with everything is then 0 rather
/// than NaN). A row holding NaN or infinity is left as it is and flagged `false`, so callers
/// can answer NaN for it instead of a confident-looking guess. Lengths are summed in f64 so
/// that neither very large values (whose squares overflow f32) nor long rows lose precision.
pub(crate) fn normalise_rows(x: ArrayView2<f32>) -> (Array2<f32>, Vec<bool>) {
    let mut out = x.to_owned();
    let mut finite = Vec::with_capacity(x.nrows());
    for mut row in out.rows_mut() {
        let norm = match row.as_slice() {
            Some(values) => squares(values),
            None => squares(&row.to_vec()),
        }
        .sqrt();
        finite.push(norm.is_finite());
        if norm.is_finite() && norm > 0.0 {
            // One f64 reciprocal and a multiplication per value: within an f32 rounding of
            // dividing, and several times faster.
            let scale = 1.0 / norm;
            row.mapv_inplace(|v| (f64::from(v) * scale) as f32);
        }
    }
    (out, finite)
}

/// The sum of squares of `values` in f64, over 8 independent partial sums so that the
/// additions vectorise instead of waiting on each other.
fn squares(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(v) * f64::from(v);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// A classifier's tensors by name, for its `from_tensors`: each read checks presence, shape
/// and finiteness, so a damaged or foreign file gives an error string and never a panic.
pub(crate) struct TensorReader(BTreeMap<String, (Vec<usize>, Vec<f32>)>);

impl TensorReader {
    /// Indexes `tensors` by name.
    pub(crate) fn new(tensors: Vec<Tensor>) -> Self {
        Self(
            tensors
                .into_iter()
                .map(|(name, shape, data)| (name, (shape, data)))
                .collect(),
        )
    }

    /// Takes tensor `name`: its shape and values, checked to be finite and to agree in count.
    fn take(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        let (shape, values) = self
            .0
            .remove(name)
            .ok_or_else(|| format!("tensor {name:?} is missing"))?;
        if shape.iter().product::<usize>() != values.len() {
            return Err(format!(
                "tensor {name:?} has shape {shape:?} but {} values",
                values.len()
            ));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(format!("tensor {name:?} contains non-finite values"));
        }
        Ok((shape, values))
    }

    /// Takes the 2-D tensor `name`.
    pub(crate) fn matrix(&mut self, name: &str) -> Result<Array2<f32>, String> {
        let (shape, values) = self.take(name)?;
        let [rows, cols] = shape[..] else {
            return Err(format!("tensor {name:?} has shape {shape:?}, expected 2 dimensions"));
        };
        Ok(Array2::from_shape_vec((rows, cols), values).expect("the count was checked against the shape"))
    }

    /// Takes the 1-D tensor `name`, which must hold `len` values when `len` is given.
    pub(crate) fn vector(&mut self, name: &str, len: Option<usize>) -> Result<Array1<f32>, String> {
        let (shape, values) = self.take(name)?;
        match (&shape[..], len) {
            ([n], Some(len)) if *n != len => Err(format!("tensor {name:?} has shape {shape:?}, expected [{len}]")),
            ([_], _) => Ok(Array1::from(values)),
            _ => Err(format!("tensor {name:?} has shape {shape:?}, expected 1 dimension")),
        }
    }

    /// Takes the one-value tensor `name` (shape `[1]`) as a whole number of at most `max`.
    pub(crate) fn count(&mut self, name: &str, max: usize) -> Result<usize, String> {
        let value = self.vector(name, Some(1))?[0];
        whole(value, max)
            .ok_or_else(|| format!("tensor {name:?} holds {value}, expected a whole number from 0 to {max}"))
    }

    /// Fails if any tensor was not taken: a file with extra tensors is not one this kind wrote.
    pub(crate) fn finish(self) -> Result<(), String> {
        match self.0.keys().next() {
            Some(name) => Err(format!("unexpected tensor {name:?}")),
            None => Ok(()),
        }
    }
}

/// `value` as a whole number in `0..=max`; `None` if it is not one.
pub(crate) fn whole(value: f32, max: usize) -> Option<usize> {
    // f32 holds every whole number up to 2^24 exactly, far more classes or neighbours than a
    // workspace has; beyond that the stored value could not be trusted anyway.
    let exact = value >= 0.0 && value.fract() == 0.0 && value <= (1u32 << 24) as f32;
    (exact && value as usize <= max).then_some(value as usize)
}

/// Fails unless every row of `rows` has unit length, or is zero (a zero embedding, or a class
/// whose normalised rows cancel out).
pub(crate) fn check_unit_rows(name: &str, rows: ArrayView2<f32>) -> Result<(), String> {
    for (i, row) in rows.rows().into_iter().enumerate() {
        let mut squares = 0.0;
        Zip::from(&row).for_each(|&v| squares += f64::from(v).powi(2));
        let norm = squares.sqrt();
        if norm != 0.0 && (norm - 1.0).abs() > UNIT_TOLERANCE {
            return Err(format!(
                "row {i} of tensor {name:?} has length {norm}, expected 1 (or 0)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rows_become_unit_length_and_zero_or_non_finite_rows_are_kept() {
        let x = array![[3.0f32, 4.0], [0.0, 0.0], [f32::NAN, 1.0], [3e30, -4e30]];
        let (n, finite) = normalise_rows(x.view());
        assert_eq!(finite, [true, true, false, true]);
        assert_eq!(n.row(0).to_vec(), [0.6, 0.8]);
        assert_eq!(n.row(1).to_vec(), [0.0, 0.0]);
        assert!(n[[2, 0]].is_nan());
        // Squares of 3e30 overflow f32; summed in f64 they do not.
        assert!((n[[3, 0]] - 0.6).abs() < 1e-7 && (n[[3, 1]] + 0.8).abs() < 1e-7, "{n}");
    }

    #[test]
    fn whole_numbers_are_read_exactly_and_anything_else_is_refused() {
        assert_eq!(whole(3.0, 5), Some(3));
        assert_eq!(whole(0.0, 5), Some(0));
        assert_eq!(whole(6.0, 5), None);
        assert_eq!(whole(2.5, 5), None);
        assert_eq!(whole(-1.0, 5), None);
        assert_eq!(whole(1e30, usize::MAX), None);
    }
}
