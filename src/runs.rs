//! Run records: what each `train-head` and `eval` did, kept in the workspace (`runs/`, one JSON
//! file per run) so that runs can be listed, sorted by a metric and compared, as MLflow tracking
//! and `dvc exp show` do.
//!
//! A record is built from a command's options and summary after the command succeeded, so the
//! commands themselves know nothing of records. Its JSON schema is documented in README.md
//! ("Run records"); [`SCHEMA`] is its version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::atomic::{write_file, WriteError};
use crate::cache::{CacheError, Damaged, Manifest};
use crate::evaluate::{EvalOptions, EvalSummary};
use crate::fetch::hex;
use crate::head::EpochStats;
use crate::metrics::Evaluation;
use crate::sweep::trial::Outcome;
use crate::sweep::{SweepOptions, SweepSummary};
use crate::train::{TrainOptions, TrainSummary};

/// Version of the record format; a reader skips records of a newer one as damaged.
pub const SCHEMA: u32 = 1;
/// The workspace folder holding the records.
pub const DIR: &str = "runs";

/// Why a run record could not be written or found.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    /// The workspace's manifest could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The record could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A file in `runs/` could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// No id starts with the prefix given.
    #[error("no run has an id starting with `{0}`: `headstart runs` lists them")]
    NotFound(String),
    /// Several ids start with the prefix given.
    #[error("`{prefix}` starts {} run ids ({}): give more of the id", matches.len(), matches.join(", "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The ids it starts.
        matches: Vec<String>,
    },
    /// The metric to sort by is in no record.
    #[error("no run has the metric `{metric}`; the runs have: {}", known.join(", "))]
    UnknownMetric {
        /// The metric asked for.
        metric: String,
        /// The metrics the records have.
        known: Vec<String>,
    },
}

/// One run of a command, as stored in `runs/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`SCHEMA`] of the writer.
    pub schema: u32,
    /// UTC start time to the millisecond and a random suffix, `20250314T153012.345Z-a1b2c3`:
    /// ids sort in the order the runs started.
    pub id: String,
    /// Start time, RFC 3339 in UTC.
    pub time: String,
    /// `train-head` or `eval`.
    pub command: String,
    /// The command line as typed (`demo` records its train and eval steps under its own).
    pub argv: Vec<String>,
    /// Every option of the command, defaults included.
    pub settings: Value,
    /// Which images the run used.
    pub data: DataFingerprint,
    /// Which embeddings the run used.
    pub backbone: BackboneId,
    /// Flat metric names (`head.accuracy`) to values; see README.md for the names.
    pub metrics: BTreeMap<String, f64>,
    /// Seconds: `total` for the whole command, and per part where the summary has them.
    pub durations: BTreeMap<String, f64>,
    /// Classifier files written (`train-head`) or read (`eval`).
    pub files: Vec<FileChecksum>,
}

/// Which images the run used: changes when a file is added, removed, renamed, relabelled or
/// moved to another split, and not otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// SHA-256 over the manifest's (path, class name, split) triples, in sorted order.
    pub sha256: String,
    /// Images in the manifest.
    pub images: usize,
    /// Classes in the manifest.
    pub classes: usize,
}

/// The embeddings the run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneId {
    /// The cache key: model checksum, output and preprocessing.
    pub key: String,
    /// The backbone's file name, for people.
    pub name: String,
}

/// A classifier file and its content's SHA-256, as it was on disk when the record was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChecksum {
    /// `head` or `baseline`.
    pub model: String,
    /// `written` or `read`.
    pub access: String,
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of its content, hex.
    pub sha256: String,
}

/// When and how a command was started; make one before running it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The command line.
    pub argv: Vec<String>,
    /// Wall-clock start, for the record's id and time.
    pub started: SystemTime,
    clock: Instant,
}

impl Invocation {
    /// Starts the clock now.
    pub fn begin(argv: Vec<String>) -> Self {
        Invocation {
            argv,
            started: SystemTime::now(),
            clock: Instant::now(),
        }
    }
}

/// The record of a `train-head` run.
pub fn train_record(run: &Invocation, opts: &TrainOptions, s: &TrainSummary) -> Result<RunRecord, RunsError> {
    let settings = json!({
        "workspace": opts.workspace,
        "head": as_written(&opts.head),
        "baseline": opts.baseline.as_ref().map(as_written),
        "views": opts.views,
        "finetune": opts.finetune.as_ref().map(as_written),
        "out": opts.out,
    });
    let mut metrics = BTreeMap::new();
    let mut put = |name: String, value: Option<f32>| {
        if let Some(v) = value {
            metrics.insert(format!("head.{name}"), widen(v));
        }
    };
    // Each figure of the history, and whether lower is better.
    type Figure = fn(&EpochStats) -> Option<f32>;
    let figures: [(&str, Figure, bool); 4] = [
        ("train_loss", |e| Some(e.train_loss), true),
        ("train_accuracy", |e| Some(e.train_accuracy), false),
        ("val_loss", |e| e.val_loss, true),
        ("val_accuracy", |e| e.val_accuracy, false),
    ];
    for (name, figure, lower) in figures {
        put(format!("final.{name}"), s.history.last().and_then(figure));
        let best = s
            .history
            .iter()
            .filter_map(figure)
            .filter(|v| v.is_finite())
            .reduce(|a, b| if (b < a) == lower { b } else { a });
        put(format!("best.{name}"), best);
    }
    metrics.insert("head.epochs".into(), s.history.len() as f64);
    metrics.insert("head.kept_epoch".into(), s.best_epoch as f64);
    let mut durations = BTreeMap::from([("head".to_string(), s.seconds)]);
    let mut files = vec![checksum("head", "written", &s.head_path)?];
    if let Some(b) = &s.baseline {
        metrics.insert("baseline.c".into(), 1.0 / b.chosen_alpha);
        if let Some(point) = b.sweep.iter().find(|p| p.alpha == b.chosen_alpha) {
            metrics.insert("baseline.train_accuracy".into(), point.train_accuracy);
            for (name, value) in [("val_accuracy", point.val_accuracy), ("val_loss", point.val_loss)] {
                if let Some(v) = value {
                    metrics.insert(format!("baseline.{name}"), v);
                }
            }
        }
        durations.insert("baseline".into(), b.seconds);
        files.push(checksum("baseline", "written", &b.path)?);
    }
    record(run, "train-head", &opts.workspace, settings, metrics, durations, files)
}

/// The record of an `eval` run: per model, `accuracy`, `mean_class_recall`, `macro_f1`,
/// `log_loss` and `top5_accuracy` (when there are more than 5 classes); for multi-label data
/// `map`, `subset_accuracy`, `hamming_loss`, `micro_f1` and `macro_f1`.
pub fn eval_record(run: &Invocation, opts: &EvalOptions, s: &EvalSummary) -> Result<RunRecord, RunsError> {
    let settings = json!({
        "workspace": opts.workspace,
        "split": opts.split,
        "head": opts.head,
        "report_dir": opts.report_dir,
    });
    let mut metrics = BTreeMap::new();
    let mut files = Vec::new();
    for m in &s.models {
        let e = &m.evaluation;
        let mut put = |name: &str, value: f64| metrics.insert(format!("{}.{name}", m.model), value);
        put("accuracy", e.accuracy);
        put("mean_class_recall", e.mean_class_recall);
        put("macro_f1", macro_f1(e));
        put("log_loss", e.log_loss);
        if let Some(top5) = e.top5_accuracy {
            put("top5_accuracy", top5);
        }
        files.push(checksum(&m.model, "read", &m.file)?);
    }
    for m in &s.multi_label {
        let e = &m.evaluation;
        let mut put = |name: &str, value: f64| metrics.insert(format!("{}.{name}", m.model), value);
        put("map", e.mean_average_precision);
        put("subset_accuracy", e.subset_accuracy);
        put("hamming_loss", e.hamming_loss);
        put("micro_f1", e.micro_f1);
        put("macro_f1", e.macro_f1);
        files.push(checksum(&m.model, "read", &m.file)?);
    }
    record(run, "eval", &opts.workspace, settings, metrics, BTreeMap::new(), files)
}

/// The record of a `sweep` run: the winner's cross-validated `cv.accuracy`, `cv.accuracy_std`,
/// `cv.mean_class_recall` and `cv.log_loss`, its `test.*` scores when it was refitted and the
/// workspace has a test split, and the numbers of `trials` and `failed` trials.
pub fn sweep_record(run: &Invocation, opts: &SweepOptions, s: &SweepSummary) -> Result<RunRecord, RunsError> {
    let settings = json!({
        "workspace": opts.workspace,
        "folds": opts.folds,
        "threads": s.threads,
        "refit": opts.refit,
        "trials": opts.trials,
        "views": opts.views,
        "winner": s.results.first().map(|r| &r.spec),
        "winner_views": s.results.first().and_then(|r| r.views),
    });
    let mut metrics = BTreeMap::new();
    metrics.insert("trials".to_string(), s.results.len() as f64);
    let failed = s
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
        .count();
    metrics.insert("failed".to_string(), failed as f64);
    if let Some(Outcome::Done {
        accuracy,
        mean_class_recall,
        log_loss,
        ..
    }) = s.results.first().map(|r| &r.outcome)
    {
        metrics.insert("cv.accuracy".into(), accuracy.mean);
        metrics.insert("cv.accuracy_std".into(), accuracy.std);
        metrics.insert("cv.mean_class_recall".into(), mean_class_recall.mean);
        metrics.insert("cv.log_loss".into(), log_loss.mean);
    }
    let mut files = Vec::new();
    let mut durations = BTreeMap::from([("sweep".to_string(), s.seconds)]);
    if let Some(refit) = &s.refit {
        if let Some(t) = &refit.test {
            metrics.insert("test.accuracy".into(), t.accuracy);
            metrics.insert("test.mean_class_recall".into(), t.mean_class_recall);
            metrics.insert("test.log_loss".into(), t.log_loss);
        }
        durations.insert("refit".into(), refit.seconds);
        files.push(checksum("winner", "written", &refit.path)?);
    }
    record(run, "sweep", &opts.workspace, settings, metrics, durations, files)
}

/// `value` as its JSON text reads back. `json!` would widen an f32 field to its exact f64
/// (a learning rate of 0.0010000000474974513); the text has the shortest decimal, 0.001.
fn as_written(value: &impl Serialize) -> Value {
    serde_json::to_string(value)
        .and_then(|text| serde_json::from_str(&text))
        .expect("plain data")
}

/// The shortest decimal that reads back as `x`, so a record shows 0.9 rather than the f32's
/// exact 0.8999999761581421.
fn widen(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Unweighted mean F1 over the classes that occur in the labels or the predictions, as
/// scikit-learn's `f1_score(average="macro")`.
fn macro_f1(e: &Evaluation) -> f64 {
    let occurs = |c: usize| e.confusion[c].iter().sum::<usize>() > 0 || e.confusion.iter().any(|row| row[c] > 0);
    let f1: Vec<f64> = (0..e.per_class.len())
        .filter(|&c| occurs(c))
        .map(|c| e.per_class[c].f1)
        .collect();
    if f1.is_empty() {
        0.0
    } else {
        f1.iter().sum::<f64>() / f1.len() as f64
    }
}

fn checksum(model: &str, access: &str, path: &Path) -> Result<FileChecksum, RunsError> {
    let bytes = std::fs::read(path).map_err(|source| RunsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(FileChecksum {
        model: model.into(),
        access: access.into(),
        path: path.to_path_buf(),
        sha256: hex(&Sha256::digest(&bytes)),
    })
}

/// The fingerprint of the manifest's images: see [`DataFingerprint`].
pub fn fingerprint(manifest: &Manifest) -> DataFingerprint {
    let mut lines: Vec<String> = manifest
        .entries
        .iter()
        .map(|e| {
            let s = &e.sample;
            let class = manifest
                .classes
                .get(s.class)
                .cloned()
                .unwrap_or_else(|| s.class.to_string());
            // JSON, so that no file name can make two different lists hash alike.
            serde_json::to_string(&(&s.path, class, s.split)).expect("plain data")
        })
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    DataFingerprint {
        sha256: hex(&hasher.finalize()),
        images: lines.len(),
        classes: manifest.classes.len(),
    }
}

fn record(
    run: &Invocation,
    command: &str,
    workspace: &Path,
    settings: Value,
    mut metrics: BTreeMap<String, f64>,
    mut durations: BTreeMap<String, f64>,
    files: Vec<FileChecksum>,
) -> Result<RunRecord, RunsError> {
    let manifest = Manifest::load(workspace)?;
    // JSON has no NaN or infinity; a metric without a value is left out.
    metrics.retain(|_, v| v.is_finite());
    durations.insert("total".into(), run.clock.elapsed().as_secs_f64());
    let time = Utc::from(run.started);
    Ok(RunRecord {
        schema: SCHEMA,
        id: new_id(&workspace.join(DIR), &time),
        time: time.rfc3339(),
        command: command.into(),
        argv: run.argv.clone(),
        settings,
        data: fingerprint(&manifest),
        backbone: BackboneId {
            key: manifest.backbone.key.clone(),
            name: manifest.backbone.name.clone(),
        },
        metrics,
        durations,
        files,
    })
}

/// An id no record in `dir` has yet.
fn new_id(dir: &Path, time: &Utc) -> String {
    loop {
        let id = format!("{}-{:06x}", time.compact(), rand::random::<u32>() & 0xff_ffff);
        if !dir.join(format!("{id}.json")).exists() {
            return id;
        }
    }
}

impl RunRecord {
    /// Writes the record atomically to `<workspace>/runs/<id>.json` and returns that path.
    pub fn save(&self, workspace: &Path) -> Result<PathBuf, RunsError> {
        let path = workspace.join(DIR).join(format!("{}.json", self.id));
        let bytes = serde_json::to_vec_pretty(self).expect("plain data");
        write_file(&path, |tmp| std::fs::write(tmp, &bytes))?;
        Ok(path)
    }

    /// Reads one record file; the error says why it cannot be used.
    pub fn from_slice(bytes: &[u8]) -> Result<RunRecord, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        match value.get("schema").and_then(Value::as_u64) {
            Some(v) if v > u64::from(SCHEMA) => {
                Err(format!("schema {v} is newer than this headstart reads ({SCHEMA})"))
            }
            _ => serde_json::from_value(value).map_err(|e| e.to_string()),
        }
    }
}

/// A broken-down UTC time; the standard library has none.
struct Utc {
    date: (i64, u32, u32),
    seconds_of_day: u64,
    millis: u32,
}

impl From<SystemTime> for Utc {
    fn from(t: SystemTime) -> Self {
        // A clock set before 1970 is read as 1970: the id still sorts, the time is plainly wrong.
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        Utc {
            date: civil_from_days((secs / 86_400) as i64),
            seconds_of_day: secs % 86_400,
            millis: since.subsec_millis(),
        }
    }
}

impl Utc {
    fn parts(&self) -> (i64, u32, u32, u64, u64, u64, u32) {
        let (y, m, d) = self.date;
        let s = self.seconds_of_day;
        (y, m, d, s / 3600, s / 60 % 60, s % 60, self.millis)
    }

    /// `2025-03-14T15:30:12.345Z`.
    fn rfc3339(&self) -> String {
        let (y, mo, d, h, mi, s, ms) = self.parts();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }

    /// `20250314T153012.345Z`: fixed width, so it sorts as the time does.
    fn compact(&self) -> String {
        let (y, mo, d, h, mi, s, ms) = self.parts();
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}.{ms:03}Z")
    }
}

/// Year, month and day of the `days`-th day after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The records of a workspace, oldest first, and the files in `runs/` that could not be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Runs {
    /// The readable records, oldest first.
    pub records: Vec<RunRecord>,
    /// The files that could not be read as records.
    pub damaged: Vec<Damaged>,
}

/// Which way a sort puts the best run first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Smallest first (losses, durations).
    Ascending,
    /// Largest first (accuracies).
    Descending,
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Order::Ascending => "ascending",
            Order::Descending => "descending",
        })
    }
}

impl Order {
    /// Losses are better low: a metric whose last part (after the last `.`) contains `loss`
    /// sorts ascending. Every other metric (accuracy, recall, F1) is better high and sorts
    /// descending.
    pub fn for_metric(metric: &str) -> Order {
        let last = metric.rsplit('.').next().unwrap_or(metric);
        if last.contains("loss") {
            Order::Ascending
        } else {
            Order::Descending
        }
    }
}

/// Reads every record in `<workspace>/runs/`. A file that is not a readable record is listed in
/// [`Runs::damaged`] and skipped; no `runs/` folder means no runs yet.
pub fn list(workspace: &Path) -> Result<Runs, RunsError> {
    let dir = workspace.join(DIR);
    let read_err = |source| RunsError::Read {
        path: dir.clone(),
        source,
    };
    let entries = match std::fs::read_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Runs::default()),
        entries => entries.map_err(read_err)?,
    };
    let mut runs = Runs::default();
    for entry in entries {
        let path = entry.map_err(read_err)?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Hidden files are atomic writes in progress.
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| RunRecord::from_slice(&b))
        {
            Ok(record) => runs.records.push(record),
            Err(reason) => runs.damaged.push(Damaged { path, reason }),
        }
    }
    runs.records.sort_by(|a, b| a.id.cmp(&b.id));
    runs.damaged.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(runs)
}

impl Runs {
    /// The run whose id is `prefix` or starts with it; more than one is an error.
    pub fn find(&self, prefix: &str) -> Result<&RunRecord, RunsError> {
        let matches: Vec<&RunRecord> = self.records.iter().filter(|r| r.id.starts_with(prefix)).collect();
        match matches[..] {
            [one] => Ok(one),
            [] => Err(RunsError::NotFound(prefix.into())),
            _ => Err(RunsError::Ambiguous {
                prefix: prefix.into(),
                matches: matches.iter().map(|r| r.id.clone()).collect(),
            }),
        }
    }

    /// Sorts best first by `metric` (see [`Order::for_metric`]); runs without it go last, ties
    /// and those keep their id order. An error if no run has the metric.
    pub fn sort_by_metric(&mut self, metric: &str) -> Result<Order, RunsError> {
        if !self.records.is_empty() && !self.records.iter().any(|r| r.metrics.contains_key(metric)) {
            let mut known: Vec<String> = self.records.iter().flat_map(|r| r.metrics.keys().cloned()).collect();
            known.sort();
            known.dedup();
            return Err(RunsError::UnknownMetric {
                metric: metric.into(),
                known,
            });
        }
        let order = Order::for_metric(metric);
        self.records.sort_by(|a, b| {
            let (x, y) = (a.metrics.get(metric), b.metrics.get(metric));
            match (x, y) {
                (Some(x), Some(y)) if order == Order::Ascending => x.total_cmp(y),
                (Some(x), Some(y)) => y.total_cmp(x),
                (x, y) => y.is_some().cmp(&x.is_some()),
            }
            .then_with(|| a.id.cmp(&b.id))
        });
        Ok(order)
    }
}

/// `value` as dotted keys to leaves: objects are walked (`{"head": {"lr": 1}}` gives
/// `head.lr`); arrays, scalars and empty objects are leaves.
pub fn flatten(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
                for (key, v) in map {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&key, v, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// A key whose value differs between two runs; `None` where a run lacks the key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// `settings.…` or `metrics.…`.
    pub key: String,
    /// The value in the first run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<Value>,
    /// The value in the second run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<Value>,
}

/// Exactly the settings and metrics, as `settings.…` and `metrics.…` keys, whose values differ
/// between `a` and `b` (or that only one has), in key order.
pub fn compare(a: &RunRecord, b: &RunRecord) -> Vec<Difference> {
    let keys = |r: &RunRecord| flatten(&json!({ "settings": r.settings, "metrics": r.metrics }));
    let (mut left, mut right) = (keys(a), keys(b));
    let mut all: Vec<String> = left.keys().chain(right.keys()).cloned().collect();
    all.sort();
    all.dedup();
    all.into_iter()
        .filter_map(|key| {
            let (x, y) = (left.remove(&key), right.remove(&key));
            (x != y).then_some(Difference { key, a: x, b: y })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::evaluate;
    use ndarray::array;

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_797), (2024, 3, 15));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_710_513_012_345);
        let utc = Utc::from(t);
        assert_eq!(utc.rfc3339(), "2024-03-15T14:30:12.345Z");
        assert_eq!(utc.compact(), "20240315T143012.345Z");
    }

    fn record(id: &str, metrics: &[(&str, f64)]) -> RunRecord {
        RunRecord {
            schema: SCHEMA,
            id: id.into(),
            time: "2024-03-15T14:30:12.345Z".into(),
            command: "train-head".into(),
            argv: vec!["headstart".into(), "train-head".into()],
            settings: json!({ "head": { "learning_rate": 0.001, "hidden": [512] }, "baseline": null }),
            data: DataFingerprint {
                sha256: "ab".into(),
                images: 3,
                classes: 2,
            },
            backbone: BackboneId {
                key: "k".into(),
                name: "net".into(),
            },
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            durations: BTreeMap::from([("total".into(), 1.5)]),
            files: vec![],
        }
    }

    #[test]
    fn records_round_trip_and_newer_schemas_are_refused() {
        let r = record("20240315T143012.345Z-000001", &[("head.accuracy", 0.9)]);
        let bytes = serde_json::to_vec(&r).unwrap();
        assert_eq!(RunRecord::from_slice(&bytes).unwrap(), r);
        let newer = RunRecord {
            schema: SCHEMA + 1,
            ..r
        };
        let err = RunRecord::from_slice(&serde_json::to_vec(&newer).unwrap()).unwrap_err();
        assert!(err.contains("newer"), "{err}");
        assert!(RunRecord::from_slice(b"{\"schema\": 1").is_err());
    }

    #[test]
    fn losses_sort_up_and_everything_else_down() {
        assert_eq!(Order::for_metric("head.best.val_loss"), Order::Ascending);
        assert_eq!(Order::for_metric("loss"), Order::Ascending);
        assert_eq!(Order::for_metric("head.accuracy"), Order::Descending);
        let mut runs = Runs {
            records: vec![
                record("a", &[("x.accuracy", 0.5), ("x.val_loss", 0.2)]),
                record("b", &[("x.val_loss", 0.1)]),
                record("c", &[("x.accuracy", 0.7), ("x.val_loss", 0.3)]),
            ],
            damaged: vec![],
        };
        let ids = |runs: &Runs| runs.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(runs.sort_by_metric("x.accuracy").unwrap(), Order::Descending);
        assert_eq!(ids(&runs), ["c", "a", "b"]);
        assert_eq!(runs.sort_by_metric("x.val_loss").unwrap(), Order::Ascending);
        assert_eq!(ids(&runs), ["b", "a", "c"]);
        let err = runs.sort_by_metric("x.f1").unwrap_err().to_string();
        assert!(err.contains("x.accuracy, x.val_loss"), "{err}");
    }

    #[test]
    fn a_prefix_finds_one_run() {
        let runs = Runs {
            records: vec![record("2024a-1", &[]), record("2024a-2", &[]), record("2024b-1", &[])],
            damaged: vec![],
        };
        assert_eq!(runs.find("2024b").unwrap().id, "2024b-1");
        assert_eq!(runs.find("2024a-2").unwrap().id, "2024a-2");
        assert!(matches!(runs.find("2024a"), Err(RunsError::Ambiguous { matches, .. }) if matches.len() == 2));
        assert!(matches!(runs.find("2025"), Err(RunsError::NotFound(_))));
    }

    #[test]
    fn compare_lists_exactly_the_differing_leaves() {
        let a = record("a", &[("head.accuracy", 0.9), ("head.epochs", 5.0)]);
        let mut b = record(
            "b",
            &[("head.accuracy", 0.8), ("head.epochs", 5.0), ("baseline.c", 1.0)],
        );
        b.settings =
            json!({ "head": { "learning_rate": 0.001, "hidden": [256, 64] }, "baseline": { "tolerance": 0.1 } });
        let diff = compare(&a, &b);
        let keys: Vec<&str> = diff.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "metrics.baseline.c",
                "metrics.head.accuracy",
                "settings.baseline",
                "settings.baseline.tolerance",
                "settings.head.hidden"
            ]
        );
        assert_eq!(diff[0].a, None);
        assert_eq!(diff[2].a, Some(Value::Null));
        assert_eq!(diff[4].b, Some(json!([256, 64])));
        assert!(compare(&a, &a).is_empty());
    }

    #[test]
    fn macro_f1_averages_the_classes_that_occur() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        // Class c never occurs, b is never predicted: F1 of a is 2/3, of b 0.
        let probs = array![[0.9f32, 0.1, 0.0], [0.8, 0.2, 0.0]];
        let e = evaluate(probs.view(), &[0, 1], &names);
        assert!((macro_f1(&e) - (2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn floats_widen_to_their_shortest_decimal() {
        assert_eq!(widen(0.9), 0.9);
        assert_eq!(widen(1e-3), 0.001);
    }
}
