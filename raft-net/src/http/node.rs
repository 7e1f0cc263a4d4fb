//! The node's own routes, the same whatever state machine the node runs: health, metrics,
//! leadership transfer, snapshots and fault injection here; status in [`super::state`],
//! membership in [`super::members`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use raft_core::{LogIndex, NodeId, Term};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::{
    ask, check_command_size, members, state, ApiError, ApiResult, Effect, Redirect, DRIVER_TIMEOUT,
};
use crate::addresses::AddressBook;
use crate::auth::Tokens;
use crate::driver::{NodeRequest, Outcome, StatePage};
use crate::metrics::Metrics;

/// What every handler of the node's own routes shares.
#[derive(Debug, Clone)]
pub struct NodeState {
    pub id: NodeId,
    pub requests: mpsc::Sender<NodeRequest>,
    /// Every member's addresses, for redirects and `/api/v1/members`.
    pub addresses: Arc<AddressBook>,
    pub commit_timeout: Duration,
    pub command_bytes_max: usize,
    pub isolated: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub tokens: Arc<Tokens>,
    /// `http` or `https`: the scheme of redirects to other members (all members serve the
    /// same).
    pub scheme: &'static str,
    /// How `/api/v1/state` shows a command entry's bytes; `None` leaves the entry out (an
    /// internal one, such as a member's addresses).
    pub describe: fn(&[u8]) -> Option<String>,
    /// The status feed and the dashboard's settings.
    pub live: super::events::Live,
}

/// The node's routes by access class.
#[derive(Debug)]
pub(super) struct NodeRoutes {
    pub open: Router,
    pub client: Router,
    pub admin: Router,
}

/// The node's routes; `admin` adds the fault-injection, transfer and snapshot routes.
pub(super) fn routes(state: NodeState, admin: bool) -> NodeRoutes {
    let open = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(super::ui::routes());
    let client = Router::new()
        .route("/api/v1/state", get(state::get_state))
        .route("/api/v1/members", get(members::members))
        .route("/api/v1/events", get(super::events::events));
    let mut admin_routes = Router::new()
        .route("/api/v1/members", post(members::add_member))
        .route(
            "/api/v1/members/{id}",
            axum::routing::delete(members::remove_member),
        )
        .route(
            "/api/v1/members/{id}/address",
            axum::routing::put(members::change_address),
        )
        // The seed's compatibility route: a GET that changes membership, so it takes the admin
        // token like `POST /api/v1/members`.
        .route("/join", get(members::compat_join));
    if admin {
        admin_routes = admin_routes
            .route("/api/v1/admin/isolate", post(isolate))
            .route("/api/v1/admin/block", post(isolate))
            .route("/api/v1/admin/heal", post(heal))
            .route("/api/v1/admin/transfer-leader", post(transfer_leader))
            .route("/api/v1/admin/snapshot", post(take_snapshot))
            .route("/api/v1/admin/unblock", post(heal))
            .route("/block", get(isolate).post(isolate))
            .route("/unblock", get(heal).post(heal));
    }
    NodeRoutes {
        open: open.with_state(state.clone()),
        client: client.with_state(state.clone()),
        admin: admin_routes.with_state(state),
    }
}

impl NodeState {
    pub(super) fn redirect(&self) -> Redirect {
        Redirect {
            id: self.id,
            addresses: Arc::clone(&self.addresses),
            scheme: self.scheme,
        }
    }

    /// This node's status (a page without log entries).
    pub(super) async fn status(&self) -> Result<StatePage, ApiError> {
        ask(
            &self.requests,
            |respond| NodeRequest::State {
                from: LogIndex(1),
                limit: 0,
                respond,
            },
            DRIVER_TIMEOUT,
            Effect::None,
        )
        .await
    }

    /// Proposes an encoded node command; `Ok` with its index and term only once it is
    /// committed and applied.
    pub(super) async fn propose(
        &self,
        command: Vec<u8>,
        uri: &Uri,
    ) -> Result<(LogIndex, Term), ApiError> {
        check_command_size(&command, self.command_bytes_max)?;
        let outcome = ask(
            &self.requests,
            |respond| NodeRequest::Propose { command, respond },
            self.commit_timeout,
            Effect::Change,
        )
        .await?;
        match outcome {
            Outcome::Committed { index, term, .. } => Ok((index, term)),
            other => Err(self.failure(other, uri)),
        }
    }

    /// The error for an outcome other than success.
    pub(super) fn failure(&self, outcome: Outcome, uri: &Uri) -> ApiError {
        self.redirect().failure(outcome, uri)
    }

    /// `307` to the leader's same URL, or `503` when it (or its address) is unknown.
    pub(super) fn not_leader(&self, leader_hint: Option<NodeId>, uri: &Uri) -> ApiError {
        self.redirect().not_leader(leader_hint, uri)
    }
}

async fn healthz(State(state): State<NodeState>) -> ApiResult {
    // A round trip through the driver: a stuck driver loop is unhealthy even if HTTP answers.
    let view = state.status().await?;
    Ok(Json(json!({
        "status": "ok",
        "id": view.id,
        "state": view.state,
        "term": view.term,
        "leader": view.leader,
        "isolated": state.isolated.load(Ordering::Relaxed),
    }))
    .into_response())
}

async fn metrics(State(state): State<NodeState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.id.0),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct TransferQuery {
    to: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to: u64,
}

/// Asks the leader to hand over to `{"to": ID}` (or `?to=ID`): it catches the target up, then
/// tells it to start an election at once. `202` once the transfer has started; a follower
/// redirects.
async fn transfer_leader(
    State(state): State<NodeState>,
    uri: Uri,
    query: Result<Query<TransferQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let to = match query.to {
        Some(to) => to,
        None => {
            let body: TransferBody = serde_json::from_slice(&body?).map_err(|error| {
                ApiError::bad_request(format!(
                    "malformed JSON: {error}; expected {{\"to\": 2}} or ?to=2"
                ))
            })?;
            body.to.to_string()
        }
    };
    let to = crate::config::parse_node_id(&to)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let view = ask(
        &state.requests,
        |respond| NodeRequest::TransferLeader { to, respond },
        DRIVER_TIMEOUT,
        Effect::Change,
    )
    .await?;
    match view.target {
        Some(target) if target == to => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "transferring_to": to.0 })),
        )
            .into_response()),
        _ if view.leader == Some(state.id) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("cannot transfer leadership to {to}: not a voter, this node itself, or another transfer is under way"),
        )),
        _ => Err(state.not_leader(view.leader, &uri)),
    }
}

/// `POST /api/v1/admin/snapshot`: this node snapshots its state machine at its applied index
/// and compacts its log there. Answers the snapshot's index.
async fn take_snapshot(State(state): State<NodeState>) -> ApiResult {
    let index = ask(
        &state.requests,
        |respond| NodeRequest::Snapshot { respond },
        DRIVER_TIMEOUT,
        Effect::Change,
    )
    .await?;
    match index {
        Some(index) => Ok(Json(json!({ "snapshot_index": index.0 })).into_response()),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing applied since the latest snapshot",
        )),
    }
}

async fn isolate(State(state): State<NodeState>) -> Response {
    state.isolated.store(true, Ordering::Relaxed);
    tracing::warn!("isolated: dropping all peer traffic");
    Json(json!({ "isolated": true })).into_response()
}

async fn heal(State(state): State<NodeState>) -> Response {
    state.isolated.store(false, Ordering::Relaxed);
    tracing::warn!("healed: peer traffic flows again");
    Json(json!({ "isolated": false })).into_response()
}
