//! Fine-tuning the top of the backbone: the layers after a cut, rebuilt from the ONNX graph as
//! trainable layers and trained together with the head on feature maps cached at the cut
//! (`extract --cut`, [`crate::cache::maps`]), so the frozen part of the network never runs
//! again and a fine-tune costs about what the top's own arithmetic costs.
//!
//! # Layers
//! The ops a top may hold, each in its own file with its forward and backward pass: 1×1
//! convolution ([`pointwise`]), depthwise k×k ([`depthwise`]), dense k×k with stride 1
//! ([`conv`]), ReLU and ReLU6 ([`clip`]), residual `Add`, batch norm in inference mode
//! ([`batch_norm`]) and global average pooling ([`pool`]); `Flatten`, `Reshape` and `Squeeze`
//! of a pooled map are no-ops. Anything else after a cut is refused, naming the op.
//!
//! Maps are held channels-last, one row of C values per pixel, so a 1×1 convolution over a
//! batch is a single matrix product of `N·H·W` rows (the shape in which a CPU GEMM runs near its
//! peak) and a depthwise filter runs over contiguous channels. Cached maps are ONNX Runtime's
//! NCHW, and are transposed as each batch is read.
//!
//! # Training
//! The head is the same Keras-recipe head as `train-head`'s ([`crate::head::Stepper`]); its
//! input gradient flows into the top, whose weights take Adam steps (the head's Keras-style
//! rule) at their own learning rate, `--backbone-lr`, 1e-4 by default as in the usual recipe.
//! Batch norm in the top keeps the backbone's statistics unless `--batch-norm train` asks for
//! training mode ([`BatchNormMode`]). With one seed the result is the same bit for bit: every
//! reduction runs in a fixed order.

mod batch_norm;
mod build;
mod clip;
mod conv;
mod depthwise;
mod model;
mod pointwise;
mod pool;
mod train;

use serde::{Deserialize, Serialize};

pub use crate::cache::maps::Geometry;

pub use build::{build, cached_top, BuildError};
pub use model::{Finetuned, FORMAT_VALUE, TOP_KEY};
pub use train::{fit, fit_observed, FinetuneError, FinetuneParams, FittedTop, MapRows};

/// A trainable tensor of the top, named as the backbone's initializer it came from, so that
/// `export` can put it back in its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// The initializer's name in the backbone.
    pub name: String,
    /// Its ONNX shape.
    pub dims: Vec<usize>,
    /// Its values, row-major in the ONNX layout.
    pub values: Vec<f32>,
}

/// One layer of the top, reading and writing maps by their slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// 1×1 convolution; `weight` is a [`Param`] index, as are the others below.
    Pointwise {
        /// Input slot.
        x: usize,
        /// Output slot.
        y: usize,
        /// `[O, I, 1, 1]`.
        weight: usize,
        /// `[O]`.
        bias: Option<usize>,
    },
    /// Depthwise k×k convolution, stride 1.
    Depthwise {
        /// Input slot.
        x: usize,
        /// Output slot.
        y: usize,
        /// `[C, 1, k, k]`.
        weight: usize,
        /// `[C]`.
        bias: Option<usize>,
        /// k.
        kernel: usize,
        /// Zero padding on every side, (k - 1) / 2.
        pad: usize,
    },
    /// Dense k×k convolution, stride 1.
    Conv {
        /// Input slot.
        x: usize,
        /// Output slot.
        y: usize,
        /// `[O, I, k, k]`.
        weight: usize,
        /// `[O]`.
        bias: Option<usize>,
        /// k.
        kernel: usize,
        /// Zero padding on every side, (k - 1) / 2.
        pad: usize,
    },
    /// `y = min(max(x, min), max)`: ReLU without `max`, ReLU6 with 6.
    Clip {
        /// Input slot.
        x: usize,
        /// Output slot.
        y: usize,
        /// Lower bound.
        min: f32,
        /// Upper bound, if any.
        max: Option<f32>,
    },
    /// `y = a + b`, a residual connection.
    Add {
        /// First input slot.
        a: usize,
        /// Second input slot.
        b: usize,
        /// Output slot.
        y: usize,
    },
    /// Batch norm with trainable scale and shift, in inference mode unless the fine-tune asks
    /// for training mode.
    BatchNorm {
        /// Input slot.
        x: usize,
        /// Output slot.
        y: usize,
        /// γ, `[C]`.
        scale: usize,
        /// β, `[C]`.
        shift: usize,
        /// The moving mean.
        mean: Vec<f32>,
        /// The moving variance.
        var: Vec<f32>,
        /// ε.
        epsilon: f32,
        /// The weight of the old moving statistics in an update, ONNX's `momentum`.
        #[serde(default = "default_momentum")]
        momentum: f32,
        /// The backbone's initializers of the moving mean and variance, where `export` puts
        /// them back (absent in files written before training mode existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stats: Option<[String; 2]>,
    },
    /// Global average pooling to one pixel.
    Pool {
        /// Input slot.
        x: usize,
        /// Output slot.
        y: usize,
    },
}

/// ONNX's default `momentum` of `BatchNormalization`, PyTorch's 0.1 seen from the other side.
fn default_momentum() -> f32 {
    0.9
}

/// How the top's batch norm layers treat their statistics while a fine-tune trains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BatchNormMode {
    /// Normalise by the backbone's moving statistics, which stay as they are (Keras' advice
    /// for fine-tuning); only the scale and shift learn.
    #[default]
    Frozen,
    /// Normalise each batch by its own statistics and update the moving ones, as a network in
    /// training mode does; inference then uses the updated moving statistics.
    Train,
}

impl BatchNormMode {
    /// Whether this is the default, which settings files leave out.
    pub fn is_frozen(&self) -> bool {
        *self == BatchNormMode::Frozen
    }
}

impl Op {
    /// The op's output slot.
    fn output(&self) -> usize {
        match *self {
            Op::Pointwise { y, .. }
            | Op::Depthwise { y, .. }
            | Op::Conv { y, .. }
            | Op::Clip { y, .. }
            | Op::Add { y, .. }
            | Op::BatchNorm { y, .. }
            | Op::Pool { y, .. } => y,
        }
    }

    /// The params the op trains.
    fn params(&self) -> Vec<usize> {
        match self {
            Op::Pointwise { weight, bias, .. } | Op::Depthwise { weight, bias, .. } | Op::Conv { weight, bias, .. } => {
                std::iter::once(*weight).chain(*bias).collect()
            }
            Op::BatchNorm { scale, shift, .. } => vec![*scale, *shift],
            _ => Vec::new(),
        }
    }
}

/// The trainable layers after a cut: maps of [`input`](Top::input) in, pooled features out.
#[derive(Clone, Debug, PartialEq)]
pub struct Top {
    /// The cut's tensor name in the backbone.
    pub cut: String,
    /// The size of every map slot; slot 0 is the cut's map.
    pub slots: Vec<Geometry>,
    /// The layers, in an order that computes each input before it is read.
    pub ops: Vec<Op>,
    /// The trainable tensors.
    pub params: Vec<Param>,
    /// The slot holding the features, pooled to one pixel.
    pub output: usize,
}

/// Buffers of one pass through the top: every slot's maps (channels-last) and, after a
/// backward pass, their gradients. Reused from batch to batch.
#[derive(Default)]
pub struct Pass {
    maps: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    /// Per op, the batch statistics a batch norm in training mode normalised by.
    batch_stats: Vec<Option<batch_norm::BatchStats>>,
    images: usize,
    output: usize,
}

impl Top {
    /// The map it takes.
    pub fn input(&self) -> Geometry {
        self.slots[0]
    }

    /// Width of the features it gives.
    pub fn n_features(&self) -> usize {
        self.slots[self.output].channels
    }

    /// Runs `images` channels-last maps (taken from `input`) through the layers in inference
    /// mode; the features are then [`Pass::features`].
    pub fn forward(&self, input: Vec<f32>, images: usize, pass: &mut Pass) {
        self.forward_in(input, images, pass, BatchNormMode::Frozen)
    }

    /// [`forward`](Self::forward) as a training step runs it: with `BatchNormMode::Train`, batch
    /// norm normalises by the batch's own statistics, which [`backward`](Self::backward) then
    /// differentiates through and [`update_moving_stats`](Self::update_moving_stats) folds into
    /// the moving ones.
    pub fn forward_in(&self, input: Vec<f32>, images: usize, pass: &mut Pass, batch_norm: BatchNormMode) {
        assert_eq!(
            input.len(),
            images * self.input().len(),
            "input must hold the images' maps"
        );
        pass.images = images;
        pass.output = self.output;
        pass.maps.resize_with(self.slots.len(), Vec::new);
        pass.maps[0] = input;
        pass.batch_stats.clear();
        pass.batch_stats.resize(self.ops.len(), None);
        for (index, op) in self.ops.iter().enumerate() {
            let y_slot = op.output();
            let mut y = std::mem::take(&mut pass.maps[y_slot]);
            y.resize(images * self.slots[y_slot].len(), 0.0);
            let maps = &pass.maps;
            match op {
                &Op::Pointwise { x, weight, bias, .. } => {
                    let (i, o) = (self.slots[x].channels, self.slots[y_slot].channels);
                    let m = images * self.slots[x].pixels();
                    let b = bias.map(|b| self.params[b].values.as_slice());
                    pointwise::forward(&maps[x], &self.params[weight].values, b, m, i, o, &mut y);
                }
                &Op::Depthwise {
                    x,
                    weight,
                    bias,
                    kernel,
                    pad,
                    ..
                } => {
                    let shape = self.depthwise_shape(x, kernel, pad);
                    let wt = depthwise::transpose(&self.params[weight].values, shape.channels, kernel * kernel, false);
                    let b = bias.map(|b| self.params[b].values.as_slice());
                    depthwise::forward(&maps[x], &wt, b, shape, &mut y);
                }
                &Op::Conv {
                    x,
                    weight,
                    bias,
                    kernel,
                    pad,
                    y: out,
                } => {
                    let shape = self.conv_shape(x, out, images, kernel, pad);
                    let w = conv::reorder(&self.params[weight].values, shape, false);
                    let b = bias.map(|b| self.params[b].values.as_slice());
                    conv::forward(&maps[x], &w, b, shape, &mut y);
                }
                &Op::Clip { x, min, max, .. } => clip::forward(&maps[x], min, max.unwrap_or(f32::INFINITY), &mut y),
                &Op::Add { a, b, .. } => {
                    y.iter_mut()
                        .zip(maps[a].iter().zip(&maps[b]))
                        .for_each(|(y, (&a, &b))| *y = a + b);
                }
                Op::BatchNorm {
                    x,
                    scale,
                    shift,
                    mean,
                    var,
                    epsilon,
                    ..
                } => {
                    let (gamma, beta) = (&self.params[*scale].values, &self.params[*shift].values);
                    let batch = (batch_norm == BatchNormMode::Train)
                        .then(|| batch_norm::BatchStats::of(&maps[*x], self.slots[*x].channels));
                    let (mean, var) = match &batch {
                        Some(b) => (&b.mean, &b.var),
                        None => (mean, var),
                    };
                    let stats = batch_norm::Stats {
                        mean,
                        var,
                        epsilon: *epsilon,
                    };
                    batch_norm::forward(&maps[*x], gamma, beta, stats, &mut y);
                    pass.batch_stats[index] = batch;
                }
                &Op::Pool { x, .. } => pool::forward(&maps[x], self.slots[x].pixels(), self.slots[x].channels, &mut y),
            }
            pass.maps[y_slot] = y;
        }
    }

    /// Moves every batch norm's moving statistics toward those the last
    /// [`forward_in`](Self::forward_in) in training mode normalised its batch by.
    pub fn update_moving_stats(&mut self, pass: &Pass) {
        for (op, batch) in self.ops.iter_mut().zip(&pass.batch_stats) {
            if let (
                Op::BatchNorm {
                    mean, var, momentum, ..
                },
                Some(batch),
            ) = (op, batch)
            {
                batch.update(mean, var, *momentum);
            }
        }
    }

    /// Whether any layer is a batch norm, which training mode would change.
    pub fn has_batch_norm(&self) -> bool {
        self.ops.iter().any(|op| matches!(op, Op::BatchNorm { .. }))
    }

    /// Gradients of every param after [`forward`](Self::forward), for `grad` = ∂L/∂features
    /// (`[images, n_features]`), written into `param_grads` (one per param, its size).
    pub fn backward(&self, pass: &mut Pass, grad: &[f32], param_grads: &mut [Vec<f32>]) {
        let images = pass.images;
        assert_eq!(grad.len(), images * self.n_features(), "one gradient per feature");
        pass.grads.resize_with(self.slots.len(), Vec::new);
        for (slot, g) in pass.grads.iter_mut().enumerate() {
            g.clear();
            if slot != 0 {
                g.resize(images * self.slots[slot].len(), 0.0);
            }
        }
        pass.grads[self.output].copy_from_slice(grad);
        for (index, op) in self.ops.iter().enumerate().rev() {
            let y_slot = op.output();
            let dy = std::mem::take(&mut pass.grads[y_slot]);
            let maps = &pass.maps;
            // Slot 0 is the cached map, which does not learn: its gradient is never formed.
            let grads = &mut pass.grads;
            let dx = |slot: usize, grads: &mut Vec<Vec<f32>>| -> Option<Vec<f32>> {
                (slot != 0).then(|| std::mem::take(&mut grads[slot]))
            };
            match op {
                &Op::Pointwise { x, weight, bias, .. } => {
                    let (i, o) = (self.slots[x].channels, self.slots[y_slot].channels);
                    let m = images * self.slots[x].pixels();
                    let mut gx = dx(x, grads);
                    let (gw, gb) = weight_and_bias(param_grads, weight, bias);
                    pointwise::backward(
                        &maps[x],
                        &self.params[weight].values,
                        &dy,
                        (m, i, o),
                        gw,
                        gb,
                        gx.as_deref_mut(),
                    );
                    restore(grads, x, gx);
                }
                &Op::Depthwise {
                    x,
                    weight,
                    bias,
                    kernel,
                    pad,
                    ..
                } => {
                    let shape = self.depthwise_shape(x, kernel, pad);
                    let taps = kernel * kernel;
                    let wt = depthwise::transpose(&self.params[weight].values, shape.channels, taps, false);
                    let mut gx = dx(x, grads);
                    let mut gwt = vec![0.0; wt.len()];
                    let (gw, gb) = weight_and_bias(param_grads, weight, bias);
                    depthwise::backward(&maps[x], &wt, &dy, shape, &mut gwt, gb, gx.as_deref_mut());
                    gw.copy_from_slice(&depthwise::transpose(&gwt, shape.channels, taps, true));
                    restore(grads, x, gx);
                }
                &Op::Conv {
                    x,
                    weight,
                    bias,
                    kernel,
                    pad,
                    y: out,
                } => {
                    let shape = self.conv_shape(x, out, images, kernel, pad);
                    let w = conv::reorder(&self.params[weight].values, shape, false);
                    let mut gx = dx(x, grads);
                    let mut gw_ours = vec![0.0; w.len()];
                    let (gw, gb) = weight_and_bias(param_grads, weight, bias);
                    conv::backward(&maps[x], &w, &dy, shape, &mut gw_ours, gb, gx.as_deref_mut());
                    gw.copy_from_slice(&conv::reorder(&gw_ours, shape, true));
                    restore(grads, x, gx);
                }
                &Op::Clip { x, min, max, .. } => {
                    if let Some(mut gx) = dx(x, grads) {
                        clip::backward(&maps[x], &dy, min, max.unwrap_or(f32::INFINITY), &mut gx);
                        grads[x] = gx;
                    }
                }
                &Op::Add { a, b, .. } => {
                    for slot in [a, b] {
                        if let Some(mut g) = dx(slot, grads) {
                            g.iter_mut().zip(&dy).for_each(|(g, &d)| *g += d);
                            grads[slot] = g;
                        }
                    }
                }
                Op::BatchNorm {
                    x,
                    scale,
                    shift,
                    mean,
                    var,
                    epsilon,
                    ..
                } => {
                    let batch = pass.batch_stats.get(index).and_then(Option::as_ref);
                    let (mean, var) = match batch {
                        Some(b) => (&b.mean, &b.var),
                        None => (mean, var),
                    };
                    let stats = batch_norm::Stats {
                        mean,
                        var,
                        epsilon: *epsilon,
                    };
                    let mut gx = dx(*x, grads);
                    let (gamma_grad, beta_grad) = weight_and_bias(param_grads, *scale, Some(*shift));
                    let beta_grad = beta_grad.expect("a shift is given");
                    let gamma = &self.params[*scale].values;
                    batch_norm::backward(
                        &maps[*x],
                        gamma,
                        &dy,
                        stats,
                        batch.is_some(),
                        gamma_grad,
                        beta_grad,
                        gx.as_deref_mut(),
                    );
                    restore(grads, *x, gx);
                }
                &Op::Pool { x, .. } => {
                    if let Some(mut gx) = dx(x, grads) {
                        pool::backward(&dy, self.slots[x].pixels(), self.slots[x].channels, &mut gx);
                        grads[x] = gx;
                    }
                }
            }
            pass.grads[y_slot] = dy;
        }
    }

    /// The name of the first param, in layer order, holding NaN or infinity.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.ops
            .iter()
            .flat_map(Op::params)
            .map(|p| &self.params[p])
            .find(|p| !p.values.iter().all(|v| v.is_finite()))
            .map(|p| p.name.as_str())
    }

    /// Features of `images` maps given NCHW, as cached, computed `chunk` images at a time.
    pub fn features_nchw(&self, maps: &[f32], images: usize) -> Vec<f32> {
        const CHUNK: usize = 64;
        let len = self.input().len();
        let mut out = Vec::with_capacity(images * self.n_features());
        let mut pass = Pass::default();
        for chunk in maps[..images * len].chunks(CHUNK * len) {
            let n = chunk.len() / len;
            let mut input = vec![0.0; chunk.len()];
            to_channels_last(chunk, self.input(), &mut input);
            self.forward(input, n, &mut pass);
            out.extend_from_slice(pass.features());
        }
        out
    }

    fn depthwise_shape(&self, x: usize, kernel: usize, pad: usize) -> depthwise::Shape {
        let g = self.slots[x];
        depthwise::Shape {
            height: g.height,
            width: g.width,
            channels: g.channels,
            kernel,
            pad,
        }
    }

    fn conv_shape(&self, x: usize, y: usize, images: usize, kernel: usize, pad: usize) -> conv::Shape {
        let g = self.slots[x];
        conv::Shape {
            images,
            height: g.height,
            width: g.width,
            inputs: g.channels,
            outputs: self.slots[y].channels,
            kernel,
            pad,
        }
    }
}

impl Pass {
    /// The features the last [`Top::forward`] computed, `[images, n_features]` row-major.
    pub fn features(&self) -> &[f32] {
        self.maps.get(self.output).map_or(&[], |m| m.as_slice())
    }
}

/// Copies maps from NCHW (ONNX Runtime's layout, as cached) to channels-last.
pub fn to_channels_last(nchw: &[f32], g: Geometry, out: &mut [f32]) {
    let (c, p) = (g.channels, g.pixels());
    for (src, dst) in nchw.chunks_exact(g.len()).zip(out.chunks_exact_mut(g.len())) {
        for ch in 0..c {
            for px in 0..p {
                dst[px * c + ch] = src[ch * p + px];
            }
        }
    }
}

/// The gradient buffers of a weight and its optional bias, borrowed together.
fn weight_and_bias(grads: &mut [Vec<f32>], weight: usize, bias: Option<usize>) -> (&mut [f32], Option<&mut [f32]>) {
    match bias {
        None => (&mut grads[weight], None),
        Some(b) => {
            assert_ne!(weight, b, "a weight is not its own bias");
            let (lo, hi) = grads.split_at_mut(weight.max(b));
            let (first, second) = (&mut lo[weight.min(b)], &mut hi[0]);
            match weight < b {
                true => (first, Some(second)),
                false => (second, Some(first)),
            }
        }
    }
}

fn restore(grads: &mut [Vec<f32>], slot: usize, g: Option<Vec<f32>>) {
    if let Some(g) = g {
        grads[slot] = g;
    }
}

#[cfg(test)]
mod tests;
