//! Peer messages (Figure 2's RPCs, as one-way messages).

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::log_entry::Entry;
use crate::persist::SnapshotMeta;
use crate::types::{Incarnation, LogIndex, NodeId, Term};

/// A message between two nodes, with the sender's current term and incarnation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    /// The sender's incarnation: votes and acknowledgements count only for the incarnation
    /// the membership knows (see [`Membership::admits`](crate::Membership::admits)).
    pub incarnation: Incarnation,
    pub message: Message,
}

/// The messages of Figure 2. Requests and responses are separate messages: the network may lose,
/// duplicate or reorder any of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    RequestVote(RequestVote),
    RequestVoteResponse(RequestVoteResponse),
    /// Asks whether the receiver would vote in the envelope's term (one above the sender's),
    /// without changing anyone's term or vote (Raft thesis §9.6).
    PreVote(RequestVote),
    /// Grants carry the pre-vote's term; refusals carry the receiver's current term.
    PreVoteResponse(RequestVoteResponse),
    AppendEntries(AppendEntries),
    AppendEntriesResponse(AppendEntriesResponse),
    /// Leadership transfer: the receiver starts an election at once (Raft thesis §3.10).
    TimeoutNow,
    /// One chunk of the leader's snapshot, for a follower whose next entry was compacted away
    /// (Raft §7).
    InstallSnapshot(InstallSnapshot),
    InstallSnapshotResponse(InstallSnapshotResponse),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallSnapshot {
    pub meta: SnapshotMeta,
    /// The size of the whole snapshot.
    pub total_bytes: u64,
    /// Where `data` starts in the snapshot.
    pub offset: u64,
    #[serde(with = "crate::byte_string")]
    pub data: Vec<u8>,
}

/// How far the follower got: the leader sends from `received_bytes` next; once it equals the
/// snapshot's size, the snapshot is installed and durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    pub last_included_index: LogIndex,
    pub received_bytes: u64,
    pub installed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestVote {
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
    /// Set when the election follows a `TimeoutNow`: voters that still hear from the current
    /// leader vote anyway, because that leader asked for it.
    pub leadership_transfer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    pub vote_granted: bool,
}

/// Replicates `entries` after `prev_log_index`; with no entries it is a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendEntries {
    pub prev_log_index: LogIndex,
    /// The term of the entry at `prev_log_index` in the leader's log (not the leader's term).
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: LogIndex,
    /// The leader's heartbeat round when it sent this; echoed in the response so the leader
    /// knows which of its messages a follower has seen (ReadIndex, Raft thesis §6.4).
    pub read_round: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    /// The `read_round` of the request this answers.
    pub read_round: u64,
    pub result: AppendResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log matches the leader's up to and including `match_index`
    /// (`prev_log_index + entries.len()` of the request), and that prefix is durable.
    Success { match_index: LogIndex },
    /// The consistency check failed at `rejected_prev_index`; `hint` lets the leader skip a whole
    /// conflicting term at once instead of one index per round trip.
    Reject {
        rejected_prev_index: LogIndex,
        hint: ConflictHint,
    },
    /// The request carried a term older than the follower's; the envelope's term tells the sender.
    StaleTerm,
    /// The follower holds requests that overtook an earlier one (`early_appends.rs`): its log
    /// ends at `log_last_index`, and the first request held follows on from `held_from`. The
    /// leader sends the entries in between again; nothing is acknowledged.
    Gap {
        log_last_index: LogIndex,
        held_from: LogIndex,
    },
}

/// Fast log backtracking (Raft §5.3, "the follower can include the term of the conflicting
/// entry and the first index it stores for that term").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConflictHint {
    /// The term of the follower's entry at `rejected_prev_index`, or `None` when its log is
    /// shorter than that.
    pub conflict_term: Option<Term>,
    /// The first index the follower stores for `conflict_term`, or its last index + 1.
    pub first_index: LogIndex,
}

impl Envelope {
    /// True when every term and index the envelope carries is one a node accepts
    /// ([`crate::types::ACCEPTED_VALUE_MAX`]).
    #[must_use]
    pub fn is_within_accepted_range(&self) -> bool {
        self.term.is_accepted() && self.message.is_within_accepted_range()
    }
}

impl Message {
    fn is_within_accepted_range(&self) -> bool {
        match self {
            Message::RequestVote(request) | Message::PreVote(request) => {
                request.last_log_index.is_accepted() && request.last_log_term.is_accepted()
            }
            Message::RequestVoteResponse(_) | Message::PreVoteResponse(_) | Message::TimeoutNow => {
                true
            }
            Message::AppendEntries(request) => {
                request.prev_log_index.is_accepted()
                    && request.prev_log_term.is_accepted()
                    && request.leader_commit.is_accepted()
                    && request
                        .entries
                        .iter()
                        .all(|entry| entry.index.is_accepted() && entry.term.is_accepted())
            }
            Message::AppendEntriesResponse(response) => match response.result {
                AppendResult::Success { match_index } => match_index.is_accepted(),
                AppendResult::Reject {
                    rejected_prev_index,
                    hint,
                } => {
                    rejected_prev_index.is_accepted()
                        && hint.first_index.is_accepted()
                        && hint.conflict_term.is_none_or(Term::is_accepted)
                }
                AppendResult::StaleTerm => true,
                AppendResult::Gap {
                    log_last_index,
                    held_from,
                } => log_last_index.is_accepted() && held_from.is_accepted(),
            },
            Message::InstallSnapshot(request) => {
                request.meta.last_included_index.is_accepted()
                    && request.meta.last_included_term.is_accepted()
            }
            Message::InstallSnapshotResponse(response) => {
                response.last_included_index.is_accepted()
            }
        }
    }

    /// A short name for traces and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Message::RequestVote(_) => "RequestVote",
            Message::RequestVoteResponse(_) => "RequestVoteResponse",
            Message::PreVote(_) => "PreVote",
            Message::PreVoteResponse(_) => "PreVoteResponse",
            Message::TimeoutNow => "TimeoutNow",
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::InstallSnapshotResponse(_) => "InstallSnapshotResponse",
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendEntriesResponse(_) => "AppendEntriesResponse",
        }
    }

    /// True for messages that answer another message.
    #[must_use]
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            Message::RequestVoteResponse(_)
                | Message::PreVoteResponse(_)
                | Message::AppendEntriesResponse(_)
                | Message::InstallSnapshotResponse(_)
        )
    }
}
