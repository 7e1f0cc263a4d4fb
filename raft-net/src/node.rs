//! Wiring: open the data dir, restore the core, bind the sockets, start the storage thread, the
//! driver task and the HTTP server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use raft_core::kv::{Command, KvStore};
use raft_core::{DurableState, Entry, EntryPayload, Node, NodeId};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::addresses::AddressBook;
use crate::config::NodeConfig;
use crate::driver::{Driver, REQUEST_QUEUE_MAX};
use crate::error::{NodeError, StorageError};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::storage::{self, spawn_writer};
use crate::transport::{Codec, Transport};

/// Runs one node until `shutdown` resolves or storage fails.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    config.validate()?;
    let raft_config = config.raft_config();
    let mut opened = storage::open(&config.data_dir, config.id, &raft_config.voters)?;
    opened.wal.set_segment_bytes_max(config.wal_segment_bytes);
    if let Some((path, offset)) = &opened.report.truncated {
        tracing::warn!(path = %path.display(), offset, "truncated a torn write at the tail of the log");
    }
    tracing::info!(
        id = %config.id,
        data_dir = %config.data_dir.display(),
        created = opened.created,
        term = opened.durable.hard_state.current_term.0,
        entries = opened.durable.entries.len(),
        "storage recovered"
    );
    let kv = match &opened.durable.snapshot {
        Some(snapshot) => KvStore::restore(&snapshot.data).ok_or(StorageError::BadSnapshot {
            index: snapshot.meta.last_included_index,
        })?,
        None => KvStore::new(),
    };
    let fresh = is_fresh(&opened.durable);
    let addresses = Arc::new(AddressBook::new());
    seed_addresses(&addresses, &config, &kv, &opened.durable.entries);
    let node = Node::restore(raft_config, opened.durable).map_err(StorageError::from)?;

    let metrics = Arc::new(Metrics::default());
    let isolated = Arc::new(AtomicBool::new(false));
    if fresh && config.await_join {
        addresses.adopt_next_stranger();
    }
    let codec = Codec::new(
        config.id,
        config.cluster_key.as_deref(),
        config.datagram_bytes_max,
    );
    let transport = Transport::bind(
        config.raft_addr,
        codec,
        Arc::clone(&addresses),
        Arc::clone(&isolated),
        Arc::clone(&metrics),
    )
    .map_err(|source| NodeError::Bind {
        what: "the Raft UDP address",
        addr: config.raft_addr,
        source,
    })?;
    let listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| NodeError::Bind {
            what: "the HTTP address",
            addr: config.http_addr,
            source,
        })?;

    let (persisted_tx, persisted_rx) = mpsc::unbounded_channel();
    // The storage thread reads the log back when its first checkpoint needs it, rather than
    // every restart copying a possibly long log for it.
    let storage = spawn_writer(opened.wal, None, persisted_tx, Arc::clone(&metrics))?;
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE_MAX);
    let driver = Driver::new(
        node,
        kv,
        Arc::clone(&addresses),
        Arc::new(transport),
        storage,
        Arc::clone(&metrics),
        config.snapshot_entries,
    );

    let state = AppState {
        id: config.id,
        requests: requests_tx,
        addresses: Arc::clone(&addresses),
        commit_timeout: config.timing.commit_timeout,
        command_bytes_max: config.command_bytes_max(),
        isolated,
        metrics,
    };
    let app = http::router(state, config.admin);
    tracing::info!(
        id = %config.id,
        raft = %config.raft_addr,
        http = %config.http_addr,
        peers = config.peers.len(),
        admin = config.admin,
        authenticated = config.cluster_key.is_some(),
        "node started"
    );
    // Responses are small and written once; Nagle's algorithm would only delay them.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let join = async {
        match &config.join {
            // Only an empty data dir joins; a restarted member is already in the log.
            Some(url) if fresh => join_cluster(url, &config, &addresses).await?,
            _ => {}
        }
        std::future::pending::<Result<(), NodeError>>().await
    };
    tokio::select! {
        result = driver.run(config.timing.tick, requests_rx, persisted_rx) => result?,
        result = server => result.map_err(NodeError::Http)?,
        result = join => result?,
    }
    Ok(())
}

/// Whether the data dir held nothing yet.
fn is_fresh(durable: &DurableState) -> bool {
    durable.snapshot.is_none()
        && durable.entries.is_empty()
        && durable.hard_state.current_term.0 == 0
}

/// Fills the address book: addresses recorded in the snapshot and the log (committed or not:
/// an address is harmless, and a restarted node must reach members that joined later before it
/// learns what is committed), then the flags, which win.
fn seed_addresses(addresses: &AddressBook, config: &NodeConfig, kv: &KvStore, entries: &[Entry]) {
    let add = |id: u64, raft: &str, http: &str| {
        if let Ok(raft) = raft.parse::<SocketAddr>() {
            addresses.insert(NodeId(id), raft, http.to_string());
        }
    };
    for (id, raft, http) in kv.addresses() {
        add(id, raft, http);
    }
    for entry in entries {
        if let EntryPayload::Command(bytes) = &entry.payload {
            if !Command::may_be_set_address(bytes) {
                continue;
            }
            if let Some(Command::SetAddress {
                id,
                raft_addr,
                http_addr,
            }) = Command::decode(bytes)
            {
                add(id, &raft_addr, &http_addr);
            }
        }
    }
    for peer in &config.peers {
        addresses.insert(peer.id, peer.raft_addr, peer.http_addr.clone());
    }
    addresses.insert(config.id, config.raft_addr, config.http_addr.to_string());
}

/// How long a join may take: the learner has to catch up before it is promoted.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Asks the cluster at `url` to add this node: learn the members' addresses, then
/// `POST /api/v1/members`, which answers once this node is a voter.
async fn join_cluster(
    url: &str,
    config: &NodeConfig,
    addresses: &AddressBook,
) -> Result<(), NodeError> {
    let failed = |reason: String| NodeError::Join {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(JOIN_TIMEOUT)
        .build()
        .map_err(|error| failed(error.to_string()))?;
    let url = url.trim_end_matches('/');
    let members: Value = client
        .get(format!("{url}/api/v1/members"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| failed(error.to_string()))?
        .json()
        .await
        .map_err(|error| failed(error.to_string()))?;
    for member in members["members"].as_array().into_iter().flatten() {
        let (Some(id), Some(raft), Some(http)) = (
            member["id"].as_u64(),
            member["raft_addr"].as_str(),
            member["http_addr"].as_str(),
        ) else {
            continue;
        };
        if let Ok(raft) = raft.parse::<SocketAddr>() {
            if id != config.id.0 {
                addresses.insert(NodeId(id), raft, http.to_string());
            }
        }
    }
    tracing::info!(%url, "asking the cluster to add this node");
    let body = json!({
        "id": config.id.0,
        "raft_addr": config.raft_addr.to_string(),
        "http_addr": config.http_addr.to_string(),
    });
    let response = client
        .post(format!("{url}/api/v1/members"))
        .json(&body)
        .send()
        .await
        .map_err(|error| failed(error.to_string()))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(failed(format!("{status}: {text}")));
    }
    tracing::info!(%url, "joined the cluster as a voter");
    Ok(())
}
