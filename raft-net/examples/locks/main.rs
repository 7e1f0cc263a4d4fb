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
use std::sync::Arc;

use raft_net::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

#[cfg(test)]
mod sim_test;

/// A command. Time travels inside commands (`now_ms`, the proposing node's clock), so every
/// replica sees the same time and the machine stays deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub lock: String,
    pub owner: String,
    pub now_ms: u64,
    /// Take `lock` for `owner` (or renew it) for this long; `None` gives it up.
    pub ttl_ms: Option<u64>,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Holder {
    pub owner: String,
    pub token: u64,
    pub expires_ms: u64,
}

/// The held locks and the latest time a command carried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    held: BTreeMap<String, Holder>,
    now_ms: u64,
}

/// The machine: its table, shared with a snapshot until the next change copies it
/// (copy-on-write: taking a snapshot costs a reference count). Commands and snapshots are
/// postcard's encoding of the serde types (`SerdeMachine`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locks(Arc<Table>);

impl SerdeMachine for Locks {
    type Command = Command;
    type Output = Output;
    type Query = String;
    type Answer = Option<Holder>;
    type Snapshot = Arc<Table>;

    fn invalid_output() -> Output {
        Output::Invalid
    }

    fn apply(&mut self, index: LogIndex, command: Command) -> Output {
        let table = Arc::make_mut(&mut self.0);
        // Proposers' clocks differ: the machine's time only moves forward. Leases it passed
        // end here, on every replica at the same entry.
        let now_ms = table.now_ms.max(command.now_ms);
        table.now_ms = now_ms;
        table.held.retain(|_, holder| holder.expires_ms > now_ms);
        let Command { lock, owner, .. } = command;
        match (command.ttl_ms, table.held.get(&lock)) {
            (Some(_), Some(other)) if other.owner != owner => Output::Held(other.clone()),
            (Some(ttl_ms), held) => {
                let token = held.map_or(index.0, |h| h.token);
                let expires_ms = now_ms.saturating_add(ttl_ms);
                let holder = Holder {
                    owner,
                    token,
                    expires_ms,
                };
                table.held.insert(lock, holder.clone());
                Output::Granted(holder)
            }
            (None, Some(held)) if held.owner == owner => {
                table.held.remove(&lock);
                Output::Released
            }
            (None, _) => Output::NotHolder,
        }
    }

    fn query(&self, lock: &String) -> Option<Holder> {
        self.0.held.get(lock).cloned()
    }

    fn snapshot(&self) -> Arc<Table> {
        Arc::clone(&self.0)
    }

    fn restore(&mut self, table: Arc<Table>) {
        self.0 = table;
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
        let locks = routes!(acquire, release, holder);
        OpenApiRouter::new().routes(locks).with_state(handle)
    }

    fn examples(&self, curl: &str, url: &str) -> Vec<String> {
        let lock = format!("{curl} -sL '{url}/api/v1/locks/db");
        vec![
            format!("{lock}?owner=alice&ttl_ms=30000' -X POST"),
            format!("{lock}'"),
        ]
    }
}

#[derive(Deserialize, IntoParams)]
struct Params {
    /// Who takes or gives up the lock.
    owner: String,
    /// How long the lease lasts (`POST` only; 10 s by default).
    ttl_ms: Option<u64>,
}

impl Params {
    /// The command for `lock`, stamped with this node's clock.
    fn command(self, lock: String, ttl_ms: Option<u64>) -> Command {
        let (owner, now_ms) = (self.owner, wall_clock_ms());
        Command {
            lock,
            owner,
            now_ms,
            ttl_ms,
        }
    }
}

/// Takes the lock, or renews it, for `owner`: the holder, with the fencing token.
#[utoipa::path(post, path = "/api/v1/locks/{lock}", tag = "locks", params(("lock" = String, Path), Params),
    responses((status = 200, description = "granted", body = Holder), WriteFailures,
        (status = 409, description = "held by another owner (`holder`), or overwritten: retry", body = ErrorBody)))]
async fn acquire(
    locks: State<Handle<Locks>>,
    uri: Uri,
    Path(lock): Path<String>,
    Query(q): Query<Params>,
) -> ApiResult {
    let ttl_ms = Some(q.ttl_ms.unwrap_or(10_000));
    answer(locks.propose(&q.command(lock, ttl_ms), &uri).await?.output)
}

/// Gives the lock up, if `owner` holds it.
#[utoipa::path(delete, path = "/api/v1/locks/{lock}", tag = "locks", params(("lock" = String, Path), Params),
    responses((status = 200, description = "released"), WriteFailures,
        (status = 409, description = "not the holder, or overwritten: retry", body = ErrorBody)))]
async fn release(
    locks: State<Handle<Locks>>,
    uri: Uri,
    Path(lock): Path<String>,
    Query(q): Query<Params>,
) -> ApiResult {
    answer(locks.propose(&q.command(lock, None), &uri).await?.output)
}

/// The HTTP answer to a committed command's output.
fn answer(output: Output) -> ApiResult {
    let conflict = |message| ApiError::new(StatusCode::CONFLICT, message);
    match output {
        Output::Granted(holder) => json_ok(holder),
        Output::Released => json_ok(json!({ "released": true })),
        Output::Held(holder) => {
            Err(conflict("held by another owner").with("holder", json!(holder)))
        }
        Output::NotHolder => Err(conflict("not the holder")),
        Output::Invalid => Err(ApiError::internal("the command did not decode")),
    }
}

/// The holder (a linearizable read), or `404`.
#[utoipa::path(get, path = "/api/v1/locks/{lock}", tag = "locks", params(("lock" = String, Path)),
    responses((status = 200, body = Holder), (status = 404, description = "not held", body = ErrorBody), ReadFailures))]
async fn holder(locks: State<Handle<Locks>>, uri: Uri, Path(lock): Path<String>) -> ApiResult {
    let holder = locks.read(lock, &uri).await?;
    json_ok(holder.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not held"))?)
}

fn main() -> std::process::ExitCode {
    raft_net::cli::main(LockService)
}
