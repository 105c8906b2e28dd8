//! `train-head`: fits the head, and the linear baseline if asked, on the workspace's cached
//! embeddings, and saves each with a card that says what it was trained on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::baseline::{AlphaSelection, BaselineError, BaselineParams, SweepPoint};
use crate::cache::{load_snapshot, BackboneRecord, CacheError, SplitData};
use crate::dataset::Split;
use crate::head::{EpochStats, HeadError, HeadParams};

/// File names of the workspace's latest head and baseline.
pub const HEAD_FILE: &str = "head.safetensors";
pub const BASELINE_FILE: &str = "baseline.safetensors";
/// The safetensors metadata key holding the [`Card`] as JSON.
pub const CARD_KEY: &str = "headstart";

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    #[error(
        "the train split is empty: give the data train/ folders or a lower --val-percent/--test-percent at extract"
    )]
    NoTrain,
    #[error("{path} has no headstart card in its metadata: it was not written by `headstart train-head`")]
    NoCard { path: PathBuf },
    #[error("{path}: its card is unreadable ({message})")]
    BadCard { path: PathBuf, message: String },
}

/// What a saved classifier was trained on and how; stored in its file's metadata so the file
/// alone is enough to predict with the same backbone and preprocessing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    pub kind: String,
    pub classes: Vec<String>,
    pub backbone: BackboneRecord,
    pub settings: serde_json::Value,
    #[serde(default)]
    pub history: Vec<EpochStats>,
    #[serde(default)]
    pub best_epoch: Option<usize>,
    #[serde(default)]
    pub sweep: Vec<SweepPoint>,
}

impl Card {
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(CARD_KEY.to_string(), serde_json::to_string(self).expect("plain data"))])
    }

    pub fn from_metadata(path: &Path, metadata: &BTreeMap<String, String>) -> Result<Card, TrainError> {
        let json = metadata.get(CARD_KEY).ok_or_else(|| TrainError::NoCard {
            path: path.to_path_buf(),
        })?;
        serde_json::from_str(json).map_err(|e| TrainError::BadCard {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub workspace: PathBuf,
    pub head: HeadParams,
    /// Also fit the baseline, with these settings.
    pub baseline: Option<BaselineParams>,
    /// Where to write the head; the workspace's `head.safetensors` by default.
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineSummary {
    pub path: PathBuf,
    pub chosen_alpha: f64,
    pub selection: AlphaSelection,
    pub sweep: Vec<SweepPoint>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub head_path: PathBuf,
    pub classes: Vec<String>,
    pub n_train: usize,
    pub n_val: usize,
    pub history: Vec<EpochStats>,
    pub best_epoch: usize,
    pub seconds: f64,
    pub baseline: Option<BaselineSummary>,
}

pub fn train(opts: &TrainOptions, on_epoch: &mut dyn FnMut(&EpochStats)) -> Result<TrainSummary, TrainError> {
    let (manifest, store) = load_snapshot(&opts.workspace)?;
    let SplitData { x, y, .. } = manifest.split(&store, Split::Train)?;
    if x.nrows() == 0 {
        return Err(TrainError::NoTrain);
    }
    let SplitData { x: xv, y: yv, .. } = manifest.split(&store, Split::Val)?;
    let valid = (xv.nrows() > 0).then(|| (xv.view(), yv.as_slice()));
    let n_classes = manifest.classes.len();

    let started = Instant::now();
    let fitted = opts.head.fit(x.view(), &y, n_classes, valid, on_epoch)?;
    let seconds = started.elapsed().as_secs_f64();
    let card = Card {
        kind: "head".into(),
        classes: manifest.classes.clone(),
        backbone: manifest.backbone.clone(),
        settings: serde_json::to_value(&opts.head).expect("plain data"),
        history: fitted.history.clone(),
        best_epoch: Some(fitted.best_epoch),
        sweep: Vec::new(),
    };
    let head_path = opts.out.clone().unwrap_or_else(|| opts.workspace.join(HEAD_FILE));
    fitted.head.save(&head_path, card.to_metadata())?;

    let baseline = match &opts.baseline {
        None => None,
        Some(params) => {
            let started = Instant::now();
            let fit = params.fit(x.view(), &y, n_classes, valid)?;
            let card = Card {
                kind: "baseline".into(),
                settings: serde_json::to_value(params).expect("plain data"),
                history: Vec::new(),
                best_epoch: None,
                sweep: fit.sweep.clone(),
                ..card
            };
            let path = head_path.with_file_name(BASELINE_FILE);
            fit.model.save(&path, card.to_metadata())?;
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
        classes: manifest.classes,
        n_train: y.len(),
        n_val: yv.len(),
        history: fitted.history,
        best_epoch: fitted.best_epoch,
        seconds,
        baseline,
    })
}
