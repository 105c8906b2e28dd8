//! Walking folders by the rules every layout shares: hidden entries are left out, symlinks are
//! followed (a folder reached twice is walked once), entries sorted by name, and entries that
//! look usable but are not (broken links, pipes, names that are not UTF-8) are reported.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{DatasetError, Skipped, IMAGE_EXTENSIONS};

/// An image file found by [`walk`]: the folders between the walked folder and it, and its name.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Folder names from the walked folder down to the file's own folder; empty for a file
    /// directly in the walked folder.
    pub dirs: Vec<String>,
    /// The file name.
    pub name: String,
}

impl Found {
    /// The path below the walked folder, with `/` separators.
    pub fn relative(&self) -> String {
        let mut path = self.dirs.join("/");
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&self.name);
        path
    }
}

/// What [`walk`] found under one folder.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    /// Image files by extension, in path order.
    pub images: Vec<Found>,
    /// Every folder below the walked one, as its folder names.
    pub folders: Vec<Vec<String>>,
    /// Other files, as `prefix` + their path below the walked folder.
    pub others: Vec<String>,
}

enum Kind {
    Dir,
    File,
    /// Cannot be used, for this reason.
    Unusable(String),
}

/// Whether a file name has an image extension ([`IMAGE_EXTENSIONS`], any case).
pub(crate) fn is_image(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// Everything under `dir` at any depth. Unusable entries go to `skipped`, named `prefix` + their
/// path below `dir`.
pub(crate) fn walk(dir: &Path, prefix: &str, skipped: &mut Vec<Skipped>) -> Result<Tree, DatasetError> {
    let mut tree = Tree::default();
    let mut seen = HashSet::new();
    walk_into(dir, &mut Vec::new(), prefix, &mut seen, &mut tree, skipped)?;
    Ok(tree)
}

fn walk_into(
    dir: &Path,
    dirs: &mut Vec<String>,
    prefix: &str,
    seen: &mut HashSet<PathBuf>,
    tree: &mut Tree,
    skipped: &mut Vec<Skipped>,
) -> Result<(), DatasetError> {
    let real = std::fs::canonicalize(dir).map_err(|source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !seen.insert(real) {
        return Ok(());
    }
    let below = |name: &str, dirs: &[String]| {
        let mut path = String::from(prefix);
        for d in dirs {
            path.push_str(d);
            path.push('/');
        }
        path.push_str(name);
        path
    };
    for (name, kind) in read_dir_sorted(dir)? {
        match kind {
            Kind::Dir => {
                let sub = dir.join(&name);
                dirs.push(name);
                tree.folders.push(dirs.clone());
                walk_into(&sub, dirs, prefix, seen, tree, skipped)?;
                dirs.pop();
            }
            Kind::File if is_image(&name) => tree.images.push(Found {
                dirs: dirs.clone(),
                name,
            }),
            Kind::File => tree.others.push(below(&name, dirs)),
            Kind::Unusable(reason) => skipped.push(Skipped {
                path: below(&name, dirs),
                reason,
            }),
        }
    }
    Ok(())
}

/// The image files under `dir`, at any depth, sorted by path, by the rules of the data set
/// scan: hidden entries are left out, symlinks are followed, and entries that look usable but
/// are not (broken links, pipes, names that are not UTF-8) go to `skipped`. A folder reached a
/// second time, through a symlink loop or two links to one folder, is not walked again.
pub fn image_files(dir: &Path, skipped: &mut Vec<Skipped>) -> Result<Vec<PathBuf>, DatasetError> {
    let prefix = format!("{}/", dir.display());
    let tree = walk(dir, &prefix, skipped)?;
    Ok(tree.images.iter().map(|f| dir.join(f.relative())).collect())
}

/// The entries of `dir` by name, hidden ones (`.DS_Store`, `.git`) left out as every file tool
/// does. Symlinks are followed, so linked class folders and images count like real ones.
fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, Kind)>, DatasetError> {
    let io = |source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let (name, utf8) = match entry.file_name().into_string() {
            Ok(name) => (name, true),
            Err(raw) => (raw.to_string_lossy().into_owned(), false),
        };
        if name.starts_with('.') {
            continue;
        }
        let kind = match std::fs::metadata(entry.path()) {
            _ if !utf8 => Kind::Unusable("its name is not valid UTF-8: rename it to include it".into()),
            Ok(m) if m.is_dir() => Kind::Dir,
            Ok(m) if m.is_file() => Kind::File,
            Ok(_) => Kind::Unusable("not a regular file (a pipe, socket or device)".into()),
            Err(e) => Kind::Unusable(format!("cannot read: {e}")),
        };
        entries.push((name, kind));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// The folders directly in `dir`; entries that might be folders but cannot be used go to
/// `skipped`.
pub(crate) fn subfolders(dir: &Path, skipped: &mut Vec<Skipped>) -> Result<Vec<String>, DatasetError> {
    let mut folders = Vec::new();
    for (name, kind) in read_dir_sorted(dir)? {
        match kind {
            Kind::Dir => folders.push(name),
            Kind::File => {}
            Kind::Unusable(reason) => skipped.push(Skipped { path: name, reason }),
        }
    }
    Ok(folders)
}
