//! What the core asks to be made durable, and what it is restored from.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::log_entry::{Entry, EntryPayload};
use crate::membership::Membership;
use crate::shared_bytes::SharedBytes;
use crate::types::{Incarnation, LogIndex, NodeId, PersistId, Term};

/// Figure 2's persistent state other than the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    pub current_term: Term,
    pub voted_for: Option<NodeId>,
}

/// Everything one step made unstable. Storage applies the parts in field order: hard state,
/// snapshot, log splice (see `DurableState::apply`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PersistRequest {
    pub persist_id: PersistId,
    /// The new hard state, when it changed.
    pub hard_state: Option<HardState>,
    /// A new snapshot: it replaces the log prefix it covers.
    pub snapshot: Option<Snapshot>,
    /// The log change, when there is one.
    pub log: Option<LogSplice>,
}

/// Where a snapshot ends in the log, and the membership as of that point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub last_included_index: LogIndex,
    pub last_included_term: Term,
    pub membership: Membership,
}

/// The application's state machine as of `meta.last_included_index`, opaque to the core. Its
/// bytes are shared by every clone (see [`SharedBytes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: SharedBytes,
}

/// Remove every stored entry with index `>= from`, then append `entries` (which start at `from`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogSplice {
    pub from: LogIndex,
    pub entries: Vec<Entry>,
}

/// What a restarted node recovers from: the result of applying every completed `Persist`, in
/// order. A driver restoring a node also loads `snapshot` into its state machine: the restored
/// node has applied through the snapshot's last index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurableState {
    pub hard_state: HardState,
    /// The latest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The log after the snapshot (from index 1 without one).
    pub entries: Vec<Entry>,
}

impl DurableState {
    /// Disaster recovery after a lost quorum (etcd's `--force-new-cluster`): the same log with
    /// one more entry, in a new term, that makes `id` (in `incarnation`) the only voter, so the
    /// node restarted from the result elects itself and commits everything it holds. Entries
    /// that were never committed become committed: the price of recovering without a quorum.
    /// The other members are dropped; they rejoin as new servers.
    #[must_use]
    pub fn forced_to_single_voter(mut self, id: NodeId, incarnation: Incarnation) -> DurableState {
        let (last_index, last_term) = match (self.entries.last(), &self.snapshot) {
            (Some(entry), _) => (entry.index, entry.term),
            (None, Some(snapshot)) => (
                snapshot.meta.last_included_index,
                snapshot.meta.last_included_term,
            ),
            (None, None) => (LogIndex::ZERO, Term::ZERO),
        };
        let term = self.hard_state.current_term.max(last_term).next();
        let mut membership = Membership::new([id]);
        membership.incarnations.insert(id, incarnation);
        self.entries.push(Entry {
            index: last_index.next(),
            term,
            payload: EntryPayload::Membership(membership),
        });
        self.hard_state = HardState {
            current_term: term,
            voted_for: Some(id),
        };
        self
    }

    /// The index of the first entry in `entries`.
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(LogIndex(1), |snapshot| {
            snapshot.meta.last_included_index.next()
        })
    }

    /// Applies one completed persist request, the way durable storage must.
    pub fn apply(&mut self, request: &PersistRequest) {
        self.apply_owned(request.clone());
    }

    /// `apply` for a request not needed afterwards: its snapshot and entries are moved, not
    /// copied (a recovery replays a whole log this way).
    pub fn apply_owned(&mut self, request: PersistRequest) {
        if let Some(hard_state) = request.hard_state {
            self.hard_state = hard_state;
        }
        if let Some(snapshot) = request.snapshot {
            let meta = &snapshot.meta;
            let first = self.first_index();
            let covered = meta
                .last_included_index
                .0
                .checked_sub(first.0)
                .and_then(|offset| {
                    let position = usize::try_from(offset).ok()?;
                    let entry = self.entries.get(position)?;
                    (entry.term == meta.last_included_term).then_some(position + 1)
                });
            match covered {
                Some(count) => drop(self.entries.drain(..count)),
                None => self.entries.clear(),
            }
            self.snapshot = Some(snapshot);
        }
        if let Some(splice) = request.log {
            let keep = splice.from.0.saturating_sub(self.first_index().0);
            self.entries
                .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
            self.entries.extend(splice.entries);
        }
    }
}

/// Tracks which persist requests are durable and withholds the messages that certify them
/// (contract rule 3). Requests are numbered from 1; `PersistId(0)` means "nothing".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct PersistTracker {
    pub(crate) last_issued: PersistId,
    pub(crate) durable: PersistId,
    /// For each issued, not yet durable request: the last log index it makes durable.
    pub(crate) in_flight: alloc::collections::VecDeque<(PersistId, LogIndex)>,
    /// The last index of the current in-memory log that is known durable.
    pub(crate) durable_index: LogIndex,
    /// Messages waiting for a persist id to become durable, in the order they were produced.
    pub(crate) held: alloc::collections::VecDeque<(PersistId, crate::message::Envelope)>,
}

impl PersistTracker {
    pub(crate) fn new(durable_index: LogIndex) -> PersistTracker {
        PersistTracker {
            durable_index,
            ..PersistTracker::default()
        }
    }

    pub(crate) fn last_issued(&self) -> PersistId {
        self.last_issued
    }

    pub(crate) fn durable(&self) -> PersistId {
        self.durable
    }

    pub(crate) fn durable_index(&self) -> LogIndex {
        self.durable_index
    }

    pub(crate) fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Allocates the id of a new request covering the log up to `last_index`.
    pub(crate) fn issue(&mut self, last_index: LogIndex) -> PersistId {
        self.last_issued = self.last_issued.next();
        self.in_flight.push_back((self.last_issued, last_index));
        self.last_issued
    }

    /// The in-memory log lost every entry from `from` on: whatever was (or will be) durable
    /// there belongs to the old suffix.
    pub(crate) fn on_truncate(&mut self, from: LogIndex) {
        let kept = from.prev();
        self.durable_index = self.durable_index.min(kept);
        for (_, last_index) in &mut self.in_flight {
            *last_index = (*last_index).min(kept);
        }
    }

    /// Records that every request up to `persist_id` is durable; returns false for ids that were
    /// never issued or are already durable.
    pub(crate) fn mark_durable(&mut self, persist_id: PersistId) -> bool {
        if persist_id <= self.durable || persist_id > self.last_issued {
            return false;
        }
        self.durable = persist_id;
        while let Some(&(id, last_index)) = self.in_flight.front() {
            if id > persist_id {
                break;
            }
            self.durable_index = last_index;
            self.in_flight.pop_front();
        }
        true
    }

    /// Sends `envelope` once everything issued so far is durable: `Some` if that is already so.
    pub(crate) fn hold_until_durable(
        &mut self,
        envelope: crate::message::Envelope,
    ) -> Option<crate::message::Envelope> {
        if self.last_issued <= self.durable {
            return Some(envelope);
        }
        self.held.push_back((self.last_issued, envelope));
        None
    }

    /// Messages whose persist id is now durable, in the order they were held.
    pub(crate) fn release(&mut self, mut send: impl FnMut(crate::message::Envelope)) {
        while let Some((id, _)) = self.held.front() {
            if *id > self.durable {
                break;
            }
            if let Some((_, envelope)) = self.held.pop_front() {
                send(envelope);
            }
        }
    }
}
