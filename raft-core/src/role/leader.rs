//! Leader duties: taking office, replication with flow control, the commit rule, proposals.

use alloc::vec::Vec;
use core::ops::Bound;

use crate::action::Reply;
use crate::log_entry::{Entry, EntryPayload};
use crate::message::{AppendEntries, AppendEntriesResponse, AppendResult, ConflictHint, Message};
use crate::node::{Node, Stats};
use crate::progress::ReplicationState;
use crate::quorum::quorum_index;
use crate::types::{LogIndex, NodeId, RequestId, Role, Term};

impl Node {
    /// Takes office: fresh progress for every follower and a no-op entry of the new term, which
    /// lets the leader commit the entries it inherited (Raft §5.4.2, §8).
    /// The first entry is a membership entry instead when it can record incarnations not yet
    /// recorded (this leader's own, and those of the voters that elected it): it changes no
    /// quorum, so it may come before anything of this term commits (`incarnation.rs`).
    pub(crate) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader_id = Some(self.config.id);
        let votes = core::mem::take(&mut self.votes_granted);
        self.self_vote_persist = None;
        self.heartbeat_elapsed_ticks = 0;
        self.check_quorum_elapsed_ticks = 0;
        self.transfer = None;
        let next_index = self.log.last_index().next();
        self.progress.clear();
        self.sync_progress_with_membership();
        for (voter, incarnation) in votes {
            if let Some(progress) = self.progress.get_mut(&voter) {
                progress.incarnation = Some(incarnation);
            }
        }
        let payload = self
            .membership_with_new_records()
            .map_or(EntryPayload::Noop, EntryPayload::Membership);
        self.append_to_log(Entry {
            index: next_index,
            term: self.current_term,
            payload,
        });
        self.broadcast_append();
        self.maybe_advance_commit();
    }

    /// Appends every command that is not refused, then replicates them together.
    pub(crate) fn propose_as_leader(
        &mut self,
        proposals: impl IntoIterator<Item = (RequestId, Vec<u8>)>,
    ) {
        let mut appended = false;
        for (request_id, command) in proposals {
            if self.transfer.is_some() {
                self.reply(request_id, Reply::Busy);
                continue;
            }
            appended |= self.append_proposal(request_id, EntryPayload::Command(command.into()));
        }
        if appended {
            self.broadcast_append();
        }
    }

    /// Appends `payload` as a new entry of this term and starts replicating it; its fate is
    /// reported to `request_id`.
    pub(crate) fn propose_entry(&mut self, request_id: RequestId, payload: EntryPayload) {
        if self.append_proposal(request_id, payload) {
            self.broadcast_append();
        }
    }

    /// Appends `payload` as a new entry of this term, or answers `Busy` (false) when too many
    /// entries are uncommitted.
    fn append_proposal(&mut self, request_id: RequestId, payload: EntryPayload) -> bool {
        let Some((index, term)) = self.append_own_entry(payload) else {
            self.reply(request_id, Reply::Busy);
            return false;
        };
        self.pending_proposals.insert(index, (term, request_id));
        self.reply(request_id, Reply::Accepted { index, term });
        true
    }

    /// Appends `payload` as a new entry of this term (no client waits for it); `None` when too
    /// many entries are uncommitted.
    pub(crate) fn append_own_entry(&mut self, payload: EntryPayload) -> Option<(LogIndex, Term)> {
        let uncommitted = self.log.last_index().0 - self.commit_index.0;
        if uncommitted >= self.config.uncommitted_entries_max as u64 {
            return None;
        }
        let index = self.log.last_index().next();
        let term = self.current_term;
        self.append_to_log(Entry {
            index,
            term,
            payload,
        });
        if let Some((old_term, old_request)) = self.pending_proposals.remove(&index) {
            // A proposal of an earlier term of ours sat at this index until a conflicting
            // leader truncated it. As leader now, with our own new entry here, nothing else can
            // commit at this index (Leader Completeness): its fate is definite.
            self.reply(
                old_request,
                Reply::Dropped {
                    index,
                    term: old_term,
                },
            );
        }
        Some((index, term))
    }

    /// Figure 2, Leaders: send AppendEntries (heartbeats when idle) so followers keep their
    /// election timers from firing; also where lost appends are detected and resent.
    pub(crate) fn on_heartbeat_timeout(&mut self) {
        self.renew_lease();
        self.maybe_reconcile_incarnations();
        let mut next = self.peer_after(None);
        while let Some(peer) = next {
            next = self.peer_after(Some(peer));
            let Some(progress) = self.progress.get_mut(&peer) else {
                continue;
            };
            let stalled = progress.is_stalled_at_heartbeat();
            let heartbeat_only = match progress.state {
                ReplicationState::Probe { .. } => {
                    progress.state = ReplicationState::Probe { paused: false };
                    false
                }
                ReplicationState::Replicate if stalled => {
                    let next_index = progress.match_index.next();
                    progress.become_probe(next_index);
                    false
                }
                ReplicationState::Replicate => true,
                ReplicationState::Snapshot { offset, .. } => {
                    self.send_snapshot_chunk(peer, offset);
                    continue;
                }
            };
            if heartbeat_only {
                self.send_heartbeat(peer);
            } else {
                self.send_append(peer, true);
            }
        }
    }

    /// An empty AppendEntries at the follower's known match point: it always passes the
    /// consistency check, so it never disturbs appends still in flight.
    pub(crate) fn send_heartbeat(&mut self, peer: NodeId) {
        let Some(progress) = self.progress.get(&peer) else {
            return;
        };
        let prev_log_index = progress.match_index;
        let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
            return;
        };
        let request = self.append_request(prev_log_index, prev_log_term, Vec::new());
        self.send_request(peer, Message::AppendEntries(request));
    }

    /// An AppendEntries of this leader now: its commit index, its current read round.
    fn append_request(
        &self,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
    ) -> AppendEntries {
        AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.commit_index,
            read_round: self.reads.round(),
        }
    }

    pub(crate) fn broadcast_append(&mut self) {
        let mut next = self.peer_after(None);
        while let Some(peer) = next {
            self.send_append(peer, false);
            next = self.peer_after(Some(peer));
        }
    }

    /// The tracked peer after `previous` in id order (the first with `None`): walks the peers
    /// while sending to them, without collecting their ids into a Vec on every proposal.
    fn peer_after(&self, previous: Option<NodeId>) -> Option<NodeId> {
        let mut peers = match previous {
            Some(peer) => self
                .progress
                .range((Bound::Excluded(peer), Bound::Unbounded)),
            None => self.progress.range(..),
        };
        peers.next().map(|(&id, _)| id)
    }

    /// Sends AppendEntries to `peer` from its `next_index` until its flow control pauses it or
    /// nothing is left to send. An empty request goes out only when `allow_empty`.
    pub(crate) fn send_append(&mut self, peer: NodeId, allow_empty: bool) {
        let inflight_max = self.config.inflight_appends_max;
        loop {
            let Some(progress) = self.progress.get(&peer) else {
                return;
            };
            if progress.is_paused(inflight_max) {
                return;
            }
            let prev_log_index = progress.next_index.prev();
            let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
                // The entries this follower needs were compacted into the snapshot.
                self.send_snapshot_chunk(peer, 0);
                return;
            };
            let entries = self.entries_for_message(progress.next_index);
            if entries.is_empty() && !allow_empty {
                return;
            }
            let last_index = LogIndex(prev_log_index.0 + entries.len() as u64);
            let carried_entries = !entries.is_empty();
            let request = self.append_request(prev_log_index, prev_log_term, entries);
            self.send_request(peer, Message::AppendEntries(request));
            let Some(progress) = self.progress.get_mut(&peer) else {
                return;
            };
            progress.on_sent(last_index, carried_entries);
            if !carried_entries || progress.state != ReplicationState::Replicate {
                return;
            }
        }
    }

    /// Entries from `next_index` within the per-message count and byte limits (at least one).
    fn entries_for_message(&self, next_index: LogIndex) -> Vec<Entry> {
        let last = LogIndex(
            (next_index.0 + self.config.append_entries_max as u64 - 1).min(self.log.last_index().0),
        );
        let mut bytes = 0;
        let candidates = self.log.slice(next_index, last);
        let mut entries = Vec::with_capacity(candidates.len());
        for entry in candidates {
            bytes += entry.size_bytes();
            if !entries.is_empty() && bytes > self.config.append_bytes_max {
                break;
            }
            entries.push(entry.clone());
        }
        entries
    }

    pub(crate) fn on_append_entries_response(
        &mut self,
        follower: NodeId,
        response: AppendEntriesResponse,
    ) {
        if self.role != Role::Leader {
            return;
        }
        // A StaleTerm answer in this term answers a request of an older term, maybe from before
        // this node restarted and reused its round numbers: its read round confirms nothing.
        let answers_this_term = !matches!(response.result, AppendResult::StaleTerm);
        if let Some(progress) = self.progress.get_mut(&follower) {
            if answers_this_term {
                progress.acked_read_round = progress.acked_read_round.max(response.read_round);
            }
        }
        self.maybe_confirm_reads();
        match response.result {
            AppendResult::Success { match_index } => {
                self.on_append_success(follower, match_index);
            }
            AppendResult::Reject {
                rejected_prev_index,
                hint,
            } => self.on_append_reject(follower, rejected_prev_index, hint),
            // The answer to a request of an older term: nothing to act on.
            AppendResult::StaleTerm => self.stats.messages_ignored += 1,
            AppendResult::Gap {
                log_last_index,
                held_from,
            } => self.on_append_gap(follower, log_last_index, held_from),
        }
    }

    /// The follower holds requests beyond a gap (`early_appends.rs`). In `Replicate`: send
    /// what lies between again, once, and stay there: the held requests follow it, and the
    /// stream goes on from where it is. A follower that guessed wrong (the missing request
    /// was only late) costs the gap's entries sent twice. If the resend is lost too, the
    /// follower's next report or the heartbeat stall detection tries again; if the follower's
    /// log does not match where the resend starts, its reject sends the leader probing. In
    /// `Probe`: the probe itself was held, beyond where the follower's log ends, so probe
    /// from there.
    fn on_append_gap(&mut self, follower: NodeId, log_last_index: LogIndex, held_from: LogIndex) {
        let Some(progress) = self.progress.get_mut(&follower) else {
            return;
        };
        let from = log_last_index.max(progress.match_index).next();
        match progress.state {
            ReplicationState::Probe { .. } if from < progress.next_index => {
                progress.become_probe(from);
                self.send_append(follower, true);
                return;
            }
            ReplicationState::Replicate => {}
            _ => {
                self.stats.messages_ignored += 1;
                return;
            }
        }
        // Never beyond what this leader sent in this stream.
        let to = held_from.min(progress.next_index.prev());
        if from > to {
            self.stats.messages_ignored += 1;
            return;
        }
        if !self.resend(follower, from, to, |stats| &mut stats.gaps_resent) {
            // The follower's log ends before this leader's snapshot: probing leads to it.
            if let Some(progress) = self.progress.get_mut(&follower) {
                progress.become_probe(from);
            }
            self.send_append(follower, true);
        }
    }

    /// Resends the last append in flight to each follower that acknowledged nothing since
    /// `Config::tail_resend_ticks` ago (`Progress::quiet_tail`).
    pub(crate) fn resend_quiet_tails(&mut self) {
        let after = self.config.tail_resend_ticks;
        let mut next = self.peer_after(None);
        while let Some(peer) = next {
            next = self.peer_after(Some(peer));
            let tail = self
                .progress
                .get_mut(&peer)
                .and_then(|progress| progress.quiet_tail(after));
            if let Some((from, to)) = tail {
                // Compacted since it was sent: a quorum had it, and whether this follower
                // needs the snapshot its own answer will tell.
                let _ = self.resend(peer, from, to, |stats| &mut stats.tails_resent);
            }
        }
    }

    /// Sends the entries `from..=to`, sent before and still counted in flight, to `follower`
    /// again, in as many messages as they take, leaving its progress as it is; counts each
    /// message in `counter`. False, with nothing sent, when the log no longer holds where
    /// they start (compacted into the snapshot).
    fn resend(
        &mut self,
        follower: NodeId,
        from: LogIndex,
        to: LogIndex,
        counter: fn(&mut Stats) -> &mut u64,
    ) -> bool {
        if self.log.term_at(from.prev()).is_none() {
            return false;
        }
        let mut from = from;
        while from <= to {
            let prev_log_index = from.prev();
            let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
                return true;
            };
            let mut entries = self.entries_for_message(from);
            entries.truncate(usize::try_from(to.0 - prev_log_index.0).unwrap_or(usize::MAX));
            from = LogIndex(prev_log_index.0 + entries.len() as u64).next();
            let request = self.append_request(prev_log_index, prev_log_term, entries);
            *counter(&mut self.stats) += 1;
            self.send_request(follower, Message::AppendEntries(request));
        }
        true
    }

    fn on_append_success(&mut self, follower: NodeId, match_index: LogIndex) {
        if match_index > self.log.last_index() {
            self.stats.messages_ignored += 1;
            return;
        }
        let Some(progress) = self.progress.get_mut(&follower) else {
            return;
        };
        // Figure 2, Leaders: "If successful: update nextIndex and matchIndex for follower".
        if progress.on_success(match_index) {
            self.maybe_advance_commit();
        }
        self.send_append(follower, false);
        self.maybe_send_timeout_now(follower);
    }

    /// Check-quorum (Raft thesis §6.2): a leader that has not heard from a quorum within an
    /// election timeout steps down, so clients stop waiting on a leader that cannot commit.
    pub(crate) fn on_check_quorum_timeout(&mut self) {
        if !self.config.check_quorum {
            return;
        }
        let active: Vec<NodeId> = self
            .progress
            .iter_mut()
            .filter_map(|(&id, progress)| {
                core::mem::replace(&mut progress.recent_active, false).then_some(id)
            })
            .collect();
        if self.count_voters(active.iter(), true) < self.membership.quorum() {
            self.become_follower(self.current_term, None);
        }
    }

    /// Figure 2, Leaders: "If AppendEntries fails because of log inconsistency: decrement
    /// nextIndex and retry", jumping a whole term at a time with the follower's hint.
    fn on_append_reject(
        &mut self,
        follower: NodeId,
        rejected_prev_index: LogIndex,
        hint: ConflictHint,
    ) {
        let Some(progress) = self.progress.get(&follower) else {
            return;
        };
        // A rejection below the known match point, or of anything but the outstanding probe,
        // answers an older request; one beyond this leader's log answers nothing it sent.
        let is_current = rejected_prev_index > progress.match_index
            && rejected_prev_index <= self.log.last_index()
            && match progress.state {
                ReplicationState::Probe { .. } => rejected_prev_index == progress.next_index.prev(),
                ReplicationState::Replicate => true,
                ReplicationState::Snapshot { .. } => false,
            };
        if !is_current {
            return;
        }
        let hinted_next = match hint.conflict_term {
            Some(term) => self
                .log
                .last_index_of_term(term)
                .map_or(hint.first_index, LogIndex::next),
            None => hint.first_index,
        };
        let next_index = hinted_next
            .min(rejected_prev_index)
            .max(progress.match_index.next());
        if let Some(progress) = self.progress.get_mut(&follower) {
            progress.become_probe(next_index);
        }
        self.send_append(follower, true);
    }

    /// Figure 2, Leaders: "If there exists an N such that N > commitIndex, a majority of
    /// `matchIndex[i] >= N`, and `log[N].term == currentTerm`: set commitIndex = N". The leader's own
    /// match index is what it has made durable. Entries of earlier terms are never committed by
    /// counting replicas (Figure 8); they commit with the first entry of this term.
    pub(crate) fn maybe_advance_commit(&mut self) {
        let me = self.config.id;
        if self.membership.voters.is_empty() {
            return;
        }
        let match_of = |voter: NodeId| {
            if voter == me && crate::bugs::reintroduced!(self, LeaderCountsUndurableSelf) {
                self.log.last_index()
            } else if voter == me {
                self.persist.durable_index()
            } else if self.counts_as_voter(voter) {
                self.progress
                    .get(&voter)
                    .map_or(LogIndex::ZERO, |progress| progress.match_index)
            } else {
                LogIndex::ZERO
            }
        };
        // This runs on every acknowledgement: clusters of usual size sort on the stack.
        const STACK_VOTERS: usize = 9;
        let voters = self.membership.voters.len();
        let candidate = if voters <= STACK_VOTERS {
            let mut match_indexes = [LogIndex::ZERO; STACK_VOTERS];
            for (slot, &voter) in match_indexes.iter_mut().zip(&self.membership.voters) {
                *slot = match_of(voter);
            }
            quorum_index(&mut match_indexes[..voters], self.membership.quorum())
        } else {
            let mut match_indexes: Vec<LogIndex> = self
                .membership
                .voters
                .iter()
                .map(|&v| match_of(v))
                .collect();
            quorum_index(&mut match_indexes, self.membership.quorum())
        };
        let own_term = self.log.term_at(candidate) == Some(self.current_term);
        if candidate > self.commit_index
            && (own_term || crate::bugs::reintroduced!(self, CommitEarlierTerm))
        {
            self.commit_index = candidate;
            self.on_current_term_commit();
            self.maybe_step_down_after_removal();
            self.maybe_reconcile_incarnations();
        }
    }
}
