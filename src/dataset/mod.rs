//! The image folder: which files, which class, which split.
//!
//! Classes come from folders ([`folders`]: `DIR/<class>/…` or `DIR/<split>/<class>/…`, images at
//! any depth below) or from label files ([`labels`]: CSV, TSV, JSON Lines). Without a split
//! given by a folder, a column or a label file's name, the split comes from a hash of the file
//! name, as TensorFlow's `retrain.py` does, so a file keeps its split when others are added or
//! removed.

mod folders;
mod labels;
mod walk;

pub use folders::LabelFrom;
pub use labels::{BadLine, ClassNames, Column, Columns, Header, LabelFiles};
pub use walk::image_files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// File extensions decoded as images; anything else in a class folder is listed as ignored.
/// HEIC and AVIF (`hif`: some cameras' HEIF) are listed in every build: without the `heif`
/// feature they are skipped with a reason that names it, not silently left out.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "heic", "heif", "hif", "avif",
];

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
    /// Multi-label data only: the indices of all its labels, sorted (possibly none); `class`
    /// is then the first of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<usize>>,
    /// Its group as a label file's group column gives it; see [`Sample::group`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Sample {
    /// The group the image shares a split and a fold with: the label file's group, or else
    /// its [`group_key`].
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or_else(|| group_key(&self.path))
    }
}

/// Where classes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// One value per run: its size does not matter, and boxing would only add noise to every use.
#[allow(clippy::large_enum_variant)]
pub enum Labels {
    /// Folder names, by this rule.
    Folders(LabelFrom),
    /// Label files.
    Files(LabelFiles),
}

impl Default for Labels {
    fn default() -> Self {
        Labels::Folders(LabelFrom::default())
    }
}

/// The image files of a data folder, with their classes and splits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    /// The scanned folder.
    pub root: PathBuf,
    /// Class names, sorted; a class index is a position in this list.
    pub classes: Vec<String>,
    /// The usable images, sorted by path.
    pub samples: Vec<Sample>,
    /// Files under the data (or split) folders that are not images by their extension.
    pub ignored: Vec<String>,
    /// Entries that look like images or class folders but cannot be used: unreadable, broken
    /// links, pipes and devices, names that are not UTF-8.
    pub skipped: Vec<Skipped>,
    /// Class folders without a single image; they are left out of the class list.
    pub empty_classes: Vec<String>,
    /// True when the splits came from split folders, a split column or the label files' names
    /// rather than file-name hashes.
    pub split_folders: bool,
    /// How classes were found, in words, for the summary.
    pub labelling: String,
    /// Images that got no class: above the class folder level, or in no label file.
    pub unlabelled: Vec<String>,
    /// Lines of label files that were left out, with the reason.
    pub bad_lines: Vec<BadLine>,
    /// Whether images have any number of labels (label files with `a|b` labels or 0/1
    /// columns) rather than one class each.
    pub multi_label: bool,
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
    /// `--label-depth 0`: classes start at depth 1.
    #[error("--label-depth must be at least 1 (1 is the first folder under the data or split folder)")]
    LabelDepth,
    /// A label file could not be read.
    #[error("cannot read the label file {path}: {source}")]
    LabelFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A column was given by name but the file has no header row.
    #[error("{flag} `{column}`: {} has no header row (or --header no was given): give the column's position, 0 for the first", file.display())]
    NoHeader {
        /// The flag that names the column.
        flag: &'static str,
        /// The name given.
        column: String,
        /// The label file.
        file: PathBuf,
    },
    /// A column was given by a name the header does not hold.
    #[error("{flag} `{column}`: {} has no such column; its header is {header:?}", file.display())]
    NoColumn {
        /// The flag that names the column.
        flag: &'static str,
        /// The name given.
        column: String,
        /// The label file.
        file: PathBuf,
        /// The names the header holds.
        header: Vec<String>,
    },
    /// A column was given by position for a JSON Lines file.
    #[error("{flag}: {} is JSON Lines, whose fields have no order: give the field's name", file.display())]
    IndexInJsonLines {
        /// The flag that names the column.
        flag: &'static str,
        /// The label file.
        file: PathBuf,
    },
    /// The `--class-names` file cannot be used.
    #[error("--class-names {0}")]
    ClassNames(String),
    /// No line of the label files lists a usable image.
    #[error("no line of the label files lists a usable image ({bad} bad lines{}): check --data and the column flags", first.as_ref().map(|f| format!("; the first: {f}")).unwrap_or_default())]
    NothingListed {
        /// How many lines were bad.
        bad: usize,
        /// The first bad line, in words.
        first: Option<String>,
    },
}

impl Dataset {
    /// Scans `root` for images and their classes, from folder names or label files as
    /// `labels` says. Class names and files are sorted so the same data always gives the same
    /// class indices and sample order.
    pub fn scan(root: &Path, percentages: SplitPercentages, labels: &Labels) -> Result<Dataset, DatasetError> {
        let SplitPercentages { val, test } = percentages;
        if !(0.0..100.0).contains(&val) || !(0.0..100.0).contains(&test) || val + test >= 100.0 {
            return Err(DatasetError::Percentages { val, test });
        }
        let mut dataset = match labels {
            Labels::Folders(rule) => folders::scan(root, percentages, *rule)?,
            Labels::Files(files) => labels::scan(root, percentages, files)?,
        };
        dataset.samples.sort_by(|a, b| a.path.cmp(&b.path));
        dataset.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(dataset)
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

/// Counts keyed by class name, for summaries.
pub fn counts_by_name(dataset: &Dataset) -> BTreeMap<String, [usize; 3]> {
    dataset.classes.iter().cloned().zip(dataset.counts()).collect()
}

#[cfg(test)]
mod tests;
