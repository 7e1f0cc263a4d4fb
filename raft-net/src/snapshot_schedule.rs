//! When a node snapshots its machine and compacts its log.
//!
//! A snapshot is due when both hold:
//! - **entries**: the applied index crossed a multiple of `every` since the last snapshot,
//!   shifted by an offset drawn from the node's id, so members snapshot at their own points of
//!   the log and never all at once (while one writes its checkpoint, the others form a
//!   majority and commit);
//! - **bytes**: the entries applied since the last snapshot add up to at least that snapshot's
//!   encoded size (each entry counted as `Entry::size_bytes`: its payload and an allowance for
//!   its header).
//!
//! A snapshot costs its whole size (encoding, writing, `fdatasync`) however little changed
//! since the one before. With the entries rule alone, a store that grows rewrites itself every
//! `every` entries: a key-value store of 100,000 keys of 256 bytes writes about 30 MB per
//! 10,000 writes of 3 MB. Under `raft-net bench` (100 clients writing 100,000 new keys) that
//! was 31 snapshots and 190-220 MB written per node; with the bytes rule it is 13-14
//! snapshots and 87-113 MB. The rule bounds snapshot work by the log it lets the node drop:
//! snapshots never write more than the log did (Redis rewrites its append-only file by the same
//! rule, at 100% growth). It also bounds what is kept: the log after the last snapshot holds at
//! most `every` entries or one snapshot's worth of bytes, whichever is more, so memory, the WAL
//! and the replay at start-up stay proportional to the state.

use raft_core::{LogIndex, NodeId};

/// A node's snapshot schedule (see the module docs).
#[derive(Debug, Clone)]
pub struct SnapshotSchedule {
    /// Entries between snapshots at least; 0: never snapshot on its own.
    every: u64,
    /// This node's shift of the multiples of `every`, below `every`.
    offset: u64,
    /// The index of the latest snapshot taken (being encoded, or in the core) or installed.
    last: LogIndex,
    /// That snapshot's encoded size, once known.
    last_bytes: u64,
    /// Entry bytes applied since that snapshot's index.
    applied_bytes: u64,
}

impl SnapshotSchedule {
    /// The schedule of node `id` whose latest snapshot is at `last` and `last_bytes` long
    /// (index 0 and 0 bytes without one).
    #[must_use]
    pub fn new(id: NodeId, every: u64, last: LogIndex, last_bytes: usize) -> SnapshotSchedule {
        // Golden-ratio spacing spreads any number of ids over the interval; `fract() < 1`, so
        // the offset is below `every`.
        const GOLDEN: f64 = 0.618_033_988_749_895;
        let offset = ((id.0 as f64 * GOLDEN).fract() * every as f64) as u64;
        SnapshotSchedule {
            every,
            offset,
            last,
            last_bytes: last_bytes as u64,
            applied_bytes: 0,
        }
    }

    /// The index of the latest snapshot taken or installed.
    #[must_use]
    pub fn last(&self) -> LogIndex {
        self.last
    }

    /// An entry of `bytes` was applied.
    pub fn applied(&mut self, bytes: usize) {
        self.applied_bytes = self.applied_bytes.saturating_add(bytes as u64);
    }

    /// Whether a snapshot is due with the machine at `applied`.
    #[must_use]
    pub fn is_due(&self, applied: LogIndex) -> bool {
        if self.every == 0 || applied <= self.last {
            return false;
        }
        let crossed =
            (applied.0 + self.offset) / self.every > (self.last.0 + self.offset) / self.every;
        crossed && self.applied_bytes >= self.last_bytes
    }

    /// A snapshot of the machine at `index` was taken; its size comes with [`Self::encoded`].
    pub fn taken(&mut self, index: LogIndex) {
        self.last = index;
        self.applied_bytes = 0;
    }

    /// The snapshot taken at `index` encoded to `bytes`.
    pub fn encoded(&mut self, index: LogIndex, bytes: usize) {
        if index == self.last {
            self.last_bytes = bytes as u64;
        }
    }

    /// A leader's snapshot of `bytes` at `index` replaced the machine.
    pub fn installed(&mut self, index: LogIndex, bytes: usize) {
        if index > self.last {
            self.last = index;
            self.last_bytes = bytes as u64;
            self.applied_bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `entries` commands of `entry_bytes` each, one at a time from `start`; snapshots
    /// of `snapshot_bytes(index)` are taken whenever due. The indexes they were taken at.
    fn run(
        schedule: &mut SnapshotSchedule,
        start: u64,
        entries: u64,
        entry_bytes: usize,
        snapshot_bytes: impl Fn(u64) -> usize,
    ) -> Vec<u64> {
        let mut taken = Vec::new();
        for index in start..start + entries {
            schedule.applied(entry_bytes);
            if schedule.is_due(LogIndex(index)) {
                schedule.taken(LogIndex(index));
                schedule.encoded(LogIndex(index), snapshot_bytes(index));
                taken.push(index);
            }
        }
        taken
    }

    #[test]
    fn a_small_state_snapshots_once_per_interval_at_each_members_own_points() {
        let every = 1000;
        let mut firsts = Vec::new();
        for id in 1..=3 {
            let mut schedule = SnapshotSchedule::new(NodeId(id), every, LogIndex(0), 0);
            // Overwrites of 100 keys: the snapshot stays at 10 kB, far below 1,000 entries.
            let taken = run(&mut schedule, 1, 5000, 100, |_| 10_000);
            assert_eq!(taken.len(), 5, "node {id}: {taken:?}");
            for pair in taken.windows(2) {
                assert_eq!(pair[1] - pair[0], every, "node {id}: {taken:?}");
            }
            firsts.push(taken[0]);
        }
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(firsts.len(), 3, "no two members share a point: {firsts:?}");
    }

    #[test]
    fn a_growing_state_snapshots_only_after_writing_as_much_log_as_the_last_snapshot() {
        // Every command adds a key: the snapshot holds everything applied so far.
        let mut schedule = SnapshotSchedule::new(NodeId(1), 1000, LogIndex(0), 0);
        let taken = run(&mut schedule, 1, 20_000, 100, |index| index as usize * 100);
        // Each one waits for as many entries as the state held at the one before.
        for pair in taken.windows(2) {
            assert!(pair[1] >= 2 * pair[0], "{taken:?}");
            assert!(pair[1] <= 2 * pair[0] + 1000, "{taken:?}");
        }
        assert!(taken.len() >= 4 && taken.len() <= 6, "{taken:?}");
        let written: usize = taken.iter().map(|&index| index as usize * 100).sum();
        assert!(
            written <= 2 * 20_000 * 100,
            "snapshots wrote {written} bytes"
        );
    }

    #[test]
    fn never_without_an_interval_and_never_twice_at_one_index() {
        let mut schedule = SnapshotSchedule::new(NodeId(1), 0, LogIndex(0), 0);
        schedule.applied(1 << 20);
        assert!(!schedule.is_due(LogIndex(1_000_000)));
        let mut schedule = SnapshotSchedule::new(NodeId(2), 1000, LogIndex(0), 0);
        // An applied index that jumps (a batch of entries) still makes it due.
        schedule.applied(10);
        assert!(schedule.is_due(LogIndex(2500)));
        schedule.taken(LogIndex(2500));
        assert!(!schedule.is_due(LogIndex(2500)));
    }

    #[test]
    fn a_restored_or_installed_snapshot_counts_as_the_last() {
        // Restored at start-up: 1 MB at index 5,000.
        let mut schedule = SnapshotSchedule::new(NodeId(1), 1000, LogIndex(5000), 1_000_000);
        schedule.applied(999_999);
        assert!(!schedule.is_due(LogIndex(9000)));
        schedule.applied(1);
        assert!(schedule.is_due(LogIndex(9000)));
        // A leader's snapshot of 2 MB at 9,500 starts the count again.
        schedule.installed(LogIndex(9500), 2_000_000);
        assert_eq!(schedule.last(), LogIndex(9500));
        schedule.applied(1_999_999);
        assert!(!schedule.is_due(LogIndex(12_000)));
        schedule.applied(1);
        assert!(schedule.is_due(LogIndex(12_000)));
        // An older one changes nothing.
        schedule.installed(LogIndex(100), 1);
        assert_eq!(schedule.last(), LogIndex(9500));
        // The size of a snapshot that is no longer the last is not taken.
        schedule.taken(LogIndex(12_000));
        schedule.encoded(LogIndex(11_000), 1);
        schedule.applied(10);
        assert!(!schedule.is_due(LogIndex(14_000)));
    }
}
