//! Batch normalisation over channels-last maps, `y = γ·(x - μ)/sqrt(σ² + ε) + β`, where the
//! scale γ and shift β learn.
//!
//! By default the statistics μ, σ² are the backbone's moving ones, frozen: a fine-tuned batch of
//! 32 would estimate them worse than the backbone's training did, and the Keras guide keeps
//! batch norm in inference mode when fine-tuning for the same reason. In training mode
//! (`--batch-norm train`) each batch is normalised by its own mean and biased variance over all
//! its pixels, the gradient flows through those statistics too, and the moving ones follow the
//! batches as PyTorch's `BatchNorm2d` updates them (the unbiased variance, weighted by ONNX's
//! `momentum`), so that inference, export and prediction use what training saw.

/// The statistics one forward pass normalises by.
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

/// The mean and biased variance over the pixels of `x`, channel by channel, of one batch.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct BatchStats {
    pub(super) mean: Vec<f32>,
    pub(super) var: Vec<f32>,
    /// Pixels the statistics are over.
    pub(super) count: usize,
}

impl BatchStats {
    /// The statistics of `x`, `channels` values per pixel, summed in f64 in a fixed order.
    pub(super) fn of(x: &[f32], channels: usize) -> Self {
        let count = x.len() / channels;
        let mut sum = vec![0.0f64; channels];
        for px in x.chunks_exact(channels) {
            sum.iter_mut().zip(px).for_each(|(s, &v)| *s += f64::from(v));
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
        let mut squares = vec![0.0f64; channels];
        for px in x.chunks_exact(channels) {
            for ((s, &v), &m) in squares.iter_mut().zip(px).zip(&mean) {
                let d = f64::from(v) - m;
                *s += d * d;
            }
        }
        BatchStats {
            mean: mean.iter().map(|&m| m as f32).collect(),
            var: squares.iter().map(|&s| (s / count as f64) as f32).collect(),
            count,
        }
    }

    /// Moves the moving statistics toward these: `moving = momentum·moving + (1 - momentum)·batch`,
    /// with the batch's unbiased variance, as ONNX's `momentum` and PyTorch's update define it.
    pub(super) fn update(&self, mean: &mut [f32], var: &mut [f32], momentum: f32) {
        let unbiased = self.count as f32 / (self.count.max(2) - 1) as f32;
        for (m, &b) in mean.iter_mut().zip(&self.mean) {
            *m = momentum * *m + (1.0 - momentum) * b;
        }
        for (v, &b) in var.iter_mut().zip(&self.var) {
            *v = momentum * *v + (1.0 - momentum) * b * unbiased;
        }
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

/// `dγ = Σ dy·x̂` and `dβ = Σ dy` are written; `dx` is added to. With frozen statistics
/// `dx += dy·γ/sqrt(σ² + ε)`; with the batch's own (`from_batch`), whose mean and variance
/// depend on every pixel, `dx += γ/sqrt(σ² + ε)·(dy - (dβ + x̂·dγ)/M)` over its M pixels.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    x: &[f32],
    gamma: &[f32],
    dy: &[f32],
    stats: Stats,
    from_batch: bool,
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
    let Some(dx) = dx else { return };
    let pixels = (x.len() / c) as f32;
    for ((d, g), x) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)).zip(x.chunks_exact(c)) {
        for ch in 0..c {
            let mut through = g[ch];
            if from_batch {
                let x_hat = (x[ch] - stats.mean[ch]) * inv[ch];
                through -= (dbeta[ch] + x_hat * dgamma[ch]) / pixels;
            }
            d[ch] += through * gamma[ch] * inv[ch];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values from PyTorch 2.15 (float64), one training-mode step of `BatchNorm2d`:
    //
    //     import torch
    //     N, C, H, W = 2, 3, 2, 3
    //     f64 = dict(dtype=torch.float64)
    //     x = torch.tensor([[[[((n*7 + c*3 + h*5 + w*11) % 13) / 4 - 1.5 for w in range(W)]
    //                         for h in range(H)] for c in range(C)] for n in range(N)], **f64,
    //                      requires_grad=True)
    //     g = torch.tensor([[[[((n*5 + c*2 + h*3 + w) % 7) / 3 - 1 for w in range(W)]
    //                         for h in range(H)] for c in range(C)] for n in range(N)], **f64)
    //     bn = torch.nn.BatchNorm2d(C, eps=1e-3, momentum=0.1).double()
    //     with torch.no_grad():
    //         bn.weight.copy_(torch.tensor([1.5, 0.5, -0.75], **f64))
    //         bn.bias.copy_(torch.tensor([0.25, -0.5, 0.0], **f64))
    //         bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3], **f64))
    //         bn.running_var.copy_(torch.tensor([0.5, 1.5, 2.0], **f64))
    //     bn.train()
    //     y = bn(x)
    //     (y * g).sum().backward()
    //     print(y[1, 2, 1, 0].item(), (y**2).sum().item(), bn.weight.grad, bn.bias.grad,
    //           (x.grad**2).sum().item(), x.grad[0, 1, 0, 2].item(), x.grad[1, 0, 1, 1].item(),
    //           bn.running_mean, bn.running_var)
    const N: usize = 2;
    const C: usize = 3;
    const H: usize = 2;
    const W: usize = 3;

    /// `f(n, c, h, w)` laid out channels-last, as the top holds maps.
    fn channels_last(f: impl Fn(usize, usize, usize, usize) -> f32) -> Vec<f32> {
        let mut out = Vec::with_capacity(N * H * W * C);
        for n in 0..N {
            for h in 0..H {
                for w in 0..W {
                    out.extend((0..C).map(|c| f(n, c, h, w)));
                }
            }
        }
        out
    }

    fn at(n: usize, c: usize, h: usize, w: usize) -> usize {
        ((n * H + h) * W + w) * C + c
    }

    #[track_caller]
    fn close(found: f32, expected: f64, what: &str) {
        assert!(
            (f64::from(found) - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
            "{what}: {found}, PyTorch {expected}"
        );
    }

    #[test]
    fn a_training_step_matches_pytorch() {
        let x = channels_last(|n, c, h, w| ((n * 7 + c * 3 + h * 5 + w * 11) % 13) as f32 / 4.0 - 1.5);
        let dy = channels_last(|n, c, h, w| ((n * 5 + c * 2 + h * 3 + w) % 7) as f32 / 3.0 - 1.0);
        let (gamma, beta) = ([1.5, 0.5, -0.75], [0.25, -0.5, 0.0]);
        let (mut mean, mut var) = ([0.1, -0.2, 0.3], [0.5, 1.5, 2.0]);
        let epsilon = 1e-3;

        let batch = BatchStats::of(&x, C);
        assert_eq!(batch.count, N * H * W);
        let stats = Stats {
            mean: &batch.mean,
            var: &batch.var,
            epsilon,
        };
        let mut y = vec![0.0; x.len()];
        forward(&x, &gamma, &beta, stats, &mut y);
        close(y[at(1, 2, 1, 0)], 0.13742165381781932, "y[1, 2, 1, 0]");
        close(y.iter().map(|v| v * v).sum(), 40.4583880977854, "sum of y²");

        let (mut dgamma, mut dbeta, mut dx) = ([0.0; C], [0.0; C], vec![0.0; x.len()]);
        backward(&x, &gamma, &dy, stats, true, &mut dgamma, &mut dbeta, Some(&mut dx));
        let pytorch_dgamma = [-1.350579726413337, 0.6035488045333035, -2.229284606377958];
        let pytorch_dbeta = [-1.3333333333333333, -0.33333333333333337, 0.6666666666666665];
        for c in 0..C {
            close(dgamma[c], pytorch_dgamma[c], &format!("dγ[{c}]"));
            close(dbeta[c], pytorch_dbeta[c], &format!("dβ[{c}]"));
        }
        close(dx.iter().map(|v| v * v).sum(), 17.012585395675465, "sum of dx²");
        close(dx[at(0, 1, 0, 2)], 0.14712850843446817, "dx[0, 1, 0, 2]");
        close(dx[at(1, 0, 1, 1)], -0.17157584597098413, "dx[1, 0, 1, 1]");

        batch.update(&mut mean, &mut var, 0.9);
        let pytorch_mean = [0.09416666666666668, -0.18208333333333335, 0.26166666666666666];
        let pytorch_var = [0.5475378787878789, 1.4493844696969698, 1.8901515151515151];
        for c in 0..C {
            close(mean[c], pytorch_mean[c], &format!("moving mean[{c}]"));
            close(var[c], pytorch_var[c], &format!("moving variance[{c}]"));
        }
    }

    /// With frozen statistics the input gradient is the plain per-channel scaling, which the
    /// training-mode terms would change: the two modes must differ on the same batch.
    #[test]
    fn frozen_statistics_pass_the_gradient_straight_through() {
        let x = channels_last(|n, c, h, w| ((n + 2 * c + 3 * h + w) % 5) as f32 - 2.0);
        let dy = channels_last(|n, c, h, w| ((3 * n + c + h + 2 * w) % 4) as f32 - 1.5);
        let gamma = [2.0, -1.0, 0.5];
        let stats = Stats {
            mean: &[0.5, 0.0, -0.5],
            var: &[3.0, 1.0, 0.25],
            epsilon: 1e-3,
        };
        let (mut dgamma, mut dbeta) = ([0.0; C], [0.0; C]);
        let mut frozen = vec![0.0; x.len()];
        backward(
            &x,
            &gamma,
            &dy,
            stats,
            false,
            &mut dgamma,
            &mut dbeta,
            Some(&mut frozen),
        );
        for (i, (&d, &g)) in frozen.iter().zip(&dy).enumerate() {
            let c = i % C;
            let expected = g * gamma[c] / (stats.var[c] + stats.epsilon).sqrt();
            assert!((d - expected).abs() < 1e-6, "dx[{i}] = {d}, expected {expected}");
        }
        let mut batch = vec![0.0; x.len()];
        backward(&x, &gamma, &dy, stats, true, &mut dgamma, &mut dbeta, Some(&mut batch));
        assert!(frozen.iter().zip(&batch).any(|(a, b)| (a - b).abs() > 1e-3));
    }
}
