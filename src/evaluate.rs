//! `eval`: the saved head and baseline on a held-out split, side by side, with pictures.

use std::path::PathBuf;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::artifact::{self, ArtifactError, BASELINE_FILE, HEAD_FILE};
use crate::atomic::{write_file, WriteError};
use crate::cache::{load_snapshot, CacheError, Entry, Manifest, SplitData};
use crate::classifier::Classifier;
use crate::dataset::Split;
use crate::metrics::multilabel::{self, MultiLabelEvaluation};
use crate::metrics::{evaluate, most_probable, Evaluation};
use crate::report::{confusion_svg, label_curves, precision_recall_svg, training_curves_svg, EpochRecord, ReportError};
use crate::views::mean_of_views;

/// Why `eval` failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The workspace's manifest or cache could not be read, or the report folder not made.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The head or baseline could not be loaded, or does not fit the workspace.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// `eval.json` could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A picture could not be drawn or written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// `--tta` was asked for a fine-tuned head.
    #[error(
        "--tta is not available for a fine-tuned head: only the plain crop's maps are cached at the cut; drop --tta"
    )]
    TtaFinetuned,
    /// `--tta` was asked but the cache lacks mirrored views of the split's images.
    #[error("--tta needs the mirrored views of the {split} split's images ({why}): run `headstart extract --tta` with the same data, or drop --tta")]
    NoMirrored {
        /// The split evaluated.
        split: Split,
        /// What is missing.
        why: String,
    },
    /// The chosen split has no images in the workspace.
    #[error("the {split} split has no images: pass --split with one that has (train, val or test)")]
    EmptySplit {
        /// The split asked for.
        split: Split,
    },
}

/// Which split of which workspace to evaluate, and where the report goes. Build it with
/// [`EvalOptions::new`] and struct-update syntax for the rest.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Folder holding the cache and the classifiers.
    pub workspace: PathBuf,
    /// The split to evaluate on.
    pub split: Split,
    /// The head file; `<workspace>/head.safetensors` by default.
    pub head: Option<PathBuf>,
    /// Where eval.json and the pictures go; `<workspace>/report` by default.
    pub report_dir: Option<PathBuf>,
    /// Test-time augmentation: average each classifier's probabilities over the plain crop and
    /// its mirror image, whose vectors `extract --tta` cached.
    pub tta: bool,
}

impl EvalOptions {
    /// The split evaluated unless told otherwise: the one no choice was made on.
    pub const DEFAULT_SPLIT: Split = Split::Test;

    /// Evaluates the workspace's head on the test split, reporting into the workspace.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        EvalOptions {
            workspace: workspace.into(),
            split: Self::DEFAULT_SPLIT,
            head: None,
            report_dir: None,
            tta: false,
        }
    }
}

/// An evaluated image, named by its path, and what a model made of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prediction {
    /// The image, relative to the data folder.
    pub path: String,
    /// Its class.
    pub true_label: String,
    /// The class the model chose.
    pub predicted_label: String,
    /// The probability, in [0, 1], the model gave the class it chose.
    pub confidence: f32,
}

/// One classifier's results on the split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEvaluation {
    /// The classifier's kind: `head` or `baseline`.
    pub model: String,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// Accuracy, per-class metrics and confusion matrix.
    pub evaluation: Evaluation,
    /// Every misclassified image, most confident first.
    pub misclassified: Vec<Prediction>,
    /// Every evaluated image, in the split's order: what the HTML report's confusion matrix
    /// shows behind each cell. Absent from eval.json files written before it.
    #[serde(default)]
    pub predictions: Vec<Prediction>,
}

/// One multi-label classifier's results on the split, at the thresholds its card holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiLabelModelEvaluation {
    /// The classifier's kind: `head` or `baseline`.
    pub model: String,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// mAP, subset accuracy, Hamming loss and per-label metrics.
    pub evaluation: MultiLabelEvaluation,
}

/// What `eval` measured and wrote; eval.json holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSummary {
    /// The split evaluated.
    pub split: Split,
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    /// The head first, then the baseline if one lies beside it; empty for multi-label data.
    pub models: Vec<ModelEvaluation>,
    /// Multi-label data: the head first, then the baseline if one lies beside it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multi_label: Vec<MultiLabelModelEvaluation>,
    /// eval.json and the SVG pictures.
    pub files: Vec<PathBuf>,
}

/// Evaluates the head (and the baseline beside it, if there is one) and writes the report.
pub fn eval(opts: &EvalOptions) -> Result<EvalSummary, EvalError> {
    let (manifest, store) = load_snapshot(&opts.workspace)?;
    let SplitData { x, y, targets, entries } = manifest.split(&store, opts.split)?;
    if x.nrows() == 0 {
        return Err(EvalError::EmptySplit { split: opts.split });
    }
    let mirrored = opts.tta.then(|| mirrored_rows(opts, &manifest, &entries)).transpose()?;
    let proba = |classifier: &dyn Classifier| -> Result<Array2<f32>, EvalError> {
        // A fine-tuned top takes the maps cached at its cut, not the embeddings.
        if let Some((tensor, _)) = classifier.cut() {
            if opts.tta {
                return Err(EvalError::TtaFinetuned);
            }
            let maps = manifest.maps(&opts.workspace, tensor, &entries)?;
            return Ok(classifier.predict_proba(maps.view()));
        }
        let probs = classifier.predict_proba(x.view());
        Ok(match &mirrored {
            Some(m) => mean_of_views(probs, classifier.predict_proba(m.view())),
            None => probs,
        })
    };
    let head_path = opts.head.clone().unwrap_or_else(|| opts.workspace.join(HEAD_FILE));
    let mut loaded = vec![artifact::open(&head_path, Some(&manifest))?];
    let baseline_path = head_path.with_file_name(BASELINE_FILE);
    if baseline_path.is_file() && baseline_path != head_path {
        loaded.push(artifact::open(&baseline_path, Some(&manifest))?);
    }
    let history = loaded[0].card.history.clone();
    let report_dir = opts.report_dir.clone().unwrap_or_else(|| opts.workspace.join("report"));
    std::fs::create_dir_all(&report_dir).map_err(|source| CacheError::Write {
        path: report_dir.clone(),
        source,
    })?;
    let mut files = Vec::new();
    let mut multi_label = Vec::new();
    if let Some(truth) = &targets {
        for l in &loaded {
            let probs = proba(l.classifier.as_ref())?;
            let default = vec![multilabel::DEFAULT_THRESHOLD; manifest.classes.len()];
            let thresholds = l.card.thresholds.as_ref().unwrap_or(&default);
            let evaluation = multilabel::evaluate(probs.view(), truth.view(), thresholds, &manifest.classes);
            let curves = label_curves(probs.view(), truth.view(), &evaluation);
            if !curves.is_empty() {
                let svg = report_dir.join(format!("precision_recall_{}.svg", l.card.kind));
                let title = format!(
                    "{}, {} split: mAP {:.3}",
                    l.card.kind, opts.split, evaluation.mean_average_precision
                );
                precision_recall_svg(&curves, &title, &svg)?;
                files.push(svg);
            }
            multi_label.push(MultiLabelModelEvaluation {
                model: l.card.kind.clone(),
                file: l.path.clone(),
                evaluation,
            });
        }
        loaded.clear();
    }
    let scored = loaded
        .into_iter()
        .map(|l| {
            let probs = proba(l.classifier.as_ref())?;
            Ok((l.card.kind, l.path, probs))
        })
        .collect::<Result<Vec<_>, EvalError>>()?;

    let mut models = Vec::new();
    for (name, file, probs) in scored {
        let models_eval = score(&name, file, &probs, &y, &entries, &manifest.classes);
        let svg = report_dir.join(format!("confusion_{name}.svg"));
        confusion_svg(
            &models_eval.evaluation,
            &manifest.classes,
            &format!("{name}, {} split", opts.split),
            &svg,
        )?;
        files.push(svg);
        models.push(models_eval);
    }
    if !history.is_empty() {
        let curves = report_dir.join("training_curves.svg");
        let history: Vec<EpochRecord> = history.iter().map(EpochRecord::from).collect();
        training_curves_svg(&history, &curves)?;
        files.push(curves);
    }
    let mut summary = EvalSummary {
        split: opts.split,
        classes: manifest.classes.clone(),
        models,
        multi_label,
        files,
    };
    let json_path = report_dir.join("eval.json");
    summary.files.push(json_path.clone());
    let json = serde_json::to_vec_pretty(&summary).expect("plain data");
    write_file(&json_path, |tmp| std::fs::write(tmp, &json))?;
    Ok(summary)
}

/// The mirrored views' vectors of `entries`, row for row, or why there are none.
fn mirrored_rows(opts: &EvalOptions, manifest: &Manifest, entries: &[Entry]) -> Result<Array2<f32>, EvalError> {
    let missing = |why: String| EvalError::NoMirrored { split: opts.split, why };
    let record = manifest
        .mirrored
        .as_ref()
        .ok_or_else(|| missing("the last extract made none".into()))?;
    let vectors = manifest.view_vectors(&opts.workspace, record, entries)?;
    let mut rows = Array2::zeros((entries.len(), manifest.backbone.dim));
    for ((mut row, views), entry) in rows.rows_mut().into_iter().zip(&vectors).zip(entries) {
        let view = views
            .first()
            .ok_or_else(|| missing(format!("none of {}", entry.sample.path)))?;
        if view.len() != row.len() {
            return Err(missing(format!(
                "the cached views have {} values, not {}",
                view.len(),
                row.len()
            )));
        }
        row.assign(&ndarray::ArrayView1::from(&view[..]));
    }
    Ok(rows)
}

fn score(
    name: &str,
    file: PathBuf,
    probs: &Array2<f32>,
    y: &[usize],
    entries: &[crate::cache::Entry],
    classes: &[String],
) -> ModelEvaluation {
    let evaluation = evaluate(probs.view(), y, classes);
    let prediction = |index: usize, true_class: usize, predicted_class: usize, confidence: f32| Prediction {
        path: entries[index].sample.path.clone(),
        true_label: classes[true_class].clone(),
        predicted_label: classes[predicted_class].clone(),
        confidence,
    };
    let misclassified = evaluation
        .mistakes
        .iter()
        .map(|m| prediction(m.index, m.true_class, m.predicted_class, m.confidence))
        .collect();
    let predictions = probs
        .rows()
        .into_iter()
        .zip(y)
        .enumerate()
        .map(|(i, (row, &truth))| {
            let (chosen, probability) = most_probable(row);
            prediction(i, truth, chosen, probability)
        })
        .collect();
    ModelEvaluation {
        model: name.to_string(),
        file,
        evaluation,
        misclassified,
        predictions,
    }
}
