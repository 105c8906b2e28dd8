//! The image folder: which files, which class, which split.
//!
//! Two layouts are accepted: `DIR/<class>/<image>` and `DIR/<split>/<class>/<image>`. Without split
//! folders the split comes from a hash of the file name, as TensorFlow's `retrain.py` does, so a
//! file keeps its split when others are added or removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// File extensions decoded as images; anything else in a class folder is listed as ignored.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"];

/// Below this many images a class gets a warning: a head cannot learn much from so few.
pub const FEW_IMAGES: usize = 10;

/// One of the three parts of a data set. The names and their aliases are written once, in the
/// `ValueEnum` attributes: the folder scan, [`FromStr`](std::str::FromStr) and the CLI's
/// choices (listed in `--help`) all read them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Fits the classifiers (folder `train`, alias `training`).
    #[value(alias = "training")]
    Train,
    /// Picks the epoch or alpha and reports progress (folder `val`, aliases `valid`, `validation`).
    #[value(alias = "valid", alias = "validation")]
    Val,
    /// Held out for the final evaluation (folder `test`, alias `testing`).
    #[value(alias = "testing")]
    Test,
}

impl Split {
    /// Every split, in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The split's folder name: `train`, `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    fn from_folder(name: &str) -> Option<Split> {
        <Split as clap::ValueEnum>::from_str(name, true).ok()
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Split::from_folder(s).ok_or_else(|| format!("unknown split `{s}`: use train, val or test"))
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Percentages of files that go to validation and test when the folder has no split folders.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitPercentages {
    /// Percent of files, in [0, 100), that go to validation.
    pub val: f64,
    /// Percent of files, in [0, 100), that go to test; `val + test` stays below 100.
    pub test: f64,
}

impl Default for SplitPercentages {
    fn default() -> Self {
        SplitPercentages { val: 10.0, test: 10.0 }
    }
}

/// A file that was not used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file, relative to the data folder where it lies inside it.
    pub path: String,
    /// Why it was not used.
    pub reason: String,
}

/// One image file of the data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Path relative to the data folder, with `/` separators: the name users see in reports.
    pub path: String,
    /// Index of its class in [`Dataset::classes`].
    pub class: usize,
    /// The split it belongs to.
    pub split: Split,
}

/// The image files of a data folder, with their classes and splits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    /// The scanned folder.
    pub root: PathBuf,
    /// Class names (folder names), sorted; a class index is a position in this list.
    pub classes: Vec<String>,
    /// The usable images, sorted by path.
    pub samples: Vec<Sample>,
    /// Files in class folders that are not images by their extension, and folders inside them.
    pub ignored: Vec<String>,
    /// Entries that look like images or class folders but cannot be used: unreadable, broken
    /// links, pipes and devices, names that are not UTF-8.
    pub skipped: Vec<Skipped>,
    /// Class folders without a single image; they are left out of the class list.
    pub empty_classes: Vec<String>,
    /// True when the splits came from split folders rather than file-name hashes.
    pub split_folders: bool,
}

/// Why a data folder could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The data folder or one of its folders could not be listed.
    #[error("cannot read the data folder {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The folder holds no class folder with an image.
    #[error("no class folders with images in {0}: expected DIR/<class>/<image> or DIR/<split>/<class>/<image>")]
    Empty(PathBuf),
    /// `--val-percent` or `--test-percent` is outside [0, 100), or they sum to 100 or more.
    #[error("split percentages val {val} + test {test} must each be in 0..100 and sum below 100: fix --val-percent / --test-percent")]
    Percentages {
        /// The validation percentage given.
        val: f64,
        /// The test percentage given.
        test: f64,
    },
    /// Split folders do not all hold the same class folders.
    #[error("the split folders of {root} do not share one class list (`{split}` has {found:?}, expected {expected:?}): give every split the same class folders")]
    ClassMismatch {
        /// The data folder.
        root: PathBuf,
        /// The split whose classes differ.
        split: String,
        /// Its classes.
        found: Vec<String>,
        /// The class list the other splits share.
        expected: Vec<String>,
    },
}

impl Dataset {
    /// Scans `root`. Class names and files are sorted so the same folder always gives the same
    /// class indices and sample order.
    pub fn scan(root: &Path, percentages: SplitPercentages) -> Result<Dataset, DatasetError> {
        let SplitPercentages { val, test } = percentages;
        if !(0.0..100.0).contains(&val) || !(0.0..100.0).contains(&test) || val + test >= 100.0 {
            return Err(DatasetError::Percentages { val, test });
        }
        let mut skipped = Vec::new();
        let top = subfolders(root, "", &mut skipped)?;
        let split_dirs: Vec<(Split, String)> = top
            .iter()
            .filter_map(|name| Split::from_folder(name).map(|s| (s, name.clone())))
            .collect();
        let mut ignored = Vec::new();
        let mut dataset = if split_dirs.is_empty() {
            let classes = top;
            let mut samples = Vec::new();
            for (class, name) in classes.iter().enumerate() {
                for file in files_in(root, "", name, &mut ignored, &mut skipped)? {
                    let split = hashed_split(&file, percentages);
                    samples.push(Sample {
                        path: format!("{name}/{file}"),
                        class,
                        split,
                    });
                }
            }
            Dataset {
                root: root.to_path_buf(),
                classes,
                samples,
                ignored,
                skipped,
                empty_classes: Vec::new(),
                split_folders: false,
            }
        } else {
            let mut classes: Vec<String> = Vec::new();
            for (_, dir) in &split_dirs {
                for class in subfolders(&root.join(dir), &format!("{dir}/"), &mut skipped)? {
                    if !classes.contains(&class) {
                        classes.push(class);
                    }
                }
            }
            classes.sort();
            let mut samples = Vec::new();
            for (split, dir) in &split_dirs {
                let split_root = root.join(dir);
                for class_name in subfolders(&split_root, "", &mut Vec::new())? {
                    let class = classes.iter().position(|c| *c == class_name).expect("collected above");
                    for file in files_in(&split_root, &format!("{dir}/"), &class_name, &mut ignored, &mut skipped)? {
                        samples.push(Sample {
                            path: format!("{dir}/{class_name}/{file}"),
                            class,
                            split: *split,
                        });
                    }
                }
            }
            Dataset {
                root: root.to_path_buf(),
                classes,
                samples,
                ignored,
                skipped,
                empty_classes: Vec::new(),
                split_folders: true,
            }
        };
        if dataset.samples.is_empty() {
            return Err(DatasetError::Empty(root.to_path_buf()));
        }
        dataset.drop_empty_classes();
        dataset.samples.sort_by(|a, b| a.path.cmp(&b.path));
        dataset.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(dataset)
    }

    /// A class with no images cannot be learned or evaluated; keeping it would give every head
    /// an output that is never right.
    fn drop_empty_classes(&mut self) {
        let mut used = vec![false; self.classes.len()];
        for s in &self.samples {
            used[s.class] = true;
        }
        let mut new_index = Vec::with_capacity(self.classes.len());
        let mut kept = Vec::new();
        for (class, name) in self.classes.drain(..).enumerate() {
            new_index.push(kept.len());
            if used[class] {
                kept.push(name);
            } else {
                self.empty_classes.push(name);
            }
        }
        self.classes = kept;
        for s in &mut self.samples {
            s.class = new_index[s.class];
        }
    }

    /// Images per class and split, as `counts[class][split]`.
    pub fn counts(&self) -> Vec<[usize; 3]> {
        let mut counts = vec![[0; 3]; self.classes.len()];
        for s in &self.samples {
            counts[s.class][s.split as usize] += 1;
        }
        counts
    }

    /// Classes with fewer than [`FEW_IMAGES`] images in all.
    pub fn small_classes(&self) -> Vec<(String, usize)> {
        self.counts()
            .iter()
            .zip(&self.classes)
            .map(|(c, name)| (name.clone(), c.iter().sum::<usize>()))
            .filter(|(_, n)| *n < FEW_IMAGES)
            .collect()
    }
}

/// The part of a file's path that says which photo it is: its base name, with anything from
/// `_nohash_` on left out so that variants of one photo (`cat1_nohash_0.jpg`,
/// `cat1_nohash_1.jpg`) share it. TensorFlow's `retrain.py` rule; splits and folds keep such
/// files together.
pub fn group_key(file_name: &str) -> &str {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    match base.find("_nohash_") {
        Some(at) => &base[..at],
        None => base,
    }
}

/// The split of a file by the hash of its [`group_key`]. Same arithmetic as TensorFlow's
/// `retrain.py`.
pub fn hashed_split(file_name: &str, percentages: SplitPercentages) -> Split {
    const MAX_PER_CLASS: u64 = (1 << 27) - 1;
    let digest = Sha1::digest(group_key(file_name).as_bytes());
    // Python takes the whole 160-bit hash modulo 2^27; only its low 27 bits matter, which are
    // the low bits of the last bytes.
    let low = u64::from_be_bytes(digest[12..20].try_into().expect("8 bytes"));
    let percent = (low % (MAX_PER_CLASS + 1)) as f64 * (100.0 / MAX_PER_CLASS as f64);
    if percent < percentages.val {
        Split::Val
    } else if percent < percentages.val + percentages.test {
        Split::Test
    } else {
        Split::Train
    }
}

enum Kind {
    Dir,
    File,
    /// Cannot be used, for this reason.
    Unusable(String),
}

/// Whether a file name has an image extension ([`IMAGE_EXTENSIONS`], any case).
fn is_image(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// The image files under `dir`, at any depth, sorted by path, by the rules of the data set
/// scan: hidden entries are left out, symlinks are followed, and entries that look usable but
/// are not (broken links, pipes, names that are not UTF-8) go to `skipped`. A folder reached a
/// second time, through a symlink loop or two links to one folder, is not walked again.
pub fn image_files(dir: &Path, skipped: &mut Vec<Skipped>) -> Result<Vec<PathBuf>, DatasetError> {
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    walk(dir, &mut seen, &mut files, skipped)?;
    Ok(files)
}

fn walk(
    dir: &Path,
    seen: &mut std::collections::HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), DatasetError> {
    let real = std::fs::canonicalize(dir).map_err(|source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !seen.insert(real) {
        return Ok(());
    }
    for (name, kind) in read_dir_sorted(dir)? {
        let path = dir.join(&name);
        match kind {
            Kind::Dir => walk(&path, seen, files, skipped)?,
            Kind::File if is_image(&name) => files.push(path),
            Kind::File => {}
            Kind::Unusable(reason) => skipped.push(Skipped {
                path: path.display().to_string(),
                reason,
            }),
        }
    }
    Ok(())
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

/// Folders of `dir`; entries that might be folders but cannot be used go to `skipped`, named
/// with `prefix` (the path of `dir` inside the data folder).
fn subfolders(dir: &Path, prefix: &str, skipped: &mut Vec<Skipped>) -> Result<Vec<String>, DatasetError> {
    let mut folders = Vec::new();
    for (name, kind) in read_dir_sorted(dir)? {
        match kind {
            Kind::Dir => folders.push(name),
            Kind::File => {}
            Kind::Unusable(reason) => skipped.push(Skipped {
                path: format!("{prefix}{name}"),
                reason,
            }),
        }
    }
    Ok(folders)
}

/// The image files of one class folder, `root/class`. Files that are not images by their
/// extension, and folders, go to `ignored`; entries that cannot be used go to `skipped`.
fn files_in(
    root: &Path,
    prefix: &str,
    class: &str,
    ignored: &mut Vec<String>,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<String>, DatasetError> {
    let mut images = Vec::new();
    for (name, kind) in read_dir_sorted(&root.join(class))? {
        match kind {
            Kind::File if is_image(&name) => images.push(name),
            Kind::Unusable(reason) => skipped.push(Skipped {
                path: format!("{prefix}{class}/{name}"),
                reason,
            }),
            Kind::File | Kind::Dir => ignored.push(format!("{}/{class}/{name}", root.display())),
        }
    }
    Ok(images)
}

/// Counts keyed by class name, for summaries.
pub fn counts_by_name(dataset: &Dataset) -> BTreeMap<String, [usize; 3]> {
    dataset.classes.iter().cloned().zip(dataset.counts()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_split_matches_retrain_py() {
        // Golden values from TensorFlow's retrain.py arithmetic, run in Python:
        //   h = int(hashlib.sha1(name.encode()).hexdigest(), 16)
        //   p = (h % (2**27)) * (100.0 / (2**27 - 1))
        // "a.jpg" -> 81.586, "b.jpg" -> 10.762, "e.jpg" -> 4.894, "img_0001.jpg" -> 96.069
        let p = SplitPercentages { val: 10.0, test: 10.0 };
        let cases = [
            ("a.jpg", Split::Train),
            ("b.jpg", Split::Test),
            ("e.jpg", Split::Val),
            ("img_0001.jpg", Split::Train),
        ];
        for (name, want) in cases {
            assert_eq!(hashed_split(name, p), want, "{name}");
        }
    }

    #[test]
    fn nohash_suffix_is_ignored() {
        let p = SplitPercentages { val: 30.0, test: 30.0 };
        for name in ["x1.jpg", "photo.png", "abc.gif", "q.jpg"] {
            let stem = name.rsplit_once('.').unwrap().0;
            let variant = format!("{stem}_nohash_3.jpg");
            assert_eq!(hashed_split(stem, p), hashed_split(&variant, p));
        }
    }

    #[test]
    fn split_is_stable_and_close_to_the_percentages() {
        let p = SplitPercentages { val: 20.0, test: 10.0 };
        let names: Vec<String> = (0..5000).map(|i| format!("file_{i}.jpg")).collect();
        let mut counts = [0usize; 3];
        for n in &names {
            counts[hashed_split(n, p) as usize] += 1;
        }
        assert!((counts[1] as f64 / 5000.0 - 0.20).abs() < 0.02, "{counts:?}");
        assert!((counts[2] as f64 / 5000.0 - 0.10).abs() < 0.02, "{counts:?}");
        // A file's split depends on its name only, never on which other files exist.
        assert_eq!(hashed_split("file_7.jpg", p), hashed_split("dir/file_7.jpg", p));
    }

    #[test]
    fn bad_percentages_are_rejected() {
        let err = Dataset::scan(Path::new("."), SplitPercentages { val: 60.0, test: 50.0 }).unwrap_err();
        assert!(err.to_string().contains("--val-percent"));
    }
}
