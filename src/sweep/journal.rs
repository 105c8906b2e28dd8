//! The sweep's journal: one JSON line per finished trial, appended and synced as soon as the
//! trial ends, so a sweep killed at any moment loses at most the trials then running.
//!
//! A journal belongs to one protocol (the data fingerprint, the backbone and the number of
//! folds): `sweeps/<protocol>.jsonl` in the workspace. Any sweep with that protocol reuses the
//! trials already in it, found by [`TrialSpec::id`](super::space::TrialSpec::id); a change of
//! data, backbone or folds starts a new journal. A torn last line (a kill mid-write) is skipped.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::trial::TrialResult;

/// The workspace folder holding the journals.
pub const DIR: &str = "sweeps";

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal of `protocol` in `workspace`; the folder is made if needed.
    pub fn open(workspace: &Path, protocol: &str) -> std::io::Result<Journal> {
        let dir = workspace.join(DIR);
        std::fs::create_dir_all(&dir)?;
        Ok(Journal {
            path: dir.join(format!("{protocol}.jsonl")),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every trial recorded so far, by id (the last record of an id wins); unreadable lines
    /// are skipped.
    pub fn read(&self) -> std::io::Result<BTreeMap<String, TrialResult>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<TrialResult>(line).ok())
            .map(|r| (r.id.clone(), r))
            .collect())
    }

    /// Appends `result` as one line and syncs it to disk. One `write` of a whole line with
    /// `O_APPEND`, so lines of parallel trials never interleave.
    pub fn append(&self, result: &TrialResult) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(result).expect("plain data");
        line.push(b'\n');
        let mut file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        // A torn line from an earlier kill would swallow this one: start on a fresh line.
        let len = file.metadata()?.len();
        if len > 0 && last_byte(&self.path)? != Some(b'\n') {
            line.insert(0, b'\n');
        }
        file.write_all(&line)?;
        file.sync_data()
    }
}

fn last_byte(path: &Path) -> std::io::Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    if file.seek(SeekFrom::End(0))? == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut byte = [0u8];
    file.read_exact(&mut byte)?;
    Ok(Some(byte[0]))
}
