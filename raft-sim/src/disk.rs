//! The disk model: each node's `Persist` requests complete in order after a sampled latency.
//! What completed is applied to the node's `DurableState`; a crash loses whatever had not.
//! A disk may have a latency of its own (a slower device), may stall (no write completes before
//! a given time) and may be held by a scenario (writes stay pending until released).

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
    /// This device's own latency, instead of the cluster's (one slow disk among fast ones).
    pub latency: Option<DiskConfig>,
    /// No write completes before this time (a stalled device catching up afterwards).
    stalled_until_ms: u64,
    /// Held by a scenario: writes stay pending until `release`, whenever they were due.
    held: bool,
}

impl Disk {
    /// An empty disk, with a latency of its own if given.
    #[must_use]
    pub fn with_latency(latency: Option<DiskConfig>) -> Disk {
        Disk {
            latency,
            ..Disk::default()
        }
    }

    /// Queues `request` and returns when it will be durable.
    pub fn submit(
        &mut self,
        request: PersistRequest,
        now_ms: u64,
        config: &DiskConfig,
        rng: &mut SimRng,
    ) -> u64 {
        let config = self.latency.as_ref().unwrap_or(config);
        let latency = rng.between(config.latency_ms_min, config.latency_ms_max);
        let done = (now_ms + latency)
            .max(self.last_completion_ms)
            .max(self.stalled_until_ms);
        self.last_completion_ms = done;
        self.pending.push_back(request);
        done
    }

    /// Completes every pending write up to `persist_id`, oldest first (completions are
    /// cumulative, like `Input::PersistDone`); `false` if none was pending (the writes were
    /// lost to a crash, or completed already, and this completion is stale).
    pub fn complete(&mut self, persist_id: PersistId) -> bool {
        let mut completed = false;
        while self
            .pending
            .front()
            .is_some_and(|r| r.persist_id <= persist_id)
        {
            if let Some(request) = self.pending.pop_front() {
                self.durable.apply(&request);
                completed = true;
            }
        }
        completed
    }

    /// The device is replaced: nothing it held survives (its latency stays, a hold ends).
    pub fn wipe(&mut self) {
        self.crash();
        self.durable = DurableState::default();
        self.held = false;
        self.stalled_until_ms = 0;
    }

    /// A crash: pending writes never happen. A stall or a hold is the device's and stays.
    pub fn crash(&mut self) {
        self.pending.clear();
        self.last_completion_ms = 0;
    }

    /// No write completes before `until_ms`; the writes due meanwhile complete then, in order.
    pub fn stall_until(&mut self, until_ms: u64) {
        self.stalled_until_ms = self.stalled_until_ms.max(until_ms);
    }

    /// Ends a stall now; returns the last write that was waiting on it, which the caller
    /// completes (and with it every earlier one).
    pub fn end_stall(&mut self, now_ms: u64) -> Option<PersistId> {
        let stalled = self.stalled_until(now_ms).is_some();
        self.stalled_until_ms = 0;
        self.last_completion_ms = self.last_completion_ms.min(now_ms);
        stalled
            .then(|| self.pending.back().map(|r| r.persist_id))
            .flatten()
    }

    /// The time a completion due at `now_ms` must wait for, if the disk is stalled then.
    #[must_use]
    pub fn stalled_until(&self, now_ms: u64) -> Option<u64> {
        (now_ms < self.stalled_until_ms).then_some(self.stalled_until_ms)
    }

    /// Writes stay pending, however long ago they were due, until [`Disk::release`].
    pub fn hold(&mut self) {
        self.held = true;
    }

    #[must_use]
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Ends a hold; returns the ids of the writes still pending, oldest first, for the caller
    /// to complete in order.
    pub fn release(&mut self) -> Vec<PersistId> {
        self.held = false;
        self.pending.iter().map(|r| r.persist_id).collect()
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
        assert!(disk.complete(PersistId(1)));
        assert_eq!(disk.durable.hard_state.current_term, Term(1));
        assert_eq!(disk.pending_count(), 1, "the later write still pending");
        disk.crash();
        assert!(!disk.complete(PersistId(2)));
        assert_eq!(disk.durable.hard_state.current_term, Term(1));
        assert_eq!(disk.pending_count(), 0);
    }

    #[test]
    fn completions_are_cumulative_and_stale_ones_are_ignored() {
        let config = DiskConfig::default();
        let mut rng = SimRng::new(3);
        let mut disk = Disk::default();
        disk.submit(request(1, 1), 0, &config, &mut rng);
        disk.submit(request(2, 2), 0, &config, &mut rng);
        assert!(disk.complete(PersistId(2)), "both complete, in order");
        assert_eq!(disk.durable.hard_state.current_term, Term(2));
        assert!(!disk.complete(PersistId(1)), "already durable");
        assert_eq!(disk.pending_count(), 0);
    }

    #[test]
    fn own_latency_and_stalls_delay_completion() {
        let config = DiskConfig::default();
        let mut rng = SimRng::new(3);
        let mut disk = Disk {
            latency: Some(DiskConfig {
                latency_ms_min: 100,
                latency_ms_max: 100,
            }),
            ..Disk::default()
        };
        assert_eq!(disk.submit(request(1, 1), 0, &config, &mut rng), 100);
        disk.stall_until(1_000);
        assert_eq!(disk.stalled_until(500), Some(1_000));
        assert_eq!(disk.stalled_until(1_000), None);
        assert_eq!(disk.submit(request(2, 1), 10, &config, &mut rng), 1_000);
        assert_eq!(
            disk.end_stall(500),
            Some(PersistId(2)),
            "the writes waiting"
        );
        assert_eq!(disk.stalled_until(500), None);
        assert_eq!(disk.end_stall(500), None, "no stall");
    }

    #[test]
    fn a_held_disk_releases_its_pending_writes_in_order() {
        let config = DiskConfig::default();
        let mut rng = SimRng::new(3);
        let mut disk = Disk::default();
        disk.hold();
        disk.submit(request(1, 1), 0, &config, &mut rng);
        disk.submit(request(2, 2), 0, &config, &mut rng);
        assert!(disk.is_held());
        assert_eq!(disk.release(), [PersistId(1), PersistId(2)]);
        assert!(!disk.is_held());
        assert_eq!(disk.pending_count(), 2, "the caller completes them");
    }
}
