//! Adam as Keras writes it, with decoupled weight decay (see the module documentation of
//! [`crate::head`]).

use ndarray::{Array1, Array2};

use super::layers::{slice, slice_mut, Block};
use super::Head;

/// Keras `Adam` defaults.
pub(super) const BETA1: f32 = 0.9;
pub(super) const BETA2: f32 = 0.999;
pub(super) const ADAM_EPSILON: f32 = 1e-7;

/// Gradients or Adam moments of one block, shaped like its trainable parameters.
#[derive(Clone, Debug)]
pub(super) struct BlockParams {
    pub(super) gamma: Array1<f32>,
    pub(super) beta: Array1<f32>,
    pub(super) kernel: Array2<f32>,
    pub(super) bias: Array1<f32>,
}

impl BlockParams {
    pub(super) fn zeros(block: &Block) -> Self {
        Self {
            gamma: Array1::zeros(block.bn.gamma.len()),
            beta: Array1::zeros(block.bn.beta.len()),
            kernel: Array2::zeros(block.dense.kernel.raw_dim()),
            bias: Array1::zeros(block.dense.bias.len()),
        }
    }

    pub(super) fn slices(&self) -> [&[f32]; 4] {
        [
            slice(&self.gamma),
            slice(&self.beta),
            slice(&self.kernel),
            slice(&self.bias),
        ]
    }

    pub(super) fn slices_mut(&mut self) -> [&mut [f32]; 4] {
        [
            slice_mut(&mut self.gamma),
            slice_mut(&mut self.beta),
            slice_mut(&mut self.kernel),
            slice_mut(&mut self.bias),
        ]
    }
}

/// Which of the four parameters of a block weight decay applies to: the kernel only.
pub(super) const DECAYED: [bool; 4] = [false, false, true, false];

/// Adam state; the update rule is in the module documentation.
pub(super) struct Adam {
    pub(super) learning_rate: f32,
    pub(super) weight_decay: f32,
    pub(super) step: i32,
    pub(super) m: Vec<BlockParams>,
    pub(super) v: Vec<BlockParams>,
}

impl Adam {
    pub(super) fn new(head: &Head, learning_rate: f32, weight_decay: f32) -> Self {
        let zeros: Vec<BlockParams> = head.blocks.iter().map(BlockParams::zeros).collect();
        Self {
            learning_rate,
            weight_decay,
            step: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }

    pub(super) fn update(&mut self, head: &mut Head, grads: &[BlockParams]) {
        self.step = self.step.saturating_add(1);
        let alpha = step_size(self.learning_rate, self.step);
        let shrink = 1.0 - self.learning_rate * self.weight_decay;
        for (((block, g), m), v) in head
            .blocks
            .iter_mut()
            .zip(grads)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            let params = block.params_mut().into_iter().zip(g.slices());
            let moments = m.slices_mut().into_iter().zip(v.slices_mut());
            for (((w, g), (m, v)), decayed) in params.zip(moments).zip(DECAYED) {
                if decayed && self.weight_decay > 0.0 {
                    w.iter_mut().for_each(|w| *w *= shrink);
                }
                adam_step(w, g, m, v, alpha);
            }
        }
    }
}

/// The bias-corrected step size of step `step` (1-based) at learning rate `learning_rate`.
pub(crate) fn step_size(learning_rate: f32, step: i32) -> f32 {
    learning_rate * (1.0 - BETA2.powi(step)).sqrt() / (1.0 - BETA1.powi(step))
}

/// One Adam step, element by element. Compiled for AVX2 and AVX-512 as well and chosen at run
/// time: the square root and division dominate, and the default x86-64 target has only SSE2
/// (0.25-0.3 -> 0.19 s of 5 epochs on flowers5 with AVX2). Splitting it across the cores was
/// slower (0.40 s): the matrix products' worker threads still hold the other core.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn adam_step(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], alpha: f32) {
    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v) {
        *m += (g - *m) * (1.0 - BETA1);
        *v += (g * g - *v) * (1.0 - BETA2);
        *w -= *m * alpha / (v.sqrt() + ADAM_EPSILON);
    }
}
