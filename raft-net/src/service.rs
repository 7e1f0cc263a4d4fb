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
//! [`node::run_service`](crate::node::run_service) runs one node of a service, and
//! [`cli::main`](crate::cli::main) gives a binary the `node` and `cluster`
//! subcommands of `raft-net` for it. The key-value store is one service ([`crate::kv`]).
//! `raft-net/examples/locks` is another, and the README's "Build your own replicated
//! service" walks through it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Uri;
use raft_core::{LogIndex, StateMachine, Term};
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;

use crate::addresses::AddressBook;
use crate::driver::{Outcome, Request};
use crate::http::{ask, check_command_size, ApiError, Effect, Redirect};
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
