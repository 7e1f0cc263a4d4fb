//! The disk model: each node's `Persist` requests complete in order after a sampled latency.
//! What completed is applied to the node's `DurableState`; a crash loses whatever had not.

use std::collections::VecDeque;

use raft_core::{DurableState, PersistId, PersistRequest};

use crate::rng::SimRng;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            latency_ms_min: 1,
            latency_ms_max: 3,
        }
    }
}

/// One node's disk: its durable state and the writes not yet durable.
#[derive(Debug, Default)]
pub struct Disk {
    pub durable: DurableState,
    pending: VecDeque<PersistRequest>,
    /// When the last pending write completes; a later write never completes before it.
    last_completion_ms: u64,
}

impl Disk {
    /// Queues `request` and returns when it will be durable.
    pub fn submit(
        &mut self,
        request: PersistRequest,
        now_ms: u64,
        config: &DiskConfig,
        rng: &mut SimRng,
    ) -> u64 {
        let latency = rng.between(config.latency_ms_min, config.latency_ms_max);
        let done = (now_ms + latency).max(self.last_completion_ms);
        self.last_completion_ms = done;
        self.pending.push_back(request);
        done
    }

    /// Completes the oldest pending write if it is `persist_id`; `false` if it is not (the
    /// write was lost to a crash and this completion is stale).
    pub fn complete(&mut self, persist_id: PersistId) -> bool {
        if self.pending.front().map(|r| r.persist_id) != Some(persist_id) {
            return false;
        }
        if let Some(request) = self.pending.pop_front() {
            self.durable.apply(&request);
        }
        true
    }

    /// A crash: pending writes never happen.
    pub fn crash(&mut self) {
        self.pending.clear();
        self.last_completion_ms = 0;
    }

    /// A clean shutdown: pending writes finish first. Returns the last id made durable.
    pub fn flush(&mut self) -> Option<PersistId> {
        let mut last = None;
        while let Some(request) = self.pending.pop_front() {
            self.durable.apply(&request);
            last = Some(request.persist_id);
        }
        self.last_completion_ms = 0;
        last
    }

    #[must_use]
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{HardState, NodeId, Term};

    fn request(id: u64, term: u64) -> PersistRequest {
        PersistRequest {
            persist_id: PersistId(id),
            hard_state: Some(HardState {
                current_term: Term(term),
                voted_for: Some(NodeId(1)),
            }),
            snapshot: None,
            log: None,
        }
    }

    #[test]
    fn writes_complete_in_order_and_crash_drops_pending() {
        let config = DiskConfig {
            latency_ms_min: 1,
            latency_ms_max: 10,
        };
        let mut rng = SimRng::new(3);
        let mut disk = Disk::default();
        let first = disk.submit(request(1, 1), 0, &config, &mut rng);
        let second = disk.submit(request(2, 2), 0, &config, &mut rng);
        assert!(second >= first);
        assert!(!disk.complete(PersistId(2)), "out of order");
        assert!(disk.complete(PersistId(1)));
        assert_eq!(disk.durable.hard_state.current_term, Term(1));
        disk.crash();
        assert!(!disk.complete(PersistId(2)));
        assert_eq!(disk.durable.hard_state.current_term, Term(1));
        assert_eq!(disk.pending_count(), 0);
    }
}
