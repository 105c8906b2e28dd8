//! The ignore list: images a person has checked, which the audit stops reporting.
//!
//! One entry per line: an image's path as the audit prints it (relative to the data folder) or
//! the SHA-256 of its bytes (which follows the image when it is moved or renamed). Blank lines
//! and lines starting with `#` are skipped, so a reason can be kept beside each entry.

use std::collections::BTreeSet;
use std::path::Path;

use super::AuditError;
use crate::cache::Entry;

/// The entries of an ignore list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    entries: BTreeSet<String>,
}

impl IgnoreList {
    /// Reads `path`; a missing file is an empty list when `required` is false (the workspace's
    /// own `audit.ignore` need not exist), and an error when the user named it.
    pub fn read(path: &Path, required: bool) -> Result<IgnoreList, AuditError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(IgnoreList::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(IgnoreList::default()),
            Err(source) => Err(AuditError::Ignore {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The list in `text`.
    pub fn parse(text: &str) -> IgnoreList {
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect();
        IgnoreList { entries }
    }

    /// Whether the image is on the list, by path or by content hash.
    pub fn covers(&self, entry: &Entry) -> bool {
        self.entries.contains(&entry.sample.path) || self.entries.contains(&entry.sha256)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
