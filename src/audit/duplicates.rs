//! Exact duplicates (the same bytes, known from the content hash) and near-duplicates (resized,
//! re-encoded, slightly cropped or colour-shifted copies: embeddings close enough to be looked
//! at, and pixels that match once aligned), within and across splits.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::aligned::{self, Prepared};
use super::{ExactDuplicate, ImageRef, NearDuplicate, CANDIDATE_COSINE};
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

/// Pairs of distinct files that are copies of one picture: among each image's nearest
/// neighbours with at least [`CANDIDATE_COSINE`] cosine similarity, those whose fingerprints'
/// aligned similarity is at least `threshold`. Leaks (pairs across splits) first, then the most
/// alike. Files with the same bytes are left to [`exact`], and images without a fingerprint are
/// not paired.
pub(crate) fn near(
    entries: &[Entry],
    neighbours: &[Vec<(f32, usize)>],
    fingerprints: &[Option<Prepared>],
    threshold: f32,
    image: &(impl Fn(usize) -> ImageRef + Sync),
) -> Vec<NearDuplicate> {
    let candidates: BTreeMap<(usize, usize), f32> = neighbours
        .iter()
        .enumerate()
        .flat_map(|(i, list)| {
            list.iter()
                .take_while(|(cos, _)| *cos >= CANDIDATE_COSINE)
                .map(move |&(cos, j)| ((i.min(j), i.max(j)), cos))
        })
        .filter(|&((i, j), _)| entries[i].sha256 != entries[j].sha256)
        .collect();
    let candidates: Vec<((usize, usize), f32)> = candidates.into_iter().collect();
    let mut pairs: Vec<NearDuplicate> = candidates
        .par_iter()
        .filter_map(|&((i, j), cosine)| {
            let (Some(a), Some(b)) = (&fingerprints[i], &fingerprints[j]) else {
                return None;
            };
            let pixels = aligned::similarity(a, b, threshold);
            (pixels >= threshold).then(|| {
                let (a, b) = (image(i), image(j));
                NearDuplicate {
                    crosses_splits: a.split != b.split,
                    a,
                    b,
                    similarity: cosine.min(1.0),
                    pixels: pixels.min(1.0),
                }
            })
        })
        .collect();
    pairs.sort_by(|x, y| {
        y.crosses_splits
            .cmp(&x.crosses_splits)
            .then_with(|| y.pixels.total_cmp(&x.pixels))
            .then_with(|| x.a.path.cmp(&y.a.path))
            .then_with(|| x.b.path.cmp(&y.b.path))
    });
    pairs
}
