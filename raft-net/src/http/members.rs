//! Membership routes: list, add (what `--join` calls) and remove members.

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

use super::{ApiError, ApiResult, AppState};
use crate::config::{parse_node_id, resolve, KEY_BYTES_MAX};
use crate::driver::{Outcome, Request};

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
        })
    };
    let members: Vec<Value> = view
        .voters
        .iter()
        .map(|&id| member(id, true))
        .chain(view.learners.iter().map(|&id| member(id, false)))
        .collect();
    let body = json!({ "id": state.id.0, "leader": view.leader, "members": members });
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
/// thesis §4.2.1). Answers `200` once it is a voter. Safe to repeat.
pub(super) async fn add_member(
    State(state): State<AppState>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (id, raft, http) = parse_add_member(&body?)?;
    record_addresses(&state, id, raft, http, &uri).await?;
    add_and_promote(&state, id, &uri).await
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

/// `GET /join?nodeId=n2&raftPort=9001`: the seed's alias of `POST /api/v1/members`.
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
    let raft = resolve(&format!("{host}:{}", query.raft_port))
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let http = format!("{host}:{http_port}");
    record_addresses(&state, id, raft, http, &uri).await?;
    add_and_promote(&state, id, &uri).await
}

fn parse_add_member(body: &[u8]) -> Result<(NodeId, SocketAddr, String), ApiError> {
    let request: AddMemberBody = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "malformed JSON: {error}; expected {{\"id\": 4, \"raft_addr\": \"host:port\", \"http_addr\": \"host:port\"}}"
        ))
    })?;
    if request.id == 0 {
        return Err(ApiError::bad_request("node id 0 is reserved"));
    }
    let raft =
        resolve(&request.raft_addr).map_err(|error| ApiError::bad_request(error.to_string()))?;
    if !request.http_addr.contains(':') || request.http_addr.len() > KEY_BYTES_MAX {
        return Err(ApiError::bad_request("http_addr must be host:port"));
    }
    Ok((NodeId(request.id), raft, request.http_addr))
}

/// Commits a `SetAddress` for every member and for the new one: the log (and the snapshots)
/// are what a member has after a restart, and the first members only know each other from
/// their flags.
async fn record_addresses(
    state: &AppState,
    id: NodeId,
    raft: SocketAddr,
    http: String,
    uri: &Uri,
) -> Result<(), ApiError> {
    let view = state.status().await?;
    let mut records = Vec::new();
    for &member in view.voters.iter().chain(&view.learners) {
        if member == id.0 {
            continue;
        }
        if let Some(address) = state.addresses.get(NodeId(member)) {
            records.push(Command::SetAddress {
                id: member,
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
