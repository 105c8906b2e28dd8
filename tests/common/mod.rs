//! Shared helpers for the integration tests: a generated image folder and the binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tiny_model(name: &str) -> String {
    repo()
        .join("tests/models")
        .join(format!("{name}.onnx"))
        .display()
        .to_string()
}

/// The binary with its workspace in `dir`.
pub fn headstart(workspace: &Path) -> Command {
    let mut cmd = Command::cargo_bin("headstart").unwrap();
    cmd.arg("--workspace").arg(workspace).arg("--quiet");
    cmd
}

/// An image whose colour depends on its class, with per-image noise, so a classifier can learn
/// the classes but no two images are identical.
pub fn class_image(class: usize, i: usize, size: u32) -> RgbImage {
    let base = [[200u8, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]][class % 4];
    RgbImage::from_fn(size, size, |x, y| {
        let n = ((x * 31 + y * 17 + i as u32 * 101) % 41) as u8;
        Rgb([
            base[0].saturating_add(n),
            base[1].saturating_add(n / 2),
            base[2].saturating_sub(n / 3),
        ])
    })
}

/// `classes` class folders of `per_class` images in varied formats, plus one file that is not
/// an image and one that claims to be a JPEG but is not.
pub fn make_dataset(root: &Path, classes: usize, per_class: usize) {
    let formats = [
        (ImageFormat::Png, "png"),
        (ImageFormat::Jpeg, "jpg"),
        (ImageFormat::Bmp, "bmp"),
        (ImageFormat::Gif, "gif"),
        (ImageFormat::Tiff, "tiff"),
        (ImageFormat::WebP, "webp"),
    ];
    for c in 0..classes {
        let dir = root.join(format!("class{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let (format, ext) = formats[i % formats.len()];
            let img = DynamicImage::ImageRgb8(class_image(c, i, 40 + (i as u32 % 3) * 8));
            img.save_with_format(dir.join(format!("img{i:03}.{ext}")), format)
                .unwrap();
        }
    }
    std::fs::write(root.join("class0/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("class1/broken.jpg"), b"\xff\xd8\xff\xe0 truncated").unwrap();
}

/// `classes` classes of `per_class` generated images (the broken JPEG removed) extracted with
/// the tiny backbone, 20% each for val and test: the temporary folder, the data and the
/// workspace.
pub fn extracted(classes: usize, per_class: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, classes, per_class);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    headstart(&ws)
        .args(["extract", "--val-percent", "20", "--test-percent", "20", "--model"])
        .arg(tiny_model("tiny_nchw"))
        .arg("--data")
        .arg(&data)
        .assert()
        .success();
    (tmp, data, ws)
}

/// The tensors of a saved head, by name.
pub fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

pub fn json(output: &[u8]) -> serde_json::Value {
    serde_json::from_slice(output).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(output)))
}

/// Runs the binary with `--json` on workspace `ws`, expects success and returns its output.
pub fn run_json(ws: &Path, args: &[&str]) -> serde_json::Value {
    json(
        &headstart(ws)
            .arg("--json")
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout,
    )
}

/// The batch-1 tiny model: every image is its own network call, so a vector does not depend on
/// which images share its batch, and caches can be compared byte for byte.
pub const BYTE_EXACT_MODEL: &str = "tiny_nhwc_b1";

/// `extract` of `data` into `ws` with `extra` flags. Exit code 3 (the broken JPEG) is expected
/// from a plain extract and from the shard the JPEG falls to; 0 from the others.
pub fn extract(ws: &Path, data: &Path, extra: &[&str]) -> serde_json::Value {
    let out = headstart(ws)
        .args([
            "--json",
            "extract",
            "--batch-size",
            "4",
            "--model",
            &tiny_model(BYTE_EXACT_MODEL),
            "--data",
        ])
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}: {stderr}", out.status);
    let summary = json(&out.stdout);
    let skipped = !summary["skipped"].as_array().unwrap().is_empty();
    assert_eq!(out.status.code(), Some(if skipped { 3 } else { 0 }), "{stderr}");
    summary
}

/// Every file of the cache a workspace's commands read: the manifest and the store folders.
/// The audit's fingerprints are left out: they are grouped into files as they were made, so
/// [`fingerprints_of`] compares them by content.
pub fn cache_files(ws: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert(
        "dataset.json".to_string(),
        std::fs::read(ws.join("dataset.json")).unwrap(),
    );
    let mut dirs = vec![ws.join("embeddings")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path == headstart::cache::fingerprints::dir(ws) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(ws).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// A workspace's fingerprints by content key.
pub fn fingerprints_of(ws: &Path) -> BTreeMap<[u8; 32], Vec<f32>> {
    let store = headstart::cache::maps::MapStore::read(&headstart::cache::fingerprints::dir(ws)).unwrap();
    let side = headstart::cache::fingerprints::SIDE;
    store
        .keys()
        .into_iter()
        .map(|k| {
            let mut values = vec![0f32; side * side];
            assert!(store.read_f32(&k, &mut values));
            (k, values)
        })
        .collect()
}

/// Two workspaces hold the same cache files, byte for byte (a merge's and a single extract's),
/// and the same fingerprints.
#[track_caller]
pub fn assert_same_cache(merged: &Path, plain: &Path, context: &str) {
    assert!(
        fingerprints_of(merged) == fingerprints_of(plain),
        "{context}: other fingerprints"
    );
    let (got, want) = (cache_files(merged), cache_files(plain));
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "{context}: other files");
    for (name, bytes) in &want {
        assert!(&got[name] == bytes, "{context}: {name} differs from a single extract's");
    }
}

/// The shared real data, which CI must have: missing data fails there and skips elsewhere.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let dir = repo().join("../shared/data").join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing: real-data tests must run in CI", dir.display());
    }
    eprintln!("skipping: {} not found (set CI to make this a failure)", dir.display());
    None
}

/// An EXIF APP1 payload holding only the orientation tag.
pub fn exif_orientation(value: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
    exif.extend_from_slice(&[0, 1]); // one entry
    exif.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]); // Orientation, SHORT, count 1
    exif.extend_from_slice(&value.to_be_bytes());
    exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // padding, no next IFD
    exif
}

/// Runs the exported model through headstart's own pipeline as if it were a backbone whose
/// "features" are the probabilities; `side` is the tiny models' input size.
pub fn run_exported(model: &Path, files: &[String], side: u32) -> Vec<Vec<f32>> {
    use headstart::backbone::{Backbone, BackboneChoice};
    let runtime = headstart::runtime::init(None).unwrap();
    let info = BackboneChoice {
        model: Some(model.display().to_string()),
        output: Some("probabilities".into()),
        preset: Some(headstart::preprocess::Preset::Inception),
        input_size: Some(side),
        resize: Some(side),
        int8: false,
    }
    .resolve()
    .unwrap();
    let mut backbone = Backbone::open(&runtime, info, 1).unwrap();
    let paths: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    let mut rows = vec![Vec::new(); files.len()];
    let failed = headstart::embed::embed_files::<headstart::backbone::BackboneError>(
        &mut backbone,
        &paths,
        8,
        headstart::preprocess::DEFAULT_MAX_PIXELS,
        &headstart::embed::Silent,
        |indices, dim, out| {
            for (k, &i) in indices.iter().enumerate() {
                rows[i] = out[k * dim..(k + 1) * dim].to_vec();
            }
            Ok(())
        },
    )
    .unwrap();
    assert!(failed.is_empty());
    rows
}

/// Sends SIGKILL `delay` after the start unless the run ends first. Returns how long the run
/// took when it ended on its own (the kill then cut nothing short).
pub fn kill_after(mut child: std::process::Child, delay: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}
