//! Log entries as they are replicated, persisted and applied.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::membership::Membership;
use crate::types::{LogIndex, Term};

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: LogIndex,
    pub term: Term,
    pub payload: EntryPayload,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by every new leader so it can commit entries of earlier terms (Raft §5.4.2, §8).
    Noop,
    /// An application command, opaque to the core. Serialized as a byte string: postcard
    /// writes the same bytes as for a sequence of bytes (length, then the bytes) but copies
    /// them in one go instead of one element at a time.
    Command(#[serde(with = "command_bytes")] Vec<u8>),
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

/// Serde for command bytes as a byte string rather than a sequence of numbers.
mod command_bytes {
    use alloc::vec::Vec;
    use core::fmt;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("command bytes")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        /// Self-describing formats (JSON) may hold the bytes as an array of numbers.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // The size hint comes from the input: never trust it for more than a small start.
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }
}
