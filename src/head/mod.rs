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
//! For multi-label data ([`HeadParams::fit_multi_label`]) the outputs are independent sigmoids
//! and the loss is binary cross-entropy averaged over the batch and the K labels, as PyTorch's
//! `BCEWithLogitsLoss` and Keras' `binary_crossentropy` average it; smoothing pulls each 0/1
//! target toward 1/2:
//! ```text
//! t_ic = (1 - s)·y_ic + s / 2
//! L    = (1/(B·K)) Σ_i Σ_c [max(z_ic, 0) - z_ic·t_ic + ln(1 + exp(-|z_ic|))]
//! ∂L/∂z_ic = (sigmoid(z_ic) - t_ic) / (B·K)
//! ```
//! Its "accuracy" is the share of (image, label) decisions right at probability 1/2.
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

use std::time::Instant;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::classifier::{
    argmax, check_targets, Activation, Classifier, DenseChain, DenseLayer, SetError, Targets, Tensor,
};

pub(crate) mod adam;
mod io;
mod layers;
mod stepper;
mod workspace;

use adam::{Adam, BlockParams};
use layers::{BatchNorm, Block, Dense, BN_EPSILON};
pub(crate) use stepper::Stepper;
use workspace::Workspace;

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
/// 5 epochs, no weight decay, smoothing or class weights, no early stopping, seed 42. The CLI's
/// flags take their defaults from here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadParams {
    /// Passes over the training set, >= 1; fewer when early stopping ends training first.
    pub epochs: usize,
    /// Rows per gradient step, >= 1 (capped at the training set's size).
    pub batch_size: usize,
    /// Adam's step size, finite and > 0.
    pub learning_rate: f32,
    /// Sizes of the hidden ReLU layers; empty for a linear head.
    pub hidden: Vec<usize>,
    /// Dropout rate p in [0, 1), before every Dense layer.
    pub dropout: f32,
    /// Decoupled (AdamW) weight decay λ on the Dense kernels.
    pub weight_decay: f32,
    /// Label smoothing s in [0, 1].
    pub label_smoothing: f32,
    /// How much each class counts in the training loss.
    pub class_weights: ClassWeights,
    /// Patience in epochs: stop after this many epochs without a lower validation loss and
    /// restore the weights of the best epoch. Needs a validation set.
    pub early_stopping: Option<usize>,
    /// Seeds the initial weights, the shuffles and the dropout masks.
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
            seed: 42,
        }
    }
}

impl HeadParams {
    /// Sets [`epochs`](Self::epochs).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }
    /// Sets [`batch_size`](Self::batch_size).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }
    /// Sets [`learning_rate`](Self::learning_rate).
    pub fn learning_rate(mut self, learning_rate: f32) -> Self {
        self.learning_rate = learning_rate;
        self
    }
    /// Sets [`hidden`](Self::hidden); an empty list gives a linear head.
    pub fn hidden(mut self, hidden: Vec<usize>) -> Self {
        self.hidden = hidden;
        self
    }
    /// Sets [`dropout`](Self::dropout).
    pub fn dropout(mut self, dropout: f32) -> Self {
        self.dropout = dropout;
        self
    }
    /// Sets [`weight_decay`](Self::weight_decay).
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }
    /// Sets [`label_smoothing`](Self::label_smoothing).
    pub fn label_smoothing(mut self, label_smoothing: f32) -> Self {
        self.label_smoothing = label_smoothing;
        self
    }
    /// Sets [`class_weights`](Self::class_weights).
    pub fn class_weights(mut self, class_weights: ClassWeights) -> Self {
        self.class_weights = class_weights;
        self
    }
    /// Sets [`early_stopping`](Self::early_stopping): `Some(patience)` in epochs, `None` to train every epoch.
    pub fn early_stopping(mut self, patience: Option<usize>) -> Self {
        self.early_stopping = patience;
        self
    }
    /// Sets [`seed`](Self::seed).
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
        let all: Vec<usize> = (0..x.nrows()).collect();
        self.fit_rows(x, y, &all, n_classes, valid, on_epoch)
    }

    /// [`fit`](Self::fit) on the rows `rows` of `x` (and their labels in `y`), without copying
    /// them: batches are gathered from `x` as they are drawn. The head equals the one `fit`
    /// trains on `x.select(Axis(0), rows)` with the same seed, bit for bit, so k-fold trials
    /// share one copy of the embeddings.
    pub fn fit_rows(
        &self,
        x: ArrayView2<f32>,
        y: &[usize],
        rows: &[usize],
        n_classes: usize,
        valid: Option<(ArrayView2<f32>, &[usize])>,
        on_epoch: &mut dyn FnMut(&EpochStats),
    ) -> Result<Fitted, HeadError> {
        let valid = valid.map(|(vx, vy)| (vx, Targets::Classes(vy)));
        self.train(x, Targets::Classes(y), rows, None, n_classes, valid, on_epoch)
    }

    /// [`fit`](Self::fit) where each training image has several rows of `x` (its views), and each
    /// epoch trains on one of them, drawn uniformly per image: `views[i]` lists image i's rows,
    /// at least one. `y` (classes or label sets) has a value per row of `x`. With one row per
    /// image this trains the same head as `fit` on those rows, bit for bit; the draws come from
    /// the same generator, after each epoch's shuffle.
    pub fn fit_views(
        &self,
        x: ArrayView2<f32>,
        y: Targets,
        views: &[Vec<usize>],
        n_classes: usize,
        valid: Option<(ArrayView2<f32>, Targets)>,
        on_epoch: &mut dyn FnMut(&EpochStats),
    ) -> Result<Fitted, HeadError> {
        if let Some(image) = views.iter().position(Vec::is_empty) {
            return Err(HeadError::NoViews { image });
        }
        let first: Vec<usize> = views.iter().map(|v| v[0]).collect();
        if let Some(&row) = views.iter().flatten().find(|&&row| row >= x.nrows()) {
            return Err(HeadError::RowOutOfRange { row, rows: x.nrows() });
        }
        let draw = views.iter().any(|v| v.len() > 1).then_some(views);
        self.train(x, y, &first, draw, n_classes, valid, on_epoch)
    }

    /// [`fit`](Self::fit) for multi-label data: `y` is `[rows, labels]` with 1 where the image
    /// has the label, the outputs are sigmoids and the loss binary cross-entropy (see the module
    /// docs). Class weights are not used with it.
    pub fn fit_multi_label(
        &self,
        x: ArrayView2<f32>,
        y: ArrayView2<f32>,
        valid: Option<(ArrayView2<f32>, ArrayView2<f32>)>,
        on_epoch: &mut dyn FnMut(&EpochStats),
    ) -> Result<Fitted, HeadError> {
        let all: Vec<usize> = (0..x.nrows()).collect();
        let valid = valid.map(|(vx, vy)| (vx, Targets::Sets(vy)));
        self.train(x, Targets::Sets(y), &all, None, y.ncols(), valid, on_epoch)
    }

    /// `rows` are the training images' rows; with `views`, each epoch replaces image i's row by
    /// one of `views[i]`, drawn after the shuffle.
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        x: ArrayView2<f32>,
        y: Targets,
        rows: &[usize],
        views: Option<&[Vec<usize>]>,
        n_classes: usize,
        valid: Option<(ArrayView2<f32>, Targets)>,
        on_epoch: &mut dyn FnMut(&EpochStats),
    ) -> Result<Fitted, HeadError> {
        if let Some(&row) = rows.iter().find(|&&row| row >= x.nrows()) {
            return Err(HeadError::RowOutOfRange { row, rows: x.nrows() });
        }
        let class_weight = self.check(x, y, rows, n_classes, valid)?;
        let n = rows.len();
        // Multi-label accuracy counts every (image, label) decision.
        let decisions = if y.is_multi_label() { n * n_classes } else { n };
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut head = Head::init(x.ncols(), &self.hidden, n_classes, y.is_multi_label(), &mut rng);
        let batch_size = self.batch_size.min(n);
        let mut ws = Workspace::new(&head, batch_size, self.dropout, self.label_smoothing, false);
        let mut grads: Vec<BlockParams> = head.blocks.iter().map(BlockParams::zeros).collect();
        let mut adam = Adam::new(&head, self.learning_rate, self.weight_decay);
        // Shuffling the images' positions permutes them exactly as shuffling the rows did.
        let mut order: Vec<usize> = (0..n).collect();
        let mut drawn: Vec<usize> = rows.to_vec();
        let mut history = Vec::with_capacity(self.epochs);
        let mut best = Best::default();

        for epoch in 1..=self.epochs {
            let start = Instant::now();
            order.shuffle(&mut rng);
            for (slot, &image) in drawn.iter_mut().zip(&order) {
                *slot = match views {
                    Some(views) => views[image][rng.gen_range(0..views[image].len())],
                    None => rows[image],
                };
            }
            let mut loss_sum = 0.0f64;
            let mut correct = 0usize;
            for rows in drawn.chunks(batch_size) {
                ws.load_batch(x, y, rows, &class_weight);
                let (batch_loss, batch_correct) = head.train_step(&mut ws, rows.len(), &mut rng, &mut grads, &mut adam);
                loss_sum += batch_loss;
                correct += batch_correct;
            }
            let train_loss = (loss_sum / n as f64) as f32;
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
                train_accuracy: correct as f32 / decisions as f32,
                val_loss,
                val_accuracy,
                seconds: start.elapsed().as_secs_f32(),
            };
            on_epoch(&stats);
            history.push(stats);

            if let (Some(patience), Some(loss)) = (self.early_stopping, val_loss) {
                if best.after_epoch(patience, loss, epoch, || head.clone()) {
                    break;
                }
            }
        }

        let last_epoch = history.len();
        let (head, best_epoch) = match best.take() {
            Some((epoch, best_head)) => (best_head, epoch),
            None => (head, last_epoch),
        };
        Ok(Fitted {
            head,
            history,
            best_epoch,
        })
    }

    /// Validates parameters and data; returns the weight of each class in the training loss.
    /// The rows `rows` of `x` are trained on.
    fn check(
        &self,
        x: ArrayView2<f32>,
        y: Targets,
        rows: &[usize],
        n_classes: usize,
        valid: Option<(ArrayView2<f32>, Targets)>,
    ) -> Result<Vec<f32>, HeadError> {
        let n_train = rows.len();
        self.check_params(valid.is_some(), n_classes)?;
        if n_train == 0 || x.ncols() == 0 {
            return Err(HeadError::EmptySet {
                set: "training",
                rows: n_train,
                cols: x.ncols(),
            });
        }
        check_targets("training", x, y, n_classes)?;
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
            check_targets("validation", vx, vy, n_classes)?;
        }

        let train_labels: Vec<usize> = match y {
            Targets::Classes(y) => rows.iter().map(|&i| y[i]).collect(),
            Targets::Sets(_) if self.class_weights != ClassWeights::None => {
                return Err(HeadError::ClassWeights {
                    reason: "multi-label data has no single class per image to weigh".into(),
                    n_classes,
                })
            }
            Targets::Sets(_) => Vec::new(),
        };
        self.class_weight(&train_labels, n_classes)
    }

    /// Checks the parameters alone, for training with or without a validation set.
    pub(crate) fn check_params(&self, has_valid: bool, n_classes: usize) -> Result<(), HeadError> {
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
        match (self.early_stopping, has_valid) {
            (Some(0), _) => return Err(HeadError::Patience),
            (Some(_), false) => return Err(HeadError::EarlyStoppingWithoutValidation),
            _ => {}
        }
        if n_classes < 2 {
            return Err(HeadError::TooFewClasses(n_classes));
        }
        Ok(())
    }

    /// The weight of each class in the training loss, for training labels `train_labels`.
    pub(crate) fn class_weight(&self, train_labels: &[usize], n_classes: usize) -> Result<Vec<f32>, HeadError> {
        let class_weight = match &self.class_weights {
            ClassWeights::None => vec![1.0; n_classes],
            ClassWeights::Balanced => {
                let mut counts = vec![0usize; n_classes];
                for &label in train_labels {
                    counts[label] += 1;
                }
                counts
                    .iter()
                    .map(|&c| match c {
                        0 => 0.0,
                        c => train_labels.len() as f32 / (n_classes * c) as f32,
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

/// Early stopping's record: the epoch with the lowest validation loss so far, and what was
/// kept of it.
pub(crate) struct Best<T>(Option<(f32, usize, T)>);

impl<T> Default for Best<T> {
    fn default() -> Self {
        Best(None)
    }
}

impl<T> Best<T> {
    /// After epoch `epoch` with validation loss `loss`: keeps `snapshot()` when the loss is the
    /// lowest yet; returns whether `patience` epochs have passed without one, so training stops.
    pub(crate) fn after_epoch(
        &mut self,
        patience: usize,
        loss: f32,
        epoch: usize,
        snapshot: impl FnOnce() -> T,
    ) -> bool {
        // A NaN validation loss never counts as an improvement.
        let improved = self.0.as_ref().map_or(loss.is_finite(), |(b, _, _)| loss < *b);
        if improved {
            self.0 = Some((loss, epoch, snapshot()));
        }
        !improved && epoch - self.0.as_ref().map_or(0, |(_, e, _)| *e) >= patience
    }

    /// Whether an epoch has been kept.
    pub(crate) fn is_kept(&self) -> bool {
        self.0.is_some()
    }

    /// The kept epoch's number and snapshot.
    pub(crate) fn take(self) -> Option<(usize, T)> {
        self.0.map(|(_, epoch, kept)| (epoch, kept))
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
    /// Mean training loss over the epoch's samples, in training mode (dropout, smoothing and class weights applied).
    pub train_loss: f32,
    /// Share of training samples, in [0, 1], whose largest logit was the true class during the epoch's steps.
    pub train_accuracy: f32,
    /// Validation loss after the epoch, in inference mode; `None` without a validation set.
    pub val_loss: Option<f32>,
    /// Validation accuracy in [0, 1] after the epoch; `None` without a validation set.
    pub val_accuracy: Option<f32>,
    /// Wall time of the epoch, validation included.
    pub seconds: f32,
}

/// A trained head with its training history.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The trained head, with the weights of [`best_epoch`](Self::best_epoch).
    pub head: Head,
    /// One entry per epoch trained, in order.
    pub history: Vec<EpochStats>,
    /// The 1-based epoch whose weights `head` holds: the lowest validation loss under early
    /// stopping, otherwise the last epoch trained.
    pub best_epoch: usize,
}

/// Why a head could not be trained, saved or loaded. Parameter errors name the [`HeadParams`]
/// field in backticks (see [`HeadError::parameter`]), so a front end can name its own flag.
#[derive(thiserror::Error, Debug)]
pub enum HeadError {
    /// `epochs` is 0.
    #[error("epochs must be >= 1 (got {0}): set `epochs` to a positive count")]
    Epochs(usize),
    /// `batch_size` is 0.
    #[error("batch size must be >= 1 (got {0}): set `batch_size` to a positive count such as 32")]
    BatchSize(usize),
    /// `learning_rate` is not finite or not > 0.
    #[error(
        "learning rate must be a finite number > 0 (got {0}): set `learning_rate` to a positive value such as 0.001"
    )]
    LearningRate(f32),
    /// A hidden layer size is 0.
    #[error("hidden layer sizes must all be >= 1 (got {0:?}): set `hidden` to positive sizes such as 512, or to none for a linear head")]
    Hidden(Vec<usize>),
    /// `dropout` is outside [0, 1).
    #[error("dropout must be in [0, 1) (got {0}): set `dropout` to a value such as 0.5, or 0 to turn it off")]
    Dropout(f32),
    /// `weight_decay` is not finite or is negative.
    #[error(
        "weight decay must be a finite number >= 0 (got {0}): set `weight_decay` to 0 or a small value such as 0.004"
    )]
    WeightDecay(f32),
    /// `label_smoothing` is outside [0, 1].
    #[error("label smoothing must be in [0, 1] (got {0}): set `label_smoothing` to a value such as 0.1, or 0 to turn it off")]
    LabelSmoothing(f32),
    /// Given class weights are not one finite weight >= 0 per class.
    #[error("class weights are invalid ({reason}): set `class_weights` to balanced, or to one finite weight >= 0 per class ({n_classes} classes)")]
    ClassWeights {
        /// What is wrong with them.
        reason: String,
        /// The number of classes, i.e. how many weights are needed.
        n_classes: usize,
    },
    /// Early-stopping patience is 0.
    #[error("early-stopping patience must be >= 1 (got 0): set `early_stopping` to a positive number of epochs, or leave it out to train every epoch")]
    Patience,
    /// Early stopping was asked for without a validation set.
    #[error("early stopping watches the validation loss, but there is no validation set: give the data a validation split, or leave out `early_stopping`")]
    EarlyStoppingWithoutValidation,
    /// The data has fewer than 2 classes.
    #[error("a classifier needs at least 2 classes (got {0}): add images of another class")]
    TooFewClasses(usize),
    /// `fit_views` was given an image without rows.
    #[error("training image {image} has no rows: every image needs at least its plain vector")]
    NoViews {
        /// The image's position in the list of views.
        image: usize,
    },
    /// `fit_rows` was given a row index past the end of `x`.
    #[error("training row {row} is out of range: the embeddings have {rows} rows")]
    RowOutOfRange {
        /// The offending row index.
        row: usize,
        /// The number of rows of `x`.
        rows: usize,
    },
    /// The training or validation set has no rows or no features.
    #[error(
        "the {set} set is empty ({rows} embeddings of {cols} features): it needs at least one embedding with features"
    )]
    EmptySet {
        /// Which set: `training` or `validation`.
        set: &'static str,
        /// Its number of embeddings.
        rows: usize,
        /// Its number of features.
        cols: usize,
    },
    /// The validation set's embeddings are not as wide as the training set's.
    #[error("the {set} set has {got} features per embedding but the head expects {expected}: embed every set with the same backbone")]
    FeatureCount {
        /// Which set.
        set: &'static str,
        /// The width the head was built for.
        expected: usize,
        /// The set's width.
        got: usize,
    },
    /// The labels or features of a set are unusable (a label out of range, a length mismatch, a non-finite value).
    #[error(transparent)]
    Set(#[from] SetError),
    /// The training loss became NaN or infinite.
    #[error("training diverged in epoch {epoch} (the training loss became {loss}): set a smaller `learning_rate`")]
    Diverged {
        /// The 1-based epoch in which it happened.
        epoch: usize,
        /// The non-finite loss.
        loss: f32,
    },
    /// Loaded tensors do not form a valid head (missing, misshapen or mismatched layers).
    #[error("the head tensors are inconsistent: {0}")]
    Tensors(String),
}

impl HeadError {
    /// The [`HeadParams`] field this error is about, as its message names it in backticks;
    /// `None` for errors about the data or files.
    pub fn parameter(&self) -> Option<&'static str> {
        Some(match self {
            HeadError::Epochs(_) => "epochs",
            HeadError::BatchSize(_) => "batch_size",
            HeadError::LearningRate(_) | HeadError::Diverged { .. } => "learning_rate",
            HeadError::Hidden(_) => "hidden",
            HeadError::Dropout(_) => "dropout",
            HeadError::WeightDecay(_) => "weight_decay",
            HeadError::LabelSmoothing(_) => "label_smoothing",
            HeadError::ClassWeights { .. } => "class_weights",
            HeadError::Patience | HeadError::EarlyStoppingWithoutValidation => "early_stopping",
            _ => return None,
        })
    }
}

/// The trained network. Cloning copies the weights (a few MB at most).
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    blocks: Vec<Block>,
    /// Sigmoid outputs, one probability per label, instead of a softmax over classes.
    multi_label: bool,
}

/// The format marker of a multi-label head's file; a single-label head's file has none (see
/// [`crate::artifact`]).
pub const MULTI_LABEL_FORMAT: &str = "head-multi-label/1";

impl Head {
    fn init(n_features: usize, hidden: &[usize], n_classes: usize, multi_label: bool, rng: &mut ChaCha8Rng) -> Self {
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
        Self { blocks, multi_label }
    }

    /// The same weights read as a multi-label head (sigmoid outputs), for files marked
    /// [`MULTI_LABEL_FORMAT`].
    pub fn into_multi_label(self) -> Head {
        Head {
            multi_label: true,
            ..self
        }
    }

    /// Whether its outputs are independent per-label probabilities.
    pub fn is_multi_label(&self) -> bool {
        self.multi_label
    }

    /// Width of the embeddings the head takes.
    pub fn n_features(&self) -> usize {
        self.blocks[0].dense.kernel.nrows()
    }

    /// Number of classes it predicts.
    pub fn n_classes(&self) -> usize {
        self.blocks[self.blocks.len() - 1].dense.kernel.ncols()
    }

    /// Sizes of the hidden layers, as passed to [`HeadParams::hidden`].
    pub fn hidden(&self) -> Vec<usize> {
        let last = self.blocks.len() - 1;
        self.blocks[..last].iter().map(|b| b.dense.kernel.ncols()).collect()
    }

    /// Class probabilities for each row of `x`, in inference mode; every row sums to 1. For a
    /// multi-label head, each label's own probability.
    ///
    /// # Panics
    /// If `x` does not have [`n_features`](Self::n_features) columns.
    pub fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut p = self.logits(x);
        if self.multi_label {
            p.mapv_inplace(sigmoid);
            return p;
        }
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
    fn evaluate(&self, x: ArrayView2<f32>, y: Targets, label_smoothing: f32) -> (f32, f32) {
        let logits = self.logits(x);
        let mut loss = 0.0f64;
        let mut correct = 0usize;
        let decisions = match y {
            Targets::Classes(y) => {
                for (z, &label) in logits.rows().into_iter().zip(y) {
                    let lse = log_sum_exp(z);
                    loss += f64::from(smoothed_cross_entropy(z, lse, label, label_smoothing));
                    correct += usize::from(argmax(z) == label);
                }
                y.len()
            }
            Targets::Sets(t) => {
                for (z, t) in logits.rows().into_iter().zip(t.rows()) {
                    let (row_loss, row_correct) = binary_cross_entropy(z, t, label_smoothing, None);
                    loss += f64::from(row_loss);
                    correct += row_correct;
                }
                t.len()
            }
        };
        let n = x.nrows() as f64;
        ((loss / n) as f32, (correct as f64 / decisions as f64) as f32)
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
}

impl Classifier for Head {
    fn n_features(&self) -> usize {
        Head::n_features(self)
    }

    fn on_features(&self) -> &dyn Classifier {
        self
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
            activation: if self.multi_label {
                Activation::Sigmoid
            } else {
                Activation::Softmax
            },
        })
    }

    fn format(&self) -> Option<&'static str> {
        self.multi_label.then_some(MULTI_LABEL_FORMAT)
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

/// One row's binary cross-entropy from logits, averaged over its labels, with targets smoothed
/// toward 1/2, and its number of right decisions at probability 1/2. With `grad`, also writes
/// `scale · (sigmoid(z) - t)` there.
fn binary_cross_entropy(
    z: ArrayView1<f32>,
    y: ArrayView1<f32>,
    smoothing: f32,
    grad: Option<(&mut ndarray::ArrayViewMut1<f32>, f32)>,
) -> (f32, usize) {
    let k = z.len() as f32;
    let mut loss = 0.0f32;
    let mut correct = 0usize;
    let target = |y: f32| (1.0 - smoothing) * y + smoothing / 2.0;
    for (&zc, &yc) in z.iter().zip(&y) {
        // max(z, 0) - z·t + ln(1 + e^-|z|) is ln(1 + e^z) - z·t without overflow.
        loss += zc.max(0.0) - zc * target(yc) + (-zc.abs()).exp().ln_1p();
        correct += usize::from((zc >= 0.0) == (yc > 0.5));
    }
    if let Some((g, scale)) = grad {
        for ((g, &zc), &yc) in g.iter_mut().zip(&z).zip(&y) {
            *g = scale * (sigmoid(zc) - target(yc));
        }
    }
    (loss / k, correct)
}

fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn log_sum_exp(z: ArrayView1<f32>) -> f32 {
    let max = z.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    max + z.iter().map(|&v| (v - max).exp()).sum::<f32>().ln()
}

#[cfg(test)]
mod tests;
