//! When a node snapshots its machine and compacts its log.
//!
//! Two rules, in order:
//! - **bytes**: the entries applied since the last snapshot add up to at least that snapshot's
//!   encoded size, or to `log_bytes_max`, whichever is less (each entry counted as
//!   `Entry::size_bytes`: its payload and an allowance for its header);
//! - **entries**: then, the applied index crosses a multiple of `every`, shifted by an offset
//!   drawn from the node's id. Members thus snapshot at their own points of the log and not all
//!   at once (while one writes its checkpoint, the others form a majority and commit), even
//!   when they start counting from the same snapshot (a follower that installed the leader's).
//!
//! A snapshot costs its whole size (encoding, writing, `fdatasync`) however little changed
//! since the one before. With the entries rule alone, a store that grows rewrites itself every
//! `every` entries: a key-value store of 100,000 keys of 256 bytes writes about 30 MB per
//! 10,000 writes of 3 MB. Under `raft-net bench` (100 clients writing 100,000 new keys) that
//! was 10 or 11 snapshots and 190-220 MB written per node; with the bytes rule it is 4 or 5 and
//! 87-113 MB. The rule keeps a snapshot's cost in step with the log it lets the node drop: a
//! snapshot is at most about the log since the one before plus that one, so snapshots write at
//! most about twice what the log did (Redis rewrites its append-only file by the same rule, at
//! 100% growth). It also bounds what is kept: after a snapshot the log holds at most about one
//! snapshot's worth of bytes (capped by `log_bytes_max`) and one interval of entries, so memory,
//! the WAL and the replay at start-up stay proportional to the latest snapshot.

use raft_core::{LogIndex, NodeId};

/// What a node's snapshots wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Entries between snapshots at least; 0: never snapshot on its own.
    pub entries: u64,
    /// The bytes rule holds once this much log was applied, however large the last snapshot.
    pub log_bytes_max: u64,
}

/// A node's snapshot schedule (see the module docs).
#[derive(Debug, Clone)]
pub struct SnapshotSchedule {
    every: u64,
    log_bytes_max: u64,
    /// This node's shift of the multiples of `every`, below `every`.
    offset: u64,
    /// The index of the latest snapshot taken (being encoded, or in the core) or installed.
    last: LogIndex,
    /// That snapshot's encoded size, once known.
    last_bytes: u64,
    /// Entry bytes applied since that snapshot's index.
    applied_bytes: u64,
    /// Once the bytes rule holds: the index after which a crossed multiple makes a snapshot due.
    counting_from: Option<LogIndex>,
}

impl SnapshotSchedule {
    /// The schedule of node `id` whose latest snapshot is at `last` and `last_bytes` long
    /// (index 0 and 0 bytes without one).
    #[must_use]
    pub fn new(
        id: NodeId,
        policy: SnapshotPolicy,
        last: LogIndex,
        last_bytes: usize,
    ) -> SnapshotSchedule {
        // Golden-ratio spacing spreads any number of ids over the interval; `fract() < 1`, so
        // the offset is below `every`.
        const GOLDEN: f64 = 0.618_033_988_749_895;
        let offset = ((id.0 as f64 * GOLDEN).fract() * policy.entries as f64) as u64;
        let mut schedule = SnapshotSchedule {
            every: policy.entries,
            log_bytes_max: policy.log_bytes_max,
            offset,
            last,
            last_bytes: last_bytes as u64,
            applied_bytes: 0,
            counting_from: None,
        };
        schedule.restart_count();
        schedule
    }

    /// The index of the latest snapshot taken or installed.
    #[must_use]
    pub fn last(&self) -> LogIndex {
        self.last
    }

    /// The entry at `index`, of `bytes`, was applied.
    pub fn applied(&mut self, index: LogIndex, bytes: usize) {
        self.applied_bytes = self.applied_bytes.saturating_add(bytes as u64);
        if self.counting_from.is_none() && self.applied_bytes >= self.bytes_needed() {
            // A multiple at `index` itself counts.
            self.counting_from = Some(LogIndex(index.0.saturating_sub(1)).max(self.last));
        }
    }

    /// Whether a snapshot is due with the machine at `applied`.
    #[must_use]
    pub fn is_due(&self, applied: LogIndex) -> bool {
        if self.every == 0 || applied <= self.last {
            return false;
        }
        self.counting_from.is_some_and(|from| {
            (applied.0 + self.offset) / self.every > (from.0 + self.offset) / self.every
        })
    }

    /// A snapshot of the machine at `index` was taken; its size comes with [`Self::encoded`].
    pub fn taken(&mut self, index: LogIndex) {
        self.last = index;
        self.applied_bytes = 0;
        self.counting_from = None;
    }

    /// The snapshot taken at `index` encoded to `bytes`.
    pub fn encoded(&mut self, index: LogIndex, bytes: usize) {
        if index == self.last {
            self.last_bytes = bytes as u64;
            self.restart_count();
        }
    }

    /// A leader's snapshot of `bytes` at `index` replaced the machine.
    pub fn installed(&mut self, index: LogIndex, bytes: usize) {
        if index > self.last {
            self.last = index;
            self.last_bytes = bytes as u64;
            self.applied_bytes = 0;
            self.restart_count();
        }
    }

    fn bytes_needed(&self) -> u64 {
        self.last_bytes.min(self.log_bytes_max)
    }

    /// Multiples count from the last snapshot if the bytes rule already holds (no snapshot yet,
    /// or a small one), else from where it will.
    fn restart_count(&mut self) {
        self.counting_from = (self.applied_bytes >= self.bytes_needed()).then_some(self.last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: u64) -> SnapshotPolicy {
        SnapshotPolicy {
            entries,
            log_bytes_max: u64::MAX,
        }
    }

    /// Applies commands of `entry_bytes` each, one at a time over `indexes`; snapshots of
    /// `snapshot_bytes(index)` are taken whenever due. The indexes they were taken at.
    fn run(
        schedule: &mut SnapshotSchedule,
        indexes: std::ops::RangeInclusive<u64>,
        entry_bytes: usize,
        snapshot_bytes: impl Fn(u64) -> usize,
    ) -> Vec<u64> {
        let mut taken = Vec::new();
        for index in indexes {
            schedule.applied(LogIndex(index), entry_bytes);
            if schedule.is_due(LogIndex(index)) {
                schedule.taken(LogIndex(index));
                schedule.encoded(LogIndex(index), snapshot_bytes(index));
                taken.push(index);
            }
        }
        taken
    }

    /// How many different indexes `points` holds.
    fn distinct(mut points: Vec<u64>) -> usize {
        points.sort_unstable();
        points.dedup();
        points.len()
    }

    #[test]
    fn a_small_state_snapshots_once_per_interval_at_each_members_own_points() {
        let every = 1000;
        let mut firsts = Vec::new();
        for id in 1..=3 {
            let mut schedule = SnapshotSchedule::new(NodeId(id), policy(every), LogIndex(0), 0);
            // Overwrites of 100 keys: the snapshot stays at 10 kB, far below 1,000 entries.
            let taken = run(&mut schedule, 1..=5000, 100, |_| 10_000);
            assert_eq!(taken.len(), 5, "node {id}: {taken:?}");
            for pair in taken.windows(2) {
                assert_eq!(pair[1] - pair[0], every, "node {id}: {taken:?}");
            }
            firsts.push(taken[0]);
        }
        assert_eq!(
            distinct(firsts.clone()),
            3,
            "no two members share a point: {firsts:?}"
        );
    }

    #[test]
    fn a_growing_state_snapshots_only_after_writing_as_much_log_as_the_last_snapshot() {
        // Every command adds a key: the snapshot holds everything applied so far.
        let mut schedule = SnapshotSchedule::new(NodeId(1), policy(1000), LogIndex(0), 0);
        let taken = run(&mut schedule, 1..=20_000, 100, |index| index as usize * 100);
        // Each one waits for as many entries as the store held at the one before, then for
        // this node's next point.
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
    fn members_that_start_from_the_same_snapshot_keep_their_own_points() {
        // A store far larger than an interval of log: the bytes rule is the one that waits.
        let (every, store) = (1000, 5_000_000);
        let mut points = Vec::new();
        for id in 1..=3 {
            let mut schedule = SnapshotSchedule::new(NodeId(id), policy(every), LogIndex(0), 0);
            // The leader's snapshot at 7,000, installed by every member.
            schedule.installed(LogIndex(7000), store);
            let taken = run(&mut schedule, 7001..=40_000, 200, |_| store);
            assert!(!taken.is_empty(), "node {id}");
            // Due once 25,000 entries of 200 bytes were applied, at this node's next point.
            assert!(
                taken[0] >= 32_000 && taken[0] < 33_000,
                "node {id}: {taken:?}"
            );
            points.push(taken[0]);
        }
        assert_eq!(distinct(points.clone()), 3, "{points:?}");
    }

    #[test]
    fn the_log_between_snapshots_is_capped() {
        let capped = SnapshotPolicy {
            entries: 1000,
            log_bytes_max: 1_000_000,
        };
        // A 1 GB store: without the cap the next snapshot would wait for 1 GB of log.
        let mut schedule = SnapshotSchedule::new(NodeId(1), capped, LogIndex(5000), 1 << 30);
        let taken = run(&mut schedule, 5001..=20_000, 100, |_| 1 << 30);
        // 10,000 entries of 100 bytes, then the node's next point; and again.
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert!(taken[0] >= 15_000 && taken[0] < 16_000, "{taken:?}");
    }

    #[test]
    fn never_without_an_interval_and_never_twice_at_one_index() {
        let mut schedule = SnapshotSchedule::new(NodeId(1), policy(0), LogIndex(0), 0);
        schedule.applied(LogIndex(1), 1 << 20);
        assert!(!schedule.is_due(LogIndex(1_000_000)));
        let mut schedule = SnapshotSchedule::new(NodeId(2), policy(1000), LogIndex(0), 0);
        // An applied index that jumps (a batch of entries) still makes it due.
        schedule.applied(LogIndex(2500), 10);
        assert!(schedule.is_due(LogIndex(2500)));
        schedule.taken(LogIndex(2500));
        assert!(!schedule.is_due(LogIndex(2500)));
    }

    #[test]
    fn a_restored_or_installed_snapshot_counts_as_the_last() {
        // Restored at start-up: 1 MB at index 5,000.
        let mut schedule =
            SnapshotSchedule::new(NodeId(1), policy(1000), LogIndex(5000), 1_000_000);
        schedule.applied(LogIndex(8000), 999_999);
        assert!(!schedule.is_due(LogIndex(9000)));
        schedule.applied(LogIndex(8001), 1);
        assert!(schedule.is_due(LogIndex(9000)));
        // A leader's snapshot of 2 MB at 9,500 starts the count again.
        schedule.installed(LogIndex(9500), 2_000_000);
        assert_eq!(schedule.last(), LogIndex(9500));
        schedule.applied(LogIndex(10_000), 1_999_999);
        assert!(!schedule.is_due(LogIndex(12_000)));
        schedule.applied(LogIndex(10_001), 1);
        assert!(schedule.is_due(LogIndex(12_000)));
        // An older one changes nothing.
        schedule.installed(LogIndex(100), 1);
        assert_eq!(schedule.last(), LogIndex(9500));
        // The size of a snapshot that is no longer the last is not taken.
        schedule.taken(LogIndex(12_000));
        schedule.encoded(LogIndex(11_000), 1);
        schedule.applied(LogIndex(12_001), 10);
        assert!(!schedule.is_due(LogIndex(14_000)));
    }
}
