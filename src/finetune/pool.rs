//! Global average pooling of channels-last maps: `y[n, c] = mean over the pixels of x[n, ·, c]`.

/// `y` (`[n, c]`) for `n` maps of `pixels` pixels.
pub(super) fn forward(x: &[f32], pixels: usize, c: usize, y: &mut [f32]) {
    let scale = 1.0 / pixels as f32;
    for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(pixels * c)) {
        y.fill(0.0);
        for px in x.chunks_exact(c) {
            y.iter_mut().zip(px).for_each(|(y, &v)| *y += v);
        }
        y.iter_mut().for_each(|y| *y *= scale);
    }
}

/// `dx += dy / pixels` at every pixel.
pub(super) fn backward(dy: &[f32], pixels: usize, c: usize, dx: &mut [f32]) {
    let scale = 1.0 / pixels as f32;
    for (dx, g) in dx.chunks_exact_mut(pixels * c).zip(dy.chunks_exact(c)) {
        for px in dx.chunks_exact_mut(c) {
            px.iter_mut().zip(g).for_each(|(d, &g)| *d += g * scale);
        }
    }
}
