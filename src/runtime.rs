//! Finding and loading ONNX Runtime.
//!
//! `ort` is built with `load-dynamic`: the shared library is found at run time, because the
//! prebuilt binaries `ort` would download cannot be fetched everywhere. A user should never have
//! to install it by hand, so the last resort provisions the pinned PyPI wheel through pip once
//! and keeps the library in headstart's own cache folder.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::fetch::{self, PinnedWheel, Scratch};

/// The ONNX Runtime release headstart is built and tested against.
pub const ORT_VERSION: &str = "1.32.0";

/// One platform's wheel of [`ORT_VERSION`] on PyPI and the shared library inside it.
#[derive(Debug, PartialEq, Eq)]
pub struct Wheel {
    /// `std::env::consts::OS` and `ARCH` of the platforms it serves.
    pub os: &'static str,
    /// The architectures, as `std::env::consts::ARCH`.
    pub arch: &'static str,
    /// pip's `--platform` tag.
    pub platform: &'static str,
    /// The wheel's file name.
    pub file: &'static str,
    /// SHA-256 of the wheel, hex; a downloaded wheel must match it.
    pub sha256: &'static str,
    /// The library's path inside the wheel; its file name is the one headstart keeps.
    pub library: &'static str,
}

/// The wheels headstart can provision, from `pip download` and `unzip -l` of each. PyPI has no
/// 1.32.0 wheel for macOS on x86_64 (the last is 1.23.2), so Intel Macs need `--ort-lib`.
pub const WHEELS: [Wheel; 4] = [
    Wheel {
        os: "linux",
        arch: "x86_64",
        platform: "manylinux_2_28_x86_64",
        file: "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        sha256: "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
        library: "onnxruntime/capi/libonnxruntime.so.1.32.0",
    },
    Wheel {
        os: "linux",
        arch: "aarch64",
        platform: "manylinux_2_28_aarch64",
        file: "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl",
        sha256: "2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c",
        library: "onnxruntime/capi/libonnxruntime.so.1.32.0",
    },
    Wheel {
        os: "macos",
        arch: "aarch64",
        platform: "macosx_14_0_arm64",
        file: "onnxruntime-1.32.0-cp311-cp311-macosx_14_0_arm64.whl",
        sha256: "366b9e53d07812cc5c92822cecf7563b76a8a0f32ba3bb8dd232a206ac3bcb6c",
        library: "onnxruntime/capi/libonnxruntime.1.32.0.dylib",
    },
    Wheel {
        os: "windows",
        arch: "x86_64",
        platform: "win_amd64",
        file: "onnxruntime-1.32.0-cp311-cp311-win_amd64.whl",
        sha256: "d7e0c45cc5f456ad7805e6dd256a7662736cda9c2fd17becae194eb3c2f6df72",
        library: "onnxruntime/capi/onnxruntime.dll",
    },
];

/// The wheel for an operating system and architecture (`std::env::consts::OS`, `ARCH`).
pub fn wheel_for(os: &str, arch: &str) -> Option<&'static Wheel> {
    WHEELS.iter().find(|w| w.os == os && w.arch == arch)
}

/// [`wheel_for`], or why there is none.
fn wheel_for_platform(os: &str, arch: &str) -> Result<&'static Wheel, String> {
    wheel_for(os, arch)
        .ok_or_else(|| format!("headstart knows no PyPI wheel of onnxruntime=={ORT_VERSION} for {os} on {arch}"))
}

impl Wheel {
    /// The library's file name, as unpacked.
    pub fn library_name(&self) -> &'static str {
        self.library.rsplit('/').next().unwrap_or(self.library)
    }
}

/// Whether `name` is an ONNX Runtime library's file name on `os` (versioned or not, and not one
/// of the provider libraries beside it).
fn is_library_name(os: &str, name: &str) -> bool {
    match os {
        "windows" => name.eq_ignore_ascii_case("onnxruntime.dll"),
        "macos" => name == "libonnxruntime.dylib" || name.starts_with("libonnxruntime.") && name.ends_with(".dylib"),
        _ => name.starts_with("libonnxruntime.so"),
    }
}

/// What to call the library in messages on this platform.
fn library_kind() -> String {
    wheel_for(std::env::consts::OS, std::env::consts::ARCH).map_or_else(
        || {
            format!(
                "{}onnxruntime{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )
        },
        |w| w.library_name().to_string(),
    )
}

/// Why ONNX Runtime could not be found or loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No ONNX Runtime library was found in any of the places looked in.
    #[error(
        "ONNX Runtime could not be loaded. Tried, in order:\n{tried}\nFix: pass --ort-lib PATH \
         (or set ORT_DYLIB_PATH) to ONNX Runtime {ORT_VERSION}'s {library}, for example the one \
         in the PyPI wheel `onnxruntime=={ORT_VERSION}` under onnxruntime/capi/, or make \
         `python3 -m pip download` work so headstart can fetch it itself"
    )]
    NotFound {
        /// The places tried, one per line, with why each failed.
        tried: String,
        /// The platform's library file name.
        library: String,
    },
    /// The library was found but could not be loaded or initialised.
    #[error("ONNX Runtime at {path} could not be initialised: {message}")]
    Load {
        /// The library file.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// An earlier attempt in this process failed; later calls repeat its message.
    #[error("{message}")]
    Failed {
        /// The first attempt's error message.
        message: String,
    },
}

/// ONNX Runtime, loaded: the library's path and the process-wide environment sessions need.
#[derive(Clone)]
pub struct Runtime {
    /// The library file loaded.
    pub library: PathBuf,
    /// The process-wide ONNX Runtime environment every session is created in.
    pub environment: ort::environment::Environment,
}

static LOADED: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Loads ONNX Runtime once per process; later calls return the same runtime whatever they pass.
///
/// Order: `explicit` (the `--ort-lib` flag), `ORT_DYLIB_PATH`, the platform's library beside the
/// executable, then headstart's provisioned copy (fetched with pip on first use).
pub fn init(explicit: Option<&Path>) -> Result<Runtime, RuntimeError> {
    LOADED
        .get_or_init(|| {
            let library = resolve(explicit).map_err(|e| e.to_string())?;
            load(&library).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| RuntimeError::Failed { message })
}

fn load(path: &Path) -> Result<Runtime, RuntimeError> {
    let load_err = |message: String| RuntimeError::Load {
        path: path.to_path_buf(),
        message,
    };
    let environment = ort::init_from(path)
        .map_err(|e| load_err(e.to_string()))?
        .with_name("headstart")
        .build()
        .map_err(|e| load_err(e.to_string()))?;
    Ok(Runtime {
        library: path.to_path_buf(),
        environment,
    })
}

fn resolve(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let mut tried = Vec::new();
    let from_env = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    for (origin, candidate) in [
        ("--ort-lib", explicit.map(Path::to_path_buf)),
        ("ORT_DYLIB_PATH", from_env),
    ] {
        if let Some(path) = candidate {
            if path.is_file() {
                return Ok(path);
            }
            // A library the user names is the one they want: if it is missing, say so rather
            // than quietly loading another.
            tried.push(format!("  {origin}: {} (no such file)", path.display()));
            return Err(RuntimeError::NotFound {
                tried: tried.join("\n"),
                library: library_kind(),
            });
        }
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if let Some(found) = beside(&dir) {
            return Ok(found);
        }
        tried.push(format!(
            "  beside the executable: no {} in {}",
            library_kind(),
            dir.display()
        ));
    }
    let home = provision_dir();
    match provision(&home) {
        Ok(path) => Ok(path),
        Err(why) => {
            tried.push(format!("  provisioning into {}: {why}", home.display()));
            Err(RuntimeError::NotFound {
                tried: tried.join("\n"),
                library: library_kind(),
            })
        }
    }
}

fn beside(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| is_library_name(std::env::consts::OS, n))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Where the provisioned library lives: in [`crate::home`], so that every workspace and test
/// shares one copy.
pub fn provision_dir() -> PathBuf {
    crate::home::home().join("onnxruntime").join(ORT_VERSION)
}

fn provision(dir: &Path) -> Result<PathBuf, String> {
    let wheel = wheel_for_platform(std::env::consts::OS, std::env::consts::ARCH)?;
    let lib = dir.join(wheel.library_name());
    if lib.is_file() {
        return Ok(lib);
    }
    let download = Scratch::new(dir).map_err(|e| e.to_string())?;
    eprintln!(
        "headstart: fetching ONNX Runtime {ORT_VERSION} (once) with pip into {}",
        dir.display()
    );
    let pinned = PinnedWheel {
        requirement: &format!("onnxruntime=={ORT_VERSION}"),
        file: wheel.file,
        sha256: wheel.sha256,
    };
    let platform = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"];
    let bytes = fetch::download(
        pinned,
        &[&platform[..], &["--platform", wheel.platform]].concat(),
        download.path(),
    )
    .map_err(|e| e.to_string())?;
    let file = wheel.file;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("{file} is not a valid wheel: {e}"))?;
    let inside = wheel.library;
    let mut entry = archive
        .by_name(inside)
        .map_err(|e| format!("{file} lacks {inside}: {e}"))?;
    let partial = download.path().join(wheel.library_name());
    let mut out = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
    std::io::copy(&mut entry, &mut out).map_err(|e| format!("unpacking {inside}: {e}"))?;
    out.sync_all().map_err(|e| e.to_string())?;
    // The rename makes the library appear whole or not at all, even if two runs race.
    std::fs::rename(&partial, &lib).map_err(|e| e.to_string())?;
    Ok(lib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_supported_platform_gets_its_own_wheel_and_library() {
        let pick = |os, arch| wheel_for(os, arch).map(|w| (w.platform, w.library_name()));
        assert_eq!(
            pick("linux", "x86_64"),
            Some(("manylinux_2_28_x86_64", "libonnxruntime.so.1.32.0"))
        );
        assert_eq!(
            pick("linux", "aarch64"),
            Some(("manylinux_2_28_aarch64", "libonnxruntime.so.1.32.0"))
        );
        assert_eq!(
            pick("macos", "aarch64"),
            Some(("macosx_14_0_arm64", "libonnxruntime.1.32.0.dylib"))
        );
        assert_eq!(pick("windows", "x86_64"), Some(("win_amd64", "onnxruntime.dll")));
        for (os, arch) in [("macos", "x86_64"), ("windows", "aarch64"), ("freebsd", "x86_64")] {
            assert_eq!(pick(os, arch), None, "{os} {arch}");
        }
        for w in &WHEELS {
            assert!(w.file.contains(ORT_VERSION) && w.file.contains(w.platform), "{w:?}");
            assert!(w.library.starts_with("onnxruntime/capi/"), "{w:?}");
            assert_eq!(w.sha256.len(), 64, "{w:?}");
            assert!(is_library_name(w.os, w.library_name()), "{w:?}");
        }
    }

    #[test]
    fn the_library_beside_the_executable_is_told_from_its_providers() {
        assert!(is_library_name("linux", "libonnxruntime.so"));
        assert!(!is_library_name("linux", "libonnxruntime_providers_shared.so"));
        assert!(is_library_name("macos", "libonnxruntime.dylib"));
        assert!(!is_library_name("macos", "libonnxruntime_providers_shared.dylib"));
        assert!(!is_library_name("macos", "libonnxruntime.so.1.32.0"));
        assert!(is_library_name("windows", "OnnxRuntime.dll"));
        assert!(!is_library_name("windows", "onnxruntime_providers_shared.dll"));
    }

    #[test]
    fn an_unsupported_platform_is_told_to_pass_the_library() {
        let why = wheel_for_platform("macos", "x86_64").unwrap_err();
        assert!(why.contains("macos on x86_64"), "{why}");
        let err = RuntimeError::NotFound {
            tried: format!("  provisioning: {why}"),
            library: "libonnxruntime.dylib".into(),
        }
        .to_string();
        assert!(err.contains("--ort-lib") && err.contains("ORT_DYLIB_PATH"), "{err}");
        assert!(wheel_for_platform("linux", "x86_64").is_ok());
    }
}
