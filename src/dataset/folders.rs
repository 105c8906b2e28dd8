//! Classes from folder names: `DIR/<class>/…` or `DIR/<split>/<class>/…`, with images at any
//! depth below the class folder.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::walk::{subfolders, walk};
use super::{hashed_split, Dataset, DatasetError, Sample, Split, SplitPercentages};

/// Which folder of an image's path names its class, counted below the data folder or below its
/// split folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelFrom {
    /// The folders down to this depth, joined with `/`: 1 (the default) is the first folder,
    /// and every image below it, at any depth, is of that class, as Keras'
    /// `image_dataset_from_directory` walks class folders. 2 in `<coarse>/<fine>/<image>` gives
    /// classes `coarse/fine`.
    Depth(usize),
    /// The image's own folder, whatever its depth: fastai's `parent_label`. Two folders of one
    /// name in different places are one class.
    Parent,
}

impl Default for LabelFrom {
    fn default() -> Self {
        LabelFrom::Depth(1)
    }
}

impl LabelFrom {
    /// The class of an image below the folders `dirs`, or `None` when it lies above the class
    /// level.
    fn class_of(self, dirs: &[String]) -> Option<String> {
        match self {
            LabelFrom::Depth(n) if n >= 1 && dirs.len() >= n => Some(dirs[..n].join("/")),
            LabelFrom::Depth(_) => None,
            LabelFrom::Parent => dirs.last().cloned(),
        }
    }

    /// The rule in words, for the summary: `under` names where classes start.
    fn describe(self, under: &str) -> String {
        match self {
            LabelFrom::Depth(1) => {
                format!("class = the first folder under {under}; images at any depth below it belong to it")
            }
            LabelFrom::Depth(n) => {
                format!("class = the folders down to depth {n} under {under}, joined with `/` (--label-depth {n})")
            }
            LabelFrom::Parent => "class = the image's own folder (--label-from parent)".into(),
        }
    }
}

/// Scans a folder layout; see [`Dataset::scan`].
pub(super) fn scan(root: &Path, percentages: SplitPercentages, rule: LabelFrom) -> Result<Dataset, DatasetError> {
    if rule == LabelFrom::Depth(0) {
        return Err(DatasetError::LabelDepth);
    }
    let mut skipped = Vec::new();
    let split_dirs: Vec<(Split, String)> = subfolders(root, &mut skipped)?
        .into_iter()
        .filter_map(|name| Split::from_folder(&name).map(|s| (s, name)))
        .collect();
    let split_folders = !split_dirs.is_empty();
    let bases: Vec<(Option<Split>, String)> = if split_folders {
        split_dirs
            .into_iter()
            .map(|(s, d)| (Some(s), format!("{d}/")))
            .collect()
    } else {
        vec![(None, String::new())]
    };
    let mut labelled: Vec<(String, String, Split)> = Vec::new();
    let (mut ignored, mut unlabelled) = (Vec::new(), Vec::new());
    let mut class_folders = BTreeSet::new();
    for (split, prefix) in &bases {
        let tree = walk(&root.join(prefix), prefix, &mut skipped)?;
        ignored.extend(tree.others);
        for found in &tree.images {
            let path = format!("{prefix}{}", found.relative());
            match rule.class_of(&found.dirs) {
                Some(class) => {
                    let split = split.unwrap_or_else(|| hashed_split(&path, percentages));
                    labelled.push((path, class, split));
                }
                None => unlabelled.push(path),
            }
        }
        if let LabelFrom::Depth(n) = rule {
            class_folders.extend(tree.folders.iter().filter(|d| d.len() == n).map(|d| d.join("/")));
        }
    }
    let classes: Vec<String> = labelled
        .iter()
        .map(|(_, class, _)| class.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if classes.is_empty() {
        return Err(DatasetError::Empty(root.to_path_buf()));
    }
    let empty_classes = class_folders.into_iter().filter(|c| !classes.contains(c)).collect();
    let samples = labelled
        .into_iter()
        .map(|(path, class, split)| Sample {
            class: classes.binary_search(&class).expect("collected above"),
            path,
            split,
            labels: None,
            group: None,
        })
        .collect();
    let under = if split_folders {
        "each split folder"
    } else {
        "the data folder"
    };
    Ok(Dataset {
        root: root.to_path_buf(),
        classes,
        samples,
        ignored,
        skipped,
        empty_classes,
        split_folders,
        labelling: rule.describe(under),
        unlabelled,
        bad_lines: Vec::new(),
        multi_label: false,
    })
}
