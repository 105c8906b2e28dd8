//! `extract`: images to cached embeddings.
//!
//! Files are hashed first (cheap) so that only new or changed content goes through the network,
//! in batches by [`crate::embed`]. A file that cannot be read or decoded is reported, counted and
//! skipped; the run goes on.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backbone::{Backbone, BackboneChoice, BackboneError, BackboneRecord};
use crate::cache::{key_hex, CacheError, ContentKey, Damaged, Entry, Manifest, Store, WorkspaceLock};
use crate::dataset::{BadLine, Dataset, DatasetError, Labels, Skipped, SplitPercentages};
use crate::embed::{embed_files, Progress};
use crate::settings::{RuntimeOptions, DEFAULT_BATCH_SIZE};

/// What `extract` embeds, where the cache goes and how the backbone runs. Build it with
/// [`ExtractOptions::new`] and struct-update syntax for the rest.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// The image folder: `DIR/<class>/<image>` or `DIR/<split>/<class>/<image>`, or the folder
    /// that label files' paths are relative to.
    pub data: PathBuf,
    /// Where classes come from: folder names (and by which rule) or label files.
    pub labels: Labels,
    /// Folder holding the cache and manifest.
    pub workspace: PathBuf,
    /// The backbone; the bundled default when left as [`BackboneChoice::default`].
    pub backbone: BackboneChoice,
    /// Images per network call.
    pub batch_size: usize,
    /// Hash split used when the folder has no split folders.
    pub percentages: SplitPercentages,
    /// Threads, ONNX Runtime library and pixel limit.
    pub runtime: RuntimeOptions,
}

impl ExtractOptions {
    /// Embeds `data` into `workspace` with the default backbone, batch size, split and runtime.
    pub fn new(data: impl Into<PathBuf>, workspace: impl Into<PathBuf>) -> Self {
        ExtractOptions {
            data: data.into(),
            labels: Labels::default(),
            workspace: workspace.into(),
            backbone: BackboneChoice::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            percentages: SplitPercentages::default(),
            runtime: RuntimeOptions::default(),
        }
    }
}

/// Why `extract` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The data folder could not be scanned.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The backbone could not be found, checked, opened or run.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// The cache or manifest could not be read, written or locked.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// ONNX Runtime could not be found or loaded.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// Every image failed to decode or embed; holds the number of images tried.
    #[error("none of the {0} images could be embedded: see the skipped files above")]
    NothingEmbedded(usize),
}

/// What `extract` did.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractSummary {
    /// The image folder embedded.
    pub data: PathBuf,
    /// The workspace written.
    pub workspace: PathBuf,
    /// The backbone used, as the manifest records it.
    pub backbone: BackboneRecord,
    /// How classes were found, in words.
    pub labelling: String,
    /// Whether images have any number of labels; `counts` then counts each label an image has.
    pub multi_label: bool,
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    /// `class -> [train, val, test]` images embedded.
    pub counts: BTreeMap<String, [usize; 3]>,
    /// Images in the manifest now.
    pub images: usize,
    /// Images run through the backbone in this run.
    pub computed: usize,
    /// Images whose vectors were already cached.
    pub reused: usize,
    /// Cached vectors removed because no image has that content any more.
    pub dropped_from_cache: usize,
    /// Files that could not be read or embedded, with the reason.
    pub skipped: Vec<Skipped>,
    /// Lines of label files that were left out, with the reason.
    pub bad_lines: Vec<BadLine>,
    /// Images that got no class: outside class folders, or in no label file. Not embedded.
    pub unlabelled: Vec<String>,
    /// Files under the data folder that are not images, by their extension.
    pub ignored: Vec<String>,
    /// Classes with fewer than [`FEW_IMAGES`](crate::dataset::FEW_IMAGES) images in all, with their counts.
    pub small_classes: Vec<(String, usize)>,
    /// Class folders without an image; they are not classes.
    pub empty_classes: Vec<String>,
    /// Cache files that failed their checks and were set aside; their images were recomputed.
    pub damaged_cache_files: Vec<Damaged>,
    /// Wall time of the whole run, in seconds.
    pub seconds: f64,
    /// Newly computed images per second of the network phase (decode + run + write).
    pub images_per_second: f64,
}

impl ExtractSummary {
    /// Whether every listed image was embedded and every label line used; the exit code says so.
    pub fn clean(&self) -> bool {
        self.skipped.is_empty() && self.bad_lines.is_empty()
    }
}

struct Todo {
    key: ContentKey,
    file: PathBuf,
    path: String,
}

/// Runs the whole extract stage and writes the workspace's manifest.
pub fn extract(opts: &ExtractOptions, progress: &dyn Progress) -> Result<ExtractSummary, ExtractError> {
    let started = Instant::now();
    let dataset = Dataset::scan(&opts.data, opts.percentages, &opts.labels)?;
    let info = opts.backbone.resolve()?;
    let runtime = crate::runtime::init(opts.runtime.ort_lib.as_deref())?;
    let mut backbone = Backbone::open(&runtime, info, opts.runtime.threads)?;
    let key = backbone.key();
    let _lock = WorkspaceLock::acquire(&opts.workspace, |path| {
        progress.warning(&format!(
            "waiting for another `headstart extract` on this workspace to finish (it holds {})",
            path.display()
        ))
    })?;
    let (mut store, damaged) = Store::open(&Store::dir_for(&opts.workspace, &key))?;
    for d in &damaged {
        progress.warning(&format!(
            "set aside the damaged cache file {} ({}); its images are recomputed",
            d.path.display(),
            d.reason
        ));
    }
    let previous_store = store.file_name().map(str::to_owned);

    let mut skipped = dataset.skipped.clone();
    for s in &skipped {
        progress.skipped(s);
    }
    for line in &dataset.bad_lines {
        progress.warning(&format!("label line left out: {line}"));
    }
    let hashed: Vec<Result<ContentKey, Skipped>> = dataset
        .samples
        .par_iter()
        .map(|s| {
            std::fs::read(dataset.root.join(&s.path))
                .map(|bytes| Sha256::digest(&bytes).into())
                .map_err(|e| Skipped {
                    path: s.path.clone(),
                    reason: format!("cannot read: {e}"),
                })
        })
        .collect();
    let mut todo = Vec::new();
    let mut queued = std::collections::HashSet::new();
    for (sample, hash) in dataset.samples.iter().zip(&hashed) {
        match hash {
            Ok(k) if !store.contains(k) && queued.insert(*k) => todo.push(Todo {
                key: *k,
                file: dataset.root.join(&sample.path),
                path: sample.path.clone(),
            }),
            Ok(_) => {}
            Err(s) => {
                progress.skipped(s);
                skipped.push(s.clone());
            }
        }
    }
    let reused = dataset.samples.len() - todo.len() - (skipped.len() - dataset.skipped.len());

    progress.start(todo.len() as u64);
    let network_started = Instant::now();
    let files: Vec<PathBuf> = todo.iter().map(|t| t.file.clone()).collect();
    let failures = embed_files(
        &mut backbone,
        &files,
        opts.batch_size,
        opts.runtime.max_pixels,
        progress,
        |indices, dim, rows| {
            let keys: Vec<ContentKey> = indices.iter().map(|&i| todo[i].key).collect();
            store.append(&keys, dim, rows).map_err(ExtractError::from)
        },
    )?;
    let mut failed = HashMap::new();
    for (i, reason) in failures {
        progress.skipped(&Skipped {
            path: todo[i].path.clone(),
            reason: reason.clone(),
        });
        failed.insert(todo[i].key, reason);
    }
    let network_seconds = network_started.elapsed().as_secs_f64();
    progress.finish();

    let mut entries = Vec::new();
    for (sample, hash) in dataset.samples.iter().zip(&hashed) {
        let Ok(k) = hash else { continue };
        if let Some(reason) = failed.get(k) {
            skipped.push(Skipped {
                path: sample.path.clone(),
                reason: reason.clone(),
            });
        } else {
            entries.push(Entry {
                sample: sample.clone(),
                sha256: key_hex(k),
            });
        }
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    if entries.is_empty() {
        return Err(ExtractError::NothingEmbedded(dataset.samples.len()));
    }
    let keep: Vec<ContentKey> = hashed.iter().filter_map(|h| h.as_ref().ok().copied()).collect();
    let dropped = store.compact(&keep)?;

    let record = BackboneRecord {
        name: backbone.info.name.clone(),
        model_path: std::fs::canonicalize(&backbone.info.path).unwrap_or_else(|_| backbone.info.path.clone()),
        key,
        model_sha256: backbone.info.sha256.clone(),
        output: backbone.output_name().to_string(),
        preprocessing: backbone.preprocessing,
        dim: store.dim.unwrap_or(0),
    };
    let manifest = Manifest {
        data_root: dataset.root.clone(),
        classes: dataset.classes.clone(),
        backbone: record.clone(),
        store: store.file_name().expect("compacted with entries").to_string(),
        entries,
        skipped: skipped.clone(),
        multi_label: dataset.multi_label,
        checksum: String::new(),
    };
    manifest.save(&opts.workspace)?;
    store.prune(previous_store.as_deref())?;

    let mut counts: BTreeMap<String, [usize; 3]> = dataset.classes.iter().map(|c| (c.clone(), [0; 3])).collect();
    for e in &manifest.entries {
        let labels = e.sample.labels.clone().unwrap_or_else(|| vec![e.sample.class]);
        for label in labels {
            counts.get_mut(&dataset.classes[label]).expect("known class")[e.sample.split as usize] += 1;
        }
    }
    let computed = todo.len() - failed.len();
    Ok(ExtractSummary {
        data: opts.data.clone(),
        workspace: opts.workspace.clone(),
        backbone: record,
        labelling: dataset.labelling.clone(),
        multi_label: dataset.multi_label,
        classes: dataset.classes.clone(),
        counts,
        images: manifest.entries.len(),
        computed,
        reused,
        dropped_from_cache: dropped,
        skipped,
        bad_lines: dataset.bad_lines.clone(),
        unlabelled: dataset.unlabelled.clone(),
        ignored: dataset.ignored.clone(),
        small_classes: dataset.small_classes(),
        empty_classes: dataset.empty_classes.clone(),
        damaged_cache_files: damaged,
        seconds: started.elapsed().as_secs_f64(),
        images_per_second: if network_seconds > 0.0 {
            computed as f64 / network_seconds
        } else {
            0.0
        },
    })
}
