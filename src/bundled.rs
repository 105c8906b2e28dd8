//! The files compiled into the binary: the default backbone, its int8 version, their
//! descriptions and licence, the descriptions of the backbones provisioned on first use
//! ([`crate::provision`]: their ONNX files are not bundled), and the demo images.
//!
//! Why embedded rather than looked up beside the executable: `cargo install` copies only the
//! executable, so a binary installed or copied anywhere must carry them. ONNX Runtime needs real
//! files, and the demo runs on a folder like any user's data, so they are unpacked once into
//! [`crate::home`], each written atomically and checked against the SHA-256 of the embedded
//! bytes on every use, so a damaged or half-written copy is rewritten.

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir, DirEntry};
use sha2::{Digest, Sha256};

/// The bundled backbone files, as file name and contents.
const MODEL_FILES: [(&str, &[u8]); 7] = [
    (
        "efficientnet_lite0.json",
        include_bytes!("../models/efficientnet_lite0.json"),
    ),
    (
        "efficientnet_lite0.onnx",
        include_bytes!("../models/efficientnet_lite0.onnx"),
    ),
    (
        "efficientnet_lite0_int8.json",
        include_bytes!("../models/efficientnet_lite0_int8.json"),
    ),
    (
        "efficientnet_lite0_int8.onnx",
        include_bytes!("../models/efficientnet_lite0_int8.onnx"),
    ),
    (
        "efficientnet_lite1.json",
        include_bytes!("../models/efficientnet_lite1.json"),
    ),
    (
        "efficientnet_lite2.json",
        include_bytes!("../models/efficientnet_lite2.json"),
    ),
    (
        "LICENSE-efficientnet-lite.txt",
        include_bytes!("../models/LICENSE-efficientnet-lite.txt"),
    ),
];

// The path is read at compile time only; nothing at run time refers to the build tree.
static DEMO: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/demo");

/// The demo data set, inside the unpacked demo folder.
const DEMO_DATA: &str = "cifar10";

/// Why the bundled files could not be unpacked into the home folder.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A bundled file or its folder could not be written.
    #[error("cannot unpack the bundled {what} into {path}: {source}. Set HEADSTART_HOME to a writable folder")]
    Write {
        /// What was being unpacked: the backbones or the demo images.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Names of the bundled backbones (their descriptions' file stems), sorted.
pub fn model_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = MODEL_FILES
        .iter()
        .filter_map(|(file, _)| file.strip_suffix(".json"))
        .collect();
    names.sort();
    names
}

/// A bundled backbone file's contents, by file name (`efficientnet_lite0.json`).
pub fn model_file(name: &str) -> Option<&'static [u8]> {
    MODEL_FILES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, bytes)| *bytes)
}

/// Unpacks the bundled backbones into `home/models` where needed and returns that folder.
pub fn models(home: &Path) -> Result<PathBuf, BundleError> {
    let dir = home.join("models");
    unpack(&dir, MODEL_FILES.iter().copied(), "backbones")?;
    Ok(dir)
}

/// Unpacks the demo images (and their README: licence and citation) into `home/demo` where
/// needed and returns the image folder.
pub fn demo(home: &Path) -> Result<PathBuf, BundleError> {
    let dir = home.join("demo");
    let mut files = Vec::new();
    collect(&DEMO, &mut files);
    unpack(&dir, files.into_iter(), "demo images")?;
    Ok(dir.join(DEMO_DATA))
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<(&'static str, &'static [u8])>) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(sub) => collect(sub, out),
            DirEntry::File(file) => {
                // include_dir records paths as they were written in this crate: valid UTF-8.
                if let Some(path) = file.path().to_str() {
                    out.push((path, file.contents()));
                }
            }
        }
    }
}

/// Writes every file whose copy under `dir` is missing or differs from the bundled bytes;
/// returns how many were written.
fn unpack<'a>(
    dir: &Path,
    files: impl Iterator<Item = (&'a str, &'a [u8])>,
    what: &'static str,
) -> Result<usize, BundleError> {
    let mut written = 0;
    for (relative, bytes) in files {
        let path = dir.join(relative);
        let intact = std::fs::read(&path).is_ok_and(|disk| Sha256::digest(&disk) == Sha256::digest(bytes));
        if intact {
            continue;
        }
        crate::atomic::write_file(&path, |tmp| std::fs::write(tmp, bytes)).map_err(|e| BundleError::Write {
            what,
            path: path.clone(),
            source: e.source,
        })?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacking_writes_once_and_rewrites_damaged_copies() {
        let home = tempfile::tempdir().unwrap();
        let files = [("a.json", &b"{}"[..]), ("sub/b.bin", &b"bytes"[..])];
        let dir = home.path().join("x");
        assert_eq!(unpack(&dir, files.iter().copied(), "test").unwrap(), 2);
        assert_eq!(std::fs::read(dir.join("sub/b.bin")).unwrap(), b"bytes");
        assert_eq!(unpack(&dir, files.iter().copied(), "test").unwrap(), 0);

        std::fs::write(dir.join("sub/b.bin"), b"bytez").unwrap();
        std::fs::remove_file(dir.join("a.json")).unwrap();
        assert_eq!(unpack(&dir, files.iter().copied(), "test").unwrap(), 2);
        assert_eq!(std::fs::read(dir.join("sub/b.bin")).unwrap(), b"bytes");
        assert_eq!(std::fs::read(dir.join("a.json")).unwrap(), b"{}");
    }

    #[test]
    fn unpacking_into_an_unwritable_place_names_the_file() {
        let home = tempfile::tempdir().unwrap();
        let blocker = home.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let err = unpack(&blocker, [("a", &b"x"[..])].into_iter(), "backbones")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bundled backbones") && err.contains("HEADSTART_HOME"),
            "{err}"
        );
    }

    #[test]
    fn the_bundle_holds_the_default_backbone_its_int8_version_and_the_demo() {
        assert_eq!(
            model_names(),
            [
                crate::backbone::DEFAULT_MODEL,
                "efficientnet_lite0_int8",
                "efficientnet_lite1",
                "efficientnet_lite2"
            ]
        );
        assert!(
            model_file("efficientnet_lite1.onnx").is_none(),
            "provisioned, not bundled"
        );
        let mut demo = Vec::new();
        collect(&DEMO, &mut demo);
        assert!(demo.iter().any(|(p, _)| *p == "README.md"));
        let images = demo
            .iter()
            .filter(|(p, _)| Path::new(p).starts_with(DEMO_DATA) && p.ends_with(".jpg"))
            .count();
        assert_eq!(images, 600);
    }
}
