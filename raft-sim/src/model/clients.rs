//! The model's clients, for reads: the history of invocations and replies that the
//! simulator's linearizability check reads ([`crate::history::check_linearizable`]), kept in
//! each state when reads are on.
//!
//! Times are logical: the order of client events (invocations and final replies) along the
//! path, renumbered 0, 1, 2, ... so that two paths with the same events in the same order
//! reach the same history. A record leaves the history once nothing later can depend on it:
//! a read once it has been checked (a read is judged against the writes acknowledged before
//! it was invoked, all known by its reply), and a write once it ends other than committed
//! (the check reads committed writes only). Committed writes stay: every later read is judged
//! against them.

use raft_core::{NodeId, NodeRenaming, Reply, RequestId};

use crate::checker::{command_hash, Violation};
use crate::client::{Outcome, Record};
use crate::history::check_linearizable;

/// Invocations not yet forgotten, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientHistory {
    records: Vec<Record>,
    /// Some read was served (for the `sometimes` property that shows reads are exercised).
    pub read_served: bool,
}

impl ClientHistory {
    /// The next logical time: one after every event the history holds.
    fn now(&self) -> u64 {
        self.records
            .iter()
            .map(|record| 1 + u64::from(record.completed_ms.is_some()))
            .sum()
    }

    /// A client invokes a write of `command` (`None`: a read) at `node`.
    pub fn invoke(&mut self, request_id: RequestId, node: NodeId, command: Option<&[u8]>) {
        let invoked_ms = self.now();
        self.records.push(Record {
            client: None,
            request_id,
            command: command
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default(),
            payload_hash: command_hash(command.unwrap_or_default()),
            read: command.is_none(),
            node,
            invoked_ms,
            accepted: None,
            outcome: Outcome::Pending,
            completed_ms: None,
        });
    }

    /// `reply` to `request_id` arrived: record it and check the history when it completes an
    /// operation.
    pub fn on_reply(&mut self, request_id: RequestId, reply: &Reply) -> Result<(), Violation> {
        let Some(position) = self
            .records
            .iter()
            .position(|record| record.request_id == request_id)
        else {
            return Ok(());
        };
        let now = self.now();
        let record = &mut self.records[position];
        let outcome = match *reply {
            Reply::Accepted { index, term } => {
                record.accepted = Some((index, term));
                return Ok(());
            }
            Reply::Committed { index, term } if !record.read => Outcome::Committed { index, term },
            Reply::ReadReady { index } if record.read => Outcome::Read { index },
            // Every other reply is final and is not a success: the check ignores it.
            _ => {
                self.forget(position);
                return Ok(());
            }
        };
        record.outcome = outcome;
        record.completed_ms = Some(now);
        let checked = check_linearizable(&self.records);
        if let Outcome::Read { .. } = outcome {
            self.read_served = true;
            self.forget(position);
        }
        checked
    }

    /// Drops record `position` and renumbers the times that remain.
    fn forget(&mut self, position: usize) {
        self.records.remove(position);
        let mut times: Vec<u64> = self
            .records
            .iter()
            .flat_map(|record| std::iter::once(record.invoked_ms).chain(record.completed_ms))
            .collect();
        times.sort_unstable();
        let rank = |time: u64| times.partition_point(|&t| t < time) as u64;
        for record in &mut self.records {
            record.invoked_ms = rank(record.invoked_ms);
            record.completed_ms = record.completed_ms.map(rank);
        }
    }

    /// The same history with the servers renamed.
    #[must_use]
    pub fn renamed(&self, renaming: &NodeRenaming) -> ClientHistory {
        let mut renamed = self.clone();
        for record in &mut renamed.records {
            record.node = renaming.id(record.node);
        }
        renamed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{LogIndex, Term};

    fn committed(index: u64) -> Reply {
        Reply::Committed {
            index: LogIndex(index),
            term: Term(1),
        }
    }

    #[test]
    fn a_read_that_misses_an_acknowledged_write_is_not_linearizable() {
        let mut history = ClientHistory::default();
        history.invoke(RequestId(1), NodeId(1), Some(b"c1"));
        assert_eq!(history.on_reply(RequestId(1), &committed(2)), Ok(()));
        history.invoke(RequestId(2), NodeId(2), None);
        let stale = history.on_reply(RequestId(2), &Reply::ReadReady { index: LogIndex(1) });
        assert_eq!(stale.map_err(|v| v.invariant), Err("linearizable_history"));
        // A read invoked before the write was acknowledged may miss it.
        let mut history = ClientHistory::default();
        history.invoke(RequestId(1), NodeId(1), Some(b"c1"));
        history.invoke(RequestId(2), NodeId(2), None);
        assert_eq!(history.on_reply(RequestId(1), &committed(2)), Ok(()));
        let read = history.on_reply(RequestId(2), &Reply::ReadReady { index: LogIndex(1) });
        assert_eq!(read, Ok(()));
        assert!(history.read_served);
    }

    #[test]
    fn histories_with_the_same_events_in_the_same_order_are_equal() {
        let mut a = ClientHistory::default();
        a.invoke(RequestId(1), NodeId(1), Some(b"c1"));
        a.invoke(RequestId(7), NodeId(1), None);
        let _ = a.on_reply(RequestId(7), &Reply::NotLeader { leader_hint: None });
        let _ = a.on_reply(RequestId(1), &committed(1));
        let mut b = ClientHistory::default();
        b.invoke(RequestId(1), NodeId(1), Some(b"c1"));
        let _ = b.on_reply(RequestId(1), &committed(1));
        assert_eq!(a, b);
    }
}
