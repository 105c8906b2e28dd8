//! Dense k×k convolution, stride 1, padded to keep the size (a ResNet bottleneck's 3×3), over
//! channels-last maps, as a matrix product on the unfolded input ("im2col"):
//! `cols[M, k·k·I]` holds every pixel's k×k neighbourhood, and `Y[M, O] = cols · W'ᵀ + b` with
//! ONNX's weight `[O, I, k, k]` reordered to `W'[O, k, k, I]` to match the columns.

use super::pointwise;

/// Shape of a convolution's maps and filter.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    pub(super) images: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) inputs: usize,
    pub(super) outputs: usize,
    pub(super) kernel: usize,
    pub(super) pad: usize,
}

impl Shape {
    fn pixels(&self) -> usize {
        self.images * self.height * self.width
    }

    fn taps(&self) -> usize {
        self.kernel * self.kernel
    }

    /// For each (pixel, tap): the input pixel it reads, or `None` in the padding.
    fn source(&self, pixel: usize, tap: usize) -> Option<usize> {
        let per_image = self.height * self.width;
        let (n, hw) = (pixel / per_image, pixel % per_image);
        let (h, w) = (hw / self.width, hw % self.width);
        let ih = (h + tap / self.kernel).checked_sub(self.pad)?;
        let iw = (w + tap % self.kernel).checked_sub(self.pad)?;
        (ih < self.height && iw < self.width).then_some(n * per_image + ih * self.width + iw)
    }
}

/// ONNX `[O, I, k, k]` to `[O, k, k, I]`, or back with `back`.
pub(super) fn reorder(w: &[f32], shape: Shape, back: bool) -> Vec<f32> {
    let (i, t) = (shape.inputs, shape.taps());
    let mut out = vec![0.0; w.len()];
    for o in 0..shape.outputs {
        for c in 0..i {
            for tap in 0..t {
                let (onnx, ours) = (o * i * t + c * t + tap, o * t * i + tap * i + c);
                match back {
                    false => out[ours] = w[onnx],
                    true => out[onnx] = w[ours],
                }
            }
        }
    }
    out
}

fn unfold(x: &[f32], shape: Shape) -> Vec<f32> {
    let (i, t) = (shape.inputs, shape.taps());
    let mut cols = vec![0.0f32; shape.pixels() * t * i];
    for (pixel, row) in cols.chunks_exact_mut(t * i).enumerate() {
        for (tap, col) in row.chunks_exact_mut(i).enumerate() {
            if let Some(src) = shape.source(pixel, tap) {
                col.copy_from_slice(&x[src * i..][..i]);
            }
        }
    }
    cols
}

/// `y` for the maps `x`; `w` is the reordered weight `[O, k·k·I]`: a 1x1 convolution of the
/// unfolded input.
pub(super) fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, shape: Shape, y: &mut [f32]) {
    let (m, k, o) = (shape.pixels(), shape.taps() * shape.inputs, shape.outputs);
    pointwise::forward(&unfold(x, shape), w, b, m, k, o, y);
}

/// Gradients of [`forward`]: `dw` (reordered) and `db` are written, `dx` is added to, folding
/// the unfolded input's gradient back onto the pixels it came from.
pub(super) fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    shape: Shape,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
) {
    let (m, k, o, i) = (shape.pixels(), shape.taps() * shape.inputs, shape.outputs, shape.inputs);
    let cols = unfold(x, shape);
    let mut dcols = dx.as_ref().map(|_| vec![0.0f32; m * k]);
    pointwise::backward(&cols, w, dy, (m, k, o), dw, db, dcols.as_deref_mut());
    if let (Some(dx), Some(dcols)) = (dx, dcols) {
        for (pixel, row) in dcols.chunks_exact(k).enumerate() {
            for (tap, g) in row.chunks_exact(i).enumerate() {
                if let Some(src) = shape.source(pixel, tap) {
                    dx[src * i..][..i].iter_mut().zip(g).for_each(|(d, &g)| *d += g);
                }
            }
        }
    }
}
