//! Command-line syntax. Only parsing lives here; `options.rs` turns it into typed, checked options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "headstart",
    version,
    about = "Transfer learning on images: a frozen ONNX backbone, cached embeddings, a classifier head trained in seconds"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Folder holding the cache, heads and reports.
    #[arg(long, global = true, env = "HEADSTART_WORKSPACE", default_value = ".headstart")]
    pub workspace: PathBuf,
    /// The ONNX Runtime shared library (libonnxruntime.so, .dylib or onnxruntime.dll); found or fetched automatically if absent.
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Images with more pixels are skipped without being decoded (guards against decompression bombs).
    #[arg(long, global = true, default_value_t = headstart::preprocess::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Threads for ONNX Runtime [default: all cores].
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print the result as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed a folder of images (one sub-folder per class) into the workspace's cache.
    Extract(ExtractArgs),
    /// Train the classifier head (and with --baseline the linear baseline) on the cached embeddings.
    TrainHead(TrainArgs),
    /// Accuracy, per-class metrics, confusion matrix and mistakes of the head and baseline.
    Eval(EvalArgs),
    /// Labels for new images or folders of images.
    Predict(PredictArgs),
    /// One ONNX file with backbone and head (image in, probabilities out) plus a labels file.
    Export(ExportArgs),
    /// The whole job on the bundled demo images: extract, train head and baseline, evaluate.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Hidden layer sizes, comma-separated; `none` for a linear head.
    #[arg(long, default_value = "512")]
    pub hidden: String,
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f32,
    /// Decoupled weight decay (AdamW) on the dense kernels.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// `none`, `auto` (balanced: n / (classes * count)) or one weight per class, comma-separated.
    #[arg(long, default_value = "none")]
    pub class_weights: String,
    /// Stop when the validation loss has not improved for this many epochs; keep the best epoch.
    #[arg(long, value_name = "PATIENCE")]
    pub early_stopping: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also fit the linear baseline (logistic regression), choosing its strength on validation.
    #[arg(long)]
    pub baseline: bool,
    /// Where to write the head [default: <workspace>/head.safetensors].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The split to evaluate on.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// The head file [default: the workspace's latest].
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// How many misclassified files to list (all are in eval.json).
    #[arg(long, default_value_t = 10)]
    pub show_mistakes: usize,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Image files or folders (searched recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Labels to show per image.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Print CSV (path, label, probability per rank) instead of a table.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Output folder [default: <workspace>/export].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackboneArgs {
    /// Backbone: a name from models/ or a path to an .onnx image model.
    #[arg(long, short)]
    pub model: Option<String>,
    /// The model output to use as features (for full classifiers).
    #[arg(long)]
    pub output: Option<String>,
    /// Input normalisation: tflite, inception, caffe or torch [default: the backbone's].
    #[arg(long)]
    pub preset: Option<String>,
    /// Side of the square network input [default: the model's].
    #[arg(long)]
    pub input_size: Option<u32>,
    /// Shorter side before the centre crop [default: input size * 256 / 224].
    #[arg(long)]
    pub resize: Option<u32>,
    /// Use the backbone's int8 version (statically quantized, see models/quantize.py).
    #[arg(long)]
    pub int8: bool,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Image folder: DIR/<class>/<image> or DIR/<split>/<class>/<image>.
    #[arg(long, short)]
    pub data: PathBuf,
    #[command(flatten)]
    pub backbone: BackboneArgs,
    /// Images per network call.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Without split folders: percent of images (by file-name hash) for validation.
    #[arg(long, default_value_t = 10.0)]
    pub val_percent: f64,
    /// Without split folders: percent of images (by file-name hash) for test.
    #[arg(long, default_value_t = 10.0)]
    pub test_percent: f64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Image folder to use instead of the bundled demo images.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}
