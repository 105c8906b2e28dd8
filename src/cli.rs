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
    /// The ONNX Runtime shared library (libonnxruntime.so); found or fetched automatically if absent.
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
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
    /// The whole job on the bundled demo images: extract, train, evaluate.
    Demo(DemoArgs),
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
}
