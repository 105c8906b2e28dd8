//! The classifier head: a small network trained on cached backbone embeddings.
//!
//! The backbone is frozen, so training only ever sees one pooled embedding per image. That
//! makes the head small enough (about 0.7 M parameters on 1280 features) to train in seconds on
//! a CPU, and a deep-learning framework would cost more in build time and dependencies than the
//! training itself. Forward pass, backward pass and Adam are therefore written out here on
//! `ndarray`. The recipe is the classic Keras transfer-learning head, with Keras semantics
//! throughout, so that results can be compared with Keras and PyTorch runs of the same recipe:
//!
//! ```text
//! for each h in hidden:  BatchNorm -> Dropout(p) -> Dense(h, ReLU)
//! then:                  BatchNorm -> Dropout(p) -> Dense(classes) -> softmax
//! ```
//!
//! # Layers
//! - **BatchNorm**, training: `y = γ (x - μ_B) / sqrt(σ²_B + ε) + β` with the batch mean μ_B,
//!   the *biased* batch variance σ²_B and ε = 1e-3. The moving statistics follow
//!   `m ← 0.99 m + 0.01 μ_B` and `v ← 0.99 v + 0.01 σ²_B` (PyTorch's `momentum` is 1 - 0.99, and
//!   it would use the unbiased variance for `v`). Inference normalises with `m` and `v`.
//!   γ starts at 1, β at 0, `m` at 0, `v` at 1.
//! - **Dropout** is inverted: in training each value is kept with probability 1 - p and scaled by
//!   1 / (1 - p), so inference is the identity.
//! - **Dense**: `z = x W + b` with the kernel W stored `[in, out]` (Keras layout), initialised
//!   glorot-uniform on ±sqrt(6 / (in + out)); b starts at 0.
//!
//! # Loss
//! For a batch of B samples with logits z_i, labels y_i, K classes, label smoothing s and class
//! weights w (all 1 unless [`ClassWeights`] says otherwise):
//! ```text
//! t_ic = (1 - s)·[c = y_i] + s / K
//! L    = (1/B) Σ_i w(y_i) · Σ_c t_ic · (logsumexp(z_i) - z_ic)
//! ∂L/∂z_ic = w(y_i) / B · (softmax(z_i)_c - t_ic)
//! ```
//! Dividing by B rather than by Σ w is Keras' `sum_over_batch_size` reduction of sample-weighted
//! losses (PyTorch's `cross_entropy(weight=...)` divides by the weight sum instead). The loss is
//! computed from the logits with log-sum-exp; Keras on some backends clips probabilities to
//! [1e-7, 1 - 1e-7] instead, which only matters for wildly confident predictions.
//!
//! # Optimiser
//! Adam written as Keras writes it; t is the step number, g the gradient of L, λ the weight decay:
//! ```text
//! W ← W - lr·λ·W                       (kernels only, decoupled as in AdamW, before the step)
//! m ← m + (1 - β1)(g - m)
//! v ← v + (1 - β2)(g² - v)
//! θ ← θ - lr·sqrt(1 - β2^t)/(1 - β1^t) · m / (sqrt(v) + ε)
//! ```
//! with β1 = 0.9, β2 = 0.999, ε = 1e-7. ε sits beside the *uncorrected* sqrt(v), as in Keras.
//! PyTorch adds ε to the bias-corrected sqrt(v / (1 - β2^t)), which is the Keras rule with ε
//! replaced by ε·sqrt(1 - β2^t); the two differ only for gradients near ε in size.
//!
//! # Reproducibility
//! One ChaCha8 generator seeded from [`HeadParams::seed`] draws, in order, the initial kernels,
//! then per epoch the shuffle and per batch the dropout masks. The same seed and data give
//! bit-identical weights and history on the same machine.

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::classifier::{argmax, check_set, Activation, Classifier, DenseChain, DenseLayer, SetError, Tensor};

/// Keras `BatchNormalization` defaults.
const BN_EPSILON: f32 = 1e-3;
const BN_MOMENTUM: f32 = 0.99;
/// Keras `Adam` defaults.
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const ADAM_EPSILON: f32 = 1e-7;

/// How much each class counts in the training loss (validation loss is never weighted, as in
/// Keras' `class_weight`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum ClassWeights {
    /// Every class weighs 1.
    #[default]
    None,
    /// `n_samples / (n_classes · count_c)`, so every class contributes equally in total (the
    /// scikit-learn `balanced` heuristic). Classes absent from the training set get 0.
    Balanced,
    /// One weight per class, finite and >= 0.
    Given(Vec<f32>),
}

/// Hyper-parameters of the head; [`HeadParams::fit`] validates them before any training.
///
/// Defaults follow the classic Keras recipe: hidden `[512]`, dropout 0.5, Adam at 1e-3, batch 32,
/// 5 epochs, no weight decay, smoothing or class weights, no early stopping, seed 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f32,
    /// Sizes of the hidden ReLU layers; empty for a linear head.
    pub hidden: Vec<usize>,
    /// Dropout rate p in [0, 1), before every Dense layer.
    pub dropout: f32,
    /// Decoupled (AdamW) weight decay λ on the Dense kernels.
    pub weight_decay: f32,
    /// Label smoothing s in [0, 1].
    pub label_smoothing: f32,
    pub class_weights: ClassWeights,
    /// Patience in epochs: stop after this many epochs without a lower validation loss and
    /// restore the weights of the best epoch. Needs a validation set.
    pub early_stopping: Option<usize>,
    pub seed: u64,
}

impl Default for HeadParams {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 32,
            learning_rate: 1e-3,
            hidden: vec![512],
            dropout: 0.5,
            weight_decay: 0.0,
            label_smoothing: 0.0,
            class_weights: ClassWeights::None,
            early_stopping: None,
            seed: 0,
        }
    }
}

impl HeadParams {
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }
    pub fn learning_rate(mut self, learning_rate: f32) -> Self {
        self.learning_rate = learning_rate;
        self
    }
    pub fn hidden(mut self, hidden: Vec<usize>) -> Self {
        self.hidden = hidden;
        self
    }
    pub fn dropout(mut self, dropout: f32) -> Self {
        self.dropout = dropout;
        self
    }
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }
    pub fn label_smoothing(mut self, label_smoothing: f32) -> Self {
        self.label_smoothing = label_smoothing;
        self
    }
    pub fn class_weights(mut self, class_weights: ClassWeights) -> Self {
        self.class_weights = class_weights;
        self
    }
    pub fn early_stopping(mut self, patience: Option<usize>) -> Self {
        self.early_stopping = patience;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Trains a head on the embeddings `x` (one row per sample) with labels `y` in
    /// `0..n_classes`, calling `on_epoch` after every epoch.
    ///
    /// Batches of [`batch_size`](Self::batch_size) rows are drawn from a fresh shuffle every
    /// epoch; the last, shorter batch is kept. With a validation set its loss and accuracy are
    /// measured in inference mode after every epoch. Without early stopping the returned head
    /// holds the weights after the last epoch.
    pub fn fit(
        &self,
        x: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        valid: Option<(ArrayView2<f32>, &[usize])>,
        on_epoch: &mut dyn FnMut(&EpochStats),
    ) -> Result<Fitted, HeadError> {
        let class_weight = self.check(x, y, n_classes, valid)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut head = Head::init(x.ncols(), &self.hidden, n_classes, &mut rng);
        let batch_size = self.batch_size.min(x.nrows());
        let mut ws = Workspace::new(&head, batch_size, self.dropout, self.label_smoothing);
        let mut grads: Vec<BlockParams> = head.blocks.iter().map(BlockParams::zeros).collect();
        let mut adam = Adam::new(&head, self.learning_rate, self.weight_decay);
        let mut order: Vec<usize> = (0..x.nrows()).collect();
        let mut history = Vec::with_capacity(self.epochs);
        let mut best: Option<(f32, usize, Head)> = None;

        for epoch in 1..=self.epochs {
            let start = Instant::now();
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0f64;
            let mut correct = 0usize;
            for rows in order.chunks(batch_size) {
                ws.load_batch(x, y, rows, &class_weight);
                let (batch_loss, batch_correct) = head.train_step(&mut ws, rows.len(), &mut rng, &mut grads, &mut adam);
                loss_sum += batch_loss;
                correct += batch_correct;
            }
            let train_loss = (loss_sum / x.nrows() as f64) as f32;
            if !train_loss.is_finite() {
                return Err(HeadError::Diverged {
                    epoch,
                    loss: train_loss,
                });
            }
            let (val_loss, val_accuracy) = match valid {
                Some((vx, vy)) => {
                    let (loss, accuracy) = head.evaluate(vx, vy, self.label_smoothing);
                    (Some(loss), Some(accuracy))
                }
                None => (None, None),
            };
            let stats = EpochStats {
                epoch,
                train_loss,
                train_accuracy: correct as f32 / x.nrows() as f32,
                val_loss,
                val_accuracy,
                seconds: start.elapsed().as_secs_f32(),
            };
            on_epoch(&stats);
            history.push(stats);

            if let (Some(patience), Some(loss)) = (self.early_stopping, val_loss) {
                // A NaN validation loss never counts as an improvement.
                let improved = best.as_ref().map_or(loss.is_finite(), |(b, _, _)| loss < *b);
                if improved {
                    best = Some((loss, epoch, head.clone()));
                } else if epoch - best.as_ref().map_or(0, |(_, e, _)| *e) >= patience {
                    break;
                }
            }
        }

        let last_epoch = history.len();
        let (head, best_epoch) = match best {
            Some((_, epoch, best_head)) => (best_head, epoch),
            None => (head, last_epoch),
        };
        Ok(Fitted {
            head,
            history,
            best_epoch,
        })
    }

    /// Validates parameters and data; returns the weight of each class in the training loss.
    fn check(
        &self,
        x: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        valid: Option<(ArrayView2<f32>, &[usize])>,
    ) -> Result<Vec<f32>, HeadError> {
        if self.epochs == 0 {
            return Err(HeadError::Epochs(self.epochs));
        }
        if self.batch_size == 0 {
            return Err(HeadError::BatchSize(self.batch_size));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(HeadError::LearningRate(self.learning_rate));
        }
        if self.hidden.contains(&0) {
            return Err(HeadError::Hidden(self.hidden.clone()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(HeadError::Dropout(self.dropout));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(HeadError::WeightDecay(self.weight_decay));
        }
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(HeadError::LabelSmoothing(self.label_smoothing));
        }
        match (self.early_stopping, valid) {
            (Some(0), _) => return Err(HeadError::Patience),
            (Some(_), None) => return Err(HeadError::EarlyStoppingWithoutValidation),
            _ => {}
        }
        if n_classes < 2 {
            return Err(HeadError::TooFewClasses(n_classes));
        }
        if x.nrows() == 0 || x.ncols() == 0 {
            return Err(HeadError::EmptySet {
                set: "training",
                rows: x.nrows(),
                cols: x.ncols(),
            });
        }
        check_set("training", x, y, n_classes)?;
        if let Some((vx, vy)) = valid {
            if vx.nrows() == 0 || vx.ncols() == 0 {
                return Err(HeadError::EmptySet {
                    set: "validation",
                    rows: vx.nrows(),
                    cols: vx.ncols(),
                });
            }
            if vx.ncols() != x.ncols() {
                return Err(HeadError::FeatureCount {
                    set: "validation",
                    expected: x.ncols(),
                    got: vx.ncols(),
                });
            }
            check_set("validation", vx, vy, n_classes)?;
        }

        let class_weight = match &self.class_weights {
            ClassWeights::None => vec![1.0; n_classes],
            ClassWeights::Balanced => {
                let mut counts = vec![0usize; n_classes];
                for &label in y {
                    counts[label] += 1;
                }
                counts
                    .iter()
                    .map(|&c| match c {
                        0 => 0.0,
                        c => y.len() as f32 / (n_classes * c) as f32,
                    })
                    .collect()
            }
            ClassWeights::Given(w) => {
                let bad = |reason: String| HeadError::ClassWeights { reason, n_classes };
                if w.len() != n_classes {
                    return Err(bad(format!("{} weights given", w.len())));
                }
                if let Some(v) = w.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                    return Err(bad(format!("weight {v} is not a finite number >= 0")));
                }
                if w.iter().all(|&v| v == 0.0) {
                    return Err(bad("every weight is 0, so nothing would be learned".into()));
                }
                w.clone()
            }
        };
        Ok(class_weight)
    }
}

/// What one epoch achieved. As in Keras, the training figures are averaged over the epoch's
/// batches as they were trained (training mode, dropout on, class weights applied), while the
/// validation figures come from inference mode after the epoch, with label smoothing but
/// without class weights.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based, like `history` positions + 1.
    pub epoch: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub val_loss: Option<f32>,
    pub val_accuracy: Option<f32>,
    /// Wall time of the epoch, validation included.
    pub seconds: f32,
}

/// A trained head with its training history.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub head: Head,
    pub history: Vec<EpochStats>,
    /// The 1-based epoch whose weights `head` holds: the lowest validation loss under early
    /// stopping, otherwise the last epoch trained.
    pub best_epoch: usize,
}

#[derive(thiserror::Error, Debug)]
pub enum HeadError {
    #[error("epochs must be >= 1 (got {0}): pass --epochs with a positive count")]
    Epochs(usize),
    #[error("batch size must be >= 1 (got {0}): pass --batch-size with a positive count such as 32")]
    BatchSize(usize),
    #[error("learning rate must be a finite number > 0 (got {0}): pass --lr with a positive value such as 0.001")]
    LearningRate(f32),
    #[error("hidden layer sizes must all be >= 1 (got {0:?}): pass --hidden with positive sizes such as 512, or `none` for a linear head")]
    Hidden(Vec<usize>),
    #[error("dropout must be in [0, 1) (got {0}): pass --dropout with a value such as 0.5, or 0 to turn it off")]
    Dropout(f32),
    #[error("weight decay must be a finite number >= 0 (got {0}): pass --weight-decay with 0 or a small value such as 0.004")]
    WeightDecay(f32),
    #[error("label smoothing must be in [0, 1] (got {0}): pass --label-smoothing with a value such as 0.1, or 0 to turn it off")]
    LabelSmoothing(f32),
    #[error("class weights are invalid ({reason}): pass --class-weights auto, or one finite weight >= 0 per class ({n_classes} classes)")]
    ClassWeights { reason: String, n_classes: usize },
    #[error("early-stopping patience must be >= 1 (got 0): pass --early-stopping with a positive number of epochs, or leave it out to train every epoch")]
    Patience,
    #[error("early stopping watches the validation loss, but there is no validation set: give the data a validation split, or leave out --early-stopping")]
    EarlyStoppingWithoutValidation,
    #[error("a classifier needs at least 2 classes (got {0}): add images of another class")]
    TooFewClasses(usize),
    #[error(
        "the {set} set is empty ({rows} embeddings of {cols} features): it needs at least one embedding with features"
    )]
    EmptySet {
        set: &'static str,
        rows: usize,
        cols: usize,
    },
    #[error("the {set} set has {got} features per embedding but the head expects {expected}: embed every set with the same backbone")]
    FeatureCount {
        set: &'static str,
        expected: usize,
        got: usize,
    },
    #[error(transparent)]
    Set(#[from] SetError),
    #[error("training diverged in epoch {epoch} (the training loss became {loss}): pass a smaller --lr")]
    Diverged { epoch: usize, loss: f32 },
    #[error("the head tensors are inconsistent: {0}")]
    Tensors(String),
}

#[derive(Clone, Debug, PartialEq)]
struct BatchNorm {
    gamma: Array1<f32>,
    beta: Array1<f32>,
    moving_mean: Array1<f32>,
    moving_variance: Array1<f32>,
}

#[derive(Clone, Debug, PartialEq)]
struct Dense {
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

/// BatchNorm -> Dropout -> Dense; every block but the last ends in ReLU.
#[derive(Clone, Debug, PartialEq)]
struct Block {
    bn: BatchNorm,
    dense: Dense,
}

impl Block {
    /// The trainable parameters in [`BlockParams`] order.
    fn params_mut(&mut self) -> [&mut [f32]; 4] {
        [
            slice_mut(&mut self.bn.gamma),
            slice_mut(&mut self.bn.beta),
            slice_mut(&mut self.dense.kernel),
            slice_mut(&mut self.dense.bias),
        ]
    }
}

// Owned arrays are always in standard layout, so these never fail.
fn slice<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>) -> &[f32] {
    a.as_slice().expect("owned arrays are contiguous")
}

fn slice_mut<D: ndarray::Dimension>(a: &mut ndarray::Array<f32, D>) -> &mut [f32] {
    a.as_slice_mut().expect("owned arrays are contiguous")
}

/// Gradients or Adam moments of one block, shaped like its trainable parameters.
#[derive(Clone, Debug)]
struct BlockParams {
    gamma: Array1<f32>,
    beta: Array1<f32>,
    kernel: Array2<f32>,
    bias: Array1<f32>,
}

impl BlockParams {
    fn zeros(block: &Block) -> Self {
        Self {
            gamma: Array1::zeros(block.bn.gamma.len()),
            beta: Array1::zeros(block.bn.beta.len()),
            kernel: Array2::zeros(block.dense.kernel.raw_dim()),
            bias: Array1::zeros(block.dense.bias.len()),
        }
    }

    fn slices(&self) -> [&[f32]; 4] {
        [
            slice(&self.gamma),
            slice(&self.beta),
            slice(&self.kernel),
            slice(&self.bias),
        ]
    }

    fn slices_mut(&mut self) -> [&mut [f32]; 4] {
        [
            slice_mut(&mut self.gamma),
            slice_mut(&mut self.beta),
            slice_mut(&mut self.kernel),
            slice_mut(&mut self.bias),
        ]
    }
}

/// Which of the four parameters of a block weight decay applies to: the kernel only.
const DECAYED: [bool; 4] = [false, false, true, false];

/// Adam state; the update rule is in the module documentation.
struct Adam {
    learning_rate: f32,
    weight_decay: f32,
    step: i32,
    m: Vec<BlockParams>,
    v: Vec<BlockParams>,
}

impl Adam {
    fn new(head: &Head, learning_rate: f32, weight_decay: f32) -> Self {
        let zeros: Vec<BlockParams> = head.blocks.iter().map(BlockParams::zeros).collect();
        Self {
            learning_rate,
            weight_decay,
            step: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }

    fn update(&mut self, head: &mut Head, grads: &[BlockParams]) {
        self.step = self.step.saturating_add(1);
        let alpha = self.learning_rate * (1.0 - BETA2.powi(self.step)).sqrt() / (1.0 - BETA1.powi(self.step));
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

/// One Adam step, element by element. Compiled for AVX2 and AVX-512 as well and chosen at run
/// time: the square root and division dominate, and the default x86-64 target has only SSE2
/// (0.25-0.3 -> 0.19 s of 5 epochs on flowers5 with AVX2). Splitting it across the cores was
/// slower (0.40 s): the matrix products' worker threads still hold the other core.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
fn adam_step(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], alpha: f32) {
    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v) {
        *m += (g - *m) * (1.0 - BETA1);
        *v += (g * g - *v) * (1.0 - BETA2);
        *w -= *m * alpha / (v.sqrt() + ADAM_EPSILON);
    }
}

/// Scratch memory of one block, sized for a full batch; a shorter batch uses the leading rows.
struct BlockBuffers {
    /// Batch mean and biased variance of the block input.
    mean: Array1<f32>,
    var: Array1<f32>,
    inv_std: Array1<f32>,
    /// γ / sqrt(σ² + ε), the factor of the BatchNorm input gradient.
    coef: Array1<f32>,
    xhat: Array2<f32>,
    /// One random word per dense input, deciding whether dropout keeps it; no rows when dropout
    /// is off.
    bits: Array2<u32>,
    /// Dense input: dropout(γ·x̂ + β).
    dense_in: Array2<f32>,
    /// Dense output, after ReLU where there is one; the next block's input.
    out: Array2<f32>,
    /// ∂L/∂out, turned into ∂L/∂z in place by the ReLU backward.
    grad_out: Array2<f32>,
    /// ∂L/∂dense_in, turned into ∂L/∂(BatchNorm output) in place by the dropout backward.
    grad_in: Array2<f32>,
}

/// Inverted dropout with rate p: a value is kept when its random word is at least `threshold`
/// (probability 1 - p) and then scaled by 1 / (1 - p).
#[derive(Clone, Copy)]
struct Dropout {
    threshold: u32,
    scale: f32,
}

impl Dropout {
    fn new(p: f32) -> Option<Self> {
        (p > 0.0).then(|| Self {
            threshold: (f64::from(p) * 4_294_967_296.0) as u32,
            scale: 1.0 / (1.0 - p),
        })
    }

    fn factor(self, bits: u32) -> f32 {
        if bits >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }
}

/// Everything a training step writes, allocated once per fit so the batch loop never allocates.
struct Workspace {
    batch: Array2<f32>,
    labels: Vec<usize>,
    /// Class weight of each sample in the batch.
    weights: Vec<f32>,
    dropout: Option<Dropout>,
    label_smoothing: f32,
    blocks: Vec<BlockBuffers>,
}

impl Workspace {
    fn new(head: &Head, batch_size: usize, dropout: f32, label_smoothing: f32) -> Self {
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
            weights: vec![0.0; batch_size],
            dropout,
            label_smoothing,
            blocks,
        }
    }

    fn load_batch(&mut self, x: ArrayView2<f32>, y: &[usize], rows: &[usize], class_weight: &[f32]) {
        for (r, &i) in rows.iter().enumerate() {
            self.batch.row_mut(r).assign(&x.row(i));
            self.labels[r] = y[i];
            self.weights[r] = class_weight[y[i]];
        }
    }
}

/// The trained network. Cloning copies the weights (a few MB at most).
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    blocks: Vec<Block>,
}

impl Head {
    fn init(n_features: usize, hidden: &[usize], n_classes: usize, rng: &mut ChaCha8Rng) -> Self {
        let mut n_in = n_features;
        let blocks = hidden
            .iter()
            .chain(std::iter::once(&n_classes))
            .map(|&n_out| {
                let limit = (6.0 / (n_in + n_out) as f32).sqrt();
                let kernel = Array2::from_shape_simple_fn((n_in, n_out), || rng.gen_range(-limit..limit));
                let block = Block {
                    bn: BatchNorm {
                        gamma: Array1::ones(n_in),
                        beta: Array1::zeros(n_in),
                        moving_mean: Array1::zeros(n_in),
                        moving_variance: Array1::ones(n_in),
                    },
                    dense: Dense {
                        kernel,
                        bias: Array1::zeros(n_out),
                    },
                };
                n_in = n_out;
                block
            })
            .collect();
        Self { blocks }
    }

    pub fn n_features(&self) -> usize {
        self.blocks[0].dense.kernel.nrows()
    }

    pub fn n_classes(&self) -> usize {
        self.blocks[self.blocks.len() - 1].dense.kernel.ncols()
    }

    /// Sizes of the hidden layers, as passed to [`HeadParams::hidden`].
    pub fn hidden(&self) -> Vec<usize> {
        let last = self.blocks.len() - 1;
        self.blocks[..last].iter().map(|b| b.dense.kernel.ncols()).collect()
    }

    /// Class probabilities for each row of `x`, in inference mode; every row sums to 1.
    ///
    /// # Panics
    /// If `x` does not have [`n_features`](Self::n_features) columns.
    pub fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut p = self.logits(x);
        for mut row in p.rows_mut() {
            let lse = log_sum_exp(row.view());
            row.mapv_inplace(|z| (z - lse).exp());
        }
        p
    }

    fn logits(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.n_features(),
            "the head takes {} features per row",
            self.n_features()
        );
        let last = self.blocks.len() - 1;
        let mut h = x.to_owned();
        for (k, Block { bn, dense }) in self.blocks.iter().enumerate() {
            let scale = Zip::from(&bn.gamma)
                .and(&bn.moving_variance)
                .map_collect(|&g, &v| g / (v + BN_EPSILON).sqrt());
            Zip::from(&mut h)
                .and_broadcast(&bn.moving_mean)
                .and_broadcast(&scale)
                .and_broadcast(&bn.beta)
                .for_each(|v, &m, &s, &b| *v = (*v - m) * s + b);
            let mut z = h.dot(&dense.kernel);
            z += &dense.bias;
            if k < last {
                z.mapv_inplace(|v| v.max(0.0));
            }
            h = z;
        }
        h
    }

    /// Mean loss (label smoothing applied, no class weights) and accuracy in inference mode.
    fn evaluate(&self, x: ArrayView2<f32>, y: &[usize], label_smoothing: f32) -> (f32, f32) {
        let logits = self.logits(x);
        let mut loss = 0.0f64;
        let mut correct = 0usize;
        for (z, &label) in logits.rows().into_iter().zip(y) {
            let lse = log_sum_exp(z);
            loss += f64::from(smoothed_cross_entropy(z, lse, label, label_smoothing));
            correct += usize::from(argmax(z) == label);
        }
        let n = y.len() as f64;
        ((loss / n) as f32, (correct as f64 / n) as f32)
    }

    /// The inference-mode network as a plain chain of Dense layers, for export (ONNX `Gemm`,
    /// plus `Relu` where `relu`); softmax of the last layer's output gives
    /// [`predict_proba`](Self::predict_proba).
    ///
    /// Inference BatchNorm is the affine map `x·s + (β - m·s)` with `s = γ / sqrt(v + ε)`, so it
    /// folds into the Dense layer after it: `W' = diag(s)·W`, `b' = b + (β - m·s)·W`.
    pub fn folded_layers(&self) -> Vec<DenseLayer> {
        let last = self.blocks.len() - 1;
        self.blocks
            .iter()
            .enumerate()
            .map(|(k, Block { bn, dense })| {
                let scale = Zip::from(&bn.gamma)
                    .and(&bn.moving_variance)
                    .map_collect(|&g, &v| g / (v + BN_EPSILON).sqrt());
                let shift = &bn.beta - &(&bn.moving_mean * &scale);
                DenseLayer {
                    weight: &dense.kernel * &scale.view().insert_axis(Axis(1)),
                    bias: &dense.bias + &shift.dot(&dense.kernel),
                    relu: k < last,
                }
            })
            .collect()
    }

    /// The weights as named tensors in Keras terms, block k of the network giving
    /// `bn{k}.gamma`, `bn{k}.beta`, `bn{k}.moving_mean`, `bn{k}.moving_variance` (each `[in]`),
    /// `dense{k}.kernel` (`[in, out]`, row-major) and `dense{k}.bias` (`[out]`).
    pub fn tensors(&self) -> Vec<Tensor> {
        let mut out = Vec::with_capacity(6 * self.blocks.len());
        for (k, Block { bn, dense }) in self.blocks.iter().enumerate() {
            for (name, v) in [
                ("gamma", &bn.gamma),
                ("beta", &bn.beta),
                ("moving_mean", &bn.moving_mean),
                ("moving_variance", &bn.moving_variance),
            ] {
                out.push((format!("bn{k}.{name}"), vec![v.len()], v.to_vec()));
            }
            out.push((
                format!("dense{k}.kernel"),
                dense.kernel.shape().to_vec(),
                dense.kernel.iter().copied().collect(),
            ));
            out.push((format!("dense{k}.bias"), vec![dense.bias.len()], dense.bias.to_vec()));
        }
        out
    }

    /// Rebuilds a head from the tensors of [`tensors`](Self::tensors), in any order. The
    /// architecture comes from the shapes: blocks run while `dense{k}.kernel` exists, each
    /// kernel's rows matching the previous kernel's columns.
    pub fn from_tensors(tensors: Vec<Tensor>) -> Result<Head, HeadError> {
        let mut by_name = BTreeMap::new();
        for (name, shape, data) in tensors {
            if shape.iter().product::<usize>() != data.len() {
                return Err(HeadError::Tensors(format!(
                    "`{name}` has shape {shape:?} but {} values",
                    data.len()
                )));
            }
            if data.iter().any(|v| !v.is_finite()) {
                return Err(HeadError::Tensors(format!("`{name}` holds a NaN or infinite value")));
            }
            if by_name.insert(name.clone(), (shape, data)).is_some() {
                return Err(HeadError::Tensors(format!("`{name}` appears twice")));
            }
        }

        let mut blocks = Vec::new();
        let mut n_in_expected: Option<usize> = None;
        loop {
            let k = blocks.len();
            let kernel_name = format!("dense{k}.kernel");
            let Some((shape, _)) = by_name.get(&kernel_name) else {
                break;
            };
            let (n_in, n_out) = match shape[..] {
                [n_in, n_out] if n_in > 0 && n_out > 0 => (n_in, n_out),
                _ => {
                    return Err(HeadError::Tensors(format!(
                        "`{kernel_name}` has shape {shape:?}; expected [inputs, outputs]"
                    )))
                }
            };
            if let Some(previous) = n_in_expected.filter(|&e| e != n_in) {
                return Err(HeadError::Tensors(format!(
                    "`{kernel_name}` takes {n_in} inputs but the layer before gives {previous}"
                )));
            }
            let mut vector = |part: &str, len: usize| take_tensor(&mut by_name, part, &[len]).map(Array1::from);
            let bn = BatchNorm {
                gamma: vector(&format!("bn{k}.gamma"), n_in)?,
                beta: vector(&format!("bn{k}.beta"), n_in)?,
                moving_mean: vector(&format!("bn{k}.moving_mean"), n_in)?,
                moving_variance: vector(&format!("bn{k}.moving_variance"), n_in)?,
            };
            let bias = vector(&format!("dense{k}.bias"), n_out)?;
            let kernel = take_tensor(&mut by_name, &kernel_name, &[n_in, n_out])?;
            let kernel = Array2::from_shape_vec((n_in, n_out), kernel)
                .map_err(|e| HeadError::Tensors(format!("`{kernel_name}`: {e}")))?;
            if bn.moving_variance.iter().any(|&v| v < 0.0) {
                return Err(HeadError::Tensors(format!(
                    "`bn{k}.moving_variance` has a negative value"
                )));
            }
            blocks.push(Block {
                bn,
                dense: Dense { kernel, bias },
            });
            n_in_expected = Some(n_out);
        }
        if blocks.is_empty() {
            return Err(HeadError::Tensors("`dense0.kernel` is missing".into()));
        }
        if let Some(name) = by_name.keys().next() {
            return Err(HeadError::Tensors(format!(
                "unexpected tensor `{name}` (a head with {} blocks has no such tensor)",
                blocks.len()
            )));
        }
        Ok(Head { blocks })
    }

    /// One optimisation step on the first `b` rows of the loaded batch: forward pass, moving
    /// statistics, backward pass, Adam. Returns Σ_i w(y_i)·loss_i over the batch and the number
    /// of correct training-mode predictions.
    fn train_step(
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
    fn forward_train(&self, ws: &mut Workspace, b: usize, rng: &mut ChaCha8Rng) -> (f64, usize) {
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
    fn update_moving_stats(&mut self, ws: &Workspace) {
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
    /// gradient is never formed: the embeddings are not trained.
    fn backward(&self, ws: &mut Workspace, b: usize, grads: &mut [BlockParams]) {
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
            if k > 0 {
                Zip::from(&mut buf.coef)
                    .and(&bn.gamma)
                    .and(&buf.inv_std)
                    .for_each(|c, &ga, &i| *c = ga * i);
                let mut grad_x = before[k - 1].grad_out.slice_mut(s![..b, ..]);
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

impl Classifier for Head {
    fn n_features(&self) -> usize {
        Head::n_features(self)
    }

    fn n_classes(&self) -> usize {
        Head::n_classes(self)
    }

    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        Head::predict_proba(self, x)
    }

    fn dense_chain(&self) -> Option<DenseChain> {
        Some(DenseChain {
            layers: self.folded_layers(),
            activation: Activation::Softmax,
        })
    }

    fn format(&self) -> Option<&'static str> {
        None
    }

    fn tensors(&self) -> Vec<Tensor> {
        Head::tensors(self)
    }
}

/// Row loss `Σ_c t_c·(lse - z_c)` with smoothed targets `t`; every term is >= 0, which avoids
/// the cancellation of `lse - Σ_c t_c z_c` for large logits.
fn smoothed_cross_entropy(z: ArrayView1<f32>, lse: f32, label: usize, smoothing: f32) -> f32 {
    let off = smoothing / z.len() as f32;
    z.iter()
        .enumerate()
        .map(|(c, &zc)| (off + if c == label { 1.0 - smoothing } else { 0.0 }) * (lse - zc))
        .sum()
}

fn log_sum_exp(z: ArrayView1<f32>) -> f32 {
    let max = z.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    max + z.iter().map(|&v| (v - max).exp()).sum::<f32>().ln()
}

fn take_tensor(
    by_name: &mut BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, HeadError> {
    match by_name.remove(name) {
        Some((s, data)) if s == shape => Ok(data),
        Some((s, _)) => Err(HeadError::Tensors(format!(
            "`{name}` has shape {s:?}, expected {shape:?}"
        ))),
        None => Err(HeadError::Tensors(format!("`{name}` is missing"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{self, ArtifactError};
    use approx::assert_abs_diff_eq;
    use std::fs;
    use std::path::Path;

    fn uniform(rng: &mut ChaCha8Rng, rows: usize, cols: usize, scale: f32) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-scale..scale))
    }

    /// Class c sits at +3 on feature c, with uniform noise on every feature.
    fn blobs(n: usize, n_features: usize, n_classes: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let y: Vec<usize> = (0..n).map(|i| i % n_classes).collect();
        let mut x = uniform(&mut rng, n, n_features, 1.0);
        for (mut row, &c) in x.rows_mut().into_iter().zip(&y) {
            row[c] += 3.0;
        }
        (x, y)
    }

    fn zero_grads(head: &Head) -> Vec<BlockParams> {
        head.blocks.iter().map(BlockParams::zeros).collect()
    }

    const PARAM_NAMES: [&str; 4] = ["bn.gamma", "bn.beta", "dense.kernel", "dense.bias"];

    /// Every trainable parameter of a two-hidden-layer head (so BatchNorm input gradients, ReLU,
    /// dropout, Dense and the smoothed, class-weighted softmax cross-entropy are all on the path)
    /// against central differences of the f32 loss.
    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 6;
        let x = uniform(&mut rng, n, 5, 2.0);
        let y = [0, 1, 2, 1, 0, 2];
        let mut head = Head::init(5, &[4, 3], 3, &mut rng);
        // Away from γ = 1, β = 0, so that a wrong γ or β gradient cannot hide behind symmetry.
        for Block { bn, .. } in &mut head.blocks {
            bn.gamma.mapv_inplace(|_| rng.gen_range(0.5..1.5));
            bn.beta.mapv_inplace(|_| rng.gen_range(-0.5..0.5));
        }
        let mut ws = Workspace::new(&head, n, 0.3, 0.1);
        ws.load_batch(x.view(), &y, &[0, 1, 2, 3, 4, 5], &[1.0, 2.0, 0.5]);
        // Reseeding gives every pass the same dropout masks.
        let loss =
            |head: &Head, ws: &mut Workspace| head.forward_train(ws, n, &mut ChaCha8Rng::seed_from_u64(1)).0 / n as f64;
        loss(&head, &mut ws);
        let mut grads = zero_grads(&head);
        head.backward(&mut ws, n, &mut grads);

        let h = 2e-3;
        for (k, g) in grads.iter().enumerate() {
            for (p, analytic) in g.slices().into_iter().enumerate() {
                for (i, &analytic) in analytic.iter().enumerate() {
                    let original = head.blocks[k].params_mut()[p][i];
                    head.blocks[k].params_mut()[p][i] = original + h;
                    let up = loss(&head, &mut ws);
                    head.blocks[k].params_mut()[p][i] = original - h;
                    let down = loss(&head, &mut ws);
                    head.blocks[k].params_mut()[p][i] = original;
                    let numeric = ((up - down) / (2.0 * f64::from(h))) as f32;
                    assert!(
                        (numeric - analytic).abs() <= 1e-3 + 1e-2 * analytic.abs(),
                        "block {k} {}[{i}]: analytic {analytic}, numeric {numeric}",
                        PARAM_NAMES[p]
                    );
                }
            }
        }
    }

    // Golden values: PyTorch in float64, replicating Keras semantics explicitly, for one batch of
    // 4 with label smoothing 0.1, class weights [1, 2, 0.5], no dropout, then one AdamW step at
    // lr 0.1 with weight decay 0.01. To regenerate, run this snippet (torch 2.x) and paste its
    // output into GOLDEN:
    //
    // import math, torch
    // import torch.nn.functional as F
    // torch.set_default_dtype(torch.float64)
    // t = torch.tensor
    // x = t([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [0.9, -0.4, -1.2]])
    // y = t([0, 2, 1, 2])
    // cw = t([1.0, 2.0, 0.5])  # class weights, applied as per-sample weights as Keras does
    // p = {  # kernels are [in, out] as in Keras
    //     "bn0.gamma": t([1.1, 0.9, 1.2]), "bn0.beta": t([0.1, -0.2, 0.05]),
    //     "dense0.kernel": t([[0.3, -0.5, 0.2, 0.7], [-0.4, 0.6, 0.1, -0.3],
    //                         [0.5, 0.2, -0.6, 0.4]]),
    //     "dense0.bias": t([0.05, -0.05, 0.1, 0.0]),
    //     "bn1.gamma": t([0.8, 1.2, 1.0, 0.9]), "bn1.beta": t([0.0, 0.1, -0.1, 0.2]),
    //     "dense1.kernel": t([[0.4, -0.2, 0.1], [-0.3, 0.5, 0.2], [0.6, 0.1, -0.4],
    //                         [-0.1, -0.3, 0.5]]),
    //     "dense1.bias": t([0.02, -0.01, 0.0]),
    // }
    // for v in p.values():
    //     v.requires_grad_(True)
    // mm = {0: t([0.2, -0.1, 0.3]), 1: t([0.3, 0.2, 0.4, 0.1])}
    // mv = {0: t([1.5, 0.8, 1.2]), 1: t([0.5, 0.9, 1.1, 0.7])}
    //
    // def forward(train):
    //     h, stats = x, []
    //     for k in range(2):
    //         if train:  # Keras normalises with the biased batch variance
    //             mean, var = h.mean(0), h.var(0, unbiased=False)
    //             stats.append((mean.detach(), var.detach()))
    //         else:
    //             mean, var = mm[k], mv[k]
    //         h = (h - mean) / torch.sqrt(var + 1e-3) * p[f"bn{k}.gamma"] + p[f"bn{k}.beta"]
    //         h = h @ p[f"dense{k}.kernel"] + p[f"dense{k}.bias"]
    //         if k == 0:
    //             h = torch.relu(h)
    //     return h, stats
    //
    // def show(name, v):
    //     print(f'("{name}", &{[round(float(a), 9) for a in v.detach().flatten()]}),')
    //
    // show("infer_probs", F.softmax(forward(False)[0], 1))
    // logits, stats = forward(True)
    // # Keras CE: smoothed targets, weighted per sample, divided by the batch size
    // ce = F.cross_entropy(logits, y, label_smoothing=0.1, reduction="none")
    // loss = (cw[y] * ce).sum() / len(y)
    // loss.backward()
    // show("loss", loss.reshape(1))
    // show("train_logits", logits)
    // show("train_probs", F.softmax(logits, 1))
    // for n, v in p.items():
    //     show("grad " + n, v.grad)
    // # Keras Adam adds eps to the uncorrected sqrt(v): at step 1 that is torch's rule with
    // # eps / sqrt(1 - beta2). Decay: kernels only, decoupled (p *= 1 - lr * wd), before the step.
    // kernels = [v for n, v in p.items() if n.endswith("kernel")]
    // others = [v for n, v in p.items() if not n.endswith("kernel")]
    // groups = [{"params": kernels, "weight_decay": 0.01}, {"params": others, "weight_decay": 0.0}]
    // eps = 1e-7 / math.sqrt(1 - 0.999)
    // torch.optim.AdamW(groups, lr=0.1, betas=(0.9, 0.999), eps=eps).step()
    // for n, v in p.items():
    //     show("after " + n, v)
    // for k, (mean, var) in enumerate(stats):  # Keras: 0.99 moving + 0.01 batch (biased var)
    //     show(f"after bn{k}.moving_mean", 0.99 * mm[k] + 0.01 * mean)
    //     show(f"after bn{k}.moving_variance", 0.99 * mv[k] + 0.01 * var)
    #[rustfmt::skip]
    const GOLDEN: &[(&str, &[f64])] = &[
        ("infer_probs", &[0.265267416, 0.090545069, 0.644187514, 0.383220066, 0.286363155, 0.330416779, 0.20936802, 0.398068104, 0.392563875, 0.427632711, 0.323118239, 0.249249049]),
        ("loss", &[1.054593702]),
        ("train_logits", &[-0.047321766, -1.111444763, 1.157627354, 0.503868724, -0.352056027, -0.156751573, -1.411586121, 1.283949477, 0.460027468, 0.595039163, 0.059551314, -0.820903249]),
        ("train_probs", &[0.213601292, 0.073698921, 0.712699787, 0.51508665, 0.218855214, 0.266058136, 0.04481848, 0.663916337, 0.291265183, 0.547021885, 0.320217663, 0.132760453]),
        ("grad bn0.gamma", &[-0.224194834, 0.056087824, 0.190325633]),
        ("grad bn0.beta", &[-0.137972768, 0.061938952, -0.083859491]),
        ("grad dense0.kernel", &[-0.014373715, 0.000467725, -0.012945299, -0.361823654, -0.002945965, -0.000305696, -0.014019718, -0.128327515, 0.006667088, -3.1897e-05, -0.009767264, 0.537525656]),
        ("grad dense0.bias", &[-0.008965804, -0.000321348, 0.002682287, -0.194257369]),
        ("grad bn1.gamma", &[-0.134984338, -0.102797598, 0.389248653, 0.052354137]),
        ("grad bn1.beta", &[0.004741836, 0.005210204, -0.082543366, 0.082309182]),
        ("grad dense1.kernel", &[-0.307701785, 0.052256451, 0.255445334, 0.04532983, -0.333903942, 0.288574113, 0.302719507, 0.189566965, -0.492286472, -0.250024283, 0.108042513, 0.14198177]),
        ("grad dense1.bias", &[-0.049760204, -0.065566325, 0.115326529]),
        ("after bn0.gamma", &[1.19999859, 0.800005638, 1.100001661]),
        ("after bn0.beta", &[0.199997708, -0.299994895, 0.149996229]),
        ("after dense0.kernel", &[0.399678004, -0.598828442, 0.299775578, 0.799299126, -0.299707228, 0.698376139, 0.199877449, -0.199702464, 0.399547409, 0.290780322, -0.499432366, 0.299600588]),
        ("after dense0.bias", &[0.149964742, 0.049025523, 0.000117756, 0.099998372]),
        ("after bn1.gamma", &[0.899997657, 1.299996924, 0.900000812, 0.80000604]),
        ("after bn1.beta", &[-0.099933356, 6.0657e-05, -3.831e-06, 0.100003842]),
        ("after dense1.kernel", &[0.499598972, -0.299793949, -9.8762e-05, -0.399693024, 0.599499053, 0.099801096, 0.499401045, -9.8332e-05, -0.299600642, 9.8735e-05, -0.399697073, 0.399502227]),
        ("after dense1.bias", &[0.119993645, 0.089995177, -0.099997258]),
        ("after bn0.moving_mean", &[0.20475, -0.09975, 0.2975]),
        ("after bn0.moving_variance", &[1.48881875, 0.79666875, 1.202825]),
        ("after bn1.moving_mean", &[0.300993154, 0.201170954, 0.400255441, 0.103661347]),
        ("after bn1.moving_variance", &[0.499336006, 0.894016485, 1.090810999, 0.69502134]),
    ];

    fn golden(name: &str) -> &'static [f64] {
        GOLDEN.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap()
    }

    fn assert_golden(name: &str, got: &[f32], tolerance: f64) {
        let want = golden(name);
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!((f64::from(g) - w).abs() <= tolerance, "{name}[{i}]: got {g}, want {w}");
        }
    }

    /// The head of the snippet: hidden [4], 3 classes, explicit weights and moving statistics.
    fn golden_head() -> Head {
        let vector = |name: &str, v: &[f32]| (name.to_string(), vec![v.len()], v.to_vec());
        let matrix = |name: &str, rows: usize, v: &[f32]| (name.to_string(), vec![rows, v.len() / rows], v.to_vec());
        Head::from_tensors(vec![
            vector("bn0.gamma", &[1.1, 0.9, 1.2]),
            vector("bn0.beta", &[0.1, -0.2, 0.05]),
            vector("bn0.moving_mean", &[0.2, -0.1, 0.3]),
            vector("bn0.moving_variance", &[1.5, 0.8, 1.2]),
            matrix(
                "dense0.kernel",
                3,
                &[0.3, -0.5, 0.2, 0.7, -0.4, 0.6, 0.1, -0.3, 0.5, 0.2, -0.6, 0.4],
            ),
            vector("dense0.bias", &[0.05, -0.05, 0.1, 0.0]),
            vector("bn1.gamma", &[0.8, 1.2, 1.0, 0.9]),
            vector("bn1.beta", &[0.0, 0.1, -0.1, 0.2]),
            vector("bn1.moving_mean", &[0.3, 0.2, 0.4, 0.1]),
            vector("bn1.moving_variance", &[0.5, 0.9, 1.1, 0.7]),
            matrix(
                "dense1.kernel",
                4,
                &[0.4, -0.2, 0.1, -0.3, 0.5, 0.2, 0.6, 0.1, -0.4, -0.1, -0.3, 0.5],
            ),
            vector("dense1.bias", &[0.02, -0.01, 0.0]),
        ])
        .unwrap()
    }

    #[test]
    fn forward_and_one_adam_step_match_pytorch() {
        let x = ndarray::array![
            [0.5f32, -1.0, 2.0],
            [1.5, 0.3, -0.7],
            [-0.2, 0.8, 0.1],
            [0.9, -0.4, -1.2]
        ];
        let y = [0, 2, 1, 2];
        let mut head = golden_head();
        assert_golden("infer_probs", head.predict_proba(x.view()).as_slice().unwrap(), 1e-6);

        let mut ws = Workspace::new(&head, 4, 0.0, 0.1);
        ws.load_batch(x.view(), &y, &[0, 1, 2, 3], &[1.0, 2.0, 0.5]);
        let mut grads = zero_grads(&head);
        let mut adam = Adam::new(&head, 0.1, 0.01);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (loss_sum, _) = head.train_step(&mut ws, 4, &mut rng, &mut grads, &mut adam);

        assert_golden("loss", &[(loss_sum / 4.0) as f32], 1e-6);
        let logits = ws.blocks[1].out.view();
        assert_golden("train_logits", logits.as_slice().unwrap(), 1e-6);
        let probs: Vec<f32> = logits
            .rows()
            .into_iter()
            .flat_map(|z| {
                let lse = log_sum_exp(z);
                z.iter().map(|&v| (v - lse).exp()).collect::<Vec<_>>()
            })
            .collect();
        assert_golden("train_probs", &probs, 1e-6);
        for (k, g) in grads.iter().enumerate() {
            let names = ["bn{k}.gamma", "bn{k}.beta", "dense{k}.kernel", "dense{k}.bias"];
            for (name, values) in names.iter().zip(g.slices()) {
                let name = name.replace("{k}", &k.to_string());
                assert_golden(&format!("grad {name}"), values, 1e-6);
            }
        }
        // Adam near ε (gradients of ~3e-5) amplifies f32 rounding of the gradient, hence 1e-5.
        for (name, _, values) in head.tensors() {
            assert_golden(&format!("after {name}"), &values, 1e-5);
        }
    }

    fn bits(head: &Head) -> Vec<(String, Vec<u32>)> {
        let tensors = head.tensors().into_iter();
        tensors
            .map(|(n, _, v)| (n, v.iter().map(|x| x.to_bits()).collect()))
            .collect()
    }

    #[test]
    fn same_seed_gives_bit_identical_training() {
        let (x, y) = blobs(150, 12, 3, 1);
        let (vx, vy) = blobs(40, 12, 3, 2);
        let fit = |seed| {
            let params = HeadParams::default().hidden(vec![16, 8]).epochs(3).batch_size(7);
            let valid = Some((vx.view(), &vy[..]));
            params.seed(seed).fit(x.view(), &y, 3, valid, &mut |_| {}).unwrap()
        };
        let (a, b) = (fit(5), fit(5));
        assert_eq!(bits(&a.head), bits(&b.head));
        let strip = |h: &[EpochStats]| {
            let figures = h.iter().map(|e| (e.train_loss, e.train_accuracy, e.val_loss));
            figures
                .map(|(l, a, v)| (l.to_bits(), a.to_bits(), v.map(f32::to_bits)))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&a.history), strip(&b.history));
        assert_ne!(bits(&a.head), bits(&fit(6).head));
    }

    #[test]
    fn learns_a_separable_problem() {
        let (x, y) = blobs(300, 10, 3, 3);
        let (tx, ty) = blobs(300, 10, 3, 4);
        let mut epochs_seen = 0;
        let fitted = HeadParams::default()
            .epochs(10)
            .fit(x.view(), &y, 3, None, &mut |_| epochs_seen += 1)
            .unwrap();
        assert_eq!((epochs_seen, fitted.best_epoch), (10, 10));
        let history = &fitted.history;
        assert!(history[9].train_loss < history[0].train_loss);
        let (_, accuracy) = fitted.head.evaluate(tx.view(), &ty, 0.0);
        assert!(accuracy > 0.95, "held-out accuracy {accuracy}");
        let p = fitted.head.predict_proba(tx.view());
        for row in p.rows() {
            assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-5);
        }
    }

    #[test]
    fn linear_head_trains_too() {
        let (x, y) = blobs(200, 6, 4, 5);
        let fitted = HeadParams::default()
            .hidden(vec![])
            .learning_rate(0.01)
            .epochs(20)
            .fit(x.view(), &y, 4, None, &mut |_| {})
            .unwrap();
        assert!(fitted.head.hidden().is_empty());
        let (_, accuracy) = fitted.head.evaluate(x.view(), &y, 0.0);
        assert!(accuracy > 0.9, "accuracy {accuracy}");
    }

    /// Random labels: the validation loss soon rises, so training stops `patience` epochs after
    /// its minimum and returns the weights of that epoch.
    #[test]
    fn early_stopping_restores_the_best_epoch() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let x = uniform(&mut rng, 200, 20, 1.0);
        let y: Vec<usize> = (0..200).map(|_| rng.gen_range(0..3)).collect();
        let vx = uniform(&mut rng, 100, 20, 1.0);
        let vy: Vec<usize> = (0..100).map(|_| rng.gen_range(0..3)).collect();
        let fitted = HeadParams::default()
            .hidden(vec![64])
            .dropout(0.0)
            .learning_rate(0.01)
            .epochs(60)
            .early_stopping(Some(3))
            .fit(x.view(), &y, 3, Some((vx.view(), &vy)), &mut |_| {})
            .unwrap();
        let losses: Vec<f32> = fitted.history.iter().map(|e| e.val_loss.unwrap()).collect();
        let best = (0..losses.len()).fold(0, |b, i| if losses[i] < losses[b] { i } else { b });
        assert_eq!(fitted.best_epoch, best + 1);
        assert_eq!(fitted.history.len(), fitted.best_epoch + 3, "losses {losses:?}");
        let (restored_loss, _) = fitted.head.evaluate(vx.view(), &vy, 0.0);
        assert_eq!(restored_loss, losses[best]);
    }

    #[test]
    fn folded_layers_reproduce_predict_proba() {
        let (x, y) = blobs(100, 8, 3, 6);
        let head = HeadParams::default()
            .hidden(vec![16, 8])
            .fit(x.view(), &y, 3, None, &mut |_| {})
            .unwrap()
            .head;
        let mut h = x.clone();
        for layer in head.folded_layers() {
            h = h.dot(&layer.weight) + &layer.bias;
            if layer.relu {
                h.mapv_inplace(|v| v.max(0.0));
            }
        }
        let mut folded = h;
        for mut row in folded.rows_mut() {
            let lse = log_sum_exp(row.view());
            row.mapv_inplace(|v| (v - lse).exp());
        }
        let expected = head.predict_proba(x.view());
        for (&f, &e) in folded.iter().zip(&expected) {
            assert_abs_diff_eq!(f, e, epsilon = 1e-5);
        }
    }

    #[test]
    fn tensors_and_files_round_trip() {
        let head = golden_head();
        assert_eq!(Head::from_tensors(head.tensors()).unwrap(), head);
        assert_eq!((head.n_features(), head.hidden(), head.n_classes()), (3, vec![4], 3));

        let dir = std::env::temp_dir().join(format!("headstart-head-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("head.safetensors");
        let metadata = BTreeMap::from([("classes".to_string(), "[\"a\",\"b\",\"c\"]".to_string())]);
        let loaded = |path: &Path| {
            let (classifier, metadata) = artifact::load(path).unwrap();
            (classifier.tensors(), metadata)
        };
        artifact::save(&path, &head, metadata.clone()).unwrap();
        assert_eq!(loaded(&path), (head.tensors(), metadata));
        artifact::save(&path, &head, BTreeMap::new()).unwrap();
        assert_eq!(loaded(&path), (head.tensors(), BTreeMap::new()));
        let files: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, ["head.safetensors"], "no temporary file is left behind");

        fs::write(&path, b"not a safetensors file").unwrap();
        assert!(matches!(artifact::load(&path), Err(ArtifactError::Format { path: p, .. }) if p == path));
        fs::remove_dir_all(&dir).unwrap();
        let missing = dir.join("head.safetensors");
        assert!(matches!(artifact::load(&missing), Err(ArtifactError::Read { path: p, .. }) if p == missing));
        // A missing folder is created; a folder that cannot exist is a write error.
        artifact::save(&missing, &golden_head(), BTreeMap::new()).unwrap();
        let under_a_file = missing.join("head.safetensors");
        assert!(matches!(
            artifact::save(&under_a_file, &golden_head(), BTreeMap::new()),
            Err(ArtifactError::Write(e)) if e.path == under_a_file
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inconsistent_tensors_are_rejected() {
        let tensors = golden_head().tensors();
        let without = |name: &str| tensors.iter().filter(|t| t.0 != name).cloned().collect();
        let message = |t: Vec<_>| Head::from_tensors(t).unwrap_err().to_string();
        assert!(message(without("bn1.beta")).contains("`bn1.beta` is missing"));
        assert!(message(without("dense0.kernel")).contains("`dense0.kernel` is missing"));
        // Without dense1.kernel the head would end at block 0, leaving block 1's tensors over.
        assert!(message(without("dense1.kernel")).contains("unexpected tensor"));
        let mut wrong = tensors.clone();
        wrong[0].1 = vec![1, 3];
        assert!(message(wrong).contains("`bn0.gamma` has shape [1, 3], expected [3]"));
    }

    #[test]
    fn balanced_class_weights() {
        let x = Array2::zeros((4, 2));
        let params = HeadParams::default().class_weights(ClassWeights::Balanced);
        let weights = params.check(x.view(), &[0, 0, 0, 1], 3, None).unwrap();
        assert_eq!(weights, [4.0 / 9.0, 4.0 / 3.0, 0.0]);
    }

    #[test]
    fn invalid_parameters_and_data_are_errors() {
        let (x, y) = blobs(10, 4, 2, 9);
        let fit = |params: HeadParams| params.fit(x.view(), &y, 2, None, &mut |_| {}).unwrap_err();
        let p = HeadParams::default;
        assert!(matches!(fit(p().epochs(0)), HeadError::Epochs(0)));
        assert!(matches!(fit(p().batch_size(0)), HeadError::BatchSize(0)));
        let lr = fit(p().learning_rate(-1.0));
        assert!(matches!(lr, HeadError::LearningRate(_)));
        assert!(lr
            .to_string()
            .starts_with("learning rate must be a finite number > 0 (got -1)"));
        assert!(matches!(fit(p().learning_rate(f32::NAN)), HeadError::LearningRate(_)));
        assert!(matches!(fit(p().hidden(vec![8, 0])), HeadError::Hidden(_)));
        assert!(matches!(fit(p().dropout(1.0)), HeadError::Dropout(_)));
        assert!(matches!(fit(p().dropout(-0.1)), HeadError::Dropout(_)));
        assert!(matches!(fit(p().weight_decay(-1e-4)), HeadError::WeightDecay(_)));
        assert!(matches!(fit(p().label_smoothing(1.5)), HeadError::LabelSmoothing(_)));
        let given = |w: Vec<f32>| p().class_weights(ClassWeights::Given(w));
        assert!(matches!(fit(given(vec![1.0])), HeadError::ClassWeights { .. }));
        assert!(matches!(fit(given(vec![1.0, -1.0])), HeadError::ClassWeights { .. }));
        assert!(matches!(fit(given(vec![0.0, 0.0])), HeadError::ClassWeights { .. }));
        assert!(matches!(
            fit(p().early_stopping(Some(3))),
            HeadError::EarlyStoppingWithoutValidation
        ));
        let valid = Some((x.view(), &y[..]));
        let patience = p().early_stopping(Some(0)).fit(x.view(), &y, 2, valid, &mut |_| {});
        assert!(matches!(patience, Err(HeadError::Patience)));

        let data = |x: ArrayView2<f32>, y: &[usize], n_classes, valid| {
            p().fit(x, y, n_classes, valid, &mut |_| {}).unwrap_err()
        };
        assert!(matches!(data(x.view(), &y, 1, None), HeadError::TooFewClasses(1)));
        assert!(matches!(
            data(x.view(), &y[1..], 2, None),
            HeadError::Set(SetError::LabelCount { .. })
        ));
        let mut labels = y.clone();
        labels[3] = 2;
        let out_of_range = data(x.view(), &labels, 2, None);
        assert!(matches!(
            out_of_range,
            HeadError::Set(SetError::LabelOutOfRange { row: 3, label: 2, .. })
        ));
        let mut nan = x.clone();
        nan[[2, 1]] = f32::NAN;
        assert!(matches!(
            data(nan.view(), &y, 2, None),
            HeadError::Set(SetError::NonFinite { row: 2, col: 1, .. })
        ));
        let narrow = x.slice(s![.., ..3]);
        let mismatch = data(x.view(), &y, 2, Some((narrow, &y[..])));
        assert!(matches!(
            mismatch,
            HeadError::FeatureCount {
                set: "validation",
                expected: 4,
                got: 3
            }
        ));
        assert!(matches!(
            data(x.slice(s![..0, ..]), &[], 2, None),
            HeadError::EmptySet { .. }
        ));
    }

    #[test]
    fn divergence_is_an_error_not_nan_weights() {
        let (x, y) = blobs(64, 4, 2, 10);
        let result = HeadParams::default()
            .learning_rate(1e30)
            .epochs(50)
            .fit(x.view(), &y, 2, None, &mut |_| {});
        assert!(matches!(result, Err(HeadError::Diverged { .. })));
    }
}
