//! Linearizable reads by ReadIndex (Raft thesis §6.4): the leader notes its commit index,
//! confirms it is still leader with a heartbeat round answered by a quorum, and releases the read
//! once its state machine has applied through the noted index.
//!
//! With `Config::lease_reads`, a leader skips the confirmation round while its lease holds
//! (thesis §6.4.1): a quorum acknowledged messages it sent less than
//! `election_timeout_ticks_min - heartbeat_interval_ticks` ticks ago, and each of those voters
//! ignores vote requests for `election_timeout_ticks_min` ticks after hearing from it (leader
//! stickiness), so no other leader can exist yet. That holds only while ticks run at nearly the
//! same rate on every node: the heartbeat interval subtracted is the allowance for clock drift
//! over one election timeout. A leader that has sent `TimeoutNow` gives up its lease for the rest
//! of its term, since the transfer target's election bypasses stickiness.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::action::Reply;
use crate::node::Node;
use crate::quorum::quorum_index;
use crate::types::{LogIndex, NodeId, RequestId, Role};

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
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
    /// (round, tick it started) for every round recent enough to grant a lease, oldest first.
    round_started: VecDeque<(u64, u64)>,
    /// Set once this leader sent `TimeoutNow`: no lease reads for the rest of its term.
    lease_forfeited: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Reads that arrive together share one confirmation round: a round that starts after all
    /// of them arrived proves leadership for each.
    pub(crate) fn on_reads(&mut self, request_ids: &[RequestId]) {
        if self.role != Role::Leader {
            let leader_hint = self.leader_id;
            for &request_id in request_ids {
                self.reply(request_id, Reply::NotLeader { leader_hint });
            }
            return;
        }
        let room = self
            .config
            .pending_reads_max
            .saturating_sub(self.reads.len());
        let (accepted, refused) = request_ids.split_at(room.min(request_ids.len()));
        for &request_id in refused {
            self.reply(request_id, Reply::Busy);
        }
        let term_committed = self.log.term_at(self.commit_index) == Some(self.current_term);
        if !term_committed && !crate::bugs::reintroduced!(self, ReadWithoutTermCommit) {
            self.reads
                .waiting_for_term_commit
                .extend_from_slice(accepted);
        } else if self.lease_holds() {
            // Later than every read already confirmed, so the queue stays in index order.
            let (read_index, round) = (self.commit_index, self.reads.round);
            self.reads
                .confirmed
                .extend(accepted.iter().map(|&request_id| PendingRead {
                    read_index,
                    round,
                    request_id,
                }));
        } else if !accepted.is_empty() {
            self.register_reads(accepted);
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
        let round = self.start_read_round();
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

    /// A new round, remembered with the tick it started at while it can still grant a lease.
    fn start_read_round(&mut self) -> u64 {
        self.reads.round += 1;
        let round = self.reads.round;
        if self.config.lease_reads {
            let lease = self.lease_ticks();
            while let Some(&(_, started)) = self.reads.round_started.front() {
                if started + lease > self.ticks {
                    break;
                }
                self.reads.round_started.pop_front();
            }
            self.reads.round_started.push_back((round, self.ticks));
        }
        round
    }

    /// With lease reads, every heartbeat starts a round, so acknowledgements keep renewing the
    /// lease.
    pub(crate) fn renew_lease(&mut self) {
        if self.config.lease_reads {
            self.start_read_round();
        }
    }

    /// The leader sent `TimeoutNow`: the target's election ignores leader stickiness.
    pub(crate) fn forfeit_lease(&mut self) {
        self.reads.lease_forfeited = true;
    }

    fn lease_ticks(&self) -> u64 {
        u64::from(
            self.config
                .election_timeout_ticks_min
                .saturating_sub(self.config.heartbeat_interval_ticks),
        )
    }

    /// Whether a quorum of voters acknowledged messages sent recently enough that none of them
    /// can have voted for another leader yet.
    fn lease_holds(&self) -> bool {
        if !self.config.lease_reads || self.reads.lease_forfeited {
            return false;
        }
        let started = &self.reads.round_started;
        // A message carrying round r was sent no earlier than the tick round r started.
        let sent_at = |round: u64| {
            let position = started.partition_point(|&(r, _)| r <= round);
            position
                .checked_sub(1)
                .and_then(|i| started.get(i))
                .map(|&(_, tick)| tick)
        };
        // Per voter, the latest tick it is known to have followed this leader (`None`: never
        // in the rounds still remembered, which orders below every tick).
        let mut proofs: Vec<Option<u64>> = self
            .membership
            .voters
            .iter()
            .map(|&voter| {
                if voter == self.config.id {
                    return Some(self.ticks);
                }
                if !self.counts_as_voter(voter) {
                    return None;
                }
                sent_at(self.progress.get(&voter)?.acked_read_round)
            })
            .collect();
        if proofs.is_empty() {
            return false;
        }
        quorum_index(&mut proofs, self.membership.quorum())
            .is_some_and(|since| self.ticks < since + self.lease_ticks())
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
            let applied = read.read_index <= self.applied_index;
            if !applied && !crate::bugs::reintroduced!(self, ReadBeforeApply) {
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
