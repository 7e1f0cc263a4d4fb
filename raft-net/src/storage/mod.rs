//! The data dir: who owns it, the write-ahead log, and the group-commit thread.
//!
//! ```text
//! <data-dir>/
//!   meta.json                      {"format":2,"node_id":1,"voters":[1,2,3],
//!                                   "incarnation":1767225600000000,"cluster_id":"9c0f..."}
//!   wal/00000000000000000001.wal   segment files of CRC-framed records
//!   wal/00000000000000000002.wal   ...
//! ```
//!
//! `meta.json` is written atomically (write a temporary file, fsync it, rename it over, fsync
//! the directory) when the directory is created, and says who the directory belongs to: the
//! node (so that a restart with another `--id` is refused instead of voting twice in one term
//! under two names), the voters the core starts with (the initial cluster; none for a server
//! that joins or returns), this server's incarnation (the creation time in microseconds: a
//! directory created anew is a new incarnation to the core) and the cluster. It is rewritten
//! only to record the cluster id a server without one learns, and by `recover` and `snapshot
//! restore`. `transport-epoch` holds the epoch of the node's latest start (see
//! [`next_transport_epoch`]).

pub mod wal;
pub mod writer;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use raft_core::{DurableState, Incarnation, NodeId};
use serde::{Deserialize, Serialize};

use crate::cluster_id::ClusterId;
use crate::error::StorageError;
pub use wal::{RecoveryReport, Wal};
pub use writer::{spawn_writer, PersistCompletion, StorageHandle};

const META_FILE: &str = "meta.json";
const EPOCH_FILE: &str = "transport-epoch";
const WAL_DIR: &str = "wal";
const META_FORMAT: u32 = 2;

/// The contents of `meta.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct MetaDocument {
    format: u32,
    node_id: u64,
    voters: Vec<u64>,
    incarnation: u64,
    cluster_id: Option<ClusterId>,
}

/// Who a data dir belongs to (its `meta.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub node_id: NodeId,
    /// The voters the core is configured with (`raft_core::Config::voters`): the initial
    /// cluster's, or none for a server that waits to be added or re-added.
    pub voters: BTreeSet<NodeId>,
    /// This server's incarnation (`raft_core::Config::incarnation`).
    pub incarnation: Incarnation,
    /// `None` until a server that joined learns it from a member.
    pub cluster_id: Option<ClusterId>,
}

impl Meta {
    fn document(&self) -> MetaDocument {
        MetaDocument {
            format: META_FORMAT,
            node_id: self.node_id.0,
            voters: self.voters.iter().map(|voter| voter.0).collect(),
            incarnation: self.incarnation.0,
            cluster_id: self.cluster_id,
        }
    }
}

/// What a data dir that does not exist yet is created with (an existing one keeps its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creation {
    /// The initial voters the flags give; empty for a server that joins or returns. An
    /// existing data dir created with other initial voters is refused when both are non-empty.
    pub voters: BTreeSet<NodeId>,
    pub incarnation: Incarnation,
    pub cluster_id: Option<ClusterId>,
}

/// A data dir opened for one node: the recovered state and the log to append to.
#[derive(Debug)]
pub struct Opened {
    pub durable: DurableState,
    pub wal: Wal,
    pub report: RecoveryReport,
    /// What `meta.json` says (as created now, when `created`).
    pub meta: Meta,
    /// True when the directory was initialised by this call.
    pub created: bool,
}

/// Opens (or initialises, as `creation` says) `dir` for node `id`, and recovers its state.
pub fn open(dir: &Path, id: NodeId, creation: &Creation) -> Result<Opened, StorageError> {
    fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
    let wal_dir = dir.join(WAL_DIR);
    let (meta, created) = match read_meta(dir)? {
        Some(meta) => {
            check_meta(dir, &meta, id, &creation.voters)?;
            (meta, false)
        }
        None => {
            if wal_dir.exists() && !wal::list_segments(&wal_dir)?.is_empty() {
                return Err(StorageError::MissingMeta {
                    dir: dir.to_path_buf(),
                });
            }
            fs::create_dir_all(&wal_dir).map_err(StorageError::io(&wal_dir))?;
            sync_dir(dir)?;
            let meta = Meta {
                node_id: id,
                voters: creation.voters.clone(),
                incarnation: creation.incarnation,
                cluster_id: creation.cluster_id,
            };
            write_meta(dir, &meta)?;
            (meta, true)
        }
    };
    fs::create_dir_all(&wal_dir).map_err(StorageError::io(&wal_dir))?;
    let (wal, durable, report) = Wal::recover(&wal_dir)?;
    Ok(Opened {
        durable,
        wal,
        report,
        meta,
        created,
    })
}

/// The write-ahead log directory of the data dir `dir`.
#[must_use]
pub fn wal_dir(dir: &Path) -> PathBuf {
    dir.join(WAL_DIR)
}

/// Replaces `dir`'s `meta.json` with `meta`, atomically.
pub fn write_meta(dir: &Path, meta: &Meta) -> Result<(), StorageError> {
    let path = dir.join(META_FILE);
    let text =
        serde_json::to_vec_pretty(&meta.document()).map_err(|error| StorageError::BadMeta {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    write_atomically(&path, &text)
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

/// What `dir`'s `meta.json` says; `None` when there is none.
pub fn read_meta(dir: &Path) -> Result<Option<Meta>, StorageError> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StorageError::Io { path, source }),
    };
    let bad = |reason: String| StorageError::BadMeta {
        path: path.clone(),
        reason,
    };
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let format: Format = serde_json::from_slice(&bytes).map_err(|error| bad(error.to_string()))?;
    if format.format == 1 {
        return Err(StorageError::OldMeta { path });
    }
    if format.format != META_FORMAT {
        return Err(bad(format!(
            "format {} is not the supported {META_FORMAT}",
            format.format
        )));
    }
    let document: MetaDocument =
        serde_json::from_slice(&bytes).map_err(|error| bad(error.to_string()))?;
    let node_id = NodeId(document.node_id);
    let voters: BTreeSet<NodeId> = document.voters.iter().copied().map(NodeId).collect();
    if node_id.0 == 0 || voters.contains(&NodeId(0)) {
        return Err(bad("node id 0 is reserved".to_string()));
    }
    if !voters.is_empty() && !voters.contains(&node_id) {
        return Err(bad(format!(
            "the initial voters {:?} do not include the node {node_id}",
            document.voters
        )));
    }
    Ok(Some(Meta {
        node_id,
        voters,
        incarnation: Incarnation(document.incarnation),
        cluster_id: document.cluster_id,
    }))
}

fn check_meta(
    dir: &Path,
    on_disk: &Meta,
    id: NodeId,
    requested: &BTreeSet<NodeId>,
) -> Result<(), StorageError> {
    if on_disk.node_id != id {
        return Err(StorageError::NodeIdMismatch {
            dir: dir.to_path_buf(),
            on_disk: on_disk.node_id,
            requested: id,
        });
    }
    // A server that joined or returned was created without initial voters, and flags that
    // make none (joining, returning) claim none: only two initial clusters can disagree.
    if !on_disk.voters.is_empty() && !requested.is_empty() && on_disk.voters != *requested {
        let ids =
            |set: &BTreeSet<NodeId>| format!("{:?}", set.iter().map(|id| id.0).collect::<Vec<_>>());
        return Err(StorageError::VotersMismatch {
            dir: dir.to_path_buf(),
            on_disk: ids(&on_disk.voters),
            requested: ids(requested),
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
