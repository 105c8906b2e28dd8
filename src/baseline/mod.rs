//! The linear baseline a trained head has to beat: multinomial logistic
//! regression on standardised embeddings (a "linear probe").
//!
//! A head is only worth its training time if it does better than this, so the
//! baseline is tuned as carefully as published linear probes are: the L2
//! strength is swept over a wide log-spaced grid and chosen on a validation
//! set, with the solver run to convergence at every point.
//!
//! # Relation to scikit-learn's `C`
//!
//! `linfa-logistic` 0.8 minimises the *summed* (not averaged) negative
//! log-likelihood plus an L2 penalty on the weights (not the intercept):
//!
//! ```text
//! linfa:   sum_i -log p(y_i | x_i)  +  alpha / 2 * ||W||^2
//! sklearn: C * sum_i -log p(y_i | x_i)  +  1 / 2 * ||W||^2
//! ```
//!
//! The second is the first multiplied by `C` when `alpha = 1 / C`, so both have
//! the same minimiser and **`alpha = 1 / C` exactly, independent of the number
//! of samples**. [`SweepPoint`] records both. (Checked against scikit-learn
//! 1.9 on standardised data: probabilities agree to 4e-7 for alpha = 0.3 and
//! 10, while `alpha = 1 / (C * n)` would be off by 0.3.)
//!
//! # Solver
//!
//! linfa-logistic 0.8.1 normalised each sample's log-sum-exp by the largest
//! logit of the *whole batch* and clamped the result at 1e-15, so the loss and
//! gradient of every sample whose logits lay more than ~34.5 below that
//! maximum were wrong, and L-BFGS stalled far from the optimum. That happens
//! as soon as some samples are fitted confidently and others are not: weak
//! regularisation, few images per class, many classes (on an 81-class set it
//! cost 19 points of test accuracy against scikit-learn). headstart builds
//! linfa-logistic from `vendor/linfa-logistic`, the published crate with a
//! per-sample maximum (see its PATCH.md), so each alpha is one plain L-BFGS
//! run to the tolerance, as in scikit-learn.

use std::collections::BTreeMap;
use std::time::Instant;

mod one_vs_rest;
mod widening;

use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array, Array1, Array2, ArrayView2, Axis, Dimension, Zip};
use serde::{Deserialize, Serialize};

use widening::{beyond_edge, Edge};

use crate::classifier::{argmax, check_set, Activation, Classifier, DenseChain, DenseLayer, SetError, Tensor};

/// L2 strength used when there is no validation set to choose one: `C = 1`,
/// scikit-learn's default, so the fallback matches what most people would get.
pub const DEFAULT_ALPHA: f64 = 1.0;

/// The format marker of baseline files (see [`crate::artifact`]).
pub const FORMAT_VALUE: &str = "linear-baseline/1";

/// The format marker of multi-label (one-vs-rest) baseline files: the same tensors, read with
/// a sigmoid per label.
pub const MULTI_LABEL_FORMAT: &str = "linear-baseline-multi-label/1";

/// Logit given to classes that never occur in the training labels. The model
/// has no evidence for them; this makes their probability exactly zero in
/// `f32` while keeping every stored and computed number finite.
const UNSEEN_CLASS_LOGIT: f32 = -1.0e4;

/// Why fitting, saving or loading a baseline failed.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// No training rows were given.
    #[error("the training set is empty: pass at least one embedding row")]
    EmptyTrainingSet,
    #[error(
        "the validation set is empty: pass `None` as `valid` to fit the default alpha, \
         or give it at least one row"
    )]
    /// A validation set was given but has no rows.
    EmptyValidationSet,
    #[error(
        "validation embeddings have {found} features but training ones have {expected}: \
         use embeddings from the same backbone for both"
    )]
    /// Validation and training embeddings differ in width.
    FeatureMismatch {
        /// Features of the training embeddings.
        expected: usize,
        /// Features of the validation embeddings.
        found: usize,
    },
    #[error("the training labels contain {found} distinct class(es): a classifier needs at least 2")]
    /// Fewer than two classes occur in the training labels.
    TooFewClasses {
        /// Distinct classes found.
        found: usize,
    },
    #[error("`alphas` must be a non-empty list of finite values > 0, got {0:?}")]
    /// `alphas` is empty or holds a value that is not finite and positive.
    InvalidAlphas(Vec<f64>),
    #[error("`fallback_alpha` must be finite and > 0, got {0}")]
    /// `fallback_alpha` is not finite and positive.
    InvalidFallbackAlpha(f64),
    #[error("`max_iterations` must be at least 1")]
    /// `max_iterations` is zero.
    InvalidMaxIterations,
    #[error("`tolerance` must be finite and > 0, got {0}")]
    /// `tolerance` is not finite and positive.
    InvalidTolerance(f64),
    #[error("logistic regression with alpha = {alpha} failed: {source}")]
    /// linfa-logistic returned an error.
    Fit {
        /// The L2 strength being fitted.
        alpha: f64,
        /// linfa-logistic's error.
        #[source]
        source: linfa_logistic::error::Error,
    },
    /// The embeddings or labels are unusable (shape, non-finite values, label range).
    #[error(transparent)]
    Set(#[from] SetError),
}

impl BaselineError {
    /// The [`BaselineParams`] setting this error is about, as its message names it in
    /// backticks; `None` for errors about the data or files.
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            BaselineError::InvalidAlphas(_) => Some("alphas"),
            BaselineError::InvalidFallbackAlpha(_) => Some("fallback_alpha"),
            BaselineError::InvalidMaxIterations => Some("max_iterations"),
            BaselineError::InvalidTolerance(_) => Some("tolerance"),
            _ => None,
        }
    }
}

/// Hyper-parameters of the baseline; build with [`Default`] and the setters.
/// Serialisable so a saved model can record how it was fitted; missing
/// fields deserialise to their defaults, and values are checked by `fit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineParams {
    alphas: Vec<f64>,
    fallback_alpha: f64,
    max_iterations: u64,
    tolerance: f64,
    widen: usize,
}

impl Default for BaselineParams {
    fn default() -> Self {
        Self {
            alphas: Self::default_alphas(),
            fallback_alpha: DEFAULT_ALPHA,
            max_iterations: Self::DEFAULT_MAX_ITERATIONS,
            tolerance: Self::DEFAULT_TOLERANCE,
            widen: Self::DEFAULT_WIDEN,
        }
    }
}

impl BaselineParams {
    /// See [`max_iterations`](Self::max_iterations).
    pub const DEFAULT_MAX_ITERATIONS: u64 = 1000;
    /// See [`tolerance`](Self::tolerance).
    pub const DEFAULT_TOLERANCE: f64 = 1e-4;
    /// See [`widen`](Self::widen).
    pub const DEFAULT_WIDEN: usize = 4;

    /// `C` = 0.01 … 1000 in half-decade steps (11 values): the range published
    /// linear probes need, since the best `C` depends strongly on the backbone
    /// and on how many images per class there are.
    pub fn default_alphas() -> Vec<f64> {
        (0..=10).map(|i| 1.0 / 10f64.powf(-2.0 + 0.5 * f64::from(i))).collect()
    }

    /// L2 strengths to try when a validation set is given (`alpha = 1 / C`).
    pub fn alphas(mut self, alphas: Vec<f64>) -> Self {
        self.alphas = alphas;
        self
    }

    /// L2 strength used when no validation set is given.
    pub fn fallback_alpha(mut self, alpha: f64) -> Self {
        self.fallback_alpha = alpha;
        self
    }

    /// Upper bound on L-BFGS iterations per alpha (default 1000, as published
    /// linear probes use; linfa's own default of 100 can leave weakly
    /// regularised fits unconverged).
    pub fn max_iterations(mut self, max_iterations: u64) -> Self {
        self.max_iterations = max_iterations;
        self
    }

    /// Convergence threshold on the L2 norm of the gradient of the objective
    /// divided by the number of training samples. Dividing makes the same value
    /// mean the same thing for 100 or 100 000 samples (linfa's own tolerance is
    /// on the summed objective, whose gradient grows with the sample count).
    /// For `alpha < 1` (`C > 1`) it is multiplied by `alpha`: see `tolerance_at`.
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// How many steps the grid may be extended past each edge (default 4, two decades of the
    /// default grid; 0 keeps the grid as given). When the validation set picks the strongest
    /// or the weakest alpha of a grid of two or more, the grid goes on beyond that edge by its
    /// own outermost step, one alpha at a time, until an alpha past the edge is no longer the
    /// best; the points added are marked [`SweepPoint::widened`].
    pub fn widen(mut self, steps: usize) -> Self {
        self.widen = steps;
        self
    }

    /// Fits the baseline on `x`/`y` (class indices in `0..n_classes`).
    ///
    /// With `valid`, every alpha in [`alphas`](Self::alphas) is fitted on the
    /// training set alone and the one with the best validation accuracy is
    /// kept (ties go to the lower validation cross-entropy), so the baseline is
    /// trained on exactly the data a head is. Without it, only
    /// [`fallback_alpha`](Self::fallback_alpha) is fitted and
    /// [`FittedBaseline::selection`] says so.
    ///
    /// Alphas are fitted from strongest to weakest, each starting from the
    /// previous solutions extrapolated along the path (see `path_start`), which
    /// lies close to the next one's optimum and saves most of its iterations.
    /// Every alpha of the grid is fitted, each to the tolerance; when the best lies on an edge
    /// of the grid, the grid is widened past it (see [`widen`](Self::widen)).
    pub fn fit(
        &self,
        x: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        valid: Option<(ArrayView2<f32>, &[usize])>,
    ) -> Result<FittedBaseline, BaselineError> {
        self.validate()?;
        check_set("training", x, y, n_classes)?;
        if x.nrows() == 0 {
            return Err(BaselineError::EmptyTrainingSet);
        }
        if let Some((vx, vy)) = valid {
            check_set("validation", vx, vy, n_classes)?;
            if vx.nrows() == 0 {
                return Err(BaselineError::EmptyValidationSet);
            }
            if vx.ncols() != x.ncols() {
                return Err(BaselineError::FeatureMismatch {
                    expected: x.ncols(),
                    found: vx.ncols(),
                });
            }
        }
        let mut seen: Vec<usize> = y.to_vec();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() < 2 {
            return Err(BaselineError::TooFewClasses { found: seen.len() });
        }

        let (mean, std) = standardisation(x);
        let x_std = standardise(x, &mean, &std);
        let targets = Array1::from(y.to_vec());
        let dataset = DatasetBase::new(x_std.view(), targets.view());

        let (mut alphas, selection) = match valid {
            Some(_) => (self.alphas.clone(), AlphaSelection::Validation),
            None => (vec![self.fallback_alpha], AlphaSelection::Fallback),
        };
        alphas.sort_by(|a, b| b.total_cmp(a));
        alphas.dedup();

        let label_columns: Vec<usize> = y
            .iter()
            .map(|label| seen.binary_search(label).expect("seen holds every label"))
            .collect();

        let fit_at =
            |alpha: f64, start: Option<Array2<f64>>| -> Result<(SweepPoint, Baseline, Array2<f64>), BaselineError> {
                let started = Instant::now();
                let mut solver = MultiLogisticRegression::default()
                    .alpha(alpha)
                    .max_iterations(self.max_iterations)
                    .gradient_tolerance(self.tolerance_at(alpha) * x.nrows() as f64);
                if let Some(start) = start {
                    solver = solver.initial_params(start);
                }
                let fitted = solver
                    .fit(&dataset)
                    .map_err(|source| BaselineError::Fit { alpha, source })?;
                let mut params = fitted.params().clone();
                params
                    .push_row(fitted.intercept().view())
                    .expect("linfa returns one intercept per class column");
                let seconds = started.elapsed().as_secs_f64();

                let gradient_norm = gradient_norm(x_std.view(), &label_columns, &params, alpha);
                let model = Baseline::from_linfa(&mean, &std, &params, &seen, n_classes);
                let train_accuracy = accuracy(model.predict_proba(x).view(), y);
                let (val_accuracy, val_loss) = match valid {
                    Some((vx, vy)) => {
                        let probs = model.predict_proba(vx);
                        (Some(accuracy(probs.view(), vy)), Some(cross_entropy(probs.view(), vy)))
                    }
                    None => (None, None),
                };
                let point = SweepPoint {
                    alpha,
                    c: 1.0 / alpha,
                    train_accuracy,
                    val_accuracy,
                    val_map: None,
                    val_loss,
                    gradient_norm,
                    status: self.status(gradient_norm, alpha),
                    seconds,
                    widened: false,
                };
                Ok((point, model, params))
            };

        // The solutions nearest each edge, two at most, ordered toward the edge: the starts of
        // the next alpha on that side.
        let mut ends: [Vec<(f64, Array2<f64>)>; 2] = [Vec::with_capacity(2), Vec::with_capacity(2)];
        let mut sweep: Vec<SweepPoint> = Vec::with_capacity(alphas.len());
        let mut best: Option<(Baseline, SweepPoint)> = None;
        let keep_best = |best: &mut Option<(Baseline, SweepPoint)>, model: Baseline, point: &SweepPoint| {
            if best.as_ref().is_none_or(|(_, b)| ranks_above(point, b)) {
                *best = Some((model, point.clone()));
            }
        };
        for &alpha in &alphas {
            let (point, model, params) = fit_at(alpha, path_start(&ends[Edge::Weak as usize], alpha))?;
            keep_best(&mut best, model, &point);
            sweep.push(point);
            if ends[Edge::Strong as usize].len() < 2 {
                ends[Edge::Strong as usize].insert(0, (alpha, params.clone()));
            }
            step_toward_edge(&mut ends[Edge::Weak as usize], alpha, params);
        }
        let mut steps = [0, 0];
        while let Some((alpha, edge)) = best
            .as_ref()
            .and_then(|(_, b)| beyond_edge(&alphas, b.alpha, steps, self.widen))
        {
            let (mut point, model, params) = fit_at(alpha, path_start(&ends[edge as usize], alpha))?;
            point.widened = true;
            keep_best(&mut best, model, &point);
            match edge {
                Edge::Strong => {
                    sweep.insert(0, point);
                    alphas.insert(0, alpha);
                }
                Edge::Weak => {
                    sweep.push(point);
                    alphas.push(alpha);
                }
            }
            step_toward_edge(&mut ends[edge as usize], alpha, params);
            steps[edge as usize] += 1;
        }
        let (model, chosen) = best.expect("at least one alpha is always fitted");
        Ok(FittedBaseline {
            model,
            chosen_alpha: chosen.alpha,
            sweep,
            selection,
        })
    }

    /// The gradient tolerance used at `alpha`: [`tolerance`](Self::tolerance), made finer in
    /// proportion for `alpha < 1`. The objective's curvature is at least `alpha / n` per sample,
    /// so a fixed gradient threshold lets the weakly regularised fits (large `C`) stop
    /// `tolerance / alpha` away from their optimum, where the loss surface is nearly flat.
    fn tolerance_at(&self, alpha: f64) -> f64 {
        self.tolerance * alpha.min(1.0)
    }

    /// Whether a fit at `alpha` that ended with this gradient norm reached the tolerance.
    fn status(&self, gradient_norm: f64, alpha: f64) -> FitStatus {
        if gradient_norm <= self.tolerance_at(alpha) {
            FitStatus::Converged
        } else {
            FitStatus::NotConverged
        }
    }

    /// Checks the settings alone, as [`fit`](Self::fit) does first; callers that do other work
    /// before fitting call it early, so a bad setting fails before that work.
    pub fn validate(&self) -> Result<(), BaselineError> {
        if self.alphas.is_empty() || self.alphas.iter().any(|a| !a.is_finite() || *a <= 0.0) {
            return Err(BaselineError::InvalidAlphas(self.alphas.clone()));
        }
        if !self.fallback_alpha.is_finite() || self.fallback_alpha <= 0.0 {
            return Err(BaselineError::InvalidFallbackAlpha(self.fallback_alpha));
        }
        if self.max_iterations == 0 {
            return Err(BaselineError::InvalidMaxIterations);
        }
        if !self.tolerance.is_finite() || self.tolerance <= 0.0 {
            return Err(BaselineError::InvalidTolerance(self.tolerance));
        }
        Ok(())
    }
}

/// Where the fit at `alpha` starts, from the solutions of the previous (stronger) alphas on
/// `path`, oldest first: the newest solution, moved on along the line through the last two
/// in `ln alpha` by the step to `alpha`, at most as far as their own step. The solution path
/// of a near-separable problem keeps its direction while its norm grows, so this start is
/// much closer to the optimum than the newest solution alone (on flowers5 the 11-alpha sweep
/// went from 28 to 7 s with the same results).
fn path_start<D: Dimension>(path: &[(f64, Array<f64, D>)], alpha: f64) -> Option<Array<f64, D>> {
    match path {
        [] => None,
        [(_, newest)] => Some(newest.clone()),
        [.., (older_alpha, older), (newest_alpha, newest)] => {
            let ratio = ((alpha.ln() - newest_alpha.ln()) / (newest_alpha.ln() - older_alpha.ln())).clamp(0.0, 1.0);
            Some(newest + &((newest - older) * ratio))
        }
    }
}

/// Appends `alpha`'s solution to the two nearest an edge, dropping the older.
fn step_toward_edge<T>(end: &mut Vec<(f64, T)>, alpha: f64, params: T) {
    if end.len() == 2 {
        end.remove(0);
    }
    end.push((alpha, params));
}

/// L2 norm of the gradient of linfa's objective (summed cross-entropy plus
/// `alpha / 2 * ||W||^2`) at `params`, divided by the sample count: linfa
/// reports neither this nor why it stopped, and this says whether the tolerance
/// was reached. `params` is `[features + 1, classes seen]`, intercept last, and
/// `labels` holds each sample's column in it.
fn gradient_norm(x: ArrayView2<f64>, labels: &[usize], params: &Array2<f64>, alpha: f64) -> f64 {
    let n_features = x.ncols();
    let weights = params.slice(ndarray::s![..n_features, ..]);
    let mut diff = x.dot(&weights) + params.row(n_features);
    for (mut row, &label) in diff.rows_mut().into_iter().zip(labels) {
        let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
        row[label] -= 1.0;
    }
    let grad_w = x.t().dot(&diff) + &weights * alpha;
    let grad_b = diff.sum_axis(Axis(0));
    let squared: f64 = grad_w.iter().chain(grad_b.iter()).map(|g| g * g).sum();
    squared.sqrt() / x.nrows() as f64
}

/// Higher validation accuracy wins; on a tie (common with small validation
/// sets) the lower validation cross-entropy does, as the better-calibrated fit.
fn ranks_above(a: &SweepPoint, b: &SweepPoint) -> bool {
    let accuracy = |p: &SweepPoint| p.val_accuracy.unwrap_or(f64::NEG_INFINITY);
    let loss = |p: &SweepPoint| p.val_loss.unwrap_or(f64::INFINITY);
    accuracy(a) > accuracy(b) || (accuracy(a) == accuracy(b) && loss(a) < loss(b))
}

/// How [`FittedBaseline::chosen_alpha`] was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlphaSelection {
    /// Best validation accuracy over the sweep.
    Validation,
    /// No validation set was given, so the fixed fallback alpha was used
    /// untuned; a baseline fitted this way may be weaker than it could be.
    Fallback,
}

/// One fitted alpha of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// linfa's L2 strength.
    pub alpha: f64,
    /// The same strength as scikit-learn's `C` (`1 / alpha`).
    pub c: f64,
    /// Accuracy on the training set.
    pub train_accuracy: f64,
    /// `None` when no validation set was given. For multi-label data, the share of (image,
    /// label) decisions right at probability 1/2, here and in `train_accuracy`.
    pub val_accuracy: Option<f64>,
    /// Multi-label only: mean average precision on the validation set, which chooses the alpha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_map: Option<f64>,
    /// Mean cross-entropy on the validation set (probabilities clamped at
    /// 1e-12 so one confident mistake cannot make it infinite).
    pub val_loss: Option<f64>,
    /// L2 norm of the objective's gradient at the solution, divided by the
    /// number of training samples; compare it with the tolerance.
    pub gradient_norm: f64,
    /// Whether the solver reached the tolerance; anything else means this
    /// alpha's accuracy may be understated.
    pub status: FitStatus,
    /// Wall-clock seconds of the solver for this alpha.
    pub seconds: f64,
    /// Whether this alpha lies past the edge of the grid asked for, tried because the best
    /// alpha sat on that edge (see [`BaselineParams::widen`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub widened: bool,
}

/// How the solver finished for one alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitStatus {
    /// The gradient norm reached the tolerance.
    Converged,
    /// The solver stopped before the gradient norm reached the tolerance:
    /// `max_iterations` ran out (raise it if this happens often), or the
    /// objective stopped decreasing in f64 (a tolerance finer than it can
    /// resolve). linfa does not say which. Cards written before the linfa
    /// patch named these `iteration_limit` and `stalled`.
    #[serde(alias = "iteration_limit", alias = "stalled")]
    NotConverged,
}

/// The result of [`BaselineParams::fit`].
#[derive(Debug, Clone)]
pub struct FittedBaseline {
    /// The model fitted with `chosen_alpha` (on the training set only).
    pub model: Baseline,
    /// Every alpha tried, strongest regularisation first, those of a widened grid included.
    pub sweep: Vec<SweepPoint>,
    /// The alpha of `model`.
    pub chosen_alpha: f64,
    /// How `chosen_alpha` was picked.
    pub selection: AlphaSelection,
}

/// A fitted linear baseline that predicts on its own, so a saved one reloads
/// without linfa or refitting.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    mean: Array1<f32>,
    std: Array1<f32>,
    /// `[features, classes]`, columns in class-index order.
    weights: Array2<f32>,
    intercept: Array1<f32>,
    /// One-vs-rest: each column's own sigmoid instead of a softmax over the columns.
    multi_label: bool,
}

impl Baseline {
    /// Maps linfa's columns, which follow its own sorted list of the labels
    /// present in training, onto class indices `0..n_classes`.
    fn from_linfa(
        mean: &Array1<f32>,
        std: &Array1<f32>,
        params: &Array2<f64>,
        classes: &[usize],
        n_classes: usize,
    ) -> Self {
        let n_features = mean.len();
        let mut weights = Array2::zeros((n_features, n_classes));
        let mut intercept = Array1::from_elem(n_classes, UNSEEN_CLASS_LOGIT);
        for (column, &class) in classes.iter().enumerate() {
            for feature in 0..n_features {
                weights[[feature, class]] = params[[feature, column]] as f32;
            }
            intercept[class] = params[[n_features, column]] as f32;
        }
        Self {
            mean: mean.clone(),
            std: std.clone(),
            weights,
            intercept,
            multi_label: false,
        }
    }

    /// Width of the embeddings the model takes.
    pub fn n_features(&self) -> usize {
        self.weights.nrows()
    }

    /// Number of classes the model scores.
    pub fn n_classes(&self) -> usize {
        self.weights.ncols()
    }

    /// The same model read as one-vs-rest (a sigmoid per label), for files marked
    /// [`MULTI_LABEL_FORMAT`].
    pub fn into_multi_label(self) -> Baseline {
        Baseline {
            multi_label: true,
            ..self
        }
    }

    /// Class probabilities, `[rows, n_classes]`; each row sums to 1. For a multi-label
    /// baseline, each label's own probability.
    ///
    /// # Panics
    /// If `x` does not have [`n_features`](Self::n_features) columns.
    pub fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.n_features(),
            "baseline expects {} features per embedding, got {}",
            self.n_features(),
            x.ncols()
        );
        let mut logits = standardise(x, &self.mean, &self.std).dot(&self.weights);
        logits += &self.intercept;
        if self.multi_label {
            logits.mapv_inplace(|z| 1.0 / (1.0 + (-z).exp()));
            return logits;
        }
        for mut row in logits.rows_mut() {
            let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row /= sum;
        }
        logits
    }

    /// Rebuilds a baseline from its tensors (`mean`, `std`, `weights`, `intercept`); the
    /// error says what is wrong with them.
    pub fn from_tensors(tensors: Vec<Tensor>) -> Result<Baseline, String> {
        let mut by_name: BTreeMap<String, (Vec<usize>, Vec<f32>)> = tensors
            .into_iter()
            .map(|(name, shape, data)| (name, (shape, data)))
            .collect();
        let mut read = |name: &str| -> Result<(Vec<usize>, Vec<f32>), String> {
            let (shape, values) = by_name
                .remove(name)
                .ok_or_else(|| format!("tensor {name:?} is missing"))?;
            if values.iter().any(|v| !v.is_finite()) {
                return Err(format!("tensor {name:?} contains non-finite values"));
            }
            if shape.iter().product::<usize>() != values.len() {
                return Err(format!(
                    "tensor {name:?} has shape {shape:?} but {} values",
                    values.len()
                ));
            }
            Ok((shape, values))
        };
        let (w_shape, w) = read("weights")?;
        let [n_features, n_classes] = w_shape[..] else {
            return Err(format!("weights have shape {w_shape:?}, expected 2 dimensions"));
        };
        let mut vector = |name: &str, len: usize| -> Result<Array1<f32>, String> {
            let (shape, values) = read(name)?;
            if shape != [len] {
                return Err(format!("{name} has shape {shape:?}, expected [{len}]"));
            }
            Ok(Array1::from(values))
        };
        let model = Baseline {
            mean: vector("mean", n_features)?,
            std: vector("std", n_features)?,
            weights: Array2::from_shape_vec((n_features, n_classes), w).expect("shape was read from the same tensor"),
            intercept: vector("intercept", n_classes)?,
            multi_label: false,
        };
        if model.std.iter().any(|&s| s <= 0.0) {
            return Err("std contains values <= 0".to_owned());
        }
        Ok(model)
    }

    /// Standardisation and the linear map as one Dense layer: `(x - m) / s · W + b` is
    /// `x · W' + b'` with `W' = diag(1 / s)·W` and `b' = b - (m / s)·W`.
    fn folded_layer(&self) -> DenseLayer {
        let scale = self.std.mapv(|s| 1.0 / f64::from(s));
        let shift = Zip::from(&self.mean).and(&scale).map_collect(|&m, &k| f64::from(m) * k);
        let weights = self.weights.mapv(f64::from);
        let weight = &weights * &scale.view().insert_axis(Axis(1));
        let bias = self.intercept.mapv(f64::from) - shift.dot(&weights);
        DenseLayer {
            weight: weight.mapv(|v| v as f32),
            bias: bias.mapv(|v| v as f32),
            relu: false,
        }
    }
}

impl Classifier for Baseline {
    fn n_features(&self) -> usize {
        Baseline::n_features(self)
    }

    fn on_features(&self) -> &dyn Classifier {
        self
    }

    fn n_classes(&self) -> usize {
        Baseline::n_classes(self)
    }

    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        Baseline::predict_proba(self, x)
    }

    fn dense_chain(&self) -> Option<DenseChain> {
        Some(DenseChain {
            layers: vec![self.folded_layer()],
            activation: if self.multi_label {
                Activation::Sigmoid
            } else {
                Activation::Softmax
            },
        })
    }

    fn format(&self) -> Option<&'static str> {
        Some(if self.multi_label {
            MULTI_LABEL_FORMAT
        } else {
            FORMAT_VALUE
        })
    }

    fn tensors(&self) -> Vec<Tensor> {
        [
            ("mean", self.mean.view().into_dyn()),
            ("std", self.std.view().into_dyn()),
            ("weights", self.weights.view().into_dyn()),
            ("intercept", self.intercept.view().into_dyn()),
        ]
        .into_iter()
        .map(|(name, a)| (name.to_owned(), a.shape().to_vec(), a.iter().copied().collect()))
        .collect()
    }
}

/// Per-feature mean and population standard deviation, accumulated in f64.
/// A feature whose spread is only rounding noise gets std 1, leaving it at
/// ~0 after centring instead of blowing the noise up to unit scale.
fn standardisation(x: ArrayView2<f32>) -> (Array1<f32>, Array1<f32>) {
    let n = x.nrows() as f64;
    let mut mean = Array1::<f64>::zeros(x.ncols());
    for row in x.rows() {
        Zip::from(&mut mean).and(row).for_each(|m, &v| *m += f64::from(v));
    }
    mean /= n;
    let mut var = Array1::<f64>::zeros(x.ncols());
    for row in x.rows() {
        Zip::from(&mut var)
            .and(row)
            .and(&mean)
            .for_each(|s, &v, &m| *s += (f64::from(v) - m).powi(2));
    }
    let std = Zip::from(&var).and(&mean).map_collect(|&s, &m| {
        let std = (s / n).sqrt();
        if std <= 10.0 * f64::EPSILON * m.abs() || std == 0.0 {
            1.0
        } else {
            std as f32
        }
    });
    (mean.mapv(|m| m as f32), std)
}

fn standardise<A>(x: ArrayView2<f32>, mean: &Array1<f32>, std: &Array1<f32>) -> Array2<A>
where
    A: From<f32> + Clone + Default,
{
    let mut out = Array2::default(x.raw_dim());
    Zip::from(out.rows_mut()).and(x.rows()).for_each(|mut o, r| {
        Zip::from(&mut o)
            .and(r)
            .and(mean)
            .and(std)
            .for_each(|o, &v, &m, &s| *o = A::from((v - m) / s));
    });
    out
}

fn accuracy(probs: ArrayView2<f32>, y: &[usize]) -> f64 {
    let correct = probs
        .rows()
        .into_iter()
        .zip(y)
        .filter(|(row, &label)| argmax(*row) == label)
        .count();
    correct as f64 / y.len() as f64
}

fn cross_entropy(probs: ArrayView2<f32>, y: &[usize]) -> f64 {
    let total: f64 = probs
        .rows()
        .into_iter()
        .zip(y)
        .map(|(row, &label)| -f64::from(row[label]).max(1e-12).ln())
        .sum();
    total / y.len() as f64
}

#[cfg(test)]
#[cfg(test)]
mod tests;
