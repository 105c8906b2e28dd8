//! The layers of the head: BatchNorm, Dense and inverted Dropout, with Keras' semantics (see
//! the module documentation of [`crate::head`]).

use ndarray::{Array1, Array2};

/// Keras `BatchNormalization` defaults.
pub(super) const BN_EPSILON: f32 = 1e-3;
pub(super) const BN_MOMENTUM: f32 = 0.99;

#[derive(Clone, Debug, PartialEq)]
pub(super) struct BatchNorm {
    pub(super) gamma: Array1<f32>,
    pub(super) beta: Array1<f32>,
    pub(super) moving_mean: Array1<f32>,
    pub(super) moving_variance: Array1<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Dense {
    pub(super) kernel: Array2<f32>,
    pub(super) bias: Array1<f32>,
}

/// BatchNorm -> Dropout -> Dense; every block but the last ends in ReLU.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Block {
    pub(super) bn: BatchNorm,
    pub(super) dense: Dense,
}

impl Block {
    /// The trainable parameters in [`BlockParams`] order.
    pub(super) fn params_mut(&mut self) -> [&mut [f32]; 4] {
        [
            slice_mut(&mut self.bn.gamma),
            slice_mut(&mut self.bn.beta),
            slice_mut(&mut self.dense.kernel),
            slice_mut(&mut self.dense.bias),
        ]
    }
}

// Owned arrays are always in standard layout, so these never fail.
pub(super) fn slice<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>) -> &[f32] {
    a.as_slice().expect("owned arrays are contiguous")
}

pub(super) fn slice_mut<D: ndarray::Dimension>(a: &mut ndarray::Array<f32, D>) -> &mut [f32] {
    a.as_slice_mut().expect("owned arrays are contiguous")
}

/// Inverted dropout with rate p: a value is kept when its random word is at least `threshold`
/// (probability 1 - p) and then scaled by 1 / (1 - p).
#[derive(Clone, Copy)]
pub(super) struct Dropout {
    pub(super) threshold: u32,
    pub(super) scale: f32,
}

impl Dropout {
    pub(super) fn new(p: f32) -> Option<Self> {
        (p > 0.0).then(|| Self {
            threshold: (f64::from(p) * 4_294_967_296.0) as u32,
            scale: 1.0 / (1.0 - p),
        })
    }

    pub(super) fn factor(self, bits: u32) -> f32 {
        if bits >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }
}
