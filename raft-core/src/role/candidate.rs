//! Elections (Raft §5.2): becoming a candidate, counting votes, and granting votes.

use crate::message::{Message, RequestVote, RequestVoteResponse};
use crate::node::Node;
use crate::types::{NodeId, Role};

impl Node {
    /// Figure 2, Followers/Candidates: "If election timeout elapses without receiving
    /// AppendEntries RPC from current leader or granting vote to candidate: convert to candidate".
    pub(crate) fn on_election_timeout(&mut self) {
        self.become_candidate();
    }

    /// Figure 2, Candidates: increment currentTerm, vote for self, reset election timer, send
    /// RequestVote to all other servers. The own vote counts once it is durable.
    fn become_candidate(&mut self) {
        self.current_term = self.current_term.next();
        self.voted_for = Some(self.config.id);
        self.mark_hard_state_dirty();
        self.role = Role::Candidate;
        self.leader_id = None;
        self.votes_granted.clear();
        self.self_vote_persist = Some(self.next_persist_id());
        self.progress.clear();
        self.election_timer.reset();
        self.stats.elections_started += 1;
        let request = RequestVote {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
        };
        for peer in self.other_voters() {
            self.send_request(peer, Message::RequestVote(request.clone()));
        }
    }

    /// Figure 2, RequestVote receiver: grant if votedFor is null or candidateId, and the
    /// candidate's log is at least as up-to-date as the receiver's (§5.4.1).
    pub(crate) fn on_request_vote(&mut self, candidate: NodeId, request: &RequestVote) {
        let can_vote = self.voted_for.is_none_or(|voted| voted == candidate);
        let vote_granted = can_vote
            && self
                .log
                .is_up_to_date(request.last_log_index, request.last_log_term);
        if vote_granted && self.voted_for.is_none() {
            self.voted_for = Some(candidate);
            self.mark_hard_state_dirty();
        }
        if vote_granted {
            self.election_timer.reset();
        }
        self.respond(
            candidate,
            Message::RequestVoteResponse(RequestVoteResponse { vote_granted }),
        );
    }

    pub(crate) fn on_request_vote_response(
        &mut self,
        voter: NodeId,
        response: RequestVoteResponse,
    ) {
        if self.role != Role::Candidate {
            return;
        }
        if response.vote_granted {
            self.votes_granted.insert(voter);
            self.maybe_win_election();
        }
    }

    /// Figure 2, Candidates: "If votes received from majority of servers: become leader".
    pub(crate) fn maybe_win_election(&mut self) {
        let self_vote_durable = self
            .self_vote_persist
            .is_some_and(|persist_id| persist_id <= self.persist.durable());
        let votes = self.votes_granted.len() + usize::from(self_vote_durable);
        if votes >= self.config.quorum() {
            self.become_leader();
        }
    }
}
