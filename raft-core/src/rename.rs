//! Renaming node ids throughout a node's state, its inputs and its outputs, for symmetry
//! reduction in model checking: in a cluster whose servers run the same configuration but
//! for their ids, a state and the same state with the servers' names permuted behave alike,
//! so a checker need only explore one of them.
//!
//! The promise (tested in `tests/rename.rs`): for a one-to-one renaming `r`,
//! `node.renamed(&r).step(input.renamed(&r))` returns `node.step(input)`'s actions renamed,
//! and leaves the renamed node equal to the stepped node renamed. That holds because the
//! core never orders, compares or hashes ids other than for set and map membership, except
//! for the order in which it lists peers (heartbeats go out in id order, say), which changes
//! only the order of `Send` actions, not the set, and the order of messages held for one
//! persist (a candidate's vote requests), which node equality treats as a set for that reason
//! (`fingerprint.rs`).
//!
//! Three things are not names and are kept as they are: the RNG (its seed and position are
//! part of the renamed node, so it draws the same timeouts), request and persist ids, and
//! incarnations (a renamed server keeps its incarnation, so a configuration is symmetric only
//! when every server starts in the same one).
//! Whether the renamed node is the one its new id would have become (a driver that seeds each
//! node's RNG from its id would draw differently) is for the caller to decide: a
//! configuration is symmetric only when every field but `id` is the same on every node.
//!
//! Each renaming destructures every field of the type it renames, so a field added later
//! cannot be forgotten: it must be renamed or listed as holding no ids.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;

use crate::action::{Action, Reply};
use crate::config::Config;
use crate::early_appends::EarlyAppends;
use crate::input::Input;
use crate::log::RaftLog;
use crate::log_entry::{Entry, EntryPayload};
use crate::membership::{Membership, MembershipChange};
use crate::message::{
    AppendEntries, AppendEntriesResponse, Envelope, InstallSnapshot, InstallSnapshotResponse,
    Message, RequestVote, RequestVoteResponse,
};
use crate::node::{Node, StepOutput};
use crate::persist::{
    DurableState, HardState, LogSplice, PersistRequest, PersistTracker, Snapshot, SnapshotMeta,
};
use crate::progress::Progress;
use crate::transfer::Transfer;
use crate::types::{Incarnation, NodeId};

/// A one-to-one renaming of node ids; ids it does not name keep their names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeRenaming {
    /// (from, to) for every id that changes name, sorted by `from`.
    moves: Vec<(NodeId, NodeId)>,
}

/// Why a list of (from, to) pairs is not a one-to-one renaming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenamingError {
    /// Node id 0 means "nobody"; it is never renamed nor a new name.
    ZeroId,
    /// `id` is given two new names.
    RenamedTwice { id: NodeId },
    /// Two ids would end up called `id` (a new name must be one of the ids renamed).
    NotOneToOne { id: NodeId },
}

impl fmt::Display for RenamingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenamingError::ZeroId => f.write_str("node id 0 is reserved and cannot be renamed"),
            RenamingError::RenamedTwice { id } => write!(f, "{id} is given two new names"),
            RenamingError::NotOneToOne { id } => write!(
                f,
                "two ids would be called {id}: every new name must be an id that is renamed too"
            ),
        }
    }
}

impl NodeRenaming {
    /// The renaming that changes nothing.
    #[must_use]
    pub fn identity() -> NodeRenaming {
        NodeRenaming::default()
    }

    /// The renaming that calls each `from` `to`. The ids renamed and their new names must be
    /// the same set, so that no two ids end up with one name.
    pub fn new(
        pairs: impl IntoIterator<Item = (NodeId, NodeId)>,
    ) -> Result<NodeRenaming, RenamingError> {
        let mut sources = BTreeSet::new();
        let mut targets = BTreeSet::new();
        let mut moves = Vec::new();
        for (from, to) in pairs {
            if from.0 == 0 || to.0 == 0 {
                return Err(RenamingError::ZeroId);
            }
            if !sources.insert(from) {
                return Err(RenamingError::RenamedTwice { id: from });
            }
            if !targets.insert(to) {
                return Err(RenamingError::NotOneToOne { id: to });
            }
            if from != to {
                moves.push((from, to));
            }
        }
        if let Some(&id) = targets.difference(&sources).next() {
            return Err(RenamingError::NotOneToOne { id });
        }
        moves.sort_unstable();
        Ok(NodeRenaming { moves })
    }

    #[must_use]
    pub fn is_identity(&self) -> bool {
        self.moves.is_empty()
    }

    /// The new name of `id`.
    #[must_use]
    pub fn id(&self, id: NodeId) -> NodeId {
        match self.moves.binary_search_by_key(&id, |&(from, _)| from) {
            Ok(position) => self.moves[position].1,
            Err(_) => id,
        }
    }

    /// The renaming that undoes this one.
    #[must_use]
    pub fn inverse(&self) -> NodeRenaming {
        let mut moves: Vec<(NodeId, NodeId)> =
            self.moves.iter().map(|&(from, to)| (to, from)).collect();
        moves.sort_unstable();
        NodeRenaming { moves }
    }

    /// This renaming, then `next`.
    #[must_use]
    pub fn then(&self, next: &NodeRenaming) -> NodeRenaming {
        let mut moved: BTreeSet<NodeId> = self.moves.iter().map(|&(from, _)| from).collect();
        moved.extend(next.moves.iter().map(|&(from, _)| from));
        let moves = moved
            .into_iter()
            .map(|id| (id, next.id(self.id(id))))
            .filter(|&(from, to)| from != to)
            .collect();
        NodeRenaming { moves }
    }

    fn ids(&self, ids: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
        ids.iter().map(|&id| self.id(id)).collect()
    }

    /// A map keyed by node id: the keys are renamed, the incarnations are not names.
    fn incarnations(
        &self,
        incarnations: &BTreeMap<NodeId, Incarnation>,
    ) -> BTreeMap<NodeId, Incarnation> {
        incarnations
            .iter()
            .map(|(&id, &incarnation)| (self.id(id), incarnation))
            .collect()
    }

    fn option(&self, id: Option<NodeId>) -> Option<NodeId> {
        id.map(|id| self.id(id))
    }
}

/// A value whose node ids can be renamed.
pub trait Rename {
    /// This value with every node id it holds renamed by `renaming`.
    #[must_use]
    fn renamed(&self, renaming: &NodeRenaming) -> Self;
}

impl Rename for NodeId {
    fn renamed(&self, renaming: &NodeRenaming) -> NodeId {
        renaming.id(*self)
    }
}

impl<T: Rename> Rename for Option<T> {
    fn renamed(&self, renaming: &NodeRenaming) -> Option<T> {
        self.as_ref().map(|value| value.renamed(renaming))
    }
}

impl<T: Rename> Rename for Vec<T> {
    fn renamed(&self, renaming: &NodeRenaming) -> Vec<T> {
        self.iter().map(|value| value.renamed(renaming)).collect()
    }
}

impl Rename for Node {
    fn renamed(&self, r: &NodeRenaming) -> Node {
        let Node {
            config,
            current_term,
            voted_for,
            log,
            membership,
            membership_index,
            snapshot,
            incoming_snapshot,
            early_appends,
            role,
            leader_id,
            commit_index,
            applied_index,
            election_timer,
            heartbeat_elapsed_ticks,
            ticks,
            persist,
            votes_granted,
            self_vote_persist,
            pre_votes_granted,
            progress,
            check_quorum_elapsed_ticks,
            transfer,
            reads,
            pending_proposals,
            stats,
            out,
            bugs,
        } = self;
        Node {
            config: config.renamed(r),
            current_term: *current_term,
            voted_for: r.option(*voted_for),
            log: rename_log(log, r),
            membership: membership.renamed(r),
            membership_index: *membership_index,
            snapshot: snapshot.renamed(r),
            incoming_snapshot: incoming_snapshot.renamed(r),
            early_appends: rename_early_appends(early_appends, r),
            role: *role,
            leader_id: r.option(*leader_id),
            commit_index: *commit_index,
            applied_index: *applied_index,
            // A timeout range and an RNG: no ids.
            election_timer: election_timer.clone(),
            heartbeat_elapsed_ticks: *heartbeat_elapsed_ticks,
            ticks: *ticks,
            persist: rename_persist(persist, r),
            votes_granted: r.incarnations(votes_granted),
            self_vote_persist: *self_vote_persist,
            pre_votes_granted: pre_votes_granted.as_ref().map(|ids| r.ids(ids)),
            progress: rename_progress(progress, r),
            check_quorum_elapsed_ticks: *check_quorum_elapsed_ticks,
            transfer: transfer
                .as_ref()
                .map(|transfer| rename_transfer(transfer, r)),
            // Request ids, rounds and indexes: no ids.
            reads: reads.clone(),
            // Indexes, terms and request ids: no ids.
            pending_proposals: pending_proposals.clone(),
            stats: *stats,
            out: rename_out(out, r),
            bugs: *bugs,
        }
    }
}

fn rename_early_appends(early: &EarlyAppends, r: &NodeRenaming) -> EarlyAppends {
    let EarlyAppends {
        stream,
        held,
        bytes,
        gap_at_last_tick,
        reported,
    } = early;
    EarlyAppends {
        stream: stream.map(|(term, leader)| (term, r.id(leader))),
        held: held
            .iter()
            .map(|(&prev, request)| (prev, rename_append(request, r)))
            .collect(),
        bytes: *bytes,
        gap_at_last_tick: *gap_at_last_tick,
        reported: *reported,
    }
}

fn rename_append(request: &AppendEntries, r: &NodeRenaming) -> AppendEntries {
    let AppendEntries {
        prev_log_index,
        prev_log_term,
        entries,
        leader_commit,
        read_round,
    } = request;
    AppendEntries {
        prev_log_index: *prev_log_index,
        prev_log_term: *prev_log_term,
        entries: entries.renamed(r),
        leader_commit: *leader_commit,
        read_round: *read_round,
    }
}

fn rename_log(log: &RaftLog, r: &NodeRenaming) -> RaftLog {
    let RaftLog {
        snapshot_index,
        snapshot_term,
        entries,
    } = log;
    RaftLog {
        snapshot_index: *snapshot_index,
        snapshot_term: *snapshot_term,
        entries: entries.renamed(r),
    }
}

fn rename_persist(persist: &PersistTracker, r: &NodeRenaming) -> PersistTracker {
    let PersistTracker {
        last_issued,
        durable,
        in_flight,
        durable_index,
        held,
    } = persist;
    PersistTracker {
        last_issued: *last_issued,
        durable: *durable,
        in_flight: in_flight.clone(),
        durable_index: *durable_index,
        held: held
            .iter()
            .map(|(persist_id, envelope)| (*persist_id, envelope.renamed(r)))
            .collect(),
    }
}

fn rename_progress(
    progress: &BTreeMap<NodeId, Progress>,
    r: &NodeRenaming,
) -> BTreeMap<NodeId, Progress> {
    progress
        .iter()
        .map(|(&id, progress)| {
            let Progress {
                match_index,
                next_index,
                state,
                inflight,
                advanced_since_heartbeat,
                inflight_at_last_heartbeat,
                quiet_ticks,
                tail_resent,
                recent_active,
                acked_read_round,
                incarnation,
            } = progress;
            let progress = Progress {
                match_index: *match_index,
                next_index: *next_index,
                state: *state,
                inflight: inflight.clone(),
                advanced_since_heartbeat: *advanced_since_heartbeat,
                inflight_at_last_heartbeat: *inflight_at_last_heartbeat,
                quiet_ticks: *quiet_ticks,
                tail_resent: *tail_resent,
                recent_active: *recent_active,
                acked_read_round: *acked_read_round,
                incarnation: *incarnation,
            };
            (r.id(id), progress)
        })
        .collect()
}

fn rename_transfer(transfer: &Transfer, r: &NodeRenaming) -> Transfer {
    let Transfer { to, elapsed_ticks } = transfer;
    Transfer {
        to: r.id(*to),
        elapsed_ticks: *elapsed_ticks,
    }
}

fn rename_out(out: &StepOutput, r: &NodeRenaming) -> StepOutput {
    let StepOutput {
        hard_state_dirty,
        snapshot_to_persist,
        snapshot_to_apply,
        unstable_from,
        requests,
        responses,
        replies,
    } = out;
    StepOutput {
        hard_state_dirty: *hard_state_dirty,
        snapshot_to_persist: snapshot_to_persist.renamed(r),
        snapshot_to_apply: snapshot_to_apply.renamed(r),
        unstable_from: *unstable_from,
        requests: requests.renamed(r),
        responses: responses.renamed(r),
        replies: replies
            .iter()
            .map(|(request_id, reply)| (*request_id, reply.renamed(r)))
            .collect(),
    }
}

impl Rename for Config {
    fn renamed(&self, r: &NodeRenaming) -> Config {
        let Config {
            id,
            voters,
            heartbeat_interval_ticks,
            election_timeout_ticks_min,
            election_timeout_ticks_max,
            rng_seed,
            incarnation,
            append_entries_max,
            append_bytes_max,
            inflight_appends_max,
            early_appends_max,
            early_appends_bytes_max,
            early_appends_gap_report_at,
            tail_resend_ticks,
            uncommitted_entries_max,
            pre_vote,
            check_quorum,
            lease_reads,
            pending_reads_max,
            snapshot_chunk_bytes_max,
            snapshot_bytes_max,
        } = self;
        Config {
            id: r.id(*id),
            voters: r.ids(voters),
            heartbeat_interval_ticks: *heartbeat_interval_ticks,
            election_timeout_ticks_min: *election_timeout_ticks_min,
            election_timeout_ticks_max: *election_timeout_ticks_max,
            // The RNG is behaviour, not a name (see the module documentation).
            rng_seed: *rng_seed,
            // An incarnation is not a name: renaming a node keeps it, so a configuration is
            // symmetric only when every node starts in the same incarnation.
            incarnation: *incarnation,
            append_entries_max: *append_entries_max,
            append_bytes_max: *append_bytes_max,
            inflight_appends_max: *inflight_appends_max,
            early_appends_max: *early_appends_max,
            early_appends_bytes_max: *early_appends_bytes_max,
            early_appends_gap_report_at: *early_appends_gap_report_at,
            tail_resend_ticks: *tail_resend_ticks,
            uncommitted_entries_max: *uncommitted_entries_max,
            pre_vote: *pre_vote,
            check_quorum: *check_quorum,
            lease_reads: *lease_reads,
            pending_reads_max: *pending_reads_max,
            snapshot_chunk_bytes_max: *snapshot_chunk_bytes_max,
            snapshot_bytes_max: *snapshot_bytes_max,
        }
    }
}

impl Rename for Membership {
    fn renamed(&self, r: &NodeRenaming) -> Membership {
        let Membership {
            voters,
            learners,
            incarnations,
            returning,
        } = self;
        Membership {
            voters: r.ids(voters),
            learners: r.ids(learners),
            incarnations: r.incarnations(incarnations),
            returning: r.ids(returning),
        }
    }
}

impl Rename for MembershipChange {
    fn renamed(&self, r: &NodeRenaming) -> MembershipChange {
        match *self {
            MembershipChange::AddLearner(id) => MembershipChange::AddLearner(r.id(id)),
            MembershipChange::PromoteLearner(id) => MembershipChange::PromoteLearner(r.id(id)),
            MembershipChange::Remove(id) => MembershipChange::Remove(r.id(id)),
        }
    }
}

impl Rename for Entry {
    fn renamed(&self, r: &NodeRenaming) -> Entry {
        let Entry {
            index,
            term,
            payload,
        } = self;
        let payload = match payload {
            EntryPayload::Noop => EntryPayload::Noop,
            EntryPayload::Command(bytes) => EntryPayload::Command(bytes.clone()),
            EntryPayload::Membership(membership) => EntryPayload::Membership(membership.renamed(r)),
        };
        Entry {
            index: *index,
            term: *term,
            payload,
        }
    }
}

impl Rename for HardState {
    fn renamed(&self, r: &NodeRenaming) -> HardState {
        let HardState {
            current_term,
            voted_for,
        } = self;
        HardState {
            current_term: *current_term,
            voted_for: r.option(*voted_for),
        }
    }
}

impl Rename for SnapshotMeta {
    fn renamed(&self, r: &NodeRenaming) -> SnapshotMeta {
        let SnapshotMeta {
            last_included_index,
            last_included_term,
            membership,
        } = self;
        SnapshotMeta {
            last_included_index: *last_included_index,
            last_included_term: *last_included_term,
            membership: membership.renamed(r),
        }
    }
}

impl Rename for Snapshot {
    /// The state machine's data is the application's: it is kept as it is.
    fn renamed(&self, r: &NodeRenaming) -> Snapshot {
        let Snapshot { meta, data } = self;
        Snapshot {
            meta: meta.renamed(r),
            data: data.clone(),
        }
    }
}

impl Rename for LogSplice {
    fn renamed(&self, r: &NodeRenaming) -> LogSplice {
        let LogSplice { from, entries } = self;
        LogSplice {
            from: *from,
            entries: entries.renamed(r),
        }
    }
}

impl Rename for PersistRequest {
    fn renamed(&self, r: &NodeRenaming) -> PersistRequest {
        let PersistRequest {
            persist_id,
            hard_state,
            snapshot,
            log,
        } = self;
        PersistRequest {
            persist_id: *persist_id,
            hard_state: hard_state.renamed(r),
            snapshot: snapshot.renamed(r),
            log: log.renamed(r),
        }
    }
}

impl Rename for DurableState {
    fn renamed(&self, r: &NodeRenaming) -> DurableState {
        let DurableState {
            hard_state,
            snapshot,
            entries,
        } = self;
        DurableState {
            hard_state: hard_state.renamed(r),
            snapshot: snapshot.renamed(r),
            entries: entries.renamed(r),
        }
    }
}

impl Rename for Envelope {
    fn renamed(&self, r: &NodeRenaming) -> Envelope {
        let Envelope {
            from,
            to,
            term,
            incarnation,
            message,
        } = self;
        Envelope {
            from: r.id(*from),
            to: r.id(*to),
            term: *term,
            incarnation: *incarnation,
            message: message.renamed(r),
        }
    }
}

impl Rename for Message {
    fn renamed(&self, r: &NodeRenaming) -> Message {
        match self {
            Message::RequestVote(request) => Message::RequestVote(rename_vote_request(request)),
            Message::PreVote(request) => Message::PreVote(rename_vote_request(request)),
            Message::RequestVoteResponse(response) => {
                Message::RequestVoteResponse(rename_vote_response(response))
            }
            Message::PreVoteResponse(response) => {
                Message::PreVoteResponse(rename_vote_response(response))
            }
            Message::AppendEntries(request) => Message::AppendEntries(rename_append(request, r)),
            Message::AppendEntriesResponse(response) => {
                // Indexes, terms and a round: no ids.
                let AppendEntriesResponse { read_round, result } = response;
                Message::AppendEntriesResponse(AppendEntriesResponse {
                    read_round: *read_round,
                    result: result.clone(),
                })
            }
            Message::TimeoutNow => Message::TimeoutNow,
            Message::InstallSnapshot(request) => {
                let InstallSnapshot {
                    meta,
                    total_bytes,
                    offset,
                    data,
                } = request;
                Message::InstallSnapshot(InstallSnapshot {
                    meta: meta.renamed(r),
                    total_bytes: *total_bytes,
                    offset: *offset,
                    data: data.clone(),
                })
            }
            Message::InstallSnapshotResponse(response) => {
                let InstallSnapshotResponse {
                    last_included_index,
                    received_bytes,
                    installed,
                } = response;
                Message::InstallSnapshotResponse(InstallSnapshotResponse {
                    last_included_index: *last_included_index,
                    received_bytes: *received_bytes,
                    installed: *installed,
                })
            }
        }
    }
}

fn rename_vote_request(request: &RequestVote) -> RequestVote {
    let RequestVote {
        last_log_index,
        last_log_term,
        leadership_transfer,
    } = request;
    RequestVote {
        last_log_index: *last_log_index,
        last_log_term: *last_log_term,
        leadership_transfer: *leadership_transfer,
    }
}

fn rename_vote_response(response: &RequestVoteResponse) -> RequestVoteResponse {
    let RequestVoteResponse { vote_granted } = response;
    RequestVoteResponse {
        vote_granted: *vote_granted,
    }
}

impl Rename for Reply {
    fn renamed(&self, r: &NodeRenaming) -> Reply {
        match self {
            Reply::NotLeader { leader_hint } => Reply::NotLeader {
                leader_hint: r.option(*leader_hint),
            },
            Reply::Accepted { .. }
            | Reply::Committed { .. }
            | Reply::Busy
            | Reply::ChangeRejected { .. }
            | Reply::ReadReady { .. }
            | Reply::Dropped { .. }
            | Reply::Unknown { .. } => self.clone(),
        }
    }
}

impl Rename for Action {
    fn renamed(&self, r: &NodeRenaming) -> Action {
        match self {
            Action::Persist(request) => Action::Persist(request.renamed(r)),
            Action::Send(envelope) => Action::Send(envelope.renamed(r)),
            Action::Apply { entries } => Action::Apply {
                entries: entries.renamed(r),
            },
            Action::ApplySnapshot { snapshot } => Action::ApplySnapshot {
                snapshot: snapshot.renamed(r),
            },
            Action::Reply { request_id, reply } => Action::Reply {
                request_id: *request_id,
                reply: reply.renamed(r),
            },
        }
    }
}

impl Rename for Input {
    fn renamed(&self, r: &NodeRenaming) -> Input {
        match self {
            Input::Receive(envelope) => Input::Receive(envelope.renamed(r)),
            Input::TransferLeader { to } => Input::TransferLeader { to: r.id(*to) },
            Input::ChangeMembership { request_id, change } => Input::ChangeMembership {
                request_id: *request_id,
                change: change.renamed(r),
            },
            Input::Tick
            | Input::Propose { .. }
            | Input::ProposeBatch { .. }
            | Input::PersistDone { .. }
            | Input::Read { .. }
            | Input::ReadBatch { .. }
            | Input::Compact { .. } => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renaming(pairs: &[(u64, u64)]) -> Result<NodeRenaming, RenamingError> {
        NodeRenaming::new(pairs.iter().map(|&(a, b)| (NodeId(a), NodeId(b))))
    }

    #[test]
    fn a_renaming_must_be_one_to_one() {
        assert_eq!(
            renaming(&[(1, 2), (1, 3)]),
            Err(RenamingError::RenamedTwice { id: NodeId(1) })
        );
        assert_eq!(
            renaming(&[(1, 3), (2, 3)]),
            Err(RenamingError::NotOneToOne { id: NodeId(3) })
        );
        // 2 keeps its name, so 1 cannot take it.
        assert_eq!(
            renaming(&[(1, 2)]),
            Err(RenamingError::NotOneToOne { id: NodeId(2) })
        );
        assert_eq!(renaming(&[(0, 1), (1, 0)]), Err(RenamingError::ZeroId));
        assert!(renaming(&[(1, 1)]).expect("valid").is_identity());
    }

    #[test]
    fn renamings_compose_and_invert() {
        let rotate = renaming(&[(1, 2), (2, 3), (3, 1)]).expect("valid");
        let swap = renaming(&[(1, 2), (2, 1)]).expect("valid");
        assert_eq!(rotate.id(NodeId(3)), NodeId(1));
        assert_eq!(rotate.id(NodeId(7)), NodeId(7));
        assert!(rotate.then(&rotate.inverse()).is_identity());
        let both = rotate.then(&swap);
        for id in 1..=4 {
            let id = NodeId(id);
            assert_eq!(both.id(id), swap.id(rotate.id(id)));
            assert_eq!(both.inverse().id(both.id(id)), id);
        }
    }

    #[test]
    fn every_id_of_a_node_is_renamed() {
        let swap = renaming(&[(1, 2), (2, 1)]).expect("valid");
        let mut config = Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        config.pre_vote = false;
        let mut node = Node::new(config).expect("valid");
        node.voted_for = Some(NodeId(1));
        node.leader_id = Some(NodeId(3));
        node.votes_granted.insert(NodeId(2), Incarnation(0));
        node.membership
            .incarnations
            .insert(NodeId(2), Incarnation(4));
        node.membership.returning.insert(NodeId(3));
        node.progress
            .insert(NodeId(2), Progress::new(crate::types::LogIndex(1)));
        node.transfer = Some(Transfer {
            to: NodeId(2),
            elapsed_ticks: 1,
        });
        let renamed = node.renamed(&swap);
        assert_eq!(renamed.config.id, NodeId(2));
        assert_eq!(renamed.voted_for, Some(NodeId(2)));
        assert_eq!(renamed.leader_id, Some(NodeId(3)));
        assert!(renamed.votes_granted.contains_key(&NodeId(1)));
        assert_eq!(
            renamed.membership.incarnation_of(NodeId(1)),
            Some(Incarnation(4))
        );
        assert!(renamed.membership.returning.contains(&NodeId(3)));
        assert!(renamed.progress.contains_key(&NodeId(1)));
        assert_eq!(renamed.transfer.as_ref().map(|t| t.to), Some(NodeId(1)));
        assert_ne!(renamed, node);
        assert_eq!(renamed.renamed(&swap), node);
    }
}
