//! Batch normalisation in inference mode over channels-last maps: the moving statistics stay
//! frozen (a fine-tuned batch of 32 would estimate them worse than the backbone's training
//! did), while the scale γ and shift β learn.
//! `y = γ·(x - μ)/sqrt(σ² + ε) + β`.

/// The frozen statistics of one layer.
#[derive(Clone, Copy)]
pub(super) struct Stats<'a> {
    pub(super) mean: &'a [f32],
    pub(super) var: &'a [f32],
    pub(super) epsilon: f32,
}

impl Stats<'_> {
    fn inv_std(&self) -> Vec<f32> {
        self.var.iter().map(|&v| 1.0 / (v + self.epsilon).sqrt()).collect()
    }
}

/// `y` for pixels `x` of `gamma.len()` channels.
pub(super) fn forward(x: &[f32], gamma: &[f32], beta: &[f32], stats: Stats, y: &mut [f32]) {
    let inv = stats.inv_std();
    let c = gamma.len();
    for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for ch in 0..c {
            y[ch] = gamma[ch] * (x[ch] - stats.mean[ch]) * inv[ch] + beta[ch];
        }
    }
}

/// `dγ = Σ dy·x̂` and `dβ = Σ dy` are written; `dx += dy·γ/sqrt(σ² + ε)` is added.
pub(super) fn backward(
    x: &[f32],
    gamma: &[f32],
    dy: &[f32],
    stats: Stats,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let inv = stats.inv_std();
    let c = gamma.len();
    dgamma.fill(0.0);
    dbeta.fill(0.0);
    for (g, x) in dy.chunks_exact(c).zip(x.chunks_exact(c)) {
        for ch in 0..c {
            dgamma[ch] += g[ch] * (x[ch] - stats.mean[ch]) * inv[ch];
            dbeta[ch] += g[ch];
        }
    }
    if let Some(dx) = dx {
        for (d, g) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)) {
            for ch in 0..c {
                d[ch] += g[ch] * gamma[ch] * inv[ch];
            }
        }
    }
}
