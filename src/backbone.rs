//! The frozen feature extractor: an ONNX model run through ONNX Runtime.
//!
//! A backbone is named by a small JSON description in `models/` (file, preset, input size,
//! feature output) or given as a path to any `.onnx` image model. What the description does not
//! say is read off the model itself: the input name, NCHW or NHWC, a fixed batch size. Converted
//! models often fix the batch at 1, so batches are split to fit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::device::{self, Device, Placement};
use crate::fetch::hex;
use crate::finetune::Geometry;
use crate::onnx::edit::ModelEdit;
use crate::preprocess::{Layout, Preprocessing, Preset};
use crate::provision::{self, Provision, ProvisionError};
use crate::runtime::Runtime;
use crate::settings::DEFAULT_BATCH_SIZE;

/// The backbone used when `--model` is not given.
pub const DEFAULT_MODEL: &str = "efficientnet_lite0";

/// A backbone description file (`models/<name>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Description {
    /// The backbone's name, as `--model` takes it and reports show it.
    pub name: String,
    /// The ONNX file, relative to the description.
    pub file: String,
    /// Expected sha256 of the file; `null` for files users make themselves.
    #[serde(default)]
    pub sha256: Option<String>,
    /// How images are scaled and normalised for this network.
    pub preset: Preset,
    /// Side in pixels of the square image the network takes.
    pub input_size: u32,
    /// Shorter side before the centre crop; defaults to `input_size * 256 / 224`.
    #[serde(default)]
    pub resize: Option<u32>,
    /// The feature output; defaults to the model's first output.
    #[serde(default)]
    pub output: Option<String>,
    /// Width of the feature vector, if known; only informative, the real width is read from the model.
    #[serde(default)]
    pub output_dim: Option<usize>,
    /// Name of this backbone's int8 version in the same folder, for `--int8`
    /// (`models/quantize.py --register` writes it).
    #[serde(default)]
    pub int8: Option<String>,
    /// How to make the ONNX file on first use when it is not there ([`crate::provision`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<Provision>,
    /// The ImageNet check: top-1 accuracy, in percent, of the network with its ImageNet
    /// classifier on `../shared/data/hymenoptera/val` (ants and bees into ImageNet classes 310
    /// and 309), as `models/verify_efficientnet_lite.py` measures it. Only informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imagenet_check: Option<f64>,
    /// Named cuts for `extract --cut` and `train-head --finetune`: name to tensor, e.g.
    /// `last-block` to the tensor entering the last block.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cuts: BTreeMap<String, String>,
}

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct BackboneChoice {
    /// A name from `models/` or a path to an `.onnx` file.
    pub model: Option<String>,
    /// `--output`: the feature output to read, overriding the description.
    pub output: Option<String>,
    /// `--preset`: pixel scaling and normalisation, overriding the description.
    pub preset: Option<Preset>,
    /// `--input-size`: side in pixels of the network input, overriding the description.
    pub input_size: Option<u32>,
    /// `--resize`: shorter side in pixels before the centre crop, overriding the description.
    pub resize: Option<u32>,
    /// Use the backbone's int8 version instead (the description's `int8` entry).
    pub int8: bool,
}

/// Why a backbone could not be found, checked, opened or run.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    /// `--model` is neither a file nor a known backbone name.
    #[error("no backbone named `{name}` in {searched} or among the bundled ones (known: {known}; `headstart models` lists them): pass --model with one of those names or a path to an .onnx file")]
    UnknownName {
        /// The name asked for.
        name: String,
        /// The folders searched, as a list for the message.
        searched: String,
        /// The backbone names that exist, as a list for the message.
        known: String,
    },
    /// The bundled backbone could not be unpacked into the home folder.
    #[error(transparent)]
    Bundled(#[from] crate::bundled::BundleError),
    /// A described backbone is not installed and could not be made.
    #[error(transparent)]
    Provision(#[from] Box<ProvisionError>),
    /// `--int8` was asked for a backbone without a usable int8 version.
    #[error("backbone `{name}` has no int8 version ({why}): make one with {fix}, or drop --int8")]
    NoInt8 {
        /// The backbone's name.
        name: String,
        /// Why there is none: its description names no int8 version, or no description describes the file.
        why: String,
        /// The command that makes one.
        fix: String,
    },
    /// A description or model file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A backbone description file is not valid JSON of the expected shape.
    #[error("backbone description {path} is invalid: {source}")]
    Description {
        /// The description file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The model file's SHA-256 differs from the one its description gives.
    #[error("{path} has sha256 {found} but its description expects {expected}: the file is damaged or not the one described; restore it or re-run the conversion script in models/")]
    Checksum {
        /// The model file.
        path: PathBuf,
        /// Its actual SHA-256, hex.
        found: String,
        /// The SHA-256 the description expects, hex.
        expected: String,
    },
    /// The session could not be placed on the device asked for.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// ONNX Runtime could not create a session from the file (not an ONNX model, or unsupported).
    #[error("ONNX Runtime cannot load {path}: {message}. Is it an ONNX model? Pass --model with an .onnx file (models/export_resnet50.py shows how to export one)")]
    Session {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The model's input is not a float32 image tensor `[N,3,H,W]` or `[N,H,W,3]`.
    #[error("{path}: input `{input}` has shape {shape:?}; expected an image tensor [N,3,H,W] or [N,H,W,3] of float32: pass --model with an image model (a CNN backbone)")]
    Input {
        /// The model file.
        path: PathBuf,
        /// The input's name.
        input: String,
        /// The input's shape; -1 for a free dimension.
        shape: Vec<i64>,
    },
    /// `--output` (or the description's output) names no output of the model.
    #[error("{path} has no output `{wanted}` (outputs: {available}): pass --output with one of those")]
    Output {
        /// The model file.
        path: PathBuf,
        /// The output asked for.
        wanted: String,
        /// The model's outputs, as a list for the message.
        available: String,
    },
    /// The model has no inputs.
    #[error("{path} has no inputs: pass --model with an image model that takes an image tensor")]
    NoInputs {
        /// The model file.
        path: PathBuf,
    },
    /// The model has no outputs.
    #[error("{path} has no outputs: pass --model with an image model whose output is its features")]
    NoOutputs {
        /// The model file.
        path: PathBuf,
    },
    /// The feature output is not a float32 tensor.
    #[error("{path}: output `{output}` is {found}, not a float32 tensor of features: pass --output with a float32 feature output")]
    OutputType {
        /// The model file.
        path: PathBuf,
        /// The output's name.
        output: String,
        /// What the output is instead, as ONNX Runtime describes it.
        found: String,
    },
    /// `--input-size` contradicts the fixed input size of the model.
    #[error("{path}: input is {model}x{model} but --input-size says {given}: drop --input-size or fix it")]
    InputSize {
        /// The model file.
        path: PathBuf,
        /// The model's fixed input side in pixels.
        model: i64,
        /// The side given with `--input-size`.
        given: u32,
    },
    /// An `.onnx` file without a description beside it was given without `--preset`.
    #[error("{path} needs --preset: it has no description beside it (a {stem}.json); the presets are {presets}")]
    NoPreset {
        /// The model file.
        path: PathBuf,
        /// The file stem, naming the description that was looked for.
        stem: String,
        /// The preset names, for the message.
        presets: &'static str,
    },
    /// The model file recorded in a manifest or card no longer has the recorded SHA-256.
    #[error("the backbone {path} has changed since the head was trained (sha256 {found}, trained on {expected}): restore it or re-run extract and train-head")]
    ModelChanged {
        /// The model file.
        path: PathBuf,
        /// Its SHA-256 now, hex.
        found: String,
        /// The SHA-256 recorded when the embeddings were made, hex.
        expected: String,
    },
    /// ONNX Runtime failed while running a batch.
    #[error("running {path} failed: {message}")]
    Run {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// A cut is neither a named cut of the backbone nor a tensor of its graph.
    #[error("backbone {path} has no cut or tensor `{cut}` (its named cuts: {named}): give a named cut, or a tensor name (list them with `python3 -c \"import onnx, sys; [print(o) for n in onnx.load(sys.argv[1]).graph.node for o in n.output]\" {path}`)")]
    UnknownCut {
        /// The model file.
        path: PathBuf,
        /// The cut asked for.
        cut: String,
        /// The named cuts, as a list for the message.
        named: String,
    },
    /// The backbone could not be edited to give the map at a cut, or run with new weights.
    #[error("cannot edit {path}: {source}")]
    Edit {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        source: crate::onnx::SpliceError,
    },
    /// The map at a cut is not `[batch, C, H, W]` float32.
    #[error("{path}: the tensor `{cut}` at the cut has shape {shape:?}; a cut must be a float32 [batch, C, H, W] map")]
    CutShape {
        /// The model file.
        path: PathBuf,
        /// The cut's tensor.
        cut: String,
        /// The shape it had.
        shape: Vec<i64>,
    },
    /// The feature output is neither `[batch, D]` nor `[batch, D, 1, 1]`.
    #[error(
        "{path}: output `{output}` has shape {shape:?} for a batch of {batch}; expected [batch, D] or [batch, D, 1, 1]"
    )]
    OutputShape {
        /// The model file.
        path: PathBuf,
        /// The output's name.
        output: String,
        /// The shape it returned.
        shape: Vec<i64>,
        /// The number of images in the batch.
        batch: usize,
    },
}

/// The folders searched for a backbone name, in order: `HEADSTART_MODELS`; `models/` in the
/// current folder (a checkout, where the scripts in models/ write their exports); `models/`
/// beside the executable (a copied release). The bundled backbones come after them all, from
/// [`crate::home`].
pub fn model_dirs() -> Vec<PathBuf> {
    // Absolute, because heads record their backbone's path for predict and export, which may
    // run from another folder.
    let here = std::env::current_dir().ok().map(|dir| dir.join("models"));
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("models")));
    std::env::var_os("HEADSTART_MODELS")
        .map(PathBuf::from)
        .into_iter()
        .chain(here)
        .chain(beside_exe)
        .collect()
}

/// The description of the backbone called `name`: the first `<name>.json` in [`model_dirs`],
/// else the bundled one, unpacked into the home folder.
fn find_description(name: &str) -> Result<PathBuf, BackboneError> {
    let file = format!("{name}.json");
    let dirs = model_dirs();
    if let Some(json) = dirs.iter().map(|dir| dir.join(&file)).find(|json| json.is_file()) {
        return Ok(json);
    }
    if crate::bundled::model_names().contains(&name) {
        return Ok(crate::bundled::models(&crate::home::home())?.join(file));
    }
    let mut known: Vec<String> = dirs.iter().flat_map(|dir| known_models(dir)).collect();
    known.extend(crate::bundled::model_names().into_iter().map(str::to_string));
    known.sort();
    known.dedup();
    Err(BackboneError::UnknownName {
        name: name.to_string(),
        searched: dirs
            .iter()
            .map(|dir| dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        known: known.join(", "),
    })
}

/// The shorter side before the centre crop when nothing says: `input_size * 256 / 224`, the
/// classic ImageNet evaluation ratio.
pub fn default_resize(input_size: u32) -> u32 {
    (input_size as f64 * 256.0 / 224.0).round() as u32
}

/// Names of the described backbones, sorted.
pub fn known_models(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Identifies the vectors a backbone produces: the model bytes, the feature output and the
/// preprocessing. Any change gives a new key, so stale vectors are never reused.
pub fn cache_key(model_sha256: &str, output: &str, preprocessing: &Preprocessing) -> String {
    let settings = serde_json::to_string(preprocessing).expect("plain struct");
    let digest = Sha256::digest(format!("{model_sha256}|{output}|{settings}").as_bytes());
    hex(&digest[..8])
}

/// The backbone that produced a set of vectors, as recorded in the manifest and cache files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneRecord {
    /// The backbone's name.
    pub name: String,
    /// The ONNX file, so that `predict` and `export` can run the same network later.
    pub model_path: PathBuf,
    /// The cache key: a hash of the model's SHA-256, the output and the preprocessing (see [`cache_key`]).
    pub key: String,
    /// SHA-256 of the ONNX file, hex.
    pub model_sha256: String,
    /// The output the features were read from.
    pub output: String,
    /// How images were turned into the network's input.
    pub preprocessing: Preprocessing,
    /// Width of the feature vectors.
    pub dim: usize,
}

#[cfg(test)]
impl BackboneRecord {
    /// A record of no real model, for tests that need a manifest or a card.
    pub(crate) fn fake(dim: usize) -> BackboneRecord {
        BackboneRecord {
            name: "fake".into(),
            model_path: "nonexistent/fake.onnx".into(),
            key: "k".into(),
            model_sha256: "00".into(),
            output: "out".into(),
            preprocessing: Preprocessing {
                preset: Preset::Tflite,
                resize: 2,
                size: 2,
                layout: Layout::Nchw,
            },
            dim,
        }
    }
}

impl BackboneRecord {
    /// Resolves the recorded model file and checks it is byte for byte the one recorded, so
    /// that a classifier trained on its embeddings is never fed another network's.
    pub fn resolve(&self) -> Result<BackboneInfo, BackboneError> {
        let p = self.preprocessing;
        let info = BackboneChoice {
            model: Some(self.model_path.display().to_string()),
            output: Some(self.output.clone()),
            preset: Some(p.preset),
            input_size: Some(p.size),
            resize: Some(p.resize),
            int8: false,
        }
        .resolve()?;
        if info.sha256 != self.model_sha256 {
            return Err(BackboneError::ModelChanged {
                path: info.path,
                found: info.sha256,
                expected: self.model_sha256.clone(),
            });
        }
        Ok(info)
    }

    /// Opens the recorded backbone, exactly as it was recorded.
    pub fn open(&self, runtime: &Runtime, threads: usize) -> Result<Backbone, BackboneError> {
        Backbone::open(runtime, self.resolve()?, threads)
    }
}

/// A backbone resolved to a file, its checksum and its preprocessing, before opening it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackboneInfo {
    /// The backbone's name: the description's, or the file stem for a bare `.onnx` file.
    pub name: String,
    /// The ONNX file.
    pub path: PathBuf,
    /// SHA-256 of the ONNX file, hex.
    pub sha256: String,
    /// The feature output; `None` means the model's first output.
    pub output: Option<String>,
    /// How pixels are scaled and normalised.
    pub preset: Preset,
    /// Side in pixels of the network input; `None` means the model's own fixed size.
    pub input_size: Option<u32>,
    /// Shorter side in pixels before the centre crop; `None` means `input_size * 256 / 224`.
    pub resize: Option<u32>,
    /// The description's named cuts.
    #[serde(default)]
    pub cuts: BTreeMap<String, String>,
}

impl BackboneInfo {
    /// The tensor of a cut given by name (`last-block`) or as a tensor name.
    pub fn cut_tensor(&self, cut: &str) -> String {
        self.cuts.get(cut).cloned().unwrap_or_else(|| cut.to_string())
    }

    /// The named cuts, as a list for messages.
    pub fn named_cuts(&self) -> String {
        match self.cuts.is_empty() {
            true => "none".to_string(),
            false => self
                .cuts
                .iter()
                .map(|(name, tensor)| format!("{name} ({tensor})"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

impl BackboneChoice {
    /// Finds the model file and merges the description with the command line (flags win).
    pub fn resolve(&self) -> Result<BackboneInfo, BackboneError> {
        let model = self.model.as_deref().unwrap_or(DEFAULT_MODEL);
        let as_path = Path::new(model);
        let beside = as_path.with_extension("json");
        let (path, description, described_by) = if model.ends_with(".onnx") || as_path.is_file() {
            let description = if beside.is_file() {
                Some(read_description(&beside)?)
            } else {
                None
            };
            (as_path.to_path_buf(), description, beside)
        } else {
            let json = find_description(model)?;
            let description = read_description(&json)?;
            let dir = json.parent().unwrap_or(Path::new("."));
            // `--int8` reads the int8 description beside this one; the fp32 file itself is
            // not needed, so a provisioned backbone is not made for it.
            let path = match self.int8 {
                true => dir.join(&description.file),
                false => model_file(dir, &description)?,
            };
            (path, Some(description), json)
        };
        if self.int8 {
            let int8 = description.as_ref().and_then(|d| d.int8.clone());
            let Some(int8) = int8 else {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let provisioned = description.as_ref().and_then(|d| d.provision.as_ref());
                // quantize.py finds a name in its own models/ folder, so a provisioned
                // backbone's int8 version is made there, beside the converted fp32 file.
                let output = match provisioned {
                    Some(_) => Path::new("models").join(format!("{stem}_int8.onnx")),
                    None => path.with_file_name(format!("{stem}_int8.onnx")),
                };
                let quantize = format!(
                    "`python models/quantize.py {model} --data DIR --output {}",
                    output.display()
                );
                // A provisioned backbone's int8 version is not provisioned: quantizing needs
                // Python's onnxruntime and calibration images, and its bytes depend on both.
                let convert = match provisioned {
                    Some(p) => format!(
                        "`python models/{} --variant {}` (in a checkout of headstart) and then ",
                        provision::CONVERTER_FILE,
                        p.variant
                    ),
                    None => String::new(),
                };
                let quantize = format!("{convert}{quantize}");
                return Err(match description {
                    Some(d) => BackboneError::NoInt8 {
                        name: d.name,
                        why: format!("{} names none", described_by.display()),
                        fix: format!("{quantize} --register`"),
                    },
                    None => BackboneError::NoInt8 {
                        name: model.to_string(),
                        why: format!("no {} describes it", described_by.display()),
                        fix: format!("{quantize} --preset P` and pass --model {}", output.display()),
                    },
                });
            };
            // The int8 model lives beside its fp32 description, which may be a user's folder.
            let folder = path.parent().unwrap_or(Path::new("."));
            let int8_description = read_description(&folder.join(format!("{int8}.json")))?;
            return BackboneChoice {
                model: Some(folder.join(int8_description.file).display().to_string()),
                int8: false,
                ..self.clone()
            }
            .resolve();
        }
        let bytes = std::fs::read(&path).map_err(|source| BackboneError::Io {
            path: path.clone(),
            source,
        })?;
        let sha256 = hex(&Sha256::digest(&bytes));
        if let Some(expected) = description.as_ref().and_then(|d| d.sha256.clone()) {
            if expected != sha256 {
                return Err(BackboneError::Checksum {
                    path,
                    found: sha256,
                    expected,
                });
            }
        }
        let preset = match (self.preset, &description) {
            (Some(p), _) => p,
            (None, Some(d)) => d.preset,
            (None, None) => {
                return Err(BackboneError::NoPreset {
                    stem: as_path.file_stem().unwrap_or_default().to_string_lossy().into_owned(),
                    path,
                    presets: Preset::NAMES,
                })
            }
        };
        let name = match &description {
            Some(d) => d.name.clone(),
            None => as_path.file_stem().unwrap_or_default().to_string_lossy().into_owned(),
        };
        Ok(BackboneInfo {
            name,
            path,
            sha256,
            output: self
                .output
                .clone()
                .or_else(|| description.as_ref().and_then(|d| d.output.clone())),
            preset,
            input_size: self.input_size.or(description.as_ref().map(|d| d.input_size)),
            resize: self.resize.or(description.as_ref().and_then(|d| d.resize)),
            cuts: description.map(|d| d.cuts).unwrap_or_default(),
        })
    }
}

/// The ONNX file of a description found in `dir`: beside it, else where provisioned backbones
/// live, made there first if the description says how ([`crate::provision`]).
fn model_file(dir: &Path, description: &Description) -> Result<PathBuf, BackboneError> {
    let beside = dir.join(&description.file);
    let (Some(provision), Some(sha256), false) = (&description.provision, &description.sha256, beside.is_file()) else {
        return Ok(beside);
    };
    let home = provision::dir();
    let looked = if home == dir {
        format!("no {} in {}", description.file, dir.display())
    } else {
        format!("no {} in {} or {}", description.file, dir.display(), home.display())
    };
    let request = provision::Request {
        name: &description.name,
        file: &description.file,
        sha256,
        provision,
    };
    Ok(provision::ensure(request, &home, &looked)?)
}

fn read_description(path: &Path) -> Result<Description, BackboneError> {
    let text = std::fs::read_to_string(path).map_err(|source| BackboneError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| BackboneError::Description {
        path: path.to_path_buf(),
        source,
    })
}

/// An open backbone session with everything needed to feed it.
pub struct Backbone {
    /// The resolved backbone this session runs.
    pub info: BackboneInfo,
    /// How every image is turned into this network's input for [`Backbone::embed`].
    pub preprocessing: Preprocessing,
    session: Session,
    input: String,
    output: String,
    /// The batch size the model insists on, if its first dimension is fixed.
    fixed_batch: Option<usize>,
    /// The tensor at the cut whose maps each row also carries, and their size.
    cut: Option<(String, Geometry)>,
    /// The execution provider the session runs on.
    pub placement: Placement,
}

impl Backbone {
    /// Opens the model with all graph optimisations, one thread per core inside operators and no
    /// parallelism between them: a CNN is a chain, so intra-op threads are where the speed is.
    pub fn open(runtime: &Runtime, info: BackboneInfo, threads: usize) -> Result<Backbone, BackboneError> {
        Backbone::open_with(runtime, info, threads, &ModelEdit::default())
    }

    /// [`open`](Self::open) on the model with `edit` applied: weights replaced by fine-tuned
    /// ones, and with an extra output, a cut whose map [`embed`](Self::embed) then appends to
    /// every row (see [`cut`](Self::cut)).
    pub fn open_with(
        runtime: &Runtime,
        info: BackboneInfo,
        threads: usize,
        edit: &ModelEdit,
    ) -> Result<Backbone, BackboneError> {
        let session_err = |e: ort::Error| BackboneError::Session {
            path: info.path.clone(),
            message: e.to_string(),
        };
        let base = || -> Result<_, BackboneError> {
            Session::builder(&runtime.environment)
                .map_err(session_err)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| session_err(e.into()))?
                .with_intra_threads(threads)
                .map_err(|e| session_err(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| session_err(e.into()))
        };
        let edited = if edit.outputs.is_empty() && edit.weights.is_empty() {
            None
        } else {
            let bytes = std::fs::read(&info.path).map_err(|source| BackboneError::Io {
                path: info.path.clone(),
                source,
            })?;
            let edited = crate::onnx::edit::apply(&bytes, edit).map_err(|source| match source {
                crate::onnx::SpliceError::FeatureNotFound { name, .. } => BackboneError::UnknownCut {
                    path: info.path.clone(),
                    cut: name,
                    named: info.named_cuts(),
                },
                source => BackboneError::Edit {
                    path: info.path.clone(),
                    source,
                },
            })?;
            Some(edited)
        };
        let commit = |mut builder: ort::session::builder::SessionBuilder| match &edited {
            None => builder.commit_from_file(&info.path),
            Some(bytes) => builder.commit_from_memory(bytes),
        };
        let auto = runtime.device == Device::Auto;
        let (session, placement) = match device::place(base()?, runtime.device, &runtime.library) {
            (builder, Ok(placement)) => match commit(builder) {
                Ok(session) => (session, placement),
                // A provider may register and still fail on the first session (no GPU found).
                Err(e) if auto => {
                    let why = format!("{} could not run the network: {e}", placement.provider);
                    (commit(base()?).map_err(session_err)?, device::on_cpu(Some(why)))
                }
                Err(e) if runtime.device != Device::Cpu => {
                    return Err(BackboneError::Device(device::unavailable(
                        runtime.device,
                        placement.provider,
                        e.to_string(),
                    )))
                }
                Err(e) => return Err(session_err(e)),
            },
            // The reason's first line: what to do about a GPU is beside the point on the CPU.
            (builder, Err(why)) if auto => (
                commit(builder).map_err(session_err)?,
                device::on_cpu(why.to_string().lines().next().map(String::from)),
            ),
            (_, Err(why)) => return Err(BackboneError::Device(why)),
        };
        let Some(first) = session.inputs().first() else {
            return Err(BackboneError::NoInputs {
                path: info.path.clone(),
            });
        };
        let shape: Vec<i64> = match first.dtype() {
            ValueType::Tensor { shape, .. } => shape.to_vec(),
            _ => Vec::new(),
        };
        let bad_input = || BackboneError::Input {
            path: info.path.clone(),
            input: first.name().to_string(),
            shape: shape.clone(),
        };
        if shape.len() != 4 {
            return Err(bad_input());
        }
        let (layout, side) = if shape[1] == 3 {
            (Layout::Nchw, shape[2])
        } else if shape[3] == 3 {
            (Layout::Nhwc, shape[1])
        } else {
            return Err(bad_input());
        };
        let size = match (side > 0, info.input_size) {
            (true, Some(given)) if given as i64 != side => {
                return Err(BackboneError::InputSize {
                    path: info.path.clone(),
                    model: side,
                    given,
                })
            }
            (true, _) => side as u32,
            (false, Some(given)) => given,
            (false, None) => 224,
        };
        let available: Vec<String> = session.outputs().iter().map(|o| o.name().to_string()).collect();
        let output = match &info.output {
            Some(wanted) if !available.contains(wanted) => {
                return Err(BackboneError::Output {
                    path: info.path.clone(),
                    wanted: wanted.clone(),
                    available: available.join(", "),
                })
            }
            Some(wanted) => wanted.clone(),
            None => available
                .first()
                .ok_or_else(|| BackboneError::NoOutputs {
                    path: info.path.clone(),
                })?
                .clone(),
        };
        let outlet = session.outputs().iter().find(|o| o.name() == output);
        if let Some(outlet) = outlet.filter(|o| {
            !matches!(
                o.dtype(),
                ValueType::Tensor {
                    ty: TensorElementType::Float32,
                    ..
                }
            )
        }) {
            return Err(BackboneError::OutputType {
                path: info.path.clone(),
                output,
                found: outlet.dtype().to_string(),
            });
        }
        let resize = info.resize.unwrap_or_else(|| default_resize(size));
        let preprocessing = Preprocessing {
            preset: info.preset,
            resize,
            size,
            layout,
        };
        let input = first.name().to_string();
        let fixed_batch = (shape[0] > 0).then_some(shape[0] as usize);
        let info = BackboneInfo {
            output: Some(output.clone()),
            input_size: Some(size),
            resize: Some(resize),
            ..info
        };
        let mut backbone = Backbone {
            info,
            preprocessing,
            session,
            input,
            output,
            fixed_batch,
            cut: None,
            placement,
        };
        if let Some(cut) = edit.outputs.first() {
            backbone.cut = Some((cut.clone(), backbone.probe_cut(cut)?));
        }
        Ok(backbone)
    }

    /// The size of the map at `cut`, from one blank image.
    fn probe_cut(&mut self, cut: &str) -> Result<Geometry, BackboneError> {
        let batch = self.fixed_batch.unwrap_or(1);
        let blank = vec![0.0f32; batch * self.preprocessing.len()];
        let shape = self.run_raw(&blank, batch, |outputs| {
            Ok(outputs[cut].try_extract_tensor::<f32>()?.0.to_vec())
        });
        let shape = shape.map_err(|e| match e {
            BackboneError::Run { .. } => BackboneError::CutShape {
                path: self.info.path.clone(),
                cut: cut.to_string(),
                shape: Vec::new(),
            },
            e => e,
        })?;
        match shape[..] {
            [_, c, h, w] if c > 0 && h > 0 && w > 0 => Ok(Geometry {
                channels: c as usize,
                height: h as usize,
                width: w as usize,
            }),
            _ => Err(BackboneError::CutShape {
                path: self.info.path.clone(),
                cut: cut.to_string(),
                shape,
            }),
        }
    }

    /// The cut whose map each row of [`embed`](Self::embed) carries after the features, and
    /// the map's size.
    pub fn cut(&self) -> Option<&(String, Geometry)> {
        self.cut.as_ref()
    }

    /// The cache key of this backbone's vectors; see [`cache_key`].
    pub fn key(&self) -> String {
        cache_key(&self.info.sha256, &self.output, &self.preprocessing)
    }

    /// The name of the output the features are read from.
    pub fn output_name(&self) -> &str {
        &self.output
    }

    /// Images per network call for `work` inputs: `asked` when the user gave one; on a provider
    /// that tunes ([`Placement::tunes_batch`]) the size [`device::tune_batch`] picks from
    /// timed calls on a synthetic batch (never above `work`); otherwise [`DEFAULT_BATCH_SIZE`].
    pub fn batch_size(&mut self, asked: Option<usize>, work: usize) -> usize {
        if let Some(b) = asked {
            return b;
        }
        if !self.placement.tunes_batch() || self.fixed_batch.is_some() {
            return DEFAULT_BATCH_SIZE;
        }
        let per_image = self.preprocessing.len();
        let candidates: Vec<usize> = device::TUNED_BATCHES
            .into_iter()
            .filter(|&b| b == device::TUNED_BATCHES[0] || b <= work)
            .collect();
        let tuned = device::tune_batch(&candidates, |b| {
            let input = vec![0.5f32; b * per_image];
            // The first call at a size allocates and plans; the next two are timed.
            self.embed(&input, b).ok()?;
            let started = std::time::Instant::now();
            for _ in 0..2 {
                self.embed(&input, b).ok()?;
            }
            Some(2.0 * b as f64 / started.elapsed().as_secs_f64())
        });
        tuned.unwrap_or(DEFAULT_BATCH_SIZE)
    }

    /// Runs `n` preprocessed images (`n * preprocessing.len()` floats) and returns `n` rows of
    /// features, flattened (so `[N, C, 1, 1]` outputs become `[N, C]`).
    pub fn embed(&mut self, input: &[f32], n: usize) -> Result<(usize, Vec<f32>), BackboneError> {
        let per_image = self.preprocessing.len();
        assert_eq!(input.len(), n * per_image, "input must hold n images");
        let step = self.fixed_batch.unwrap_or(n.max(1));
        let mut out = Vec::new();
        let mut dim = 0;
        let mut padded = Vec::new();
        for start in (0..n).step_by(step) {
            let count = step.min(n - start);
            let mut chunk = &input[start * per_image..(start + count) * per_image];
            // A fixed batch larger than what is left is filled with zeros and the extra rows dropped.
            if count < step {
                padded.clear();
                padded.extend_from_slice(chunk);
                padded.resize(step * per_image, 0.0);
                chunk = &padded;
            }
            let (d, rows) = self.run(chunk, step)?;
            dim = d;
            out.extend_from_slice(&rows[..count * d]);
        }
        Ok((dim, out))
    }

    /// Runs one batch and hands ONNX Runtime's outputs to `read`.
    fn run_raw<T>(
        &mut self,
        chunk: &[f32],
        batch: usize,
        read: impl FnOnce(&ort::session::SessionOutputs<'_>) -> Result<T, ort::Error>,
    ) -> Result<T, BackboneError> {
        let s = self.preprocessing.size as usize;
        let shape = match self.preprocessing.layout {
            Layout::Nchw => [batch, 3, s, s],
            Layout::Nhwc => [batch, s, s, 3],
        };
        let path = self.info.path.clone();
        let run_err = |e: ort::Error| BackboneError::Run {
            path: path.clone(),
            message: e.to_string(),
        };
        let tensor = TensorRef::from_array_view((shape, chunk)).map_err(run_err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(run_err)?;
        read(&outputs).map_err(run_err)
    }

    fn run(&mut self, chunk: &[f32], batch: usize) -> Result<(usize, Vec<f32>), BackboneError> {
        let (output, cut) = (self.output.clone(), self.cut.clone());
        let (dims, data, map) = self.run_raw(chunk, batch, |outputs| {
            let (shape, data) = outputs[output.as_str()].try_extract_tensor::<f32>()?;
            let map = match &cut {
                Some((name, _)) => Some(outputs[name.as_str()].try_extract_tensor::<f32>()?.1.to_vec()),
                None => None,
            };
            Ok((shape.to_vec(), data.to_vec(), map))
        })?;
        let flat_ok = dims.first() == Some(&(batch as i64)) && dims.len() >= 2 && dims[2..].iter().all(|&d| d == 1);
        if !flat_ok {
            return Err(BackboneError::OutputShape {
                path: self.info.path.clone(),
                output: self.output.clone(),
                shape: dims,
                batch,
            });
        }
        let d = dims[1] as usize;
        let (Some(map), Some((name, geometry))) = (map, &self.cut) else {
            return Ok((d, data));
        };
        let m = geometry.len();
        if map.len() != batch * m {
            return Err(BackboneError::CutShape {
                path: self.info.path.clone(),
                cut: name.clone(),
                shape: vec![(map.len() / m.max(1)) as i64],
            });
        }
        let mut rows = Vec::with_capacity(batch * (d + m));
        for (features, map) in data.chunks_exact(d).zip(map.chunks_exact(m)) {
            rows.extend_from_slice(features);
            rows.extend_from_slice(map);
        }
        Ok((d + m, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_changes_with_every_input_and_only_then() {
        let p = Preprocessing {
            preset: Preset::Tflite,
            resize: 256,
            size: 224,
            layout: Layout::Nchw,
        };
        let base = cache_key("abc", "features", &p);
        assert_eq!(base.len(), 16);
        assert_eq!(base, cache_key("abc", "features", &p));
        let variants = [
            cache_key("abd", "features", &p),
            cache_key("abc", "logits", &p),
            cache_key(
                "abc",
                "features",
                &Preprocessing {
                    preset: Preset::Torch,
                    ..p
                },
            ),
            cache_key("abc", "features", &Preprocessing { resize: 224, ..p }),
            cache_key("abc", "features", &Preprocessing { size: 192, ..p }),
            cache_key(
                "abc",
                "features",
                &Preprocessing {
                    layout: Layout::Nhwc,
                    ..p
                },
            ),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(*v, base, "variant {i}");
        }
    }

    fn describe(dir: &Path, name: &str, extra: &str) {
        std::fs::write(dir.join(format!("{name}.onnx")), name).unwrap();
        let json =
            format!(r#"{{"name": "{name}", "file": "{name}.onnx", "preset": "torch", "input_size": 64 {extra}}}"#);
        std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
    }

    #[test]
    fn int8_follows_the_description_and_keeps_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        describe(dir.path(), "net", r#", "int8": "net_q""#);
        describe(dir.path(), "net_q", r#", "resize": 80"#);
        let choice = BackboneChoice {
            model: Some(dir.path().join("net.onnx").display().to_string()),
            input_size: Some(32),
            int8: true,
            ..Default::default()
        };
        let info = choice.resolve().unwrap();
        assert_eq!(info.name, "net_q");
        assert_eq!(info.path, dir.path().join("net_q.onnx"));
        assert_eq!(info.sha256, hex(&Sha256::digest(b"net_q")));
        assert_eq!((info.input_size, info.resize), (Some(32), Some(80)));

        describe(dir.path(), "plain", "");
        let err = BackboneChoice {
            model: Some(dir.path().join("plain.onnx").display().to_string()),
            int8: true,
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`plain` has no int8 version") && err.contains("models/quantize.py"),
            "{err}"
        );
    }
}
