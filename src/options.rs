//! Checked, typed options built from the parsed command line. Nothing past this module sees a raw
//! flag string, and every error names the flag to fix: the checks here name flags directly, and
//! [`user_message`] turns the library parameters its errors name into the flags that set them.
//!
//! The library's option structs start from their defaults (`new` or `Default`) and only what
//! the command line says is set on top, so a default lives in one place: the library.

use std::path::{Path, PathBuf};

use crate::cli::{
    AuditArgs, AugmentArgs, BackboneArgs, DemoArgs, EvalArgs, ExportArgs, ExtractArgs, Global, LabelArgs, LabelFromArg,
    MergeArgs, PredictArgs, Refit, RunsAction, RunsArgs, SweepArgs, TrainArgs,
};
use headstart::artifact::HEAD_FILE;
use headstart::audit::AuditOptions;
use headstart::backbone::BackboneChoice;
use headstart::baseline::BaselineParams;
use headstart::cache::shard::Shard;
use headstart::dataset::{ClassNames, Columns, LabelFiles, LabelFrom, Labels, SplitPercentages};
use headstart::evaluate::EvalOptions;
use headstart::export::ExportOptions;
use headstart::extract::ExtractOptions;
use headstart::finetune::FinetuneError;
use headstart::head::{ClassWeights, HeadParams};
use headstart::merge::MergeOptions;
use headstart::predict::PredictOptions;
use headstart::report::html::HtmlOptions;
use headstart::settings::RuntimeOptions;
use headstart::sweep::space::{Space, SpaceError, KINDS};
use headstart::sweep::{Backbones, SweepOptions};
use headstart::train::{FinetuneOptions, TrainError, TrainOptions};
use headstart::views::augment::{AugmentError, AugmentSettings};

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("--{flag}: {message}")]
    Invalid { flag: &'static str, message: String },
    #[error("--data {0}: no such folder")]
    NoData(PathBuf),
    #[error("{0}: no such file")]
    NoFile(PathBuf),
    #[error("the run id is empty: give an id or its first characters (`headstart runs` lists them)")]
    EmptyRunId,
    #[error(transparent)]
    Space(#[from] SpaceError),
    #[error(transparent)]
    Augment(#[from] AugmentError),
}

fn invalid(flag: &'static str, message: impl Into<String>) -> OptionsError {
    OptionsError::Invalid {
        flag,
        message: message.into(),
    }
}

/// The global flags as the library's [`RuntimeOptions`]; built by the commands that open a
/// backbone, so a bad `--threads` does not stop the others.
pub fn runtime(global: &Global) -> Result<RuntimeOptions, OptionsError> {
    let defaults = RuntimeOptions::default();
    Ok(RuntimeOptions {
        threads: match global.threads {
            Some(0) => return Err(invalid("threads", "must be at least 1")),
            Some(n) => n,
            None => defaults.threads,
        },
        ort_lib: global.ort_lib.clone(),
        device: global.device,
        max_pixels: match global.max_pixels {
            0 => return Err(invalid("max-pixels", "must be at least 1")),
            n => n,
        },
    })
}

pub fn backbone(args: &BackboneArgs) -> Result<BackboneChoice, OptionsError> {
    for (flag, value) in [("input-size", args.input_size), ("resize", args.resize)] {
        if value == Some(0) {
            return Err(invalid(flag, "must be a positive number of pixels"));
        }
    }
    if let (Some(size), Some(resize)) = (args.input_size, args.resize) {
        if resize < size {
            return Err(invalid(
                "resize",
                format!("{resize} is smaller than --input-size {size}: the crop would not fit"),
            ));
        }
    }
    Ok(BackboneChoice {
        model: args.model.clone(),
        output: args.output.clone(),
        preset: args.preset,
        input_size: args.input_size,
        resize: args.resize,
        int8: args.int8,
    })
}

pub fn extract(global: &Global, args: &ExtractArgs) -> Result<ExtractOptions, OptionsError> {
    let backbone = backbone(&args.backbone)?;
    let defaults = default_extract(global, &args.data)?;
    if args.batch_size == Some(0) {
        return Err(invalid("batch-size", "must be at least 1"));
    }
    let (val, test) = (args.val_percent, args.test_percent);
    for (flag, value) in [("val-percent", val), ("test-percent", test)] {
        if !(0.0..100.0).contains(&value) {
            return Err(invalid(flag, format!("{value} is not a percentage in 0..100")));
        }
    }
    if val + test >= 100.0 {
        return Err(invalid(
            "val-percent",
            format!("{val} + --test-percent {test} leaves nothing to train on"),
        ));
    }
    Ok(ExtractOptions {
        backbone,
        labels: labels(&args.labels)?,
        batch_size: args.batch_size,
        percentages: SplitPercentages { val, test },
        augment: args.augment.augment,
        augment_settings: augment(&args.augment)?,
        tta: args.augment.tta,
        shard: args
            .shard
            .as_deref()
            .map(Shard::parse)
            .transpose()
            .map_err(|e| invalid("shard", e.to_string()))?,
        cut: args.cut.clone(),
        ..defaults
    })
}

pub fn merge(global: &Global, args: &MergeArgs) -> MergeOptions {
    MergeOptions {
        workspace: global.workspace.clone(),
        shards: args.shards.clone(),
    }
}

fn augment(args: &AugmentArgs) -> Result<AugmentSettings, OptionsError> {
    let settings = AugmentSettings {
        scale: parse_pair("augment-scale", &args.augment_scale)?,
        ratio: parse_pair("augment-ratio", &args.augment_ratio)?,
        flip: !args.augment_no_flip,
        jitter: args.augment_jitter,
        seed: args.augment_seed,
    };
    settings.validate()?;
    Ok(settings)
}

fn parse_pair(flag: &'static str, text: &str) -> Result<(f64, f64), OptionsError> {
    let values: Vec<Option<f64>> = text.split(',').map(|v| v.trim().parse::<f64>().ok()).collect();
    match values[..] {
        [Some(min), Some(max)] => Ok((min, max)),
        _ => Err(invalid(flag, format!("`{text}` is not two numbers min,max"))),
    }
}

fn labels(args: &LabelArgs) -> Result<Labels, OptionsError> {
    if !args.labels.is_empty() {
        for file in args.labels.iter().chain(&args.class_names) {
            if !file.is_file() {
                return Err(OptionsError::NoFile(file.clone()));
            }
        }
        return Ok(Labels::Files(LabelFiles {
            files: args.labels.clone(),
            columns: Columns {
                path: args.path_column.clone(),
                label: args.label_column.clone(),
                split: args.split_column.clone(),
                group: args.group_column.clone(),
                indicators: args.label_columns.clone(),
            },
            header: args.header,
            class_names: args.class_names.as_ref().map(|file| ClassNames {
                file: file.clone(),
                id: args.class_id_column.clone(),
                name: args.class_name_column.clone(),
            }),
        }));
    }
    Ok(Labels::Folders(match (args.label_from, args.label_depth) {
        (_, Some(0)) => return Err(invalid("label-depth", "must be at least 1: 1 is the first folder")),
        (_, Some(n)) => LabelFrom::Depth(n),
        (Some(LabelFromArg::Parent), None) => LabelFrom::Parent,
        (Some(LabelFromArg::Top) | None, None) => LabelFrom::default(),
    }))
}

/// Extract `data` with every setting but the global flags at its default, as `demo` does.
pub fn default_extract(global: &Global, data: &Path) -> Result<ExtractOptions, OptionsError> {
    if !data.is_dir() {
        return Err(OptionsError::NoData(data.to_path_buf()));
    }
    Ok(ExtractOptions {
        runtime: runtime(global)?,
        ..ExtractOptions::new(data, &global.workspace)
    })
}

/// `--hidden` as written for `sizes`: the inverse of what [`train`] parses.
pub fn hidden_flag(sizes: &[usize]) -> String {
    if sizes.is_empty() {
        return "none".into();
    }
    let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
    sizes.join(",")
}

/// `--class-weights` as written for `weights`: the inverse of what [`train`] parses.
pub fn class_weights_flag(weights: &ClassWeights) -> String {
    match weights {
        ClassWeights::None => "none".into(),
        ClassWeights::Balanced => "auto".into(),
        ClassWeights::Given(w) => w.iter().map(f32::to_string).collect::<Vec<_>>().join(","),
    }
}

fn parse_hidden(text: &str) -> Result<Vec<usize>, OptionsError> {
    match text.trim() {
        "none" | "" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(|h| h.trim().parse::<usize>().ok().filter(|&n| n > 0))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                invalid(
                    "hidden",
                    format!("`{list}` is not a comma-separated list of positive sizes or `none`"),
                )
            }),
    }
}

fn parse_class_weights(text: &str) -> Result<ClassWeights, OptionsError> {
    Ok(match text.trim() {
        "none" => ClassWeights::None,
        "auto" | "balanced" => ClassWeights::Balanced,
        list => ClassWeights::Given(
            list.split(',')
                .map(|w| w.trim().parse::<f32>().ok())
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| {
                    invalid(
                        "class-weights",
                        format!("`{list}` is not `none`, `auto` or a list of numbers"),
                    )
                })?,
        ),
    })
}

pub fn train(global: &Global, args: &TrainArgs) -> Result<TrainOptions, OptionsError> {
    // Values are range-checked by the library at fit time; `user_message` names these flags.
    let head = HeadParams::default()
        .epochs(args.epochs)
        .batch_size(args.batch_size)
        .learning_rate(args.lr)
        .hidden(parse_hidden(&args.hidden)?)
        .dropout(args.dropout)
        .weight_decay(args.weight_decay)
        .label_smoothing(args.label_smoothing)
        .class_weights(parse_class_weights(&args.class_weights)?)
        .early_stopping(args.early_stopping)
        .seed(args.seed);
    let baseline = BaselineParams::default()
        .max_iterations(args.baseline_max_iterations)
        .tolerance(args.baseline_tolerance);
    Ok(TrainOptions {
        head,
        baseline: args.baseline.then_some(baseline),
        out: args.out.clone(),
        views: args.augment,
        finetune: args.finetune.as_ref().map(|cut| FinetuneOptions {
            cut: cut.clone(),
            backbone_lr: args.backbone_lr,
            batch_norm: args.batch_norm,
        }),
        ..TrainOptions::new(&global.workspace)
    })
}

pub fn demo_train(global: &Global, args: &DemoArgs) -> TrainOptions {
    TrainOptions {
        head: HeadParams::default().epochs(args.epochs).seed(args.seed),
        baseline: Some(BaselineParams::default()),
        ..TrainOptions::new(&global.workspace)
    }
}

fn head_file(global: &Global, head: &Option<PathBuf>) -> PathBuf {
    head.clone().unwrap_or_else(|| global.workspace.join(HEAD_FILE))
}

pub fn eval(global: &Global, args: &EvalArgs) -> EvalOptions {
    EvalOptions {
        split: args.split,
        head: args.head.clone(),
        tta: args.tta,
        ..EvalOptions::new(&global.workspace)
    }
}

pub fn audit(global: &Global, args: &AuditArgs) -> AuditOptions {
    AuditOptions {
        near_threshold: args.near_threshold,
        neighbours: args.neighbours,
        folds: args.folds,
        ignore: args.ignore.clone(),
        max_pixels: global.max_pixels,
        ..AuditOptions::new(&global.workspace)
    }
}

pub fn demo_eval(global: &Global) -> EvalOptions {
    EvalOptions::new(&global.workspace)
}

pub fn report(global: &Global) -> HtmlOptions {
    HtmlOptions {
        max_pixels: global.max_pixels,
        ..HtmlOptions::new(&global.workspace)
    }
}

pub fn predict(global: &Global, args: &PredictArgs) -> Result<PredictOptions, OptionsError> {
    if args.top_k == 0 {
        return Err(invalid("top-k", "must be at least 1"));
    }
    if args.batch_size == Some(0) {
        return Err(invalid("batch-size", "must be at least 1"));
    }
    Ok(PredictOptions {
        top_k: args.top_k,
        batch_size: args.batch_size,
        runtime: runtime(global)?,
        tta: args.tta,
        ..PredictOptions::new(head_file(global, &args.head), args.paths.clone())
    })
}

pub fn export(global: &Global, args: &ExportArgs) -> ExportOptions {
    ExportOptions {
        head: head_file(global, &args.head),
        out_dir: args.out.clone().unwrap_or_else(|| global.workspace.join("export")),
    }
}

/// `sweep`'s options: the space from `--space` or from the flags, which go through the same
/// parser as a file (errors about a key of the flags' space name the flag instead).
pub fn sweep(global: &Global, args: &SweepArgs) -> Result<SweepOptions, OptionsError> {
    let space = match &args.space {
        Some(path) => Space::from_file(path)?,
        None => Space::from_value(&flag_space(args)?, args.seed).map_err(flag_error)?,
    };
    let trials = match args.trials {
        Some(0) => return Err(invalid("trials", "must be at least 1")),
        Some(n) => space.random(n, args.seed),
        None => space.trials,
    };
    if args.folds < 2 {
        return Err(invalid("folds", "cross-validation needs at least 2 folds"));
    }
    Ok(SweepOptions {
        folds: args.folds,
        threads: match global.threads {
            Some(0) => return Err(invalid("threads", "must be at least 1")),
            Some(n) => n,
            None => 0,
        },
        refit: args.refit == Refit::Best,
        views: args.augment.clone(),
        backbones: match args.backbones.trim() {
            "current" => Backbones::Current,
            "all" => Backbones::All,
            list => {
                let names: Vec<String> = list
                    .split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect();
                if names.is_empty() {
                    return Err(invalid("backbones", "give `current`, `all` or backbone names"));
                }
                Backbones::Named(names)
            }
        },
        ..SweepOptions::new(&global.workspace, trials)
    })
}

/// Each space key the sweep flags set, with its flag.
const SWEEP_FLAGS: [(&str, &str, &str); 15] = [
    ("mlp", "hidden", "hidden"),
    ("mlp", "learning_rate", "lr"),
    ("mlp", "dropout", "dropout"),
    ("mlp", "weight_decay", "weight-decay"),
    ("mlp", "label_smoothing", "label-smoothing"),
    ("mlp", "epochs", "epochs"),
    ("mlp", "batch_size", "batch-size"),
    ("mlp", "class_weights", "class-weights"),
    ("logistic", "c", "c"),
    ("knn", "k", "k"),
    ("knn", "weights", "knn-weights"),
    ("prototype", "shrinkage", "shrinkage"),
    ("finetune", "backbone_lr", "backbone-lr"),
    ("finetune", "batch_norm", "batch-norm"),
    ("", "", "heads"),
];

/// Whether a flag of `SWEEP_FLAGS`' kind `row` sets a key of `kind`: its own, and the MLP flags
/// a fine-tune's head too.
fn flag_sets(row: &str, kind: &str) -> bool {
    row == kind || (kind == "finetune" && row == "mlp")
}

/// The space the flags describe, in the JSON form a space file parses to.
fn flag_space(args: &SweepArgs) -> Result<serde_json::Value, OptionsError> {
    let values = |flag: &str| -> Vec<serde_json::Value> {
        let text = match flag {
            "hidden" => &args.hidden,
            "lr" => &args.lr,
            "dropout" => &args.dropout,
            "weight-decay" => &args.weight_decay,
            "label-smoothing" => &args.label_smoothing,
            "epochs" => &args.epochs,
            "batch-size" => &args.batch_size,
            "class-weights" => &args.class_weights,
            "c" => &args.c,
            "k" => &args.k,
            "knn-weights" => &args.knn_weights,
            "backbone-lr" => &args.backbone_lr,
            "batch-norm" => &args.batch_norm,
            _ => &args.shrinkage,
        };
        text.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| flag_value(flag, v))
            .collect()
    };
    let mut space = serde_json::Map::new();
    for kind in args.heads.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if !KINDS.contains(&kind) {
            return Err(invalid(
                "heads",
                format!("`{kind}` is not a head kind: use {}", KINDS.join(", ")),
            ));
        }
        let mut table = serde_json::Map::new();
        for (_, key, flag) in SWEEP_FLAGS.iter().filter(|(k, _, _)| flag_sets(k, kind)) {
            table.insert(key.to_string(), serde_json::Value::Array(values(flag)));
        }
        space.insert(kind.to_string(), serde_json::Value::Object(table));
    }
    if space.is_empty() {
        return Err(invalid(
            "heads",
            "give at least one head kind: mlp, logistic, knn, prototype, finetune",
        ));
    }
    Ok(serde_json::Value::Object(space))
}

/// One comma-separated item of a sweep flag: a number, a list of layer sizes (`512+256`) for
/// `--hidden`, or a word.
fn flag_value(flag: &str, item: &str) -> serde_json::Value {
    if flag == "hidden" && item.contains('+') {
        let sizes: Option<Vec<serde_json::Value>> = item
            .split('+')
            .map(|s| s.trim().parse::<u64>().ok().map(Into::into))
            .collect();
        return sizes.map_or_else(|| item.into(), serde_json::Value::Array);
    }
    if let Ok(n) = item.parse::<u64>() {
        return n.into();
    }
    match item.parse::<f64>() {
        Ok(x) => x.into(),
        Err(_) => item.into(),
    }
}

/// A space error about a key the flags set, told as that flag's.
fn flag_error(e: SpaceError) -> OptionsError {
    let flag_of = |kind: &str, key: &str| {
        SWEEP_FLAGS
            .iter()
            .find(|(k, name, _)| flag_sets(k, kind) && *name == key)
            .map(|(_, _, flag)| *flag)
    };
    match &e {
        SpaceError::EmptyList { kind, key } => match flag_of(kind, key) {
            Some(flag) => invalid(flag, "give at least one value"),
            None => e.into(),
        },
        SpaceError::BadValue {
            kind,
            key,
            value,
            reason,
        } => match flag_of(kind, key) {
            Some(flag) => invalid(flag, format!("{value}: {reason}")),
            None => e.into(),
        },
        _ => e.into(),
    }
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// What `runs` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunsQuery {
    /// Every run, sorted by a metric if one is given.
    List { sort: Option<String> },
    /// One run by id prefix.
    Show(String),
    /// The differences between two runs.
    Compare(String, String),
}

pub fn runs(global: &Global, args: &RunsArgs) -> Result<(RunsQuery, Format), OptionsError> {
    let format = match (global.json, args.csv) {
        (true, true) => return Err(invalid("csv", "cannot be combined with --json: choose one")),
        (true, false) => Format::Json,
        (false, true) => Format::Csv,
        (false, false) => Format::Table,
    };
    let id = |id: &String| {
        let id = id.trim();
        if id.is_empty() {
            Err(OptionsError::EmptyRunId)
        } else {
            Ok(id.to_string())
        }
    };
    let query = match &args.action {
        None => RunsQuery::List {
            sort: match args.sort.as_deref().map(str::trim) {
                Some("") => return Err(invalid("sort", "give a metric name, such as head.accuracy")),
                sort => sort.map(String::from),
            },
        },
        Some(_) if args.sort.is_some() => {
            return Err(invalid(
                "sort",
                "orders the list only: leave it out for `runs show` and `runs compare`",
            ))
        }
        Some(RunsAction::Show { id: run }) => RunsQuery::Show(id(run)?),
        Some(RunsAction::Compare { a, b }) => RunsQuery::Compare(id(a)?, id(b)?),
    };
    Ok((query, format))
}

/// The `train-head` flag that sets each [`HeadParams`] field, by the field's name.
const HEAD_FLAGS: &[(&str, &str)] = &[
    ("epochs", "epochs"),
    ("batch_size", "batch-size"),
    ("learning_rate", "lr"),
    ("hidden", "hidden"),
    ("dropout", "dropout"),
    ("weight_decay", "weight-decay"),
    ("label_smoothing", "label-smoothing"),
    ("class_weights", "class-weights"),
    ("early_stopping", "early-stopping"),
    ("seed", "seed"),
];

/// The `train-head` flag that sets each [`BaselineParams`] setting the command line exposes.
const BASELINE_FLAGS: &[(&str, &str)] = &[
    ("max_iterations", "baseline-max-iterations"),
    ("tolerance", "baseline-tolerance"),
];

/// The message the user reads for `err`. Library errors about a parameter name it in backticks
/// (`` `learning_rate` ``); here it becomes the flag that sets it (`--lr`).
pub fn user_message(err: &anyhow::Error) -> String {
    let message = err.to_string();
    let named = match err.downcast_ref::<TrainError>() {
        Some(TrainError::Head(e) | TrainError::Finetune(FinetuneError::Head(e))) => flag_for(HEAD_FLAGS, e.parameter()),
        Some(TrainError::Baseline(e)) => flag_for(BASELINE_FLAGS, e.parameter()),
        _ => None,
    };
    match named {
        Some((name, flag)) => message.replace(&format!("`{name}`"), &format!("--{flag}")),
        None => message,
    }
}

fn flag_for(flags: &'static [(&str, &str)], parameter: Option<&str>) -> Option<(&'static str, &'static str)> {
    let parameter = parameter?;
    flags.iter().copied().find(|(name, _)| *name == parameter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use headstart::baseline::BaselineError;
    use headstart::head::HeadError;

    #[test]
    fn library_parameters_become_their_flags() {
        let message = |e: TrainError| user_message(&anyhow::Error::from(e));
        let lr = message(TrainError::Head(HeadError::LearningRate(-1.0)));
        assert!(
            lr.starts_with("learning rate must be a finite number > 0 (got -1)"),
            "{lr}"
        );
        assert!(lr.contains("set --lr to a positive value") && !lr.contains('`'), "{lr}");
        let diverged = message(TrainError::Head(HeadError::Diverged {
            epoch: 2,
            loss: f32::INFINITY,
        }));
        assert!(diverged.ends_with("set a smaller --lr"), "{diverged}");
        let patience = message(TrainError::Head(HeadError::EarlyStoppingWithoutValidation));
        assert!(patience.ends_with("leave out --early-stopping"), "{patience}");
        let iterations = message(TrainError::Baseline(BaselineError::InvalidMaxIterations));
        assert_eq!(iterations, "--baseline-max-iterations must be at least 1");
        let tolerance = message(TrainError::Baseline(BaselineError::InvalidTolerance(-1.0)));
        assert!(
            tolerance.starts_with("--baseline-tolerance must be finite"),
            "{tolerance}"
        );
        // A setting without a flag keeps the library's name; other errors are left alone.
        let alphas = message(TrainError::Baseline(BaselineError::InvalidAlphas(vec![])));
        assert!(alphas.starts_with("`alphas`"), "{alphas}");
        let plain = anyhow::Error::from(TrainError::Head(HeadError::TooFewClasses(1)));
        assert_eq!(user_message(&plain), plain.to_string());
    }

    #[test]
    fn every_mapped_flag_exists() {
        let cli = crate::cli::Cli::command();
        let train = cli.find_subcommand("train-head").unwrap();
        for (_, flag) in HEAD_FLAGS.iter().chain(BASELINE_FLAGS) {
            assert!(
                train.get_arguments().any(|a| a.get_long() == Some(flag)),
                "train-head has no --{flag}"
            );
        }
    }

    #[test]
    fn flag_text_parses_back() {
        for sizes in [vec![], vec![512], vec![256, 64]] {
            assert_eq!(parse_hidden(&hidden_flag(&sizes)).unwrap(), sizes);
        }
        for weights in [
            ClassWeights::None,
            ClassWeights::Balanced,
            ClassWeights::Given(vec![0.5, 2.0]),
        ] {
            assert_eq!(parse_class_weights(&class_weights_flag(&weights)).unwrap(), weights);
        }
    }

    #[test]
    fn command_line_is_consistent() {
        crate::cli::Cli::command().debug_assert();
    }
}
