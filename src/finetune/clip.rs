//! ReLU and ReLU6 (ONNX `Relu`, and `Clip` with bounds): `y = min(max(x, lo), hi)`. The
//! gradient passes where the input lies strictly inside the bounds, as PyTorch's `relu` and
//! `hardtanh` pass it. Both passes run over chunks on all cores: they read and write whole
//! maps, and alone on one core they would cost a third of the matrix products' time.

use rayon::prelude::*;

/// Values per parallel chunk: large enough that a chunk costs more than handing it out.
const CHUNK: usize = 1 << 14;

/// `y = clamp(x, lo, hi)`.
pub(super) fn forward(x: &[f32], lo: f32, hi: f32, y: &mut [f32]) {
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.max(lo).min(hi));
    });
}

/// `dx += dy` where `lo < x < hi`.
pub(super) fn backward(x: &[f32], dy: &[f32], lo: f32, hi: f32, dx: &mut [f32]) {
    dx.par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK).zip(x.par_chunks(CHUNK)))
        .for_each(|(dx, (dy, x))| {
            for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                if x > lo && x < hi {
                    *d += g;
                }
            }
        });
}
