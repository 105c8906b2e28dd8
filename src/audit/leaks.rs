//! The quick check `extract` and `train-head` run: how many images have an exact or near
//! duplicate in another split. The full list is `audit`'s job; this only counts, and keeps its
//! answer beside the report so that the next command on the same cache need not search again.

use std::path::Path;

use ndarray::Axis;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::aligned::{prepare, similarity};
use super::{AuditError, CANDIDATE_COSINE, NEAR_THRESHOLD, NEIGHBOURS};
use crate::atomic::write_file;
use crate::cache::fingerprints::fingerprints;
use crate::cache::{load_snapshot, Entry, Manifest, Store};
use crate::cosine::normalise_rows;
use crate::dataset::Split;
use crate::knn::nearest;

/// Where the counts are kept, in the workspace's `report` folder.
pub const LEAKS_FILE: &str = "leaks.json";

/// Images with a duplicate in another split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaks {
    /// The manifest checksum the counts belong to.
    pub manifest: String,
    /// The near-duplicate threshold they were counted at.
    pub threshold: f32,
    /// Images whose exact bytes are also in an earlier split (train, then val, then test).
    pub exact: usize,
    /// Images of val or test with a different file in an earlier split that is a copy of the same
    /// picture: among their nearest neighbours there by embedding, one whose fingerprint has at
    /// least `threshold` aligned similarity to theirs.
    pub near: usize,
}

impl Leaks {
    /// Whether anything leaks.
    pub fn any(&self) -> bool {
        self.exact > 0 || self.near > 0
    }
}

/// The leak counts of the workspace's current cache: read back when the last count was of the
/// same manifest, otherwise counted (one nearest-neighbour search of each later split in the
/// earlier ones) and kept.
pub fn leaks(workspace: &Path) -> Result<Leaks, AuditError> {
    let file = workspace.join("report").join(LEAKS_FILE);
    // The manifest alone says whether the kept count still holds: the vectors (hundreds of
    // megabytes for a big cache) are read only to count again.
    let checksum = Manifest::load(workspace)?.checksum;
    if let Some(kept) = std::fs::read(&file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Leaks>(&bytes).ok())
        .filter(|l| l.manifest == checksum && l.threshold == NEAR_THRESHOLD)
    {
        return Ok(kept);
    }
    let (manifest, store) = load_snapshot(workspace)?;
    let found = count(workspace, &manifest, &store)?;
    let json = serde_json::to_vec_pretty(&found).expect("plain data");
    write_file(&file, |tmp| std::fs::write(tmp, &json))?;
    Ok(found)
}

fn count(workspace: &Path, manifest: &Manifest, store: &Store) -> Result<Leaks, AuditError> {
    let all = manifest.all(store)?;
    // An image that cannot be read has no fingerprint and is not counted; `audit` names it.
    let prints = fingerprints(
        workspace,
        &manifest.data_root,
        &all.entries,
        crate::preprocess::DEFAULT_MAX_PIXELS,
    )?;
    let prints = prepare(prints.grey);
    let split_of = |e: &Entry| e.sample.split;
    let mut exact = 0;
    let mut seen: std::collections::BTreeMap<&str, Split> = Default::default();
    let mut order: Vec<usize> = (0..all.entries.len()).collect();
    order.sort_by_key(|&i| split_of(&all.entries[i]));
    for i in order {
        let e = &all.entries[i];
        match seen.get(e.sha256.as_str()) {
            Some(&first) if first != e.sample.split => exact += 1,
            Some(_) => {}
            None => {
                seen.insert(&e.sha256, e.sample.split);
            }
        }
    }
    let (unit, _) = normalise_rows(all.x.view());
    let rows_of = |split: Split| -> Vec<usize> {
        (0..all.entries.len())
            .filter(|&i| all.entries[i].sample.split == split)
            .collect()
    };
    let mut near = 0;
    let mut earlier: Vec<usize> = Vec::new();
    for split in Split::ALL {
        let rows = rows_of(split);
        if !earlier.is_empty() && !rows.is_empty() {
            let reference = unit.select(Axis(0), &earlier);
            let queries = unit.select(Axis(0), &rows);
            let found = nearest(reference.view(), queries.view(), NEIGHBOURS.min(earlier.len()));
            near += rows
                .par_iter()
                .zip(found)
                .filter(|(&row, list)| {
                    list.iter()
                        .take_while(|(cos, _)| *cos >= CANDIDATE_COSINE)
                        .any(|&(_, j)| {
                            let other = earlier[j];
                            all.entries[other].sha256 != all.entries[row].sha256
                                && match (&prints[row], &prints[other]) {
                                    (Some(a), Some(b)) => similarity(a, b, NEAR_THRESHOLD) >= NEAR_THRESHOLD,
                                    _ => false,
                                }
                        })
                })
                .count();
        }
        earlier.extend(rows);
    }
    Ok(Leaks {
        manifest: manifest.checksum.clone(),
        threshold: NEAR_THRESHOLD,
        exact,
        near,
    })
}
