//! The embeddings cache: one vector per image content, per backbone key.
//!
//! Layout inside the workspace (all files readable with Python's `safetensors` and `json`):
//!
//! ```text
//! dataset.json                                  the last extract: data folder, classes, samples,
//!                                               backbone, the store file it uses, a checksum
//! extract.lock                                  held by the running `extract`
//! embeddings/<key>/store-<crc32>.safetensors    "embeddings" f32 [N, D], "sha256" u8 [N, 32]
//! embeddings/<key>/pending/*.safetensors        the same, one file per batch not yet merged
//! embeddings/<key>/damaged/                     files that failed their checks, set aside
//! shards/<K>-of-<N>/                            `extract --shard K/N`: a workspace of this
//!                                               layout with shard.json for dataset.json
//! ```
//!
//! Each batch is written to `pending/` as soon as the network has produced it, with a temporary
//! file and a rename, so a run killed at any moment loses at most the batch in flight and never
//! leaves a half-written file under a real name. At the end of a run a new store file is written
//! in the data set's order, without vectors of images that are gone, then the manifest is
//! pointed at it; the store before it is kept, so a reader that loaded the old manifest a moment
//! earlier still finds its file. Every cache file carries a CRC-32 of its tensors in its
//! metadata: a flipped byte or a truncated file is never read as vectors.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use safetensors::tensor::{Dtype, Metadata, TensorView};
use serde::{Deserialize, Serialize};

use crate::atomic::{storage_hint, write_file, WriteError};
use crate::backbone::BackboneRecord;
use crate::dataset::{Sample, Skipped, Split};
use crate::views::{view_key, ViewsRecord};

pub mod fingerprints;
pub mod maps;
pub mod shard;

/// A sha256 of an image file's bytes.
pub type ContentKey = [u8; 32];

/// Written into every cache file's metadata; files without it are not read as vectors.
pub const FORMAT: &str = "headstart-embeddings-1";
/// The metadata key of a cache file's seal: `{"format": FORMAT, "crc32": "<8 hex digits>"}`.
pub const SEAL_KEY: &str = "headstart";

/// Why the embeddings cache or the workspace's manifest could not be read, written or locked.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A cache file, the manifest or the workspace folder could not be written.
    #[error("cannot write {path}: {source}{}", storage_hint(source))]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A cache file, the manifest or a cache folder could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A cache file or the manifest failed its format or checksum checks.
    #[error("{path} is damaged or not a headstart cache file ({message}): re-run `headstart extract` to recompute it")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The workspace has no `dataset.json`: `extract` has not been run on it.
    #[error("no extracted data set in {0}: run `headstart extract --data DIR` first (or pass --workspace)")]
    NoManifest(PathBuf),
    /// The store lacks the vector of an image the manifest lists.
    #[error("the cache in {dir} lacks the vector of {path}: re-run `headstart extract`")]
    Missing {
        /// The store's folder, `embeddings/<key>/`.
        dir: PathBuf,
        /// The image, relative to the data folder.
        path: String,
    },
    /// The workspace's `extract.lock` could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The workspace holds no maps at a cut that a classifier takes.
    #[error("the workspace holds no feature maps at the cut `{tensor}`, which the fine-tuned head takes: run `headstart extract --data DIR --cut CUT` with the cut it was trained on")]
    NoMaps {
        /// The cut's tensor.
        tensor: String,
    },
    /// The store file the manifest names does not exist.
    #[error("{0} is gone, though dataset.json names it: re-run `headstart extract` to recompute it")]
    StoreGone(PathBuf),
}

impl From<WriteError> for CacheError {
    fn from(e: WriteError) -> Self {
        CacheError::Write {
            path: e.path,
            source: e.source,
        }
    }
}

/// CRC-32 of a value's pretty JSON as 8 hex digits: a manifest's checksum, computed with its
/// checksum field empty.
fn json_crc(value: &impl Serialize) -> String {
    format!(
        "{:08x}",
        crc32fast::hash(&serde_json::to_vec_pretty(value).expect("plain data"))
    )
}

/// Held while `extract` writes a workspace, so two runs never write one cache at once. The
/// operating system releases it when the process ends, however it ends.
pub struct WorkspaceLock {
    _file: File,
}

impl WorkspaceLock {
    /// The lock file's name inside the workspace.
    pub const FILE: &'static str = "extract.lock";

    /// Takes the lock. If another process holds it, `waiting` is told once and the call blocks
    /// until that process is done.
    pub fn acquire(workspace: &Path, waiting: impl FnOnce(&Path)) -> Result<WorkspaceLock, CacheError> {
        let path = workspace.join(Self::FILE);
        let lock_err = |source| CacheError::Lock {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(workspace).map_err(|source| CacheError::Write {
            path: workspace.to_path_buf(),
            source,
        })?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting(&path);
                file.lock().map_err(lock_err)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        Ok(WorkspaceLock { _file: file })
    }
}

/// An image of the data set with the hash of its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The image: path, class and split.
    #[serde(flatten)]
    pub sample: Sample,
    /// SHA-256 of the image file's bytes, hex: the key of its vector in the store.
    pub sha256: String,
}

/// `dataset.json`: what the last `extract` produced, so later commands need no `--data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The image folder that was extracted.
    pub data_root: PathBuf,
    /// Class names, sorted; a class index is a position in this list.
    pub classes: Vec<String>,
    /// The backbone that made the vectors.
    pub backbone: BackboneRecord,
    /// The store file, in `embeddings/<key>/`, that holds every entry's vector.
    pub store: String,
    /// Every embedded image, in the data set's order.
    pub entries: Vec<Entry>,
    /// Files that could not be read or embedded, with the reason.
    pub skipped: Vec<Skipped>,
    /// Whether images have any number of labels ([`Sample::labels`]) rather than one class.
    /// Left out of the file when false, so manifests written before it keep their checksum.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multi_label: bool,
    /// Augmented views of the train split's images (`extract --augment K`), when the last
    /// extract made them. Left out of the file when absent, as `multi_label` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<ViewsRecord>,
    /// The mirrored views of the val and test splits' images, for test-time augmentation
    /// (`extract --tta`), when the last extract made them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrored: Option<ViewsRecord>,
    /// The feature maps at a cut inside the backbone (`extract --cut`), when the last extract
    /// cached them ([`maps`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<maps::CutRecord>,
    /// CRC-32 of this JSON written with an empty checksum; filled in by [`Manifest::save`].
    #[serde(default)]
    pub checksum: String,
}

impl Manifest {
    /// The manifest's file name inside the workspace.
    pub const FILE: &'static str = "dataset.json";

    fn canonical_checksum(&self) -> String {
        json_crc(&Manifest {
            checksum: String::new(),
            ..self.clone()
        })
    }

    /// The JSON bytes of the manifest with its checksum filled in.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sealed = Manifest {
            checksum: self.canonical_checksum(),
            ..self.clone()
        };
        serde_json::to_vec_pretty(&sealed).expect("plain data")
    }

    /// Writes the manifest, sealed, to `workspace/dataset.json`, atomically, after a copy in
    /// its backbone's store folder (`embeddings/<key>/dataset.json`): the record of that
    /// backbone's last extract, through which a sweep compares every backbone cached for the
    /// data ([`Manifest::cached_backbones`]).
    pub fn save(&self, workspace: &Path) -> Result<(), CacheError> {
        let bytes = self.to_bytes();
        let dir = Store::dir_for(workspace, &self.backbone.key);
        std::fs::create_dir_all(&dir).map_err(|source| CacheError::Write {
            path: dir.clone(),
            source,
        })?;
        write_file(&dir.join(Self::FILE), |tmp| std::fs::write(tmp, &bytes))?;
        Ok(write_file(&workspace.join(Self::FILE), |tmp| {
            std::fs::write(tmp, &bytes)
        })?)
    }

    /// The manifest of every backbone's last extract in the workspace, sorted by backbone name
    /// (then key). Store folders without one (written before headstart kept it) or with a
    /// damaged one are left out: their backbone is extracted again to bring it back.
    pub fn cached_backbones(workspace: &Path) -> Result<Vec<Manifest>, CacheError> {
        let mut manifests = Vec::new();
        for dir in list_dir(&workspace.join("embeddings"))? {
            let Ok(bytes) = std::fs::read(dir.join(Self::FILE)) else {
                continue;
            };
            if let Ok(manifest) = Manifest::from_slice(&bytes) {
                manifests.push(manifest);
            }
        }
        manifests.sort_by(|a, b| (&a.backbone.name, &a.backbone.key).cmp(&(&b.backbone.name, &b.backbone.key)));
        Ok(manifests)
    }

    /// This manifest's store, read as [`load_snapshot`] does.
    pub fn open_store(&self, workspace: &Path) -> Result<Store, CacheError> {
        Store::read_snapshot(&Store::dir_for(workspace, &self.backbone.key), &self.store)
    }

    /// Parses and checks a manifest's bytes; the error says what is wrong.
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let expected = manifest.canonical_checksum();
        if manifest.checksum != expected {
            return Err(format!(
                "checksum {:?} does not match its content ({expected})",
                manifest.checksum
            ));
        }
        Ok(manifest)
    }

    /// Reads and checks `workspace/dataset.json`.
    pub fn load(workspace: &Path) -> Result<Manifest, CacheError> {
        let path = workspace.join(Self::FILE);
        if !path.is_file() {
            return Err(CacheError::NoManifest(workspace.to_path_buf()));
        }
        let bytes = std::fs::read(&path).map_err(|source| CacheError::Read {
            path: path.clone(),
            source,
        })?;
        Manifest::from_slice(&bytes).map_err(|message| CacheError::Corrupt { path, message })
    }

    /// The embeddings and labels of one split, rows in manifest order, with the entries used.
    pub fn split(&self, store: &Store, split: Split) -> Result<SplitData, CacheError> {
        self.rows(store, |e| e.sample.split == split)
    }

    /// The vectors, labels and entries of every image, in manifest order, whatever its split.
    pub fn all(&self, store: &Store) -> Result<SplitData, CacheError> {
        self.rows(store, |_| true)
    }

    fn rows(&self, store: &Store, keep: impl Fn(&Entry) -> bool) -> Result<SplitData, CacheError> {
        let entries: Vec<Entry> = self.entries.iter().filter(|e| keep(e)).cloned().collect();
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
        let targets = self.multi_label.then(|| {
            let mut t = Array2::zeros((entries.len(), self.classes.len()));
            for (mut row, entry) in t.rows_mut().into_iter().zip(&entries) {
                for &label in entry.sample.labels.iter().flatten() {
                    row[label] = 1.0;
                }
            }
            t
        });
        Ok(SplitData { x, y, targets, entries })
    }
}

impl Manifest {
    /// The view store's folder of `record` in a workspace.
    pub fn views_dir(&self, workspace: &Path, record: &ViewsRecord) -> PathBuf {
        Store::dir_for(workspace, &self.backbone.key).join(record.kind.dir_name())
    }

    /// The cached views of `entries`' images: for each entry, the vectors of views `0..count`
    /// that exist (a view the network failed on is missing), in view order. Reads exactly the
    /// store file the manifest names.
    pub fn view_vectors(
        &self,
        workspace: &Path,
        record: &ViewsRecord,
        entries: &[Entry],
    ) -> Result<Vec<Vec<Vec<f32>>>, CacheError> {
        let store = Store::read_snapshot(&self.views_dir(workspace, record), &record.store)?;
        Ok(entries
            .iter()
            .map(|entry| {
                let Some(content) = parse_key(&entry.sha256) else {
                    return Vec::new();
                };
                (0..record.count)
                    .filter_map(|n| store.get(&view_key(&content, n)).map(<[f32]>::to_vec))
                    .collect()
            })
            .collect())
    }
}

/// The workspace's manifest and the store it names, as one consistent snapshot. Needs no lock:
/// `extract` never changes a store file in place and keeps the previous one, so the file a
/// manifest names exists when the manifest is read; should a reader be slower than two whole
/// runs of `extract`, it reads the manifest again.
pub fn load_snapshot(workspace: &Path) -> Result<(Manifest, Store), CacheError> {
    let mut attempts = 0;
    loop {
        let manifest = Manifest::load(workspace)?;
        let dir = Store::dir_for(workspace, &manifest.backbone.key);
        match Store::read_snapshot(&dir, &manifest.store) {
            Err(CacheError::Read { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
                attempts += 1;
                if attempts == 3 {
                    return Err(CacheError::StoreGone(path));
                }
            }
            result => return result.map(|store| (manifest, store)),
        }
    }
}

/// One split's embeddings (`x`, one row per entry), class indices and entries.
pub struct SplitData {
    /// The embeddings, one row per entry.
    pub x: Array2<f32>,
    /// Each row's class index into [`Manifest::classes`]; for multi-label data, its first label.
    pub y: Vec<usize>,
    /// Multi-label data only: `[rows, labels]`, 1 where the image has the label.
    pub targets: Option<Array2<f32>>,
    /// The images of the split, in row order.
    pub entries: Vec<Entry>,
}

/// A content key as 64 lowercase hex digits, as the manifest stores it.
pub fn key_hex(key: &ContentKey) -> String {
    crate::fetch::hex(key)
}

/// The content key written as 64 hex digits; `None` if `hex` is not that.
pub fn parse_key(hex: &str) -> Option<ContentKey> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// The content of one cache file: `keys[i]` is the image whose vector is row `i` of `rows`.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    /// Width of each vector.
    pub dim: usize,
    /// The images' content keys, one per row.
    pub keys: Vec<ContentKey>,
    /// The vectors, row after row (`keys.len() * dim` floats).
    pub rows: Vec<f32>,
}

/// CRC-32 over the tensors' names, lengths and bytes, in name order: it does not depend on the
/// file's layout, so it is computed before serialising and checked after parsing.
pub fn tensors_crc<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut sorted: Vec<(&str, &[u8])> = tensors.into_iter().collect();
    sorted.sort_by_key(|(name, _)| *name);
    let mut crc = crc32fast::Hasher::new();
    for (name, data) in sorted {
        crc.update(name.as_bytes());
        crc.update(&(data.len() as u64).to_le_bytes());
        crc.update(data);
    }
    format!("{:08x}", crc.finalize())
}

type FileParts<'a> = (
    [(&'static str, TensorView<'a>); 2],
    Option<HashMap<String, String>>,
    String,
);

/// The tensors and metadata of a cache file over borrowed data, and the checksum it carries.
fn file_parts<'a>(dim: usize, key_bytes: &'a [u8], rows: &'a [f32]) -> FileParts<'a> {
    let row_bytes: &[u8] = bytemuck::cast_slice(rows);
    let crc = tensors_crc([("embeddings", row_bytes), ("sha256", key_bytes)]);
    let n = key_bytes.len() / 32;
    let tensors = [
        (
            "embeddings",
            TensorView::new(Dtype::F32, vec![n, dim], row_bytes).expect("sizes match"),
        ),
        (
            "sha256",
            TensorView::new(Dtype::U8, vec![n, 32], key_bytes).expect("sizes match"),
        ),
    ];
    // One entry: safetensors writes its metadata map in hash order, and two entries would
    // make equal content give different bytes from run to run.
    let seal = serde_json::json!({ "format": FORMAT, "crc32": crc }).to_string();
    let metadata = HashMap::from([(SEAL_KEY.to_string(), seal)]);
    (tensors, Some(metadata), crc)
}

impl Vectors {
    /// The safetensors bytes of a cache file, and the checksum they carry.
    pub fn encode(&self) -> (Vec<u8>, String) {
        let key_bytes: Vec<u8> = self.keys.iter().flatten().copied().collect();
        let (tensors, metadata, crc) = file_parts(self.dim, &key_bytes, &self.rows);
        let bytes = safetensors::serialize(tensors, &metadata).expect("in-memory serialisation");
        (bytes, crc)
    }

    /// Parses and checks a cache file's bytes; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Vectors, String> {
        Self::read(std::io::Cursor::new(bytes), bytes.len() as u64).map_err(|failure| match failure {
            ReadFailure::Io(e) => e.to_string(),
            ReadFailure::Corrupt(message) => message,
        })
    }

    /// Reads and checks a cache file of `len` bytes, its tensors going straight into the vectors:
    /// one copy from the page cache and no buffer of the whole file (at 60000 images that buffer
    /// was 300 MB more peak memory and a second pass over it).
    fn read(mut reader: impl Read, len: u64) -> Result<Vectors, ReadFailure> {
        let corrupt = |message: String| ReadFailure::Corrupt(message);
        if len < 8 {
            return Err(corrupt(format!("it has {len} bytes, too few for a header")));
        }
        let mut size = [0u8; 8];
        read_part(&mut reader, &mut size, "the header length")?;
        let header_len = u64::from_le_bytes(size);
        if header_len > MAX_HEADER_BYTES || header_len > len - 8 {
            return Err(corrupt(format!(
                "its header length {header_len} does not fit a file of {len} bytes"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        read_part(&mut reader, &mut header, "the header")?;
        let header: Metadata =
            serde_json::from_slice(&header).map_err(|e| corrupt(format!("its header is not safetensors: {e}")))?;
        let seal: serde_json::Value = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(SEAL_KEY))
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        if seal["format"] != FORMAT {
            return Err(corrupt(format!("its metadata does not name the format {FORMAT}")));
        }
        let missing = |name: &str| corrupt(format!("it has no tensor {name:?}"));
        let emb = header.info("embeddings").ok_or_else(|| missing("embeddings"))?;
        let keys = header.info("sha256").ok_or_else(|| missing("sha256"))?;
        if header.tensors().len() != 2 {
            return Err(corrupt("it holds tensors other than embeddings and sha256".into()));
        }
        let (n, dim) = match emb.shape[..] {
            [n, d] if emb.dtype == Dtype::F32 && d > 0 => (n, d),
            ref s => return Err(corrupt(format!("embeddings has shape {s:?}, expected [N, D] f32"))),
        };
        if keys.shape != [n, 32] || keys.dtype != Dtype::U8 {
            return Err(corrupt(format!(
                "sha256 has shape {:?}, expected [{n}, 32] u8",
                keys.shape
            )));
        }
        // Both tensors, back to back, must fill the data exactly: checked before allocating, so
        // a damaged header cannot ask for more memory than the file holds.
        let data_len = (len - 8 - header_len) as usize;
        let row_bytes = n.checked_mul(dim).and_then(|v| v.checked_mul(4));
        let mut order = [(emb.data_offsets, row_bytes), (keys.data_offsets, n.checked_mul(32))];
        order.sort_by_key(|((start, _), _)| *start);
        let [((s0, e0), b0), ((s1, e1), b1)] = order;
        if s0 != 0 || e0 != s1 || e1 != data_len || Some(e0) != b0 || e1.checked_sub(s1) != b1 {
            return Err(corrupt(format!(
                "its tensors do not fill its {data_len} data bytes as their shapes say"
            )));
        }
        let mut rows = vec![0f32; n * dim];
        let mut key_bytes = vec![0u8; n * 32];
        if emb.data_offsets.0 == 0 {
            read_part(&mut reader, bytemuck::cast_slice_mut(&mut rows), "the embeddings")?;
            read_part(&mut reader, &mut key_bytes, "the keys")?;
        } else {
            read_part(&mut reader, &mut key_bytes, "the keys")?;
            read_part(&mut reader, bytemuck::cast_slice_mut(&mut rows), "the embeddings")?;
        }
        let crc = tensors_crc([("embeddings", bytemuck::cast_slice(&rows)), ("sha256", &key_bytes[..])]);
        if seal["crc32"] != crc.as_str() {
            return Err(corrupt(format!(
                "checksum mismatch: the file says {}, its tensors give {crc:?}",
                seal["crc32"]
            )));
        }
        if cfg!(target_endian = "big") {
            rows.iter_mut()
                .for_each(|v| *v = f32::from_bits(u32::from_le(v.to_bits())));
        }
        // Chunked so that the test vectorises (an early-exit `any` over 77 million values does not).
        if !rows
            .chunks(1024)
            .all(|c| c.iter().fold(true, |ok, v| ok & v.is_finite()))
        {
            return Err(corrupt("it holds a NaN or infinite value".into()));
        }
        let keys = key_bytes
            .chunks_exact(32)
            .map(|k| k.try_into().expect("32 bytes"))
            .collect();
        Ok(Vectors { dim, keys, rows })
    }
}

/// A cache file's header is a few hundred bytes; a length beyond this is damage, not a header.
const MAX_HEADER_BYTES: u64 = 1 << 20;

enum ReadFailure {
    Io(std::io::Error),
    Corrupt(String),
}

/// `read_exact`, where the file ending early is damage rather than an I/O failure.
fn read_part(reader: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), ReadFailure> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ReadFailure::Corrupt(format!("it ends inside {what}")),
        _ => ReadFailure::Io(e),
    })
}

/// A cache file that failed its checks and was moved to `damaged/`; its images are recomputed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Damaged {
    /// Where the file now lies, in the store's `damaged/` folder.
    pub path: PathBuf,
    /// Which check it failed.
    pub reason: String,
}

/// All vectors of one backbone key, in memory: rows in one buffer, indexed by content key.
pub struct Store {
    /// The store's folder, `workspace/embeddings/<key>/`.
    pub dir: PathBuf,
    /// Width of the vectors; `None` while the store is empty.
    pub dim: Option<usize>,
    rows: Vec<f32>,
    index: HashMap<ContentKey, usize>,
    pending: Vec<PathBuf>,
    /// The store file loaded or last written and its keys in file order, so an unchanged store
    /// is not rewritten.
    stored: Option<(String, Vec<ContentKey>)>,
    batch_seq: usize,
}

fn is_store_file(name: &str) -> bool {
    name.starts_with("store-") && name.ends_with(".safetensors")
}

pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let read = |source| CacheError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        files.push(entry.map_err(read)?.path());
    }
    files.sort();
    Ok(files)
}

impl Store {
    /// The store folder of one backbone key in a workspace: `workspace/embeddings/<key>/`.
    pub fn dir_for(workspace: &Path, backbone_key: &str) -> PathBuf {
        workspace.join("embeddings").join(backbone_key)
    }

    fn empty(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
            dim: None,
            rows: Vec::new(),
            index: HashMap::new(),
            pending: Vec::new(),
            stored: None,
            batch_seq: 0,
        }
    }

    /// For `extract`, which must hold the [`WorkspaceLock`]: loads the newest intact store file
    /// and every pending batch. Files that fail their checks are moved to `damaged/` and
    /// returned, so their images are recomputed instead of read as wrong vectors; leftover
    /// temporary files of killed runs are removed, as they never hold anything a finished write
    /// does not.
    pub fn open(dir: &Path) -> Result<(Store, Vec<Damaged>), CacheError> {
        let mut store = Store::empty(dir);
        let mut damaged = Vec::new();
        let mut stores: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for path in list_dir(dir)? {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if is_store_file(&name) {
                let modified = path
                    .metadata()
                    .and_then(|m| m.modified())
                    .map_err(|source| CacheError::Read {
                        path: path.clone(),
                        source,
                    })?;
                stores.push((modified, path));
            } else if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
            }
        }
        stores.sort_by(|a, b| b.cmp(a));
        for (_, path) in stores {
            match store.read_file(&path) {
                Ok(keys) => {
                    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    store.stored = Some((name, keys));
                    break;
                }
                Err(CacheError::Corrupt { message, .. }) => damaged.push(set_aside(dir, &path, message)?),
                Err(e) => return Err(e),
            }
        }
        for path in list_dir(&dir.join("pending"))? {
            if path.extension().is_some_and(|e| e == "safetensors") {
                match store.read_file(&path) {
                    Ok(_) => store.pending.push(path),
                    Err(CacheError::Corrupt { message, .. }) => damaged.push(set_aside(dir, &path, message)?),
                    Err(e) => return Err(e),
                }
            } else if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok((store, damaged))
    }

    /// For readers: exactly the store file `name` (as a manifest gives it), nothing pending.
    /// Never writes, so it needs no lock; a damaged file is an error.
    pub fn read_snapshot(dir: &Path, name: &str) -> Result<Store, CacheError> {
        let mut store = Store::empty(dir);
        let keys = store.read_file(&dir.join(name))?;
        store.stored = Some((name.to_string(), keys));
        Ok(store)
    }

    /// The store file loaded or last written, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.stored.as_ref().map(|(name, _)| name.as_str())
    }

    /// Number of vectors held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether it holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether it holds the vector of an image with this content.
    pub fn contains(&self, key: &ContentKey) -> bool {
        self.index.contains_key(key)
    }

    /// The vector of an image with this content, if held.
    pub fn get(&self, key: &ContentKey) -> Option<&[f32]> {
        let dim = self.dim?;
        self.index.get(key).map(|&i| &self.rows[i * dim..(i + 1) * dim])
    }

    /// The vectors of the store file loaded or last written, in the file's order: all of a
    /// store read with [`Store::read_snapshot`].
    pub fn file_vectors(&self) -> impl Iterator<Item = (&ContentKey, &[f32])> {
        let keys = self.stored.as_ref().map_or(&[][..], |(_, keys)| keys.as_slice());
        keys.iter().filter_map(|k| Some((k, self.get(k)?)))
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
        let read_error = |source| CacheError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let len = file.metadata().map_err(read_error)?.len();
        let Vectors { dim, keys, rows } = Vectors::read(file, len).map_err(|failure| match failure {
            ReadFailure::Io(source) => read_error(source),
            ReadFailure::Corrupt(message) => corrupt(message),
        })?;
        if self.dim.is_some_and(|d| d != dim) {
            return Err(corrupt(format!(
                "vectors have {dim} values, others in this cache {}",
                self.dim.unwrap_or(0)
            )));
        }
        self.dim = Some(dim);
        if self.rows.is_empty() {
            // The usual case, a single store file: its rows become the store's without a copy
            // (at 60000 images a copy is 300 MB more peak memory).
            for (i, key) in keys.iter().enumerate() {
                self.index.entry(*key).or_insert(i);
            }
            self.rows = rows;
        } else {
            for (key, row) in keys.iter().zip(rows.chunks_exact(dim)) {
                self.insert(*key, row);
            }
        }
        Ok(keys)
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
        let vectors = Vectors {
            dim,
            keys: keys.to_vec(),
            rows: rows.to_vec(),
        };
        let bytes = vectors.encode().0;
        write_file(&path, |tmp| std::fs::write(tmp, &bytes))?;
        for (key, row) in keys.iter().zip(rows.chunks_exact(dim)) {
            self.insert(*key, row);
        }
        self.pending.push(path);
        Ok(())
    }

    /// Writes a new store file with exactly `keep` (in that order, first occurrence wins) and
    /// removes the pending batches. The file is named by its checksum, so equal content gets an
    /// equal name. Returns how many vectors were dropped.
    pub fn compact(&mut self, keep: &[ContentKey]) -> Result<usize, CacheError> {
        let mut seen = std::collections::HashSet::new();
        let order: Vec<ContentKey> = keep
            .iter()
            .filter(|k| self.contains(k) && seen.insert(**k))
            .copied()
            .collect();
        let dropped = self.len() - order.len();
        if self.stored.as_ref().is_some_and(|(_, keys)| *keys == order) && self.pending.is_empty() {
            return Ok(0);
        }
        let dim = self.dim.unwrap_or(0);
        let sources: Vec<usize> = order.iter().map(|k| self.index[k]).collect();
        gather_rows_in_place(&mut self.rows, dim, &sources);
        self.index = order.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let key_bytes: Vec<u8> = order.iter().flatten().copied().collect();
        let (tensors, metadata, crc) = file_parts(dim, &key_bytes, &self.rows);
        let name = format!("store-{crc}.safetensors");
        let path = self.dir.join(&name);
        write_file(&path, |tmp| {
            safetensors::serialize_to_file(tensors, &metadata, tmp).map_err(|e| match e {
                safetensors::SafeTensorError::IoError(e) => e,
                other => std::io::Error::other(other.to_string()),
            })
        })?;
        for file in self.pending.drain(..) {
            let _ = std::fs::remove_file(file);
        }
        self.stored = Some((name, order));
        Ok(dropped)
    }

    /// Removes store files other than the current one and `previous` (the one the manifest named
    /// before this run, which a reader may still be loading). Call after saving the manifest.
    pub fn prune(&self, previous: Option<&str>) -> Result<(), CacheError> {
        for path in list_dir(&self.dir)? {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let is_store = is_store_file(&name);
            if is_store && Some(name.as_str()) != self.file_name() && Some(name.as_str()) != previous {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

/// Reorders `rows` (of `dim` values each) so that row `i` becomes the old row `sources[i]`, and
/// drops the rows no source names, moving rows within the buffer: building the compacted store
/// in a second buffer held the store twice, extract's peak memory growing by twice the cache.
/// `sources` must not repeat a row.
fn gather_rows_in_place(rows: &mut Vec<f32>, dim: usize, sources: &[usize]) {
    let n = rows.len().checked_div(dim).unwrap_or(0);
    // Complete the gather to a permutation of all n rows: dropped rows fill the tail.
    let mut source: Vec<usize> = sources.to_vec();
    let mut used = vec![false; n];
    for &s in sources {
        used[s] = true;
    }
    source.extend((0..n).filter(|&r| !used[r]));
    // Follow each cycle of the permutation with one row of scratch.
    let mut done = vec![false; n];
    let mut scratch = vec![0f32; dim];
    for start in 0..n {
        if done[start] || source[start] == start {
            continue;
        }
        scratch.copy_from_slice(&rows[start * dim..(start + 1) * dim]);
        let mut at = start;
        loop {
            done[at] = true;
            let from = source[at];
            if from == start {
                rows[at * dim..(at + 1) * dim].copy_from_slice(&scratch);
                break;
            }
            rows.copy_within(from * dim..(from + 1) * dim, at * dim);
            at = from;
        }
    }
    rows.truncate(sources.len() * dim);
    rows.shrink_to_fit();
}

/// Moves a damaged cache file into `damaged/` (kept for inspection, never read again).
pub(crate) fn set_aside(dir: &Path, path: &Path, reason: String) -> Result<Damaged, CacheError> {
    let target = dir.join("damaged").join(path.file_name().unwrap_or_default());
    std::fs::create_dir_all(dir.join("damaged"))
        .and_then(|_| std::fs::rename(path, &target))
        .map_err(|source| CacheError::Write {
            path: target.clone(),
            source,
        })?;
    Ok(Damaged {
        path: path.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests;
