//! Checked, typed options built from the parsed command line. Nothing past this module sees a raw
//! flag string, and every error names the flag to fix.

use std::path::{Path, PathBuf};

use crate::cli::{BackboneArgs, ExtractArgs, Global};
use headstart::backbone::BackboneChoice;
use headstart::dataset::SplitPercentages;
use headstart::extract::ExtractOptions;

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
    })
}
