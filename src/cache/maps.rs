//! Feature maps at a cut inside the backbone (`extract --cut`), for fine-tuning the layers after
//! it ([`crate::finetune`]): one f16 map per image content, beside the backbone's vectors.
//!
//! ```text
//! embeddings/<key>/cut-<hash>/maps-<crc32>.safetensors   "maps" f16 [N, C, H, W], "sha256" u8 [N, 32]
//! ```
//!
//! `<hash>` is the first 8 bytes of the SHA-256 of the cut's tensor name, so the backbone key
//! and the cut together say which maps a folder holds. Each file is one batch as the network
//! made it, written atomically and never changed: a killed extract loses at most the batch in
//! flight, and the next run computes only the maps that are missing. Maps are NCHW as ONNX
//! Runtime gives them (Python reads them with `safetensors` as they are) and f16, half the bytes
//! of f32 for a loss far below what training notices (a relative error of at most 2⁻¹¹).
//!
//! Files are read memory-mapped: training touches each image's map once per epoch, and the
//! operating system keeps as much of the cache in memory as there is room for, so a fine-tune
//! on 60,000 images (1.1 GB of Lite0 last-block maps) runs in a fixed amount of process memory.
//! Each file's CRC-32 is checked when it is opened; a damaged file is set aside by `extract` and
//! its maps computed again, and is an error for readers.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use half::slice::HalfFloatSliceExt;
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{list_dir, set_aside, tensors_crc, CacheError, ContentKey, Damaged};
use crate::atomic::write_file;

/// Written into every map file's seal.
pub const MAPS_FORMAT: &str = "headstart-maps-1";

/// The size of one map: channels, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Channels.
    pub channels: usize,
    /// Rows of pixels.
    pub height: usize,
    /// Pixels per row.
    pub width: usize,
}

impl Geometry {
    /// Pixels per map.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// Values per map.
    pub fn len(&self) -> usize {
        self.pixels() * self.channels
    }

    /// Whether the map holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The maps the last `extract` cached, as its manifest records them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutRecord {
    /// The cut as the user named it: a named cut such as `last-block`, or a tensor name.
    pub name: String,
    /// The tensor's name in the backbone.
    pub tensor: String,
    /// The size of each map.
    pub shape: Geometry,
    /// The map folder inside the backbone's store folder.
    pub dir: String,
}

impl CutRecord {
    /// The folder name of a cut's maps.
    pub fn dir_name(tensor: &str) -> String {
        format!("cut-{}", crate::fetch::hex(&Sha256::digest(tensor.as_bytes())[..8]))
    }

    /// Bytes of one cached map.
    pub fn bytes_per_image(&self) -> usize {
        self.shape.len() * 2
    }
}

/// Every map of one cut, memory-mapped, indexed by content key.
pub struct MapStore {
    /// The folder, `embeddings/<key>/cut-<hash>/`.
    pub dir: PathBuf,
    /// The size of each map; `None` while the store is empty.
    pub shape: Option<Geometry>,
    /// Each file with where its maps lie in it (offset and length in bytes), and its path.
    files: Vec<(Mmap, usize, usize, PathBuf)>,
    index: HashMap<ContentKey, (usize, usize)>,
    seq: usize,
}

impl MapStore {
    /// For `extract`, holding the workspace lock: opens every map file, setting aside those
    /// that fail their checks (their maps are then computed again) and removing the temporary
    /// files of killed runs.
    pub fn open(dir: &Path) -> Result<(MapStore, Vec<Damaged>), CacheError> {
        let mut store = MapStore::empty(dir);
        let mut damaged = Vec::new();
        for path in list_dir(dir)? {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
            } else if is_map_file(&name) {
                match store.add_file(&path) {
                    Ok(()) => {}
                    Err(CacheError::Corrupt { message, .. }) => damaged.push(set_aside(dir, &path, message)?),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((store, damaged))
    }

    /// For readers: opens every map file; a damaged one is an error.
    pub fn read(dir: &Path) -> Result<MapStore, CacheError> {
        let mut store = MapStore::empty(dir);
        for path in list_dir(dir)? {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if is_map_file(&name) {
                store.add_file(&path)?;
            }
        }
        Ok(store)
    }

    fn empty(dir: &Path) -> MapStore {
        MapStore {
            dir: dir.to_path_buf(),
            shape: None,
            files: Vec::new(),
            index: HashMap::new(),
            seq: 0,
        }
    }

    /// Number of maps held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether it holds no maps.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether it holds the map of an image with this content.
    pub fn contains(&self, key: &ContentKey) -> bool {
        self.index.contains_key(key)
    }

    /// The contents whose maps it holds, in key order.
    pub fn keys(&self) -> Vec<ContentKey> {
        let mut keys: Vec<ContentKey> = self.index.keys().copied().collect();
        keys.sort_unstable();
        keys
    }

    /// The map of an image with this content, as stored.
    pub fn get(&self, key: &ContentKey) -> Option<&[f16]> {
        let &(file, row) = self.index.get(key)?;
        let len = self.shape?.len();
        let (bytes, offset, size, _) = &self.files[file];
        let maps: &[f16] = bytemuck::cast_slice(&bytes[*offset..offset + size]);
        Some(&maps[row * len..(row + 1) * len])
    }

    /// Writes the map of `key` as f32 into `out`; false when it is not held.
    pub fn read_f32(&self, key: &ContentKey, out: &mut [f32]) -> bool {
        match self.get(key) {
            Some(map) => {
                map.convert_to_f32_slice(out);
                true
            }
            None => false,
        }
    }

    /// Saves one batch of maps (NCHW f32, converted to f16) at once.
    pub fn append(&mut self, keys: &[ContentKey], shape: Geometry, maps: &[f32]) -> Result<(), CacheError> {
        assert_eq!(maps.len(), keys.len() * shape.len(), "one map per key");
        if keys.is_empty() {
            return Ok(());
        }
        if self.shape.is_some_and(|s| s != shape) {
            return Err(CacheError::Corrupt {
                path: self.dir.clone(),
                message: format!("the backbone gave {shape:?} maps, the cache holds {:?}", self.shape),
            });
        }
        let mut half = vec![f16::ZERO; maps.len()];
        half.convert_from_f32_slice(maps);
        let map_bytes: &[u8] = bytemuck::cast_slice(&half);
        let key_bytes: Vec<u8> = keys.iter().flatten().copied().collect();
        let crc = tensors_crc([("maps", map_bytes), ("sha256", key_bytes.as_slice())]);
        let n = keys.len();
        let dims = vec![n, shape.channels, shape.height, shape.width];
        let tensors = [
            (
                "maps",
                TensorView::new(Dtype::F16, dims, map_bytes).expect("sizes match"),
            ),
            (
                "sha256",
                TensorView::new(Dtype::U8, vec![n, 32], &key_bytes).expect("sizes match"),
            ),
        ];
        let seal = serde_json::json!({ "format": MAPS_FORMAT, "crc32": crc }).to_string();
        let metadata = HashMap::from([(super::SEAL_KEY.to_string(), seal)]);
        let bytes = safetensors::serialize(tensors, &Some(metadata)).expect("in-memory serialisation");
        let path = self
            .dir
            .join(format!("maps-{crc}-{}-{:06}.safetensors", std::process::id(), self.seq));
        self.seq += 1;
        write_file(&path, |tmp| std::fs::write(tmp, &bytes))?;
        self.add_file(&path)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), CacheError> {
        let corrupt = |message: String| CacheError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let read_error = |source| CacheError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        // SAFETY: map files are written to a temporary name and renamed into place, never
        // changed afterwards, and only removed by a later extract under the workspace lock.
        let mmap = unsafe { Mmap::map(&file) }.map_err(read_error)?;
        let (shape, keys, (offset, size)) = check(&mmap).map_err(corrupt)?;
        if self.shape.is_some_and(|s| s != shape) {
            return Err(corrupt(format!(
                "its maps are {shape:?}, other files of this cut hold {:?}",
                self.shape
            )));
        }
        self.shape = Some(shape);
        let file = self.files.len();
        for (row, key) in keys.into_iter().enumerate() {
            self.index.entry(key).or_insert((file, row));
        }
        self.files.push((mmap, offset, size, path.to_path_buf()));
        Ok(())
    }

    /// Keeps the maps of `keep` only, each once, and returns how many maps it dropped: those of
    /// images that left the data set, and copies a killed run left. A file that holds any such
    /// map is written again with the maps it alone holds, the new file first and then the old
    /// one removed, so that a kill between the two leaves a copy the next run drops.
    pub fn compact(&mut self, keep: &[ContentKey]) -> Result<usize, CacheError> {
        let Some(shape) = self.shape else {
            return Ok(0);
        };
        let keep: std::collections::HashSet<&ContentKey> = keep.iter().collect();
        let mut owned: Vec<Vec<(usize, ContentKey)>> = vec![Vec::new(); self.files.len()];
        for (key, &(file, row)) in &self.index {
            if keep.contains(key) {
                owned[file].push((row, *key));
            }
        }
        let per_map = shape.len() * 2;
        let mut dropped = 0;
        let mut rewritten = Vec::new();
        for (file, rows) in owned.iter_mut().enumerate() {
            let held = self.files[file].2 / per_map;
            if rows.len() == held {
                continue;
            }
            dropped += held - rows.len();
            rows.sort_unstable();
            let keys: Vec<ContentKey> = rows.iter().map(|(_, k)| *k).collect();
            let mut maps = vec![0f32; keys.len() * shape.len()];
            for (key, out) in keys.iter().zip(maps.chunks_exact_mut(shape.len())) {
                self.read_f32(key, out);
            }
            rewritten.push((self.files[file].3.clone(), keys, maps));
        }
        if rewritten.is_empty() {
            return Ok(0);
        }
        for (old, keys, maps) in rewritten {
            // f16 -> f32 -> f16 gives back the same bits.
            self.append(&keys, shape, &maps)?;
            std::fs::remove_file(&old).map_err(|source| CacheError::Read { path: old, source })?;
        }
        let seq = self.seq;
        *self = MapStore::read(&self.dir)?;
        self.seq = seq;
        Ok(dropped)
    }
}

/// The maps of a list of images, in that order, for training and evaluation.
pub struct CachedMaps<'a> {
    store: &'a MapStore,
    keys: Vec<ContentKey>,
}

impl<'a> CachedMaps<'a> {
    /// The maps of `entries`' images; an image without a map is an error naming the extract
    /// that makes it.
    pub fn new(store: &'a MapStore, entries: &[super::Entry]) -> Result<CachedMaps<'a>, CacheError> {
        let mut keys = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = super::parse_key(&entry.sha256).filter(|k| store.contains(k));
            let Some(key) = key else {
                return Err(CacheError::Missing {
                    dir: store.dir.clone(),
                    path: format!(
                        "{} (its map at the cut; run `headstart extract --cut` again)",
                        entry.sample.path
                    ),
                });
            };
            keys.push(key);
        }
        Ok(CachedMaps { store, keys })
    }

    /// Images in the list.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Values per map.
    pub fn map_len(&self) -> usize {
        self.store.shape.map_or(0, |s| s.len())
    }

    /// Writes the maps of images `rows` (positions in the list), f32, one after another.
    pub fn read_rows(&self, rows: &[usize], out: &mut [f32]) {
        let len = self.map_len();
        for (&r, out) in rows.iter().zip(out.chunks_exact_mut(len)) {
            self.store.read_f32(&self.keys[r], out);
        }
    }
}

impl super::Manifest {
    /// The cached maps at the cut `tensor` of `entries`' images, one row each (NCHW), as
    /// a fine-tuned classifier takes them.
    pub fn maps(
        &self,
        workspace: &Path,
        tensor: &str,
        entries: &[super::Entry],
    ) -> Result<ndarray::Array2<f32>, CacheError> {
        let record = self.cut.as_ref().filter(|c| c.tensor == tensor);
        let record = record.ok_or_else(|| CacheError::NoMaps {
            tensor: tensor.to_string(),
        })?;
        let store = MapStore::read(&super::Store::dir_for(workspace, &self.backbone.key).join(&record.dir))?;
        let maps = CachedMaps::new(&store, entries)?;
        let all: Vec<usize> = (0..maps.len()).collect();
        let mut x = ndarray::Array2::zeros((maps.len(), record.shape.len()));
        maps.read_rows(&all, x.as_slice_mut().expect("a new array is contiguous"));
        Ok(x)
    }
}

fn is_map_file(name: &str) -> bool {
    name.starts_with("maps-") && name.ends_with(".safetensors")
}

/// A checked map file: the map size, the keys, and where the maps lie (offset, length).
type Checked = (Geometry, Vec<ContentKey>, (usize, usize));

/// Checks a map file's format, tensors and checksum; returns the map size, the keys, and the
/// offset and length in bytes of the maps, which are checked to be readable as f16 in place.
fn check(bytes: &[u8]) -> Result<Checked, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let seal = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(super::SEAL_KEY))
        .ok_or("no seal")?;
    let seal: serde_json::Value = serde_json::from_str(seal).map_err(|e| e.to_string())?;
    if seal["format"] != MAPS_FORMAT {
        return Err(format!("format {} is not {MAPS_FORMAT}", seal["format"]));
    }
    let file = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let maps = file.tensor("maps").map_err(|e| e.to_string())?;
    let keys = file.tensor("sha256").map_err(|e| e.to_string())?;
    let crc = tensors_crc([("maps", maps.data()), ("sha256", keys.data())]);
    if seal["crc32"] != crc.as_str() {
        return Err(format!("checksum {} in the file, {crc} of its tensors", seal["crc32"]));
    }
    let (&[n, channels, height, width], Dtype::F16) = (maps.shape(), maps.dtype()) else {
        return Err(format!(
            "maps are {:?} {:?}, not f16 [N, C, H, W]",
            maps.dtype(),
            maps.shape()
        ));
    };
    if keys.shape() != [n, 32] || keys.dtype() != Dtype::U8 {
        return Err(format!(
            "keys are {:?} {:?}, not u8 [{n}, 32]",
            keys.dtype(),
            keys.shape()
        ));
    }
    let offset = maps.data().as_ptr() as usize - bytes.as_ptr() as usize;
    let size = maps.data().len();
    bytemuck::try_cast_slice::<u8, f16>(&bytes[offset..offset + size])
        .map_err(|e| format!("maps are not aligned: {e}"))?;
    let keys = keys
        .data()
        .chunks_exact(32)
        .map(|k| k.try_into().expect("32 bytes"))
        .collect();
    let shape = Geometry {
        channels,
        height,
        width,
    };
    Ok((shape, keys, (offset, size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> ContentKey {
        [i; 32]
    }

    #[test]
    fn compaction_keeps_each_wanted_map_once_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let shape = Geometry {
            channels: 1,
            height: 2,
            width: 2,
        };
        let map = |i: u8| -> Vec<f32> { (0..4).map(|j| f32::from(i) + 0.25 * j as f32).collect() };
        let maps = |keys: &[u8]| -> Vec<f32> { keys.iter().flat_map(|&i| map(i)).collect() };
        let (mut store, _) = MapStore::open(dir.path()).unwrap();
        store
            .append(&[key(1), key(2), key(3)], shape, &maps(&[1, 2, 3]))
            .unwrap();
        store.append(&[key(4), key(5)], shape, &maps(&[4, 5])).unwrap();
        store.append(&[key(6)], shape, &maps(&[6])).unwrap();
        // A copy of 1, as a run killed after saving its batch again would leave.
        store.append(&[key(1)], shape, &maps(&[1])).unwrap();
        let files = || std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files(), 4);

        // 3 and 4 left the data; 6's file is whole and stays as it is.
        let keep = [key(1), key(2), key(5), key(6)];
        assert_eq!(store.compact(&keep).unwrap(), 3, "3, 4 and the copy of 1");
        assert_eq!(store.keys(), keep);
        assert_eq!(store.compact(&keep).unwrap(), 0);
        let reopened = MapStore::read(dir.path()).unwrap();
        assert_eq!(reopened.keys(), keep);
        for i in [1, 2, 5, 6] {
            let mut out = vec![0.0; 4];
            assert!(reopened.read_f32(&key(i), &mut out));
            assert_eq!(out, map(i));
        }
        // The first file rewritten (1, 2), the second (5), the third kept, the copy gone.
        assert_eq!(files(), 3);
        assert_eq!(store.compact(&[]).unwrap(), 4);
        assert_eq!(files(), 0);
    }

    #[test]
    fn maps_survive_a_reopen_and_damage_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let shape = Geometry {
            channels: 2,
            height: 2,
            width: 3,
        };
        let (mut store, damaged) = MapStore::open(dir.path()).unwrap();
        assert!(damaged.is_empty() && store.is_empty());
        let maps: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 2.0).collect();
        store.append(&[key(1), key(2)], shape, &maps).unwrap();
        store.append(&[key(3)], shape, &maps[..12]).unwrap();
        let wrong = Geometry { channels: 3, ..shape };
        assert!(store.append(&[key(4)], wrong, &[0.0; 18]).is_err());

        let store = MapStore::read(dir.path()).unwrap();
        assert_eq!(store.len(), 3);
        let mut out = vec![0.0; 12];
        assert!(store.read_f32(&key(2), &mut out));
        assert_eq!(out, maps[12..], "these values are exact in f16");
        assert!(!store.read_f32(&key(9), &mut out));

        // A flipped byte in the maps of one file.
        let files: Vec<PathBuf> = list_dir(dir.path()).unwrap();
        let victim = files.iter().find(|p| p.to_string_lossy().contains("maps-")).unwrap();
        let mut bytes = std::fs::read(victim).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 0x55;
        std::fs::write(victim, bytes).unwrap();
        assert!(matches!(MapStore::read(dir.path()), Err(CacheError::Corrupt { .. })));
        let (store, damaged) = MapStore::open(dir.path()).unwrap();
        assert_eq!(damaged.len(), 1);
        assert!(store.len() < 3, "the damaged file's maps are gone");
        assert!(dir.path().join("damaged").is_dir());
    }
}
