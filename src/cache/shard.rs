//! Shards: one machine's part of an extract that many machines share (`extract --shard K/N`),
//! and the record it leaves for `merge`.
//!
//! An image belongs to shard `K` of `N` when the first 8 bytes of its content hash, read as a
//! big-endian number, leave `K` when divided by `N`. The owner depends on the image's bytes
//! alone: files added, removed or renamed elsewhere in the tree never move an image to another
//! shard, and two copies of one image fall to the same shard, so no vector is computed twice.
//!
//! A shard is a workspace of its own (by default `<workspace>/shards/<K>-of-<N>/`, see
//! [`Shard::workspace`]) with its own lock and the usual store, so it resumes exactly as a plain
//! extract does, and no two shards ever share a lock or a file. In place of `dataset.json` it
//! holds `shard.json` ([`ShardManifest`]): the whole data set's listing with every image's hash
//! (each shard hashes every file to find its own), so `merge` can write the manifest one machine
//! would have written without reading the data again.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{json_crc, CacheError, ContentKey, Entry};
use crate::atomic::write_file;
use crate::backbone::BackboneRecord;
use crate::dataset::Skipped;

/// Shard `index` of `count`, numbered from 0 as Slurm's `SLURM_ARRAY_TASK_ID` and Kubernetes'
/// `JOB_COMPLETION_INDEX` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, in `0..count`.
    pub index: usize,
    /// How many shards the images are divided into.
    pub count: usize,
}

/// Why a shard's numbers are not a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `K/N` with two whole numbers.
    #[error("`{0}` is not K/N (shard K of N, K counted from 0, as 2/8)")]
    Syntax(String),
    /// `N` is 0.
    #[error("{0}: the number of shards must be at least 1")]
    NoShards(String),
    /// `K` is not below `N`.
    #[error("{text}: shards are numbered from 0, so K must be below N (0 to {last})")]
    OutOfRange {
        /// The shard as written.
        text: String,
        /// The last valid K.
        last: usize,
    },
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Shard, ShardError> {
        let text = format!("{index}/{count}");
        if count == 0 {
            return Err(ShardError::NoShards(text));
        }
        if index >= count {
            return Err(ShardError::OutOfRange { text, last: count - 1 });
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/N`.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(syntax)?;
        let number = |s: &str| s.trim().parse::<usize>().map_err(|_| syntax());
        Shard::new(number(k)?, number(n)?)
    }

    /// The shard of `count` that the image with this content belongs to.
    pub fn of(key: &ContentKey, count: usize) -> usize {
        let prefix = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
        (prefix % count as u64) as usize
    }

    /// Whether the image with this content belongs to this shard.
    pub fn owns(&self, key: &ContentKey) -> bool {
        Shard::of(key, self.count) == self.index
    }

    /// The shard's workspace inside a shared workspace: `<workspace>/shards/<K>-of-<N>`.
    pub fn workspace(&self, workspace: &Path) -> PathBuf {
        workspace
            .join(ShardManifest::FOLDER)
            .join(format!("{}-of-{}", self.index, self.count))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `shard.json`: what one shard's extract saw and made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// Which shard this is.
    pub shard: Shard,
    /// The image folder, as given to `extract`.
    pub data_root: PathBuf,
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// Whether images have any number of labels.
    pub multi_label: bool,
    /// The backbone that made the vectors.
    pub backbone: BackboneRecord,
    /// The shard's store file in `embeddings/<key>/`; none when no image belongs to the shard.
    pub store: Option<String>,
    /// Every image of the data set that could be read, of all shards, with its hash, in the
    /// data set's order: the same in every shard made from the same data.
    pub images: Vec<Entry>,
    /// Files that could not be listed or read, as a plain extract lists them before embedding.
    pub skipped: Vec<Skipped>,
    /// Images of this shard the network could not embed, with the reason.
    pub failed: Vec<Skipped>,
    /// CRC-32 of this JSON written with an empty checksum.
    #[serde(default)]
    pub checksum: String,
}

impl ShardManifest {
    /// The file's name inside the shard's workspace.
    pub const FILE: &'static str = "shard.json";
    /// The folder of a shared workspace that holds its shards' workspaces.
    pub const FOLDER: &'static str = "shards";

    fn canonical_checksum(&self) -> String {
        json_crc(&ShardManifest {
            checksum: String::new(),
            ..self.clone()
        })
    }

    /// Writes the record, sealed, to `workspace/shard.json`, atomically.
    pub fn save(&self, workspace: &Path) -> Result<(), CacheError> {
        let sealed = ShardManifest {
            checksum: self.canonical_checksum(),
            ..self.clone()
        };
        let bytes = serde_json::to_vec_pretty(&sealed).expect("plain data");
        Ok(write_file(&workspace.join(Self::FILE), |tmp| {
            std::fs::write(tmp, &bytes)
        })?)
    }

    /// Reads and checks `workspace/shard.json`.
    pub fn load(workspace: &Path) -> Result<ShardManifest, CacheError> {
        let path = workspace.join(Self::FILE);
        let bytes = std::fs::read(&path).map_err(|source| CacheError::Read {
            path: path.clone(),
            source,
        })?;
        let corrupt = |message: String| CacheError::Corrupt {
            path: path.clone(),
            message,
        };
        let record: ShardManifest = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let expected = record.canonical_checksum();
        if record.checksum != expected {
            return Err(corrupt(format!(
                "checksum {:?} does not match its content ({expected})",
                record.checksum
            )));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_both_numbers() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, count: 8 }));
        assert_eq!(Shard::parse(" 0 / 1 "), Ok(Shard { index: 0, count: 1 }));
        assert!(matches!(
            Shard::parse("8/8"),
            Err(ShardError::OutOfRange { last: 7, .. })
        ));
        assert!(matches!(Shard::parse("0/0"), Err(ShardError::NoShards(_))));
        for bad in ["3", "a/2", "1/2/3", "-1/2", ""] {
            assert!(matches!(Shard::parse(bad), Err(ShardError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn every_key_has_exactly_one_owner() {
        for count in 1..6 {
            for seed in 0u8..50 {
                let key = [seed.wrapping_mul(37); 32];
                let owners = (0..count).filter(|&k| Shard::new(k, count).unwrap().owns(&key)).count();
                assert_eq!(owners, 1);
            }
        }
    }
}
