//! `sweep`: many classifier configurations compared by k-fold cross-validation on the cached
//! embeddings, the winner refitted and saved as the workspace's head.
//!
//! # Protocol
//! - The train and val splits together are split into `k` folds by [`crate::folds::assign`]:
//!   stratified, group-aware (files sharing a `_nohash_` prefix stay in one fold) and placed by
//!   a hash of the file name, so a file keeps its fold when others are added. The test split is
//!   never used for choosing.
//! - Every configuration ([`space::TrialSpec`]) is fitted on k - 1 folds and scored on the
//!   held-out one, for each fold (fine-tune trials on the images' cached maps at the cut, the
//!   others on their embeddings; MLP trials once per view setting of
//!   [`SweepOptions::views`]); [`trial::Outcome`] holds the mean, standard deviation and
//!   95% interval of accuracy, mean class recall and log loss over the folds.
//! - Trials are ranked by the images classified right over all folds (pooled accuracy), ties
//!   by lower mean log loss ([`leaderboard::rank`]).
//! - The winner is fitted again on all train and val images and saved as the workspace's
//!   `head.safetensors`, so `eval`, `predict` and `export` use it; the test split is then
//!   scored once, for the winner only.
//!
//! # Engineering
//! - Trials run in parallel on a pool of `threads` workers, one trial per worker, its folds in
//!   turn. No ONNX Runtime session is open during a sweep, so the workers have the cores to
//!   themselves; each trial's GEMMs run on its worker's thread alone
//!   (`matrixmultiply::with_max_threads`, a patch in `vendor/matrixmultiply`), so that workers
//!   never oversubscribe the cores, while the refit afterwards uses them all.
//! - A trial's result depends only on its configuration and the data, never on the order or
//!   the worker it ran on: the same space and seed give the same leaderboard.
//! - Each trial is written to the [`journal`] as it finishes; running the sweep again skips
//!   the trials already there, so a killed sweep resumes where it stopped.
//! - [`SweepOptions::stop`] ends the sweep after the trials running; the summary says
//!   `interrupted`, and nothing is refitted.
//! - A trial that fails (its fit errs or diverges) is recorded as failed with the reason, and
//!   the sweep goes on.
//! - The embeddings are held once; each running trial gathers its fold's rows, one fold at a
//!   time.

pub mod journal;
pub mod leaderboard;
pub mod space;
pub mod trial;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ndarray::{concatenate, Array2, Axis};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::artifact::{self, ArtifactError, Card, HEAD_FILE};
use crate::cache::maps::{CachedMaps, MapStore};
use crate::cache::{CacheError, Entry, Manifest, WorkspaceLock};
use crate::dataset::Split;
use crate::finetune::{MapRows, Top};
use crate::folds::{self, FoldError, FoldWarning, Folds};
use crate::views::{with_views, ViewPolicy};
use journal::Journal;
use space::TrialSpec;
use trial::{FoldScore, Outcome, TrialData, TrialResult};

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The workspace holds multi-label data, which the sweep's head kinds do not take.
    #[error("the workspace holds multi-label data: sweep compares single-label classifiers only for now; use train-head and eval, which train and measure multi-label heads")]
    MultiLabel,
    /// The workspace's manifest or cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The folds could not be made.
    #[error(transparent)]
    Folds(#[from] FoldError),
    /// The space has no configuration.
    #[error("the search space has no configuration: give at least one head kind")]
    NoTrials,
    /// The journal could not be read or written.
    #[error("cannot use the sweep journal {path}: {source}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The winner could not be refitted.
    #[error("refitting the winner ({label}) on train + val failed: {reason}")]
    Refit {
        /// The winner's configuration.
        label: String,
        /// Why.
        reason: String,
    },
    /// The winner could not be saved.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A backbone asked for has no embeddings of this data in the workspace.
    #[error("backbone `{name}` is not cached for this data ({cached}): run `headstart extract --data {} --model {name}` first", data.display())]
    NotCached {
        /// The name asked for.
        name: String,
        /// The backbones that are cached, in words.
        cached: String,
        /// The workspace's data folder.
        data: PathBuf,
    },
    /// Several view settings were asked for, but a backbone has no augmented views to draw.
    #[error("--augment compares {settings}, but backbone `{name}` has no augmented views cached: run `headstart extract --data {} --model {name} --augment K` first, or give one setting", data.display())]
    NoViews {
        /// The backbone.
        name: String,
        /// The settings asked for, in words.
        settings: String,
        /// The workspace's data folder.
        data: PathBuf,
    },
    /// Fine-tune trials were asked for, but a backbone has no maps at their cut.
    #[error("fine-tune trials train on the maps `extract --cut` caches, and backbone `{backbone}` {cached} in this workspace: run `headstart extract --data {} --model {backbone} --cut {cut}` first", data.display())]
    NoMaps {
        /// The backbone.
        backbone: String,
        /// The cut asked for, or `NAME`.
        cut: String,
        /// What it has, in words.
        cached: String,
        /// The workspace's data folder.
        data: PathBuf,
    },
    /// The backbone's layers after the cut could not be read for fine-tune trials.
    #[error(transparent)]
    Backbone(#[from] crate::backbone::BackboneError),
    /// The layers after the cut cannot be trained.
    #[error(transparent)]
    Build(#[from] crate::finetune::BuildError),
    /// A cached backbone's embeddings are of other images than the workspace's current ones.
    #[error("backbone `{name}` was last extracted from other images than the workspace's current data: run `headstart extract --data {} --model {name}` again", data.display())]
    OtherData {
        /// The backbone.
        name: String,
        /// The workspace's data folder.
        data: PathBuf,
    },
    /// The worker pool could not be started.
    #[error("cannot start {threads} worker threads: {message}")]
    Pool {
        /// Threads asked for.
        threads: usize,
        /// Why.
        message: String,
    },
}

/// What a sweep runs; build with [`SweepOptions::new`] and struct update.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Folder holding the cache; the journal, the winner and the leaderboard go there too.
    pub workspace: PathBuf,
    /// The configurations to try.
    pub trials: Vec<TrialSpec>,
    /// Number of folds, >= 2.
    pub folds: usize,
    /// Trials run at once; 0 for one per core.
    pub threads: usize,
    /// Refit the winner on train + val and save it as the workspace's head.
    pub refit: bool,
    /// Set to stop the sweep after the trials running (Ctrl-C).
    pub stop: Option<Arc<AtomicBool>>,
    /// The backbones whose embeddings are compared.
    pub backbones: Backbones,
    /// How MLP trials use the augmented views `extract --augment K` cached, as `train-head`
    /// does. Several settings are one more dimension of the grid: every MLP trial runs under
    /// each, the other kinds once (they fit the plain vectors whatever the setting).
    pub views: Vec<ViewPolicy>,
}

/// Which cached backbones a sweep runs on; every one under the same folds, in one leaderboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backbones {
    /// The workspace's current backbone (its last `extract`).
    Current,
    /// Every backbone cached for the workspace's data.
    All,
    /// These, by name (as `extract --model` took them) or cache key.
    Named(Vec<String>),
}

impl SweepOptions {
    /// Default number of folds.
    pub const DEFAULT_FOLDS: usize = 5;

    /// A 5-fold sweep over `trials` on all cores, refitting the winner.
    pub fn new(workspace: impl Into<PathBuf>, trials: Vec<TrialSpec>) -> Self {
        SweepOptions {
            workspace: workspace.into(),
            trials,
            folds: Self::DEFAULT_FOLDS,
            threads: 0,
            refit: true,
            stop: None,
            backbones: Backbones::Current,
            views: vec![ViewPolicy::default()],
        }
    }
}

/// The winner, fitted on train + val.
#[derive(Debug, Clone, Serialize)]
pub struct Refit {
    /// Its configuration's id.
    pub id: String,
    /// Its configuration in words.
    pub label: String,
    /// Its backbone's name.
    pub backbone: String,
    /// Whether the workspace was switched to that backbone (it was not the current one): its
    /// manifest became the workspace's, as `extract --model` with everything cached would do.
    pub switched_backbone: bool,
    /// The file written.
    pub path: PathBuf,
    /// Its scores on the test split (`seconds`: the prediction); `None` when the workspace has
    /// no test images.
    pub test: Option<FoldScore>,
    /// Seconds to fit and save.
    pub seconds: f64,
}

/// One backbone's journal, under one view setting.
#[derive(Debug, Clone, Serialize)]
pub struct JournalRef {
    /// The backbone's name.
    pub backbone: String,
    /// The view setting of its MLP trials, when the backbone has augmented views cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub views: Option<ViewPolicy>,
    /// The protocol id: data fingerprint, backbone and folds.
    pub protocol: String,
    /// The journal file.
    pub path: PathBuf,
}

/// What a sweep did. Its JSON form is the sweep's output file (schema in README.md).
#[derive(Debug, Clone, Serialize)]
pub struct SweepSummary {
    /// Each backbone's journal.
    pub journals: Vec<JournalRef>,
    /// Number of folds.
    pub folds: usize,
    /// Train and val images in each fold.
    pub fold_sizes: Vec<usize>,
    /// What the folds could not do as asked (a class with fewer groups than folds).
    pub warnings: Vec<FoldWarning>,
    /// Class names.
    pub classes: Vec<String>,
    /// The backbones compared, by name.
    pub backbones: Vec<String>,
    /// Every trial of the space that finished, best first (failed last).
    pub results: Vec<TrialResult>,
    /// How many of them came from the journal rather than this run.
    pub resumed: usize,
    /// Trials of the space not run (the sweep was stopped).
    pub not_run: usize,
    /// Whether the sweep was stopped before the end.
    pub interrupted: bool,
    /// The refitted winner.
    pub refit: Option<Refit>,
    /// Worker threads used.
    pub threads: usize,
    /// Wall time of the sweep, in seconds.
    pub seconds: f64,
}

/// Runs the sweep (see the module docs); `on_trial` is told of each trial as it finishes, with
/// the number finished and the total.
pub fn sweep(
    opts: &SweepOptions,
    on_trial: &(dyn Fn(&TrialResult, usize, usize) + Sync),
) -> Result<SweepSummary, SweepError> {
    let started = Instant::now();
    if opts.trials.is_empty() {
        return Err(SweepError::NoTrials);
    }
    let current = Manifest::load(&opts.workspace)?;
    if current.multi_label {
        return Err(SweepError::MultiLabel);
    }
    let manifests = backbones(opts, &current)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| SweepError::Pool {
            threads,
            message: e.to_string(),
        })?;
    let mut policies: Vec<ViewPolicy> = Vec::new();
    for &policy in &opts.views {
        if !policies.contains(&policy) {
            policies.push(policy);
        }
    }
    if policies.is_empty() {
        policies.push(ViewPolicy::default());
    }
    if policies.len() > 1 {
        if let Some(bare) = manifests.iter().find(|m| m.views.is_none()) {
            return Err(SweepError::NoViews {
                name: bare.backbone.name.clone(),
                settings: policies.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
                data: current.data_root.clone(),
            });
        }
    }
    let mlp_trials = opts.trials.iter().filter(|t| matches!(t, TrialSpec::Mlp(_))).count();
    let total = (opts.trials.len() + mlp_trials * (policies.len() - 1)) * manifests.len();
    let mut results = Vec::new();
    let mut journals = Vec::new();
    let mut resumed = 0;
    let mut first_folds = None;
    // One backbone and view setting at a time, so that only one set of rows is held. The first
    // setting runs every trial; the others only the MLP trials, the one kind that draws views.
    let runs = manifests
        .iter()
        .flat_map(|m| policies.iter().enumerate().map(move |(i, &p)| (m, p, i == 0)));
    for (manifest, policy, first_setting) in runs {
        let (rows, assigned) = train_and_val(opts, manifest, policy)?;
        let specs: Vec<TrialSpec> = opts
            .trials
            .iter()
            .filter(|spec| first_setting || matches!(spec, TrialSpec::Mlp(_)))
            .map(|spec| at_cut(spec, manifest))
            .collect::<Result<_, _>>()?;
        let tuning = top_and_maps(opts, manifest, &specs)?;
        let maps = maps_of(&tuning, &rows.entries)?;
        let data = rows.data(at_cut_with(&maps, &tuning));
        let fold: Vec<usize> = assigned
            .fold
            .iter()
            .map(|f| f.expect("train and val files have a fold"))
            .collect();
        // Views change what an MLP trial trains on, so they are part of what makes results
        // comparable: a journal is never resumed across view settings.
        let views = match (&manifest.views, &rows.pools) {
            (Some(record), Some(_)) => format!("|views {} x{} {:?}", record.kind.dir_name(), record.count, policy),
            _ => String::new(),
        };
        let trial_views = |spec: &TrialSpec| match spec {
            TrialSpec::Mlp(_) => manifest.views.as_ref().map(|_| policy),
            _ => None,
        };
        let protocol = protocol_id(
            &crate::runs::fingerprint(manifest).sha256,
            &format!("{}{views}", manifest.backbone.key),
            opts.folds,
        );
        let journal = Journal::open(&opts.workspace, &protocol).map_err(|source| SweepError::Journal {
            path: opts.workspace.join(journal::DIR),
            source,
        })?;
        let journal_error = |source| SweepError::Journal {
            path: journal.path().to_path_buf(),
            source,
        };
        let done = journal.read().map_err(journal_error)?;
        let backbone = manifest.backbone.name.clone();
        let mut pending = Vec::new();
        for spec in &specs {
            match done.get(&spec.id()) {
                Some(r) if r.spec == *spec => {
                    results.push(TrialResult {
                        backbone: backbone.clone(),
                        views: trial_views(spec),
                        ..r.clone()
                    });
                    resumed += 1;
                }
                _ => pending.push(spec.clone()),
            }
        }
        let finished = Mutex::new((std::mem::take(&mut results), None::<std::io::Error>));
        let stopped = || opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
        pool.install(|| {
            pending.par_iter().with_max_len(1).for_each(|spec| {
                if stopped() {
                    return;
                }
                // The trials are the parallelism: one GEMM thread each, so the workers never
                // compete with matrixmultiply's own threads for the cores.
                let result = TrialResult {
                    backbone: backbone.clone(),
                    views: trial_views(spec),
                    ..matrixmultiply::with_max_threads(1, || {
                        trial::run_on(spec, &data, &fold, opts.folds, &manifest.classes)
                    })
                };
                let written = journal.append(&result);
                let mut guard = finished.lock().expect("no worker panics holding the lock");
                if let Err(e) = written {
                    guard.1.get_or_insert(e);
                }
                guard.0.push(result);
                on_trial(guard.0.last().expect("just pushed"), guard.0.len(), total);
            });
        });
        let (all, write_error) = finished.into_inner().expect("no worker panicked");
        results = all;
        if let Some(source) = write_error {
            return Err(journal_error(source));
        }
        journals.push(JournalRef {
            backbone,
            views: manifest.views.as_ref().map(|_| policy),
            protocol,
            path: journal.path().to_path_buf(),
        });
        first_folds.get_or_insert(assigned);
    }
    leaderboard::rank(&mut results);
    let not_run = total - results.len();
    let interrupted = not_run > 0;
    let folds = first_folds.expect("at least one backbone");

    let refit = match results.first() {
        Some(winner) if opts.refit && !interrupted && matches!(winner.outcome, Outcome::Done { .. }) => {
            let manifest = manifests
                .iter()
                .find(|m| m.backbone.name == winner.backbone)
                .expect("the winner ran on one of them");
            Some(refit(opts, manifest, &current, winner)?)
        }
        _ => None,
    };
    Ok(SweepSummary {
        journals,
        folds: opts.folds,
        fold_sizes: folds.sizes(),
        warnings: folds.warnings,
        classes: current.classes.clone(),
        backbones: manifests.iter().map(|m| m.backbone.name.clone()).collect(),
        results,
        resumed,
        not_run,
        interrupted,
        refit,
        threads,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The train and val images' rows (then their views' rows, if any), each row's class, and with
/// views each image's rows to draw from.
struct TrainingRows {
    x: Array2<f32>,
    y: Vec<usize>,
    pools: Option<Vec<Vec<usize>>>,
    /// The images, in row order: whose maps fine-tune trials read.
    entries: Vec<Entry>,
}

impl TrainingRows {
    /// What trials fit on: these rows, and `maps` at the cut for fine-tune trials.
    fn data<'a>(&'a self, maps: Option<(&'a dyn MapRows, &'a Top)>) -> TrialData<'a> {
        TrialData {
            x: self.x.view(),
            y: &self.y,
            pools: self.pools.as_deref(),
            maps,
        }
    }
}

/// The maps of `entries` at the cut, when `tuning` (from [`top_and_maps`]) holds a store.
fn maps_of<'a>(tuning: &'a Option<(Top, MapStore)>, entries: &[Entry]) -> Result<Option<CachedMaps<'a>>, SweepError> {
    Ok(tuning
        .as_ref()
        .map(|(_, store)| CachedMaps::new(store, entries))
        .transpose()?)
}

/// `maps` with the top they go through, as fine-tune trials take them.
fn at_cut_with<'a>(
    maps: &'a Option<CachedMaps<'a>>,
    tuning: &'a Option<(Top, MapStore)>,
) -> Option<(&'a dyn MapRows, &'a Top)> {
    maps.as_ref()
        .zip(tuning.as_ref())
        .map(|(m, (top, _))| (m as &dyn MapRows, top))
}

/// The train and val embeddings of `manifest`'s backbone as one matrix, the train images' cached
/// views appended (when `policy` uses them), and the images' folds.
fn train_and_val(
    opts: &SweepOptions,
    manifest: &Manifest,
    policy: ViewPolicy,
) -> Result<(TrainingRows, Folds), SweepError> {
    let store = manifest.open_store(&opts.workspace)?;
    let train = manifest.split(&store, Split::Train)?;
    let val = manifest.split(&store, Split::Val)?;
    let samples = train.entries.iter().chain(&val.entries).map(|e| &e.sample);
    let assigned = folds::assign(&manifest.classes, samples, opts.folds)?;
    let x = concatenate(Axis(0), &[train.x.view(), val.x.view()]).expect("same width");
    let entries: Vec<Entry> = train.entries.iter().chain(&val.entries).cloned().collect();
    let y: Vec<usize> = train.y.iter().chain(&val.y).copied().collect();
    let rows = match (&manifest.views, policy) {
        (Some(record), ViewPolicy::WithPlain | ViewPolicy::ViewsOnly) => {
            let mut vectors = manifest.view_vectors(&opts.workspace, record, &train.entries)?;
            vectors.resize(y.len(), Vec::new());
            let v = with_views(&x, &y, None, vectors, policy);
            TrainingRows {
                x: v.x,
                y: v.y,
                pools: Some(v.pools),
                entries,
            }
        }
        _ => TrainingRows {
            x,
            y,
            pools: None,
            entries,
        },
    };
    Ok((rows, assigned))
}

/// The manifests of the backbones `opts` asks for, each checked to hold the current data.
fn backbones(opts: &SweepOptions, current: &Manifest) -> Result<Vec<Manifest>, SweepError> {
    let names = match &opts.backbones {
        Backbones::Current => return Ok(vec![current.clone()]),
        Backbones::All => None,
        Backbones::Named(names) => Some(names),
    };
    let mut cached = Manifest::cached_backbones(&opts.workspace)?;
    // The current one even if its folder has no copy (extracted before copies were kept).
    if !cached.iter().any(|m| m.backbone.key == current.backbone.key) {
        cached.insert(0, current.clone());
    }
    let data = crate::runs::fingerprint(current).sha256;
    let same_data = |m: &Manifest| crate::runs::fingerprint(m).sha256 == data;
    let Some(names) = names else {
        return Ok(cached.into_iter().filter(same_data).collect());
    };
    let mut manifests: Vec<Manifest> = Vec::new();
    for name in names {
        let manifest = cached
            .iter()
            .find(|m| m.backbone.name == *name || m.backbone.key == *name)
            .ok_or_else(|| SweepError::NotCached {
                name: name.clone(),
                cached: format!(
                    "cached: {}",
                    cached
                        .iter()
                        .map(|m| m.backbone.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                data: current.data_root.clone(),
            })?;
        if !same_data(manifest) {
            return Err(SweepError::OtherData {
                name: name.clone(),
                data: current.data_root.clone(),
            });
        }
        if !manifests.iter().any(|m| m.backbone.key == manifest.backbone.key) {
            manifests.push(manifest.clone());
        }
    }
    Ok(manifests)
}

/// Fits the winner on all train and val images of its backbone, saves it as the workspace's
/// head (switching the workspace to that backbone if it is not the current one) and scores the
/// test split.
fn refit(
    opts: &SweepOptions,
    manifest: &Manifest,
    current: &Manifest,
    winner: &TrialResult,
) -> Result<Refit, SweepError> {
    let started = Instant::now();
    let label = winner.label();
    let policy = winner.views.unwrap_or(ViewPolicy::Off);
    let (rows, assigned) = train_and_val(opts, manifest, policy)?;
    let all: Vec<usize> = (0..assigned.fold.len()).collect();
    let specs = std::slice::from_ref(&winner.spec);
    let tuning = top_and_maps(opts, manifest, specs)?;
    let maps = maps_of(&tuning, &rows.entries)?;
    let data = rows.data(at_cut_with(&maps, &tuning));
    let model =
        trial::fit_on(&winner.spec, &data, &all, manifest.classes.len()).map_err(|reason| SweepError::Refit {
            label: label.clone(),
            reason,
        })?;
    let pools = rows.pools.is_some();
    drop(rows);
    let card = Card {
        thresholds: None,
        kind: match winner.spec {
            TrialSpec::Mlp(_) => "head".into(),
            ref other => other.kind().into(),
        },
        classes: manifest.classes.clone(),
        backbone: manifest.backbone.clone(),
        settings: {
            let mut settings = serde_json::to_value(&winner.spec).expect("plain data");
            if let (Some(record), true, TrialSpec::Mlp(_)) = (&manifest.views, pools, &winner.spec) {
                settings["views"] = serde_json::json!({
                    "policy": policy,
                    "kind": record.kind,
                    "count": record.count,
                });
            }
            settings
        },
        history: Vec::new(),
        best_epoch: None,
        sweep: Vec::new(),
    };
    let switched_backbone = manifest.backbone.key != current.backbone.key;
    if switched_backbone {
        // Under extract's lock, so that an extract running meanwhile is not undone half-way.
        let _lock = WorkspaceLock::acquire(&opts.workspace, |_| {})?;
        manifest.save(&opts.workspace)?;
    }
    let path = opts.workspace.join(HEAD_FILE);
    artifact::save(&path, model.as_ref(), card.to_metadata())?;
    let seconds = started.elapsed().as_secs_f64();
    let store = manifest.open_store(&opts.workspace)?;
    let test = manifest.split(&store, Split::Test)?;
    let test_maps = maps_of(&tuning, &test.entries)?;
    let test_data = TrialData {
        maps: at_cut_with(&test_maps, &tuning),
        ..TrialData::plain(test.x.view(), &test.y)
    };
    let test = (!test.y.is_empty()).then(|| {
        let scoring = Instant::now();
        let every: Vec<usize> = (0..test.y.len()).collect();
        let probs = trial::predict_on(model.as_ref(), &test_data, &every);
        trial::score(
            probs.view(),
            &test.y,
            &manifest.classes,
            scoring.elapsed().as_secs_f64(),
        )
    });
    Ok(Refit {
        id: winner.id.clone(),
        label,
        backbone: manifest.backbone.name.clone(),
        switched_backbone,
        path,
        test,
        seconds,
    })
}

/// `spec` with its cut filled in: a fine-tune trial runs on the maps `manifest` holds, which it
/// must name if it names a cut at all; the other kinds as they are.
fn at_cut(spec: &TrialSpec, manifest: &Manifest) -> Result<TrialSpec, SweepError> {
    let TrialSpec::Finetune { cut, params } = spec else {
        return Ok(spec.clone());
    };
    match &manifest.cut {
        Some(record) if cut.is_empty() || *cut == record.name || *cut == record.tensor => Ok(TrialSpec::Finetune {
            cut: record.name.clone(),
            params: params.clone(),
        }),
        other => Err(SweepError::NoMaps {
            backbone: manifest.backbone.name.clone(),
            cut: if cut.is_empty() { "NAME".into() } else { cut.clone() },
            cached: match other {
                Some(record) => format!("has maps at `{}` only", record.name),
                None => "has no maps at a cut".into(),
            },
            data: manifest.data_root.clone(),
        }),
    }
}

/// For fine-tune trials among `specs`: the top as the backbone has it, and the store of the maps
/// at the cut; `None` when there are none.
fn top_and_maps(
    opts: &SweepOptions,
    manifest: &Manifest,
    specs: &[TrialSpec],
) -> Result<Option<(Top, MapStore)>, SweepError> {
    match (
        &manifest.cut,
        specs.iter().any(|s| matches!(s, TrialSpec::Finetune { .. })),
    ) {
        (Some(record), true) => Ok(Some(crate::finetune::cached_top::<SweepError>(
            &opts.workspace,
            manifest,
            record,
        )?)),
        _ => Ok(None),
    }
}

/// The journal's name: 16 hex digits of the SHA-256 of what makes results comparable.
fn protocol_id(data: &str, backbone: &str, folds: usize) -> String {
    let text = format!("data {data}\nbackbone {backbone}\nfolds {folds}\nfold scheme 1\n");
    crate::fetch::hex(&Sha256::digest(text.as_bytes()))[..16].to_string()
}
