//! ReLU and ReLU6 (ONNX `Relu`, and `Clip` with bounds): `y = min(max(x, lo), hi)`. The
//! gradient passes where the input lies strictly inside the bounds, as PyTorch's `relu` and
//! `hardtanh` pass it.

/// `y = clamp(x, lo, hi)`.
pub(super) fn forward(x: &[f32], lo: f32, hi: f32, y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.max(lo).min(hi));
}

/// `dx += dy` where `lo < x < hi`.
pub(super) fn backward(x: &[f32], dy: &[f32], lo: f32, hi: f32, dx: &mut [f32]) {
    for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
        if x > lo && x < hi {
            *d += g;
        }
    }
}
