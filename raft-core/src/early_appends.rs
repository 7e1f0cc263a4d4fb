//! Follower: AppendEntries that arrived before the ones they follow.
//!
//! A leader in `Replicate` streams up to `inflight_appends_max` AppendEntries per follower,
//! each starting where the previous one ended. Over a network that reorders (UDP, several
//! paths, random delays), a later one often arrives first: its `prev_log_index` lies beyond
//! the follower's log. Figure 2 rejects it, the leader falls back to probing and sends the
//! window again, and at every overtaking the same happens anew: with 1-5 ms of random latency
//! the leader sent about ten entries per entry per follower.
//!
//! Instead the follower keeps such a request, bounded by [`Config::early_appends_max`] and
//! [`Config::early_appends_bytes_max`], and handles it once its log reaches the request's
//! `prev_log_index`, exactly as if the network had delivered it then: every check of Figure 2
//! runs at that time, and its response, like any other, waits until what it acknowledges is
//! durable (contract rule 3). Holding a request is only a later delivery, which the network is
//! free to make, so no safety rule depends on what is held; nothing held is acknowledged, and a
//! crash forgets it like a lost message. Only requests of the current term from the current
//! leader are held, and only while it is so: a request of an older leader is answered by the
//! ordinary stale-term path instead, and a change of term or leader discards what is held.
//! A request that does not fit is rejected as before.
//!
//! A request that never arrives (a lost datagram) leaves the held ones waiting, so the
//! follower tells the leader of the gap (`AppendResult::Gap`: where its log ends and where the
//! held requests start) when it looks like a loss rather than a reordering: once
//! [`Config::early_appends_gap_report_at`] requests are held beyond it (a late request is
//! overtaken by a few, a lost one by all that follow; never more than the rest of the
//! leader's window), or when two ticks in a row find it. The leader sends again only the
//! entries in between and keeps streaming; the held requests follow the resent ones in one
//! step. A report acknowledges nothing, so a wrong guess costs the gap's entries sent twice. If the report or the resend is lost too, the count's next
//! multiple, the next tick but one, or the leader's stall detection
//! (`Progress::is_stalled_at_heartbeat`, which probes from `match_index + 1`) tries again.
//! Nothing follows the last request in flight, so a follower cannot report it lost: the
//! leader sends it again itself after [`Config::tail_resend_ticks`] without an
//! acknowledgement (`Progress::quiet_tail`).
//!
//! [`Config::early_appends_max`]: crate::Config::early_appends_max
//! [`Config::early_appends_bytes_max`]: crate::Config::early_appends_bytes_max
//! [`Config::early_appends_gap_report_at`]: crate::Config::early_appends_gap_report_at
//! [`Config::tail_resend_ticks`]: crate::Config::tail_resend_ticks

use alloc::collections::BTreeMap;

use crate::message::AppendEntries;
use crate::types::{LogIndex, NodeId, Term};

/// The requests held, for one leader's stream in one term.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct EarlyAppends {
    /// The term and leader whose AppendEntries this log last matched: only their later
    /// requests are held. A leader's first request of a term is its probe, which must be
    /// answered at once for the leader to find where the logs match.
    pub(crate) stream: Option<(Term, NodeId)>,
    /// By `prev_log_index`: the longest request seen from there.
    pub(crate) held: BTreeMap<LogIndex, AppendEntries>,
    /// Entry bytes held ([`crate::Entry::size_bytes`]).
    pub(crate) bytes: usize,
    /// Where the log ended at the last tick that found requests held.
    pub(crate) gap_at_last_tick: Option<LogIndex>,
    /// Where the gap last reported ended (the first held request's `prev_log_index`), and how
    /// many requests were held then.
    pub(crate) reported: Option<(LogIndex, usize)>,
}

/// What became of a request held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// Held for the first time.
    New,
    /// What was held already covers it: the leader sent it again (its probe at a
    /// heartbeat, a resend of the last append in flight), or the network duplicated it.
    Again,
}

/// The limits of one follower's holding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) count_max: usize,
    pub(crate) bytes_max: usize,
}

fn size_bytes(request: &AppendEntries) -> usize {
    request.entries.iter().map(crate::Entry::size_bytes).sum()
}

fn last_index(request: &AppendEntries) -> LogIndex {
    LogIndex(request.prev_log_index.0 + request.entries.len() as u64)
}

impl EarlyAppends {
    /// The log matched a request of `leader` in `term`: its later requests may be held.
    pub(crate) fn on_matched(&mut self, term: Term, leader: NodeId) {
        if self.stream != Some((term, leader)) {
            self.clear();
            self.stream = Some((term, leader));
        }
    }

    /// Keeps `request` from `leader` in `term` for later; gives it back when it does not fit,
    /// carries no entries (nothing would be gained by waiting for it), or is not part of a
    /// stream this log matched.
    pub(crate) fn hold(
        &mut self,
        term: Term,
        leader: NodeId,
        request: AppendEntries,
        limits: Limits,
    ) -> Result<Held, AppendEntries> {
        if request.entries.is_empty() || self.stream != Some((term, leader)) {
            return Err(request);
        }
        let key = request.prev_log_index;
        let replaced = match self.held.get(&key) {
            // A duplicate, or a shorter request from the same point: what is held covers it.
            Some(held) if last_index(held) >= last_index(&request) => return Ok(Held::Again),
            Some(held) => size_bytes(held),
            None => 0,
        };
        let count = self.held.len() + usize::from(!self.held.contains_key(&key));
        let bytes = self.bytes - replaced + size_bytes(&request);
        if count > limits.count_max || bytes > limits.bytes_max {
            return Err(request);
        }
        self.bytes = bytes;
        self.held.insert(key, request);
        Ok(Held::New)
    }

    /// The held request to handle next, now that the log ends at `log_last_index`, if one
    /// follows on from it and the stream is still `term`'s and `leader`'s; otherwise the held
    /// requests of another stream are discarded.
    pub(crate) fn take_ready(
        &mut self,
        term: Term,
        leader: Option<NodeId>,
        log_last_index: LogIndex,
    ) -> Option<AppendEntries> {
        if self.held.is_empty() {
            return None;
        }
        if leader.is_none_or(|leader| self.stream != Some((term, leader))) {
            self.clear();
            return None;
        }
        let (&key, _) = self.held.first_key_value()?;
        if key > log_last_index {
            return None;
        }
        let request = self.held.remove(&key)?;
        self.bytes -= size_bytes(&request);
        Some(request)
    }

    pub(crate) fn clear(&mut self) {
        *self = EarlyAppends::default();
    }

    /// Called on every tick: true when the log has ended at `log_last_index`, short of every
    /// held request, since the previous tick too, and the gap is not within one reported
    /// already. A request overtaken on the way arrives within the network's spread of
    /// latencies; one still missing a whole tick later is more likely lost, and the leader
    /// learns of the gap at once instead of at its next heartbeat round. A reported gap is
    /// not reported again by ticks: the answer may take longer than two ticks, and if the
    /// report or its resend was lost the leader's stall detection resends.
    pub(crate) fn is_gap_lasting(&mut self, log_last_index: LogIndex) -> bool {
        let first = self.held.first_key_value().map(|(&first, _)| first);
        let gap = first
            .filter(|&first| first > log_last_index)
            .map(|_| log_last_index);
        let lasting = gap.is_some() && self.gap_at_last_tick == gap;
        self.gap_at_last_tick = if lasting { None } else { gap };
        let reported = matches!(
            (first, self.reported),
            (Some(first), Some((reported_end, _))) if first <= reported_end
        );
        if !lasting || reported {
            return false;
        }
        if let Some(first) = first {
            self.reported = Some((first, self.held.len()));
        }
        true
    }

    /// True when `report_at` (not 0) requests or more are held beyond a gap at
    /// `log_last_index`: so many later requests overtook the missing one that it is more
    /// likely lost than late. Once per gap: a gap within the one reported last (part of it
    /// was filled since, the rest may be on its way) only again once `report_at` more
    /// requests are held, in case the report or what it made the leader send was lost too.
    pub(crate) fn is_gap_crowded(&mut self, log_last_index: LogIndex, report_at: usize) -> bool {
        let held = self.held.len();
        let Some((&first, _)) = self.held.first_key_value() else {
            return false;
        };
        if report_at == 0 || held < report_at || first <= log_last_index {
            return false;
        }
        let due = match self.reported {
            Some((reported_end, count)) if first <= reported_end => held >= count + report_at,
            _ => true,
        };
        if due {
            self.reported = Some((first, held));
        }
        due
    }

    /// Where the held requests start (the `prev_log_index` of the first) and the latest read
    /// round they carry: what a report of the gap before them tells the leader.
    pub(crate) fn gap_end(&self) -> Option<(LogIndex, u64)> {
        let (&held_from, _) = self.held.first_key_value()?;
        let read_round = self.held.values().map(|r| r.read_round).max()?;
        Some((held_from, read_round))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::log_entry::{Entry, EntryPayload};

    fn request(prev: u64, count: u64) -> AppendEntries {
        AppendEntries {
            prev_log_index: LogIndex(prev),
            prev_log_term: Term(1),
            entries: (prev + 1..=prev + count)
                .map(|index| Entry {
                    index: LogIndex(index),
                    term: Term(1),
                    payload: EntryPayload::Command(vec![0; 10].into()),
                })
                .collect(),
            leader_commit: LogIndex::ZERO,
            read_round: 0,
        }
    }

    const ROOMY: Limits = Limits {
        count_max: 4,
        bytes_max: 1 << 20,
    };
    const LEADER: NodeId = NodeId(1);

    #[test]
    fn held_requests_come_back_in_log_order_once_the_log_reaches_them() {
        let mut early = EarlyAppends::default();
        early.on_matched(Term(1), LEADER);
        for prev in [7, 5, 6] {
            early
                .hold(Term(1), LEADER, request(prev, 1), ROOMY)
                .unwrap();
        }
        assert_eq!(early.take_ready(Term(1), Some(LEADER), LogIndex(4)), None);
        let mut taken = Vec::new();
        while let Some(r) = early.take_ready(Term(1), Some(LEADER), LogIndex(7)) {
            taken.push(r.prev_log_index.0);
        }
        assert_eq!(taken, [5, 6, 7]);
        assert_eq!((early.len(), early.bytes), (0, 0));
    }

    #[test]
    fn a_duplicate_or_shorter_request_is_covered_and_a_longer_one_replaces_it() {
        let mut early = EarlyAppends::default();
        early.on_matched(Term(1), LEADER);
        let held = [request(5, 2), request(5, 2), request(5, 1)]
            .map(|r| early.hold(Term(1), LEADER, r, ROOMY).unwrap());
        assert_eq!(held, [Held::New, Held::Again, Held::Again]);
        assert_eq!((early.len(), early.bytes), (1, size_bytes(&request(5, 2))));
        early.hold(Term(1), LEADER, request(5, 3), ROOMY).unwrap();
        assert_eq!((early.len(), early.bytes), (1, size_bytes(&request(5, 3))));
    }

    #[test]
    fn requests_beyond_the_limits_or_without_entries_are_given_back() {
        let mut early = EarlyAppends::default();
        early.on_matched(Term(1), LEADER);
        let tight = Limits {
            count_max: 2,
            bytes_max: size_bytes(&request(0, 3)),
        };
        assert!(early.hold(Term(1), LEADER, request(5, 0), tight).is_err());
        early.hold(Term(1), LEADER, request(5, 1), tight).unwrap();
        early.hold(Term(1), LEADER, request(6, 1), tight).unwrap();
        assert!(early.hold(Term(1), LEADER, request(7, 1), tight).is_err());
        assert!(early.hold(Term(1), LEADER, request(6, 3), tight).is_err());
        assert_eq!(early.len(), 2);
    }

    #[test]
    fn only_a_stream_the_log_matched_is_held_and_another_discards_it() {
        let mut early = EarlyAppends::default();
        assert!(early.hold(Term(1), LEADER, request(5, 1), ROOMY).is_err());
        early.on_matched(Term(1), LEADER);
        early.hold(Term(1), LEADER, request(5, 1), ROOMY).unwrap();
        assert!(early
            .hold(Term(2), NodeId(2), request(6, 1), ROOMY)
            .is_err());
        assert_eq!(
            early.take_ready(Term(2), Some(NodeId(2)), LogIndex(9)),
            None
        );
        assert_eq!(early.len(), 0);
        early.on_matched(Term(3), LEADER);
        early.hold(Term(3), LEADER, request(5, 1), ROOMY).unwrap();
        assert_eq!(early.take_ready(Term(3), None, LogIndex(9)), None);
        assert_eq!(early.len(), 0);
    }

    #[test]
    fn a_gap_found_by_two_ticks_in_a_row_is_lasting_and_reported_once() {
        let mut early = EarlyAppends::default();
        early.on_matched(Term(1), LEADER);
        early.hold(Term(1), LEADER, request(7, 1), ROOMY).unwrap();
        early.hold(Term(1), LEADER, request(5, 1), ROOMY).unwrap();
        assert!(!early.is_gap_lasting(LogIndex(3)));
        assert!(early.is_gap_lasting(LogIndex(3)));
        assert_eq!(early.gap_end(), Some((LogIndex(5), 0)));
        // Reported: not again by ticks, however long it lasts.
        for _ in 0..4 {
            assert!(!early.is_gap_lasting(LogIndex(3)));
        }
        // The first held request was taken: a new gap, reported once it lasts.
        let _ = early.take_ready(Term(1), Some(LEADER), LogIndex(5));
        assert!(!early.is_gap_lasting(LogIndex(6)));
        assert!(early.is_gap_lasting(LogIndex(6)));
        assert!(!early.is_gap_lasting(LogIndex(6)));
        // No gap left, nothing lasting.
        assert!(!early.is_gap_lasting(LogIndex(7)));
        assert!(!early.is_gap_lasting(LogIndex(7)));
    }

    #[test]
    fn a_gap_before_report_at_requests_held_is_crowded_once_per_report_at_more() {
        let mut early = EarlyAppends::default();
        early.on_matched(Term(1), LEADER);
        let roomy = Limits {
            count_max: 16,
            ..ROOMY
        };
        let mut crowded = Vec::new();
        for prev in [6, 8, 8, 7, 9, 10, 11, 12] {
            early
                .hold(Term(1), LEADER, request(prev, 1), roomy)
                .unwrap();
            crowded.push(early.is_gap_crowded(LogIndex(4), 3));
        }
        // The duplicate of 8 adds nothing: 7 is the third request held, 11 the sixth.
        assert_eq!(
            crowded,
            [false, false, false, true, false, false, true, false]
        );
        let mut late = request(13, 1);
        late.read_round = 4;
        early.hold(Term(1), LEADER, late, roomy).unwrap();
        assert_eq!(early.gap_end(), Some((LogIndex(6), 4)));
        // Part of the reported gap filled: the rest may be on its way, so no new report.
        assert!(!early.is_gap_crowded(LogIndex(5), 3));
        // The log moved on to a new gap (the first held request was taken): crowded at once.
        let _ = early.take_ready(Term(1), Some(LEADER), LogIndex(6));
        assert!(early.is_gap_crowded(LogIndex(6), 3));
        assert!(!early.is_gap_crowded(LogIndex(6), 3));
        // Never with 0, never without a gap.
        assert!(!early.is_gap_crowded(LogIndex(4), 0));
        assert!(!early.is_gap_crowded(LogIndex(13), 3));
    }
}
