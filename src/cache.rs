//! The embeddings cache: one vector per image content, per backbone key.
//!
//! Layout inside the workspace (all files readable with Python's `safetensors` and `json`):
//!
//! ```text
//! dataset.json                          the last extract: data folder, classes, samples, backbone
//! embeddings/<key>/store.safetensors    "embeddings" f32 [N, D], "sha256" u8 [N, 32]
//! embeddings/<key>/pending/*.safetensors  the same, one file per batch not yet merged
//! ```
//!
//! Each batch is written to `pending/` as soon as the network has produced it, with a temporary
//! file and a rename, so a run killed at any moment loses at most the batch in flight and never
//! leaves a half-written file under a real name. At the end of a run the store is rewritten in
//! the data set's order, without vectors of images that are gone, and the pending files are
//! removed; if that is interrupted, the next run reads both and nothing is lost.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::dataset::{Sample, Split};
use crate::preprocess::Preprocessing;

/// A sha256 of an image file's bytes.
pub type ContentKey = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid cache file ({message}); delete it and re-run `headstart extract`")]
    Corrupt { path: PathBuf, message: String },
    #[error("no extracted data set in {0}: run `headstart extract --data DIR` first (or pass --workspace)")]
    NoManifest(PathBuf),
    #[error("the cache in {dir} lacks the vector of {path}: re-run `headstart extract`")]
    Missing { dir: PathBuf, path: String },
}

/// Writes `bytes` so that `path` holds either its old content or all of the new: a temporary
/// file in the same folder, flushed to disk, then renamed over the target (removed on failure).
/// Every file headstart writes goes through here.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut file| file.write_all(bytes).and_then(|_| file.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`write_file_atomically`] with the path in the error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write_file_atomically(path, bytes).map_err(|source| CacheError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The backbone that produced a set of vectors, as recorded in the manifest and cache files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneRecord {
    pub name: String,
    /// The ONNX file, so that `predict` and `export` can run the same network later.
    pub model_path: PathBuf,
    pub key: String,
    pub model_sha256: String,
    pub output: String,
    pub preprocessing: Preprocessing,
    pub dim: usize,
}

/// An image of the data set with the hash of its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub sample: Sample,
    pub sha256: String,
}

/// A file that was not embedded, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// `dataset.json`: what the last `extract` produced, so later commands need no `--data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub data_root: PathBuf,
    pub classes: Vec<String>,
    pub backbone: BackboneRecord,
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
}

impl Manifest {
    pub const FILE: &'static str = "dataset.json";

    pub fn save(&self, workspace: &Path) -> Result<(), CacheError> {
        let json = serde_json::to_vec_pretty(self).expect("plain data");
        write_atomic(&workspace.join(Self::FILE), &json)
    }

    pub fn load(workspace: &Path) -> Result<Manifest, CacheError> {
        let path = workspace.join(Self::FILE);
        if !path.is_file() {
            return Err(CacheError::NoManifest(workspace.to_path_buf()));
        }
        let bytes = std::fs::read(&path).map_err(|source| CacheError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| CacheError::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// The embeddings and labels of one split, rows in manifest order, with the entries used.
    pub fn split(&self, store: &Store, split: Split) -> Result<SplitData, CacheError> {
        let entries: Vec<Entry> = self
            .entries
            .iter()
            .filter(|e| e.sample.split == split)
            .cloned()
            .collect();
        let mut x = Array2::zeros((entries.len(), store.dim.unwrap_or(self.backbone.dim)));
        for (mut row, entry) in x.rows_mut().into_iter().zip(&entries) {
            let v = parse_key(&entry.sha256)
                .and_then(|k| store.get(&k))
                .ok_or_else(|| CacheError::Missing {
                    dir: store.dir.clone(),
                    path: entry.sample.path.clone(),
                })?;
            row.assign(&ndarray::ArrayView1::from(v));
        }
        let y = entries.iter().map(|e| e.sample.class).collect();
        Ok(SplitData { x, y, entries })
    }
}

/// One split's embeddings (`x`, one row per entry), class indices and entries.
pub struct SplitData {
    pub x: Array2<f32>,
    pub y: Vec<usize>,
    pub entries: Vec<Entry>,
}

pub fn key_hex(key: &ContentKey) -> String {
    crate::runtime::hex(key)
}

pub fn parse_key(hex: &str) -> Option<ContentKey> {
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// All vectors of one backbone key, in memory: rows in one buffer, indexed by content key.
pub struct Store {
    pub dir: PathBuf,
    pub dim: Option<usize>,
    rows: Vec<f32>,
    index: HashMap<ContentKey, usize>,
    pending: Vec<PathBuf>,
    /// The content keys of `store.safetensors` in file order, to skip rewriting an unchanged store.
    stored_order: Vec<ContentKey>,
    batch_seq: usize,
}

impl Store {
    pub fn dir_for(workspace: &Path, backbone_key: &str) -> PathBuf {
        workspace.join("embeddings").join(backbone_key)
    }

    /// Loads the store and any pending batches. Leftover temporary files of killed runs are
    /// removed; they never hold anything a finished write does not.
    pub fn open(dir: &Path) -> Result<Store, CacheError> {
        let mut store = Store {
            dir: dir.to_path_buf(),
            dim: None,
            rows: Vec::new(),
            index: HashMap::new(),
            pending: Vec::new(),
            stored_order: Vec::new(),
            batch_seq: 0,
        };
        let main = dir.join("store.safetensors");
        if main.is_file() {
            store.stored_order = store.read_file(&main)?;
        }
        let pending_dir = dir.join("pending");
        if pending_dir.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&pending_dir)
                .map_err(|source| CacheError::Read {
                    path: pending_dir.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            for file in files {
                if file.extension().is_some_and(|e| e == "safetensors") {
                    store.read_file(&file)?;
                    store.pending.push(file);
                } else if file.extension().is_some_and(|e| e == "tmp") {
                    let _ = std::fs::remove_file(&file);
                }
            }
        }
        Ok(store)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, key: &ContentKey) -> bool {
        self.index.contains_key(key)
    }

    pub fn get(&self, key: &ContentKey) -> Option<&[f32]> {
        let dim = self.dim?;
        self.index.get(key).map(|&i| &self.rows[i * dim..(i + 1) * dim])
    }

    fn insert(&mut self, key: ContentKey, row: &[f32]) {
        if !self.index.contains_key(&key) {
            self.index.insert(key, self.rows.len() / row.len().max(1));
            self.rows.extend_from_slice(row);
        }
    }

    fn read_file(&mut self, path: &Path) -> Result<Vec<ContentKey>, CacheError> {
        let corrupt = |message: String| CacheError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|source| CacheError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let emb = tensors.tensor("embeddings").map_err(|e| corrupt(e.to_string()))?;
        let keys = tensors.tensor("sha256").map_err(|e| corrupt(e.to_string()))?;
        let (n, dim) = match emb.shape() {
            [n, d] if emb.dtype() == Dtype::F32 => (*n, *d),
            s => return Err(corrupt(format!("embeddings has shape {s:?}, expected [N, D] f32"))),
        };
        if keys.shape() != [n, 32] || keys.dtype() != Dtype::U8 {
            return Err(corrupt(format!(
                "sha256 has shape {:?}, expected [{n}, 32] u8",
                keys.shape()
            )));
        }
        if self.dim.is_some_and(|d| d != dim) {
            return Err(corrupt(format!(
                "vectors have {dim} values, others in this cache {}",
                self.dim.unwrap_or(0)
            )));
        }
        self.dim = Some(dim);
        let values: Vec<f32> = emb
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        let mut order = Vec::with_capacity(n);
        for (i, key) in keys.data().chunks_exact(32).enumerate() {
            let key: ContentKey = key.try_into().expect("32 bytes");
            self.insert(key, &values[i * dim..(i + 1) * dim]);
            order.push(key);
        }
        Ok(order)
    }

    /// Saves one batch of vectors at once, so a crash later loses none of them.
    pub fn append(&mut self, keys: &[ContentKey], dim: usize, rows: &[f32]) -> Result<(), CacheError> {
        assert_eq!(rows.len(), keys.len() * dim, "one row per key");
        if keys.is_empty() {
            return Ok(());
        }
        if self.dim.is_some_and(|d| d != dim) {
            return Err(CacheError::Corrupt {
                path: self.dir.clone(),
                message: format!(
                    "the backbone gave {dim} values, the cache holds {}",
                    self.dim.unwrap_or(0)
                ),
            });
        }
        self.dim = Some(dim);
        let path = self
            .dir
            .join("pending")
            .join(format!("{}-{:06}.safetensors", std::process::id(), self.batch_seq));
        self.batch_seq += 1;
        write_atomic(&path, &encode(keys, dim, rows))?;
        for (key, row) in keys.iter().zip(rows.chunks_exact(dim)) {
            self.insert(*key, row);
        }
        self.pending.push(path);
        Ok(())
    }

    /// Rewrites the store with exactly `keep` (in that order, first occurrence wins) and removes
    /// the pending batches. Returns how many stored vectors were dropped.
    pub fn compact(&mut self, keep: &[ContentKey]) -> Result<usize, CacheError> {
        let mut seen = std::collections::HashSet::new();
        let order: Vec<ContentKey> = keep
            .iter()
            .filter(|k| self.contains(k) && seen.insert(**k))
            .copied()
            .collect();
        let dropped = self.len() - order.len();
        if order == self.stored_order && self.pending.is_empty() {
            return Ok(0);
        }
        let dim = self.dim.unwrap_or(0);
        let mut rows = Vec::with_capacity(order.len() * dim);
        for key in &order {
            rows.extend_from_slice(self.get(key).expect("filtered above"));
        }
        write_atomic(&self.dir.join("store.safetensors"), &encode(&order, dim, &rows))?;
        for file in self.pending.drain(..) {
            let _ = std::fs::remove_file(file);
        }
        self.index = order.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        self.rows = rows;
        self.stored_order = order;
        Ok(dropped)
    }
}

fn encode(keys: &[ContentKey], dim: usize, rows: &[f32]) -> Vec<u8> {
    let key_bytes: Vec<u8> = keys.iter().flatten().copied().collect();
    let row_bytes: &[u8] = bytemuck::cast_slice(rows);
    let tensors = [
        (
            "embeddings",
            TensorView::new(Dtype::F32, vec![keys.len(), dim], row_bytes).expect("sizes match"),
        ),
        (
            "sha256",
            TensorView::new(Dtype::U8, vec![keys.len(), 32], &key_bytes).expect("sizes match"),
        ),
    ];
    safetensors::serialize(tensors, &None).expect("in-memory serialisation")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> ContentKey {
        [i; 32]
    }

    #[test]
    fn batches_survive_reopening_and_compaction_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.append(&[key(1), key(2)], 3, &[1., 2., 3., 4., 5., 6.]).unwrap();
        store.append(&[key(3)], 3, &[7., 8., 9.]).unwrap();
        // As if killed here: a fresh open sees both pending batches.
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.len(), 3);
        assert_eq!(store.get(&key(2)).unwrap(), &[4., 5., 6.]);
        let dropped = store.compact(&[key(3), key(1)]).unwrap();
        assert_eq!(dropped, 1);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.len(), 2);
        assert!(!store.contains(&key(2)));
        assert_eq!(store.stored_order, vec![key(3), key(1)]);
        assert!(std::fs::read_dir(dir.path().join("pending")).unwrap().next().is_none());
    }

    #[test]
    fn leftover_temporary_files_are_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pending")).unwrap();
        let tmp = dir.path().join("pending/.x.safetensors.1.tmp");
        std::fs::write(&tmp, b"half a file").unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.is_empty());
        assert!(!tmp.exists());
    }

    #[test]
    fn a_damaged_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("store.safetensors"), b"garbage").unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("store.safetensors"), "{err}");
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let k: ContentKey = std::array::from_fn(|i| i as u8 * 7);
        assert_eq!(parse_key(&key_hex(&k)), Some(k));
        assert_eq!(parse_key("zz"), None);
    }
}
