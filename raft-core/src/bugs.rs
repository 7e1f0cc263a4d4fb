//! Known Raft bugs, reintroducible on purpose (the `bug-catalogue` feature), so that the
//! simulator's exploration and the model checker can show they catch each one. A node runs the
//! correct code unless [`Node::reintroduce`](crate::Node::reintroduce) switched a bug on; without
//! the feature the switches do not exist and every check below compiles to `false`.

// Without the feature the catalogue exists only for the checks that compile to `false`.
#![cfg_attr(not(feature = "bug-catalogue"), allow(dead_code))]

/// One reintroducible bug. Each names the rule the correct code keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Bug {
    /// A candidate becomes leader on its peers' votes while its own term and vote are still
    /// being persisted (contract rule 4).
    LeadBeforeDurableVote,
}

impl Bug {
    /// Every bug of the catalogue, in the order the catalogue reports them.
    pub const ALL: &'static [Bug] = &[Bug::LeadBeforeDurableVote];

    /// The kebab-case name used on command lines and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Bug::LeadBeforeDurableVote => "lead-before-durable-vote",
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

/// True when `node` runs with the named bug reintroduced; `false` without the feature.
#[cfg(feature = "bug-catalogue")]
macro_rules! reintroduced {
    ($node:expr, $bug:ident) => {
        $node.bugs.contains($crate::bugs::Bug::$bug)
    };
}

#[cfg(not(feature = "bug-catalogue"))]
macro_rules! reintroduced {
    ($node:expr, $bug:ident) => {
        false
    };
}

pub(crate) use reintroduced;
