//! `export`: one ONNX file with the backbone and a trained classifier, image in, class
//! probabilities out (the splicing itself is [`crate::onnx`]), plus a labels file.

use crate::artifact::{self, ArtifactError};
use crate::atomic::{write_file, WriteError};
use crate::onnx::compose;
use crate::onnx::edit::ModelEdit;

/// What `headstart export` needs: a saved head and where to write.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The saved head; its card names the backbone to append it to.
    pub head: std::path::PathBuf,
    /// Folder for `model.onnx` and `labels.txt`; created if missing.
    pub out_dir: std::path::PathBuf,
}

/// What `export` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportSummary {
    /// The written `model.onnx`: image in, probabilities out.
    pub model: std::path::PathBuf,
    /// The written `labels.txt`: one class name per line, in output order.
    pub labels: std::path::PathBuf,
    /// The name of the model's probabilities output.
    pub output: String,
    /// Number of classes, i.e. the width of that output.
    pub classes: usize,
    /// How images must be prepared for the exported model (it takes the backbone's input).
    pub preprocessing: crate::preprocess::Preprocessing,
}

/// Why `headstart export` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The classifier and backbone could not be spliced into one graph.
    #[error(transparent)]
    Compose(#[from] crate::onnx::SpliceError),
    /// The head file could not be loaded.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The backbone its card names is missing or has changed.
    #[error(transparent)]
    Backbone(#[from] crate::backbone::BackboneError),
    /// `model.onnx` or `labels.txt` could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The backbone's ONNX file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The backbone file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file holds a classifier with no dense-layer form (k-nearest neighbours, prototype),
    /// which cannot be appended to the backbone's graph.
    #[error(
        "{path} holds a `{kind}` classifier, which cannot be one ONNX graph with the backbone: \
         only a head or a baseline can be exported, while `headstart predict` uses this one as it is"
    )]
    NotOneGraph {
        /// The classifier file.
        path: std::path::PathBuf,
        /// Its kind, from its card.
        kind: String,
    },
}

/// The name of the exported model's output.
pub const PROBABILITIES: &str = "probabilities";

/// Writes `model.onnx` (backbone + classifier, probabilities out) and `labels.txt` (one class
/// per line, in output order) into `out_dir`. The preprocessing is recorded in the model's
/// metadata, and for a multi-label classifier (sigmoid outputs) its per-label thresholds.
pub fn export(opts: &ExportOptions) -> Result<ExportSummary, ExportError> {
    let artifact::Loaded { classifier, card, path } = artifact::open_in_place(&opts.head)?;
    let chain = classifier.dense_chain().ok_or_else(|| ExportError::NotOneGraph {
        path,
        kind: card.kind.clone(),
    })?;
    let info = card.backbone.resolve()?;
    let bytes = std::fs::read(&info.path).map_err(|source| ExportError::Read {
        path: info.path.clone(),
        source,
    })?;
    // A fine-tuned top's weights go back in place of the backbone's own.
    let weights = classifier.backbone_weights();
    let bytes = match weights.is_empty() {
        true => bytes,
        false => {
            let edit = ModelEdit {
                weights: weights.into_iter().collect(),
                ..ModelEdit::default()
            };
            crate::onnx::edit::apply(&bytes, &edit)?
        }
    };
    let p = card.backbone.preprocessing;
    let mut meta = vec![
        ("headstart.labels".to_string(), card.classes.join("\n")),
        (
            "headstart.preprocessing".to_string(),
            serde_json::to_string(&p).expect("plain data"),
        ),
        ("headstart.backbone".to_string(), card.backbone.name.clone()),
    ];
    // A multi-label model's outputs are independent sigmoids: a consumer needs each label's
    // threshold, one per line like the labels.
    if let Some(thresholds) = &card.thresholds {
        let lines: Vec<String> = thresholds.iter().map(f32::to_string).collect();
        meta.push(("headstart.thresholds".to_string(), lines.join("\n")));
    }
    let model = compose(&bytes, &card.backbone.output, &chain, PROBABILITIES, &meta)?;
    let model_path = opts.out_dir.join("model.onnx");
    let labels_path = opts.out_dir.join("labels.txt");
    write_file(&model_path, |tmp| std::fs::write(tmp, &model))?;
    let labels = format!("{}\n", card.classes.join("\n"));
    write_file(&labels_path, |tmp| std::fs::write(tmp, &labels))?;
    Ok(ExportSummary {
        model: model_path,
        labels: labels_path,
        output: PROBABILITIES.to_string(),
        classes: card.classes.len(),
        preprocessing: p,
    })
}
