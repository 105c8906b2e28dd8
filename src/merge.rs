//! `merge`: the shards of a divided extract (`extract --shard K/N`, see [`crate::cache::shard`])
//! into one workspace, byte for byte the one a single `extract` of the same data writes.
//!
//! Nothing is recomputed and the data is not read: every shard records the whole data set's
//! listing with each image's hash, so the manifest comes from the listing and the store from the
//! shards' vectors, written in the listing's order by the same [`Store::compact`] that
//! `extract` ends with. Shards are checked against each other first (data root, backbone and
//! its preprocessing, classes, listing) and must cover every shard number of some count;
//! overlapping shards (a shard run twice, or shards of two different counts) are welcome as
//! long as every vector they share is equal bit for bit.
//!
//! Vectors go into the workspace's store as pending batches, one per shard, as `extract`'s
//! batches do, so a merge that is stopped resumes where it was, and a merge run again over a
//! merged workspace writes nothing new.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::backbone::BackboneRecord;
use crate::cache::maps::MapStore;
use crate::cache::shard::{Shard, ShardManifest};
use crate::cache::{fingerprints, parse_key, CacheError, ContentKey, Entry, Manifest, Store, WorkspaceLock};
use crate::dataset::Skipped;

/// Where the merged cache goes and which shards it comes from.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// The workspace to write.
    pub workspace: PathBuf,
    /// The shards' workspaces; empty for every folder in `<workspace>/shards/`, where
    /// `extract --shard` puts them.
    pub shards: Vec<PathBuf>,
}

/// Why `merge` failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A cache file or record could not be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// No shard workspace was given and the workspace has none.
    #[error("no shards in {0}: run `headstart extract --shard K/N` with this --workspace first, or name the shards' workspaces")]
    NoShards(PathBuf),
    /// A folder given as a shard holds no `shard.json`.
    #[error("{0} is not a shard's workspace: it has no shard.json (made by `headstart extract --shard K/N`)")]
    NotAShard(PathBuf),
    /// Two shards were made from other data or with another backbone.
    #[error("shard {shard} differs from shard {first} in {what}: {theirs} against {ours}; the shards of one merge must come from the same data folder, backbone and settings")]
    Differs {
        /// The shard that differs, with its workspace: `K/N (PATH)`.
        shard: String,
        /// The first shard, which the others are compared with, as `shard`.
        first: String,
        /// What differs, in words.
        what: &'static str,
        /// The differing shard's value.
        theirs: String,
        /// The first shard's value.
        ours: String,
    },
    /// Two shards listed other files: the data changed between their runs.
    #[error("shard {shard} lists {theirs} images, shard {first} {ours}, the first difference at {at}: the data changed between their runs; run the older shards again (they compute only what changed)")]
    DataChanged {
        /// The shard that differs, with its workspace: `K/N (PATH)`.
        shard: String,
        /// The first shard, as `shard`.
        first: String,
        /// The differing shard's number of images.
        theirs: usize,
        /// The first shard's number of images.
        ours: usize,
        /// The first file listed differently.
        at: String,
    },
    /// Some shard numbers have no workspace.
    #[error("shard{} {} of {count} missing: run `headstart extract --shard K/{count}` for {}", if .missing.len() > 1 { "s" } else { "" }, list(.missing), if .missing.len() > 1 { "each" } else { "it" })]
    MissingShards {
        /// The number of shards the data was divided into.
        count: usize,
        /// The shard numbers not found.
        missing: Vec<usize>,
    },
    /// Two shards hold different vectors for one image content.
    #[error("the vector of {image} from shard {shard} differs from {other}'s: the same image gave other numbers on two runs (another ONNX Runtime build, or a CPU with other instructions?); re-run one of them so that both agree")]
    Mismatch {
        /// An image with that content, relative to the data folder.
        image: String,
        /// The shard whose vector differs, with its workspace: `K/N (PATH)`.
        shard: String,
        /// Where the vector it was compared with came from.
        other: String,
    },
    /// An image is in no shard's store nor in its list of failures.
    #[error(
        "no shard holds the vector of {image} or says why it failed: run `headstart extract --shard {shard}` again"
    )]
    Unaccounted {
        /// The image, relative to the data folder.
        image: String,
        /// The shard it belongs to.
        shard: Shard,
    },
    /// No image of the data set could be embedded.
    #[error("none of the {0} images could be embedded: see the shards' failures")]
    NothingEmbedded(usize),
}

/// A shard as messages name it: `K/N (its workspace)`.
fn label(shard: &ShardManifest, path: &Path) -> String {
    format!("{} ({})", shard.shard, path.display())
}

fn list(numbers: &[usize]) -> String {
    numbers.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

/// What `merge` did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    /// The workspace written.
    pub workspace: PathBuf,
    /// The backbone of the merged vectors.
    pub backbone: BackboneRecord,
    /// Every shard merged with its workspace, in shard order.
    pub shards: Vec<(Shard, PathBuf)>,
    /// Images in the merged manifest.
    pub images: usize,
    /// Vectors taken from the shards in this run.
    pub added: usize,
    /// Vectors already in the workspace (a merge run before), checked against the shards'.
    pub already_merged: usize,
    /// Files that could not be read or embedded, with the reason, as one extract lists them.
    pub skipped: Vec<Skipped>,
    /// Wall time, in seconds.
    pub seconds: f64,
}

/// Merges the shards into the workspace and writes its manifest.
pub fn merge(opts: &MergeOptions) -> Result<MergeSummary, MergeError> {
    let started = Instant::now();
    let shards = load_shards(opts)?;
    let (first_path, first) = &shards[0];
    for (path, shard) in &shards[1..] {
        if let Some((what, ours, theirs)) = difference(first, shard) {
            return Err(MergeError::Differs {
                shard: label(shard, path),
                first: label(first, first_path),
                what,
                theirs,
                ours,
            });
        }
        if (&first.images, &first.skipped) != (&shard.images, &shard.skipped) {
            return Err(MergeError::DataChanged {
                shard: label(shard, path),
                first: label(first, first_path),
                theirs: shard.images.len(),
                ours: first.images.len(),
                at: first_difference(first, shard),
            });
        }
    }
    let count = complete_count(&shards)?;

    let key = &first.backbone.key;
    let _lock = WorkspaceLock::acquire(&opts.workspace, |_| {})?;
    let (mut store, _damaged) = Store::open(&Store::dir_for(&opts.workspace, key))?;
    let previous = store.file_name().map(str::to_owned);
    let already_merged = store.len();
    let image_of: HashMap<ContentKey, &str> = first
        .images
        .iter()
        .filter_map(|e| Some((parse_key(&e.sha256)?, e.sample.path.as_str())))
        .collect();
    let mut origin: HashMap<ContentKey, usize> = HashMap::new();
    let mut added = 0;
    for (i, (path, shard)) in shards.iter().enumerate() {
        let Some(name) = &shard.store else { continue };
        let theirs = Store::read_snapshot(&Store::dir_for(path, key), name)?;
        let (mut keys, mut rows) = (Vec::new(), Vec::new());
        for (k, row) in theirs.file_vectors() {
            match store.get(k) {
                None => {
                    keys.push(*k);
                    rows.extend_from_slice(row);
                    origin.insert(*k, i);
                }
                Some(ours) if same_bits(ours, row) => {}
                Some(_) => {
                    return Err(MergeError::Mismatch {
                        image: image_of
                            .get(k)
                            .map_or_else(|| crate::cache::key_hex(k), |p| p.to_string()),
                        shard: label(shard, path),
                        other: match origin.get(k) {
                            Some(&j) => format!("shard {}", label(&shards[j].1, &shards[j].0)),
                            None => format!("the cache already merged in {}", opts.workspace.display()),
                        },
                    })
                }
            }
        }
        added += keys.len();
        store.append(&keys, theirs.dim.unwrap_or(0), &rows)?;
    }

    // The audit's fingerprints, which the shards made from the pixels they decoded, so that the
    // merged workspace need not read every image again. A shard whose fingerprints cannot be
    // read is passed over: the audit makes the missing ones from the images.
    let (mut prints, _damaged) = MapStore::open(&fingerprints::dir(&opts.workspace))?;
    for (path, _) in &shards {
        if let Ok(theirs) = MapStore::read(&fingerprints::dir(path)) {
            fingerprints::copy_missing(&theirs, &mut prints)?;
        }
    }

    // The manifest a single extract writes: the listing less the images that failed, and the
    // failures added to the files it could not read, by path.
    let failures: HashMap<&str, &Skipped> = shards
        .iter()
        .flat_map(|(_, s)| &s.failed)
        .map(|s| (s.path.as_str(), s))
        .collect();
    let mut entries: Vec<Entry> = Vec::new();
    let mut skipped = first.skipped.clone();
    let mut keep = Vec::with_capacity(first.images.len());
    for entry in &first.images {
        let k = parse_key(&entry.sha256).ok_or_else(|| CacheError::Corrupt {
            path: first_path.join(ShardManifest::FILE),
            message: format!("{} has no valid hash", entry.sample.path),
        })?;
        keep.push(k);
        if store.contains(&k) {
            entries.push(entry.clone());
        } else if let Some(failure) = failures.get(entry.sample.path.as_str()) {
            skipped.push((*failure).clone());
        } else {
            return Err(MergeError::Unaccounted {
                image: entry.sample.path.clone(),
                shard: Shard {
                    index: Shard::of(&k, count),
                    count,
                },
            });
        }
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    if entries.is_empty() {
        return Err(MergeError::NothingEmbedded(first.images.len()));
    }
    store.compact(&keep)?;
    let backbone = BackboneRecord {
        dim: store.dim.unwrap_or(0),
        ..first.backbone.clone()
    };
    let images = entries.len();
    Manifest {
        data_root: first.data_root.clone(),
        classes: first.classes.clone(),
        backbone: backbone.clone(),
        store: store.file_name().expect("compacted with entries").to_string(),
        entries,
        skipped: skipped.clone(),
        multi_label: first.multi_label,
        views: None,
        mirrored: None,
        cut: None,
        checksum: String::new(),
    }
    .save(&opts.workspace)?;
    store.prune(previous.as_deref())?;
    Ok(MergeSummary {
        workspace: opts.workspace.clone(),
        backbone,
        shards: shards.iter().map(|(path, s)| (s.shard, path.clone())).collect(),
        images,
        added,
        already_merged,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The shards' records with their workspaces, in shard order (then by path).
fn load_shards(opts: &MergeOptions) -> Result<Vec<(PathBuf, ShardManifest)>, MergeError> {
    let folders = if opts.shards.is_empty() {
        let dir = opts.workspace.join(ShardManifest::FOLDER);
        let read = |source| CacheError::Read {
            path: dir.clone(),
            source,
        };
        let mut folders = Vec::new();
        if dir.is_dir() {
            for entry in std::fs::read_dir(&dir).map_err(read)? {
                let path = entry.map_err(read)?.path();
                if path.join(ShardManifest::FILE).is_file() {
                    folders.push(path);
                }
            }
        }
        if folders.is_empty() {
            return Err(MergeError::NoShards(dir));
        }
        folders
    } else {
        opts.shards.clone()
    };
    let mut shards = Vec::new();
    for folder in folders {
        if !folder.join(ShardManifest::FILE).is_file() {
            return Err(MergeError::NotAShard(folder));
        }
        let record = ShardManifest::load(&folder)?;
        shards.push((folder, record));
    }
    shards.sort_by(|(a, x), (b, y)| (x.shard, a).cmp(&(y.shard, b)));
    Ok(shards)
}

/// The first setting in which `b` was made otherwise than `a`, as (what, a's, b's).
fn difference(a: &ShardManifest, b: &ShardManifest) -> Option<(&'static str, String, String)> {
    let (x, y) = (&a.backbone, &b.backbone);
    let json = |p| serde_json::to_string(p).unwrap_or_default();
    let checks: [(&'static str, String, String); 9] = [
        (
            "the data folder",
            a.data_root.display().to_string(),
            b.data_root.display().to_string(),
        ),
        ("the backbone", x.name.clone(), y.name.clone()),
        (
            "the model file's SHA-256",
            x.model_sha256.clone(),
            y.model_sha256.clone(),
        ),
        ("the feature output", x.output.clone(), y.output.clone()),
        (
            "the preset",
            x.preprocessing.preset.name().into(),
            y.preprocessing.preset.name().into(),
        ),
        ("the preprocessing", json(&x.preprocessing), json(&y.preprocessing)),
        ("the backbone key", x.key.clone(), y.key.clone()),
        ("the classes", a.classes.join(", "), b.classes.join(", ")),
        ("multi-label", a.multi_label.to_string(), b.multi_label.to_string()),
    ];
    checks.into_iter().find(|(_, p, q)| p != q)
}

/// The first file that two listings give otherwise (another hash, or only one lists it).
fn first_difference(a: &ShardManifest, b: &ShardManifest) -> String {
    let n = a.images.len().min(b.images.len());
    let at = (0..n).find(|&i| a.images[i] != b.images[i]).unwrap_or(n);
    match a.images.get(at).or(b.images.get(at)) {
        Some(entry) => entry.sample.path.clone(),
        None => "the list of unreadable files".into(),
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The shard count that some complete set of the shards has; otherwise the numbers missing from
/// the most complete count.
fn complete_count(shards: &[(PathBuf, ShardManifest)]) -> Result<usize, MergeError> {
    let mut by_count: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (_, s) in shards {
        by_count.entry(s.shard.count).or_default().insert(s.shard.index);
    }
    if let Some((&count, _)) = by_count.iter().find(|(&n, have)| have.len() == n) {
        return Ok(count);
    }
    let (&count, have) = by_count
        .iter()
        .max_by_key(|(&n, have)| (have.len(), std::cmp::Reverse(n)))
        .expect("at least one shard");
    Err(MergeError::MissingShards {
        count,
        missing: (0..count).filter(|k| !have.contains(k)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_shards_are_named_by_number() {
        let err = MergeError::MissingShards {
            count: 4,
            missing: vec![1, 3],
        };
        assert_eq!(
            err.to_string(),
            "shards 1, 3 of 4 missing: run `headstart extract --shard K/4` for each"
        );
    }
}
