//! `train-head`: fits the head, and the linear baseline if asked, on the workspace's cached
//! embeddings, and saves each with a card that says what it was trained on.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::ArrayView2;
use serde::Serialize;

use crate::artifact::{self, ArtifactError, Card, BASELINE_FILE, HEAD_FILE};
use crate::backbone::BackboneError;
use crate::baseline::{AlphaSelection, BaselineError, BaselineParams, SweepPoint};
use crate::cache::maps::CachedMaps;
use crate::cache::{load_snapshot, CacheError, Entry, Manifest, SplitData};
use crate::classifier::{Classifier, Targets};
use crate::dataset::Split;
use crate::finetune::{self, BatchNormMode, BuildError, FinetuneError, FinetuneParams, FittedTop, MapRows};
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
    /// The fine-tune could not run or diverged.
    #[error(transparent)]
    Finetune(#[from] FinetuneError),
    /// The layers after the cut cannot be trained.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The backbone the embeddings were made with cannot be found or read.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// `--finetune` names a cut the cache holds no maps of.
    #[error("--finetune {cut}: the workspace holds no maps at that cut ({cached}): run `headstart extract --data DIR --cut {cut}` first")]
    NoCut {
        /// The cut asked for.
        cut: String,
        /// What the workspace holds, in words.
        cached: String,
    },
    /// `--finetune` on multi-label data.
    #[error("--finetune trains single-label classifiers only; this workspace is multi-label: drop --finetune")]
    FinetuneMultiLabel,
}

/// `train-head --finetune`: which cut's layers to train with the head, and how fast.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FinetuneOptions {
    /// A named cut of the backbone or a tensor name, as given to `extract --cut`.
    pub cut: String,
    /// Adam's step size for the layers after the cut.
    pub backbone_lr: f32,
    /// Whether their batch norm layers train with batch statistics.
    pub batch_norm: BatchNormMode,
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
    /// Also train the backbone's layers after this cut, on the maps `extract --cut` cached.
    pub finetune: Option<FinetuneOptions>,
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
            finetune: None,
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
    /// Why a fine-tune stopped early after diverging, keeping the last good weights.
    pub diverged: Option<String>,
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
        entries: val_entries,
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

    let head_path = opts.out.clone().unwrap_or_else(|| opts.workspace.join(HEAD_FILE));
    let started = Instant::now();
    if let Some(ft) = &opts.finetune {
        if multi.is_some() {
            return Err(TrainError::FinetuneMultiLabel);
        }
        let sets = [
            (entries.as_slice(), y.as_slice()),
            (val_entries.as_slice(), yv.as_slice()),
        ];
        let (fitted, card) = finetune_top(opts, ft, &manifest, sets, on_epoch)?;
        artifact::save(&head_path, &fitted.model, card.to_metadata())?;
        let baseline = fit_baseline(opts, &head_path, card, (x.view(), &y), valid, None, &thresholds)?;
        return Ok(TrainSummary {
            head_path,
            multi_label: false,
            classes: manifest.classes,
            n_train: y.len(),
            n_val: yv.len(),
            history: fitted.history,
            best_epoch: fitted.best_epoch,
            seconds: started.elapsed().as_secs_f64(),
            baseline,
            diverged: fitted.diverged,
        });
    }
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
    artifact::save(&head_path, &fitted.head, card.to_metadata())?;

    let multi_sets = multi.map(|(t, _)| (t.view(), multi_valid));
    let baseline = fit_baseline(opts, &head_path, card, (x.view(), &y), valid, multi_sets, &thresholds)?;
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
        diverged: None,
    })
}

/// Multi-label targets of the train split, and the validation embeddings with theirs.
type MultiSets<'a> = (ArrayView2<'a, f32>, Option<(ArrayView2<'a, f32>, ArrayView2<'a, f32>)>);

/// Fits and saves the baseline beside the head when one is asked for; `card` is the head's.
fn fit_baseline(
    opts: &TrainOptions,
    head_path: &Path,
    card: Card,
    (x, y): (ArrayView2<f32>, &[usize]),
    valid: Option<(ArrayView2<f32>, &[usize])>,
    multi: Option<MultiSets>,
    thresholds: &dyn Fn(&dyn Classifier) -> Option<Vec<f32>>,
) -> Result<Option<BaselineSummary>, TrainError> {
    let Some(params) = &opts.baseline else {
        return Ok(None);
    };
    let started = Instant::now();
    let fit = match multi {
        Some((t, multi_valid)) => params.fit_multi_label(x, t, multi_valid)?,
        None => params.fit(x, y, card.classes.len(), valid)?,
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
    Ok(Some(BaselineSummary {
        path,
        chosen_alpha: fit.chosen_alpha,
        selection: fit.selection,
        sweep: fit.sweep,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// Fine-tunes the backbone's layers after the cut with a new head on the cached maps of the
/// train split `sets[0]`, choosing with the val split `sets[1]`; returns it with its card.
fn finetune_top(
    opts: &TrainOptions,
    ft: &FinetuneOptions,
    manifest: &Manifest,
    sets: [(&[Entry], &[usize]); 2],
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> Result<(FittedTop, Card), TrainError> {
    let info = manifest.backbone.resolve()?;
    let tensor = info.cut_tensor(&ft.cut);
    let bytes = std::fs::read(&info.path).map_err(|source| BackboneError::Io {
        path: info.path.clone(),
        source,
    })?;
    // A cut the backbone does not have, or cannot train after, is said before the cache is
    // looked at: extracting its maps would not help.
    if !info.cuts.contains_key(&ft.cut) {
        crate::onnx::subgraph::after_cut(&bytes, &tensor, &manifest.backbone.output).map_err(BuildError::from)?;
    }
    let record = manifest.cut.as_ref().filter(|c| c.tensor == tensor);
    let Some(record) = record else {
        return Err(TrainError::NoCut {
            cut: ft.cut.clone(),
            cached: match &manifest.cut {
                Some(c) => format!("it has maps at `{}` ({})", c.name, c.tensor),
                None => "the last extract cached no maps".into(),
            },
        });
    };
    let (top, store) = finetune::cached_top::<TrainError>(&opts.workspace, manifest, record)?;
    let [(train_entries, y), (val_entries, yv)] = sets;
    let train = CachedMaps::new(&store, train_entries)?;
    let val = CachedMaps::new(&store, val_entries)?;
    let params = FinetuneParams {
        head: opts.head.clone(),
        backbone_lr: ft.backbone_lr,
        batch_norm: ft.batch_norm,
    };
    let valid = (!yv.is_empty()).then_some((&val as &dyn MapRows, yv));
    let fitted = finetune::fit(top, &train, y, manifest.classes.len(), valid, &params, on_epoch)?;
    let mut settings = serde_json::to_value(&opts.head).expect("plain data");
    settings["finetune"] = serde_json::json!({
        "cut": record.name,
        "tensor": record.tensor,
        "backbone_lr": ft.backbone_lr,
        "batch_norm": ft.batch_norm,
        "diverged": fitted.diverged,
    });
    let card = Card {
        thresholds: None,
        kind: "finetune".into(),
        classes: manifest.classes.clone(),
        backbone: manifest.backbone.clone(),
        settings,
        history: fitted.history.clone(),
        best_epoch: Some(fitted.best_epoch),
        sweep: Vec::new(),
    };
    Ok((fitted, card))
}
