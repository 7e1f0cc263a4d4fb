//! Servers that lost their durable state (Raft thesis §4.2.2, §11.1): a server's identity is
//! its id and its [`Incarnation`], drawn anew whenever its durable state is lost.
//!
//! Raft's proofs assume a server never forgets what it made durable: a vote it granted, an
//! entry it acknowledged. A server whose disk was wiped or replaced breaks that assumption if
//! it comes back under its old id with an empty log: with one more failure, it and a lagging
//! server form a majority that elects a leader lacking a committed entry. So:
//!
//! 1. Every message carries its sender's incarnation, and the membership records each voter's
//!    incarnation (the first leader to hear a voter of the initial cluster records it; a
//!    promotion records the promoted learner's).
//! 2. A vote counts only from the incarnation the candidate's membership records for that
//!    voter (or any, while none is recorded); acknowledgements count towards a commit, a read
//!    or a lease only from the recorded incarnation too. A server campaigns only while its
//!    membership knows it in its own incarnation: recorded, or, for a member of the initial
//!    cluster (`Config::voters` set), not yet recorded. A new incarnation started with no
//!    voters configured does not vote before its log records some incarnation of it, and its
//!    vote counts only for candidates that know of its promotion.
//! 3. A leader that hears a member answer from a new incarnation forgets everything it learned
//!    from the old one (its progress starts over) and ignores messages from the old one that
//!    arrive later. If the member was a voter recorded with another incarnation, the leader
//!    demotes it to a returning learner (an ordinary single-server change); once it has caught
//!    up, the leader promotes it again, recording the new incarnation.
//!
//! Proof sketch of why no committed entry is lost to a wipe: an entry commits once a quorum
//! acknowledged it; each acknowledging voter was recorded in some incarnation, or was a member
//! of the initial cluster in its first incarnation. A later candidate needs a quorum of votes,
//! which intersects the committing quorum in some voter. If that voter still is the incarnation
//! that acknowledged, it holds the entry and votes only for a log holding it (§5.4.1). If it
//! lost its state, it is a new incarnation, which does not vote until it was promoted again,
//! and it can be promoted only by a leader of the cluster, once it has caught up with that
//! leader's log, which holds the entry (Leader Completeness). What this cannot protect against:
//! a wiped member of the initial cluster restarted as a member of the initial cluster again
//! (with `Config::voters` set) before any leader recorded its first incarnation, in the same
//! window as another failure. Drivers start a server whose state was lost with no voters
//! configured.

use crate::log_entry::EntryPayload;
use crate::membership::Membership;
use crate::node::Node;
use crate::progress::Progress;
use crate::types::{Incarnation, NodeId, Role};

impl Node {
    /// Whether this node, in its incarnation, is the server `membership` knows by its id:
    /// recorded, or, for a member of the initial cluster, not yet recorded.
    pub(crate) fn is_known_in(&self, membership: &Membership) -> bool {
        match membership.incarnation_of(self.config.id) {
            Some(recorded) => recorded == self.config.incarnation,
            None => !self.config.voters.is_empty(),
        }
    }

    /// Whether this node may vote for `candidate` in `incarnation` at all (the log comparison
    /// comes on top): the candidate is not older than the incarnation this node's membership
    /// records (a server campaigns only in an incarnation its own membership knows), and this
    /// node is not a new server that its membership makes a voter nobody recorded (a member of
    /// the initial cluster that lost its state: it cannot tell what it promised). A learner, a
    /// returning server or one recorded in another incarnation votes: its vote counts only for
    /// a candidate whose membership makes this incarnation a voter, which a promotion always
    /// records, that is, one that knows of its promotion, which its own log may not show yet.
    /// Refusing would leave a cluster whose promoted server has not heard of its promotion one
    /// voter short until a leader it cannot help elect tells it.
    pub(crate) fn may_vote_for(&self, candidate: NodeId, incarnation: Incarnation) -> bool {
        let me = self.config.id;
        let lost_initial_member = self.config.voters.is_empty()
            && (!self.membership.contains(me)
                || (self.membership.is_voter(me) && self.membership.incarnation_of(me).is_none()));
        // A candidate newer than the incarnation recorded here may have been re-added since,
        // which this log may not show yet; an older one is a replaced incarnation's late request.
        let not_replaced = self
            .membership
            .incarnation_of(candidate)
            .is_none_or(|recorded| incarnation >= recorded);
        !lost_initial_member && not_replaced
    }

    /// Whether what `id` acknowledged may count towards a quorum: it is a voter, and the
    /// incarnation this node heard it answer from (if any) is the one the membership records.
    /// A replaced incarnation acknowledges from an empty disk: counting it for a commit, a
    /// read or a lease would count a voter that forgot what it promised.
    pub(crate) fn counts_as_voter(&self, id: NodeId) -> bool {
        self.membership.is_voter(id)
            && self
                .progress
                .get(&id)
                .and_then(|progress| progress.incarnation)
                .is_none_or(|heard| self.membership.admits(id, heard))
    }

    /// Leader: what a message from `from`, sent by `incarnation`, says about that member.
    /// False when it comes from an incarnation older than one already heard or recorded (a
    /// late message of a replaced incarnation), so it must be ignored.
    pub(crate) fn on_peer_incarnation(&mut self, from: NodeId, incarnation: Incarnation) -> bool {
        let recorded = self.membership.incarnation_of(from);
        let next_index = self.log.last_index().next();
        let Some(progress) = self.progress.get_mut(&from) else {
            return true;
        };
        let latest = progress.incarnation.max(recorded);
        if latest.is_some_and(|latest| incarnation < latest) {
            return false;
        }
        match progress.incarnation {
            Some(known) if known == incarnation => true,
            Some(_) => {
                // A new incarnation: nothing the old one acknowledged is still true.
                *progress = Progress::new(next_index);
                progress.incarnation = Some(incarnation);
                self.maybe_reconcile_incarnations();
                true
            }
            None => {
                progress.incarnation = Some(incarnation);
                if recorded != Some(incarnation) {
                    self.maybe_reconcile_incarnations();
                }
                true
            }
        }
    }

    /// Leader: one membership change that brings the membership in line with the incarnations
    /// it has heard, when no other change is in flight: demote a voter that came back as a new
    /// incarnation; else promote a returning learner that has caught up; else record the
    /// incarnations of voters not yet recorded.
    pub(crate) fn maybe_reconcile_incarnations(&mut self) {
        if self.role != Role::Leader || !self.is_membership_settled() {
            return;
        }
        let Some(next) = self.reconciled_membership() else {
            return;
        };
        if self
            .append_own_entry(EntryPayload::Membership(next))
            .is_some()
        {
            self.broadcast_append();
        }
    }

    fn reconciled_membership(&self) -> Option<Membership> {
        let membership = &self.membership;
        let heard = |id: NodeId| self.progress.get(&id).and_then(|p| p.incarnation);
        let replaced = membership.voters.iter().copied().find(|&id| {
            id != self.config.id
                && matches!(
                    (membership.incarnation_of(id), heard(id)),
                    (Some(recorded), Some(heard)) if recorded != heard
                )
        });
        if let Some(id) = replaced {
            return Some(membership.with_lost_state(id));
        }
        let caught_up = membership.returning.iter().copied().find(|&id| {
            self.progress.get(&id).is_some_and(|progress| {
                progress.incarnation.is_some() && progress.match_index >= self.commit_index
            })
        });
        if let (Some(id), Some(incarnation)) = (caught_up, caught_up.and_then(heard)) {
            let mut next = membership.clone();
            next.learners.remove(&id);
            next.returning.remove(&id);
            next.voters.insert(id);
            next.incarnations.insert(id, incarnation);
            return Some(next);
        }
        self.membership_with_new_records()
    }

    /// The membership with the incarnations of voters not yet recorded that this leader knows:
    /// its own, and those it heard; `None` when there is nothing new to record.
    pub(crate) fn membership_with_new_records(&self) -> Option<Membership> {
        let membership = &self.membership;
        let heard = |id: NodeId| self.progress.get(&id).and_then(|p| p.incarnation);
        let mut next = membership.clone();
        for &id in &membership.voters {
            if membership.incarnation_of(id).is_some() {
                continue;
            }
            let incarnation = if id == self.config.id {
                Some(self.config.incarnation)
            } else {
                heard(id)
            };
            if let Some(incarnation) = incarnation {
                next.incarnations.insert(id, incarnation);
            }
        }
        (next != *membership).then_some(next)
    }
}
