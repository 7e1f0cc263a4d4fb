//! What a state machine's own HTTP routes use to reach the driver: a [`Handle`] proposes
//! commands and reads, and turns every outcome other than success into the [`ApiError`] the
//! node's own routes answer with (a `307` to the leader, `503`, `409`, `504`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::Uri;
use raft_core::kv::{Command, Output};
use raft_core::{LogIndex, Term};
use tokio::sync::mpsc;

use crate::addresses::AddressBook;
use crate::driver::{Outcome, Request};
use crate::http::{ask, check_command_size, ApiError, Effect, Redirect};

/// How long a request that does not wait for a commit may wait for the driver.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(2);

/// A committed and applied command: where it sits in the log and what the machine returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<O> {
    pub index: LogIndex,
    pub term: Term,
    pub output: O,
}

/// The machine routes' way to the driver, cheap to clone (one per request).
#[derive(Debug, Clone)]
pub struct Handle {
    requests: mpsc::Sender<Request>,
    redirect: Redirect,
    commit_timeout: Duration,
    command_bytes_max: usize,
}

impl Handle {
    pub(crate) fn new(
        requests: mpsc::Sender<Request>,
        id: raft_core::NodeId,
        addresses: Arc<AddressBook>,
        scheme: &'static str,
        commit_timeout: Duration,
        command_bytes_max: usize,
    ) -> Handle {
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
    /// output. `uri` is the request's, for the redirect to the leader.
    pub async fn propose(
        &self,
        command: &Command,
        uri: &Uri,
    ) -> Result<Committed<Output>, ApiError> {
        let command = command.encode();
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
    /// arrived, and only then reads (a deposed leader cannot answer it).
    pub async fn read(&self, key: String, uri: &Uri) -> Result<Option<Vec<u8>>, ApiError> {
        let outcome = ask(
            &self.requests,
            |respond| Request::Read { key, respond },
            self.commit_timeout,
            Effect::None,
        )
        .await?;
        match outcome {
            Outcome::Value(value) => Ok(value),
            other => Err(self.redirect.failure(other, uri)),
        }
    }

    /// This replica's answer, without consulting the leader: it may miss recent writes.
    pub async fn stale_read(&self, key: String) -> Result<Option<Vec<u8>>, ApiError> {
        ask(
            &self.requests,
            |respond| Request::StaleGet { key, respond },
            DRIVER_TIMEOUT,
            Effect::None,
        )
        .await
    }
}
