//! The key-value machine's HTTP routes: keys (`/api/v1/kv/{key}`), log commands
//! (`POST /api/v1/append`), client sessions (`POST /api/v1/sessions`, then `?client_id=&seq=`
//! on every write), and the seed's compatibility routes (`GET /set`, `/get`, `/remove`; `/set`
//! and `/remove` are GETs that write). They are served with the client access class, like
//! every machine's routes, next to the node's own routes (see [`crate::http::router`]).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use raft_core::kv::{Command, KvStore, Output};
use raft_core::session::{SessionCommand, SessionLimits, SessionOutput, Sessions};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::KEY_BYTES_MAX;
use crate::http::openapi::{ErrorBody, SEED_COMPATIBILITY};
use crate::http::{ApiError, ApiResult, WholeBody};
use crate::service::{json_ok, Committed, Handle, Service};

/// The key-value machine: the store, exactly-once for clients that open sessions.
pub type KvMachine = Sessions<KvStore>;

/// The key-value service that the `raft-net` binary runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvService {
    /// How long sessions live and how many are kept (the same on every member).
    pub session_limits: SessionLimits,
}

impl Service for KvService {
    type Machine = KvMachine;

    fn machine(&self) -> KvMachine {
        Sessions::with_limits(KvStore::new(), self.session_limits)
    }

    fn routes(&self, handle: Handle<KvMachine>) -> OpenApiRouter {
        routes(handle)
    }

    fn describe(command: &SessionCommand<Command>) -> Option<String> {
        match command {
            // A session's command is listed as the command itself; a retry shows twice in
            // the log, as it sits there twice, though it was applied once.
            SessionCommand::Plain(command) | SessionCommand::Numbered { command, .. } => {
                describe_command(command)
            }
            SessionCommand::Open => None,
        }
    }

    fn examples(&self, curl: &str, url: &str) -> Vec<String> {
        vec![
            format!("{curl} -sL -X POST {url}/api/v1/append -H 'Content-Type: application/json' -d '{{\"command\":\"msg1\"}}'"),
            format!("{curl} -sL -X PUT {url}/api/v1/kv/greeting -d 'hello'"),
            format!("{curl} -sL {url}/api/v1/kv/greeting"),
        ]
    }
}

/// The key-value machine's routes, served with `kv`, with their part of the OpenAPI document.
pub fn routes(kv: Handle<KvMachine>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(append))
        .routes(routes!(kv_get, kv_put, kv_delete))
        .routes(routes!(open_session))
        .routes(routes!(compat_set))
        .routes(routes!(compat_get))
        .routes(routes!(compat_remove))
        .with_state(kv)
}

/// A committed write: where it sits in the log, and what the store said.
#[derive(Debug, Serialize, ToSchema)]
pub struct Written {
    pub index: u64,
    pub term: u64,
    /// `PUT`, `/set`: whether the key had a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<bool>,
    /// `DELETE`, `/remove`: whether the key existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existed: Option<bool>,
    /// `POST /api/v1/sessions`: the new session's id (the entry's index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<u64>,
}

/// The seed's `GET /get`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyValue {
    pub key: String,
    /// The value as UTF-8 (invalid bytes replaced).
    pub value: String,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AppendBody {
    /// The command to append to the log (the seed's log of strings).
    command: String,
}

/// Appends a command to the replicated log; answers once it is committed and applied.
#[utoipa::path(post, path = "/api/v1/append", tag = "key-value",
    params(SessionQuery),
    request_body = AppendBody,
    responses(
        (status = 200, description = "committed on a majority and applied here", body = Written),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 409, description = "overwritten by a new leader (safe to retry), or a later command of the session was applied", body = ErrorBody),
        (status = 410, description = "the session does not exist or expired", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time: the outcome is unknown", body = ErrorBody),
    ))]
async fn append(
    State(kv): State<Handle<KvMachine>>,
    uri: Uri,
    session: Result<Query<SessionQuery>, QueryRejection>,
    body: Result<WholeBody, ApiError>,
) -> ApiResult {
    let session = session?.0;
    let WholeBody(body) = body?;
    let AppendBody { command } = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(format!(
            "malformed JSON: {error}; expected {{\"command\": \"...\"}}"
        ))
    })?;
    write(&kv, session.wrap(Command::Append { command })?, &uri).await
}

/// `?client_id=&seq=` on a write: the command runs in that client session (Raft thesis §6.3),
/// so retrying it with the same numbers applies it at most once.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SessionQuery {
    /// A session from `POST /api/v1/sessions` (with `seq`).
    client_id: Option<u64>,
    /// The write's number in the session: 1, 2, 3, ... (with `client_id`).
    #[param(minimum = 1)]
    seq: Option<u64>,
}

impl SessionQuery {
    fn wrap(self, command: Command) -> Result<SessionCommand<Command>, ApiError> {
        match (self.client_id, self.seq) {
            (None, None) => Ok(SessionCommand::Plain(command)),
            (Some(client), Some(seq)) if seq > 0 => Ok(SessionCommand::Numbered {
                client,
                seq,
                command,
            }),
            (Some(_), Some(_)) => Err(ApiError::bad_request("seq starts at 1")),
            _ => Err(ApiError::bad_request(
                "client_id and seq go together: open a session with POST /api/v1/sessions, then number every write from seq=1",
            )),
        }
    }
}

/// Opens a client session for exactly-once writes; answers its `client_id` once committed.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "key-value",
    responses(
        (status = 200, description = "the session's `client_id`", body = Written),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 409, description = "overwritten by a new leader: safe to retry", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time: the outcome is unknown", body = ErrorBody),
    ))]
async fn open_session(State(kv): State<Handle<KvMachine>>, uri: Uri) -> ApiResult {
    write(&kv, SessionCommand::Open, &uri).await
}

/// Sets a key to the body's bytes; answers once committed and applied.
#[utoipa::path(put, path = "/api/v1/kv/{key}", tag = "key-value",
    params(("key" = String, Path, description = "the key (1 to 1024 bytes)", min_length = 1), SessionQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the value"),
    responses(
        (status = 200, description = "committed on a majority and applied here", body = Written),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 409, description = "overwritten by a new leader (safe to retry), or a later command of the session was applied", body = ErrorBody),
        (status = 410, description = "the session does not exist or expired", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time: the outcome is unknown", body = ErrorBody),
    ))]
async fn kv_put(
    State(kv): State<Handle<KvMachine>>,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
    body: Result<WholeBody, ApiError>,
) -> ApiResult {
    let Path(key) = key?;
    check_key(&key)?;
    let value = body?.0.to_vec();
    write(&kv, session?.0.wrap(Command::Put { key, value })?, &uri).await
}

async fn write(kv: &Handle<KvMachine>, command: SessionCommand<Command>, uri: &Uri) -> ApiResult {
    let Committed {
        index,
        term,
        output,
    } = kv.propose(&command, uri).await?;
    let mut body = Written {
        index: index.0,
        term: term.0,
        replaced: None,
        existed: None,
        client_id: None,
    };
    match output {
        SessionOutput::Applied(Output::Written { replaced }) => body.replaced = Some(replaced),
        SessionOutput::Applied(Output::Deleted { existed }) => body.existed = Some(existed),
        SessionOutput::Opened { client } => body.client_id = Some(client),
        SessionOutput::Stale { last_seq } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("not applied: the session already applied a later command (seq {last_seq})"),
            )
            .with("last_seq", json!(last_seq)))
        }
        SessionOutput::Expired => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "not applied: the session does not exist or expired; open a new one (earlier writes of the old session may or may not have been applied)",
            ))
        }
        SessionOutput::Applied(Output::Appended | Output::Value(_) | Output::Invalid)
        | SessionOutput::Invalid => {}
    }
    json_ok(body)
}

/// Deletes a key; answers once committed and applied.
#[utoipa::path(delete, path = "/api/v1/kv/{key}", tag = "key-value",
    params(("key" = String, Path, description = "the key (1 to 1024 bytes)", min_length = 1), SessionQuery),
    responses(
        (status = 200, description = "committed on a majority and applied here", body = Written),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 400, description = "an empty or oversize key, or a malformed session", body = ErrorBody),
        (status = 409, description = "overwritten by a new leader (safe to retry), or a later command of the session was applied", body = ErrorBody),
        (status = 410, description = "the session does not exist or expired", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time: the outcome is unknown", body = ErrorBody),
    ))]
async fn kv_delete(
    State(kv): State<Handle<KvMachine>>,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let Path(key) = key?;
    check_key(&key)?;
    write(&kv, session?.0.wrap(Command::Delete { key })?, &uri).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetQuery {
    /// This replica's value, without asking the leader (may miss recent writes).
    #[serde(default)]
    stale: bool,
}

/// A key's value: linearizable (through the leader's ReadIndex) unless `stale=true`.
#[utoipa::path(get, path = "/api/v1/kv/{key}", tag = "key-value",
    params(("key" = String, Path, description = "the key (1 to 1024 bytes)", min_length = 1), GetQuery),
    responses(
        (status = 200, description = "the value's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 400, description = "an empty or oversize key, or a malformed query", body = ErrorBody),
        (status = 404, description = "no such key", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "leadership not confirmed in time", body = ErrorBody),
    ))]
async fn kv_get(
    State(kv): State<Handle<KvMachine>>,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let Query(query) = query?;
    check_key(&key)?;
    match read(&kv, key, query.stale, &uri).await? {
        Some(value) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "key not found")),
    }
}

/// A stale read asks this replica; a linearizable one goes through the core's ReadIndex
/// ([`Handle::read`]).
async fn read(
    kv: &Handle<KvMachine>,
    key: String,
    stale: bool,
    uri: &Uri,
) -> Result<Option<Vec<u8>>, ApiError> {
    if stale {
        kv.stale_read(key).await
    } else {
        kv.read(key, uri).await
    }
}

/// The seed KV store's query parameters. Both are options here so that a missing one gets
/// its own message; the document (each route's `params`) says which one a route requires.
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

/// The seed's `GET /set?key=&value=`: `PUT /api/v1/kv/{key}` as a GET that writes.
#[utoipa::path(get, path = "/set", tag = SEED_COMPATIBILITY,
    params(
        ("key" = String, Query, description = "the key (1 to 1024 bytes)", min_length = 1),
        ("value" = String, Query, description = "the value"),
        SessionQuery),
    responses(
        (status = 200, description = "committed on a majority and applied here", body = Written),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 400, description = "a missing or bad key or value, or a malformed session", body = ErrorBody),
        (status = 409, description = "overwritten by a new leader (safe to retry), or a later command of the session was applied", body = ErrorBody),
        (status = 410, description = "the session does not exist or expired", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time: the outcome is unknown", body = ErrorBody),
    ))]
async fn compat_set(
    State(kv): State<Handle<KvMachine>>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let (key, value) = compat_query(query)?;
    let value = value.ok_or_else(|| ApiError::bad_request("missing ?value="))?;
    let value = value.into_bytes();
    write(&kv, session?.0.wrap(Command::Put { key, value })?, &uri).await
}

/// The seed's `GET /get?key=`: a linearizable read, answered as JSON.
#[utoipa::path(get, path = "/get", tag = SEED_COMPATIBILITY,
    params(("key" = String, Query, description = "the key (1 to 1024 bytes)", min_length = 1)),
    responses(
        (status = 200, description = "the value", body = KeyValue),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 400, description = "a missing or bad key", body = ErrorBody),
        (status = 404, description = "no such key", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "leadership not confirmed in time", body = ErrorBody),
    ))]
async fn compat_get(
    State(kv): State<Handle<KvMachine>>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
) -> ApiResult {
    let (key, _) = compat_query(query)?;
    match read(&kv, key.clone(), false, &uri).await? {
        Some(value) => {
            let value = String::from_utf8_lossy(&value).into_owned();
            Ok(Json(KeyValue { key, value }).into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "key not found")),
    }
}

/// The seed's `GET /remove?key=`: `DELETE /api/v1/kv/{key}` as a GET that writes.
#[utoipa::path(get, path = "/remove", tag = SEED_COMPATIBILITY,
    params(("key" = String, Query, description = "the key (1 to 1024 bytes)", min_length = 1), SessionQuery),
    responses(
        (status = 200, description = "committed on a majority and applied here", body = Written),
        (status = 307, description = "not the leader: the same request on the leader", body = ErrorBody,
            headers(("Location" = String, description = "the leader's URL"))),
        (status = 400, description = "a missing or bad key or value, or a malformed session", body = ErrorBody),
        (status = 409, description = "overwritten by a new leader (safe to retry), or a later command of the session was applied", body = ErrorBody),
        (status = 410, description = "the session does not exist or expired", body = ErrorBody),
        (status = 503, description = "no leader known, too busy, or the node is shutting down", body = ErrorBody),
        (status = 504, description = "not committed in time: the outcome is unknown", body = ErrorBody),
    ))]
async fn compat_remove(
    State(kv): State<Handle<KvMachine>>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let (key, _) = compat_query(query)?;
    write(&kv, session?.0.wrap(Command::Delete { key })?, &uri).await
}

/// How `/api/v1/state` shows a key-value command; `None` for linearizable reads.
fn describe_command(command: &Command) -> Option<String> {
    match command {
        Command::Append { command } => Some(command.clone()),
        Command::Put { key, value } => {
            Some(format!("PUT {key} {}", String::from_utf8_lossy(value)))
        }
        Command::Delete { key } => Some(format!("DELETE {key}")),
        Command::Read { .. } => None,
    }
}
