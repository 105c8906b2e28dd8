//! The head's weights as named tensors, the form [`crate::artifact`] saves and loads.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2};

use super::layers::{BatchNorm, Block, Dense};
use super::{Head, HeadError};
use crate::classifier::Tensor;

impl Head {
    /// The weights as named tensors in Keras terms, block k of the network giving
    /// `bn{k}.gamma`, `bn{k}.beta`, `bn{k}.moving_mean`, `bn{k}.moving_variance` (each `[in]`),
    /// `dense{k}.kernel` (`[in, out]`, row-major) and `dense{k}.bias` (`[out]`).
    pub fn tensors(&self) -> Vec<Tensor> {
        let mut out = Vec::with_capacity(6 * self.blocks.len());
        for (k, Block { bn, dense }) in self.blocks.iter().enumerate() {
            for (name, v) in [
                ("gamma", &bn.gamma),
                ("beta", &bn.beta),
                ("moving_mean", &bn.moving_mean),
                ("moving_variance", &bn.moving_variance),
            ] {
                out.push((format!("bn{k}.{name}"), vec![v.len()], v.to_vec()));
            }
            out.push((
                format!("dense{k}.kernel"),
                dense.kernel.shape().to_vec(),
                dense.kernel.iter().copied().collect(),
            ));
            out.push((format!("dense{k}.bias"), vec![dense.bias.len()], dense.bias.to_vec()));
        }
        out
    }

    /// Rebuilds a head from the tensors of [`tensors`](Self::tensors), in any order. The
    /// architecture comes from the shapes: blocks run while `dense{k}.kernel` exists, each
    /// kernel's rows matching the previous kernel's columns.
    pub fn from_tensors(tensors: Vec<Tensor>) -> Result<Head, HeadError> {
        let mut by_name = BTreeMap::new();
        for (name, shape, data) in tensors {
            if shape.iter().product::<usize>() != data.len() {
                return Err(HeadError::Tensors(format!(
                    "`{name}` has shape {shape:?} but {} values",
                    data.len()
                )));
            }
            if data.iter().any(|v| !v.is_finite()) {
                return Err(HeadError::Tensors(format!("`{name}` holds a NaN or infinite value")));
            }
            if by_name.insert(name.clone(), (shape, data)).is_some() {
                return Err(HeadError::Tensors(format!("`{name}` appears twice")));
            }
        }

        let mut blocks = Vec::new();
        let mut n_in_expected: Option<usize> = None;
        loop {
            let k = blocks.len();
            let kernel_name = format!("dense{k}.kernel");
            let Some((shape, _)) = by_name.get(&kernel_name) else {
                break;
            };
            let (n_in, n_out) = match shape[..] {
                [n_in, n_out] if n_in > 0 && n_out > 0 => (n_in, n_out),
                _ => {
                    return Err(HeadError::Tensors(format!(
                        "`{kernel_name}` has shape {shape:?}; expected [inputs, outputs]"
                    )))
                }
            };
            if let Some(previous) = n_in_expected.filter(|&e| e != n_in) {
                return Err(HeadError::Tensors(format!(
                    "`{kernel_name}` takes {n_in} inputs but the layer before gives {previous}"
                )));
            }
            let mut vector = |part: &str, len: usize| take_tensor(&mut by_name, part, &[len]).map(Array1::from);
            let bn = BatchNorm {
                gamma: vector(&format!("bn{k}.gamma"), n_in)?,
                beta: vector(&format!("bn{k}.beta"), n_in)?,
                moving_mean: vector(&format!("bn{k}.moving_mean"), n_in)?,
                moving_variance: vector(&format!("bn{k}.moving_variance"), n_in)?,
            };
            let bias = vector(&format!("dense{k}.bias"), n_out)?;
            let kernel = take_tensor(&mut by_name, &kernel_name, &[n_in, n_out])?;
            let kernel = Array2::from_shape_vec((n_in, n_out), kernel)
                .map_err(|e| HeadError::Tensors(format!("`{kernel_name}`: {e}")))?;
            if bn.moving_variance.iter().any(|&v| v < 0.0) {
                return Err(HeadError::Tensors(format!(
                    "`bn{k}.moving_variance` has a negative value"
                )));
            }
            blocks.push(Block {
                bn,
                dense: Dense { kernel, bias },
            });
            n_in_expected = Some(n_out);
        }
        if blocks.is_empty() {
            return Err(HeadError::Tensors("`dense0.kernel` is missing".into()));
        }
        if let Some(name) = by_name.keys().next() {
            return Err(HeadError::Tensors(format!(
                "unexpected tensor `{name}` (a head with {} blocks has no such tensor)",
                blocks.len()
            )));
        }
        Ok(Head {
            blocks,
            multi_label: false,
        })
    }
}

pub(super) fn take_tensor(
    by_name: &mut BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, HeadError> {
    match by_name.remove(name) {
        Some((s, data)) if s == shape => Ok(data),
        Some((s, _)) => Err(HeadError::Tensors(format!(
            "`{name}` has shape {s:?}, expected {shape:?}"
        ))),
        None => Err(HeadError::Tensors(format!("`{name}` is missing"))),
    }
}
