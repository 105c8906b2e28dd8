//! `report`: one self-contained HTML page, `<workspace>/report/index.html`, that gathers what
//! the workspace holds: the data and backbone, the head's training, the models' metrics, the
//! confusion matrices with the images behind every cell, the sweep and the runs, and the audit.
//!
//! One file with everything inlined (stylesheet, script, pictures, JPEG thumbnails as data
//! URIs) so that it can be opened from disk, mailed or kept as a CI artefact, with no server and
//! no network. The page is rebuilt from the workspace's files each time, so any command that
//! changes one of them can refresh it; a section whose file does not exist yet says which
//! command makes it.

mod audit;
mod confusion;
mod data;
mod experiments;
mod inputs;
mod metrics;
mod page;
mod thumbnails;

use std::path::PathBuf;

pub use inputs::{Inputs, Leaderboard, Winner, EVAL_FILE};
pub use thumbnails::{MAX_BYTES as MAX_THUMBNAIL_BYTES, MAX_COUNT as MAX_THUMBNAILS};

use crate::artifact::ArtifactError;
use crate::atomic::{write_file, WriteError};
use crate::cache::CacheError;
use crate::runs::RunsError;
use page::{esc, Section};
use thumbnails::Thumbnails;

/// The page's file name inside the report folder.
pub const FILE: &str = "index.html";
/// audit.json's name inside the report folder, where `headstart audit` writes it.
pub const AUDIT_FILE: &str = audit::FILE;

/// Why the page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// The manifest is unreadable.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The head's file is unreadable.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The run records' folder is unreadable.
    #[error(transparent)]
    Runs(#[from] RunsError),
    /// A JSON file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A JSON file is not what its command writes.
    #[error("{path} is damaged ({message}): run `{remedy}` again to rewrite it, or delete it")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What the JSON reader said.
        message: String,
        /// The command that writes the file.
        remedy: &'static str,
    },
    /// The page could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Which workspace's page to make, and where. Build with [`HtmlOptions::new`].
#[derive(Debug, Clone)]
pub struct HtmlOptions {
    /// Folder holding the cache, the classifiers, runs/ and sweeps/.
    pub workspace: PathBuf,
    /// The folder with eval.json and audit.json, where the page goes; `<workspace>/report`
    /// by default.
    pub report_dir: Option<PathBuf>,
    /// Images with more pixels get no thumbnail (they are not decoded).
    pub max_pixels: u64,
}

impl HtmlOptions {
    /// The page of `workspace`, in its report folder.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        HtmlOptions {
            workspace: workspace.into(),
            report_dir: None,
            max_pixels: crate::preprocess::DEFAULT_MAX_PIXELS,
        }
    }

    fn report_dir(&self) -> PathBuf {
        self.report_dir.clone().unwrap_or_else(|| self.workspace.join("report"))
    }
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HtmlSummary {
    /// The page.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// Thumbnails on it.
    pub thumbnails: usize,
    /// Images shown without one (the caps, or the file could not be read).
    pub without_thumbnail: usize,
    /// The commands that would fill the sections still empty.
    pub missing: Vec<String>,
}

/// A page in memory, before it is written.
#[derive(Debug, Clone)]
pub struct Page {
    /// The document.
    pub html: String,
    /// Thumbnails on it.
    pub thumbnails: usize,
    /// Images shown without one.
    pub without_thumbnail: usize,
    /// The commands that would fill the sections still empty.
    pub missing: Vec<String>,
}

/// Reads the workspace and writes its page.
pub fn write_report(opts: &HtmlOptions) -> Result<HtmlSummary, HtmlError> {
    let report_dir = opts.report_dir();
    let inputs = Inputs::read(&opts.workspace, &report_dir)?;
    let page = render(&inputs, opts.max_pixels);
    let path = report_dir.join(FILE);
    std::fs::create_dir_all(&report_dir).map_err(|source| CacheError::Write {
        path: report_dir.clone(),
        source,
    })?;
    write_file(&path, |tmp| std::fs::write(tmp, &page.html))?;
    Ok(HtmlSummary {
        path,
        bytes: page.html.len(),
        thumbnails: page.thumbnails,
        without_thumbnail: page.without_thumbnail,
        missing: page.missing,
    })
}

/// The page of `inputs`; thumbnails are read from the manifest's data folder.
pub fn render(inputs: &Inputs, max_pixels: u64) -> Page {
    let eval = inputs.eval.as_ref();
    let audit = inputs.audit.as_ref();
    // Thumbnails go first to the mistakes, then to the audit's findings, then to the images
    // the models got right.
    let evaluated = confusion::images(eval);
    let mistakes = eval.map_or(0, |e| e.models.iter().map(|m| m.misclassified.len()).sum());
    let (wrong, rest) = evaluated.split_at(mistakes.min(evaluated.len()));
    let audited = audit.map(audit::images).unwrap_or_default();
    let wanted: Vec<&str> = wrong
        .iter()
        .copied()
        .chain(audited)
        .chain(rest.iter().copied())
        .collect();
    let root = inputs.manifest.as_ref().map(|m| m.data_root.as_path());
    let thumbs = Thumbnails::make(root, &wanted, max_pixels);

    let mut missing = Vec::new();
    let checks: [(bool, &str, &str); 5] = [
        (inputs.manifest.is_some(), "the data", "headstart extract --data DIR"),
        (
            !inputs.history.is_empty(),
            "the training curves",
            "headstart train-head",
        ),
        (eval.is_some(), "the metrics and the confusion matrix", "headstart eval"),
        (inputs.leaderboard.is_some(), "the sweep leaderboard", "headstart sweep"),
        (audit.is_some(), "the audit", "headstart audit"),
    ];
    let mut notices = String::new();
    for (present, what, command) in checks {
        if !present {
            missing.push(command.to_owned());
            notices.push_str(&format!("<li>{}: run <code>{}</code></li>", esc(what), esc(command)));
        }
    }
    if !notices.is_empty() {
        notices = format!("<aside class=\"notice\"><p>Not in this report yet:</p><ul>{notices}</ul></aside>");
    }
    let sections = [
        Section {
            id: "data",
            title: "Data and backbone",
            body: data::section(inputs.manifest.as_ref()),
        },
        Section {
            id: "training",
            title: "Training",
            body: metrics::training(&inputs.history),
        },
        Section {
            id: "metrics",
            title: "Head and baseline",
            body: metrics::evaluation(eval),
        },
        Section {
            id: "confusion",
            title: "Confusion matrix and images",
            body: confusion::section(eval, &thumbs),
        },
        Section {
            id: "experiments",
            title: "Sweep and runs",
            body: experiments::section(inputs.leaderboard.as_ref(), &inputs.runs),
        },
        Section {
            id: "audit",
            title: "Audit",
            body: audit::section(audit, &thumbs),
        },
    ];
    Page {
        html: page::document("headstart report", &notices, &sections),
        thumbnails: thumbs.len(),
        without_thumbnail: thumbs.capped + thumbs.unreadable,
        missing,
    }
}

#[cfg(test)]
mod tests;
