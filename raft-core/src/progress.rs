//! The leader's view of each follower's log (Figure 2: `nextIndex`, `matchIndex`), with the
//! flow control that lets it pipeline AppendEntries without resending the log to a slow follower.

use alloc::collections::VecDeque;

use crate::types::LogIndex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ReplicationState {
    /// The leader does not know where the logs match: one AppendEntries at a time, retried each
    /// heartbeat, backing off with the follower's conflict hints.
    Probe { paused: bool },
    /// The logs match up to `match_index`: stream entries, up to `inflight_appends_max` messages
    /// ahead of the acknowledgements.
    Replicate,
    /// The follower needs entries the leader compacted away: send the snapshot, one chunk in
    /// flight, resuming from `offset` (resent each heartbeat while unanswered).
    Snapshot {
        last_included_index: LogIndex,
        offset: u64,
        paused: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Progress {
    pub(crate) match_index: LogIndex,
    pub(crate) next_index: LogIndex,
    pub(crate) state: ReplicationState,
    /// Last index of each AppendEntries sent in `Replicate` and not yet acknowledged.
    pub(crate) inflight: VecDeque<LogIndex>,
    /// `match_index` advanced since the last heartbeat.
    pub(crate) advanced_since_heartbeat: bool,
    /// Appends were in flight at the last heartbeat.
    pub(crate) inflight_at_last_heartbeat: bool,
    /// Ticks, with appends in flight, since an acknowledgement last advanced `match_index`
    /// or an append with entries was last sent.
    pub(crate) quiet_ticks: u32,
    /// The last append in flight was sent again since then.
    pub(crate) tail_resent: bool,
    /// Heard from this follower since the last check-quorum round.
    pub(crate) recent_active: bool,
    /// The highest `read_round` this follower has answered in the current term.
    pub(crate) acked_read_round: u64,
    /// The incarnation this follower answers from, once heard; everything above was learned
    /// from that incarnation.
    pub(crate) incarnation: Option<crate::types::Incarnation>,
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex) -> Progress {
        Progress {
            match_index: LogIndex::ZERO,
            next_index,
            state: ReplicationState::Probe { paused: false },
            inflight: VecDeque::new(),
            advanced_since_heartbeat: false,
            inflight_at_last_heartbeat: false,
            quiet_ticks: 0,
            tail_resent: false,
            recent_active: true,
            acked_read_round: 0,
            incarnation: None,
        }
    }

    /// Called once per heartbeat interval: true when appends have been in flight for a whole
    /// interval without any acknowledgement advancing `match_index`, so they are presumed lost.
    /// The leader then probes from `match_index + 1`: the follower may hold the later appends
    /// (`early_appends.rs`), which follow the resent one at once. Followers usually report
    /// such a gap sooner (`AppendResult::Gap`); this catches reports that were lost too.
    pub(crate) fn is_stalled_at_heartbeat(&mut self) -> bool {
        let stalled = self.state == ReplicationState::Replicate
            && !self.inflight.is_empty()
            && self.inflight_at_last_heartbeat
            && !self.advanced_since_heartbeat;
        self.advanced_since_heartbeat = false;
        self.inflight_at_last_heartbeat = !self.inflight.is_empty();
        stalled
    }

    /// Called on every tick: the entries of the last append in flight, once `after` ticks (not
    /// 0) passed since it was sent with no acknowledgement. Nothing follows that append, so no
    /// follower reports it lost (`early_appends.rs`). Once per append: if the copy is lost
    /// too, or the follower only answers late (a slow disk, a long round trip), the heartbeat
    /// stall detection takes over.
    pub(crate) fn quiet_tail(&mut self, after: u32) -> Option<(LogIndex, LogIndex)> {
        let (ReplicationState::Replicate, Some(&last)) = (self.state, self.inflight.back()) else {
            return None;
        };
        if after == 0 || self.tail_resent {
            return None;
        }
        self.quiet_ticks += 1;
        if self.quiet_ticks < after {
            return None;
        }
        self.tail_resent = true;
        let before = self.inflight.iter().rev().nth(1).copied();
        let from = before
            .unwrap_or(self.match_index)
            .max(self.match_index)
            .next();
        (from <= last).then_some((from, last))
    }

    /// Restarts the wait for the last append in flight (`quiet_tail`).
    fn restart_quiet_ticks(&mut self) {
        self.quiet_ticks = 0;
        self.tail_resent = false;
    }

    pub(crate) fn is_paused(&self, inflight_max: usize) -> bool {
        match self.state {
            ReplicationState::Probe { paused } | ReplicationState::Snapshot { paused, .. } => {
                paused
            }
            ReplicationState::Replicate => self.inflight.len() >= inflight_max,
        }
    }

    pub(crate) fn become_probe(&mut self, next_index: LogIndex) {
        assert!(
            next_index > self.match_index,
            "progress_next_above_match: probe at {next_index} with match {}",
            self.match_index
        );
        self.state = ReplicationState::Probe { paused: false };
        self.next_index = next_index;
        self.inflight.clear();
        self.restart_quiet_ticks();
    }

    /// A success acknowledgement for `match_index`: returns true when it taught us something new.
    pub(crate) fn on_success(&mut self, match_index: LogIndex) -> bool {
        while self
            .inflight
            .front()
            .is_some_and(|&last| last <= match_index)
        {
            self.inflight.pop_front();
        }
        let advanced = match_index > self.match_index;
        if advanced {
            self.match_index = match_index;
            self.advanced_since_heartbeat = true;
            self.restart_quiet_ticks();
        }
        self.next_index = self.next_index.max(match_index.next());
        if let ReplicationState::Probe { .. } = self.state {
            self.state = ReplicationState::Replicate;
            self.inflight.clear();
        }
        if let ReplicationState::Snapshot {
            last_included_index,
            ..
        } = self.state
        {
            if self.match_index >= last_included_index {
                self.become_probe(self.match_index.next());
            }
        }
        advanced
    }

    /// Records an AppendEntries covering up to `last_index` was sent.
    pub(crate) fn on_sent(&mut self, last_index: LogIndex, carried_entries: bool) {
        match &mut self.state {
            ReplicationState::Probe { paused } | ReplicationState::Snapshot { paused, .. } => {
                *paused = true;
            }
            ReplicationState::Replicate => {
                if carried_entries {
                    self.next_index = last_index.next();
                    self.inflight.push_back(last_index);
                    self.restart_quiet_ticks();
                }
            }
        }
    }
}
