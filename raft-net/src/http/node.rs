//! The node's own routes, the same whatever state machine the node runs: health, metrics,
//! leadership transfer, snapshots and fault injection here; status in [`super::state`],
//! membership in [`super::members`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::{LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{ErrorBody, SEED_COMPATIBILITY};
use super::{
    ask, check_command_size, members, state, ApiError, ApiResult, Effect, Redirect, WholeBody,
    DRIVER_TIMEOUT,
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

/// The node's routes by access class, each with its part of the OpenAPI document.
pub(super) struct NodeRoutes {
    pub open: OpenApiRouter,
    pub client: OpenApiRouter,
    pub admin: OpenApiRouter,
}

/// The node's routes; `admin` adds the fault-injection, transfer and snapshot routes.
pub(super) fn routes(state: NodeState, admin: bool) -> NodeRoutes {
    let open = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .merge(super::ui::routes());
    let client = OpenApiRouter::new()
        .routes(routes!(state::get_state))
        .routes(routes!(members::members))
        .routes(routes!(super::events::events));
    let mut admin_routes = OpenApiRouter::new()
        .routes(routes!(members::add_member))
        .routes(routes!(members::remove_member))
        .routes(routes!(members::change_address))
        // The seed's compatibility route: a GET that changes membership, so it takes the admin
        // token like `POST /api/v1/members`.
        .routes(routes!(members::compat_join))
        .routes(routes!(backup));
    if admin {
        admin_routes = admin_routes
            .routes(routes!(isolate))
            .routes(routes!(block))
            .routes(routes!(heal))
            .routes(routes!(unblock))
            .routes(routes!(transfer_leader))
            .routes(routes!(take_snapshot))
            .routes(routes!(compat_block, compat_block_post))
            .routes(routes!(compat_unblock, compat_unblock_post));
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
    pub(super) fn failure<T>(&self, outcome: Outcome<T>, uri: &Uri) -> ApiError {
        self.redirect().failure(outcome, uri)
    }

    /// `307` to the leader's same URL, or `503` when it (or its address) is unknown.
    pub(super) fn not_leader(&self, leader_hint: Option<NodeId>, uri: &Uri) -> ApiError {
        self.redirect().not_leader(leader_hint, uri)
    }
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the answer came through the driver loop.
    pub status: &'static str,
    pub id: u64,
    /// `LEADER`, `CANDIDATE` or `FOLLOWER`.
    pub state: &'static str,
    pub term: u64,
    pub leader: Option<u64>,
    /// Whether the node drops all peer traffic (`POST /api/v1/admin/isolate`).
    pub isolated: bool,
}

/// Whether the node is healthy: a round trip through the driver loop, so a stuck driver is
/// unhealthy even while HTTP answers.
#[utoipa::path(get, path = "/healthz", tag = "node",
    responses(
        (status = 200, description = "the driver loop answered", body = Health),
        (status = 503, description = "the node is shutting down", body = ErrorBody),
    ))]
async fn healthz(State(state): State<NodeState>) -> ApiResult {
    let view = state.status().await?;
    Ok(Json(Health {
        status: "ok",
        id: view.id,
        state: view.state,
        term: view.term,
        leader: view.leader,
        isolated: state.isolated.load(Ordering::Relaxed),
    })
    .into_response())
}

/// Prometheus text: term, role, indexes, proposals, datagrams by drop reason, connections,
/// persist batches, the fsync and driver-turn histograms.
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<NodeState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.id.0),
    )
        .into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TransferQuery {
    /// The voter to hand leadership to (`2` or `n2`), instead of the JSON body; empty is as
    /// if not given.
    #[param(pattern = r"^(n?[0-9]*[1-9][0-9]*)?$")]
    to: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    /// The voter to hand leadership to.
    #[schema(minimum = 1)]
    to: u64,
}

/// `POST /api/v1/admin/transfer-leader`, once the transfer started.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transferring {
    pub transferring_to: u64,
}

/// Asks the leader to hand over to `{"to": ID}` (or `?to=ID`): it catches the target up, then
/// tells it to start an election at once. `202` once the transfer has started; a follower
/// redirects.
#[utoipa::path(post, path = "/api/v1/admin/transfer-leader", tag = "admin",
    params(TransferQuery),
    request_body(content = Option<TransferBody>, description = "the target, unless `?to=` gives it"),
    responses(
        (status = 202, description = "the transfer started (Raft thesis §3.10)", body = Transferring),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 409, description = "not a voter, this node itself, or another transfer is under way", body = ErrorBody),
        (status = 503, description = "no leader known, or the node is shutting down", body = ErrorBody),
    ))]
async fn transfer_leader(
    State(state): State<NodeState>,
    uri: Uri,
    query: Result<Query<TransferQuery>, QueryRejection>,
    body: Result<WholeBody, ApiError>,
) -> ApiResult {
    let Query(query) = query?;
    // `?to=` with nothing after it is no target: the body names it (schemathesis found the
    // empty value refused even with a valid body).
    let to = match query.to.filter(|to| !to.is_empty()) {
        Some(to) => to,
        None => {
            let body: TransferBody = serde_json::from_slice(&body?.0).map_err(|error| {
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
            Json(Transferring {
                transferring_to: to.0,
            }),
        )
            .into_response()),
        _ if view.leader == Some(state.id) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("cannot transfer leadership to {to}: not a voter, this node itself, or another transfer is under way"),
        )),
        _ => Err(state.not_leader(view.leader, &uri)),
    }
}

/// `POST /api/v1/admin/snapshot`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotTaken {
    /// The log is compacted through this index.
    pub snapshot_index: u64,
}

/// This node snapshots its state machine at its applied index and compacts its log there.
/// Answers the snapshot's index once the core has it, which waits for the encoding (off the
/// driver) of a possibly large state: the commit timeout bounds it.
#[utoipa::path(post, path = "/api/v1/admin/snapshot", tag = "admin",
    responses(
        (status = 200, description = "the snapshot's index", body = SnapshotTaken),
        (status = 409, description = "nothing applied since the latest snapshot", body = ErrorBody),
        (status = 503, description = "the node is shutting down", body = ErrorBody),
    ))]
async fn take_snapshot(State(state): State<NodeState>) -> ApiResult {
    let index = ask(
        &state.requests,
        |respond| NodeRequest::Snapshot { respond },
        state.commit_timeout,
        Effect::Change,
    )
    .await?;
    match index {
        Some(index) => Ok(Json(SnapshotTaken {
            snapshot_index: index.0,
        })
        .into_response()),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing applied since the latest snapshot",
        )),
    }
}

/// A consistent backup of the state machine, as the file `raft-net snapshot save` writes: the
/// leader confirms its leadership with a quorum and waits until it has applied everything
/// committed when the request arrived (a ReadIndex), then hands over its store with the
/// applied index, its term and the membership there.
#[utoipa::path(get, path = "/api/v1/backup", tag = "admin",
    responses(
        (status = 200, description = "the backup file (RAFTBAK1: header, store, crc32c)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 503, description = "no leader, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "no answer within the commit timeout", body = ErrorBody),
    ))]
async fn backup(State(state): State<NodeState>, uri: Uri) -> ApiResult {
    let outcome = ask(
        &state.requests,
        |respond| NodeRequest::Backup { respond },
        state.commit_timeout,
        Effect::None,
    )
    .await?;
    let Outcome::Value(pending) = outcome else {
        return Err(state.failure(outcome, &uri));
    };
    // Encoding a large state and its checksum: not on the runtime's thread, which also runs
    // the driver.
    let body = tokio::task::spawn_blocking(move || pending.finish().encode())
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// Whether the node drops all peer traffic now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Isolation {
    pub isolated: bool,
}

fn set_isolated(state: &NodeState, isolated: bool) -> Json<Isolation> {
    state.isolated.store(isolated, Ordering::Relaxed);
    if isolated {
        tracing::warn!("isolated: dropping all peer traffic");
    } else {
        tracing::warn!("healed: peer traffic flows again");
    }
    Json(Isolation { isolated })
}

/// Drops all peer traffic in and out at the transport (a partition of this node alone).
#[utoipa::path(post, path = "/api/v1/admin/isolate", tag = "admin",
    responses((status = 200, description = "isolated", body = Isolation)))]
async fn isolate(State(state): State<NodeState>) -> Json<Isolation> {
    set_isolated(&state, true)
}

/// Lets peer traffic flow again.
#[utoipa::path(post, path = "/api/v1/admin/heal", tag = "admin",
    responses((status = 200, description = "healed", body = Isolation)))]
async fn heal(State(state): State<NodeState>) -> Json<Isolation> {
    set_isolated(&state, false)
}

/// An alias of `POST /api/v1/admin/isolate`.
#[utoipa::path(post, path = "/api/v1/admin/block", tag = "admin",
    responses((status = 200, description = "isolated", body = Isolation)))]
async fn block(State(state): State<NodeState>) -> Json<Isolation> {
    set_isolated(&state, true)
}

/// An alias of `POST /api/v1/admin/heal`.
#[utoipa::path(post, path = "/api/v1/admin/unblock", tag = "admin",
    responses((status = 200, description = "healed", body = Isolation)))]
async fn unblock(State(state): State<NodeState>) -> Json<Isolation> {
    set_isolated(&state, false)
}

/// The seed's `GET /block`: isolates the node (a GET that changes state; it takes the admin
/// token like the route it stands for).
#[utoipa::path(get, path = "/block", tag = SEED_COMPATIBILITY,
    responses((status = 200, description = "isolated", body = Isolation)))]
async fn compat_block(State(state): State<NodeState>) -> Json<Isolation> {
    set_isolated(&state, true)
}

/// The seed's `POST /block`: isolates the node.
#[utoipa::path(post, path = "/block", tag = SEED_COMPATIBILITY,
    responses((status = 200, description = "isolated", body = Isolation)))]
async fn compat_block_post(State(state): State<NodeState>) -> Json<Isolation> {
    set_isolated(&state, true)
}

/// The seed's `GET /unblock`: heals the node.
#[utoipa::path(get, path = "/unblock", tag = SEED_COMPATIBILITY,
    responses((status = 200, description = "healed", body = Isolation)))]
async fn compat_unblock(State(state): State<NodeState>) -> Json<Isolation> {
    set_isolated(&state, false)
}

/// The seed's `POST /unblock`: heals the node.
#[utoipa::path(post, path = "/unblock", tag = SEED_COMPATIBILITY,
    responses((status = 200, description = "healed", body = Isolation)))]
async fn compat_unblock_post(State(state): State<NodeState>) -> Json<Isolation> {
    set_isolated(&state, false)
}
