//! The key-value machine's HTTP routes: keys (`/api/v1/kv/{key}`), log commands
//! (`POST /api/v1/append`), client sessions (`POST /api/v1/sessions`, then `?client_id=&seq=`
//! on every write), and the seed's compatibility routes (`GET /set`, `/get`, `/remove`; `/set`
//! and `/remove` are GETs that write). They are served with the client access class, like
//! every machine's routes, next to the node's own routes (see [`crate::http::router`]).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use raft_core::kv::{Command, Output};
use serde::Deserialize;
use serde_json::json;

use crate::config::KEY_BYTES_MAX;
use crate::http::{ApiError, ApiResult};
use crate::service::{Committed, Handle};

/// The key-value machine's routes, served with `kv`.
pub fn routes(kv: Handle) -> Router {
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
        .with_state(kv)
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
    State(kv): State<Handle>,
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
    write(&kv, session.wrap(Command::Append { command })?, &uri).await
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
async fn open_session(State(kv): State<Handle>, uri: Uri) -> ApiResult {
    write(&kv, Command::OpenSession, &uri).await
}

async fn kv_put(
    State(kv): State<Handle>,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path(key) = key?;
    check_key(&key)?;
    let value = body?.to_vec();
    write(&kv, session?.0.wrap(Command::Put { key, value })?, &uri).await
}

async fn write(kv: &Handle, command: Command, uri: &Uri) -> ApiResult {
    let Committed {
        index,
        term,
        output,
    } = kv.propose(&command, uri).await?;
    let mut body = json!({ "index": index.0, "term": term.0 });
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
    State(kv): State<Handle>,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let Path(key) = key?;
    check_key(&key)?;
    write(&kv, session?.0.wrap(Command::Delete { key })?, &uri).await
}

#[derive(Debug, Deserialize)]
struct GetQuery {
    #[serde(default)]
    stale: bool,
}

async fn kv_get(
    State(kv): State<Handle>,
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
    kv: &Handle,
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
    State(kv): State<Handle>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let (key, value) = compat_query(query)?;
    let value = value.ok_or_else(|| ApiError::bad_request("missing ?value="))?;
    let value = value.into_bytes();
    write(&kv, session?.0.wrap(Command::Put { key, value })?, &uri).await
}

async fn compat_get(
    State(kv): State<Handle>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
) -> ApiResult {
    let (key, _) = compat_query(query)?;
    match read(&kv, key.clone(), false, &uri).await? {
        Some(value) => {
            let value = String::from_utf8_lossy(&value);
            Ok(Json(json!({ "key": key, "value": value })).into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "key not found")),
    }
}

async fn compat_remove(
    State(kv): State<Handle>,
    uri: Uri,
    query: Result<Query<CompatQuery>, QueryRejection>,
    session: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult {
    let (key, _) = compat_query(query)?;
    write(&kv, session?.0.wrap(Command::Delete { key })?, &uri).await
}

/// How `/api/v1/state` shows a command entry; `None` for internal ones (linearizable reads,
/// addresses, session openings).
#[must_use]
pub fn describe(bytes: &[u8]) -> Option<String> {
    match Command::decode(bytes) {
        Some(command) => describe_command(command),
        None => Some(format!("<{} undecodable bytes>", bytes.len())),
    }
}

fn describe_command(command: Command) -> Option<String> {
    match command {
        Command::Append { command } => Some(command),
        Command::Put { key, value } => {
            Some(format!("PUT {key} {}", String::from_utf8_lossy(&value)))
        }
        Command::Delete { key } => Some(format!("DELETE {key}")),
        // A session's command is listed as the command itself; a retry shows twice in the
        // log, as it sits there twice, though it was applied once.
        Command::InSession { command, .. } => describe_command(*command),
        Command::Read { .. } | Command::SetAddress { .. } | Command::OpenSession => None,
    }
}
