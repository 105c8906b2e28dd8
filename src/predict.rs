//! `predict`: new images to labels, through the same backbone and preprocessing the head was
//! trained on, both read from the head's card so they cannot be mismatched.

use std::path::PathBuf;

use serde::Serialize;

use crate::artifact::{self, ArtifactError};
use crate::backbone::Backbone;
use crate::backbone::BackboneError;
use crate::dataset::{image_files, DatasetError, Skipped};
use crate::embed::{embed_jobs, plain_crop, Job, Progress, Render};
use crate::onnx::edit::ModelEdit;
use crate::settings::RuntimeOptions;

/// Why `predict` failed.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The classifier file could not be loaded, or does not fit its workspace.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The backbone its card names is missing, has changed or failed to run.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// ONNX Runtime could not be found or loaded.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// An input path does not exist.
    #[error("{path}: no such file or folder")]
    NoInput {
        /// The input path.
        path: PathBuf,
    },
    /// An input folder could not be listed.
    #[error(transparent)]
    Walk(#[from] DatasetError),
    /// The backbone's features are not as wide as the classifier's input.
    #[error("the backbone gives {found} features but the head takes {expected}: the head belongs to another backbone output")]
    Width {
        /// Width of the backbone's features.
        found: usize,
        /// Width the classifier takes.
        expected: usize,
    },
}

/// Which head labels which images, and how. Build it with [`PredictOptions::new`] and
/// struct-update syntax for the rest.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// The classifier; when its folder is a workspace (holds a `dataset.json`), it must fit
    /// that workspace's classes and embeddings.
    pub head: PathBuf,
    /// Image files, or folders searched recursively.
    pub inputs: Vec<PathBuf>,
    /// Labels kept per image, most likely first.
    pub top_k: usize,
    /// Images per network call; `None` for [`Backbone::batch_size`]'s choice (32, or tuned on a GPU).
    pub batch_size: Option<usize>,
    /// Threads, ONNX Runtime library and pixel limit.
    pub runtime: RuntimeOptions,
    /// Test-time augmentation: average the probabilities of each image and its mirror image.
    pub tta: bool,
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
            batch_size: None,
            runtime: RuntimeOptions::default(),
            tta: false,
        }
    }
}

/// The labels of one image.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The image file, as found under the inputs.
    pub path: PathBuf,
    /// The `top_k` most likely labels, most likely first.
    pub top: Vec<(String, f32)>,
    /// Probabilities of every class, in the head's class order.
    pub probabilities: Vec<f32>,
    /// Multi-label classifiers only: the labels whose probability is at or above their
    /// threshold (from the card), in class order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// What `predict` labelled.
#[derive(Debug, Clone, Serialize)]
pub struct PredictSummary {
    /// The classifier's class names, in output order.
    pub classes: Vec<String>,
    /// One entry per image that could be embedded.
    pub predictions: Vec<Prediction>,
    /// Images that could not be read or embedded, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Labels every image under `opts.inputs` with the saved classifier, running the backbone its card names.
pub fn predict(opts: &PredictOptions, progress: &dyn Progress) -> Result<PredictSummary, PredictError> {
    let artifact::Loaded { classifier, card, .. } = artifact::open_in_place(&opts.head)?;
    let mut skipped = Vec::new();
    let files = collect_images(&opts.inputs, &mut skipped)?;
    for s in &skipped {
        progress.skipped(s);
    }
    let ort = crate::runtime::init_for(opts.runtime.ort_lib.as_deref(), opts.runtime.device)?;
    // A fine-tuned top runs inside the backbone, its trained weights put in place of the
    // originals, and its head takes the features: one ONNX Runtime session for the whole
    // network, the same graph `export` writes.
    let edit = ModelEdit {
        weights: classifier.backbone_weights().into_iter().collect(),
        ..ModelEdit::default()
    };
    let mut backbone = Backbone::open_with(&ort, card.backbone.resolve()?, opts.runtime.threads, &edit)?;
    let classifier = classifier.on_features();

    let mut predictions = Vec::with_capacity(files.len());
    progress.start(files.len() as u64);
    let renders = match opts.tta {
        true => vec![Render::Centre, Render::Mirrored],
        false => vec![Render::Centre],
    };
    let jobs: Vec<Job> = files
        .iter()
        .map(|file| Job {
            file: file.clone(),
            renders: renders.clone(),
        })
        .collect();
    let render = plain_crop(backbone.preprocessing);
    let work = jobs.iter().map(|j| j.renders.len()).sum();
    let batch_size = backbone.batch_size(opts.batch_size, work);
    let failures = embed_jobs(
        &mut backbone,
        &jobs,
        &render,
        &|_, _, _| {},
        batch_size,
        opts.runtime.max_pixels,
        progress,
        |inputs, dim, rows| {
            if dim != classifier.n_features() {
                return Err(PredictError::Width {
                    found: dim,
                    expected: classifier.n_features(),
                });
            }
            let x = ndarray::ArrayView2::from_shape((inputs.len(), dim), rows).expect("rows match inputs");
            let probs = classifier.predict_proba(x);
            // An image's inputs are adjacent; with --tta its probabilities are their mean.
            let mut start = 0;
            while start < inputs.len() {
                let i = inputs[start].0;
                let end = start + inputs[start..].iter().take_while(|input| input.0 == i).count();
                let p = probs
                    .slice(ndarray::s![start..end, ..])
                    .mean_axis(ndarray::Axis(0))
                    .expect("one row at least");
                start = end;
                let mut order: Vec<usize> = (0..p.len()).collect();
                order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
                let top = order
                    .iter()
                    .take(opts.top_k)
                    .map(|&c| (card.classes[c].clone(), p[c]))
                    .collect();
                let labels = card.thresholds.as_ref().map(|t| {
                    (0..p.len())
                        .filter(|&c| p[c] >= t[c])
                        .map(|c| card.classes[c].clone())
                        .collect()
                });
                predictions.push(Prediction {
                    path: files[i].clone(),
                    top,
                    probabilities: p.to_vec(),
                    labels,
                });
            }
            Ok(())
        },
    )?;
    progress.finish();
    // With --tta an image can lose one of its two inputs to NaN; it is skipped, not half-predicted.
    let failed: std::collections::HashSet<&PathBuf> = failures.iter().map(|(i, _)| &files[*i]).collect();
    predictions.retain(|p| !failed.contains(&p.path));
    for (i, reason) in failures {
        let s = Skipped {
            path: files[i].display().to_string(),
            reason,
        };
        progress.skipped(&s);
        skipped.push(s);
    }
    Ok(PredictSummary {
        classes: card.classes,
        predictions,
        skipped,
    })
}

/// Files named directly are taken as they are; folders are searched at any depth for image
/// files, by the data set scan's rules ([`image_files`]). Entries that cannot be used go to
/// `skipped`.
pub fn collect_images(inputs: &[PathBuf], skipped: &mut Vec<Skipped>) -> Result<Vec<PathBuf>, PredictError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_file() {
            files.push(input.clone());
        } else if input.is_dir() {
            files.extend(image_files(input, skipped)?);
        } else {
            return Err(PredictError::NoInput { path: input.clone() });
        }
    }
    Ok(files)
}
