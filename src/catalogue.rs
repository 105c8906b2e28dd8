//! Every backbone `--model` can name, for `headstart models`: the described ones in the model
//! folders ([`crate::backbone::model_dirs`]) and the bundled ones, with whether each is on disk.
//!
//! Why a listing: backbones come from four places (bundled, provisioned on first use, made by a
//! script in `models/`, described by the user), and a name alone does not say which, how big it
//! is, or how well it does. Listing reads descriptions only: it unpacks and fetches nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backbone::{default_resize, known_models, model_dirs, Description, DEFAULT_MODEL};
use crate::preprocess::Preset;

/// Where a listed backbone's ONNX file is, or how it would be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Compiled into the binary; unpacked into the home folder on use.
    Bundled,
    /// The file is on disk.
    Installed,
    /// Not on disk; fetched and converted on first use ([`crate::provision`]).
    OnFirstUse,
    /// Not on disk and not provisioned: the description's script must be run first.
    Missing,
}

impl Availability {
    /// In words, for the table.
    pub fn words(self) -> &'static str {
        match self {
            Availability::Bundled => "bundled",
            Availability::Installed => "installed",
            Availability::OnFirstUse => "on first use",
            Availability::Missing => "missing",
        }
    }
}

/// One backbone as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEntry {
    /// The name `--model` takes.
    pub name: String,
    /// Whether `--model` defaults to it.
    pub default: bool,
    /// Side of the network input in pixels.
    pub input_size: u32,
    /// Shorter side before the centre crop.
    pub resize: u32,
    /// Pixel scaling and normalisation.
    pub preset: Preset,
    /// Width of the feature vector, if the description says.
    pub output_dim: Option<usize>,
    /// Size of the ONNX file: on disk, in the binary, or as it will be once made.
    pub bytes: Option<u64>,
    /// Where the file is, or how it would be had.
    pub availability: Availability,
    /// The ONNX file, where it is on disk.
    pub path: Option<PathBuf>,
    /// The description file; `None` for a bundled one not yet unpacked.
    pub description: Option<PathBuf>,
    /// The ImageNet check, in percent (see [`Description::imagenet_check`]).
    pub imagenet_check: Option<f64>,
    /// Its int8 version's name, for `--int8`.
    pub int8: Option<String>,
}

/// The listing: the backbones, sorted by name, and descriptions that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Catalogue {
    /// One entry per name, the one `--model` would use.
    pub models: Vec<ModelEntry>,
    /// Description files that are not valid, with why.
    pub problems: Vec<String>,
}

/// Lists the backbones of [`model_dirs`] and the bundled ones; a name in several places is
/// listed once, from where `--model` would take it.
pub fn list() -> Catalogue {
    list_in(&model_dirs(), &crate::provision::dir())
}

fn list_in(dirs: &[PathBuf], provisioned: &Path) -> Catalogue {
    let mut models: Vec<ModelEntry> = Vec::new();
    let mut problems = Vec::new();
    let seen = |models: &[ModelEntry], name: &str| models.iter().any(|m| m.name == name);
    for dir in dirs {
        for name in known_models(dir) {
            if seen(&models, &name) {
                continue;
            }
            let json = dir.join(format!("{name}.json"));
            let parsed = std::fs::read_to_string(&json)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str::<Description>(&text).map_err(|e| e.to_string()));
            match parsed {
                Ok(d) => {
                    let file = dir.join(&d.file);
                    let (availability, path) = on_disk(&file, &d, provisioned);
                    models.push(entry(name, d, availability, path, Some(json)));
                }
                Err(why) => problems.push(format!("{}: {why}", json.display())),
            }
        }
    }
    for name in crate::bundled::model_names() {
        if seen(&models, name) {
            continue;
        }
        let json = crate::bundled::model_file(&format!("{name}.json")).unwrap_or_default();
        let d: Description = match serde_json::from_slice(json) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("bundled {name}.json: {e}"));
                continue;
            }
        };
        let entry = match crate::bundled::model_file(&d.file) {
            Some(bytes) => {
                let mut e = entry(name.to_string(), d, Availability::Bundled, None, None);
                e.bytes = Some(bytes.len() as u64);
                e
            }
            None => {
                let (availability, path) = on_disk(&provisioned.join(&d.file), &d, provisioned);
                entry(name.to_string(), d, availability, path, None)
            }
        };
        models.push(entry);
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Catalogue { models, problems }
}

/// Where a description's file is: at `file`, else (for a provisioned one) in `provisioned`.
fn on_disk(file: &Path, d: &Description, provisioned: &Path) -> (Availability, Option<PathBuf>) {
    let made = provisioned.join(&d.file);
    match (file.is_file(), &d.provision) {
        (true, _) => (Availability::Installed, Some(file.to_path_buf())),
        (false, Some(_)) if made.is_file() => (Availability::Installed, Some(made)),
        (false, Some(_)) => (Availability::OnFirstUse, None),
        (false, None) => (Availability::Missing, None),
    }
}

fn entry(
    name: String,
    d: Description,
    availability: Availability,
    path: Option<PathBuf>,
    description: Option<PathBuf>,
) -> ModelEntry {
    let bytes = match &path {
        Some(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        None => d.provision.as_ref().and_then(|p| p.bytes),
    };
    ModelEntry {
        default: name == DEFAULT_MODEL,
        name,
        input_size: d.input_size,
        resize: d.resize.unwrap_or_else(|| default_resize(d.input_size)),
        preset: d.preset,
        output_dim: d.output_dim,
        bytes,
        availability,
        path,
        description,
        imagenet_check: d.imagenet_check,
        int8: d.int8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_listed_once_from_the_first_folder_and_the_bundle_fills_in() {
        let tmp = tempfile::tempdir().unwrap();
        let (first, second, home) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("home"));
        for dir in [&first, &second, &home] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let describe = |dir: &Path, name: &str, size: u32| {
            let json =
                format!(r#"{{"name": "{name}", "file": "{name}.onnx", "preset": "torch", "input_size": {size}}}"#);
            std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
        };
        describe(&first, "mine", 64);
        std::fs::write(first.join("mine.onnx"), b"12345").unwrap();
        describe(&second, "mine", 32);
        describe(&second, "unmade", 224);
        std::fs::write(second.join("broken.json"), b"{").unwrap();

        let listed = list_in(&[first.clone(), second.clone()], &home);
        let find = |name: &str| listed.models.iter().find(|m| m.name == name).unwrap();
        let mine = find("mine");
        assert_eq!((mine.input_size, mine.resize, mine.bytes), (64, 73, Some(5)));
        assert_eq!(mine.availability, Availability::Installed);
        assert_eq!(mine.description.as_deref(), Some(first.join("mine.json").as_path()));
        assert_eq!(find("unmade").availability, Availability::Missing);
        assert_eq!(listed.problems.len(), 1, "{:?}", listed.problems);
        assert!(listed.problems[0].contains("broken.json"));

        let lite0 = find(DEFAULT_MODEL);
        assert!(lite0.default && lite0.availability == Availability::Bundled);
        assert_eq!(lite0.imagenet_check, Some(83.7));
        let lite2 = find("efficientnet_lite2");
        assert_eq!(lite2.availability, Availability::OnFirstUse);
        assert_eq!((lite2.input_size, lite2.resize), (260, 292));
        assert!(lite2.bytes.is_some_and(|b| b > 15_000_000));

        std::fs::write(home.join("efficientnet_lite2.onnx"), b"made").unwrap();
        let listed = list_in(&[], &home);
        let lite2 = listed.models.iter().find(|m| m.name == "efficientnet_lite2").unwrap();
        assert_eq!((lite2.availability, lite2.bytes), (Availability::Installed, Some(4)));
    }
}
