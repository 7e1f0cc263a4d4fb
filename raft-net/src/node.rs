//! Wiring: open the data dir, restore the core, bind the sockets, start the storage thread, the
//! driver task and the HTTP server.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use raft_core::kv::KvStore;
use raft_core::{Node, NodeId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

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
    let opened = storage::open(&config.data_dir, config.id, &raft_config.voters)?;
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
    let storage_mirror = opened.durable.clone();
    let node = Node::restore(raft_config, opened.durable).map_err(StorageError::from)?;

    let metrics = Arc::new(Metrics::default());
    let isolated = Arc::new(AtomicBool::new(false));
    let peer_addrs: BTreeMap<NodeId, SocketAddr> = config
        .peers
        .iter()
        .map(|peer| (peer.id, peer.raft_addr))
        .collect();
    let codec = Codec::new(
        config.id,
        config.cluster_key.as_deref(),
        config.datagram_bytes_max,
        &peer_addrs,
    );
    let transport = Transport::bind(
        config.raft_addr,
        codec,
        peer_addrs,
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
    let storage = spawn_writer(
        opened.wal,
        storage_mirror,
        persisted_tx,
        Arc::clone(&metrics),
    )?;
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE_MAX);
    let driver = Driver::new(
        node,
        kv,
        Arc::new(transport),
        storage,
        Arc::clone(&metrics),
        config.snapshot_entries,
    );

    let state = AppState {
        id: config.id,
        requests: requests_tx,
        http_addrs: Arc::new(config.http_addrs()),
        raft_addrs: Arc::new(
            config
                .peers
                .iter()
                .map(|peer| (peer.id, peer.raft_addr.to_string()))
                .chain([(config.id, config.raft_addr.to_string())])
                .collect(),
        ),
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
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    tokio::select! {
        result = driver.run(config.timing.tick, requests_rx, persisted_rx) => result?,
        result = server => result.map_err(NodeError::Http)?,
    }
    Ok(())
}
