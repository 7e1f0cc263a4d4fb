//! Membership routes: list, add (what `--join` calls), remove, and change a member's address.
//!
//! Adding never moves an existing member: an add for an id that is already a member, with
//! other addresses than the ones on record, is refused (`409`), and so is an add that would
//! give a new id the Raft address of a current member (datagrams from that address would be
//! taken as the new id's). Moving a member is its own route, which needs the admin token.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use raft_core::{ChangeRejection, MembershipChange, NodeId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::openapi::{ErrorBody, SEED_COMPATIBILITY};
use super::{ask, ApiError, ApiResult, Effect, NodeState, WholeBody};
use crate::config::{parse_node_id, resolve};
use crate::driver::{NodeRequest, Outcome, StatePage};
use crate::member_address::check_member_address;
use crate::replica::set_address_bytes;

/// How long `POST /api/v1/members` waits for the learner to catch up before giving up.
const PROMOTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between attempts while a change is in progress or the learner is behind.
const CHANGE_RETRY: Duration = Duration::from_millis(100);

/// `GET /api/v1/members`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Members {
    /// The node that answered.
    pub id: u64,
    /// The cluster the answering node belongs to (16 hex digits); `null` while a server that
    /// joined has not heard from a member yet.
    pub cluster_id: Option<String>,
    /// The answering node's incarnation.
    pub incarnation: u64,
    pub leader: Option<u64>,
    /// Voters first, then learners.
    pub members: Vec<Member>,
}

/// One member as `GET /api/v1/members` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub id: u64,
    /// `null` while this node has no record of it.
    pub http_addr: Option<String>,
    /// `null` while this node has no record of it.
    pub raft_addr: Option<String>,
    /// A voter, else a learner.
    pub voter: bool,
    pub leader: bool,
    /// The incarnation the membership records for it; `null` until a leader recorded one.
    pub incarnation: Option<u64>,
    /// A learner only because it came back as a new incarnation (its state lost): the leader
    /// promotes it again once it has caught up.
    pub returning: bool,
}

/// The core's current membership, with the addresses this node knows.
#[utoipa::path(get, path = "/api/v1/members", tag = "members",
    responses(
        (status = 200, description = "voters and learners", body = Members),
        (status = 503, description = "the node is shutting down", body = ErrorBody),
    ))]
pub(super) async fn members(State(state): State<NodeState>) -> ApiResult {
    let view = state.status().await?;
    let member = |id: u64, voter: bool| {
        let address = state.addresses.get(NodeId(id));
        Member {
            id,
            http_addr: address.as_ref().map(|address| address.http.clone()),
            raft_addr: address.as_ref().map(|address| address.raft.to_string()),
            voter,
            leader: view.leader == Some(id),
            incarnation: view
                .incarnations
                .iter()
                .find(|(member, _)| *member == id)
                .map(|&(_, incarnation)| incarnation),
            returning: view.returning.contains(&id),
        }
    };
    let members = view
        .voters
        .iter()
        .map(|&id| member(id, true))
        .chain(view.learners.iter().map(|&id| member(id, false)))
        .collect();
    Ok(Json(Members {
        id: state.id.0,
        cluster_id: view.cluster_id.map(|id| id.to_string()),
        incarnation: view.incarnation,
        leader: view.leader,
        members,
    })
    .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    /// The new server's id (not 0).
    #[schema(minimum = 1)]
    id: u64,
    /// Its Raft (UDP) address, `IP:port` or `host:port` (resolved once, here).
    raft_addr: String,
    /// Its HTTP address, `host:port`.
    http_addr: String,
}

/// `POST /api/v1/members` (and `GET /join`), once the server is a voter.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberAdded {
    pub id: u64,
    /// Always `true`: the answer waits for the promotion.
    pub voter: bool,
    /// The promotion's entry; absent when the server was a voter already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
}

/// Records the new server's addresses through the log so every member can reach it, adds it
/// as a learner, and promotes it to voter once it has caught up (Raft thesis §4.2.1). Answers
/// `200` once it is a voter. Safe to repeat with the same addresses; `409` for a member at
/// other addresses.
#[utoipa::path(post, path = "/api/v1/members", tag = "members",
    request_body = AddMemberBody,
    responses(
        (status = 200, description = "the server is a voter", body = MemberAdded),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 409, description = "already a member at other addresses, the Raft address is another member's, or the core refused the change", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time, or the learner did not catch up within 60 s: the outcome is unknown", body = ErrorBody),
    ))]
pub(super) async fn add_member(
    State(state): State<NodeState>,
    uri: Uri,
    body: Result<WholeBody, ApiError>,
) -> ApiResult {
    let request: AddMemberBody = serde_json::from_slice(&body?.0).map_err(|error| {
        ApiError::bad_request(format!(
            "malformed JSON: {error}; expected {{\"id\": 4, \"raft_addr\": \"host:port\", \"http_addr\": \"host:port\"}}"
        ))
    })?;
    let (id, raft, http) =
        member_address(request.id, &request.raft_addr, request.http_addr).await?;
    add(&state, id, raft, http, &uri).await
}

/// The seed KV store's join query: `nodeId` (`n2` or `2`) and `raftPort`; `host` defaults to
/// 127.0.0.1 and `httpPort` to `raftPort - 1000`, the seed's port layout (HTTP 8000 beside
/// Raft 9000).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct JoinQuery {
    /// The new server's id, `n2` or `2`.
    #[param(pattern = r"^n?[0-9]*[1-9][0-9]*$")]
    node_id: String,
    /// Its Raft (UDP) port.
    raft_port: u16,
    /// Its HTTP port (default `raftPort - 1000`).
    http_port: Option<u16>,
    /// Its host (default 127.0.0.1).
    host: Option<String>,
}

/// The seed's alias of `POST /api/v1/members`, kept for compatibility; it takes the admin
/// token like the route it stands for.
#[utoipa::path(get, path = "/join", tag = SEED_COMPATIBILITY,
    params(JoinQuery),
    responses(
        (status = 200, description = "the server is a voter", body = MemberAdded),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 400, description = "a malformed query or an address the store would refuse", body = ErrorBody),
        (status = 409, description = "already a member at other addresses, or the Raft address is another member's", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time, or the learner did not catch up: the outcome is unknown", body = ErrorBody),
    ))]
pub(super) async fn compat_join(
    State(state): State<NodeState>,
    uri: Uri,
    query: Result<Query<JoinQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let id =
        parse_node_id(&query.node_id).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let http_port = match query.http_port {
        Some(port) => port,
        None => query.raft_port.checked_sub(1000).ok_or_else(|| {
            ApiError::bad_request("raftPort is below 1000: give httpPort as well")
        })?,
    };
    let host = query.host.as_deref().unwrap_or("127.0.0.1");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let (id, raft, http) = member_address(
        id.0,
        &format!("{host}:{}", query.raft_port),
        format!("{host}:{http_port}"),
    )
    .await?;
    add(&state, id, raft, http, &uri).await
}

/// A member's addresses from a request: the Raft address resolved to an IP (through tokio's
/// resolver), both checked as the key-value store will check the `SetAddress` (`400` if not).
async fn member_address(
    id: u64,
    raft_addr: &str,
    http_addr: String,
) -> Result<(NodeId, SocketAddr, String), ApiError> {
    if id == 0 {
        return Err(ApiError::bad_request("node id 0 is reserved"));
    }
    let raft = resolve(raft_addr)
        .await
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    check_member_address(id, &raft.to_string(), &http_addr)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok((NodeId(id), raft, http_addr))
}

/// The members (voters and learners) of a status.
fn member_ids(view: &StatePage) -> impl Iterator<Item = NodeId> + '_ {
    view.voters
        .iter()
        .chain(&view.learners)
        .map(|&id| NodeId(id))
}

/// `409` unless `raft` is free for `id`: no other current member listens there.
fn check_address_free(
    state: &NodeState,
    view: &StatePage,
    id: NodeId,
    raft: SocketAddr,
) -> Result<(), ApiError> {
    for member in member_ids(view).filter(|&member| member != id) {
        if state.addresses.raft_addr(member) == Some(raft) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{raft} is the Raft address of member {member}; refusing to give it to node {id}"),
            )
            .with("member", json!(member.0)));
        }
    }
    Ok(())
}

/// Adds `id` at `raft`/`http`: refused (`409`) if `id` is a member recorded at other
/// addresses, or `raft` belongs to another member; otherwise the addresses go through the log,
/// then the learner is added and promoted.
async fn add(
    state: &NodeState,
    id: NodeId,
    raft: SocketAddr,
    http: String,
    uri: &Uri,
) -> ApiResult {
    let view = state.status().await?;
    if member_ids(&view).any(|member| member == id) {
        let recorded = state.addresses.get(id);
        let same = recorded
            .as_ref()
            .is_some_and(|address| address.raft == raft && address.http == http);
        if !same {
            let on_record = recorded.map_or_else(
                || "unknown addresses".to_string(),
                |address| format!("{} (HTTP {})", address.raft, address.http),
            );
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "node {id} is already a member, at {on_record}; adding it again cannot move it (to move it: PUT /api/v1/members/{id}/address with the admin token)"
                ),
            )
            .with("id", json!(id.0)));
        }
    }
    check_address_free(state, &view, id, raft)?;
    record_addresses(state, &view, id, raft, http, uri).await?;
    add_and_promote(state, id, uri).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddressBody {
    /// The member's new Raft (UDP) address.
    raft_addr: String,
    /// Its new HTTP address.
    http_addr: String,
}

/// `PUT /api/v1/members/{id}/address`, once committed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressChanged {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    pub index: u64,
    pub term: u64,
}

/// Moves member `id` to new addresses, through the log. The explicit, authenticated way to
/// change an address: it is refused (`403`) unless the node has an admin token, which the
/// request then had to present.
#[utoipa::path(put, path = "/api/v1/members/{id}/address", tag = "members",
    params(("id" = String, Path, description = "the member, `4` or `n4`", pattern = r"^n?[0-9]*[1-9][0-9]*$")),
    request_body = AddressBody,
    responses(
        (status = 200, description = "committed: the others send to the new address from now on", body = AddressChanged),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 403, description = "the node has no admin token (or the token is wrong)", body = ErrorBody),
        (status = 404, description = "not a member", body = ErrorBody),
        (status = 409, description = "the Raft address is another member's, or the entry was overwritten", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time: the outcome is unknown", body = ErrorBody),
    ))]
pub(super) async fn change_address(
    State(state): State<NodeState>,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
    body: Result<WholeBody, ApiError>,
) -> ApiResult {
    if !state.tokens.has_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "moving a member needs a node started with --admin-token (and the token)",
        ));
    }
    let Path(id) = id?;
    let id = parse_node_id(&id).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let request: AddressBody = serde_json::from_slice(&body?.0).map_err(|error| {
        ApiError::bad_request(format!(
            "malformed JSON: {error}; expected {{\"raft_addr\": \"host:port\", \"http_addr\": \"host:port\"}}"
        ))
    })?;
    let (id, raft, http) = member_address(id.0, &request.raft_addr, request.http_addr).await?;
    let view = state.status().await?;
    if !member_ids(&view).any(|member| member == id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("node {id} is not a member; add it with POST /api/v1/members"),
        ));
    }
    check_address_free(&state, &view, id, raft)?;
    let command = set_address_bytes(id.0, &raft.to_string(), &http);
    let (index, term) = state.propose(command, &uri).await?;
    tracing::warn!(member = %id, %raft, %http, "member moved by the admin API");
    Ok(Json(AddressChanged {
        id: id.0,
        raft_addr: raft.to_string(),
        http_addr: http,
        index: index.0,
        term: term.0,
    })
    .into_response())
}

/// Commits a `SetAddress` for every member and for the new one: the log (and the snapshots)
/// are what a member has after a restart, and the first members only know each other from
/// their flags.
async fn record_addresses(
    state: &NodeState,
    view: &StatePage,
    id: NodeId,
    raft: SocketAddr,
    http: String,
    uri: &Uri,
) -> Result<(), ApiError> {
    let mut records = Vec::new();
    for member in member_ids(view).filter(|&member| member != id) {
        if let Some(address) = state.addresses.get(member) {
            records.push(set_address_bytes(
                member.0,
                &address.raft.to_string(),
                &address.http,
            ));
        }
    }
    records.push(set_address_bytes(id.0, &raft.to_string(), &http));
    for record in records {
        state.propose(record, uri).await?;
    }
    Ok(())
}

/// AddLearner, then PromoteLearner, retrying while another change is in flight or the learner
/// is behind.
async fn add_and_promote(state: &NodeState, id: NodeId, uri: &Uri) -> ApiResult {
    let deadline = tokio::time::Instant::now() + PROMOTION_TIMEOUT;
    let mut change = MembershipChange::AddLearner(id);
    loop {
        let outcome = ask(
            &state.requests,
            |respond| NodeRequest::ChangeMembership { change, respond },
            state.commit_timeout,
            Effect::Change,
        )
        .await?;
        match (change, outcome) {
            // Added, or already a member (a repeated join): on to the promotion.
            (
                MembershipChange::AddLearner(_),
                Outcome::Committed { .. } | Outcome::ChangeRejected(ChangeRejection::NotApplicable),
            ) => {
                change = MembershipChange::PromoteLearner(id);
                continue;
            }
            (_, Outcome::Committed { index, term, .. }) => {
                let body = MemberAdded {
                    id: id.0,
                    voter: true,
                    index: Some(index.0),
                    term: Some(term.0),
                };
                return Ok(Json(body).into_response());
            }
            // Not a learner: fine if it is a voter already.
            (_, Outcome::ChangeRejected(ChangeRejection::NotApplicable)) => {
                return already_voter(state, id).await;
            }
            (
                _,
                Outcome::ChangeRejected(
                    ChangeRejection::ChangeInProgress | ChangeRejection::NotCaughtUp,
                ),
            ) => {}
            (_, other) => return Err(state.failure(other, uri)),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "node {id} did not catch up within {PROMOTION_TIMEOUT:?}; it stays a learner"
                ),
            ));
        }
        tokio::time::sleep(CHANGE_RETRY).await;
    }
}

async fn already_voter(state: &NodeState, id: NodeId) -> ApiResult {
    if state.status().await?.voters.contains(&id.0) {
        let body = MemberAdded {
            id: id.0,
            voter: true,
            index: None,
            term: None,
        };
        Ok(Json(body).into_response())
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("node {id} cannot be promoted: it is not a learner"),
        ))
    }
}

/// `DELETE /api/v1/members/{id}`, once committed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    pub removed: u64,
    pub index: u64,
    pub term: u64,
}

/// Removes a voter or learner (a single-server change through the log). A removed leader
/// steps down once the removal commits.
#[utoipa::path(delete, path = "/api/v1/members/{id}", tag = "members",
    params(("id" = String, Path, description = "the member, `4` or `n4`", pattern = r"^n?[0-9]*[1-9][0-9]*$")),
    responses(
        (status = 200, description = "the removal committed", body = Removed),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 400, description = "a malformed id", body = ErrorBody),
        (status = 409, description = "the core refused the change (not a member, the last voter, another change in progress) or it was overwritten", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time: the outcome is unknown", body = ErrorBody),
    ))]
pub(super) async fn remove_member(
    State(state): State<NodeState>,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    let id = parse_node_id(&id).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let change = MembershipChange::Remove(id);
    let outcome = ask(
        &state.requests,
        |respond| NodeRequest::ChangeMembership { change, respond },
        state.commit_timeout,
        Effect::Change,
    )
    .await?;
    match outcome {
        Outcome::Committed { index, term, .. } => Ok(Json(Removed {
            removed: id.0,
            index: index.0,
            term: term.0,
        })
        .into_response()),
        other => Err(state.failure(other, &uri)),
    }
}
