//! Elections (Raft §5.2): pre-votes, becoming a candidate, counting votes, granting votes.

use alloc::collections::BTreeSet;

use crate::bugs::reintroduced;
use crate::message::{Message, RequestVote, RequestVoteResponse};
use crate::node::Node;
use crate::types::{Incarnation, NodeId, Role, Term};

impl Node {
    /// Figure 2, Followers/Candidates: "If election timeout elapses without receiving
    /// AppendEntries RPC from current leader or granting vote to candidate: convert to
    /// candidate" — after a successful pre-vote round when pre-votes are on.
    pub(crate) fn on_election_timeout(&mut self) {
        if !self.may_campaign() {
            // Learners, servers outside the membership and incarnations the membership does not
            // know (a server that lost its state, until re-added) never campaign.
            self.election_timer.reset();
            return;
        }
        if self.role == Role::Candidate && self.is_own_vote_pending() {
            // It can win only once its vote is durable (contract rule 4), and a new election
            // would only start another write its disk is no quicker to finish, and depose
            // whichever leader the others elect meanwhile: a node whose disk is slower than its
            // election timeout would keep the cluster without a leader.
            self.election_timer.reset();
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    /// A leader asked this node to take over: campaign at once, skipping the pre-vote.
    pub(crate) fn on_timeout_now(&mut self) {
        if self.role != Role::Leader && self.may_campaign() {
            self.become_candidate(true);
        }
    }

    /// A voter campaigns; so does a voter that an entry not yet committed removes (Raft thesis
    /// §4.2.2: it "might still be needed until the Cnew entry is committed"). Its campaign counts
    /// the votes of the new membership, which leaves it out. Were it to stop at once, a leader
    /// that appended its own removal and lost office before it committed could leave nobody
    /// electable: the others may all lack a quorum of the new membership that grants them.
    /// Either way, only in the incarnation that membership knows (`incarnation.rs`).
    pub(crate) fn may_campaign(&self) -> bool {
        let me = self.config.id;
        if self.membership.is_voter(me) {
            return self.is_known_in(&self.membership);
        }
        // The entry that removed this node is the oldest of the latest memberships that leave
        // it out: the ones after it only record incarnations or change other servers.
        let mut removed_at = self.membership_index;
        while removed_at > self.commit_index {
            let (before, index) = self.membership_at(removed_at.prev());
            if before.is_voter(me) {
                return self.is_known_in(&before);
            }
            removed_at = index;
        }
        false
    }

    /// Asks every voter whether it would vote for this node in the next term, without changing
    /// this node's term or vote, so a node that cannot win cannot disrupt the cluster.
    fn become_pre_candidate(&mut self) {
        self.role = Role::Follower;
        self.leader_id = None;
        if !reintroduced!(self, EarlyAppendsOutliveTheirTerm) {
            self.early_appends.clear();
        }
        self.votes_granted.clear();
        self.self_vote_persist = None;
        self.pre_votes_granted = Some(BTreeSet::new());
        self.election_timer.reset();
        let request = self.vote_request(false);
        let term = self.current_term.next();
        for peer in self.other_voters() {
            let mut envelope = self.envelope(peer, Message::PreVote(request.clone()));
            envelope.term = term;
            self.push_request(envelope);
        }
        self.maybe_finish_pre_vote();
    }

    /// Figure 2, Candidates: increment currentTerm, vote for self, reset election timer, send
    /// RequestVote to all other servers. The own vote counts once it is durable.
    pub(crate) fn become_candidate(&mut self, leadership_transfer: bool) {
        self.current_term = self.current_term.next();
        self.voted_for = Some(self.config.id);
        self.mark_hard_state_dirty();
        self.role = Role::Candidate;
        self.leader_id = None;
        if !reintroduced!(self, EarlyAppendsOutliveTheirTerm) {
            self.early_appends.clear();
        }
        self.votes_granted.clear();
        self.pre_votes_granted = None;
        self.self_vote_persist = Some(self.next_persist_id());
        self.progress.clear();
        self.election_timer.reset();
        self.stats.elections_started += 1;
        let request = self.vote_request(leadership_transfer);
        // The requests wait for this node's new term and vote to be durable (contract rule 3).
        // Sent at once, they could be answered to a campaign a crash then forgets: restarted
        // in the older term, the node could campaign for the same term again with another
        // log, and a late grant to the first campaign would count for the second.
        let at_once = reintroduced!(self, VoteRequestBeforeDurableTerm | LeadBeforeDurableVote);
        // Learners' votes count for nothing, but each hears the term: a learner here may be a
        // voter again in its own, newer log (a returning server re-added), and one that never
        // learned this node's terms would campaign a term behind it at every election, always
        // for a term this node has already voted in (seed 102895 of 3 nodes).
        for peer in self.other_members() {
            let message = Message::RequestVote(request.clone());
            if at_once {
                self.send_request(peer, message);
            } else {
                self.send_when_durable(peer, message);
            }
        }
    }

    fn vote_request(&self, leadership_transfer: bool) -> RequestVote {
        RequestVote {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            leadership_transfer,
        }
    }

    /// Figure 2, RequestVote receiver: grant if votedFor is null or candidateId, and the
    /// candidate's log is at least as up-to-date as the receiver's (§5.4.1) — and only while
    /// both are the incarnations this node's membership knows (`incarnation.rs`).
    pub(crate) fn on_request_vote(
        &mut self,
        candidate: NodeId,
        incarnation: Incarnation,
        request: &RequestVote,
    ) {
        let can_vote = self.voted_for.is_none_or(|voted| voted == candidate)
            && self.may_vote_for(candidate, incarnation);
        let vote_granted = can_vote
            && (self
                .log
                .is_up_to_date(request.last_log_index, request.last_log_term)
                || reintroduced!(self, VoteForStaleLog));
        if vote_granted && self.voted_for.is_none() {
            self.voted_for = Some(candidate);
            self.mark_hard_state_dirty();
        }
        if vote_granted {
            self.election_timer.reset();
        }
        let response = Message::RequestVoteResponse(RequestVoteResponse { vote_granted });
        if reintroduced!(self, VoteBeforeDurable) {
            self.send_request(candidate, response);
        } else {
            self.respond(candidate, response);
        }
    }

    /// A pre-vote is granted when its term is above ours and the candidate's log is at least
    /// as up-to-date; it changes nothing here. (Leader stickiness was checked by the caller.)
    pub(crate) fn on_pre_vote(
        &mut self,
        candidate: NodeId,
        incarnation: Incarnation,
        term: Term,
        request: &RequestVote,
    ) {
        let vote_granted = term > self.current_term
            && self.may_vote_for(candidate, incarnation)
            && self
                .log
                .is_up_to_date(request.last_log_index, request.last_log_term);
        let mut envelope = self.envelope(
            candidate,
            Message::PreVoteResponse(RequestVoteResponse { vote_granted }),
        );
        if vote_granted {
            envelope.term = term;
        }
        self.push_response(envelope);
    }

    pub(crate) fn on_pre_vote_response(
        &mut self,
        voter: NodeId,
        incarnation: Incarnation,
        term: Term,
        response: RequestVoteResponse,
    ) {
        if response.vote_granted && !self.membership.admits(voter, incarnation) {
            // A grant from an incarnation other than the recorded one speaks for nobody.
            self.stats.messages_ignored += 1;
        } else if response.vote_granted {
            if term == self.current_term.next() {
                if let Some(granted) = &mut self.pre_votes_granted {
                    granted.insert(voter);
                    self.maybe_finish_pre_vote();
                }
            }
        } else if term > self.current_term {
            self.become_follower(term, None);
        }
    }

    fn maybe_finish_pre_vote(&mut self) {
        let Some(granted) = &self.pre_votes_granted else {
            return;
        };
        if self.count_voters(granted.iter(), true) >= self.membership.quorum() {
            self.become_candidate(false);
        }
    }

    pub(crate) fn on_request_vote_response(
        &mut self,
        voter: NodeId,
        incarnation: Incarnation,
        response: RequestVoteResponse,
    ) {
        if self.role != Role::Candidate {
            return;
        }
        if !self.membership.admits(voter, incarnation) {
            self.stats.messages_ignored += 1;
            return;
        }
        if response.vote_granted {
            self.votes_granted.insert(voter, incarnation);
            self.maybe_win_election();
        }
    }

    /// A candidate whose write of its own term and vote is not durable yet.
    fn is_own_vote_pending(&self) -> bool {
        self.self_vote_persist
            .is_none_or(|persist_id| persist_id > self.persist.durable())
    }

    /// Figure 2, Candidates: "If votes received from majority of servers: become leader" —
    /// once this node's own term and vote are durable (contract rule 4). Peer votes alone are
    /// not enough: a leader that crashed before its term reached its disk would restart in the
    /// old term, campaign for the same term again, and could win it a second time (a voter
    /// that granted it grants it again) with a different log, so two different entries would
    /// commit at one index. The votes granted meanwhile are kept and counted when the persist
    /// completes (`on_persist_done`).
    pub(crate) fn maybe_win_election(&mut self) {
        let self_vote_durable = !self.is_own_vote_pending();
        if !self_vote_durable && !reintroduced!(self, LeadBeforeDurableVote) {
            return;
        }
        let votes = self.count_voters(self.votes_granted.keys(), self_vote_durable);
        if votes >= self.membership.quorum() {
            self.become_leader();
        }
    }
}
