//! `audit`: problems in the data that the cached embeddings make cheap to find, with no
//! re-extraction: exact and near-duplicates (and those that leak across splits), likely label
//! errors with the class they probably belong to, outliers, and the class balance. Only the
//! near-duplicate check reads the images again, once, for their small pixel fingerprints
//! when `extract` has not made them ([`crate::cache::fingerprints`]).
//!
//! A near-duplicate in both train and test inflates the test score; a few wrong labels in a
//! small class cost more than any hyper-parameter. Every check reads the same neighbourhood
//! (each image's nearest others by cosine, [`neighbourhood`]), found once.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::atomic::{write_file, WriteError};
use crate::cache::fingerprints::fingerprints;
use crate::cache::{load_snapshot, CacheError};
use crate::dataset::Split;

pub mod aligned;
mod balance;
mod duplicates;
mod ignore;
mod labels;
mod leaks;
mod neighbourhood;
mod outliers;

pub use ignore::IgnoreList;
pub use labels::LABEL_FOLDS;
pub use leaks::{leaks, Leaks, LEAKS_FILE};
pub use outliers::SPREAD;

/// The file the findings are written to, in the workspace's `report` folder, for the HTML report.
pub const AUDIT_FILE: &str = "audit.json";

/// The workspace's own ignore list, read when it exists (see [`IgnoreList`]).
pub const IGNORE_FILE: &str = "audit.ignore";

/// Two different files whose fingerprints have at least this aligned similarity
/// ([`aligned::similarity`]) are reported as near-duplicates. Measured on flowers5 with 300
/// copies resized to 50-90%, re-encoded at JPEG quality 60-95, cropped by up to 10% and
/// brightened or darkened by up to 10% (BENCHMARKS.md, "Data audit"): the pairs of distinct
/// files above it are the same photo (recoloured, recropped or resized) or shots of one scene
/// moments apart.
pub const NEAR_THRESHOLD: f32 = 0.97;

/// Pairs of neighbours whose embeddings have at least this cosine similarity have their pixels
/// compared. Embeddings alone cannot decide: copies of flowers5 photos made as above fall as low
/// as 0.73, while 96 pairs of different photos reach 0.90 (pooled features are made to ignore
/// such changes only as far as they keep the class).
pub const CANDIDATE_COSINE: f32 = 0.6;

/// Neighbours per image: the near-duplicates of an image are looked for among this many, and
/// label agreement and the outlier score are taken over them.
pub const NEIGHBOURS: usize = 10;

/// Why the audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The workspace's manifest or cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The ignore list could not be read.
    #[error("cannot read the ignore list {path}: {source}")]
    Ignore {
        /// The list.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// audit.json could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// An option is out of range.
    #[error("{flag} {message}")]
    Option {
        /// The flag, as the command line spells it.
        flag: &'static str,
        /// What is wrong, and what would do.
        message: String,
    },
    /// The workspace holds no images.
    #[error("the workspace's cache holds no images: run `headstart extract --data DIR` first")]
    NoImages,
}

/// What to audit and how. Build it with [`AuditOptions::new`] and struct-update syntax.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The workspace whose cache is audited.
    pub workspace: PathBuf,
    /// Aligned pixel similarity from which two files count as near-duplicates, in (0, 1].
    pub near_threshold: f32,
    /// Neighbours looked at per image (at least 1).
    pub neighbours: usize,
    /// Folds of the out-of-fold predictions that rank likely label errors (at least 2).
    pub folds: usize,
    /// An ignore list to read instead of `<workspace>/audit.ignore`.
    pub ignore: Option<PathBuf>,
    /// Where audit.json goes; `<workspace>/report` by default.
    pub report_dir: Option<PathBuf>,
    /// Images of more pixels are not decoded for their fingerprints.
    pub max_pixels: u64,
}

impl AuditOptions {
    /// The defaults for `workspace`.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        AuditOptions {
            workspace: workspace.into(),
            near_threshold: NEAR_THRESHOLD,
            neighbours: NEIGHBOURS,
            folds: LABEL_FOLDS,
            ignore: None,
            report_dir: None,
            max_pixels: crate::preprocess::DEFAULT_MAX_PIXELS,
        }
    }

    fn check(&self) -> Result<(), AuditError> {
        if !(self.near_threshold > 0.0 && self.near_threshold <= 1.0) {
            return Err(AuditError::Option {
                flag: "--near-threshold",
                message: format!(
                    "is {}: give an aligned pixel similarity above 0 and at most 1",
                    self.near_threshold
                ),
            });
        }
        if self.neighbours == 0 {
            return Err(AuditError::Option {
                flag: "--neighbours",
                message: "is 0: give at least 1".into(),
            });
        }
        if self.folds < 2 {
            return Err(AuditError::Option {
                flag: "--folds",
                message: format!("is {}: out-of-fold predictions need at least 2 folds", self.folds),
            });
        }
        Ok(())
    }
}

/// An image, as the findings name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Relative to the data folder.
    pub path: String,
    /// Its split.
    pub split: Split,
    /// Its class (for multi-label data, its first label).
    pub class: String,
}

/// Files with the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactDuplicate {
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Every file with them.
    pub images: Vec<ImageRef>,
    /// Whether they are in more than one split: a leak.
    pub crosses_splits: bool,
}

/// Two different files that are copies of one picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearDuplicate {
    /// One file.
    pub a: ImageRef,
    /// The other.
    pub b: ImageRef,
    /// Cosine similarity of their embeddings.
    pub similarity: f32,
    /// Aligned similarity of their pixels ([`aligned::similarity`]), what they were found by.
    #[serde(default)]
    pub pixels: f32,
    /// Whether they are in different splits: a leak.
    pub crosses_splits: bool,
}

/// An image whose label the rest of the data disagrees with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelIssue {
    /// Relative to the data folder.
    pub path: String,
    /// Its split.
    pub split: Split,
    /// The class it is labelled with.
    pub given: String,
    /// The class the evidence favours.
    pub suggested: String,
    /// The out-of-fold probability of the given class.
    pub self_confidence: f32,
    /// The out-of-fold probability of the suggested class.
    pub suggested_probability: f32,
    /// Share of the neighbours' similarity-weighted votes that go to the given class.
    pub neighbour_agreement: f32,
    /// What the list is ranked by, lowest first: the mean of `self_confidence` and
    /// `neighbour_agreement`.
    pub score: f32,
}

/// An image far from every other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outlier {
    /// Relative to the data folder.
    pub path: String,
    /// Its split.
    pub split: Split,
    /// Its class.
    pub class: String,
    /// Mean cosine similarity to its nearest neighbours.
    pub score: f32,
    /// How many robust standard deviations below the median score it lies.
    #[serde(default)]
    pub deviations: f32,
}

/// How far apart two splits' class distributions are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitDistance {
    /// One split.
    pub a: Split,
    /// The other.
    pub b: Split,
    /// Half the sum of the absolute differences of the class proportions, in [0, 1].
    pub total_variation: f64,
}

/// Images per class and split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    /// The splits that have images.
    pub splits: Vec<Split>,
    /// Class names.
    pub classes: Vec<String>,
    /// `counts[s][c]`: images of class `c` in split `splits[s]`.
    pub counts: Vec<Vec<usize>>,
    /// Every two splits' distance.
    pub distance: Vec<SplitDistance>,
}

/// What the audit found; also written as `report/audit.json`, which the HTML report reads back
/// with every missing section empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditSummary {
    /// Format version of audit.json.
    pub version: u32,
    /// The cache key of the backbone whose embeddings were audited.
    pub backbone: String,
    /// Images audited.
    pub images: usize,
    /// Groups of files with the same bytes, those across splits first.
    pub exact_duplicates: Vec<ExactDuplicate>,
    /// Near-duplicate pairs, those across splits first, then the most alike.
    pub near_duplicates: Vec<NearDuplicate>,
    /// The aligned pixel similarity the pairs were found at.
    pub near_duplicate_threshold: f32,
    /// Likely label errors, the likeliest first.
    pub label_issues: Vec<LabelIssue>,
    /// Images far from every other, the farthest first.
    pub outliers: Vec<Outlier>,
    /// Class counts per split.
    pub balance: Balance,
    /// What the audit could not do, and why.
    pub notes: Vec<String>,
    /// Entries of the ignore list read.
    pub ignore_entries: usize,
    /// Findings left out because an image in them is on the ignore list.
    pub ignored_findings: usize,
    /// audit.json.
    pub file: PathBuf,
}

impl AuditSummary {
    /// Exact-duplicate groups and near-duplicate pairs that cross splits.
    pub fn leaks(&self) -> (usize, usize) {
        (
            self.exact_duplicates.iter().filter(|d| d.crosses_splits).count(),
            self.near_duplicates.iter().filter(|d| d.crosses_splits).count(),
        )
    }
}

/// Audits the workspace's cache and writes `audit.json`.
pub fn audit(opts: &AuditOptions) -> Result<AuditSummary, AuditError> {
    opts.check()?;
    let (manifest, store) = load_snapshot(&opts.workspace)?;
    let data = manifest.all(&store)?;
    if data.entries.is_empty() {
        return Err(AuditError::NoImages);
    }
    let ignore = match &opts.ignore {
        Some(path) => IgnoreList::read(path, true)?,
        None => IgnoreList::read(&opts.workspace.join(IGNORE_FILE), false)?,
    };
    let entries = &data.entries;
    let image = |i: usize| ImageRef {
        path: entries[i].sample.path.clone(),
        split: entries[i].sample.split,
        class: manifest.classes[entries[i].sample.class].clone(),
    };
    let neighbours = neighbourhood::nearest_others(data.x.view(), opts.neighbours);
    let prints = fingerprints(&opts.workspace, &manifest.data_root, entries, opts.max_pixels)?;
    let prepared = aligned::prepare(prints.grey);

    let mut notes = Vec::new();
    if let Some((path, reason)) = prints.unread.first() {
        notes.push(format!(
            "near-duplicates were not looked for among {} images whose pixels could not be read, \
             such as {path} ({reason}); the data folder is {}",
            prints.unread.len(),
            manifest.data_root.display()
        ));
    }
    let label_issues = if manifest.multi_label {
        notes.push("label issues are looked for in single-label data only: this data set is multi-label".to_owned());
        Vec::new()
    } else {
        let found = labels::issues(&manifest.classes, entries, data.x.view(), &neighbours, opts.folds);
        notes.extend(found.notes);
        found.issues
    };

    let ignored: BTreeSet<&str> = entries
        .iter()
        .filter(|e| ignore.covers(e))
        .map(|e| e.sample.path.as_str())
        .collect();
    // A finding is dropped when any image in it has been checked: one copy of a pair on the
    // list means the pair was looked at.
    let mut dropped = 0;
    let mut keep = |paths: &[&str]| {
        let kept = !paths.iter().any(|p| ignored.contains(p));
        dropped += usize::from(!kept);
        kept
    };
    let mut exact_duplicates = duplicates::exact(entries, &image);
    exact_duplicates.retain(|g| keep(&g.images.iter().map(|r| r.path.as_str()).collect::<Vec<_>>()));
    let mut near_duplicates = duplicates::near(entries, &neighbours, &prepared, opts.near_threshold, &image);
    near_duplicates.retain(|p| keep(&[&p.a.path, &p.b.path]));
    let mut label_issues = label_issues;
    label_issues.retain(|l| keep(&[&l.path]));
    let mut outliers = outliers::outliers(&neighbours, &image);
    outliers.retain(|o| keep(&[&o.path]));

    let report_dir = opts.report_dir.clone().unwrap_or_else(|| opts.workspace.join("report"));
    let summary = AuditSummary {
        version: 2,
        backbone: manifest.backbone.key.clone(),
        images: entries.len(),
        exact_duplicates,
        near_duplicates,
        near_duplicate_threshold: opts.near_threshold,
        label_issues,
        outliers,
        balance: balance::balance(entries, &manifest.classes),
        notes,
        ignore_entries: ignore.len(),
        ignored_findings: dropped,
        file: report_dir.join(AUDIT_FILE),
    };
    let json = serde_json::to_vec_pretty(&summary).expect("plain data");
    write_file(&summary.file, |tmp| std::fs::write(tmp, &json))?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
