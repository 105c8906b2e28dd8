//! Finding and loading ONNX Runtime.
//!
//! `ort` is built with `load-dynamic`: the shared library is found at run time, because the
//! prebuilt binaries `ort` would download cannot be fetched everywhere. A user should never have
//! to install it by hand, so the last resort provisions the pinned PyPI wheel through pip once
//! and keeps the library in headstart's own cache folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The ONNX Runtime release headstart is built and tested against.
pub const ORT_VERSION: &str = "1.32.0";
const WHEEL_FILE: &str = "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl";
const WHEEL_SHA256: &str = "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d";
const LIB_IN_WHEEL: &str = "onnxruntime/capi/libonnxruntime.so.1.32.0";
const LIB_NAME: &str = "libonnxruntime.so.1.32.0";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime could not be loaded. Tried, in order:\n{tried}\nFix: pass --ort-lib PATH \
         (or set ORT_DYLIB_PATH) to a libonnxruntime.so {ORT_VERSION}, for example the one in \
         the PyPI wheel `onnxruntime=={ORT_VERSION}` under onnxruntime/capi/, or make \
         `python3 -m pip download` work so headstart can fetch it itself"
    )]
    NotFound { tried: String },
    #[error("ONNX Runtime at {path} could not be initialised: {message}")]
    Load { path: PathBuf, message: String },
    #[error("{message}")]
    Failed { message: String },
}

/// ONNX Runtime, loaded: the library's path and the process-wide environment sessions need.
#[derive(Clone)]
pub struct Runtime {
    pub library: PathBuf,
    pub environment: ort::environment::Environment,
}

static LOADED: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Loads ONNX Runtime once per process; later calls return the same runtime whatever they pass.
///
/// Order: `explicit` (the `--ort-lib` flag), `ORT_DYLIB_PATH`, a `libonnxruntime.so*` beside the
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
            "  beside the executable: no libonnxruntime.so* in {}",
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
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Where the provisioned library lives: `HEADSTART_HOME`, else the user's cache folder, so that
/// every workspace and test shares one copy.
pub fn provision_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEADSTART_HOME") {
        return PathBuf::from(dir).join("onnxruntime").join(ORT_VERSION);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("headstart").join("onnxruntime").join(ORT_VERSION)
}

fn provision(dir: &Path) -> Result<PathBuf, String> {
    let lib = dir.join(LIB_NAME);
    if lib.is_file() {
        return Ok(lib);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the folder: {e}"))?;
    let download = tempdir_in(dir)?;
    eprintln!(
        "headstart: fetching ONNX Runtime {ORT_VERSION} (once) with pip into {}",
        dir.display()
    );
    let status = Command::new(python())
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"])
        .args(["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"])
        .args(["--platform", "manylinux_2_28_x86_64", "-d"])
        .arg(&download)
        .arg(format!("onnxruntime=={ORT_VERSION}"))
        .status()
        .map_err(|e| format!("could not run `{} -m pip`: {e}", python()))?;
    if !status.success() {
        return Err(format!("`pip download onnxruntime=={ORT_VERSION}` failed ({status})"));
    }
    let wheel = download.join(WHEEL_FILE);
    let bytes = std::fs::read(&wheel).map_err(|e| format!("pip gave no {WHEEL_FILE}: {e}"))?;
    let digest = hex(&Sha256::digest(&bytes));
    if digest != WHEEL_SHA256 {
        return Err(format!("{WHEEL_FILE} has sha256 {digest}, expected {WHEEL_SHA256}"));
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("{WHEEL_FILE} is not a valid wheel: {e}"))?;
    let mut entry = archive
        .by_name(LIB_IN_WHEEL)
        .map_err(|e| format!("{WHEEL_FILE} lacks {LIB_IN_WHEEL}: {e}"))?;
    let partial = download.join(LIB_NAME);
    let mut out = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
    std::io::copy(&mut entry, &mut out).map_err(|e| format!("unpacking {LIB_IN_WHEEL}: {e}"))?;
    out.sync_all().map_err(|e| e.to_string())?;
    // The rename makes the library appear whole or not at all, even if two runs race.
    std::fs::rename(&partial, &lib).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&download);
    Ok(lib)
}

fn tempdir_in(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok(path)
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
