//! Known Raft bugs, reintroducible on purpose (the `bug-catalogue` feature), so that the
//! simulator's exploration and the model checker can show they catch each one. A node runs the
//! correct code unless `Node::reintroduce` (with the feature) switched a bug on; without
//! the feature the switches do not exist and every check below compiles to `false`.

// Without the feature the catalogue exists only for the checks that compile to `false`.
#![cfg_attr(not(feature = "bug-catalogue"), allow(dead_code))]

/// One reintroducible bug. Each names the rule the correct code keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Bug {
    /// A candidate becomes leader on its peers' votes while its own term and vote are still
    /// being persisted (contract rule 4); its vote requests go out at once.
    LeadBeforeDurableVote,
    /// A candidate asks for votes before its new term and vote are durable (contract rule 3):
    /// after a crash that loses them it may campaign for the same term again, with another
    /// log, and count a grant its forgotten campaign received.
    VoteRequestBeforeDurableTerm,
    /// A leader commits an entry of an earlier term by counting its replicas (Raft §5.4.2,
    /// Figure 8), not only through an entry of its own term.
    CommitEarlierTerm,
    /// A follower advances its commit index to `min(leaderCommit, its own last index)`, not to
    /// the last entry the AppendEntries carried (Figure 2, receiver rule 5), so it commits a
    /// stale suffix the leader never vouched for.
    FollowerCommitPastNewEntries,
    /// A vote is granted (the reply sent) before the vote is durable (contract rule 3).
    VoteBeforeDurable,
    /// A follower accepts AppendEntries whose `prev_log_term` does not match its entry at
    /// `prev_log_index` (Figure 2, receiver rule 2).
    AppendIgnoresPrevLogTerm,
    /// A leader removed from the membership keeps leading once its removal is committed
    /// (Raft thesis §4.2.2).
    RemovedLeaderKeepsLeading,
    /// A new leader answers ReadIndex reads before it has committed an entry of its own term,
    /// from a commit index that may be behind the cluster's (Raft thesis §6.4).
    ReadWithoutTermCommit,
    /// Followers vote while they hear from a live leader (no leader stickiness), so a lease
    /// can outlive its leader (Raft thesis §4.2.3, §6.4.1).
    LeaseWithoutStickiness,
    /// A follower installs a snapshot older than what it has already committed, rolling its
    /// state machine back (Raft §7).
    SnapshotOverNewerLog,
    /// Votes are granted to candidates whose log is less up to date (Raft §5.4.1).
    VoteForStaleLog,
    /// A follower acknowledges appended entries before they are durable (contract rule 3).
    AckBeforeDurable,
    /// A leader counts its own entries towards the commit quorum before they are durable on its
    /// own disk (contract rule 3, Raft thesis §10.2.1).
    LeaderCountsUndurableSelf,
    /// A read is released before the state machine has applied through its read index.
    ReadBeforeApply,
    /// A follower keeps the AppendEntries it holds for the ones before them across a change
    /// of term and leader, and handles them as the new leader's (`early_appends.rs`): a
    /// deposed leader's entry overwrites one the new leader had acknowledged.
    EarlyAppendsOutliveTheirTerm,
}

impl Bug {
    /// Every bug of the catalogue, in the order the catalogue reports them.
    pub const ALL: &'static [Bug] = &[
        Bug::LeadBeforeDurableVote,
        Bug::VoteRequestBeforeDurableTerm,
        Bug::CommitEarlierTerm,
        Bug::FollowerCommitPastNewEntries,
        Bug::VoteBeforeDurable,
        Bug::AppendIgnoresPrevLogTerm,
        Bug::RemovedLeaderKeepsLeading,
        Bug::ReadWithoutTermCommit,
        Bug::LeaseWithoutStickiness,
        Bug::SnapshotOverNewerLog,
        Bug::VoteForStaleLog,
        Bug::AckBeforeDurable,
        Bug::LeaderCountsUndurableSelf,
        Bug::ReadBeforeApply,
        Bug::EarlyAppendsOutliveTheirTerm,
    ];

    /// The kebab-case name used on command lines and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Bug::LeadBeforeDurableVote => "lead-before-durable-vote",
            Bug::VoteRequestBeforeDurableTerm => "vote-request-before-durable-term",
            Bug::CommitEarlierTerm => "commit-earlier-term",
            Bug::FollowerCommitPastNewEntries => "follower-commit-past-new-entries",
            Bug::VoteBeforeDurable => "vote-before-durable",
            Bug::AppendIgnoresPrevLogTerm => "append-ignores-prev-log-term",
            Bug::RemovedLeaderKeepsLeading => "removed-leader-keeps-leading",
            Bug::ReadWithoutTermCommit => "read-without-term-commit",
            Bug::LeaseWithoutStickiness => "lease-without-stickiness",
            Bug::SnapshotOverNewerLog => "snapshot-over-newer-log",
            Bug::VoteForStaleLog => "vote-for-stale-log",
            Bug::AckBeforeDurable => "ack-before-durable",
            Bug::LeaderCountsUndurableSelf => "leader-counts-undurable-self",
            Bug::ReadBeforeApply => "read-before-apply",
            Bug::EarlyAppendsOutliveTheirTerm => "early-appends-outlive-their-term",
        }
    }

    /// The bug called `name`, if the catalogue has one.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.iter().copied().find(|bug| bug.name() == name)
    }
}

/// The bugs switched on in one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct BugSet(u64);

impl BugSet {
    pub(crate) fn insert(&mut self, bug: Bug) {
        self.0 |= 1 << (bug as u64);
    }

    pub(crate) fn contains(self, bug: Bug) -> bool {
        self.0 & (1 << (bug as u64)) != 0
    }
}

/// True when `node` runs with the named bug (or any of the bugs named `A | B`) reintroduced;
/// `false` without the feature.
#[cfg(feature = "bug-catalogue")]
macro_rules! reintroduced {
    ($node:expr, $($bug:ident)|+) => {
        false $(|| $node.bugs.contains($crate::bugs::Bug::$bug))+
    };
}

#[cfg(not(feature = "bug-catalogue"))]
macro_rules! reintroduced {
    ($node:expr, $($bug:ident)|+) => {
        false
    };
}

pub(crate) use reintroduced;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bug_has_a_distinct_name_that_finds_it() {
        for (position, &bug) in Bug::ALL.iter().enumerate() {
            assert_eq!(Bug::from_name(bug.name()), Some(bug));
            assert!(Bug::ALL[..position]
                .iter()
                .all(|&other| other.name() != bug.name()));
        }
        assert_eq!(Bug::from_name("no-such-bug"), None);
        let mut set = BugSet::default();
        set.insert(Bug::ReadBeforeApply);
        assert!(set.contains(Bug::ReadBeforeApply));
        assert!(!set.contains(Bug::LeadBeforeDurableVote));
    }
}
