//! `predict`: new images to labels, through the same backbone and preprocessing the head was
//! trained on, both read from the head's card so they cannot be mismatched.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backbone::{Backbone, BackboneChoice, BackboneError, BackboneInfo};
use crate::cache::BackboneRecord;
use crate::dataset::Skipped;
use crate::dataset::IMAGE_EXTENSIONS;
use crate::extract::{embed_files, Progress};
use crate::head::{Head, HeadError};
use crate::settings::{RuntimeOptions, DEFAULT_BATCH_SIZE};
use crate::train::{Card, TrainError};

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Card(#[from] TrainError),
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("no head at {0}: run `headstart train-head` first, or pass --head FILE")]
    NoHead(PathBuf),
    #[error("{path}: no such file or folder")]
    NoInput { path: PathBuf },
    #[error("{0}: {1}")]
    Walk(PathBuf, std::io::Error),
    #[error("the backbone {path} has changed since the head was trained (sha256 {found}, trained on {expected}): restore it or re-run extract and train-head")]
    ModelChanged {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("the backbone gives {found} features but the head takes {expected}: the head belongs to another backbone output")]
    Width { found: usize, expected: usize },
}

/// Which head labels which images, and how. Build it with [`PredictOptions::new`] and
/// struct-update syntax for the rest.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// The saved head; its card names the backbone and preprocessing.
    pub head: PathBuf,
    /// Image files, or folders searched recursively.
    pub inputs: Vec<PathBuf>,
    /// Labels kept per image, most likely first.
    pub top_k: usize,
    /// Images per network call.
    pub batch_size: usize,
    /// Threads, ONNX Runtime library and pixel limit.
    pub runtime: RuntimeOptions,
}

impl PredictOptions {
    /// Labels kept per image unless told otherwise.
    pub const DEFAULT_TOP_K: usize = 3;

    /// Labels `inputs` with `head`, keeping the default number of labels, batch size and runtime.
    pub fn new(head: impl Into<PathBuf>, inputs: Vec<PathBuf>) -> Self {
        PredictOptions {
            head: head.into(),
            inputs,
            top_k: Self::DEFAULT_TOP_K,
            batch_size: DEFAULT_BATCH_SIZE,
            runtime: RuntimeOptions::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub path: PathBuf,
    /// The `top_k` most likely labels, most likely first.
    pub top: Vec<(String, f32)>,
    /// Probabilities of every class, in the head's class order.
    pub probabilities: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PredictSummary {
    pub classes: Vec<String>,
    pub predictions: Vec<Prediction>,
    pub skipped: Vec<Skipped>,
}

/// Opens the backbone a card names, exactly as it was when the head was trained.
pub fn open_backbone(record: &BackboneRecord, runtime: &RuntimeOptions) -> Result<Backbone, PredictError> {
    let info = checked_model(record)?;
    let ort = crate::runtime::init(runtime.ort_lib.as_deref())?;
    Ok(Backbone::open(&ort, info, runtime.threads)?)
}

/// Resolves the card's model file and checks it is byte for byte the one trained on.
pub fn checked_model(record: &BackboneRecord) -> Result<BackboneInfo, PredictError> {
    let p = record.preprocessing;
    let info = BackboneChoice {
        model: Some(record.model_path.display().to_string()),
        output: Some(record.output.clone()),
        preset: Some(p.preset),
        input_size: Some(p.size),
        resize: Some(p.resize),
        int8: false,
    }
    .resolve()?;
    if info.sha256 != record.model_sha256 {
        return Err(PredictError::ModelChanged {
            path: info.path,
            found: info.sha256,
            expected: record.model_sha256.clone(),
        });
    }
    Ok(info)
}

pub fn predict(opts: &PredictOptions, progress: &dyn Progress) -> Result<PredictSummary, PredictError> {
    if !opts.head.is_file() {
        return Err(PredictError::NoHead(opts.head.clone()));
    }
    let (head, metadata) = Head::load(&opts.head)?;
    let card = Card::from_metadata(&opts.head, &metadata)?;
    let files = collect_images(&opts.inputs)?;
    let mut backbone = open_backbone(&card.backbone, &opts.runtime)?;

    let mut predictions = Vec::with_capacity(files.len());
    progress.start(files.len() as u64);
    let failures = embed_files(
        &mut backbone,
        &files,
        opts.batch_size,
        opts.runtime.max_pixels,
        progress,
        |indices, dim, rows| {
            if dim != head.n_features() {
                return Err(PredictError::Width {
                    found: dim,
                    expected: head.n_features(),
                });
            }
            let x = ndarray::ArrayView2::from_shape((indices.len(), dim), rows).expect("rows match indices");
            let probs = head.predict_proba(x);
            for (&i, p) in indices.iter().zip(probs.rows()) {
                let mut order: Vec<usize> = (0..p.len()).collect();
                order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
                let top = order
                    .iter()
                    .take(opts.top_k)
                    .map(|&c| (card.classes[c].clone(), p[c]))
                    .collect();
                predictions.push(Prediction {
                    path: files[i].clone(),
                    top,
                    probabilities: p.to_vec(),
                });
            }
            Ok(())
        },
    )?;
    progress.finish();
    let skipped = failures
        .into_iter()
        .map(|(i, reason)| {
            let s = Skipped {
                path: files[i].display().to_string(),
                reason,
            };
            progress.skipped(&s);
            s
        })
        .collect();
    Ok(PredictSummary {
        classes: card.classes,
        predictions,
        skipped,
    })
}

/// Files named directly are taken as they are; folders are searched recursively for files with
/// image extensions, in sorted order.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, PredictError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_file() {
            files.push(input.clone());
        } else if input.is_dir() {
            walk(input, &mut files)?;
        } else {
            return Err(PredictError::NoInput { path: input.clone() });
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), PredictError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| PredictError::Walk(dir.to_path_buf(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            files.push(path);
        }
    }
    Ok(())
}
