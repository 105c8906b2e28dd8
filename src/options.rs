//! Checked, typed options built from the parsed command line. Nothing past this module sees a raw
//! flag string, and every error names the flag to fix.

use std::path::{Path, PathBuf};

use crate::cli::{BackboneArgs, DemoArgs, EvalArgs, ExportArgs, ExtractArgs, Global, PredictArgs, TrainArgs};
use headstart::artifact::HEAD_FILE;
use headstart::backbone::BackboneChoice;
use headstart::baseline::BaselineParams;
use headstart::dataset::{Split, SplitPercentages};
use headstart::evaluate::EvalOptions;
use headstart::export::ExportOptions;
use headstart::extract::ExtractOptions;
use headstart::head::{ClassWeights, HeadParams};
use headstart::predict::PredictOptions;
use headstart::train::TrainOptions;

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("--{flag}: {message}")]
    Invalid { flag: &'static str, message: String },
    #[error("--data {0}: no such folder")]
    NoData(PathBuf),
}

fn invalid(flag: &'static str, message: impl Into<String>) -> OptionsError {
    OptionsError::Invalid {
        flag,
        message: message.into(),
    }
}

pub fn threads(global: &Global) -> Result<usize, OptionsError> {
    match global.threads {
        Some(0) => Err(invalid("threads", "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

pub fn backbone(args: &BackboneArgs) -> Result<BackboneChoice, OptionsError> {
    let preset = args
        .preset
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| invalid("preset", e))?;
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
        preset,
        input_size: args.input_size,
        resize: args.resize,
        int8: args.int8,
    })
}

pub fn extract(global: &Global, args: &ExtractArgs) -> Result<ExtractOptions, OptionsError> {
    extract_from(
        global,
        &args.data,
        args.batch_size,
        args.val_percent,
        args.test_percent,
        backbone(&args.backbone)?,
    )
}

pub fn extract_from(
    global: &Global,
    data: &Path,
    batch_size: usize,
    val: f64,
    test: f64,
    backbone: BackboneChoice,
) -> Result<ExtractOptions, OptionsError> {
    if !data.is_dir() {
        return Err(OptionsError::NoData(data.to_path_buf()));
    }
    if batch_size == 0 {
        return Err(invalid("batch-size", "must be at least 1"));
    }
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
        data: data.to_path_buf(),
        workspace: global.workspace.clone(),
        backbone,
        batch_size,
        percentages: SplitPercentages { val, test },
        threads: threads(global)?,
        ort_lib: global.ort_lib.clone(),
        max_pixels: max_pixels(global)?,
    })
}

pub fn max_pixels(global: &Global) -> Result<u64, OptionsError> {
    match global.max_pixels {
        0 => Err(invalid("max-pixels", "must be at least 1")),
        n => Ok(n),
    }
}

pub fn train(global: &Global, args: &TrainArgs) -> Result<TrainOptions, OptionsError> {
    let hidden = match args.hidden.trim() {
        "none" | "" => Vec::new(),
        list => list
            .split(',')
            .map(|h| h.trim().parse::<usize>().ok().filter(|&n| n > 0))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                invalid(
                    "hidden",
                    format!("`{list}` is not a comma-separated list of positive sizes or `none`"),
                )
            })?,
    };
    let class_weights = match args.class_weights.trim() {
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
    };
    // Values are range-checked by HeadParams at fit time, with messages that name these flags.
    let head = HeadParams::default()
        .epochs(args.epochs)
        .batch_size(args.batch_size)
        .learning_rate(args.lr)
        .hidden(hidden)
        .dropout(args.dropout)
        .weight_decay(args.weight_decay)
        .label_smoothing(args.label_smoothing)
        .class_weights(class_weights)
        .early_stopping(args.early_stopping)
        .seed(args.seed);
    Ok(TrainOptions {
        workspace: global.workspace.clone(),
        head,
        baseline: args.baseline.then(BaselineParams::default),
        out: args.out.clone(),
    })
}

pub fn demo_train(global: &Global, args: &DemoArgs) -> TrainOptions {
    TrainOptions {
        workspace: global.workspace.clone(),
        head: HeadParams::default().epochs(args.epochs).seed(args.seed),
        baseline: Some(BaselineParams::default()),
        out: None,
    }
}

fn head_file(global: &Global, head: &Option<PathBuf>) -> PathBuf {
    head.clone().unwrap_or_else(|| global.workspace.join(HEAD_FILE))
}

pub fn eval(global: &Global, args: &EvalArgs) -> Result<EvalOptions, OptionsError> {
    Ok(EvalOptions {
        workspace: global.workspace.clone(),
        split: args.split.parse().map_err(|e: String| invalid("split", e))?,
        head: Some(head_file(global, &args.head)),
        report_dir: None,
    })
}

pub fn demo_eval(global: &Global) -> EvalOptions {
    EvalOptions {
        workspace: global.workspace.clone(),
        split: Split::Test,
        head: None,
        report_dir: None,
    }
}

pub fn predict(global: &Global, args: &PredictArgs) -> Result<PredictOptions, OptionsError> {
    if args.top_k == 0 {
        return Err(invalid("top-k", "must be at least 1"));
    }
    if args.batch_size == 0 {
        return Err(invalid("batch-size", "must be at least 1"));
    }
    Ok(PredictOptions {
        head: head_file(global, &args.head),
        inputs: args.paths.clone(),
        top_k: args.top_k,
        batch_size: args.batch_size,
        threads: threads(global)?,
        ort_lib: global.ort_lib.clone(),
        max_pixels: max_pixels(global)?,
    })
}

pub fn export(global: &Global, args: &ExportArgs) -> ExportOptions {
    ExportOptions {
        head: head_file(global, &args.head),
        out_dir: args.out.clone().unwrap_or_else(|| global.workspace.join("export")),
    }
}
