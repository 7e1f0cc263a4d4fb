//! The data dir: who owns it, the write-ahead log, and the group-commit thread.
//!
//! ```text
//! <data-dir>/
//!   meta.json                      {"format":1,"node_id":1,"voters":[1,2,3]}  (atomic replace)
//!   wal/00000000000000000001.wal   segment files of CRC-framed records
//!   wal/00000000000000000002.wal   ...
//! ```
//!
//! `meta.json` is written once, atomically (write a temporary file, fsync it, rename it over,
//! fsync the directory), and says which node the directory belongs to, so that a restart with
//! another `--id` is refused instead of voting twice in one term under two names.
//! `transport-epoch` holds the epoch of the node's latest start (see [`next_transport_epoch`]).

pub mod wal;
pub mod writer;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use raft_core::{DurableState, NodeId};
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
pub use wal::{RecoveryReport, Wal};
pub use writer::{spawn_writer, PersistCompletion, StorageHandle};

const META_FILE: &str = "meta.json";
const EPOCH_FILE: &str = "transport-epoch";
const WAL_DIR: &str = "wal";
const META_FORMAT: u32 = 1;

/// The contents of `meta.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    format: u32,
    node_id: u64,
    voters: Vec<u64>,
}

/// A data dir opened for one node: the recovered state and the log to append to.
#[derive(Debug)]
pub struct Opened {
    pub durable: DurableState,
    pub wal: Wal,
    pub report: RecoveryReport,
    /// True when the directory was initialised by this call.
    pub created: bool,
}

/// Opens (or initialises) `dir` for node `id` with `voters`, and recovers its state.
pub fn open(dir: &Path, id: NodeId, voters: &BTreeSet<NodeId>) -> Result<Opened, StorageError> {
    fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
    let wal_dir = dir.join(WAL_DIR);
    let meta_path = dir.join(META_FILE);
    let wanted = Meta {
        format: META_FORMAT,
        node_id: id.0,
        voters: voters.iter().map(|voter| voter.0).collect(),
    };
    let created = match read_meta(&meta_path)? {
        Some(meta) => {
            check_meta(dir, &meta, &wanted)?;
            false
        }
        None => {
            if wal_dir.exists() && !wal::list_segments(&wal_dir)?.is_empty() {
                return Err(StorageError::MissingMeta {
                    dir: dir.to_path_buf(),
                });
            }
            fs::create_dir_all(&wal_dir).map_err(StorageError::io(&wal_dir))?;
            sync_dir(dir)?;
            let text =
                serde_json::to_vec_pretty(&wanted).map_err(|error| StorageError::BadMeta {
                    path: meta_path.clone(),
                    reason: error.to_string(),
                })?;
            write_atomically(&meta_path, &text)?;
            true
        }
    };
    fs::create_dir_all(&wal_dir).map_err(StorageError::io(&wal_dir))?;
    let (wal, durable, report) = Wal::recover(&wal_dir)?;
    Ok(Opened {
        durable,
        wal,
        report,
        created,
    })
}

/// The transport epoch of this start of the node: above the one of every earlier start (it is
/// recorded, durably, before it is used), and at least `now_micros`, the wall clock, so that a
/// node whose data dir was wiped still starts above what its peers remember of it (unless its
/// clock went backwards too). Peers drop datagrams stamped with older epochs.
pub fn next_transport_epoch(dir: &Path, now_micros: u64) -> Result<u64, StorageError> {
    let path = dir.join(EPOCH_FILE);
    let previous = match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|error| StorageError::BadMeta {
                path: path.clone(),
                reason: error.to_string(),
            })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(source) => return Err(StorageError::Io { path, source }),
    };
    let epoch = now_micros.max(previous.saturating_add(1));
    write_atomically(&path, format!("{epoch}\n").as_bytes())?;
    Ok(epoch)
}

fn read_meta(path: &Path) -> Result<Option<Meta>, StorageError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StorageError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|error| StorageError::BadMeta {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    if meta.format != META_FORMAT {
        return Err(StorageError::BadMeta {
            path: path.to_path_buf(),
            reason: format!("format {} is not the supported {META_FORMAT}", meta.format),
        });
    }
    Ok(Some(meta))
}

fn check_meta(dir: &Path, on_disk: &Meta, wanted: &Meta) -> Result<(), StorageError> {
    if on_disk.node_id != wanted.node_id {
        return Err(StorageError::NodeIdMismatch {
            dir: dir.to_path_buf(),
            on_disk: NodeId(on_disk.node_id),
            requested: NodeId(wanted.node_id),
        });
    }
    if on_disk.voters != wanted.voters {
        return Err(StorageError::VotersMismatch {
            dir: dir.to_path_buf(),
            on_disk: format!("{:?}", on_disk.voters),
            requested: format!("{:?}", wanted.voters),
        });
    }
    Ok(())
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file: write
/// a temporary file, fsync it, rename it over `path`, fsync the directory.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temporary: PathBuf = path.to_path_buf();
    temporary.as_mut_os_string().push(".tmp");
    let mut file = File::create(&temporary).map_err(StorageError::io(&temporary))?;
    file.write_all(contents)
        .map_err(StorageError::io(&temporary))?;
    file.sync_all().map_err(StorageError::io(&temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(StorageError::io(path))?;
    sync_dir(dir)
}

/// Makes the directory's entries (created, renamed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(StorageError::io(dir))
}

#[cfg(test)]
mod tests;
