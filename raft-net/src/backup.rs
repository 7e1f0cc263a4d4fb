//! Backups: `raft-net snapshot save FILE` and `raft-net snapshot restore FILE --data-dir D`
//! (etcdctl's `snapshot save` and `snapshot restore`).
//!
//! `save` asks a running node for `GET /api/v1/backup` (an admin route): the leader confirms
//! its leadership with a quorum and waits until it has applied everything committed when the
//! request arrived (a ReadIndex, like a linearizable read), then hands over the key-value
//! store as of its applied index, with that index, its term and the membership there. So a
//! backup holds every write acknowledged before `save` started, and is one consistent state.
//!
//! ```text
//! file:   [magic "RAFTBAK1"][header length u32 LE][header][data length u64 LE][data]
//!         [crc32c of everything before it, u32 LE]
//! header: postcard {cluster id u64 (0: unknown), index, term, membership}
//! data:   the key-value service's replicated state, as its snapshots hold it (the members'
//!         addresses and the store with its sessions: `crate::replica::Replica`)
//! ```
//!
//! `restore` seeds a new data dir from a backup, for a new cluster: its own cluster id (see
//! `ClusterId::of_restored_cluster`), a new incarnation, and the membership of this node alone
//! or of this node and its `--peer`s (each of which restores the same file with the same
//! flags). The log starts after the backup's index, with the backup as its snapshot.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use raft_core::StateMachine;
use raft_core::{
    DurableState, HardState, Incarnation, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta,
    Term,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::Token;
use crate::client::{self, ClientError};
use crate::cluster_id::ClusterId;
use crate::config::{parse_node_id, parse_peer};
use crate::error::{ConfigError, StorageError};
use crate::kv::{KvMachine, KvService};
use crate::replica::Replica;
use crate::service::Service;
use crate::storage::{self, Meta, Wal};

const MAGIC: &[u8; 8] = b"RAFTBAK1";
/// A header is a few ids and numbers; a longer length field is garbage.
const HEADER_BYTES_MAX: usize = 1 << 20;

/// The state machine at one applied index, as a backup holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupImage {
    pub cluster_id: Option<ClusterId>,
    pub index: LogIndex,
    pub term: Term,
    pub membership: Membership,
    pub data: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    cluster_id: u64,
    index: LogIndex,
    term: Term,
    membership: Membership,
}

/// Why a backup file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: not a raft-net backup: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{dir} already holds a data dir (or other files); restore seeds an empty or new directory only")]
    NotEmpty { dir: PathBuf },
    #[error("the restored state would not start: {0}")]
    Restore(#[from] raft_core::RestoreError),
}

impl BackupImage {
    /// The file's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let header = Header {
            cluster_id: self.cluster_id.map_or(0, ClusterId::get),
            index: self.index,
            term: self.term,
            membership: self.membership.clone(),
        };
        // Ids, numbers and sets always encode.
        let header = postcard::to_allocvec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(MAGIC.len() + 16 + header.len() + self.data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.data);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// A backup from its file's bytes; why not, for anything else (never a panic).
    pub fn decode(bytes: &[u8]) -> Result<BackupImage, String> {
        let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
            return Err("too short".to_string());
        };
        let rest = body
            .strip_prefix(MAGIC)
            .ok_or_else(|| "no RAFTBAK1 magic".to_string())?;
        if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
            return Err("checksum mismatch: the file is damaged or cut short".to_string());
        }
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| "no header".to_string())?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > HEADER_BYTES_MAX || len > rest.len() {
            return Err(format!("a header length of {len} bytes"));
        }
        let (header, rest) = rest.split_at(len);
        let header: Header =
            postcard::from_bytes(header).map_err(|error| format!("bad header: {error}"))?;
        let (len, data) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| "no data length".to_string())?;
        if u64::from_le_bytes(*len) != data.len() as u64 {
            return Err("the data length does not match the file".to_string());
        }
        if kv_state().restore(data).is_err() {
            return Err("the data is not a snapshot of the key-value service".to_string());
        }
        Ok(BackupImage {
            cluster_id: ClusterId::from_wire(header.cluster_id),
            index: header.index,
            term: header.term,
            membership: header.membership,
            data: data.to_vec(),
        })
    }

    /// What `save` prints: the ids, index, term, membership and size.
    #[must_use]
    pub fn summary(&self) -> Value {
        let ids = |set: &BTreeSet<NodeId>| set.iter().map(|id| id.0).collect::<Vec<_>>();
        json!({
            "cluster_id": self.cluster_id.map(|id| id.to_string()),
            "index": self.index.0,
            "term": self.term.0,
            "voters": ids(&self.membership.voters),
            "learners": ids(&self.membership.learners),
            "data_bytes": self.data.len(),
        })
    }
}

/// `raft-net snapshot`.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub op: SnapshotOp,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SnapshotOp {
    /// Save a consistent backup of a running cluster (`GET /api/v1/backup`, admin) to FILE.
    Save {
        file: PathBuf,
        /// Any node's URL; followers redirect to the leader.
        #[arg(long, env = "RAFT_SERVER", default_value = "http://127.0.0.1:8000")]
        server: String,
        /// Present the admin token in FILE (default, for a server on this host:
        /// ./data/admin-token, when it exists).
        #[arg(long, env = "RAFT_ADMIN_TOKEN_FILE", value_name = "FILE")]
        admin_token: Option<PathBuf>,
        /// Trust this PEM certificate (or authority) for https:// servers.
        #[arg(long, env = "RAFT_CA_CERT", value_name = "FILE")]
        ca_cert: Option<PathBuf>,
    },
    /// Seed a new data dir for a new cluster from a backup.
    Restore {
        file: PathBuf,
        /// The data dir to create (it must not exist, or be empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// The id of the node that will run on it (`1` or `n1`).
        #[arg(long)]
        id: String,
        /// Another member of the new cluster, as `raft-net node` takes it (repeat; every
        /// member restores the same file with the same set). None: a one-node cluster.
        #[arg(long = "peer", value_name = "ID=RAFT@HTTP")]
        peers: Vec<String>,
        /// Mixed into the new cluster's id: give two clusters restored from one file with the
        /// same members different tokens.
        #[arg(long, default_value = "", value_name = "TOKEN")]
        initial_cluster_token: String,
    },
}

/// Runs `raft-net snapshot`; the JSON to print.
pub async fn run(args: &SnapshotArgs, now_micros: u64) -> Result<Value, BackupError> {
    match &args.op {
        SnapshotOp::Save {
            file,
            server,
            admin_token,
            ca_cert,
        } => {
            let token = admin_token
                .as_deref()
                .map(Token::from_file)
                .transpose()?
                .or(client::default_admin_token(server)?);
            let image = save(server, token.as_ref(), ca_cert.as_deref(), file).await?;
            let mut summary = image.summary();
            summary["file"] = json!(file.display().to_string());
            Ok(summary)
        }
        SnapshotOp::Restore {
            file,
            data_dir,
            id,
            peers,
            initial_cluster_token,
        } => {
            let id = parse_node_id(id)?;
            let mut members = BTreeSet::from([id]);
            for spec in peers {
                let peer = parse_peer(spec).await?;
                if !members.insert(peer.id) {
                    return Err(ConfigError::DuplicatePeer(peer.id).into());
                }
            }
            let restored = restore(
                file,
                data_dir,
                id,
                &members,
                initial_cluster_token,
                now_micros,
            )?;
            Ok(json!({
                "data_dir": data_dir.display().to_string(),
                "node_id": id.0,
                "cluster_id": restored.cluster_id.map(|id| id.to_string()),
                "incarnation": restored.incarnation.0,
                "voters": restored.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
                "index": restored.index.0,
                "term": restored.term.0,
                "from_cluster_id": restored.from_cluster.map(|id| id.to_string()),
            }))
        }
    }
}

/// Fetches a backup from the cluster at `server` and writes it to `file` atomically (the file
/// appears whole or not at all).
pub async fn save(
    server: &str,
    token: Option<&Token>,
    ca: Option<&Path>,
    file: &Path,
) -> Result<BackupImage, BackupError> {
    let http = client::http_client(ca)?;
    let url = format!("{}/api/v1/backup", server.trim_end_matches('/'));
    let (status, body) = client::send(&http, Method::GET, &url, token, None).await?;
    if !status.is_success() {
        return Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
        .into());
    }
    let image = BackupImage::decode(&body).map_err(|reason| BackupError::Bad {
        path: PathBuf::from(&url),
        reason,
    })?;
    storage::write_atomically(file, &body)?;
    Ok(image)
}

/// What `restore` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub cluster_id: Option<ClusterId>,
    pub from_cluster: Option<ClusterId>,
    pub incarnation: Incarnation,
    pub voters: BTreeSet<NodeId>,
    pub index: LogIndex,
    pub term: Term,
}

/// Seeds the data dir `dir` (which must not exist or be empty) for node `id` of a new cluster
/// of `members` from the backup in `file`.
pub fn restore(
    file: &Path,
    dir: &Path,
    id: NodeId,
    members: &BTreeSet<NodeId>,
    token: &str,
    now_micros: u64,
) -> Result<Restored, BackupError> {
    let bytes = std::fs::read(file).map_err(|source| BackupError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let image = BackupImage::decode(&bytes).map_err(|reason| BackupError::Bad {
        path: file.to_path_buf(),
        reason,
    })?;
    let occupied = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(BackupError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    if occupied {
        return Err(BackupError::NotEmpty {
            dir: dir.to_path_buf(),
        });
    }
    let member_ids: Vec<NodeId> = members.iter().copied().collect();
    let cluster_id = ClusterId::of_restored_cluster(&bytes, &member_ids, token);
    // Like the initial members of a new cluster: no incarnation is recorded yet, the first
    // leader records what it hears.
    let durable = DurableState {
        hard_state: HardState {
            current_term: image.term,
            voted_for: None,
        },
        snapshot: Some(Snapshot {
            meta: SnapshotMeta {
                last_included_index: image.index,
                last_included_term: image.term,
                membership: Membership::new(members.iter().copied()),
            },
            data: image.data.into(),
        }),
        entries: Vec::new(),
    };
    let meta = Meta {
        node_id: id,
        voters: members.clone(),
        incarnation: Incarnation(now_micros),
        cluster_id: Some(cluster_id),
    };
    let mut config = raft_core::Config::new(id, members.iter().copied());
    config.incarnation = meta.incarnation;
    raft_core::Node::restore(config, durable.clone())?;
    std::fs::create_dir_all(storage::wal_dir(dir)).map_err(|source| BackupError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (mut wal, _, _) = Wal::recover(&storage::wal_dir(dir))?;
    wal.checkpoint(&durable)?;
    // The metadata last: a data dir without it is refused at start-up, never taken as empty.
    storage::write_meta(dir, &meta)?;
    Ok(Restored {
        cluster_id: meta.cluster_id,
        from_cluster: image.cluster_id,
        incarnation: meta.incarnation,
        voters: meta.voters,
        index: image.index,
        term: image.term,
    })
}

/// The empty replicated state of the key-value service, which a backup's data must restore.
fn kv_state() -> Replica<KvMachine> {
    Replica::new(KvService::default().machine())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::kv::Command;
    use raft_core::session::SessionCommand;

    use crate::replica::machine_command_bytes;

    fn image() -> BackupImage {
        let mut state = kv_state();
        let put = SessionCommand::Plain(Command::Put {
            key: "k".to_string(),
            value: b"v".to_vec(),
        });
        state.apply_bytes(LogIndex(7), &machine_command_bytes::<KvMachine>(&put));
        BackupImage {
            cluster_id: ClusterId::from_wire(5),
            index: LogIndex(7),
            term: Term(2),
            membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
            data: state.snapshot_bytes(),
        }
    }

    #[test]
    fn a_backup_round_trips_and_damage_is_refused() {
        let image = image();
        let bytes = image.encode();
        assert_eq!(BackupImage::decode(&bytes), Ok(image));
        for cut in [0, 3, 8, 20, bytes.len() - 1] {
            assert!(BackupImage::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for position in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0x40;
            assert!(BackupImage::decode(&damaged).is_err(), "byte {position}");
        }
    }

    #[test]
    fn a_restore_seeds_a_new_cluster_and_refuses_an_occupied_dir() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("backup");
        std::fs::write(&file, image().encode()).unwrap();
        let dir = temp.path().join("node1");
        let members = BTreeSet::from([NodeId(1)]);
        let restored = restore(&file, &dir, NodeId(1), &members, "", 1_000).unwrap();
        assert_ne!(restored.cluster_id, ClusterId::from_wire(5));
        assert_eq!(restored.incarnation, Incarnation(1_000));
        let meta = storage::read_meta(&dir).unwrap().unwrap();
        assert_eq!(meta.voters, members);
        assert_eq!(meta.cluster_id, restored.cluster_id);
        let (state, _) = Wal::inspect(&storage::wal_dir(&dir)).unwrap();
        let snapshot = state.snapshot.unwrap();
        assert_eq!(snapshot.meta.last_included_index, LogIndex(7));
        assert_eq!(snapshot.meta.membership.voters, members);
        let mut state = kv_state();
        state.restore(&snapshot.data).unwrap();
        assert_eq!(state.machine().machine().get("k"), Some(&b"v"[..]));
        assert!(matches!(
            restore(&file, &dir, NodeId(1), &members, "", 2_000),
            Err(BackupError::NotEmpty { .. })
        ));
        // Every member restored from one file with the same set agrees on the cluster id.
        let three = BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)]);
        let a = restore(&file, &temp.path().join("a"), NodeId(1), &three, "", 1).unwrap();
        let b = restore(&file, &temp.path().join("b"), NodeId(2), &three, "", 2).unwrap();
        assert_eq!(a.cluster_id, b.cluster_id);
        assert_ne!(a.cluster_id, restored.cluster_id);
    }
}
