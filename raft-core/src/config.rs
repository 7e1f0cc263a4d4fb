//! Node configuration: identity, membership, timing in ticks, randomness and limits.

use alloc::collections::BTreeSet;

use crate::error::ConfigError;
use crate::types::{Incarnation, NodeId};

/// Everything a node needs besides its durable state. Validated by `Node::new`/`Node::restore`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// This node's id; must be one of `voters`.
    pub id: NodeId,
    /// The voters of a new cluster, this node included; empty for a node that an existing
    /// cluster will add (it waits to be contacted). Once the log or a snapshot records a
    /// membership, that membership rules instead.
    pub voters: BTreeSet<NodeId>,
    /// A leader sends AppendEntries (possibly empty) to each follower at least this often.
    pub heartbeat_interval_ticks: u32,
    /// Each election timeout is drawn uniformly from `min..=max` (Raft §5.2).
    pub election_timeout_ticks_min: u32,
    pub election_timeout_ticks_max: u32,
    /// Seeds the only random number generator in the core.
    pub rng_seed: u64,
    /// This server's incarnation: the same value for every start from the same durable state,
    /// a new, greater one when the durable state is lost (see [`Incarnation`]). A server with
    /// `voters` configured is a member of the initial cluster in its first incarnation; a
    /// server started with no voters is a new server, or one that lost its state, and waits to
    /// be added (or re-added) before it votes.
    pub incarnation: Incarnation,
    /// Entries per AppendEntries message.
    pub append_entries_max: usize,
    /// Payload bytes per AppendEntries message (at least one entry is always sent).
    pub append_bytes_max: usize,
    /// AppendEntries messages in flight to one follower before the leader waits for acks.
    pub inflight_appends_max: usize,
    /// Follower: AppendEntries that arrived before the ones they follow, held until those
    /// arrive instead of rejected (a reordering network; see `early_appends.rs`). 0 holds
    /// none.
    pub early_appends_max: usize,
    /// Follower: entry bytes of the early AppendEntries held.
    pub early_appends_bytes_max: usize,
    /// Follower: this many early AppendEntries held beyond a gap make it a likely loss, and
    /// the gap is reported at once; otherwise a gap is reported when two ticks in a row find
    /// it (see `early_appends.rs`). 0 reports by ticks only. Never more than
    /// `inflight_appends_max - 1`: a leader with this configuration sends no more than that
    /// beyond a lost append before it waits.
    pub early_appends_gap_report_at: usize,
    /// Leader: the last AppendEntries in flight to a follower is sent again, once, after this
    /// many ticks without an acknowledgement (a lost tail, which no follower can report). It
    /// should exceed a round trip including the follower's disk write, or every last append
    /// goes twice. 0 waits for the heartbeat stall detection instead.
    pub tail_resend_ticks: u32,
    /// Entries past the commit index before the leader answers `Reply::Busy`.
    pub uncommitted_entries_max: usize,
    /// Ask for pre-votes before starting an election, so a node that was cut off does not
    /// disrupt a healthy cluster when it returns (Raft thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for an election timeout steps down, and a
    /// follower that heard from its leader within the minimum election timeout ignores vote
    /// requests (Raft thesis §6.2, §4.2.3).
    pub check_quorum: bool,
    /// Serve reads without a confirmation round while the leader's lease holds (Raft thesis
    /// §6.4.1; see `read_index.rs`). Assumes bounded clock drift: every node's ticks must run
    /// at nearly the same rate (within one heartbeat interval per minimum election timeout).
    /// Needs `check_quorum`, whose leader stickiness the lease rests on. Off by default.
    pub lease_reads: bool,
    /// Reads pending confirmation before the leader answers `Reply::Busy`.
    pub pending_reads_max: usize,
    /// Snapshot bytes per InstallSnapshot message.
    pub snapshot_chunk_bytes_max: usize,
    /// The largest snapshot a follower accepts from a leader.
    pub snapshot_bytes_max: u64,
}

impl Config {
    /// A configuration with the defaults below: at 10 ms per tick, heartbeats every 50 ms and
    /// elections after 300-600 ms.
    #[must_use]
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> Config {
        Config {
            id,
            voters: voters.into_iter().collect(),
            heartbeat_interval_ticks: 5,
            election_timeout_ticks_min: 30,
            election_timeout_ticks_max: 60,
            rng_seed: id.0,
            incarnation: Incarnation(0),
            append_entries_max: 256,
            append_bytes_max: 32 * 1024,
            inflight_appends_max: 64,
            early_appends_max: 64,
            early_appends_bytes_max: 2 * 1024 * 1024,
            early_appends_gap_report_at: 16,
            tail_resend_ticks: 2,
            uncommitted_entries_max: 16 * 1024,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            pending_reads_max: 16 * 1024,
            snapshot_chunk_bytes_max: 32 * 1024,
            snapshot_bytes_max: 1 << 30,
        }
    }

    /// Checks every rule a running node relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.0 == 0 || self.voters.contains(&NodeId(0)) {
            return Err(ConfigError::ZeroNodeId);
        }
        if !self.voters.is_empty() && !self.voters.contains(&self.id) {
            return Err(ConfigError::SelfNotAVoter { id: self.id });
        }
        for (field, value) in [
            ("heartbeat_interval_ticks", self.heartbeat_interval_ticks),
            (
                "election_timeout_ticks_min",
                self.election_timeout_ticks_min,
            ),
            (
                "election_timeout_ticks_max",
                self.election_timeout_ticks_max,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroTicks { field });
            }
        }
        if self.election_timeout_ticks_min > self.election_timeout_ticks_max {
            return Err(ConfigError::ElectionRangeEmpty {
                min: self.election_timeout_ticks_min,
                max: self.election_timeout_ticks_max,
            });
        }
        if self.election_timeout_ticks_min <= self.heartbeat_interval_ticks {
            return Err(ConfigError::ElectionTimeoutNotAboveHeartbeat {
                election_min: self.election_timeout_ticks_min,
                heartbeat: self.heartbeat_interval_ticks,
            });
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::LeaseReadsNeedCheckQuorum);
        }
        for (field, value) in [
            ("append_entries_max", self.append_entries_max),
            ("append_bytes_max", self.append_bytes_max),
            ("inflight_appends_max", self.inflight_appends_max),
            ("uncommitted_entries_max", self.uncommitted_entries_max),
            ("pending_reads_max", self.pending_reads_max),
            ("snapshot_chunk_bytes_max", self.snapshot_chunk_bytes_max),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit { field });
            }
        }
        Ok(())
    }
}
