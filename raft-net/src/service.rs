//! A replicated service: a [`StateMachine`] and its HTTP routes, run by a raft-net node.
//!
//! Everything that makes a node real (the driver, the write-ahead log with group commit, the
//! UDP transport, recovery, snapshots, membership, metrics, the node's own routes) is the same
//! for every machine; a [`Service`] adds what is its own: the machine, the routes clients use
//! to reach it, and how its commands read in `/api/v1/state`. The routes reach the driver
//! through a [`Handle`], which proposes commands and reads, and turns every outcome other
//! than success into the [`ApiError`] the node's own routes answer with (a `307` to the
//! leader, `503`, `409`, `504`).
//!
//! What every machine's routes need is here too: [`Path`] and [`Query`] extractors whose
//! rejections are the node's JSON `400`s, [`Json`] for a JSON body refused as the node's own
//! routes refuse one (`413`, `408`, `400`), [`WholeBody`] for the body's bytes refused the same
//! way, [`json_ok`] for a `200` with a JSON body,
//! [`wall_clock_ms`] for a machine whose commands carry the time, and [`WriteFailures`] and
//! [`ReadFailures`], the statuses a [`Handle`]'s errors answer with, for a route's
//! `#[utoipa::path(responses(...))]`.
//!
//! [`node::run_service`](crate::node::run_service) runs one node of a service, and
//! [`cli::main`](crate::cli::main) gives a binary the `node` and `cluster`
//! subcommands of `raft-net` for it. The key-value store is one service ([`crate::kv`]).
//! `raft-net/examples/locks` is another, and the README's "Build your own replicated
//! service" walks through it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Uri};
use axum::response::IntoResponse;
use raft_core::{LogIndex, StateMachine, Term};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::openapi::{RefOr, Response};
use utoipa_axum::router::OpenApiRouter;

use crate::addresses::AddressBook;
use crate::driver::{Outcome, Request};
use crate::http::openapi::error_response;
pub use crate::http::WholeBody;
use crate::http::{ask, check_command_size, ApiError, ApiResult, Effect, Redirect};
use crate::replica::{machine_command_bytes, Replica};

/// How long a request that does not wait for a commit may wait for the driver.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(2);

/// A state machine that a node's driver task can own and whose values cross to HTTP tasks.
/// Every [`StateMachine`] with sendable parts is one.
pub trait Machine:
    StateMachine<
        Command: fmt::Debug + Send + 'static,
        Output: Send + 'static,
        Query: Send + 'static,
        Answer: Send + 'static,
        Snapshot: Send + 'static,
    > + Send
    + 'static
{
}

impl<M> Machine for M where
    M: StateMachine<
            Command: fmt::Debug + Send + 'static,
            Output: Send + 'static,
            Query: Send + 'static,
            Answer: Send + 'static,
            Snapshot: Send + 'static,
        > + Send
        + 'static
{
}

/// A replicated service: its machine and its routes.
pub trait Service: Send + Sync + 'static {
    /// The replicated state machine.
    type Machine: Machine;

    /// A fresh, empty machine. Every member must build it with the same configuration.
    fn machine(&self) -> Self::Machine;

    /// The machine's HTTP routes, reaching the driver through `handle`. They are served with
    /// the client access class (the client token, when the node has one) next to the node's
    /// own routes, whose paths they must not reuse.
    ///
    /// Handlers annotated with `#[utoipa::path]` and registered with `utoipa_axum::routes!`
    /// appear in `GET /api/v1/openapi.json` (the key-value service's do); a plain axum
    /// `Router` converts with `.into()`, its routes served but not described.
    fn routes(&self, handle: Handle<Self::Machine>) -> OpenApiRouter;

    /// How `GET /api/v1/state` lists a command; `None` leaves it out. Its `Debug` form unless
    /// the service says otherwise.
    fn describe(command: &<Self::Machine as StateMachine>::Command) -> Option<String> {
        Some(format!("{command:?}"))
    }

    /// Lines `cluster` prints after starting a local cluster, to show how to use the machine's
    /// routes: `curl` is the curl command to use (with the CA certificate, if any), `url` the
    /// first node's URL.
    fn examples(&self, curl: &str, url: &str) -> Vec<String> {
        let _ = (curl, url);
        Vec::new()
    }
}

/// How `/api/v1/state` lists a log entry's command bytes: the machine's commands as the service
/// describes them; members' addresses and undecodable bytes as before.
pub(crate) fn describe_entry<S: Service>(bytes: &[u8]) -> Option<String> {
    match Replica::<S::Machine>::decode_command(bytes) {
        Some(crate::replica::NodeCommand::Machine(command)) => S::describe(&command),
        Some(crate::replica::NodeCommand::SetAddress { .. }) => None,
        None => Some(format!("<{} undecodable bytes>", bytes.len())),
    }
}

/// A committed and applied command: where it sits in the log and what the machine returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<O> {
    pub index: LogIndex,
    pub term: Term,
    pub output: O,
}

/// The machine routes' way to the driver, cheap to clone (one per request).
pub struct Handle<M: StateMachine> {
    requests: mpsc::Sender<Request<M>>,
    redirect: Redirect,
    commit_timeout: Duration,
    command_bytes_max: usize,
}

impl<M: StateMachine> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Handle {
            requests: self.requests.clone(),
            redirect: self.redirect.clone(),
            commit_timeout: self.commit_timeout,
            command_bytes_max: self.command_bytes_max,
        }
    }
}

impl<M: StateMachine> fmt::Debug for Handle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("node", &self.redirect.id)
            .finish_non_exhaustive()
    }
}

impl<M: Machine> Handle<M> {
    pub(crate) fn new(
        requests: mpsc::Sender<Request<M>>,
        id: raft_core::NodeId,
        addresses: Arc<AddressBook>,
        scheme: &'static str,
        commit_timeout: Duration,
        command_bytes_max: usize,
    ) -> Handle<M> {
        Handle {
            requests,
            redirect: Redirect {
                id,
                addresses,
                scheme,
            },
            commit_timeout,
            command_bytes_max,
        }
    }

    /// Proposes `command`; `Ok` only once it is committed and applied, with the machine's
    /// output. `uri` is the request's, for the redirect to the leader. A command larger than
    /// one datagram can carry is refused with `400`.
    pub async fn propose(
        &self,
        command: &M::Command,
        uri: &Uri,
    ) -> Result<Committed<M::Output>, ApiError> {
        let command = machine_command_bytes::<M>(command);
        check_command_size(&command, self.command_bytes_max)?;
        let outcome = ask(
            &self.requests,
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
            } => Ok(Committed {
                index,
                term,
                output,
            }),
            other => Err(self.redirect.failure(other, uri)),
        }
    }

    /// A linearizable read through the core's ReadIndex: the leader confirms with a quorum
    /// that it still leads, waits until it has applied everything committed when the read
    /// arrived, and only then asks the machine (a deposed leader cannot answer it).
    pub async fn read(&self, query: M::Query, uri: &Uri) -> Result<M::Answer, ApiError> {
        let outcome = ask(
            &self.requests,
            |respond| Request::Read { query, respond },
            self.commit_timeout,
            Effect::None,
        )
        .await?;
        match outcome {
            Outcome::Value(answer) => Ok(answer),
            other => Err(self.redirect.failure(other, uri)),
        }
    }

    /// This replica's answer, on any member, without consulting the leader: it may miss
    /// recent writes.
    pub async fn stale_read(&self, query: M::Query) -> Result<M::Answer, ApiError> {
        ask(
            &self.requests,
            |respond| Request::StaleRead { query, respond },
            DRIVER_TIMEOUT,
            Effect::None,
        )
        .await
    }
}

/// `axum::extract::Path`, refused with the node's JSON `400` (`{"error": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// `axum::extract::Query`, refused with the node's JSON `400` (`{"error": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// A JSON request body, refused with the node's JSON errors as every route with a body is:
/// `413` over the size limit, `408` when the body stops arriving for longer than the body
/// timeout, `400` when it is not a `T` in JSON. Unlike `axum::Json` it takes the body whatever
/// its `Content-Type` says, as the node's own routes do: so a page in a browser can send one
/// without a CORS preflight, and only a client token (`--client-token`; the `Authorization`
/// header always takes a preflight) keeps any page a user visits from writing. It only reads;
/// answer with [`json_ok`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let WholeBody(body) = WholeBody::from_request(request, state).await?;
        serde_json::from_slice(&body)
            .map(Json)
            .map_err(|error| ApiError::bad_request(format!("malformed JSON: {error}")))
    }
}

/// `200` with `value` as its JSON body: the bytes and header of axum's `Json`, serialized into
/// a `Vec` rather than through `Json`'s `BytesMut` writer, whose capacity check for every piece
/// cost a write's answer about 750 instructions at the leader (`bench/instructions/leader.sh`).
pub fn json_ok(value: impl Serialize) -> ApiResult {
    let body = serde_json::to_vec(&value)
        .map_err(|error| ApiError::internal(format!("answer not serializable: {error}")))?;
    let json = HeaderValue::from_static("application/json");
    Ok(([(header::CONTENT_TYPE, json)], body).into_response())
}

/// The wall clock, in milliseconds since the Unix epoch (0 before it). A machine never reads
/// a clock (it must be deterministic); a route that needs the time reads it here and puts it
/// in the command, so every replica applies the same time.
#[must_use]
pub fn wall_clock_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

const NOT_LEADER: &str = "not the leader: the same request on the leader (`Location`)";
const UNAVAILABLE: &str = "no leader known, too busy, or the node is shutting down";

/// The failures of a route that proposes with [`Handle::propose`], for its
/// `#[utoipa::path(responses(...))]`: `307`, `400` (a command too large), `409` (overwritten),
/// `503`, `504` (outcome unknown). A route whose own `409` means more lists it after these.
#[derive(Debug, Clone, Copy)]
pub struct WriteFailures;

impl utoipa::IntoResponses for WriteFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("307", NOT_LEADER),
            (
                "400",
                "the request is malformed, or its command exceeds one datagram",
            ),
            (
                "409",
                "overwritten by a new leader: it will never commit, safe to retry",
            ),
            ("503", UNAVAILABLE),
            (
                "504",
                "not committed in time, or learned through a snapshot: the outcome is unknown",
            ),
        ]
        .into_iter()
        .map(|(status, what)| (status.to_string(), error_response(what)))
        .collect()
    }
}

/// The failures of a route that reads with [`Handle::read`] (or [`Handle::stale_read`]), for
/// its `#[utoipa::path(responses(...))]`: `307`, `503`, `504`.
#[derive(Debug, Clone, Copy)]
pub struct ReadFailures;

impl utoipa::IntoResponses for ReadFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("307", NOT_LEADER),
            ("503", UNAVAILABLE),
            ("504", "no answer in time"),
        ]
        .into_iter()
        .map(|(status, what)| (status.to_string(), error_response(what)))
        .collect()
    }
}
