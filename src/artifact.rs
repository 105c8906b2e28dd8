//! Saved classifiers: one file format for every kind, so that `eval`, `predict` and `export`
//! load any of them through [`load`] without knowing which kind it is.
//!
//! A classifier file is safetensors: the classifier's f32 tensors, and in the metadata
//! - [`CARD_KEY`]: the [`Card`] as JSON, what it was trained on and how;
//! - [`CRC_KEY`]: a CRC-32 of the tensors, so a damaged file is refused rather than giving
//!   wrong predictions;
//! - [`FORMAT_KEY`]: which kind and version of classifier the tensors are, e.g.
//!   `linear-baseline/1`. Head files carry no marker: they predate it, and keeping their bytes
//!   unchanged keeps every head trained before readable. A new kind adds its marker to
//!   [`decode`] and nothing else.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::atomic::{write_file, WriteError};
use crate::backbone::BackboneRecord;
use crate::baseline::{Baseline, SweepPoint};
use crate::cache::{tensors_crc, CacheError, Manifest};
use crate::classifier::{Classifier, Tensor};
use crate::finetune::Finetuned;
use crate::head::{EpochStats, Head};
use crate::knn::Knn;
use crate::prototype::Prototype;

/// File names of the workspace's latest head and baseline.
pub const HEAD_FILE: &str = "head.safetensors";
/// See [`HEAD_FILE`].
pub const BASELINE_FILE: &str = "baseline.safetensors";
/// The metadata key holding the [`Card`] as JSON.
pub const CARD_KEY: &str = "headstart";
/// The metadata key of the format marker.
pub const FORMAT_KEY: &str = "headstart_format";
/// The metadata key of the CRC-32 over the tensors.
pub const CRC_KEY: &str = "headstart.crc32";

/// A classifier file's metadata entries besides the format marker and checksum.
pub type Metadata = BTreeMap<String, String>;

/// Why a classifier file could not be written, read or used with this workspace.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// There is no file.
    #[error("no head at {0}: run `headstart train-head` first, or pass --head FILE")]
    Missing(PathBuf),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The tensors could not be encoded.
    #[error("cannot encode {path} as safetensors: {message}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What safetensors said.
        message: String,
    },
    /// The bytes are not a classifier file this version reads.
    #[error("{path} is not a valid headstart classifier file ({reason}): run train-head again to recreate it")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller's metadata uses a key the format reserves.
    #[error("metadata key {0:?} is reserved for headstart's own use: store the value under another key")]
    ReservedMetadataKey(String),
    /// The file has no card.
    #[error("{path} has no headstart card in its metadata: it was not written by `headstart train-head`")]
    NoCard {
        /// The file.
        path: PathBuf,
    },
    /// The card is not valid JSON of a [`Card`].
    #[error("{path}: its card is unreadable ({message})")]
    BadCard {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The classifier was trained on other embeddings than the workspace holds.
    #[error("{path} was trained on embeddings `{trained}` ({name}), but the workspace holds `{cached}`: re-run train-head, or extract with the backbone the head was trained on")]
    WrongBackbone {
        /// The file.
        path: PathBuf,
        /// The backbone's name.
        name: String,
        /// The card's cache key.
        trained: String,
        /// The workspace's cache key.
        cached: String,
    },
    /// The workspace beside the file is unreadable.
    #[error(transparent)]
    Workspace(#[from] CacheError),
    /// The classifier's classes are not the workspace's.
    #[error("{path} was trained on other classes than the workspace now has ({changes}): run train-head again")]
    StaleClasses {
        /// The file.
        path: PathBuf,
        /// The classes added, removed and renamed.
        changes: String,
    },
}

/// What a saved classifier was trained on and how; stored in its file's metadata so the file
/// alone is enough to predict with the same backbone and preprocessing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    /// `head`, `baseline`, `knn` or `prototype`.
    pub kind: String,
    /// Class names, in output order.
    pub classes: Vec<String>,
    /// The backbone whose embeddings it was trained on.
    pub backbone: BackboneRecord,
    /// The training parameters.
    pub settings: serde_json::Value,
    /// The head's epochs.
    #[serde(default)]
    pub history: Vec<EpochStats>,
    /// The epoch whose weights the head holds.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// The baseline's regularisation sweep.
    #[serde(default)]
    pub sweep: Vec<SweepPoint>,
    /// Multi-label classifiers only: per label, the probability at or above which an image
    /// is given it, tuned for F1 on the validation split (0.5 without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<f32>>,
}

impl Card {
    /// The card as file metadata.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(CARD_KEY.to_string(), serde_json::to_string(self).expect("plain data"))])
    }

    /// The card of the file at `path` from its metadata.
    pub fn from_metadata(path: &Path, metadata: &BTreeMap<String, String>) -> Result<Card, ArtifactError> {
        let json = metadata.get(CARD_KEY).ok_or_else(|| ArtifactError::NoCard {
            path: path.to_path_buf(),
        })?;
        serde_json::from_str(json).map_err(|e| ArtifactError::BadCard {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Checks that the classifier at `path`, with this card, fits the workspace described by
    /// `manifest`: the same embeddings, and the same classes in the same order. A class folder
    /// added, removed or renamed since training would otherwise give wrong labels or a crash.
    pub fn check_workspace(&self, path: &Path, manifest: &Manifest) -> Result<(), ArtifactError> {
        if self.backbone.key != manifest.backbone.key {
            return Err(ArtifactError::WrongBackbone {
                path: path.to_path_buf(),
                name: self.backbone.name.clone(),
                trained: self.backbone.key.clone(),
                cached: manifest.backbone.key.clone(),
            });
        }
        match class_changes(&self.classes, &manifest.classes) {
            None => Ok(()),
            Some(changes) => Err(ArtifactError::StaleClasses {
                path: path.to_path_buf(),
                changes,
            }),
        }
    }
}

/// How the class list `now` differs from `trained`, in words; `None` when they are equal.
/// Classes removed and added in equal numbers are reported as renamed, pairwise in order.
fn class_changes(trained: &[String], now: &[String]) -> Option<String> {
    if trained == now {
        return None;
    }
    let added: Vec<&String> = now.iter().filter(|c| !trained.contains(c)).collect();
    let removed: Vec<&String> = trained.iter().filter(|c| !now.contains(c)).collect();
    let quote = |names: &[&String]| names.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    let mut parts = Vec::new();
    if added.len() == removed.len() && !added.is_empty() {
        let pairs: Vec<String> = removed
            .iter()
            .zip(&added)
            .map(|(r, a)| format!("`{r}` -> `{a}`"))
            .collect();
        parts.push(format!("renamed {}", pairs.join(", ")));
    } else {
        if !added.is_empty() {
            parts.push(format!("added {}", quote(&added)));
        }
        if !removed.is_empty() {
            parts.push(format!("removed {}", quote(&removed)));
        }
    }
    if parts.is_empty() {
        parts.push(format!(
            "the same classes in another order: trained on {}, now {}",
            quote(&trained.iter().collect::<Vec<_>>()),
            quote(&now.iter().collect::<Vec<_>>())
        ));
    }
    Some(parts.join("; "))
}

/// A classifier loaded from its file, with its card.
#[derive(Debug)]
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// The classifier, whatever its kind.
    pub classifier: Box<dyn Classifier>,
    /// What it was trained on.
    pub card: Card,
}

/// Loads the classifier at `path` and its card; with a `workspace` manifest, also checks that
/// it fits that workspace ([`Card::check_workspace`]).
pub fn open(path: &Path, workspace: Option<&Manifest>) -> Result<Loaded, ArtifactError> {
    if !path.is_file() {
        return Err(ArtifactError::Missing(path.to_path_buf()));
    }
    let (classifier, metadata) = load(path)?;
    let card = Card::from_metadata(path, &metadata)?;
    let (classes, features) = (classifier.n_classes(), classifier.n_features());
    // A fine-tuned top takes the map at its cut, not the backbone's features.
    let expected = classifier.cut().map_or(card.backbone.dim, |(_, map)| map.len());
    if classes != card.classes.len() || (card.backbone.dim != 0 && features != expected) {
        return Err(ArtifactError::Format {
            path: path.to_path_buf(),
            reason: format!(
                "its card names {} classes of {}-d embeddings, but its tensors take {features} features to {classes} classes",
                card.classes.len(),
                card.backbone.dim
            ),
        });
    }
    if let Some(manifest) = workspace {
        card.check_workspace(path, manifest)?;
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        classifier,
        card,
    })
}

/// [`open`], checked against the workspace that the file lies in, if its folder is one (holds
/// a `dataset.json`); a classifier file on its own is used as it is.
pub fn open_in_place(path: &Path) -> Result<Loaded, ArtifactError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let manifest = match folder.join(Manifest::FILE).is_file() {
        true => Some(Manifest::load(folder)?),
        false => None,
    };
    open(path, manifest.as_ref())
}

/// Writes `classifier` to `path` with `metadata` (usually [`Card::to_metadata`]), replacing
/// the file atomically.
pub fn save(path: &Path, classifier: &dyn Classifier, metadata: BTreeMap<String, String>) -> Result<(), ArtifactError> {
    for key in [FORMAT_KEY, CRC_KEY] {
        if metadata.contains_key(key) {
            return Err(ArtifactError::ReservedMetadataKey(key.to_owned()));
        }
    }
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = classifier
        .tensors()
        .into_iter()
        .map(|(name, shape, data)| (name, shape, data.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let mut header: HashMap<String, String> = metadata.into_iter().collect();
    if let Some(format) = classifier.format() {
        header.insert(FORMAT_KEY.to_owned(), format.to_owned());
    }
    if let Some((key, value)) = classifier.structure() {
        header.insert(key.to_owned(), value);
    }
    header.insert(
        CRC_KEY.to_owned(),
        tensors_crc(tensors.iter().map(|(name, _, bytes)| (name.as_str(), bytes.as_slice()))),
    );
    let encode_error = |e: safetensors::SafeTensorError| ArtifactError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.as_str(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode_error)?;
    let bytes = safetensors::serialize(views, &Some(header)).map_err(encode_error)?;
    Ok(write_file(path, |tmp| std::fs::write(tmp, &bytes))?)
}

/// Reads a file written by [`save`]: the classifier, of whichever kind its format marker
/// names, and the caller's metadata (without the marker and checksum).
pub fn load(path: &Path) -> Result<(Box<dyn Classifier>, Metadata), ArtifactError> {
    let bytes = std::fs::read(path).map_err(|source| ArtifactError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes).map_err(|reason| ArtifactError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// [`load`] on the bytes of a file; the error says what is wrong with them.
pub fn from_bytes(bytes: &[u8]) -> Result<(Box<dyn Classifier>, Metadata), String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut metadata: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let format = metadata.remove(FORMAT_KEY);
    let classifier = decode_tensors(format.as_deref(), &file, &mut metadata).map_err(|e| match format {
        Some(_) => e,
        None => format!("it has no {FORMAT_KEY:?} entry, so it was read as a head: {e}"),
    })?;
    Ok((classifier, metadata))
}

/// Checks the tensors' checksum (taking it out of `metadata`) and decodes them as the kind
/// that `format` names.
fn decode_tensors(
    format: Option<&str>,
    file: &SafeTensors,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Box<dyn Classifier>, String> {
    let views = file.tensors();
    take_and_check_crc(metadata, views.iter().map(|(n, v)| (n.as_str(), v.data())))?;
    let mut tensors = Vec::with_capacity(views.len());
    for (name, view) in views {
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor `{name}` is {:?}, expected F32", view.dtype()));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.push((name, view.shape().to_vec(), data));
    }
    decode(format, tensors, metadata)
}

/// The classifier that the format marker names, from its tensors.
/// A kind whose structure is in the metadata takes its entry out of `metadata`.
fn decode(
    format: Option<&str>,
    tensors: Vec<Tensor>,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Box<dyn Classifier>, String> {
    match format {
        Some(crate::finetune::FORMAT_VALUE) => {
            let layout = metadata.remove(crate::finetune::TOP_KEY);
            Ok(Box::new(Finetuned::from_parts(tensors, layout.as_deref())?))
        }
        None => Ok(Box::new(Head::from_tensors(tensors).map_err(|e| e.to_string())?)),
        Some(crate::head::MULTI_LABEL_FORMAT) => Ok(Box::new(
            Head::from_tensors(tensors)
                .map_err(|e| e.to_string())?
                .into_multi_label(),
        )),
        Some(crate::baseline::FORMAT_VALUE) => Ok(Box::new(Baseline::from_tensors(tensors)?)),
        Some(crate::baseline::MULTI_LABEL_FORMAT) => Ok(Box::new(Baseline::from_tensors(tensors)?.into_multi_label())),
        Some(crate::knn::FORMAT_VALUE) => Ok(Box::new(Knn::from_tensors(tensors)?)),
        Some(crate::prototype::FORMAT_VALUE) => Ok(Box::new(Prototype::from_tensors(tensors)?)),
        Some(other) => Err(format!(
            "format {other:?} is not one this headstart version reads; it was written by another version"
        )),
    }
}

/// Removes the [`CRC_KEY`] entry from a file's metadata and checks it against its tensors.
fn take_and_check_crc<'a>(
    metadata: &mut BTreeMap<String, String>,
    tensors: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), String> {
    let claimed = metadata
        .remove(CRC_KEY)
        .ok_or_else(|| format!("its metadata has no {CRC_KEY:?} checksum"))?;
    let actual = tensors_crc(tensors);
    if claimed != actual {
        return Err(format!(
            "checksum mismatch: the file says {claimed:?}, its tensors give {actual:?}"
        ));
    }
    Ok(())
}

/// For each kind's tests: `model` saved with a metadata entry and loaded back through
/// [`load`], with its format marker and metadata checked and no temporary file left behind.
#[cfg(test)]
pub(crate) fn saved_and_loaded(model: &dyn Classifier) -> Box<dyn Classifier> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let metadata = BTreeMap::from([("note".to_owned(), "x".to_owned())]);
    save(&path, model, metadata.clone()).unwrap();
    let (loaded, loaded_metadata) = load(&path).unwrap();
    assert_eq!(loaded.format(), model.format());
    assert_eq!(loaded_metadata, metadata);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "temporary file left behind");
    loaded
}
