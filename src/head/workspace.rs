//! The training workspace: preallocated buffers, and the forward and backward passes of one
//! training step.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView2, Zip};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::adam::{Adam, BlockParams};
use super::layers::{Block, Dropout, BN_EPSILON, BN_MOMENTUM};
use super::{binary_cross_entropy, log_sum_exp, smoothed_cross_entropy, Head};
use crate::classifier::{argmax, Targets};

/// Scratch memory of one block, sized for a full batch; a shorter batch uses the leading rows.
pub(super) struct BlockBuffers {
    /// Batch mean and biased variance of the block input.
    pub(super) mean: Array1<f32>,
    pub(super) var: Array1<f32>,
    pub(super) inv_std: Array1<f32>,
    /// γ / sqrt(σ² + ε), the factor of the BatchNorm input gradient.
    pub(super) coef: Array1<f32>,
    pub(super) xhat: Array2<f32>,
    /// One random word per dense input, deciding whether dropout keeps it; no rows when dropout
    /// is off.
    pub(super) bits: Array2<u32>,
    /// Dense input: dropout(γ·x̂ + β).
    pub(super) dense_in: Array2<f32>,
    /// Dense output, after ReLU where there is one; the next block's input.
    pub(super) out: Array2<f32>,
    /// ∂L/∂out, turned into ∂L/∂z in place by the ReLU backward.
    pub(super) grad_out: Array2<f32>,
    /// ∂L/∂dense_in, turned into ∂L/∂(BatchNorm output) in place by the dropout backward.
    pub(super) grad_in: Array2<f32>,
}

/// Everything a training step writes, allocated once per fit so the batch loop never allocates.
pub(super) struct Workspace {
    pub(super) batch: Array2<f32>,
    pub(super) labels: Vec<usize>,
    /// The batch's multi-label targets, `[batch, labels]`; no rows for single-label data.
    pub(super) targets: Array2<f32>,
    /// Class weight of each sample in the batch.
    pub(super) weights: Vec<f32>,
    pub(super) dropout: Option<Dropout>,
    pub(super) label_smoothing: f32,
    pub(super) blocks: Vec<BlockBuffers>,
    /// ∂L/∂batch, for a head trained together with what computes its input; no rows otherwise.
    pub(super) input_grad: Array2<f32>,
}

impl Workspace {
    /// With `input_grad`, [`Head::backward`] also writes ∂L/∂batch into `input_grad`.
    pub(super) fn new(head: &Head, batch_size: usize, dropout: f32, label_smoothing: f32, input_grad: bool) -> Self {
        let dropout = Dropout::new(dropout);
        let bits_rows = if dropout.is_some() { batch_size } else { 0 };
        let blocks = head
            .blocks
            .iter()
            .map(|block| {
                let (n_in, n_out) = block.dense.kernel.dim();
                BlockBuffers {
                    mean: Array1::zeros(n_in),
                    var: Array1::zeros(n_in),
                    inv_std: Array1::zeros(n_in),
                    coef: Array1::zeros(n_in),
                    xhat: Array2::zeros((batch_size, n_in)),
                    bits: Array2::zeros((bits_rows, n_in)),
                    dense_in: Array2::zeros((batch_size, n_in)),
                    out: Array2::zeros((batch_size, n_out)),
                    grad_out: Array2::zeros((batch_size, n_out)),
                    grad_in: Array2::zeros((batch_size, n_in)),
                }
            })
            .collect();
        Self {
            batch: Array2::zeros((batch_size, head.n_features())),
            labels: vec![0; batch_size],
            targets: Array2::zeros((if head.multi_label { batch_size } else { 0 }, head.n_classes())),
            weights: vec![0.0; batch_size],
            dropout,
            label_smoothing,
            blocks,
            input_grad: Array2::zeros((if input_grad { batch_size } else { 0 }, head.n_features())),
        }
    }

    pub(super) fn load_batch(&mut self, x: ArrayView2<f32>, y: Targets, rows: &[usize], class_weight: &[f32]) {
        for (r, &i) in rows.iter().enumerate() {
            self.batch.row_mut(r).assign(&x.row(i));
            match y {
                Targets::Classes(y) => {
                    self.labels[r] = y[i];
                    self.weights[r] = class_weight[y[i]];
                }
                Targets::Sets(t) => self.targets.row_mut(r).assign(&t.row(i)),
            }
        }
    }
}

impl Head {
    /// One optimisation step on the first `b` rows of the loaded batch: forward pass, moving
    /// statistics, backward pass, Adam. Returns Σ_i w(y_i)·loss_i over the batch and the number
    /// of correct training-mode predictions.
    pub(super) fn train_step(
        &mut self,
        ws: &mut Workspace,
        b: usize,
        rng: &mut ChaCha8Rng,
        grads: &mut [BlockParams],
        adam: &mut Adam,
    ) -> (f64, usize) {
        let outcome = self.forward_train(ws, b, rng);
        self.update_moving_stats(ws);
        self.backward(ws, b, grads);
        adam.update(self, grads);
        outcome
    }

    /// Training-mode forward pass of the first `b` rows of `ws.batch`. Also leaves ∂L/∂logits in
    /// the last block's `grad_out`, since the softmax is already at hand there. Returns what
    /// [`train_step`](Self::train_step) returns.
    pub(super) fn forward_train(&self, ws: &mut Workspace, b: usize, rng: &mut ChaCha8Rng) -> (f64, usize) {
        let last = self.blocks.len() - 1;
        let inv_b = 1.0 / b as f32;
        for (k, Block { bn, dense }) in self.blocks.iter().enumerate() {
            let (done, rest) = ws.blocks.split_at_mut(k);
            let buf = &mut rest[0];
            let input = match k {
                0 => ws.batch.slice(s![..b, ..]),
                _ => done[k - 1].out.slice(s![..b, ..]),
            };

            buf.mean.fill(0.0);
            for row in input.rows() {
                buf.mean += &row;
            }
            buf.mean *= inv_b;
            buf.var.fill(0.0);
            for row in input.rows() {
                Zip::from(&mut buf.var)
                    .and(&row)
                    .and(&buf.mean)
                    .for_each(|s, &x, &m| *s += (x - m) * (x - m));
            }
            buf.var *= inv_b;
            Zip::from(&mut buf.inv_std)
                .and(&buf.var)
                .for_each(|i, &v| *i = 1.0 / (v + BN_EPSILON).sqrt());

            let mut xhat = buf.xhat.slice_mut(s![..b, ..]);
            Zip::from(&mut xhat)
                .and(&input)
                .and_broadcast(&buf.mean)
                .and_broadcast(&buf.inv_std)
                .for_each(|h, &x, &m, &i| *h = (x - m) * i);
            let mut dense_in = buf.dense_in.slice_mut(s![..b, ..]);
            Zip::from(&mut dense_in)
                .and(&xhat)
                .and_broadcast(&bn.gamma)
                .and_broadcast(&bn.beta)
                .for_each(|d, &h, &g, &be| *d = g * h + be);
            if let Some(dropout) = ws.dropout {
                let mut bits = buf.bits.slice_mut(s![..b, ..]);
                rng.fill(bits.as_slice_mut().expect("leading rows are contiguous"));
                Zip::from(&mut dense_in)
                    .and(&bits)
                    .for_each(|d, &r| *d *= dropout.factor(r));
            }

            // As outᵀ = Wᵀ·dense_inᵀ, so that the GEMM's row count is the layer width rather than
            // the batch: matrixmultiply's `threading` feature (enabled through ndarray's
            // `matrixmultiply-threading`) splits the work along the rows. On 2 cores it cuts 5
            // epochs on 3253 x 1280 embeddings from 1.7 s to 1.1 s; the `gemm` crate (rayon) and a
            // rayon-parallel Adam were both slower.
            let mut out = buf.out.slice_mut(s![..b, ..]);
            out.assign(&dense.bias);
            general_mat_mul(
                1.0,
                &dense.kernel.t(),
                &dense_in.t(),
                1.0,
                &mut out.view_mut().reversed_axes(),
            );
            if k < last {
                out.mapv_inplace(|v| v.max(0.0));
            }
        }

        let smoothing = ws.label_smoothing;
        let buf = &mut ws.blocks[last];
        let n_classes = buf.out.ncols() as f32;
        let mut loss = 0.0f64;
        let mut correct = 0usize;
        if self.multi_label {
            let rows = buf.out.rows().into_iter().zip(buf.grad_out.rows_mut());
            for ((z, mut grad), t) in rows.take(b).zip(ws.targets.rows()) {
                let (row_loss, row_correct) =
                    binary_cross_entropy(z, t, smoothing, Some((&mut grad, inv_b / n_classes)));
                loss += f64::from(row_loss);
                correct += row_correct;
            }
            return (loss, correct);
        }
        let rows = buf.out.rows().into_iter().zip(buf.grad_out.rows_mut());
        for ((z, mut grad), (&label, &w)) in rows.take(b).zip(ws.labels.iter().zip(&ws.weights)) {
            let lse = log_sum_exp(z);
            loss += f64::from(w * smoothed_cross_entropy(z, lse, label, smoothing));
            correct += usize::from(argmax(z) == label);
            for (c, (g, &zc)) in grad.iter_mut().zip(&z).enumerate() {
                let target = smoothing / n_classes + if c == label { 1.0 - smoothing } else { 0.0 };
                *g = w * inv_b * ((zc - lse).exp() - target);
            }
        }
        (loss, correct)
    }

    /// Folds the batch statistics of the last forward pass into the moving statistics.
    pub(super) fn update_moving_stats(&mut self, ws: &Workspace) {
        for (Block { bn, .. }, buf) in self.blocks.iter_mut().zip(&ws.blocks) {
            for (moving, batch) in [(&mut bn.moving_mean, &buf.mean), (&mut bn.moving_variance, &buf.var)] {
                Zip::from(moving)
                    .and(batch)
                    .for_each(|m, &b| *m = *m * BN_MOMENTUM + b * (1.0 - BN_MOMENTUM));
            }
        }
    }

    /// Backward pass after [`forward_train`](Self::forward_train) on the same `b` rows; writes
    /// ∂L/∂θ of every trainable parameter into `grads`.
    ///
    /// BatchNorm in training mode, with x̂ the normalised input and dy = ∂L/∂y:
    /// `∂L/∂γ = Σ_r dy·x̂`, `∂L/∂β = Σ_r dy`,
    /// `∂L/∂x = γ/sqrt(σ² + ε) · (dy - mean_r(dy) - x̂ · mean_r(dy·x̂))`. The first block's input
    /// gradient is formed only when the workspace asks for it: cached embeddings are not trained.
    pub(super) fn backward(&self, ws: &mut Workspace, b: usize, grads: &mut [BlockParams]) {
        let last = self.blocks.len() - 1;
        let inv_b = 1.0 / b as f32;
        for (k, (Block { bn, dense }, g)) in self.blocks.iter().zip(grads).enumerate().rev() {
            let (before, rest) = ws.blocks.split_at_mut(k);
            let buf = &mut rest[0];

            let mut grad_z = buf.grad_out.slice_mut(s![..b, ..]);
            if k < last {
                Zip::from(&mut grad_z)
                    .and(buf.out.slice(s![..b, ..]))
                    .for_each(|g, &a| {
                        if a <= 0.0 {
                            *g = 0.0;
                        }
                    });
            }
            let dense_in = buf.dense_in.slice(s![..b, ..]);
            general_mat_mul(1.0, &dense_in.t(), &grad_z, 0.0, &mut g.kernel);
            g.bias.fill(0.0);
            for row in grad_z.rows() {
                g.bias += &row;
            }

            let mut grad_y = buf.grad_in.slice_mut(s![..b, ..]);
            general_mat_mul(
                1.0,
                &dense.kernel,
                &grad_z.t(),
                0.0,
                &mut grad_y.view_mut().reversed_axes(),
            );
            if let Some(dropout) = ws.dropout {
                Zip::from(&mut grad_y)
                    .and(buf.bits.slice(s![..b, ..]))
                    .for_each(|g, &r| *g *= dropout.factor(r));
            }

            let xhat = buf.xhat.slice(s![..b, ..]);
            g.gamma.fill(0.0);
            g.beta.fill(0.0);
            for (dy, xh) in grad_y.rows().into_iter().zip(xhat.rows()) {
                Zip::from(&mut g.gamma)
                    .and(&mut g.beta)
                    .and(&dy)
                    .and(&xh)
                    .for_each(|gg, gb, &d, &h| {
                        *gg += d * h;
                        *gb += d;
                    });
            }
            let grad_x = match k {
                0 if ws.input_grad.nrows() == 0 => None,
                0 => Some(ws.input_grad.slice_mut(s![..b, ..])),
                _ => Some(before[k - 1].grad_out.slice_mut(s![..b, ..])),
            };
            if let Some(mut grad_x) = grad_x {
                Zip::from(&mut buf.coef)
                    .and(&bn.gamma)
                    .and(&buf.inv_std)
                    .for_each(|c, &ga, &i| *c = ga * i);
                for ((mut dx, dy), xh) in grad_x.rows_mut().into_iter().zip(grad_y.rows()).zip(xhat.rows()) {
                    Zip::from(&mut dx)
                        .and(&dy)
                        .and(&xh)
                        .and(&buf.coef)
                        .and(&g.beta)
                        .and(&g.gamma)
                        .for_each(|dx, &d, &h, &c, &sb, &sg| {
                            *dx = c * (d - sb * inv_b - h * sg * inv_b);
                        });
                }
            }
        }
    }
}
