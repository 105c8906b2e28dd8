//! Finding and loading ONNX Runtime.
//!
//! `ort` is built with `load-dynamic`: the shared library is found at run time, because the
//! prebuilt binaries `ort` would download cannot be fetched everywhere. A user should never have
//! to install it by hand, so the last resort provisions the pinned PyPI wheel through pip once
//! and keeps the library in headstart's own cache folder. Which wheel depends on the
//! [`Device`]: the CPU build, or the build that carries its execution provider.

mod wheels;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::device::Device;
use crate::fetch::{self, PinnedWheel, Scratch};
pub use wheels::{Package, Wheel, CPU, GPU, OPENVINO, ORT_VERSION};

/// `package`'s wheel for an operating system and architecture, or why there is none.
fn wheel_for_platform(package: &Package, os: &str, arch: &str) -> Result<&'static Wheel, String> {
    package.wheel_for(os, arch).ok_or_else(|| {
        format!(
            "headstart knows no PyPI wheel of {}=={} for {os} on {arch}",
            package.name, package.version
        )
    })
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

/// What to call `package`'s library in messages on this platform.
fn library_kind(package: &Package) -> String {
    package
        .wheel_for(std::env::consts::OS, std::env::consts::ARCH)
        .map_or_else(
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
         (or set ORT_DYLIB_PATH) to ONNX Runtime {version}'s {library}, for example the one \
         in the PyPI wheel `{package}=={version}` under onnxruntime/capi/, or make \
         `python3 -m pip download` work so headstart can fetch it itself"
    )]
    NotFound {
        /// The places tried, one per line, with why each failed.
        tried: String,
        /// The platform's library file name.
        library: String,
        /// The PyPI package that has it.
        package: &'static str,
        /// Its version.
        version: &'static str,
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

/// ONNX Runtime, loaded: the library's path, the process-wide environment sessions need, and
/// the device their sessions are placed on.
#[derive(Clone)]
pub struct Runtime {
    /// The library file loaded.
    pub library: PathBuf,
    /// The process-wide ONNX Runtime environment every session is created in.
    pub environment: ort::environment::Environment,
    /// Where sessions run ([`crate::device`] registers its execution provider).
    pub device: Device,
}

static LOADED: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// [`init_for`] on the CPU.
pub fn init(explicit: Option<&Path>) -> Result<Runtime, RuntimeError> {
    init_for(explicit, Device::Cpu)
}

/// Loads ONNX Runtime once per process, for sessions on `device`; later calls return the same
/// runtime whatever they pass.
///
/// Order: `explicit` (the `--ort-lib` flag), `ORT_DYLIB_PATH`, the platform's library beside the
/// executable, then headstart's provisioned copy of the build `device` needs ([`Device::package`],
/// fetched with pip on first use).
pub fn init_for(explicit: Option<&Path>, device: Device) -> Result<Runtime, RuntimeError> {
    LOADED
        .get_or_init(|| {
            let library = resolve(explicit, device.package()).map_err(|e| e.to_string())?;
            load(&library, device).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| RuntimeError::Failed { message })
}

fn load(path: &Path, device: Device) -> Result<Runtime, RuntimeError> {
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
        device,
    })
}

fn resolve(explicit: Option<&Path>, package: &'static Package) -> Result<PathBuf, RuntimeError> {
    let not_found = |tried: &[String]| RuntimeError::NotFound {
        tried: tried.join("\n"),
        library: library_kind(package),
        package: package.name,
        version: package.version,
    };
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
            return Err(not_found(&tried));
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
            library_kind(package),
            dir.display()
        ));
    }
    let home = provision_dir(package);
    match provision(&home, package) {
        Ok(path) => Ok(path),
        Err(why) => {
            tried.push(format!("  provisioning into {}: {why}", home.display()));
            Err(not_found(&tried))
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

/// Where `package`'s provisioned library lives: in [`crate::home`], so that every workspace and
/// test shares one copy.
pub fn provision_dir(package: &Package) -> PathBuf {
    crate::home::home().join(package.name).join(package.version)
}

fn provision(dir: &Path, package: &Package) -> Result<PathBuf, String> {
    let wheel = wheel_for_platform(package, std::env::consts::OS, std::env::consts::ARCH)?;
    let lib = dir.join(wheel.library_name());
    if lib.is_file() {
        return Ok(lib);
    }
    let download = Scratch::new(dir).map_err(|e| e.to_string())?;
    eprintln!(
        "headstart: fetching ONNX Runtime ({} {}, once) with pip into {}",
        package.name,
        package.version,
        dir.display()
    );
    let pinned = PinnedWheel {
        requirement: &format!("{}=={}", package.name, package.version),
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
    let folder = wheel.library.rsplit_once('/').map_or("", |(folder, _)| folder);
    let names: Vec<String> = archive.file_names().filter_map(|n| n.ok().map(String::from)).collect();
    let providers = names
        .iter()
        .filter(|n| wheel.with_providers && *n != wheel.library && is_provider_library(folder, n));
    // The providers first and the library last: the library's presence means all are there.
    for inside in providers.chain(std::iter::once(&wheel.library.to_string())) {
        let name = inside.rsplit('/').next().unwrap_or(inside);
        let mut entry = archive
            .by_name(inside)
            .map_err(|e| format!("{file} lacks {inside}: {e}"))?;
        let partial = download.path().join(name);
        let mut out = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
        std::io::copy(&mut entry, &mut out).map_err(|e| format!("unpacking {inside}: {e}"))?;
        out.sync_all().map_err(|e| e.to_string())?;
        // The rename makes each file appear whole or not at all, even if two runs race.
        std::fs::rename(&partial, dir.join(name)).map_err(|e| e.to_string())?;
    }
    Ok(lib)
}

/// Whether the wheel entry `name` is a shared library directly in `folder` that a provider
/// loads: `lib*.so*` (or `*.dll`), not Python's extension module.
fn is_provider_library(folder: &str, name: &str) -> bool {
    let Some(file) = name.strip_prefix(folder).and_then(|rest| rest.strip_prefix('/')) else {
        return false;
    };
    !file.contains('/')
        && !file.contains("pybind11")
        && (file.starts_with("lib") && (file.contains(".so") || file.ends_with(".dylib")) || file.ends_with(".dll"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_supported_platform_gets_its_own_wheel_and_library() {
        let pick = |os, arch| CPU.wheel_for(os, arch).map(|w| (w.platform, w.library_name()));
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
        for package in [&CPU, &GPU, &OPENVINO] {
            for w in package.wheels {
                let stem = package.name.replace('-', "_");
                assert!(w.file.starts_with(&format!("{stem}-{}-", package.version)), "{w:?}");
                assert!(w.file.contains(w.platform), "{w:?}");
                assert!(w.library.starts_with("onnxruntime/capi/"), "{w:?}");
                assert!(w.library.contains(package.version) || w.os == "windows", "{w:?}");
                assert_eq!(w.sha256.len(), 64, "{w:?}");
                assert!(is_library_name(w.os, w.library_name()), "{w:?}");
                assert_eq!(w.with_providers, package.name != "onnxruntime", "{w:?}");
            }
        }
    }

    #[test]
    fn the_provider_libraries_are_the_ones_beside_the_library() {
        let capi = "onnxruntime/capi";
        for name in [
            "onnxruntime/capi/libonnxruntime_providers_cuda.so",
            "onnxruntime/capi/libonnxruntime_providers_shared.so",
            "onnxruntime/capi/libopenvino.so.2541",
            "onnxruntime/capi/libtbb.so.12",
        ] {
            assert!(is_provider_library(capi, name), "{name}");
        }
        for name in [
            "onnxruntime/capi/onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so",
            "onnxruntime/capi/_pybind_state.py",
            "onnxruntime/capi/training/libsomething.so",
            "onnxruntime/tools/libonnxruntime.so",
            "onnxruntime-1.31.1.dist-info/RECORD",
        ] {
            assert!(!is_provider_library(capi, name), "{name}");
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
        let why = wheel_for_platform(&CPU, "macos", "x86_64").unwrap_err();
        assert!(why.contains("macos on x86_64"), "{why}");
        let err = RuntimeError::NotFound {
            tried: format!("  provisioning: {why}"),
            library: "libonnxruntime.dylib".into(),
            package: CPU.name,
            version: CPU.version,
        }
        .to_string();
        assert!(err.contains("--ort-lib") && err.contains("ORT_DYLIB_PATH"), "{err}");
        assert!(wheel_for_platform(&CPU, "linux", "x86_64").is_ok());
        let why = wheel_for_platform(&GPU, "macos", "aarch64").unwrap_err();
        assert!(why.contains("onnxruntime-gpu==1.31.1"), "{why}");
    }
}
