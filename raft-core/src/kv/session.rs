//! Client sessions (Raft thesis §6.3): each client registers once, then numbers its commands.
//! The table remembers every session's latest sequence number and its output, so a command
//! retried after a lost reply (possibly committed twice in the log) is applied once and
//! answered with the first output.
//!
//! Sessions expire by log index, never by a local clock: a session with no command for
//! `idle_entries` log indexes is dropped when a later entry is applied, and when the table is
//! full the least recently active session makes room for a new one. Every replica applies the
//! same entries at the same indexes, so every replica expires the same sessions at the same
//! point of the log.

use alloc::collections::{BTreeMap, BTreeSet};
use serde::{Deserialize, Serialize};

use super::Output;

/// How long sessions live and how many are kept. Every replica of a cluster must use the same
/// limits, like every other state machine parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session whose last command is more than this many log indexes behind the entry
    /// being applied expires.
    pub idle_entries: u64,
    /// Sessions kept at most; opening one more expires the least recently active.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle_entries: 1 << 20,
            max_sessions: 1 << 16,
        }
    }
}

/// One client's deduplication state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Session {
    /// The highest sequence number applied; 0 before the first command.
    last_seq: u64,
    /// What that command returned, replayed to a retry of it.
    last_output: Option<Output>,
    /// The log index of the session's latest activity (registration or command).
    last_index: u64,
}

/// What the table says about a numbered command before it is applied.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// A new command: apply it, then `record` its output.
    Apply,
    /// The command was applied already: answer with this output again.
    Replay(Output),
    /// The client already moved past this sequence number; applying it now would reorder the
    /// client's own commands.
    Stale { last_seq: u64 },
    /// The client has no session (never registered, or expired).
    Expired,
}

/// Every live session, with an index of sessions by latest activity for expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Sessions {
    limits: SessionLimits,
    by_client: BTreeMap<u64, Session>,
    /// (last_index, client) of every session, oldest activity first.
    by_activity: BTreeSet<(u64, u64)>,
}

impl Sessions {
    pub(super) fn new(limits: SessionLimits) -> Sessions {
        Sessions {
            limits,
            by_client: BTreeMap::new(),
            by_activity: BTreeSet::new(),
        }
    }

    pub(super) fn from_table(limits: SessionLimits, by_client: BTreeMap<u64, Session>) -> Self {
        let by_activity = by_client
            .iter()
            .map(|(&client, session)| (session.last_index, client))
            .collect();
        Sessions {
            limits,
            by_client,
            by_activity,
        }
    }

    pub(super) fn table(&self) -> &BTreeMap<u64, Session> {
        &self.by_client
    }

    pub(super) fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Drops every session idle for longer than the limit as of applying `index`.
    pub(super) fn expire(&mut self, index: u64) {
        while let Some(&(last_index, client)) = self.by_activity.first() {
            if last_index.saturating_add(self.limits.idle_entries) >= index {
                break;
            }
            self.remove(last_index, client);
        }
    }

    fn remove(&mut self, last_index: u64, client: u64) {
        self.by_activity.remove(&(last_index, client));
        self.by_client.remove(&client);
    }

    /// Opens the session whose id is the index of the registering entry.
    pub(super) fn open(&mut self, index: u64) -> u64 {
        while self.by_client.len() >= self.limits.max_sessions.max(1) {
            let Some(&(last_index, client)) = self.by_activity.first() else {
                break;
            };
            self.remove(last_index, client);
        }
        self.by_client.insert(
            index,
            Session {
                last_seq: 0,
                last_output: None,
                last_index: index,
            },
        );
        self.by_activity.insert((index, index));
        index
    }

    pub(super) fn admit(&self, client: u64, seq: u64) -> Admission {
        let Some(session) = self.by_client.get(&client) else {
            return Admission::Expired;
        };
        if seq > session.last_seq {
            return Admission::Apply;
        }
        match (&session.last_output, seq == session.last_seq) {
            (Some(output), true) => Admission::Replay(output.clone()),
            _ => Admission::Stale {
                last_seq: session.last_seq,
            },
        }
    }

    /// Records that `client`'s command `seq`, applied at `index`, returned `output`.
    pub(super) fn record(&mut self, client: u64, seq: u64, index: u64, output: &Output) {
        let Some(session) = self.by_client.get_mut(&client) else {
            return;
        };
        self.by_activity.remove(&(session.last_index, client));
        session.last_seq = seq;
        session.last_output = Some(output.clone());
        session.last_index = index;
        self.by_activity.insert((index, client));
    }
}
