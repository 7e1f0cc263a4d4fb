//! Linearizable reads by ReadIndex (Raft thesis §6.4): the leader notes its commit index,
//! confirms it is still leader with a heartbeat round answered by a quorum, and releases the read
//! once its state machine has applied through the noted index.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::action::Reply;
use crate::node::Node;
use crate::types::{LogIndex, NodeId, RequestId, Role};

#[derive(Clone, Debug, Default)]
pub(crate) struct ReadQueue {
    /// Increases with every read registered; carried by AppendEntries and echoed back.
    round: u64,
    /// Reads that arrived before this leader committed an entry of its own term: until then it
    /// does not know the commit index of the cluster.
    waiting_for_term_commit: Vec<RequestId>,
    /// Registered reads waiting for a quorum to answer their round, oldest first.
    unconfirmed: VecDeque<PendingRead>,
    /// Confirmed reads waiting for the state machine to reach their index, oldest first.
    confirmed: VecDeque<PendingRead>,
}

#[derive(Clone, Copy, Debug)]
struct PendingRead {
    read_index: LogIndex,
    round: u64,
    request_id: RequestId,
}

impl ReadQueue {
    pub(crate) fn round(&self) -> u64 {
        self.round
    }

    fn len(&self) -> usize {
        self.waiting_for_term_commit.len() + self.unconfirmed.len() + self.confirmed.len()
    }
}

impl Node {
    pub(crate) fn on_read(&mut self, request_id: RequestId) {
        if self.role != Role::Leader {
            let leader_hint = self.leader_id;
            self.reply(request_id, Reply::NotLeader { leader_hint });
            return;
        }
        if self.reads.len() >= self.config.pending_reads_max {
            self.reply(request_id, Reply::Busy);
            return;
        }
        if self.log.term_at(self.commit_index) == Some(self.current_term) {
            self.register_reads(&[request_id]);
        } else {
            self.reads.waiting_for_term_commit.push(request_id);
        }
    }

    /// The leader's first commit in its term fixes the cluster's commit index for waiting reads.
    pub(crate) fn on_current_term_commit(&mut self) {
        if !self.reads.waiting_for_term_commit.is_empty() {
            let waiting = core::mem::take(&mut self.reads.waiting_for_term_commit);
            self.register_reads(&waiting);
        }
    }

    fn register_reads(&mut self, request_ids: &[RequestId]) {
        self.reads.round += 1;
        let round = self.reads.round;
        let read_index = self.commit_index;
        self.reads
            .unconfirmed
            .extend(request_ids.iter().map(|&request_id| PendingRead {
                read_index,
                round,
                request_id,
            }));
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_heartbeat(peer);
        }
        self.maybe_confirm_reads();
    }

    /// Moves reads whose round a quorum (this leader included) has answered to `confirmed`.
    pub(crate) fn maybe_confirm_reads(&mut self) {
        while let Some(read) = self.reads.unconfirmed.front().copied() {
            let acked = self
                .progress
                .iter()
                .filter(|(_, progress)| progress.acked_read_round >= read.round)
                .map(|(id, _)| id);
            if self.count_voters(acked, true) < self.membership.quorum() {
                break;
            }
            self.reads.unconfirmed.pop_front();
            self.reads.confirmed.push_back(read);
        }
    }

    /// Answers confirmed reads the state machine has caught up with (after this step's Apply).
    pub(crate) fn release_ready_reads(&mut self) {
        while let Some(read) = self.reads.confirmed.front().copied() {
            if read.read_index > self.applied_index {
                break;
            }
            self.reads.confirmed.pop_front();
            self.reply(
                read.request_id,
                Reply::ReadReady {
                    index: read.read_index,
                },
            );
        }
    }

    /// A deposed leader can no longer vouch for any read or transfer.
    pub(crate) fn on_leadership_lost(&mut self, leader_hint: Option<NodeId>) {
        self.transfer = None;
        let reads = core::mem::take(&mut self.reads);
        self.reads.round = reads.round;
        let request_ids = reads
            .waiting_for_term_commit
            .into_iter()
            .chain(reads.unconfirmed.into_iter().map(|read| read.request_id))
            .chain(reads.confirmed.into_iter().map(|read| read.request_id));
        for request_id in request_ids {
            self.reply(request_id, Reply::NotLeader { leader_hint });
        }
    }
}
