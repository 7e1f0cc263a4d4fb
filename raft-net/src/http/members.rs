//! Membership routes: list, add (what `--join` calls), remove, and change a member's address.
//!
//! Adding never moves an existing member: an add for an id that is already a member, with
//! other addresses than the ones on record, is refused (`409`), and so is an add that would
//! give a new id the Raft address of a current member (datagrams from that address would be
//! taken as the new id's). Moving a member is its own route, which needs the admin token.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use raft_core::kv::Command;
use raft_core::{ChangeRejection, MembershipChange, NodeId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiResult, AppState, Effect};
use crate::config::{parse_node_id, resolve};
use crate::driver::{Outcome, Request, StatePage};

/// How long `POST /api/v1/members` waits for the learner to catch up before giving up.
const PROMOTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between attempts while a change is in progress or the learner is behind.
const CHANGE_RETRY: Duration = Duration::from_millis(100);

/// `GET /api/v1/members`: the core's current membership, with the addresses this node knows.
pub(super) async fn members(State(state): State<AppState>) -> ApiResult {
    let view = state.status().await?;
    let member = |id: u64, voter: bool| {
        let address = state.addresses.get(NodeId(id));
        json!({
            "id": id,
            "http_addr": address.as_ref().map(|address| address.http.clone()),
            "raft_addr": address.as_ref().map(|address| address.raft.to_string()),
            "voter": voter,
            "leader": view.leader == Some(id),
            // The incarnation the membership records (null until a leader recorded it), and
            // whether the member is a learner because it came back as a new incarnation.
            "incarnation": view
                .incarnations
                .iter()
                .find(|(member, _)| *member == id)
                .map(|(_, incarnation)| incarnation),
            "returning": view.returning.contains(&id),
        })
    };
    let members: Vec<Value> = view
        .voters
        .iter()
        .map(|&id| member(id, true))
        .chain(view.learners.iter().map(|&id| member(id, false)))
        .collect();
    let body = json!({
        "id": state.id.0,
        "cluster_id": view.cluster_id.map(|id| id.to_string()),
        "incarnation": view.incarnation,
        "leader": view.leader,
        "members": members,
    });
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    id: u64,
    raft_addr: String,
    http_addr: String,
}

/// `POST /api/v1/members`: record the new server's addresses through the log so every member
/// can reach it, add it as a learner, and promote it to voter once it has caught up (Raft
/// thesis §4.2.1). Answers `200` once it is a voter. Safe to repeat with the same addresses;
/// `409` for a member at other addresses.
pub(super) async fn add_member(
    State(state): State<AppState>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let request: AddMemberBody = serde_json::from_slice(&body?).map_err(|error| {
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
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JoinQuery {
    node_id: String,
    raft_port: u16,
    http_port: Option<u16>,
    host: Option<String>,
}

/// `GET /join?nodeId=n2&raftPort=9001`: the seed's alias of `POST /api/v1/members`, kept for
/// compatibility; it takes the admin token like the route it stands for.
pub(super) async fn compat_join(
    State(state): State<AppState>,
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
    raft_core::kv::check_member_address(id, &raft.to_string(), &http_addr)
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
    state: &AppState,
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
async fn add(state: &AppState, id: NodeId, raft: SocketAddr, http: String, uri: &Uri) -> ApiResult {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressBody {
    raft_addr: String,
    http_addr: String,
}

/// `PUT /api/v1/members/{id}/address`: moves member `id` to new addresses, through the log.
/// The explicit, authenticated way to change an address: it is refused (`403`) unless the node
/// has an admin token, which the request then had to present.
pub(super) async fn change_address(
    State(state): State<AppState>,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    if !state.tokens.has_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "moving a member needs a node started with --admin-token (and the token)",
        ));
    }
    let Path(id) = id?;
    let id = parse_node_id(&id).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let request: AddressBody = serde_json::from_slice(&body?).map_err(|error| {
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
    let command = Command::SetAddress {
        id: id.0,
        raft_addr: raft.to_string(),
        http_addr: http.clone(),
    };
    let (index, term, _) = state.propose(&command, &uri).await?;
    tracing::warn!(member = %id, %raft, %http, "member moved by the admin API");
    let body = json!({
        "id": id.0,
        "raft_addr": raft.to_string(),
        "http_addr": http,
        "index": index.0,
        "term": term,
    });
    Ok(Json(body).into_response())
}

/// Commits a `SetAddress` for every member and for the new one: the log (and the snapshots)
/// are what a member has after a restart, and the first members only know each other from
/// their flags.
async fn record_addresses(
    state: &AppState,
    view: &StatePage,
    id: NodeId,
    raft: SocketAddr,
    http: String,
    uri: &Uri,
) -> Result<(), ApiError> {
    let mut records = Vec::new();
    for member in member_ids(view).filter(|&member| member != id) {
        if let Some(address) = state.addresses.get(member) {
            records.push(Command::SetAddress {
                id: member.0,
                raft_addr: address.raft.to_string(),
                http_addr: address.http,
            });
        }
    }
    records.push(Command::SetAddress {
        id: id.0,
        raft_addr: raft.to_string(),
        http_addr: http,
    });
    for record in &records {
        state.propose(record, uri).await?;
    }
    Ok(())
}

/// AddLearner, then PromoteLearner, retrying while another change is in flight or the learner
/// is behind.
async fn add_and_promote(state: &AppState, id: NodeId, uri: &Uri) -> ApiResult {
    let deadline = tokio::time::Instant::now() + PROMOTION_TIMEOUT;
    let mut change = MembershipChange::AddLearner(id);
    loop {
        let outcome = state
            .ask(
                |respond| Request::ChangeMembership { change, respond },
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
                let body = json!({ "id": id.0, "voter": true, "index": index.0, "term": term.0 });
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

async fn already_voter(state: &AppState, id: NodeId) -> ApiResult {
    if state.status().await?.voters.contains(&id.0) {
        Ok(Json(json!({ "id": id.0, "voter": true })).into_response())
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("node {id} cannot be promoted: it is not a learner"),
        ))
    }
}

/// `DELETE /api/v1/members/{id}`: removes a voter or learner (a single-server change through
/// the log). A removed leader steps down once the removal commits.
pub(super) async fn remove_member(
    State(state): State<AppState>,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    let id = parse_node_id(&id).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let change = MembershipChange::Remove(id);
    let outcome = state
        .ask(
            |respond| Request::ChangeMembership { change, respond },
            state.commit_timeout,
            Effect::Change,
        )
        .await?;
    match outcome {
        Outcome::Committed { index, term, .. } => {
            let body = json!({ "removed": id.0, "index": index.0, "term": term.0 });
            Ok(Json(body).into_response())
        }
        other => Err(state.failure(other, &uri)),
    }
}
