//! Writing a file so that it holds either its old content or all of the new, never a part:
//! a run killed at any moment, or a full disk, must not leave a truncated cache, classifier or
//! report under its real name. Every file headstart writes goes through [`write_file`].

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A file could not be written; what was there before is intact.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}{}", storage_hint(source))]
pub struct WriteError {
    /// The file that was to be written.
    pub path: PathBuf,
    /// What the operating system said.
    pub source: io::Error,
}

/// What to do when the disk is full, added to write errors that say so.
pub fn storage_hint(error: &io::Error) -> &'static str {
    use io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    match error.kind() {
        StorageFull | FileTooLarge | QuotaExceeded => {
            " (the disk is full: free some space or pass --workspace on another disk; what was written before is intact)"
        }
        _ => "",
    }
}

/// Writes `path` through `write`, which gets a temporary file's path in the same folder to
/// fill (so big files can be streamed); that file is flushed to disk and renamed over `path`,
/// or removed if anything fails. Missing folders are created.
pub fn write_file(path: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> Result<(), WriteError> {
    replace(path, write).map_err(|source| WriteError {
        path: path.to_path_buf(),
        source,
    })
}

fn replace(path: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = write(&tmp)
        .and_then(|_| File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable only once the folder is flushed too. Some file systems refuse to
    // open or sync a folder; the data itself is already on disk then, so that is no error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
