//! `export`: one ONNX file with the backbone and a trained classifier, image in, class
//! probabilities out (the splicing itself is [`crate::onnx`]), plus a labels file.

use crate::artifact::{self, ArtifactError};
use crate::atomic::{write_file, WriteError};
use crate::onnx::compose;

/// What `headstart export` needs: a saved head and where to write.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The saved head; its card names the backbone to append it to.
    pub head: std::path::PathBuf,
    /// Folder for `model.onnx` and `labels.txt`; created if missing.
    pub out_dir: std::path::PathBuf,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportSummary {
    pub model: std::path::PathBuf,
    pub labels: std::path::PathBuf,
    pub output: String,
    pub classes: usize,
    /// How images must be prepared for the exported model (it takes the backbone's input).
    pub preprocessing: crate::preprocess::Preprocessing,
}

/// Why `headstart export` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Compose(#[from] crate::onnx::SpliceError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Backbone(#[from] crate::backbone::BackboneError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds a {kind}, which cannot be one ONNX graph with the backbone: export a head instead")]
    NotOneGraph { path: std::path::PathBuf, kind: String },
}

/// The name of the exported model's output.
pub const PROBABILITIES: &str = "probabilities";

/// Writes `model.onnx` (backbone + classifier, probabilities out) and `labels.txt` (one class
/// per line, in output order) into `out_dir`. The preprocessing is recorded in the model's
/// metadata.
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
    let p = card.backbone.preprocessing;
    let meta = vec![
        ("headstart.labels".to_string(), card.classes.join("\n")),
        (
            "headstart.preprocessing".to_string(),
            serde_json::to_string(&p).expect("plain data"),
        ),
        ("headstart.backbone".to_string(), card.backbone.name.clone()),
    ];
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
