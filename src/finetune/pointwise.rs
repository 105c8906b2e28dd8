//! 1×1 convolution over channels-last maps: with the `M = N·H·W` pixels as rows it is one
//! matrix product, `Y[M, O] = X[M, I] · Wᵀ + b`, W being ONNX's `[O, I, 1, 1]` read as `[O, I]`.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

/// `y = x·Wᵀ + b` for `m` pixels of `i` channels into `o` channels.
pub(super) fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, m: usize, i: usize, o: usize, y: &mut [f32]) {
    let x = ArrayView2::from_shape((m, i), x).expect("x is m x i");
    let w = ArrayView2::from_shape((o, i), w).expect("w is o x i");
    let mut y = ArrayViewMut2::from_shape((m, o), y).expect("y is m x o");
    let beta = match b {
        Some(b) => {
            y.assign(&ArrayView1::from(b).broadcast((m, o)).expect("bias of o values"));
            1.0
        }
        None => 0.0,
    };
    general_mat_mul(1.0, &x, &w.t(), beta, &mut y);
}

/// Gradients of [`forward`] for `dy`: `dW = dyᵀ·x` and `db = Σ_rows dy` are written, `dx += dy·W`
/// is added (a map may feed several layers).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    (m, i, o): (usize, usize, usize),
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
) {
    let x = ArrayView2::from_shape((m, i), x).expect("x is m x i");
    let w = ArrayView2::from_shape((o, i), w).expect("w is o x i");
    let dy = ArrayView2::from_shape((m, o), dy).expect("dy is m x o");
    let mut dw = ArrayViewMut2::from_shape((o, i), dw).expect("dw is o x i");
    general_mat_mul(1.0, &dy.t(), &x, 0.0, &mut dw);
    if let Some(db) = db {
        ArrayViewMut1::from(db).assign(&dy.sum_axis(Axis(0)));
    }
    if let Some(dx) = dx {
        let mut dx = ArrayViewMut2::from_shape((m, i), dx).expect("dx is m x i");
        general_mat_mul(1.0, &dy, &w, 1.0, &mut dx);
    }
}
