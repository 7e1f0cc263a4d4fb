//! The in-memory log: the entries after the last snapshot, and the index and term the snapshot
//! ends with (index 0, term 0 when there is none).

use alloc::vec::Vec;

use crate::log_entry::Entry;
use crate::types::{LogIndex, Term};

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct RaftLog {
    pub(crate) snapshot_index: LogIndex,
    pub(crate) snapshot_term: Term,
    pub(crate) entries: Vec<Entry>,
}

impl RaftLog {
    /// `entries` must already be validated as contiguous from `snapshot_index + 1` with
    /// non-decreasing terms, none below `snapshot_term`.
    pub(crate) fn new(
        snapshot_index: LogIndex,
        snapshot_term: Term,
        entries: Vec<Entry>,
    ) -> RaftLog {
        RaftLog {
            snapshot_index,
            snapshot_term,
            entries,
        }
    }

    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot_index
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        self.snapshot_index.next()
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot_index.0 + self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.snapshot_term, |entry| entry.term)
    }

    /// The term of the entry at `index`: the snapshot's term at its last index, `None` for
    /// indexes compacted away or past the end.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    fn position(&self, index: LogIndex) -> Option<usize> {
        let offset = index.0.checked_sub(self.first_index().0)?;
        usize::try_from(offset).ok()
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.entries.get(self.position(index)?)
    }

    /// Entries with indexes in `from..=to` that the log holds (clamped to it).
    pub(crate) fn slice(&self, from: LogIndex, to: LogIndex) -> &[Entry] {
        let from = from.max(self.first_index());
        let to = to.min(self.last_index());
        if from > to {
            return &[];
        }
        match (self.position(from), self.position(to)) {
            (Some(start), Some(end)) => &self.entries[start..=end],
            _ => &[],
        }
    }

    /// The first index holding the same term as `index` (which the log holds), searching back
    /// no further than the snapshot.
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let term = self.term_at(index);
        let mut first = index;
        while first > self.snapshot_index && self.term_at(first.prev()) == term {
            first = first.prev();
        }
        first
    }

    /// The last index whose entry has `term`, if the log holds that term at all.
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        // Terms never decrease along the log, so search from the end and stop once below `term`.
        self.entries
            .iter()
            .rev()
            .take_while(|entry| entry.term >= term)
            .find(|entry| entry.term == term)
            .map(|entry| entry.index)
    }

    /// Raft's "at least as up-to-date" comparison (§5.4.1).
    pub(crate) fn is_up_to_date(&self, last_log_index: LogIndex, last_log_term: Term) -> bool {
        (last_log_term, last_log_index) >= (self.last_term(), self.last_index())
    }

    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "log_contiguous: appended entry index"
        );
        assert!(
            entry.term >= self.last_term(),
            "log_terms_monotonic: appended entry term"
        );
        self.entries.push(entry);
    }

    /// Removes every entry with index `>= from` (which must lie after the snapshot).
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        assert!(from > self.snapshot_index, "snapshot_never_truncated");
        if let Some(keep) = self.position(from) {
            self.entries.truncate(keep);
        }
    }

    /// Drops every entry up to and including `index`, which becomes the snapshot's last index.
    /// Entries after it are kept only when the log holds `index` with `term` (Raft §7).
    pub(crate) fn compact_to(&mut self, index: LogIndex, term: Term) {
        if self.term_at(index) == Some(term) {
            let drop = self.position(index).map_or(0, |position| position + 1);
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::log_entry::EntryPayload;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Append { term_step: u64 },
        Truncate { back: u64 },
        Compact { back: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..2).prop_map(|term_step| Op::Append { term_step }),
            1 => (0u64..6).prop_map(|back| Op::Truncate { back }),
            1 => (0u64..6).prop_map(|back| Op::Compact { back }),
        ]
    }

    proptest! {
        /// Appends, truncations and compactions agree with a plain model: a vector of every
        /// entry ever kept plus the index below which entries were compacted away.
        #[test]
        fn log_operations_match_a_model(ops in proptest::collection::vec(op(), 0..80)) {
            let mut log = RaftLog::default();
            let mut model: Vec<Entry> = Vec::new();
            let mut compacted = LogIndex::ZERO;
            for op in ops {
                match op {
                    Op::Append { term_step } => {
                        let entry = Entry {
                            index: log.last_index().next(),
                            term: Term(log.last_term().0 + term_step),
                            payload: EntryPayload::Noop,
                        };
                        model.push(entry.clone());
                        log.append(entry);
                    }
                    Op::Truncate { back } => {
                        let from = LogIndex(log.last_index().0.saturating_sub(back)).max(compacted.next());
                        log.truncate_from(from);
                        model.truncate(usize::try_from(from.0 - 1).unwrap());
                    }
                    Op::Compact { back } => {
                        let index = LogIndex(log.last_index().0.saturating_sub(back));
                        if index > compacted {
                            let term = log.term_at(index).unwrap();
                            log.compact_to(index, term);
                            compacted = index;
                        }
                    }
                }
                prop_assert_eq!(log.last_index(), LogIndex(model.len() as u64));
                prop_assert_eq!(log.snapshot_index(), compacted);
                for entry in &model {
                    let held = log.entry(entry.index);
                    if entry.index > compacted {
                        prop_assert_eq!(held, Some(entry));
                    } else {
                        prop_assert!(held.is_none());
                    }
                }
                let from = compacted.next();
                let kept = log.slice(from, log.last_index());
                prop_assert_eq!(kept, &model[model.len() - kept.len()..]);
                let last_term = model.last().map_or(Term::ZERO, |e| e.term);
                prop_assert_eq!(log.last_term(), last_term);
            }
        }
    }
}
