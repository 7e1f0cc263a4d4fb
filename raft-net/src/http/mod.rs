//! The client API (axum). Every handler turns its request into a `driver::Request`, waits for
//! the answer, and maps it to a status: `200` only after commit and apply; `307` to the leader
//! (same path) from a follower; `503` when no leader is known or the leader is busy; `409` when
//! the entry was overwritten (a definite failure); `504` when the commit timeout passes first,
//! or the node stops (shutdown, a storage failure) before it learns the fate of a write it
//! took: the outcome is unknown, the entry may still commit. Every error body is
//! `{"error": "..."}`.
//!
//! Routes come in groups, each behind one [`auth::Access`] class (see [`router`]): the node's
//! own routes (status, members, administration, health, metrics) and the key-value machine's
//! (keys, log commands, sessions, and the seed's compatibility routes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use raft_core::kv::{Command, Output};
use raft_core::{LogIndex, NodeId};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

mod members;
pub mod serve;
pub mod state;

use crate::addresses::AddressBook;
use crate::auth::{self, Access, Tokens};
use crate::config::{HttpLimits, BODY_BYTES_MAX, KEY_BYTES_MAX};
use crate::driver::{Outcome, Request, StatePage};
use crate::metrics::Metrics;

/// How long a request that does not wait for a commit may wait for the driver before the node
/// counts as stuck.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(2);

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub id: NodeId,
    pub requests: mpsc::Sender<Request>,
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
}

/// What a request to the driver may have done, for the answer when the driver drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing: a read or a status. A dropped request is a definite `503`.
    None,
    /// A change the driver may have started (a proposal, a membership change, a transfer): once
    /// handed over, a dropped request is `504`, outcome unknown.
    Change,
}

/// A JSON error with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    /// The `Location` header of a redirect.
    location: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
            location: None,
        }
    }

    fn with(mut self, field: &str, value: Value) -> ApiError {
        if let Value::Object(map) = &mut self.body {
            map.insert(field.to_string(), value);
        }
        self
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(value) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body exceeds the limit of {BODY_BYTES_MAX} bytes")
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

/// The router for one node; `admin` adds the fault-injection, transfer and snapshot routes.
///
/// | group | class | routes |
/// | --- | --- | --- |
/// | node | open | `GET /healthz`, `GET /metrics` |
/// | node | client | `GET /api/v1/state`, `GET /api/v1/members` |
/// | node | admin | `POST /api/v1/members`, `DELETE /api/v1/members/{id}`, `PUT /api/v1/members/{id}/address`, `GET /join`, `GET /api/v1/backup`; with `admin`: `/api/v1/admin/*`, `/block`, `/unblock` |
/// | key-value | client | `/api/v1/kv/{key}`, `POST /api/v1/append`, `POST /api/v1/sessions`, `GET /set`, `/get`, `/remove` |
///
/// Every request is also bounded: a body of at most `BODY_BYTES_MAX`, a pause of at most
/// `limits.body_timeout` between body chunks, `limits.request_timeout` in all.
pub fn router(state: AppState, admin: bool, limits: &HttpLimits) -> Router {
    let tokens = Arc::clone(&state.tokens);
    let request_timeout = limits.request_timeout;
    let open = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics));
    let node = Router::new()
        .route("/api/v1/state", get(state::get_state))
        .route("/api/v1/members", get(members::members));
    let mut node_admin = Router::new()
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
        .route("/join", get(members::compat_join))
        .route("/api/v1/backup", get(backup));
    if admin {
        node_admin = node_admin
            .route("/api/v1/admin/isolate", post(isolate))
            .route("/api/v1/admin/block", post(isolate))
            .route("/api/v1/admin/heal", post(heal))
            .route("/api/v1/admin/transfer-leader", post(transfer_leader))
            .route("/api/v1/admin/snapshot", post(take_snapshot))
            .route("/api/v1/admin/unblock", post(heal))
            .route("/block", get(isolate).post(isolate))
            .route("/unblock", get(heal).post(heal));
    }
    Router::new()
        .merge(auth::guard(open, &tokens, Access::Open))
        .merge(auth::guard(node, &tokens, Access::Client))
        .merge(auth::guard(node_admin, &tokens, Access::Admin))
        .merge(auth::guard(kv_routes(), &tokens, Access::Client))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_timeout,
        ))
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    move |_: tower::BoxError| request_timed_out(request_timeout),
                ))
                .timeout(limits.request_timeout),
        )
        .with_state(state)
}

/// The key-value machine's routes, including the seed's compatibility routes (`/set` and
/// `/remove` are GETs that write).
fn kv_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/append", post(append))
        .route(
            "/api/v1/kv/{key}",
            get(kv_get).put(kv_put).delete(kv_delete),
        )
        .route("/api/v1/sessions", post(open_session))
        .route("/set", get(compat_set))
        .route("/get", get(compat_get))
        .route("/remove", get(compat_remove))
}

/// A request that took longer than the request timeout. Whatever it was doing may still
/// happen (a write in the log commits on its own), so the answer promises nothing.
async fn request_timed_out(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "the request took longer than {} ms; the outcome is unknown: a write may still commit later",
            timeout.as_millis()
        ),
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed for {}", uri.path()),
    )
}

impl AppState {
    /// Sends a request to the driver and waits for its answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
        timeout: Duration,
        effect: Effect,
    ) -> Result<T, ApiError> {
        let (respond, answer) = oneshot::channel();
        if self.requests.send(make(respond)).await.is_err() {
            // The driver never saw it: nothing happened.
            return Err(ApiError::unavailable("the node is shutting down"));
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) if effect == Effect::Change => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "the node stopped (shutdown or a storage failure) before it learned the outcome; it is unknown: the change may still commit",
            )),
            Ok(Err(_)) => Err(ApiError::unavailable("the node is shutting down")),
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "no answer within {} ms; the outcome is unknown: a write may still commit later",
                    timeout.as_millis()
                ),
            )),
        }
    }

    /// This node's status (a page without log entries).
    async fn status(&self) -> Result<StatePage, ApiError> {
        self.ask(
            |respond| Request::State {
                from: LogIndex(1),
                limit: 0,
                respond,
            },
            DRIVER_TIMEOUT,
            Effect::None,
        )
        .await
    }

    /// Proposes `command`; `Ok` only once it is committed and applied.
    async fn propose(
        &self,
        command: &Command,
        uri: &Uri,
    ) -> Result<(LogIndex, u64, Output), ApiError> {
        let command = command.encode();
        if command.len() > self.command_bytes_max {
            return Err(ApiError::bad_request(format!(
                "the command is {} bytes encoded; the limit is {} bytes (one entry must fit one datagram)",
                command.len(),
                self.command_bytes_max
            )));
        }
        let outcome = self
            .ask(
                |respond| Request::Propose { command, respond },
                self.commit_timeout,
                Effect::Change,
            )
            .await?;
        match outcome {
            Outcome::Committed {
                index,
                term,
                output,
            } => Ok((index, term.0, output)),
            other => Err(self.failure(other, uri)),
        }
    }

    /// The error for an outcome other than success.
    fn failure(&self, outcome: Outcome, uri: &Uri) -> ApiError {
        match outcome {
            Outcome::NotLeader { leader_hint } => self.not_leader(leader_hint, uri),
            Outcome::Busy => ApiError::unavailable("too many requests in flight; retry later"),
            Outcome::Dropped { index, term } => ApiError::new(
                StatusCode::CONFLICT,
                "the entry was overwritten by a new leader and will never commit; it is safe to retry",
            )
            .with("index", json!(index.0))
            .with("term", json!(term.0)),
            Outcome::Unknown { index, term } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "the outcome is unknown: this node learned what happened at the entry's index only through a snapshot",
            )
            .with("index", json!(index.0))
            .with("term", json!(term.0)),
            Outcome::ChangeRejected(reason) => ApiError::new(
                StatusCode::CONFLICT,
                format!("membership change rejected: {reason:?}"),
            ),
            Outcome::Committed { .. } | Outcome::Value(_) | Outcome::Backup(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the node answered a different kind of request",
            ),
        }
    }

    /// `307` to the leader's same URL, or `503` when it (or its address) is unknown.
    fn not_leader(&self, leader_hint: Option<NodeId>, uri: &Uri) -> ApiError {
        let Some(leader) = leader_hint else {
            return ApiError::unavailable("no leader").with("leader", Value::Null);
        };
        let Some(addr) = self
            .addresses
            .http_addr(leader)
            .filter(|_| leader != self.id)
        else {
            return ApiError::unavailable("not the leader, and its HTTP address is unknown")
                .with("leader", json!(leader.0));
        };
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        let location = format!("{}://{addr}{path}", self.scheme);
        let mut error = ApiError::new(StatusCode::TEMPORARY_REDIRECT, "not the leader")
            .with("leader", json!(leader.0))
            .with("location", json!(location));
        error.location = Some(location);
        error
    }
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("the key is empty"));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "the key is {} bytes; the limit is {KEY_BYTES_MAX} bytes",
            key.len()
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendBody {
    command: String,
}

async fn append(
    State(state): State<AppState>,
    uri: Uri,
    session: Result<Query<SessionQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let session = session?.0;
    let body = body?;
    let AppendBody { command } = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(format!(
            "malformed JSON: {error}; expected {{\"command\": \"...\"}}"
        ))
    })?;
    write(&state, session.wrap(Command::Append { command })?, &uri).await
}

/// `?client_id=&seq=` on a write: the command runs in that client session (Raft thesis §6.3),
/// so retrying it with the same numbers applies it at most once.
#[derive(Debug, Deserialize)]
struct SessionQuery {
    client_id: Option<u64>,
    seq: Option<u64>,
}

impl SessionQuery {
    fn wrap(self, command: Command) -> Result<Command, ApiError> {
        match (self.client_id, self.seq) {
            (None, None) => Ok(command),
            (Some(client), Some(seq)) if seq > 0 => Ok(Command::InSession {
                client,
                seq,
                command: Box::new(command),
            }),
            (Some(_), Some(_)) => Err(ApiError::bad_request("seq starts at 1")),
            _ => Err(ApiError::bad_request(
                "client_id and seq go together: open a session with POST /api/v1/sessions, then number every write from seq=1",
            )),
        }
    }
}

/// `POST /api/v1/sessions`: opens a client session; answers its `client_id` once committed.
async fn open_session(State(state): State<AppState>, uri: Uri) -> ApiResult {
    write(&state, Command::OpenSession, &uri).await
}

async fn kv_put(
    State(state): State<AppState>,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path(key) = key?;
    check_key(&key)?;
    let value = body?.to_vec();
    write(&state, session?.0.wrap(Command::Put { key, value })?, &uri).await
}

async fn write(state: &AppState, command: Command, uri: &Uri) -> ApiResult {
    let (index, term, output) = state.propose(&command, uri).await?;
    let mut body = json!({ "index": index.0, "term": term });
    match output {
        Output::Written { replaced } => body["replaced"] = json!(replaced),
        Output::Deleted { existed } => body["existed"] = json!(existed),
        Output::SessionOpened { client } => body["client_id"] = json!(client),
        Output::StaleSequence { last_seq } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("not applied: the session already applied a later command (seq {last_seq})"),
            )
            .with("last_seq", json!(last_seq)))
        }
        Output::SessionExpired => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "not applied: the session does not exist or expired; open a new one (earlier writes of the old session may or may not have been applied)",
            ))
        }
        Output::Appended | Output::Value(_) | Output::AddressSet | Output::Invalid => {}
    }
    Ok(Json(body).into_response())
}

async fn kv_delete(
    State(state): State<AppState>,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let Path(key) = key?;
    check_key(&key)?;
    write(&state, session?.0.wrap(Command::Delete { key })?, &uri).await
}

#[derive(Debug, Deserialize)]
struct GetQuery {
    #[serde(default)]
    stale: bool,
}

async fn kv_get(
    State(state): State<AppState>,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let Query(query) = query?;
    check_key(&key)?;
    match read(&state, key, query.stale, &uri).await? {
        Some(value) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "key not found")),
    }
}

/// `GET /api/v1/backup`: a consistent backup of the store (see `backup`), taken by the
/// leader once a ReadIndex confirms it (`307` from a follower), as the file `raft-net
/// snapshot save` writes.
async fn backup(State(state): State<AppState>, uri: Uri) -> ApiResult {
    let outcome = state
        .ask(
            |respond| Request::Backup { respond },
            state.commit_timeout,
            Effect::None,
        )
        .await?;
    let Outcome::Backup(image) = outcome else {
        return Err(state.failure(outcome, &uri));
    };
    // Copying a large store and its checksum: not on the runtime's thread, which also runs
    // the driver.
    let body = tokio::task::spawn_blocking(move || image.encode())
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// A stale read asks this replica. A linearizable one goes through the core's ReadIndex: the
/// leader confirms with a quorum that it still leads, waits until it has applied everything
/// committed when the read arrived, and only then reads (a deposed leader cannot answer it).
async fn read(
    state: &AppState,
    key: String,
    stale: bool,
    uri: &Uri,
) -> Result<Option<Vec<u8>>, ApiError> {
    if stale {
        return state
            .ask(
                |respond| Request::StaleGet { key, respond },
                DRIVER_TIMEOUT,
                Effect::None,
            )
            .await;
    }
    let outcome = state
        .ask(
            |respond| Request::Read { key, respond },
            state.commit_timeout,
            Effect::None,
        )
        .await?;
    match outcome {
        Outcome::Value(value) => Ok(value),
        other => Err(state.failure(other, uri)),
    }
}

/// The seed KV store's query parameters.
#[derive(Debug, Deserialize)]
struct CompatQuery {
    key: Option<String>,
    value: Option<String>,
}

fn compat_query(
    query: Result<Query<CompatQuery>, QueryRejection>,
) -> Result<(String, Option<String>), ApiError> {
    let Query(query) = query?;
    let key = query
        .key
        .ok_or_else(|| ApiError::bad_request("missing ?key="))?;
    check_key(&key)?;
    Ok((key, query.value))
}

async fn compat_set(
    State(state): State<AppState>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let (key, value) = compat_query(query)?;
    let value = value.ok_or_else(|| ApiError::bad_request("missing ?value="))?;
    let value = value.into_bytes();
    write(&state, session?.0.wrap(Command::Put { key, value })?, &uri).await
}

async fn compat_get(
    State(state): State<AppState>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
) -> ApiResult {
    let (key, _) = compat_query(query)?;
    match read(&state, key.clone(), false, &uri).await? {
        Some(value) => {
            let value = String::from_utf8_lossy(&value);
            Ok(Json(json!({ "key": key, "value": value })).into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "key not found")),
    }
}

async fn compat_remove(
    State(state): State<AppState>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let (key, _) = compat_query(query)?;
    write(&state, session?.0.wrap(Command::Delete { key })?, &uri).await
}

async fn healthz(State(state): State<AppState>) -> ApiResult {
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

async fn metrics(State(state): State<AppState>) -> Response {
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
    State(state): State<AppState>,
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
    let view = state
        .ask(
            |respond| Request::TransferLeader { to, respond },
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

/// `POST /api/v1/admin/snapshot`: this node snapshots its store at its applied index and
/// compacts its log there. Answers the snapshot's index.
async fn take_snapshot(State(state): State<AppState>) -> ApiResult {
    let index = state
        .ask(
            |respond| Request::Snapshot { respond },
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

async fn isolate(State(state): State<AppState>) -> Response {
    state.isolated.store(true, Ordering::Relaxed);
    tracing::warn!("isolated: dropping all peer traffic");
    Json(json!({ "isolated": true })).into_response()
}

async fn heal(State(state): State<AppState>) -> Response {
    state.isolated.store(false, Ordering::Relaxed);
    tracing::warn!("healed: peer traffic flows again");
    Json(json!({ "isolated": false })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// A router whose driver handles requests with `driver` (on a task of its own).
    fn app(
        limits: HttpLimits,
        tokens: Tokens,
        driver: impl FnMut(Request) + Send + 'static,
    ) -> Router {
        let (requests, mut received) = mpsc::channel(8);
        let mut driver = driver;
        tokio::spawn(async move {
            while let Some(request) = received.recv().await {
                driver(request);
            }
        });
        let state = AppState {
            id: NodeId(1),
            requests,
            addresses: Arc::new(AddressBook::new()),
            commit_timeout: Duration::from_secs(5),
            command_bytes_max: 1024,
            isolated: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::default()),
            tokens: Arc::new(tokens),
            scheme: "http",
        };
        router(state, true, &limits)
    }

    async fn call(app: &Router, method: &str, uri: &str, auth: Option<&str>) -> (u16, Value) {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let request = request.body(Body::from("value")).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The node stopped (shutdown, a storage failure) with the request taken: a write may be
    /// in the log, so its answer must not say it failed.
    #[tokio::test]
    async fn a_write_whose_waiter_is_dropped_is_answered_504_outcome_unknown() {
        let app = app(HttpLimits::default(), Tokens::default(), drop);
        let (status, body) = call(&app, "PUT", "/api/v1/kv/k", None).await;
        assert_eq!(status, 504, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("unknown"),
            "{body}"
        );
        let (status, body) = call(&app, "POST", "/api/v1/admin/transfer-leader?to=2", None).await;
        assert_eq!(status, 504, "{body}");
        // A read changes nothing: a definite 503.
        let (status, body) = call(&app, "GET", "/api/v1/kv/k", None).await;
        assert_eq!(status, 503, "{body}");
    }

    /// A write the driver never takes: nothing can have happened, so `503` is definite.
    #[tokio::test]
    async fn a_write_the_driver_never_took_is_503() {
        let (requests, received) = mpsc::channel(8);
        drop(received);
        let state = AppState {
            id: NodeId(1),
            requests,
            addresses: Arc::new(AddressBook::new()),
            commit_timeout: Duration::from_secs(5),
            command_bytes_max: 1024,
            isolated: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::default()),
            tokens: Arc::new(Tokens::default()),
            scheme: "http",
        };
        let app = router(state, false, &HttpLimits::default());
        let (status, body) = call(&app, "PUT", "/api/v1/kv/k", None).await;
        assert_eq!(status, 503, "{body}");
    }

    #[tokio::test]
    async fn a_request_over_the_request_timeout_is_504() {
        let limits = HttpLimits {
            request_timeout: Duration::from_millis(100),
            ..HttpLimits::default()
        };
        let mut held = Vec::new();
        let app = app(limits, Tokens::default(), move |request| held.push(request));
        let (status, body) = call(&app, "PUT", "/api/v1/kv/k", None).await;
        assert_eq!(status, 504, "{body}");
        assert!(body["error"].as_str().unwrap().contains("100 ms"), "{body}");
    }

    #[tokio::test]
    async fn route_groups_carry_their_access_class() {
        let admin = auth::Token::parse("admin-secret-0123456789").unwrap();
        let client = auth::Token::parse("client-secret-0123456789").unwrap();
        let app = app(
            HttpLimits::default(),
            Tokens::new(Some(&admin), Some(&client)),
            drop,
        );
        for (method, uri) in [
            ("POST", "/api/v1/admin/isolate"),
            ("POST", "/api/v1/members"),
            ("DELETE", "/api/v1/members/2"),
            ("PUT", "/api/v1/members/2/address"),
            ("GET", "/join?nodeId=2&raftPort=9001"),
            ("GET", "/block"),
        ] {
            assert_eq!(call(&app, method, uri, None).await.0, 401, "{method} {uri}");
            let (status, _) = call(&app, method, uri, Some(&client.bearer())).await;
            assert_eq!(status, 403, "{method} {uri}");
        }
        let (status, _) = call(&app, "POST", "/api/v1/admin/heal", Some(&admin.bearer())).await;
        assert_eq!(status, 200);
        for (method, uri) in [
            ("GET", "/api/v1/state"),
            ("PUT", "/api/v1/kv/k"),
            ("GET", "/set?key=a&value=b"),
        ] {
            assert_eq!(call(&app, method, uri, None).await.0, 401, "{method} {uri}");
            let (status, _) = call(&app, method, uri, Some("Bearer wrong-token-0123456789")).await;
            assert_eq!(status, 403, "{method} {uri}");
        }
        // Unknown paths are still 404, whatever the token.
        assert_eq!(call(&app, "GET", "/nowhere", None).await.0, 404);
        assert_eq!(call(&app, "GET", "/metrics", None).await.0, 200);
    }
}
