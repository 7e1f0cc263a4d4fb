//! A snapshot's bytes, shared rather than copied.
//!
//! The core keeps the latest snapshot (to stream it to followers that need it) and hands the
//! same bytes to the driver twice more: to persist, and, on a follower, to install. A state
//! machine's snapshot can be hundreds of megabytes; copying it inside `step` would stall the
//! node for as long, so every holder shares one buffer.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Deref;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The bytes of a snapshot: cloned by reference count, read as a `[u8]`. Serialized as a byte
/// string, exactly as a `Vec<u8>` with `crate::byte_string` was.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotData(Arc<Vec<u8>>);

impl SnapshotData {
    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Appends `bytes`; copies the buffer first only if another holder shares it.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        Arc::make_mut(&mut self.0).extend_from_slice(bytes);
    }
}

impl Deref for SnapshotData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SnapshotData {
    /// Takes the buffer over without copying it.
    fn from(bytes: Vec<u8>) -> SnapshotData {
        SnapshotData(Arc::new(bytes))
    }
}

impl PartialEq<Vec<u8>> for SnapshotData {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<[u8]> for SnapshotData {
    fn eq(&self, other: &[u8]) -> bool {
        self.0.as_slice() == other
    }
}

impl Serialize for SnapshotData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::byte_string::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for SnapshotData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SnapshotData, D::Error> {
        crate::byte_string::deserialize(deserializer).map(SnapshotData::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn clones_share_the_buffer_and_the_encoding_is_a_byte_string() {
        let data = SnapshotData::from(vec![1, 2, 3]);
        let copy = data.clone();
        assert!(core::ptr::eq(data.as_slice(), copy.as_slice()));
        assert_eq!(
            postcard::to_allocvec(&data).unwrap(),
            postcard::to_allocvec(&vec![1_u8, 2, 3]).unwrap()
        );
        let back: SnapshotData =
            postcard::from_bytes(&postcard::to_allocvec(&data).unwrap()).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
        // Growing a shared buffer leaves the other holder's bytes alone.
        let mut grown = copy;
        grown.extend_from_slice(&[4]);
        assert_eq!(grown, vec![1, 2, 3, 4]);
        assert_eq!(data, vec![1, 2, 3]);
    }
}
