//! What a driver feeds into `Node::step`.

use alloc::vec::Vec;

use crate::membership::MembershipChange;
use crate::message::Envelope;
use crate::types::{LogIndex, NodeId, PersistId, RequestId};

/// One cause. Every effect it has comes back from the same `step` call as actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One logical tick elapsed. Election and heartbeat timeouts are counted in ticks.
    Tick,
    /// A peer message arrived (already decoded).
    Receive(Envelope),
    /// A client asks to append `command` to the log.
    Propose {
        request_id: RequestId,
        command: Vec<u8>,
    },
    /// Several client commands at once. Each is answered exactly as if proposed alone with
    /// `Propose`, in order; a leader appends them together, so they share one `Persist` and
    /// travel to each follower in as few AppendEntries as the message limits allow.
    ProposeBatch {
        proposals: Vec<(RequestId, Vec<u8>)>,
    },
    /// Every `Action::Persist` with an id up to and including `persist_id` is durable.
    PersistDone { persist_id: PersistId },
    /// A client asks for a linearizable read. The leader answers `Reply::ReadReady` once it has
    /// confirmed its leadership and applied everything committed when the read arrived
    /// (ReadIndex, Raft thesis §6.4); the state machine may then be read.
    Read { request_id: RequestId },
    /// Several linearizable reads at once. Each is answered exactly as if asked alone with
    /// `Read`, but a leader confirms them all with one heartbeat round instead of one round
    /// per read.
    ReadBatch { request_ids: Vec<RequestId> },
    /// Hand leadership to `to` (Raft thesis §3.10). Only a leader acts on it.
    TransferLeader { to: NodeId },
    /// The application's state machine snapshot as of `index` (at most the applied index): the
    /// core persists it, drops the log up to `index`, and sends it to followers that need
    /// entries from before it (Raft §7).
    Compact { index: LogIndex, data: Vec<u8> },
    /// Change the cluster's membership by one server. The leader answers like a proposal
    /// (`Accepted`, then `Committed` once the new membership is committed) or with
    /// `Reply::ChangeRejected`.
    ChangeMembership {
        request_id: RequestId,
        change: MembershipChange,
    },
}
