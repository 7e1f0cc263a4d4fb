//! A replicated lock service with fencing tokens: raft-net's node, a state machine of its own.
//!
//! A client takes a lock for a while (`ttl_ms`) and gets a fencing token: the log index of the
//! entry that granted it, so every later grant of any lock has a larger one. A holder that
//! stalls past its lease loses the lock to the next client; the resource it protects refuses
//! writes whose token is below the highest it has seen, so the stalled holder cannot clobber
//! the new one's work (Kleppmann, "How to do distributed locking").
//!
//! ```sh
//! cargo run --release -p raft-net --example locks -- cluster
//! curl -sL -X POST 'http://127.0.0.1:8000/api/v1/locks/db?owner=alice&ttl_ms=30000'
//! ```
//!
//! The raft-net README's "Build your own replicated service" walks through this file;
//! `sim_test.rs` runs the machine in the simulator through a partition and a crash.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use raft_core::machine::postcard;
use raft_core::{BadSnapshot, LogIndex, StateMachine};
use raft_net::http::{ApiError, ApiResult};
use raft_net::service::{Handle, Service};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;

#[cfg(test)]
mod sim_test;

/// A command. Time travels inside commands (`now_ms`, the proposing node's clock), so every
/// replica sees the same time and the machine stays deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Take `lock` for `owner` until `ttl_ms` after `now_ms`, or renew it if `owner` holds it.
    Acquire {
        lock: String,
        owner: String,
        ttl_ms: u64,
        now_ms: u64,
    },
    /// Give `lock` up, if `owner` holds it.
    Release { lock: String, owner: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The lock is the proposer's (a renewal keeps its token).
    Granted(Holder),
    /// Another owner holds it.
    Held(Holder),
    Released,
    NotHolder,
    /// The entry's bytes are no command (the contract: nothing changed).
    Invalid,
}

/// Who holds a lock, with which fencing token, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub owner: String,
    pub token: u64,
    pub expires_ms: u64,
}

/// The held locks, shared with a snapshot until the next change copies them (copy-on-write:
/// a snapshot is a reference count), and the latest time a command carried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locks {
    held: Arc<BTreeMap<String, Holder>>,
    now_ms: u64,
}

impl Locks {
    /// `lock`'s holder, unless its lease ran out.
    fn holder(&self, lock: &str) -> Option<&Holder> {
        self.held.get(lock).filter(|h| h.expires_ms > self.now_ms)
    }
}

impl StateMachine for Locks {
    type Command = Command;
    type Output = Output;
    type Query = String;
    type Answer = Option<Holder>;
    type Snapshot = Locks;

    fn encode_command(command: &Command, out: &mut Vec<u8>) {
        postcard::encode(command, out);
    }

    fn decode_command(bytes: &[u8]) -> Option<Command> {
        postcard::decode(bytes)
    }

    fn invalid_output() -> Output {
        Output::Invalid
    }

    fn apply(&mut self, index: LogIndex, command: Command) -> Output {
        match command {
            Command::Acquire {
                lock,
                owner,
                ttl_ms,
                now_ms,
            } => {
                // Proposers' clocks differ: the machine's time only moves forward.
                self.now_ms = self.now_ms.max(now_ms);
                let token = match self.holder(&lock) {
                    Some(h) if h.owner != owner => return Output::Held(h.clone()),
                    Some(h) => h.token,
                    None => index.0,
                };
                let expires_ms = self.now_ms.saturating_add(ttl_ms);
                let holder = Holder {
                    owner,
                    token,
                    expires_ms,
                };
                Arc::make_mut(&mut self.held).insert(lock, holder.clone());
                Output::Granted(holder)
            }
            Command::Release { lock, owner } => match self.holder(&lock) {
                Some(h) if h.owner == owner => {
                    Arc::make_mut(&mut self.held).remove(&lock);
                    Output::Released
                }
                _ => Output::NotHolder,
            },
        }
    }

    fn query(&self, lock: &String) -> Option<Holder> {
        self.holder(lock).cloned()
    }

    fn snapshot(&self) -> Locks {
        self.clone()
    }

    fn encode_snapshot(locks: &Locks, out: &mut Vec<u8>) {
        postcard::encode(&(&*locks.held, locks.now_ms), out);
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), BadSnapshot> {
        let (held, now_ms) = postcard::decode(bytes).ok_or(BadSnapshot)?;
        (self.held, self.now_ms) = (Arc::new(held), now_ms);
        Ok(())
    }
}

/// The service: the machine and its routes.
struct LockService;

impl Service for LockService {
    type Machine = Locks;

    fn machine(&self) -> Locks {
        Locks::default()
    }

    fn routes(&self, handle: Handle<Locks>) -> OpenApiRouter {
        let route = post(acquire).delete(release).get(holder);
        let router = Router::new().route("/api/v1/locks/{lock}", route);
        router.with_state(handle).into()
    }

    fn examples(&self, curl: &str, url: &str) -> Vec<String> {
        vec![
            format!("{curl} -sL -X POST '{url}/api/v1/locks/db?owner=alice&ttl_ms=30000'"),
            format!("{curl} -sL '{url}/api/v1/locks/db'"),
            format!("{curl} -sL -X DELETE '{url}/api/v1/locks/db?owner=alice'"),
        ]
    }
}

#[derive(Deserialize)]
struct Params {
    owner: String,
    ttl_ms: Option<u64>,
}

/// `POST /api/v1/locks/{lock}?owner=&ttl_ms=` (default 10 s): the holder and its token.
async fn acquire(
    State(locks): State<Handle<Locks>>,
    uri: Uri,
    Path(lock): Path<String>,
    params: Result<Query<Params>, QueryRejection>,
) -> ApiResult {
    let Query(params) = params?;
    // The route, not the machine, reads the clock: the time is then part of the command.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let (owner, ttl_ms) = (params.owner, params.ttl_ms.unwrap_or(10_000));
    let command = Command::Acquire {
        lock,
        owner,
        ttl_ms,
        now_ms,
    };
    answer(locks.propose(&command, &uri).await?.output)
}

/// `DELETE /api/v1/locks/{lock}?owner=`.
async fn release(
    State(locks): State<Handle<Locks>>,
    uri: Uri,
    Path(lock): Path<String>,
    params: Result<Query<Params>, QueryRejection>,
) -> ApiResult {
    let Query(Params { owner, .. }) = params?;
    let command = Command::Release { lock, owner };
    answer(locks.propose(&command, &uri).await?.output)
}

/// The HTTP answer to a committed command's output.
fn answer(output: Output) -> ApiResult {
    let conflict = |message| ApiError::new(StatusCode::CONFLICT, message);
    match output {
        Output::Granted(holder) => Ok(Json(holder).into_response()),
        Output::Released => Ok(Json(json!({ "released": true })).into_response()),
        Output::Held(holder) => {
            Err(conflict("held by another owner").with("holder", json!(holder)))
        }
        Output::NotHolder => Err(conflict("not the holder")),
        Output::Invalid => Err(ApiError::internal("the command did not decode")),
    }
}

/// `GET /api/v1/locks/{lock}`: the holder (a linearizable read), or `404`.
async fn holder(
    State(locks): State<Handle<Locks>>,
    uri: Uri,
    Path(lock): Path<String>,
) -> ApiResult {
    match locks.read(lock, &uri).await? {
        Some(holder) => Ok(Json(json!(holder)).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not held")),
    }
}

fn main() -> ExitCode {
    raft_net::cli::main(LockService)
}
