//! Log entries as they are replicated, persisted and applied.

use serde::{Deserialize, Serialize};

use crate::membership::Membership;
use crate::shared_bytes::SharedBytes;
use crate::types::{LogIndex, Term};

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub index: LogIndex,
    pub term: Term,
    pub payload: EntryPayload,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by every new leader so it can commit entries of earlier terms (Raft §5.4.2, §8).
    Noop,
    /// An application command, opaque to the core. Its clones (in a `Persist`, in every
    /// follower's AppendEntries, in an `Apply`) share the bytes. Serialized as a byte string:
    /// postcard writes the same bytes as for a sequence of bytes (length, then the bytes) but
    /// copies them in one go instead of one element at a time.
    Command(SharedBytes),
    /// The cluster's membership from this entry on (it takes effect once appended).
    Membership(Membership),
}

impl Entry {
    /// Bytes this entry contributes to a message, for the `append_bytes_max` budget. An estimate
    /// of the encoded size: the payload plus a fixed allowance for index, term and framing.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        const HEADER_BYTES: usize = 24;
        match &self.payload {
            EntryPayload::Noop => HEADER_BYTES,
            EntryPayload::Command(bytes) => HEADER_BYTES + bytes.len(),
            EntryPayload::Membership(membership) => {
                HEADER_BYTES + 10 * (membership.voters.len() + membership.learners.len())
            }
        }
    }

    #[must_use]
    pub fn is_command(&self) -> bool {
        matches!(self.payload, EntryPayload::Command(_))
    }
}
