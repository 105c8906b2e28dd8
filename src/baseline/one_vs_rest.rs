//! The baseline for multi-label data: one binary logistic regression per label on the same
//! standardised embeddings, scikit-learn's `OneVsRestClassifier(LogisticRegression)`. One alpha
//! serves every label, as one `C` does there, chosen on validation mAP.
//!
//! linfa's binary `LogisticRegression` minimises `Σ_i -log p(y_i | x_i) + alpha / 2 · ||w||²`,
//! scikit-learn's objective divided by `C`, so `alpha = 1 / C` here too.

use std::time::Instant;

use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use linfa_logistic::LogisticRegression;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

use super::widening::Edge;
use super::{
    beyond_edge, path_start, standardisation, standardise, step_toward_edge, AlphaSelection, Baseline, BaselineError,
    BaselineParams, FittedBaseline, SweepPoint, UNSEEN_CLASS_LOGIT,
};
use crate::classifier::{check_targets, Targets};
use crate::metrics::multilabel;

/// One label's fits along the alpha path.
struct LabelPath {
    /// Per alpha, in the sweep's order: `[features + 1]` parameters (intercept last) for the
    /// label being present, and the gradient norm reached.
    fits: Vec<(Array1<f64>, f64)>,
    /// 1 when linfa's positive class is "present", -1 when it is "absent" (see `fit_label`).
    sign: f64,
}

/// What every alpha's model is scored on: the training and validation sets, and the
/// standardisation the model carries.
#[derive(Clone, Copy)]
struct Scoring<'a> {
    x: ArrayView2<'a, f32>,
    y: ArrayView2<'a, f32>,
    valid: Option<(ArrayView2<'a, f32>, ArrayView2<'a, f32>)>,
    mean: &'a Array1<f32>,
    std: &'a Array1<f32>,
}

impl LabelPath {
    /// The two solutions nearest `edge` of `alphas` (the sweep's alphas, strongest first),
    /// ordered toward it: the start of the next alpha past that edge.
    fn toward(&self, alphas: &[f64], edge: Edge) -> Vec<(f64, Array1<f64>)> {
        let n = alphas.len();
        let order = match edge {
            Edge::Strong => [1, 0],
            Edge::Weak => [n - 2, n - 1],
        };
        order.iter().map(|&a| (alphas[a], self.fits[a].0.clone())).collect()
    }
}

impl BaselineParams {
    /// Fits one binary logistic regression per label (columns of the 0/1 matrix `y`) for
    /// every alpha and keeps the alpha with the best validation mAP (ties go to the lower
    /// validation binary cross-entropy); without `valid`, only the fallback alpha. A label
    /// that is always absent (or always present) in training gets a constant probability of
    /// 0 (or 1). Labels are fitted in parallel, each along the alpha path with warm starts;
    /// when the best alpha is on an edge of the grid, the grid is widened past it for every
    /// label at once (see [`BaselineParams::widen`]).
    pub fn fit_multi_label(
        &self,
        x: ArrayView2<f32>,
        y: ArrayView2<f32>,
        valid: Option<(ArrayView2<f32>, ArrayView2<f32>)>,
    ) -> Result<FittedBaseline, BaselineError> {
        self.validate()?;
        let n_labels = y.ncols();
        check_targets("training", x, Targets::Sets(y), n_labels)?;
        if x.nrows() == 0 {
            return Err(BaselineError::EmptyTrainingSet);
        }
        if let Some((vx, vy)) = valid {
            if vx.ncols() != x.ncols() {
                return Err(BaselineError::FeatureMismatch {
                    expected: x.ncols(),
                    found: vx.ncols(),
                });
            }
            check_targets("validation", vx, Targets::Sets(vy), n_labels)?;
            if vx.nrows() == 0 {
                return Err(BaselineError::EmptyValidationSet);
            }
        }
        if n_labels < 2 {
            return Err(BaselineError::TooFewClasses { found: n_labels });
        }
        let (mut alphas, selection) = match valid {
            Some(_) => (self.alphas.clone(), AlphaSelection::Validation),
            None => (vec![self.fallback_alpha], AlphaSelection::Fallback),
        };
        alphas.sort_by(|a, b| b.total_cmp(a));
        alphas.dedup();

        let (mean, std) = standardisation(x);
        let x_std: Array2<f64> = standardise(x, &mean, &std);
        let started = Instant::now();
        let mut paths: Vec<LabelPath> = (0..n_labels)
            .into_par_iter()
            .map(|label| self.fit_label(x_std.view(), y.column(label), &alphas, Vec::new(), 1.0))
            .collect::<Result<_, _>>()?;
        // Labels run side by side, so each alpha's share of the wall time is what is known.
        let seconds = started.elapsed().as_secs_f64() / alphas.len() as f64;

        // The best validation mAP wins; ties go to the lower validation cross-entropy.
        let keep_best = |best: &mut Option<(Baseline, SweepPoint)>, model: Baseline, point: &SweepPoint| {
            let map = |p: &SweepPoint| p.val_map.unwrap_or(f64::NEG_INFINITY);
            let loss = |p: &SweepPoint| p.val_loss.unwrap_or(f64::INFINITY);
            if best
                .as_ref()
                .is_none_or(|(_, b)| map(point) > map(b) || (map(point) == map(b) && loss(point) < loss(b)))
            {
                *best = Some((model, point.clone()));
            }
        };
        // Views reborrowed here, so that the three inputs' lifetimes meet in one.
        let data = Scoring {
            x: x.view(),
            y: y.view(),
            valid: valid.as_ref().map(|(vx, vy)| (vx.view(), vy.view())),
            mean: &mean,
            std: &std,
        };
        let mut sweep = Vec::with_capacity(alphas.len());
        let mut best: Option<(Baseline, SweepPoint)> = None;
        for (a, &alpha) in alphas.iter().enumerate() {
            let (point, model) = self.point(&data, &paths, a, alpha, seconds);
            keep_best(&mut best, model, &point);
            sweep.push(point);
        }
        let mut steps = [0, 0];
        while let Some((alpha, edge)) = best
            .as_ref()
            .and_then(|(_, b)| beyond_edge(&alphas, b.alpha, steps, self.widen))
        {
            let started = Instant::now();
            let fits: Vec<LabelPath> = paths
                .par_iter()
                .enumerate()
                .map(|(label, path)| {
                    let start = path.toward(&alphas, edge);
                    self.fit_label(x_std.view(), y.column(label), &[alpha], start, path.sign)
                })
                .collect::<Result<_, _>>()?;
            let at = match edge {
                Edge::Strong => 0,
                Edge::Weak => alphas.len(),
            };
            alphas.insert(at, alpha);
            for (path, mut fit) in paths.iter_mut().zip(fits) {
                path.fits.insert(at, fit.fits.remove(0));
            }
            let (mut point, model) = self.point(&data, &paths, at, alpha, started.elapsed().as_secs_f64());
            point.widened = true;
            keep_best(&mut best, model, &point);
            sweep.insert(at, point);
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

    /// The one-vs-rest model of the `a`-th fit of every label's path, at `alpha`, and its
    /// sweep point scored on `data`.
    fn point(&self, data: &Scoring, paths: &[LabelPath], a: usize, alpha: f64, seconds: f64) -> (SweepPoint, Baseline) {
        let Scoring { x, y, valid, mean, std } = *data;
        let n_labels = paths.len();
        let mut weights = Array2::zeros((x.ncols(), n_labels));
        let mut intercept = Array1::zeros(n_labels);
        let mut worst_gradient = 0.0f64;
        for (label, path) in paths.iter().enumerate() {
            let (params, gradient) = &path.fits[a];
            weights
                .column_mut(label)
                .assign(&params.slice(s![..x.ncols()]).mapv(|v| v as f32));
            intercept[label] = params[x.ncols()] as f32;
            worst_gradient = worst_gradient.max(*gradient);
        }
        let model = Baseline {
            mean: mean.clone(),
            std: std.clone(),
            weights,
            intercept,
            multi_label: true,
        };
        let decisions = |probs: ArrayView2<f32>, truth: ArrayView2<f32>| {
            let right = probs
                .iter()
                .zip(truth)
                .filter(|(&p, &t)| (p >= 0.5) == (t > 0.5))
                .count();
            right as f64 / probs.len().max(1) as f64
        };
        let train_accuracy = decisions(model.predict_proba(x).view(), y);
        let (val_accuracy, val_map, val_loss) = match valid {
            Some((vx, vy)) => {
                let probs = model.predict_proba(vx);
                let names: Vec<String> = (0..n_labels).map(|l| l.to_string()).collect();
                let map = multilabel::evaluate(probs.view(), vy, &vec![0.5; n_labels], &names).mean_average_precision;
                (
                    Some(decisions(probs.view(), vy)),
                    Some(map),
                    Some(binary_cross_entropy(probs.view(), vy)),
                )
            }
            None => (None, None, None),
        };
        let point = SweepPoint {
            alpha,
            c: 1.0 / alpha,
            train_accuracy,
            val_accuracy,
            val_map,
            val_loss,
            gradient_norm: worst_gradient,
            status: self.status(worst_gradient, alpha),
            seconds,
            widened: false,
        };
        (point, model)
    }

    /// One label's binary fits at `alphas` in turn, each starting along `path` (the solutions
    /// before them, oldest first) and adding to it; `sign` is that path's [`LabelPath::sign`]
    /// (any value when `path` is empty).
    fn fit_label(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f32>,
        alphas: &[f64],
        mut path: Vec<(f64, Array1<f64>)>,
        mut sign: f64,
    ) -> Result<LabelPath, BaselineError> {
        let present: Array1<bool> = y.mapv(|v| v > 0.5);
        let positives = present.iter().filter(|&&p| p).count();
        if positives == 0 || positives == present.len() {
            let mut params = Array1::zeros(x.ncols() + 1);
            params[x.ncols()] = if positives == 0 {
                f64::from(UNSEEN_CLASS_LOGIT)
            } else {
                -f64::from(UNSEEN_CLASS_LOGIT)
            };
            return Ok(LabelPath {
                fits: alphas.iter().map(|_| (params.clone(), 0.0)).collect(),
                sign,
            });
        }
        let dataset = DatasetBase::new(x, present.view());
        let targets = y.mapv(f64::from);
        let mut fits = Vec::with_capacity(alphas.len());
        // linfa makes the more frequent of the two values its positive class (on a tie the one
        // it meets first), so its parameters are for "present" or for "absent": they are
        // flipped to "present" here, and a start back to linfa's side.
        for &alpha in alphas {
            let mut solver = LogisticRegression::default()
                .alpha(alpha)
                .max_iterations(self.max_iterations)
                .gradient_tolerance(self.tolerance_at(alpha) * x.nrows() as f64);
            if let Some(start) = path_start(&path, alpha) {
                solver = solver.initial_params(start * sign);
            }
            let fitted = solver
                .fit(&dataset)
                .map_err(|source| BaselineError::Fit { alpha, source })?;
            sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
            let mut params = fitted.params() * sign;
            params = ndarray::concatenate![Axis(0), params, ndarray::arr1(&[fitted.intercept() * sign])];
            let gradient = gradient_norm(x, targets.view(), &params, alpha);
            step_toward_edge(&mut path, alpha, params.clone());
            fits.push((params, gradient));
        }
        Ok(LabelPath { fits, sign })
    }
}

/// L2 norm of the gradient of the binary objective (summed cross-entropy plus
/// `alpha / 2 · ||w||²`) at `params` (`[features + 1]`, intercept last), divided by the sample
/// count, as for the multinomial baseline.
fn gradient_norm(x: ArrayView2<f64>, y: ArrayView1<f64>, params: &Array1<f64>, alpha: f64) -> f64 {
    let n_features = x.ncols();
    let w = params.slice(s![..n_features]);
    let mut diff = x.dot(&w) + params[n_features];
    diff.mapv_inplace(|z| 1.0 / (1.0 + (-z).exp()));
    diff -= &y;
    let grad_w = x.t().dot(&diff) + &w * alpha;
    let squared = grad_w.iter().map(|g| g * g).sum::<f64>() + diff.sum().powi(2);
    squared.sqrt() / x.nrows() as f64
}

/// Mean binary cross-entropy over every (image, label), probabilities clamped at 1e-12.
fn binary_cross_entropy(probs: ArrayView2<f32>, truth: ArrayView2<f32>) -> f64 {
    let total: f64 = probs
        .iter()
        .zip(truth)
        .map(|(&p, &t)| {
            let p = f64::from(p).clamp(1e-12, 1.0 - 1e-12);
            -(f64::from(t) * p.ln() + (1.0 - f64::from(t)) * (1.0 - p).ln())
        })
        .sum();
    total / probs.len().max(1) as f64
}
