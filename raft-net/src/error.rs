//! Errors of the library. Bugs panic; everything the network, the disk or the command line can
//! cause is one of these.

use std::io;
use std::path::PathBuf;

use raft_core::{NodeId, RestoreError};

/// Something wrong with the data dir, found at start-up or while writing.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt write-ahead log {path} at byte offset {offset}: {reason}; refusing to start (a crash can only tear the last batch of the last segment, and this damage is not that: records acknowledged as durable would be lost)")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("data dir {dir} belongs to node {on_disk}; refusing to start it as node {requested}")]
    NodeIdMismatch {
        dir: PathBuf,
        on_disk: NodeId,
        requested: NodeId,
    },
    #[error("data dir {dir} was created with initial voters {on_disk}; the flags give {requested}. Restart a node with the --peer flags it was created with (none after `recover --force-new-cluster`, the restore's after `snapshot restore`): later membership changes live in its log")]
    VotersMismatch {
        dir: PathBuf,
        on_disk: String,
        requested: String,
    },
    #[error("write-ahead log segment {path} is in the format of an earlier raft-net (RAFTWAL1, without batch frames); this build cannot recover it safely: start the node from an empty data dir and let it catch up from the cluster")]
    OldFormat { path: PathBuf },
    #[error("{path} was written by an earlier raft-net (format 1, without an incarnation and a cluster id); this build cannot vouch for that data dir: start the node from an empty data dir with --initial-cluster-state existing and let the cluster re-add it")]
    OldMeta { path: PathBuf },
    #[error("{path}: unreadable metadata: {reason}")]
    BadMeta { path: PathBuf, reason: String },
    #[error("{dir} holds write-ahead log segments but no metadata file; refusing to guess whose they are")]
    MissingMeta { dir: PathBuf },
    #[error("a persist request of {len} bytes exceeds the record limit of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
    #[error("cannot encode a persist request: {reason}")]
    Encode { reason: String },
    #[error("the recovered state is not one raft-core could have produced: {0}")]
    Restore(#[from] RestoreError),
    #[error("write-ahead log {dir} is missing segment {missing} (the segments from the last checkpoint on are numbered without gaps, and without a checkpoint the log starts at segment 1); refusing to start with records lost")]
    MissingSegment { dir: PathBuf, missing: String },
    #[error("the storage thread stopped")]
    ThreadGone,
    #[error("an earlier write to the log failed, so nothing more is written behind it")]
    EarlierWriteFailed,
    #[error("the snapshot in the data dir (index {index}) is not a snapshot of this node's state machine")]
    BadSnapshot { index: raft_core::LogIndex },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { path, source }
    }
}

/// A command-line or configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid --peer {spec:?}: {reason} (expected ID=RAFT_HOST:PORT@HTTP_HOST:PORT)")]
    Peer { spec: String, reason: String },
    #[error("invalid node id {0:?}: expected a positive integer such as 1 or n1")]
    NodeId(String),
    #[error("cannot resolve {addr:?}: {reason}")]
    Address { addr: String, reason: String },
    #[error("peer {0} is listed twice or is this node itself")]
    DuplicatePeer(NodeId),
    #[error("{0} is missing: give the flag or set the environment variable")]
    Missing(&'static str),
    #[error(
        "--join (or --await-join) and --peer cannot be combined: a joining node learns its peers from the cluster"
    )]
    JoinWithPeers,
    #[error("--initial-cluster-state existing needs --peer: the members of the cluster this node returns to (or use --join URL)")]
    ExistingWithoutPeers,
    #[error("the datagram limit of {datagram_bytes_max} bytes leaves no room for log entries (at least {min} bytes are needed)")]
    DatagramTooSmall {
        datagram_bytes_max: usize,
        min: usize,
    },
    #[error("raft configuration: {0}")]
    Raft(#[from] raft_core::ConfigError),
    #[error("cluster key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("cannot derive the cluster key from the passphrase: {reason}")]
    Kdf { reason: String },
    #[error("--cluster-key and --cluster-key-file cannot be combined: give one key")]
    TwoKeys,
    #[error("token file {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("invalid --launcher-url {url:?}: {reason}")]
    LauncherUrl { url: String, reason: String },
}

/// Why a node stopped running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("HTTP server: {0}")]
    Http(#[source] io::Error),
    #[error("joining the cluster at {url} failed: {reason}")]
    Join { url: String, reason: String },
}

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the snapshot at index {index} is not a snapshot of this node's state machine that this build can read; stopping rather than diverging from the other replicas")]
    BadSnapshot { index: raft_core::LogIndex },
}
