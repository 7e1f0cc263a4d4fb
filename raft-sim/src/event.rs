//! The event queue: events ordered by (virtual time, sequence number), so events at the same
//! millisecond run in the order they were scheduled and every run is reproducible.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use raft_core::{Envelope, NodeId, PersistId, RequestId};

use crate::client::Invocation;

/// Something scheduled to happen.
#[derive(Clone, Debug)]
pub enum Event {
    /// A node's clock ticks; stale if the node paused, crashed or restarted since
    /// (`generation` no longer matches).
    Tick { node: NodeId, generation: u64 },
    /// A message arrives; lost if its destination crashed or restarted since it was sent
    /// (`incarnation` no longer matches). A stale duplicate, one that lingered in the network,
    /// has no incarnation: it reaches whichever incarnation is up when it arrives.
    Deliver {
        envelope: Envelope,
        incarnation: Option<u64>,
    },
    /// A disk write finishes.
    DiskDone {
        node: NodeId,
        persist_id: PersistId,
        incarnation: u64,
    },
    /// A timed crash (`Sim::crash_after_next_persist`) of the named incarnation, and when to
    /// restart the node afterwards.
    Crash {
        node: NodeId,
        incarnation: u64,
        restart_after_ms: Option<u64>,
        /// `Sim::cancel_timed_crashes` bumps the epoch: crashes of an older one do not happen.
        epoch: u64,
    },
    /// A node crashed by a timed crash starts again, if it is still down.
    Restart { node: NodeId },
    /// A client is ready to invoke (a new operation or a retry).
    ClientWake { client: usize },
    /// A client request reaches its node.
    ClientArrive { invocation: Invocation },
    /// A client gives up waiting for `request_id`.
    ClientTimeout { request_id: RequestId },
}

/// A heap entry: when, in which order, and where the event waits in `EventQueue::slots`. The
/// heap moves entries on every push and pop, so they are kept to 24 bytes; the events
/// themselves (an `Envelope` with its entries) stay where they were put.
#[derive(Clone, Copy, Debug)]
struct Scheduled {
    time_ms: u64,
    seq: u64,
    slot: usize,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ms, self.seq) == (other.time_ms, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest event first. Sequence numbers are unique,
    /// so the order never depends on the slot.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time_ms, other.seq).cmp(&(self.time_ms, self.seq))
    }
}

/// A priority queue of events by (time, insertion order).
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    next_seq: u64,
    /// Events by slot; `None` for free slots, whose indexes wait in `free` for reuse.
    slots: Vec<Option<Event>>,
    free: Vec<usize>,
}

impl EventQueue {
    pub fn push(&mut self, time_ms: u64, event: Event) {
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                self.slots.len() - 1
            }
        };
        self.heap.push(Scheduled {
            time_ms,
            seq: self.next_seq,
            slot,
        });
    }

    /// The time of the earliest event.
    #[must_use]
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|s| s.time_ms)
    }

    pub fn pop(&mut self) -> Option<(u64, Event)> {
        let scheduled = self.heap.pop()?;
        self.free.push(scheduled.slot);
        // Every heap entry names a filled slot, emptied only here.
        let event = self.slots[scheduled.slot].take()?;
        Some((scheduled.time_ms, event))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_insertion_order() {
        let mut queue = EventQueue::default();
        queue.push(5, Event::ClientWake { client: 1 });
        queue.push(3, Event::ClientWake { client: 2 });
        queue.push(5, Event::ClientWake { client: 3 });
        let order: Vec<_> = std::iter::from_fn(|| queue.pop())
            .map(|(time, event)| match event {
                Event::ClientWake { client } => (time, client),
                _ => (time, 0),
            })
            .collect();
        assert_eq!(order, [(3, 2), (5, 1), (5, 3)]);
    }

    #[test]
    fn reused_slots_keep_the_order() {
        let mut queue = EventQueue::default();
        let mut expected = Vec::new();
        let mut popped = Vec::new();
        // Interleaved pushes and pops reuse freed slots; the order stays (time, push order).
        for round in 0..50u64 {
            let client = usize::try_from(round).unwrap_or(0);
            queue.push(round % 7, Event::ClientWake { client });
            expected.push((round % 7, round, client));
            if round % 3 == 0 {
                expected.sort_unstable();
                let (time, event) = queue.pop().expect("not empty");
                let (want_time, _, want_client) = expected.remove(0);
                assert_eq!(time, want_time);
                assert!(matches!(event, Event::ClientWake { client } if client == want_client));
                popped.push(time);
            }
        }
        expected.sort_unstable();
        for (want_time, _, want_client) in expected {
            let (time, event) = queue.pop().expect("not empty");
            assert_eq!(time, want_time);
            assert!(matches!(event, Event::ClientWake { client } if client == want_client));
        }
        assert!(queue.is_empty());
        assert!(!popped.is_empty());
    }
}
