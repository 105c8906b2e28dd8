//! The fine-tuning loop: the top and the head trained together on cached maps.

use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{to_channels_last, BatchNormMode, Finetuned, Pass, Top};
use crate::head::adam::{adam_step, step_size};
use crate::head::{Best, EpochStats, Head, HeadError, HeadParams, Stepper};

/// Settings of a fine-tune: the head's, plus the top's learning rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneParams {
    /// The head's settings; its epochs, batch size, seed, early stopping and class weights
    /// govern the whole fine-tune.
    pub head: HeadParams,
    /// Adam's step size for the top's weights, finite and > 0.
    pub backbone_lr: f32,
    /// Whether the top's batch norm layers train with batch statistics.
    #[serde(default, skip_serializing_if = "BatchNormMode::is_frozen")]
    pub batch_norm: BatchNormMode,
}

impl Default for FinetuneParams {
    fn default() -> Self {
        FinetuneParams {
            head: HeadParams::default(),
            backbone_lr: 1e-4,
            batch_norm: BatchNormMode::Frozen,
        }
    }
}

/// Why a fine-tune could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    /// The head's settings are invalid.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// `--backbone-lr` is not a positive number.
    #[error("--backbone-lr must be a finite number > 0 (got {0})")]
    BackboneLr(f32),
    /// Training mode was asked for a top without batch norm.
    #[error("--batch-norm train asks for batch norm in training mode, but the layers after cut `{0}` have none (EfficientNet-Lite and torch exports fold it into the convolutions): drop --batch-norm")]
    NoBatchNorm(String),
    /// The maps do not have the top's size.
    #[error("the cached maps hold {found} values per image but the top takes {expected}: extract with the same --cut and backbone")]
    MapSize {
        /// Values per cached map.
        found: usize,
        /// Values per map the top takes.
        expected: usize,
    },
    /// No training images, or labels that do not pair up.
    #[error(
        "the training set has {images} maps and {labels} labels; it needs at least one image, each with one label"
    )]
    Set {
        /// Maps.
        images: usize,
        /// Labels.
        labels: usize,
    },
    /// A label is not a class index.
    #[error("label {label} is out of range: there are {n_classes} classes")]
    Label {
        /// The label.
        label: usize,
        /// Classes.
        n_classes: usize,
    },
    /// Training diverged with no good weights kept.
    #[error("the fine-tune diverged in epoch {epoch}: the loss became {loss} and layer weight `{layer}` is the first to hold NaN or infinity; lower --backbone-lr or --learning-rate, or turn on --early-stopping to keep the last good weights")]
    Diverged {
        /// The 1-based epoch.
        epoch: usize,
        /// The epoch's mean loss.
        loss: f32,
        /// The first top weight that is not finite, or `the head` when all are.
        layer: String,
    },
}

/// Cached maps of a set of images, read a batch at a time.
pub trait MapRows: Sync {
    /// Images in the set.
    fn images(&self) -> usize;
    /// Values per map.
    fn map_len(&self) -> usize;
    /// Writes the maps of images `rows`, NCHW as cached, one after another into `out`.
    fn read(&self, rows: &[usize], out: &mut [f32]);
}

impl MapRows for ArrayView2<'_, f32> {
    fn images(&self) -> usize {
        self.nrows()
    }

    fn map_len(&self) -> usize {
        self.ncols()
    }

    fn read(&self, rows: &[usize], out: &mut [f32]) {
        for (&r, out) in rows.iter().zip(out.chunks_exact_mut(self.ncols())) {
            out.iter_mut().zip(self.row(r)).for_each(|(o, &v)| *o = v);
        }
    }
}

impl MapRows for crate::cache::maps::CachedMaps<'_> {
    fn images(&self) -> usize {
        self.len()
    }

    fn map_len(&self) -> usize {
        crate::cache::maps::CachedMaps::map_len(self)
    }

    fn read(&self, rows: &[usize], out: &mut [f32]) {
        self.read_rows(rows, out)
    }
}

/// A fine-tuned top and head with the training history.
#[derive(Clone, Debug)]
pub struct FittedTop {
    /// The top and head of [`best_epoch`](Self::best_epoch).
    pub model: Finetuned,
    /// One entry per epoch trained.
    pub history: Vec<EpochStats>,
    /// The 1-based epoch whose weights `model` holds.
    pub best_epoch: usize,
    /// Why training stopped early when it diverged and the last good weights were kept.
    pub diverged: Option<String>,
}

/// The top's Adam state.
struct TopAdam {
    learning_rate: f32,
    step: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl TopAdam {
    fn new(top: &Top, learning_rate: f32) -> Self {
        let zeros: Vec<Vec<f32>> = top.params.iter().map(|p| vec![0.0; p.values.len()]).collect();
        TopAdam {
            learning_rate,
            step: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }

    fn update(&mut self, top: &mut Top, grads: &[Vec<f32>]) {
        self.step = self.step.saturating_add(1);
        let alpha = step_size(self.learning_rate, self.step);
        for (((p, g), m), v) in top.params.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            adam_step(&mut p.values, g, m, v, alpha);
        }
    }
}

/// Fine-tunes `top` with a new head on the maps `train` with classes `y` (in `0..n_classes`),
/// measuring `valid` after every epoch, as [`HeadParams::fit`] trains a head: the same shuffles,
/// batches, early stopping and history.
pub fn fit(
    top: Top,
    train: &dyn MapRows,
    y: &[usize],
    n_classes: usize,
    valid: Option<(&dyn MapRows, &[usize])>,
    params: &FinetuneParams,
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> Result<FittedTop, FinetuneError> {
    let mut observe = |stats: &EpochStats, _: &Top, _: &Head| on_epoch(stats);
    fit_observed(top, train, y, n_classes, valid, params, &mut observe)
}

/// [`fit`], showing `observe` the top and head as they stand after every epoch, for
/// benchmarks that score several epoch counts in one run (with a constant learning rate, the
/// first k epochs of a longer run are exactly a k-epoch run).
pub fn fit_observed(
    mut top: Top,
    train: &dyn MapRows,
    y: &[usize],
    n_classes: usize,
    valid: Option<(&dyn MapRows, &[usize])>,
    params: &FinetuneParams,
    observe: &mut dyn FnMut(&EpochStats, &Top, &Head),
) -> Result<FittedTop, FinetuneError> {
    let hp = &params.head;
    hp.check_params(valid.is_some(), n_classes)?;
    if !(params.backbone_lr.is_finite() && params.backbone_lr > 0.0) {
        return Err(FinetuneError::BackboneLr(params.backbone_lr));
    }
    if params.batch_norm == BatchNormMode::Train && !top.has_batch_norm() {
        return Err(FinetuneError::NoBatchNorm(top.cut.clone()));
    }
    let sets = std::iter::once((train, y)).chain(valid);
    for (maps, labels) in sets {
        if maps.map_len() != top.input().len() {
            return Err(FinetuneError::MapSize {
                found: maps.map_len(),
                expected: top.input().len(),
            });
        }
        if maps.images() == 0 || maps.images() != labels.len() {
            return Err(FinetuneError::Set {
                images: maps.images(),
                labels: labels.len(),
            });
        }
        if let Some(&label) = labels.iter().find(|&&l| l >= n_classes) {
            return Err(FinetuneError::Label { label, n_classes });
        }
    }
    let class_weight = hp.class_weight(y, n_classes)?;
    let n = y.len();
    let batch_size = hp.batch_size.min(n);
    let mut rng = ChaCha8Rng::seed_from_u64(hp.seed);
    let mut head = Stepper::new(hp, top.n_features(), n_classes, batch_size, class_weight, &mut rng);
    let mut adam = TopAdam::new(&top, params.backbone_lr);
    let mut grads: Vec<Vec<f32>> = top.params.iter().map(|p| vec![0.0; p.values.len()]).collect();
    let mut pass = Pass::default();
    let input_len = top.input().len();
    let mut nchw = vec![0.0f32; batch_size * input_len];
    let mut order: Vec<usize> = (0..n).collect();
    let mut labels = Vec::with_capacity(batch_size);
    let mut history = Vec::with_capacity(hp.epochs);
    let mut best = Best::default();
    let mut diverged = None;

    for epoch in 1..=hp.epochs {
        let start = Instant::now();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for rows in order.chunks(batch_size) {
            let b = rows.len();
            train.read(rows, &mut nchw[..b * input_len]);
            let mut input = vec![0.0f32; b * input_len];
            to_channels_last(&nchw[..b * input_len], top.input(), &mut input);
            top.forward_in(input, b, &mut pass, params.batch_norm);
            labels.clear();
            labels.extend(rows.iter().map(|&r| y[r]));
            let features = ArrayView2::from_shape((b, top.n_features()), pass.features()).expect("b x features");
            let (loss, right, grad) = head.step(features, &labels, &mut rng);
            loss_sum += loss;
            correct += right;
            let grad = grad.as_standard_layout().into_owned();
            top.backward(&mut pass, grad.as_slice().expect("standard layout"), &mut grads);
            adam.update(&mut top, &grads);
            top.update_moving_stats(&pass);
        }
        let train_loss = (loss_sum / n as f64) as f32;
        if !train_loss.is_finite() || top.first_non_finite().is_some() {
            let layer = top.first_non_finite().unwrap_or("the head").to_string();
            let error = FinetuneError::Diverged {
                epoch,
                loss: train_loss,
                layer,
            };
            match (best.is_kept(), hp.early_stopping) {
                (true, Some(_)) => {
                    diverged = Some(error.to_string());
                    break;
                }
                _ => return Err(error),
            }
        }
        let (val_loss, val_accuracy) = match valid {
            Some((maps, labels)) => {
                let (loss, accuracy) = head.evaluate(features(&top, maps).view(), labels);
                (Some(loss), Some(accuracy))
            }
            None => (None, None),
        };
        let stats = EpochStats {
            epoch,
            train_loss,
            train_accuracy: correct as f32 / n as f32,
            val_loss,
            val_accuracy,
            seconds: start.elapsed().as_secs_f32(),
        };
        observe(&stats, &top, head.head());
        history.push(stats);
        if let (Some(patience), Some(loss)) = (hp.early_stopping, val_loss) {
            if best.after_epoch(patience, loss, epoch, || {
                Finetuned::new(top.clone(), head.head().clone())
            }) {
                break;
            }
        }
    }
    let (model, best_epoch) = match best.take() {
        Some((epoch, model)) => (model, epoch),
        None => (Finetuned::new(top, head.head().clone()), history.len()),
    };
    Ok(FittedTop {
        model,
        history,
        best_epoch,
        diverged,
    })
}

/// The top's features of every image of `maps`, a chunk at a time.
pub(crate) fn features(top: &Top, maps: &dyn MapRows) -> Array2<f32> {
    const CHUNK: usize = 64;
    let len = maps.map_len();
    let all: Vec<usize> = (0..maps.images()).collect();
    let mut out = Vec::with_capacity(all.len() * top.n_features());
    let mut buf = vec![0.0f32; CHUNK * len];
    for rows in all.chunks(CHUNK) {
        let chunk = &mut buf[..rows.len() * len];
        maps.read(rows, chunk);
        out.extend(top.features_nchw(chunk, rows.len()));
    }
    Array2::from_shape_vec((all.len(), top.n_features()), out).expect("one row per image")
}
