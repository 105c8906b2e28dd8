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
//! # Solver limits
//!
//! linfa-logistic 0.8.1 normalises each sample's log-sum-exp by the largest
//! logit of the *whole batch* and clamps the result at 1e-15. Once a
//! confidently classified sample's logits exceed an unconfident one's by more
//! than ~34.5, its loss is wrong while its gradient is not, and L-BFGS stops
//! making progress, burning a full line search per iteration. This only
//! happens with weak regularisation on (nearly) separable training sets, e.g.
//! few images per class in a high-dimensional embedding. Left alone it made the
//! sweep on 3225 x 1280 pure-noise data take 221 s; see [`FitStatus::Stalled`]
//! for how it is detected and bounded now. Such a fit is still a valid linear
//! classifier, just not the exact optimum for its alpha, and weaker alphas
//! cannot be reached at all.

use std::collections::BTreeMap;
use std::time::Instant;

use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use serde::{Deserialize, Serialize};

use crate::classifier::{argmax, check_set, Activation, Classifier, DenseChain, DenseLayer, SetError, Tensor};

/// L2 strength used when there is no validation set to choose one: `C = 1`,
/// scikit-learn's default, so the fallback matches what most people would get.
pub const DEFAULT_ALPHA: f64 = 1.0;

/// The format marker of baseline files (see [`crate::artifact`]).
pub const FORMAT_VALUE: &str = "linear-baseline/1";

/// Logit given to classes that never occur in the training labels. The model
/// has no evidence for them; this makes their probability exactly zero in
/// `f32` while keeping every stored and computed number finite.
const UNSEEN_CLASS_LOGIT: f32 = -1.0e4;

/// Why fitting, saving or loading a baseline failed.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("the training set is empty: pass at least one embedding row")]
    EmptyTrainingSet,
    #[error(
        "the validation set is empty: pass `None` as `valid` to fit the default alpha, \
         or give it at least one row"
    )]
    EmptyValidationSet,
    #[error(
        "validation embeddings have {found} features but training ones have {expected}: \
         use embeddings from the same backbone for both"
    )]
    FeatureMismatch { expected: usize, found: usize },
    #[error("the training labels contain {found} distinct class(es): a classifier needs at least 2")]
    TooFewClasses { found: usize },
    #[error("`alphas` must be a non-empty list of finite values > 0, got {0:?}")]
    InvalidAlphas(Vec<f64>),
    #[error("`fallback_alpha` must be finite and > 0, got {0}")]
    InvalidFallbackAlpha(f64),
    #[error("`max_iterations` must be at least 1")]
    InvalidMaxIterations,
    #[error("`tolerance` must be finite and > 0, got {0}")]
    InvalidTolerance(f64),
    #[error("logistic regression with alpha = {alpha} failed: {source}")]
    Fit {
        alpha: f64,
        #[source]
        source: linfa_logistic::error::Error,
    },
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
}

impl Default for BaselineParams {
    fn default() -> Self {
        Self {
            alphas: Self::default_alphas(),
            fallback_alpha: DEFAULT_ALPHA,
            max_iterations: Self::DEFAULT_MAX_ITERATIONS,
            tolerance: Self::DEFAULT_TOLERANCE,
        }
    }
}

impl BaselineParams {
    /// See [`max_iterations`](Self::max_iterations).
    pub const DEFAULT_MAX_ITERATIONS: u64 = 1000;
    /// See [`tolerance`](Self::tolerance).
    pub const DEFAULT_TOLERANCE: f64 = 1e-4;

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
    /// regularised fits unconverged). Spent in restarts of 10 iterations.
    pub fn max_iterations(mut self, max_iterations: u64) -> Self {
        self.max_iterations = max_iterations;
        self
    }

    /// Convergence threshold on the L2 norm of the gradient of the objective
    /// divided by the number of training samples. Dividing makes the same value
    /// mean the same thing for 100 or 100 000 samples (linfa's own tolerance is
    /// on the summed objective, whose gradient grows with the sample count).
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
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
    /// previous solution. Besides saving iterations, this is what lets weak
    /// alphas converge at all: started from zero, L-BFGS's first steps
    /// overshoot into logits linfa cannot represent (see the module docs), and
    /// on 3225 x 1280 embeddings with class structure the sweep then stalled
    /// at `C = 0.32` instead of converging all the way to `C = 1000`.
    pub fn fit(
        &self,
        x: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        valid: Option<(ArrayView2<f32>, &[usize])>,
    ) -> Result<FittedBaseline, BaselineError> {
        self.check()?;
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
        let problem = Problem {
            dataset: &dataset,
            labels: &label_columns,
            tolerance: self.tolerance,
            max_iterations: self.max_iterations,
        };

        let mut previous: Option<Solution> = None;
        let mut sweep = Vec::with_capacity(alphas.len());
        let mut best: Option<(Baseline, usize)> = None;
        let mut skipped_alphas = Vec::new();
        for (i, &alpha) in alphas.iter().enumerate() {
            let started = Instant::now();
            let solution = problem.solve(alpha, previous.take())?;
            let seconds = started.elapsed().as_secs_f64();

            let model = Baseline::from_linfa(&mean, &std, &solution.params, &seen, n_classes);
            let train_accuracy = accuracy(model.predict_proba(x).view(), y);
            let (val_accuracy, val_loss) = match valid {
                Some((vx, vy)) => {
                    let probs = model.predict_proba(vx);
                    (Some(accuracy(probs.view(), vy)), Some(cross_entropy(probs.view(), vy)))
                }
                None => (None, None),
            };
            sweep.push(SweepPoint {
                alpha,
                c: 1.0 / alpha,
                train_accuracy,
                val_accuracy,
                val_loss,
                gradient_norm: solution.gradient_norm,
                status: solution.status,
                seconds,
            });
            let newest = sweep.len() - 1;
            if best
                .as_ref()
                .is_none_or(|(_, b)| ranks_above(&sweep[newest], &sweep[*b]))
            {
                best = Some((model, newest));
            }
            if solution.status == FitStatus::Stalled {
                skipped_alphas = alphas[i + 1..].to_vec();
                break;
            }
            previous = Some(solution);
        }
        let (model, chosen) = best.expect("at least one alpha is always fitted");
        Ok(FittedBaseline {
            model,
            chosen_alpha: sweep[chosen].alpha,
            sweep,
            skipped_alphas,
            selection,
        })
    }

    fn check(&self) -> Result<(), BaselineError> {
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

/// linfa is run for a bounded number of iterations at a time, then restarted
/// from where it stopped. Each restart lets us check convergence and
/// precision ourselves (linfa reports neither), and bounds the time lost once
/// its L-BFGS has stalled: a stalled iteration still burns a full line search,
/// ~10x a normal one. Every restart also throws away L-BFGS's curvature
/// history, so rounds are long while the logits are far from the range
/// linfa cannot represent and short only close to it: on flowers5 embeddings
/// (3253 x 1280) this took the sweep from 11.9 s (rounds of 10) to 6.2 s.
const LONG_ROUND: u64 = 100;
const SHORT_ROUND: u64 = 10;
/// Below this, a round could carry the logits past [`LINFA_LOG_SUM_FLOOR`].
const SAFE_LOG_SUM_MARGIN: f64 = -20.0;

/// linfa-logistic 0.8 computes each sample's log-sum-exp relative to the
/// largest logit of the whole batch and clamps the normalised sum at 1e-15, so
/// its loss (but not its gradient) is wrong for a sample whose own
/// log-sum-exp lies more than `-ln(1e-15)` ≈ 34.5 below that maximum.
const LINFA_LOG_SUM_FLOOR: f64 = -34.538_776_394_910_684;

struct Problem<'a> {
    dataset: &'a DatasetBase<ArrayView2<'a, f64>, ArrayView1<'a, usize>>,
    /// Each training label as its column in linfa's parameter matrix.
    labels: &'a [usize],
    tolerance: f64,
    max_iterations: u64,
}

struct Solution {
    /// `[features + 1, classes seen in training]`, intercept in the last row,
    /// the layout linfa takes as initial parameters.
    params: Array2<f64>,
    gradient_norm: f64,
    log_sum_margin: f64,
    status: FitStatus,
}

impl Problem<'_> {
    /// Fits `alpha` from `start`, the previous alpha's solution, or from zero.
    fn solve(&self, alpha: f64, start: Option<Solution>) -> Result<Solution, BaselineError> {
        let x = self.dataset.records();
        let n = x.nrows() as f64;
        // All logits are zero at the zero start: log-sum-exp ln(classes) above them, far from the floor.
        let (mut current, mut margin) = start.map_or((None, 0.0), |s| (Some(s.params), s.log_sum_margin));
        let mut best: Option<(Array2<f64>, Check)> = None;
        let mut done = 0;
        loop {
            let round = if margin > SAFE_LOG_SUM_MARGIN {
                LONG_ROUND
            } else {
                SHORT_ROUND
            };
            let budget = round.min(self.max_iterations - done);
            let mut solver = MultiLogisticRegression::default()
                .alpha(alpha)
                .max_iterations(budget)
                .gradient_tolerance(self.tolerance * n);
            if let Some(params) = current.take() {
                solver = solver.initial_params(params);
            }
            let fitted = solver
                .fit(self.dataset)
                .map_err(|source| BaselineError::Fit { alpha, source })?;
            done += budget;
            let mut params = fitted.params().clone();
            params
                .push_row(fitted.intercept().view())
                .expect("linfa returns one intercept per class column");
            let check = Check::new(x.view(), self.labels, &params, alpha);
            margin = check.log_sum_margin;

            let improved = best.as_ref().is_none_or(|(_, b)| check.objective < b.objective);
            let status = if check.gradient_norm <= self.tolerance {
                Some(FitStatus::Converged)
            } else if !improved || !check.linfa_exact() {
                Some(FitStatus::Stalled)
            } else if done >= self.max_iterations {
                Some(FitStatus::IterationLimit)
            } else {
                None
            };
            if improved {
                best = Some((params.clone(), check));
            }
            if let Some(status) = status {
                let (params, check) = best.expect("the first round always improves");
                return Ok(Solution {
                    params,
                    gradient_norm: check.gradient_norm,
                    log_sum_margin: check.log_sum_margin,
                    status,
                });
            }
            current = Some(params);
        }
    }
}

/// linfa's objective, recomputed exactly at a solution.
struct Check {
    /// Summed cross-entropy plus `alpha / 2 * ||W||^2`.
    objective: f64,
    /// L2 norm of the objective's gradient divided by the sample count.
    gradient_norm: f64,
    /// The lowest sample log-sum-exp minus the largest logit, which linfa needs
    /// above [`LINFA_LOG_SUM_FLOOR`].
    log_sum_margin: f64,
}

impl Check {
    fn new(x: ArrayView2<f64>, labels: &[usize], params: &Array2<f64>, alpha: f64) -> Self {
        let n_features = x.ncols();
        let weights = params.slice(ndarray::s![..n_features, ..]);
        let intercept = params.row(n_features);
        let mut diff = x.dot(&weights) + intercept;
        let global_max = diff.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let mut cross_entropy = 0.0;
        let mut lowest_log_sum = f64::INFINITY;
        for (mut row, &label) in diff.rows_mut().into_iter().zip(labels) {
            let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let log_sum = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lowest_log_sum = lowest_log_sum.min(log_sum);
            cross_entropy += log_sum - row[label];
            row.mapv_inplace(|v| (v - log_sum).exp());
            row[label] -= 1.0;
        }
        let grad_w = x.t().dot(&diff) + &weights * alpha;
        let grad_b = diff.sum_axis(Axis(0));
        let squared_norm: f64 = grad_w.iter().chain(grad_b.iter()).map(|g| g * g).sum();
        Self {
            objective: cross_entropy + 0.5 * alpha * weights.iter().map(|w| w * w).sum::<f64>(),
            gradient_norm: squared_norm.sqrt() / x.nrows() as f64,
            log_sum_margin: lowest_log_sum - global_max,
        }
    }

    /// Whether linfa's own loss is exact here (see [`LINFA_LOG_SUM_FLOOR`]).
    fn linfa_exact(&self) -> bool {
        self.log_sum_margin >= LINFA_LOG_SUM_FLOOR
    }
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
    pub train_accuracy: f64,
    /// `None` when no validation set was given.
    pub val_accuracy: Option<f64>,
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
}

/// How the solver finished for one alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitStatus {
    /// The gradient norm reached the tolerance.
    Converged,
    /// `max_iterations` ran out first; raise it if this happens often.
    IterationLimit,
    /// The solver stopped making progress before converging. This happens
    /// with weak regularisation on (nearly) separable training data, because
    /// linfa-logistic 0.8 loses precision once the logits of confident and
    /// unconfident samples differ by more than ~34.5 (see the module docs).
    /// It is also reported when the objective stops decreasing for any other
    /// reason, e.g. a tolerance finer than f64 can resolve. The best point
    /// reached is kept, and weaker alphas are not tried since they would start
    /// from, and stall at, the same point.
    Stalled,
}

/// The result of [`BaselineParams::fit`].
#[derive(Debug, Clone)]
pub struct FittedBaseline {
    /// The model fitted with `chosen_alpha` (on the training set only).
    pub model: Baseline,
    /// Every alpha tried, strongest regularisation first.
    pub sweep: Vec<SweepPoint>,
    pub chosen_alpha: f64,
    pub selection: AlphaSelection,
    /// Alphas of the grid left unfitted because a stronger one
    /// [stalled](FitStatus::Stalled); empty when the whole grid was fitted.
    pub skipped_alphas: Vec<f64>,
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
        }
    }

    pub fn n_features(&self) -> usize {
        self.weights.nrows()
    }

    pub fn n_classes(&self) -> usize {
        self.weights.ncols()
    }

    /// Class probabilities, `[rows, n_classes]`; each row sums to 1.
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

    fn n_classes(&self) -> usize {
        Baseline::n_classes(self)
    }

    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        Baseline::predict_proba(self, x)
    }

    fn dense_chain(&self) -> Option<DenseChain> {
        Some(DenseChain {
            layers: vec![self.folded_layer()],
            activation: Activation::Softmax,
        })
    }

    fn format(&self) -> Option<&'static str> {
        Some(FORMAT_VALUE)
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
#[path = "baseline_tests.rs"]
mod tests;
