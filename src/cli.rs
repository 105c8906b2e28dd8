//! Command-line syntax. Only parsing lives here; `options.rs` turns it into typed, checked options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use headstart::audit::{LABEL_FOLDS, NEAR_THRESHOLD, NEIGHBOURS};
use headstart::baseline::BaselineParams;
use headstart::dataset::{Column, Header, Split, SplitPercentages};
use headstart::device::Device;
use headstart::evaluate::EvalOptions;
use headstart::finetune::{BatchNormMode, FinetuneParams};
use headstart::head::HeadParams;
use headstart::predict::PredictOptions;
use headstart::preprocess::Preset;
use headstart::sweep::SweepOptions;
use headstart::views::augment::AugmentSettings;
use headstart::views::ViewPolicy;

use crate::options::{class_weights_flag, hidden_flag};

// Defaults come from the library's `Default`s and constants, so the CLI and the library cannot
// drift apart; `--help` shows them.

/// The whole command line: global flags and one subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "headstart",
    version,
    about = "Transfer learning on images: a frozen ONNX backbone, cached embeddings, a classifier head trained in seconds"
)]
pub struct Cli {
    /// Flags every subcommand takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Folder holding the cache, heads and reports.
    #[arg(long, global = true, env = "HEADSTART_WORKSPACE", default_value = ".headstart")]
    pub workspace: PathBuf,
    /// The ONNX Runtime shared library (libonnxruntime.so, .dylib or onnxruntime.dll); found or fetched automatically if absent.
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Where the backbone runs: cpu, cuda, tensorrt or openvino (each fetches the ONNX Runtime build with its provider once), or auto (CUDA where an NVIDIA driver is installed and the provider starts, else the CPU, saying why).
    #[arg(long, global = true, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
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

/// The subcommands, in the order of a job.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed a folder of images (one sub-folder per class) into the workspace's cache.
    Extract(Box<ExtractArgs>),
    /// Combine the shards of `extract --shard K/N` into the workspace: the cache one `extract` of the same data writes.
    Merge(MergeArgs),
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
    /// Past train-head and eval runs of the workspace: list them, show one, compare two.
    Runs(RunsArgs),
    /// Compare many classifier configurations by k-fold cross-validation on the cache; the winner becomes the workspace's head.
    Sweep(Box<SweepArgs>),
    /// Every backbone --model can name: input, preset, output, size, whether installed, ImageNet check.
    Models,
    /// Problems in the cached data: duplicates, leaks across splits, likely wrong labels, outliers, class balance.
    Audit(AuditArgs),
    /// One self-contained HTML page of the workspace (<workspace>/report/index.html): data, training, metrics, confusion matrix with its images, sweep, runs, audit.
    Report,
}

/// `audit`: thresholds, and how much to show.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Aligned pixel similarity from which two different files count as near-duplicates: the
    /// best correlation of their small grey thumbnails over crops of up to about 15%. Pairs are
    /// looked at when their embeddings are close (cosine 0.6 or more).
    #[arg(long, default_value_t = NEAR_THRESHOLD)]
    pub near_threshold: f32,
    /// Neighbours looked at per image (near-duplicates, label agreement, outlier score).
    #[arg(long, default_value_t = NEIGHBOURS)]
    pub neighbours: usize,
    /// Folds of the out-of-fold predictions that rank likely label errors.
    #[arg(long, default_value_t = LABEL_FOLDS)]
    pub folds: usize,
    /// Images checked by hand, one path or SHA-256 per line [default: <workspace>/audit.ignore].
    #[arg(long, value_name = "FILE")]
    pub ignore: Option<PathBuf>,
    /// How many findings of each kind to list (all are in report/audit.json).
    #[arg(long, default_value_t = 10)]
    pub show: usize,
}

/// `sweep`: the search space (a file, or these flags), the protocol and what to keep.
///
/// List flags take comma-separated alternatives; each is one value of the grid.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Search space file, TOML or JSON (see README.md); replaces the space flags below.
    #[arg(long, value_name = "FILE")]
    pub space: Option<PathBuf>,
    /// Head kinds to try: mlp, logistic, knn, prototype, and finetune (the backbone's layers after the cut `extract --cut` cached, trained with an MLP head set by the MLP flags; not in the default: each fold trains for as long as train-head --finetune).
    #[arg(long, default_value = "mlp,logistic,knn,prototype")]
    pub heads: String,
    /// MLP hidden layers: a size, `none` (linear softmax) or sizes joined by `+` (512+256).
    #[arg(long, default_value = "none,512")]
    pub hidden: String,
    /// MLP learning rates.
    #[arg(long, default_value = "0.001")]
    pub lr: String,
    /// MLP dropout rates.
    #[arg(long, default_value = "0.5")]
    pub dropout: String,
    /// MLP weight decays.
    #[arg(long, default_value = "0")]
    pub weight_decay: String,
    /// MLP label smoothings.
    #[arg(long, default_value = "0")]
    pub label_smoothing: String,
    /// MLP epochs.
    #[arg(long, default_value_t = HeadParams::default().epochs.to_string())]
    pub epochs: String,
    /// MLP batch sizes.
    #[arg(long, default_value_t = HeadParams::default().batch_size.to_string())]
    pub batch_size: String,
    /// MLP class weights: none, balanced.
    #[arg(long, default_value = "none")]
    pub class_weights: String,
    /// Logistic regression's C values (inverse L2 strength).
    #[arg(long, default_value = "0.01,0.1,1,10,100")]
    pub c: String,
    /// kNN's numbers of neighbours.
    #[arg(long, default_value = "1,5,10,20")]
    pub k: String,
    /// kNN's vote weights: uniform, distance.
    #[arg(long, default_value = "uniform,distance")]
    pub knn_weights: String,
    /// Nearest-prototype shrinkage toward the global mean, in [0, 1].
    #[arg(long, default_value = "0")]
    pub shrinkage: String,
    /// Fine-tune trials (--heads finetune): the learning rates of the backbone's layers after the cut whose maps `extract --cut` cached; the MLP flags set their head.
    #[arg(long, default_value_t = FinetuneParams::default().backbone_lr.to_string())]
    pub backbone_lr: String,
    /// Fine-tune trials: how the top's batch norm treats its statistics, frozen and/or train (see train-head --batch-norm).
    #[arg(long, default_value = "frozen")]
    pub batch_norm: String,
    /// Backbones to compare, each under the same folds: `current` (the last extract), `all` cached for this data, or names (as `extract --model` took them), comma-separated.
    #[arg(long, default_value = "current")]
    pub backbones: String,
    /// Cross-validation folds over train + val.
    #[arg(long, default_value_t = SweepOptions::DEFAULT_FOLDS)]
    pub folds: usize,
    /// Random search: try this many configurations drawn from the grid instead of all of it.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Seeds the MLP trials and the random search: the same seed gives the same leaderboard.
    #[arg(long, default_value_t = HeadParams::default().seed)]
    pub seed: u64,
    /// Rows of the leaderboard to print (all are in the JSON and CSV files).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// The augmented views cached by `extract --augment K`, for the MLP trials: with-plain, views-only or off, as train-head's --augment. Several, comma-separated (`off,with-plain`), compare them: each MLP configuration runs under each.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "with-plain")]
    pub augment: Vec<ViewPolicy>,
    /// `best`: refit the winner on train + val and save it as the workspace's head; `none`: keep the head as it is.
    #[arg(long, value_enum, default_value_t = Refit::Best)]
    pub refit: Refit,
}

/// What `sweep` does with its winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Refit {
    /// Refit on train + val and save as the workspace's head.
    Best,
    /// Leave the workspace's head alone.
    None,
}

/// `train-head`: the head's hyper-parameters, and the baseline's if it is fitted too.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Passes over the training set.
    #[arg(long, default_value_t = HeadParams::default().epochs)]
    pub epochs: usize,
    /// Embeddings per Adam step.
    #[arg(long, default_value_t = HeadParams::default().batch_size)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = HeadParams::default().learning_rate)]
    pub lr: f32,
    /// Hidden layer sizes, comma-separated; `none` for a linear head.
    #[arg(long, default_value_t = hidden_flag(&HeadParams::default().hidden))]
    pub hidden: String,
    /// Dropout rate before every dense layer, in [0, 1).
    #[arg(long, default_value_t = HeadParams::default().dropout)]
    pub dropout: f32,
    /// Decoupled weight decay (AdamW) on the dense kernels.
    #[arg(long, default_value_t = HeadParams::default().weight_decay)]
    pub weight_decay: f32,
    /// Label smoothing in [0, 1] (Keras semantics).
    #[arg(long, default_value_t = HeadParams::default().label_smoothing)]
    pub label_smoothing: f32,
    /// `none`, `auto` (balanced: n / (classes * count)) or one weight per class, comma-separated.
    #[arg(long, default_value_t = class_weights_flag(&HeadParams::default().class_weights))]
    pub class_weights: String,
    /// Stop when the validation loss has not improved for this many epochs; keep the best epoch.
    #[arg(long, value_name = "PATIENCE")]
    pub early_stopping: Option<usize>,
    /// Seeds initialisation, shuffling and dropout: the same seed and data give the same head, bit for bit.
    #[arg(long, default_value_t = HeadParams::default().seed)]
    pub seed: u64,
    /// Also fit the linear baseline (logistic regression), choosing its strength on validation.
    #[arg(long)]
    pub baseline: bool,
    /// Most L-BFGS iterations per strength the baseline may spend.
    #[arg(long, value_name = "N", requires = "baseline", default_value_t = BaselineParams::DEFAULT_MAX_ITERATIONS)]
    pub baseline_max_iterations: u64,
    /// The baseline's convergence threshold: gradient norm of the objective per training image.
    #[arg(long, value_name = "X", requires = "baseline", default_value_t = BaselineParams::DEFAULT_TOLERANCE)]
    pub baseline_tolerance: f64,
    /// Where to write the head [default: <workspace>/head.safetensors].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The augmented views cached by `extract --augment K`: each epoch draws one per image from the plain crop and the views (with-plain), from the views only (views-only), or ignores them (off).
    #[arg(long, value_enum, default_value_t = ViewPolicy::default())]
    pub augment: ViewPolicy,
    /// Also train the backbone's layers after this cut, on the maps `extract --cut CUT` cached (named cut or tensor name).
    #[arg(long, value_name = "CUT")]
    pub finetune: Option<String>,
    /// Adam learning rate of the backbone's layers under --finetune.
    #[arg(long, value_name = "LR", requires = "finetune", default_value_t = FinetuneParams::default().backbone_lr)]
    pub backbone_lr: f32,
    /// Batch norm after the cut under --finetune: keep the backbone's statistics (frozen), or normalise each batch by its own and update the moving statistics (train).
    #[arg(long, value_enum, requires = "finetune", default_value_t = BatchNormMode::default())]
    pub batch_norm: BatchNormMode,
}

/// `eval`: which split, which head, how many mistakes to show.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The split to evaluate on.
    #[arg(long, value_enum, ignore_case = true, default_value_t = EvalOptions::DEFAULT_SPLIT)]
    pub split: Split,
    /// The head file [default: the workspace's latest].
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// How many misclassified files to list (all are in eval.json).
    #[arg(long, default_value_t = 10)]
    pub show_mistakes: usize,
    /// Test-time augmentation: average the probabilities of each image and its mirror image (cached by `extract --tta`).
    #[arg(long)]
    pub tta: bool,
}

/// `predict`: which images, which head, what to print.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Image files or folders (searched recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The head file [default: <workspace>/head.safetensors].
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Labels to show per image.
    #[arg(long, default_value_t = PredictOptions::DEFAULT_TOP_K)]
    pub top_k: usize,
    /// Images per network call [default: 32; with --device cuda or auto on a GPU, the size that runs fastest there, from a few timed calls].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Print CSV (path, label, probability per rank) instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// Test-time augmentation: average the probabilities of each image and its mirror image.
    #[arg(long)]
    pub tta: bool,
}

/// `export`: which head, and where the ONNX file goes.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The head file [default: <workspace>/head.safetensors].
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Output folder [default: <workspace>/export].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Which backbone `extract` runs, and how its input is prepared.
#[derive(Debug, Args)]
pub struct BackboneArgs {
    /// Backbone: a name from models/ or a path to an .onnx image model.
    #[arg(long, short)]
    pub model: Option<String>,
    /// The model output to use as features (for full classifiers).
    #[arg(long)]
    pub output: Option<String>,
    /// Input normalisation [default: the backbone's].
    #[arg(long, value_enum, ignore_case = true)]
    pub preset: Option<Preset>,
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

/// `extract`: the image folder, the backbone and the split.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Image folder: DIR/<class>/<image> or DIR/<split>/<class>/<image> (images at any depth below the class folder), or the folder label files' paths are relative to.
    #[arg(long, short)]
    pub data: PathBuf,
    #[command(flatten)]
    pub labels: LabelArgs,
    #[command(flatten)]
    pub backbone: BackboneArgs,
    /// Images per network call [default: 32; with --device cuda or auto on a GPU, the size that runs fastest there, from a few timed calls].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Without split folders: percent of images (by file-name hash) for validation.
    #[arg(long, default_value_t = SplitPercentages::default().val)]
    pub val_percent: f64,
    /// Without split folders: percent of images (by file-name hash) for test.
    #[arg(long, default_value_t = SplitPercentages::default().test)]
    pub test_percent: f64,
    /// Embed only shard K of N (K from 0, as $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX) into <workspace>/shards/K-of-N; images are divided by their content hash. `merge` combines the shards.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    #[command(flatten)]
    pub augment: AugmentArgs,
    /// Also cache every image's feature map at this cut inside the backbone, for `train-head --finetune`: a named cut (`last-block`, `head-conv` for EfficientNet-Lite, `layer4.2` for ResNet-50) or a tensor name.
    #[arg(long, value_name = "CUT")]
    pub cut: Option<String>,
}

/// `merge`: which shards.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard workspaces to merge [default: every folder in <workspace>/shards].
    pub shards: Vec<PathBuf>,
}

/// `extract`'s extra views: augmented views of the train split, mirrored views of val and test.
#[derive(Debug, Args)]
#[command(next_help_heading = "Augmentation")]
pub struct AugmentArgs {
    /// Also cache K augmented views of every train image (random resized crop, flip, colour jitter); train-head draws one view per image per epoch. Raising K computes only the new views.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub augment: u32,
    /// Area share of the random crop: min,max in (0, 1].
    #[arg(long, value_name = "MIN,MAX", default_value_t = pair_flag(AugmentSettings::default().scale))]
    pub augment_scale: String,
    /// Width over height of the random crop: min,max.
    #[arg(long, value_name = "MIN,MAX", default_value_t = pair_flag(AugmentSettings::default().ratio))]
    pub augment_ratio: String,
    /// Colour jitter: brightness, contrast and saturation each scaled by a factor in [1-J, 1+J]; 0 for none.
    #[arg(long, value_name = "J", default_value_t = AugmentSettings::default().jitter)]
    pub augment_jitter: f64,
    /// No horizontal flips in the augmented views.
    #[arg(long)]
    pub augment_no_flip: bool,
    /// Seeds the views' random draws; views are the same for the same seed, image and view number.
    #[arg(long, default_value_t = AugmentSettings::default().seed)]
    pub augment_seed: u64,
    /// Also cache the mirrored view of every val and test image, for `eval --tta`.
    #[arg(long)]
    pub tta: bool,
}

/// A `min,max` pair as the flags take it, with the fewest digits that read back the same.
pub fn pair_flag((min, max): (f64, f64)) -> String {
    format!("{},{}", round_flag(min), round_flag(max))
}

fn round_flag(value: f64) -> String {
    let short = format!("{value:.4}");
    short.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Which folder names the class, when classes come from folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabelFromArg {
    /// The first folder under the data (or split) folder; images at any depth below it belong to it.
    Top,
    /// The image's own folder (fastai's parent_label).
    Parent,
}

/// Where classes come from: folder names, or label files and their columns.
#[derive(Debug, Args)]
#[command(next_help_heading = "Labels")]
pub struct LabelArgs {
    /// Which folder names an image's class.
    #[arg(long, value_enum, conflicts_with_all = ["label_depth", "labels"])]
    pub label_from: Option<LabelFromArg>,
    /// Classes are the folders down to this depth under the data (or split) folder, joined with `/`.
    #[arg(long, value_name = "N", conflicts_with = "labels")]
    pub label_depth: Option<usize>,
    /// Label file (CSV, TSV or JSON Lines) listing `path,label` per image, paths relative to --data; repeat it for one file per split (train.txt, val.txt, test.txt give their split).
    #[arg(long, value_name = "FILE")]
    pub labels: Vec<PathBuf>,
    /// Column of the image paths: a name in the header row or a position (0 is the first).
    #[arg(long, value_name = "COLUMN", default_value = "0", requires = "labels")]
    pub path_column: Column,
    /// Column of the labels: class names, or ids that --class-names maps to names.
    #[arg(long, value_name = "COLUMN", default_value = "1", requires = "labels")]
    pub label_column: Column,
    /// Multi-label data as one 0/1 column per label (names or positions, comma-separated); the label column is then not read. A label column holding `a|b` is multi-label too.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',', requires = "labels")]
    pub label_columns: Vec<Column>,
    /// Column of the splits (train, val, test) [default: the label file's name, else a hash].
    #[arg(long, value_name = "COLUMN", requires = "labels")]
    pub split_column: Option<Column>,
    /// Column of groups: images of one group (one object, one video) share a split and a fold.
    #[arg(long, value_name = "COLUMN", requires = "labels")]
    pub group_column: Option<Column>,
    /// Whether label files start with a header row; auto: yes when a column is given by name, or when the first row's path is not a file and the second row's is.
    #[arg(long, value_enum, default_value = "auto", requires = "labels")]
    pub header: Header,
    /// CSV mapping the label column's class ids to names.
    #[arg(long, value_name = "FILE", requires = "labels")]
    pub class_names: Option<PathBuf>,
    /// Column of the ids in --class-names.
    #[arg(long, value_name = "COLUMN", default_value = "0", requires = "class_names")]
    pub class_id_column: Column,
    /// Column of the names in --class-names.
    #[arg(long, value_name = "COLUMN", default_value = "1", requires = "class_names")]
    pub class_name_column: Column,
}

/// `demo`: the data, and the two head settings worth changing on it.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Image folder to use instead of the bundled demo images.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Passes of the head over the training set.
    #[arg(long, default_value_t = HeadParams::default().epochs)]
    pub epochs: usize,
    /// Seeds the head's training: the same seed gives the same head, bit for bit.
    #[arg(long, default_value_t = HeadParams::default().seed)]
    pub seed: u64,
}

/// `runs`: a table of the recorded runs, or one of its actions.
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub action: Option<RunsAction>,
    /// Sort by this metric, best first: a key of the records' metrics such as head.accuracy; losses ascending, all else descending.
    #[arg(long, value_name = "METRIC")]
    pub sort: Option<String>,
    /// Print CSV instead of a table.
    #[arg(long, global = true)]
    pub csv: bool,
}

/// What `runs` does besides listing.
#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// One run's record in full.
    Show {
        /// The run's id, or enough of its start to name one run.
        id: String,
    },
    /// The settings and metrics whose values differ between two runs.
    Compare {
        /// The first run's id or the start of it.
        a: String,
        /// The second run's id or the start of it.
        b: String,
    },
}
