//! Exact duplicates (the same bytes, known from the content hash) and near-duplicates (resized,
//! re-encoded, slightly cropped or colour-shifted copies, whose embeddings point almost the same
//! way), within and across splits.

use std::collections::{BTreeMap, BTreeSet};

use super::{ExactDuplicate, ImageRef, NearDuplicate};
use crate::cache::Entry;

/// Groups of two or more images with the same bytes, those that cross splits first, then by
/// their first path.
pub(crate) fn exact(entries: &[Entry], image: &impl Fn(usize) -> ImageRef) -> Vec<ExactDuplicate> {
    let mut by_hash: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_hash.entry(&e.sha256).or_default().push(i);
    }
    let mut groups: Vec<ExactDuplicate> = by_hash
        .into_iter()
        .filter(|(_, rows)| rows.len() > 1)
        .map(|(sha256, rows)| {
            let images: Vec<ImageRef> = rows.iter().map(|&i| image(i)).collect();
            ExactDuplicate {
                sha256: sha256.to_owned(),
                crosses_splits: images.iter().any(|r| r.split != images[0].split),
                images,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.crosses_splits
            .cmp(&a.crosses_splits)
            .then_with(|| a.images[0].path.cmp(&b.images[0].path))
    });
    groups
}

/// Pairs of distinct files whose cosine similarity is at least `threshold`, among each image's
/// nearest neighbours: those that cross splits (leaks) first, then the most similar first.
/// Files with the same bytes are left to [`exact`].
pub(crate) fn near(
    entries: &[Entry],
    neighbours: &[Vec<(f32, usize)>],
    threshold: f32,
    image: &impl Fn(usize) -> ImageRef,
) -> Vec<NearDuplicate> {
    let mut seen = BTreeSet::new();
    let mut pairs = Vec::new();
    for (i, list) in neighbours.iter().enumerate() {
        for &(similarity, j) in list.iter().take_while(|(cos, _)| *cos >= threshold) {
            let key = (i.min(j), i.max(j));
            if entries[i].sha256 == entries[j].sha256 || !seen.insert(key) {
                continue;
            }
            let (a, b) = (image(key.0), image(key.1));
            pairs.push(NearDuplicate {
                crosses_splits: a.split != b.split,
                a,
                b,
                similarity: similarity.min(1.0),
            });
        }
    }
    pairs.sort_by(|x, y| {
        y.crosses_splits
            .cmp(&x.crosses_splits)
            .then_with(|| y.similarity.total_cmp(&x.similarity))
            .then_with(|| x.a.path.cmp(&y.a.path))
    });
    pairs
}
