//! Cluster membership and single-server changes (Raft thesis §4.1, §4.2.1, §4.2.2).
//!
//! The membership is part of the log: a change is an entry carrying the whole new membership,
//! and every node uses the latest membership in its log, committed or not. Voters change by at
//! most one server at a time, one change in flight, and only once the leader has committed an
//! entry of its own term (the fix for the single-server change bug found in 2015). New servers
//! join as learners, which receive the log but never vote, and are promoted once caught up. A
//! leader that removes itself steps down once the removal commits.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::action::Reply;
use crate::log_entry::{Entry, EntryPayload};
use crate::node::Node;
use crate::progress::Progress;
use crate::types::{Incarnation, LogIndex, NodeId, RequestId, Role};

/// The servers of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// Servers whose votes and acknowledgements count toward quorums.
    pub voters: BTreeSet<NodeId>,
    /// Servers that receive the log but do not vote.
    pub learners: BTreeSet<NodeId>,
    /// The incarnation of each voter, once recorded: only that incarnation votes for it. A
    /// voter of the initial cluster is recorded by the first leader that hears from it; a
    /// promoted learner is recorded at its promotion.
    pub incarnations: BTreeMap<NodeId, Incarnation>,
    /// Learners that were voters until they came back with a new incarnation (their state
    /// lost): any leader promotes them again once they have caught up.
    pub returning: BTreeSet<NodeId>,
}

/// One single-server change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipChange {
    /// A new server starts as a learner.
    AddLearner(NodeId),
    /// A learner that has caught up becomes a voter.
    PromoteLearner(NodeId),
    /// A voter or learner leaves.
    Remove(NodeId),
}

/// Why the leader refused a membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeRejection {
    /// Another change is not yet committed, or this leader has not yet committed an entry of its
    /// own term; retry shortly.
    ChangeInProgress,
    /// The server is already a member (for `AddLearner`) or not the right kind of member.
    NotApplicable,
    /// The learner's log is behind the leader's commit index.
    NotCaughtUp,
    /// Removing the last voter would leave the cluster unable to make progress.
    LastVoter,
}

impl Membership {
    #[must_use]
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// The incarnation recorded for voter `id`, if one is.
    #[must_use]
    pub fn incarnation_of(&self, id: NodeId) -> Option<Incarnation> {
        self.incarnations.get(&id).copied()
    }

    /// Whether `incarnation` may speak for `id`: it is the recorded one, or none is recorded
    /// yet (a voter of the initial cluster not yet heard by a leader).
    #[must_use]
    pub fn admits(&self, id: NodeId, incarnation: Incarnation) -> bool {
        self.incarnation_of(id)
            .is_none_or(|recorded| recorded == incarnation)
    }

    #[must_use]
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    #[must_use]
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Voters needed for an election or a commit.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Every member, voters first, in id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// The membership after `change`, or why it does not apply.
    pub fn changed(&self, change: MembershipChange) -> Result<Membership, ChangeRejection> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner(id) => {
                if self.contains(id) || id.0 == 0 {
                    return Err(ChangeRejection::NotApplicable);
                }
                next.learners.insert(id);
            }
            MembershipChange::PromoteLearner(id) => {
                if !next.learners.remove(&id) {
                    return Err(ChangeRejection::NotApplicable);
                }
                next.returning.remove(&id);
                next.voters.insert(id);
            }
            MembershipChange::Remove(id) => {
                if self.voters.len() == 1 && self.voters.contains(&id) {
                    return Err(ChangeRejection::LastVoter);
                }
                if !next.voters.remove(&id) && !next.learners.remove(&id) {
                    return Err(ChangeRejection::NotApplicable);
                }
                next.incarnations.remove(&id);
                next.returning.remove(&id);
            }
        }
        Ok(next)
    }

    /// Voter `id` came back as a new incarnation: it becomes a returning learner, and nothing
    /// is recorded for it until it is promoted again (thesis §4.2.2: the ordinary single-server
    /// changes, remove then add).
    pub(crate) fn with_lost_state(&self, id: NodeId) -> Membership {
        let mut next = self.clone();
        next.voters.remove(&id);
        next.incarnations.remove(&id);
        next.learners.insert(id);
        next.returning.insert(id);
        next
    }
}

impl Node {
    pub(crate) fn on_change_membership(&mut self, request_id: RequestId, change: MembershipChange) {
        if self.role != Role::Leader {
            let leader_hint = self.leader_id;
            self.reply(request_id, Reply::NotLeader { leader_hint });
            return;
        }
        if !self.is_membership_settled() {
            self.reply(
                request_id,
                Reply::ChangeRejected {
                    reason: ChangeRejection::ChangeInProgress,
                },
            );
            return;
        }
        if let MembershipChange::PromoteLearner(id) = change {
            let caught_up = self
                .progress
                .get(&id)
                .is_some_and(|progress| progress.match_index >= self.commit_index);
            if !caught_up && self.membership.learners.contains(&id) {
                self.reply(
                    request_id,
                    Reply::ChangeRejected {
                        reason: ChangeRejection::NotCaughtUp,
                    },
                );
                return;
            }
        }
        match self.membership.changed(change) {
            Ok(mut membership) => {
                if let MembershipChange::PromoteLearner(id) = change {
                    // The incarnation that caught up is the one that votes from now on.
                    if let Some(incarnation) = self.progress.get(&id).and_then(|p| p.incarnation) {
                        membership.incarnations.insert(id, incarnation);
                    }
                }
                self.propose_entry(request_id, EntryPayload::Membership(membership));
            }
            Err(reason) => self.reply(request_id, Reply::ChangeRejected { reason }),
        }
    }

    /// Leader: the latest membership is committed, an entry of this term is committed, and no
    /// transfer is under way, so one more single-server change may start (thesis §4.1, and
    /// the fix of the single-server change bug found in 2015).
    pub(crate) fn is_membership_settled(&self) -> bool {
        self.membership_index <= self.commit_index
            && self.log.term_at(self.commit_index) == Some(self.current_term)
            && self.transfer.is_none()
    }

    /// Adopts the membership an appended entry carries: it takes effect at once (thesis §4.1).
    pub(crate) fn on_membership_appended(&mut self, entry: &Entry) {
        if let EntryPayload::Membership(membership) = &entry.payload {
            self.set_membership(membership.clone(), entry.index);
        }
    }

    /// After a truncation, the latest membership in what is left of the log rules again.
    pub(crate) fn recompute_membership(&mut self) {
        let (membership, index) = self.membership_at(self.log.last_index());
        self.set_membership(membership, index);
    }

    /// The latest membership in the log at or before `index`, and the index that set it.
    pub(crate) fn membership_at(&self, index: LogIndex) -> (Membership, LogIndex) {
        let from_log = self
            .log
            .slice(self.log.first_index(), index)
            .iter()
            .rev()
            .find_map(|entry| match &entry.payload {
                EntryPayload::Membership(membership) => Some((membership.clone(), entry.index)),
                _ => None,
            });
        from_log.unwrap_or_else(|| {
            let snapshot_index = self.log.snapshot_index();
            match &self.snapshot {
                Some(snapshot) => (snapshot.meta.membership.clone(), snapshot_index),
                None => (
                    Membership::new(self.config.voters.iter().copied()),
                    LogIndex::ZERO,
                ),
            }
        })
    }

    pub(crate) fn set_membership(&mut self, membership: Membership, index: LogIndex) {
        self.membership = membership;
        self.membership_index = index;
        if self.role == Role::Leader {
            self.sync_progress_with_membership();
        }
    }

    /// Leader: track every member but itself, keeping what it knows of existing ones.
    pub(crate) fn sync_progress_with_membership(&mut self) {
        let next_index = self.log.last_index().next();
        let members = self.other_members();
        self.progress.retain(|id, _| members.contains(id));
        for id in members {
            self.progress
                .entry(id)
                .or_insert_with(|| Progress::new(next_index));
        }
    }

    /// A leader outside the committed membership has handed over; it steps down (thesis §4.2.2).
    pub(crate) fn maybe_step_down_after_removal(&mut self) {
        let removed = !self.membership.is_voter(self.config.id);
        let keeps_leading = crate::bugs::reintroduced!(self, RemovedLeaderKeepsLeading);
        if self.role == Role::Leader
            && removed
            && self.membership_index <= self.commit_index
            && !keeps_leading
        {
            self.become_follower(self.current_term, None);
        }
    }

    pub(crate) fn other_voters(&self) -> Vec<NodeId> {
        let me = self.config.id;
        self.membership
            .voters
            .iter()
            .copied()
            .filter(|&id| id != me)
            .collect()
    }

    /// Every member but this node, voters first.
    pub(crate) fn other_members(&self) -> Vec<NodeId> {
        let me = self.config.id;
        self.membership.members().filter(|&id| id != me).collect()
    }

    /// Voters among `ids` plus this node when it votes: the size of an acknowledging set.
    pub(crate) fn count_voters<'a>(
        &self,
        ids: impl Iterator<Item = &'a NodeId>,
        include_self: bool,
    ) -> usize {
        let me = self.config.id;
        let others = ids
            .filter(|&&id| id != me && self.counts_as_voter(id))
            .count();
        others + usize::from(include_self && self.membership.is_voter(me))
    }
}
