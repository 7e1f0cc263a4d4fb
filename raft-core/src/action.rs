//! What `Node::step` asks the driver to do.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::log_entry::Entry;
use crate::membership::ChangeRejection;
use crate::message::Envelope;
use crate::persist::{PersistRequest, Snapshot};
use crate::types::{LogIndex, NodeId, RequestId, Term};

/// One effect. A step returns them in the order Persist, Send..., ApplySnapshot, Apply,
/// Reply...
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make this durable, after every earlier `Persist`, then feed back `Input::PersistDone`.
    Persist(PersistRequest),
    /// Send this message; fire and forget. It never depends on a pending `Persist`.
    Send(Envelope),
    /// Apply these entries to the state machine: committed, locally durable, contiguous, each
    /// exactly once, in index order. No-op entries are included so applied indexes have no gaps.
    Apply { entries: Vec<Entry> },
    /// Replace the state machine with this snapshot from the leader; entries after its last
    /// index follow in later `Apply` actions.
    ApplySnapshot { snapshot: Snapshot },
    /// The answer to an `Input::Propose` or `Input::Read`.
    Reply { request_id: RequestId, reply: Reply },
}

/// The fate of a proposal or read. `Accepted` is followed later by exactly one of `Committed`,
/// `Dropped` or `Unknown`; every other reply is final. A read gets exactly one of `ReadReady`,
/// `NotLeader` or `Busy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The leader appended the command at `index` in `term`; its outcome follows later.
    Accepted { index: LogIndex, term: Term },
    /// The entry is committed and was applied in the same step (after its `Action::Apply`).
    Committed { index: LogIndex, term: Term },
    /// This node is not the leader; `leader_hint` is the leader it knows of, if any.
    NotLeader { leader_hint: Option<NodeId> },
    /// Too many proposals or reads are in flight, or a leadership transfer is under way;
    /// retry later.
    Busy,
    /// The membership change cannot be made (now).
    ChangeRejected { reason: ChangeRejection },
    /// A linearizable read may be served: the state machine has applied through `index`, which
    /// covers every write committed before the read arrived.
    ReadReady { index: LogIndex },
    /// The entry will never commit: a different entry was committed at its index.
    Dropped { index: LogIndex, term: Term },
    /// This node learned the entry's fate only through a snapshot, which does not say whether
    /// the entry at `index` was this proposal; it may or may not have been applied.
    Unknown { index: LogIndex, term: Term },
}
