//! Each image's pixel fingerprint: a 32 x 32 grey thumbnail of the whole picture, lightly
//! blurred, which the audit compares to tell copies from look-alikes
//! ([`crate::audit::aligned`]).
//!
//! ```text
//! embeddings/fingerprints/maps-<crc32>-….safetensors   "maps" f16 [N, 1, 32, 32], "sha256" u8 [N, 32]
//! ```
//!
//! Fingerprints depend on the bytes alone, not on the backbone, so every backbone's cache in a
//! workspace shares them. `extract` makes them from the pixels it decodes anyway (a shard's too,
//! and `merge` gathers them); images cached
//! before fingerprints existed get theirs the first time a command needs them (`audit`, and the
//! leak check after `extract` and `train-head`), by decoding the image small (a big JPEG is
//! reduced in the DCT domain), so old caches need no re-extraction. They are kept in the store of
//! the cut maps ([`MapStore`]): files written atomically, so an interrupted run keeps what it
//! saved; grey levels are whole numbers, which f16 holds exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fast_image_resize::{FilterType, Resizer};
use rayon::prelude::*;

use super::maps::{Geometry, MapStore};
use super::{parse_key, CacheError, ContentKey, Entry, WorkspaceLock};
use crate::preprocess::{decode_at_least, resize_crop_with, Crop, Decoded, PreprocessError};

/// Side of a fingerprint, in pixels.
pub const SIDE: usize = 32;

/// The blur's standard deviation, in fingerprint pixels: it evens out JPEG noise and the
/// resampling of a resized copy.
const BLUR: f32 = 0.5;

/// Images fingerprinted between two saves when filling in missing ones.
const CHUNK: usize = 1024;

const GEOMETRY: Geometry = Geometry {
    channels: 1,
    height: SIDE,
    width: SIDE,
};

/// The folder of the fingerprints.
pub fn dir(workspace: &Path) -> PathBuf {
    workspace.join("embeddings").join("fingerprints")
}

/// The fingerprint of a decoded image, `SIDE * SIDE` grey levels row by row: the whole picture
/// box-filtered to `SIDE` x `SIDE`, turned upright, grey, blurred.
pub fn of_decoded(decoded: &Decoded, resizer: &mut Resizer) -> Result<Vec<u8>, PreprocessError> {
    let (w, h) = decoded.stored.dimensions();
    let whole = Crop {
        left: 0.0,
        top: 0.0,
        width: f64::from(w),
        height: f64::from(h),
    };
    let small = resize_crop_with(&decoded.stored, whole, SIDE as u32, FilterType::Box, resizer)?;
    let small = image::RgbImage::from_raw(SIDE as u32, SIDE as u32, small)
        .ok_or_else(|| PreprocessError::Resize("the resizer returned a wrong number of pixels".into()))?;
    let upright = Decoded {
        stored: small,
        orientation: decoded.orientation,
    }
    .upright();
    let grey = image::DynamicImage::ImageRgb8(upright).to_luma8();
    Ok(image::imageops::blur(&grey, BLUR).into_raw())
}

/// The fingerprint of an image file's bytes.
pub fn of_file(bytes: &[u8], max_pixels: u64, resizer: &mut Resizer) -> Result<Vec<u8>, PreprocessError> {
    // Decoded at twice the fingerprint's side at least, so that the box filter still averages.
    of_decoded(&decode_at_least(bytes, max_pixels, 2 * SIDE as u32)?, resizer)
}

/// Saves fingerprints (`SIDE * SIDE` grey levels each, one per key) as one file.
pub fn save(store: &mut MapStore, keys: &[ContentKey], grey: &[u8]) -> Result<(), CacheError> {
    let values: Vec<f32> = grey.iter().map(|&g| f32::from(g)).collect();
    store.append(keys, GEOMETRY, &values)
}

/// Copies the fingerprints `from` holds and `to` lacks (`merge`, from each shard); returns how
/// many.
pub fn copy_missing(from: &MapStore, to: &mut MapStore) -> Result<usize, CacheError> {
    let missing: Vec<ContentKey> = from.keys().into_iter().filter(|k| !to.contains(k)).collect();
    let mut values = vec![0f32; SIDE * SIDE];
    for chunk in missing.chunks(CHUNK) {
        let mut grey = Vec::with_capacity(chunk.len() * SIDE * SIDE);
        for key in chunk {
            from.read_f32(key, &mut values);
            grey.extend(values.iter().map(|&v| v as u8));
        }
        save(to, chunk, &grey)?;
    }
    Ok(missing.len())
}

/// Fingerprints of a list of images.
pub struct Fingerprints {
    /// Each image's grey levels, in the list's order; `None` for one that could not be read.
    pub grey: Vec<Option<Vec<u8>>>,
    /// The images that could not be read, by path, with the reason.
    pub unread: Vec<(String, String)>,
}

/// The entries' fingerprints. Missing ones are made from the files under `data_root` and kept,
/// under the workspace lock.
pub fn fingerprints(
    workspace: &Path,
    data_root: &Path,
    entries: &[Entry],
    max_pixels: u64,
) -> Result<Fingerprints, CacheError> {
    let dir = dir(workspace);
    let complete = |store: &MapStore| {
        entries
            .iter()
            .all(|e| parse_key(&e.sha256).is_some_and(|k| store.contains(&k)))
    };
    let mut unread = Vec::new();
    // A damaged file fails the plain read; opening under the lock sets it aside, and its
    // fingerprints are made again like missing ones.
    let store = match MapStore::read(&dir) {
        Ok(store) if complete(&store) => store,
        _ => {
            let _lock = WorkspaceLock::acquire(workspace, |_| {})?;
            let mut store = MapStore::open(&dir)?.0;
            let images = entries
                .iter()
                .filter_map(|e| Some((parse_key(&e.sha256)?, e.sample.path.as_str())));
            unread = fill(&mut store, data_root, images, max_pixels)?;
            store
        }
    };
    let mut values = vec![0f32; SIDE * SIDE];
    let grey = entries
        .iter()
        .map(|e| {
            let key = parse_key(&e.sha256)?;
            store
                .read_f32(&key, &mut values)
                .then(|| values.iter().map(|&v| v as u8).collect())
        })
        .collect();
    Ok(Fingerprints { grey, unread })
}

/// Fingerprints the images, given by content key and path under `data_root`, that the store
/// lacks, saving them every [`CHUNK`] images; returns the files that could not be read or
/// decoded.
pub fn fill<'a>(
    store: &mut MapStore,
    data_root: &Path,
    images: impl Iterator<Item = (ContentKey, &'a str)>,
    max_pixels: u64,
) -> Result<Vec<(String, String)>, CacheError> {
    let mut todo: HashMap<ContentKey, &str> = HashMap::new();
    for (key, path) in images {
        if !store.contains(&key) {
            todo.entry(key).or_insert(path);
        }
    }
    let mut todo: Vec<(ContentKey, &str)> = todo.into_iter().collect();
    todo.sort_by_key(|&(_, path)| path);
    let mut unread = Vec::new();
    for chunk in todo.chunks(CHUNK) {
        let made: Vec<Result<Vec<u8>, String>> = chunk
            .par_iter()
            .map_init(Resizer::new, |resizer, &(_, path)| {
                let bytes = std::fs::read(data_root.join(path)).map_err(|e| format!("cannot read: {e}"))?;
                of_file(&bytes, max_pixels, resizer).map_err(|e| e.to_string())
            })
            .collect();
        let mut keys = Vec::new();
        let mut grey = Vec::new();
        for (&(key, path), result) in chunk.iter().zip(made) {
            match result {
                Ok(levels) => {
                    keys.push(key);
                    grey.extend_from_slice(&levels);
                }
                Err(reason) => unread.push((path.to_owned(), reason)),
            }
        }
        save(store, &keys, &grey)?;
    }
    Ok(unread)
}
