//! A node's settings, already validated: identity, addresses, peers, secrets, timing and size
//! limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeSet;

use raft_core::{Incarnation, NodeId};

use crate::auth::Token;
use crate::cluster_id::ClusterId;
use crate::cluster_key::ClusterKey;
use crate::error::ConfigError;
use crate::storage::Creation;
use crate::transport::DATAGRAM_OVERHEAD_BYTES;

/// Default cap on one peer datagram: well below the 64 KiB UDP limit, one loopback packet.
pub const DATAGRAM_BYTES_MAX_DEFAULT: usize = 48 * 1024;
/// AppendEntries in flight per follower. Small on purpose: while the pipeline is full, new
/// entries queue in the leader's log and leave in one datagram with the next acknowledgement,
/// instead of one datagram (and one follower fsync request) per proposal.
pub const INFLIGHT_APPENDS_MAX_DEFAULT: usize = 4;
/// raft-core's default. A leader keeps at most `inflight_appends_max` appends in flight to a
/// follower, so the follower seldom holds more than that; the bound is against a flood.
pub const EARLY_APPENDS_MAX_DEFAULT: usize = 64;
/// Applied entries between snapshots by default.
pub const SNAPSHOT_ENTRIES_DEFAULT: u64 = 10_000;
/// The most log a snapshot waits for by default: 256 MiB.
pub const SNAPSHOT_LOG_BYTES_MAX_DEFAULT: u64 = 256 * 1024 * 1024;
/// Room for an InstallSnapshot message's fields besides its data chunk: indexes, terms and the
/// membership (up to ~400 member ids at 10 bytes each).
const SNAPSHOT_META_BYTES: usize = 4096;
/// Request bodies above this are refused with 413.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Keys above this are refused with 400.
pub const KEY_BYTES_MAX: usize = 1024;
/// Room an AppendEntries message needs besides its entries' `Entry::size_bytes` estimates:
/// the envelope fields (a few varints), and up to 2 bytes per entry that the estimate's 24-byte
/// allowance can fall short of postcard's worst case (10 + 10 + 1 + 5 bytes).
const APPEND_FIXED_BYTES: usize = 256;
const APPEND_PER_ENTRY_SLACK_BYTES: usize = 2;
/// `Entry::size_bytes`' per-entry allowance, so a single command entry fits the budget.
const ENTRY_HEADER_BYTES: usize = 24;

/// What a node started on an empty data dir is (etcd's `--initial-cluster-state`); a data
/// dir that exists ignores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum InitialClusterState {
    /// A member of a new cluster: the node and its `--peer`s are the initial voters.
    #[default]
    New,
    /// A server of a running cluster whose state was lost (or a new one): it starts with no
    /// voters, as a new incarnation, and waits for the leader to (re-)add it.
    Existing,
}

/// Another voter: its id, where its Raft datagrams go, where its clients go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: NodeId,
    pub raft_addr: SocketAddr,
    /// `host:port`, used to redirect clients to the leader.
    pub http_addr: String,
}

/// Timing, in the core's logical ticks and the driver's wall-clock tick length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub tick: Duration,
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    /// The leader sends the last append in flight to a follower again after this many ticks
    /// without an answer (raft-core's `Config::tail_resend_ticks`); 0 never.
    pub tail_resend_ticks: u32,
    /// How long a client write waits for its commit before the answer is 504.
    pub commit_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            tick: Duration::from_millis(10),
            heartbeat_ticks: 5,
            election_ticks_min: 30,
            election_ticks_max: 60,
            tail_resend_ticks: 2,
            commit_timeout: Duration::from_secs(5),
        }
    }
}

/// Limits of the HTTP server; see `http::serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request head must arrive within this; also the idle timeout of a keep-alive
    /// connection and the time a TLS handshake may take.
    pub header_timeout: Duration,
    /// Longest pause between two chunks of a request body.
    pub body_timeout: Duration,
    /// Longest a whole request may take, body and answer included; the answer is then `504`
    /// (outcome unknown).
    pub request_timeout: Duration,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub connections_max: usize,
    /// How long requests in flight may take to finish once shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            connections_max: 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Everything `node::run` needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    pub raft_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The other initial voters.
    pub peers: Vec<Peer>,
    /// Serve the isolate/heal, transfer and snapshot routes.
    pub admin: bool,
    /// Authenticates every datagram when set.
    pub cluster_key: Option<ClusterKey>,
    /// Required by the admin routes when set (and sent by `--join`).
    pub admin_token: Option<Token>,
    /// Required by the client routes when set.
    pub client_token: Option<Token>,
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Trust this certificate (PEM) when joining a cluster over HTTPS.
    pub ca_cert: Option<PathBuf>,
    pub http: HttpLimits,
    /// Ask the cluster at this URL to add this node (when its data dir is empty).
    pub join: Option<String>,
    /// Start with no voters and wait for a member to add this node (the seed's `/join` flow).
    pub await_join: bool,
    /// What an empty data dir becomes.
    pub initial_cluster_state: InitialClusterState,
    /// Mixed into the id of a new cluster, so clusters with the same member ids differ.
    pub initial_cluster_token: String,
    pub timing: Timing,
    pub datagram_bytes_max: usize,
    pub inflight_appends_max: usize,
    /// AppendEntries a follower holds when they overtook earlier ones (0: reject them).
    pub early_appends_max: usize,
    /// Take a snapshot (and compact the log) once the entries applied since the last snapshot
    /// add up to its size (or to `snapshot_log_bytes_max`), at the node's next multiple of
    /// this many entries; 0 never.
    pub snapshot_entries: u64,
    /// The most log bytes a snapshot waits for, however large the last one was.
    pub snapshot_log_bytes_max: u64,
    /// A WAL segment is closed once it holds this many bytes; whole segments below the
    /// latest snapshot are deleted.
    pub wal_segment_bytes: u64,
    /// The origin of the launcher that started this node (`--launcher-url`).
    pub launcher: Option<String>,
}

impl NodeConfig {
    /// Checks the peer list and the datagram budget.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = vec![self.id];
        for peer in &self.peers {
            if seen.contains(&peer.id) {
                return Err(ConfigError::DuplicatePeer(peer.id));
            }
            seen.push(peer.id);
        }
        let min = DATAGRAM_OVERHEAD_BYTES + APPEND_FIXED_BYTES + 1024;
        if self.datagram_bytes_max < min {
            return Err(ConfigError::DatagramTooSmall {
                datagram_bytes_max: self.datagram_bytes_max,
                min,
            });
        }
        self.raft_config().validate()?;
        Ok(())
    }

    /// The core's configuration: timing from `timing`, and an AppendEntries byte budget that
    /// keeps every message's datagram under `datagram_bytes_max`.
    #[must_use]
    pub fn raft_config(&self) -> raft_core::Config {
        let mut config = raft_core::Config::new(self.id, self.initial_voters());
        config.heartbeat_interval_ticks = self.timing.heartbeat_ticks;
        config.election_timeout_ticks_min = self.timing.election_ticks_min;
        config.election_timeout_ticks_max = self.timing.election_ticks_max;
        config.tail_resend_ticks = self.timing.tail_resend_ticks;
        config.append_bytes_max = self.append_bytes_max(config.append_entries_max);
        config.inflight_appends_max = self.inflight_appends_max;
        config.early_appends_max = self.early_appends_max;
        // An InstallSnapshot chunk plus its metadata (the membership) must fit one datagram too.
        config.snapshot_chunk_bytes_max = config
            .append_bytes_max
            .saturating_sub(SNAPSHOT_META_BYTES)
            .max(1);
        config
    }

    /// Whether an empty data dir makes this node a server that an existing cluster adds (or
    /// re-adds), rather than a member of a new cluster.
    #[must_use]
    pub fn joins_existing(&self) -> bool {
        self.join.is_some()
            || self.await_join
            || self.initial_cluster_state == InitialClusterState::Existing
    }

    /// The voters the flags make this node start with on an empty data dir. A joining or
    /// returning node starts with none: it waits for the leader to contact it, and the
    /// membership in the log it receives rules from then on.
    #[must_use]
    pub fn initial_voters(&self) -> BTreeSet<NodeId> {
        if self.joins_existing() {
            return BTreeSet::new();
        }
        self.peers
            .iter()
            .map(|peer| peer.id)
            .chain([self.id])
            .collect()
    }

    /// What an empty data dir is created with: the initial voters, an incarnation (the
    /// creation time, `now_micros`) and, for a new cluster, its id.
    #[must_use]
    pub fn creation(&self, now_micros: u64) -> Creation {
        let voters = self.initial_voters();
        let cluster_id = (!self.joins_existing())
            .then(|| ClusterId::of_new_cluster(&voters, &self.initial_cluster_token));
        Creation {
            voters,
            incarnation: Incarnation(now_micros),
            cluster_id,
        }
    }

    fn append_bytes_max(&self, append_entries_max: usize) -> usize {
        self.datagram_bytes_max
            .saturating_sub(DATAGRAM_OVERHEAD_BYTES)
            .saturating_sub(APPEND_FIXED_BYTES)
            .saturating_sub(APPEND_PER_ENTRY_SLACK_BYTES * append_entries_max)
            .max(1)
    }

    /// The largest encoded command a client may propose: one entry must fit one datagram.
    #[must_use]
    pub fn command_bytes_max(&self) -> usize {
        let config = self.raft_config();
        config.append_bytes_max.saturating_sub(ENTRY_HEADER_BYTES)
    }
}

/// Parses `1` or `n1` (the seed KV store names nodes `n1`, `n2`, ...).
pub fn parse_node_id(text: &str) -> Result<NodeId, ConfigError> {
    let digits = text.trim().trim_start_matches(['n', 'N']);
    match digits.parse::<u64>() {
        Ok(id) if id > 0 => Ok(NodeId(id)),
        _ => Err(ConfigError::NodeId(text.to_string())),
    }
}

/// Resolves `host:port` to one socket address: an IP literal as it is, a name through tokio's
/// resolver (on its blocking pool, never on the thread that runs the driver), within
/// [`RESOLVE_TIMEOUT`].
pub async fn resolve(addr: &str) -> Result<SocketAddr, ConfigError> {
    let error = |reason: String| ConfigError::Address {
        addr: addr.to_string(),
        reason,
    };
    if let Ok(literal) = addr.parse::<SocketAddr>() {
        return Ok(literal);
    }
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(addr))
        .await
        .map_err(|_| error(format!("no answer within {RESOLVE_TIMEOUT:?}")))?
        .map_err(|e| error(e.to_string()))?
        .next();
    found.ok_or_else(|| error("no address found".to_string()))
}

/// How long a host name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses `ID=RAFT_HOST:PORT@HTTP_HOST:PORT`.
pub async fn parse_peer(spec: &str) -> Result<Peer, ConfigError> {
    let error = |reason: &str| ConfigError::Peer {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (id, addrs) = spec.split_once('=').ok_or_else(|| error("missing '='"))?;
    let (raft, http) = addrs
        .split_once('@')
        .ok_or_else(|| error("missing '@' between the Raft and HTTP addresses"))?;
    let id = parse_node_id(id).map_err(|e| error(&e.to_string()))?;
    let raft_addr = resolve(raft).await.map_err(|e| error(&e.to_string()))?;
    if let Err(reason) =
        crate::member_address::check_member_address(id.0, &raft_addr.to_string(), http)
    {
        return Err(error(&reason.to_string()));
    }
    Ok(Peer {
        id,
        raft_addr,
        http_addr: http.to_string(),
    })
}

/// `raft-net node`: flags, with the seed KV store's environment variables as fallbacks.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// This node's id (`1` or `n1`).
    #[arg(long, env = "RAFT_NODE_ID")]
    pub id: String,
    /// UDP address for peer traffic, host:port.
    #[arg(long)]
    pub raft_addr: Option<String>,
    /// Raft port on 127.0.0.1 when --raft-addr is not given.
    #[arg(long, env = "RAFT_SERVER_PORT", hide = true)]
    pub raft_port: Option<u16>,
    /// TCP address for the HTTP API, host:port.
    #[arg(long)]
    pub http_addr: Option<String>,
    /// HTTP port on 127.0.0.1 when --http-addr is not given.
    #[arg(long, env = "HTTP_SERVER_PORT", hide = true)]
    pub http_port: Option<u16>,
    /// Where the write-ahead log and metadata live.
    #[arg(long, env = "RAFT_VOLUME_DIR")]
    pub data_dir: PathBuf,
    /// Another initial voter: ID=RAFT_HOST:PORT@HTTP_HOST:PORT (repeat; the same set on every
    /// node).
    #[arg(long = "peer", value_name = "ID=RAFT@HTTP")]
    pub peers: Vec<String>,
    /// Ask the cluster at this URL to add this node: it joins as a learner, catches up, then
    /// becomes a voter. Only acted on while the data dir is empty.
    #[arg(long, value_name = "URL")]
    pub join: Option<String>,
    /// Start with no voters and wait until a member adds this node (`POST /api/v1/members`
    /// or `GET /join?nodeId=&raftPort=` on a member). Only matters while the data dir is empty.
    #[arg(long, conflicts_with = "join")]
    pub await_join: bool,
    /// What an empty data dir becomes: `new`, a member of a new cluster made of this node and
    /// its --peers; `existing`, a server of the running cluster of its --peers whose state was
    /// lost (or a new one), which starts with no vote and waits for the leader to re-add it. A
    /// data dir that exists ignores this.
    #[arg(long, value_enum, default_value_t = InitialClusterState::New)]
    pub initial_cluster_state: InitialClusterState,
    /// Mixed into the id of a new cluster (with the initial voters' ids): give clusters with
    /// the same member ids different tokens, so a data dir of one is refused by the other.
    #[arg(long, default_value = "", value_name = "TOKEN")]
    pub initial_cluster_token: String,
    /// Serve the fault-injection (isolate/heal), leadership-transfer and snapshot routes.
    #[arg(long)]
    pub admin: bool,
    /// Authenticate every peer datagram with a key stretched (Argon2id) from this passphrase.
    #[arg(
        long,
        env = "RAFT_CLUSTER_KEY",
        hide_env_values = true,
        value_name = "PASSPHRASE"
    )]
    pub cluster_key: Option<String>,
    /// Authenticate every peer datagram with the 32-byte key in this file (raw, or 64 hex
    /// digits).
    #[arg(long, env = "RAFT_CLUSTER_KEY_FILE", value_name = "FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// Require `Authorization: Bearer <token in FILE>` on the admin routes (membership,
    /// leadership, snapshots, fault injection); `--join` sends it to the cluster.
    #[arg(long, env = "RAFT_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token: Option<PathBuf>,
    /// Require `Authorization: Bearer <token in FILE>` (or the admin token) on the client
    /// routes (reads and writes).
    #[arg(long, env = "RAFT_CLIENT_TOKEN_FILE", value_name = "FILE")]
    pub client_token: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Trust this PEM certificate (or authority) when --join talks HTTPS.
    #[arg(long, env = "RAFT_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// A request head must arrive within this (also the idle timeout of a keep-alive
    /// connection, and the time a TLS handshake may take).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_ms: u64,
    /// Longest pause between two chunks of a request body.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_timeout_ms: u64,
    /// Longest a whole request may take; it is then answered 504 (outcome unknown).
    #[arg(long, default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_request_timeout_ms: u64,
    /// HTTP connections open at once; more are closed on accept.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_connections_max: u64,
    /// Wall-clock length of one Raft tick.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Leader heartbeat interval, in ticks.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_ticks: u32,
    /// Election timeouts are drawn from [min, max] ticks.
    #[arg(long, default_value_t = 30)]
    pub election_ticks_min: u32,
    #[arg(long, default_value_t = 60)]
    pub election_ticks_max: u32,
    /// The leader sends the last AppendEntries in flight to a follower again, once, after this
    /// many ticks without an answer: a lost one, with nothing after it that the follower could
    /// report missing. Keep it above the round trip to the followers, their disk write
    /// included; 0 leaves it to the heartbeat's stall detection.
    #[arg(long, default_value_t = 2)]
    pub tail_resend_ticks: u32,
    /// A write not committed within this long is answered 504 (outcome unknown).
    #[arg(long, default_value_t = 5000)]
    pub commit_timeout_ms: u64,
    /// Largest peer datagram, in bytes; AppendEntries batches are sized to fit.
    #[arg(long, default_value_t = DATAGRAM_BYTES_MAX_DEFAULT)]
    pub datagram_bytes_max: usize,
    /// AppendEntries in flight to one follower before the leader waits for acknowledgements.
    /// Fewer in flight means more entries per datagram under load. A follower holding all but
    /// one of them beyond a missing one reports the gap at once (every node should use the
    /// same value).
    #[arg(long, default_value_t = INFLIGHT_APPENDS_MAX_DEFAULT)]
    pub inflight_appends_max: usize,
    /// AppendEntries a follower holds, instead of rejecting them, when they arrive before the
    /// ones they follow (datagrams overtake each other); 0 rejects them, and the leader sends
    /// again from the gap.
    #[arg(long, default_value_t = EARLY_APPENDS_MAX_DEFAULT)]
    pub early_appends_max: usize,
    /// Take a snapshot of the key-value store and compact the log once the entries applied
    /// since the last snapshot add up to its size (or to --snapshot-log-bytes-max), at the
    /// node's next multiple of this many entries (0: never).
    #[arg(long, default_value_t = SNAPSHOT_ENTRIES_DEFAULT)]
    pub snapshot_entries: u64,
    /// A snapshot waits for at most this many bytes of log, however large the last snapshot:
    /// the bound on the log kept in memory and in the WAL between snapshots of a large store.
    #[arg(long, default_value_t = SNAPSHOT_LOG_BYTES_MAX_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_log_bytes_max: u64,
    /// Bytes per write-ahead log segment; the data dir holds the latest snapshot plus the
    /// segments written since the one it covers.
    #[arg(long, default_value_t = crate::storage::wal::SEGMENT_BYTES_MAX,
          value_parser = clap::value_parser!(u64).range(4096..))]
    pub wal_segment_bytes: u64,
    /// Runtime threads for the driver and HTTP (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The `raft-net cluster` launcher that started this node (`http://127.0.0.1:PORT`):
    /// the dashboard (`/ui`) offers to stop and restart nodes through it.
    #[arg(long, value_name = "URL")]
    pub launcher_url: Option<String>,
    /// Shut down once the process with this id is no longer this node's parent (`cluster`
    /// passes its own, so its nodes stop even when it is killed with SIGKILL).
    #[arg(long, value_name = "PID", hide = true)]
    pub exit_with_parent: Option<u32>,
}

impl NodeArgs {
    /// Resolves and validates the flags, reads the key and token files, stretches a
    /// passphrase.
    pub async fn into_config(self) -> Result<NodeConfig, ConfigError> {
        if (self.join.is_some() || self.await_join) && !self.peers.is_empty() {
            return Err(ConfigError::JoinWithPeers);
        }
        let returning = self.join.is_none()
            && !self.await_join
            && self.initial_cluster_state == InitialClusterState::Existing;
        if returning && self.peers.is_empty() {
            return Err(ConfigError::ExistingWithoutPeers);
        }
        let raft_addr = address(
            self.raft_addr,
            self.raft_port,
            "--raft-addr or RAFT_SERVER_PORT",
        )
        .await?;
        let http_addr = address(
            self.http_addr,
            self.http_port,
            "--http-addr or HTTP_SERVER_PORT",
        )
        .await?;
        let mut peers = Vec::with_capacity(self.peers.len());
        for spec in &self.peers {
            peers.push(parse_peer(spec).await?);
        }
        let cluster_key = cluster_key(
            self.cluster_key.filter(|key| !key.is_empty()),
            self.cluster_key_file,
        )
        .await?;
        let token = |path: Option<PathBuf>| path.map(|path| Token::from_file(&path)).transpose();
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
            _ => None,
        };
        let config = NodeConfig {
            id: parse_node_id(&self.id)?,
            raft_addr,
            http_addr,
            data_dir: self.data_dir,
            peers,
            admin: self.admin,
            cluster_key,
            admin_token: token(self.admin_token)?,
            client_token: token(self.client_token)?,
            tls,
            ca_cert: self.ca_cert,
            http: HttpLimits {
                header_timeout: Duration::from_millis(self.http_header_timeout_ms),
                body_timeout: Duration::from_millis(self.http_body_timeout_ms),
                request_timeout: Duration::from_millis(self.http_request_timeout_ms),
                connections_max: usize::try_from(self.http_connections_max).unwrap_or(usize::MAX),
                ..HttpLimits::default()
            },
            join: self.join,
            await_join: self.await_join,
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token,
            timing: Timing {
                tick: Duration::from_millis(self.tick_ms.max(1)),
                heartbeat_ticks: self.heartbeat_ticks,
                election_ticks_min: self.election_ticks_min,
                election_ticks_max: self.election_ticks_max,
                tail_resend_ticks: self.tail_resend_ticks,
                commit_timeout: Duration::from_millis(self.commit_timeout_ms),
            },
            datagram_bytes_max: self.datagram_bytes_max,
            inflight_appends_max: self.inflight_appends_max,
            early_appends_max: self.early_appends_max,
            snapshot_entries: self.snapshot_entries,
            snapshot_log_bytes_max: self.snapshot_log_bytes_max,
            wal_segment_bytes: self.wal_segment_bytes,
            launcher: self
                .launcher_url
                .as_deref()
                .map(launcher_origin)
                .transpose()?,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The cluster key from a file, or stretched from a passphrase (off the runtime's thread: the
/// KDF takes a tenth of a second on purpose).
async fn cluster_key(
    passphrase: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<ClusterKey>, ConfigError> {
    match (passphrase, file) {
        (Some(_), Some(_)) => Err(ConfigError::TwoKeys),
        (None, Some(file)) => ClusterKey::from_file(&file).map(Some),
        (Some(passphrase), None) => {
            tokio::task::spawn_blocking(move || ClusterKey::from_passphrase(&passphrase))
                .await
                .map_err(|error| ConfigError::Kdf {
                    reason: error.to_string(),
                })?
                .map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// The origin (`scheme://host:port`) of a launcher URL: what the dashboard talks to, and what
/// its Content-Security-Policy allows.
pub fn launcher_origin(url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::LauncherUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid("expected http://HOST:PORT or https://HOST:PORT"));
    }
    Ok(parsed.origin().ascii_serialization())
}

async fn address(
    addr: Option<String>,
    port: Option<u16>,
    what: &'static str,
) -> Result<SocketAddr, ConfigError> {
    match (addr, port) {
        (Some(addr), _) => resolve(&addr).await,
        (None, Some(port)) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        (None, None) => Err(ConfigError::Missing(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(datagram_bytes_max: usize) -> NodeConfig {
        NodeConfig {
            id: NodeId(1),
            raft_addr: "127.0.0.1:9000".parse().unwrap(),
            http_addr: "127.0.0.1:8000".parse().unwrap(),
            data_dir: PathBuf::from("data"),
            peers: vec![Peer {
                id: NodeId(2),
                raft_addr: "127.0.0.1:9001".parse().unwrap(),
                http_addr: "127.0.0.1:8001".to_string(),
            }],
            admin: false,
            cluster_key: None,
            admin_token: None,
            client_token: None,
            tls: None,
            ca_cert: None,
            http: HttpLimits::default(),
            join: None,
            await_join: false,
            initial_cluster_state: InitialClusterState::New,
            initial_cluster_token: String::new(),
            timing: Timing::default(),
            datagram_bytes_max,
            inflight_appends_max: INFLIGHT_APPENDS_MAX_DEFAULT,
            early_appends_max: EARLY_APPENDS_MAX_DEFAULT,
            snapshot_entries: SNAPSHOT_ENTRIES_DEFAULT,
            snapshot_log_bytes_max: SNAPSHOT_LOG_BYTES_MAX_DEFAULT,
            wal_segment_bytes: crate::storage::wal::SEGMENT_BYTES_MAX,
            launcher: None,
        }
    }

    #[tokio::test]
    async fn peers_parse() {
        let peer = parse_peer("n3=127.0.0.1:9002@localhost:8002")
            .await
            .unwrap();
        assert_eq!(peer.id, NodeId(3));
        assert_eq!(peer.raft_addr, "127.0.0.1:9002".parse().unwrap());
        assert_eq!(peer.http_addr, "localhost:8002");
        // A name goes through tokio's resolver.
        let named = parse_peer("4=localhost:9003@localhost:8003").await.unwrap();
        assert!(named.raft_addr.ip().is_loopback(), "{named:?}");
        for bad in [
            "3",
            "3=127.0.0.1:9002",
            "x=127.0.0.1:9002@h:1",
            "0=127.0.0.1:1@h:1",
            "3=0.0.0.0:9002@h:1",
            "3=127.0.0.1:9002@h",
            "3=127.0.0.1:9002@two words:1",
        ] {
            assert!(parse_peer(bad).await.is_err(), "{bad}");
        }
    }

    #[test]
    fn launcher_urls_give_their_origin() {
        assert_eq!(
            launcher_origin("http://127.0.0.1:7999/").unwrap(),
            "http://127.0.0.1:7999"
        );
        assert_eq!(
            launcher_origin("https://[::1]:7999/x").unwrap(),
            "https://[::1]:7999"
        );
        for bad in [
            "127.0.0.1:7999",
            "file:///tmp/x",
            "nonsense",
            "data:text/plain,x",
        ] {
            assert!(launcher_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_ids_parse() {
        assert_eq!(parse_node_id("n2").unwrap(), NodeId(2));
        assert_eq!(parse_node_id("7").unwrap(), NodeId(7));
        assert!(parse_node_id("0").is_err());
        assert!(parse_node_id("node").is_err());
    }

    #[test]
    fn append_budget_fits_the_datagram() {
        let config = config(DATAGRAM_BYTES_MAX_DEFAULT);
        config.validate().unwrap();
        let raft = config.raft_config();
        let worst = raft.append_bytes_max
            + APPEND_PER_ENTRY_SLACK_BYTES * raft.append_entries_max
            + APPEND_FIXED_BYTES
            + DATAGRAM_OVERHEAD_BYTES;
        assert!(worst <= DATAGRAM_BYTES_MAX_DEFAULT);
        assert!(config.command_bytes_max() + ENTRY_HEADER_BYTES <= raft.append_bytes_max);
        assert!(config.command_bytes_max() > 40 * 1024);
        assert!(raft.snapshot_chunk_bytes_max + SNAPSHOT_META_BYTES <= raft.append_bytes_max);
    }

    #[test]
    fn the_snapshot_log_cap_is_a_flag_of_at_least_one_byte() {
        use clap::Parser;
        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            node: NodeArgs,
        }
        let parse = |extra: &[&str]| {
            let args = ["node", "--id", "1", "--data-dir", "d"].iter().chain(extra);
            Command::try_parse_from(args).map(|command| command.node.snapshot_log_bytes_max)
        };
        assert_eq!(parse(&[]).unwrap(), SNAPSHOT_LOG_BYTES_MAX_DEFAULT);
        assert_eq!(
            parse(&["--snapshot-log-bytes-max", "1000000"]).unwrap(),
            1_000_000
        );
        assert!(parse(&["--snapshot-log-bytes-max", "0"]).is_err());
    }

    #[test]
    fn the_tail_resend_reaches_the_core_and_defaults_to_its_default() {
        let mut config = config(DATAGRAM_BYTES_MAX_DEFAULT);
        let core_default = raft_core::Config::new(config.id, config.initial_voters());
        assert_eq!(
            config.raft_config().tail_resend_ticks,
            core_default.tail_resend_ticks
        );
        config.timing.tail_resend_ticks = 0;
        assert_eq!(config.raft_config().tail_resend_ticks, 0);
    }

    #[test]
    fn the_early_appends_bound_reaches_the_core_and_defaults_to_its_default() {
        let mut config = config(DATAGRAM_BYTES_MAX_DEFAULT);
        let core_default = raft_core::Config::new(config.id, config.initial_voters());
        assert_eq!(
            config.raft_config().early_appends_max,
            core_default.early_appends_max
        );
        config.early_appends_max = 0;
        assert_eq!(config.raft_config().early_appends_max, 0);
    }

    #[test]
    fn initial_members_agree_on_the_cluster_id_and_returning_servers_have_none() {
        let one = config(DATAGRAM_BYTES_MAX_DEFAULT);
        let mut two = config(DATAGRAM_BYTES_MAX_DEFAULT);
        two.id = NodeId(2);
        two.raft_addr = one.peers[0].raft_addr;
        two.peers = vec![Peer {
            id: NodeId(1),
            raft_addr: one.raft_addr,
            http_addr: "127.0.0.1:8000".to_string(),
        }];
        let created = one.creation(1_000);
        assert_eq!(created.incarnation, Incarnation(1_000));
        assert_eq!(created.voters, one.initial_voters());
        assert_eq!(created.voters.len(), 2);
        assert!(created.cluster_id.is_some());
        assert_eq!(two.creation(2_000).cluster_id, created.cluster_id);
        let mut token = one.clone();
        token.initial_cluster_token = "second".to_string();
        assert_ne!(token.creation(1_000).cluster_id, created.cluster_id);
        let mut returning = one.clone();
        returning.initial_cluster_state = InitialClusterState::Existing;
        let created = returning.creation(3_000);
        assert!(created.voters.is_empty());
        assert_eq!(created.cluster_id, None);
        assert!(returning.raft_config().voters.is_empty());
    }

    #[test]
    fn duplicate_peers_and_tiny_datagrams_are_refused() {
        let mut duplicate = config(DATAGRAM_BYTES_MAX_DEFAULT);
        duplicate.peers.push(duplicate.peers[0].clone());
        assert!(matches!(
            duplicate.validate(),
            Err(ConfigError::DuplicatePeer(NodeId(2)))
        ));
        assert!(matches!(
            config(512).validate(),
            Err(ConfigError::DatagramTooSmall { .. })
        ));
    }
}
