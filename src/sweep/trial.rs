//! One trial: a configuration fitted on k - 1 folds and scored on the held-out one, for each
//! fold, and the summary of its scores.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::space::TrialSpec;
use crate::classifier::{Classifier, Targets};
use crate::finetune::{MapRows, Top};
use crate::metrics::{evaluate, log_loss};
use crate::views::ViewPolicy;

/// A statistic over the folds: mean, sample standard deviation and a 95% interval of the mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean over the folds.
    pub mean: f64,
    /// Sample standard deviation over the folds (n - 1); 0 for one fold.
    pub std: f64,
    /// Lower end of the 95% interval of the mean, Student's t with k - 1 degrees of freedom.
    pub low: f64,
    /// Upper end of that interval.
    pub high: f64,
}

impl Stat {
    /// The statistic of `values` (at least one).
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let half = t_975(values.len().saturating_sub(1)) * std / n.sqrt();
        Stat {
            mean,
            std,
            low: mean - half,
            high: mean + half,
        }
    }
}

/// The 97.5% quantile of Student's t with `dof` degrees of freedom (the two-sided 95%
/// interval), tabulated to 3 decimals for 1..=30 and the normal 1.960 beyond. A fold count
/// above 30 is rare enough that the normal value loses nothing that matters.
fn t_975(dof: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => 0.0,
        d if d <= 30 => T[d - 1],
        _ => 1.960,
    }
}

/// Scores of one fold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FoldScore {
    /// Share of held-out images whose most probable class is right.
    pub accuracy: f64,
    /// How many held-out images that is.
    pub correct: usize,
    /// Held-out images.
    pub n: usize,
    /// Mean over the classes present of each class's recall.
    pub mean_class_recall: f64,
    /// Mean negative log probability of the true class (probabilities clamped at 1e-15).
    pub log_loss: f64,
    /// Seconds to fit and score.
    pub seconds: f64,
}

/// Images classified right over all held-out folds: equal counts are a tie, whatever the
/// fold sizes (the means of fold accuracies differ in the fourth decimal when the same number
/// of images is missed in folds of different sizes).
pub fn correct(folds: &[FoldScore]) -> usize {
    folds.iter().map(|f| f.correct).sum()
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// Every fold was fitted and scored.
    Done {
        /// Accuracy over the folds.
        accuracy: Stat,
        /// Mean class recall over the folds.
        mean_class_recall: Stat,
        /// Log loss over the folds.
        log_loss: Stat,
        /// Each fold's scores, in fold order.
        folds: Vec<FoldScore>,
    },
    /// A fold could not be fitted (invalid for this data, diverged); the sweep goes on.
    Failed {
        /// The fold that failed.
        fold: usize,
        /// Why, as the classifier's error says it.
        reason: String,
    },
}

/// A trial's configuration and outcome, as a sweep's journal and leaderboard hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// [`TrialSpec::id`].
    pub id: String,
    /// The configuration.
    pub spec: TrialSpec,
    /// The backbone whose embeddings it ran on, by name (set by the sweep).
    #[serde(default)]
    pub backbone: String,
    /// For an MLP trial on a backbone with cached augmented views: how it drew them (set by the
    /// sweep). `None` for the other kinds, which fit the plain vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<ViewPolicy>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Seconds for all folds.
    pub seconds: f64,
}

impl TrialResult {
    /// The configuration in a few words, with the view setting when it has one:
    /// `mlp hidden=512 lr=0.001 dropout=0.5 views=off`.
    pub fn label(&self) -> String {
        match self.views {
            Some(policy) => format!("{} views={}", self.spec.label(), policy.name()),
            None => self.spec.label(),
        }
    }
}

/// What trials are fitted and scored on: every image's embedding and class, and what some
/// kinds need besides.
#[derive(Clone, Copy)]
pub struct TrialData<'a> {
    /// The embeddings: one row per image, then (with `pools`) the rows of their views.
    pub x: ArrayView2<'a, f32>,
    /// Each row's class, in `0..n_classes`.
    pub y: &'a [usize],
    /// With views: for each image, the rows an MLP draws from, one per epoch
    /// ([`HeadParams::fit_views`](crate::head::HeadParams::fit_views)). The other kinds fit the
    /// images' own rows: views are the MLP's training draws, not more images.
    pub pools: Option<&'a [Vec<usize>]>,
    /// For fine-tune trials: every image's cached map at the cut (rows as in `x`), and the top
    /// as the backbone has it, which each fit starts from.
    pub maps: Option<(&'a dyn MapRows, &'a Top)>,
}

impl<'a> TrialData<'a> {
    /// Embeddings and classes alone: no views, no maps.
    pub fn plain(x: ArrayView2<'a, f32>, y: &'a [usize]) -> Self {
        TrialData {
            x,
            y,
            pools: None,
            maps: None,
        }
    }
}

/// Fits `spec` on the rows `rows` of `x`/`y` (class indices in `0..n_classes`) with no
/// validation set. The MLP head trains on them in place; the other kinds copy them once into
/// their own working form (standardised `f64`, unit rows) as their solvers need, as
/// scikit-learn's do.
pub fn fit<'a>(
    spec: &TrialSpec,
    x: ArrayView2<'a, f32>,
    y: &'a [usize],
    rows: &[usize],
    n_classes: usize,
) -> Result<Box<dyn Classifier>, String> {
    fit_on(spec, &TrialData::plain(x, y), rows, n_classes)
}

/// [`fit`] on everything `data` holds: views for MLP trials, maps for fine-tune trials.
pub fn fit_on(
    spec: &TrialSpec,
    data: &TrialData,
    rows: &[usize],
    n_classes: usize,
) -> Result<Box<dyn Classifier>, String> {
    fn boxed(model: impl Classifier + 'static) -> Box<dyn Classifier> {
        Box::new(model)
    }
    let (x, y) = (data.x, data.y);
    let gathered = || gather(x, y, rows);
    match spec {
        TrialSpec::Mlp(p) => match data.pools {
            Some(pools) => {
                let views: Vec<Vec<usize>> = rows.iter().map(|&r| pools[r].clone()).collect();
                p.fit_views(x, Targets::Classes(y), &views, n_classes, None, &mut |_| {})
            }
            None => p.fit_rows(x, y, rows, n_classes, None, &mut |_| {}),
        }
        .map(|f| boxed(f.head))
        .map_err(|e| e.to_string()),
        TrialSpec::Logistic { c } => {
            let (x, y) = gathered();
            TrialSpec::baseline_params(*c)
                .fit(x.view(), &y, n_classes, None)
                .map(|f| boxed(f.model))
                .map_err(|e| e.to_string())
        }
        TrialSpec::Knn(p) => {
            let (x, y) = gathered();
            p.fit(x.view(), &y, n_classes).map(boxed).map_err(|e| e.to_string())
        }
        TrialSpec::Prototype(p) => {
            let (x, y) = gathered();
            p.fit(x.view(), &y, n_classes).map(boxed).map_err(|e| e.to_string())
        }
        TrialSpec::Finetune { cut, params } => {
            let (maps, top) = data
                .maps
                .ok_or_else(|| format!("no maps at the cut `{cut}` were given to the fine-tune"))?;
            let labels: Vec<usize> = rows.iter().map(|&r| y[r]).collect();
            let subset = Subset { maps, rows };
            crate::finetune::fit(top.clone(), &subset, &labels, n_classes, None, params, &mut |_| {})
                .map(|f| boxed(f.model))
                .map_err(|e| e.to_string())
        }
    }
}

/// Some rows of a set of maps, as a set of their own.
struct Subset<'a> {
    maps: &'a dyn MapRows,
    rows: &'a [usize],
}

impl MapRows for Subset<'_> {
    fn images(&self) -> usize {
        self.rows.len()
    }

    fn map_len(&self) -> usize {
        self.maps.map_len()
    }

    fn read(&self, rows: &[usize], out: &mut [f32]) {
        let mapped: Vec<usize> = rows.iter().map(|&r| self.rows[r]).collect();
        self.maps.read(&mapped, out)
    }
}

/// Rows predicted at a time by [`predict_on`]: the held-out rows are gathered this many at
/// a time, so a trial never copies a whole fold.
const PREDICT_ROWS: usize = 1024;

/// `model`'s probabilities for the images `rows` of `data`: their maps for a fine-tuned top
/// (which takes maps), their embeddings otherwise.
pub fn predict_on(model: &dyn Classifier, data: &TrialData, rows: &[usize]) -> Array2<f32> {
    let mut probs = Array2::zeros((rows.len(), model.n_classes()));
    for (chunk, mut out) in rows
        .chunks(PREDICT_ROWS)
        .zip(probs.axis_chunks_iter_mut(Axis(0), PREDICT_ROWS))
    {
        let inputs = match (model.cut(), data.maps) {
            (Some(_), Some((maps, _))) => {
                let mut read = Array2::zeros((chunk.len(), maps.map_len()));
                maps.read(chunk, read.as_slice_mut().expect("standard layout"));
                read
            }
            _ => data.x.select(Axis(0), chunk),
        };
        out.assign(&model.predict_proba(inputs.view()));
    }
    probs
}

/// Scores of `probs` against `y`.
pub fn score(probs: ArrayView2<f32>, y: &[usize], class_names: &[String], seconds: f64) -> FoldScore {
    let e = evaluate(probs, y, class_names);
    FoldScore {
        accuracy: e.accuracy,
        correct: e.confusion.iter().enumerate().map(|(c, row)| row[c]).sum(),
        n: e.n,
        mean_class_recall: e.mean_class_recall,
        log_loss: log_loss(probs, y),
        seconds,
    }
}

/// Runs `spec` over the folds: for each fold in `0..k`, fits on the rows of `x` whose fold
/// differs and scores on the rows of that fold. `fold[i]` is row i's fold. The embeddings are
/// not copied per trial (see [`fit`] and [`predict_on`]).
pub fn run<'a>(
    spec: &TrialSpec,
    x: ArrayView2<'a, f32>,
    y: &'a [usize],
    fold: &[usize],
    k: usize,
    class_names: &[String],
) -> TrialResult {
    run_on(spec, &TrialData::plain(x, y), fold, k, class_names)
}

/// [`run`] on everything `data` holds (see [`fit_on`]); the images are the first `fold.len()`
/// rows, and held-out images are always scored on their own rows.
pub fn run_on(spec: &TrialSpec, data: &TrialData, fold: &[usize], k: usize, class_names: &[String]) -> TrialResult {
    let started = std::time::Instant::now();
    let mut folds = Vec::with_capacity(k);
    let mut failure = None;
    for f in 0..k {
        let fold_started = std::time::Instant::now();
        let train: Vec<usize> = (0..fold.len()).filter(|&i| fold[i] != f).collect();
        let held: Vec<usize> = (0..fold.len()).filter(|&i| fold[i] == f).collect();
        let yh: Vec<usize> = held.iter().map(|&i| data.y[i]).collect();
        match fit_on(spec, data, &train, class_names.len()) {
            Ok(model) => {
                let probs = predict_on(model.as_ref(), data, &held);
                if probs.iter().any(|p| !p.is_finite()) {
                    failure = Some((
                        f,
                        "the model's probabilities are not finite (the fit diverged)".to_string(),
                    ));
                    break;
                }
                folds.push(score(
                    probs.view(),
                    &yh,
                    class_names,
                    fold_started.elapsed().as_secs_f64(),
                ));
            }
            Err(reason) => {
                failure = Some((f, reason));
                break;
            }
        }
    }
    let outcome = match failure {
        Some((fold, reason)) => Outcome::Failed { fold, reason },
        None => {
            let stat = |get: fn(&FoldScore) -> f64| Stat::of(&folds.iter().map(get).collect::<Vec<_>>());
            Outcome::Done {
                accuracy: stat(|s| s.accuracy),
                mean_class_recall: stat(|s| s.mean_class_recall),
                log_loss: stat(|s| s.log_loss),
                folds,
            }
        }
    };
    TrialResult {
        id: spec.id(),
        spec: spec.clone(),
        backbone: String::new(),
        views: None,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The rows `rows` of `x` and their labels.
pub fn gather(x: ArrayView2<f32>, y: &[usize], rows: &[usize]) -> (Array2<f32>, Vec<usize>) {
    (x.select(Axis(0), rows), rows.iter().map(|&i| y[i]).collect())
}
