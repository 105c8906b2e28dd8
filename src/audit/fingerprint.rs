//! Each image's pixel fingerprint: a 32 x 32 grey thumbnail of the whole picture, lightly
//! blurred, that [`super::aligned`] compares to tell copies from look-alikes.
//!
//! ```text
//! embeddings/fingerprints/maps-<crc32>-….safetensors   "maps" f16 [N, 1, 32, 32], "sha256" u8 [N, 32]
//! ```
//!
//! Fingerprints depend on the bytes alone, not on the backbone, so every backbone's cache in a
//! workspace shares them. They are made the first time a command needs them (`audit`, and the
//! leak check after `extract` and `train-head`) by decoding the image small (a big JPEG is
//! reduced in the DCT domain), so caches made before them need no re-extraction: about 1 ms an
//! image, once. They are kept in the store of the cut maps ([`MapStore`]): one file per 1,024
//! images, written atomically, so an interrupted run keeps what it made; grey levels are whole
//! numbers, which f16 holds exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fast_image_resize::{FilterType, Resizer};
use rayon::prelude::*;

use super::aligned::{Prepared, SIDE};
use super::AuditError;
use crate::cache::maps::{Geometry, MapStore};
use crate::cache::{parse_key, ContentKey, Entry, WorkspaceLock};
use crate::preprocess::{decode_at_least, resize_crop_with, Crop, Decoded, PreprocessError};

/// The folder of the fingerprints inside the workspace's `embeddings` folder.
pub const FINGERPRINT_DIR: &str = "fingerprints";

/// The blur's standard deviation, in thumbnail pixels: it evens out JPEG noise and the
/// resampling of a resized copy.
const BLUR: f32 = 0.5;

/// Images fingerprinted between two saves.
const CHUNK: usize = 1024;

const GEOMETRY: Geometry = Geometry {
    channels: 1,
    height: SIDE,
    width: SIDE,
};

/// The fingerprint of an image file's bytes, `SIDE * SIDE` grey levels row by row.
pub fn fingerprint(bytes: &[u8], max_pixels: u64, resizer: &mut Resizer) -> Result<Vec<u8>, PreprocessError> {
    // Decoded at twice the thumbnail's side at least, so the box filter below still averages.
    let decoded = decode_at_least(bytes, max_pixels, 2 * SIDE as u32)?;
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

/// Fingerprints of a list of images.
pub struct Fingerprints {
    /// Each image's, ready to compare, in the list's order; `None` for one that could not be read.
    pub prepared: Vec<Option<Prepared>>,
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
) -> Result<Fingerprints, AuditError> {
    let dir = workspace.join("embeddings").join(FINGERPRINT_DIR);
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
            unread = make_missing(&mut store, data_root, entries, max_pixels)?;
            store
        }
    };
    let mut grey = vec![0f32; SIDE * SIDE];
    let prepared = entries
        .iter()
        .map(|e| {
            let key = parse_key(&e.sha256)?;
            store.read_f32(&key, &mut grey).then(|| {
                let levels: Vec<u8> = grey.iter().map(|&v| v as u8).collect();
                Prepared::new(&levels)
            })
        })
        .collect();
    Ok(Fingerprints { prepared, unread })
}

/// Fingerprints the entries the store lacks, saving them every [`CHUNK`] images; returns the
/// files that could not be read or decoded.
fn make_missing(
    store: &mut MapStore,
    data_root: &Path,
    entries: &[Entry],
    max_pixels: u64,
) -> Result<Vec<(String, String)>, AuditError> {
    let mut todo: HashMap<ContentKey, &str> = HashMap::new();
    for e in entries {
        if let Some(key) = parse_key(&e.sha256).filter(|k| !store.contains(k)) {
            todo.entry(key).or_insert(&e.sample.path);
        }
    }
    let mut todo: Vec<(ContentKey, &str)> = todo.into_iter().collect();
    todo.sort_by_key(|&(_, path)| path);
    let mut failed = Vec::new();
    for chunk in todo.chunks(CHUNK) {
        let made: Vec<Result<Vec<u8>, String>> = chunk
            .par_iter()
            .map_init(Resizer::new, |resizer, &(_, path)| {
                let file: PathBuf = data_root.join(path);
                let bytes = std::fs::read(&file).map_err(|e| format!("cannot read: {e}"))?;
                fingerprint(&bytes, max_pixels, resizer).map_err(|e| e.to_string())
            })
            .collect();
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for (&(key, path), result) in chunk.iter().zip(made) {
            match result {
                Ok(grey) => {
                    keys.push(key);
                    values.extend(grey.iter().map(|&g| f32::from(g)));
                }
                Err(reason) => failed.push((path.to_owned(), reason)),
            }
        }
        store.append(&keys, GEOMETRY, &values)?;
    }
    Ok(failed)
}
