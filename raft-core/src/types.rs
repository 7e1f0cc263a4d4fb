//! Newtypes for every id and index, so no function takes two bare `u64`s.

use core::fmt;
use serde::{Deserialize, Serialize};

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl From<u64> for $name {
            fn from(value: u64) -> Self {
                $name(value)
            }
        }
    };
}

newtype!(
    /// A cluster member's identity. Zero is reserved as "nobody" on the wire and is refused in
    /// configurations.
    NodeId, "n"
);
newtype!(
    /// A Raft term (Figure 2: `currentTerm`).
    Term, "t"
);
newtype!(
    /// A position in the replicated log; the first entry has index 1, index 0 is the empty prefix.
    LogIndex, "i"
);
newtype!(
    /// Chosen by the caller of `Input::Propose` to match replies to requests.
    RequestId, "r"
);
newtype!(
    /// Names one `Action::Persist`; ids increase by one per request.
    PersistId, "p"
);
newtype!(
    /// Which life of a server this is: chosen once when its durable state is created, kept
    /// across restarts, and chosen anew, greater than every earlier one, when the durable state
    /// is lost (a wiped or replaced disk); drivers use the creation time of the state in
    /// microseconds. A server's identity is (`NodeId`, `Incarnation`): a server that lost its
    /// state comes back as a new incarnation and cannot speak for what the old one stored. The
    /// order tells a late message of a replaced incarnation from a newer incarnation; were a
    /// new one ever smaller (a clock set back), it would be ignored as stale, which costs its
    /// return to the cluster, never safety.
    Incarnation, "inc"
);

/// The largest term and the largest log index a node accepts from a peer or from disk: 2^62.
///
/// A message carrying a term or an index above it is ignored and counted, and a durable state
/// holding one is refused ([`crate::RestoreError::OutOfRange`]). No correct cluster gets there
/// (a term a nanosecond, or an entry a nanosecond, for 146 years), and below it every step's
/// arithmetic (`index + entries`, `term + 1`) has room to spare, so no forged value can
/// overflow it. Adopting such a term would also leave a node unable to ever campaign again.
pub const ACCEPTED_VALUE_MAX: u64 = 1 << 62;

impl LogIndex {
    pub const ZERO: LogIndex = LogIndex(0);

    /// True when a peer or a disk may name this index (see [`ACCEPTED_VALUE_MAX`]).
    #[must_use]
    pub fn is_accepted(self) -> bool {
        self.0 <= ACCEPTED_VALUE_MAX
    }

    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one; `LogIndex::ZERO` stays zero.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Term {
    pub const ZERO: Term = Term(0);

    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }

    /// True when a peer or a disk may name this term (see [`ACCEPTED_VALUE_MAX`]).
    #[must_use]
    pub fn is_accepted(self) -> bool {
        self.0 <= ACCEPTED_VALUE_MAX
    }
}

impl PersistId {
    #[must_use]
    pub fn next(self) -> PersistId {
        PersistId(self.0 + 1)
    }
}

/// What a node currently is (Figure 2, "Rules for Servers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

impl Role {
    /// The upper-case name the seed HTTP API uses (`"LEADER"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "FOLLOWER",
            Role::Candidate => "CANDIDATE",
            Role::Leader => "LEADER",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
