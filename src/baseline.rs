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

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

/// L2 strength used when there is no validation set to choose one: `C = 1`,
/// scikit-learn's default, so the fallback matches what most people would get.
pub const DEFAULT_ALPHA: f64 = 1.0;

/// Metadata key that marks a file as a saved [`Baseline`], so that loading a
/// head's weights (or any other safetensors file) by mistake fails clearly.
pub const FORMAT_KEY: &str = "headstart_format";
const FORMAT_VALUE: &str = "linear-baseline/1";

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
    #[error("{set} embeddings have {rows} rows but {labels} labels: pass one label per row")]
    LengthMismatch {
        set: &'static str,
        rows: usize,
        labels: usize,
    },
    #[error(
        "validation embeddings have {found} features but training ones have {expected}: \
         use embeddings from the same backbone for both"
    )]
    FeatureMismatch { expected: usize, found: usize },
    #[error(
        "{set} label {label} at row {row} is out of range for n_classes = {n_classes}: \
         labels must be class indices 0..n_classes"
    )]
    LabelOutOfRange {
        set: &'static str,
        row: usize,
        label: usize,
        n_classes: usize,
    },
    #[error("the training labels contain {found} distinct class(es): a classifier needs at least 2")]
    TooFewClasses { found: usize },
    #[error(
        "{set} embeddings contain a non-finite value at row {row}, column {col}: \
         re-extract or drop those rows before fitting"
    )]
    NonFinite { set: &'static str, row: usize, col: usize },
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
    #[error(
        "metadata key {0:?} is reserved for headstart's own use: \
         store the value under another key"
    )]
    ReservedMetadataKey(String),
    #[error("cannot write baseline to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read baseline from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode baseline as safetensors: {0}")]
    Encode(#[source] safetensors::SafeTensorError),
    #[error("{path} is not a headstart baseline file ({reason}); fit the baseline again to recreate it")]
    InvalidFile { path: PathBuf, reason: String },
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
            max_iterations: 1000,
            tolerance: 1e-4,
        }
    }
}

impl BaselineParams {
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
    /// previous solution, which lies close to the next one's optimum and saves
    /// most of its iterations. Every alpha of the grid is fitted.
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

        let mut previous: Option<Array2<f64>> = None;
        let mut sweep = Vec::with_capacity(alphas.len());
        let mut best: Option<(Baseline, usize)> = None;
        for &alpha in &alphas {
            let started = Instant::now();
            let mut solver = MultiLogisticRegression::default()
                .alpha(alpha)
                .max_iterations(self.max_iterations)
                .gradient_tolerance(self.tolerance * x.nrows() as f64);
            if let Some(params) = previous.take() {
                solver = solver.initial_params(params);
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
            sweep.push(SweepPoint {
                alpha,
                c: 1.0 / alpha,
                train_accuracy,
                val_accuracy,
                val_loss,
                gradient_norm,
                status: if gradient_norm <= self.tolerance {
                    FitStatus::Converged
                } else {
                    FitStatus::NotConverged
                },
                seconds,
            });
            let newest = sweep.len() - 1;
            if best
                .as_ref()
                .is_none_or(|(_, b)| ranks_above(&sweep[newest], &sweep[*b]))
            {
                best = Some((model, newest));
            }
            previous = Some(params);
        }
        let (model, chosen) = best.expect("at least one alpha is always fitted");
        Ok(FittedBaseline {
            model,
            chosen_alpha: sweep[chosen].alpha,
            sweep,
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
    /// Every alpha tried, strongest regularisation first.
    pub sweep: Vec<SweepPoint>,
    pub chosen_alpha: f64,
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

    /// Writes the model as safetensors (`mean`, `std`, `weights`, `intercept`,
    /// all f32) with `metadata` in the header. The file is written next to
    /// `path` and renamed over it, so an interrupted save never leaves a
    /// truncated model behind.
    pub fn save(&self, path: impl AsRef<Path>, metadata: BTreeMap<String, String>) -> Result<(), BaselineError> {
        let path = path.as_ref();
        for key in [FORMAT_KEY, crate::cache::CRC_KEY] {
            if metadata.contains_key(key) {
                return Err(BaselineError::ReservedMetadataKey(key.to_owned()));
            }
        }
        let mut header: HashMap<String, String> = metadata.into_iter().collect();
        header.insert(FORMAT_KEY.to_owned(), FORMAT_VALUE.to_owned());

        let tensors = [
            ("mean", &self.mean.view().into_dyn()),
            ("std", &self.std.view().into_dyn()),
            ("weights", &self.weights.view().into_dyn()),
            ("intercept", &self.intercept.view().into_dyn()),
        ]
        .map(|(name, a)| {
            (
                name,
                a.shape().to_vec(),
                a.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
            )
        });
        header.insert(
            crate::cache::CRC_KEY.to_owned(),
            crate::cache::tensors_crc(tensors.iter().map(|(name, _, bytes)| (*name, bytes.as_slice()))),
        );
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (*name, v)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(BaselineError::Encode)?;
        let bytes = safetensors::serialize(views, &Some(header)).map_err(BaselineError::Encode)?;
        write_atomically(path, &bytes)
    }

    /// Reads a model written by [`save`](Self::save), returning the caller's
    /// metadata (without headstart's format marker).
    pub fn load(path: impl AsRef<Path>) -> Result<(Baseline, BTreeMap<String, String>), BaselineError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| BaselineError::Read {
            path: path.to_owned(),
            source,
        })?;
        Baseline::from_bytes(&bytes).map_err(|reason| BaselineError::InvalidFile {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses the bytes of a baseline file; the error says what is wrong with them.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Baseline, BTreeMap<String, String>), String> {
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let mut metadata: BTreeMap<String, String> =
            header.metadata().clone().unwrap_or_default().into_iter().collect();
        match metadata.remove(FORMAT_KEY).as_deref() {
            Some(FORMAT_VALUE) => {}
            Some(other) => {
                return Err(format!(
                    "format {other:?} is not {FORMAT_VALUE:?}; it was written by another headstart version"
                ))
            }
            None => return Err(format!("metadata has no {FORMAT_KEY:?} entry")),
        }
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let views = tensors.tensors();
        crate::cache::take_and_check_crc(&mut metadata, views.iter().map(|(n, v)| (n.as_str(), v.data())))?;
        let read = |name: &str| -> Result<(Vec<usize>, Vec<f32>), String> {
            let view = tensors
                .tensor(name)
                .map_err(|_| format!("tensor {name:?} is missing"))?;
            if view.dtype() != Dtype::F32 {
                return Err(format!("tensor {name:?} is {:?}, expected F32", view.dtype()));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(format!("tensor {name:?} contains non-finite values"));
            }
            Ok((view.shape().to_vec(), values))
        };
        let (w_shape, w) = read("weights")?;
        let [n_features, n_classes] = w_shape[..] else {
            return Err(format!("weights have shape {w_shape:?}, expected 2 dimensions"));
        };
        let vector = |name: &str, len: usize| -> Result<Array1<f32>, String> {
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
        Ok((model, metadata))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BaselineError> {
    crate::cache::write_file_atomically(path, bytes).map_err(|source| BaselineError::Write {
        path: path.to_owned(),
        source,
    })
}

fn check_set(set: &'static str, x: ArrayView2<f32>, y: &[usize], n_classes: usize) -> Result<(), BaselineError> {
    if x.nrows() != y.len() {
        return Err(BaselineError::LengthMismatch {
            set,
            rows: x.nrows(),
            labels: y.len(),
        });
    }
    if let Some((row, &label)) = y.iter().enumerate().find(|(_, &l)| l >= n_classes) {
        return Err(BaselineError::LabelOutOfRange {
            set,
            row,
            label,
            n_classes,
        });
    }
    if let Some(((row, col), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(BaselineError::NonFinite { set, row, col });
    }
    Ok(())
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

fn argmax(row: ArrayView1<f32>) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &p)| {
                if p > best.1 {
                    (i, p)
                } else {
                    best
                }
            },
        )
        .0
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
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// Deterministic standard-normal samples (xorshift + Box-Muller), so the
    /// tests need no RNG crate and never flake.
    struct Normal(u64);

    impl Normal {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn sample(&mut self) -> f32 {
            let (u, v) = (self.uniform(), self.uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        }
    }

    /// `n` points around one centre per class (`spread` apart), labels cycling
    /// through `classes`.
    fn blobs(n: usize, d: usize, classes: &[usize], spread: f32, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = Normal(seed);
        let y: Vec<usize> = (0..n).map(|i| classes[i % classes.len()]).collect();
        let x = Array2::from_shape_fn((n, d), |(i, j)| {
            let centre = if j % 7 == y[i] % 7 { spread } else { 0.0 };
            3.0 + 2.0 * (centre + rng.sample())
        });
        (x, y)
    }

    #[test]
    fn default_alphas_span_c_from_0_01_to_1000() {
        let alphas = BaselineParams::default_alphas();
        assert_eq!(alphas.len(), 11);
        assert_abs_diff_eq!(1.0 / alphas[0], 0.01, epsilon = 1e-12);
        assert_abs_diff_eq!(1.0 / alphas[10], 1000.0, epsilon = 1e-9);
    }

    /// A single long linfa run on the standardised data, for reference.
    fn linfa_reference(
        x: &Array2<f32>,
        y: &[usize],
        alpha: f64,
    ) -> (Array2<f64>, linfa_logistic::MultiFittedLogisticRegression<f64, usize>) {
        let (mean, std) = standardisation(x.view());
        let x_std: Array2<f64> = standardise(x.view(), &mean, &std);
        let dataset = DatasetBase::new(x_std.view(), Array1::from(y.to_vec()));
        let model = MultiLogisticRegression::default()
            .alpha(alpha)
            .max_iterations(1000)
            .gradient_tolerance(1e-6)
            .fit(&dataset)
            .unwrap();
        (x_std, model)
    }

    #[test]
    fn params_round_trip_through_json_and_default_missing_fields() {
        let params = BaselineParams::default().alphas(vec![0.5, 2.0]).max_iterations(50);
        let json = serde_json::to_string(&params).unwrap();
        assert_eq!(serde_json::from_str::<BaselineParams>(&json).unwrap(), params);
        let partial: BaselineParams = serde_json::from_str(r#"{"tolerance": 0.001}"#).unwrap();
        assert_eq!(partial, BaselineParams::default().tolerance(0.001));
    }

    #[test]
    fn predictions_match_linfa_for_the_same_parameters() {
        let (x, y) = blobs(120, 6, &[0, 1, 2], 0.7, 1);
        let (x_std, reference) = linfa_reference(&x, &y, 0.5);
        let mut params = reference.params().clone();
        params.push_row(reference.intercept().view()).unwrap();
        let (mean, std) = standardisation(x.view());
        let model = Baseline::from_linfa(&mean, &std, &params, reference.classes(), 3);
        let expected = reference.predict_probabilities(&x_std);
        let actual = model.predict_proba(x.view());
        assert_eq!(actual.dim(), (120, 3));
        for (a, e) in actual.iter().zip(expected.iter()) {
            assert_abs_diff_eq!(f64::from(*a), *e, epsilon = 1e-5);
        }
    }

    #[test]
    fn fit_reaches_the_same_optimum_as_one_long_linfa_run() {
        let (x, y) = blobs(120, 6, &[0, 1, 2], 0.7, 1);
        let fitted = BaselineParams::default()
            .tolerance(1e-7)
            .fit(x.view(), &y, 3, None)
            .unwrap();
        assert_eq!(fitted.selection, AlphaSelection::Fallback);
        assert_eq!(fitted.chosen_alpha, DEFAULT_ALPHA);
        assert_eq!(fitted.sweep.len(), 1);
        assert!(fitted.sweep[0].val_accuracy.is_none());
        assert_eq!(fitted.sweep[0].status, FitStatus::Converged);
        let (x_std, reference) = linfa_reference(&x, &y, DEFAULT_ALPHA);
        let expected = reference.predict_probabilities(&x_std);
        let actual = fitted.model.predict_proba(x.view());
        for (a, e) in actual.iter().zip(expected.iter()) {
            assert_abs_diff_eq!(f64::from(*a), *e, epsilon = 1e-4);
        }
    }

    #[test]
    fn classes_missing_from_training_get_zero_probability_and_columns_stay_aligned() {
        // linfa only sees labels {1, 4} and numbers its columns 0 and 1.
        let (x, y) = blobs(80, 8, &[4, 1], 4.0, 2);
        let fitted = BaselineParams::default().fit(x.view(), &y, 6, None).unwrap();
        let probs = fitted.model.predict_proba(x.view());
        assert_eq!(probs.ncols(), 6);
        for row in probs.rows() {
            assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-5);
            for unseen in [0, 2, 3, 5] {
                assert_eq!(row[unseen], 0.0);
            }
        }
        assert_eq!(accuracy(probs.view(), &y), 1.0);
    }

    #[test]
    fn learns_a_separable_problem_and_reports_the_sweep() {
        let (x, y) = blobs(150, 10, &[0, 1, 2], 3.0, 3);
        let (vx, vy) = blobs(60, 10, &[0, 1, 2], 3.0, 4);
        let fitted = BaselineParams::default()
            .fit(x.view(), &y, 3, Some((vx.view(), &vy)))
            .unwrap();
        assert_eq!(fitted.selection, AlphaSelection::Validation);
        assert_eq!(fitted.sweep.len(), 11);
        assert!(fitted.sweep.windows(2).all(|w| w[0].alpha > w[1].alpha));
        for point in &fitted.sweep {
            assert_abs_diff_eq!(point.alpha * point.c, 1.0, epsilon = 1e-12);
            assert_eq!(point.status, FitStatus::Converged, "{point:?}");
        }
        assert_eq!(accuracy(fitted.model.predict_proba(vx.view()).view(), &vy), 1.0);
    }

    #[test]
    fn sweep_keeps_the_alpha_with_the_best_validation_score() {
        // Few samples, many noisy features: the weakest L2 overfits the noise.
        let (x, y) = blobs(60, 300, &[0, 1], 0.25, 5);
        let (vx, vy) = blobs(400, 300, &[0, 1], 0.25, 6);
        let fitted = BaselineParams::default()
            .fit(x.view(), &y, 2, Some((vx.view(), &vy)))
            .unwrap();
        let best = fitted.sweep.iter().filter_map(|p| p.val_accuracy).fold(0.0, f64::max);
        let chosen = fitted.sweep.iter().find(|p| p.alpha == fitted.chosen_alpha).unwrap();
        assert_eq!(chosen.val_accuracy, Some(best));
        let weakest = fitted.sweep.last().unwrap();
        assert!(weakest.val_accuracy.unwrap() < best, "{:#?}", fitted.sweep);
        let probs = fitted.model.predict_proba(vx.view());
        assert_abs_diff_eq!(accuracy(probs.view(), &vy), best);
    }

    /// The largest logit of the batch minus the lowest per-sample
    /// log-sum-exp: above ~34.5, unpatched linfa-logistic 0.8.1 got the loss
    /// and gradient of the lowest samples wrong.
    fn logit_spread(model: &Baseline, x: ArrayView2<f32>) -> f32 {
        let logits = standardise::<f32>(x, &model.mean, &model.std).dot(&model.weights) + &model.intercept;
        let global_max = logits.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let lowest_log_sum = logits
            .rows()
            .into_iter()
            .map(|row| {
                let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
            })
            .fold(f32::INFINITY, f32::min);
        global_max - lowest_log_sum
    }

    /// Fails on the published linfa-logistic 0.8.1 (without Cargo.toml's
    /// `[patch.crates-io]`): its batch-wide maximum in log-sum-exp makes L-BFGS
    /// stop far from this optimum. The golden probabilities come from
    /// scikit-learn 1.9.1 on the same standardised data:
    ///
    /// ```python
    /// import numpy as np
    /// from sklearn.linear_model import LogisticRegression
    /// from sklearn.preprocessing import StandardScaler
    /// x = np.array([[-3.0, 0.5], [-2.6, -0.4], [-2.2, 0.1], [-1.8, 0.9], [-0.9, -0.7], [-0.5, 0.3],
    ///               [-0.1, -0.2], [0.3, 0.8], [0.7, -0.9], [1.5, 0.4], [1.9, -0.3], [2.4, 0.6],
    ///               [2.8, -0.1], [3.2, 0.2], [40.0, 0.0], [-40.0, 0.0]])
    /// y = np.array([0, 0, 0, 1, 0, 1, 1, 2, 1, 1, 2, 2, 2, 2, 2, 0])
    /// xs = StandardScaler().fit_transform(x)
    /// m = LogisticRegression(C=1000, solver="lbfgs", tol=1e-12, max_iter=100000).fit(xs, y)
    /// for row in m.predict_proba(xs):
    ///     print("[" + ", ".join(f"{p:.6e}" for p in row) + "],")
    /// ```
    #[test]
    fn fit_matches_scikit_learn_when_logits_are_far_apart_linfa_patch() {
        let x = ndarray::array![
            [-3.0f32, 0.5],
            [-2.6, -0.4],
            [-2.2, 0.1],
            [-1.8, 0.9],
            [-0.9, -0.7],
            [-0.5, 0.3],
            [-0.1, -0.2],
            [0.3, 0.8],
            [0.7, -0.9],
            [1.5, 0.4],
            [1.9, -0.3],
            [2.4, 0.6],
            [2.8, -0.1],
            [3.2, 0.2],
            [40.0, 0.0],
            [-40.0, 0.0]
        ];
        let y = [0, 0, 0, 1, 0, 1, 1, 2, 1, 1, 2, 2, 2, 2, 2, 0];
        let expected = ndarray::array![
            [9.368067e-01, 6.291385e-02, 2.794341e-04],
            [9.954753e-01, 4.517615e-03, 7.062497e-06],
            [8.942616e-01, 1.049952e-01, 7.432527e-04],
            [8.020958e-02, 8.714978e-01, 4.829261e-02],
            [8.653144e-01, 1.331566e-01, 1.529047e-03],
            [2.589397e-02, 8.624402e-01, 1.116658e-01],
            [6.907966e-02, 8.505021e-01, 8.041825e-02],
            [1.815915e-04, 4.839075e-01, 5.159110e-01],
            [1.325875e-01, 7.978603e-01, 6.955223e-02],
            [1.697033e-05, 2.444984e-01, 7.554846e-01],
            [1.710792e-04, 3.895575e-01, 6.102715e-01],
            [1.293442e-07, 5.527610e-02, 9.447238e-01],
            [1.531855e-06, 1.034658e-01, 8.965327e-01],
            [4.739601e-08, 3.541120e-02, 9.645888e-01],
            [1.650627e-76, 6.770219e-26, 1.000000e+00],
            [1.000000e+00, 3.555202e-48, 6.020729e-75]
        ];
        let fitted = BaselineParams::default()
            .fallback_alpha(1e-3)
            .tolerance(1e-9)
            .fit(x.view(), &y, 3, None)
            .unwrap();
        assert_eq!(fitted.sweep[0].status, FitStatus::Converged, "{:?}", fitted.sweep);
        // The premise: the optimum has samples far below the batch's largest logit.
        assert!(logit_spread(&fitted.model, x.view()) > 40.0);
        let actual = fitted.model.predict_proba(x.view());
        for (a, e) in actual.iter().zip(expected.iter()) {
            assert_abs_diff_eq!(f64::from(*a), *e, epsilon = 1e-4);
        }
    }

    #[test]
    fn weak_alphas_on_separable_noise_converge_and_the_whole_grid_is_fitted() {
        // Pure noise with more parameters than samples is separable, so weak
        // L2 drives the logits far apart: this stalled unpatched linfa-logistic.
        let (x, y) = blobs(1000, 400, &[0, 1, 2, 3], 0.0, 13);
        let (vx, vy) = blobs(60, 400, &[0, 1, 2, 3], 0.0, 14);
        let alphas = vec![1e-4, 10.0, 1e-2, 1.0];
        let fitted = BaselineParams::default()
            .alphas(alphas)
            .fit(x.view(), &y, 4, Some((vx.view(), &vy)))
            .unwrap();
        assert_eq!(fitted.sweep.len(), 4);
        for point in &fitted.sweep {
            assert_eq!(point.status, FitStatus::Converged, "{:#?}", fitted.sweep);
            assert!(point.gradient_norm <= 1e-4);
        }
        let weakest = fitted.sweep.last().unwrap();
        assert_eq!(weakest.alpha, 1e-4);
        assert_eq!(weakest.train_accuracy, 1.0);
        assert!(fitted.model.predict_proba(vx.view()).iter().all(|p| p.is_finite()));
    }

    #[test]
    fn save_and_load_round_trip() {
        let (x, y) = blobs(60, 5, &[0, 2], 1.0, 7);
        let model = BaselineParams::default().fit(x.view(), &y, 3, None).unwrap().model;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline.safetensors");
        let metadata = BTreeMap::from([("backbone".to_owned(), "mobilenet".to_owned())]);
        model.save(&path, metadata.clone()).unwrap();
        let (loaded, loaded_metadata) = Baseline::load(&path).unwrap();
        assert_eq!(loaded, model);
        assert_eq!(loaded_metadata, metadata);
        assert_eq!(loaded.predict_proba(x.view()), model.predict_proba(x.view()));
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }

    #[test]
    fn save_and_load_errors_name_the_problem() {
        let (x, y) = blobs(20, 3, &[0, 1], 1.0, 8);
        let model = BaselineParams::default().fit(x.view(), &y, 2, None).unwrap().model;
        let dir = tempfile::tempdir().unwrap();

        let reserved = BTreeMap::from([(FORMAT_KEY.to_owned(), "x".to_owned())]);
        let err = model.save(dir.path().join("m"), reserved).unwrap_err();
        assert!(matches!(err, BaselineError::ReservedMetadataKey(_)));

        let missing = dir.path().join("nope/m.safetensors");
        let err = Baseline::load(&missing).unwrap_err();
        assert!(matches!(err, BaselineError::Read { .. }), "{err}");
        // A missing folder is created; a folder that cannot exist is a write error.
        model.save(&missing, BTreeMap::new()).unwrap();
        let under_a_file = missing.join("m.safetensors");
        let err = model.save(&under_a_file, BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("m.safetensors/m.safetensors"), "{err}");
        let err = Baseline::load(&under_a_file).unwrap_err();
        assert!(matches!(err, BaselineError::Read { .. }), "{err}");

        let other = dir.path().join("other.safetensors");
        let data = [0u8; 8];
        let view = TensorView::new(Dtype::F32, vec![2], &data).unwrap();
        safetensors::serialize_to_file([("w", view)], &None, &other).unwrap();
        let err = Baseline::load(&other).unwrap_err();
        assert!(err.to_string().contains("headstart_format"), "{err}");
    }

    #[test]
    fn invalid_inputs_are_rejected_with_the_offending_parameter() {
        let (x, y) = blobs(20, 3, &[0, 1], 1.0, 9);
        let params = BaselineParams::default();
        let err = params.fit(x.view(), &y[..19], 2, None).unwrap_err();
        assert!(matches!(
            err,
            BaselineError::LengthMismatch {
                rows: 20,
                labels: 19,
                ..
            }
        ));
        let err = params.fit(x.view(), &y, 1, None).unwrap_err();
        assert!(matches!(err, BaselineError::LabelOutOfRange { label: 1, .. }));
        let err = params.fit(x.view(), &[0; 20], 2, None).unwrap_err();
        assert!(matches!(err, BaselineError::TooFewClasses { found: 1 }));
        let mut bad = x.clone();
        bad[[3, 2]] = f32::NAN;
        let err = params.fit(bad.view(), &y, 2, None).unwrap_err();
        assert!(matches!(err, BaselineError::NonFinite { row: 3, col: 2, .. }));
        let err = params
            .fit(x.view(), &y, 2, Some((x.slice(ndarray::s![.., ..2]), &y)))
            .unwrap_err();
        assert!(matches!(err, BaselineError::FeatureMismatch { expected: 3, found: 2 }));
        let err = BaselineParams::default()
            .alphas(vec![])
            .fit(x.view(), &y, 2, None)
            .unwrap_err();
        assert!(err.to_string().contains("alphas"), "{err}");
        let err = BaselineParams::default()
            .max_iterations(0)
            .fit(x.view(), &y, 2, None)
            .unwrap_err();
        assert!(err.to_string().contains("max_iterations"), "{err}");
    }

    #[test]
    fn constant_features_do_not_blow_up() {
        let (mut x, y) = blobs(30, 4, &[0, 1], 2.0, 10);
        x.column_mut(1).fill(0.1);
        let (mean, std) = standardisation(x.view());
        assert_eq!(std[1], 1.0);
        assert_abs_diff_eq!(mean[1], 0.1);
        let fitted = BaselineParams::default().fit(x.view(), &y, 2, None).unwrap();
        assert!(fitted.model.predict_proba(x.view()).iter().all(|p| p.is_finite()));
    }

    /// Run with `cargo test --release -- --ignored --nocapture sweep_timing`.
    #[test]
    #[ignore = "timing measurement, takes a while"]
    fn sweep_timing() {
        for (name, spread) in [("pure noise", 0.0), ("class structure", 0.3)] {
            let (x, y) = blobs(3225, 1280, &[0, 1, 2, 3, 4], spread, 11);
            let (vx, vy) = blobs(800, 1280, &[0, 1, 2, 3, 4], spread, 12);
            let started = Instant::now();
            let fitted = BaselineParams::default()
                .fit(x.view(), &y, 5, Some((vx.view(), &vy)))
                .unwrap();
            println!(
                "{name}: total {:.1}s, chosen alpha {}",
                started.elapsed().as_secs_f64(),
                fitted.chosen_alpha
            );
            for p in &fitted.sweep {
                println!(
                    "  C={:>8.3} train={:.3} val={:.3} loss={:.3} grad={:.2e} {:?} {:.1}s",
                    p.c,
                    p.train_accuracy,
                    p.val_accuracy.unwrap(),
                    p.val_loss.unwrap(),
                    p.gradient_norm,
                    p.status,
                    p.seconds
                );
            }
        }
    }
}
