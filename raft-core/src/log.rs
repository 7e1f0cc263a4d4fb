//! The in-memory log: every entry since the start of the log, indexed from 1.

use alloc::vec::Vec;

use crate::log_entry::Entry;
use crate::types::{LogIndex, Term};

#[derive(Clone, Debug, Default)]
pub(crate) struct RaftLog {
    entries: Vec<Entry>,
}

impl RaftLog {
    /// `entries` must already be validated as contiguous from index 1 with non-decreasing terms.
    pub(crate) fn from_entries(entries: Vec<Entry>) -> RaftLog {
        RaftLog { entries }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(Term::ZERO, |entry| entry.term)
    }

    /// The term of the entry at `index`; `Term::ZERO` for index 0; `None` past the end.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == LogIndex::ZERO {
            return Some(Term::ZERO);
        }
        self.entry(index).map(|entry| entry.term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let position = usize::try_from(index.0).ok()?.checked_sub(1)?;
        self.entries.get(position)
    }

    /// Entries with indexes in `from..=to` (clamped to the log).
    pub(crate) fn slice(&self, from: LogIndex, to: LogIndex) -> &[Entry] {
        let last = self.entries.len();
        let start = usize::try_from(from.0.max(1) - 1).map_or(last, |s| s.min(last));
        let end = usize::try_from(to.0).map_or(last, |e| e.min(last));
        if start >= end {
            return &[];
        }
        &self.entries[start..end]
    }

    /// The first index holding `term`, searching back from `index` (which holds `term`).
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let term = self.term_at(index);
        let mut first = index;
        while first.0 > 1 && self.term_at(first.prev()) == term {
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

    /// Removes every entry with index `>= from`.
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        let keep = usize::try_from(from.0.saturating_sub(1)).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
    }
}
