//! Wiring: open the data dir, restore the core, bind the sockets, start the storage thread, the
//! driver task and the HTTP server.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use raft_core::{DurableState, Entry, EntryPayload, Node, NodeId, StateMachine};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::addresses::AddressBook;
use crate::auth::Tokens;
use crate::cluster_id::ClusterIdCell;
use crate::config::NodeConfig;
use crate::driver::{Driver, Identity, REQUEST_QUEUE_MAX};
use crate::error::{NodeError, StorageError};
use crate::http::{self, NodeState};
use crate::kv::KvService;
use crate::member_address::check_member_address;
use crate::metrics::Metrics;
use crate::replica::{may_be_set_address, NodeCommand, Replica};
use crate::service::{describe_entry, Handle, Service};
use crate::snapshot_schedule::SnapshotPolicy;
use crate::storage::{self, spawn_writer};
use crate::transport::{Codec, Transport};

/// Runs one node of the key-value service (what the `raft-net` binary runs) until `shutdown`
/// resolves or storage fails; see [`run_service`].
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    run_service(KvService::default(), config, shutdown).await
}

/// Runs one node of `service` until `shutdown` resolves or storage fails.
///
/// On shutdown the HTTP server stops accepting and drains within its grace period, then the
/// driver stops. When the driver stops first (storage failed), the requests waiting on it are
/// answered (`504` for writes: their outcome is unknown) while the server drains.
pub async fn run_service<S: Service>(
    service: S,
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    config.validate()?;
    // The one wall-clock read outside the driver: it dates a data dir created now (its
    // incarnation) and sets where this start's epoch begins (see `next_transport_epoch`).
    let now_micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        });
    let mut opened = storage::open(&config.data_dir, config.id, &config.creation(now_micros))?;
    // The data dir, not the flags, says what this server is: an existing one ignores
    // --initial-cluster-state, and a server that joined or returned keeps starting as one.
    let mut raft_config = config.raft_config();
    raft_config.voters = opened.meta.voters.clone();
    raft_config.incarnation = opened.meta.incarnation;
    opened.wal.set_segment_bytes_max(config.wal_segment_bytes);
    if let Some((path, offset)) = &opened.report.truncated {
        tracing::warn!(path = %path.display(), offset, "truncated a torn write at the tail of the log");
    }
    tracing::info!(
        id = %config.id,
        data_dir = %config.data_dir.display(),
        created = opened.created,
        incarnation = opened.meta.incarnation.0,
        cluster = %opened.meta.cluster_id.map_or_else(|| "unknown yet".to_string(), |id| id.to_string()),
        voters = ?opened.meta.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
        term = opened.durable.hard_state.current_term.0,
        entries = opened.durable.entries.len(),
        "storage recovered"
    );
    let service = Arc::new(service);
    let mut replica = Replica::new(service.machine());
    if let Some(snapshot) = &opened.durable.snapshot {
        // A large store takes a second or more to rebuild: not on a thread of the runtime,
        // which may run other nodes or the application's own tasks.
        let data = snapshot.data.clone();
        let restored =
            match tokio::task::spawn_blocking(move || replica.restore(&data).map(|()| replica))
                .await
            {
                Ok(restored) => restored,
                Err(error) => match error.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    // Cancelled: the runtime is shutting down, and the node with it.
                    Err(_) => return Ok(()),
                },
            };
        replica = restored.map_err(|_| StorageError::BadSnapshot {
            index: snapshot.meta.last_included_index,
        })?;
    }
    let snapshot_bytes = opened
        .durable
        .snapshot
        .as_ref()
        .map_or(0, |snapshot| snapshot.data.len());
    let fresh = is_fresh(&opened.durable);
    let addresses = Arc::new(AddressBook::new());
    seed_addresses(&addresses, &config, &replica, &opened.durable.entries);
    let node = Node::restore(raft_config, opened.durable).map_err(StorageError::from)?;

    let metrics = Arc::new(Metrics::default());
    let isolated = Arc::new(AtomicBool::new(false));
    if fresh && config.await_join {
        addresses.adopt_next_stranger();
    }
    let cluster = Arc::new(ClusterIdCell::new(opened.meta.cluster_id));
    let codec = Codec::new(
        config.id,
        config.cluster_key.as_ref(),
        config.datagram_bytes_max,
    )
    .with_cluster(Arc::clone(&cluster));
    let epoch = storage::next_transport_epoch(&config.data_dir, now_micros)?;
    let transport = Transport::bind(
        config.raft_addr,
        codec,
        epoch,
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
    let (node_requests_tx, node_requests_rx) = mpsc::channel(REQUEST_QUEUE_MAX);
    let transport = Arc::new(transport);
    // Members that restarted since they last heard of this node learn its new epoch now,
    // instead of dropping its first datagrams.
    transport
        .announce(addresses.ids().into_iter().filter(|&id| id != config.id))
        .await;
    let identity = Identity {
        data_dir: config.data_dir.clone(),
        meta: opened.meta.clone(),
        cluster: Arc::clone(&cluster),
    };
    let factory = Arc::clone(&service);
    let driver = Driver::new(
        node,
        identity,
        replica,
        Box::new(move || factory.machine()),
        Arc::clone(&addresses),
        transport,
        storage,
        Arc::clone(&metrics),
        SnapshotPolicy {
            entries: config.snapshot_entries,
            log_bytes_max: config.snapshot_log_bytes_max,
        },
        snapshot_bytes,
    );
    // Event streams end when the node starts shutting down, so an open dashboard never holds
    // up the server's graceful shutdown.
    let (closing_tx, closing_rx) = watch::channel(false);
    let live = http::events::Live {
        status: driver.watch_status(),
        closing: closing_rx,
        launcher: config.launcher.clone(),
    };

    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let state = NodeState {
        id: config.id,
        requests: node_requests_tx,
        addresses: Arc::clone(&addresses),
        commit_timeout: config.timing.commit_timeout,
        command_bytes_max: config.command_bytes_max(),
        isolated,
        metrics: Arc::clone(&metrics),
        tokens: Arc::new(Tokens::new(
            config.admin_token.as_ref(),
            config.client_token.as_ref(),
        )),
        scheme,
        describe: describe_entry::<S>,
        live,
    };
    let handle = Handle::new(
        requests_tx,
        config.id,
        Arc::clone(&addresses),
        scheme,
        config.timing.commit_timeout,
        config.command_bytes_max(),
    );
    let app = http::router(state, service.routes(handle), config.admin, &config.http);
    tracing::info!(
        id = %config.id,
        raft = %config.raft_addr,
        http = %config.http_addr,
        peers = config.peers.len(),
        admin = config.admin,
        admin_token = config.admin_token.is_some(),
        client_token = config.client_token.is_some(),
        tls = config.tls.is_some(),
        authenticated = config.cluster_key.is_some(),
        epoch,
        "node started"
    );
    // Set when the driver or the join stops the node on its own: the server drains then too.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = http::serve::serve(
        listener,
        app,
        config.tls.clone(),
        config.http,
        metrics,
        async move {
            tokio::select! {
                () = shutdown => {}
                _ = stop_rx.wait_for(|stop| *stop) => {}
            }
            let _ = closing_tx.send(true);
        },
    );
    let driver = async {
        // The driver (and every waiter it holds) is dropped when `run` returns, before the
        // server drains: waiting handlers answer right away.
        let result = driver
            .run(
                config.timing.tick,
                requests_rx,
                node_requests_rx,
                persisted_rx,
            )
            .await;
        let _ = stop_tx.send(true);
        result
    };
    let joining = async {
        match &config.join {
            // Only an empty data dir joins; a restarted member is already in the log.
            Some(url) if fresh => {
                let result = join_cluster(url, &config, &addresses).await;
                if result.is_err() {
                    let _ = stop_tx.send(true);
                }
                result
            }
            _ => Ok(()),
        }
    };
    let (driver, server, joined) = tokio::join!(driver, server, joining);
    driver?;
    server.map_err(NodeError::Http)?;
    joined
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
fn seed_addresses<M: StateMachine>(
    addresses: &AddressBook,
    config: &NodeConfig,
    replica: &Replica<M>,
    entries: &[Entry],
) {
    // The same check the replica applies a `SetAddress` with: a log written by an older build
    // may hold addresses this one would refuse.
    let add = |id: u64, raft: &str, http: &str| {
        if let Ok(raft) = check_member_address(id, raft, http) {
            addresses.insert(NodeId(id), raft, http.to_string());
        }
    };
    for (id, raft, http) in replica.addresses() {
        add(id, raft, http);
    }
    for entry in entries {
        if let EntryPayload::Command(bytes) = &entry.payload {
            if !may_be_set_address(bytes) {
                continue;
            }
            if let Some(NodeCommand::SetAddress {
                id,
                raft_addr,
                http_addr,
            }) = Replica::<M>::decode_command(bytes)
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
/// `POST /api/v1/members` (with this node's admin token, which must be the cluster's), which
/// answers once this node is a voter. Redirects to the leader are followed with the token.
async fn join_cluster(
    url: &str,
    config: &NodeConfig,
    addresses: &AddressBook,
) -> Result<(), NodeError> {
    let failed = |reason: String| NodeError::Join {
        url: url.to_string(),
        reason,
    };
    let client = crate::tls::reqwest_builder(config.ca_cert.as_deref())
        .map_err(|error| failed(error.to_string()))?
        .redirect(reqwest::redirect::Policy::none())
        .timeout(JOIN_TIMEOUT)
        .build()
        .map_err(|error| failed(error.to_string()))?;
    let token = config.admin_token.as_ref();
    let url = url.trim_end_matches('/');
    let (status, body) = crate::client::send(
        &client,
        Method::GET,
        &format!("{url}/api/v1/members"),
        token,
        None,
    )
    .await
    .map_err(|error| failed(error.to_string()))?;
    if !status.is_success() {
        return Err(failed(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let members: Value =
        serde_json::from_slice(&body).map_err(|error| failed(error.to_string()))?;
    for member in members["members"].as_array().into_iter().flatten() {
        let (Some(id), Some(raft), Some(http)) = (
            member["id"].as_u64(),
            member["raft_addr"].as_str(),
            member["http_addr"].as_str(),
        ) else {
            continue;
        };
        if let Ok(raft) = check_member_address(id, raft, http) {
            if id != config.id.0 {
                addresses.insert(NodeId(id), raft, http.to_string());
            }
        }
    }
    tracing::info!(%url, "asking the cluster to add this node");
    let request = json!({
        "id": config.id.0,
        "raft_addr": config.raft_addr.to_string(),
        "http_addr": config.http_addr.to_string(),
    });
    let (status, body) = crate::client::send(
        &client,
        Method::POST,
        &format!("{url}/api/v1/members"),
        token,
        Some(request.to_string().into_bytes()),
    )
    .await
    .map_err(|error| failed(error.to_string()))?;
    if !status.is_success() {
        return Err(failed(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    tracing::info!(%url, "joined the cluster as a voter");
    Ok(())
}
