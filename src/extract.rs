//! `extract`: images to cached embeddings.
//!
//! Files are hashed first (cheap) so that only new or changed content goes through the network,
//! in batches by [`crate::embed`]. A file that cannot be read or decoded is reported, counted and
//! skipped; the run goes on.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backbone::{Backbone, BackboneChoice, BackboneError, BackboneRecord};
use crate::cache::fingerprints;
use crate::cache::maps::{CutRecord, MapStore};
use crate::cache::shard::{Shard, ShardManifest};
use crate::cache::{key_hex, parse_key, CacheError, ContentKey, Damaged, Entry, Manifest, Store, WorkspaceLock};
use crate::dataset::Split;
use crate::dataset::{BadLine, Dataset, DatasetError, Labels, Skipped, SplitPercentages};
use crate::device::Placement;
use crate::embed::{embed_jobs, Job, Progress};
use crate::onnx::edit::ModelEdit;
use crate::settings::RuntimeOptions;
use crate::views::augment::{AugmentError, AugmentSettings};
use crate::views::{render, view_key, Render, ViewKind, ViewsRecord};

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
    /// Images per network call; `None` for [`Backbone::batch_size`]'s choice (32, or tuned on a GPU).
    pub batch_size: Option<usize>,
    /// Hash split used when the folder has no split folders.
    pub percentages: SplitPercentages,
    /// Threads, ONNX Runtime library and pixel limit.
    pub runtime: RuntimeOptions,
    /// Augmented views of every train-split image to cache besides its plain vector (K); 0 for none.
    pub augment: u32,
    /// How the augmented views are drawn.
    pub augment_settings: AugmentSettings,
    /// Also cache the mirrored view of every val- and test-split image, for test-time augmentation.
    pub tta: bool,
    /// Embed only this shard's images, into its own workspace inside `workspace` (see
    /// [`crate::cache::shard`]); `merge` combines the shards.
    pub shard: Option<Shard>,
    /// Also cache every image's feature map at this cut, a named cut of the backbone or a
    /// tensor name (see [`crate::cache::maps`]).
    pub cut: Option<String>,
}

impl ExtractOptions {
    /// Embeds `data` into `workspace` with the default backbone, batch size, split and runtime.
    pub fn new(data: impl Into<PathBuf>, workspace: impl Into<PathBuf>) -> Self {
        ExtractOptions {
            data: data.into(),
            labels: Labels::default(),
            workspace: workspace.into(),
            backbone: BackboneChoice::default(),
            batch_size: None,
            percentages: SplitPercentages::default(),
            runtime: RuntimeOptions::default(),
            augment: 0,
            augment_settings: AugmentSettings::default(),
            tta: false,
            shard: None,
            cut: None,
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
    /// The augmentation settings are out of range.
    #[error(transparent)]
    Augment(#[from] AugmentError),
    /// A shard was asked for views, which only a whole extract makes.
    #[error("--shard makes plain vectors only, not --augment or --tta views or --cut maps: merge the shards, then run `extract` with those flags on the merged workspace, which reuses every plain vector")]
    ShardViews,
    /// Every image failed to decode or embed; holds the number of images tried.
    #[error("none of the {0} images could be embedded: see the skipped files above")]
    NothingEmbedded(usize),
}

/// What `extract` did.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractSummary {
    /// The image folder embedded.
    pub data: PathBuf,
    /// The workspace written: a shard's own workspace for a shard.
    pub workspace: PathBuf,
    /// The shard embedded, if only one; `images`, `counts`, `computed` and `reused` then count
    /// its images alone.
    pub shard: Option<Shard>,
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
    /// The maps cached at a cut (`--cut`), if asked for.
    pub cut: Option<CutRecord>,
    /// Maps computed in this run.
    pub maps_computed: usize,
    /// Cached maps removed because no image has that content any more.
    pub maps_dropped: usize,
    /// Images in the manifest now.
    pub images: usize,
    /// The execution provider the backbone ran on, and why `--device auto` fell back to the
    /// CPU if it did.
    pub device: Placement,
    /// Images per network call in this run (tuned on a GPU unless `--batch-size` was given).
    pub batch_size: usize,
    /// Images run through the backbone in this run.
    pub computed: usize,
    /// Images whose vectors were already cached.
    pub reused: usize,
    /// Augmented views computed in this run (K per new train image, only the new views when K grew).
    pub views_computed: usize,
    /// Augmented views of the train split in the cache now.
    pub views: usize,
    /// Mirrored views (for test-time augmentation) computed in this run.
    pub mirrored_computed: usize,
    /// Images of which some view could not be made, with the reason; their plain vectors are
    /// kept and training uses the views that exist.
    pub views_failed: Vec<Skipped>,
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
    /// Network inputs (images and views) computed per second of the network phase (decode + run + write).
    pub images_per_second: f64,
}

impl ExtractSummary {
    /// Whether every listed image was embedded and every label line used; the exit code says so.
    pub fn clean(&self) -> bool {
        self.skipped.is_empty() && self.bad_lines.is_empty()
    }
}

/// One image's missing inputs.
struct Todo {
    key: ContentKey,
    path: String,
    job: Job,
}

/// A view store being filled: where its vectors go, and which images need which of its views.
struct ViewStore {
    kind: ViewKind,
    count: u32,
    store: Store,
    previous: Option<String>,
    split_wanted: fn(Split) -> bool,
}

impl ViewStore {
    fn open(
        workspace: &std::path::Path,
        backbone_key: &str,
        kind: ViewKind,
        count: u32,
        split_wanted: fn(Split) -> bool,
        progress: &dyn Progress,
    ) -> Result<ViewStore, CacheError> {
        let dir = Store::dir_for(workspace, backbone_key).join(kind.dir_name());
        let (store, damaged) = Store::open(&dir)?;
        warn_damaged(&damaged, progress);
        let previous = store.file_name().map(str::to_owned);
        Ok(ViewStore {
            kind,
            count,
            store,
            previous,
            split_wanted,
        })
    }

    /// The views an image of `split` with content `key` lacks.
    fn missing(&self, split: Split, key: &ContentKey) -> impl Iterator<Item = u32> + '_ {
        let key = *key;
        let wanted = (self.split_wanted)(split);
        (0..self.count).filter(move |&n| wanted && !self.store.contains(&view_key(&key, n)))
    }

    /// Keeps the views of `entries` only and records the store in the manifest's form.
    fn finish(&mut self, entries: &[Entry]) -> Result<ViewsRecord, CacheError> {
        let keep: Vec<ContentKey> = entries
            .iter()
            .filter(|e| (self.split_wanted)(e.sample.split))
            .filter_map(|e| parse_key(&e.sha256))
            .flat_map(|k| (0..self.count).map(move |n| view_key(&k, n)))
            .collect();
        self.store.compact(&keep)?;
        self.store.prune(self.previous.as_deref())?;
        Ok(ViewsRecord {
            kind: self.kind,
            count: self.count,
            store: self.store.file_name().unwrap_or_default().to_string(),
        })
    }
}

fn warn_damaged(damaged: &[Damaged], progress: &dyn Progress) {
    for d in damaged {
        progress.warning(&format!(
            "set aside the damaged cache file {} ({}); its images are recomputed",
            d.path.display(),
            d.reason
        ));
    }
}

/// Runs the whole extract stage and writes the workspace's manifest.
pub fn extract(opts: &ExtractOptions, progress: &dyn Progress) -> Result<ExtractSummary, ExtractError> {
    let started = Instant::now();
    opts.augment_settings.validate()?;
    if opts.shard.is_some() && (opts.augment > 0 || opts.tta || opts.cut.is_some()) {
        return Err(ExtractError::ShardViews);
    }
    let workspace = match opts.shard {
        Some(shard) => shard.workspace(&opts.workspace),
        None => opts.workspace.clone(),
    };
    let owned = |k: &ContentKey| opts.shard.is_none_or(|shard| shard.owns(k));
    let dataset = Dataset::scan(&opts.data, opts.percentages, &opts.labels)?;
    let info = opts.backbone.resolve()?;
    let runtime = crate::runtime::init_for(opts.runtime.ort_lib.as_deref(), opts.runtime.device)?;
    let edit = ModelEdit {
        outputs: opts.cut.iter().map(|c| info.cut_tensor(c)).collect(),
        ..ModelEdit::default()
    };
    let mut backbone = Backbone::open_with(&runtime, info, opts.runtime.threads, &edit)?;
    let device = backbone.placement.clone();
    let key = backbone.key();
    let cut = backbone.cut().cloned();
    let _lock = WorkspaceLock::acquire(&workspace, |path| {
        progress.warning(&format!(
            "waiting for another `headstart extract` on this workspace to finish (it holds {})",
            path.display()
        ))
    })?;
    let (mut store, damaged) = Store::open(&Store::dir_for(&workspace, &key))?;
    warn_damaged(&damaged, progress);
    // The audit's pixel fingerprints, made from the pixels decoded here (a shard's are gathered
    // by `merge`).
    let (mut prints, prints_damaged) = MapStore::open(&fingerprints::dir(&workspace))?;
    for d in prints_damaged {
        progress.warning(&format!(
            "set aside the damaged fingerprint file {} ({}); its fingerprints are made again",
            d.path.display(),
            d.reason
        ));
    }
    let augmented = ViewKind::Augmented(opts.augment_settings);
    let mut views = (opts.augment > 0)
        .then(|| {
            ViewStore::open(
                &workspace,
                &key,
                augmented,
                opts.augment,
                |s| s == Split::Train,
                progress,
            )
        })
        .transpose()?;
    let mut mirrored = opts
        .tta
        .then(|| ViewStore::open(&workspace, &key, ViewKind::Mirrored, 1, |s| s != Split::Train, progress))
        .transpose()?;
    let previous_store = store.file_name().map(str::to_owned);
    let mut maps = match &cut {
        Some((tensor, _)) => {
            let (maps, damaged) = MapStore::open(&Store::dir_for(&workspace, &key).join(CutRecord::dir_name(tensor)))?;
            warn_damaged(&damaged, progress);
            Some(maps)
        }
        None => None,
    };

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
    // One job per distinct content: an image listed twice (a copy in another folder or split)
    // is decoded once for all the inputs either listing needs.
    let mut todo: Vec<Todo> = Vec::new();
    let mut job_of: HashMap<ContentKey, usize> = HashMap::new();
    for (sample, hash) in dataset.samples.iter().zip(&hashed) {
        let k = match hash {
            Ok(k) => k,
            Err(s) => {
                progress.skipped(s);
                skipped.push(s.clone());
                continue;
            }
        };
        if !owned(k) {
            continue;
        }
        let mut renders: Vec<Render> = Vec::new();
        if !store.contains(k) || maps.as_ref().is_some_and(|m| !m.contains(k)) {
            renders.push(Render::Centre);
        }
        if let Some(v) = &views {
            renders.extend(v.missing(sample.split, k).map(Render::Augmented));
        }
        if let Some(m) = &mirrored {
            renders.extend(m.missing(sample.split, k).map(|_| Render::Mirrored));
        }
        let index = *job_of.entry(*k).or_insert_with(|| {
            todo.push(Todo {
                key: *k,
                path: sample.path.clone(),
                job: Job {
                    file: dataset.root.join(&sample.path),
                    renders: Vec::new(),
                },
            });
            todo.len() - 1
        });
        for r in renders {
            if !todo[index].job.renders.contains(&r) {
                todo[index].job.renders.push(r);
            }
        }
    }
    todo.retain(|t| !t.job.renders.is_empty());
    let needs_plain = |t: &Todo| t.job.renders.contains(&Render::Centre);
    let owned_images = hashed.iter().filter(|h| h.as_ref().is_ok_and(owned)).count();
    // With --cut, an image whose vector is cached still goes through the network for its map.
    let reused = owned_images
        - todo
            .iter()
            .filter(|t| needs_plain(t) && !store.contains(&t.key))
            .count();

    progress.start(todo.len() as u64);
    let network_started = Instant::now();
    let jobs: Vec<Job> = todo.iter().map(|t| t.job.clone()).collect();
    let spec = backbone.preprocessing;
    let settings = opts.augment_settings;
    let renderer =
        |i: usize, what: Render, decoded: &crate::preprocess::Decoded, resizer: &mut fast_image_resize::Resizer| {
            render(decoded, &todo[i].key, what, Some(&settings), &spec, resizer)
        };
    let print_wanted: Vec<bool> = todo.iter().map(|t| !prints.contains(&t.key)).collect();
    let made_prints: Mutex<Vec<(ContentKey, Vec<u8>)>> = Mutex::new(Vec::new());
    let on_decoded = |i: usize, decoded: &crate::preprocess::Decoded, resizer: &mut fast_image_resize::Resizer| {
        // One that cannot be made here is made from the file at the end of the run, or named
        // by the audit if that fails too.
        if print_wanted[i] {
            if let Ok(grey) = fingerprints::of_decoded(decoded, resizer) {
                made_prints
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((todo[i].key, grey));
            }
        }
    };
    let mut computed_inputs = [0usize; 3];
    let map_len = cut.as_ref().map_or(0, |(_, shape)| shape.len());
    let mut maps_computed = 0;
    let mut network_inputs = 0;
    let work = jobs.iter().map(|j| j.renders.len()).sum();
    let batch_size = backbone.batch_size(opts.batch_size, work);
    let failures = embed_jobs(
        &mut backbone,
        &jobs,
        &renderer,
        &on_decoded,
        batch_size,
        opts.runtime.max_pixels,
        progress,
        |inputs, width, rows| {
            // With a cut, each row is the features followed by the map.
            let dim = width - map_len;
            network_inputs += inputs.len();
            let mut by_store: [(Vec<ContentKey>, Vec<f32>); 3] = Default::default();
            let mut new_maps: (Vec<ContentKey>, Vec<f32>) = Default::default();
            for (&(i, what), row) in inputs.iter().zip(rows.chunks_exact(width)) {
                let (which, key) = match what {
                    Render::Centre => (0, todo[i].key),
                    Render::Augmented(n) => (1, view_key(&todo[i].key, n)),
                    Render::Mirrored => (2, view_key(&todo[i].key, 0)),
                };
                let (features, map) = row.split_at(dim);
                if which == 0 && maps.as_ref().is_some_and(|m| !m.contains(&key)) {
                    new_maps.0.push(key);
                    new_maps.1.extend_from_slice(map);
                }
                if which == 0 && store.contains(&key) {
                    continue;
                }
                by_store[which].0.push(key);
                by_store[which].1.extend_from_slice(features);
                computed_inputs[which] += 1;
            }
            if let (Some(m), Some((_, shape))) = (maps.as_mut(), &cut) {
                m.append(&new_maps.0, *shape, &new_maps.1)?;
                maps_computed += new_maps.0.len();
            }
            let [(plain_keys, plain_rows), (view_keys, view_rows), (mirror_keys, mirror_rows)] = by_store;
            store.append(&plain_keys, dim, &plain_rows)?;
            if let Some(v) = views.as_mut() {
                v.store.append(&view_keys, dim, &view_rows)?;
            }
            if let Some(m) = mirrored.as_mut() {
                m.store.append(&mirror_keys, dim, &mirror_rows)?;
            }
            save_prints(&mut prints, &made_prints, PRINTS_PER_FILE)?;
            Ok::<_, ExtractError>(())
        },
    )?;
    save_prints(&mut prints, &made_prints, 1)?;
    // A job fails once per image however many of its inputs were lost; the image is skipped
    // only when its plain vector is missing.
    let mut failed = HashMap::new();
    let mut views_failed = Vec::new();
    for (i, reason) in failures {
        let t = &todo[i];
        if failed.contains_key(&t.key) || views_failed.iter().any(|s: &Skipped| s.path == t.path) {
            continue;
        }
        let s = Skipped {
            path: t.path.clone(),
            reason: reason.clone(),
        };
        if store.contains(&t.key) {
            progress.warning(&format!("some views of {} could not be made: {reason}", t.path));
            views_failed.push(s);
        } else {
            progress.skipped(&s);
            failed.insert(t.key, reason);
        }
    }
    let network_seconds = network_started.elapsed().as_secs_f64();
    // Images whose vectors were cached without their fingerprints (an older cache, or a run
    // killed before the fingerprints made with them were saved) get theirs from the file.
    let without_print = (dataset.samples.iter().zip(&hashed)).filter_map(|(sample, hash)| {
        let k = *hash.as_ref().ok()?;
        (owned(&k) && !failed.contains_key(&k)).then_some((k, sample.path.as_str()))
    });
    fingerprints::fill(&mut prints, &dataset.root, without_print, opts.runtime.max_pixels)?;
    progress.finish();

    let listed: Vec<(Entry, ContentKey)> = (dataset.samples.iter().zip(&hashed))
        .filter_map(|(sample, hash)| {
            let k = *hash.as_ref().ok()?;
            let entry = Entry {
                sample: sample.clone(),
                sha256: key_hex(&k),
            };
            Some((entry, k))
        })
        .collect();
    let unread = skipped.clone();
    let mut entries = Vec::new();
    let mut failed_images = Vec::new();
    let mut counts: BTreeMap<String, [usize; 3]> = dataset.classes.iter().map(|c| (c.clone(), [0; 3])).collect();
    let mut images_here = 0;
    for (entry, k) in &listed {
        if let Some(reason) = failed.get(k) {
            failed_images.push(Skipped {
                path: entry.sample.path.clone(),
                reason: reason.clone(),
            });
            continue;
        }
        if owned(k) {
            images_here += 1;
            let labels = entry.sample.labels.clone().unwrap_or_else(|| vec![entry.sample.class]);
            for label in labels {
                counts.get_mut(&dataset.classes[label]).expect("known class")[entry.sample.split as usize] += 1;
            }
        }
        entries.push(entry.clone());
    }
    skipped.extend(failed_images.iter().cloned());
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    if entries.is_empty() {
        return Err(ExtractError::NothingEmbedded(dataset.samples.len()));
    }
    let keep: Vec<ContentKey> = listed.iter().map(|(_, k)| *k).filter(owned).collect();
    // A shard that owns no embedded image has no width to give a store file, and needs none.
    let dropped = match store.dim {
        Some(_) => store.compact(&keep)?,
        None => 0,
    };
    let maps_dropped = maps.as_mut().map(|m| m.compact(&keep)).transpose()?.unwrap_or(0);
    let views_record = views.as_mut().map(|v| v.finish(&entries)).transpose()?;
    let mirrored_record = mirrored.as_mut().map(|m| m.finish(&entries)).transpose()?;
    if views.is_some() {
        drop_other_augmented_views(&Store::dir_for(&workspace, &key), &augmented);
    }
    let views_held = views.as_ref().map_or(0, |v| v.store.len());

    let record = BackboneRecord {
        name: backbone.info.name.clone(),
        model_path: std::fs::canonicalize(&backbone.info.path).unwrap_or_else(|_| backbone.info.path.clone()),
        key,
        model_sha256: backbone.info.sha256.clone(),
        output: backbone.output_name().to_string(),
        preprocessing: backbone.preprocessing,
        dim: store.dim.unwrap_or(0),
    };
    let cut_record = cut.as_ref().map(|(tensor, shape)| CutRecord {
        name: opts.cut.clone().unwrap_or_default(),
        tensor: tensor.clone(),
        shape: *shape,
        dir: CutRecord::dir_name(tensor),
    });
    match opts.shard {
        None => Manifest {
            data_root: dataset.root.clone(),
            classes: dataset.classes.clone(),
            backbone: record.clone(),
            store: store.file_name().expect("compacted with entries").to_string(),
            entries,
            skipped: skipped.clone(),
            multi_label: dataset.multi_label,
            views: views_record,
            mirrored: mirrored_record,
            cut: cut_record.clone(),
            checksum: String::new(),
        }
        .save(&workspace)?,
        Some(shard) => ShardManifest {
            shard,
            data_root: dataset.root.clone(),
            classes: dataset.classes.clone(),
            multi_label: dataset.multi_label,
            backbone: record.clone(),
            store: store.file_name().map(str::to_owned),
            images: listed.into_iter().map(|(entry, _)| entry).collect(),
            skipped: unread,
            failed: failed_images,
            checksum: String::new(),
        }
        .save(&workspace)?,
    }
    store.prune(previous_store.as_deref())?;

    let computed = computed_inputs[0];
    Ok(ExtractSummary {
        data: opts.data.clone(),
        workspace,
        shard: opts.shard,
        backbone: record,
        labelling: dataset.labelling.clone(),
        multi_label: dataset.multi_label,
        classes: dataset.classes.clone(),
        counts,
        images: images_here,
        device,
        batch_size,
        computed,
        reused,
        cut: cut_record,
        maps_computed,
        maps_dropped,
        views_computed: computed_inputs[1],
        views: views_held,
        mirrored_computed: computed_inputs[2],
        views_failed,
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
            network_inputs as f64 / network_seconds
        } else {
            0.0
        },
    })
}

/// Removes the augmented views made with other settings than `current` from a backbone's store
/// folder: they would never be read again, since the manifest names one kind. The mirrored views
/// have no settings and stay.
fn drop_other_augmented_views(backbone_dir: &std::path::Path, current: &ViewKind) {
    let Ok(dirs) = std::fs::read_dir(backbone_dir) else {
        return;
    };
    for dir in dirs.filter_map(|e| e.ok()).map(|e| e.path()) {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let stale = name.starts_with("views-") && name != current.dir_name() && name != ViewKind::Mirrored.dir_name();
        if stale {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Fingerprints saved together in one file by `extract`: few files, and a killed run loses at
/// most this many (the next extract makes them again).
const PRINTS_PER_FILE: usize = 1024;

/// Saves the fingerprints made so far once there are at least `at_least` of them.
fn save_prints(
    store: &mut MapStore,
    made: &Mutex<Vec<(ContentKey, Vec<u8>)>>,
    at_least: usize,
) -> Result<(), CacheError> {
    let made = {
        let mut made = made.lock().unwrap_or_else(|e| e.into_inner());
        if made.len() < at_least.max(1) {
            return Ok(());
        }
        std::mem::take(&mut *made)
    };
    let keys: Vec<ContentKey> = made.iter().map(|(k, _)| *k).collect();
    let grey: Vec<u8> = made.iter().flat_map(|(_, g)| g.iter().copied()).collect();
    fingerprints::save(store, &keys, &grey)
}
