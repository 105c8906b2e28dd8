//! The search space of a sweep: which head kinds, with which settings, as a grid.
//!
//! A space is written as TOML or JSON with one table per head kind; each key holds one value
//! or a list of values, and the space is the union of each table's grid:
//!
//! ```toml
//! [mlp]                      # the MLP head; keys not given keep HeadParams' defaults
//! hidden = ["none", 256, 512, [512, 256]]   # "none" = linear softmax; a list = several layers
//! learning_rate = [3e-4, 1e-3]
//! dropout = [0.2, 0.5]
//! weight_decay = [0, 1e-4]
//! label_smoothing = 0.0
//! epochs = 5
//! batch_size = 32
//! class_weights = ["none", "balanced"]
//!
//! [logistic]                 # the linear baseline at fixed C values
//! c = [0.01, 0.1, 1, 10]
//!
//! [knn]                      # cosine k-nearest neighbours
//! k = [1, 5, 10, 20]
//! weights = ["uniform", "distance"]
//!
//! [prototype]                # nearest class mean (cosine)
//! shrinkage = [0.0, 0.5]
//!
//! [finetune]                 # the backbone's layers after a cut, trained with an MLP head on
//! backbone_lr = [1e-4, 3e-4] # the maps `extract --cut` cached; every [mlp] key applies too
//! batch_norm = ["frozen", "train"] # the top's batch norm: backbone statistics or batch ones
//! cut = "last-block"         # optional: the cut the workspace holds maps of
//! ```
//!
//! The CLI's flags build the same structure, so both routes share one parser and one set of
//! error messages, which name the table and key that is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::baseline::BaselineParams;
use crate::finetune::{BatchNormMode, FinetuneParams};
use crate::head::{ClassWeights, HeadParams};
use crate::knn::{KnnParams, KnnWeights};
use crate::prototype::PrototypeParams;

/// Why a search space was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    /// The file could not be read.
    #[error("cannot read the search space {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The text is not TOML or JSON.
    #[error("the search space {path} is not valid {format}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// No head kind is given.
    #[error(
        "the search space is empty: give at least one of the tables [mlp], [logistic], [knn], [prototype], [finetune]"
    )]
    Empty,
    /// A table that is not a head kind.
    #[error("`{0}` is not a head kind: use mlp, logistic, knn, prototype or finetune")]
    UnknownKind(String),
    /// A key that the kind does not have.
    #[error("`{kind}.{key}` is not a setting of {kind}: it has {known}")]
    UnknownKey {
        /// The table.
        kind: String,
        /// The key.
        key: String,
        /// The keys it has.
        known: String,
    },
    /// A key with an empty list.
    #[error("`{kind}.{key}` is an empty list: give at least one value")]
    EmptyList {
        /// The table.
        kind: String,
        /// The key.
        key: String,
    },
    /// A value of the wrong type or out of range.
    #[error("`{kind}.{key}` = {value}: {reason}")]
    BadValue {
        /// The table.
        kind: String,
        /// The key.
        key: String,
        /// The value, as JSON.
        value: String,
        /// What it must be.
        reason: String,
    },
}

/// One configuration a sweep tries: a head kind with all of its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TrialSpec {
    /// The MLP head (or, with no hidden layer, linear softmax) trained with Adam.
    Mlp(HeadParams),
    /// Multinomial logistic regression on standardised embeddings at one `C`.
    Logistic {
        /// scikit-learn's `C`: the inverse L2 strength.
        c: f64,
    },
    /// Cosine k-nearest neighbours.
    Knn(KnnParams),
    /// Nearest class mean under cosine similarity.
    Prototype(PrototypeParams),
    /// The backbone's layers after a cut fine-tuned with an MLP head on the cached maps.
    Finetune {
        /// The cut, by name; empty until the sweep fills in the one the workspace holds maps of.
        #[serde(default)]
        cut: String,
        /// The head's settings and the top's learning rate.
        params: FinetuneParams,
    },
}

impl TrialSpec {
    /// The kind's name, as a space's table and a classifier card name it.
    pub fn kind(&self) -> &'static str {
        match self {
            TrialSpec::Mlp(_) => "mlp",
            TrialSpec::Logistic { .. } => "logistic",
            TrialSpec::Knn(_) => "knn",
            TrialSpec::Prototype(_) => "prototype",
            TrialSpec::Finetune { .. } => "finetune",
        }
    }

    /// A stable 12-hex-digit id from the spec's JSON: the same settings always give the same
    /// id, which is how a resumed sweep knows what it has already done.
    pub fn id(&self) -> String {
        let json = serde_json::to_vec(self).expect("plain data");
        crate::fetch::hex(&Sha256::digest(&json))[..12].to_string()
    }

    /// The settings that vary in sweeps, in a few words: `mlp hidden=512 lr=0.001 dropout=0.5`.
    pub fn label(&self) -> String {
        match self {
            TrialSpec::Mlp(p) => format!("mlp {}", head_label(p)),
            TrialSpec::Finetune { cut, params } => format!(
                "finetune cut={cut} backbone_lr={}{} {}",
                params.backbone_lr,
                match params.batch_norm {
                    BatchNormMode::Frozen => "",
                    BatchNormMode::Train => " batch_norm=train",
                },
                head_label(&params.head)
            ),
            TrialSpec::Logistic { c } => format!("logistic C={c}"),
            TrialSpec::Knn(p) => format!(
                "knn k={} {}",
                p.k,
                match p.weights {
                    KnnWeights::Uniform => "uniform",
                    KnnWeights::Distance => "distance",
                }
            ),
            TrialSpec::Prototype(p) => format!("prototype shrinkage={}", p.shrinkage),
        }
    }

    /// The baseline's parameters for a logistic spec: the one alpha `1 / C`.
    pub fn baseline_params(c: f64) -> BaselineParams {
        BaselineParams::default().alphas(vec![1.0 / c]).fallback_alpha(1.0 / c)
    }
}

/// An MLP head's settings that vary in sweeps: `hidden=512 lr=0.001 dropout=0.5 wd=0`.
fn head_label(p: &HeadParams) -> String {
    let hidden = if p.hidden.is_empty() {
        "none".to_string()
    } else {
        p.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("-")
    };
    let mut label = format!(
        "hidden={hidden} lr={} dropout={} wd={}",
        p.learning_rate, p.dropout, p.weight_decay
    );
    if p.label_smoothing > 0.0 {
        label += &format!(" smoothing={}", p.label_smoothing);
    }
    if p.epochs != HeadParams::default().epochs {
        label += &format!(" epochs={}", p.epochs);
    }
    if p.batch_size != HeadParams::default().batch_size {
        label += &format!(" batch={}", p.batch_size);
    }
    if p.class_weights == ClassWeights::Balanced {
        label += " balanced";
    }
    label
}

/// A parsed search space: every configuration of its grid, in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    /// The configurations, kinds in the order mlp, logistic, knn, prototype, finetune, and within a kind
    /// in the order of the keys' values (the last key varies fastest).
    pub trials: Vec<TrialSpec>,
}

impl Space {
    /// Reads a space from a `.toml` or `.json` file (any other extension is read as TOML).
    pub fn from_file(path: &Path) -> Result<Space, SpaceError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpaceError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let value: Value = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            serde_json::from_str(&text).map_err(|e| SpaceError::Syntax {
                path: shown,
                format: "JSON",
                message: e.to_string(),
            })?
        } else {
            toml::from_str(&text).map_err(|e| SpaceError::Syntax {
                path: shown,
                format: "TOML",
                message: e.to_string(),
            })?
        };
        Space::from_value(&value, 42)
    }

    /// Builds a space from its JSON form (what a TOML or JSON file parses to). MLP trials get
    /// `seed` unless the space gives `mlp.seed`.
    pub fn from_value(value: &Value, seed: u64) -> Result<Space, SpaceError> {
        let Some(tables) = value.as_object() else {
            return Err(SpaceError::Empty);
        };
        for kind in tables.keys() {
            if !KINDS.contains(&kind.as_str()) {
                return Err(SpaceError::UnknownKind(kind.clone()));
            }
        }
        let mut trials = Vec::new();
        for kind in KINDS {
            let Some(table) = tables.get(kind) else { continue };
            let table = table.as_object().ok_or_else(|| SpaceError::BadValue {
                kind: kind.to_string(),
                key: String::new(),
                value: table.to_string(),
                reason: "must be a table of settings".into(),
            })?;
            let grid = Grid::new(kind, table)?;
            for point in grid.points() {
                trials.push(build(kind, &point, seed)?);
            }
        }
        if trials.is_empty() {
            return Err(SpaceError::Empty);
        }
        let mut seen = std::collections::BTreeSet::new();
        trials.retain(|t| seen.insert(t.id()));
        Ok(Space { trials })
    }

    /// `n` configurations drawn without replacement from the grid with a seeded generator, in
    /// grid order; all of them when `n` is at least the grid's size.
    pub fn random(&self, n: usize, seed: u64) -> Vec<TrialSpec> {
        if n >= self.trials.len() {
            return self.trials.clone();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut picked = sample(&mut rng, self.trials.len(), n).into_vec();
        picked.sort_unstable();
        picked.into_iter().map(|i| self.trials[i].clone()).collect()
    }
}

/// The head kinds, in the order a space lists them.
pub const KINDS: [&str; 5] = ["mlp", "logistic", "knn", "prototype", "finetune"];

/// The keys of an MLP head, which a fine-tune's head has too.
const HEAD_KEYS: [&str; 9] = [
    "hidden",
    "learning_rate",
    "dropout",
    "weight_decay",
    "label_smoothing",
    "epochs",
    "batch_size",
    "class_weights",
    "seed",
];

/// Each kind's keys.
fn keys(kind: &str) -> Vec<&'static str> {
    match kind {
        "mlp" => HEAD_KEYS.to_vec(),
        "finetune" => [&HEAD_KEYS[..], &["backbone_lr", "batch_norm", "cut"]].concat(),
        "logistic" => vec!["c"],
        "knn" => vec!["k", "weights"],
        "prototype" => vec!["shrinkage"],
        _ => Vec::new(),
    }
}

/// The values of each key of one table, in key order.
struct Grid {
    axes: Vec<(String, Vec<Value>)>,
}

impl Grid {
    fn new(kind: &str, table: &serde_json::Map<String, Value>) -> Result<Grid, SpaceError> {
        let known = keys(kind);
        let mut axes = Vec::new();
        for (key, value) in table {
            if !known.contains(&key.as_str()) {
                return Err(SpaceError::UnknownKey {
                    kind: kind.into(),
                    key: key.clone(),
                    known: known.join(", "),
                });
            }
            // `hidden = [512, 256]` is one value (two layers) only inside an outer list; a flat
            // list of sizes is several one-layer values, as the other keys read.
            let values = match value {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            if values.is_empty() {
                return Err(SpaceError::EmptyList {
                    kind: kind.into(),
                    key: key.clone(),
                });
            }
            axes.push((key.clone(), values));
        }
        // Key order fixed by the kind, not by the file, so a space means one grid order.
        axes.sort_by_key(|(key, _)| known.iter().position(|k| k == key));
        Ok(Grid { axes })
    }

    fn points(&self) -> Vec<BTreeMap<String, Value>> {
        let mut points = vec![BTreeMap::new()];
        for (key, values) in &self.axes {
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut p = p.clone();
                        p.insert(key.clone(), v.clone());
                        p
                    })
                })
                .collect();
        }
        points
    }
}

fn bad(kind: &str, key: &str, value: &Value, reason: &str) -> SpaceError {
    SpaceError::BadValue {
        kind: kind.into(),
        key: key.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn number(kind: &str, key: &str, v: &Value) -> Result<f64, SpaceError> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| bad(kind, key, v, "must be a number"))
}

fn count(kind: &str, key: &str, v: &Value) -> Result<usize, SpaceError> {
    v.as_u64()
        .filter(|&n| n >= 1)
        .map(|n| n as usize)
        .ok_or_else(|| bad(kind, key, v, "must be a whole number >= 1"))
}

fn in_range(kind: &str, key: &str, v: &Value, range: std::ops::Range<f64>, what: &str) -> Result<f64, SpaceError> {
    let x = number(kind, key, v)?;
    if range.contains(&x) {
        Ok(x)
    } else {
        Err(bad(kind, key, v, what))
    }
}

/// The spec of one grid point; values are checked here so that a bad space fails before any
/// training, with the key named.
fn build(kind: &str, point: &BTreeMap<String, Value>, seed: u64) -> Result<TrialSpec, SpaceError> {
    match kind {
        "mlp" => Ok(TrialSpec::Mlp(head_params(kind, point, seed)?)),
        "finetune" => {
            let head = head_params(kind, point, seed)?;
            let backbone_lr = match point.get("backbone_lr") {
                Some(v) => in_range(kind, "backbone_lr", v, f64::MIN_POSITIVE..f64::INFINITY, "must be > 0")? as f32,
                None => FinetuneParams::default().backbone_lr,
            };
            let batch_norm = match point.get("batch_norm") {
                Some(v) => serde_json::from_value::<BatchNormMode>(v.clone())
                    .map_err(|_| bad(kind, "batch_norm", v, "must be \"frozen\" or \"train\""))?,
                None => BatchNormMode::Frozen,
            };
            let cut = match point.get("cut") {
                Some(Value::String(name)) if !name.is_empty() => name.clone(),
                Some(v) => {
                    return Err(bad(
                        kind,
                        "cut",
                        v,
                        "must be the name of a cut, as `extract --cut` took it",
                    ))
                }
                None => String::new(),
            };
            Ok(TrialSpec::Finetune {
                cut,
                params: FinetuneParams {
                    head,
                    backbone_lr,
                    batch_norm,
                },
            })
        }
        "logistic" => {
            let v = point
                .get("c")
                .cloned()
                .unwrap_or(Value::from(1.0 / crate::baseline::DEFAULT_ALPHA));
            let c = in_range(kind, "c", &v, f64::MIN_POSITIVE..f64::INFINITY, "must be > 0")?;
            Ok(TrialSpec::Logistic { c })
        }
        "knn" => {
            let mut p = KnnParams::default();
            for (key, v) in point {
                match key.as_str() {
                    "k" => p.k = count(kind, key, v)?,
                    "weights" => {
                        p.weights = match v.as_str() {
                            Some("uniform") => KnnWeights::Uniform,
                            Some("distance") => KnnWeights::Distance,
                            _ => return Err(bad(kind, key, v, "must be \"uniform\" or \"distance\"")),
                        }
                    }
                    _ => unreachable!("keys were checked against the kind"),
                }
            }
            Ok(TrialSpec::Knn(p))
        }
        "prototype" => {
            let mut p = PrototypeParams::default();
            if let Some(v) = point.get("shrinkage") {
                p.shrinkage = in_range(kind, "shrinkage", v, 0.0..1.0 + f64::EPSILON, "must be in [0, 1]")? as f32;
            }
            Ok(TrialSpec::Prototype(p))
        }
        other => Err(SpaceError::UnknownKind(other.into())),
    }
}

/// The MLP head's settings at one grid point (a fine-tune's head too); other keys are left to
/// the caller.
fn head_params(kind: &str, point: &BTreeMap<String, Value>, seed: u64) -> Result<HeadParams, SpaceError> {
    let mut p = HeadParams::default().seed(seed);
    for (key, v) in point {
        match key.as_str() {
            "hidden" => {
                p.hidden = hidden(v)
                    .ok_or_else(|| bad(kind, key, v, "must be \"none\", a layer size >= 1, or a list of sizes"))?
            }
            "learning_rate" => {
                p.learning_rate = in_range(kind, key, v, f64::MIN_POSITIVE..f64::INFINITY, "must be > 0")? as f32
            }
            "dropout" => p.dropout = in_range(kind, key, v, 0.0..1.0, "must be in [0, 1)")? as f32,
            "weight_decay" => p.weight_decay = in_range(kind, key, v, 0.0..f64::INFINITY, "must be >= 0")? as f32,
            "label_smoothing" => {
                p.label_smoothing = in_range(kind, key, v, 0.0..1.0 + f64::EPSILON, "must be in [0, 1]")? as f32
            }
            "epochs" => p.epochs = count(kind, key, v)?,
            "batch_size" => p.batch_size = count(kind, key, v)?,
            "class_weights" => {
                p.class_weights = match v.as_str() {
                    Some("none") => ClassWeights::None,
                    Some("balanced") => ClassWeights::Balanced,
                    _ => return Err(bad(kind, key, v, "must be \"none\" or \"balanced\"")),
                }
            }
            "seed" => {
                p.seed = v
                    .as_u64()
                    .ok_or_else(|| bad(kind, key, v, "must be a whole number >= 0"))?
            }
            // The kind's own keys, which its caller reads.
            _ => {}
        }
    }
    Ok(p)
}

/// `"none"` (no hidden layer), one size, or a list of sizes.
fn hidden(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::String(s) if s == "none" => Some(Vec::new()),
        Value::Number(n) => n.as_u64().filter(|&h| h >= 1).map(|h| vec![h as usize]),
        Value::Array(layers) => layers
            .iter()
            .map(|l| l.as_u64().filter(|&h| h >= 1).map(|h| h as usize))
            .collect(),
        _ => None,
    }
}
