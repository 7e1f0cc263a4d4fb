//! `GET /api/v1/state`: the node's status and a page of its log, in the seed's shape plus id,
//! leader and indexes. The driver only copies a bounded page (`driver::StatePage`); decoding
//! and formatting the commands happen here, on a blocking thread, away from the driver.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use raft_core::{EntryPayload, LogIndex};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::ErrorBody;
use super::{ask, ApiError, ApiResult, Effect, NodeState, DRIVER_TIMEOUT};
use crate::driver::{NodeRequest, StatePage};

/// Entries per `/api/v1/state` page when `limit` is not given.
const STATE_PAGE_DEFAULT: usize = 1000;

/// `GET /api/v1/state`, as JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StateView {
    pub id: u64,
    /// 16 hex digits; `null` while a server that joined has not heard from a member yet.
    pub cluster_id: Option<String>,
    pub incarnation: u64,
    pub term: u64,
    /// `LEADER`, `CANDIDATE` or `FOLLOWER`.
    pub state: &'static str,
    pub leader: Option<u64>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    /// Entries up to here are compacted into a snapshot and no longer listed.
    pub snapshot_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub log: Vec<EntryView>,
    pub uncommitted: Vec<EntryView>,
    /// The `from` of the next page, when this one was cut short.
    pub next: Option<u64>,
}

/// One application entry, as `/api/v1/state` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct EntryView {
    pub index: u64,
    pub term: u64,
    pub command: String,
}

impl StateView {
    /// Formats a page: committed entries in `log`, the others in `uncommitted`, internal ones
    /// (no-ops, membership, and the commands `describe` leaves out) left out.
    #[must_use]
    pub fn from_page(page: StatePage, describe: fn(&[u8]) -> Option<String>) -> StateView {
        let mut view = StateView {
            id: page.id,
            cluster_id: page.cluster_id.map(|id| id.to_string()),
            incarnation: page.incarnation,
            term: page.term,
            state: page.state,
            leader: page.leader,
            commit_index: page.commit_index,
            applied_index: page.applied_index,
            last_log_index: page.last_log_index,
            snapshot_index: page.snapshot_index,
            voters: page.voters,
            learners: page.learners,
            log: Vec::new(),
            uncommitted: Vec::new(),
            next: page.next,
        };
        for entry in &page.entries {
            let EntryPayload::Command(bytes) = &entry.payload else {
                continue;
            };
            let Some(command) = describe(bytes) else {
                continue;
            };
            let item = EntryView {
                index: entry.index.0,
                term: entry.term.0,
                command,
            };
            if entry.index.0 <= view.commit_index {
                view.log.push(item);
            } else {
                view.uncommitted.push(item);
            }
        }
        view
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StateQuery {
    /// The first log index of the page (default 1).
    from: Option<u64>,
    /// Entries in the page at most (default 1000, at most 10000; 0: the status only).
    limit: Option<usize>,
}

/// The node's status and a page of its log's application entries.
#[utoipa::path(get, path = "/api/v1/state", tag = "node",
    params(StateQuery),
    responses(
        (status = 200, description = "status and log page", body = StateView),
        (status = 400, description = "a malformed query", body = ErrorBody),
        (status = 503, description = "the node is shutting down", body = ErrorBody),
    ))]
pub(super) async fn get_state(
    State(state): State<NodeState>,
    query: Result<Query<StateQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let from = LogIndex(query.from.unwrap_or(1));
    let limit = query.limit.unwrap_or(STATE_PAGE_DEFAULT);
    let page = ask(
        &state.requests,
        |respond| NodeRequest::State {
            from,
            limit,
            respond,
        },
        DRIVER_TIMEOUT,
        Effect::None,
    )
    .await?;
    let describe = state.describe;
    if page.entries.is_empty() {
        return Ok(Json(StateView::from_page(page, describe)).into_response());
    }
    // Up to a megabyte of commands to decode and escape: not on the runtime's thread, which
    // also runs the driver.
    let body = tokio::task::spawn_blocking(move || {
        serde_json::to_vec(&StateView::from_page(page, describe))
    })
    .await
    .map_err(|error| ApiError::internal(error.to_string()))?
    .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
