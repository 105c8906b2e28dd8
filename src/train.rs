//! `train-head`: fits the head, and the linear baseline if asked, on the workspace's cached
//! embeddings, and saves each with a card that says what it was trained on.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::artifact::{self, ArtifactError, Card, BASELINE_FILE, HEAD_FILE};
use crate::baseline::{AlphaSelection, BaselineError, BaselineParams, SweepPoint};
use crate::cache::{load_snapshot, CacheError, SplitData};
use crate::classifier::{Classifier, Targets};
use crate::dataset::Split;
use crate::head::{EpochStats, HeadError, HeadParams};
use crate::metrics::multilabel;
use crate::views::{with_views, ViewPolicy};

/// Why `train-head` failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The workspace's manifest or cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The head's parameters or data are invalid, or training diverged.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The baseline's parameters or data are invalid, or it could not be fitted.
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    /// The workspace has no training images.
    #[error(
        "the train split is empty: give the data train/ folders or a lower --val-percent/--test-percent at extract"
    )]
    NoTrain,
    /// A classifier file could not be written.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// What `train-head` fits on which workspace. Build it with [`TrainOptions::new`] and
/// struct-update syntax for the rest.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Folder holding the cache; the classifiers are saved there too.
    pub workspace: PathBuf,
    /// The head's hyper-parameters.
    pub head: HeadParams,
    /// Also fit the baseline, with these settings.
    pub baseline: Option<BaselineParams>,
    /// Where to write the head; the workspace's `head.safetensors` by default.
    pub out: Option<PathBuf>,
    /// Whether and how the head trains on the cached augmented views, when there are any.
    pub views: ViewPolicy,
}

impl TrainOptions {
    /// Fits a head with the default hyper-parameters, no baseline, saved in the workspace.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        TrainOptions {
            workspace: workspace.into(),
            head: HeadParams::default(),
            baseline: None,
            out: None,
            views: ViewPolicy::default(),
        }
    }
}

/// The fitted baseline, as `train-head --baseline` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSummary {
    /// The written `baseline.safetensors`.
    pub path: PathBuf,
    /// The regularisation strength the sweep chose.
    pub chosen_alpha: f64,
    /// How it was chosen (validation accuracy or a fallback).
    pub selection: AlphaSelection,
    /// Each alpha tried, with its scores.
    pub sweep: Vec<SweepPoint>,
    /// Wall time of the baseline's fit and save, in seconds.
    pub seconds: f64,
}

/// What `train-head` fitted and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// The written head file.
    pub head_path: PathBuf,
    /// Class names, in output order.
    pub classes: Vec<String>,
    /// Whether the data is multi-label (sigmoid outputs; accuracies count label decisions).
    pub multi_label: bool,
    /// Training images.
    pub n_train: usize,
    /// Validation images; 0 when there is no validation split.
    pub n_val: usize,
    /// One entry per epoch trained.
    pub history: Vec<EpochStats>,
    /// The 1-based epoch whose weights were saved.
    pub best_epoch: usize,
    /// Wall time of the head's training, in seconds.
    pub seconds: f64,
    /// The baseline, when one was asked for.
    pub baseline: Option<BaselineSummary>,
}

/// Fits the head (and the baseline if asked) on the workspace's train split, choosing with its
/// val split, and saves them; `on_epoch` is told after each head epoch.
pub fn train(opts: &TrainOptions, on_epoch: &mut dyn FnMut(&EpochStats)) -> Result<TrainSummary, TrainError> {
    if let Some(params) = &opts.baseline {
        // The head is saved before the baseline is fitted: a bad baseline setting must not
        // fail after the head file has been replaced.
        params.validate()?;
    }
    let (manifest, store) = load_snapshot(&opts.workspace)?;
    let SplitData {
        x, y, targets, entries, ..
    } = manifest.split(&store, Split::Train)?;
    if x.nrows() == 0 {
        return Err(TrainError::NoTrain);
    }
    let SplitData {
        x: xv,
        y: yv,
        targets: tv,
        ..
    } = manifest.split(&store, Split::Val)?;
    let has_val = xv.nrows() > 0;
    let valid = has_val.then(|| (xv.view(), yv.as_slice()));
    let n_classes = manifest.classes.len();
    // Multi-label data: the 0/1 matrices of both splits, and each classifier's thresholds
    // tuned on validation.
    let multi = targets.as_ref().zip(tv.as_ref());
    let multi_valid = multi.filter(|_| has_val).map(|(_, tv)| (xv.view(), tv.view()));
    let thresholds = |model: &dyn Classifier| {
        multi.map(|(_, tv)| match has_val {
            true => multilabel::tune_thresholds(model.predict_proba(xv.view()).view(), tv.view()),
            false => vec![multilabel::DEFAULT_THRESHOLD; n_classes],
        })
    };

    let started = Instant::now();
    let views = match (&manifest.views, opts.views) {
        (Some(record), ViewPolicy::WithPlain | ViewPolicy::ViewsOnly) => {
            let vectors = manifest.view_vectors(&opts.workspace, record, &entries)?;
            Some((record, with_views(&x, &y, targets.as_ref(), vectors, opts.views)))
        }
        _ => None,
    };
    let fitted = match &views {
        Some((_, v)) => {
            let y = match &v.targets {
                Some(t) => Targets::Sets(t.view()),
                None => Targets::Classes(&v.y),
            };
            let valid = match multi {
                Some(_) => multi_valid.map(|(vx, vt)| (vx, Targets::Sets(vt))),
                None => valid.map(|(vx, vy)| (vx, Targets::Classes(vy))),
            };
            opts.head
                .fit_views(v.x.view(), y, &v.pools, n_classes, valid, on_epoch)?
        }
        None => match multi {
            Some((t, _)) => opts.head.fit_multi_label(x.view(), t.view(), multi_valid, on_epoch)?,
            None => opts.head.fit(x.view(), &y, n_classes, valid, on_epoch)?,
        },
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut settings = serde_json::to_value(&opts.head).expect("plain data");
    if let Some((record, v)) = &views {
        settings["views"] = serde_json::json!({
            "policy": opts.views,
            "kind": record.kind,
            "count": record.count,
            "rows": v.x.nrows(),
        });
    }
    let card = Card {
        thresholds: thresholds(&fitted.head),
        kind: "head".into(),
        classes: manifest.classes.clone(),
        backbone: manifest.backbone.clone(),
        settings,
        history: fitted.history.clone(),
        best_epoch: Some(fitted.best_epoch),
        sweep: Vec::new(),
    };
    let head_path = opts.out.clone().unwrap_or_else(|| opts.workspace.join(HEAD_FILE));
    artifact::save(&head_path, &fitted.head, card.to_metadata())?;

    let baseline = match &opts.baseline {
        None => None,
        Some(params) => {
            let started = Instant::now();
            let fit = match multi {
                Some((t, _)) => params.fit_multi_label(x.view(), t.view(), multi_valid)?,
                None => params.fit(x.view(), &y, n_classes, valid)?,
            };
            let card = Card {
                thresholds: thresholds(&fit.model),
                kind: "baseline".into(),
                settings: serde_json::to_value(params).expect("plain data"),
                history: Vec::new(),
                best_epoch: None,
                sweep: fit.sweep.clone(),
                ..card
            };
            let path = head_path.with_file_name(BASELINE_FILE);
            artifact::save(&path, &fit.model, card.to_metadata())?;
            Some(BaselineSummary {
                path,
                chosen_alpha: fit.chosen_alpha,
                selection: fit.selection,
                sweep: fit.sweep,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
    };
    Ok(TrainSummary {
        head_path,
        multi_label: multi.is_some(),
        classes: manifest.classes,
        n_train: y.len(),
        n_val: yv.len(),
        history: fitted.history,
        best_epoch: fitted.best_epoch,
        seconds,
        baseline,
    })
}
