//! The AppendEntries receiver (Figure 2).

use alloc::vec::Vec;

use crate::early_appends::{Held, Limits};
use crate::log_entry::Entry;
use crate::message::{AppendEntries, AppendEntriesResponse, AppendResult, ConflictHint, Message};
use crate::node::Node;
use crate::types::{LogIndex, NodeId, Role};

impl Node {
    /// A current-term message only a leader sends (AppendEntries, InstallSnapshot) arrived:
    /// follow its sender and restart the election timer. False when this node leads itself.
    pub(crate) fn accept_leader(&mut self, leader: NodeId) -> bool {
        if self.role == Role::Leader {
            // Two leaders in one term cannot happen (Election Safety); only a forged or
            // corrupted message gets here.
            self.stats.messages_ignored += 1;
            return false;
        }
        if self.role == Role::Candidate || self.leader_id != Some(leader) {
            // Figure 2, Candidates: "If AppendEntries RPC received from new leader: convert to
            // follower".
            self.become_follower(self.current_term, Some(leader));
        }
        self.election_timer.reset();
        true
    }

    pub(crate) fn on_append_entries(&mut self, leader: NodeId, request: AppendEntries) {
        if !self.accept_leader(leader) {
            return;
        }
        self.handle_append(leader, request);
        // Requests that arrived early and now follow on from the log are handled as if they
        // arrived now (`early_appends.rs`).
        loop {
            let (term, leader_id) = match self.early_appends.stream {
                Some((term, held_from))
                    if crate::bugs::reintroduced!(self, EarlyAppendsOutliveTheirTerm) =>
                {
                    (term, Some(held_from))
                }
                _ => (self.current_term, self.leader_id),
            };
            let last_index = self.log.last_index();
            let Some(request) = self.early_appends.take_ready(term, leader_id, last_index) else {
                break;
            };
            self.handle_append(leader, request);
        }
        // A leader stops after `inflight_appends_max` unacknowledged appends: once the rest of
        // its window is held, nothing more comes, and waiting only stalls the stream.
        let report_at = self
            .config
            .early_appends_gap_report_at
            .min(self.config.inflight_appends_max.saturating_sub(1));
        if self
            .early_appends
            .is_gap_crowded(self.log.last_index(), report_at)
        {
            self.report_append_gap(leader);
        }
    }

    /// Tells the leader of the gap before the requests held when it has lasted a whole tick
    /// (`early_appends.rs`).
    pub(crate) fn maybe_report_append_gap(&mut self) {
        if self.early_appends.is_gap_lasting(self.log.last_index()) {
            if let Some(leader) = self.leader_id {
                self.report_append_gap(leader);
            }
        }
    }

    /// Tells `leader` where this log ends and where the requests held start, so it sends
    /// again what lies between and nothing more.
    fn report_append_gap(&mut self, leader: NodeId) {
        let Some((held_from, read_round)) = self.early_appends.gap_end() else {
            return;
        };
        self.respond(
            leader,
            Message::AppendEntriesResponse(AppendEntriesResponse {
                read_round,
                result: AppendResult::Gap {
                    log_last_index: self.log.last_index(),
                    held_from,
                },
            }),
        );
    }

    /// Figure 2's AppendEntries receiver, for a request from the current leader.
    fn handle_append(&mut self, leader: NodeId, mut request: AppendEntries) {
        if !self.skip_compacted_entries(&mut request) {
            self.stats.messages_ignored += 1;
            return;
        }

        let prev = request.prev_log_index;
        // Figure 2, receiver rule 2: reply false if the log doesn't contain an entry at
        // prevLogIndex whose term matches prevLogTerm.
        match self.log.term_at(prev) {
            None => {
                // The log ends before `prev`: the requests in between may still be on their way.
                let limits = Limits {
                    count_max: self.config.early_appends_max,
                    bytes_max: self.config.early_appends_bytes_max,
                };
                let request =
                    match self
                        .early_appends
                        .hold(self.current_term, leader, request, limits)
                    {
                        Ok(Held::New) => {
                            self.stats.early_appends_held += 1;
                            return;
                        }
                        // The leader resends what it does not know arrived: it has not heard of
                        // the gap before it (the report was lost, or it probes from there).
                        Ok(Held::Again) => {
                            self.report_append_gap(leader);
                            return;
                        }
                        Err(request) => request,
                    };
                let hint = ConflictHint {
                    conflict_term: None,
                    first_index: self.log.last_index().next(),
                };
                self.reject_append(leader, request.read_round, prev, hint);
                return;
            }
            Some(term)
                if term != request.prev_log_term
                    && !crate::bugs::reintroduced!(self, AppendIgnoresPrevLogTerm) =>
            {
                let hint = ConflictHint {
                    conflict_term: Some(term),
                    first_index: self.log.first_index_of_term_at(prev),
                };
                self.reject_append(leader, request.read_round, prev, hint);
                return;
            }
            Some(_) => {}
        }
        let Some(conflict) = self.find_conflict(&request) else {
            self.stats.messages_ignored += 1;
            return;
        };
        if crate::bugs::reintroduced!(self, EarlyAppendsOutliveTheirTerm) {
            self.early_appends.stream = Some((self.current_term, leader));
        } else {
            self.early_appends.on_matched(self.current_term, leader);
        }
        let last_new_index = LogIndex(prev.0 + request.entries.len() as u64);
        self.append_from_conflict(conflict, request.entries);
        // Figure 2, receiver rule 5: commitIndex = min(leaderCommit, index of last new entry).
        let commit = if crate::bugs::reintroduced!(self, FollowerCommitPastNewEntries) {
            request.leader_commit.min(self.log.last_index())
        } else {
            request.leader_commit.min(last_new_index)
        };
        if commit > self.commit_index {
            self.commit_index = commit;
        }
        let response = Message::AppendEntriesResponse(AppendEntriesResponse {
            read_round: request.read_round,
            result: AppendResult::Success {
                match_index: last_new_index,
            },
        });
        if crate::bugs::reintroduced!(self, AckBeforeDurable) {
            self.send_request(leader, response);
        } else {
            self.respond(leader, response);
        }
    }

    /// Entries up to this node's snapshot are committed, so they match the leader's (Log
    /// Matching): drop them from a request that starts before the snapshot and check the rest
    /// against the snapshot's last entry instead. False when the request contradicts it.
    fn skip_compacted_entries(&self, request: &mut AppendEntries) -> bool {
        let snapshot_index = self.log.snapshot_index();
        if request.prev_log_index >= snapshot_index {
            return true;
        }
        let covered = snapshot_index.0 - request.prev_log_index.0;
        let covered = usize::try_from(covered).unwrap_or(usize::MAX);
        let Some(snapshot_term) = self.log.term_at(snapshot_index) else {
            return false;
        };
        if covered > request.entries.len() {
            // Everything the request carries is in the snapshot: answer as of the snapshot.
            request.entries.clear();
            request.prev_log_index = snapshot_index;
            request.prev_log_term = snapshot_term;
            return true;
        }
        let Some(boundary) = covered
            .checked_sub(1)
            .and_then(|last| request.entries.get(last))
        else {
            return false;
        };
        if boundary.index != snapshot_index || boundary.term != snapshot_term {
            return false;
        }
        request.prev_log_term = boundary.term;
        request.prev_log_index = snapshot_index;
        request.entries.drain(..covered);
        true
    }

    /// The position in `request.entries` of the first entry this log lacks or holds with another
    /// term (`entries.len()` when it holds them all), or `None` when no correct leader could have
    /// sent the request: entries out of sequence, terms out of order, or a conflict at a
    /// committed index.
    fn find_conflict(&self, request: &AppendEntries) -> Option<usize> {
        let mut previous_term = request.prev_log_term;
        for (offset, entry) in request.entries.iter().enumerate() {
            let expected_index = LogIndex(request.prev_log_index.0 + offset as u64 + 1);
            if entry.index != expected_index
                || entry.term < previous_term
                || entry.term > self.current_term
            {
                return None;
            }
            previous_term = entry.term;
        }
        let conflict = request
            .entries
            .iter()
            .position(|entry| self.log.term_at(entry.index) != Some(entry.term))
            .unwrap_or(request.entries.len());
        if let Some(entry) = request.entries.get(conflict) {
            if entry.index <= self.commit_index {
                return None;
            }
        }
        Some(conflict)
    }

    /// Figure 2, receiver rules 3 and 4: delete a conflicting entry and all that follow it, then
    /// append any new entries. Entries already held are kept: a delayed or duplicated request
    /// must never shorten the log.
    fn append_from_conflict(&mut self, conflict: usize, entries: Vec<Entry>) {
        if conflict >= entries.len() {
            // A heartbeat, or nothing new: skip building the iterators below.
            return;
        }
        let mut entries = entries.into_iter().skip(conflict).peekable();
        let Some(first) = entries.peek() else {
            return;
        };
        if first.index <= self.log.last_index() {
            self.truncate_log_from(first.index);
        }
        for entry in entries {
            self.append_to_log(entry);
        }
    }

    fn reject_append(
        &mut self,
        leader: NodeId,
        read_round: u64,
        rejected_prev_index: LogIndex,
        hint: ConflictHint,
    ) {
        self.respond(
            leader,
            Message::AppendEntriesResponse(AppendEntriesResponse {
                read_round,
                result: AppendResult::Reject {
                    rejected_prev_index,
                    hint,
                },
            }),
        );
    }
}
