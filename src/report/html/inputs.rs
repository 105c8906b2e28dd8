//! Everything the page is made from, read from the workspace. A file that is not there yet is
//! `None` (the page says which command makes it); a file that is there but cannot be read is an
//! error that names it, since a page silently missing a section would mislead.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::audit;
use super::HtmlError;
use crate::artifact::{self, Card, HEAD_FILE};
use crate::audit::AuditSummary as Audit;
use crate::cache::{CacheError, Manifest};
use crate::evaluate::EvalSummary;
use crate::head::EpochStats;
use crate::runs::{self, Runs};
use crate::sweep::journal;
use crate::sweep::leaderboard::JSON_FILE;
use crate::sweep::trial::{FoldScore, TrialResult};

/// eval.json's name inside the report folder.
pub const EVAL_FILE: &str = "eval.json";

/// The parts of a sweep's leaderboard.json the page shows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Leaderboard {
    /// Number of folds.
    pub folds: usize,
    /// Every trial, best first.
    pub results: Vec<TrialResult>,
    /// The refitted winner.
    pub refit: Option<Winner>,
}

/// The refitted winner of a sweep.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Winner {
    /// Its configuration in words.
    pub label: String,
    /// Its backbone's name.
    pub backbone: String,
    /// Its scores on the test split.
    pub test: Option<FoldScore>,
}

/// What the workspace holds for the page.
#[derive(Debug, Default)]
pub struct Inputs {
    /// dataset.json: the data and the backbone.
    pub manifest: Option<Manifest>,
    /// The head's epochs, from its card.
    pub history: Vec<EpochStats>,
    /// eval.json.
    pub eval: Option<EvalSummary>,
    /// The sweep's leaderboard.json.
    pub leaderboard: Option<Leaderboard>,
    /// The run records.
    pub runs: Runs,
    /// audit.json.
    pub audit: Option<Audit>,
}

impl Inputs {
    /// Reads the workspace's files; `report_dir` holds eval.json and audit.json.
    pub fn read(workspace: &Path, report_dir: &Path) -> Result<Inputs, HtmlError> {
        let manifest = match Manifest::load(workspace) {
            Ok(m) => Some(m),
            Err(CacheError::NoManifest(_)) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(Inputs {
            manifest,
            history: head_history(&workspace.join(HEAD_FILE))?,
            eval: json(&report_dir.join(EVAL_FILE), "headstart eval")?,
            leaderboard: json(&workspace.join(journal::DIR).join(JSON_FILE), "headstart sweep")?,
            runs: runs::list(workspace)?,
            audit: json(&report_dir.join(audit::FILE), "headstart audit")?,
        })
    }
}

/// The file at `path` read as `T`; `None` if there is none. `remedy` is the command that
/// writes it again.
fn json<T: DeserializeOwned>(path: &Path, remedy: &'static str) -> Result<Option<T>, HtmlError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HtmlError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| HtmlError::Damaged {
            path: path.to_path_buf(),
            message: e.to_string(),
            remedy,
        })
}

/// The epochs recorded in the head's card; none without a head.
fn head_history(path: &Path) -> Result<Vec<EpochStats>, HtmlError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let (_, metadata) = artifact::load(path)?;
    Ok(Card::from_metadata(path, &metadata)?.history)
}
